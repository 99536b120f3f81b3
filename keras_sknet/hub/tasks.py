"""keras-hub's image classification task for the hub backbones: converters, preprocessors, classifiers.

Reference: keras-hub's `ImageConverter`, `ImageClassifierPreprocessor` and
`ImageClassifier`; the normalisation is `keras_sknet.applications.preprocess_input`'s
(`mode="torch"`, or `mode="caffe"` for the official Caffe weights), the
optional centre crop `keras_sknet.weights.eval_transform`'s (timm's evaluation).
"""

import math

import keras
import numpy as np
from keras import ops
from keras_hub.layers import ImageConverter
from keras_hub.models import ImageClassifier, ImageClassifierPreprocessor

from keras_sknet.hub.backbone import SKNetBackbone, SKResNetBackbone
from keras_sknet.utils.imagenet import CAFFE_BGR_MEAN, IMAGENET_MEAN, IMAGENET_STD

# preprocess_input as keras-hub's `x * scale + offset` on [0, 255] RGB: (x / 255 - mean) / std.
DEFAULT_SCALE = tuple(1.0 / (255.0 * s) for s in IMAGENET_STD)
DEFAULT_OFFSET = tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
# preprocess_input(mode="caffe"): BGR (channel_order="bgr"), minus the Caffe mean, no scaling.
CAFFE_SCALE = (1.0, 1.0, 1.0)
CAFFE_OFFSET = tuple(-m for m in CAFFE_BGR_MEAN)
CHANNEL_ORDERS = ("rgb", "bgr")


