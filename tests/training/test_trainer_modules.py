"""The trainer in pieces: every name `training.trainer` had lives in one piece, and the pieces stand alone."""

import ast
import pathlib

import pytest

from training import distribution, evaluation, fit_loop, model, optimizers, precision, state, trainer

TRAINING = pathlib.Path(trainer.__file__).parent
# Every public name `training.trainer` had before it was split, and where it lives now.
HOMES = {
    distribution: (
        "check_batch_divides",
        "cluster_workers",
        "is_chief",
        "make_distribution",
        "make_strategy",
    ),
    precision: ("resolve_mixed_precision", "warn_if_slow_on_cpu"),
    model: ("LR_SCHEDULES", "OPTIMIZERS", "build_model", "compile_model", "make_optimizer"),
    evaluation: ("evaluate_model",),
    fit_loop: ("CONFIG_FILE", "SUMMARY_FILE", "TrainingDiverged"),
    optimizers: ("SGDWeightDecay", "StepWithWarmup"),
    state: (
        "BACKUP_DIR",
        "Backup",
        "FileTrainingState",
        "SaveBestAndLast",
        "StopOnNaN",
        "Throughput",
        "TrainingState",
    ),
}
# The pieces, each one idea, below the loop and the trainer: none imports either.
PIECES = ("distribution", "precision", "inputs", "model", "evaluation")


@pytest.mark.parametrize("home", HOMES, ids=lambda module: module.__name__)
def test_every_public_name_lives_in_its_piece_and_the_trainer_exports_only_train(home):
    for name in HOMES[home]:
        value = getattr(home, name)
        assert getattr(value, "__module__", home.__name__) == home.__name__, name
        assert name not in trainer.__all__, name
    assert trainer.__all__ == ["train"] and callable(trainer.train)


def _training_imports(path):
    """The `training.*` modules a file imports, function-level imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("training"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("training"))
    return found


@pytest.mark.parametrize("piece", PIECES)
def test_the_pieces_do_not_import_the_loop_or_the_trainer(piece):
    imports = _training_imports(TRAINING / f"{piece}.py")
    assert not imports & {"training.trainer", "training.fit_loop"}, (piece, sorted(imports))


def test_the_loop_does_not_import_the_trainer_and_both_backends_fill_every_hook():
    assert "training.trainer" not in _training_imports(TRAINING / "fit_loop.py")
    hooks = fit_loop.BackendRun.__abstractmethods__
    assert hooks == {"steps_per_epoch", "policy", "build", "training_state", "fit_data"}
    for run in (trainer._TensorFlowRun, trainer._JaxRun):
        assert issubclass(run, fit_loop.BackendRun) and not run.__abstractmethods__, run


@pytest.mark.parametrize(
    "model_kwargs,match",
    [
        (
            '{"stage_depth": [1]}',
            r"key 'stage_depth', which SKNet\(\) does not take; it takes stage_depths, block",
        ),
        (
            '{"stage_depths": [1], "classes": 3}',
            "cannot set 'classes': the trainer sets input_shape, classes",
        ),
        ('{"stem": "cifar"}', r"lacks 'stage_depths', which SKNet\(\) needs"),
    ],
)
def test_model_arguments_are_checked_before_the_model_is_built(model_kwargs, match):
    from training.experiments import get_experiment, override

    experiment = override(get_experiment("scales_demo"), [f"model_kwargs={model_kwargs}"])
    with pytest.raises(ValueError, match=match):
        model.model_function(experiment)
    with pytest.raises(ValueError, match="Unknown model 'SKNet51'.*SKNet50"):
        model.model_function(override(experiment, ["model=SKNet51"]))
    assert model.model_function(get_experiment("scales_demo")).__name__ == "SKNet"


def test_a_resumed_epoch_is_numbered_out_of_the_whole_run(capsys):
    progress = fit_loop._EpochProgress(8)
    # A resumed run fits its interrupted 6th epoch alone: fit(initial_epoch=5, epochs=6).
    progress.set_params({"verbose": 1, "epochs": 6, "steps": 3})
    progress.on_epoch_begin(5)
    assert "Epoch 6/8" in capsys.readouterr().out


def test_top5_only_with_more_than_five_classes():
    import numpy as np

    from tests.training.helpers import tiny

    assert not evaluation.reports_top_k(5) and evaluation.reports_top_k(6)
    for classes, expected in ((2, {"loss", "top1"}), (8, {"loss", "top1", "top5"})):
        network = model.build_model(tiny(), classes)
        model.compile_model(network, tiny(), 10)
        images, labels = np.zeros((2, 32, 32, 3), "float32"), np.eye(classes, dtype="float32")[[0, 1]]
        assert set(network.evaluate(images, labels, return_dict=True, verbose=0)) == expected
