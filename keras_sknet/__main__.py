"""Prints the model zoo's sizes beside the paper's: trainable parameters and multiply-adds per image.

    python -m keras_sknet                          # every published row (about a minute on a CPU)
    python -m keras_sknet --model SKNet-50 --model shufflenet
    python -m keras_sknet --list                   # the rows and the paper's numbers, nothing built

Each row of the paper's Tables 1, 2, 4, 5, 6, 7 and S2 is built (without
weights) and counted; the table says how far each is from the published
numbers and whether that is within the tolerance the release promises.
"""

import sys

from keras_sknet.utils import cli

PROG = "python -m keras_sknet"


def main(argv=None):
    """The command line (also the `keras-sknet-zoo` script). Returns the exit status."""
    parser = cli.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=cli.argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="TEXT",
        help="only the rows whose model contains TEXT (any case), e.g. SKNet-50, 'Table 7' or "
        "shufflenet; repeat for more (default: every row)",
    )
    parser.add_argument("--list", action="store_true", help="list the rows and the paper's numbers only")
    args = parser.parse_args(argv)
    cli.quiet_tensorflow()
    return cli.run(lambda: _work(args), prog=PROG)


def _matches(row, text):
    return text.lower() in f"{row.label} ({row.source})".lower()


def _work(args):
    cli.import_keras()
    from keras_sknet.applications import zoo

    rows = zoo.PAPER_SIZES
    for text in args.model or ():
        if not any(_matches(row, text) for row in rows):
            labels = ", ".join(row.label for row in rows)
            raise cli.UserError(f"--model {text!r} names no row of the zoo. The rows: {labels}.")
    if args.model:
        rows = [row for row in rows if any(_matches(row, text) for text in args.model)]
    zoo.main(rows, measure_sizes=not args.list)


if __name__ == "__main__":
    sys.exit(main())
