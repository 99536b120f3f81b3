"""SKNet-50 on every TensorFlow CPU kernel configuration this CPU can stand in for, side by side.

    python benchmarks/bench_kernels.py [--rounds 3] [--no-write]

TensorFlow fixes its CPU kernels at import, so each configuration runs in a worker
process of its own, and all are timed in the same interleaved rounds:

- Eigen (`TF_ENABLE_ONEDNN_OPTS=0`): what TensorFlow runs by itself on x86 CPUs
  without AVX-512 VNNI/BF16, AVX-VNNI or AMX, and on most Arm CPUs. TensorFlow's
  pip wheels build Eigen for AVX alone, so it runs the same code on every x86 CPU.
- oneDNN at each instruction set up to this CPU's (`ONEDNN_MAX_CPU_ISA`): AVX2
  stands in for AVX2-only CPUs (Zen 1-3, Haswell to Skylake clients), AVX512_CORE
  for AVX-512 CPUs without VNNI (Skylake-SP/X), where TensorFlow alone runs Eigen.

Rows: SKNet-50 inference (the model in a `tf.function`, batch 16) and a training
step (the trainer's compiled step, SGD, batch 16), 224 x 224. These decide what
`keras_sknet.platform.prefer_onednn` does on each kind of CPU.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import append_markdown, interleaved_timeit  # noqa: E402
from benchmarks.workers import SKNET50_WORKER, Worker  # noqa: E402
from keras_sknet import platform  # noqa: E402

# oneDNN's instruction-set caps, the CPU feature each needs, and the CPUs it stands for.
ONEDNN_ISAS = (
    ("AVX2", "avx2", "AVX2-only CPUs: Zen 1-3, Haswell to Comet Lake"),
    ("AVX512_CORE", "avx512f", "AVX-512 without VNNI: Skylake-SP/X"),
)


def configurations():
    """{row label: worker environment} for Eigen and every oneDNN cap this CPU can run."""
    configs = {"Eigen (TF_ENABLE_ONEDNN_OPTS=0)": {platform.ONEDNN_VARIABLE: "0"}}
    features = platform.cpu_features()
    for isa, feature, stands_for in ONEDNN_ISAS:
        if feature in features:
            configs[f"oneDNN, ONEDNN_MAX_CPU_ISA={isa} ({stands_for})"] = {
                platform.ONEDNN_VARIABLE: "1",
                "ONEDNN_MAX_CPU_ISA": isa,
            }
    if platform.tensorflow_default_onednn(features):
        configs["oneDNN, this CPU's full instruction set"] = {platform.ONEDNN_VARIABLE: "1"}
    return configs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per task")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    workers = {label: Worker(SKNET50_WORKER, env=env) for label, env in configurations().items()}
    results = {}
    for task in ("infer", "train"):
        runners = {label: worker.runner(f"{task}/{args.batch}") for label, worker in workers.items()}
        print(f"{task}: {len(runners)} configurations, {args.rounds} interleaved rounds", flush=True)
        results[task] = interleaved_timeit(runners, rounds=args.rounds, block_seconds=0.0, warmup=1)
        for label, (median, _) in results[task].items():
            print(f"  {label}: {median:.3f} s", flush=True)
    for worker in workers.values():
        worker.close()

    eigen = next(label for label in workers if label.startswith("Eigen"))
    lines = [
        f"SKNet-50, 224 x 224, batch {args.batch}; every configuration in a worker process of its own, "
        f"timed in the same {args.rounds} interleaved rounds (median).",
        "",
        "| TensorFlow CPU kernels | inference s | vs Eigen | training step s | vs Eigen |",
        "|---|---:|---:|---:|---:|",
    ]
    for label in workers:
        infer, train = results["infer"][label][0], results["train"][label][0]
        lines.append(
            f"| {label} | {infer:.3f} | {results['infer'][eigen][0] / infer:.2f}x | {train:.2f} | "
            f"{results['train'][eigen][0] / train:.2f}x |"
        )
    print("\n".join(lines))
    if not args.no_write:
        append_markdown(
            "Kernels: SKNet-50 on Eigen and on oneDNN per instruction set (bench_kernels.py)", lines
        )


if __name__ == "__main__":
    main()
