"""The run directory: checked before a run does any work, claimed once the run has started.

    check_run_dir("runs/x")                      # before any work: may a run write there?
    claim_run_dir("runs/x", experiment, record)  # at the run's first step: config.json, data.json
    record = read_data_record("runs/x")          # what evaluation needs: the data and the classes

A folder may take a run when it does not exist yet, is empty, holds a run (its
config.json is a recipe), or holds only what a run that failed before its first
step leaves behind (an empty metrics.csv, logs/). Anything else there is the
user's: the run is refused and nothing is overwritten. Only a run that reached
its first step writes config.json and so claims the folder for its recipe: a
command that fails before (a typo in `--set`, a missing data folder) leaves the
folder free for the corrected command.

This module imports only the standard library: the command lines check a folder
before they import TensorFlow.
"""

import json
import os
import re

CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
SUMMARY_FILE = "summary.json"
# What a run that failed before its first step leaves: its callbacks' files (CSVLogger,
# TensorBoard) and the run id of a multi-worker run's chief (`training.workers`).
UNSTARTED_LEFTOVERS = ("metrics.csv", "logs", "workers.json")
# The keys every recipe's config.json has: how a run directory is recognised.
_RECIPE_KEYS = ("name", "model", "dataset")


def is_run(model_dir):
    """Whether `model_dir` holds a training run: a config.json that is a recipe."""
    try:
        with open(os.path.join(model_dir, CONFIG_FILE)) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and all(key in config for key in _RECIPE_KEYS)


def check_run_dir(model_dir):
    """Checks, before any work, that a run may write into `model_dir`.

    Args:
        model_dir: the run directory (it need not exist yet).

    Raises:
        NotADirectoryError: `model_dir` or a folder above it is a file.
        PermissionError: the folder (or the nearest existing one above it) is not writable.
        FileExistsError: `model_dir` holds files that are not a run's (they are the user's).

    Example:
        >>> check_run_dir("runs/new")  # a new folder under a writable one: fine
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(model_dir)))
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(
            f"The run directory {model_dir!r} is a file; give a new folder, an empty one or an earlier run's."
        )
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(
            f"The run directory {model_dir!r} is not writable: {existing!r} is a file, not a folder."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"The run directory {model_dir!r} is not writable: no permission to write in {existing!r}."
        )
    if existing != path:
        return  # the run creates it
    entries = sorted(os.listdir(path))
    if not entries or is_run(path) or _only_unstarted_leftovers(path, entries):
        return
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    raise FileExistsError(
        f"The run directory {model_dir!r} holds files that are not a training run's ({shown}); nothing "
        "there is overwritten: train into a new or empty folder."
    )


def _only_unstarted_leftovers(path, entries):
    # A leftover being written (`atomic_path`'s ".NAME.<id>.tmp") counts as that leftover.
    entries = {re.sub(r"^\.(.+)\.[0-9a-f]{32}\.tmp$", r"\1", entry) for entry in entries}
    if not entries <= set(UNSTARTED_LEFTOVERS):
        return False
    metrics = os.path.join(path, "metrics.csv")
    # CSVLogger writes its first line at the first epoch's end: a run that never started left it empty.
    return not os.path.exists(metrics) or (os.path.isfile(metrics) and os.path.getsize(metrics) == 0)


def data_record(dataset, info, data_dir=None, manual_dir=None):
    """What a later evaluation of the run needs to read its data again, as a JSON-ready dict.

    Args:
        dataset: the dataset name of the recipe ("folder" for an image folder).
        info: its `training.data.DatasetInfo`.
        data_dir, manual_dir: as the run was given them (made absolute).

    Returns:
        {"dataset", "data_dir", "manual_dir", "train_split", "eval_split", "num_classes", "class_names"}.
    """

    def absolute(path):
        return os.path.abspath(os.path.expanduser(os.fspath(path))) if path is not None else None

    return {
        "dataset": dataset,
        "data_dir": absolute(data_dir),
        "manual_dir": absolute(manual_dir),
        "train_split": info.train_split,
        "eval_split": info.eval_split,
        "num_classes": info.num_classes,
        "class_names": list(info.class_names) if info.class_names else None,
    }


def read_data_record(model_dir):
    """The run's data record (see `data_record`), or None for a run that has none (older runs)."""
    try:
        with open(os.path.join(model_dir, DATA_FILE)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def is_folder(dataset):
    """Whether a recipe's dataset name means an image folder ("folder", as `training.data` reads it)."""
    return dataset.split(":")[0].split("/")[0] == "folder"


def dataset_label(dataset, data_dir):
    """How a run's data is named to the user: the dataset name, or the image folder's path."""
    if is_folder(dataset) and data_dir is not None:
        return os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    return dataset


def check_same_classes(model_dir, info):
    """Refuses to resume a run on data whose classes are not those it was trained on."""
    record = read_data_record(model_dir)
    names = list(info.class_names) if info.class_names else None
    if record is None or record.get("class_names") is None or names is None:
        return
    if record["class_names"] != names:
        raise ValueError(
            f"{model_dir} holds a run trained on the classes {record['class_names']}; the data given now "
            f"has {names}. Give the same data, or train into a new --model-dir."
        )


def claim_run_dir(model_dir, recipe, record):
    """Writes the run's recipe (config.json) and data record (data.json): the folder is this run's."""
    from keras_sknet.utils.files import write_json_atomically

    os.makedirs(model_dir, exist_ok=True)
    write_json_atomically(os.path.join(model_dir, DATA_FILE), record, indent=2, sort_keys=True)
    write_json_atomically(os.path.join(model_dir, CONFIG_FILE), recipe, indent=2, sort_keys=True)
