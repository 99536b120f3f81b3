"""ONNX Runtime int8 configurations against float32: time ratios at batch 1 and 16, what ONNX Runtime fused.

    python benchmarks/bench_onnx_int8.py [--models sknet50 shufflenetv2_1.0x_sk ...] [--rounds 10] [--no-write]

Each model (224x224, random weights with small BatchNorm offsets of their own
as a trained model has (`tests.support.synthetic.distinct_batch_norm_offsets`),
classifier fitted to synthetic class images as in bench_export.py so that top-1
agreement means something) is
exported once to float32 ONNX with `keras_sknet.export.to_onnx`, then
quantized with `onnxruntime.quantization.quantize_static` in several
configurations: int8 (S8S8) or uint8 (U8S8) activations, per-channel or
per-tensor weights, every convolution or all but the grouped ones with several
channels per group, 7-bit weights (`reduce_range`, what an x86 CPU without
VNNI gets), or the residual Adds and pools quantized too. The chosen
configuration is `keras_sknet.export.onnx.quantize_int8` itself, through
`to_onnx(quantize="int8")`, so its row passed the exporter's agreement check.

For each: how many convolutions ONNX Runtime runs as `QLinearConv` and how many
stay float `Conv` (its optimized graph, ORT_ENABLE_ALL), top-1 agreement with
Keras on held-out images, and the time of float32 / int8 at batch 1 and 16 on
`--threads` threads (default 2), all sessions timed in interleaved rounds
(`benchmarks.common.interleaved_timeit`) so that load on a shared machine hits
them alike. Ratios above 1 mean int8 is faster. Writes the table to
BENCHMARKS.md ("ONNX Runtime int8 configurations").
"""

import argparse
import collections
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_sknet  # noqa: E402,F401

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import append_markdown, interleaved_timeit  # noqa: E402
from keras_sknet import export, platform  # noqa: E402
from keras_sknet.applications import ShuffleNetV2SK, SKNet50, preprocess_input  # noqa: E402
from keras_sknet.export import onnx as onnx_export  # noqa: E402
from tests.support.synthetic import class_images, distinct_batch_norm_offsets, fit_classifier  # noqa: E402

MODELS = {
    "sknet50": SKNet50,
    "shufflenetv2_1.0x_sk": lambda: ShuffleNetV2SK(1.0),
    "shufflenetv2_0.5x_sk": lambda: ShuffleNetV2SK(0.5),
}
SIZE = 224
CALIBRATION, HELD_OUT = 60, 100
BATCHES = (1, 16)
CHOSEN = "U8S8, grouped float (chosen)"
# label: (activations, per-channel weights, grouped convolutions float, reduce_range, op types)
CONFIGURATIONS = {
    "S8S8, all convolutions (before)": ("int8", True, False, False, ("Conv",)),
    "S8S8, grouped float": ("int8", True, True, False, ("Conv",)),
    "U8S8, all convolutions": ("uint8", True, False, False, ("Conv",)),
    CHOSEN: None,
    "U8S8 asymmetric activations, grouped float": ("uint8 asymmetric", True, True, False, ("Conv",)),
    "U8S8 per-tensor weights, grouped float": ("uint8", False, True, False, ("Conv",)),
    "U8S8, grouped float, 7-bit weights (reduce_range)": ("uint8", True, True, True, ("Conv",)),
    "U8S8, grouped float, + Add and pools": (
        "uint8",
        True,
        True,
        False,
        ("Conv", "Add", "GlobalAveragePool"),
    ),
}


def quantize(content, calibration, activations, per_channel, grouped_float, reduce_range, op_types):
    """One configuration through `quantize_int8`'s own road (`quantized_static`); activations
    symmetric unless "uint8 asymmetric"."""
    from onnxruntime import quantization

    def settings(graph):
        return dict(
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=quantization.QuantType.QUInt8
            if activations == "uint8"
            else quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": activations != "uint8 asymmetric"},
            op_types_to_quantize=list(op_types),
            nodes_to_exclude=onnx_export._grouped_not_depthwise(graph) if grouped_float else [],
            reduce_range=reduce_range,
        )

    return onnx_export.quantized_static(content, calibration, 8, settings)


