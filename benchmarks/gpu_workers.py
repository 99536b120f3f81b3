"""The timing processes of the GPU check (benchmarks/gpu_check.sh): one framework per process.

    python -m benchmarks.gpu_workers FRAMEWORK --rows ROWS_JSON --results FILE --deadline EPOCH
        [--tiny] [--variants eager,channels_last]

FRAMEWORK is `keras-jax` (KERAS_BACKEND=jax), `keras-torch` (KERAS_BACKEND=torch) or `timm`.
A process can hold one Keras backend only, so each runs apart; benchmarks.gpu_check starts them
one after the other and kills one that outlives its share of the time budget.

Each row is `[model, task, batch, dtype]` (model "sknet50" or "resnext50", task "infer" or
"train", dtype "float32" or "mixed_bfloat16"), in priority order. The process measures them in
that order and appends one JSON line per row and variant to FILE as soon as it has it, so that
a kill loses only the row in flight. A row whose estimated cost (compilation included) no longer
fits before the deadline is recorded as skipped, and the next, cheaper rows still get their try.

How each framework runs a row:
- keras-jax: `model.stateless_call` under `jax.jit` (XLA); the training step is one jitted
  function (forward, cross-entropy on float32 logits, gradients, SGD with momentum through
  `optimizer.stateless_apply`) with its state donated, as `model.fit` runs it on JAX.
- keras-torch: the model called under `torch.no_grad()`; training through `train_on_batch`
  (Keras' own PyTorch training step, eager).
- timm: `timm.create_model` (same architectures: skresnext50_32x4d is the paper's SKNet-50),
  variant "eager" (NCHW), "channels_last" (memory_format=torch.channels_last) or "compile"
  (channels_last under `torch.compile`); mixed bfloat16 is `torch.autocast(dtype=bfloat16)`.
  Same SGD (momentum 0.9) and cross-entropy on float32 logits.

Inputs are 224x224 (--tiny: 32x32, small nets, see MODELS) float32 images already on the
device, labels random. Time per call: warm-up calls (the first one compiles), then the median
over rounds of several calls with one device synchronisation per round (jax:
block_until_ready, torch: torch.cuda.synchronize).
"""

import argparse
import json
import os
import statistics
import sys
import time
import traceback

# name -> (Keras builder and its arguments, timm model name and its arguments), full size.
MODELS = {
    "sknet50": (("SKNet50", {}), ("skresnext50_32x4d", {})),
    "resnext50": (("ResNeXt50", {}), ("resnext50_32x4d", {})),
}
# --tiny: the same families, small enough for a CPU (XLA compiles a Keras training step on a
# CPU in seconds): Keras nets of one stage of one unit, timm's of four stages of one unit (its
# forward needs four), cardinality 4, 10 classes, 32x32 inputs.
TINY_MODELS = {
    "sknet50": (("SKNet", dict(stage_depths=(1,), block="sk", cardinality=4)), ("skresnext50_32x4d", {})),
    "resnext50": (
        ("SKNet", dict(stage_depths=(1,), block="resnext", cardinality=4)),
        ("resnext50_32x4d", {}),
    ),
}
TINY_TIMM_ARGS = dict(layers=[1, 1, 1, 1], cardinality=4)
FRAMEWORKS = ("keras-jax", "keras-torch", "timm")
TIMM_VARIANTS = ("eager", "channels_last", "compile")
DTYPES = ("float32", "mixed_bfloat16")
TASKS = ("infer", "train")

# Timing: (warm-up calls, timed rounds, seconds a round aims at, most calls a round).
GPU_TIMING = (3, 5, 0.25, 50)
TINY_TIMING = (1, 2, 0.0, 1)

# Seconds a row is expected to take before anything was measured (compilation included);
# once a row of the same kind has run, its measured time replaces the guess.
GPU_GUESSES = {
    ("keras-jax", "build"): 25.0,
    ("keras-jax", "infer"): 35.0,
    ("keras-jax", "train"): 80.0,
    ("keras-torch", "build"): 10.0,
    ("keras-torch", "infer"): 6.0,
    ("keras-torch", "train"): 8.0,
    ("timm", "build"): 3.0,
    ("timm", "infer"): 3.0,
    ("timm", "train"): 4.0,
    ("timm-compile", "infer"): 70.0,
    ("timm-compile", "train"): 150.0,
}
TINY_GUESS = 5.0


