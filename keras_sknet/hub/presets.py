"""keras-hub presets of the SKNet and SK-ResNet families, written from any `weights=` source.

A preset is the folder keras-hub's `from_preset(dir)` reads: `config.json`
(the backbone), `model.weights.h5`, `task.json` and `task.weights.h5` (the
classifier), `preprocessor.json` (the image converter) and `metadata.json`
(with a `keras_sknet` entry saying which model and weights it holds).
"""

import json
import os

from keras_sknet import applications
from keras_sknet.applications.model_builder import input_sizes
from keras_sknet.hub.backbone import SKNetBackbone, SKResNetBackbone
from keras_sknet.hub.tasks import (
    CAFFE_OFFSET,
    CAFFE_SCALE,
    SKNetImageClassifier,
    SKNetImageClassifierPreprocessor,
    SKNetImageConverter,
    SKResNetImageClassifier,
    SKResNetImageClassifierPreprocessor,
    SKResNetImageConverter,
)
from keras_sknet.utils import files
from keras_sknet.utils.validation import check_positive_int
from keras_sknet.version import __version__
from keras_sknet.weights.checkpoint import is_caffemodel_path
from keras_sknet.weights.records import MODELS
from keras_sknet.weights.registry import PRETRAINED, caffe_weights_config

# Every model of the SKNet() family (ImageNet and CIFAR bottleneck nets) and of SKResNet() (basic blocks):
# a view of the records.
HUB_MODELS = tuple(name for name, record in MODELS.items() if record.hub)
_HEAD_LAYERS = ("avg_pool", "predictions")
# What `save_to_preset` writes for an image classifier; a folder holding only these, with our
# entry in metadata.json, is an earlier preset of ours (`preset_foreign`).
PRESET_FILES = (
    "config.json",
    "model.weights.h5",
    "task.json",
    "task.weights.h5",
    "preprocessor.json",
    "image_converter.json",
    "metadata.json",
)
# Family -> (backbone, converter, preprocessor, classifier) classes.
_TASK_CLASSES = {
    "sknet": (SKNetBackbone, SKNetImageConverter, SKNetImageClassifierPreprocessor, SKNetImageClassifier),
    "skresnet": (
        SKResNetBackbone,
        SKResNetImageConverter,
        SKResNetImageClassifierPreprocessor,
        SKResNetImageClassifier,
    ),
}


def _check_model_name(model_name):
    if model_name not in HUB_MODELS:
        raise ValueError(
            f"keras_sknet.hub builds the SKNet() and SKResNet() nets of the zoo: `model_name` must be one "
            f"of {HUB_MODELS}. Received: model_name={model_name!r}"
        )
    return MODELS[model_name].builder.lower()


def backbone_arguments(model_name):
    """The backbone arguments of a zoo model, e.g. `backbone_arguments("SKNet50")`.

    Args:
        model_name: one of `HUB_MODELS`.

    Returns:
        The keyword arguments of `backbone_class(model_name)` that build it.

    Example:
        >>> backbone_arguments("SKResNet18")
        {'stage_depths': (2, 2, 2, 2)}
    """
    _check_model_name(model_name)
    return dict(MODELS[model_name].config)


def backbone_class(model_name):
    """`SKNetBackbone` or `SKResNetBackbone`: the keras-hub backbone of a zoo model (one of `HUB_MODELS`)."""
    return _TASK_CLASSES[_check_model_name(model_name)][0]


def _default_image_size(model_name):
    return input_sizes(MODELS[model_name].config)[0]


def preset_foreign(folder):
    """The first file in `folder` that `preset_from_weights` does not write, or None.

    Ours: only `PRESET_FILES`, with a `metadata.json` that holds a
    `keras_sknet` entry (see `keras_sknet.utils.files.check_output_folder`).
    """
    names = sorted(os.listdir(folder))
    for name in names:
        if name not in PRESET_FILES or not os.path.isfile(os.path.join(folder, name)):
            return name
    try:
        with open(os.path.join(folder, "metadata.json")) as f:
            ours = "keras_sknet" in json.load(f)
    except (OSError, ValueError, TypeError):
        ours = False
    return None if ours else "metadata.json"


def _check_directory(directory, overwrite):
    return files.check_output_folder(
        directory, preset_foreign, what="keras-hub preset", overwrite=overwrite, name="directory"
    )


