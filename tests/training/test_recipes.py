"""Experiments as data, the command-line overrides, and the paper's optimiser."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from training.experiments import EXPERIMENTS, check_experiment, get_experiment, override
from training.optimizers import SGDWeightDecay, StepWithWarmup


def test_imagenet_recipe_follows_section_4_1():
    e = get_experiment("sknet50_imagenet")
    assert (e.model, e.dataset, e.batch_size, e.epochs, e.momentum) == (
        "SKNet50",
        "imagenet2012",
        256,
        100,
        0.9,
    )
    assert e.weight_decay == 1e-4 and e.label_smoothing > 0
    assert e.decay_epochs() == (30, 60, 90)
    assert e.scaled_learning_rate() == pytest.approx(0.1)
    assert dataclasses.replace(e, batch_size=1024).scaled_learning_rate() == pytest.approx(0.4)


def test_lightweight_and_cifar_recipes():
    mobile = get_experiment("shufflenetv2_sk_imagenet")
    assert mobile.model == "ShuffleNetV2SK" and mobile.model_kwargs == {"alpha": 1.0}
    assert mobile.weight_decay == 4e-5 and mobile.augment == "light"
    assert get_experiment("shufflenetv2_se_0.5x_imagenet").model_kwargs == {"alpha": 0.5}
    c10, c100 = get_experiment("sknet29_cifar10"), get_experiment("sknet29_cifar100")
    assert (c10.batch_size, c10.epochs, c10.weight_decay, c10.learning_rate) == (128, 300, 5e-4, 0.1)
    assert c100.learning_rate == 0.05 and c100.dataset == "cifar100"
    assert c10.decay_epochs() == (150, 225)
    assert {
        "resnext29_cifar10",
        "seresnext29_cifar100",
        "resnext50_imagenet",
        "seresnext101_imagenet",
    } <= set(EXPERIMENTS)


def test_overrides_parse_by_field_type():
    e = override(
        get_experiment("sknet29_cifar10"),
        [
            "epochs=2",
            "learning_rate=0.02",
            "jit_compile=true",
            "mixed_precision=bfloat16",
            "lr_milestones=[0.25]",
            'model_kwargs={"classes": 10}',
            "lr_step_every=none",
        ],
    )
    assert (e.epochs, e.learning_rate, e.jit_compile, e.mixed_precision) == (2, 0.02, True, "bfloat16")
    assert e.lr_milestones == (0.25,) and e.model_kwargs == {"classes": 10} and e.lr_step_every is None
    assert json.loads(e.to_json())["epochs"] == 2


@pytest.mark.parametrize(
    "assignment,match",
    [
        ("epoch=3", "epoch=3"),
        ("epochs", "epochs"),
        ("epochs=three", "three"),
        ("jit_compile=maybe", "maybe"),
        ("name=x", "name=x"),
        ("learning_rate=fast", "learning_rate takes a number. Received: 'fast'"),
        ("model_kwargs=[1]", "model_kwargs takes a JSON object"),
        ("model_kwargs={oops", "model_kwargs takes a JSON object"),
        ("lr_milestones=0.5", "lr_milestones takes a JSON list or none"),
    ],
)
def test_bad_overrides(assignment, match):
    with pytest.raises(ValueError, match=match):
        override(get_experiment("sknet29_cifar10"), [assignment])


@pytest.mark.parametrize(
    "assignment,match",
    [
        ("epochs=0", "epochs must be at least 1. Received: epochs=0"),
        ("batch_size=-4", "batch_size must be at least 1"),
        ("optimizer=adam", "optimizer must be one of sgd, adamw. Received: optimizer='adam'"),
        ("lr_schedule=linear", "lr_schedule must be one of step, cosine"),
        ("mixed_precision=half", "mixed_precision must be one of none, float32, auto, float16, bfloat16"),
    ],
)
def test_check_experiment_refuses_what_a_run_cannot_use(assignment, match):
    check_experiment(get_experiment("scales_demo"))
    with pytest.raises(ValueError, match=match):
        check_experiment(override(get_experiment("scales_demo"), [assignment]))


def test_unknown_experiment_lists_the_registered_ones():
    with pytest.raises(ValueError, match="sknet50_imagenet"):
        get_experiment("sknet51")


def test_sgd_weight_decay_is_coupled_like_pytorch():
    """v = m*v + (g + wd*w); w -= lr*v   (PyTorch SGD with weight_decay, constant lr)."""
    w0 = np.array([1.0, -2.0, 3.0], "float32")
    var = keras.Variable(w0)
    optimizer = SGDWeightDecay(learning_rate=0.1, momentum=0.9, l2=0.01)
    grads = [np.array(g, "float32") for g in ([0.5, 0.1, -0.3], [0.2, -0.4, 0.1], [-0.1, 0.3, 0.2])]
    w, v = w0.astype("float64"), np.zeros(3)
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
        v = 0.9 * v + (g + 0.01 * w)
        w = w - 0.1 * v
    np.testing.assert_allclose(var.numpy(), w, rtol=1e-5)
    restored = SGDWeightDecay.from_config(optimizer.get_config())
    assert restored.l2 == 0.01
    with pytest.raises(ValueError, match="l2=-1"):
        SGDWeightDecay(l2=-1)


def test_step_schedule_with_warmup():
    schedule = StepWithWarmup(0.4, boundaries=[10, 20], factor=0.1, warmup_steps=4)
    rates = [float(schedule(s)) for s in (0, 1, 3, 9, 10, 19, 20)]
    np.testing.assert_allclose(rates, [0.1, 0.2, 0.4, 0.4, 0.04, 0.04, 0.004], rtol=1e-6)
    assert StepWithWarmup(**schedule.get_config()).get_config() == schedule.get_config()
