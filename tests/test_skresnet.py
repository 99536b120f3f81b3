"""SK-ResNet: SKConv's split input and SKBasicBlock against NumPy, the model against timm's sizes."""

import keras
import numpy as np
import pytest

from keras_sknet import applications
from keras_sknet.layers import SKBasicBlock, SKConv
from keras_sknet.utils import count_params
from tests import reference
from tests.helpers import randomize_batch_norms, reference_sk

pytestmark = pytest.mark.kernels


@pytest.mark.parametrize("strides", [1, 2])
def test_split_input_matches_reference(strides, rng):
    x = rng.normal(size=(2, 9, 10, 8)).astype("float32")
    sk = SKConv(6, kernel_sizes=(3, 5), strides=strides, groups=1, reduction=2, min_dim=4, split_input=True)
    sk.build(x.shape)
    randomize_batch_norms(sk, rng)
    assert sk.path_convs[0].kernel.shape == (3, 3, 4, 6)  # each path reads half of the 8 channels
    v, a = sk(x, return_attention=True)
    expected_v, expected_a = reference_sk(sk, x)
    np.testing.assert_allclose(v, expected_v, atol=1e-4)
    np.testing.assert_allclose(a, expected_a, atol=1e-5)


def test_split_input_needs_divisible_channels():
    with pytest.raises(ValueError, match=r"divisible by the number of paths \(2\)"):
        SKConv(8, kernel_sizes=(3, 5), groups=1, split_input=True)(np.zeros((1, 8, 8, 7), "float32"))


@pytest.mark.parametrize(
    "strides,channels", [(1, 8), (2, 8), (1, 4)], ids=["identity", "stride2", "projection"]
)
def test_basic_block_matches_reference(strides, channels, rng):
    x = rng.normal(size=(2, 8, 9, channels)).astype("float32")
    block = SKBasicBlock(8, strides=strides, reduction=4, min_dim=4)
    block.build(x.shape)
    randomize_batch_norms(block, rng)
    v, _ = reference_sk(block.sk, x)
    y = reference.batch_norm(
        reference.conv2d(v, block.conv2.kernel.numpy(), pad=1), *reference.bn_weights(block.bn2)
    )
    shortcut = x
    if block.shortcut_conv is not None:
        shortcut = reference.conv2d(x, block.shortcut_conv.kernel.numpy(), strides)
        shortcut = reference.batch_norm(shortcut, *reference.bn_weights(block.shortcut_bn))
    expected = np.maximum(y + shortcut, 0)
    assert (block.shortcut_conv is None) == (strides == 1 and channels == 8)
    np.testing.assert_allclose(block(x, training=False), expected, atol=1e-4)


def test_basic_block_config_round_trip(rng):
    block = SKBasicBlock(8, strides=2, kernel_sizes=(3, 5, 7), reduction=4, min_dim=4, split_input=False)
    x = rng.normal(size=(1, 8, 8, 8)).astype("float32")
    y = block(x)
    config = block.get_config()
    clone = SKBasicBlock.from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(clone(x), y, atol=1e-6)


def test_parameter_counts_equal_timm():
    """timm's skresnet18 / skresnet34 have 11,958,056 / 22,282,376 parameters."""
    assert count_params(applications.SKResNet18()) == 11_958_056
    assert count_params(applications.SKResNet34()) == 22_282_376


def test_family_builder_and_keras_round_trip(rng, tmp_path):
    model = applications.SKResNet((1, 1), input_shape=(64, 64, 3), classes=3, name="tiny")
    randomize_batch_norms(model, rng)
    x = rng.normal(size=(2, 64, 64, 3)).astype("float32")
    y = model.predict(x, verbose=0)
    model.save(tmp_path / "tiny.keras")
    np.testing.assert_allclose(
        keras.models.load_model(tmp_path / "tiny.keras").predict(x, verbose=0), y, atol=1e-6
    )
