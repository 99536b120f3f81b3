"""The options and seeds both input pipelines share (`tf.data` and grain); imports NumPy only.

Either pipeline draws its randomness from the same per-stage seeds
(`derive_seeds`) and takes its options from the same constants, so that a
recipe means the same on both.
"""

from typing import NamedTuple

import numpy as np

# Random-size crop defaults of the paper's ImageNet recipe (Section 4.1, [42]).
STANDARD_AREA_RANGE = (0.08, 1.0)
# "Slightly less aggressive scale augmentation" for the lightweight models
# (Section 4.1). The paper gives no numbers; MobileNet/ShuffleNet limit the
# smallest crops, and 25% is the common choice of their reimplementations.
LIGHTWEIGHT_AREA_RANGE = (0.25, 1.0)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
DEFAULT_CROP_PCT = 0.875
INTERPOLATIONS = ("bilinear", "bicubic", "area", "nearest")
LABEL_FORMATS = ("sparse", "one_hot")
# Pipeline styles: "imagenet" (random-size crop / centre crop), "cifar" (pad 4 + crop + flip),
# "flip" (flip only), "none".
STYLES = ("imagenet", "cifar", "flip", "none")
# cache="auto" keeps a split in memory when it takes at most this much there (decoded images, or
# the encoded files for the ImageNet style's training split).
CACHE_BUDGET_BYTES = 2 * 1024**3
RAND_AUGMENT_DEFAULTS = {"num_ops": 2, "factor": 0.5}


def check_choice(name, value, choices):
    """Raises ValueError naming `value` and the `choices` unless it is one of them."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")


class Seeds(NamedTuple):
    """The int31 seeds of one input pipeline's random streams (see `derive_seeds`)."""

    file: int
    shuffle: int
    element: int
    rand_augment: int
    mixup: int
    cutmix: int
    switch: int


def derive_seeds(seed, pipeline_id=0):
    """Independent seeds for each stage, different for each input pipeline.

    Args:
        seed: the pipeline's int seed.
        pipeline_id: the input pipeline's index (`InputContext.input_pipeline_id`,
            or the shard index of a grain pipeline).

    Returns:
        A `Seeds` of seven int31 seeds: file order, shuffle, per-element crops and
        flips, RandAugment, MixUp, CutMix, and the MixUp/CutMix switch.

    Example:
        >>> seeds = derive_seeds(0)
        >>> ds = augment(ds, 64, "flip", seeds.element)
    """
    state = np.random.SeedSequence([int(seed), int(pipeline_id)]).generate_state(len(Seeds._fields))
    return Seeds(*(int(s) % (2**31 - 1) for s in state))


def check_arguments(
    *,
    batch_size,
    image_size,
    style,
    label_format,
    interpolation,
    crop_pct,
    area_range,
    aspect_ratio_range,
    mixup_alpha,
    cutmix_alpha,
    skip_batches,
    mixing,
    cache,
):
    """Raises ValueError for a bad option of `make_dataset` (either pipeline), before any dataset is read."""
    if style is not None:
        check_choice("style", style, STYLES)
    check_choice("label_format", label_format, LABEL_FORMATS)
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"`image_size` must be a positive int. Received: image_size={image_size!r}")
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"`crop_pct` must be in (0, 1]. Received: crop_pct={crop_pct!r}")
    for range_name, value in (("area_range", area_range), ("aspect_ratio_range", aspect_ratio_range)):
        if len(value) != 2 or not 0.0 < value[0] <= value[1]:
            raise ValueError(f"`{range_name}` must be (min, max) with 0 < min <= max. Received: {value!r}")
    if area_range[1] > 1.0:
        raise ValueError(f"`area_range` fractions must be at most 1. Received: area_range={area_range!r}")
    if mixup_alpha < 0 or cutmix_alpha < 0 or cutmix_alpha > 1:
        raise ValueError(
            f"`mixup_alpha` must be >= 0 and `cutmix_alpha` in [0, 1]. Received: mixup_alpha={mixup_alpha!r}, "
            f"cutmix_alpha={cutmix_alpha!r}"
        )
    if mixing and label_format != "one_hot":
        raise ValueError(
            "MixUp and CutMix mix the labels of two images: pass label_format='one_hot' (labels become "
            f"float32 (batch, num_classes) soft labels). Received: label_format={label_format!r}"
        )
    if not isinstance(skip_batches, int) or skip_batches < 0:
        raise ValueError(f"`skip_batches` must be an int >= 0. Received: skip_batches={skip_batches!r}")
    if not (cache in ("auto", True, False) or isinstance(cache, str)):
        raise ValueError(f"`cache` must be 'auto', True, False or a file path. Received: cache={cache!r}")
