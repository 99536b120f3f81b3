"""SKBlock, ResNeXtBlock and ShuffleNetV2Unit against NumPy compositions of the reference; `Block`."""

import inspect

import keras
import numpy as np
import pytest

from keras_sknet.layers import (
    Block,
    FusedBatchNorm,
    GroupConv2D,
    ResNeXtBlock,
    ShuffleNetV2Unit,
    SKAttention,
    SKBasicBlock,
    SKBlock,
    SKConv,
    SqueezeExcite,
)
from tests import reference
from tests.helpers import randomize_batch_norms, reference_sk

pytestmark = pytest.mark.kernels


def conv_bn(x, conv, bn, relu):
    y = reference.conv2d(x, conv.kernel.numpy(), conv.strides, conv.dilation_rate, conv.pad)
    y = reference.batch_norm(y, *reference.bn_weights(bn))
    return np.maximum(y, 0) if relu else y


def squeeze_excite(x, se):
    s = x.mean(axis=(1, 2))
    s = np.maximum(s @ se.fc_reduce.kernel.numpy() + se.fc_reduce.bias.numpy(), 0)
    gate = 1 / (1 + np.exp(-(s @ se.fc_expand.kernel.numpy() + se.fc_expand.bias.numpy())))
    return x * gate[:, None, None, :]


def reference_bottleneck(block, x):
    y = conv_bn(x, block.conv1, block.bn1, relu=True)
    y = (
        reference_sk(block.sk, y)[0]
        if isinstance(block, SKBlock)
        else conv_bn(y, block.conv2, block.bn2, relu=True)
    )
    y = conv_bn(y, block.conv3, block.bn3, relu=False)
    if block.se is not None:
        y = squeeze_excite(y, block.se)
    shortcut = (
        x if block.shortcut_conv is None else conv_bn(x, block.shortcut_conv, block.shortcut_bn, relu=False)
    )
    return np.maximum(y + shortcut, 0)


def build(layer, x, rng):
    layer.build(x.shape)
    randomize_batch_norms(layer, rng)
    return layer


@pytest.mark.parametrize("strides,in_channels", [(1, 16), (1, 8), (2, 8)])
@pytest.mark.parametrize("block_type", ["sk", "resnext", "seresnext"])
def test_bottlenecks_match_reference(block_type, strides, in_channels, rng):
    x = rng.normal(size=(2, 8, 9, in_channels)).astype("float32")
    if block_type == "sk":
        block = SKBlock(16, width=8, strides=strides, groups=4, reduction=2, min_dim=4)
    else:
        block = ResNeXtBlock(
            16, width=8, strides=strides, groups=4, se_reduction=4 if block_type == "seresnext" else None
        )
    build(block, x, rng)
    has_projection = strides != 1 or in_channels != 16
    assert (block.shortcut_conv is not None) == has_projection
    np.testing.assert_allclose(block(x), reference_bottleneck(block, x), atol=1e-4)


def test_sk_block_weight_names_are_predictable():
    block = SKBlock(256, width=128, strides=2, name="conv2_block1")
    inputs = keras.Input((56, 56, 64))
    keras.Model(inputs, block(inputs))
    paths = {w.path for w in block.weights}
    for expected in [
        "conv2_block1/conv1/kernel",
        "conv2_block1/bn1/gamma",
        "conv2_block1/sk/path0_conv/kernel",
        "conv2_block1/sk/path1_bn/moving_variance",
        "conv2_block1/sk/attention/fc_reduce/kernel",
        "conv2_block1/sk/attention/bn/beta",
        "conv2_block1/sk/attention/fc_select/kernel",
        "conv2_block1/conv3/kernel",
        "conv2_block1/shortcut_conv/kernel",
        "conv2_block1/shortcut_bn/moving_mean",
    ]:
        assert expected in paths


def shuffle(left, right):
    out = np.empty(left.shape[:-1] + (2 * left.shape[-1],), left.dtype)
    out[..., 0::2], out[..., 1::2] = left, right
    return out


