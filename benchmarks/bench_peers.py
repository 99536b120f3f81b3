"""SKNet-50 against its peers on this machine, side by side in one run.

    python benchmarks/bench_peers.py [--repeats 10] [--no-xla] [--no-write]

Inference (224x224, batch 1 and 16): our SKNet-50 in Keras (`predict`, the
`tf.function` graph, XLA), as a SavedModel, and through LiteRT (float32 and
int8, batch 1); our ResNeXt-50 and SE-ResNeXt-50 in the same graph mode; timm's
skresnext50_32x4d and resnext50_32x4d in eager PyTorch (a subprocess: TensorFlow
and torchvision in one process can crash). Training (batch 16): one SGD step of
SKNet-50 in Keras (with and without XLA) and in timm. Achieved GMAC/s beside the
peak measured with a 4096^3 float32 matmul. GPU rows when a GPU is present.
Prints the tables and appends them to BENCHMARKS.md.

Targets of the benchmarks issue (ratios in one run): Keras inference >= 1.5x timm
at batch 1 and >= 2x at batch 16; LiteRT float32 >= 2.5x, int8 >= 4x; training
>= 1.3x timm; SK overhead over ResNeXt-50 <= 1.25x; SKNet-50 at batch 16 >= 60% of
the matmul peak.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import append_markdown, timeit  # noqa: E402
from keras_sknet import export  # noqa: E402
from keras_sknet.applications import ResNeXt50, SEResNeXt50, SKNet50  # noqa: E402
from keras_sknet.utils import count_flops  # noqa: E402
from keras_sknet.utils.synthetic import class_images, fit_classifier  # noqa: E402

SIZE = 224
TIMM_SCRIPT = """
import json, statistics, sys, time
import torch, timm
threads, repeats, train_repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
def median_p90(fn, n):
    fn(); fn()
    times = []
    for _ in range(n):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]
