"""Backbones: the feature pyramid of every family, and `output_stride` against timm.

timm runs in a subprocess (importing TensorFlow and then torchvision in one
process crashes): it builds SK-ResNet-18, SKNet-50 and SE-ResNeXt-50 (whose ResNeXt unit
stands for ResNeXt-50's too) with 1, 1, 1, 2 units per stage (timm's own classes, fewer units), randomises
every BatchNorm, saves the checkpoints and the maps of `features_only=True`
at output strides 32, 16 and 8 for an odd input size. Each checkpoint goes
through the public path, `SKNet(..., weights=checkpoint, output_stride=s)` and
`feature_extractor`, and every level must match, relative to its largest
value, to 1e-4. The two units of the last stage cover both dilations of a
dilated stage (its first unit's `first_dilation` and the others').
"""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_sknet import applications
from keras_sknet.applications import feature_extractor, pyramid_layer_names
from keras_sknet.applications import skresnet as skresnet_module
from tests.helpers import op_by_op
from tests.support import TIMM_REFERENCE_SCRIPT

HAVE_TIMM = all(importlib.util.find_spec(m) is not None for m in ("torch", "timm", "safetensors"))
NEEDS_TIMM = pytest.mark.skipif(
    not HAVE_TIMM and os.environ.get("KERAS_SKNET_REQUIRE_INTEROP") != "1",
    reason="timm parity needs the interop extra: pip install -e .[interop]",
)
TOLERANCE = 1e-4  # relative to the level's largest value
SIZE = (65, 49)  # odd: the borders of every stride-2 and dilated layer are exercised
UNITS = (1, 1, 1, 2)
LEVELS = ["P1", "P2", "P3", "P4", "P5"]

# timm architecture -> the same network from our builders (timm's `layers=` gives the units).
TIMM_PAIRS = {
    "skresnet18": lambda **kwargs: applications.SKResNet(UNITS, **kwargs),
    "skresnext50_32x4d": lambda **kwargs: applications.SKNet(UNITS, **kwargs),
    "seresnext50_32x4d": lambda **kwargs: applications.SKNet(
        UNITS, block="resnext", se_reduction=16, **kwargs
    ),
}


