"""ImageNet normalisation: the input the models and their checkpoints expect.

The models carry no normalisation layer: feed them `preprocess_input(images)`,
RGB in [0, 255] scaled to [0, 1] and standardised with the ImageNet mean and
standard deviation (the statistics timm's and torchvision's checkpoints use).
Here, below the layers, because image loading (`keras_sknet.utils.images`) and
the pretrained weights' evaluation transform use it as well as the models;
`keras_sknet.applications.preprocess_input` is the same function.
"""

import keras
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Caffe's convention (SENet's Caffe models, the official SKNet release): BGR, 0-255, mean only.
CAFFE_BGR_MEAN = (104.0, 117.0, 123.0)
PREPROCESSING_MODES = ("torch", "caffe")


def preprocess_input(x, data_format=None, mode="torch"):
    """Scales RGB images in [0, 255] to ImageNet-standardised floats.

    `mode="torch"` (default): `(x / 255 - mean) / std` per channel, with the
    ImageNet statistics (Section 4.1: "mean channel subtraction"; the std
    division matches the public checkpoints). `mode="caffe"`: the channels
    reversed to BGR and `CAFFE_BGR_MEAN` (104, 117, 123) subtracted, no
    scaling (as SENet's Caffe models; the default for the official Caffe
    SKNet weights, whose preprocessing is not published).

    Args:
        x: images, channels last, `(..., 3)`: a NumPy array or a tensor.
        data_format: None or `"channels_last"` (the only layout supported).
        mode: `"torch"` or `"caffe"`, as `keras.applications` names them.

    Returns:
        float32 images of the same shape, NumPy in -> NumPy out.

    Example:
        >>> preprocess_input(np.full((1, 2, 2, 3), 255.0))[0, 0, 0]
        array([2.2489083, 2.4285717, 2.64     ], dtype=float32)
    """
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"`data_format` must be None or 'channels_last'. Received: data_format={data_format!r}"
        )
    if mode not in PREPROCESSING_MODES:
        raise ValueError(f"`mode` must be one of {PREPROCESSING_MODES}. Received: mode={mode!r}")
    shape = tuple(x.shape)
    if not shape or shape[-1] != 3:
        raise ValueError(f"preprocess_input expects RGB images with 3 channels last. Received shape {shape}")
    if mode == "caffe":
        mean = np.array(CAFFE_BGR_MEAN, dtype="float32")
        if isinstance(x, np.ndarray) or np.isscalar(x):
            return (np.asarray(x, dtype="float32")[..., ::-1] - mean).astype("float32")
        return keras.ops.subtract(keras.ops.flip(keras.ops.cast(x, "float32"), axis=-1), mean)
    mean = np.array(IMAGENET_MEAN, dtype="float32") * 255.0
    std = np.array(IMAGENET_STD, dtype="float32") * 255.0
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return ((np.asarray(x, dtype="float32") - mean) / std).astype("float32")
    # keras.ops puts the statistics beside x (a CUDA tensor cannot meet a NumPy array).
    x = keras.ops.cast(x, "float32")
    return keras.ops.divide(keras.ops.subtract(x, mean), std)
