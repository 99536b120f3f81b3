"""An experiment's model, optimiser and compiled training step.

    model = build_model(experiment, num_classes)
    optimizer = compile_model(model, experiment, steps_per_epoch)

The model comes from `keras_sknet.applications` (any input size, random
weights); the optimiser and learning-rate schedule from the recipe (SGD with
L2 weight decay or AdamW; step decay or cosine, both with linear warm-up).
"""

import inspect

import keras

from training.evaluation import TOP_K, reports_top_k
from training.experiments import LR_SCHEDULES, OPTIMIZERS
from training.optimizers import SGDWeightDecay, StepWithWarmup

# Set by the trainer itself, never by `model_kwargs`.
TRAINER_ARGUMENTS = ("input_shape", "classes", "weights")
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def model_function(experiment):
    """The `keras_sknet.applications` function that builds the experiment's model, its arguments checked.

    Checked before any work: `model` names a model function, and `model_kwargs`
    are arguments it accepts (besides the trainer's own `input_shape`, `classes`
    and `weights`), with none of its required ones missing.

    Args:
        experiment: a `training.experiments.Experiment`.

    Returns:
        The model function.

    Raises:
        ValueError: an unknown model or a bad `model_kwargs`, in one line naming the
            key and the accepted ones.

    Example:
        >>> model_function(get_experiment("scales_demo")).__name__  # doctest: +SKIP
        'SKNet'
    """
    from keras_sknet import applications

    name = experiment.model
    function = getattr(applications, name, None) if isinstance(name, str) else None
    if not callable(function) or not name[:1].isupper():
        models = ", ".join(n for n in applications.__all__ if n[:1].isupper() and n != "MODEL_CONFIGS")
        raise ValueError(
            f"Unknown model {name!r}: model must be a model function of keras_sknet.applications ({models})."
        )
    kwargs = experiment.model_kwargs
    parameters = inspect.signature(function).parameters
    named = {p: parameters[p] for p in parameters if parameters[p].kind not in _VARIADIC}
    accepted = [p for p in named if p not in TRAINER_ARGUMENTS]
    open_ended = len(named) < len(parameters)  # **kwargs: any key may be right
    for key in kwargs:
        if key in TRAINER_ARGUMENTS:
            raise ValueError(
                f"model_kwargs cannot set {key!r}: the trainer sets {', '.join(TRAINER_ARGUMENTS)} itself "
                f"(image_size is a field of its own). Received: model_kwargs={kwargs!r}"
            )
        if key not in parameters and not open_ended:
            raise ValueError(
                f"model_kwargs has the key {key!r}, which {name}() does not take; it takes "
                f"{', '.join(accepted)}. Received: model_kwargs={kwargs!r}"
            )
    missing = [p for p in accepted if named[p].default is inspect.Parameter.empty and p not in kwargs]
    if missing:
        raise ValueError(
            f"model_kwargs lacks {', '.join(map(repr, missing))}, which {name}() needs. "
            f"Received: model_kwargs={kwargs!r}"
        )
    return function


def build_model(experiment, num_classes):
    """The experiment's model, with any input size (global pooling head).

    Args:
        experiment: a `training.experiments.Experiment`: its `model` names a model
            function of `keras_sknet.applications`, `model_kwargs` its arguments.
        num_classes: the classifier's width.

    Returns:
        A `keras.Model` with random weights, taking `(None, None, 3)` images.

    Example:
        >>> model = build_model(get_experiment("scales_demo"), 10)  # doctest: +SKIP
    """
    function = model_function(experiment)
    return function(input_shape=(None, None, 3), classes=num_classes, weights=None, **experiment.model_kwargs)


def make_optimizer(experiment, steps_per_epoch):
    """The experiment's optimiser and learning-rate schedule (steps = optimiser iterations).

    Args:
        experiment: a `training.experiments.Experiment`.
        steps_per_epoch: optimiser steps per epoch: the schedule's epochs in steps.

    Returns:
        A `keras.optimizers.Optimizer` (`SGDWeightDecay` or `AdamW`).
    """
    if experiment.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"`optimizer` must be one of {OPTIMIZERS}. Received: optimizer={experiment.optimizer!r}"
        )
    if experiment.lr_schedule not in LR_SCHEDULES:
        raise ValueError(
            f"`lr_schedule` must be one of {LR_SCHEDULES}. Received: lr_schedule={experiment.lr_schedule!r}"
        )
    rate = experiment.scaled_learning_rate()
    warmup = int(round(experiment.warmup_epochs * steps_per_epoch))
    if experiment.lr_schedule == "step":
        schedule = StepWithWarmup(
            rate,
            boundaries=[e * steps_per_epoch for e in experiment.decay_epochs()],
            factor=0.1,
            warmup_steps=warmup,
        )
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else rate,
            max(1, experiment.epochs * steps_per_epoch - warmup),
            warmup_target=rate if warmup else None,
            warmup_steps=warmup,
        )
    if experiment.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=experiment.weight_decay)
    return SGDWeightDecay(schedule, momentum=experiment.momentum, l2=experiment.weight_decay)


def compile_model(model, experiment, steps_per_epoch):
    """Compiles `model` with the experiment's optimiser, loss and top-1/top-5; returns the optimiser.

    Top-5 only with more than 5 classes (with fewer it is always 100%).

    The optimiser's variables are built at once, so that a backup can be restored
    into them. On JAX the step is always compiled by XLA (`jit_compile` chooses
    for TensorFlow, whose grouped convolutions are slower under XLA), and the
    accuracies are weighted metrics: evaluation batches padded to a multiple of
    the device count carry zero weights for the padding (training batches carry
    none, which gives the same accuracies as plain metrics).

    Args:
        model: the model to compile.
        experiment: a `training.experiments.Experiment`.
        steps_per_epoch: optimiser steps per epoch, for the learning-rate schedule.

    Returns:
        The model's built optimiser.

    Example:
        >>> optimizer = compile_model(build_model(experiment, 10), experiment, 100)  # doctest: +SKIP
    """
    optimizer = make_optimizer(experiment, steps_per_epoch)
    accuracies = [keras.metrics.CategoricalAccuracy(name="top1")]
    if reports_top_k(model.output_shape[-1]):
        accuracies.append(keras.metrics.TopKCategoricalAccuracy(TOP_K, name=f"top{TOP_K}"))
    on_jax = keras.backend.backend() == "jax"
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=experiment.label_smoothing),
        metrics=None if on_jax else accuracies,
        weighted_metrics=accuracies if on_jax else None,
        jit_compile=True if on_jax else experiment.jit_compile,
    )
    model.optimizer.build(model.trainable_variables)
    return model.optimizer