@pytest.fixture(scope="module")
def timm_features(tmp_path_factory):
    out = tmp_path_factory.mktemp("timm_features")
    command = [
        sys.executable,
        TIMM_REFERENCE_SCRIPT,
        "features",
        str(out),
        "--models",
        ",".join(TIMM_PAIRS),
        "--layers",
        ",".join(str(n) for n in UNITS),
        "--sizes",
        "x".join(str(n) for n in SIZE),
        "--output-strides",
        "32,16,8",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def relative_errors(pyramid, reference, output_stride):
    inputs = np.load(reference.parent / f"inputs_{SIZE[0]}x{SIZE[1]}.npy")
    outputs = op_by_op(pyramid, inputs)
    maps = np.load(reference)
    errors = {}
    for i, level in enumerate(LEVELS):
        expected = maps[f"os{output_stride}_{SIZE[0]}x{SIZE[1]}_{i}"]
        assert outputs[level].shape == expected.shape, level
        errors[level] = float(np.max(np.abs(outputs[level] - expected)) / np.max(np.abs(expected)))
    return errors


@NEEDS_TIMM
@pytest.mark.parametrize("output_stride", [32, 16, 8])
@pytest.mark.parametrize("arch", list(TIMM_PAIRS))
def test_pyramid_matches_timm_features_only(arch, output_stride, timm_features):
    backbone = TIMM_PAIRS[arch](
        weights=str(timm_features / f"{arch}.safetensors"),
        include_top=False,
        input_shape=(None, None, 3),
        output_stride=output_stride,
    )
    errors = relative_errors(
        feature_extractor(backbone), timm_features / f"{arch}_features.npz", output_stride
    )
    assert max(errors.values()) <= TOLERANCE, errors


@NEEDS_TIMM
def test_timm_parity_sees_where_a_dilated_stage_starts(timm_features, monkeypatch):
    """Negative control: dilating a stage's first unit too (no `first_dilation`) breaks parity from there on."""
    correct = skresnet_module.unit_strides

    def naive(stage_depths, output_stride, stem_stride=4):
        return [
            [(s, d, d) for s, _, d in stage] for stage in correct(stage_depths, output_stride, stem_stride)
        ]

    monkeypatch.setattr(skresnet_module, "unit_strides", naive)
    backbone = applications.SKResNet(
        UNITS,
        weights=str(timm_features / "skresnet18.safetensors"),
        include_top=False,
        input_shape=(None, None, 3),
        output_stride=8,
    )
    errors = relative_errors(feature_extractor(backbone), timm_features / "skresnet18_features.npz", 8)
    assert max(errors[level] for level in ("P1", "P2", "P3")) <= TOLERANCE
    assert errors["P4"] > 100 * TOLERANCE and errors["P5"] > 100 * TOLERANCE, errors


def small_cifar(block, **kwargs):
    return applications.SKNet(
        (1, 1, 1), block=block, stem="cifar", cardinality=4, bottleneck_width=4, kernel_sizes=(3, 1), **kwargs
    )


# family -> (builder of a small model, input size, {level: channels}).
IMAGENET_CHANNELS = {"P1": 64, "P2": 256, "P3": 512, "P4": 1024, "P5": 2048}
FAMILIES = {
    "sknet": (lambda **k: applications.SKNet((1, 1, 1, 1), cardinality=4, **k), SIZE, IMAGENET_CHANNELS),
    "resnext": (
        lambda **k: applications.SKNet((1, 1, 1, 1), block="resnext", cardinality=4, **k),
        SIZE,
        IMAGENET_CHANNELS,
    ),
    "seresnext": (
        lambda **k: applications.SKNet((1, 1, 1, 1), block="resnext", cardinality=4, se_reduction=16, **k),
        SIZE,
        IMAGENET_CHANNELS,
    ),
    "skresnet": (
        lambda **k: applications.SKResNet((1, 1, 1, 1), **k),
        SIZE,
        {"P1": 64, "P2": 64, "P3": 128, "P4": 256, "P5": 512},
    ),
    "sknet_cifar": (lambda **k: small_cifar("sk", **k), (33, 25), {"P0": 256, "P1": 512, "P2": 1024}),
    "resnext_cifar": (lambda **k: small_cifar("resnext", **k), (33, 25), {"P0": 256, "P1": 512, "P2": 1024}),
    **{
        f"shufflenetv2{'_' + attention if attention else ''}": (
            lambda attention=attention, **k: applications.ShuffleNetV2(
                0.5, attention=attention, stage_depths=(1, 1, 1), **k
            ),
            SIZE,
            {"P1": 24, "P2": 24, "P3": 48, "P4": 96, "P5": 1024},
        )
        for attention in (None, "se", "sk")
    },
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_has_its_pyramid(family):
    """Level n is at stride 2**n with the family's channels; the deepest is the backbone's own output."""
    build, (height, width), channels = FAMILIES[family]
    backbone = build(include_top=False, input_shape=(None, None, 3))
    pyramid = feature_extractor(backbone)
    x = np.random.default_rng(0).normal(size=(1, height, width, 3)).astype("float32")
    outputs = op_by_op(pyramid, x)
    assert list(outputs) == list(channels)
    for level, value in outputs.items():
        stride = 2 ** int(level[1:])
        assert value.shape == (1, -(-height // stride), -(-width // stride), channels[level]), level
    deepest = list(channels)[-1]
    np.testing.assert_allclose(outputs[deepest], op_by_op(backbone, x), rtol=0, atol=1e-6)


def test_levels_pick_a_subset_and_bad_levels_are_refused():
    backbone = applications.SKResNet((1, 1, 1, 1), include_top=False, input_shape=(None, None, 3))
    assert pyramid_layer_names(backbone) == {
        "P1": "conv1_relu",
        "P2": "conv2_block1",
        "P3": "conv3_block1",
        "P4": "conv4_block1",
        "P5": "conv5_block1",
    }
    pyramid = feature_extractor(backbone, levels=["P3", "P5"], name="fpn_input")
    assert pyramid.name == "fpn_input"
    assert sorted(pyramid(np.zeros((1, 64, 64, 3), "float32"))) == ["P3", "P5"]
    for levels in (["P6"], "P3", [], ["P3", "P3"]):
        with pytest.raises(ValueError, match=r"`levels`.*'P1', 'P2', 'P3', 'P4', 'P5'.*Received: levels="):
            feature_extractor(backbone, levels=levels)
    inputs = keras.Input((32, 32, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv1_relu")(inputs), name="other")
    with pytest.raises(ValueError, match="keras_sknet.applications.*Received: model 'other'"):
        feature_extractor(other)


def test_output_stride_is_checked_before_anything_is_built():
    for output_stride in (4, 12, 64, "16", True):
        with pytest.raises(ValueError, match=r"`output_stride` must be one of \(8, 16, 32\).*Received"):
            applications.SKNet((1, 1, 1, 1), output_stride=output_stride)
        with pytest.raises(ValueError, match=r"`output_stride` must be one of \(8, 16, 32\).*Received"):
            applications.SKResNet18(output_stride=output_stride)
    with pytest.raises(ValueError, match=r"`output_stride` must be one of \(32,\) with stem='cifar'"):
        applications.SKNet29(output_stride=16)


def test_dilated_pyramid_survives_keras_file(tmp_path):
    """A `.keras` file of an `output_stride=16` pyramid: same maps, dilations in the saved configs."""
    backbone = applications.SKResNet(UNITS, include_top=False, input_shape=(None, None, 3), output_stride=16)
    pyramid = feature_extractor(backbone, levels=["P2", "P4", "P5"])
    x = np.random.default_rng(1).normal(size=(2, *SIZE, 3)).astype("float32")
    expected = pyramid.predict(x, verbose=0)
    assert expected["P5"].shape[1:3] == expected["P4"].shape[1:3] == (5, 4)  # stride 16, dilated
    path = str(tmp_path / "pyramid.keras")
    pyramid.save(path)
    loaded = keras.models.load_model(path)
    outputs = loaded.predict(x, verbose=0)
    assert sorted(outputs) == ["P2", "P4", "P5"]
    for level in outputs:
        np.testing.assert_allclose(outputs[level], expected[level], rtol=0, atol=1e-6)
    last = loaded.get_layer("conv5_block2")
    assert (last.first_dilation, last.dilation, last.sk.dilation) == (2, 2, 2)
    assert loaded.get_layer("conv5_block1").first_dilation == 1
    assert pyramid_layer_names(loaded)["P5"] == "conv5_block2"
