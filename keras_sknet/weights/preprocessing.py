"""The evaluation transform that goes with the pretrained weights.

timm evaluates its ImageNet checkpoints with: resize the shorter side to
`floor(input_size / crop_pct)` (bicubic for the registered checkpoints),
centre-crop `input_size`, scale to [0, 1], normalise with the ImageNet mean
and std. `eval_transform` does the same with `tf.image`, and ends in
`keras_sknet.applications.preprocess_input`, so its output goes straight into
the model. It runs eagerly or inside `tf.data` pipelines, and needs TensorFlow
installed whichever Keras backend runs the model.

For the official Caffe weights pass their `CaffeWeights`
(`caffe_weights_config("SKNet50")`): the images then end BGR with the Caffe
mean subtracted (`preprocess_input(mode="caffe")`), or, with
`preprocessing="torch"`, RGB mean/std.
"""

import math

from keras_sknet.utils.backend import import_tensorflow
from keras_sknet.utils.imagenet import PREPROCESSING_MODES, preprocess_input
from keras_sknet.weights.registry import CaffeWeights, PretrainedConfig, pretrained_config

INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "area")


def eval_transform(
    images, model="SKNet50", input_size=None, crop_pct=None, interpolation=None, preprocessing=None
):
    """Resize, centre-crop and normalise images as the published accuracy was measured.

    Args:
        images: RGB, channels last, values in [0, 255]: one image
            `(H, W, 3)` or a batch `(N, H, W, 3)`, any integer or float dtype.
        model: the model whose weights the images are for (a name such as
            `"SKNet50"`, a `PretrainedConfig`, or the `CaffeWeights` of the
            official Caffe weights); it supplies the defaults.
        input_size: output height = width (default: the weights' 224).
        crop_pct: fraction of the resized image kept by the centre crop
            (default: the weights' 0.875, i.e. resize to 256, crop 224).
        interpolation: `"bicubic"`, `"bilinear"`, `"nearest"` or `"area"`
            (default: the weights', bicubic for the registered ones).
        preprocessing: `preprocess_input` mode, `"torch"` (RGB mean/std) or
            `"caffe"` (BGR minus the Caffe mean); default: the weights'.

    Returns:
        float32 tensor `(input_size, input_size, 3)` or
        `(N, input_size, input_size, 3)`, normalised by `preprocess_input`.

    Example:
        >>> image = tf.io.decode_jpeg(tf.io.read_file("dog.jpg"), channels=3)
        >>> x = eval_transform(image, "SKNet50")            # (224, 224, 3)
        >>> probs = SKNet50(weights="imagenet")(x[None])
    """
    tf = import_tensorflow("eval_transform (tf.image resizing, as the weights were evaluated)")
    config = model if isinstance(model, (PretrainedConfig, CaffeWeights)) else pretrained_config(model)
    mode = preprocessing or getattr(config, "preprocessing", "torch")
    if mode not in PREPROCESSING_MODES:
        raise ValueError(
            f"`preprocessing` must be one of {PREPROCESSING_MODES}. Received: preprocessing={preprocessing!r}"
        )
    input_size = int(input_size or config.input_size)
    crop_pct = float(crop_pct or config.crop_pct)
    interpolation = interpolation or config.interpolation
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"`interpolation` must be one of {INTERPOLATIONS}. Received: interpolation={interpolation!r}"
        )
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"`crop_pct` must be in (0, 1]. Received: crop_pct={crop_pct!r}")
    images = tf.convert_to_tensor(images)
    if images.shape.rank not in (3, 4) or images.shape[-1] != 3:
        raise ValueError(
            f"eval_transform expects RGB images (H, W, 3) or (N, H, W, 3). Received shape {images.shape}"
        )
    single = images.shape.rank == 3
    if single:
        images = images[None]
    images = tf.cast(images, tf.float32)

    # Shorter side -> floor(size / crop_pct), the other side in proportion (as torchvision's Resize).
    scale_size = math.floor(input_size / crop_pct)
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    long_size = tf.cast(
        tf.cast(scale_size, tf.float64) * tf.cast(long, tf.float64) / tf.cast(short, tf.float64), tf.int32
    )
    new_height = tf.where(height <= width, scale_size, long_size)
    new_width = tf.where(height <= width, long_size, scale_size)
    images = tf.image.resize(images, tf.stack([new_height, new_width]), method=interpolation, antialias=True)
    # PIL, which timm's pipeline resizes with, rounds and clips to uint8.
    images = tf.clip_by_value(tf.round(images), 0.0, 255.0)

    # Centre crop, rounding the offsets as torchvision's CenterCrop.
    top = tf.cast(tf.round(tf.cast(new_height - input_size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_width - input_size, tf.float32) / 2.0), tf.int32)
    images = images[:, top : top + input_size, left : left + input_size, :]
    images = tf.ensure_shape(images, [None, input_size, input_size, 3])
    images = preprocess_input(images, mode=mode)
    return images[0] if single else images
