"""One record per named model: every fact about it, in one place.

A `ModelRecord` holds what the zoo knows of a model function: the family
builder and the arguments that make it, its public checkpoint
(`weights="imagenet"`), its timm architecture, the authors' Caffe weights,
whether keras_sknet.hub builds it, and the paper's size for it. Every other
table is a view of `MODELS`: `applications.MODEL_CONFIGS`,
`weights.PRETRAINED`, `TIMM_ARCHITECTURES`, `CAFFE_WEIGHTS`, `hub.HUB_MODELS`,
and the named rows of `applications.zoo.PAPER_SIZES`.

Adding a model: one record here, one thin `def` in its family's module
(`keras_sknet/applications/sknet.py`, ...) and its export in
`keras_sknet/applications/__init__.py`.

The records live in `weights`, the lowest package that every reader can
import: `weights` (the checkpoints), `applications` (the builders), `hub` and
the command lines all read them, and `weights` may not import `applications`
(see tests/test_import_graph.py). A record is data: its builder is named, and
`keras_sknet.applications` resolves the name.
"""

import dataclasses

from keras_sknet.weights.published import CaffeWeights, PretrainedConfig


@dataclasses.dataclass(frozen=True)
class PaperSize:
    """A size the paper publishes for a model (see `keras_sknet.applications.zoo`).

    Attributes:
        label: the paper's name of the row, e.g. `"SKNet-50"`.
        source: the table, e.g. `"Table 1"`.
        params: trainable parameters, millions.
        macs: multiply-adds for one image, millions (None: not published).
        tolerance: relative (params, MACs) tolerance (../shared/TARGETS.md);
            None: reported only.
        note: shown beside the row.
        arguments: the model function's arguments for this row, e.g.
            `{"alpha": 0.5}`.
    """

    label: str
    source: str
    params: float | None
    macs: float | None
    tolerance: tuple | None
    note: str = ""
    arguments: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """Everything keras_sknet knows of one named model.

    Attributes:
        name: the model function, e.g. `"SKNet50"`.
        builder: the family builder it calls, `"SKNet"`, `"SKResNet"` or
            `"ShuffleNetV2"` (a name in `keras_sknet.applications`).
        config: the builder's architecture arguments, e.g.
            `{"stage_depths": (3, 4, 6, 3), "block": "sk", ...}`.
        pretrained: the public checkpoint behind `weights="imagenet"`, or None.
        timm_architecture: timm's architecture of the same layout (its
            checkpoints convert), or None.
        caffe: the authors' Caffe weights (and the architecture they need), or None.
        hub: keras_sknet.hub builds it (a keras-hub backbone and preset).
        paper: the paper's sizes of it.
    """

    name: str
    builder: str
    config: dict
    pretrained: PretrainedConfig | None = None
    timm_architecture: str | None = None
    caffe: CaffeWeights | None = None
    hub: bool = False
    paper: tuple = ()

    @property
    def config_name(self):
        """The key of `MODEL_CONFIGS` and the default model name, e.g. `"sknet50"`."""
        return self.name.lower()


_IMAGENET = dict(stem="imagenet", cardinality=32, bottleneck_width=4)
# SK[2, 16, 32] with a 1x1 second path (supplementary D).
_CIFAR = dict(stem="cifar", cardinality=16, bottleneck_width=32, kernel_sizes=(3, 1), reduction=32)
# Tolerances of ../shared/TARGETS.md: (params, MACs).
_IMAGENET_TOL = (0.015, 0.03)
_MOBILE_05_TOL = (0.05, 0.05)
_MOBILE_10_TOL = (0.08, 0.08)
_CIFAR_TOL = (0.015, None)


def _timm(name, revision, top1, model):
    """A timm checkpoint on the Hugging Face Hub (see `keras_sknet.weights.registry` on the pins)."""
    return PretrainedConfig(model=model, timm_name=name, hf_repo=f"timm/{name}", revision=revision, top1=top1)


