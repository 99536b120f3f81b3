"""SKNet-50 against its peers on this machine, side by side in one run.

    python benchmarks/bench_peers.py [--rounds 10] [--no-xla] [--no-write]

Inference (224x224, batch 1 and 16): our SKNet-50 in Keras (`predict`, also
through keras.Model's own loop, `predict_on_batch`, the eager call `model(x)`, the
`tf.function` graph, the frozen graph of `keras_sknet.export.frozen_function`,
XLA, mixed precision), as a SavedModel (variables or frozen; loaded here and in a
fresh process that never imports keras_sknet), and through LiteRT
(float32 and int8, batch 1) and through ONNX Runtime (float32 and int8, batch 1
and 16, when the `onnx` extra is installed); our ResNeXt-50 and SE-ResNeXt-50 in the same graph
mode; timm's skresnext50_32x4d and resnext50_32x4d in eager PyTorch, in a
persistent subprocess (TensorFlow and torchvision in one process can crash).
Every row of a batch size is timed in the same interleaved rounds, timm's too,
so that load drifting on a shared machine moves all of them alike. Training
(batch 16): one SGD step of SKNet-50 in Keras and in timm, interleaved, and
with XLA. Achieved GMAC/s beside the peak of a 4096^3 float32 matmul timed in
the same rounds. GPU rows when a GPU is present. Prints the tables and appends
them to BENCHMARKS.md.

Targets of the benchmarks issue (ratios in one run): Keras inference >= 1.5x timm
at batch 1 and >= 2x at batch 16; LiteRT float32 >= 2.5x, int8 >= 4x; ONNX Runtime
float32 >= 1.5x at batch 1 (the ONNX issue); training
>= 1.3x timm; SK overhead over ResNeXt-50 <= 1.25x; SKNet-50 at batch 16 >= 60% of
the matmul peak.
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Before anything imports TensorFlow: keras_sknet turns its oneDNN kernels on unless
# TF_ENABLE_ONEDNN_OPTS says otherwise (keras_sknet.platform.prefer_onednn).
import keras_sknet  # noqa: E402,F401

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import append_markdown, interleaved_timeit, start_timm, timeit  # noqa: E402
from benchmarks.workers import SKNET50_WORKER, Worker  # noqa: E402
from keras_sknet import export, platform  # noqa: E402
from keras_sknet.applications import ResNeXt50, SEResNeXt50, SKNet50  # noqa: E402
from keras_sknet.utils import count_flops  # noqa: E402
from tests.support.synthetic import class_images, distinct_batch_norm_offsets, fit_classifier  # noqa: E402

SIZE = 224


def matmul_runner(size=4096):
    """A float32 `size`^3 matmul: the machine's practical multiply-add peak."""
    a = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.matmul(a, a))
    return lambda: matmul().numpy()


def images(batch):
    return tf.constant(np.random.default_rng(batch).normal(size=(batch, SIZE, SIZE, 3)).astype("float32"))


def graph_runner(model, batch, jit_compile=False):
    function = tf.function(lambda t: model(t, training=False), jit_compile=jit_compile)
    x = images(batch)
    return lambda: function(x).numpy()


def litert_runners(model, threads):
    """LiteRT float32 and int8 (batch 1) of `model`, exported and verified by keras_sknet.export."""
    from benchmarks.bench_export import CALIBRATION, HELD_OUT

    calibration, labels = class_images(CALIBRATION + HELD_OUT, SIZE, seed=0)
    fit_classifier(model, calibration, labels)  # so that int8 agreement is meaningful
    runners = {}
    for quantize in ("none", "int8"):
        result = export.to_tflite(
            model,
            quantize=quantize,
            representative_data=calibration,
            num_calibration=CALIBRATION,
            num_validation=HELD_OUT,
        )
        interpreter = export.make_interpreter(result.content, num_threads=threads)
        (detail,) = interpreter.get_input_details()
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        runners[quantize] = (interpreter.invoke, result)
    return runners