def reference_shufflenet_unit(unit, x):
    def depthwise(x, layer, bn):
        if bn is None:
            return reference_sk(layer, x)[0]
        return conv_bn(x, layer, bn, relu=False)

    if unit.strides == 1:
        half = x.shape[-1] // 2
        left, right = x[..., :half], x[..., half:]
    else:
        left = depthwise(x, unit.left_depthwise, unit.left_bn1)
        left = conv_bn(left, unit.left_conv2, unit.left_bn2, relu=True)
        right = x
    right = conv_bn(right, unit.right_conv1, unit.right_bn1, relu=True)
    right = depthwise(right, unit.right_depthwise, unit.right_bn2)
    right = conv_bn(right, unit.right_conv3, unit.right_bn3, relu=True)
    out = shuffle(left, right)
    return squeeze_excite(out, unit.se) if unit.se is not None else out


@pytest.mark.parametrize("attention", [None, "se", "sk"])
@pytest.mark.parametrize("strides,in_channels", [(1, 16), (2, 8)])
def test_shufflenet_units_match_reference(attention, strides, in_channels, rng):
    x = rng.normal(size=(2, 8, 7, in_channels)).astype("float32")
    unit = build(
        ShuffleNetV2Unit(16, strides=strides, attention=attention, se_min_dim=2, sk_min_dim=2), x, rng
    )
    if attention == "sk":
        assert unit.right_depthwise.activation is None and unit.right_depthwise.groups == (8, 8)
    np.testing.assert_allclose(unit(x), reference_shufflenet_unit(unit, x), atol=1e-4)


def test_channel_shuffle_interleaves():
    from keras_sknet.layers import channel_shuffle

    left = np.arange(6, dtype="float32").reshape(1, 1, 2, 3)
    right = left + 100
    out = np.asarray(channel_shuffle(left, right))
    np.testing.assert_array_equal(out[0, 0, 0], [0, 100, 1, 101, 2, 102])


