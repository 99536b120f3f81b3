"""What every command line shares: one-line user errors, quiet TensorFlow, an argument parser.

A user's mistake (a missing file, a bad path, a wrong option, the wrong backend) ends
the command with one line on stderr that names what was received and what is accepted,
and a non-zero exit status; a traceback is kept for our own bugs. This module imports
only the standard library, so that `--help` and argument errors answer at once: each
`__main__` imports Keras, TensorFlow and the package's heavy parts after parsing.

In a process started as one of our commands (`python -m keras_sknet[.PART]` or a
`keras-sknet-*` script: `COMMAND_LINE`), `keras_sknet` and the `__init__` of its
packages that a command is run from (utils, weights, analysis, hub) import nothing
heavy; the command imports the modules it needs (`keras_sknet.weights.registry`, not
`keras_sknet.weights`'s names) once its arguments are checked, and `keras_sknet.layers`
(or `.applications`) before it loads a model. A user's `import keras_sknet` imports all.

    from keras_sknet.utils import cli

    def main(argv=None):
        parser = cli.ArgumentParser(prog="python -m keras_sknet.thing", description=__doc__)
        parser.add_argument("model")
        args = parser.parse_args(argv)
        cli.quiet_tensorflow()
        return cli.run(lambda: _work(args), prog=parser.prog)

    def _work(args):
        cli.check_input_file(args.model, "model")  # paths checked before any work
        cli.import_keras()  # without TensorFlow's start-up lines
        from keras_sknet import export  # heavy imports after the arguments are checked
        ...
"""

import argparse
import os
import re
import sys
import tempfile

# The console scripts of setup.cfg's [options.entry_points] (tests/users/test_commands.py checks).
SCRIPTS = ("keras-sknet-zoo", "keras-sknet-weights", "keras-sknet-export", "keras-sknet-analysis")


# The packages whose modules are our command lines under `python -m`.
COMMAND_PACKAGES = ("keras_sknet", "training")


def _started_as_command():
    """True in a process started as `python -m keras_sknet[.PART]`, as `python -m training.PART`
    (the repository's trainer, whose package imports keras_sknet), or as one of `SCRIPTS`.

    `python -m pkg.mod` imports `pkg` (and `pkg.mod`'s parent packages) while `sys.argv[0]` is
    still `"-m"`; `sys.orig_argv` names the module. A user's `python -m their_package` is not ours.
    """
    argv = getattr(sys, "argv", None) or [""]
    if argv[0] == "-m":
        original = getattr(sys, "orig_argv", [])
        module = original[len(original) - len(argv)] if len(original) >= len(argv) else ""
        return module.split(".")[0] in COMMAND_PACKAGES
    name = os.path.basename(argv[0]).split(".")[0].removesuffix("-script")  # Windows: NAME-script.py
    return name in SCRIPTS


# Decided once, when `import keras_sknet` first imports this module. In our own command lines the
# packages defer their heavy imports (Keras, TensorFlow): `--help` and argument errors answer at
# once, and each command imports what it needs after its arguments are checked. In a user's
# program `import keras_sknet` imports everything (it registers the layers for `load_model`).
COMMAND_LINE = _started_as_command()


def import_names(namespace, importer):
    """Gives a package its public names: at once, or in our command lines on first use.

    `importer()` imports the package's public names and returns them (`locals()`). A
    user's program gets them when it imports the package. In our command lines
    (`COMMAND_LINE`) nothing heavy is imported before the arguments are checked, so the
    package gets a module `__getattr__` (PEP 562) that runs `importer` the first time one
    of its `__all__` is asked for: `from keras_sknet.export import ExportError` works in a
    command too, and `--help` still answers without Keras.

    Args:
        namespace: the package's `globals()`, with its `__all__`.
        importer: a function of no arguments returning `{name: value}`.

    Example (a package's `__init__.py`):
        def _import_names():
            from keras_sknet.utils.flops import count_flops, count_params, register_macs

            return locals()

        __all__ = ["count_flops", "count_params", "register_macs"]
        cli.import_names(globals(), _import_names)
    """
    if not COMMAND_LINE:
        namespace.update(importer())
        return

    def __getattr__(name):
        if name not in namespace["__all__"]:  # submodules then import as usual
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        namespace.update(importer())
        return namespace[name]

    def __dir__():
        return sorted(set(namespace) | set(namespace["__all__"]))

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__


# Errors the library raises for a user's input: a one-line message, no traceback. Our own
# exceptions for user input (ExportError, CheckpointMismatchError, ...) derive from these.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ImportError,
)

# Exit status of a user error found while working (argparse's own usage errors exit 2).
USER_ERROR_STATUS = 1


class UserError(Exception):
    """A user's mistake, printed as `prog: error: message` without a traceback."""


