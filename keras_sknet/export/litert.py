"""Running and inspecting TFLite flatbuffers with LiteRT (`ai_edge_litert`).

`tf.lite.Interpreter` is deprecated; exports are checked with the runtime that
devices use. These helpers read what a flatbuffer contains (its operators, and
whether any is a Flex/custom op), run it on a batch of images, and report how
much of it the XNNPACK delegate took.
"""

import collections

import numpy as np


def _import_litert():
    try:
        from ai_edge_litert import interpreter as litert
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as error:
        raise ImportError(
            "Verifying TFLite exports needs LiteRT: pip install 'keras-sknet[export]' (ai-edge-litert)"
        ) from error
    return litert, schema


def operator_counts(content):
    """Counts the operators of a TFLite flatbuffer by name.

    Builtin operators appear under their TFLite names (`"CONV_2D"`,
    `"DEPTHWISE_CONV_2D"`, ...); custom operators (Flex ops included) as
    `"CUSTOM:<name>"`, e.g. `"CUSTOM:FlexConv2D"`.

    Args:
        content: the flatbuffer, `bytes`.

    Returns:
        A `collections.Counter` of operator names over every subgraph.

    Example:
        >>> operator_counts(open("model.tflite", "rb").read())["CONV_2D"]
        37
    """
    _, schema = _import_litert()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    counts = collections.Counter()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            op_code = model.operatorCodes[op.opcodeIndex]
            # Codes above 127 live in builtinCode; deprecatedBuiltinCode keeps the old int8 field.
            code = max(op_code.builtinCode, op_code.deprecatedBuiltinCode)
            if code == schema.BuiltinOperator.CUSTOM:
                custom = op_code.customCode
                counts[f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"] += 1
            else:
                counts[names.get(code, str(code))] += 1
    return counts


def grouped_conv_count(content):
    """How many CONV_2D operators of a flatbuffer are grouped (filter depth < input depth)."""
    _, schema = _import_litert()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    count = 0
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            op_code = model.operatorCodes[op.opcodeIndex]
            if max(op_code.builtinCode, op_code.deprecatedBuiltinCode) != schema.BuiltinOperator.CONV_2D:
                continue
            input_depth = subgraph.tensors[op.inputs[0]].shape[-1]
            filter_depth = subgraph.tensors[op.inputs[1]].shape[-1]
            count += int(filter_depth < input_depth)
    return count


def make_interpreter(content, num_threads=1, xnnpack=True):
    """A LiteRT interpreter on `content`, tensors allocated.

    Args:
        content: the flatbuffer, `bytes`.
        num_threads: CPU threads.
        xnnpack: apply the default XNNPACK delegate (LiteRT's default on CPU).

    Returns:
        An `ai_edge_litert.interpreter.Interpreter`.
    """
    litert, _ = _import_litert()
    resolver = (
        litert.OpResolverType.AUTO if xnnpack else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter = litert.Interpreter(
        model_content=bytes(content), num_threads=num_threads, experimental_op_resolver_type=resolver
    )
    interpreter.allocate_tensors()
    return interpreter


def _quantize(x, detail):
    if detail["dtype"] in (np.float32, np.float16):
        return x.astype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if not scale:  # an integer input that is not quantized (uint8 images): as it is
        return x.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y, detail):
    if detail["dtype"] in (np.float32, np.float16):
        return y.astype("float32")
    scale, zero_point = detail["quantization"]
    return (y.astype("float32") - zero_point) * scale


def run_tflite(interpreter, images):
    """Runs a single-input, single-output TFLite model over `images`, batch by batch.

    The batch size is the interpreter's static one; a last partial batch is
    padded with copies of its first image and the padding's outputs dropped.
    Integer inputs and outputs are (de)quantized with their tensor's scale and
    zero point.

    Args:
        interpreter: from `make_interpreter`.
        images: float32 model input, `(N, H, W, C)` (`uint8` images for a
            model that takes them).

    Returns:
        float32 outputs, `(N, ...)`.
    """
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    batch = int(input_detail["shape"][0])
    outputs = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        count = len(chunk)
        if count < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch - count, axis=0)])
        interpreter.set_tensor(input_detail["index"], _quantize(chunk, input_detail))
        interpreter.invoke()
        outputs.append(_dequantize(interpreter.get_tensor(output_detail["index"]), output_detail)[:count])
    return np.concatenate(outputs)


XnnpackCoverage = collections.namedtuple("XnnpackCoverage", ["partitions", "outside"])


def xnnpack_coverage(interpreter):
    """Which part of the graph the XNNPACK delegate runs.

    A delegate replaces the nodes it takes by one node per connected
    partition. Walking back from the outputs through the execution plan (a
    tensor a delegate produces comes from the delegate; any other from its
    original node) finds the nodes that still run on LiteRT's own kernels.

    Args:
        interpreter: from `make_interpreter(..., xnnpack=True)`.

    Returns:
        `XnnpackCoverage(partitions, outside)`: the number of XNNPACK
        partitions, and a `Counter` of the operators left outside it (empty
        when XNNPACK takes the whole graph).
    """
    ops = interpreter._get_ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    producer = {}
    for op in ops:
        if op["op_name"] != "DELEGATE":
            for tensor in op["outputs"]:
                producer.setdefault(tensor, op)
    for op in delegates:  # a delegate's outputs are no longer made by the nodes it replaced
        for tensor in op["outputs"]:
            producer[tensor] = op
    outside = collections.Counter()
    seen = set()
    stack = [detail["index"] for detail in interpreter.get_output_details()]
    while stack:
        op = producer.get(stack.pop())
        if op is None or op["index"] in seen:
            continue
        seen.add(op["index"])
        if op["op_name"] != "DELEGATE":
            outside[op["op_name"]] += 1
        stack.extend(t for t in op["inputs"] if t >= 0)
    return XnnpackCoverage(len(delegates), outside)
