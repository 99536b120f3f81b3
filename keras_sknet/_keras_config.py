"""Which backend Keras will run on, read the way Keras reads it, without importing Keras.

`import keras` imports its backend (TensorFlow by default) at once, so
`keras_sknet/__init__.py` cannot ask `keras.config.backend()` before it has
run `platform.prefer_onednn()` (which must come before TensorFlow's import),
nor to explain that TensorFlow is missing (Keras' own import would fail first).
This module imports nothing but the standard library.

Keras (keras/src/backend/config.py) decides, in order: `$KERAS_BACKEND` when
set and not empty; else the `"backend"` of `keras.json` in `$KERAS_HOME`, or
in `~/.keras` (`/tmp/.keras` when the home directory is not writable); else
TensorFlow. A keras.json that is not JSON counts as empty.
"""

import json
import os
import sys

DEFAULT_BACKEND = "tensorflow"


def keras_home(environ=None):
    """The directory Keras keeps `keras.json` in, as Keras computes it."""
    environ = os.environ if environ is None else environ
    if "KERAS_HOME" in environ:
        return environ["KERAS_HOME"]
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return os.path.join(base, ".keras")


def configured_backend(environ=None):
    """The name of the backend Keras runs on, or will run on once imported.

    Args:
        environ: the environment to read (default `os.environ`); when given,
            an already imported Keras is not asked.

    Returns:
        `"tensorflow"`, `"jax"`, `"torch"` or whatever else is configured.

    Example:
        >>> configured_backend({"KERAS_BACKEND": "jax"})
        'jax'
    """
    if environ is None:
        keras = sys.modules.get("keras")
        if keras is not None and hasattr(keras, "config"):
            return keras.config.backend()  # decided at Keras' import; nothing read later changes it
        environ = os.environ
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"]
    path = os.path.expanduser(os.path.join(keras_home(environ), "keras.json"))
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return DEFAULT_BACKEND
    backend = config.get("backend", DEFAULT_BACKEND) if isinstance(config, dict) else DEFAULT_BACKEND
    return backend or DEFAULT_BACKEND
