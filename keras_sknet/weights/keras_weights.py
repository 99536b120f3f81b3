"""Keras weights files given as `weights=`: checked before use, explained when they do not fit.

Keras' own `model.load_weights` answers a file of another architecture with a message of
thousands of characters (every variable it could not load, with its values), and loads a
file that holds *more* than the model silently, in part. Here a Keras 3 weights file
(`.weights.h5`, or the `model.weights.h5` inside a whole model's `.keras` archive) is
compared with the model, name by name and shape by shape, and a mismatch is told in one
line: the counts and the first difference. The comparison costs a save of the model's
weights, so it runs only when loading failed or the counts differ.
"""

import json
import os
import re
import tempfile
import warnings
import zipfile

from keras_sknet.weights.checkpoint import KERAS_ARCHIVE_SUFFIX, KERAS_ARCHIVE_WEIGHTS
from keras_sknet.weights.timm_converter import CheckpointMismatchError

# h5py's words for a truncated file: "truncated file: eof = 450748, ..., stored_eof = 901496".
_H5_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")
_MAX_REASON_CHARS = 200
# Where a model function's classifier (the top-level Dense "predictions") lies in a weights
# file: Keras names a functional model's layers by class in it. A model built with
# include_top=False may load a file with one, as keras.applications' models do.
CLASSIFIER_ARRAYS = "layers/dense/"


def _is_archive(path):
    return os.fspath(path).lower().endswith(KERAS_ARCHIVE_SUFFIX)


def check_keras_file(path):
    """Opens a Keras weights file or `.keras` archive far enough to know it is whole.

    Args:
        path: a `.weights.h5` / `.h5` file or a `.keras` archive.

    Raises:
        ValueError: a truncated or unreadable file, naming it (in one line).
    """
    import h5py

    path = os.fspath(path)
    try:
        if _is_archive(path):
            with zipfile.ZipFile(path) as archive, archive.open(KERAS_ARCHIVE_WEIGHTS) as f:
                h5py.File(f, "r").close()
        else:
            h5py.File(path, "r").close()
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        truncated = _H5_TRUNCATED.search(str(error))
        if truncated:
            have, need = truncated.groups()
            raise ValueError(
                f"{path!r} is truncated: {have} of its {need} bytes; an incomplete download or copy?"
            ) from None
        raise ValueError(f"{path!r} is not a readable Keras weights file: {_first_line(error)}") from None


def stored_arrays(path):
    """The arrays a Keras 3 weights file holds: `{name: shape}`, or None for another layout.

    Args:
        path: a `.weights.h5` file (the layout `model.save_weights` writes: groups
            `layers/...` and `vars/...`) or a `.keras` archive (its `model.weights.h5`).

    Returns:
        `{"layers/sk_block/conv1/vars/0": (1, 1, 64, 16), ...}`, or None for a legacy
        (Keras 2) HDF5 layout.
    """
    import h5py

    def collect(f):
        if "layers" not in f and "vars" not in f:
            return None
        arrays = {}
        f.visititems(
            lambda name, item: arrays.update({name: item.shape}) if isinstance(item, h5py.Dataset) else None
        )
        return arrays

    if _is_archive(path):
        with (
            zipfile.ZipFile(path) as archive,
            archive.open(KERAS_ARCHIVE_WEIGHTS) as raw,
            h5py.File(raw, "r") as f,
        ):
            return collect(f)
    with h5py.File(path, "r") as f:
        return collect(f)


def _model_arrays(model):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.weights.h5")
        model.save_weights(path)
        return stored_arrays(path)


