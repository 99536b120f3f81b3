"""Reading timm checkpoints: `.safetensors` with NumPy, PyTorch files safely.

`.safetensors` needs nothing beyond NumPy. PyTorch files (`.pth`, `.pt`,
`.bin`, `.ckpt`) are read with `torch.load(..., weights_only=True)`, which only
rebuilds tensors and plain containers and refuses to run code stored in the
pickle; they need PyTorch (`pip install keras-sknet[interop]`).
"""

import hashlib
import os
import zipfile

import numpy as np

from keras_sknet.weights.safetensors_io import MAX_HEADER_BYTES, load_safetensors

KERAS_ARCHIVE_SUFFIX = ".keras"
KERAS_SUFFIXES = (".h5", ".hdf5", KERAS_ARCHIVE_SUFFIX)
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
CAFFE_SUFFIX = ".caffemodel"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"  # the weights inside a .keras archive
# What `weights=` and the converter accept, for error messages (one list, one place).
ACCEPTED_FILES = (
    "a Keras weights file (.weights.h5, or a whole model's .keras), a timm checkpoint (.safetensors, or "
    f"a PyTorch state dict: {', '.join(TORCH_SUFFIXES)}) or an official Caffe SKNet model ({CAFFE_SUFFIX})"
)
# What describe_contents says of a file.
EMPTY = "an empty file"
HDF5 = "an HDF5 file (Keras weights)"
KERAS_ARCHIVE = "a Keras model archive (.keras: a whole saved model)"
TORCH_ZIP = "a PyTorch checkpoint (zip)"
PICKLE = "a Python pickle (a PyTorch checkpoint?)"
SAFETENSORS = "a .safetensors file"
TRUNCATED_ZIP = "the start of a zip archive without its end (truncated)"
ZIP = "a zip archive"
TEXT = "text"
# How torch.load / pickle say that a file ends early.
_TRUNCATION_SIGNS = ("EOF", "truncated", "Ran out of input")
# Training checkpoints wrap the weights: {"state_dict": {...}, "optimizer": ...}.
_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


