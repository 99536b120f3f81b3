"""Atomic file writes: a reader sees the old file (or folder) or the new one, never a part of one."""

import contextlib
import json
import os
import shutil
import tempfile
import uuid


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """A temporary path beside `path`, renamed onto `path` when the block succeeds.

    Write the file to the yielded path inside the `with` block. If the block raises,
    the temporary file is removed and whatever was at `path` stays as it was. The file
    is created by the caller, so it gets the usual permissions (the umask's).

    Args:
        path: the final path; its folder is created if needed.
        suffix: the temporary name's ending, for writers that check it (".keras",
            ".weights.h5", ".png").

    Example:
        >>> with atomic_path("run/model.keras", suffix=".keras") as tmp:
        ...     model.save(tmp)
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomically(path, data, **dump_options):
    """Writes `data` as JSON to `path` through `atomic_path` (`dump_options` go to `json.dump`)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, **dump_options)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_directory(tmp_dir, path):
    """Moves the finished folder `tmp_dir` to `path`, replacing what was there only at the end."""
    os.chmod(tmp_dir, 0o777 & ~_umask())  # mkdtemp's folder is private; a SavedModel is not
    backup = None
    if os.path.exists(path):
        backup = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".old-")
        backup = os.path.join(backup, "model")
        os.rename(path, backup)
    try:
        os.rename(tmp_dir, path)
    except BaseException:
        if backup is not None:
            os.rename(backup, path)
        raise
    finally:
        if backup is not None:
            shutil.rmtree(os.path.dirname(backup), ignore_errors=True)