def quiet_tensorflow():
    """TensorFlow's C++ and Python log lines off unless the user asked for them.

    Call before TensorFlow is imported; `TF_CPP_MIN_LOG_LEVEL` set by the user wins.
    """
    if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):  # unset or empty (TensorFlow reads "" as 0)
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"


# What TensorFlow 2.21's C++ prints at its import through absl before absl::InitializeLog(), once
# per shared library (so twice), whatever TF_CPP_MIN_LOG_LEVEL says: absl writes every message
# to stderr until its log is initialised (abseil-cpp pull requests 1718 and 1957).
_TENSORFLOW_STARTUP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on"
)


def import_keras():
    """Imports Keras (and so its backend, TensorFlow by default) without TensorFlow's start-up lines.

    Calls `quiet_tensorflow()`; TensorFlow's informational lines that `TF_CPP_MIN_LOG_LEVEL` does
    not reach are dropped too, unless the level is 0 (the user asked for everything). Everything
    else written to stderr meanwhile is written after the import.

    Returns:
        The `keras` module.

    Raises:
        UserError: the configured backend (`KERAS_BACKEND` or keras.json) is not one Keras knows.
    """
    return _without_startup_lines("keras", _import_keras)


def import_tensorflow():
    """Imports TensorFlow without its start-up lines (as `import_keras`), for commands that use
    it beside another Keras backend (tf.data input pipelines on JAX).

    Returns:
        The `tensorflow` module.
    """

    def importer():
        import tensorflow

        return tensorflow

    return _without_startup_lines("tensorflow", importer)


def _without_startup_lines(module, importer):
    quiet_tensorflow()
    if module in sys.modules or "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return importer()
    sys.stderr.flush()
    saved = os.dup(2)
    # A file, not a pipe: nothing blocks however much is written.
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            return importer()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _TENSORFLOW_STARTUP_LINE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def _import_keras():
    from keras_sknet._keras_config import configured_backend

    backend = configured_backend()
    try:
        import keras
    except ValueError as error:  # Keras' "Unable to import backend : NAME"
        raise UserError(
            f"Keras cannot run on the backend {backend!r} (KERAS_BACKEND, or keras.json in $KERAS_HOME or "
            f"~/.keras): {error}. Keras' backends: 'tensorflow', 'jax', 'torch'."
        ) from error
    return keras


def one_line(message):
    """`message` on one line: its lines joined with '; ' (a user error is read in one glance)."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    return "; ".join(lines) if lines else "(no message)"


def check_input_file(path, what):
    """Raises `UserError` unless `path` is an existing file (not a folder).

    Args:
        path: the path the user gave.
        what: what it should be, named in the error, e.g. `"model file (--model)"`.

    Example:
        >>> check_input_file("photos", "checkpoint file")  # UserError: 'photos' is a folder; expected ...
    """
    if os.path.isdir(path):
        raise UserError(f"{path!r} is a folder; expected a {what}.")
    if not os.path.isfile(path):
        raise UserError(f"No such {what}: {path!r}.")


def check_output_path(path, option, folder=False, overwrite=False):
    """Checks, before any work, that the command can write `path`: the package's one set of rules.

    `keras_sknet.utils.files`' checks, named in the command line's terms: a file is never
    replaced unless `overwrite` (`--overwrite`); missing parent folders are created when the
    output is written; writability is tried for real (root passes `os.access` everywhere).

    Args:
        path: the file (or folder) the command will write.
        option: how the user gave it, e.g. `"--output"`, named in the error.
        folder: True if `path` is a folder of the command's own files (created if missing).
        overwrite: whether an existing file may be replaced (the user's `--overwrite`).

    Example:
        >>> check_output_path("notes.txt/x.weights.h5", "--output")  # NotADirectoryError: a file is in the way
    """
    from keras_sknet.utils import files  # the standard library only

    if folder:
        return files.check_output_directory(path, name=option)
    return files.check_output_file(path, overwrite=overwrite, option="--overwrite", name=option)


def positive_int(text):
    """An argparse `type`: an integer of at least 1 (the error names what was received)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    return value


def positive_float(text):
    """An argparse `type`: a finite number above 0 (the error names what was received)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number. Received: {text!r}")
    return value


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: `prog: error: MESSAGE (see --help)`, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def run(work, prog, user_errors=()):
    """Runs `work()` and returns the process exit status.

    Args:
        work: a function of no arguments; what it returns (None = 0) is the status.
        prog: the command's name, the start of every error line.
        user_errors: more exception types that mean a user's mistake.

    Returns:
        0 (or `work`'s status) on success; `USER_ERROR_STATUS` after a user error,
        printed as one line; 130 on Ctrl-C. Any other exception propagates with its
        traceback (it is a bug of ours).
    """
    try:
        status = work()
    except (UserError, *USER_ERRORS, *user_errors) as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return USER_ERROR_STATUS
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else status
