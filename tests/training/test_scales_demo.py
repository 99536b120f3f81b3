"""The embedded scales_demo dataset: rendering, scale control, the TFDS builder."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from training.data import ScalesDemo, render_example
from training.data.render import CLASS_NAMES, SCALES, _shape_coverage, render_scene, shape_mask

TINY = ScalesDemo.builder_configs["tiny"]


def test_rendering_is_a_function_of_the_seed():
    a, info = render_scene([1, 2, 3], label=4, scale=1.5)
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
    np.testing.assert_array_equal(a, render_scene([1, 2, 3], label=4, scale=1.5)[0])
    assert not np.array_equal(a, render_scene([1, 2, 4], label=4, scale=1.5)[0])
    assert info["radius"] == 20 / 2 * 1.5


def test_changing_the_scale_changes_only_the_object():
    images = {s: render_scene(11, label=2, scale=s) for s in SCALES}
    center = images[1.0][1]["center"]
    y, x = np.mgrid[0:64, 0:64] + 0.5
    # Outside the largest object's reach, every pixel is the same in the three renders.
    outside = np.hypot(x - center[0], y - center[1]) > 20 * 0.8 * np.sqrt(2) + 2
    for s in (1.5, 2.0):
        np.testing.assert_array_equal(images[s][0][outside], images[1.0][0][outside])
        assert images[s][1]["center"].tolist() == center.tolist()
    changed = [(images[s][0] != images[1.0][0]).any(-1).sum() for s in (1.5, 2.0)]
    assert 0 < changed[0] < changed[1]


@pytest.mark.parametrize("label", range(len(CLASS_NAMES)))
def test_object_area_grows_with_the_square_of_the_scale(label):
    areas = [_shape_coverage(label, 64, (32.0, 32.0), 8.0 * s, 0.3)[1].sum() for s in SCALES]
    np.testing.assert_allclose(np.array(areas) / areas[0], np.square(SCALES), rtol=0.06)


def test_shape_areas_match_geometry():
    # Analytic areas in units of radius^2: disc pi, ring pi (1 - 0.55^2), square 1.6^2.
    fine = np.linspace(-1.2, 1.2, 1201)
    u, v = np.meshgrid(fine, fine)
    cell = (fine[1] - fine[0]) ** 2
    expected = {
        "disc": np.pi,
        "ring": np.pi * (1 - 0.55**2),
        "square": 1.6**2,
        "frame": 1.6**2 - 0.84**2,
        "triangle": 3 * np.sqrt(3) / 4,
        "plus": 2 * (0.6 * 1.9) - 0.6**2,
    }
    for name, area in expected.items():
        measured = shape_mask(CLASS_NAMES.index(name), u, v).sum() * cell
        assert measured == pytest.approx(area, rel=0.01), name


def test_classes_are_different_shapes():
    fine = np.linspace(-1.2, 1.2, 241)
    u, v = np.meshgrid(fine, fine)
    masks = [shape_mask(i, u, v) for i in range(len(CLASS_NAMES))]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            iou = (masks[i] & masks[j]).sum() / (masks[i] | masks[j]).sum()
            assert iou < 0.8, (CLASS_NAMES[i], CLASS_NAMES[j])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(label=8), "label"),
        (dict(scale=2.5), "scale"),
        (dict(scale=0), "scale"),
        (dict(image_size=32), "image_size"),
    ],
)
def test_render_rejects_bad_arguments(kwargs, match):
    args = {"seed": 0, "label": 1, "scale": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        render_scene(**args)


def test_tfds_builder_is_registered_and_balanced(tfds_dir):
    assert "scales_demo" in tfds.list_builders(with_community_datasets=False)
    ds = tfds.as_numpy(tfds.load("scales_demo/tiny", split="train", data_dir=tfds_dir, batch_size=-1))
    assert ds["image"].shape == (96, 64, 64, 3) and ds["image"].dtype == np.uint8
    assert np.bincount(ds["label"]).tolist() == [12] * 8
    values, counts = np.unique(ds["scale"], return_counts=True)
    assert values.tolist() == list(SCALES) and counts.tolist() == [32] * 3
    assert sorted(ds["scene"].tolist()) == list(range(96))
    assert ds["scene"].tolist() != list(range(96))  # TFDS shuffled the examples on writing


def test_stored_examples_re_render_bit_for_bit(tfds_dir):
    ds = tfds.as_numpy(tfds.load("scales_demo/tiny", split="test", data_dir=tfds_dir).take(6))
    for example in ds:
        image, label, scale = render_example(int(example["scene"]), "test", config=TINY)
        np.testing.assert_array_equal(image, example["image"])
        assert label == example["label"] and scale == pytest.approx(example["scale"])
        # The same scene at the other scales (Section 4.4's "same object in different scales").
        others = [render_example(int(example["scene"]), "test", scale=s, config=TINY)[0] for s in SCALES]
        assert sum(np.array_equal(o, example["image"]) for o in others) == 1


def test_prepared_dataset_reads_back_from_its_directory(tfds_dir):
    builder = tfds.builder_from_directory(f"{tfds_dir}/scales_demo/tiny/1.0.0")
    assert builder.info.splits["test"].num_examples == 48
    assert builder.info.features["label"].names == list(CLASS_NAMES)
    example = next(iter(tfds.as_numpy(builder.as_dataset(split="test"))))
    assert set(example) == {"image", "label", "scale", "scene"}


def test_generation_is_deterministic(tfds_dir, tmp_path):
    builder = tfds.builder("scales_demo/tiny", data_dir=str(tmp_path))
    builder.download_and_prepare()
    again = tfds.as_numpy(builder.as_dataset(split="test", batch_size=-1))
    first = tfds.as_numpy(tfds.load("scales_demo/tiny", split="test", data_dir=tfds_dir, batch_size=-1))
    np.testing.assert_array_equal(again["scene"], first["scene"])
    np.testing.assert_array_equal(again["image"], first["image"])
