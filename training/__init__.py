"""Training for keras-sknet: input pipelines (`training.data`), recipes and the trainer.

Run from the repository root (`python -m training...`); not installed with the library.
"""

# Before anything imports TensorFlow: keras_sknet turns its oneDNN kernels on unless
# TF_ENABLE_ONEDNN_OPTS says otherwise (keras_sknet.platform.prefer_onednn). Every
# `python -m training.X` entry point runs this first.
import keras_sknet  # noqa: E402,F401
