"""The Keras backends the trainer runs on, and why not the others (standard library only).

    if backend not in BACKENDS:
        raise ValueError(refusal(backend))

The command line refuses another backend before it imports Keras (importing
TensorFlow beside PyTorch can crash), `training.trainer.train` refuses it too;
both say the same, from here.
"""

BACKENDS = ("tensorflow", "jax")


def refusal(backend):
    """The one-line reason a run on Keras' `backend` is refused, and what to use instead.

    Example:
        >>> refusal("torch")[:56]
        "The trainer runs on Keras' tensorflow and jax backends: "
    """
    why = (
        "on torch Keras trains on one device only (keras.distribution and tf.distribute, which the "
        "trainer uses for several devices and machines, do not exist there), so the trainer keeps to "
        "the two backends it runs and tests on every device count"
        if backend == "torch"
        else "they are the backends it runs and tests"
    )
    return (
        f"The trainer runs on Keras' {' and '.join(BACKENDS)} backends: {why}. Train with "
        "KERAS_BACKEND=jax (with --input-pipeline grain it needs no TensorFlow) or KERAS_BACKEND=tensorflow; "
        f"the .keras files it writes load on every backend. Received: KERAS_BACKEND={backend!r}"
    )