def onnx_runners(model, threads):
    """ONNX Runtime float32 and int8 sessions (free batch) of `model`, exported and verified by keras_sknet.export.

    Calibrates and checks on the images `litert_runners` fitted the classifier to.
    Returns `{quantize: (session, result)}`, or `{}` without the `onnx` extra.
    """
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tf2onnx") is None:
        print("ONNX Runtime rows skipped: pip install -e .[onnx]", flush=True)
        return {}
    from benchmarks.bench_export import CALIBRATION, HELD_OUT

    calibration, _ = class_images(CALIBRATION + HELD_OUT, SIZE, seed=0)
    sessions = {}
    for quantize in ("none", "int8"):
        result = export.to_onnx(
            model,
            quantize=quantize,
            input_size=(SIZE, SIZE),
            representative_data=calibration,
            num_calibration=CALIBRATION,
            num_validation=HELD_OUT,
        )
        sessions[quantize] = (export.onnx.make_session(result.content, threads, spinning=False), result)
    return sessions


def onnx_runner(session, batch):
    x = images(batch).numpy()
    return lambda: session.run(None, {"images": x})


def train_step_runner(model, batch, jit_compile):
    from training.experiments import get_experiment, override
    from training.model import compile_model

    experiment = override(
        get_experiment("sknet50_imagenet"), [f"batch_size={batch}", f"jit_compile={jit_compile}"]
    )
    compile_model(model, experiment, steps_per_epoch=1000)
    x = images(batch)
    y = tf.one_hot(np.random.default_rng(0).integers(0, 1000, batch), 1000)
    model.make_train_function()
    data = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    return lambda: model.train_function(data)


def inference_runners(batch, models, litert, timm):
    """{row name: runner} of every inference mode at `batch`."""
    x = images(batch)
    sknet = models["sknet"]
    runners = {
        "SKNet-50 Keras predict": lambda: sknet.predict(x, batch_size=batch, verbose=0),
        # keras.Model's own loop (a tf.data pipeline per call), which ZooModel.predict skips.
        "SKNet-50 Keras predict, Keras' own loop": lambda: keras.Model.predict(
            sknet, x, batch_size=batch, verbose=0
        ),
        "SKNet-50 Keras predict_on_batch": lambda: sknet.predict_on_batch(x),
        "SKNet-50 Keras model(x) (eager call)": lambda: sknet(x).numpy(),
        "SKNet-50 Keras graph (model in tf.function)": graph_runner(sknet, batch),
        "SKNet-50 Keras frozen (export.frozen_function)": lambda: models["frozen"](x).numpy(),
    }
    if "xla" in models:
        runners["SKNet-50 Keras XLA"] = graph_runner(sknet, batch, jit_compile=True)
    runners["ResNeXt-50 Keras graph"] = graph_runner(models["resnext"], batch)
    runners["SE-ResNeXt-50 Keras graph"] = graph_runner(models["seresnext"], batch)
    runners[f"SKNet-50 Keras graph {models['policy']}"] = graph_runner(models["mixed"], batch)
    for label, serving in models["saved"].items():
        runners[label] = lambda s=serving: [v.numpy() for v in s(images=x).values()]
    for label, worker in models["fresh"].items():
        runners[label] = worker.runner(f"{batch}")
    if batch == 1:
        for quantize, label in (("none", "float32"), ("int8", "int8")):
            runners[f"SKNet-50 LiteRT {label}"] = litert[quantize][0]
    for quantize, (session, _) in models["onnx"].items():
        runners[f"SKNet-50 ONNX Runtime {'float32' if quantize == 'none' else quantize}"] = onnx_runner(
            session, batch
        )
    if timm:
        for name in TIMM_MODELS:
            runners[f"timm {name} eager"] = timm.runner(f"{name}/infer/{batch}")
    return runners


# TensorFlow fixes its CPU kernel library (oneDNN or Eigen) at import, so the SKNet-50 rows
# of the other library run in a worker process (`SKNET50_WORKER`) started with
# TF_ENABLE_ONEDNN_OPTS flipped, timed in the same interleaved rounds.
def serve_sknet50():
    """Worker loop: SKNet-50 graph inference and trainer steps on this process's kernels."""
    from benchmarks.workers import serve

    runners = {}

    def run(key):
        mode, batch = key.split("/")
        if key not in runners:  # built on first use (a warm-up call)
            if mode == "demo":
                runners[key] = demo_step_runner(int(batch))
            else:
                build = graph_runner if mode == "infer" else lambda m, b: train_step_runner(m, b, False)
                runners[key] = build(SKNet50(), int(batch))
        runners[key]()

    serve(run, {"kernels": kernel_library(), "platform": platform.describe()})


