"""SKConv (Section 3.1) against the NumPy reference of Eqs. (1)-(6)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sknet import platform
from keras_sknet.layers import SKAttention, SKConv, record_attention, tf_conv
from tests import reference
from tests.helpers import randomize_batch_norms, reference_sk

pytestmark = pytest.mark.kernels


def built_sk(rng, x, **kwargs):
    sk = SKConv(**kwargs)
    sk.build(x.shape)
    randomize_batch_norms(sk, rng)
    return sk


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize(
    "kernel_sizes", [(3,), (3, 5), (3, 5, 7), (3, 1), (5, 7)], ids=lambda k: "K" + "+".join(map(str, k))
)
@pytest.mark.parametrize("groups", [1, 4])
def test_matches_reference(strides, kernel_sizes, groups, rng):
    x = rng.normal(size=(2, 9, 10, 8)).astype("float32")
    sk = built_sk(
        rng, x, filters=8, kernel_sizes=kernel_sizes, strides=strides, groups=groups, reduction=2, min_dim=4
    )
    v, a = sk(x, return_attention=True)
    expected_v, expected_a = reference_sk(sk, x)
    np.testing.assert_allclose(v, expected_v, atol=1e-4)
    np.testing.assert_allclose(a, expected_a, atol=1e-5)
    np.testing.assert_allclose(np.sum(a, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("strides", [1, 2])
def test_training_mode_uses_batch_statistics(strides, rng):
    x = rng.normal(size=(4, 8, 8, 8)).astype("float32")
    sk = built_sk(rng, x, filters=8, strides=strides, groups=2, reduction=2, min_dim=4)
    v, a = sk(x, training=True, return_attention=True)
    expected_v, expected_a = reference_sk(sk, x, training=True)
    np.testing.assert_allclose(v, expected_v, atol=1e-4)
    np.testing.assert_allclose(a, expected_a, atol=1e-5)


def test_true_large_kernels_and_per_path_groups(rng):
    """Table 6: a 3x3 path with G=4 beside a true 5x5 path with G=8."""
    x = rng.normal(size=(1, 9, 9, 16)).astype("float32")
    sk = built_sk(rng, x, filters=16, kernel_sizes=(3, 5), groups=(4, 8), dilate_large_kernels=False)
    assert [c.kernel.shape for c in sk.path_convs] == [(3, 3, 4, 16), (5, 5, 2, 16)]
    assert [c.dilation_rate for c in sk.path_convs] == [1, 1]
    np.testing.assert_allclose(sk(x), reference_sk(sk, x)[0], atol=1e-4)


def test_large_kernels_are_dilated_3x3_by_default():
    sk = SKConv(8, kernel_sizes=(3, 5, 7), groups=2)
    sk.build((None, 8, 8, 8))
    assert [(c.kernel_size, c.dilation_rate) for c in sk.path_convs] == [(3, 1), (3, 2), (3, 3)]


def test_attention_off_is_the_plain_sum_of_the_paths(rng):
    x = rng.normal(size=(2, 7, 7, 8)).astype("float32")
    sk = built_sk(rng, x, filters=8, kernel_sizes=(3, 5), groups=2, attention=False)
    assert sk.attention_layer is None
    assert not any("attention" in w.path for w in sk.weights)
    paths_sum = sum(
        np.maximum(
            reference.batch_norm(
                reference.conv2d(x, c.kernel.numpy(), 1, c.dilation_rate, c.dilation_rate),
                *reference.bn_weights(b),
            ),
            0,
        )
        for c, b in zip(sk.path_convs, sk.path_bns)
    )
    v, a = sk(x, return_attention=True)
    assert a is None
    np.testing.assert_allclose(v, paths_sum, atol=1e-4)


def test_no_activation_variant(rng):
    """The ShuffleNetV2 variant of Table S1 has no ReLU in the paths."""
    x = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    sk = built_sk(rng, x, filters=8, groups=8, activation=None, reduction=4, min_dim=2)
    v = sk(x)
    np.testing.assert_allclose(v, reference_sk(sk, x)[0], atol=1e-4)
    assert np.min(v) < 0


def test_attention_dim_is_max_of_reduced_channels_and_L():
    assert SKConv(128, reduction=16, min_dim=32).attention_dim == 32
    assert SKConv(1024, reduction=16, min_dim=32).attention_dim == 64
    assert SKConv(96, reduction=4, min_dim=16).attention_dim == 24


def test_weight_shapes_follow_the_paper():
    sk = SKConv(128, kernel_sizes=(3, 5), groups=32, reduction=16, min_dim=32)
    sk.build((None, 56, 56, 128))
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in sk.trainable_weights}
    assert shapes["path0_conv/kernel"] == (3, 3, 4, 128)
    assert shapes["attention/fc_reduce/kernel"] == (128, 32)  # W, d x C, no bias
    assert shapes["attention/fc_select/kernel"] == (32, 256)  # A and B stacked path-major
    assert not any(name.endswith("bias") for name in shapes)


def test_unknown_spatial_size_and_batch_one(rng):
    inputs = keras.Input((None, None, 8))
    model = keras.Model(inputs, SKConv(8, strides=2, groups=4, min_dim=4)(inputs))
    for size in [(5, 5), (8, 11)]:
        x = rng.normal(size=(1, *size, 8)).astype("float32")
        y = model.predict(x, verbose=0)
        assert y.shape == (1, (size[0] + 1) // 2, (size[1] + 1) // 2, 8)
        np.testing.assert_allclose(y, reference_sk(model.layers[-1], x)[0], atol=1e-4)


def test_record_attention_eager_and_in_graphs(rng):
    inputs = keras.Input((8, 8, 8))
    x = SKConv(8, groups=4, min_dim=4, name="sk_a")(inputs)
    x = SKConv(8, kernel_sizes=(3, 5, 7), groups=4, min_dim=4, name="sk_b")(x)
    x = SKConv(8, groups=4, attention=False, name="sk_plain")(x)
    model = keras.Model(inputs, x)
    images = rng.normal(size=(3, 8, 8, 8)).astype("float32")

    with record_attention() as eager:
        outputs = model(images, training=False)

    @tf.function
    def forward(images):
        with record_attention() as recorded:
            outputs = model(images, training=False)
        return outputs, recorded

    graph_outputs, graph = forward(images)
    assert set(eager) == set(graph) == {"sk_a", "sk_b"}
    assert graph["sk_b"].shape == (3, 3, 8)
    np.testing.assert_allclose(outputs, graph_outputs, atol=1e-5)
    _, direct = model.get_layer("sk_a")(images, return_attention=True)
    np.testing.assert_allclose(eager["sk_a"], direct, atol=1e-6)
    np.testing.assert_allclose(graph["sk_a"], direct, atol=1e-6)
    # Outside the block nothing is recorded.
    with record_attention() as later:
        pass
    assert later == {}


def test_config_round_trip_and_saving(rng, tmp_path):
    sk = SKConv(
        16, kernel_sizes=(3, 5, 1), strides=2, groups=(4, 8, 2), reduction=2.5, min_dim=3, activation=None
    )
    clone = SKConv.from_config(sk.get_config())
    assert clone.get_config() == sk.get_config()
    inputs = keras.Input((8, 8, 8))
    model = keras.Model(inputs, sk(inputs))
    randomize_batch_norms(model, rng)
    path = tmp_path / "sk.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = rng.normal(size=(2, 8, 8, 8)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.skipif(
    platform.onednn_enabled()
    and tf_conv.onednn_capped_below_avx512()
    and bool({"avx512_bf16", "amx_bf16"} & set(platform.cpu_features())),
    reason="ONEDNN_MAX_CPU_ISA below AVX-512 on a CPU with AVX-512 BF16: TensorFlow still sends bfloat16 "
    "convolutions to oneDNN, which the cap leaves without a bfloat16 kernel (plain tf.nn.conv2d fails the "
    "same way); a real AVX2 CPU is not routed there",
)
def test_mixed_precision_bfloat16(rng):
    x = rng.normal(size=(2, 8, 8, 8)).astype("float32")
    sk = built_sk(rng, x, filters=8, groups=4, min_dim=4)
    expected = sk(x)
    keras.config.set_dtype_policy("mixed_bfloat16")
    config = sk.get_config()
    config.pop("dtype")  # created under float32: take the global mixed policy instead
    mixed = SKConv.from_config(config)
    mixed.build(x.shape)
    mixed.set_weights(sk.get_weights())
    v, a = mixed(x, return_attention=True)
    assert v.dtype == "bfloat16" and a.dtype == "bfloat16"
    assert mixed.path_convs[0].kernel.dtype == "float32"
    np.testing.assert_allclose(np.asarray(tf.cast(v, "float32")), expected, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(filters=8, groups=3), "groups=3"),
        (dict(filters=8, kernel_sizes=()), r"kernel_sizes=\(\)"),
        (dict(filters=8, kernel_sizes=(3, 4)), r"kernel_sizes=\(3, 4\)"),
        (dict(filters=8, kernel_sizes=(3, -1)), r"kernel_sizes=\(3, -1\)"),
        (dict(filters=8, kernel_sizes=(3, 0)), r"kernel_sizes=\(3, 0\)"),
        (dict(filters=8, reduction=0), "reduction=0"),
        (dict(filters=8, reduction=-2), "reduction=-2"),
        (dict(filters=8, min_dim=0), "min_dim=0"),
        (dict(filters=8, groups=(2, 4, 8)), r"groups=\(2, 4, 8\)"),
        (dict(filters=8, activation="no_such_activation"), "no_such_activation"),
        (dict(filters=-1), "filters=-1"),
        (dict(filters=8, strides=0), "strides=0"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"groups": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        SKConv(**kwargs)


def test_groups_must_divide_the_input_channels():
    with pytest.raises(ValueError, match="input channels=6"):
        SKConv(8, groups=4)(np.zeros((1, 5, 5, 6), "float32"))


def test_sk_attention_layer_alone(rng):
    layer = SKAttention(num_paths=3, attention_dim=4)
    s = rng.normal(size=(5, 6)).astype("float32")
    a = layer(s)
    assert a.shape == (5, 3, 6)
    np.testing.assert_allclose(np.sum(a, axis=1), 1.0, atol=1e-6)
    assert SKAttention.from_config(layer.get_config()).get_config() == layer.get_config()


def _softmax_attention(layer, s):
    """Eqs. (3)-(5) from the layer's weights in NumPy: softmax over the paths of fc_select(z)."""
    gamma, beta, mean, var = (np.asarray(w) for w in layer.bn.get_weights())
    z = s @ np.asarray(layer.fc_reduce.kernel)
    z = np.maximum((z - mean) / np.sqrt(var + layer.epsilon) * gamma + beta, 0)
    logits = (z @ np.asarray(layer.fc_select.kernel)).reshape(len(s), layer.num_paths, -1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _attention_with_random_statistics(num_paths, rng):
    """A built `SKAttention` whose BatchNorm has random statistics, and a descriptor `s` to call it on."""
    layer = SKAttention(num_paths=num_paths, attention_dim=8)
    s = rng.normal(size=(4, 16)).astype("float32")
    layer(s)
    randomize_batch_norms(layer, rng)
    return layer, s


@pytest.mark.parametrize("num_paths", [2, 3])
def test_sk_attention_is_the_softmax_of_fc_select(num_paths, rng):
    """Two paths run as sigmoid(z @ (W1 - W2)): the same values as the softmax of the logits."""
    layer, s = _attention_with_random_statistics(num_paths, rng)
    np.testing.assert_allclose(layer(s), _softmax_attention(layer, s), atol=1e-6)


def test_two_path_attention_with_keras_quantized_or_lora_fc_select(rng):
    """Keras int8 / LoRA kernels are not the plain float kernel: the layer then computes the logits itself."""
    layer = SKAttention(num_paths=2, attention_dim=8)
    s = rng.normal(size=(4, 16)).astype("float32")
    reference = layer(s).numpy()
    layer.fc_select.enable_lora(2)  # LoRA starts at zero: same outputs
    np.testing.assert_allclose(layer(s), reference, atol=1e-6)
    quantized = SKAttention(num_paths=2, attention_dim=8)
    quantized(s)
    quantized.set_weights(layer.get_weights()[: len(quantized.get_weights())])
    quantized.fc_select.quantize("int8")
    attention = quantized(s).numpy()
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(attention, reference, atol=0.02)


@pytest.mark.parametrize("strides", [1, 2])
def test_inference_graph_matches_reference(strides, rng):
    """The graph a model runs in inference (BatchNorm folded into fc_reduce) against Eqs. (1)-(6)."""
    x = rng.normal(size=(3, 9, 9, 8)).astype("float32")
    sk = built_sk(rng, x, filters=8, strides=strides, groups=2, reduction=2, min_dim=4)
    v, a = tf.function(lambda t: sk(t, training=False, return_attention=True))(x)
    expected_v, expected_a = reference_sk(sk, x)
    np.testing.assert_allclose(v, expected_v, atol=1e-4)
    np.testing.assert_allclose(a, expected_a, atol=1e-5)


@pytest.mark.parametrize("num_paths", [2, 3])
def test_frozen_attention_batch_norm_uses_its_moving_statistics(num_paths, rng):
    """training=True with a frozen BatchNorm (fine-tuning) normalises with the moving statistics."""
    layer, s = _attention_with_random_statistics(num_paths, rng)
    layer.bn.trainable = False
    np.testing.assert_allclose(layer(s, training=True), _softmax_attention(layer, s), atol=1e-6)
    layer.bn.trainable = True  # batch statistics now: another result
    assert not np.allclose(layer(s, training=True), _softmax_attention(layer, s), atol=1e-3)


def test_inference_folds_the_attention_batch_norm_into_fc_reduce():
    """In inference the descriptor is one matmul with a bias (no BatchNorm op); training keeps the BatchNorm."""
    layer = SKAttention(num_paths=2, attention_dim=8)
    layer(np.zeros((2, 16), "float32"))

    def op_types(training):
        graph = tf.function(lambda s: layer(s, training=training)).get_concrete_function(
            tf.TensorSpec((None, 16))
        )
        return [op.type for op in graph.graph.get_operations()]

    assert "FusedBatchNormV3" not in op_types(False) and "BiasAdd" in op_types(False)
    assert "FusedBatchNormV3" in op_types(True)
