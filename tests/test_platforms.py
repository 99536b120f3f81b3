"""The same numbers on TensorFlow's oneDNN and Eigen kernels, and SavedModels that cross between them.

TensorFlow picks its CPU kernel library once, at import; so this process runs
one library and `tests.platform_worker`, in a subprocess, the other. Whichever
library this process has, the pair covers both, SavedModels crossing in both
directions, so CI runs this file once (not again in the Eigen pass of
scripts/test.sh).
"""

import json
import os
import platform as host
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_sknet import platform
from keras_sknet.export import to_saved_model
from tests import platform_worker
from tests.helpers import randomize_batch_norms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT_TOLERANCE = 1e-4  # the bound between the two libraries
ATTENTION_TOLERANCE = 1e-5
# Training is compared by how far two SGD steps moved the weights: the two libraries' updates
# may differ by this fraction of the update's size. A tiny net's training amplifies rounding:
# with 16 values per BatchNorm channel (batch 4, 2x2 maps), one ReLU whose input is within 6e-6
# of zero flips between the libraries and moves one channel's gradient by tens of percent, so
# the weights after two steps differed by 4e-3 where the steps moved them by 0.96 (0.3% of the
# update's norm). A wrong gradient (a missing term, a transposed kernel) moves it by O(1).
UPDATE_TOLERANCE = 1e-2


