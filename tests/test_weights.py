"""Weights without PyTorch: safetensors I/O, the timm converter's bookkeeping, weights=, the download cache.

Parity with timm itself is in test_timm_parity.py; here the timm-layout
checkpoints are exported from our own models with `timm_state_dict`.
"""

import dataclasses
import json
import os
import struct

import keras
import numpy as np
import pytest

from keras_sknet import applications, weights
from keras_sknet.weights import registry
from keras_sknet.weights.safetensors_io import load_safetensors, save_safetensors
from tests.helpers import randomize_batch_norms

SKRESNET18 = registry.PRETRAINED["SKResNet18"]


def tiny(builder="SKResNet", **kwargs):
    if builder == "SKResNet":
        return applications.SKResNet((1, 1), input_shape=(64, 64, 3), classes=5, **kwargs)
    return applications.SKNet((1, 1), input_shape=(64, 64, 3), classes=5, **kwargs)


@pytest.fixture(scope="module")
def skresnet18_checkpoint(tmp_path_factory):
    """A full-size SKResNet18 in timm's layout (random weights), and its logits on a fixed batch."""
    model = applications.SKResNet18(input_shape=(64, 64, 3), classifier_activation=None)
    randomize_batch_norms(model, np.random.default_rng(1))
    path = str(tmp_path_factory.mktemp("ckpt") / "model.safetensors")
    save_safetensors(path, weights.timm_state_dict(model))
    images = np.random.default_rng(2).normal(size=(2, 64, 64, 3)).astype("float32")
    return path, images, model.predict(images, verbose=0)


# --- safetensors ---------------------------------------------------------------------------------


def test_safetensors_round_trip(tmp_path, rng):
    tensors = {
        "a.weight": rng.normal(size=(3, 2, 1, 1)).astype("float32"),
        "b": rng.normal(size=(4,)).astype("float16"),
        "c": rng.normal(size=(2, 2)),
        "bn.num_batches_tracked": np.array(7, dtype="int64"),
        "empty": np.zeros((0, 3), "float32"),
    }
    path = tmp_path / "t.safetensors"
    save_safetensors(path, tensors, metadata={"format": "pt"})
    loaded = load_safetensors(path)
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
        np.testing.assert_array_equal(loaded[name], value)


def _write_raw(path, header, data):
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data)


