"""Exported models on LiteRT and ONNX Runtime: latency (batch 1, 1 and 2 threads; batch 16) and file size.

    python benchmarks/bench_export.py [--rounds 20] [--models ...] [--formats ...] [--quick] [--no-onnx] [--no-write]

Models (224x224, 1000 classes): ShuffleNetV2 0.5x / 1.0x plain, +SE, +SK and
SKNet-50. Formats: float32 ("none"), float16, dynamic-range and int8. Each is
exported with `keras_sknet.export.to_tflite` (so every row passed its check)
and timed on LiteRT with its default XNNPACK delegate, beside the Keras model
(`tf.function`, batch 1) and, with SKNet-50 when timm is installed, timm's
skresnext50_32x4d in eager PyTorch (in a persistent subprocess at the same
thread count: TensorFlow and torchvision in one process can crash). Everything
is exported first and then timed in interleaved rounds
(`benchmarks.common.interleaved_timeit`), timm included, so that load drifting
on the machine hits every model alike and the ratios hold even for the
millisecond ShuffleNets. With the `onnx` extra installed, each model is also
exported with `keras_sknet.export.to_onnx` (float32 and int8, free batch) and
timed on ONNX Runtime's CPU provider in the same rounds, at batch 1 and, beside
the Keras graph, at batch 16.

The models have random weights. So that the int8 top-1 agreement means
something, their classifier is fitted (least squares on the pooled features)
to synthetic images whose class (one of 10) sets their colour and stripe
direction: the Keras model then tells the images apart, and int8 must agree
with it on held-out ones.

Targets (../shared/TARGETS.md, the issue): ShuffleNetV2 + SK within 1.15x the
latency of plain ShuffleNetV2; SKNet-50 float32 >= 2.5x and int8 >= 4x faster
than timm eager; ONNX Runtime float32 >= 1.5x faster than timm eager at batch 1.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Before anything imports TensorFlow: keras_sknet turns its oneDNN kernels on unless
# TF_ENABLE_ONEDNN_OPTS says otherwise (keras_sknet.platform.prefer_onednn).
import keras_sknet  # noqa: E402,F401

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import append_markdown, interleaved_timeit, start_timm  # noqa: E402
from keras_sknet import export  # noqa: E402
from keras_sknet.applications import (  # noqa: E402
    ShuffleNetV2,
    ShuffleNetV2SE,
    ShuffleNetV2SK,
    SKNet50,
)
from tests.support.synthetic import class_images, fit_classifier  # noqa: E402

MODELS = {
    "shufflenetv2_0.5x": lambda: ShuffleNetV2(0.5),
    "shufflenetv2_0.5x_se": lambda: ShuffleNetV2SE(0.5),
    "shufflenetv2_0.5x_sk": lambda: ShuffleNetV2SK(0.5),
    "shufflenetv2_1.0x": lambda: ShuffleNetV2(1.0),
    "shufflenetv2_1.0x_se": lambda: ShuffleNetV2SE(1.0),
    "shufflenetv2_1.0x_sk": lambda: ShuffleNetV2SK(1.0),
    "sknet50": SKNet50,
}
FORMATS = ("none", "float16", "dynamic", "int8")
THREADS = (1, 2)
SIZE = 224
CALIBRATION, HELD_OUT = 100, 100
ONNX_FORMATS = ("none", "int8")
ONNX_LABELS = {"none": "ONNX Runtime float32", "int8": "ONNX Runtime int8"}
BATCH = 16


def onnx_available():
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime", "tf2onnx"))


def onnx_runner(content, threads, batch=1):
    session = export.onnx.make_session(content, threads, spinning=False)  # timed in turns with the others
    x = np.random.default_rng(0).normal(size=(batch, SIZE, SIZE, 3)).astype("float32")
    return lambda: session.run(None, {"images": x})


def litert_runner(content, threads):
    interpreter = export.make_interpreter(content, num_threads=threads)
    (detail,) = interpreter.get_input_details()
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    return interpreter.invoke


def keras_runner(model, batch=1):
    graph = tf.function(lambda t: model(t, training=False))
    x = tf.constant(np.random.default_rng(0).normal(size=(batch, SIZE, SIZE, 3)).astype("float32"))
    return lambda: graph(x).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds per runner")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {list(MODELS)}")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated, from {FORMATS}")
    parser.add_argument(
        "--quick", action="store_true", help="a short check: ShuffleNetV2 0.5x plain and SK, float32 and int8"
    )
    parser.add_argument("--no-timm", action="store_true", help="skip timm even when installed")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime even when installed")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    if args.quick:
        args.models, args.formats, args.rounds = "shufflenetv2_0.5x,shufflenetv2_0.5x_sk", "none,int8", 5
    models = args.models.split(",")
    formats = args.formats.split(",")
    for name in models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; choose from {list(MODELS)}")
    for fmt in formats:
        if fmt not in FORMATS:
            parser.error(f"unknown format {fmt!r}; choose from {FORMATS}")

    with_onnx = not args.no_onnx and onnx_available()
    if not args.no_onnx and not with_onnx:
        print("ONNX Runtime rows skipped: pip install -e .[onnx]", flush=True)
    fit_images, fit_labels = class_images(200, SIZE, seed=1)
    data, _ = class_images(CALIBRATION + HELD_OUT, SIZE, seed=2)
    # Export (and check) everything first, then time everything side by side.
    keras_runners, exported = {}, {}  # (model, "keras") -> runner; (model, format) -> to_tflite result
    onnx_exported, batch_runners = (
        {},
        {},
    )  # (model, format) -> to_onnx result; (model, what) -> batch-16 runner
    for name in models:
        keras.utils.set_random_seed(0)
        model = MODELS[name]()
        fit_classifier(model, fit_images, fit_labels)
        keras_runners[name, "keras"] = keras_runner(model)
        if with_onnx:
            batch_runners[name, "Keras tf.function"] = keras_runner(model, BATCH)
            for fmt in ONNX_FORMATS:
                onnx_exported[name, fmt] = export.to_onnx(
                    model,
                    quantize=fmt,
                    representative_data=data,
                    num_calibration=CALIBRATION,
                    num_validation=HELD_OUT,
                )
                print(
                    f"exported {name} {fmt}: {onnx_exported[name, fmt].summary().splitlines()[0]}", flush=True
                )
        for fmt in formats:
            exported[name, fmt] = export.to_tflite(
                model,
                quantize=fmt,
                representative_data=data,
                num_calibration=CALIBRATION,
                num_validation=HELD_OUT,
            )
            print(f"exported {name} {fmt}: {exported[name, fmt].summary().splitlines()[0]}", flush=True)

    latency = {}  # (model, format or "keras") -> {threads: seconds}
    for key, (median, _) in interleaved_timeit(keras_runners, rounds=args.rounds).items():
        latency[key] = {threads: median for threads in THREADS}
    timm = {}  # threads -> versions, when timm runs
    for threads in THREADS:
        runners = {key: litert_runner(result.content, threads) for key, result in exported.items()}
        for (name, fmt), result in onnx_exported.items():
            runners[name, f"onnx {fmt}"] = onnx_runner(result.content, threads)
        worker = None if args.no_timm or "sknet50" not in models else start_timm(threads)
        if worker:
            # timm in the same rounds as LiteRT, at the same thread count.
            runners["timm", "eager"] = worker.runner("skresnext50_32x4d/infer/1")
        for key, (median, _) in interleaved_timeit(runners, rounds=args.rounds).items():
            latency.setdefault(key, {})[threads] = median
        if worker:
            timm[threads] = worker.versions
            worker.close()
        del runners

    batch16 = {}
    if onnx_exported:
        for (name, fmt), result in onnx_exported.items():
            batch_runners[name, ONNX_LABELS[fmt]] = onnx_runner(result.content, max(THREADS), BATCH)
        rounds = max(3, args.rounds // 4)
        batch16 = {
            key: median for key, (median, _) in interleaved_timeit(batch_runners, rounds=rounds).items()
        }

    rows = []
    for name in models:
        rows.append(
            f"| {name} | Keras tf.function | - | {1000 * latency[name, 'keras'][1]:.2f} (all cores) | | | |"
        )
        for fmt in formats:
            result, times = exported[name, fmt], latency[name, fmt]
            check = result.checks[0]
            value = f"agree {check.value:.1%}" if "agreement" in check.name else f"diff {check.value:.1e}"
            rows.append(
                f"| {name} | {fmt} | {result.size / 2**20:.2f} | {1000 * times[1]:.2f} | {1000 * times[2]:.2f} "
                f"| {result.xnnpack.partitions} | {value} |"
            )
        for fmt in ONNX_FORMATS:
            if (name, fmt) not in onnx_exported:
                continue
            result, times = onnx_exported[name, fmt], latency[name, f"onnx {fmt}"]
            check = result.checks[0]
            value = f"agree {check.value:.1%}" if "agreement" in check.name else f"rel diff {check.value:.1e}"
            rows.append(
                f"| {name} | {ONNX_LABELS[fmt]} | {result.size / 2**20:.2f} | {1000 * times[1]:.2f} "
                f"| {1000 * times[2]:.2f} | - | {value} |"
            )

    for threads, versions in timm.items():
        rows.append(
            f"| timm skresnext50_32x4d (torch {versions['torch']}, timm {versions['timm']}) | eager PyTorch "
            f"| - | {1000 * latency['timm', 'eager'][threads]:.2f} ({threads} thread{'s' if threads > 1 else ''}) "
            "| | | |"
        )

    ratios = []
    for alpha in ("0.5x", "1.0x"):
        plain = f"shufflenetv2_{alpha}"
        for variant in ("se", "sk"):
            other = f"{plain}_{variant}"
            for fmt in ["keras", *formats]:
                if (plain, fmt) in latency and (other, fmt) in latency:
                    r = [latency[other, fmt][t] / latency[plain, fmt][t] for t in THREADS]
                    target = "<= 1.15x" if variant == "sk" and fmt != "keras" else ""
                    ratios.append(f"| {other} / {plain} | {fmt} | {r[0]:.2f}x | {r[1]:.2f}x | {target} |")
    if len(timm) == len(THREADS):
        for fmt in ["keras", *formats]:
            if ("sknet50", fmt) in latency:
                r = [latency["timm", "eager"][t] / latency["sknet50", fmt][t] for t in THREADS]
                target = {"none": ">= 2.5x faster", "int8": ">= 4x faster"}.get(fmt, "")
                ratios.append(f"| timm eager / SKNet-50 | {fmt} | {r[0]:.2f}x | {r[1]:.2f}x | {target} |")
        for fmt in ONNX_FORMATS:
            if ("sknet50", f"onnx {fmt}") in latency:
                r = [latency["timm", "eager"][t] / latency["sknet50", f"onnx {fmt}"][t] for t in THREADS]
                target = ">= 1.5x faster" if fmt == "none" else ""
                ratios.append(
                    f"| timm eager / SKNet-50 | {ONNX_LABELS[fmt]} | {r[0]:.2f}x | {r[1]:.2f}x | {target} |"
                )

    table = [
        "| model | format | size (MiB) | 1 thread (ms) | 2 threads (ms) | XNNPACK partitions | check |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "| ratio (latency) | format | 1 thread | 2 threads | target |",
        "|---|---|---|---|---|",
        *ratios,
    ]
    if batch16:
        table += [
            "",
            f"| model, batch {BATCH}, {max(THREADS)} threads | runtime | ms | images/s |",
            "|---|---|---|---|",
            *(
                f"| {name} | {what} | {1000 * median:.1f} | {BATCH / median:.1f} |"
                for (name, what), median in batch16.items()
            ),
        ]
    print("\n".join(table))
    if not args.no_write:
        append_markdown(
            "Export: LiteRT latency and size per format (bench_export.py)",
            table,
            [
                "Batch 1, 224x224, medians of interleaved rounds. Every TFLite row passed its export check (float32 max abs diff "
                "<= 1e-4, float16 <= 1e-2, dynamic/int8 top-1 agreement >= 98% on 100 held-out synthetic "
                "images); rows without an XNNPACK count are ONNX Runtime (CPU provider; float32 within 1e-4 "
                "relative, int8 static QDQ with top-1 agreement >= 98%). Keras: tf.function on all cores. "
                "Random weights with a fitted classifier (see the script's docstring)."
            ],
        )


if __name__ == "__main__":
    main()
