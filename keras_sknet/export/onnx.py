"""ONNX export (float32 and static int8), verified on ONNX Runtime before it is written.

The converter is tf2onnx on Keras' TensorFlow backend, the path Keras' own
`model.export(format="onnx")` takes there, called directly so that the graph
is always traced with TensorFlow's plain convolution ops: every grouped SK
path is one `tf.nn.conv2d` and becomes one ONNX `Conv` with `group`
(depthwise ones too, `group` = channels), whatever convolution path this
machine would pick for itself (on Eigen machines the default splits small
groups into pixel blocks). The portable graphs of the SavedModel and TFLite
exports put a TensorFlow `Snapshot` barrier behind each grouped convolution
(it stops grappler fusing it into an op Eigen lacks); that barrier has no
ONNX counterpart and ONNX Runtime does not need it, so it is left out here.

Measured with Keras 3.15.1, tf2onnx 1.17.0, torch 2.14.1 (docs/export.md):
both routes keep the grouped convolutions whole and match Keras, but Keras'
PyTorch route (torch.onnx's TorchScript exporter, opset 20) writes 4,918 nodes
for ShuffleNetV2 0.5x + SK (1,579 `Constant`, 726 `Cast`) where tf2onnx
writes 734. A `.keras` file saved on JAX or PyTorch loads on TensorFlow and
exports here.

Only the default ONNX domain is allowed: a node of any other domain, or a
TensorFlow op tf2onnx could not convert, fails the export. The batch
dimension is free (`"batch"`) unless `batch_size` is given.
"""

import collections
import contextlib
import logging
import os
import tempfile
import time

import numpy as np

from keras_sknet.export import common, serving
from keras_sknet.utils.validation import check_positive_int

QUANTIZATIONS = ("none", "int8")
# Opsets tf2onnx 1.17 writes and ONNX Runtime >= 1.17 runs; 13 is where Squeeze/Unsqueeze
# take their axes as inputs, which tf2onnx's dynamic-batch reshapes rely on.
OPSETS = tuple(range(13, 19))
DEFAULT_OPSET = 17
# Float32 check: max |ONNX Runtime - Keras| over the largest |Keras output|.
RELATIVE_TOLERANCE = 1e-4
# int8 check: top-1 agreement with the Keras model on held-out images.
MIN_AGREEMENT = 0.98
# Name of the ONNX graph's dynamic batch dimension.
BATCH_DIM = "batch"


def _import_onnx():
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs onnx, onnxruntime and tf2onnx: pip install 'keras-sknet[onnx]' ({error})"
        ) from error
    return onnx, onnxruntime, tf2onnx


def check_opset(opset):
    """Returns `opset` (default `DEFAULT_OPSET`) if it is one of `OPSETS`, else raises ValueError."""
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or int(opset) not in OPSETS:
        raise ValueError(f"`opset` must be one of {list(OPSETS)} or None. Received: opset={opset!r}")
    return int(opset)


def operator_counts(proto):
    """Counts the nodes of an ONNX model by `domain:op_type` (`op_type` alone in the default domain).

    Args:
        proto: an `onnx.ModelProto`, or its serialized bytes.

    Returns:
        A `collections.Counter`, e.g. `{"Conv": 75, "Relu": 56, ...}`.

    Example:
        >>> operator_counts(open("model.onnx", "rb").read())["Conv"]
        75
    """
    proto = _as_proto(proto)
    return collections.Counter(
        f"{node.domain}:{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        for node in proto.graph.node
    )


def grouped_conv_count(proto):
    """How many `Conv` nodes of an ONNX model have `group` > 1 (grouped or depthwise)."""
    proto = _as_proto(proto)
    return sum(
        node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)
        for node in proto.graph.node
    )


def _as_proto(proto):
    if isinstance(proto, (bytes, bytearray)):
        onnx, _, _ = _import_onnx()
        return onnx.load_from_string(bytes(proto))
    return proto