def conv_split(content):
    """(integer convolutions, float convolutions) in the graph ONNX Runtime runs."""
    counts = onnx_export.optimized_operator_counts(content)
    integer = sum(n for op, n in counts.items() if op.endswith(("QLinearConv", "ConvInteger")))
    floating = sum(n for op, n in counts.items() if op.split(":")[-1] in ("Conv", "FusedConv"))
    return integer, floating


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--rounds", type=int, default=10, help="interleaved rounds at batch 1 (batch 16: a third)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md")
    args = parser.parse_args()

    rows, notes = [], []
    for name in args.models:
        keras.utils.set_random_seed(0)
        model = MODELS[name]()
        distinct_batch_norm_offsets(model)  # as a trained model's (see its docstring)
        fit_classifier(model, *class_images(200, SIZE, seed=1))
        images, _ = class_images(CALIBRATION + HELD_OUT, SIZE, seed=2)
        x = preprocess_input(images).astype("float32")
        calibration, held_out = x[:CALIBRATION], x[CALIBRATION:]
        reference = model.predict(held_out, verbose=0).argmax(-1)

        float_content = export.to_onnx(model, quantize="none").content
        chosen = export.to_onnx(
            model,
            quantize="int8",
            representative_data=images,
            num_calibration=CALIBRATION,
            num_validation=HELD_OUT,
        )
        print(f"{name}: {chosen.summary().splitlines()[-1]}", flush=True)
        contents = {"float32": float_content}
        for label, config in CONFIGURATIONS.items():
            contents[label] = (
                chosen.content if config is None else quantize(float_content, calibration, *config)
            )
        sessions = {
            label: onnx_export.make_session(c, args.threads, spinning=False) for label, c in contents.items()
        }
        agreement = {
            label: float(np.mean(onnx_export.run_onnx(s, held_out, 20).argmax(-1) == reference))
            for label, s in sessions.items()
        }
        times = collections.defaultdict(dict)
        for batch in BATCHES:
            inputs = np.resize(held_out, (batch,) + held_out.shape[1:])
            runners = {
                label: (lambda s=s, i=inputs: s.run(None, {s.get_inputs()[0].name: i}))
                for label, s in sessions.items()
            }
            rounds = args.rounds if batch == 1 else max(3, args.rounds // 3)
            for label, (median, _) in interleaved_timeit(runners, rounds=rounds, block_seconds=0.2).items():
                times[label][batch] = median
        for label, content in contents.items():
            integer, floating = conv_split(content)
            ratio = [times["float32"][b] / times[label][b] for b in BATCHES]
            line = (
                f"| {name} | {label} | {integer} / {floating} | {agreement[label]:.0%} | "
                + " | ".join(f"{1000 * times[label][b]:.1f} | {r:.2f}x" for b, r in zip(BATCHES, ratio))
                + " |"
            )
            rows.append(line)
            print(line, flush=True)

    table = [
        f"| model | ONNX model | QLinearConv / float Conv run | top-1 agreement | "
        f"batch {BATCHES[0]} (ms) | float32 / this, batch {BATCHES[0]} | "
        f"batch {BATCHES[1]} (ms) | float32 / this, batch {BATCHES[1]} |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    notes = [
        f"ONNX Runtime {__import__('onnxruntime').__version__}, CPU provider, {args.threads} threads, "
        f"ORT_ENABLE_ALL; {platform.vector_isa()}. Ratios above 1: int8 faster than float32. "
        f"Agreement: top-1 with Keras on {HELD_OUT} held-out synthetic class images (calibrated on "
        f"{CALIBRATION}); random weights with BatchNorm offsets of their own, fitted classifier. "
        'The chosen row is `to_onnx(quantize="int8")`, checked by the exporter.',
    ]
    print("\n".join(table + [""] + notes))
    if not args.no_write:
        append_markdown("ONNX Runtime int8 configurations", table, notes)


if __name__ == "__main__":
    main()