def run_python(args, onednn, timeout=600):
    """Runs `python args...` from the repository root with TF_ENABLE_ONEDNN_OPTS set (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != platform.ONEDNN_VARIABLE}
    if onednn is not None:
        env[platform.ONEDNN_VARIABLE] = "1" if onednn else "0"
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    crash = f"killed by signal {-result.returncode}\n" if result.returncode < 0 else ""
    assert result.returncode == 0, crash + result.stdout[-3000:] + result.stderr[-6000:]
    return result.stdout


@pytest.fixture(scope="module")
def both_libraries(tmp_path_factory):
    """`(this process's outputs, the other library's outputs)`, from the same weights."""
    tmp = tmp_path_factory.mktemp("platforms")
    weights_dir = tmp / "weights"
    weights_dir.mkdir()
    rng = np.random.default_rng(0)
    for name, (build, _) in platform_worker.families().items():
        keras.utils.set_random_seed(0)
        model = build()
        randomize_batch_norms(model, rng)
        model.save_weights(weights_dir / f"{name}.weights.h5")
    to_saved_model(platform_worker.load("sknet", weights_dir), tmp / "ours")
    run_python(
        [
            "-m",
            "tests.platform_worker",
            str(weights_dir),
            str(tmp / "theirs.npz"),
            "--saved-model-in",
            str(tmp / "ours"),
            "--saved-model-out",
            str(tmp / "theirs"),
        ],
        onednn=not platform.onednn_enabled(),
    )
    # Mixed precision in a process of its own, on this process's library: 16-bit training is
    # where oneDNN crashed (keras_sknet.layers.tf_conv), and a crash must fail a test, not a worker.
    run_python(
        ["-m", "tests.platform_worker", str(weights_dir), str(tmp / "mixed.npz"), "--mixed-only"],
        onednn=platform.onednn_enabled(),
    )
    ours = {}
    for name in platform_worker.families():
        ours.update(platform_worker.run_family(name, weights_dir))
    with np.load(tmp / "mixed.npz") as mixed:
        ours.update(mixed)
    ours["saved_model/outputs"] = platform_worker.run_saved_model(tmp / "theirs")
    with np.load(tmp / "theirs.npz") as theirs:
        return ours, dict(theirs)


@pytest.mark.numerics  # rerun with the instruction sets capped (scripts/test.sh)
def test_the_other_process_ran_the_other_library(both_libraries):
    _, theirs = both_libraries
    assert bool(theirs["onednn"]) == (not platform.onednn_enabled())
    # Where TensorFlow's kernels cannot differentiate grouped convs (Eigen), the SK layers go portable.
    assert bool(theirs["portable_float32"]) == (not theirs["onednn"])


@pytest.mark.numerics  # rerun with the instruction sets capped (scripts/test.sh)
@pytest.mark.parametrize("family", list(platform_worker.families()))
def test_every_path_gives_the_same_numbers(both_libraries, family):
    ours, theirs = both_libraries
    keys = [key for key in ours if key.startswith(f"{family}/")]
    assert {f"{family}/{path}" for path in ("eager", "predict", "frozen", "losses", "update")} <= set(keys)
    for key in set(keys) - {f"{family}/losses", f"{family}/update"}:
        tolerance = ATTENTION_TOLERANCE if key.split("/")[1] == "attention" else OUTPUT_TOLERANCE
        np.testing.assert_allclose(theirs[key], ours[key], atol=tolerance, rtol=0, err_msg=key)
    # The first step's loss is a forward pass in training mode: as close as the outputs.
    their_losses, our_losses = theirs[f"{family}/losses"], ours[f"{family}/losses"]
    np.testing.assert_allclose(their_losses[0], our_losses[0], atol=OUTPUT_TOLERANCE, rtol=1e-5)
    np.testing.assert_allclose(their_losses, our_losses, rtol=UPDATE_TOLERANCE)
    update, reference = theirs[f"{family}/update"], ours[f"{family}/update"]
    assert np.linalg.norm(reference) > 0
    assert np.linalg.norm(update - reference) <= UPDATE_TOLERANCE * np.linalg.norm(reference)


@pytest.mark.numerics  # rerun with the instruction sets capped (scripts/test.sh)
@pytest.mark.parametrize("policy", platform_worker.MIXED_POLICIES)
def test_mixed_precision_trains_on_both(both_libraries, policy):
    """16-bit convolutions and their gradients on either library (bfloat16 without native support too)."""
    ours, theirs = both_libraries
    float32 = ours["sknet/predict"]
    for outputs in (ours, theirs):
        assert np.all(np.isfinite(outputs[f"{policy}/losses"]))
        # Softmax outputs within 16-bit rounding of float32's.
        np.testing.assert_allclose(outputs[f"{policy}/predict"], float32, atol=0.03)
    np.testing.assert_allclose(theirs[f"{policy}/losses"], ours[f"{policy}/losses"], rtol=0.02)


@pytest.mark.numerics  # rerun with the instruction sets capped (scripts/test.sh)
def test_sk_families_read_their_attention_on_both(both_libraries):
    ours, _ = both_libraries
    for family in platform_worker.SK_FAMILIES:
        assert any(key.startswith(f"{family}/attention/") for key in ours), family


@pytest.mark.numerics  # rerun with the instruction sets capped (scripts/test.sh)
def test_saved_models_run_on_the_other_library(both_libraries):
    """A SavedModel written with one kernel library runs with the other (portable export graphs)."""
    ours, theirs = both_libraries
    expected = ours["sknet/eager"]
    np.testing.assert_allclose(ours["saved_model/outputs"], expected, atol=OUTPUT_TOLERANCE)
    np.testing.assert_allclose(theirs["saved_model/outputs"], expected, atol=OUTPUT_TOLERANCE)


PROBE = (
    "import json, os, sys\n"
    "if sys.argv[1] == 'tensorflow-first':\n"
    "    import tensorflow\n"
    "import keras_sknet\n"
    "from keras_sknet import platform\n"
    "print(json.dumps([os.environ.get('TF_ENABLE_ONEDNN_OPTS'), platform.onednn_enabled()]))\n"
)


@pytest.mark.skipif(
    host.machine().lower() not in ("x86_64", "amd64"), reason="keras_sknet prefers oneDNN on x86 only"
)
def test_importing_keras_sknet_first_turns_onednn_on_unless_told_otherwise():
    def probe(order, onednn):
        return json.loads(run_python(["-c", PROBE, order], onednn).strip().splitlines()[-1])

    x86 = host.machine().lower() in ("x86_64", "amd64")
    if x86 and {"avx2", "avx512f"}.intersection(platform.cpu_features()):
        assert probe("keras-sknet-first", None) == ["1", True]
    else:  # x86 without AVX2, and Arm: TensorFlow's own choice stands
        assert probe("keras-sknet-first", None) == [None, platform.tensorflow_default_onednn()]
    assert probe("keras-sknet-first", False) == ["0", False]
    # TensorFlow already decided: the variable is left alone, and the package runs on what TF chose.
    variable, onednn = probe("tensorflow-first", None)
    assert variable is None
    assert onednn == platform.tensorflow_default_onednn()


@pytest.mark.parametrize(
    "features,sets",
    [
        (set(), False),  # no AVX2 (or unreadable features): TensorFlow's choice stands
        ({"avx", "fma"}, False),
        ({"avx2", "fma"}, True),  # AVX2 only (Zen 3 measured): oneDNN trains 1.7x faster than Eigen
        ({"avx2", "avx512f"}, True),  # Skylake-SP/X: TF alone runs Eigen, oneDNN 1.6-2.2x faster
        ({"avx2", "avx512f", "avx512_vnni"}, True),  # TF would pick oneDNN anyway
    ],
)
def test_prefer_onednn_only_where_it_pays(features, sets, monkeypatch):
    monkeypatch.delenv(platform.ONEDNN_VARIABLE, raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow")  # as before TensorFlow's import
    monkeypatch.setattr(host, "machine", lambda: "x86_64")
    assert platform.prefer_onednn(features) is sets
    assert os.environ.get(platform.ONEDNN_VARIABLE) == ("1" if sets else None)
    monkeypatch.setattr(host, "machine", lambda: "aarch64")
    monkeypatch.delenv(platform.ONEDNN_VARIABLE, raising=False)
    assert platform.prefer_onednn(features) is False


@pytest.mark.parametrize(
    "features,vnni",
    [
        ({"avx2", "fma"}, False),  # Zen 3, Haswell to Skylake client
        ({"avx2", "avx512f", "avx512bw"}, False),  # Skylake-SP: AVX-512 without VNNI
        ({"avx2", "avx_vnni"}, True),  # Alder Lake: AVX-VNNI on 256-bit vectors
        ({"avx2", "avx512f", "avx512_vnni"}, True),  # Cascade Lake, Zen 4
        ({"asimd", "i8mm"}, False),  # Arm's int8 dot products are not VNNI
        (set(), False),
    ],
)
def test_has_vnni(features, vnni):
    assert platform.has_vnni(features) is vnni


def test_prefer_onednn_leaves_a_decision_alone(monkeypatch):
    monkeypatch.setenv(platform.ONEDNN_VARIABLE, "0")
    monkeypatch.delitem(sys.modules, "tensorflow")
    assert platform.prefer_onednn({"avx512f"}) is False
    assert os.environ[platform.ONEDNN_VARIABLE] == "0"
    monkeypatch.delenv(platform.ONEDNN_VARIABLE)
    monkeypatch.setitem(sys.modules, "tensorflow", object())  # TensorFlow imported: too late
    assert platform.prefer_onednn({"avx512f"}) is False
    assert platform.ONEDNN_VARIABLE not in os.environ


@pytest.mark.parametrize(
    "policy,onednn,features,slow",
    [
        ("float32", False, set(), False),
        ("mixed_float16", True, {"avx512f", "avx512_bf16", "amx_bf16"}, True),
        ("mixed_float16", False, {"avx2"}, True),
        ("mixed_bfloat16", False, {"avx512f", "avx512_bf16"}, True),  # Eigen: converted, not native
        ("mixed_bfloat16", True, {"avx2", "avx_vnni"}, True),  # oneDNN without BF16 units
        ("mixed_bfloat16", True, {"avx512f", "avx512_bf16"}, False),
        ("mixed_bfloat16", True, {"amx_tile", "amx_bf16"}, False),
    ],
)
def test_slow_mixed_precision_reason(policy, onednn, features, slow):
    from keras_sknet.platform import slow_mixed_precision_reason

    reason = slow_mixed_precision_reason(policy, onednn=onednn, features=features)
    assert (reason is not None) == slow
    if slow:
        assert policy in reason and ("oneDNN" in reason or "Eigen" in reason) and "float32" in reason
