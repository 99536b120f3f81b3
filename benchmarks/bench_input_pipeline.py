"""ImageNet-style input pipeline: images/s, decode-and-crop vs full decode, and input wait in training.

    python benchmarks/bench_input_pipeline.py [--images 512] [--batch 64] [--steps 10] [--no-write]
    python benchmarks/bench_input_pipeline.py --only-grain [--rounds 5]   # tf.data vs grain only

Generates `--images` JPEGs of ImageNet size (333-500 x 375-500 pixels, about
the quality and file size of ILSVRC-2012's) into a temporary TFDS dataset, then
measures on this machine:

1. images/s of `make_dataset(..., training=True)` (random-size crop to 224 + flip,
   preprocess_input, batched), reading the TFRecords or with the encoded files
   cached in memory, and of the evaluation pipeline (centre crop);
2. the same random-size crop decoded with `decode_and_crop_jpeg` (the pipeline's
   way: only the crop window) against decoding the whole JPEG first;
3. the share of a training step spent waiting on input: a small model
   (ShuffleNetV2 0.5x + SK, the lightweight recipe) trained for `--steps` steps
   from the live prefetched pipeline, timing each `next()` on the iterator,
   against the same steps on one batch held in memory;
4. tf.data against grain (the pipeline without TensorFlow), the same recipe on
   the same images: the embedded scales_demo training split (flip, batch, one-hot,
   MixUp) and a folder of the generated JPEGs (random-size crop 224 + flip),
   measured in alternating rounds: images/s and CPU time per image (both
   pipelines' threads), medians over the rounds.
Prints the tables and appends them to BENCHMARKS.md.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Before anything imports TensorFlow: keras_sknet turns its oneDNN kernels on unless
# TF_ENABLE_ONEDNN_OPTS says otherwise (keras_sknet.platform.prefer_onednn).
import keras_sknet  # noqa: E402,F401

# isort: split

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from benchmarks.common import append_markdown  # noqa: E402
from keras_sknet.applications import ShuffleNetV2SK  # noqa: E402
from training.data import (
    grain_pipeline,  # noqa: E402
    pipelines,  # noqa: E402
)
from training.data import preprocessing as pre  # noqa: E402

make_dataset = pipelines.make_dataset

NUM_CLASSES = 10
SIZES = ((375, 500), (500, 375), (333, 500), (500, 500), (400, 500))


def synthetic_photo(rng, height, width):
    """A photo-like image: smooth colour fields, stripes, mid-frequency texture and noise.

    At JPEG quality 92 these files average about 100 KB, like ILSVRC-2012's (about 110 KB).
    """

    def field(cells_h, cells_w, amplitude, offset=0.0):
        grid = rng.normal(offset, amplitude, (1, cells_h, cells_w, 3))
        return tf.image.resize(grid, [height, width], method="bicubic")[0].numpy()

    image = field(height // 50 + 2, width // 50 + 2, 60.0, 128.0) + field(
        height // 3 + 1, width // 3 + 1, 30.0
    )
    y, x = np.mgrid[0:height, 0:width]
    for _ in range(4):
        angle, frequency = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4)
        image += rng.uniform(5, 25) * np.sin(frequency * (x * np.cos(angle) + y * np.sin(angle)))[..., None]
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


class SyntheticImagenet(tfds.core.GeneratorBasedBuilder):
    """JPEGs of ImageNet size, generated for this benchmark (no download)."""

    VERSION = tfds.core.Version("1.0.0")
    num_images = 512

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
        return {"train": self._generate_examples(self.num_images)}

    def _generate_examples(self, count):
        rng = np.random.default_rng(0)
        for i in range(count):
            image = synthetic_photo(rng, *SIZES[i % len(SIZES)])
            yield i, {"image": tf.io.encode_jpeg(image, quality=92).numpy(), "label": i % NUM_CLASSES}


def images_per_second(ds, batches, warmup=2):
    """Throughput of a dataset of image batches or of (images, labels) batches."""
    iterator = iter(ds)
    for _ in range(warmup):
        next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
        count += int((batch[0] if isinstance(batch, tuple) else batch).shape[0])
    return count / (time.perf_counter() - start)


def decode_crop_rate(encoded, crop_window_only, repeats):
    """images/s of the random-size crop + resize alone, with or without decode-and-crop."""

    def full_decode_then_crop(image_bytes, seed):
        image = tf.io.decode_jpeg(image_bytes, channels=3)
        window = pre.random_crop_window(tf.shape(image), seed)
        image = tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])
        return pre.resize(image, 224)

    def decode_and_crop(image_bytes, seed):
        return pre.inception_crop(image_bytes, 224, seed)

    fn = decode_and_crop if crop_window_only else full_decode_then_crop
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    ds = tf.data.Dataset.zip((encoded, seeds)).map(fn, num_parallel_calls=tf.data.AUTOTUNE).batch(64)
    return images_per_second(ds.repeat(), repeats, warmup=1)


def step_wait_share(train, steps):
    """Fraction of loop time in `next()` (input wait), step times live vs one batch in memory."""
    model = ShuffleNetV2SK(alpha=0.5, weights=None, classes=NUM_CLASSES)
    model.compile("sgd", "sparse_categorical_crossentropy")
    iterator = iter(train.repeat())
    batch = next(iterator)
    for _ in range(2):  # compile and warm up
        model.train_on_batch(*batch)
    waiting, start = 0.0, time.perf_counter()
    for _ in range(steps):
        before = time.perf_counter()
        images, labels = next(iterator)
        waiting += time.perf_counter() - before
        model.train_on_batch(images, labels)
    live = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*batch)
    memory = (time.perf_counter() - start) / steps
    return waiting / (live * steps), live, memory


def rate_and_cpu(batches, count, warmup=2):
    """(images/s, CPU ms per image) of `count` batches of an iterable, after `warmup` batches."""
    iterator = iter(batches)
    for _ in range(warmup):
        next(iterator)
    images, start, cpu = 0, time.perf_counter(), time.process_time()
    for _ in range(count):
        images += int(next(iterator)[0].shape[0])
    return images / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / images


def write_jpeg_folder(root, count):
    """`count` synthetic photos as root/<class>/<i>.jpg (quality 92), as a user's image folder."""
    rng = np.random.default_rng(1)
    for i in range(count):
        folder = os.path.join(root, f"class_{i % NUM_CLASSES}")
        os.makedirs(folder, exist_ok=True)
        image = synthetic_photo(rng, *SIZES[i % len(SIZES)])
        with open(os.path.join(folder, f"{i:05d}.jpg"), "wb") as f:
            f.write(tf.io.encode_jpeg(image, quality=92).numpy())