def preset_from_weights(
    model_name, weights, directory, classes=1000, image_size=None, crop_pct=None, overwrite=False
):
    """Writes a keras-hub preset of a zoo model with the given weights.

    `keras_hub.models.ImageClassifier.from_preset(directory)` (after
    `import keras_sknet.hub`) then gives the logits of
    `Model(weights=weights, classifier_activation=None)` on the images of
    `keras_sknet.weights.eval_transform(images, ...)` (the weights'
    evaluation: resize, centre crop, `preprocess_input`), or of
    `preprocess_input` on images resized to `image_size` for models without
    a registered evaluation (or with `crop_pct=False`).

    Args:
        model_name: one of `HUB_MODELS`, e.g. `"SKNet50"` or `"SKResNet18"`.
        weights: any `weights=` source of the model function: `"imagenet"`
            (downloads), a timm checkpoint (`.safetensors`, `.pth`), a
            `.weights.h5` of the full model (with its classifier), or the
            official Caffe weights of SKNet50 / SKNet101 (`.caffemodel`: the
            backbone gets Caffe's stem pool and the release's fuse widths,
            the converter BGR and the Caffe mean, as
            `preprocess_input(mode="caffe")`).
        directory: the preset folder, checked before any work (see
            `keras_sknet.utils.files`): missing or empty, or, with
            `overwrite=True`, holding an earlier preset of ours
            (`preset_foreign`), replaced in one step at the end; a folder
            holding other files is never replaced. The preset is written in a
            temporary folder beside it.
        classes: the classifier's width (the weights' classes).
        image_size: the converter's output side; default the weights'
            evaluation size (224; 32 for the CIFAR nets).
        crop_pct: the converter's centre crop (see `SKNetImageConverter`):
            None for the weights' (`PRETRAINED[model_name].crop_pct`, or
            the Caffe weights' 0.875; no crop for models without registered
            weights), a number in (0, 1], or False for a plain resize.
        overwrite: replace an earlier preset of ours at `directory`.

    Returns:
        `directory`.

    Raises:
        ValueError: a model outside `HUB_MODELS`, Caffe weights for a model
            without official ones, or a bad `classes`, `image_size` or
            `crop_pct`.
        FileExistsError, NotADirectoryError, PermissionError: `directory`
            holds other files, an earlier preset (without `overwrite`), or
            cannot be written.

    Example:
        >>> preset_from_weights("SKNet50", "imagenet", "presets/sknet50")
        >>> keras_hub.models.ImageClassifier.from_preset("presets/sknet50")
    """
    family = _check_model_name(model_name)
    backbone_cls, converter_cls, preprocessor_cls, classifier_cls = _TASK_CLASSES[family]
    arguments = backbone_arguments(model_name)
    check_positive_int("classes", classes)
    converter_arguments = {}
    if is_caffemodel_path(weights):
        evaluation = caffe_weights_config(model_name)  # ValueError for models without Caffe weights
        arguments.update(evaluation.architecture)
        if evaluation.preprocessing == "caffe":
            converter_arguments = dict(channel_order="bgr", scale=CAFFE_SCALE, offset=CAFFE_OFFSET)
    else:
        evaluation = PRETRAINED.get(model_name)
    if image_size is None:
        image_size = evaluation.input_size if evaluation else _default_image_size(model_name)
    check_positive_int("image_size", image_size)
    if crop_pct is None:
        crop_pct = evaluation.crop_pct if evaluation else False
    if crop_pct is not False and (
        isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1
    ):
        raise ValueError(
            "`crop_pct` must be None (the weights' evaluation crop), a number in (0, 1] or False (plain "
            f"resize). Received: crop_pct={crop_pct!r}"
        )
    _check_directory(directory, overwrite)  # before any download or conversion
    net = getattr(applications, model_name)(
        weights=weights,
        classes=classes,
        classifier_activation=None,
        input_shape=(image_size, image_size, 3),
    )
    backbone = backbone_cls(**arguments)
    for layer in net.layers:
        if layer.weights and layer.name not in _HEAD_LAYERS:
            backbone.get_layer(layer.name).set_weights(layer.get_weights())
    if crop_pct is not False:
        # The evaluation transform: eval_transform's antialiased resize, then the centre crop.
        converter_arguments.update(crop_pct=float(crop_pct), antialias=True)
    converter = converter_cls(
        image_size=(image_size, image_size),
        interpolation=evaluation.interpolation if evaluation else "bilinear",
        **converter_arguments,
    )
    classifier = classifier_cls(backbone, num_classes=classes, preprocessor=preprocessor_cls(converter))
    classifier.output_dense.set_weights(net.get_layer("predictions").get_weights())

    directory = os.path.abspath(os.fspath(directory))
    with files.folder_beside(directory) as tmp:
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
        files.replace_folder(tmp, directory, preset_foreign, what="keras-hub preset", overwrite=overwrite)
    return directory


def write_pretrained_presets(directory, overwrite=False):
    """Writes the preset of every model with `weights="imagenet"` (`PRETRAINED`; downloads its weights).

    Every preset folder is checked first (as in `preset_from_weights`), so a
    folder in the way stops the run before any download.

    Args:
        directory: the parent folder; each preset goes to `<directory>/<model name lower case>`.
        overwrite: replace earlier presets of ours there.

    Returns:
        The list of preset folders written.
    """
    paths = {name: os.path.join(directory, name.lower()) for name in PRETRAINED}
    for path in paths.values():
        _check_directory(path, overwrite)
    return [preset_from_weights(name, "imagenet", path, overwrite=overwrite) for name, path in paths.items()]
