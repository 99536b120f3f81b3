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

from training.data.embedded import (  # noqa: F401  (importable here, as before)
    CONFIGS,
    SPLIT_IDS,
    example_label_and_scale,
    render_example,
    scene_seed,
)
from training.data.render import CLASS_NAMES, SCALES  # noqa: F401


@dataclasses.dataclass
class ScalesDemoConfig(tfds.core.BuilderConfig):
    """A size of the dataset (`training.data.embedded.CONFIGS` holds them).

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


class ScalesDemo(tfds.core.GeneratorBasedBuilder):
    """Shapes at 1.0x / 1.5x / 2.0x scale on clutter, generated offline (Section 4.4)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Eight shapes, three scales, 64x64."}
    BUILDER_CONFIGS = [
        ScalesDemoConfig(
            name=c.name,
            description=c.description,
            num_train=c.num_train,
            num_test=c.num_test,
            image_size=c.image_size,
            base_size=c.base_size,
            seed=c.seed,
        )
        for c in CONFIGS.values()
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
