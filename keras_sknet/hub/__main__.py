"""Command line: `python -m keras_sknet.hub presets DIR` writes the keras-hub preset of every pretrained model."""

import argparse
import os

from keras_sknet.hub import HUB_MODELS, preset_from_weights, write_pretrained_presets


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m keras_sknet.hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    presets = commands.add_parser("presets", help="write keras-hub presets (downloads the weights)")
    presets.add_argument(
        "directory", help="parent folder; one preset per model, named after it in lower case"
    )
    presets.add_argument("--model", choices=HUB_MODELS, help="only this model")
    presets.add_argument("--weights", default="imagenet", help="with --model: a weights= source")
    args = parser.parse_args(argv)
    if args.weights != "imagenet" and not args.model:
        parser.error(
            f"--weights needs --model (one of {', '.join(HUB_MODELS)}). Received: --weights {args.weights}"
        )
    if args.model:
        paths = [
            preset_from_weights(args.model, args.weights, os.path.join(args.directory, args.model.lower()))
        ]
    else:
        paths = write_pretrained_presets(args.directory)
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