def log(message):
    """A timestamped progress line on stdout (the check's log)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def time_calls(call, sync, timing):
    """Seconds per call of `call()`, measured after warm-up.

    Args:
        call: runs one inference batch or training step; returns what `sync` waits on.
        sync: waits until the device has finished what `call` returned.
        timing: (warm-up calls, rounds, seconds per round, most calls per round).

    Returns:
        {"first_s": the first call (compilation), "median_s", "min_s", "max_s": per call over
        the rounds, "calls": calls per round, "rounds"}.
    """
    warmup, rounds, round_seconds, max_calls = timing
    start = time.perf_counter()
    sync(call())
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        sync(call())
    start = time.perf_counter()
    sync(call())
    one = time.perf_counter() - start
    calls = max(1, min(max_calls, int(round_seconds / max(one, 1e-6))))
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            result = call()
        sync(result)
        per_call.append((time.perf_counter() - start) / calls)
    return {
        "first_s": first,
        "median_s": statistics.median(per_call),
        "min_s": min(per_call),
        "max_s": max(per_call),
        "calls": calls,
        "rounds": rounds,
    }


class Budget:
    """Decides whether a row still fits before the deadline, from what similar rows cost."""

    def __init__(self, deadline, tiny):
        self.deadline = deadline
        self.tiny = tiny
        self.seen = {}

    def left(self):
        return self.deadline - time.time()

    def estimate(self, kind, task, needs_build):
        if self.tiny:
            return TINY_GUESS
        cost = self.seen.get((kind, task), GPU_GUESSES[kind, task])
        if needs_build:
            cost += self.seen.get((kind, "build"), GPU_GUESSES.get((kind, "build"), 0.0))
        return cost

    def record(self, kind, task, seconds):
        self.seen[kind, task] = seconds


class Results:
    """Appends one JSON object per line to the results file, flushed at once."""

    def __init__(self, path, framework):
        self.path = path
        self.framework = framework

    def write(self, record):
        record = {"framework": self.framework, **record}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def row(self, row, variant, status, **fields):
        model, task, batch, dtype = row
        self.write(
            dict(
                kind="row",
                model=model,
                task=task,
                batch=batch,
                dtype=dtype,
                variant=variant,
                status=status,
                **fields,
            )
        )


def error_text(error):
    """The exception's type and first line, short enough for a table cell."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:300]


def run_rows(rows, variants, results, budget, kind_of, prepare, measure):
    """Measures `rows` x `variants` in order, skipping what no longer fits before the deadline.

    Args:
        rows: [model, task, batch, dtype] lists in priority order.
        variants: the framework's variants to time for each row.
        results: a `Results`.
        budget: a `Budget`.
        kind_of: variant -> the key of its cost estimates (e.g. "timm-compile").
        prepare: (model, dtype, variant) -> an object `measure` uses, built once and cached;
            returns (object, seconds it took).
        measure: (prepared, row, variant) -> the dict of `time_calls`.
    """
    prepared = {}
    for row in rows:
        model, task, batch, dtype = row
        for variant in variants:
            key = (model, dtype, variant)
            kind = kind_of(variant)
            cost = budget.estimate(kind, task, needs_build=key not in prepared)
            left = budget.left()
            if cost > left:
                log(f"skip {model} {task} b{batch} {dtype} {variant}: needs ~{cost:.0f}s, {left:.0f}s left")
                results.row(
                    row, variant, "skipped", reason=f"time budget: needs ~{cost:.0f}s, {left:.0f}s left"
                )
                continue
            log(f"start {model} {task} b{batch} {dtype} {variant}")
            try:
                if key not in prepared:
                    try:
                        prepared[key], seconds = prepare(model, dtype, variant)
                    except Exception as error:
                        prepared[key] = error  # the next rows of this model fail at once
                        raise
                    budget.record(kind, "build", seconds)
                if isinstance(prepared[key], Exception):
                    raise prepared[key]
                start = time.time()
                timing = measure(prepared[key], row, variant)
                budget.record(kind, task, time.time() - start)
            except Exception as error:  # noqa: BLE001 - one failed row must not end the check
                traceback.print_exc()
                log(f"FAILED {model} {task} b{batch} {dtype} {variant}: {error_text(error)}")
                results.row(row, variant, "failed", reason=error_text(error))
                continue
            images_per_s = batch / timing["median_s"]
            log(
                f"done  {model} {task} b{batch} {dtype} {variant}: {timing['median_s'] * 1e3:.2f} ms/call, "
                f"{images_per_s:.1f} img/s, first call {timing['first_s']:.1f}s"
            )
            results.row(row, variant, "ok", images_per_s=images_per_s, **timing)


# ---------------------------------------------------------------------------------- Keras


def build_keras_model(model, dtype, tiny):
    """A Keras SKNet-50 / ResNeXt-50 (or its tiny stand-in) under `dtype`, logits out."""
    import keras

    from keras_sknet import applications

    keras.config.set_dtype_policy(dtype)
    (builder, arguments), _ = (TINY_MODELS if tiny else MODELS)[model]
    size = 32 if tiny else 224
    return getattr(applications, builder)(
        weights=None,
        input_shape=(size, size, 3),
        classes=10 if tiny else 1000,
        classifier_activation=None,
        name=model,
        **arguments,
    )


