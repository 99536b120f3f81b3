"""Command line: `python -m keras_sknet.hub presets DIR` writes the keras-hub preset of every pretrained model."""

import os
import sys

from keras_sknet.utils import cli

PROG = "python -m keras_sknet.hub"


def main(argv=None):
    parser = cli.ArgumentParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    presets = commands.add_parser("presets", help="write keras-hub presets (downloads the weights)")
    presets.add_argument(
        "directory", help="parent folder; one preset per model, named after it in lower case"
    )
    presets.add_argument("--model", help="only this model (one of keras_sknet.hub.HUB_MODELS, e.g. SKNet50)")
    presets.add_argument(
        "--weights",
        default="imagenet",
        help="with --model: a weights= source (imagenet, or a .safetensors, .pth, .weights.h5 or "
        ".caffemodel file)",
    )
    presets.add_argument(
        "--overwrite",
        action="store_true",
        help="replace earlier presets of ours (never a folder of other files)",
    )
    args = parser.parse_args(argv)
    if args.weights != "imagenet" and not args.model:
        parser.error(f"--weights needs --model. Received: --weights {args.weights!r} without --model")
    cli.quiet_tensorflow()
    return cli.run(lambda: _work(args), prog=PROG)


def _work(args):
    cli.check_output_path(args.directory, "directory", folder=True)
    if args.weights != "imagenet":
        cli.check_input_file(args.weights, "weights file (--weights)")
    cli.import_keras()
    try:
        import keras_hub  # noqa: F401
    except ImportError as error:
        raise cli.UserError(
            f"{PROG} needs keras-hub (see docs/backbones.md, 'keras-hub'). Importing it failed: {error}"
        ) from error
    from keras_sknet.hub.presets import HUB_MODELS, preset_from_weights, write_pretrained_presets

    if args.model is None:
        paths = write_pretrained_presets(args.directory, overwrite=args.overwrite)
    elif args.model not in HUB_MODELS:
        raise cli.UserError(
            f"--model {args.model!r} has no keras-hub preset. Models: {', '.join(HUB_MODELS)}."
        )
    else:
        paths = [
            preset_from_weights(
                args.model,
                args.weights,
                os.path.join(args.directory, args.model.lower()),
                overwrite=args.overwrite,
            )
        ]
    for path in paths:
        print(path)


if __name__ == "__main__":
    sys.exit(main())
