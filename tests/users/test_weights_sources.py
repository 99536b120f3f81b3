"""`weights=` as a user passes it: one check before any work, a cache that notices changes, user files kept.

A wrong or typo'd value and a missing file are told in one line that names the value, before
any model is built or anything downloaded. `weights="imagenet"` hashes its cached file again only
when the file's size or mtime changed, and a file altered on disk is noticed and rebuilt. A user's
own weights file is read, never written or removed, even when it does not fit.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_sknet import applications, weights
from keras_sknet.applications import model_builder
from keras_sknet.weights import download, registry
from keras_sknet.weights.safetensors_io import save_safetensors
from tests.helpers import subprocess_environment

CONFIG = registry.PRETRAINED["SKResNet18"]
IMAGES = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")


def _no_build_no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("built or downloaded before weights= was checked")

    monkeypatch.setattr(model_builder, "ZooModel", refuse)
    monkeypatch.setattr(download, "_download", refuse)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("imagnet", "Unknown weights name 'imagnet' (did you mean 'imagenet'?)"),
        ("pretrained", "Unknown weights name 'pretrained'"),
        ("missing.weights.h5", "No such weights file: 'missing.weights.h5'"),
        (42, "Received: weights=42"),
    ],
)
def test_a_wrong_value_is_one_line_before_any_build(value, expected, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    _no_build_no_download(monkeypatch)
    with pytest.raises(ValueError) as error:
        applications.SKResNet18(weights=value)
    message = str(error.value)
    assert expected in message and "\n" not in message
    assert "'imagenet'" in message  # says what is accepted


def test_imagenet_for_a_model_without_a_checkpoint_names_those_with_one(monkeypatch):
    _no_build_no_download(monkeypatch)
    with pytest.raises(ValueError, match=r"weights='imagenet': .*SKNet50.*Received: weights='imagenet'"):
        applications.SKNet26(weights="imagenet")


def test_the_command_line_user_sees_the_one_line(tmp_path):
    code = "from keras_sknet.applications import SKResNet18\nSKResNet18(weights='imagenett')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**subprocess_environment(), "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: Unknown weights name 'imagenett' (did you mean 'imagenet'?)")
    assert os.listdir(tmp_path) == []


@pytest.fixture
def cached_imagenet(tmp_path, monkeypatch):
    """SKResNet18's weights='imagenet' served by a local mirror and cached once; returns the first model."""
    source = applications.SKResNet18(weights=None, input_shape=(64, 64, 3))
    served = tmp_path / "hub" / CONFIG.hf_repo / "resolve" / CONFIG.revision / CONFIG.filename
    served.parent.mkdir(parents=True)
    save_safetensors(served, weights.timm_state_dict(source))
    monkeypatch.setenv("HF_ENDPOINT", (tmp_path / "hub").as_uri())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    first = applications.SKResNet18(weights="imagenet", input_shape=(64, 64, 3))
    np.testing.assert_allclose(first.predict_on_batch(IMAGES), source.predict_on_batch(IMAGES), atol=1e-6)
    served.unlink()  # from now on the cache, or nothing
    return first


def _count_hashes(monkeypatch):
    calls = []
    real = download.sha256_of
    monkeypatch.setattr(
        download, "sha256_of", lambda path: calls.append(os.path.basename(path)) or real(path)
    )
    return calls


def test_a_cached_file_is_hashed_again_only_when_its_size_or_mtime_change(cached_imagenet, monkeypatch):
    hashed = _count_hashes(monkeypatch)
    cached = os.path.join(weights.cache_dir(), "skresnet18-skresnet18.ra_in1k.weights.h5")
    applications.SKResNet18(weights="imagenet", input_shape=(64, 64, 3))
    assert hashed == []  # unchanged: trusted by its recorded size and mtime

    status = os.stat(cached)
    os.utime(cached, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))  # touched, not changed
    applications.SKResNet18(weights="imagenet", input_shape=(64, 64, 3))
    assert hashed == [os.path.basename(cached)]
    applications.SKResNet18(weights="imagenet", input_shape=(64, 64, 3))
    assert hashed == [os.path.basename(cached)]  # the new mtime was recorded: not hashed again


def test_a_cached_file_altered_on_disk_is_noticed_and_rebuilt(cached_imagenet):
    cached = os.path.join(weights.cache_dir(), "skresnet18-skresnet18.ra_in1k.weights.h5")
    with open(cached, "r+b") as f:  # same size, other bytes: what a bad disk or a stray write does
        f.seek(os.path.getsize(cached) // 2)
        f.write(b"\x7f" * 256)
    again = applications.SKResNet18(weights="imagenet", input_shape=(64, 64, 3))
    np.testing.assert_allclose(
        again.predict_on_batch(IMAGES), cached_imagenet.predict_on_batch(IMAGES), atol=1e-6
    )
    assert (
        weights.sha256_of(cached)
        == download._read_json(cached.replace(".weights.h5", ".json"))["weights_sha256"]
    )


def _fingerprint(path):
    status = os.stat(path)
    return weights.sha256_of(path), status.st_size, status.st_mtime_ns


def test_the_users_own_files_are_only_read(tmp_path):
    model = applications.SKResNet18(weights=None, input_shape=(64, 64, 3))
    keras_file, timm_file = tmp_path / "mine.weights.h5", tmp_path / "mine.safetensors"
    model.save_weights(keras_file)
    save_safetensors(timm_file, weights.timm_state_dict(model))
    headless = {k: v for k, v in weights.timm_state_dict(model).items() if not k.startswith("fc.")}
    wrong = tmp_path / "wrong.safetensors"  # a checkpoint of another architecture
    save_safetensors(wrong, weights.timm_state_dict(applications.SKResNet34(weights=None)))
    files = {path: _fingerprint(path) for path in (keras_file, timm_file, wrong)}

    for path in (keras_file, timm_file):
        loaded = applications.SKResNet18(weights=str(path), input_shape=(64, 64, 3))
        np.testing.assert_allclose(loaded.predict_on_batch(IMAGES), model.predict_on_batch(IMAGES), atol=1e-6)
    with pytest.raises(weights.CheckpointMismatchError):
        applications.SKResNet18(weights=str(wrong))
    with pytest.raises(ValueError, match="classifier of 1000 classes"):
        applications.SKResNet18(weights=str(timm_file), classes=10)
    assert headless  # a headless model takes the same file, classifier left out
    applications.SKResNet18(weights=str(timm_file), include_top=False)

    assert {path: _fingerprint(path) for path in files} == files
    assert sorted(os.listdir(tmp_path)) == ["mine.safetensors", "mine.weights.h5", "wrong.safetensors"]