def keras_jax_worker(rows, results, budget, timing, tiny):
    """Keras on JAX: jitted stateless inference and training steps (XLA)."""
    from importlib.metadata import version

    import jax
    import keras
    import numpy as np

    device = jax.devices()[0]
    results.write(
        dict(
            kind="meta",
            versions={"jax": jax.__version__, "jaxlib": version("jaxlib"), "keras": keras.__version__},
            device=f"{device.platform}: {device.device_kind}"
            if device.platform == "gpu"
            else device.platform,
            precision=str(getattr(jax.config, "jax_default_matmul_precision", None) or "default"),
        )
    )
    if not tiny and device.platform != "gpu":
        raise RuntimeError(f"JAX runs on {device.platform}, not on a GPU: its CUDA plugin did not load")
    classes = 10 if tiny else 1000
    size = 32 if tiny else 224
    rng = np.random.default_rng(0)

    def prepare(model, dtype, variant):
        start = time.time()
        net = build_keras_model(model, dtype, tiny)
        infer = jax.jit(
            lambda trainable, other, x: net.stateless_call(trainable, other, x, training=False)[0]
        )
        log(f"built {model} {dtype} in {time.time() - start:.1f}s")
        return (net, infer), time.time() - start

    def measure(prepared, row, variant):
        net, infer = prepared
        _, task, batch, _ = row
        x = jax.device_put(rng.normal(size=(batch, size, size, 3)).astype("float32"))
        if task == "infer":
            trainable = [v.value for v in net.trainable_variables]
            other = [v.value for v in net.non_trainable_variables]
            return time_calls(lambda: infer(trainable, other, x), jax.block_until_ready, timing)
        y = jax.device_put(rng.integers(0, classes, batch).astype("int32"))
        step, state = keras_jax_train_step(net)
        holder = [state]

        def call():
            holder[0], loss = step(holder[0], x, y)
            return loss

        return time_calls(call, jax.block_until_ready, timing)

    run_rows(rows, ["xla"], results, budget, lambda variant: "keras-jax", prepare, measure)


def keras_jax_train_step(net):
    """A jitted SGD training step over the model's state, and a fresh copy of that state.

    The step donates its state (as `model.fit` does on JAX), so the copy keeps the model's own
    variables usable for the inference rows.
    """
    import jax
    import jax.numpy as jnp
    import keras

    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    optimizer.build(net.trainable_variables)

    def step(state, x, y):
        trainable, other, optimizer_state = state

        def loss_fn(trainable, other):
            logits, other = net.stateless_call(trainable, other, x, training=True)
            logits = keras.ops.cast(logits, "float32")
            loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            return loss, other

        (loss, other), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, other)
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        return (trainable, other, optimizer_state), loss

    def copy(variables):
        return [jnp.array(v.value, copy=True) for v in variables]

    state = (copy(net.trainable_variables), copy(net.non_trainable_variables), copy(optimizer.variables))
    return jax.jit(step, donate_argnums=0), state


