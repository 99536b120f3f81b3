"""Where the weights converter writes: checked before any work, never over a user's file unasked."""

from keras_sknet.utils import files

KERAS_WEIGHTS_SUFFIX = ".weights.h5"


def check_output_file(
    path, overwrite=False, suffix=KERAS_WEIGHTS_SUFFIX, size_bytes=None, option="overwrite=True"
):
    """Checks that a converted weights file can be written at `path`, before the conversion starts.

    The package's one output check (`keras_sknet.utils.files.check_output_file`) with the
    converter's defaults: a conversion takes seconds to minutes, so a bad output path is
    told before it, in one line naming the path. Missing parent folders are created when
    the file is written.

    Args:
        path: the file to write.
        overwrite: whether an existing file at `path` may be replaced (never by default:
            it may be the user's).
        suffix: the ending the file must have (`.weights.h5`: Keras refuses to save
            weights under another name); None for any.
        size_bytes: the expected size of the file, if known: refused when the disk has
            less room.
        option: how the user asks to overwrite, for the message (`"--overwrite"` on the
            command line).

    Returns:
        `path` as a string.

    Raises:
        ValueError: not a path, the wrong ending, or no room.
        IsADirectoryError: `path` is a folder.
        FileExistsError: a file is there and `overwrite` is False.
        NotADirectoryError / PermissionError: a file in the way, or a folder that cannot be written.

    Example:
        >>> check_output_file("sknet50.weights.h5", overwrite=args.overwrite)
        'sknet50.weights.h5'
    """
    return files.check_output_file(
        path, suffix=suffix, overwrite=overwrite, size=size_bytes or 0, option=option, name="output"
    )