# In the order of the paper's tables (zoo.PAPER_SIZES lists the rows in this order, table by table).
_RECORDS = (
    ModelRecord(
        "ResNeXt50",
        "SKNet",
        dict(stage_depths=(3, 4, 6, 3), block="resnext", **_IMAGENET),
        pretrained=_timm("resnext50_32x4d.ra_in1k", "ed4326c", 79.800, "ResNeXt50"),
        timm_architecture="resnext50_32x4d",
        hub=True,
        paper=(PaperSize("ResNeXt-50 (32x4d)", "Table 1", 25.0, 4240, _IMAGENET_TOL),),
    ),
    ModelRecord(
        "SEResNeXt50",
        "SKNet",
        dict(stage_depths=(3, 4, 6, 3), block="resnext", se_reduction=16, **_IMAGENET),
        pretrained=_timm("seresnext50_32x4d.racm_in1k", "1b040f7", 81.268, "SEResNeXt50"),
        timm_architecture="seresnext50_32x4d",
        hub=True,
        paper=(PaperSize("SENet-50", "Table 1", 27.7, 4250, _IMAGENET_TOL),),
    ),
    ModelRecord(
        "SKNet50",
        "SKNet",
        dict(stage_depths=(3, 4, 6, 3), block="sk", **_IMAGENET),
        pretrained=_timm("skresnext50_32x4d.ra_in1k", "main", 80.168, "SKNet50"),
        timm_architecture="skresnext50_32x4d",
        caffe=CaffeWeights(
            model="SKNet50",
            download_url="https://drive.google.com/file/d/1EKanqFkqoU3L6vgSLW3GjPciesZ2rrUH/view?usp=sharing",
            top1_error_224=20.79,
            top1_error_320=19.32,
            num_params=27_479_784,
            architecture=dict(stem_pool="caffe"),
        ),
        hub=True,
        paper=(PaperSize("SKNet-50", "Table 1", 27.5, 4470, _IMAGENET_TOL),),
    ),
    ModelRecord(
        "SKNet26",
        "SKNet",
        dict(stage_depths=(2, 2, 2, 2), block="sk", **_IMAGENET),
        hub=True,
        paper=(PaperSize("SKNet-26", "Table S2", 16.8, None, _IMAGENET_TOL),),
    ),
    ModelRecord(
        "ResNeXt101",
        "SKNet",
        dict(stage_depths=(3, 4, 23, 3), block="resnext", **_IMAGENET),
        timm_architecture="resnext101_32x4d",
        hub=True,
        paper=(PaperSize("ResNeXt-101 (32x4d)", "Table 2", 44.3, 7990, _IMAGENET_TOL),),
    ),
    ModelRecord(
        "SEResNeXt101",
        "SKNet",
        dict(stage_depths=(3, 4, 23, 3), block="resnext", se_reduction=16, **_IMAGENET),
        timm_architecture="seresnext101_32x4d",
        hub=True,
        paper=(PaperSize("SENet-101", "Table 2", 49.2, 8000, _IMAGENET_TOL),),
    ),
    ModelRecord(
        "SKNet101",
        "SKNet",
        dict(stage_depths=(3, 4, 23, 3), block="sk", **_IMAGENET),
        caffe=CaffeWeights(
            model="SKNet101",
            download_url="https://drive.google.com/file/d/1NEYIYeSXQeinLGU5GH2hf8T6MJytzt0U/view?usp=sharing",
            top1_error_224=20.19,
            top1_error_320=18.40,
            num_params=48_686_760,
            # The released prototxt's conv3 units have d = 16 (L = 16), not max(256 / 16, 32) = 32.
            architecture=dict(stem_pool="caffe", min_dim=(32, 16, 32, 32)),
        ),
        hub=True,
        paper=(PaperSize("SKNet-101", "Table 2", 48.9, 8460, _IMAGENET_TOL),),
    ),
    ModelRecord(
        "ShuffleNetV2",
        "ShuffleNetV2",
        dict(attention=None),
        paper=(
            PaperSize("ShuffleNetV2 0.5x", "Table 4", 1.40, 40.39, _MOBILE_05_TOL, arguments={"alpha": 0.5}),
            PaperSize(
                "ShuffleNetV2 1.0x",
                "Table 4",
                2.45,
                140.35,
                _MOBILE_10_TOL,
                "standard 116/232/464 channels count 144.7 MMACs; the paper prints 140.35",
                arguments={"alpha": 1.0},
            ),
        ),
    ),
    ModelRecord(
        "ShuffleNetV2SE",
        "ShuffleNetV2",
        dict(attention="se"),
        paper=(
            PaperSize(
                "ShuffleNetV2 0.5x + SE", "Table 4", 1.56, 40.85, _MOBILE_05_TOL, arguments={"alpha": 0.5}
            ),
            PaperSize(
                "ShuffleNetV2 1.0x + SE", "Table 4", 2.66, 141.73, _MOBILE_10_TOL, arguments={"alpha": 1.0}
            ),
        ),
    ),
    ModelRecord(
        "ShuffleNetV2SK",
        "ShuffleNetV2",
        dict(attention="sk"),
        paper=(
            PaperSize(
                "ShuffleNetV2 0.5x + SK", "Table 4", 1.48, 42.58, _MOBILE_05_TOL, arguments={"alpha": 0.5}
            ),
            PaperSize(
                "ShuffleNetV2 1.0x + SK",
                "Table 4",
                2.63,
                145.66,
                _MOBILE_10_TOL,
                "r=4 as stated; the paper's +0.18M is not reachable with r=4 at 1.0x",
                arguments={"alpha": 1.0},
            ),
        ),
    ),
    ModelRecord(
        "ResNeXt29",
        "SKNet",
        dict(stage_depths=(3, 3, 3), block="resnext", **_CIFAR),
        hub=True,
        paper=(PaperSize("ResNeXt-29, 16x32d", "Table 5", 25.2, None, _CIFAR_TOL),),
    ),
    ModelRecord(
        "SKNet29",
        "SKNet",
        dict(stage_depths=(3, 3, 3), block="sk", **_CIFAR),
        hub=True,
        paper=(PaperSize("SKNet-29", "Table 5", 27.7, None, _CIFAR_TOL),),
    ),
    ModelRecord(
        "SEResNeXt29",
        "SKNet",
        dict(stage_depths=(3, 3, 3), block="resnext", se_reduction=16, **_CIFAR),
        hub=True,
        paper=(
            PaperSize(
                "SENet-29",
                "Table 5",
                35.0,
                None,
                None,
                "as described (16x32d + SE r=16 before each addition); 35.0M is not reached",
            ),
        ),
    ),
    ModelRecord(
        "SKResNet18",
        "SKResNet",
        dict(stage_depths=(2, 2, 2, 2)),
        pretrained=_timm("skresnet18.ra_in1k", "35bb29a", 73.020, "SKResNet18"),
        timm_architecture="skresnet18",
        hub=True,
    ),
    ModelRecord(
        "SKResNet34",
        "SKResNet",
        dict(stage_depths=(3, 4, 6, 3)),
        pretrained=_timm(
            "skresnet34.ra_in1k", "566efdc1f858fc81fe6fc9edab3c76524de26529", 76.956, "SKResNet34"
        ),
        timm_architecture="skresnet34",
        hub=True,
    ),
)

MODELS = {record.name: record for record in _RECORDS}


def model_record(name):
    """The record of a model function, by name (`"SKNet50"`) or the function itself.

    Raises:
        ValueError: no model has that name (the message lists them).
    """
    name = getattr(name, "__name__", name)
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Models: {', '.join(MODELS)}. Received: model={name!r}")
    return MODELS[name]