def make_session(content, num_threads=2, spinning=True):
    """An ONNX Runtime `InferenceSession` on the CPU provider for a model's bytes.

    Args:
        content: the model's bytes.
        num_threads: ONNX Runtime's intra-op threads.
        spinning: False stops the session's threads from spinning when a run
            ends. ONNX Runtime's default (True) suits one session serving
            alone; sessions that take turns on the same cores (two models timed
            side by side, the exporter's checks) need False, or each one's
            spinning threads take the cores from the next: SKNet-50 float32 at
            batch 1 ran 55 ms alone and 91 ms taking turns with a spinning int8
            session (2 threads on 2 cores, AMD EPYC Zen 4).

    Returns:
        The `InferenceSession`.
    """
    _, ort, _ = _import_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(bytes(content), options, providers=["CPUExecutionProvider"])


def run_onnx(session, images, batch_size=None):
    """Runs a single-input, single-output ONNX model on `images`, `batch_size` at a time (None: at once).

    A fixed-batch model gets its batch size; a last partial batch is padded
    with copies of its first image and the padding's outputs dropped.
    """
    (model_input,) = session.get_inputs()
    fixed = model_input.shape[0]
    batch = fixed if isinstance(fixed, int) else (batch_size or len(images))
    outputs = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        count = len(chunk)
        if isinstance(fixed, int) and count < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch - count, axis=0)])
        outputs.append(session.run(None, {model_input.name: chunk})[0][:count])
    return np.concatenate(outputs).astype("float32")


@contextlib.contextmanager
def _quiet_tf2onnx():
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def convert(function, input_spec, output_name, opset):
    """Converts a `tf.function` of one image input to an ONNX model, named and checked.

    The input is named after `input_spec`, the output `output_name`; a free
    batch dimension is called `"batch"`; opset imports other than the default
    domain's are dropped.

    Args:
        function: a `tf.function` taking one tensor and returning one.
        input_spec: its `tf.TensorSpec` (with a name).
        output_name: the ONNX output's name.
        opset: one of `OPSETS`.

    Returns:
        The `onnx.ModelProto`.

    Raises:
        ExportError: tf2onnx failed, left an unconvertible TensorFlow op, or
            used a non-default domain.
    """
    onnx, _, tf2onnx = _import_onnx()
    try:
        with _quiet_tf2onnx():
            proto, _ = tf2onnx.convert.from_function(function, input_signature=[input_spec], opset=opset)
    except Exception as error:
        raise common.ExportError(
            f"tf2onnx failed (opset {opset}): {type(error).__name__}: {error}"
        ) from error
    schemas = {schema.name for schema in onnx.defs.get_all_schemas()}
    foreign = sorted(
        {f"{node.domain}:{node.op_type}" for node in proto.graph.node if node.domain not in ("", "ai.onnx")}
        | {
            node.op_type
            for node in proto.graph.node
            if node.domain in ("", "ai.onnx") and node.op_type not in schemas
        }
    )
    if foreign:
        raise common.ExportError(
            f"The ONNX graph has operators that are not standard ONNX (a custom domain, or a TensorFlow op tf2onnx could "
            f"not convert): {foreign}; only default-domain ONNX ops are allowed"
        )
    kept = [entry for entry in proto.opset_import if entry.domain in ("", "ai.onnx")]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)
    _rename(proto.graph, proto.graph.output[0].name, output_name)
    for value in list(proto.graph.input) + list(proto.graph.output):
        first = value.type.tensor_type.shape.dim[0]
        if not first.HasField("dim_value"):
            first.dim_param = BATCH_DIM
    try:
        onnx.checker.check_model(proto)
    except Exception as error:
        raise common.ExportError(f"The ONNX model failed onnx.checker: {error}") from error
    return proto


def _rename(graph, old, new):
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in graph.output:
        if value.name == old:
            value.name = new


def _float_graph(model, input_shape, opset, input_type):
    """The float32 ONNX graph; for `"uint8"` input with the resize, preprocessing and softmax inside."""
    import tensorflow as tf

    from keras_sknet.layers import tf_conv

    def call(images):
        return model(images, training=False)

    if input_type == "uint8":
        height, width = common.model_image_shape(model)[1:3]
        size = None if height is None or width is None else (height, width)
        call = serving.image_function(call, model, size)
    spec = tf.TensorSpec(
        input_shape, tf.uint8 if input_type == "uint8" else tf.float32, name=common.INPUT_NAME
    )
    # TensorFlow's own convolution ops: one Conv per grouped convolution, no Snapshot barrier.
    with tf_conv.convolution_path("native", gradients=False), tf_conv.explicit_same_padding():
        return convert(tf.function(call), spec, common.output_name(model), opset)


