"""Safe writes: check an output path before any work, write atomically, never delete a user's files.

A reader sees the old file (or folder) or the new one, never a part of one. The
rules every writer of the package follows (exporters, keras-hub presets):

- **Check first.** `check_output_file` / `check_output_folder` run before any
  work: the path is a file or a folder as expected, its nearest existing folder
  is a folder we can create files in, the disk has room for about the expected
  size, and nothing there would be replaced unasked. Missing parent folders are
  created when the output is written (as `mkdir -p`; removed again if the write
  fails), like the trainer's run folders and `keras.Model.save`'s.
- **Nothing is replaced unless asked.** An existing file, or a folder holding an
  earlier output of ours, is replaced only with `overwrite=True` (`--overwrite`
  on the command lines); an empty folder is free to use.
- **A folder with files that are not ours is never replaced**, not even with
  `overwrite=True`; nor the current folder, nor a folder that holds it. What is
  "ours" is what the writer writes, decided by a `foreign` function (e.g.
  `saved_model_foreign`): it returns the first file that is not ours, or None.
"""

import contextlib
import ctypes
import errno
import json
import os
import shutil
import tempfile
import uuid

# What `tf.saved_model.save` and Keras' `ExportArchive.write_out` put in a SavedModel folder.
SAVED_MODEL_ENTRIES = ("saved_model.pb", "fingerprint.pb", "variables", "assets")
# Linux `renameat2` flag: swap two paths in one step.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


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


# ---- checks before any work -------------------------------------------------------------------


def _fspath(path, name):
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"`{name}` must be a file path. Received: {name}={path!r}")
    return os.fspath(path)


def _overwrite_hint(option):
    return f"pass {option} to replace it" if option else "choose another path"


def _check_parent(path, size):
    """The nearest existing folder above `path` must be a folder we can create files in, with room for `size`."""
    full = os.path.abspath(path)
    existing = os.path.dirname(full)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(f"Cannot write {full!r}: {existing!r} is a file, not a folder")
    try:  # os.access says yes to root even on a read-only folder or /proc: really create a file
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".keras_sknet-write-check-")
    except OSError as error:
        raise PermissionError(
            f"Cannot write {full!r}: no file can be created in {existing!r} ({error.strerror})"
        ) from None
    os.close(handle)
    os.remove(probe)
    free = shutil.disk_usage(existing).free
    if size and free < size:
        raise ValueError(
            f"Not enough room for {full!r}: it needs about {size / 2**20:.1f} MiB and {existing!r} has "
            f"{free / 2**20:.1f} MiB free",
        )


def check_output_file(path, *, suffix=None, overwrite=False, size=0, option="overwrite=True", name="path"):
    """Checks, before any work, that a file can be written at `path`. Run it again just before writing.

    Args:
        path: the file to write.
        suffix: its required ending (".tflite"), or None.
        overwrite: whether an existing file may be replaced.
        size: about how many bytes will be written (0: unknown); the disk must have room.
        option: how the user asks to overwrite, for the message (`"--overwrite"`
            on a command line).
        name: the argument's name, for the messages.

    Returns:
        `path` as a string.

    Raises:
        ValueError: not a path, or the wrong ending. IsADirectoryError: it is a
        folder. FileExistsError: it exists and `overwrite` is False.
        NotADirectoryError, PermissionError: a file in the way, or no permission.
        ValueError: no room on the disk.

    Example:
        >>> check_output_file("out/model.tflite", suffix=".tflite", size=4 * model.count_params())
    """
    path = _fspath(path, name)
    full = os.path.abspath(path)
    if suffix and not path.endswith(suffix):
        raise ValueError(f"The output must be a file ending in {suffix!r}. Received: {name}={path!r}")
    if os.path.isdir(full):
        raise IsADirectoryError(
            f"The output {full!r} is an existing folder; expected a file path"
            + (f" ending in {suffix!r}" if suffix else "")
        )
    if os.path.lexists(full) and not overwrite:
        raise FileExistsError(f"{full!r} already exists; {_overwrite_hint(option)}")
    _check_parent(full, size)
    return path


def check_output_directory(path, name="path"):
    """Checks, before any work, that a folder can be written at `path` (it may exist, or be created).

    For outputs that are folders of several files of their own (a cache, an analysis's figures,
    a parent of presets): the folder is created if missing, and files beside the new ones stay.

    Raises:
        ValueError: not a path. NotADirectoryError: `path`, or a folder above it, is a file.
        PermissionError: no file can be created there.

    Example:
        >>> check_output_directory("analysis/", name="--output-dir")
    """
    path = _fspath(path, name)
    full = os.path.abspath(path)
    if os.path.lexists(full) and not os.path.isdir(full):
        raise NotADirectoryError(f"{name} {full!r} is an existing file; expected a folder")
    _check_parent(os.path.join(full, "_"), 0)  # `full` itself if it exists, else the nearest folder above
    return path


def _holds_cwd(full):
    cwd = os.path.realpath(os.getcwd())
    real = os.path.realpath(full)
    return cwd == real or cwd.startswith(real.rstrip(os.sep) + os.sep)