def _archive_model(path):
    """`'name' (Class)` of the model a `.keras` archive holds, from its config.json."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        return f"{config['config']['name']!r} ({config['class_name']})"
    except (KeyError, TypeError, ValueError, OSError, zipfile.BadZipFile):
        return "a model"


def _first_line(error):
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= _MAX_REASON_CHARS else line[: _MAX_REASON_CHARS - 3] + "..."


def _natural(name):
    """Sorts `layers/sk_block_2/...` before `layers/sk_block_10/...` (Keras numbers repeated names)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def compare_arrays(stored, expected):
    """`(missing, unexpected, mismatched)` between a file's arrays and a model's, each sorted.

    Args:
        stored, expected: `{name: shape}` of the file and of the model.

    Returns:
        In network order (`sk_block_2` before `sk_block_10`): names the model has and the file lacks, names the file has and the model lacks,
        and `(name, file_shape, model_shape)` of the names in both with other shapes.
    """
    missing = sorted(set(expected) - set(stored), key=_natural)
    unexpected = sorted(set(stored) - set(expected), key=_natural)
    mismatched = [
        (name, tuple(stored[name]), tuple(expected[name]))
        for name in sorted(set(stored) & set(expected), key=_natural)
        if tuple(stored[name]) != tuple(expected[name])
    ]
    return missing, unexpected, mismatched


def _difference(path, model, stored, expected, hint, optional):
    missing, unexpected, mismatched = compare_arrays(stored, expected)
    unexpected = [name for name in unexpected if not name.startswith(optional)]
    if not (missing or unexpected or mismatched):
        return None
    parts = []
    if mismatched:
        name, got, want = mismatched[0]
        parts.append(
            f"{len(mismatched)} of other shapes, first {name}: {got} in the file, {want} in the model"
        )
    if missing:
        parts.append(f"{len(missing)} missing from the file, first {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} not in the model, first {unexpected[0]}")
    counts = f"{len(stored)} arrays in the file, {len(expected)} in model {model.name!r}"
    if _is_archive(path):
        what = (
            f"{path!r} is a whole saved Keras model, {_archive_model(path)}, of another architecture "
            f"than model {model.name!r}"
        )
        advice = f"To use that model, load it with keras.saving.load_model({path!r})."
    else:
        what = f"{path!r} holds the weights of another architecture than model {model.name!r}"
        advice = "Load it into the model it was saved from (the same function and arguments)."
    message = f"{what} ({counts}; {'; '.join(parts)}). {advice}{hint}"
    return CheckpointMismatchError(message, missing, unexpected, mismatched)


def load_keras_weights(model, path, hint="", optional=()):
    """`model.load_weights(path)`, all or nothing, with a one-line message for a file that does not fit.

    Args:
        model: a built Keras model.
        path: a Keras weights file (`.weights.h5`, `.h5`) or a whole model's `.keras`
            archive (its weights are loaded if they fit the model).
        hint: appended to the message of a mismatch, e.g. the arguments to check.
        optional: name prefixes of arrays the file may hold and the model lack, e.g.
            `(CLASSIFIER_ARRAYS,)` for a model without its classifier.

    Raises:
        CheckpointMismatchError: the file is of another architecture (its message gives
            the counts and the first difference, never array values).
        ValueError: Keras could not load it for another reason (its first line).

    Example:
        >>> model = SKNet26(weights=None)
        >>> load_keras_weights(model, "sknet26.weights.h5")
    """
    path = os.fspath(path)
    # Keras warns about what it skipped; a mismatch is told below in one line instead.
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
            error = None
        except Exception as caught:  # Keras raises several types for mismatches
            error = caught
    stored = stored_arrays(path)
    # Keras loads a file holding more than the model without a word: count to see it.
    optional = tuple(optional)
    counted = None if stored is None else sum(not name.startswith(optional) for name in stored)
    if stored is not None and (error is not None or counted != len(model.weights)):
        difference = _difference(path, model, stored, _model_arrays(model), hint, optional)
        if difference is not None:
            raise difference from None
    if error is not None:
        raise ValueError(
            f"Could not load the weights file {path!r} into model {model.name!r}: {_first_line(error)}{hint}"
        ) from None
    for warning in caught_warnings:  # a file that fits: Keras' warnings are the user's to see
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
