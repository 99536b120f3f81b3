"""Tiny TFDS datasets built in a temp dir for the pipeline tests (no downloads).

`tiny_jpegs`: ImageNet-like, JPEG images of varied sizes and aspect ratios,
including grayscale JPEGs and a PNG stored where a JPEG is expected (both
occur in real ImageNet files). `tiny_cifar`: 32x32 PNG images, like cifar10.
The pixel content encodes the label, so a test can check labels stay with
their images.
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

NUM_CLASSES = 3
# (height, width) of the JPEG images: landscape, portrait, square, small.
JPEG_SIZES = ((60, 90), (96, 64), (72, 72), (40, 52))


def label_colour(label):
    """Pure colours per label so that a label survives cropping and resizing."""
    return np.array([(230, 20, 20), (20, 230, 20), (20, 20, 230)][label], dtype=np.uint8)


def labelled_image(label, height, width, rng):
    image = np.empty((height, width, 3), np.uint8)
    image[:] = label_colour(label)
    # A darker border marks the edges, so crops and flips are visible in tests.
    image[:, : max(1, width // 8)] //= 2
    noise = rng.integers(-8, 9, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


class TinyJpegs(tfds.core.GeneratorBasedBuilder):
    """ImageNet-style: JPEG images of varied sizes, label = dominant colour."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(24, seed=0),
            "validation": self._generate_examples(12, seed=1),
        }

    def _generate_examples(self, count, seed):
        rng = np.random.default_rng(seed)
        for i in range(count):
            label = i % NUM_CLASSES
            height, width = JPEG_SIZES[i % len(JPEG_SIZES)]
            image = labelled_image(label, height, width, rng)
            if i % 8 == 5:  # a grayscale JPEG: 1 channel in the file
                data = tf.io.encode_jpeg(image[..., :1], quality=95).numpy()
            elif i % 8 == 6:  # a PNG where a JPEG is expected
                data = tf.io.encode_png(image).numpy()
            else:
                data = tf.io.encode_jpeg(image, quality=95).numpy()
            yield i, {"image": data, "label": label}


class TinyCifar(tfds.core.GeneratorBasedBuilder):
    """CIFAR-style: 32x32 PNG images, label = dominant colour."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(32, 32, 3)),
                    "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(30, seed=0), "test": self._generate_examples(9, seed=1)}

    def _generate_examples(self, count, seed):
        rng = np.random.default_rng(seed)
        for i in range(count):
            yield i, {"image": labelled_image(i % NUM_CLASSES, 32, 32, rng), "label": i % NUM_CLASSES}
