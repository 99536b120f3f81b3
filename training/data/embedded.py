"""The embedded `scales_demo` dataset without TensorFlow: its sizes, and its splits as NumPy arrays.

`training.data.scales` registers the same dataset as a TFDS builder for the
`tf.data` pipeline; the grain pipeline renders it here (about 1.5 ms an image
on one core) and keeps each rendered split in a `.npz` file, so that a second
run reads it back. Both give the same images: `render_example(scene, split)`
draws scene `scene` from `[seed, split id, scene]`.

    images, labels = render_split("scales_demo/tiny", "train")   # (96, 64, 64, 3) uint8, (96,) int32
"""

import dataclasses
import os

import numpy as np

from training.data.render import CLASS_NAMES, SCALES, render_scene

NAME = "scales_demo"
SPLIT_IDS = {"train": 0, "test": 1}


@dataclasses.dataclass(frozen=True)
class EmbeddedConfig:
    """A size of the dataset.

    Attributes:
        name: the config's name ("default" or "tiny").
        num_train, num_test: examples per split (multiples of 24 keep classes
            and scales exactly balanced).
        image_size: image side in pixels.
        base_size: object diameter at scale 1.0 in pixels.
        seed: the seed every scene derives from.
        description: one line.
    """

    name: str
    num_train: int = 12000
    num_test: int = 2400
    image_size: int = 64
    base_size: int = 20
    seed: int = 0
    description: str = ""


CONFIGS = {
    "default": EmbeddedConfig("default", description="12,000 train / 2,400 test images of 64x64."),
    "tiny": EmbeddedConfig(
        "tiny", num_train=96, num_test=48, description="96 train / 48 test images, for tests."
    ),
}


def scene_seed(seed, split, scene):
    """The NumPy seed of one scene: `[seed, split id, scene index]`."""
    return [int(seed), SPLIT_IDS[split], int(scene)]


def example_label_and_scale(scene):
    """Class and scale of scene index `scene` (balanced over classes and scales)."""
    return scene % len(CLASS_NAMES), SCALES[(scene // len(CLASS_NAMES)) % len(SCALES)]


def render_example(scene, split="train", scale=None, config=None):
    """Renders scene `scene` of a split, optionally at another scale.

    With the stored scale this reproduces the dataset's image bit for bit;
    with `scale` set it gives the same scene with the object resized (the
    "same target object in different scales" of Section 4.4).

    Args:
        scene: the example's `scene` feature.
        split: "train" or "test".
        scale: None for the stored scale, or a scale in (0, 2.0].
        config: an `EmbeddedConfig` (or the TFDS builder's config; default: the default config).

    Returns:
        `(image, label, scale)` with image uint8 `(size, size, 3)`.

    Example:
        >>> images = [render_example(5, "test", scale=s)[0] for s in SCALES]
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"`split` must be one of {tuple(SPLIT_IDS)}. Received: split={split!r}")
    config = config or CONFIGS["default"]
    label, stored_scale = example_label_and_scale(int(scene))
    scale = stored_scale if scale is None else scale
    image, _ = render_scene(
        scene_seed(config.seed, split, scene),
        label,
        scale,
        image_size=config.image_size,
        base_size=config.base_size,
    )
    return image, label, scale


def config_of(name):
    """The `EmbeddedConfig` of "scales_demo", "scales_demo/tiny" or "scales_demo/tiny:1.0.0"."""
    base, _, rest = name.partition("/")
    config = rest.split(":")[0] or "default"
    if base.split(":")[0] != NAME or config not in CONFIGS:
        raise ValueError(
            f"Unknown embedded dataset. Received: name={name!r}; available: "
            + ", ".join([NAME] + [f"{NAME}/{c}" for c in CONFIGS if c != "default"])
        )
    return CONFIGS[config]


def default_cache_dir():
    """Where rendered splits are kept: `$KERAS_HOME/datasets/scales_demo` (default `~/.keras`)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets", NAME)


def render_split(name, split, cache_dir=None):
    """All images and labels of one split, rendered once and then read from `cache_dir`.

    Args:
        name: "scales_demo" or "scales_demo/tiny".
        split: "train" or "test".
        cache_dir: the folder of the rendered splits (default `default_cache_dir()`);
            False renders without reading or writing files.

    Returns:
        `(images, labels)`: uint8 `(n, size, size, 3)` and int32 `(n,)`, in scene order.

    Example:
        >>> images, labels = render_split("scales_demo/tiny", "test")
    """
    config = config_of(name)
    if split not in SPLIT_IDS:
        raise ValueError(
            f"Unknown split of {name!r}. Received: split={split!r}; available: {tuple(SPLIT_IDS)}"
        )
    count = config.num_train if split == "train" else config.num_test
    path = None
    if cache_dir is not False:
        fields = f"{config.name}-{config.image_size}px-seed{config.seed}-base{config.base_size}"
        path = os.path.join(cache_dir or default_cache_dir(), f"{fields}-{split}-{count}.npz")
        if os.path.exists(path):
            try:
                with np.load(path) as saved:
                    return saved["images"], saved["labels"]
            except (OSError, ValueError, KeyError):
                pass  # a damaged file is rendered again
    images = np.empty((count, config.image_size, config.image_size, 3), np.uint8)
    labels = np.empty(count, np.int32)
    for scene in range(count):
        images[scene], labels[scene], _ = render_example(scene, split, config=config)
    if path is not None:
        from keras_sknet.utils.files import atomic_path

        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, images=images, labels=labels)
    return images, labels
