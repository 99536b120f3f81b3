"""make_dataset over tiny TFDS datasets built here: outputs, determinism, sharding, mixing."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_sknet.applications import preprocess_input
from tests.training import builders
from training.data import dataset_info, make_dataset, stages

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def raw_pixels(images):
    """Undoes preprocess_input: back to RGB in [0, 255]."""
    return images * IMAGENET_STD + IMAGENET_MEAN


def dominant_colour(images):
    """Index of the strongest channel of each image's centre (the label of builders.labelled_image)."""
    centre = raw_pixels(images)[:, :, images.shape[2] // 4 :].mean(axis=(1, 2))
    return centre.argmax(-1)


def test_eval_batches_are_preprocess_input_of_the_stored_images(tfds_dir):
    ds = make_dataset("scales_demo/tiny", "test", 20, data_dir=tfds_dir)
    stored = tfds.as_numpy(tfds.load("scales_demo/tiny", split="test", data_dir=tfds_dir, batch_size=-1))
    images, labels = (np.concatenate(parts) for parts in zip(*batches(ds)))
    assert images.dtype == np.float32 and images.shape == (48, 64, 64, 3)
    assert labels.dtype == np.int32
    np.testing.assert_allclose(images, preprocess_input(stored["image"].astype("float32")), atol=1e-6)
    np.testing.assert_array_equal(labels, stored["label"])
    assert [len(x) for x, _ in batches(ds)] == [20, 20, 8]  # evaluation keeps the last partial batch


def test_dataset_info_of_the_embedded_dataset(tfds_dir):
    info = dataset_info("scales_demo/tiny", data_dir=tfds_dir)
    assert info.num_classes == 8 and info.class_names[0] == "disc"
    assert info.splits == {"train": 96, "test": 48}
    assert (info.train_split, info.eval_split, info.image_size, info.style) == ("train", "test", 64, "flip")


def test_training_pipeline_is_deterministic_with_a_seed_and_random_without(tfds_dir):
    def run(seed, epochs=1):
        ds = make_dataset("tiny_jpegs", "train", 8, image_size=48, data_dir=tfds_dir, seed=seed)
        return [batches(ds) for _ in range(epochs)]

    first = run(seed=3, epochs=2)
    second = run(seed=3, epochs=2)
    for epoch_a, epoch_b in zip(first, second):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    # A new epoch reshuffles and re-augments; another seed differs.
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    assert not np.array_equal(first[0][0][0], run(seed=4)[0][0][0])
    assert not np.array_equal(run(seed=None)[0][0][0], run(seed=None)[0][0][0])


def test_imagenet_style_keeps_labels_with_their_images(tfds_dir):
    # Every image of tiny_jpegs is painted in its label's colour (grayscale files excepted).
    ds = make_dataset("tiny_jpegs", "train", 6, image_size=40, data_dir=tfds_dir, seed=0)
    images, labels = (np.concatenate(parts) for parts in zip(*batches(ds)))
    assert images.shape == (24, 40, 40, 3) and sorted(np.bincount(labels)) == [8, 8, 8]
    colourful = raw_pixels(images).std(axis=-1).mean(axis=(1, 2)) > 20
    assert colourful.sum() >= 18
    np.testing.assert_array_equal(dominant_colour(images)[colourful], labels[colourful])


@pytest.mark.parametrize("size", [224, 320])
def test_imagenet_style_evaluation_at_224_and_320(tfds_dir, size):
    ds = make_dataset("tiny_jpegs", "validation", 5, image_size=size, data_dir=tfds_dir)
    images, labels = (np.concatenate(parts) for parts in zip(*batches(ds)))
    assert images.shape == (12, size, size, 3)
    colourful = raw_pixels(images).std(axis=-1).mean(axis=(1, 2)) > 20
    np.testing.assert_array_equal(dominant_colour(images)[colourful], labels[colourful])
    # Gray JPEGs come out as RGB with equal channels.
    gray = raw_pixels(images[~colourful])
    assert len(gray) and np.abs(gray - gray[..., :1]).max() < 1e-3


def test_cifar_style_pads_crops_and_flips(tfds_dir):
    ds = make_dataset("tiny_cifar", "train", 10, style="cifar", image_size=32, data_dir=tfds_dir, seed=1)
    images, labels = (np.concatenate(parts) for parts in zip(*batches(ds)))
    assert images.shape == (30, 32, 32, 3)
    raw = raw_pixels(images)
    black_rows = (np.abs(raw).max(axis=(2, 3)) < 1e-3).sum(axis=1)
    black_cols = (np.abs(raw).max(axis=(1, 3)) < 1e-3).sum(axis=1)
    assert black_rows.max() <= 4 and black_cols.max() <= 4  # at most the 4 pixels of padding
    assert (black_rows + black_cols > 0).mean() > 0.5  # most crops show some padding
    np.testing.assert_array_equal(dominant_colour(images), labels)
    # Evaluation does not augment: the stored images, normalised.
    test = np.concatenate(
        [x for x, _ in batches(make_dataset("tiny_cifar", "test", 9, style="cifar", data_dir=tfds_dir))]
    )
    stored = tfds.as_numpy(tfds.load("tiny_cifar", split="test", data_dir=tfds_dir, batch_size=-1))["image"]
    np.testing.assert_allclose(test, preprocess_input(stored.astype("float32")), atol=1e-6)


def test_generic_tfds_dataset_with_small_images_defaults_to_the_cifar_style(tfds_dir):
    info = dataset_info("tiny_cifar", data_dir=tfds_dir)
    assert (info.style, info.image_size, info.eval_split) == ("cifar", 32, "test")
    assert dataset_info("tiny_jpegs", data_dir=tfds_dir).style == "imagenet"


def test_input_context_shards_the_split_between_pipelines(tfds_dir):
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2
        )
        ds = make_dataset("scales_demo/tiny", "test", 8, data_dir=tfds_dir, input_context=context)
        parts = batches(ds)
        assert all(len(x) <= 4 for x, _ in parts)  # per-replica batch = 8 / 2
        seen.append(np.concatenate([x for x, _ in parts]))
    everything = np.concatenate(
        [x for x, _ in batches(make_dataset("scales_demo/tiny", "test", 8, data_dir=tfds_dir))]
    )
    assert len(seen[0]) == len(seen[1]) == 24
    combined = np.concatenate(seen)
    # Disjoint halves that together are the split.
    keys = {x.tobytes() for x in combined}
    assert len(keys) == 48 and keys == {x.tobytes() for x in everything}


