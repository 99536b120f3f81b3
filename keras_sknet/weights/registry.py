"""The public checkpoints behind `weights="imagenet"`, with their preprocessing.

Every entry is a timm checkpoint on the Hugging Face Hub (`model.safetensors`,
Apache-2.0), pinned to the commit that added the weights, and the evaluation
settings timm publishes with it (`pretrained_cfg`: mean, std, interpolation,
crop_pct, input size) and its ImageNet-1k validation top-1 (timm's
`results-imagenet.csv`, at that input size and crop).

About the pins (read before relying on them):
- `revision` is the Hub commit that added the weights ("Add model"). For
  skresnet34 the full 40-hex id is published; for skresnet18, resnext50 and
  seresnext50 only the abbreviated id shown in the Hub's commit list could be
  read from here (the Hub resolves commit-id prefixes since 2023, see
  huggingface/huggingface_hub#197); for skresnext50 no commit id could be
  read, so it follows `main`.
- `sha256` is None for every entry: the files' hashes could not be read from
  here and are not invented. Instead the first download is verified by
  structure (it must parse as safetensors and hold exactly the tensor names
  and shapes of the architecture, which conversion checks before anything is
  cached) and the sha256 computed then is recorded in the cache metadata;
  later downloads must match it (trust on first use). Fill in `sha256` to
  verify against a published hash instead.
"""

import dataclasses
import os

from keras_sknet.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclasses.dataclass(frozen=True)
class PretrainedConfig:
    """A public checkpoint and the evaluation settings that go with it.

    Attributes:
        model: the keras_sknet model function, e.g. `"SKNet50"`.
        timm_name: timm's `architecture.tag`, e.g. `"skresnext50_32x4d.ra_in1k"`.
        hf_repo: the Hugging Face Hub repository.
        revision: the Hub commit (or branch) the file is fetched at.
        filename: the checkpoint file in the repository.
        sha256: the file's sha256 if known, else None (see the module doc).
        num_classes: classifier width (ImageNet-1k).
        input_size: evaluation height = width.
        crop_pct: centre-crop fraction: resize the shorter side to
            `floor(input_size / crop_pct)`, then crop `input_size`.
        interpolation: resize filter, `"bicubic"` or `"bilinear"`.
        mean, std: per-channel RGB normalisation on [0, 1] inputs (what
            `keras_sknet.applications.preprocess_input` applies).
        top1: ImageNet-1k validation top-1 (%) published by timm with these
            settings.
        license: of the weights.
    """

    model: str
    timm_name: str
    hf_repo: str
    revision: str
    filename: str = "model.safetensors"
    sha256: str | None = None
    num_classes: int = 1000
    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    top1: float | None = None
    license: str = "apache-2.0"

    @property
    def architecture(self):
        """timm's architecture name, e.g. `"skresnext50_32x4d"`."""
        return self.timm_name.split(".")[0]

    @property
    def url(self):
        """Where the checkpoint is fetched from; honours `HF_ENDPOINT` (a Hub mirror)."""
        endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
        return f"{endpoint}/{self.hf_repo}/resolve/{self.revision}/{self.filename}"

    @property
    def page(self):
        """The checkpoint's page on the Hub (to download it by hand)."""
        return f"{DEFAULT_ENDPOINT}/{self.hf_repo}"


# Model functions whose weights have a timm architecture (the converter's command line accepts these).
TIMM_ARCHITECTURES = {
    "SKNet50": "skresnext50_32x4d",
    "ResNeXt50": "resnext50_32x4d",
    "ResNeXt101": "resnext101_32x4d",
    "SEResNeXt50": "seresnext50_32x4d",
    "SEResNeXt101": "seresnext101_32x4d",
    "SKResNet18": "skresnet18",
    "SKResNet34": "skresnet34",
}

PRETRAINED = {
    "SKNet50": PretrainedConfig(
        model="SKNet50",
        timm_name="skresnext50_32x4d.ra_in1k",
        hf_repo="timm/skresnext50_32x4d.ra_in1k",
        revision="main",
        top1=80.168,
    ),
    "ResNeXt50": PretrainedConfig(
        model="ResNeXt50",
        timm_name="resnext50_32x4d.ra_in1k",
        hf_repo="timm/resnext50_32x4d.ra_in1k",
        revision="ed4326c",
        top1=79.800,
    ),
    "SEResNeXt50": PretrainedConfig(
        model="SEResNeXt50",
        timm_name="seresnext50_32x4d.racm_in1k",
        hf_repo="timm/seresnext50_32x4d.racm_in1k",
        revision="1b040f7",
        top1=81.268,
    ),
    "SKResNet18": PretrainedConfig(
        model="SKResNet18",
        timm_name="skresnet18.ra_in1k",
        hf_repo="timm/skresnet18.ra_in1k",
        revision="35bb29a",
        top1=73.020,
    ),
    "SKResNet34": PretrainedConfig(
        model="SKResNet34",
        timm_name="skresnet34.ra_in1k",
        hf_repo="timm/skresnet34.ra_in1k",
        revision="566efdc1f858fc81fe6fc9edab3c76524de26529",
        top1=76.956,
    ),
}


