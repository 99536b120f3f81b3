"""SKNet-50 SavedModels served by a process that never imports keras_sknet, on each kernel library.

    python benchmarks/bench_served_saved_model.py [--rounds 15] [--no-write]

A served model runs under whatever TensorFlow kernels the serving process picks
(TF Serving, a plain `tf.saved_model.load`). This exports SKNet-50 twice: as
`to_saved_model` writes it (BatchNorms as a multiply and a bias add) and with
TensorFlow's fused BatchNorm (how it was written before, built here through the
exporter's own graph settings), then loads both in fresh processes on oneDNN,
on oneDNN capped at AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`: the batch-1 pathology of
oneDNN on AVX2 CPUs, which the cap reproduces on an AVX-512 one) and on Eigen.
In each process both run in alternating rounds at batch 1 and 16; the table
gives median milliseconds and the ratio. Replaces its section of BENCHMARKS.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SERVING_SETTINGS = {
    "oneDNN": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "oneDNN capped at AVX2": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "Eigen": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}

# Runs in the serving process: TensorFlow only, as a server has it.
SERVE = """
import json, sys, time
import numpy as np
import tensorflow as tf
paths, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
served = {}
for key, path in paths.items():
    function = tf.saved_model.load(path).signatures["serving_default"]
    (name,) = function.structured_input_signature[1]
    served[key] = lambda x, f=function, n=name: f(**{n: x})
report = {}
for batch, batch_rounds in ((1, rounds), (16, max(3, rounds // 4))):
    x = tf.constant(np.random.default_rng(0).normal(size=(batch, 224, 224, 3)).astype("float32"))
    times = {key: [] for key in served}
    for call in served.values():
        call(x), call(x)
    for _ in range(batch_rounds):
        for key, call in served.items():
            start = time.perf_counter()
            call(x)
            times[key].append(time.perf_counter() - start)
    report[batch] = {key: 1000 * float(np.median(t)) for key, t in times.items()}
print(json.dumps(report))
"""


def export_both(folder):
    """`{"fused": path, "affine": path}`: SKNet-50 with TensorFlow's fused BatchNorm and as written now."""
    import keras_sknet  # noqa: F401  (oneDNN before TensorFlow)
    from keras_sknet.applications import SKNet50
    from keras_sknet.export import common, saved_model

    model = SKNet50()
    paths = {"fused": os.path.join(folder, "fused"), "affine": os.path.join(folder, "affine")}
    saved_model.to_saved_model(model, paths["affine"])
    # The graph as exported before SavedModels held their BatchNorms as a multiply and an add.
    with common.inference_graphs(portable=True):
        saved_model.serving_archive(model, (None, 224, 224, 3), "float32").write_out(
            paths["fused"], verbose=False
        )
    return paths


def serve(paths, settings, rounds):
    env = {key: value for key, value in os.environ.items() if key != "ONEDNN_MAX_CPU_ISA"}
    env.update(settings, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", SERVE, json.dumps(paths), str(rounds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    return {int(batch): times for batch, times in json.loads(result.stdout.strip().splitlines()[-1]).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=15, help="alternating rounds at batch 1 (a quarter at 16)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    lines = [
        "| serving process | batch | fused BatchNorm (before), ms | multiply and add (now), ms | now / before |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        paths = export_both(folder)
        for label, settings in SERVING_SETTINGS.items():
            for batch, times in serve(paths, settings, args.rounds).items():
                fused, affine = times["fused"], times["affine"]
                lines.append(f"| {label} | {batch} | {fused:.1f} | {affine:.1f} | {affine / fused:.2f}x |")
                print(lines[-1], flush=True)
    print("\n".join(lines))
    if not args.no_write:
        from benchmarks.common import append_markdown

        append_markdown(
            "Served SavedModels: fused BatchNorm vs multiply and add (bench_served_saved_model.py)",
            lines,
            notes=(
                "SKNet-50, 224 px, float32, loaded with tf.saved_model.load in a fresh process that never "
                "imports keras_sknet; both SavedModels alternate in each process (medians). The AVX2 row "
                "caps oneDNN at AVX2 on this CPU.",
            ),
        )


if __name__ == "__main__":
    main()