class _CalibrationReader:
    """ONNX Runtime's `CalibrationDataReader` protocol over a NumPy array of model input."""

    def __init__(self, name, images, batch_size):
        self._batches = iter(
            [{name: images[start : start + batch_size]} for start in range(0, len(images), batch_size)]
        )

    def get_next(self):
        return next(self._batches, None)


def _grouped_not_depthwise(graph):
    """Names of the `Conv` nodes with 1 < `group` and more than one input channel per group."""
    shapes = {tensor.name: tuple(tensor.dims) for tensor in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "Conv"
        and any(a.name == "group" and a.i > 1 for a in node.attribute)
        and len(shapes.get(node.input[1], ())) > 1
        and shapes[node.input[1]][1] > 1
    ]


def _x86_without_vnni(features=None):
    from keras_sknet import platform

    features = set(platform.cpu_features() if features is None else features)
    return "avx2" in features and not platform.has_vnni(features)


def int8_speed_note(features=None):
    """One line saying int8 will not pay on this CPU, or None where it may.

    On x86 without VNNI, ONNX Runtime's U8S8 convolutions multiply with
    VPMADDUBSW and VPMADDWD (VNNI: one instruction), VPMADDUBSW saturates
    16-bit sums, so the weights are quantized to 7 bits (`reduce_range`);
    the old int8 export ran slower than float32 on such CPUs and LiteRT int8
    only as fast (issue 31). An inference for this configuration, not a
    measurement (ONNX Runtime cannot be made to run a VNNI CPU as an AVX2
    one): time it on the target. Arm and CPUs that do not say their features
    get no note (not measured).
    """
    from keras_sknet import platform

    features = set(platform.cpu_features() if features is None else features)
    if _x86_without_vnni(features):
        return (
            f"int8 will not pay on this CPU ({platform.vector_isa(features)}, no VNNI): ONNX Runtime's int8 "
            "convolutions need VNNI to beat float32 (weights quantized to 7 bits here); ship float32, or time both "
            "(benchmarks/bench_onnx_int8.py)"
        )
    return None


def int8_speed(float_session, int8_session, images, rounds=5):
    """How many times faster the int8 model runs than the float32 one here, as measured, and how.

    Both run `images` (one image, or the models' fixed batch) on ONNX Runtime's CPU
    provider, interleaved: one warm-up each, then the median of `rounds` runs each.
    ONNX Runtime int8 pays on some CPUs and models and not on others (docs/export.md:
    1.6-1.8x for SKNet-50 on a Zen 4, slower for ShuffleNetV2 0.5x + SK),
    so the exporter says what it measured rather than what the CPU's features suggest.

    Args:
        float_session, int8_session: the two models' `InferenceSession`s, made with
            `make_session(..., spinning=False)`: they take turns, and a spinning
            session slows the other down (up to 1.7x here).
        images: model input; the first image (or the fixed batch) is timed.
        rounds: timed runs of each model.

    Returns:
        `(speedup, how)`: float32 time over int8 time, and e.g.
        `"batch 1, 2 threads, median of 5 runs"`.
    """
    sessions = (float_session, int8_session)
    (model_input,) = float_session.get_inputs()
    batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else 1
    feed = {model_input.name: np.resize(images[:batch], (batch,) + images.shape[1:])}
    times = [[], []]
    for round_ in range(rounds + 1):
        for session, spent in zip(sessions, times):
            start = time.perf_counter()
            session.run(None, feed)
            if round_:  # the first run of each is a warm-up
                spent.append(time.perf_counter() - start)
    float_time, int8_time = (float(np.median(spent)) for spent in times)
    threads = float_session.get_session_options().intra_op_num_threads
    return float_time / int8_time, f"batch {batch}, {threads} threads, median of {rounds} runs"


def int8_measured_note(speedup, how):
    """One line for `ExportResult.notes`: the measured int8 speed, and what to ship where it did not pay."""
    line = f"int8 ran {speedup:.2f}x the speed of float32 on this CPU ({how})"
    if speedup < 1.0:
        line += "; here float32 is faster: ship float32, or time both on the target (benchmarks/bench_onnx_int8.py)"
    return line


