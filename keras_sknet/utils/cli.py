"""What every command line shares: one-line user errors, quiet TensorFlow, an argument parser.

A user's mistake (a missing file, a bad path, a wrong option, the wrong backend) ends
the command with one line on stderr that names what was received and what is accepted,
and a non-zero exit status; a traceback is kept for our own bugs. This module imports
only the standard library, so that `--help` and argument errors answer at once: each
`__main__` imports Keras, TensorFlow and the package's heavy parts after parsing.

    from keras_sknet.utils import cli

    def main(argv=None):
        parser = cli.ArgumentParser(prog="python -m keras_sknet.thing", description=__doc__)
        parser.add_argument("model")
        args = parser.parse_args(argv)
        return cli.run(lambda: _work(args), prog=parser.prog)

    def _work(args):
        if not os.path.isfile(args.model):
            raise cli.UserError(f"No model file at {args.model!r}; expected a .keras file.")
        from keras_sknet import export  # heavy imports after the arguments are checked
        ...
"""

import argparse
import os
import sys

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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def one_line(message):
    """`message` on one line: its lines joined with '; ' (a user error is read in one glance)."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    return "; ".join(lines) if lines else "(no message)"


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