def sha256_of(path, chunk_size=1 << 20):
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_caffemodel_path(path):
    """Whether `weights` names a Caffe model (by its `.caffemodel` suffix, as Caffe writes them)."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(CAFFE_SUFFIX)


def describe_contents(path):
    """What a file's first bytes say it is, in a few words, or None if they say nothing known.

    Used to tell a user what a file holds when its name promises something else.

    Args:
        path: an existing file.

    Returns:
        e.g. `"an HDF5 file (Keras weights)"`, `"a Keras model archive (.keras)"`,
        `"a PyTorch checkpoint (zip)"`, `"a .safetensors file"`, `"text"`, `"an empty file"`.
    """
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return EMPTY
    if head.startswith(_HDF5_MAGIC):
        return HDF5
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return TRUNCATED_ZIP
        if KERAS_ARCHIVE_WEIGHTS in names:
            return KERAS_ARCHIVE
        if any(name.endswith("data.pkl") for name in names):
            return TORCH_ZIP
        return ZIP
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return PICKLE
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= MAX_HEADER_BYTES:
        return SAFETENSORS
    text = head.decode("utf-8", "ignore")
    if len(text) >= len(head) - 3 and all(c.isprintable() or c in "\t\r\n" for c in text):
        return TEXT
    return None


def detect_format(path):
    """Tells a Keras weights file from a timm checkpoint or a Caffe model, from its name and first bytes.

    Cheap (it reads a few bytes; a zip archive's directory), so it runs before any model is
    built: an empty file, a truncated zip archive, or a file whose contents are not what its
    name says is refused here, with a message that says what the file holds.

    Args:
        path: an existing file.

    Returns:
        `"keras"` (`.weights.h5` / `.keras`), `"safetensors"`, `"torch"` or
        `"caffe"` (`.caffemodel`, the official SKNet release).

    Raises:
        FileNotFoundError: no such file. IsADirectoryError: a folder.
        ValueError: the file is empty, truncated, or none of these.

    Example:
        >>> detect_format("model.safetensors")
        'safetensors'
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder, not a weights file. Accepted: {ACCEPTED_FILES}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such weights file: {path!r}. Accepted: {ACCEPTED_FILES}.")
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"{path!r} is empty (0 bytes): an interrupted download or copy?")
    contents = describe_contents(path)
    lower = path.lower()
    by_contents = {
        HDF5: "keras",
        KERAS_ARCHIVE: "keras",
        SAFETENSORS: "safetensors",
        TORCH_ZIP: "torch",
        PICKLE: "torch",
    }
    # `expected`: what the name promises; None where only a known other format is refused
    # (the format's own reader explains the rest: read_caffemodel, read_header).
    if lower.endswith(CAFFE_SUFFIX):
        fmt, kind, expected = "caffe", "a Caffe model", None
    elif lower.endswith(KERAS_ARCHIVE_SUFFIX):
        fmt, kind, expected = "keras", "a Keras model archive", (KERAS_ARCHIVE,)
    elif lower.endswith(KERAS_SUFFIXES):
        fmt, kind, expected = "keras", "a Keras weights file", (HDF5,)
    elif lower.endswith(".safetensors"):
        fmt, kind, expected = "safetensors", "a .safetensors file", None
    elif lower.endswith(TORCH_SUFFIXES):
        fmt, kind, expected = "torch", "a PyTorch checkpoint", (TORCH_ZIP, PICKLE)
    else:  # a name that says nothing: the contents decide
        fmt = by_contents.get(contents)
        if fmt is None:
            shown = f" (it holds {contents})" if contents else ""
            raise ValueError(f"{path!r} is not a recognised weights file{shown}. Accepted: {ACCEPTED_FILES}.")
        kind, expected = contents, (contents,)
    if contents == TRUNCATED_ZIP:
        raise ValueError(
            f"{path!r} is truncated: a zip archive of {size} bytes without its end (its central "
            "directory); an incomplete download or copy?"
        )
    if by_contents.get(contents, fmt) != fmt or (expected is not None and contents not in expected):
        # Named as one format, holding another (or nothing we know).
        raise ValueError(
            f"{path!r} is not {kind}: it holds {contents or 'data of no known weights format'}. "
            f"Accepted: {ACCEPTED_FILES}."
        )
    return fmt


def _load_torch(path):
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading the PyTorch file {path!r} needs PyTorch: `pip install keras-sknet[interop]`, "
            "or convert it to .safetensors first."
        ) from error
    try:
        # weights_only=True: tensors and containers only, no code from the file is run.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated pickle, bad pickle, forbidden globals, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if any(sign in reason for sign in _TRUNCATION_SIGNS):
            raise ValueError(
                f"{path!r} is truncated: the PyTorch checkpoint ends early ({reason}); an incomplete "
                "download or copy?"
            ) from error
        raise ValueError(f"Could not read the PyTorch checkpoint {path!r}: {reason}") from error
    if isinstance(state, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} does not hold a state dict (found a {type(state).__name__})")
    arrays = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                value = value.float()
            arrays[str(name)] = value.numpy()
    return arrays


def read_checkpoint(path):
    """Reads a timm checkpoint into NumPy arrays, keyed as timm's `state_dict()`.

    Args:
        path: a `.safetensors` file or a PyTorch state dict (also a training
            checkpoint holding one under "state_dict", "model", ...).
            DataParallel's "module." prefixes are removed.

    Returns:
        `{name: np.ndarray}`.

    Raises:
        ValueError: a truncated, corrupted or foreign file.

    Example:
        >>> state = read_checkpoint("model.safetensors")
        >>> state["fc.weight"].shape
        (1000, 2048)
    """
    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt in ("keras", "caffe"):
        raise ValueError(
            f"{path!r} is a {'Keras weights file' if fmt == 'keras' else 'Caffe model'}, not a timm checkpoint"
        )
    arrays = load_safetensors(path) if fmt == "safetensors" else _load_torch(path)
    if arrays and all(name.startswith("module.") for name in arrays):
        arrays = {name[len("module.") :]: value for name, value in arrays.items()}
    return {name: np.asarray(value) for name, value in arrays.items()}
