"""`weights="imagenet"`: fetch a model's public checkpoint once, verify, convert, cache.

Cache layout, under `$KERAS_HOME/models/keras_sknet/` (`~/.keras` by default):

    skresnext50_32x4d.ra_in1k-main.safetensors      the checkpoint as fetched
    sknet50-skresnext50_32x4d.ra_in1k.weights.h5    the converted Keras weights
    sknet50-skresnext50_32x4d.ra_in1k.json          what was fetched, from where, sha256s

Every file is written under a temporary name and renamed into place, so an
interrupted download or conversion never leaves a half-written file that a
later call would trust. A checkpoint whose sha256 differs from the expected
one (the registry's, else the one recorded at the first download) is deleted.
A cached file's sha256 is computed again only when its size or modification
time differs from the ones recorded beside it: a 110 MB file is not read
through on every `weights="imagenet"`, and a file changed on disk is still
noticed (and rebuilt from the checkpoint).
"""

import contextlib
import datetime
import json
import os
import shutil
import socket
import tempfile

import keras

from keras_sknet.utils.files import atomic_path, write_json_atomically
from keras_sknet.weights.checkpoint import read_checkpoint, sha256_of
from keras_sknet.weights.registry import pretrained_config
from keras_sknet.weights.timm_converter import CheckpointMismatchError, load_timm_state_dict

CACHE_SUBDIR = os.path.join("models", "keras_sknet")
DOWNLOAD_TIMEOUT_S = 60  # per socket operation (connect, each read), not for the whole download


def cache_dir(root=None):
    """keras_sknet's download directory: `<root or $KERAS_HOME or ~/.keras>/models/keras_sknet`."""
    if root is None:
        root = os.environ.get("KERAS_HOME")
    if root is None:
        home = os.path.expanduser("~")
        root = os.path.join(home if os.access(home, os.W_OK) else tempfile.gettempdir(), ".keras")
    path = os.path.join(os.path.expanduser(root), CACHE_SUBDIR)
    os.makedirs(path, exist_ok=True)
    return path


def _paths(config, directory):
    stem = f"{config.model.lower()}-{config.timm_name}"
    checkpoint = f"{config.timm_name}-{config.revision}{os.path.splitext(config.filename)[1]}"
    return (
        os.path.join(directory, checkpoint),
        os.path.join(directory, f"{stem}.weights.h5"),
        os.path.join(directory, f"{stem}.json"),
    )


def _read_json(path):
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _stat(path):
    status = os.stat(path)
    return [status.st_size, status.st_mtime_ns]


def _verified(path, metadata, key):
    """The sha256 of a cached file if it is `metadata[key + "_sha256"]`, else None.

    The file is hashed only when its size or mtime differs from the recorded ones; when the
    hash still matches, the new size and mtime are recorded (in `metadata`, written by the caller).
    """
    expected = metadata.get(f"{key}_sha256")
    if expected is None or not os.path.isfile(path):
        return None
    stat = _stat(path)
    if metadata.get(f"{key}_stat") == stat:
        return expected
    if sha256_of(path) != expected:
        return None
    metadata[f"{key}_stat"] = stat
    return expected