def demo_step_runner(batch):
    """A trainer step of the scales_demo experiment (`bash scripts/demo.sh`'s model and recipe), 64 x 64."""
    from training.experiments import get_experiment, override
    from training.model import build_model, compile_model

    experiment = override(get_experiment("scales_demo"), [f"batch_size={batch}"])
    model = build_model(experiment, num_classes=10)
    compile_model(model, experiment, steps_per_epoch=100)
    x = tf.constant(np.random.default_rng(0).uniform(-2, 2, (batch, 64, 64, 3)).astype("float32"))
    y = tf.one_hot(np.random.default_rng(1).integers(0, 10, batch), 10)
    model.make_train_function()
    data = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    return lambda: model.train_function(data)


def kernel_library():
    return "oneDNN" if platform.onednn_enabled() else "Eigen"


def start_other_kernels():
    """The worker on the kernel library this process does not run."""
    flipped = "0" if platform.onednn_enabled() else "1"
    return Worker(SKNET50_WORKER, env={platform.ONEDNN_VARIABLE: flipped})


def start_avx2_onednn():
    """On an AVX-512 CPU, a oneDNN worker limited to AVX2 (`ONEDNN_MAX_CPU_ISA`): what
    `prefer_onednn` gives an AVX2-only CPU, where TensorFlow alone would run Eigen."""
    if "avx512f" not in platform.cpu_features():
        return None
    return Worker(SKNET50_WORKER, env={platform.ONEDNN_VARIABLE: "1", "ONEDNN_MAX_CPU_ISA": "AVX2"})


# A served SavedModel: loaded by plain TensorFlow in a process that never imports keras_sknet
# (as TF Serving would), under TensorFlow's own kernel defaults. Argument: the SavedModel's path.
SAVED_MODEL_WORKER = """
import sys
import numpy as np
import tensorflow as tf
from benchmarks.workers import serve
serving = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
images = {}
def run(batch):
    if batch not in images:
        images[batch] = tf.constant(np.random.default_rng(0).normal(size=(int(batch), 224, 224, 3)), tf.float32)
    [v.numpy() for v in serving(images=images[batch]).values()]
serve(run, {"tensorflow": tf.__version__})
"""

