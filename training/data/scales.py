"""`scales_demo`: the embedded offline dataset, registered as a TFDS builder.

Eight shape classes (`CLASS_NAMES`) drawn at three controlled scales, 1.0x,
1.5x and 2.0x of a base size (20, 30 and 40 pixels across on 64x64 images;
Section 4.4 enlarges objects from 1.0x to 2.0x and reads the SK attention), at
random positions, rotations and colours on cluttered backgrounds (see
`render.py`). Classes are defined by shape alone,
so a network must recognise each shape at every scale; the scale is stored as
a feature (`scale`) so that analysis can group attention by it, and `scene`
re-renders any example at another scale (`render_example`).

Labels and scales are balanced: example i of a split has class i mod 8 and
scale (i div 8) mod 3; TFDS shuffles the order on writing. Everything is
generated from `seed` with no download.

    import training.data  # registers the builder
    ds = tfds.load("scales_demo", split="train", data_dir=DIR)      # 64x64, 12,000 / 2,400
    ds = tfds.load("scales_demo/tiny", split="test", data_dir=DIR)  # for tests: 96 / 48
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from training.data.render import CLASS_NAMES, SCALES, render_scene

_SPLIT_IDS = {"train": 0, "test": 1}


@dataclasses.dataclass
class ScalesDemoConfig(tfds.core.BuilderConfig):
    """A size of the dataset.

    Attributes:
        num_train, num_test: examples per split (multiples of 24 keep classes
            and scales exactly balanced).
        image_size: image side in pixels.
        base_size: object diameter at scale 1.0 in pixels.
        seed: the seed every scene derives from.
    """

    num_train: int = 12000
    num_test: int = 2400
    image_size: int = 64
    base_size: int = 20
    seed: int = 0


def scene_seed(seed, split, scene):
    """The NumPy seed of one scene: `[seed, split id, scene index]`."""
    return [int(seed), _SPLIT_IDS[split], int(scene)]


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
        config: a `ScalesDemoConfig` (default: the default config).

    Returns:
        `(image, label, scale)` with image uint8 `(size, size, 3)`.

    Example:
        >>> images = [render_example(5, "test", scale=s)[0] for s in SCALES]
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"`split` must be one of {tuple(_SPLIT_IDS)}. Received: split={split!r}")
    config = config or ScalesDemo.BUILDER_CONFIGS[0]
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


class ScalesDemo(tfds.core.GeneratorBasedBuilder):
    """Shapes at 1.0x / 1.5x / 2.0x scale on clutter, generated offline (Section 4.4)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Eight shapes, three scales, 64x64."}
    BUILDER_CONFIGS = [
        ScalesDemoConfig(name="default", description="12,000 train / 2,400 test images of 64x64."),
        ScalesDemoConfig(
            name="tiny", description="96 train / 48 test images, for tests.", num_train=96, num_test=48
        ),
    ]

    def _info(self):
        size = self.builder_config.image_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.split("\n\n")[1],
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                    "scale": tfds.features.Scalar(np.float32, doc="object size relative to the 1.0x base"),
                    "scene": tfds.features.Scalar(np.int64, doc="scene index: re-render with render_example"),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.num_train),
            "test": self._generate_examples("test", config.num_test),
        }

    def _generate_examples(self, split, count):
        for scene in range(count):
            image, label, scale = render_example(scene, split, config=self.builder_config)
            yield scene, {"image": image, "label": label, "scale": np.float32(scale), "scene": scene}