def compare_grain(args, data_dir):
    """tf.data vs grain on the embedded dataset and on a JPEG folder, alternating rounds; a table."""
    folder = os.path.join(data_dir, "jpegs")
    write_jpeg_folder(folder, args.images)
    tfds.builder("scales_demo", data_dir=data_dir).download_and_prepare()
    cases = {
        "scales_demo train, 64 px: flip + one-hot + MixUp": dict(
            name="scales_demo",
            split="train",
            options=dict(label_format="one_hot", mixup_alpha=0.2),
            batches=args.batches * 4,
        ),
        f"folder of {args.images} JPEGs: random-size crop 224 + flip": dict(
            name="folder",
            split="train",
            options=dict(validate_files=False, image_size=224),
            batches=args.batches,
        ),
    }
    table = [
        "| data, recipe | tf.data img/s | grain img/s | grain / tf.data | tf.data CPU ms/img | grain CPU ms/img |",
        "|---|---|---|---|---|---|",
    ]
    for label, case in cases.items():
        source_dir = folder if case["name"] == "folder" else data_dir
        made = {}
        for path, make in (("tf", pipelines.make_dataset), ("grain", grain_pipeline.make_dataset)):
            made[path] = make(
                case["name"],
                case["split"],
                args.batch,
                training=True,
                repeat=True,
                seed=0,
                data_dir=source_dir,
                **case["options"],
            )
        results = {"tf": [], "grain": []}
        for _ in range(args.rounds):
            for path in ("tf", "grain"):
                results[path].append(rate_and_cpu(made[path], case["batches"]))
        rate = {path: statistics.median(r for r, _ in results[path]) for path in results}
        cpu = {path: statistics.median(c for _, c in results[path]) for path in results}
        ratio = statistics.median(g[0] / t[0] for g, t in zip(results["grain"], results["tf"]))
        table.append(
            f"| {label} | {rate['tf']:.0f} | {rate['grain']:.0f} | {ratio:.2f}x | {cpu['tf']:.2f} | "
            f"{cpu['grain']:.2f} |"
        )
        print(table[-1], flush=True)
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="JPEGs to generate")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10, help="batches timed per pipeline")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of tf.data vs grain")
    parser.add_argument("--only-grain", action="store_true", help="only the tf.data vs grain comparison")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="bench_input_")
    if args.only_grain:
        return write_grain_table(args, data_dir)
    SyntheticImagenet.num_images = args.images
    builder = SyntheticImagenet(data_dir=data_dir)
    start = time.perf_counter()
    builder.download_and_prepare()
    mean_kb = builder.info.splits["train"].num_bytes / args.images / 1024
    print(
        f"generated {args.images} JPEGs ({mean_kb:.0f} KB on average) in {time.perf_counter() - start:.0f} s"
    )

    common = dict(data_dir=data_dir, cache=False)
    train = make_dataset("synthetic_imagenet", "train", args.batch, training=True, **common)
    evaluation = make_dataset("synthetic_imagenet", "train", args.batch, training=False, **common)
    cached = make_dataset(
        "synthetic_imagenet", "train", args.batch, training=True, data_dir=data_dir, cache=True
    )
    rates = {
        "training pipeline (random-size crop 224 + flip), reading the TFRecords": images_per_second(
            train.repeat(), args.batches
        ),
        "training pipeline, encoded JPEGs cached in memory (after the first epoch)": images_per_second(
            cached.repeat(), args.batches, warmup=args.images // args.batch + 1
        ),
        "evaluation pipeline (centre crop 224)": images_per_second(evaluation.repeat(), args.batches),
    }
    # The same encoded JPEGs held in memory for both ways, measured alternately.
    files = builder.as_dataset(split="train", decoders={"image": tfds.decode.SkipDecoding()})
    encoded = tf.data.Dataset.from_tensor_slices([example["image"] for example in tfds.as_numpy(files)])
    crop_only, full = [], []
    for _ in range(2):
        crop_only.append(decode_crop_rate(encoded, True, args.batches))
        full.append(decode_crop_rate(encoded, False, args.batches))
    crop_only, full = max(crop_only), max(full)
    rates["random-size crop: decode the crop window only"] = crop_only
    rates["random-size crop: decode the whole JPEG, then crop"] = full
    share, live, memory = step_wait_share(train, args.steps)

    table = ["| what | value |", "|---|---|"]
    table += [f"| {name} | {rate:.0f} img/s |" for name, rate in rates.items()]
    table += [
        f"| decode-and-crop speed-up | {crop_only / full:.2f}x |",
        f"| ShuffleNetV2 0.5x + SK train step, batch {args.batch}, live pipeline | {1000 * live:.0f} ms |",
        f"| the same step on a batch held in memory | {1000 * memory:.0f} ms |",
        f"| share of the live step spent waiting on input (time in next()) | {100 * share:.0f}% |",
        f"| step slow-down from input (live / memory) | {live / memory:.2f}x |",
    ]
    print("\n".join(table))
    if not args.no_write:
        append_markdown(
            "Input pipeline: ImageNet-style training input (bench_input_pipeline.py)",
            table,
            [
                f"{args.images} synthetic JPEGs of ImageNet size ({mean_kb:.0f} KB average) in a TFDS dataset; "
                "the pipeline and the model share the machine's cores, as in training on one host."
            ],
        )
    write_grain_table(args, data_dir)


def write_grain_table(args, data_dir):
    table = compare_grain(args, data_dir)
    print("\n".join(table))
    if not args.no_write:
        append_markdown(
            "Input pipeline: tf.data vs grain (bench_input_pipeline.py)",
            table,
            [
                f"Batch {args.batch}, {args.rounds} alternating rounds, medians; CPU ms per image counts every "
                "thread of the process. grain runs its NumPy / Pillow transforms on "
                f"{grain_pipeline.DEFAULT_THREADS} threads; tf.data on its own thread pool. "
                "grain decodes a whole JPEG before its random crop (tf.data decodes only the crop window).",
            ],
        )


if __name__ == "__main__":
    main()