def torch_device_meta(torch):
    """The torch device, its name and what float32 convolutions/matmuls run in."""
    if not torch.cuda.is_available():
        return "cpu", {"device": "cpu", "precision": "float32"}
    flags = []
    for label, get in (
        ("cudnn.allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
        ("matmul.allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
    ):
        try:
            flags.append(f"{label}={get()}")
        except Exception as error:  # noqa: BLE001 - a description only; newer torch renamed flags
            flags.append(f"{label} unknown ({error_text(error)})")
    return "cuda", {
        "device": f"cuda: {torch.cuda.get_device_name(0)}",
        "cudnn": str(torch.backends.cudnn.version()),
        "precision": ", ".join(flags),
    }


def torch_sync(torch, device):
    if device == "cuda":
        return lambda _: torch.cuda.synchronize()
    return lambda _: None


def torch_setup(torch, versions, results, tiny):
    """A PyTorch worker's start: records versions and device, checks CUDA (unless tiny).

    Returns:
        `(device, classes, image size, sync, seeded generator)`.
    """
    device, meta = torch_device_meta(torch)
    results.write(dict(kind="meta", versions=versions, **meta))
    if not tiny and device != "cuda":
        raise RuntimeError("PyTorch sees no CUDA device")
    torch.backends.cudnn.benchmark = True
    classes, size = (10, 32) if tiny else (1000, 224)
    return device, classes, size, torch_sync(torch, device), torch.Generator().manual_seed(0)


def keras_torch_worker(rows, results, budget, timing, tiny):
    """Keras on PyTorch: eager calls and Keras' own `train_on_batch`."""
    import keras
    import torch

    versions = {"torch": torch.__version__, "keras": keras.__version__}
    device, classes, size, sync, generator = torch_setup(torch, versions, results, tiny)

    def prepare(model, dtype, variant):
        start = time.time()
        net = build_keras_model(model, dtype, tiny)
        net.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=False,
        )
        log(f"built {model} {dtype} in {time.time() - start:.1f}s")
        return net, time.time() - start

    def measure(net, row, variant):
        _, task, batch, _ = row
        x = torch.randn(batch, size, size, 3, generator=generator).to(device)
        if task == "infer":

            def infer():
                with torch.no_grad():
                    return net(x, training=False)

            return time_calls(infer, sync, timing)
        y = torch.randint(0, classes, (batch,), generator=generator).to(device)
        return time_calls(lambda: net.train_on_batch(x, y), sync, timing)

    run_rows(rows, ["eager"], results, budget, lambda variant: "keras-torch", prepare, measure)


# ----------------------------------------------------------------------------------- timm


def timm_worker(rows, results, budget, timing, tiny, variants):
    """timm's models in eager PyTorch, channels_last, and under torch.compile."""
    import timm
    import torch

    versions = {"torch": torch.__version__, "timm": timm.__version__}
    device, classes, size, sync, generator = torch_setup(torch, versions, results, tiny)
    channels_last = torch.channels_last

    def prepare(model, dtype, variant):
        start = time.time()
        _, (name, arguments) = (TINY_MODELS if tiny else MODELS)[model]
        if tiny:
            arguments = {**arguments, **TINY_TIMM_ARGS}
        net = timm.create_model(name, pretrained=False, num_classes=classes, **arguments).to(device)
        if variant != "eager":
            net = net.to(memory_format=channels_last)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        forward = torch.compile(net) if variant == "compile" else net
        return (net, forward, optimizer), time.time() - start

    def measure(prepared, row, variant):
        net, forward, optimizer = prepared
        _, task, batch, dtype = row
        x = torch.randn(batch, 3, size, size, generator=generator).to(device)
        if variant != "eager":
            x = x.contiguous(memory_format=channels_last)

        def autocast():
            return torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "mixed_bfloat16")

        if task == "infer":
            net.eval()

            def infer():
                with torch.no_grad(), autocast():
                    return forward(x)

            return time_calls(infer, sync, timing)
        net.train()
        y = torch.randint(0, classes, (batch,), generator=generator).to(device)

        def train():
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                logits = forward(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
            loss.backward()
            optimizer.step()
            return loss

        return time_calls(train, sync, timing)

    def kind_of(variant):
        return "timm-compile" if variant == "compile" else "timm"

    run_rows(rows, variants, results, budget, kind_of, prepare, measure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("framework", choices=FRAMEWORKS)
    parser.add_argument("--rows", required=True, help="JSON list of [model, task, batch, dtype]")
    parser.add_argument("--results", required=True, help="JSON-lines file to append to")
    parser.add_argument("--deadline", type=float, required=True, help="Unix time to finish by")
    parser.add_argument("--tiny", action="store_true", help="small nets and inputs (CPU dry run)")
    parser.add_argument("--variants", default="eager,channels_last", help="timm variants, comma-separated")
    args = parser.parse_args(argv)
    rows = json.loads(args.rows)
    for row in rows:
        model, task, batch, dtype = row
        if model not in MODELS or task not in TASKS or dtype not in DTYPES or not int(batch) > 0:
            raise ValueError(
                f"a row is [model, task, batch, dtype] with model in {tuple(MODELS)}, task in {TASKS}, "
                f"batch > 0 and dtype in {DTYPES}. Received: {row!r}"
            )
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(TIMM_VARIANTS))
    if args.framework == "timm" and unknown:
        raise ValueError(f"--variants must be among {TIMM_VARIANTS}. Received: {args.variants!r}")
    results = Results(args.results, args.framework)
    budget = Budget(args.deadline, args.tiny)
    timing = TINY_TIMING if args.tiny else GPU_TIMING
    log(f"{args.framework}: {len(rows)} rows, {budget.left():.0f}s left")
    try:
        if args.framework == "keras-jax":
            keras_jax_worker(rows, results, budget, timing, args.tiny)
        elif args.framework == "keras-torch":
            keras_torch_worker(rows, results, budget, timing, args.tiny)
        else:
            timm_worker(rows, results, budget, timing, args.tiny, variants)
    except Exception as error:
        traceback.print_exc()
        results.write(dict(kind="error", reason=error_text(error)))
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
