"""Command line: the scale experiment of Section 4.4 on a trained model, figures and numbers.

    python -m keras_sknet.analysis --model saved_models/scales_demo/best.keras --data scales_demo \\
        --split test --output-dir saved_models/scales_demo/analysis

Reads images (and labels, for the per-class figure) from any source that
`keras_sknet.utils.images.load_images` reads: a TFDS name or folder, an image
folder, a `.npy`/`.npz` file. Objects are enlarged by central crop and resize.
Writes `attention_scales.png` (Figure 3 style), `attention_classes.png`
(Figure 4 style, with labels) and `attention_scales.json`, and prints the table.
"""

import os
import sys

from keras_sknet.utils import cli


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m keras_sknet.analysis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .keras model with SK units")
    parser.add_argument("--data", required=True, help="TFDS name or folder, image folder, .npy/.npz")
    parser.add_argument("--data-dir", help="TFDS data directory for a dataset given by name")
    parser.add_argument("--split", default=None, help="TFDS split (default: train if present)")
    parser.add_argument("--num-images", type=cli.positive_int, default=256)
    parser.add_argument("--scales", type=cli.positive_float, nargs="+", default=[1.0, 1.5, 2.0])
    parser.add_argument("--unit", help="the unit of the per-channel panel (default SK_3_4 or the middle one)")
    parser.add_argument(
        "--preprocess",
        choices=["imagenet", "none"],
        default="imagenet",
        help="imagenet: RGB [0, 255] -> preprocess_input; none: the data is model input already",
    )
    parser.add_argument("--output-dir", default="analysis")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.quiet_tensorflow()
    return cli.run(lambda: _work(args), prog="python -m keras_sknet.analysis")


def _work(args):
    cli.check_input_file(args.model, "model file (--model)")
    cli.check_output_path(args.output_dir, "--output-dir", folder=True)
    keras = cli.import_keras()
    import keras_sknet.applications  # noqa: F401  (registers the layers for load_model)
    from keras_sknet.analysis.scales import scale_experiment
    from keras_sknet.utils.images import load_images

    try:
        model = keras.models.load_model(args.model)
    except Exception as error:  # Keras raises several types for files that are not models.
        raise cli.UserError(f"--model {args.model!r} is not a Keras model file: {error}") from error
    height, width = model.inputs[0].shape[1:3]
    if height is None or width is None:
        raise cli.UserError(f"--model {args.model!r} takes any input size; the analysis needs a fixed one.")
    images, labels = load_images(
        args.data,
        (height, width),
        args.num_images,
        split=args.split,
        data_dir=args.data_dir,
        preprocess=None if args.preprocess == "none" else "imagenet",
        return_labels=True,
    )
    if len(images) == 0:
        raise cli.UserError(f"--data {args.data!r} gave no images.")
    report = scale_experiment(model, images, scales=tuple(args.scales), labels=labels)

    os.makedirs(args.output_dir, exist_ok=True)
    figure = os.path.join(args.output_dir, "attention_scales.png")
    report.plot(figure, unit=args.unit)
    written = [figure]
    if labels is not None:
        written.append(os.path.join(args.output_dir, "attention_classes.png"))
        report.plot_classes(written[-1])
    written.append(os.path.join(args.output_dir, "attention_scales.json"))
    report.save_json(written[-1])
    print(f"Scale experiment on {len(images)} images of {args.data} (central crop + resize):\n")
    print(report.summary())
    print("\nWritten: " + ", ".join(written))


if __name__ == "__main__":
    sys.exit(main())
