"""Named training recipes as data (Section 4.1 for ImageNet, supplementary D for CIFAR).

An `Experiment` is a complete recipe: model, data, optimisation. The registry
holds the paper's recipes and the offline demo; the command line overrides any
field, and the resolved recipe is written into the run directory.
"""

import dataclasses
import json
import types
import typing


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A training recipe.

    Attributes:
        name: registry name.
        model: a function of `keras_sknet.applications`, e.g. "SKNet50".
        model_kwargs: its arguments besides the keras.applications ones (e.g. `alpha`).
        dataset: a dataset name of `training.data` (e.g. "imagenet2012", "cifar10", "scales_demo").
        augment: the training augmentation of that dataset ("standard", "light" = less
            aggressive scale augmentation for lightweight models, Section 4.1).
        image_size / eval_image_size: training crop and evaluation crop sizes.
        crop_pct: evaluation resize = eval_image_size / crop_pct, then centre crop.
        batch_size: global batch size (over all replicas).
        epochs: training epochs.
        learning_rate: at `base_batch_size`; scaled linearly with `batch_size`.
        base_batch_size: the batch the learning rate is given for.
        lr_step_every: divide the learning rate by 10 every this many epochs, or
        lr_milestones: ... at these fractions of the training (e.g. 0.5, 0.75).
        warmup_epochs: linear warm-up from 0 (0 = none, as the paper).
        optimizer: "sgd" (the paper's: momentum SGD with L2 weight decay on all weights)
            or "adamw" (decoupled weight decay; for the small demo).
        lr_schedule: "step" (divide by 10 at `decay_epochs()`, the paper's) or "cosine".
        momentum, weight_decay: SGD momentum; the weight decay of the optimiser.
        label_smoothing: of the cross-entropy (Section 4.1; 0 = none).
        randaugment, mixup, cutmix: optional Keras 3 augmentations (off in the paper's recipes).
        mixed_precision: None, "float16" or "bfloat16" (or "auto": float16 on GPU, none on CPU;
            on JAX bfloat16 on TPUs and GPUs of compute capability 8 or more).
        jit_compile: XLA for the train step on TensorFlow (off on CPU, where it is slower);
            JAX always compiles the step.
        sync_batch_norm: BatchNorm statistics over the global batch of all replicas
            (results independent of the number of devices) instead of per replica. On
            JAX they always are (DataParallel computes on the global batch).
        seed: for weights, data order and augmentation.
    """

    name: str
    model: str
    dataset: str
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    augment: str = "standard"
    image_size: int = 224
    eval_image_size: int = 224
    crop_pct: float = 0.875
    batch_size: int = 256
    epochs: int = 100
    learning_rate: float = 0.1
    base_batch_size: int = 256
    lr_step_every: int | None = 30
    lr_milestones: tuple | None = None
    warmup_epochs: float = 0.0
    optimizer: str = "sgd"
    lr_schedule: str = "step"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    randaugment: bool = False
    mixup: float = 0.0
    cutmix: float = 0.0
    mixed_precision: str | None = "auto"
    jit_compile: bool = False
    sync_batch_norm: bool = False
    seed: int = 0
    description: str = ""

    def scaled_learning_rate(self):
        """Linear scaling with the global batch (Goyal et al.): lr * batch / base batch."""
        return self.learning_rate * self.batch_size / self.base_batch_size

    def decay_epochs(self):
        """The epochs at which the learning rate is divided by 10."""
        if self.lr_milestones:
            return tuple(int(round(f * self.epochs)) for f in self.lr_milestones)
        if self.lr_step_every:
            return tuple(range(self.lr_step_every, self.epochs, self.lr_step_every))
        return ()

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def _imagenet(name, model, description, **kwargs):
    return Experiment(name=name, model=model, dataset="imagenet2012", description=description, **kwargs)


# Section 4.1: SGD momentum 0.9, batch 256, lr 0.1 / 10 every 30 epochs, 100 epochs,
# weight decay 1e-4, label smoothing; lightweight models: weight decay 4e-5 and less
# aggressive scale augmentation.
_LIGHT = dict(weight_decay=4e-5, augment="light")
# Supplementary D: batch 128, 300 epochs, lr 0.1 (CIFAR-10) / 0.05 (CIFAR-100) divided
# by 10 at 50% and 75%, weight decay 5e-4, momentum 0.9.
_CIFAR = dict(
    image_size=32,
    eval_image_size=32,
    crop_pct=1.0,
    batch_size=128,
    base_batch_size=128,
    epochs=300,
    lr_step_every=None,
    lr_milestones=(0.5, 0.75),
    weight_decay=5e-4,
    label_smoothing=0.0,
)

_REGISTRY = [
    _imagenet("sknet50_imagenet", "SKNet50", "SKNet-50 on ImageNet, Table 2 (20.79% top-1 error at 224)"),
    _imagenet("sknet101_imagenet", "SKNet101", "SKNet-101 on ImageNet, Table 2 (20.19% at 224)"),
    _imagenet("sknet26_imagenet", "SKNet26", "SKNet-26 on ImageNet, Table S2 (22.74%)"),
    _imagenet("resnext50_imagenet", "ResNeXt50", "ResNeXt-50 baseline, Table 2 (22.23%)"),
    _imagenet("resnext101_imagenet", "ResNeXt101", "ResNeXt-101 baseline, Table 2 (21.11%)"),
    _imagenet("seresnext50_imagenet", "SEResNeXt50", "SENet-50 baseline, Table 2 (21.12%)"),
    _imagenet("seresnext101_imagenet", "SEResNeXt101", "SENet-101 baseline, Table 2 (20.58%)"),
]
for _alpha in (0.5, 1.0):
    for _variant, _model, _error in (
        ("", "ShuffleNetV2", {0.5: 38.41, 1.0: 30.57}),
        ("_se", "ShuffleNetV2SE", {0.5: 36.34, 1.0: 29.47}),
        ("_sk", "ShuffleNetV2SK", {0.5: 35.35, 1.0: 28.36}),
    ):
        _REGISTRY.append(
            _imagenet(
                f"shufflenetv2{_variant}_{_alpha}x_imagenet",
                _model,
                f"{_model} {_alpha}x on ImageNet, Table 4 ({_error[_alpha]}% top-1 error)",
                model_kwargs={"alpha": _alpha},
                **_LIGHT,
            )
        )
for _classes, _lr, _errors in (("10", 0.1, (3.87, 3.68, 3.47)), ("100", 0.05, (18.56, 17.78, 17.33))):
    for _model, _error in zip(("ResNeXt29", "SEResNeXt29", "SKNet29"), _errors):
        _REGISTRY.append(
            Experiment(
                name=f"{_model.lower()}_cifar{_classes}",
                model=_model,
                dataset=f"cifar{_classes}",
                learning_rate=_lr,
                description=f"{_model} on CIFAR-{_classes}, Table 5 ({_error}% error)",
                **_CIFAR,
            )
        )

# The offline demo: the embedded scales_demo dataset (64x64 shapes at 1.0x/1.5x/2.0x) and a
# small SK network (three SK units behind the ImageNet stem, 1.02M parameters, 48M MACs),
# which learns it to over 90% test accuracy in under 10 minutes on 2 CPU cores.
_REGISTRY.append(
    Experiment(
        name="scales_demo",
        model="SKNet",
        model_kwargs={"stage_depths": [1, 1, 1], "stem": "imagenet", "cardinality": 8, "bottleneck_width": 4},
        dataset="scales_demo",
        image_size=64,
        eval_image_size=64,
        crop_pct=1.0,
        batch_size=64,
        base_batch_size=64,
        epochs=8,
        optimizer="adamw",
        learning_rate=3e-3,
        lr_schedule="cosine",
        lr_step_every=None,
        warmup_epochs=0.4,
        weight_decay=0.05,
        label_smoothing=0.0,
        mixed_precision=None,
        description="Offline demo: a small SK net on the embedded scales_demo dataset (Section 4.4)",
    )
)

EXPERIMENTS = {e.name: e for e in _REGISTRY}
# The paper's mobile model without a width in the name means 1.0x.
EXPERIMENTS["shufflenetv2_sk_imagenet"] = dataclasses.replace(
    EXPERIMENTS["shufflenetv2_sk_1.0x_imagenet"], name="shufflenetv2_sk_imagenet"
)


def get_experiment(name):
    """The registered experiment `name`; ValueError listing the names otherwise."""
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}. Registered: {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def _type_name(kind):
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a JSON object",
        tuple: "a JSON list",
    }.get(kind, kind.__name__)


def _convert(field, text):
    """Parses a command-line value for an Experiment field, by the field's type.

    Raises:
        ValueError: `text` is not a value of the field's type (the message says which type).
    """
    kind = field.type
    optional = typing.get_origin(kind) in (typing.Union, types.UnionType)  # X | None
    if optional:
        if text.lower() in ("none", "null"):
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{field.name} takes true or false. Received: {text!r}")
        return text.lower() in ("true", "1")
    expected = _type_name(kind) + (" or none" if optional else "")
    if kind in (int, float, str):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{field.name} takes {expected}. Received: {text!r}") from None
    try:
        value = json.loads(text)  # dicts and tuples
    except json.JSONDecodeError:
        value = None
    if kind is tuple and isinstance(value, list):
        return tuple(value)
    if not isinstance(value, kind):
        example = '{"key": value}' if kind is dict else "[0.5, 0.75]"
        raise ValueError(f"{field.name} takes {expected} such as {example}. Received: {text!r}")
    return value


def override(experiment, assignments):
    """Returns `experiment` with `["field=value", ...]` applied (values parsed by field type).

    Raises ValueError naming an unknown field and listing the known ones, or naming
    a value that is not of its field's type.

    Example:
        >>> override(get_experiment("scales_demo"), ["epochs=2", "batch_size=16"]).epochs
        2
    """
    fields = {f.name: f for f in dataclasses.fields(Experiment)}
    changes = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or key not in fields or key == "name":
            known = ", ".join(k for k in fields if k != "name")
            raise ValueError(f"Cannot set {assignment!r}: use field=value with a field among {known}")
        try:
            changes[key] = _convert(fields[key], text)
        except ValueError as error:
            raise ValueError(f"Cannot set {assignment!r}: {error}") from error
    return dataclasses.replace(experiment, **changes)


# Fields that must be at least 1, and the choices of the others the trainer reads.
POSITIVE_FIELDS = ("batch_size", "base_batch_size", "epochs", "image_size", "eval_image_size")
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("step", "cosine")
CHOICES = {
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
    "mixed_precision": (None, "none", "float32", "auto", "float16", "bfloat16"),
}


def check_experiment(experiment):
    """Checks the fields a run reads before it starts: sizes at least 1, known choices.

    The model and its arguments are checked by `training.model.check_model`, the
    data by `training.data.dataset_info`.

    Raises:
        ValueError: naming the field, the value received and what is accepted.

    Example:
        >>> check_experiment(override(get_experiment("scales_demo"), ["epochs=0"]))  # doctest: +SKIP
        ValueError: Cannot train scales_demo: epochs must be at least 1. Received: epochs=0
    """
    for name in POSITIVE_FIELDS:
        value = getattr(experiment, name)
        if value < 1:
            raise ValueError(
                f"Cannot train {experiment.name}: {name} must be at least 1. Received: {name}={value!r}"
            )
    for name, choices in CHOICES.items():
        value = getattr(experiment, name)
        if value not in choices:
            accepted = ", ".join(dict.fromkeys(str(c).lower() for c in choices))  # None is said "none"
            raise ValueError(
                f"Cannot train {experiment.name}: {name} must be one of {accepted}. Received: {name}={value!r}"
            )