def in_tf_function():
    """Whether this runs in a TensorFlow graph (tf.data, tf.function): keras-hub's test, without its private module."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - keras-hub installs TensorFlow
        return False
    return not tf.executing_eagerly()


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKNetImageConverter(ImageConverter):
    """Resizes (optionally centre-crops) [0, 255] RGB images and normalises them as `preprocess_input`.

    Without `crop_pct` the images are resized to `image_size` as keras-hub's
    `ImageConverter` does. With `crop_pct` they go through the evaluation
    transform of the pretrained weights (timm's, `keras_sknet.weights.eval_transform`'s):
    the shorter side resized to `floor(image_size / crop_pct)` (the other in
    proportion; a non-square `image_size` resizes each side to
    `floor(side / crop_pct)`, as timm), rounded and clipped to [0, 255] as
    PIL's uint8 images are, then the centre `image_size` crop (offsets
    rounded as torchvision's `CenterCrop`). Then `channel_order="bgr"`
    reverses the channels, and `x * scale + offset` applies per channel.

    Args:
        image_size: `(height, width)` to resize to, or None to keep the size.
        scale, offset: per-channel `x * scale + offset` (in the output
            channel order); default `preprocess_input` (`mode="torch"`).
        crop_pct: None (plain resize) or the fraction of the resized image
            kept by the centre crop, in (0, 1] (timm's 0.875: 256 -> 224);
            needs `image_size`.
        channel_order: `"rgb"` (default) or `"bgr"` (the official Caffe
            weights: with `CAFFE_SCALE` and `CAFFE_OFFSET` this is
            `preprocess_input(mode="caffe")`).
        **kwargs: the rest of keras-hub's `ImageConverter` (`interpolation`,
            `antialias`, `crop_to_aspect_ratio`, ...).

    Example:
        >>> converter = SKNetImageConverter(image_size=(224, 224), crop_pct=0.875, antialias=True)
        >>> converter(np.full((1, 300, 400, 3), 255.0)).shape   # shorter side 256, centre 224
        TensorShape([1, 224, 224, 3])
    """

    backbone_cls = SKNetBackbone

    def __init__(
        self,
        image_size=None,
        scale=DEFAULT_SCALE,
        offset=DEFAULT_OFFSET,
        crop_pct=None,
        channel_order="rgb",
        **kwargs,
    ):
        if crop_pct is not None:
            if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1:
                raise ValueError(
                    f"`crop_pct` must be None or a number in (0, 1] (timm's 0.875). Received: crop_pct={crop_pct!r}"
                )
            if image_size is None:
                raise ValueError(
                    "`crop_pct` needs `image_size` (the crop's size, e.g. (224, 224)). "
                    f"Received: image_size=None, crop_pct={crop_pct!r}"
                )
            crop_pct = float(crop_pct)
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(
                f"`channel_order` must be one of {CHANNEL_ORDERS}. Received: channel_order={channel_order!r}"
            )
        super().__init__(
            image_size=image_size,
            scale=None if scale is None else list(scale),
            offset=None if offset is None else list(offset),
            **kwargs,
        )
        self.crop_pct = crop_pct
        self.channel_order = channel_order

    def _call_python(self, inputs):
        if self.crop_pct is None and self.channel_order == "rgb":
            return super()._call_python(inputs)
        if isinstance(inputs, dict):
            raise ValueError(
                "SKNetImageConverter with `crop_pct` or channel_order='bgr' takes images only, not a dict "
                f"(bounding boxes are not cropped with them). Received: a dict with keys {sorted(inputs)}"
            )
        graph = in_tf_function()
        if isinstance(inputs, (list, tuple)):
            inputs = np.array(inputs)
        x = inputs if graph else ops.convert_to_tensor(inputs)
        if self.crop_pct is not None:
            x = self._resize_and_centre_crop(x, graph)
        elif self.image_size is not None:
            x = self.resizing(x)
        if self.channel_order == "bgr":
            if graph:
                import tensorflow as tf

                x = tf.reverse(x, axis=[-1])
            else:
                x = ops.flip(x, axis=-1)
        if self.scale is not None:
            scale = self._expand_non_channel_dims(self.scale, x)
            x, scale = self._convert_types(x, scale, self.compute_dtype)
            x = x * scale
        if self.offset is not None:
            offset = self._expand_non_channel_dims(self.offset, x)
            x, offset = self._convert_types(x, offset, x.dtype)
            x = x + offset
        return x

    def _resize_and_centre_crop(self, images, graph):
        """timm's eval resize (shorter side to floor(size / crop_pct)) and centre crop, on [0, 255] images."""
        height, width = self.image_size
        shape = ops.shape(images)
        if len(shape) not in (3, 4) or shape[-1] != 3:
            raise ValueError(
                f"SKNetImageConverter expects RGB images (H, W, 3) or (N, H, W, 3). Received shape {tuple(shape)}"
            )
        in_h, in_w = shape[-3], shape[-2]
        if graph:
            import tensorflow as tf

            images = tf.cast(images, self.compute_dtype)
            dynamic = tf.shape(images)
            in_h, in_w = dynamic[-3], dynamic[-2]
        else:
            images = ops.cast(images, self.compute_dtype)
        if height == width:
            side = math.floor(height / self.crop_pct)
            if graph:
                short, long = tf.minimum(in_h, in_w), tf.maximum(in_h, in_w)
                long_side = tf.cast(
                    tf.cast(side, "float64") * tf.cast(long, "float64") / tf.cast(short, "float64"), "int32"
                )
                new_h = tf.where(in_h <= in_w, side, long_side)
                new_w = tf.where(in_h <= in_w, long_side, side)
            else:
                long_side = int(side * max(in_h, in_w) / min(in_h, in_w))
                new_h, new_w = (side, long_side) if in_h <= in_w else (long_side, side)
        else:
            new_h, new_w = math.floor(height / self.crop_pct), math.floor(width / self.crop_pct)
        options = dict(interpolation=self.interpolation, antialias=self.antialias)
        if graph:
            images = tf.image.resize(
                images, tf.stack([new_h, new_w]), method=self.interpolation, antialias=self.antialias
            )
            images = tf.clip_by_value(tf.round(images), 0.0, 255.0)
            top = tf.cast(tf.round(tf.cast(new_h - height, "float32") / 2.0), "int32")
            left = tf.cast(tf.round(tf.cast(new_w - width, "float32") / 2.0), "int32")
        else:
            images = ops.image.resize(images, (new_h, new_w), **options)
            images = ops.clip(ops.round(images), 0.0, 255.0)
            top, left = round((new_h - height) / 2.0), round((new_w - width) / 2.0)
        return images[..., top : top + height, left : left + width, :]

    def get_config(self):
        config = super().get_config()
        config.update(crop_pct=self.crop_pct, channel_order=self.channel_order)
        return config


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKNetImageClassifierPreprocessor(ImageClassifierPreprocessor):
    """keras-hub's image classification preprocessor with `SKNetImageConverter`."""

    backbone_cls = SKNetBackbone
    image_converter_cls = SKNetImageConverter


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKNetImageClassifier(ImageClassifier):
    """keras-hub's `ImageClassifier` (global average pooling, dense head) on `SKNetBackbone`.

    Same head as `keras_sknet.applications.SKNet(include_top=True)`: its
    `predictions` layer returns logits (keras-hub's default `activation=None`).

    Example:
        >>> import keras_sknet.hub
        >>> classifier = keras_hub.models.ImageClassifier.from_preset("presets/sknet50")
        >>> classifier.predict(images)   # [0, 255] RGB images
    """

    backbone_cls = SKNetBackbone
    preprocessor_cls = SKNetImageClassifierPreprocessor


# keras-hub's `from_preset` finds a task, preprocessor and converter by the class of the preset's
# backbone (`cls.backbone_cls == backbone class`), so each backbone class needs its own three.
@keras.saving.register_keras_serializable(package="keras_sknet")
class SKResNetImageConverter(SKNetImageConverter):
    """`SKNetImageConverter` for `SKResNetBackbone` presets (same arguments)."""

    backbone_cls = SKResNetBackbone


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKResNetImageClassifierPreprocessor(SKNetImageClassifierPreprocessor):
    """keras-hub's image classification preprocessor with `SKResNetImageConverter`."""

    backbone_cls = SKResNetBackbone
    image_converter_cls = SKResNetImageConverter


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKResNetImageClassifier(SKNetImageClassifier):
    """keras-hub's `ImageClassifier` on `SKResNetBackbone` (timm's skresnet18/34 head: logits).

    Example:
        >>> import keras_sknet.hub
        >>> classifier = keras_hub.models.ImageClassifier.from_preset("presets/skresnet18")
        >>> classifier.predict(images)   # [0, 255] RGB images
    """

    backbone_cls = SKResNetBackbone
    preprocessor_cls = SKResNetImageClassifierPreprocessor
