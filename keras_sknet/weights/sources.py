"""One road for `weights=`: what a value names, and how it gets into the model.

Every model function's `weights` goes through two steps, and only these:

    source = resolve(weights, record)      # checked once, before any build or download
    with prepared(source, ...) as load:    # read (or fetch) before the model is built
        model = build()                    # once
        load(model)                        # and cached, for weights="imagenet"

`resolve` says what a value is: `"imagenet"` (a record's public checkpoint),
or a Keras weights file, a timm checkpoint or a Caffe model. A value it
cannot use is refused in one line that names it and what is accepted.
`prepared` reads the file (a checkpoint's classifier is checked against
`classes` before anything is built) and, for `"imagenet"`, takes the cached
Keras weights file if it is whole, else the cached or downloaded checkpoint,
which is converted into the model being built (no second model) and saved
into the cache from it. A user's own file is only read.
"""

import contextlib
import dataclasses
import difflib
import os

from keras_sknet.weights.checkpoint import ACCEPTED_FILES, detect_format
from keras_sknet.weights.download import pretrained

KINDS = ("imagenet", "keras", "timm", "caffe")


@dataclasses.dataclass(frozen=True)
class Source:
    """What a `weights=` value names.

    Attributes:
        kind: `"imagenet"`, `"keras"` (a `.weights.h5` or `.keras` file),
            `"timm"` (`.safetensors` or a PyTorch state dict) or `"caffe"`.
        path: the file, or None for `"imagenet"` (the cache decides).
        model: the model function whose checkpoint `"imagenet"` names.
    """

    kind: str
    path: str | None = None
    model: str | None = None

    def describe(self):
        return f"The checkpoint {self.path!r}" if self.kind == "timm" else f"The Caffe model {self.path!r}"


def accepted():
    """What `weights` takes, for messages."""
    return f"`weights` takes None (random initialization), 'imagenet' or the path to {ACCEPTED_FILES}"


def resolve(weights, record=None):
    """Checks a `weights=` value once and says what it names.

    Cheap: a file's first bytes (and a Keras file's directory), never its
    tensors, so it runs before any model is built or anything is downloaded.

    Args:
        weights: None, `"imagenet"` or a path (str or `os.PathLike`).
        record: the model's `ModelRecord`, for `"imagenet"`; None for a
            family builder (`SKNet(...)`), which has no checkpoint of its own.

    Returns:
        A `Source`, or None for `weights=None`.

    Raises:
        ValueError: in one line naming the value and what is accepted: not a
            str or path, a folder, a missing file, an unknown name
            ("imagnet": did you mean 'imagenet'?), "imagenet" for a model
            without a public checkpoint, an empty, truncated or misnamed file.
    """
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"{accepted()}. Received: weights={weights!r}")
    path = os.fsdecode(weights)
    if os.path.isdir(path):
        raise ValueError(f"weights={path!r} is a folder, not a file. {accepted()}.")
    if not os.path.isfile(path):
        if path == "imagenet":
            if record is not None and record.pretrained is not None:
                return Source("imagenet", model=record.name)
            from keras_sknet.weights.registry import PRETRAINED

            raise ValueError(
                "No pretrained ImageNet weights are available for this model "
                f"(models with weights='imagenet': {', '.join(sorted(PRETRAINED))}). "
                "Pass `weights=None` or the path to a weights file. "
                f"Received: weights={weights!r}"
            )
        if not os.path.splitext(path)[1] and os.sep not in path and "/" not in path:
            # A bare word is a name, not a file: "imagnet", "ImageNet", "pretrained".
            close = difflib.get_close_matches(path.lower(), ["imagenet"], n=1, cutoff=0.6)
            guess = " (did you mean 'imagenet'?)" if close else ""
            raise ValueError(
                f"Unknown weights name {path!r}{guess}, and no file has that name. "
                f"{accepted()}. Received: weights={path!r}"
            )
        raise ValueError(f"No such weights file: {path!r}. {accepted()}. Received: weights={path!r}")
    fmt = detect_format(path)
    if fmt == "keras":
        from keras_sknet.weights.keras_weights import check_keras_file

        check_keras_file(path)
        return Source("keras", path)
    return Source("caffe" if fmt == "caffe" else "timm", path)


def _classifier_classes(source, contents):
    """The classifier width of a read checkpoint or Caffe model, or None."""
    if source.kind == "timm":
        head = contents.get("fc.weight")
        return int(head.shape[0]) if head is not None and head.ndim == 2 else None
    from keras_sknet.weights.caffe_converter import CLASSIFIER

    head = contents.get(CLASSIFIER)
    return int(head[0].shape[-2]) if head and head[0].ndim >= 2 else None


def _read(source, include_top, classes):
    """Reads a timm checkpoint or a Caffe model; checks `classes` against its classifier."""
    if source.kind == "timm":
        from keras_sknet.weights.checkpoint import read_checkpoint

        contents, what = read_checkpoint(source.path), "checkpoint"
    else:
        from keras_sknet.weights.caffemodel import read_caffemodel

        contents, what = read_caffemodel(source.path), "Caffe model"
    found = _classifier_classes(source, contents)
    if include_top and found is not None and found != classes:
        raise ValueError(
            f"The {what} {source.path!r} has a classifier of {found} classes; with "
            f"`include_top=True`, `classes` should be {found} (or use include_top=False). "
            f"Received: classes={classes!r}"
        )
    return contents


def _load_converted(source, contents, model):
    if source.kind == "timm":
        from keras_sknet.weights.timm_converter import load_timm_state_dict

        load_timm_state_dict(model, contents, source=source.describe())
    else:
        from keras_sknet.weights.caffe_converter import load_caffe_blobs

        load_caffe_blobs(model, contents, source=source.describe())


def _load_keras(path, model, include_top, classes):
    from keras_sknet.weights.keras_weights import CLASSIFIER_ARRAYS, load_keras_weights

    if include_top:
        hint, optional = f" (This model: include_top=True, classes={classes}.)", ()
    else:  # a file with a classifier fits a model without one, as in keras.applications
        hint, optional = "", (CLASSIFIER_ARRAYS,)
    load_keras_weights(model, path, hint=hint, optional=optional)


@contextlib.contextmanager
def prepared(source, include_top=True, classes=1000, cacheable=True):
    """Gets what `source` names ready before the model is built; yields `load(model)`.

    Args:
        source: a `Source` (see `resolve`), or None (yields a `load` that does nothing).
        include_top, classes: the model's; a checkpoint's classifier is checked against them.
        cacheable: the model is the record's whole network (no layers of the
            user's around it), so that `"imagenet"` may cache its weights.

    Yields:
        `load(model)`: puts the weights into the built model (all or nothing).
        For `"imagenet"` without a whole cached Keras weights file, it
        converts the checkpoint into `model` and, for a 1000-class model
        with its classifier, saves the converted weights into the cache.
    """
    if source is None:
        yield lambda model: None
    elif source.kind == "keras":
        yield lambda model: _load_keras(source.path, model, include_top, classes)
    elif source.kind in ("timm", "caffe"):
        contents = _read(source, include_top, classes)
        yield lambda model: _load_converted(source, contents, model)
    else:
        with pretrained(source.model) as entry:
            if entry.weights_path is not None:
                yield lambda model: _load_keras(entry.weights_path, model, include_top, classes)
            else:
                full = cacheable and include_top and classes == entry.config.num_classes
                yield lambda model: entry.convert(model, save=full)
