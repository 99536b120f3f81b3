"""Where the weights converter writes: checked before any work, never over a user's file unasked."""

import os
import shutil
import tempfile

KERAS_WEIGHTS_SUFFIX = ".weights.h5"


def check_output_file(path, overwrite=False, suffix=KERAS_WEIGHTS_SUFFIX, size_bytes=None):
    """Checks that a file can be written at `path`, before a conversion starts.

    A conversion takes seconds to minutes; a bad output path must be told before it,
    in one line that names the path, not after it as a traceback from the writer.
    Writability is tried for real (a probe file created and removed in the folder), so
    a read-only mount or a folder of another user is found as the writer would find it.

    Args:
        path: the file to write.
        overwrite: whether an existing file at `path` may be replaced (never by default:
            it may be the user's).
        suffix: the ending the file must have (`.weights.h5`: Keras refuses to
            save weights under another name); None for any.
        size_bytes: the expected size of the file, if known: refused when the folder's
            file system has less room.

    Returns:
        `path` as a string.

    Raises:
        ValueError: not a path, or the wrong ending.
        IsADirectoryError: `path` is a folder.
        FileExistsError: a file is there and `overwrite` is False.
        FileNotFoundError / NotADirectoryError: its folder does not exist / is a file.
        PermissionError: the folder cannot be written.
        OSError: not enough room.

    Example:
        >>> check_output_file("sknet50.weights.h5", overwrite=args.overwrite)
        'sknet50.weights.h5'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"The output must be a file path. Received: {path!r}")
    path = os.fspath(path)
    if suffix and not path.endswith(suffix):
        raise ValueError(f"The output must be a file name ending in {suffix}. Received: {path!r}")
    if os.path.isdir(path):
        ending = f" ending in {suffix}" if suffix else ""
        raise IsADirectoryError(f"The output {path!r} is a folder; give a file path{ending}")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"The output {path!r} already exists; choose another name, or overwrite it explicitly "
            "(overwrite=True, --overwrite)"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        raise FileNotFoundError(f"The folder of the output {path!r} does not exist: {folder!r}")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"The folder of the output {path!r} is a file: {folder!r}")
    try:
        # The writer creates a temporary file beside `path` and renames it: try exactly that.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".keras_sknet-probe-"):
            pass
    except OSError as error:
        raise PermissionError(
            f"Cannot write the output {path!r}: its folder {folder!r} is not writable ({error.strerror})"
        ) from None
    if size_bytes is not None:
        free = shutil.disk_usage(folder).free
        if free < size_bytes:
            raise OSError(
                f"Not enough room for the output {path!r}: about {size_bytes / 1e6:.0f} MB needed, "
                f"{free / 1e6:.0f} MB free in {folder!r}"
            )
    return path
