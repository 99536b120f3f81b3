"""keras-hub presets of the SKNet family, written from any `weights=` source.

A preset is the folder keras-hub's `from_preset(dir)` reads: `config.json`
(the backbone), `model.weights.h5`, `task.json` and `task.weights.h5` (the
classifier), `preprocessor.json` (the image converter) and `metadata.json`
(with a `keras_sknet` entry saying which model and weights it holds).
"""

import json
import os
import shutil
import tempfile

from keras_sknet import applications
from keras_sknet.applications.sknet import MODEL_CONFIGS
from keras_sknet.export.common import replace_directory
from keras_sknet.hub.backbone import SKNetBackbone
from keras_sknet.hub.tasks import SKNetImageClassifier, SKNetImageClassifierPreprocessor, SKNetImageConverter
from keras_sknet.utils.validation import check_positive_int
from keras_sknet.version import __version__
from keras_sknet.weights.checkpoint import is_caffemodel_path
from keras_sknet.weights.registry import PRETRAINED

# The ImageNet bottleneck nets SKNetBackbone builds (the SKNet() family with the ImageNet stem).
HUB_MODELS = ("SKNet26", "SKNet50", "SKNet101", "ResNeXt50", "ResNeXt101", "SEResNeXt50", "SEResNeXt101")
_HEAD_LAYERS = ("avg_pool", "predictions")


def backbone_arguments(model_name):
    """The `SKNetBackbone` arguments of a zoo model, e.g. `backbone_arguments("SKNet50")`."""
    if model_name not in HUB_MODELS:
        raise ValueError(
            f"keras_sknet.hub builds the ImageNet bottleneck nets of SKNet(): `model_name` must be one "
            f"of {HUB_MODELS}. Received: model_name={model_name!r}"
        )
    config = dict(MODEL_CONFIGS[model_name.lower()])
    config.pop("stem")
    return config


def preset_from_weights(model_name, weights, directory, classes=1000, image_size=None):
    """Writes a keras-hub preset of a zoo model with the given weights.

    `SKNetImageClassifier.from_preset(directory)` (or keras-hub's own
    `keras_hub.models.ImageClassifier.from_preset` after
    `import keras_sknet.hub`) then gives the logits of
    `Model(weights=weights, classifier_activation=None)` on
    `preprocess_input` images.

    Args:
        model_name: one of `HUB_MODELS`, e.g. `"SKNet50"`.
        weights: any `weights=` source of the model function: `"imagenet"`
            (downloads), a timm checkpoint (`.safetensors`, `.pth`) or a
            `.weights.h5` of the full model (with its classifier).
        directory: the preset folder; written in a temporary folder beside
            it, then moved into place (what was there stays until the end).
        classes: the classifier's width (the weights' classes).
        image_size: the converter's resize side; default the weights'
            evaluation size (224).

    Returns:
        `directory`.

    Raises:
        ValueError: a model outside `HUB_MODELS`, or Caffe weights (their
            BGR preprocessing is not an `SKNetImageConverter`).

    Example:
        >>> preset_from_weights("SKNet50", "imagenet", "presets/sknet50")
        >>> keras_hub.models.ImageClassifier.from_preset("presets/sknet50")
    """
    arguments = backbone_arguments(model_name)
    if is_caffemodel_path(weights):
        raise ValueError(
            "preset_from_weights takes timm checkpoints, .weights.h5 files and 'imagenet'; the official "
            "Caffe weights (BGR, mean-only preprocessing, Caffe's stem pool) are not supported. "
            f"Received: weights={str(weights)!r}"
        )
    check_positive_int("classes", classes)
    pretrained = PRETRAINED.get(model_name)
    if image_size is None:
        image_size = pretrained.input_size if pretrained else 224
    check_positive_int("image_size", image_size)
    net = getattr(applications, model_name)(
        weights=weights,
        classes=classes,
        classifier_activation=None,
        input_shape=(image_size, image_size, 3),
    )
    backbone = SKNetBackbone(**arguments)
    for layer in net.layers:
        if layer.weights and layer.name not in _HEAD_LAYERS:
            backbone.get_layer(layer.name).set_weights(layer.get_weights())
    converter = SKNetImageConverter(
        image_size=(image_size, image_size),
        interpolation=pretrained.interpolation if pretrained else "bilinear",
    )
    classifier = SKNetImageClassifier(
        backbone, num_classes=classes, preprocessor=SKNetImageClassifierPreprocessor(converter)
    )
    classifier.output_dense.set_weights(net.get_layer("predictions").get_weights())

    directory = os.path.abspath(os.fspath(directory))
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(directory), prefix=".preset-")
    try:
        classifier.save_to_preset(tmp)
        metadata_path = os.path.join(tmp, "metadata.json")
        with open(metadata_path) as f:
            metadata = json.load(f)
        metadata["keras_sknet"] = {
            "version": __version__,
            "model": model_name,
            "weights": str(weights) if not os.path.exists(str(weights)) else os.path.basename(str(weights)),
        }
        with open(metadata_path, "w") as f:
            json.dump(metadata, f, indent=4)
        replace_directory(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def write_pretrained_presets(directory):
    """Writes the preset of every pretrained model of `HUB_MODELS` (downloads its weights).

    Args:
        directory: the parent folder; each preset goes to `<directory>/<model name lower case>`.

    Returns:
        The list of preset folders written.
    """
    return [
        preset_from_weights(name, "imagenet", os.path.join(directory, name.lower()))
        for name in HUB_MODELS
        if name in PRETRAINED
    ]