@pytest.mark.parametrize(
    "layer",
    [
        SKBlock(
            32,
            width=16,
            strides=2,
            groups=(4, 8),
            kernel_sizes=(3, 5),
            reduction=4,
            min_dim=8,
            attention=False,
        ),
        ResNeXtBlock(32, width=16, groups=8, se_reduction=8),
        ShuffleNetV2Unit(24, strides=2, attention="sk", sk_kernel_sizes=(3, 5, 7)),
        SqueezeExcite(reduction=4, min_dim=2),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: ResNeXtBlock(32, width=16, groups=5), "groups=5"),
        (lambda: SKBlock(32, width=16, groups=5), "groups=5"),
        (lambda: SKBlock(32, groups=4, kernel_sizes=(2,)), r"kernel_sizes=\(2,\)"),
        (lambda: ShuffleNetV2Unit(15), "filters=15"),
        (lambda: ShuffleNetV2Unit(16, strides=3), "strides=3"),
        (lambda: ShuffleNetV2Unit(16, attention="cbam"), "attention='cbam'"),
        (lambda: SqueezeExcite(reduction=0), "reduction=0"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_stride_one_shufflenet_unit_needs_matching_channels():
    with pytest.raises(ValueError, match="input channels=8, filters=16"):
        ShuffleNetV2Unit(16)(np.zeros((1, 4, 4, 8), "float32"))


# Every composite layer, with arguments and an input shape.
BLOCKS = [
    (
        SKConv,
        dict(filters=8, kernel_sizes=(3, 5), strides=2, groups=(2, 4), reduction=2, min_dim=4),
        (2, 8, 8, 8),
    ),
    (SKConv, dict(filters=8, groups=1, split_input=True, attention=False, activation=None), (2, 6, 6, 4)),
    (SKAttention, dict(num_paths=1, attention_dim=4), (2, 8)),  # fc_select exists, unused
    (SKAttention, dict(num_paths=2, attention_dim=4), (2, 8)),  # call reads fc_select's kernel
    (SKAttention, dict(num_paths=3, attention_dim=4), (2, 8)),
    (SKBlock, dict(filters=16, width=8, strides=2, groups=2, reduction=2, min_dim=4), (2, 8, 8, 4)),
    (ResNeXtBlock, dict(filters=16, width=8, groups=2, se_reduction=4), (2, 6, 6, 16)),
    (SKBasicBlock, dict(filters=8, strides=2, reduction=2, min_dim=4), (2, 8, 8, 4)),
    (ShuffleNetV2Unit, dict(filters=16, strides=2, attention="sk", sk_min_dim=4), (2, 8, 8, 8)),
    (ShuffleNetV2Unit, dict(filters=16, attention="se", se_min_dim=2), (2, 6, 6, 16)),
    (SqueezeExcite, dict(reduction=2), (2, 4, 4, 8)),
]
BLOCK_IDS = [f"{cls.__name__}-{i}" for i, (cls, _, _) in enumerate(BLOCKS)]


@pytest.mark.parametrize("cls,kwargs,shape", BLOCKS, ids=BLOCK_IDS)
def test_get_config_is_the_constructor_arguments(cls, kwargs, shape):
    config = cls(**kwargs).get_config()
    parameters = [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind is not p.VAR_KEYWORD
    ]
    assert set(config) == set(parameters) | {"name", "trainable", "dtype"}
    for name, value in kwargs.items():
        assert config[name] == (list(value) if isinstance(value, tuple) else value)


@pytest.mark.parametrize("cls,kwargs,shape", BLOCKS, ids=BLOCK_IDS)
def test_build_from_a_shape_makes_the_weights_a_file_loads_into(cls, kwargs, shape, rng, tmp_path):
    """`build(shape)` (what loading a file runs) makes every weight the first call makes, with the same paths."""
    x = rng.normal(size=shape).astype("float32")
    called = cls(**kwargs, name="block")
    inputs = keras.Input(shape[1:])
    model = keras.Model(inputs, called(inputs))
    randomize_batch_norms(model, rng)
    model.save_weights(tmp_path / "block.weights.h5")

    built = cls.from_config(called.get_config())
    built.build(shape)
    assert [(w.path, tuple(w.shape)) for w in built.weights] == [
        (w.path, tuple(w.shape)) for w in called.weights
    ]
    inputs = keras.Input(shape[1:])
    loaded = keras.Model(inputs, built(inputs))
    loaded.load_weights(tmp_path / "block.weights.h5")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@keras.saving.register_keras_serializable(package="keras_sknet_tests")
class ConvBNReLU(Block):
    """A new block as a user writes it: its config (`__init__`) and its maths (`call`), nothing else."""

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.conv = GroupConv2D(filters, 3, strides=strides, dtype=self.dtype_policy, name="conv")
        self.bn = FusedBatchNorm(dtype=self.dtype_policy, name="bn")

    def call(self, inputs, training=None):
        return keras.ops.relu(self.bn(self.conv(inputs), training=training))


def test_a_new_block_is_its_maths_and_its_config(rng, tmp_path):
    inputs = keras.Input((None, None, 4))
    block = ConvBNReLU(8, strides=2, name="unit")
    model = keras.Model(inputs, block(inputs))
    assert model.output_shape == (None, None, None, 8)
    assert block.compute_output_shape((1, 7, 8, 4)) == (1, 4, 4, 8)
    assert {k: v for k, v in block.get_config().items() if k in ("filters", "strides")} == {
        "filters": 8,
        "strides": 2,
    }
    assert [w.path for w in block.weights] == [
        "unit/conv/kernel",
        "unit/bn/gamma",
        "unit/bn/beta",
        "unit/bn/moving_mean",
        "unit/bn/moving_variance",
    ]
    randomize_batch_norms(model, rng)
    x = rng.normal(size=(2, 7, 8, 4)).astype("float32")
    model.save(tmp_path / "unit.keras")
    loaded = keras.models.load_model(tmp_path / "unit.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_block_whose_call_leaves_a_sublayer_unbuilt_says_so():
    class Skipping(Block):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.used = keras.layers.Dense(4, name="used")
            self.unused = keras.layers.Dense(4, name="unused")

        def call(self, inputs):
            return self.used(inputs)

    with pytest.raises(ValueError, match=r"did not build its sublayers \['unused'\]"):
        Skipping().build((None, 3))