AVX2_GRAPH = "SKNet-50 Keras graph, TF oneDNN kernels limited to AVX2 (worker)"
AVX2_STEP = "SKNet-50 Keras trainer step, TF oneDNN kernels limited to AVX2 (worker)"
TIMM_MODELS = ("skresnext50_32x4d", "resnext50_32x4d")
TIMM_SK = "timm skresnext50_32x4d eager"
PEAK = "float32 matmul 4096^3 (peak)"
GRAPH = "SKNet-50 Keras graph (model in tf.function)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds at batch 1")
    parser.add_argument("--batch16-rounds", type=int, default=5)
    parser.add_argument("--train-rounds", type=int, default=5)
    parser.add_argument(
        "--no-xla", action="store_true", help="skip XLA (slow on CPU; its training step takes minutes)"
    )
    parser.add_argument(
        "--no-other-kernels",
        action="store_true",
        help="skip the SKNet-50 rows on TensorFlow's other CPU kernel library (oneDNN / Eigen)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    threads = os.cpu_count()
    gpu = bool(tf.config.list_physical_devices("GPU"))
    timm = start_timm(threads)
    print(f"timm: {timm.versions if timm else 'not installed'}", flush=True)
    other = None if args.no_other_kernels or gpu else start_other_kernels()
    avx2 = start_avx2_onednn() if other else None
    ours, theirs = kernel_library(), other.info["kernels"] if other else None
    print(f"kernels: {ours} here" + (f", {theirs} in a worker" if other else ""), flush=True)

    sknet = SKNet50()
    distinct_batch_norm_offsets(sknet)  # as a trained model's: its ONNX int8 graph is a trained one's
    macs = count_flops(sknet) / 1e9
    litert = litert_runners(sknet, threads)  # fits the classifier first, for the int8 check
    # Mixed precision: float16 on a GPU, bfloat16 on a CPU (the same code path).
    policy = "mixed_float16" if gpu else "mixed_bfloat16"
    keras.config.set_dtype_policy(policy)
    mixed = SKNet50()
    keras.config.set_dtype_policy("float32")
    models = {
        "sknet": sknet,
        "frozen": export.frozen_function(sknet),
        "resnext": ResNeXt50(),
        "seresnext": SEResNeXt50(),
        "policy": policy,
        "mixed": mixed,
        "saved": {},
        "fresh": {},
        "onnx": onnx_runners(sknet, threads),  # after litert_runners: its classifier is fitted
    }
    if not args.no_xla:
        models["xla"] = True
    rows = {}  # (what, batch) -> (median, p90)
    with tempfile.TemporaryDirectory() as tmp:
        for freeze, label in ((False, "SKNet-50 SavedModel"), (True, "SKNet-50 SavedModel frozen")):
            path = os.path.join(tmp, label.replace(" ", "_"))
            export.to_saved_model(sknet, path, freeze=freeze)
            models["saved"][label] = tf.saved_model.load(path).signatures["serving_default"]
            models["fresh"][f"{label} in a fresh process"] = Worker(SAVED_MODEL_WORKER, args=[path])
        for batch, rounds in ((1, args.rounds), (16, args.batch16_rounds)):
            runners = inference_runners(batch, models, litert, timm)
            if batch == 16:
                runners[PEAK] = matmul_runner()
                if other:
                    runners[f"{GRAPH}, TF {theirs} kernels (worker)"] = other.runner("infer/16")
                if avx2:
                    runners[AVX2_GRAPH] = avx2.runner("infer/16")
            print(f"batch {batch}: {len(runners)} runners, {rounds} interleaved rounds", flush=True)
            times = interleaved_timeit(runners, rounds=rounds, block_seconds=0.3 if batch == 1 else 0.0)
            for what, value in times.items():
                rows[(what, batch)] = value
                print(f"  {what}: {1000 * value[0]:.1f} ms", flush=True)
    peak = 4096**3 / rows.pop((PEAK, 16))[0] / 1e9

    keras.backend.clear_session()
    training_runners = {"SKNet-50 Keras trainer step": train_step_runner(SKNet50(), 16, False)}
    if timm:
        training_runners["timm skresnext50_32x4d eager step"] = timm.runner("skresnext50_32x4d/train/16")
    if other:
        training_runners[f"SKNet-50 Keras trainer step, TF {theirs} kernels (worker)"] = other.runner(
            "train/16"
        )
    if avx2:
        training_runners[AVX2_STEP] = avx2.runner("train/16")
    training = interleaved_timeit(training_runners, rounds=args.train_rounds, block_seconds=0.0, warmup=1)
    if not args.no_xla:
        # Minutes per step on CPU: timed once after the compiling step, outside the rounds.
        keras.backend.clear_session()
        training["SKNet-50 Keras trainer step + XLA"] = timeit(
            train_step_runner(SKNet50(), 16, True), 1, warmup=1
        )
    for what, (median, _) in training.items():
        print(f"{what}: {median:.2f} s", flush=True)
    if timm:
        timm.close()
    for worker in (other, avx2, *models["fresh"].values()):
        if worker:
            worker.close()

    lines = [
        f"Peak: {peak:.0f} GMAC/s (4096^3 float32 matmul, timed in the batch-16 rounds). "
        f"SKNet-50: {macs:.2f} GMACs per image. {threads} threads everywhere. timm: "
        + (
            f"{timm.versions['timm']} (torch {timm.versions['torch']}), in a separate process"
            if timm
            else "not installed"
        ),
        "All rows of a batch size were timed in the same interleaved rounds "
        f"({args.rounds} at batch 1, {args.batch16_rounds} at batch 16), so their ratios share the machine's drift.",
        "",
        "| inference | batch | median ms | p90 ms | images/s | vs timm SKNet-50 | GMAC/s (% of peak) |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in (1, 16):
        reference = rows.get((TIMM_SK, batch))
        for (what, b), (median, p90) in rows.items():
            if b != batch:
                continue
            ratio = f"{reference[0] / median:.2f}x" if reference else "-"
            achieved = (
                f"{macs * batch / median:.0f} ({100 * macs * batch / median / peak:.0f}%)"
                if "SKNet" in what or "skresnext" in what
                else ""
            )
            lines.append(
                f"| {what} | {batch} | {1000 * median:.1f} | {1000 * p90:.1f} | {batch / median:.1f} | {ratio} | {achieved} |"
            )
    overhead = {b: rows[(GRAPH, b)][0] / rows[("ResNeXt-50 Keras graph", b)][0] for b in (1, 16)}
    timm_overhead = ""
    if timm:
        own = [rows[(TIMM_SK, b)][0] / rows[("timm resnext50_32x4d eager", b)][0] for b in (1, 16)]
        timm_overhead = f" (timm's own: {own[0]:.2f}x / {own[1]:.2f}x)"
    lines += [
        "",
        f"SK overhead over our ResNeXt-50 (graph mode): {overhead[1]:.2f}x at batch 1, "
        f"{overhead[16]:.2f}x at batch 16{timm_overhead}",
        "",
        "| training step, batch 16 | median s | images/s | vs timm |",
        "|---|---|---|---|",
    ]
    reference = training.get("timm skresnext50_32x4d eager step")
    for what, (median, _) in training.items():
        ratio = f"{reference[0] / median:.2f}x" if reference else "-"
        lines.append(f"| {what} | {median:.2f} | {16 / median:.1f} | {ratio} |")
    if other:
        # Eigen over oneDNN, whichever this process runs (issue 13's targets: >= 0.7x, >= 0.5x).
        worker_graph = rows[(f"{GRAPH}, TF {theirs} kernels (worker)", 16)][0]
        worker_step = training[f"SKNet-50 Keras trainer step, TF {theirs} kernels (worker)"][0]
        here_graph, here_step = rows[(GRAPH, 16)][0], training["SKNet-50 Keras trainer step"][0]
        if ours == "oneDNN":
            infer_ratio, train_ratio = here_graph / worker_graph, here_step / worker_step
        else:
            infer_ratio, train_ratio = worker_graph / here_graph, worker_step / here_step
        lines += [
            "",
            f"TensorFlow kernels: {ours} in this process, {theirs} in the worker. Eigen speed as a "
            f"fraction of oneDNN's, SKNet-50 at batch 16: inference (graph) {infer_ratio:.2f}x, "
            f"training step {train_ratio:.2f}x.",
        ]
        if avx2:
            eigen_graph = worker_graph if theirs == "Eigen" else here_graph
            eigen_step = worker_step if theirs == "Eigen" else here_step
            lines += [
                "",
                "On a CPU with AVX2 only TensorFlow alone runs Eigen; importing keras_sknet first runs oneDNN "
                "(here limited to AVX2 by ONEDNN_MAX_CPU_ISA=AVX2, Eigen being the same AVX build on every "
                "x86 CPU). oneDNN-AVX2 speed-up over Eigen, SKNet-50 at batch 16: inference (graph) "
                f"{eigen_graph / rows[(AVX2_GRAPH, 16)][0]:.2f}x, training step "
                f"{eigen_step / training[AVX2_STEP][0]:.2f}x.",
            ]
    lines += ["", "int8 check: " + str(litert["int8"][1].checks[0])]
    if models["onnx"]:
        import onnxruntime
        import tf2onnx

        lines.append(
            f"ONNX Runtime {onnxruntime.__version__} (CPU provider, tf2onnx {tf2onnx.__version__}, opset "
            f"{models['onnx']['none'][1].opset}); int8 check: {models['onnx']['int8'][1].checks[0]}"
        )
        if timm:
            ratio = rows[(TIMM_SK, 1)][0] / rows[("SKNet-50 ONNX Runtime float32", 1)][0]
            lines.append(f"ONNX Runtime float32 at batch 1: {ratio:.2f}x timm eager (target >= 1.5x)")
    if not gpu:
        lines += [
            "",
            "No GPU on this machine: the rows above are CPU only (mixed precision as bfloat16). "
            "keras_sknet models are channels-last only, so there is no channels-first row.",
        ]
    print("\n".join(lines))
    if not args.no_write:
        # One table per instruction-set class ("AVX-512", "AVX2"), without the extensions.
        isa = platform.vector_isa().split(" (")[0]
        append_markdown(f"Peers: SKNet-50 vs timm and our baselines (bench_peers.py, {isa})", lines)


if __name__ == "__main__":
    main()
