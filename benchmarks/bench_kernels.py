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

Rows: SKNet-50 inference (the model in a `tf.function`) at batch 1 and 16, a
SKNet-50 training step (the trainer's compiled step, SGD, batch 16), 224 x 224,
and a training step of the demo's model and recipe (`scales_demo`, batch 64,
64 x 64). These decide what `keras_sknet.platform.prefer_onednn` does on each
kind of CPU; timm's SKNet-50 (PyTorch eager) runs beside them as the peer. Rows with ONEDNN_MAX_CPU_ISA below this CPU's own are emulation:
the numbers are this CPU's, running narrower instructions, not those of the CPU
the cap stands in for, and are labelled so.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import append_markdown, interleaved_timeit, start_timm  # noqa: E402
from benchmarks.workers import SKNET50_WORKER, Worker  # noqa: E402
from keras_sknet import platform  # noqa: E402

# oneDNN's instruction-set caps, the CPU feature each needs, and the CPUs it stands for.
ONEDNN_ISAS = (
    ("AVX2", "avx2", "AVX2-only CPUs: Zen 1-3, Haswell to Comet Lake"),
    ("AVX512_CORE", "avx512f", "AVX-512 without VNNI: Skylake-SP/X"),
)


def configurations(features=None):
    """{row label: worker environment} for Eigen, oneDNN as is, and every lower oneDNN cap."""
    features = platform.cpu_features() if features is None else features
    configs = {"Eigen (TF_ENABLE_ONEDNN_OPTS=0)": {platform.ONEDNN_VARIABLE: "0"}}
    configs[f"oneDNN, this CPU's own instruction set ({platform.vector_isa(features)})"] = {
        platform.ONEDNN_VARIABLE: "1"
    }
    widest = max((i for i, (_, feature, _) in enumerate(ONEDNN_ISAS) if feature in features), default=-1)
    for isa, _, stands_for in ONEDNN_ISAS[:widest]:  # caps below this CPU's widest
        configs[f"oneDNN, ONEDNN_MAX_CPU_ISA={isa} (emulates {stands_for})"] = {
            platform.ONEDNN_VARIABLE: "1",
            "ONEDNN_MAX_CPU_ISA": isa,
        }
    return configs


TIMM_MODEL = "skresnext50_32x4d"  # timm's SKNet-50, the same network (tests/test_timm_parity.py)
TASKS = (
    ("infer/1", "SKNet-50 inference, batch 1"),
    ("infer/16", "SKNet-50 inference, batch 16"),
    ("train/16", "SKNet-50 training step, batch 16"),
    ("demo/64", "demo model training step, batch 64"),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per task")
    parser.add_argument("--no-timm", action="store_true", help="skip the timm rows")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    workers = {label: Worker(SKNET50_WORKER, env=env) for label, env in configurations().items()}
    timm = None if args.no_timm else start_timm(os.cpu_count())
    timm_label = f"timm {TIMM_MODEL} eager (PyTorch {timm.versions['torch']})" if timm else None
    results = {}
    for task, title in TASKS:
        runners = {label: worker.runner(task) for label, worker in workers.items()}
        if timm and not task.startswith("demo"):
            mode, batch = task.split("/")
            runners[timm_label] = timm.runner(f"{TIMM_MODEL}/{mode}/{batch}")
        print(f"{title}: {len(runners)} configurations, {args.rounds} interleaved rounds", flush=True)
        results[task] = interleaved_timeit(runners, rounds=args.rounds, block_seconds=0.0, warmup=1)
        for label, (median, _) in results[task].items():
            print(f"  {label}: {median:.3f} s", flush=True)
    for worker in [*workers.values(), *([timm] if timm else [])]:
        worker.close()

    eigen = next(label for label in workers if label.startswith("Eigen"))
    lines = [
        f"{platform.describe().split(';')[0]}; every configuration in a worker process of its own, "
        f"timed in the same {args.rounds} interleaved rounds (median seconds; x = Eigen's time / this one's).",
        "",
        "| TensorFlow CPU kernels | " + " | ".join(f"{title} | vs Eigen" for _, title in TASKS) + " |",
        "|---|" + "---:|---:|" * len(TASKS),
    ]
    for label in [*workers, *([timm_label] if timm else [])]:
        cells = []
        for task, _ in TASKS:
            if label not in results[task]:
                cells.append("- | -")
                continue
            seconds = results[task][label][0]
            cells.append(f"{seconds:.3f} | {results[task][eigen][0] / seconds:.2f}x")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if not args.no_write:
        append_markdown(
            "Kernels: SKNet-50 on Eigen and on oneDNN per instruction set (bench_kernels.py)", lines
        )


if __name__ == "__main__":
    main()