out = {"torch": torch.__version__, "timm": timm.__version__}
for name in ("skresnext50_32x4d", "resnext50_32x4d"):
    model = timm.create_model(name, pretrained=False).eval()
    for batch in (1, 16):
        x = torch.randn(batch, 3, 224, 224)
        with torch.inference_mode():
            out[f"{name}/infer/{batch}"] = median_p90(lambda: model(x), repeats if batch == 1 else max(3, repeats // 3))
model = timm.create_model("skresnext50_32x4d", pretrained=False).train()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
x, y = torch.randn(16, 3, 224, 224), torch.randint(0, 1000, (16,))
def step():
    optimizer.zero_grad(); loss = torch.nn.functional.cross_entropy(model(x), y); loss.backward(); optimizer.step()
out["skresnext50_32x4d/train/16"] = median_p90(step, train_repeats)
print(json.dumps(out))
"""


def peak_gmacs(repeats=5):
    """Float32 matmul 4096^3: the machine's practical multiply-add peak, in GMAC/s."""
    a = tf.random.normal((4096, 4096))
    matmul = tf.function(lambda: tf.matmul(a, a))
    median, _ = timeit(lambda: matmul().numpy(), repeats)
    return 4096**3 / median / 1e9


def images(batch):
    return tf.constant(np.random.default_rng(batch).normal(size=(batch, SIZE, SIZE, 3)).astype("float32"))


def graph_runner(model, batch, jit_compile=False):
    function = tf.function(lambda t: model(t, training=False), jit_compile=jit_compile)
    x = images(batch)
    return lambda: function(x).numpy()


def timm_results(repeats, train_repeats):
    if importlib.util.find_spec("timm") is None:
        return None
    done = subprocess.run(
        [sys.executable, "-c", TIMM_SCRIPT, str(os.cpu_count()), str(repeats), str(train_repeats)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        print(f"timm failed: {done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def train_step_runner(model, batch, jit_compile):
    from training.experiments import get_experiment, override
    from training.trainer import compile_model

    experiment = override(
        get_experiment("sknet50_imagenet"), [f"batch_size={batch}", f"jit_compile={jit_compile}"]
    )
    compile_model(model, experiment, steps_per_epoch=1000)
    x = images(batch)
    y = tf.one_hot(np.random.default_rng(0).integers(0, 1000, batch), 1000)
    model.make_train_function()
    data = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    return lambda: model.train_function(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train-repeats", type=int, default=5)
    parser.add_argument("--no-xla", action="store_true", help="skip XLA (slow on CPU)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    threads = os.cpu_count()
    gpu = bool(tf.config.list_physical_devices("GPU"))

    peak = peak_gmacs()
    print(f"peak: {peak:.0f} GMAC/s (4096^3 float32 matmul)", flush=True)
    timm = timm_results(args.repeats, args.train_repeats)
    print(f"timm: {timm}", flush=True)

    sknet = SKNet50()
    macs = count_flops(sknet) / 1e9
    rows = {}  # (what, batch) -> (median, p90)

    def record(what, batch, runner, repeats):
        rows[(what, batch)] = timeit(runner, repeats)
        print(f"{what} batch {batch}: {1000 * rows[(what, batch)][0]:.1f} ms", flush=True)

    for batch in (1, 16):
        repeats = args.repeats if batch == 1 else max(3, args.repeats // 3)
        x = images(batch).numpy()
        record(
            "SKNet-50 Keras predict",
            batch,
            lambda x=x, b=batch: sknet.predict(x, batch_size=b, verbose=0),
            repeats,
        )
        record("SKNet-50 Keras graph (default)", batch, graph_runner(sknet, batch), repeats)
        if not args.no_xla:
            record(
                "SKNet-50 Keras XLA",
                batch,
                graph_runner(sknet, batch, jit_compile=True),
                max(3, repeats // 3),
            )
        for name, build in (
            ("ResNeXt-50 Keras graph", ResNeXt50),
            ("SE-ResNeXt-50 Keras graph", SEResNeXt50),
        ):
            record(name, batch, graph_runner(build(), batch), repeats)
            keras.backend.clear_session()

    # Mixed precision: float16 on a GPU, bfloat16 on a CPU (the same code path).
    policy = "mixed_float16" if gpu else "mixed_bfloat16"
    keras.config.set_dtype_policy(policy)
    mixed = SKNet50()
    keras.config.set_dtype_policy("float32")
    for batch in (1, 16):
        record(
            f"SKNet-50 Keras graph {policy}",
            batch,
            graph_runner(mixed, batch),
            args.repeats if batch == 1 else max(3, args.repeats // 3),
        )
    del mixed

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sknet50")
        export.to_saved_model(sknet, path)
        serving = tf.saved_model.load(path).signatures["serving_default"]
        for batch in (1, 16):
            x = images(batch)
            record(
                "SKNet-50 SavedModel",
                batch,
                lambda s=serving, x=x: [v.numpy() for v in s(x).values()],
                args.repeats if batch == 1 else max(3, args.repeats // 3),
            )
    litert = litert_runners(sknet, threads)
    for quantize, label in (("none", "float32"), ("int8", "int8")):
        record(f"SKNet-50 LiteRT {label}", 1, litert[quantize][0], args.repeats)

    training = {}
    for jit in (False,) + (() if args.no_xla else (True,)):
        keras.backend.clear_session()
        step = train_step_runner(SKNet50(), 16, jit)
        training[jit] = timeit(step, args.train_repeats if not jit else 2, warmup=1)
        print(f"SKNet-50 Keras train step xla={jit}: {training[jit][0]:.2f} s", flush=True)

    def timm_row(key):
        return None if timm is None else timm[key]

    lines = [
        f"Peak: {peak:.0f} GMAC/s (4096^3 float32 matmul). SKNet-50: {macs:.2f} GMACs per image. "
        f"{threads} threads everywhere. timm: "
        + (f"{timm['timm']} (torch {timm['torch']})" if timm else "not installed"),
        "",
        "| inference | batch | median ms | p90 ms | images/s | vs timm SKNet-50 | GMAC/s (% of peak) |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in (1, 16):
        reference = timm_row(f"skresnext50_32x4d/infer/{batch}")
        entries = [(what, t) for (what, b), t in rows.items() if b == batch]
        if timm:
            entries += [
                ("timm skresnext50_32x4d eager", reference),
                ("timm resnext50_32x4d eager", timm_row(f"resnext50_32x4d/infer/{batch}")),
            ]
        for what, (median, p90) in entries:
            ratio = f"{reference[0] / median:.2f}x" if reference else "-"
            achieved = (
                f"{macs * batch / median:.0f} ({100 * macs * batch / median / peak:.0f}%)"
                if "SKNet" in what or "skresnext" in what
                else ""
            )
            lines.append(
                f"| {what} | {batch} | {1000 * median:.1f} | {1000 * p90:.1f} | {batch / median:.1f} | {ratio} | {achieved} |"
            )
    overhead = {
        b: rows[("SKNet-50 Keras graph (default)", b)][0] / rows[("ResNeXt-50 Keras graph", b)][0]
        for b in (1, 16)
    }
    lines += [
        "",
        f"SK overhead over our ResNeXt-50 (graph mode): {overhead[1]:.2f}x at batch 1, {overhead[16]:.2f}x at batch 16"
        + (
            f" (timm's own: {timm_row('skresnext50_32x4d/infer/1')[0] / timm_row('resnext50_32x4d/infer/1')[0]:.2f}x"
            f" / {timm_row('skresnext50_32x4d/infer/16')[0] / timm_row('resnext50_32x4d/infer/16')[0]:.2f}x)"
            if timm
            else ""
        ),
        "",
        "| training step, batch 16 | median s | images/s | vs timm |",
        "|---|---|---|---|",
    ]
    reference = timm_row("skresnext50_32x4d/train/16")
    for jit, (median, _) in training.items():
        ratio = f"{reference[0] / median:.2f}x" if reference else "-"
        lines.append(
            f"| SKNet-50 Keras trainer step{' + XLA' if jit else ''} | {median:.2f} | {16 / median:.1f} | {ratio} |"
        )
    if reference:
        lines.append(
            f"| timm skresnext50_32x4d eager step | {reference[0]:.2f} | {16 / reference[0]:.1f} | 1.00x |"
        )
    lines += ["", "int8 check: " + str(litert["int8"][1].checks[0])]
    if not gpu:
        lines += [
            "",
            "No GPU on this machine: the rows above are CPU only (mixed precision as bfloat16). "
            "keras_sknet models are channels-last only, so there is no channels-first row.",
        ]
    print("\n".join(lines))
    if not args.no_write:
        append_markdown("Peers: SKNet-50 vs timm and our baselines (bench_peers.py)", lines)


if __name__ == "__main__":
    main()
