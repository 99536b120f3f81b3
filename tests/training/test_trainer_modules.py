"""The trainer in pieces: `training.trainer` still offers every name it did, and the pieces stand alone."""

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
def test_trainer_keeps_every_public_name(home):
    for name in HOMES[home]:
        assert getattr(trainer, name) is getattr(home, name), name
    assert callable(trainer.train)


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