def test_mixup_and_cutmix_give_soft_one_hot_labels(tfds_dir):
    ds = make_dataset(
        "tiny_jpegs",
        "train",
        8,
        image_size=32,
        data_dir=tfds_dir,
        seed=0,
        label_format="one_hot",
        mixup_alpha=0.4,
        cutmix_alpha=1.0,
    )
    parts = batches(ds)
    labels = np.concatenate([y for _, y in parts])
    assert labels.dtype == np.float32 and labels.shape == (24, builders.NUM_CLASSES)
    np.testing.assert_allclose(labels.sum(-1), 1.0, atol=1e-5)
    assert (labels.max(-1) < 0.999).any()  # some labels are mixed
    assert (labels >= 0).all()
    # Deterministic with the seed, like the rest of the pipeline.
    again = batches(
        make_dataset(
            "tiny_jpegs",
            "train",
            8,
            image_size=32,
            data_dir=tfds_dir,
            seed=0,
            label_format="one_hot",
            mixup_alpha=0.4,
            cutmix_alpha=1.0,
        )
    )
    for (xa, ya), (xb, yb) in zip(parts, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_one_hot_without_mixing_and_in_evaluation(tfds_dir):
    ds = make_dataset(
        "tiny_jpegs",
        "validation",
        12,
        image_size=32,
        data_dir=tfds_dir,
        label_format="one_hot",
        mixup_alpha=0.4,
    )
    ((_, labels),) = batches(ds)
    assert set(np.unique(labels)) == {0.0, 1.0}  # evaluation never mixes
    np.testing.assert_array_equal(labels.sum(-1), 1.0)


def test_mixing_requires_one_hot_labels(tfds_dir):
    with pytest.raises(ValueError, match="label_format='one_hot'"):
        make_dataset("tiny_jpegs", "train", 8, data_dir=tfds_dir, mixup_alpha=0.2)


def test_rand_augment_changes_images_and_is_seeded(tfds_dir):
    def first_batch(rand_augment):
        ds = make_dataset(
            "scales_demo/tiny", "train", 16, data_dir=tfds_dir, seed=5, rand_augment=rand_augment
        )
        return next(iter(ds))[0].numpy()

    plain, augmented = first_batch(None), first_batch({"num_ops": 2, "factor": 0.8})
    assert plain.shape == augmented.shape
    assert np.abs(plain - augmented).mean() > 0.05
    np.testing.assert_array_equal(augmented, first_batch({"num_ops": 2, "factor": 0.8}))


def test_training_drops_the_partial_batch_and_repeats(tfds_dir):
    ds = make_dataset("scales_demo/tiny", "train", 40, data_dir=tfds_dir, seed=0)
    assert [len(x) for x, _ in batches(ds)] == [40, 40]
    repeated = make_dataset("scales_demo/tiny", "train", 40, data_dir=tfds_dir, seed=0, repeat=True)
    assert [len(x) for x, _ in repeated.take(5)] == [40] * 5


@pytest.mark.parametrize(
    "options",
    [
        dict(name="tiny_jpegs", image_size=32),
        dict(name="scales_demo/tiny", rand_augment=True),
        dict(name="tiny_jpegs", image_size=32, label_format="one_hot", mixup_alpha=0.4, cutmix_alpha=1.0),
    ],
    # Skipped before cropping (ImageNet style: never decoded), or made and dropped (seed-state layers).
    ids=["crops", "rand_augment", "mixing"],
)
def test_skip_batches_continues_the_same_stream(tfds_dir, options):
    options = dict(options)
    name = options.pop("name")

    def stream(skip, count):
        ds = make_dataset(
            name, "train", 8, data_dir=tfds_dir, seed=2, repeat=True, skip_batches=skip, **options
        )
        return batches(ds.take(count))

    # tiny_jpegs has 3 batches per epoch: the skip and the batches after it cross an epoch end.
    whole, resumed = stream(0, 5), stream(2, 3)
    assert len(resumed) == 3
    for (xa, ya), (xb, yb) in zip(whole[2:], resumed):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(whole[0][0], resumed[0][0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(style="fancy"), "style"),
        (dict(skip_batches=-1), "skip_batches"),
        (dict(label_format="dense"), "label_format"),
        (dict(crop_pct=1.5), "crop_pct"),
        (dict(area_range=(0.5, 0.1)), "area_range"),
        (dict(interpolation="lanczos7"), "interpolation"),
        (dict(cache=3), "cache"),
        (dict(rand_augment="strong"), "rand_augment"),
    ],
)
def test_bad_options_are_rejected(tfds_dir, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dataset("scales_demo/tiny", "train", 8, data_dir=tfds_dir, **kwargs)


def test_unknown_split_lists_the_available_ones(tfds_dir):
    with pytest.raises(ValueError, match=r"split='valid'.*'train', 'test'"):
        make_dataset("scales_demo/tiny", "valid", 8, data_dir=tfds_dir)


def test_the_stages_compose_to_make_dataset(tfds_dir):
    # The training pipeline of the embedded dataset with every random stage, built from the public
    # stages as a user would: the same batches, bit for bit, as make_dataset's.
    options = dict(rand_augment=True, label_format="one_hot", mixup_alpha=0.4, cutmix_alpha=1.0)
    expected = batches(make_dataset("scales_demo/tiny", "train", 16, data_dir=tfds_dir, seed=1, **options))

    seeds = stages.derive_seeds(1)
    source = stages.read_source(
        "scales_demo/tiny", "train", data_dir=tfds_dir, shuffle_files=True, seed=seeds.file
    )
    assert (source.num_examples, source.num_classes, source.style, source.image_size) == (96, 8, "flip", 64)
    ds = stages.decode_and_crop(source.dataset, 64)
    ds = stages.cache_and_shuffle(ds, cache=True, shuffle_buffer=source.num_examples, seed=seeds.shuffle)
    ds = stages.augment(ds, 64, source.style, seeds.element)
    ds = stages.rand_augment(ds, True, seeds.rand_augment)
    ds = stages.batch_examples(ds, 16, num_classes=8, label_format="one_hot", drop_remainder=True)
    ds = stages.mix(ds, 0.4, 1.0, seeds=(seeds.mixup, seeds.cutmix, seeds.switch))
    ds = stages.normalize_and_prefetch(ds)

    composed = batches(ds)
    assert len(composed) == len(expected) == 6
    for (xa, ya), (xb, yb) in zip(composed, expected):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_the_evaluation_stages_compose_to_make_dataset(tfds_dir):
    # ImageNet style: the centre crop decodes only its window of each JPEG.
    expected = batches(make_dataset("tiny_jpegs", "validation", 5, image_size=40, data_dir=tfds_dir))
    source = stages.read_source("tiny_jpegs", "validation", data_dir=tfds_dir)
    assert source.style == "imagenet"
    ds = stages.decode_and_crop(source.dataset, 40, crop_pct=0.875)
    ds = stages.normalize_and_prefetch(stages.batch_examples(ds, 5))
    composed = batches(ds)
    assert [len(x) for x, _ in composed] == [5, 5, 2]
    for (xa, ya), (xb, yb) in zip(composed, expected):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_a_users_own_images_through_the_stages():
    # Images of the user's own, in memory (uint8) and encoded (PNG), without any TFDS dataset.
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    labels = np.arange(6, dtype=np.int32) % 3
    pngs = [tf.io.encode_png(image).numpy() for image in images]

    decoded = [
        np.stack([x.numpy() for x, _ in stages.decode_and_crop(tf.data.Dataset.from_tensor_slices(data), 32)])
        for data in ((images, labels), (pngs, labels))
    ]
    np.testing.assert_array_equal(decoded[0], decoded[1])  # the same, decoded or not
    assert decoded[0].dtype == np.uint8 and decoded[0].shape == (6, 32, 32, 3)

    square = tf.data.Dataset.from_tensor_slices((images[:, :, :40], labels))
    flipped = [x.numpy() for x, _ in stages.augment(square, 40, "flip", seed=0)]
    mirrored = [np.array_equal(out, image[:, ::-1]) for out, image in zip(flipped, images[:, :, :40])]
    unchanged = [np.array_equal(out, image) for out, image in zip(flipped, images[:, :, :40])]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored) and any(unchanged)

    def pipeline():
        ds = stages.augment(square, 40, "flip", seed=0)
        ds = stages.batch_examples(ds, 3, num_classes=3, label_format="one_hot")
        ds = stages.mix(ds, cutmix_alpha=1.0, seeds=(1, 2, 3))
        return batches(stages.normalize_and_prefetch(ds))

    (x1, y1), (x2, y2) = pipeline()
    assert x1.shape == (3, 40, 40, 3) and y1.shape == (3, 3) and y1.dtype == np.float32
    np.testing.assert_allclose(np.concatenate([y1, y2]).sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(pipeline()[0][0], x1)  # seeded: the same again

    plain = batches(stages.normalize_and_prefetch(stages.batch_examples(square, 6)))
    np.testing.assert_allclose(plain[0][0], preprocess_input(images[:, :, :40].astype("float32")), atol=1e-5)
    np.testing.assert_array_equal(plain[0][1], labels)


def test_stages_reject_bad_options():
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, np.int32)))
    with pytest.raises(ValueError, match="cached_bytes"):
        stages.cache_and_shuffle(ds, cache="auto")
    with pytest.raises(ValueError, match="style='crop'"):
        stages.augment(ds, 8, "crop", seed=0)
    with pytest.raises(ValueError, match="num_classes=None"):
        stages.batch_examples(ds, 2, label_format="one_hot")
    with pytest.raises(ValueError, match="mixup_alpha=0.0"):
        stages.mix(stages.batch_examples(ds, 2, num_classes=2, label_format="one_hot"))