def quantize_int8(content, calibration, batch_size=None, features=None):
    """Static int8 quantization (QDQ, per-channel weights) of a float32 ONNX model with ONNX Runtime.

    Activations are uint8 (symmetric, min-max calibrated on `calibration`),
    weights int8 per output channel (U8S8, the pair ONNX Runtime's CPU int8
    convolutions fuse). The convolutions are quantized except the grouped
    ones with several channels per group (SKNet's 32-group 3x3 paths), which
    stay float32 like the SK attention's small fully connected layers and the
    classifier; depthwise convolutions (ShuffleNet) are quantized.
    Quantize/DequantizeLinear pairs stay around the integer ops, so the input
    and output are float32. On x86 without VNNI the weights use 7 bits
    (`reduce_range`), as ONNX Runtime advises there.

    Measured on an AMD EPYC Zen 4 (AVX-512 VNNI), ONNX Runtime 1.31.1, two
    threads, shared machine (docs/export.md, benchmarks/bench_onnx_int8.py).

    Args:
        content: the float32 model's bytes.
        calibration: float32 model input, `(N, H, W, C)`.
        batch_size: the model's fixed batch, or None (calibrate 8 at a time).
        features: CPU features as `platform.cpu_features()` returns (read
            from this machine if None); only decides `reduce_range`.

    Returns:
        The int8 model's bytes.
    """

    def settings(graph):
        from onnxruntime import quantization  # after quantized_static's check that it is installed

        return dict(
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            # uint8 activations (U8S8), not int8 (S8S8): ONNX Runtime 1.31's QDQ fusion turned
            # only 20 of SKNet-50's 69 Conv nodes into QLinearConv with int8 activations (no
            # grouped or depthwise one); the other 49 ran as DequantizeLinear -> float Conv ->
            # QuantizeLinear: float32 / int8 time 1.12x at batch 1, 0.84x at batch 16 (2 threads).
            # With uint8 all 69 fuse, and the residual Adds become QLinearAdd.
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
            # Symmetric (zero point 128), as the int8 activations before: on SKNet-50 at 224 with
            # random BatchNorm statistics and a fitted classifier (agreement 100% in float32),
            # asymmetric uint8 kept 24% top-1 agreement, symmetric uint8 80%, symmetric int8 80%
            # (ShuffleNetV2 0.5x + SK: 0.003 / 0.0065 / 0.007 max probability change, 100% each).
            extra_options={"ActivationSymmetric": True},
            # The convolutions only (nearly all the multiply-adds): the SK attention's small fully
            # connected layers and the classifier stay float32. With them in int8 the
            # probabilities of ShuffleNetV2 0.5x + SK moved by 0.006, with the convolutions alone by 1.5e-5.
            op_types_to_quantize=["Conv"],
            # SKNet's grouped 3x3 convolutions (32 groups of 4 to 32 channels) stay float32: ONNX
            # Runtime's int8 kernel for them took 117 ms of SKNet-50's batch-1 time where its float
            # kernels took 58 ms; the 1x1 convolutions went from 266 ms to 50 ms in int8. float32 /
            # int8 time: 1.74x / 1.38x at batch 1 / 16 so, 1.44x / 1.03x with them in int8 too.
            nodes_to_exclude=_grouped_not_depthwise(graph),
            # Without VNNI, ONNX Runtime's U8S8 kernels use VPMADDUBSW, whose 16-bit sums
            # saturate with 8-bit weights; 7-bit weights avoid it (ONNX Runtime's advice).
            reduce_range=_x86_without_vnni(features),
        )

    return quantized_static(content, calibration, batch_size, settings)


