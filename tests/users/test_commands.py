"""Every command line as a user runs it: `--help` at once, and each mistake answered in one line.

The commands run in a fresh folder that already holds the user's files, with
`TF_CPP_MIN_LOG_LEVEL` unset (empty) as in a user's shell. `--help` and every
mistake found in the arguments must answer without importing TensorFlow (that is
what made them take 4-5 s, and the zoo's 49); mistakes found later (a file that is
not a model, an unknown model name) may import it, but still print one line.
"""

import configparser
import os
import re

import pytest

from keras_sknet.utils import cli
from tests.helpers import REPOSITORY, assert_one_line_error, folder_contents, run_as_user

# (what a user types after `python`, its prog in the error line)
MODULES = {
    "keras_sknet": "python -m keras_sknet",
    "keras_sknet.weights": "python -m keras_sknet.weights",
    "keras_sknet.analysis": "python -m keras_sknet.analysis",
    "keras_sknet.hub": "python -m keras_sknet.hub",
}
# Ours; keras-sknet-export is the export command's (tests of its own).
SCRIPTS = ("keras-sknet-zoo", "keras-sknet-weights", "keras-sknet-analysis")
HEAVY = ("tensorflow", "keras", "jax", "torch")
TF_LOG_LINE = re.compile(r"absl::InitializeLog|port\.cc:\d+\]|cpu_feature_guard|oneDNN custom operations")
USER = {"TF_CPP_MIN_LOG_LEVEL": ""}  # a user's shell: not set
HELP_SECONDS = 60  # a hang guard only: --help takes a fraction of a second; importing TensorFlow is the check


def console_scripts():
    """{script name: "module:function"} from setup.cfg."""
    config = configparser.ConfigParser()
    config.read(os.path.join(REPOSITORY, "setup.cfg"))
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


def write_console_script(name, folder):
    """The script pip installs for `name`: a file of that name that imports and calls its function."""
    module, function = console_scripts()[name].split(":")
    path = folder / name
    path.write_text(f"import sys\nfrom {module} import {function}\nsys.exit({function}())\n")
    return str(path)


