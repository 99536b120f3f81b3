"""`python -m keras_sknet.export MODEL.keras ...`: export a trained model, verified.

    python -m keras_sknet.export saved_models/scales_demo/best.keras --format tflite --quantize int8 \\
        --representative-data scales_demo

    python -m keras_sknet.export best.keras --format onnx --quantize int8 --representative-data scales_demo

Writes beside the model by default, under a name that says what sets the export
apart (`best.tflite`, `best_int8.tflite`, `best_int8_uint8.tflite`,
`best_saved_model/`, `best_frozen_saved_model/`, `best_int8.onnx`, ...), prints where the
export went, its size and its checks. The output is checked before any work; an
existing output is replaced only with `--overwrite`, a folder holding other
files never. Exit status 0 on success; 1 with a one-line message (and nothing
written) on bad input or a failed check; 2 for a bad option.
"""

import argparse
import os
import sys

from keras_sknet.utils import cli, files

PROG = "python -m keras_sknet.export"
FORMATS = ("saved_model", "tflite", "onnx")
# Every format's --quantize values together (the exporters refuse the ones a format lacks;
# tests/test_export.py checks this against keras_sknet.export.QUANTIZATIONS).
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}


def default_output(model_path, args):
    """The export's path beside the model, named after every option that sets it apart.

    `<model>[_<quantize>][_uint8][_frozen][_batch<N>][_<H>x<W>][_opset<N>]` with
    `.tflite`, `.onnx` or `_saved_model` (a folder): two exports that differ never
    share a default name.
    """
    parts = [os.path.splitext(model_path)[0]]
    if args.quantize != "none":
        parts.append(args.quantize)
    if args.input_type != "float32":
        parts.append(args.input_type)
    if args.freeze:
        parts.append("frozen")
    if args.batch_size is not None:
        parts.append(f"batch{args.batch_size}")
    if args.input_size:
        parts.append("{}x{}".format(*args.input_size))
    if args.opset is not None:
        parts.append(f"opset{args.opset}")
    if args.format == "saved_model":
        return "_".join(parts) + "_saved_model"
    return "_".join(parts) + SUFFIXES[args.format]


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1] (0.95 for 95%). Received: {text}")
    return value


