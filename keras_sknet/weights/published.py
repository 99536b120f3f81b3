"""What a published checkpoint is: where it is fetched from, and how it was evaluated.

The facts of each model's checkpoints live in its record
(`keras_sknet.weights.records.MODELS`); these are their types.
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
