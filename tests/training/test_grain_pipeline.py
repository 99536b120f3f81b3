"""The grain input pipeline against the tf.data one: the same crops, flips and mixes on the same images;
its seeding, exact resume from an iterator's state, and sharding by process."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.training.helpers import BAD_FILES
from training import data
from training.data import folder as folder_lib
from training.data import numpy_augment as aug
from training.data import preprocessing as pre
from training.data.grain_pipeline import GrainBatches
from training.data.grain_pipeline import dataset_info as grain_info
from training.data.grain_pipeline import make_dataset as grain_dataset
from training.data.pipelines import make_dataset as tf_dataset

pytest.importorskip("grain", reason="the grain pipeline needs grain (pip install keras-sknet[grain])")

TINY = "scales_demo/tiny"


def ks_statistic(a, b):
    """The two-sample Kolmogorov-Smirnov distance of two samples."""
    grid = np.sort(np.concatenate([a, b]))
    return np.abs(
        np.searchsorted(np.sort(a), grid, "right") / len(a)
        - np.searchsorted(np.sort(b), grid, "right") / len(b)
    ).max()


@pytest.fixture(scope="module")
def grain_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("grain"))


@pytest.mark.parametrize(
    "height, width, size, interpolation",
    [(57, 83, 32, "bilinear"), (40, 30, 64, "bilinear"), (64, 64, 64, "bilinear"), (100, 77, 24, "bicubic")],
)
def test_eval_centre_crop_matches_tensorflow(height, width, size, interpolation):
    image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = pre.center_crop(tf.io.encode_png(image), size, 0.875, interpolation).numpy()
    got = aug.center_crop(image, size, 0.875, interpolation)
    assert got.dtype == np.float32 and got.shape == (size, size, 3)
    # Identical up to float32 rounding: 1e-5 of the value range.
    np.testing.assert_allclose(got, expected, rtol=0, atol=255 * 1e-5)


def test_decoding_matches_tensorflow_on_every_kind_of_file(image_folder):
    folder = folder_lib.list_image_folder(image_folder)
    paths = [path for path, _ in folder.files["all"]]
    bad = {os.path.join(image_folder, name) for name in BAD_FILES}
    assert {paths[i] for i in folder_lib.find_undecodable_pil(paths)} == bad
    assert folder_lib.find_undecodable_pil(paths) == folder_lib.find_undecodable(paths)
    for path in sorted(set(paths) - bad):
        expected = pre.decode_rgb(tf.io.read_file(path)).numpy()
        got = aug.read_rgb(path)
        assert got.shape == expected.shape, path
        difference = np.abs(got.astype(int) - expected)
        if path.endswith(".png"):  # lossless: the same pixels
            assert difference.max() == 0, path
        else:  # TensorFlow's and Pillow's libjpeg builds upsample chroma a little differently
            assert difference.max() <= 8 and difference.mean() < 2, path


def test_random_crop_windows_follow_tensorflows_distribution():
    height, width, count = 120, 90, 3000
    shape = tf.constant([height, width, 3])
    tf_windows = np.array(
        [pre.random_crop_window(shape, tf.constant([i, 1])).numpy() for i in range(count)], np.float64
    )
    rng = np.random.default_rng(0)
    np_windows = np.array([aug.random_crop_window(height, width, rng) for _ in range(count)], np.float64)
    for windows in (tf_windows, np_windows):
        assert (windows[:, 0] + windows[:, 2] <= height).all() and (
            windows[:, 1] + windows[:, 3] <= width
        ).all()
    area = [w[:, 2] * w[:, 3] / (height * width) for w in (tf_windows, np_windows)]
    aspect = [w[:, 3] / w[:, 2] for w in (tf_windows, np_windows)]
    assert 0.08 * 0.95 <= area[1].min() and area[1].max() <= 1.0
    assert 0.75 * 0.95 <= aspect[1].min() and aspect[1].max() <= 4 / 3 * 1.05
    # 3,000 draws each: a two-sample KS distance of 0.042 is the 1% level.
    assert ks_statistic(*area) < 0.045 and ks_statistic(*aspect) < 0.045
    # The crop's position: uniform over the room left, as TensorFlow's.
    room = [(w[:, 0] + 0.5) / (height - w[:, 2] + 1) for w in (tf_windows, np_windows)]
    assert ks_statistic(*room) < 0.045


def _flipped(batch_images, originals):
    """Per image: 1 if it equals its original mirrored, 0 if unchanged."""
    out = []
    for image in batch_images:
        if any((image == o).all() for o in originals):
            out.append(0)
        else:
            assert any((image == o[:, ::-1]).all() for o in originals)
            out.append(1)
    return out


def test_flip_rate_and_same_images_as_the_tf_pipeline(tfds_dir, grain_cache):
    common = dict(training=True, style="flip", seed=3, label_format="sparse")
    originals = data.embedded.render_split(TINY, "train", cache_dir=False)[0]
    raw = {"grain": [], "tf": []}
    for epoch in range(4):
        batches = grain_dataset(TINY, "train", 32, data_dir=grain_cache, **{**common, "seed": epoch})
        for images, _ in batches:
            raw["grain"] += _flipped(_denormalize(images), originals)
        tf_batches = tf_dataset(TINY, "train", 32, data_dir=tfds_dir, **{**common, "seed": epoch})
        for images, _ in tf_batches.as_numpy_iterator():
            raw["tf"] += _flipped(_denormalize(images), originals)
    # The same 96 images in both pipelines (TFDS's copy of the embedded dataset is rendered alike).
    assert len(raw["grain"]) == len(raw["tf"]) == 4 * 96
    for rate in (np.mean(raw["grain"]), np.mean(raw["tf"])):
        assert abs(rate - 0.5) < 0.08


def _denormalize(images):
    mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], np.float32) * 255
    return np.round(images * std + mean).astype(np.uint8)


def _mix_weights(labels):
    """The larger of the two label weights of each mixed example whose two classes differ."""
    labels = np.asarray(labels)
    two = (labels > 1e-6).sum(axis=1) == 2
    return labels[two].max(axis=1)


def test_mixup_and_cutmix_weights_follow_kerass_layers(tfds_dir, grain_cache):
    weights = {}
    for mode, options in (("mixup", dict(mixup_alpha=0.4)), ("cutmix", dict(cutmix_alpha=1.0))):
        for name, make, data_dir in (("grain", grain_dataset, grain_cache), ("tf", tf_dataset, tfds_dir)):
            found = []
            for seed in range(6):
                batches = make(
                    TINY,
                    "train",
                    32,
                    seed=seed,
                    label_format="one_hot",
                    data_dir=data_dir,
                    style="none",
                    **options,
                )
                iterator = batches if name == "grain" else batches.as_numpy_iterator()
                for _, labels in iterator:
                    found.append(_mix_weights(labels))
            weights[mode, name] = np.concatenate(found)
    for mode in ("mixup", "cutmix"):
        grain_w, tf_w = weights[mode, "grain"], weights[mode, "tf"]
        assert len(grain_w) > 300 and len(tf_w) > 300
        assert ks_statistic(grain_w, tf_w) < 0.15, mode
        assert abs(grain_w.mean() - tf_w.mean()) < 0.04, mode


def test_mixed_labels_are_the_images_proportions():
    rng = np.random.default_rng(0)
    images = np.stack([np.full((32, 32, 3), i, np.float32) for i in range(8)])  # image i is all i
    labels = np.eye(8, dtype=np.float32)
    classes = np.arange(8, dtype=np.float32)
    for _ in range(20):
        mixed, mixed_labels = aug.cutmix(images, labels, rng, 1.0)
        np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, atol=1e-6)
        for i in range(8):
            # The share of image i's own pixels is its own label's weight (up to the box's pixel edges).
            own = (mixed[i, ..., 0] == i).mean()
            assert abs(mixed_labels[i, i] - own) < 0.07
        mixed, mixed_labels = aug.mixup(images, labels, rng, 0.2)
        np.testing.assert_allclose(mixed[:, 0, 0, 0], mixed_labels @ classes, atol=1e-4)


def test_an_iterator_restored_mid_epoch_yields_the_batches_of_an_uninterrupted_one(grain_cache):
    batches = grain_dataset(
        TINY,
        "train",
        8,
        seed=5,
        label_format="one_hot",
        mixup_alpha=0.2,
        cutmix_alpha=1.0,
        data_dir=grain_cache,
    )
    uninterrupted = list(batches)
    assert len(uninterrupted) == 12
    iterator = iter(batches)
    for _ in range(5):
        next(iterator)
    state = iterator.get_state()
    del iterator  # the run dies; a new process makes the same pipeline and restores the state
    restored = iter(
        grain_dataset(
            TINY,
            "train",
            8,
            seed=5,
            label_format="one_hot",
            mixup_alpha=0.2,
            cutmix_alpha=1.0,
            data_dir=grain_cache,
        )
    )
    restored.set_state(state)
    rest = list(restored)
    assert len(rest) == 7
    for (x, y), (ex, ey) in zip(rest, uninterrupted[5:]):
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)
    # skip_batches (the trainer's resume) gives the same batches, computing none of the skipped ones.
    skipped = list(
        grain_dataset(
            TINY,
            "train",
            8,
            seed=5,
            label_format="one_hot",
            mixup_alpha=0.2,
            cutmix_alpha=1.0,
            data_dir=grain_cache,
            skip_batches=5,
        )
    )
    for (x, _), (ex, _) in zip(skipped, uninterrupted[5:]):
        np.testing.assert_array_equal(x, ex)


def test_seeds_per_epoch(grain_cache):
    def first(seed):
        return grain_dataset(TINY, "train", 16, seed=seed, data_dir=grain_cache)[0][0]

    np.testing.assert_array_equal(first(1), first(1))
    assert not np.array_equal(first(1), first(2))
    # One repeated stream: the second epoch is shuffled anew, not the first again.
    endless = grain_dataset(TINY, "train", 16, seed=1, data_dir=grain_cache, repeat=True)
    assert not np.array_equal(endless[6][1], endless[0][1])
    np.testing.assert_array_equal(endless[0][0], first(1))


@pytest.mark.parametrize("training", [False, True])
def test_two_shards_are_disjoint_and_together_the_whole_epoch(grain_cache, training):
    options = dict(training=training, style="none", data_dir=grain_cache, seed=0, drop_remainder=False)
    shards = [grain_dataset(TINY, "test", 8, shard_index=i, shard_count=2, **options) for i in range(2)]
    seen = []
    for shard in shards:
        keys = [image.tobytes() for images, _ in shard for image in _denormalize(images)]
        assert all(len(images) == 4 for images, _ in shard)
        seen.append(keys)
    everything = [image.tobytes() for image in data.embedded.render_split(TINY, "test", cache_dir=False)[0]]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(everything)


def test_folder_pipelines_give_the_tf_pipelines_eval_crops(image_folder):
    common = dict(data_dir=image_folder, training=False, image_size=32, validation_fraction=0.0)
    grain_images = np.concatenate([x for x, _ in grain_dataset("folder", "all", 4, **common)])
    tf_images = np.concatenate([x for x, _ in tf_dataset("folder", "all", 4, **common).as_numpy_iterator()])
    assert grain_images.shape == tf_images.shape
    # Rounded to uint8 in both after the crop; JPEG decoders may differ by a level or two.
    assert np.abs(_denormalize(grain_images).astype(int) - _denormalize(tf_images)).mean() < 0.5
    train = grain_dataset(
        "folder", "all", 4, data_dir=image_folder, image_size=24, seed=0, label_format="one_hot"
    )
    images, labels = train[0]
    assert images.shape == (4, 24, 24, 3) and labels.shape == (4, 3)


def test_choices_and_refusals(grain_cache, monkeypatch):
    assert grain_info(TINY).splits == {"train": 96, "test": 48}
    with pytest.raises(ValueError, match="grain input pipeline reads scales_demo and folder.*name='cifar10'"):
        grain_dataset("cifar10", "train", 8)
    with pytest.raises(ValueError, match="RandAugment runs in the tf.data pipeline only"):
        grain_dataset(TINY, "train", 8, rand_augment=True, data_dir=grain_cache)
    with pytest.raises(ValueError, match="batch_size=6 with shard_count=4"):
        grain_dataset(TINY, "train", 6, shard_count=4, data_dir=grain_cache)
    with pytest.raises(ValueError, match="interpolation"):
        grain_dataset(TINY, "train", 8, interpolation="area", data_dir=grain_cache)
    with pytest.raises(ValueError, match="input_pipeline"):
        data.set_input_pipeline("torch")
    assert data.input_pipeline() == "tf"  # auto on this process's tensorflow backend
    monkeypatch.setattr(data, "_chosen", "auto")
    data.set_input_pipeline("grain")
    assert isinstance(data.make_dataset(TINY, "test", 16, data_dir=grain_cache), GrainBatches)
    data.set_input_pipeline("auto")


def test_evaluation_batches_padded_for_the_devices(grain_cache):
    from training.inputs import pad_to_multiple

    batches = grain_dataset(TINY, "test", 20, data_dir=grain_cache, label_format="one_hot")
    padded = pad_to_multiple(batches, 8)
    assert len(padded) == 3
    (x1, y1, w1), (x3, y3, w3) = padded[0], padded[2]
    assert (x1.shape, y1.shape, x3.shape, y3.shape) == ((24, 64, 64, 3), (24, 8), (8, 64, 64, 3), (8, 8))
    np.testing.assert_array_equal(w1, [1] * 20 + [0] * 4)
    np.testing.assert_array_equal(w3, [1] * 8)
    np.testing.assert_array_equal(x1[:20], batches[0][0])
    assert not x1[20:].any() and not y1[20:].any()


@pytest.mark.parametrize("mix", [{}, {"mixup_alpha": 0.2}], ids=["rows-read", "whole-batch-mixed"])
def test_batch_rows_of_each_process_put_together_are_the_whole_batches(grain_cache, mix):
    """Several JAX processes: each feeds its rows of the batches one process would read."""
    options = dict(seed=3, label_format="one_hot", repeat=True, skip_batches=2, data_dir=grain_cache, **mix)
    whole = grain_dataset(TINY, "train", 16, **options).take(3)
    parts = [
        grain_dataset(TINY, "train", 16, batch_rows=rows, **options).take(3) for rows in ((0, 8), (8, 16))
    ]
    for (images, labels), (images0, labels0), (images1, labels1) in zip(whole, *parts):
        assert len(images0) == len(images1) == 8
        np.testing.assert_array_equal(images, np.concatenate([images0, images1]))
        np.testing.assert_array_equal(labels, np.concatenate([labels0, labels1]))
    with pytest.raises(ValueError, match="batch_rows.*drop_remainder=True"):
        grain_dataset(TINY, "test", 16, batch_rows=(0, 8), data_dir=grain_cache)
    with pytest.raises(ValueError, match=r"0 <= start < stop <= the batch size 16"):
        grain_dataset(TINY, "train", 16, batch_rows=(8, 20), data_dir=grain_cache)


def test_evaluation_batches_cut_into_the_processes_parts(grain_cache):
    """Each process feeds its part of each padded evaluation batch; together the whole batch."""
    from training.inputs import pad_to_multiple

    batches = grain_dataset(TINY, "test", 20, data_dir=grain_cache, label_format="one_hot")
    whole = pad_to_multiple(batches, 4)
    parts = [pad_to_multiple(batches, 4, part, 2) for part in (0, 1)]
    for index in range(len(whole)):
        for column in range(3):
            together = np.concatenate([part[index][column] for part in parts])
            np.testing.assert_array_equal(together, whole[index][column])
    # tf.data: 8 images in batches of 5 and 3, padded to 8 and 4 rows, of which process 1 feeds 4 and 2.
    images, labels = whole[2][0], whole[2][1]
    tf_batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(5)
    tf_whole = list(pad_to_multiple(tf_batches, 4).as_numpy_iterator())
    tf_part = list(pad_to_multiple(tf_batches, 4, 1, 2).as_numpy_iterator())
    assert [len(x) for x, _, _ in tf_whole] == [8, 4] and [len(x) for x, _, _ in tf_part] == [4, 2]
    for part, batch in zip(tf_part, tf_whole):
        for column in range(3):
            np.testing.assert_array_equal(part[column], batch[column][len(batch[column]) // 2 :])
