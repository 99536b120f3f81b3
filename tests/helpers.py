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


# XLA's own way to run one thread (JAX reads it; TensorFlow's XLA would abort on the second
# token, so it goes only into the environment of a JAX subprocess).
XLA_SINGLE_THREAD_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")


def with_jax_threads(env):
    """`env` for a JAX subprocess, held to one thread when the suite runs one per worker.

    scripts/test.sh sets OMP_NUM_THREADS (PyTorch) and TF_NUM_INTRAOP_THREADS (TensorFlow) to
    the cores per pytest worker; when that is 1 XLA gets its single-thread flags too, beside
    whatever XLA_FLAGS `env` already has (an instruction-set cap, host devices).
    """
    env = dict(env)
    if env.get("OMP_NUM_THREADS") == "1":
        flags = env.get("XLA_FLAGS", "").split()
        env["XLA_FLAGS"] = " ".join([*flags, *(f for f in XLA_SINGLE_THREAD_FLAGS if f not in flags)])
    return env