def parse_args(argv):
    parser = cli.ArgumentParser(
        prog=PROG,
        description="Export a trained Keras model to SavedModel, TFLite (LiteRT) or ONNX, verified.",
    )
    parser.add_argument("model", help="a Keras model file (.keras)")
    parser.add_argument("--format", choices=FORMATS, default="tflite")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default="none",
        help="TFLite: any; ONNX: none or int8; SavedModel: none",
    )
    parser.add_argument(
        "--representative-data",
        help="images for int8 calibration and the checks: a TFDS dataset name, a prepared TFDS dataset "
        "folder, a folder of images or a .npy/.npz file",
    )
    parser.add_argument("--validation-data", help="separate images to verify on (same kinds of source)")
    parser.add_argument("--num-calibration", type=int, default=100, help="int8 calibration images")
    parser.add_argument("--num-validation", type=int, default=200, help="most held-out images to check on")
    parser.add_argument(
        "--min-agreement",
        type=_fraction,
        help="dynamic and int8: the least top-1 agreement with the Keras model (default 0.98)",
    )
    parser.add_argument(
        "--output",
        help="the file (TFLite, ONNX) or folder (SavedModel) to write; default beside the model, named "
        "after the options",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output file, or a folder holding an earlier SavedModel (never a folder "
        "with other files)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="static batch (TFLite default 1; SavedModel and ONNX: any)"
    )
    parser.add_argument(
        "--input-type",
        choices=("float32", "uint8"),
        default="float32",
        help="float32: preprocess_input output (default); uint8: RGB images, preprocessing (and the resize) "
        "inside, probabilities out; a SavedModel also gets serving_bytes (encoded JPEG/PNG)",
    )
    parser.add_argument("--opset", type=int, help="ONNX only: the opset (13-18, default 17)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="input height and width")
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="SavedModel only: weights as graph constants (no variables; faster on CPU at small batches)",
    )
    parser.add_argument("--split", help="TFDS split (default: train)")
    parser.add_argument("--data-dir", help="TFDS data directory")
    parser.add_argument(
        "--no-preprocess", action="store_true", help="the data is already model input (skip preprocess_input)"
    )
    return parser.parse_args(argv)


def _check_options(args):
    """Options that do not go together, refused before anything is loaded."""
    if args.freeze and args.format != "saved_model":
        raise cli.UserError(
            "--freeze applies to SavedModel only"
            + (" (a TFLite model always holds constant weights)" if args.format == "tflite" else "")
            + f". Received: --format {args.format} --freeze"
        )
    if args.opset is not None and args.format != "onnx":
        raise cli.UserError(
            f"--opset applies to ONNX only. Received: --format {args.format} --opset {args.opset}"
        )
    if args.format == "saved_model" and args.quantize != "none":
        raise cli.UserError(
            "--quantize applies to TFLite and ONNX only; a SavedModel keeps float32 weights. "
            f"Received: --format saved_model --quantize {args.quantize}"
        )
    if args.min_agreement is not None and args.quantize not in ("dynamic", "int8"):
        raise cli.UserError(
            "--min-agreement applies to the exports checked by top-1 agreement (--quantize dynamic or int8). "
            f"Received: --quantize {args.quantize} --min-agreement {args.min_agreement}"
        )
    if not os.path.isfile(args.model):
        raise cli.UserError(
            f"No model file at {os.path.abspath(args.model)!r}"
            + (" (it is a folder)" if os.path.isdir(args.model) else "")
            + "; expected a Keras model file (.keras)"
        )
    output = args.output or default_output(args.model, args)
    check = dict(overwrite=args.overwrite, option="--overwrite", name="--output")
    if args.format == "saved_model":
        files.check_output_folder(output, files.saved_model_foreign, what="SavedModel", **check)
    else:
        files.check_output_file(output, suffix=SUFFIXES[args.format], **check)
    return output


def _work(args):
    output = _check_options(args)  # before TensorFlow is imported: a mistake is answered at once
    # Keras without TensorFlow's start-up lines (cli.import_keras, where this checkout's cli has it).
    cli.import_keras()
    # _tensorflow_only first: on JAX or PyTorch, an ImportError that names the fix (one line).
    from keras_sknet.export import _tensorflow_only, common, onnx, saved_model, tflite  # noqa: F401

    options = dict(
        input_size=tuple(args.input_size) if args.input_size else None,
        input_type=args.input_type,
        overwrite=args.overwrite,
        preprocess=None if args.no_preprocess else "imagenet",
        split=args.split,
        data_dir=args.data_dir,
    )
    quantized = dict(
        quantize=args.quantize,
        representative_data=args.representative_data,
        validation_data=args.validation_data,
        num_calibration=args.num_calibration,
        num_validation=args.num_validation,
        min_agreement=args.min_agreement,
    )
    try:
        if args.format == "onnx":
            result = onnx.to_onnx(
                args.model, output, opset=args.opset, batch_size=args.batch_size, **quantized, **options
            )
        elif args.format == "saved_model":
            result = saved_model.to_saved_model(
                args.model,
                output,
                batch_size=args.batch_size,
                validation_data=args.validation_data or args.representative_data,
                freeze=args.freeze,
                **options,
            )
        else:
            batch_size = 1 if args.batch_size is None else args.batch_size
            result = tflite.to_tflite(args.model, output, batch_size=batch_size, **quantized, **options)
    except common.ExportError as error:
        raise cli.UserError(str(error)) from error
    print(result.summary())


def main(argv=None):
    args = parse_args(argv)
    return cli.run(lambda: _work(args), prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
