"""`weights="imagenet"`: fetch a registered checkpoint once, verify, convert, cache.

Cache layout, under `$KERAS_HOME/models/keras_sknet/` (`~/.keras` by default):

    skresnext50_32x4d.ra_in1k-main.safetensors      the checkpoint as fetched
    sknet50-skresnext50_32x4d.ra_in1k.weights.h5    the converted Keras weights
    sknet50-skresnext50_32x4d.ra_in1k.json          what was fetched, from where, sha256s

Every file is written under a temporary name and renamed into place, so an
interrupted download or conversion never leaves a half-written file that a
later call would trust. A checkpoint whose sha256 differs from the expected
one (the registry's, else the one recorded at the first download) is deleted.
"""

import datetime
import json
import os
import shutil
import socket
import tempfile

import keras

from keras_sknet.utils.files import write_json_atomically
from keras_sknet.weights.checkpoint import read_checkpoint, sha256_of
from keras_sknet.weights.registry import model_function, pretrained_config
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


def _cached_weights_are_valid(config, weights_path, metadata):
    return (
        os.path.isfile(weights_path)
        and metadata.get("timm_name") == config.timm_name
        and metadata.get("revision") == config.revision
        and metadata.get("weights_sha256") == sha256_of(weights_path)
    )


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


def pretrained_weights_path(model, cache_root=None, force_download=False):
    """The Keras weights file of a model's public checkpoint, fetched and converted once.

    On first use: downloads the registered timm checkpoint with
    `keras.utils.get_file`, checks its sha256 (when one is known), converts it
    into a freshly built model (which verifies every tensor name and shape),
    and saves the Keras weights file and a metadata JSON next to it. Later
    calls return the cached file after checking it against its recorded
    sha256.

    Args:
        model: the model function name, e.g. `"SKNet50"` (see
            `keras_sknet.weights.PRETRAINED`), or the model function itself.
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
        >>> path = pretrained_weights_path("SKNet50")
        >>> model = SKNet50(weights=path)
    """
    config = pretrained_config(model)
    directory = cache_dir(cache_root)
    checkpoint_path, weights_path, metadata_path = _paths(config, directory)
    metadata = _read_json(metadata_path)
    if metadata.get("revision") != config.revision or metadata.get("timm_name") != config.timm_name:
        metadata = {}
    if not force_download and _cached_weights_are_valid(config, weights_path, metadata):
        return weights_path

    # The hash to hold the checkpoint to: the registry's, else the one recorded at the first download.
    expected = config.sha256 or metadata.get("checkpoint_sha256")
    work_dir = tempfile.mkdtemp(dir=directory, prefix=".download-")
    try:
        source, digest = None, None
        if os.path.isfile(checkpoint_path) and not force_download:
            digest = sha256_of(checkpoint_path)
            if expected is None or digest == expected:
                source = checkpoint_path
            else:
                os.remove(checkpoint_path)  # stale or corrupted: fetch again
        if source is None:
            source, digest = _download(config, checkpoint_path, expected, work_dir)

        build = model if callable(model) else model_function(config.model)
        net = build(weights=None)
        try:
            load_timm_state_dict(net, read_checkpoint(source), source=f"The download of {config.url}")
        except (CheckpointMismatchError, ValueError):
            if source != checkpoint_path:
                os.remove(source)
            raise
        tmp_weights = os.path.join(work_dir, "converted.weights.h5")
        net.save_weights(tmp_weights)
        if source != checkpoint_path:
            os.replace(source, checkpoint_path)
        os.replace(tmp_weights, weights_path)
        write_json_atomically(
            metadata_path,
            {
                "model": config.model,
                "timm_name": config.timm_name,
                "url": config.url,
                "revision": config.revision,
                "checkpoint_file": os.path.basename(checkpoint_path),
                "checkpoint_sha256": digest,
                "checkpoint_sha256_source": "registry" if config.sha256 else "recorded at first download",
                "weights_sha256": sha256_of(weights_path),
                "converted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "keras_sknet_version": _version(),
            },
            indent=2,
            sort_keys=True,
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return weights_path


def _version():
    from keras_sknet.version import __version__

    return __version__