def check_output_folder(
    path, foreign, *, what, overwrite=False, size=0, option="overwrite=True", name="path"
):
    """Checks, before any work, that the folder output `what` can be written at `path`. Run it again to replace.

    The folder may be missing or empty; one holding an earlier output of ours
    (`foreign(path)` is None) is replaced only with `overwrite`; one holding
    anything else, the current folder and a folder that holds it are refused.

    Args:
        path: the folder to write.
        foreign: a function of an existing folder: the first file in it that
            is not ours (a path relative to it), or None.
        what: what the folder holds, for the messages ("SavedModel").
        overwrite, size, option, name: as in `check_output_file`.

    Returns:
        `path` as a string.

    Raises:
        ValueError: not a path, or the current folder (or one that holds it).
        NotADirectoryError: it is a file. FileExistsError: it holds files that
        are not ours, or an earlier output and `overwrite` is False.
        PermissionError, ValueError: it cannot be written there (as in `check_output_file`).

    Example:
        >>> check_output_folder("exports/sknet", saved_model_foreign, what="SavedModel")
    """
    path = _fspath(path, name)
    full = os.path.abspath(path)
    if _holds_cwd(full):
        raise ValueError(
            f"The output {full!r} is the current folder or holds it; a {what} is written as a folder of "
            f"its own: name a new folder. Received: {name}={path!r}"
        )
    if os.path.lexists(full) and not os.path.isdir(full):
        raise NotADirectoryError(f"The output {full!r} is an existing file; a {what} is a folder")
    if os.path.isdir(full) and os.listdir(full):
        stranger = foreign(full)
        if stranger is not None:
            raise FileExistsError(
                f"{full!r} holds files that are not a {what} (e.g. {stranger!r}); nothing is replaced there, "
                f"even with {option}: name a new or empty folder"
            )
        if not overwrite:
            raise FileExistsError(f"{full!r} holds an earlier {what}; {_overwrite_hint(option)}")
    _check_parent(full, size)
    return path


def saved_model_foreign(folder):
    """The first file in `folder` that a SavedModel export does not write, or None (see `check_output_folder`).

    Ours: `saved_model.pb` (required), `fingerprint.pb`, `variables/` holding
    `variables.index` and `variables.data-*`, and an empty `assets/`.
    """
    names = sorted(os.listdir(folder))
    for entry in names:
        if entry not in SAVED_MODEL_ENTRIES or os.path.isdir(os.path.join(folder, entry)) != (
            entry in ("variables", "assets")
        ):
            return entry
    if "saved_model.pb" not in names:
        return names[0]
    for entry in sorted(os.listdir(os.path.join(folder, "variables"))) if "variables" in names else ():
        if entry != "variables.index" and not entry.startswith("variables.data-"):
            return os.path.join("variables", entry)
    for entry in sorted(os.listdir(os.path.join(folder, "assets"))) if "assets" in names else ():
        return os.path.join("assets", entry)
    return None


# ---- writing ----------------------------------------------------------------------------------


@contextlib.contextmanager
def folder_beside(path):
    """A new private temporary folder beside `path`: write the output there, then `replace_folder`.

    Missing parent folders of `path` are created; if the block raises, the
    temporary folder and the parents made for it are removed.

    Example:
        >>> with folder_beside("exports/sknet") as tmp:
        ...     tf.saved_model.save(module, tmp)
        ...     replace_folder(tmp, "exports/sknet", saved_model_foreign, what="SavedModel")
    """
    parent = os.path.dirname(os.path.abspath(path))
    made = []
    while not os.path.isdir(parent):
        made.append(parent)
        parent = os.path.dirname(parent)
    for folder in reversed(made):
        os.mkdir(folder)
    tmp = tempfile.mkdtemp(
        dir=os.path.dirname(os.path.abspath(path)), prefix=f".{os.path.basename(path)}.tmp-"
    )
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only if still empty
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after `replace_folder`: the old output, or nothing


def _exchange(a, b):
    """Swaps the paths `a` and `b` in one step (Linux `renameat2`); False where the system cannot."""
    try:
        rename = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if rename(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # a file system without exchange
    raise OSError(code, os.strerror(code), b)


def replace_folder(tmp_dir, path, foreign, *, what, overwrite=False, option="overwrite=True"):
    """Moves the finished folder `tmp_dir` (from `folder_beside`) to `path`.

    `path` is checked again (`check_output_folder`: a folder that holds files
    that are not ours is never replaced); an earlier output of ours there is
    swapped with the new one in one step on Linux (a reader sees the old
    folder or the new one), elsewhere renamed away just before. The old output
    ends up in `tmp_dir`, which `folder_beside` removes.
    """
    check_output_folder(path, foreign, what=what, overwrite=overwrite, option=option)
    os.chmod(tmp_dir, 0o777 & ~_umask())  # mkdtemp's folder is private; the output is not
    full = os.path.abspath(path)
    if not os.path.isdir(full) or not os.listdir(full):
        os.replace(tmp_dir, full)  # onto nothing, or an empty folder (fails if one appeared meanwhile)
        return
    if _exchange(tmp_dir, full):
        return
    backup = f"{tmp_dir}.old"
    os.rename(full, backup)
    try:
        os.rename(tmp_dir, full)
    except BaseException:
        os.rename(backup, full)
        raise
    os.rename(backup, tmp_dir)
