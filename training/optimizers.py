"""The paper's optimiser: SGD with momentum and L2 weight decay, step learning rate."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_sknet")
class SGDWeightDecay(keras.optimizers.SGD):
    """SGD with momentum and classic (coupled) L2 weight decay.

    The gradient of every weight gets `weight_decay * weight` added before the
    momentum update, as in Caffe and PyTorch's `SGD(weight_decay=...)`, which the
    paper's recipes assume (Section 4.1: 1e-4, 4e-5 for lightweight models; 5e-4
    on CIFAR). Keras' own `weight_decay` argument is decoupled (AdamW-style) and,
    with momentum 0.9, about 10x weaker for the same number.

    Args:
        learning_rate: a float or a schedule.
        momentum: SGD momentum.
        l2: the weight decay coefficient.
        nesterov: Nesterov momentum.
        **kwargs: other `keras.optimizers.Optimizer` arguments (not `weight_decay`).

    Example:
        >>> optimizer = SGDWeightDecay(learning_rate=0.1, momentum=0.9, l2=1e-4)
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, l2=0.0, nesterov=False, **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError("Use `l2` (coupled weight decay), not `weight_decay`, with SGDWeightDecay.")
        if l2 < 0:
            raise ValueError(f"`l2` must be >= 0. Received: l2={l2}")
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = gradient + ops.cast(self.l2, variable.dtype) * variable
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2"] = self.l2
        return config


@keras.saving.register_keras_serializable(package="keras_sknet")
class StepWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then the learning rate divided by `factor` at each boundary.

    Args:
        learning_rate: the peak learning rate.
        boundaries: steps at which the rate is multiplied by `factor`.
        factor: 0.1 in the paper.
        warmup_steps: steps of linear warm-up from 0 (0 = none).
    """

    def __init__(self, learning_rate, boundaries, factor=0.1, warmup_steps=0):
        self.learning_rate = float(learning_rate)
        self.boundaries = [int(b) for b in boundaries]
        self.factor = float(factor)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = ops.convert_to_tensor(self.learning_rate, "float32")
        for boundary in self.boundaries:
            rate = ops.where(step >= boundary, rate * self.factor, rate)
        if self.warmup_steps:
            rate = rate * ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return rate

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "boundaries": self.boundaries,
            "factor": self.factor,
            "warmup_steps": self.warmup_steps,
        }