def quantized_static(content, calibration, batch_size, settings):
    """ONNX Runtime's static quantization of a float32 ONNX model, prepared as ONNX Runtime recommends.

    One road for `quantize_int8` and for benchmarks/bench_onnx_int8.py's other configurations.

    Args:
        content: the float32 model's bytes.
        calibration: float32 model input, `(N, H, W, C)`.
        batch_size: the model's fixed batch, or None (calibrate 8 at a time).
        settings: a function of the prepared `onnx.GraphProto` that returns
            `quantize_static`'s keyword arguments (besides the paths and the
            calibration reader).

    Returns:
        The quantized model's bytes.
    """
    onnx, _, _ = _import_onnx()
    from onnxruntime import quantization

    with tempfile.TemporaryDirectory() as tmp:
        float_path, prepared, quantized = (os.path.join(tmp, name) for name in ("f.onnx", "p.onnx", "q.onnx"))
        with open(float_path, "wb") as f:
            f.write(content)
        # Shape inference and ONNX Runtime's graph optimisations (BatchNorm folding) first,
        # as ONNX Runtime recommends: the quantizer then sees Conv -> Relu, not Conv -> BN -> Relu.
        quantization.quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
        graph = onnx.load(prepared).graph
        if batch_size is not None and len(calibration) % batch_size:
            calibration = np.resize(
                calibration, (-(-len(calibration) // batch_size) * batch_size,) + calibration.shape[1:]
            )
        reader = _CalibrationReader(graph.input[0].name, calibration, batch_size or 8)
        quantization.quantize_static(prepared, quantized, reader, **settings(graph))
        with open(quantized, "rb") as f:
            return f.read()


def optimized_operator_counts(content, level="all"):
    """The operator counts of the graph ONNX Runtime actually runs (CPU), after its optimizations.

    Args:
        content: the model's bytes.
        level: `"all"` (ORT_ENABLE_ALL, the default of an `InferenceSession`,
            with layout changes and QDQ fusion) or `"extended"`.

    Returns:
        A `collections.Counter` as `operator_counts`, e.g. `{"com.microsoft:QLinearConv": 69, ...}`.
    """
    onnx, ort, _ = _import_onnx()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(bytes(content), options, providers=["CPUExecutionProvider"])
        return operator_counts(onnx.load(options.optimized_model_filepath))


def _relative_check(reference, outputs, name, detail=""):
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    diff = float(np.max(np.abs(outputs - reference))) / max(scale, 1e-12) if outputs.size else float("nan")
    return common.Check(name, diff, RELATIVE_TOLERANCE, "<=", len(outputs), detail)


def verify_float(run, reference, images, batch_size):
    """Relative-diff checks of `run(images)` against `reference`: batched, and one image alone when the batch is free."""
    checks = [_relative_check(reference, run(images), "max relative diff")]
    if batch_size is None and len(images) > 1:
        checks.append(
            _relative_check(
                reference[:1], run(images[:1]), "max relative diff at batch 1", f"batch {len(images)} above"
            )
        )
    return checks


def to_onnx(
    model,
    path=None,
    *,
    opset=None,
    batch_size=None,
    input_size=None,
    quantize="none",
    representative_data=None,
    validation_data=None,
    num_calibration=100,
    num_validation=200,
    preprocess="imagenet",
    split=None,
    data_dir=None,
    input_type="float32",
    min_agreement=None,
    overwrite=False,
    num_threads=2,
):
    """Converts a model to ONNX, verifies it on ONNX Runtime (CPU), and writes it.

    Float32 (`quantize="none"`): ONNX Runtime's outputs must match the Keras
    model's within 1e-4 relative (max abs diff over the largest reference
    magnitude), on a batch and, when the batch is free, on one image alone.
    `"int8"`: static quantization with `onnxruntime.quantization` (QDQ, int8
    per-channel weights, uint8 activations calibrated on `representative_data`,
    grouped non-depthwise convolutions left float32; see `quantize_int8`),
    top-1 agreement >= 98% (`min_agreement`) with Keras on held-out images
    (not judged on fewer than 20 images or a model that predicts one class
    for all, as in `to_tflite`). The graph must hold
    only default-domain ONNX operators; grouped convolutions are single
    `Conv` nodes with `group`. Nothing is written if anything fails; a
    passing model is written atomically. The path is checked before any work:
    an existing file is replaced only with `overwrite=True`.

    Args:
        model: a `keras.Model`, or the path to a `.keras` file (saved on any
            backend).
        path: the `.onnx` file to write; None keeps it in memory
            (`result.content`).
        opset: the ONNX opset, one of `OPSETS` (13-18); default 17.
        batch_size: None (default: a free `"batch"` dimension) or a fixed batch.
        input_size: `(height, width)`; default the model's (a model that takes
            any size keeps free height and width, and is checked at 64x64).
        quantize: `"none"` (float32) or `"int8"`.
        representative_data, validation_data, num_calibration, num_validation,
        preprocess, split, data_dir: the images for calibration and the
            checks, as in `to_tflite`.
        input_type: `"float32"` (default: model input, the output of
            `preprocess_input`) or `"uint8"`: the model takes `uint8` RGB
            images of any size `(N, H, W, 3)`, resizes them to its input size
            (bilinear), preprocesses them and returns probabilities, all in
            the graph (see `keras_sknet.export.serving`); checked against
            Keras on `preprocess_input` of the same images.
        min_agreement: the least top-1 agreement of `"int8"`, a fraction in
            [0, 1]; default `MIN_AGREEMENT` (0.98).
        overwrite: replace an existing file at `path`.
        num_threads: ONNX Runtime threads for the checks.

    Returns:
        An `ExportResult` (`format="onnx"`, `opset`, `operators`, `content`;
        for int8, `notes` gives int8's speed over float32 as measured here
        (`int8_speed`), says to ship float32 where int8 was slower, and on an
        x86 CPU without VNNI says int8 will not pay there; the summary and
        the CLI print them).

    Raises:
        ValueError: bad arguments or bad data (nothing is converted).
        FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError:
            `path` exists (without `overwrite`) or cannot be written (checked
            before any work).
        ImportError: onnx, onnxruntime or tf2onnx is missing (the `onnx` extra).
        ExportError: the converter failed or left non-standard operators.
        VerificationError: a check failed (nothing is written).

    Example:
        >>> result = to_onnx(ShuffleNetV2SK(0.5), "shufflenet_sk.onnx")
        >>> session = onnxruntime.InferenceSession(result.path)
        >>> probabilities = session.run(None, {"images": preprocess_input(images)})[0]
    """
    quantize = common.check_quantization(quantize, QUANTIZATIONS)
    opset = check_opset(opset)
    input_type = serving.check_input_type(input_type, preprocess)
    min_agreement = common.check_min_agreement(min_agreement, quantize, ("int8",), MIN_AGREEMENT)
    if path is not None:
        path = common.check_output_file(path, ".onnx", overwrite, model, quantize)
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    check_positive_int("num_calibration", num_calibration)
    check_positive_int("num_validation", num_validation)
    input_size = common.check_input_size(input_size)
    _import_onnx()
    model = common.load_model(model)
    model, input_shape = common.model_with_input(model, batch_size, input_size)
    data_args = dict(preprocess=preprocess, split=split, data_dir=data_dir)
    check_shape = common.verification_shape(input_shape)
    calibration, images = common.check_images(
        quantize,
        ("none",),
        check_shape,
        representative_data,
        validation_data,
        (num_calibration, num_validation),
        data_args,
        raw=input_type == "uint8",
    )
    if quantize == "none" and batch_size is not None:
        images = np.resize(images, (batch_size,) + images.shape[1:])
    if input_type == "uint8":  # any size in, resized to the model's inside
        input_shape = (input_shape[0], None, None, input_shape[3])

    proto = _float_graph(model, input_shape, opset, input_type)
    content = float_content = proto.SerializeToString()
    if quantize == "int8":
        try:
            content = quantize_int8(content, calibration, batch_size)
        except Exception as error:
            raise common.ExportError(f"ONNX Runtime's int8 quantization failed: {error}") from error
    session = make_session(content, num_threads, spinning=False)  # it takes turns in int8_speed
    if input_type == "uint8":
        reference = serving.reference_outputs(model, images)
    else:
        reference = common.keras_outputs(model, images)
    if quantize == "none":
        checks = verify_float(lambda x: run_onnx(session, x), reference, images, batch_size)
    else:
        checks = [common.agreement_check(reference, run_onnx(session, images, 16), min_agreement)]
        checks[0].detail += f"; calibrated on {len(calibration)}"
    common.raise_if_failed(checks, f"ONNX ({quantize})")
    notes = []
    if quantize == "int8":
        notes = [
            int8_speed_note(),
            # The int8 session of the checks, beside a float32 one made the same way.
            int8_measured_note(
                *int8_speed(make_session(float_content, num_threads, spinning=False), session, images)
            ),
        ]
    if path is not None:
        common.write_file_atomically(path, content, overwrite)
    return common.ExportResult(
        "onnx",
        quantize,
        path,
        len(content),
        input_shape,
        checks,
        operator_counts(content),
        content=content,
        opset=opset,
        input_type=input_type,
        notes=tuple(filter(None, notes)),
    )
