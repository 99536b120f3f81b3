"""Model functions with the `keras.applications` API.

ImageNet (224): `SKNet26`, `SKNet50`, `SKNet101` and the baselines `ResNeXt50`,
`ResNeXt101`, `SEResNeXt50`, `SEResNeXt101`. CIFAR (32): `SKNet29`,
`ResNeXt29`, `SEResNeXt29`. Mobile: `ShuffleNetV2`, `ShuffleNetV2SE`,
`ShuffleNetV2SK`. `SKNet()` is the family builder behind the bottleneck
networks (the ablations of Tables 6 and 7 are its arguments). Basic-block SK
nets (timm's, with public weights): `SKResNet18`, `SKResNet34`, built by
`SKResNet()`. `feature_extractor(model)` turns any of them into a backbone
whose output is the dict of its pyramid levels `{"P1": ..., "P5": ...}`.
"""

from keras_sknet.applications.features import feature_extractor, pyramid_layer_names
from keras_sknet.applications.imagenet_utils import decode_predictions, preprocess_input
from keras_sknet.applications.shufflenet_v2 import ShuffleNetV2, ShuffleNetV2SE, ShuffleNetV2SK
from keras_sknet.applications.sknet import (
    MODEL_CONFIGS,
    ResNeXt29,
    ResNeXt50,
    ResNeXt101,
    SEResNeXt29,
    SEResNeXt50,
    SEResNeXt101,
    SKNet,
    SKNet26,
    SKNet29,
    SKNet50,
    SKNet101,
)
from keras_sknet.applications.skresnet import SKResNet, SKResNet18, SKResNet34

__all__ = [
    "MODEL_CONFIGS",
    "ResNeXt29",
    "ResNeXt50",
    "ResNeXt101",
    "SEResNeXt29",
    "SEResNeXt50",
    "SEResNeXt101",
    "SKNet",
    "SKNet26",
    "SKNet29",
    "SKNet50",
    "SKNet101",
    "SKResNet",
    "SKResNet18",
    "SKResNet34",
    "ShuffleNetV2",
    "ShuffleNetV2SE",
    "ShuffleNetV2SK",
    "decode_predictions",
    "feature_extractor",
    "preprocess_input",
    "pyramid_layer_names",
]
