"""keras-sknet: Selective Kernel Networks (Li et al., CVPR 2019) for Keras 3.

from keras_sknet.applications import SKNet50, preprocess_input
from keras_sknet.layers import SKConv, SKBlock

The layers, the model zoo, `weights=`, the counts and the analysis run on
Keras' TensorFlow, JAX and PyTorch backends (`KERAS_BACKEND`); the exporters
(`keras_sknet.export`) and the trainer need TensorFlow.
"""

import importlib
import importlib.util

from keras_sknet import platform
from keras_sknet._keras_config import configured_backend

# Before Keras imports TensorFlow: on AVX-512 CPUs oneDNN runs the SK models 1.6-2.2x
# faster than Eigen (see keras_sknet.platform). Setting TF_ENABLE_ONEDNN_OPTS decides instead.
platform.prefer_onednn()

# Asked without importing Keras, which would import TensorFlow (or fail without it) at once:
# KERAS_BACKEND, else keras.json in $KERAS_HOME or ~/.keras, else TensorFlow, as Keras decides.
if configured_backend() == "tensorflow" and importlib.util.find_spec("tensorflow") is None:
    raise ImportError(
        "Keras' backend is TensorFlow (KERAS_BACKEND, or keras.json in $KERAS_HOME or ~/.keras, "
        "says so or is unset) and TensorFlow is not installed. Install it with "
        "`pip install keras-sknet[cpu]` (CPU wheel) or `pip install keras-sknet[gpu]`, or run "
        "keras_sknet on JAX or PyTorch: KERAS_BACKEND=jax (`pip install keras-sknet[jax]`) or "
        'KERAS_BACKEND=torch (`pip install keras-sknet[torch]`), or "backend" in keras.json.'
    )

from keras_sknet.utils import cli  # noqa: E402  (imports only the standard library)
from keras_sknet.version import __version__  # noqa: E402

__all__ = ["__version__", "applications", "layers", "platform", "utils", "weights"]

if cli.COMMAND_LINE:
    # `python -m keras_sknet...` or a keras-sknet-* script: the command imports its parts once its
    # arguments are checked; `keras_sknet.layers` etc. still import on first use (PEP 562).
    def __getattr__(name):
        if name in __all__:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(globals()) | set(__all__))

else:
    # Registers the layers (and the zoo's model functions), so that a user's
    # `import keras_sknet; keras.models.load_model("model.keras")` works.
    from keras_sknet import applications, layers, utils, weights  # noqa: F401
