"""keras-hub's image classification task for `SKNetBackbone`: converter, preprocessor, classifier.

Reference: keras-hub's `ImageConverter`, `ImageClassifierPreprocessor` and
`ImageClassifier`; the normalisation is `keras_sknet.applications.preprocess_input`'s.
"""

import keras
from keras_hub.layers import ImageConverter
from keras_hub.models import ImageClassifier, ImageClassifierPreprocessor

from keras_sknet.hub.backbone import SKNetBackbone
from keras_sknet.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD

# preprocess_input as keras-hub's `x * scale + offset` on [0, 255] RGB: (x / 255 - mean) / std.
DEFAULT_SCALE = tuple(1.0 / (255.0 * s) for s in IMAGENET_STD)
DEFAULT_OFFSET = tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKNetImageConverter(ImageConverter):
    """Resizes [0, 255] RGB images and applies `preprocess_input`'s ImageNet mean/std.

    Args:
        image_size: `(height, width)` to resize to, or None to keep the size.
        scale, offset: per-channel `x * scale + offset`; default
            `preprocess_input` (`mode="torch"`).
        **kwargs: the rest of keras-hub's `ImageConverter` (`interpolation`,
            `crop_to_aspect_ratio`, ...).

    Example:
        >>> converter = SKNetImageConverter(image_size=(224, 224))
        >>> converter(np.full((1, 256, 256, 3), 255.0))[0, 0, 0]   # preprocess_input(255)
    """

    backbone_cls = SKNetBackbone

    def __init__(self, image_size=None, scale=DEFAULT_SCALE, offset=DEFAULT_OFFSET, **kwargs):
        super().__init__(image_size=image_size, scale=list(scale), offset=list(offset), **kwargs)


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
