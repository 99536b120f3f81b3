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

from keras_sknet.weights.published import CaffeWeights, PretrainedConfig
from keras_sknet.weights.records import MODELS

# Derived views of the records, by model function name (one fact, one place: the record).
PRETRAINED = {name: record.pretrained for name, record in MODELS.items() if record.pretrained}
# Model functions whose weights have a timm architecture (the converter's command line accepts these).
TIMM_ARCHITECTURES = {
    name: record.timm_architecture for name, record in MODELS.items() if record.timm_architecture
}
CAFFE_WEIGHTS = {name: record.caffe for name, record in MODELS.items() if record.caffe}

__all__ = [
    "CAFFE_WEIGHTS",
    "PRETRAINED",
    "TIMM_ARCHITECTURES",
    "CaffeWeights",
    "PretrainedConfig",
    "caffe_weights_config",
    "pretrained_config",
]


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
