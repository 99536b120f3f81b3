"""`python -m keras_sknet.export MODEL.keras ...`: export a trained model, verified.

    python -m keras_sknet.export saved_models/scales_demo/best.keras --format tflite --quantize int8 \\
        --representative-data scales_demo

    python -m keras_sknet.export best.keras --format onnx --quantize int8 --representative-data scales_demo

Writes beside the model by default (`best_int8.tflite`, `best.tflite`,
`best_saved_model/`, `best.onnx`, `best_int8.onnx`), prints where the export went, its size and its checks.
Exit status 0 on success; 1 with a message (and nothing written) on bad input
or a failed check.
"""

import argparse
import os
import sys

FORMATS = ("saved_model", "tflite", "onnx")


def default_output(model_path, fmt, quantize):
    stem = os.path.splitext(model_path)[0]
    if fmt == "saved_model":
        return stem + "_saved_model"
    return stem + ("" if quantize == "none" else f"_{quantize}") + f".{fmt}"


def parse_args(argv):
    from keras_sknet.export.tflite import QUANTIZATIONS

    parser = argparse.ArgumentParser(
        prog="python -m keras_sknet.export",
        description="Export a trained Keras model to SavedModel, TFLite (LiteRT) or ONNX, verified.",
    )
    parser.add_argument("model", help="a Keras model file (.keras)")
    parser.add_argument("--format", choices=FORMATS, default="tflite")
    parser.add_argument(
        "--quantize",
        default="none",
        help=f"TFLite: one of {', '.join(QUANTIZATIONS)}; ONNX: none or int8; SavedModel: none",
    )
    parser.add_argument(
        "--representative-data",
        help="images for int8 calibration and the checks: a TFDS dataset name, a prepared TFDS dataset "
        "folder, a folder of images or a .npy/.npz file",
    )
    parser.add_argument("--validation-data", help="separate images to verify on (same kinds of source)")
    parser.add_argument("--num-calibration", type=int, default=100, help="int8 calibration images")
    parser.add_argument("--num-validation", type=int, default=200, help="most held-out images to check on")
    parser.add_argument("--output", help="the file (TFLite) or folder (SavedModel) to write")
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


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_sknet import export

    data_args = dict(
        preprocess=None if args.no_preprocess else "imagenet", split=args.split, data_dir=args.data_dir
    )
    input_size = tuple(args.input_size) if args.input_size else None
    try:
        if args.format == "onnx" and args.freeze:
            raise ValueError(
                f"--freeze applies to SavedModel only. Received: --format {args.format} --freeze"
            )
        if args.opset is not None and args.format != "onnx":
            raise ValueError(
                f"--opset applies to ONNX only. Received: --format {args.format} --opset {args.opset}"
            )
        if args.format == "onnx":
            export.common.check_quantization(args.quantize, export.ONNX_QUANTIZATIONS)
            output = args.output or default_output(args.model, "onnx", args.quantize)
            result = export.to_onnx(
                args.model,
                output,
                opset=args.opset,
                quantize=args.quantize,
                representative_data=args.representative_data,
                validation_data=args.validation_data,
                num_calibration=args.num_calibration,
                num_validation=args.num_validation,
                batch_size=args.batch_size,
                input_size=input_size,
                input_type=args.input_type,
                **data_args,
            )
        elif args.format == "saved_model":
            if args.quantize != "none":
                raise ValueError(
                    f"--quantize applies to TFLite only; a SavedModel keeps float32 weights. "
                    f"Received: --format saved_model --quantize {args.quantize}"
                )
            output = args.output or default_output(args.model, "saved_model", "none")
            result = export.to_saved_model(
                args.model,
                output,
                batch_size=args.batch_size,
                input_size=input_size,
                validation_data=args.validation_data or args.representative_data,
                freeze=args.freeze,
                input_type=args.input_type,
                **data_args,
            )
        else:
            if args.freeze:
                raise ValueError(
                    "--freeze applies to SavedModel only (a TFLite model always holds constant weights). "
                    "Received: --format tflite --freeze"
                )
            export.common.check_quantization(args.quantize, export.QUANTIZATIONS)
            output = args.output or default_output(args.model, "tflite", args.quantize)
            result = export.to_tflite(
                args.model,
                output,
                quantize=args.quantize,
                representative_data=args.representative_data,
                validation_data=args.validation_data,
                num_calibration=args.num_calibration,
                num_validation=args.num_validation,
                batch_size=1 if args.batch_size is None else args.batch_size,
                input_size=input_size,
                input_type=args.input_type,
                **data_args,
            )
    except (ValueError, ImportError, export.ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
