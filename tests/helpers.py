"""Helpers the tests share: import them from here (`from tests.helpers import ...`).

Fixtures stay in conftest.py, which pytest loads itself; test modules import
no conftest and no other test module.
"""

from tests import reference


def randomize_batch_norms(model, rng):
    """Gives every BatchNorm non-trivial statistics so that tests can see them."""
    for weight in model.weights:
        name = weight.path.rsplit("/", 1)[-1]
        if name == "moving_variance":
            weight.assign(rng.uniform(0.5, 2.0, weight.shape).astype("float32"))
        elif name in ("moving_mean", "beta"):
            weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
        elif name == "gamma":
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))


def reference_sk(sk, x, training=False):
    """`tests.reference.sk_conv` with the weights and settings of the SKConv layer `sk`."""
    paths = [
        (conv.kernel.numpy(), conv.dilation_rate, reference.bn_weights(bn))
        for conv, bn in zip(sk.path_convs, sk.path_bns)
    ]
    attention = sk.attention_layer
    return reference.sk_conv(
        x,
        paths,
        attention.fc_reduce.kernel.numpy() if attention else None,
        reference.bn_weights(attention.bn) if attention else None,
        attention.fc_select.kernel.numpy() if attention else None,
        sk.strides,
        relu=sk.activation is not None,
        attention=sk.attention,
        training=training,
        split_input=sk.split_input,
    )
