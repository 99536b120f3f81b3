"""preprocess_input, decode_predictions and the class-index download (against a local file)."""

import hashlib
import json

import keras
import numpy as np
import pytest

from keras_sknet.applications import decode_predictions, preprocess_input
from keras_sknet.applications.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD, load_class_index


def test_preprocess_numpy_and_tensors():
    x = np.stack([np.zeros((2, 2, 3)), np.full((2, 2, 3), 255.0)])
    y = preprocess_input(x)
    assert y.dtype == np.float32 and isinstance(y, np.ndarray)
    np.testing.assert_allclose(y[0, 0, 0], -np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD), rtol=1e-6)
    np.testing.assert_allclose(y[1, 0, 0], (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD), rtol=1e-6)
    tensor = preprocess_input(keras.ops.convert_to_tensor(x.astype("uint8")))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor), y, rtol=1e-6)


def test_preprocess_rejects_other_layouts():
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\)"):
        preprocess_input(np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="channels_first"):
        preprocess_input(np.zeros((1, 4, 4, 3)), data_format="channels_first")


@pytest.fixture
def class_index(tmp_path):
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    path = tmp_path / "imagenet_class_index.json"
    path.write_text(json.dumps(index))
    return path


def test_decode_predictions_with_a_local_index(class_index):
    preds = np.zeros((2, 1000), "float32")
    preds[0, [7, 3, 500]] = [0.5, 0.3, 0.2]
    preds[1, 999] = 1.0
    decoded = decode_predictions(preds, top=3, class_index_path=class_index)
    assert [d[1] for d in decoded[0]] == ["class_7", "class_3", "class_500"]
    assert decoded[0][0] == ("n00000007", "class_7", 0.5)
    assert decoded[1][0][:2] == ("n00000999", "class_999")


def test_decode_predictions_checks_shape(class_index):
    with pytest.raises(ValueError, match=r"\(2, 10\)"):
        decode_predictions(np.zeros((2, 10)), class_index_path=class_index)


def test_download_code_against_a_local_url(class_index, tmp_path):
    md5 = hashlib.md5(class_index.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    classes = load_class_index(origin=class_index.as_uri(), file_hash=md5, cache_dir=str(cache))
    assert classes[42] == ("n00000042", "class_42")
    assert (cache / "models" / "imagenet_class_index.json").exists()


def test_unreachable_origin_explains_the_offline_fix(tmp_path):
    with pytest.raises(ConnectionError, match="class_index_path"):
        load_class_index(origin="http://127.0.0.1:9/imagenet_class_index.json", cache_dir=str(tmp_path))


def test_corrupt_index_is_reported(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_class_index(bad)
