"""Parity with timm: random timm models, converted by our converter, give timm's outputs.

timm runs in a subprocess (importing TensorFlow and then torchvision in one
process crashes): it builds each architecture with a fixed seed, randomises
every BatchNorm's statistics and affine parameters (so that their conversion
is actually tested), saves a `.safetensors` checkpoint and its logits and
pooled features at 224x224 and 193x161, batch 4. Here each checkpoint goes
through the public path, `Model(weights=checkpoint)`, and must match in float32
to 1e-4, at batch 4 and at batch 1 (timm's eval outputs are per image).

Needs the `interop` extra (torch, torchvision, timm, safetensors); skipped
without it unless KERAS_SKNET_REQUIRE_INTEROP=1 (set by scripts/test.sh, so CI
fails rather than skips if the extra is missing).
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_sknet import applications, weights
from keras_sknet.weights import registry
from tests.helpers import op_by_op, run_as_user
from tests.support import TIMM_REFERENCE_SCRIPT

# Tests marked `kernels` run again on TensorFlow's Eigen kernels (scripts/test.sh's
# second pass): those whose numbers depend on the kernels; files, command lines and
# fault handling are the same code on both libraries.
KERNELS = pytest.mark.kernels

HAVE_TIMM = all(importlib.util.find_spec(m) is not None for m in ("torch", "timm", "safetensors", "PIL"))
if not HAVE_TIMM:
    if os.environ.get("KERAS_SKNET_REQUIRE_INTEROP") == "1":
        raise RuntimeError(
            "KERAS_SKNET_REQUIRE_INTEROP=1 but torch/timm are missing: pip install -e .[interop]"
        )
    pytest.skip("timm parity needs the interop extra: pip install -e .[interop]", allow_module_level=True)

PAIRS = [
    ("SKNet50", "skresnext50_32x4d"),
    ("ResNeXt50", "resnext50_32x4d"),
    ("SEResNeXt50", "seresnext50_32x4d"),
    ("SKResNet18", "skresnet18"),
    ("SKResNet34", "skresnet34"),
]
SIZES = ["224x224", "193x161"]
TOLERANCE = 1e-4


def run_timm(*args):
    result = subprocess.run([sys.executable, TIMM_REFERENCE_SCRIPT, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def timm_outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("timm")
    models = ",".join(arch for _, arch in PAIRS)
    run_timm(
        "random", str(out), "--models", models, "--sizes", ",".join(SIZES), "--batches", "4", "--seed", "0"
    )
    return out


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@KERNELS
@pytest.mark.parametrize("name,arch", PAIRS, ids=[name for name, _ in PAIRS])
def test_logits_and_features_match_timm(name, arch, timm_outputs):
    checkpoint = str(timm_outputs / f"{arch}.safetensors")
    reference = np.load(timm_outputs / f"{arch}.npz")
    function = getattr(applications, name)
    model = function(weights=checkpoint, input_shape=(None, None, 3), classifier_activation=None)
    for index, size in enumerate(SIZES):
        images = np.load(timm_outputs / f"inputs_{size}.npy")
        expected = reference[f"logits_{size}_b4"]
        assert expected.std(axis=1).min() > 1e-2  # the logits carry information: a wrong weight shows
        # The first size through the call users make (`model(x)`: compiled and cached), the
        # others op by op (one trace per new shape would cost more than the whole check).
        logits = model(images, training=False) if index == 0 else op_by_op(model, images)
        assert max_diff(logits, expected) <= TOLERANCE, (size, max_diff(logits, expected))
        single = op_by_op(model, images[:1])
        assert max_diff(single, expected[:1]) <= TOLERANCE, (size, "batch 1")

    headless = function(weights=checkpoint, include_top=False, pooling="avg")
    images = np.load(timm_outputs / "inputs_224x224.npy")
    features = op_by_op(headless, images)
    assert max_diff(features, reference["features_224x224_b4"]) <= TOLERANCE


def test_parity_detects_one_wrong_tensor(timm_outputs):
    """Negative controls: one flipped kernel or one wrong running variance breaks parity far beyond 1e-4."""
    model = applications.SKResNet18(
        weights=str(timm_outputs / "skresnet18.safetensors"),
        input_shape=(None, None, 3),
        classifier_activation=None,
    )
    images = np.load(timm_outputs / "inputs_224x224.npy")
    reference = np.load(timm_outputs / "skresnet18.npz")["logits_224x224_b4"]
    assert max_diff(model(images, training=False), reference) <= TOLERANCE
    sk = model.get_layer("conv4_block1").sk
    for variable, wrong in [
        (sk.path_convs[1].kernel, lambda k: k[::-1, ::-1]),  # a converter that flips kernels spatially
        (sk.path_bns[1].moving_variance, lambda v: 4 * v),  # a BatchNorm statistic lost or misplaced
    ]:
        right = variable.numpy()
        variable.assign(wrong(right))
        assert max_diff(model(images, training=False), reference) > 10 * TOLERANCE
        variable.assign(right)


def test_pytorch_files_read_safely(timm_outputs, tmp_path):
    import torch

    state = weights.read_checkpoint(timm_outputs / "skresnet18.safetensors")
    wrapped = {
        "epoch": 3,
        "state_dict": {f"module.{k}": torch.from_numpy(v.copy()) for k, v in state.items()},
    }
    torch.save(wrapped, tmp_path / "train.pth")
    loaded = weights.read_checkpoint(tmp_path / "train.pth")
    assert set(loaded) == set(state)
    np.testing.assert_array_equal(
        loaded["layer1.0.conv1.paths.1.conv.weight"], state["layer1.0.conv1.paths.1.conv.weight"]
    )

    # A pickle that would run code is refused by torch.load(weights_only=True): nothing runs.
    sentinel = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    torch.save({"fc.weight": Exploit()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="evil.pth"):
        weights.read_checkpoint(tmp_path / "evil.pth")
    assert not sentinel.exists()


def test_imagenet_download_end_to_end(timm_outputs, tmp_path, monkeypatch):
    """weights='imagenet' against a local Hub mirror (file://) serving a timm-written checkpoint."""
    config = registry.PRETRAINED["SKResNet18"]
    served = tmp_path / "hub" / config.hf_repo / "resolve" / config.revision / config.filename
    served.parent.mkdir(parents=True)
    served.write_bytes((timm_outputs / "skresnet18.safetensors").read_bytes())
    monkeypatch.setenv("HF_ENDPOINT", (tmp_path / "hub").as_uri())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    model = applications.SKResNet18(weights="imagenet", classifier_activation=None)
    images = np.load(timm_outputs / "inputs_224x224.npy")
    reference = np.load(timm_outputs / "skresnet18.npz")["logits_224x224_b4"]
    assert max_diff(model(images, training=False), reference) <= TOLERANCE
    metadata_path = os.path.join(weights.cache_dir(), "skresnet18-skresnet18.ra_in1k.json")
    metadata = json.load(open(metadata_path))
    assert metadata["checkpoint_sha256"] == weights.sha256_of(served)


def test_convert_command_line(timm_outputs, tmp_path):
    output = tmp_path / "sk18.weights.h5"
    checkpoint = str(timm_outputs / "skresnet18.safetensors")

    def convert(*args):
        return run_as_user(["-m", "keras_sknet.weights", "convert", *args], cwd=tmp_path)

    done = convert(checkpoint, "--model", "SKResNet18", "--output", str(output), "--compare-timm")
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert "max |logits diff|" in printed and "identical" in printed
    model = applications.SKResNet18(
        weights=str(output), input_shape=(None, None, 3), classifier_activation=None
    )
    images = np.load(timm_outputs / "inputs_193x161.npy")
    reference = np.load(timm_outputs / "skresnet18.npz")["logits_193x161_b4"]
    assert max_diff(model(images, training=False), reference) <= TOLERANCE

    done = convert(checkpoint, "--model", "SKNet50", "--output", str(tmp_path / "x.weights.h5"))
    assert done.returncode == 1 and "does not fit model 'sknet50'" in done.stderr, done.stderr[-3000:]
    done = convert(checkpoint, "--model", "SKNet51", "--output", str(tmp_path / "x.weights.h5"))
    assert done.returncode == 1 and "Unknown model 'SKNet51'" in done.stderr, done.stderr[-3000:]
    done = convert("missing.safetensors", "--model", "SKNet50", "--output", "x.weights.h5")
    assert done.returncode == 1 and "No such checkpoint file" in done.stderr, done.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["sk18.weights.h5"]  # nothing half-written left behind


def test_eval_transform_matches_timm(tmp_path):
    """Our tf.image transform against timm's PIL pipeline (bicubic, 0.875): same crop, near-equal pixels."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(30, 40, 3)).astype("uint8")
    images = np.stack(
        [np.kron(base, np.ones((10, 10, 1), "uint8"))]
    )  # 300x400, smooth enough to resample alike
    np.save(tmp_path / "images.npy", images)
    run_timm(
        "transform", str(tmp_path / "images.npy"), "skresnext50_32x4d.ra_in1k", str(tmp_path / "timm.npy")
    )
    expected = np.load(tmp_path / "timm.npy")
    ours = np.asarray(weights.eval_transform(images, "SKNet50"))
    assert ours.shape == expected.shape == (1, 224, 224, 3)
    difference = np.abs(ours - expected)
    # PIL's and tf.image's bicubic differ slightly at block edges (measured: mean 6e-4, i.e. 0.04 grey
    # levels); a crop off by one pixel or a wrong scale changes ~10% of the pixels by ~1 (mean > 0.1).
    assert np.median(difference) < 1e-3, np.median(difference)
    assert difference.mean() < 0.01, difference.mean()
