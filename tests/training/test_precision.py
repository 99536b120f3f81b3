"""`mixed_precision="auto"` on a CPU: bfloat16 only where the CPU computes it and the family trains faster."""

import pytest

from keras_sknet import platform
from training.precision import bfloat16_pays_on_this_cpu, resolve_mixed_precision


@pytest.fixture
def cpu(monkeypatch):
    """Pretends this machine's TensorFlow runs oneDNN on a CPU with the given features."""

    def pretend(*features, onednn=True):
        monkeypatch.setattr(platform, "cpu_features", lambda: tuple(sorted(features)))
        monkeypatch.setattr(platform, "onednn_enabled", lambda: onednn)

    return pretend


@pytest.mark.parametrize("model", ["SKNet50", "SKNet29", "ResNeXt101", "SEResNeXt50", "SKNet"])
def test_bottleneck_networks_train_in_bfloat16_where_the_cpu_computes_it(cpu, model):
    cpu("avx2", "avx512f", "avx512_bf16")
    assert bfloat16_pays_on_this_cpu(model)
    assert resolve_mixed_precision("auto", model=model) == "mixed_bfloat16"
    cpu("avx2", "avx512f", "amx_bf16")
    assert resolve_mixed_precision("auto", model=model) == "mixed_bfloat16"


@pytest.mark.parametrize(
    "features, onednn",
    [
        (("avx2",), True),
        (("avx2", "avx512f", "avx512_vnni"), True),
        (("avx2", "avx512f", "avx512_bf16"), False),
    ],
    ids=["avx2", "avx512-without-bf16", "eigen-kernels"],
)
def test_float32_where_bfloat16_is_converted(cpu, features, onednn):
    cpu(*features, onednn=onednn)
    assert resolve_mixed_precision("auto", model="SKNet50") == "float32"
    assert not bfloat16_pays_on_this_cpu("SKNet50")


@pytest.mark.parametrize("model", ["ShuffleNetV2SK", "ShuffleNetV2", "ShuffleNetV2SE", "MyOwnNet"])
def test_float32_for_families_bfloat16_does_not_speed_up(cpu, model):
    cpu("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    assert resolve_mixed_precision("auto", model=model) == "float32"
    assert resolve_mixed_precision("auto") == "float32"  # no model: nothing measured


def test_explicit_settings_are_kept(cpu):
    cpu("avx2")
    assert resolve_mixed_precision("bfloat16", model="ShuffleNetV2SK") == "mixed_bfloat16"
    assert resolve_mixed_precision(None, model="SKNet50") == "float32"
    with pytest.raises(ValueError, match="Received: 'half'"):
        resolve_mixed_precision("half")