def _download(config, target, expected_sha256, work_dir):
    """Fetches the checkpoint into `work_dir` with `keras.utils.get_file`; checks its sha256."""
    name = os.path.basename(target)
    # get_file has no timeout: without one, a silently dropped connection would hang for ever.
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path = keras.utils.get_file(name, config.url, cache_dir=work_dir, cache_subdir="")
    except Exception as error:  # get_file wraps HTTP/URL errors in a bare Exception
        raise ConnectionError(
            f"Could not download the {config.model} weights ({config.timm_name}) from {config.url}: "
            f"{error}. Without network access, fetch '{config.filename}' from {config.page} on "
            f"another machine and pass the file: {config.model}(weights='/path/to/{config.filename}'), "
            f"or convert it once: python -m keras_sknet.weights convert /path/to/{config.filename} "
            f"--model {config.model} --output {config.model.lower()}.weights.h5"
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    digest = sha256_of(path)
    if expected_sha256 is not None and digest != expected_sha256:
        os.remove(path)
        raise ValueError(
            f"The download of {config.url} has sha256 {digest}, expected {expected_sha256}; "
            "the file was discarded. Try again; if it persists the file on the server changed."
        )
    return path, digest


class CacheEntry:
    """A model's public checkpoint in the cache, while one model is built from it (see `pretrained`).

    Attributes:
        config: the `PretrainedConfig`.
        weights_path: the whole cached Keras weights file, or None: then
            `state_dict` holds the checkpoint, for `convert`.
    """

    def __init__(self, config, directory, metadata):
        self.config = config
        self.checkpoint_path, self._weights_path, self._metadata_path = _paths(config, directory)
        self.metadata = metadata
        self.weights_path = None
        self.state_dict = None
        self._downloaded = None  # the fetched file, until it is known to fit

    def _write_metadata(self):
        write_json_atomically(self._metadata_path, self.metadata, indent=2, sort_keys=True)

    def convert(self, model, save):
        """Converts the checkpoint into the built `model`; `save`: cache its weights from it.

        A download that does not fit the architecture is deleted, and nothing is cached.
        """
        try:
            load_timm_state_dict(model, self.state_dict, source=f"The download of {self.config.url}")
        except (CheckpointMismatchError, ValueError):
            if self._downloaded is not None:
                os.remove(self._downloaded)
            raise
        if self._downloaded is not None:  # it fits: keep it
            os.replace(self._downloaded, self.checkpoint_path)
            self._downloaded = None
            self.metadata["checkpoint_stat"] = _stat(self.checkpoint_path)
        if save:
            with atomic_path(self._weights_path, suffix=".weights.h5") as tmp:
                model.save_weights(tmp)
            self.metadata["weights_sha256"] = sha256_of(self._weights_path)
            self.metadata["weights_stat"] = _stat(self._weights_path)
            self.metadata["converted_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            )
            self.weights_path = self._weights_path
        self._write_metadata()


def _metadata(config, metadata_path):
    metadata = _read_json(metadata_path)
    if metadata.get("revision") != config.revision or metadata.get("timm_name") != config.timm_name:
        metadata = {}
    return metadata


@contextlib.contextmanager
def pretrained(model, cache_root=None, force_download=False):
    """A model's public checkpoint, fetched once: yields a `CacheEntry`.

    `entry.weights_path` is the cached Keras weights file when it is whole
    (its recorded sha256; hashed again only if its size or mtime changed).
    Else the checkpoint is taken from the cache (if its sha256 still matches)
    or downloaded (`keras.utils.get_file`, its sha256 checked when one is
    known, else recorded: trust on first use), read, and left in
    `entry.state_dict` for `entry.convert(model, save)`.

    Args:
        model: the model function's name, e.g. `"SKNet50"` (see `PRETRAINED`).
        cache_root: the Keras home to cache under; default `$KERAS_HOME` or `~/.keras`.
        force_download: fetch and convert again even if cached.
    """
    config = pretrained_config(model)
    directory = cache_dir(cache_root)
    checkpoint_path, weights_path, metadata_path = _paths(config, directory)
    metadata = _metadata(config, metadata_path)
    entry = CacheEntry(config, directory, metadata)
    if not force_download and _verified(weights_path, metadata, "weights"):
        if metadata.get("weights_stat") != _read_json(metadata_path).get("weights_stat"):
            entry._write_metadata()  # the file was touched, not changed: hash it once, not every call
        entry.weights_path = weights_path
        yield entry
        return
    metadata.pop("weights_sha256", None)
    # The hash to hold the checkpoint to: the registry's, else the one recorded at the first download.
    expected = config.sha256 or metadata.get("checkpoint_sha256")
    work_dir = tempfile.mkdtemp(dir=directory, prefix=".download-")
    try:
        source = digest = None
        if not force_download and os.path.isfile(checkpoint_path):
            cached = {**metadata, "checkpoint_sha256": expected} if expected else {}
            digest = (
                _verified(checkpoint_path, cached, "checkpoint") if expected else sha256_of(checkpoint_path)
            )
            if digest is not None:
                source = checkpoint_path
                metadata["checkpoint_stat"] = _stat(checkpoint_path)
            else:
                os.remove(checkpoint_path)  # stale or corrupted: fetch again
        if source is None:
            source, digest = _download(config, checkpoint_path, expected, work_dir)
            entry._downloaded = source
        try:
            entry.state_dict = read_checkpoint(source)
        except ValueError:
            if entry._downloaded is not None:
                os.remove(source)
            raise
        metadata.update(
            {
                "model": config.model,
                "timm_name": config.timm_name,
                "url": config.url,
                "revision": config.revision,
                "checkpoint_file": os.path.basename(checkpoint_path),
                "checkpoint_sha256": digest,
                "checkpoint_sha256_source": "registry" if config.sha256 else "recorded at first download",
                "keras_sknet_version": _version(),
            }
        )
        yield entry
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def pretrained_weights_path(model, cache_root=None, force_download=False):
    """The Keras weights file of a model's public checkpoint, fetched and converted once.

    On first use: downloads the registered timm checkpoint, checks its sha256
    (when one is known), converts it into the model (which verifies every
    tensor name and shape), and saves the Keras weights file and a metadata
    JSON next to it. Later calls return the cached file; its sha256 is
    checked again when its size or mtime changed.

    Args:
        model: the model function, e.g. `keras_sknet.applications.SKNet50`
            (see `keras_sknet.weights.PRETRAINED`); it builds the model the
            checkpoint is converted into.
        cache_root: the Keras home to cache under; default `$KERAS_HOME` or
            `~/.keras`.
        force_download: fetch and convert again even if cached.

    Returns:
        The path of the `.weights.h5` file, for an `include_top=True`,
        1000-class model (a headless model loads it too).

    Raises:
        ConnectionError: the checkpoint could not be downloaded (the message
            says how to pass a local file instead).
        ValueError: the download has the wrong sha256 or does not fit the
            architecture; it is discarded.

    Example:
        >>> path = pretrained_weights_path(SKNet50)
        >>> model = SKNet50(weights=path)
    """
    if not callable(model):
        raise ValueError(
            "pretrained_weights_path builds the model the checkpoint is converted into: pass the model "
            f"function, e.g. pretrained_weights_path(SKNet50). Received: model={model!r}"
        )
    with pretrained(model.__name__, cache_root, force_download) as entry:
        if entry.weights_path is None:
            entry.convert(model(weights=None), save=True)
        return entry.weights_path


def _version():
    from keras_sknet.version import __version__

    return __version__