@pytest.fixture
def user_folder(tmp_path):
    """A user's folder with their own files in it; yields it and checks they survive."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's notes\n")
    (folder / "mine.weights.h5").write_bytes(b"the user's own weights")
    (folder / "photos").mkdir()
    (folder / "photos" / "cat.txt").write_text("not really a cat\n")
    before = folder_contents(folder)
    yield folder
    assert folder_contents(folder) == before, "the command changed the user's files"


def run_help(args, cwd):
    """Runs `python -X importtime ARGS --help`; returns (result, heavy modules imported, other stderr)."""
    result = run_as_user(["-X", "importtime", *args, "--help"], cwd, timeout=HELP_SECONDS, **USER)
    imported, other = [], []
    for line in result.stderr.splitlines():
        if line.startswith("import time:"):
            module = line.rsplit("|", 1)[-1].strip()
            if module.split(".")[0] in HEAVY:
                imported.append(module)
        elif line.strip():
            other.append(line)
    return result, imported, other


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "keras_sknet"],
        ["-m", "keras_sknet.weights"],
        ["-m", "keras_sknet.weights", "convert"],
        ["-m", "keras_sknet.analysis"],
        ["-m", "keras_sknet.hub"],
        ["-m", "keras_sknet.hub", "presets"],
        ["-m", "keras_sknet.export"],
        ["-m", "training.train"],
        ["-m", "training.evaluate"],
        ["-m", "training.demo"],
    ],
    ids=" ".join,
)
def test_help_answers_at_once_without_tensorflow(args, user_folder):
    result, imported, other = run_help(args, user_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage:" in result.stdout
    assert not imported, f"--help imported {imported[:5]}"
    assert not other, "\n".join(other[:10])


@pytest.mark.parametrize("name", SCRIPTS)
def test_console_script_help_answers_at_once_without_tensorflow(name, user_folder, tmp_path):
    script = write_console_script(name, tmp_path)
    result, imported, other = run_help([script], user_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage:" in result.stdout
    assert not imported, f"{name} --help imported {imported[:5]}"
    assert not other, "\n".join(other[:10])


def test_our_console_scripts_are_the_ones_setup_cfg_installs():
    # cli.SCRIPTS decides which processes are our commands (lazy imports): it must name them all.
    assert set(console_scripts()) == set(cli.SCRIPTS)


@pytest.mark.parametrize(
    "args, names",
    [
        # weights convert: the paths, checked before anything is read or converted.
        (
            [
                "-m",
                "keras_sknet.weights",
                "convert",
                "missing.safetensors",
                "--model",
                "SKNet50",
                "--output",
                "x.weights.h5",
            ],
            ["missing.safetensors"],
        ),
        (
            [
                "-m",
                "keras_sknet.weights",
                "convert",
                "photos",
                "--model",
                "SKNet50",
                "--output",
                "x.weights.h5",
            ],
            ["photos", "folder"],
        ),
        (
            [
                "-m",
                "keras_sknet.weights",
                "convert",
                "notes.txt",
                "--model",
                "SKNet50",
                "--output",
                "photos/cat.txt",
                "--overwrite",
            ],
            ["photos/cat.txt", ".weights.h5"],
        ),
        (
            [
                "-m",
                "keras_sknet.weights",
                "convert",
                "notes.txt",
                "--model",
                "SKNet50",
                "--output",
                "mine.weights.h5",
            ],
            ["mine.weights.h5", "already exists", "--overwrite"],
        ),
        (
            [
                "-m",
                "keras_sknet.weights",
                "convert",
                "notes.txt",
                "--model",
                "SKNet50",
                "--output",
                "notes.txt/x.weights.h5",
            ],
            ["notes.txt/x.weights.h5", "is a file"],
        ),
        (
            [
                "-m",
                "keras_sknet.weights",
                "convert",
                "notes.txt",
                "--model",
                "SKNet50",
                "--output",
                "notes.txt",
            ],
            ["notes.txt", ".weights.h5"],
        ),
        (
            [
                "-m",
                "keras_sknet.weights",
                "convert",
                "notes.txt",
                "--model",
                "SKNet50",
                "--output",
                "x.weights.h5",
                "--tolerance",
                "-1",
            ],
            ["--tolerance", "-1"],
        ),
        (
            ["-m", "keras_sknet.weights", "download", "SKNet50", "--cache-dir", "notes.txt"],
            ["--cache-dir", "notes.txt"],
        ),
        (["-m", "keras_sknet.weights", "frobnicate"], ["frobnicate", "convert"]),
        # analysis
        (["-m", "keras_sknet.analysis", "--model", "missing.keras", "--data", "photos"], ["missing.keras"]),
        (["-m", "keras_sknet.analysis", "--model", "photos", "--data", "photos"], ["photos", "folder"]),
        (
            ["-m", "keras_sknet.analysis", "--model", "notes.txt", "--data", "photos", "--num-images", "0"],
            ["--num-images", "'0'"],
        ),
        (
            ["-m", "keras_sknet.analysis", "--model", "notes.txt", "--data", "photos", "--scales", "1", "-2"],
            ["--scales", "-2"],
        ),
        (
            [
                "-m",
                "keras_sknet.analysis",
                "--model",
                "notes.txt",
                "--data",
                "photos",
                "--output-dir",
                "notes.txt",
            ],
            ["--output-dir", "notes.txt"],
        ),
        (["-m", "keras_sknet.analysis", "--data", "photos"], ["--model"]),
        # hub
        (
            [
                "-m",
                "keras_sknet.hub",
                "presets",
                "out",
                "--model",
                "SKNet26",
                "--weights",
                "missing.safetensors",
            ],
            ["--weights", "missing.safetensors"],
        ),
        (["-m", "keras_sknet.hub", "presets", "out", "--weights", "notes.txt"], ["--weights", "--model"]),
        (["-m", "keras_sknet.hub", "presets", "notes.txt"], ["notes.txt", "folder"]),
        (["-m", "keras_sknet.hub", "presets", "notes.txt/presets"], ["notes.txt/presets", "is a file"]),
        # the zoo
        (["-m", "keras_sknet", "--modle", "SKNet-50"], ["--modle"]),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) and value[0] == "-m" else "",
)
def test_a_mistake_in_the_arguments_is_one_line_at_once(args, names, user_folder):
    result = run_as_user(["-X", "importtime", *args], user_folder, timeout=HELP_SECONDS, **USER)
    imported = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip().split(".")[0] in HEAVY
    ]
    assert not imported, f"a mistake in the arguments imported {imported[:3]}"
    result.stderr = "\n".join(
        line for line in result.stderr.splitlines() if not line.startswith("import time:")
    )
    prog = MODULES[args[1]]
    assert_one_line_error(result, prog, *names)
    assert not (user_folder / "out").exists() and not (user_folder / "x.weights.h5").exists()


@pytest.mark.parametrize(
    "args, names",
    [
        (["-m", "keras_sknet", "--model", "SKNet-5O"], ["'SKNet-5O'", "SKNet-50"]),
        (["-m", "keras_sknet.weights", "download", "SKNet5O"], ["SKNet5O", "SKNet50"]),
        (
            [
                "-m",
                "keras_sknet.weights",
                "convert",
                "notes.txt",
                "--model",
                "SKNet50",
                "--output",
                "x.weights.h5",
            ],
            ["notes.txt", ".safetensors"],
        ),
        (["-m", "keras_sknet.analysis", "--model", "notes.txt", "--data", "photos"], ["notes.txt"]),
        (["-m", "keras_sknet.hub", "presets", "out", "--model", "SKNet5O"], ["SKNet5O", "SKNet50"]),
        (
            ["-m", "keras_sknet.hub", "presets", "out", "--model", "SKNet26", "--weights", "notes.txt"],
            ["notes.txt", ".safetensors"],
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) and value[0] == "-m" else "",
)
def test_a_mistake_found_after_importing_keras_is_one_line_without_tensorflow_logs(args, names, user_folder):
    # These load Keras (and TensorFlow) to check the value; TensorFlow's start-up lines stay quiet.
    result = run_as_user(args, user_folder, timeout=300, **USER)
    assert_one_line_error(result, MODULES[args[1]], *names)
    assert not TF_LOG_LINE.search(result.stderr)
    assert not (user_folder / "out").exists() and not (user_folder / "x.weights.h5").exists()


def test_import_keras_sknet_still_registers_the_layers(tmp_path):
    # The command lines import lazily; a user's `import keras_sknet` must not: a .keras with SK layers
    # loads after it, in a script, with `python -c`, and from `python -m` of the user's own package.
    import keras

    from keras_sknet.applications import SKNet

    SKNet(
        (1,),
        stem="cifar",
        cardinality=2,
        bottleneck_width=4,
        min_dim=4,
        input_shape=(32, 32, 3),
        classes=2,
        weights=None,
    ).save(tmp_path / "model.keras")
    load = "import keras\nmodel = keras.models.load_model('model.keras')\nprint(type(model.get_layer('conv2_block1')).__name__)\n"
    package = tmp_path / "mytool"
    package.mkdir()
    (package / "__init__.py").write_text("import keras_sknet  # noqa: F401\n")
    (package / "load.py").write_text(load)
    for args in (["-c", "import keras_sknet\n" + load], ["-m", "mytool.load"]):
        result = run_as_user(args, tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.split() == ["SKBlock"], result.stdout
    assert keras.models.load_model(tmp_path / "model.keras").get_layer("conv2_block1")


def test_quiet_tensorflow_keeps_the_users_level(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    cli.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "")
    cli.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_analysis_runs_as_a_command_and_leaves_the_users_files(tmp_path):
    # In a command line keras_sknet imports lazily: the command itself must import what loading a
    # model with SK layers needs. Runs the whole analysis on a tiny model in the user's folder.
    import numpy as np

    from keras_sknet.applications import SKNet

    SKNet(
        (1, 1),
        stem="cifar",
        cardinality=2,
        bottleneck_width=4,
        min_dim=4,
        input_shape=(32, 32, 3),
        classes=3,
        weights=None,
    ).save(tmp_path / "model.keras")
    images = np.random.default_rng(0).uniform(0, 255, size=(6, 32, 32, 3)).astype("uint8")
    np.savez(tmp_path / "images.npz", images=images, labels=np.arange(6) % 3)
    (tmp_path / "notes.txt").write_text("the user's notes\n")
    before = folder_contents(tmp_path)
    args = [
        "-m",
        "keras_sknet.analysis",
        "--model",
        "model.keras",
        "--data",
        "images.npz",
        "--num-images",
        "6",
        "--output-dir",
        "figures",
    ]
    result = run_as_user(args, tmp_path, timeout=300, **USER)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SK_2_1" in result.stdout
    assert not TF_LOG_LINE.search(result.stderr), result.stderr[-3000:]
    after = folder_contents(tmp_path)
    assert {name: after[name] for name in before} == before
    assert sorted(os.listdir(tmp_path / "figures")) == [
        "attention_classes.png",
        "attention_scales.json",
        "attention_scales.png",
    ]


def test_weights_convert_runs_as_a_command_and_leaves_the_users_files(tmp_path):
    # The converter in a command line (lazy imports): a timm-layout checkpoint of SKResNet18 made here.
    from keras_sknet.applications import SKResNet18
    from keras_sknet.weights.safetensors_io import save_safetensors
    from keras_sknet.weights.timm_converter import timm_state_dict

    save_safetensors(tmp_path / "sk18.safetensors", timm_state_dict(SKResNet18(weights=None)))
    (tmp_path / "notes.txt").write_text("the user's notes\n")
    before = folder_contents(tmp_path)
    args = [
        "-m",
        "keras_sknet.weights",
        "convert",
        "sk18.safetensors",
        "--model",
        "SKResNet18",
        "--output",
        "sk18.weights.h5",
    ]
    result = run_as_user(args, tmp_path, timeout=300, **USER)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote sk18.weights.h5" in result.stdout
    assert not result.stderr.strip(), result.stderr[-3000:]
    after = folder_contents(tmp_path)
    assert {name: after[name] for name in before} == before
    assert sorted(after) == ["notes.txt", "sk18.safetensors", "sk18.weights.h5"]


@pytest.mark.parametrize(
    "args", [["-m", "keras_sknet.weights", "info"], ["-m", "keras_sknet", "--list"]], ids=" ".join
)
def test_an_unknown_backend_is_one_line(args, user_folder):
    result = run_as_user(args, user_folder, timeout=300, KERAS_BACKEND="tensorfow", **USER)
    assert_one_line_error(result, MODULES[args[1]], "'tensorfow'", "KERAS_BACKEND", "'jax'")
