"""Keras' own layer test harness (`run_layer_test`) on every public layer, on the running backend.

For each layer: serialization round trip (get_config / from_config), build
from a shape, symbolic call and `compute_output_spec`, eager call, a compiled
`fit` step (jitted on TensorFlow and JAX, eager on PyTorch), and under
`mixed_float16` (not on PyTorch's CPU, which Keras' harness skips) output
dtypes that match the symbolic ones with float32 variables. The weight counts
are written out by hand from each layer's structure.
"""

import pytest
from keras.src.testing import TestCase

from keras_sknet.layers import (
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
from tests.backends import common

# On TensorFlow: run under oneDNN and under Eigen (scripts/test.sh's kernel passes).
pytestmark = pytest.mark.kernels

# A path of an SKConv: conv kernel (1) + BatchNorm gamma, beta (2); moving mean, variance (2).
# SKAttention: fc_reduce + BatchNorm (2) + fc_select = 4 trainable, 2 non-trainable.


class LayerHarnessTest(TestCase):
    def run_layer_test(self, *args, **kwargs):
        # Keras' serializer imports TensorFlow wherever it is installed; the GPU machines have none.
        with common.tensorflow_hidden():
            super().run_layer_test(*args, **kwargs)

    def test_group_conv2d_grouped_strided_dilated(self):
        self.run_layer_test(
            GroupConv2D,
            dict(filters=8, kernel_size=3, strides=2, dilation_rate=2, groups=4, use_bias=True),
            input_shape=(2, 8, 8, 8),
            expected_output_shape=(2, 4, 4, 8),
            expected_num_trainable_weights=2,
            expected_num_non_trainable_weights=0,
        )

    def test_group_conv2d_depthwise_valid(self):
        self.run_layer_test(
            GroupConv2D,
            dict(filters=8, kernel_size=3, groups=8, padding="valid"),
            input_shape=(2, 7, 9, 8),
            expected_output_shape=(2, 5, 7, 8),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
        )

    def test_fused_batch_norm(self):
        self.run_layer_test(
            FusedBatchNorm,
            dict(epsilon=1e-5, momentum=0.9),
            input_shape=(2, 4, 4, 8),
            expected_output_shape=(2, 4, 4, 8),
            expected_num_trainable_weights=2,
            expected_num_non_trainable_weights=2,
        )

    def test_squeeze_excite(self):
        self.run_layer_test(
            SqueezeExcite,
            dict(reduction=2),
            input_shape=(2, 4, 4, 8),
            expected_output_shape=(2, 4, 4, 8),
            expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=0,
        )

    def test_sk_attention_two_and_three_paths(self):
        for paths in (2, 3):
            self.run_layer_test(
                SKAttention,
                dict(num_paths=paths, attention_dim=4),
                input_shape=(2, 8),
                expected_output_shape=(2, paths, 8),
                expected_num_trainable_weights=4,
                expected_num_non_trainable_weights=2,
            )

    def test_sk_conv(self):
        self.run_layer_test(
            SKConv,
            dict(filters=8, kernel_sizes=(3, 5), strides=2, groups=2, reduction=2, min_dim=4),
            input_shape=(2, 8, 8, 8),
            expected_output_shape=(2, 4, 4, 8),
            expected_num_trainable_weights=2 * 3 + 4,
            expected_num_non_trainable_weights=2 * 2 + 2,
        )

    def test_sk_conv_returns_attention(self):
        self.run_layer_test(
            SKConv,
            dict(filters=8, kernel_sizes=(1, 3, 5), groups=(1, 2, 4), reduction=2, min_dim=4),
            input_shape=(2, 6, 6, 8),
            call_kwargs=dict(return_attention=True),
            expected_output_shape=((2, 6, 6, 8), (2, 3, 8)),
            expected_num_trainable_weights=3 * 3 + 4,
            expected_num_non_trainable_weights=3 * 2 + 2,
            # The harness's fit step calls the layer without call_kwargs (one output, two targets).
            run_training_check=False,
        )

    def test_sk_conv_split_input_without_attention(self):
        self.run_layer_test(
            SKConv,
            dict(filters=8, groups=1, split_input=True, attention=False, activation=None),
            input_shape=(2, 6, 6, 4),
            expected_output_shape=(2, 6, 6, 8),
            expected_num_trainable_weights=2 * 3,
            expected_num_non_trainable_weights=2 * 2,
        )

    def test_sk_block_with_projection_shortcut(self):
        # conv1 + bn1, SKConv, conv3 + bn3, shortcut conv + bn.
        self.run_layer_test(
            SKBlock,
            dict(filters=16, width=8, strides=2, groups=2, reduction=2, min_dim=4),
            input_shape=(2, 8, 8, 4),
            expected_output_shape=(2, 4, 4, 16),
            expected_num_trainable_weights=3 + 10 + 3 + 3,
            expected_num_non_trainable_weights=2 + 6 + 2 + 2,
        )

    def test_resnext_block_with_se(self):
        # conv1 + bn1, conv2 + bn2, conv3 + bn3, SE (two fc with biases); identity shortcut.
        self.run_layer_test(
            ResNeXtBlock,
            dict(filters=16, width=8, groups=2, se_reduction=4),
            input_shape=(2, 6, 6, 16),
            expected_output_shape=(2, 6, 6, 16),
            expected_num_trainable_weights=3 * 3 + 4,
            expected_num_non_trainable_weights=3 * 2,
        )

    def test_sk_basic_block(self):
        # SKConv, conv2 + bn2, shortcut conv + bn.
        self.run_layer_test(
            SKBasicBlock,
            dict(filters=8, strides=2, reduction=2, min_dim=4),
            input_shape=(2, 8, 8, 4),
            expected_output_shape=(2, 4, 4, 8),
            expected_num_trainable_weights=10 + 3 + 3,
            expected_num_non_trainable_weights=6 + 2 + 2,
        )

    def test_shufflenet_unit_sk_downsampling(self):
        # Right: conv1 + bn1, SKConv (depthwise paths), conv3 + bn3; left: SKConv, conv2 + bn2.
        self.run_layer_test(
            ShuffleNetV2Unit,
            dict(filters=16, strides=2, attention="sk", sk_min_dim=4),
            input_shape=(2, 8, 8, 8),
            expected_output_shape=(2, 4, 4, 16),
            expected_num_trainable_weights=3 + 10 + 3 + 10 + 3,
            expected_num_non_trainable_weights=2 + 6 + 2 + 6 + 2,
        )

    def test_shufflenet_unit_se(self):
        # Right: conv1 + bn1, depthwise + bn2, conv3 + bn3; SE after the shuffle.
        self.run_layer_test(
            ShuffleNetV2Unit,
            dict(filters=16, attention="se", se_reduction=4, se_min_dim=2),
            input_shape=(2, 6, 6, 16),
            expected_output_shape=(2, 6, 6, 16),
            expected_num_trainable_weights=3 * 3 + 4,
            expected_num_non_trainable_weights=3 * 2,
        )


def test_batch_norm_statistics_where_the_mean_dwarfs_the_spread():
    """Training-mode batch statistics in two passes: E[x^2] - E[x]^2 would lose them here.

    Channels of mean 100 and standard deviation 0.01, in float32: x^2 ~ 1e4 carries a
    rounding error of ~6e-4, six times the variance itself; the two-pass variance keeps
    it to float32's rounding of the mean. Checked against NumPy in float64 on the same
    float32 numbers.
    """
    import keras
    import numpy as np

    x = (100.0 + 0.01 * np.random.RandomState(3).normal(size=(4, 5, 5, 3))).astype("float32")
    layer = FusedBatchNorm(momentum=0.0)  # the moving statistics become the batch's
    layer(keras.ops.convert_to_tensor(x), training=True)
    x64 = x.astype("float64")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.moving_variance), x64.var(axis=(0, 1, 2)), rtol=1e-2
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.moving_mean), x64.mean(axis=(0, 1, 2)), rtol=1e-6
    )