def test_bfloat16_is_widened(tmp_path):
    values = np.array([1.0, -2.5, 3.140625], "float32")
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()  # exact in bfloat16
    _write_raw(
        tmp_path / "b.safetensors", {"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}, bf16
    )
    np.testing.assert_array_equal(load_safetensors(tmp_path / "b.safetensors")["x"], values)


def test_corrupted_safetensors_are_refused(tmp_path, rng):
    good = tmp_path / "good.safetensors"
    save_safetensors(good, {"w": rng.normal(size=(64, 64)).astype("float32")})
    data = good.read_bytes()
    cases = {
        "truncated": (data[:-100], "is truncated: its tensors need"),
        "tiny": (data[:5], "not a valid .safetensors file"),
        "header_cut": (data[:20], "is truncated: its header says"),
        "garbage": (
            b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"not json at all!" + b"\x00" * 16,
            "not a valid .safetensors file",
        ),
        "padded": (data + b"\x00" * 8, "8 bytes after its last tensor"),
    }
    for name, (content, match) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=match):
            load_safetensors(path)
    _write_raw(
        tmp_path / "offsets.safetensors",
        {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}},
        b"\0" * 8,
    )
    with pytest.raises(ValueError, match="do not match shape"):
        load_safetensors(tmp_path / "offsets.safetensors")
    _write_raw(
        tmp_path / "dtype.safetensors",
        {"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}},
        b"\0" * 8,
    )
    with pytest.raises(ValueError, match="unsupported dtype"):
        load_safetensors(tmp_path / "dtype.safetensors")


def test_detect_format(tmp_path, rng):
    model = tiny()
    model.save_weights(tmp_path / "m.weights.h5")
    save_safetensors(tmp_path / "noext", {"w": np.zeros(2, "float32")})
    (tmp_path / "notes.txt").write_text("hello")
    assert weights.detect_format(tmp_path / "m.weights.h5") == "keras"
    assert weights.detect_format(tmp_path / "noext") == "safetensors"
    with pytest.raises(ValueError, match=r"notes.txt.*not a recognised weights file"):
        weights.detect_format(tmp_path / "notes.txt")


# --- the converter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [lambda: tiny(), lambda: tiny("SKNet"), lambda: tiny("SKNet", block="resnext", se_reduction=16)],
    ids=["skresnet", "sknet", "seresnext"],
)
def test_timm_layout_round_trip(make, rng):
    source = make()
    randomize_batch_norms(source, rng)
    state = weights.timm_state_dict(source)
    target = make()
    assert weights.load_timm_state_dict(target, state) == len(source.weights)
    x = rng.normal(size=(2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(target.predict(x, verbose=0), source.predict(x, verbose=0), atol=1e-6)


def test_timm_names_and_layouts():
    state = weights.timm_state_dict(tiny())
    sk = "layer1.0.conv1"  # SKBasicBlock: the SK conv is timm's conv1
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state[f"{sk}.paths.1.conv.weight"].shape == (64, 32, 3, 3)  # OIHW, half the input per path
    assert state[f"{sk}.attn.fc_reduce.weight"].shape == (16, 64, 1, 1)
    assert state[f"{sk}.attn.fc_select.weight"].shape == (128, 16, 1, 1)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer2.0.downsample.1.running_var"].shape == (128,)
    assert state["fc.weight"].shape == (5, 128)
    se = weights.timm_state_dict(tiny("SKNet", block="resnext", se_reduction=16))
    assert se["layer1.0.se.fc1.weight"].shape == (16, 256, 1, 1) and se["layer1.0.se.fc1.bias"].shape == (16,)


def test_mismatch_lists_keys_and_changes_nothing(rng):
    state = weights.timm_state_dict(tiny())
    target = tiny("SKNet")
    before = [w.numpy().copy() for w in target.weights]
    with pytest.raises(weights.CheckpointMismatchError) as info:
        weights.load_timm_state_dict(target, state, source="ckpt")
    error = info.value
    assert "missing keys" in str(error) and "unexpected keys" in str(error)
    assert "layer1.0.conv2.attn.fc_select.weight" in error.missing
    assert "layer1.0.conv1.attn.fc_select.weight" in error.unexpected
    for w, b in zip(target.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)

    bad = dict(state, **{"fc.weight": np.zeros((7, 128), "float32")})
    with pytest.raises(
        weights.CheckpointMismatchError, match=r"1 shape mismatches \[fc.weight: checkpoint \(7, 128\)"
    ):
        weights.load_timm_state_dict(tiny(), bad)


def test_headless_model_ignores_the_classifier(rng):
    source = tiny()
    randomize_batch_norms(source, rng)
    headless = applications.SKResNet((1, 1), include_top=False, pooling="avg", input_shape=(64, 64, 3))
    weights.load_timm_state_dict(headless, weights.timm_state_dict(source))
    x = rng.normal(size=(1, 64, 64, 3)).astype("float32")
    features = source.get_layer("avg_pool").output
    expected = keras.Model(source.input, features)(x)
    np.testing.assert_allclose(headless(x), expected, atol=1e-6)


def test_models_without_timm_counterpart_are_refused():
    with pytest.raises(ValueError, match="no counterpart in timm"):
        weights.timm_weight_map(applications.ShuffleNetV2(0.5, input_shape=(64, 64, 3)))
    with pytest.raises(ValueError, match="conv1_conv"):
        weights.timm_weight_map(applications.SKNet29(input_shape=(32, 32, 3)))


# --- weights= in the model functions --------------------------------------------------------------


def test_model_function_loads_a_timm_checkpoint(skresnet18_checkpoint):
    path, images, logits = skresnet18_checkpoint
    model = applications.SKResNet18(weights=path, input_shape=(64, 64, 3), classifier_activation=None)
    np.testing.assert_allclose(model.predict(images, verbose=0), logits, atol=1e-5)
    with pytest.raises(ValueError, match=r"classifier of 1000 classes.*Received: classes=10"):
        applications.SKResNet18(weights=path, classes=10)
    headless = applications.SKResNet18(
        weights=path, include_top=False, classes=10
    )  # classes ignored, as keras
    assert headless.output_shape == (None, None, None, 512)
    with pytest.raises(
        weights.CheckpointMismatchError, match=r"model 'sknet50'.*missing keys.*unexpected keys"
    ):
        applications.SKNet50(weights=path)


def test_model_function_refuses_corrupted_checkpoints(skresnet18_checkpoint, tmp_path):
    path, *_ = skresnet18_checkpoint
    with open(path, "rb") as f:
        data = f.read()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        applications.SKResNet18(weights=str(tmp_path / "cut.safetensors"))
    (tmp_path / "junk.pth").write_bytes(b"\x80\x04junk")
    with pytest.raises((ValueError, ImportError), match="junk.pth"):
        applications.SKResNet18(weights=str(tmp_path / "junk.pth"))


# --- weights="imagenet": download, verify, convert, cache -----------------------------------------


@pytest.fixture
def mirror(tmp_path, monkeypatch, skresnet18_checkpoint):
    """A local Hub mirror (HF_ENDPOINT=file://...) serving SKResNet18's checkpoint, and a fresh Keras home."""
    root = tmp_path / "hub"
    served = root / SKRESNET18.hf_repo / "resolve" / SKRESNET18.revision / SKRESNET18.filename
    served.parent.mkdir(parents=True)
    served.write_bytes(open(skresnet18_checkpoint[0], "rb").read())
    monkeypatch.setenv("HF_ENDPOINT", root.as_uri())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return served


def cache_files():
    directory = weights.cache_dir()
    return sorted(os.listdir(directory))


def test_imagenet_downloads_converts_and_caches(mirror, skresnet18_checkpoint):
    _, images, logits = skresnet18_checkpoint
    model = applications.SKResNet18(weights="imagenet", input_shape=(64, 64, 3), classifier_activation=None)
    np.testing.assert_allclose(model.predict(images, verbose=0), logits, atol=1e-5)
    files = cache_files()
    stem = "skresnet18-skresnet18.ra_in1k"
    assert files == sorted(
        [f"{stem}.json", f"{stem}.weights.h5", f"skresnet18.ra_in1k-{SKRESNET18.revision}.safetensors"]
    )
    metadata = json.load(open(os.path.join(weights.cache_dir(), f"{stem}.json")))
    assert metadata["checkpoint_sha256"] == weights.sha256_of(mirror)
    assert metadata["url"] == SKRESNET18.url and metadata["url"].startswith("file://")

    mirror.unlink()  # the cache is used from now on: no download
    headless = applications.SKResNet18(weights="imagenet", include_top=False, pooling="avg")
    assert headless.output_shape == (None, 512)
    # All but the classifier loaded: the same weights, and the same outputs on the same (graph) path.
    loaded = {w.path: w.numpy() for w in headless.weights}
    for weight in model.weights:
        if weight.path in loaded:
            np.testing.assert_array_equal(loaded.pop(weight.path), weight.numpy(), err_msg=weight.path)
    assert not loaded, f"weights of the headless model not in the full one: {sorted(loaded)[:3]}"
    features = keras.Model(model.input, model.get_layer("avg_pool").output).predict_on_batch(images)
    np.testing.assert_allclose(headless.predict_on_batch(images), features, atol=1e-6)

    # A damaged cached weights file is noticed (sha256) and rebuilt from the cached checkpoint.
    with open(os.path.join(weights.cache_dir(), f"{stem}.weights.h5"), "r+b") as f:
        f.seek(4096)
        f.write(b"\xff" * 64)
    again = applications.SKResNet18(weights="imagenet", input_shape=(64, 64, 3), classifier_activation=None)
    np.testing.assert_allclose(again.predict(images, verbose=0), logits, atol=1e-5)


def test_hash_mismatch_discards_the_download(mirror, monkeypatch):
    wrong = dataclasses.replace(SKRESNET18, sha256="0" * 64)
    monkeypatch.setitem(registry.PRETRAINED, "SKResNet18", wrong)
    with pytest.raises(ValueError, match="sha256 .* expected 0{64}; the file was discarded"):
        applications.SKResNet18(weights="imagenet")
    assert cache_files() == []


def test_a_changed_file_on_the_server_is_refused_after_first_use(mirror, skresnet18_checkpoint):
    applications.SKResNet18(weights="imagenet")
    for name in cache_files():
        if not name.endswith(".json"):
            os.remove(os.path.join(weights.cache_dir(), name))
    other = applications.SKResNet18()
    save_safetensors(mirror, weights.timm_state_dict(other))  # valid, but not the file first fetched
    with pytest.raises(ValueError, match="the file was discarded"):
        applications.SKResNet18(weights="imagenet")
    assert [name for name in cache_files() if not name.endswith(".json")] == []


def test_download_of_another_architecture_is_discarded(mirror):
    save_safetensors(mirror, weights.timm_state_dict(tiny()))
    with pytest.raises(weights.CheckpointMismatchError, match="does not fit model 'skresnet18'"):
        applications.SKResNet18(weights="imagenet")
    assert cache_files() == []


def test_no_network_says_how_to_pass_a_local_file(mirror, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(
        ConnectionError, match=r"Without network access.*SKResNet18\(weights='/path/to/model.safetensors'\)"
    ):
        applications.SKResNet18(weights="imagenet")
    assert cache_files() == []


def test_classes_are_checked_before_any_download(mirror):
    mirror.unlink()
    with pytest.raises(ValueError, match="`classes` should be 1000. Received: classes=10"):
        applications.SKResNet18(weights="imagenet", classes=10)
    assert cache_files() == []


# --- the registry and the eval transform ----------------------------------------------------------


def test_pretrained_config():
    config = weights.pretrained_config("SKNet50")
    assert (
        config
        is weights.pretrained_config("skresnext50_32x4d")
        is weights.pretrained_config(applications.SKNet50)
    )
    assert (config.crop_pct, config.interpolation, config.input_size, config.top1) == (
        0.875,
        "bicubic",
        224,
        80.168,
    )
    assert (
        config.url == "https://huggingface.co/timm/skresnext50_32x4d.ra_in1k/resolve/main/model.safetensors"
    )
    with pytest.raises(ValueError, match="SKNet101"):
        weights.pretrained_config("SKNet101")


def test_eval_transform_resizes_crops_and_normalises(rng):
    image = rng.integers(0, 256, size=(256, 320, 3)).astype("uint8")  # shorter side already 224 / 0.875
    out = weights.eval_transform(image, "SKNet50", interpolation="nearest")
    expected = applications.preprocess_input(image[16:240, 48:272].astype("float32"))  # centre 224x224
    np.testing.assert_allclose(out, expected, atol=1e-5)
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)  # 512x640: resized back to 256x320
    batch = weights.eval_transform(np.stack([big, big]), "SKNet50", interpolation="area")
    assert batch.shape == (2, 224, 224, 3)
    np.testing.assert_allclose(batch[1], expected, atol=1e-5)
    tall = weights.eval_transform(np.zeros((400, 300, 3), "uint8"), "SKNet50", input_size=160, crop_pct=1.0)
    assert tall.shape == (160, 160, 3)
    with pytest.raises(ValueError, match="interpolation='lanczos9'"):
        weights.eval_transform(image, "SKNet50", interpolation="lanczos9")