@dataclasses.dataclass(frozen=True)
class CaffeWeights:
    """The authors' own ImageNet weights (Caffe), which the user downloads and passes as a path.

    The official release (github.com/implus/SKNet) has no license file, so
    keras_sknet neither ships nor fetches these files: download them from
    `download_url` and pass the file, `SKNet50(weights="SKNet-50.caffemodel")`.
    The model is then built as the release is (`architecture`: Caffe's stem
    max pool, and for SKNet-101 a fuse width d = 16 in its second stage).

    Attributes:
        model: the keras_sknet model function, e.g. `"SKNet50"`.
        download_url: where the authors publish the `.caffemodel`.
        source: the release's repository (prototxts, README).
        top1_error_224, top1_error_320: published ImageNet-1k single-crop
            top-1 error (%) at 224 and 320 (the release's README, Table 2
            of the paper); not measured here.
        num_params: parameters of the released network (trainable ones:
            convolutions, BatchNorm gamma/beta, classifier).
        architecture: the `SKNet()` arguments the weights need.
        preprocessing: `preprocess_input` mode, `"caffe"` (BGR, mean
            104/117/123 on 0-255, no std: SENet's Caffe convention, which the
            release says its training followed) by default; `"torch"` (RGB
            mean/std) is the alternative. The release does not document it.
        num_classes, input_size, crop_pct, interpolation: the evaluation
            (shorter side 256, centre crop 224; the resize filter is not
            published, bilinear as OpenCV's default is assumed).
    """

    model: str
    download_url: str
    top1_error_224: float
    top1_error_320: float
    num_params: int
    architecture: dict
    source: str = "https://github.com/implus/SKNet"
    preprocessing: str = "caffe"
    num_classes: int = 1000
    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"


CAFFE_WEIGHTS = {
    "SKNet50": CaffeWeights(
        model="SKNet50",
        download_url="https://drive.google.com/file/d/1EKanqFkqoU3L6vgSLW3GjPciesZ2rrUH/view?usp=sharing",
        top1_error_224=20.79,
        top1_error_320=19.32,
        num_params=27_479_784,
        architecture=dict(stem_pool="caffe"),
    ),
    "SKNet101": CaffeWeights(
        model="SKNet101",
        download_url="https://drive.google.com/file/d/1NEYIYeSXQeinLGU5GH2hf8T6MJytzt0U/view?usp=sharing",
        top1_error_224=20.19,
        top1_error_320=18.40,
        num_params=48_686_760,
        # The released prototxt's conv3 units have d = 16 (L = 16), not max(256 / 16, 32) = 32.
        architecture=dict(stem_pool="caffe", min_dim=(32, 16, 32, 32)),
    ),
}


def caffe_weights_config(model):
    """The official Caffe weights of a model: where to get them and what they need.

    Args:
        model: `"SKNet50"` or `"SKNet101"` (or the model function).

    Returns:
        A `CaffeWeights`.

    Raises:
        ValueError: the model has no official Caffe weights.

    Example:
        >>> caffe_weights_config("SKNet101").architecture
        {'stem_pool': 'caffe', 'min_dim': (32, 16, 32, 32)}
    """
    name = getattr(model, "__name__", model)
    if name not in CAFFE_WEIGHTS:
        raise ValueError(
            f"No official Caffe weights exist for {name!r}: the SKNet release has them for "
            f"{', '.join(sorted(CAFFE_WEIGHTS))}. Received: model={name!r}"
        )
    return CAFFE_WEIGHTS[name]


def pretrained_config(model):
    """The public checkpoint and evaluation settings of a model.

    Args:
        model: a model function name (`"SKNet50"`), its function, or timm's
            architecture name (`"skresnext50_32x4d"`).

    Returns:
        A `PretrainedConfig`.

    Raises:
        ValueError: the model has no public checkpoint.

    Example:
        >>> config = pretrained_config("SKNet50")
        >>> config.crop_pct, config.interpolation, config.top1
        (0.875, 'bicubic', 80.168)
    """
    name = getattr(model, "__name__", model)
    if name in PRETRAINED:
        return PRETRAINED[name]
    for config in PRETRAINED.values():
        if name in (config.architecture, config.timm_name):
            return config
    raise ValueError(
        f"No pretrained weights are registered for {name!r}. Models with weights='imagenet': "
        f"{sorted(PRETRAINED)}."
    )


# The model functions that `pretrained_weights_path` builds a checkpoint into, by name.
# keras_sknet.applications registers its own at import: it is above this package (its
# `weights="imagenet"` comes here), so this package does not import it.
_MODEL_FUNCTIONS = {}


def register_model_function(name, function):
    """Makes `function` the model that `pretrained_weights_path(name)` converts into.

    Args:
        name: the model function name of `PRETRAINED`, e.g. `"SKNet50"`.
        function: builds the model; called as `function(weights=None)`.
    """
    _MODEL_FUNCTIONS[name] = function


def model_function(name):
    """The model function registered for `name` (see `register_model_function`).

    Raises:
        LookupError: none is; keras_sknet.applications registers the zoo's
            when imported, which `import keras_sknet` does.
    """
    try:
        return _MODEL_FUNCTIONS[name]
    except KeyError:
        raise LookupError(
            f"No model function is registered for {name!r}: import keras_sknet (or "
            "keras_sknet.applications), which registers the zoo's. Registered: "
            f"{sorted(_MODEL_FUNCTIONS)}."
        ) from None
