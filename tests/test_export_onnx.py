"""ONNX export: float32 and int8, checked on ONNX Runtime, graphs inspected with `onnx`.

The models are the small ones of test_export.py (a one-block-per-stage SKNet at
32x32 with a fitted classifier, ShuffleNetV2 0.5x + SK at 64x64), with
randomised BatchNorm statistics. Needs the `onnx` extra; skipped without it
unless KERAS_SKNET_REQUIRE_ONNX=1 (set by scripts/test.sh, so CI fails rather
than skips).
"""

import os
import re
import types

import numpy as np
import pytest

from keras_sknet import export
from keras_sknet.applications import ShuffleNetV2, ShuffleNetV2SK, preprocess_input
from keras_sknet.export import onnx as onnx_export
from tests.helpers import randomize_batch_norms, run_as_user
from tests.test_export import CLASSES, fitted  # noqa: F401  (the module-scoped fixture)

if os.environ.get("KERAS_SKNET_REQUIRE_ONNX") == "1":
    import onnx
    import onnxruntime
else:
    onnx = pytest.importorskip("onnx", reason="needs the onnx extra: pip install -e .[onnx]")
    onnxruntime = pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install -e .[onnx]")
    pytest.importorskip("tf2onnx", reason="needs the onnx extra: pip install -e .[onnx]")


def ort_outputs(path, x):
    """ONNX Runtime on the written file, directly (independent of the exporter's own session)."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(["predictions"], {"images": x})[0]


@pytest.fixture(scope="module")
def shufflenet():
    model = ShuffleNetV2SK(0.5, input_shape=(64, 64, 3), classes=CLASSES)
    randomize_batch_norms(model, np.random.default_rng(1))
    return model


@pytest.fixture(scope="module")
def shufflenet_onnx(shufflenet, tmp_path_factory):
    """The float32 export of `shufflenet`, written to a folder of its own (converted once for two tests)."""
    folder = tmp_path_factory.mktemp("shufflenet_onnx")
    return export.to_onnx(shufflenet, folder / "shufflenet_sk.onnx"), folder


def test_float32_shufflenet_sk_one_grouped_conv_each_dynamic_batch_default_domain(
    shufflenet, shufflenet_onnx
):
    result, folder = shufflenet_onnx
    path = folder / "shufflenet_sk.onnx"
    assert result.passed and result.format == "onnx" and result.opset == onnx_export.DEFAULT_OPSET
    assert os.listdir(folder) == [path.name] and os.path.getsize(path) == result.size
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    # Only the default domain: in the opset imports and on every node.
    assert [(entry.domain, entry.version) for entry in proto.opset_import] == [("", 17)]
    assert {node.domain for node in proto.graph.node} == {""}
    # Each of the 19 SK units' two depthwise paths is one Conv with group = channels: never split.
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    groups = [next((a.i for a in node.attribute if a.name == "group"), 1) for node in convs]
    assert sum(g > 1 for g in groups) == 38 == export.onnx.grouped_conv_count(proto)
    assert "Split" not in result.operators and "Snapshot" not in result.operators
    # Named input and output, batch free.
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
    assert graph_input.name == "images" and graph_output.name == "predictions"
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 64, 64, 3]

    x = np.random.default_rng(2).normal(size=(5, 64, 64, 3)).astype("float32")
    expected = shufflenet(x, training=False).numpy()
    np.testing.assert_allclose(ort_outputs(str(path), x), expected, atol=1e-5)
    np.testing.assert_allclose(ort_outputs(str(path), x[:1]), expected[:1], atol=1e-5)
    assert "relative diff at batch 1" in result.summary()


@pytest.mark.parametrize("opset", [13, 18])
def test_opsets_and_fixed_batch(fitted, opset):  # noqa: F811
    model, images = fitted
    result = export.to_onnx(model, opset=opset, batch_size=3)
    proto = onnx.load_from_string(result.content)
    assert proto.opset_import[0].version == opset and result.input_shape == (3, 32, 32, 3)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    # Two SK units, a grouped (G=32) K3 and a dilated K5 path each.
    assert export.onnx.grouped_conv_count(result.content) == 4
    x = preprocess_input(images[:3])
    session = onnxruntime.InferenceSession(result.content, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"images": x})[0], model(x, training=False), atol=1e-5)


@pytest.fixture(scope="module")
def fitted_onnx(fitted):  # noqa: F811
    """The float32 ONNX graph of the fitted tiny SKNet (converted once for the int8 tests)."""
    return export.to_onnx(fitted[0]).content


def spins(session):
    """Whether an ONNX Runtime session's threads spin when a run ends (ONNX Runtime's default)."""
    try:
        return (
            session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") != "0"
        )
    except RuntimeError:  # not set
        return True


def test_sessions_that_take_turns_can_stop_spinning(fitted_onnx):
    assert spins(onnx_export.make_session(fitted_onnx, 2))
    assert not spins(onnx_export.make_session(fitted_onnx, 2, spinning=False))


def test_int8_static_quantization_agrees(fitted, fitted_onnx, tmp_path, monkeypatch):  # noqa: F811
    model, images = fitted
    path = tmp_path / "sknet_int8.onnx"
    timed = []  # the sessions the exporter times against each other: neither may spin
    measure = onnx_export.int8_speed
    monkeypatch.setattr(
        onnx_export, "int8_speed", lambda *args, **kw: (timed.extend(args[:2]), measure(*args, **kw))[1]
    )
    result = export.to_onnx(
        model, path, quantize="int8", representative_data=images, num_calibration=60, num_validation=100
    )
    (check,) = result.checks
    assert result.passed and check.name == "top-1 agreement" and check.images == 100
    ops = result.operators
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["Conv"]
    assert {node.domain for node in onnx.load(path).graph.node} == {""}
    float_size = len(fitted_onnx)
    assert result.size < 0.5 * float_size  # int8 weights
    held_out = preprocess_input(images[60:160])
    agree = np.mean(
        ort_outputs(str(path), held_out).argmax(-1) == model.predict(held_out, verbose=0).argmax(-1)
    )
    assert agree >= 0.98
    # The machine's own CPU features decide the note (see the no-VNNI test).
    *by_cpu, measured = result.notes
    assert by_cpu == list(filter(None, [onnx_export.int8_speed_note()]))
    assert re.fullmatch(
        r"int8 ran \d+\.\d\dx the speed of float32 on this CPU \(batch 1, 2 threads, median of 5 runs\)"
        r"(; here float32 is faster: ship float32, .*)?",
        measured,
    ), measured
    assert f"note: {measured}" in result.summary()
    assert len(timed) == 2 and not any(spins(session) for session in timed)


def run_convolutions(content):
    """(integer, float) convolutions in the graph ONNX Runtime runs, after its QDQ fusion and layout changes."""
    counts = onnx_export.optimized_operator_counts(content)
    integer = counts["com.microsoft:QLinearConv"] + counts["ConvInteger"]
    floating = sum(n for op, n in counts.items() if op.split(":")[-1] in ("Conv", "FusedConv"))
    return integer, floating


def test_int8_onnx_runtime_runs_integer_convolutions_but_the_grouped_ones(fitted, fitted_onnx):  # noqa: F811
    """uint8 activations: ONNX Runtime fuses every quantized Conv into QLinearConv (with int8 activations
    it left most as DequantizeLinear -> float Conv); the 32-group K3/K5 paths stay float by choice."""
    model, images = fitted
    x = preprocess_input(images[:60])
    float_content = fitted_onnx
    convs = export.onnx.operator_counts(float_content)["Conv"]
    content = onnx_export.quantize_int8(float_content, x, features=("avx2", "avx512f", "avx512_vnni"))
    grouped = export.onnx.grouped_conv_count(content)
    assert grouped == 4
    assert run_convolutions(content) == (convs - grouped, grouped)
    # The float graph ONNX Runtime runs has no integer convolution.
    assert run_convolutions(float_content) == (0, convs)


def test_int8_depthwise_convolutions_are_quantized(shufflenet_onnx):
    x = np.random.default_rng(3).normal(size=(16, 64, 64, 3)).astype("float32")
    float_content = shufflenet_onnx[0].content
    convs = export.onnx.operator_counts(float_content)["Conv"]
    content = onnx_export.quantize_int8(float_content, x, features=("avx2", "avx512f", "avx512_vnni"))
    assert run_convolutions(content) == (convs, 0)


def int8_weight_range(content):
    proto = onnx.load_from_string(content)
    weights = [
        onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8
    ]
    return max(int(np.abs(w.astype("int32")).max()) for w in weights if w.ndim == 4)


def test_int8_without_vnni_says_it_will_not_pay_and_uses_7_bit_weights(fitted, monkeypatch):  # noqa: F811
    from keras_sknet import platform

    model, images = fitted
    kwargs = dict(quantize="int8", representative_data=images, num_calibration=60, num_validation=100)
    monkeypatch.setattr(platform, "cpu_features", lambda: ("avx2", "fma"))
    result = export.to_onnx(model, **kwargs)
    assert result.passed
    note, measured = result.notes
    assert note.startswith("int8 will not pay on this CPU (AVX2, no VNNI)")
    assert f"note: {note}" in result.summary()
    assert int8_weight_range(result.content) <= 64  # reduce_range: 7-bit weights
    monkeypatch.setattr(platform, "cpu_features", lambda: ("avx2", "avx512f", "avx512_vnni", "fma"))
    result = export.to_onnx(model, **kwargs)
    (measured,) = result.notes  # with VNNI only what was measured
    assert result.passed and measured.startswith("int8 ran ") and "will not pay" not in result.summary()
    assert int8_weight_range(result.content) == 127
    # The float32 export never carries the note.
    monkeypatch.setattr(platform, "cpu_features", lambda: ("avx2", "fma"))
    assert export.to_onnx(model).notes == ()


@pytest.mark.parametrize(
    "features, pays",
    [
        (("avx2", "fma"), False),
        (("avx2", "avx512f", "fma"), False),
        (("avx2", "avx_vnni", "fma"), True),
        (("avx2", "avx512f", "avx512_vnni"), True),
        (("asimd", "i8mm"), True),  # not measured: no claim
        ((), True),
    ],
)
def test_int8_speed_note_by_cpu(features, pays):
    assert (onnx_export.int8_speed_note(features) is None) == pays


def test_int8_speed_is_measured_on_onnx_runtime_and_said(fitted, fitted_onnx, monkeypatch):  # noqa: F811
    """The float32 time over the int8 time, warm-ups left out, at the models' batch; and the note it makes."""
    x = preprocess_input(fitted[1][:2])
    session = onnx_export.make_session(fitted_onnx, 2)
    speedup, how = onnx_export.int8_speed(session, onnx_export.make_session(fitted_onnx, 2), x, rounds=3)
    assert np.isfinite(speedup) and speedup > 0 and how == "batch 1, 2 threads, median of 3 runs"

    clock = [0.0]

    class TimedSession:  # each run takes `costs` seconds of a fake clock, the first one `warm_up` more
        def __init__(self, batch, costs, warm_up):
            self.batch, self.costs, self.runs = batch, list(costs), 0
            self.warm_up = warm_up

        def get_inputs(self):
            return [types.SimpleNamespace(name="images", shape=[self.batch, 8, 8, 3])]

        def get_session_options(self):
            return types.SimpleNamespace(intra_op_num_threads=2)

        def run(self, outputs, feed):
            assert feed["images"].shape == (self.batch, 8, 8, 3)
            clock[0] += self.costs[self.runs] + (self.warm_up if self.runs == 0 else 0.0)
            self.runs += 1

    float_session = TimedSession(4, [9.0, 1.0, 1.0, 5.0], warm_up=100.0)
    int8_session = TimedSession(4, [9.0, 3.0, 3.0, 3.0], warm_up=100.0)
    monkeypatch.setattr(onnx_export.time, "perf_counter", lambda: clock[0])
    images = np.zeros((2, 8, 8, 3), "float32")
    speedup, how = onnx_export.int8_speed(float_session, int8_session, images, rounds=3)
    assert speedup == pytest.approx(1.0 / 3.0) and how == "batch 4, 2 threads, median of 3 runs"

    slower = onnx_export.int8_measured_note(speedup, how)
    assert slower.startswith(
        "int8 ran 0.33x the speed of float32 on this CPU (batch 4, 2 threads, median of 3"
    )
    assert "here float32 is faster: ship float32" in slower
    assert "ship float32" not in onnx_export.int8_measured_note(1.52, how)


def test_int8_check_fails_on_bad_calibration_and_writes_nothing(fitted, tmp_path):  # noqa: F811
    """Negative control: calibrated on images 100x too dark, the int8 model disagrees and is refused."""
    model, images = fitted
    path = tmp_path / "bad.onnx"
    with pytest.raises(export.VerificationError, match="top-1 agreement"):
        export.to_onnx(
            model,
            path,
            quantize="int8",
            representative_data=preprocess_input(images[:60]) * 0.01,
            validation_data=preprocess_input(images[60:160]),
            preprocess=None,
            num_calibration=60,
        )
    assert os.listdir(tmp_path) == []


def test_failed_float_check_leaves_the_old_file(fitted, tmp_path, monkeypatch):  # noqa: F811
    model, _ = fitted
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    original = onnx_export.run_onnx
    monkeypatch.setattr(onnx_export, "run_onnx", lambda session, x, batch=None: original(session, x) + 1e-3)
    with pytest.raises(export.VerificationError, match="max relative diff"):
        export.to_onnx(model, path, overwrite=True)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.onnx"]


def test_bad_arguments_are_refused_before_any_work(fitted, tmp_path, monkeypatch):  # noqa: F811
    model, _ = fitted
    monkeypatch.setattr(onnx_export, "_float_graph", lambda *args: pytest.fail("converted"))
    with pytest.raises(ValueError, match=r"`opset` must be one of \[13, .*18\].*Received: opset=12"):
        export.to_onnx(model, tmp_path / "m.onnx", opset=12)
    with pytest.raises(ValueError, match="Received: opset='17'"):
        export.to_onnx(model, opset="17")
    with pytest.raises(ValueError, match=r"`quantize` must be one of \('none', 'int8'\).*float16"):
        export.to_onnx(model, quantize="float16")
    with pytest.raises(ValueError, match=r"ending in '.onnx'.*m.tflite"):
        export.to_onnx(model, tmp_path / "m.tflite")
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        export.to_onnx(model, blocker / "sub" / "m.onnx")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        export.to_onnx(model, blocker.rename(tmp_path / "file.onnx"))
    (tmp_path / "file.onnx").rename(blocker)
    with pytest.raises(ValueError, match="`min_agreement` applies to the exports checked by top-1 agreement"):
        export.to_onnx(model, min_agreement=0.9)
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\].*Received: min_agreement=95"):
        export.to_onnx(model, quantize="int8", min_agreement=95)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not os.access(locked, os.W_OK):  # root writes anywhere
        with pytest.raises(PermissionError, match="no file can be created in"):
            export.to_onnx(model, locked / "m.onnx")
    with pytest.raises(PermissionError, match="no file can be created in '/proc'"):
        export.to_onnx(model, "/proc/m.onnx")
    with pytest.raises(ValueError, match="representative data"):
        export.to_onnx(model, quantize="int8")
    assert sorted(os.listdir(tmp_path)) == ["file", "locked"]


def test_unconvertible_tensorflow_op_is_an_export_error():
    """Negative control: the Snapshot barrier of the portable graphs has no ONNX op; the export names it."""
    import tensorflow as tf

    function = tf.function(lambda images: tf.raw_ops.Snapshot(input=images * 2.0))
    spec = tf.TensorSpec((None, 4), tf.float32, name="images")
    with pytest.raises(export.ExportError, match="not standard ONNX.*Snapshot"):
        onnx_export.convert(function, spec, "predictions", 17)
    proto = onnx_export.convert(tf.function(lambda images: images * 2.0), spec, "predictions", 17)
    assert [value.name for value in proto.graph.output] == ["predictions"]


def test_cli_onnx(fitted, tmp_path):  # noqa: F811
    model, images = fitted
    model_path = tmp_path / "best.keras"
    model.save(model_path)
    data = tmp_path / "images.npy"
    np.save(data, images[:8])

    def export_command(*args):
        return run_as_user(["-m", "keras_sknet.export", *args], cwd=tmp_path, TF_CPP_MIN_LOG_LEVEL="3")

    done = export_command(str(model_path), "--format", "onnx", "--representative-data", str(data))
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "onnx (none, opset 17)" in out and "best.onnx" in out
    x = preprocess_input(images[:4])
    np.testing.assert_allclose(
        ort_outputs(str(tmp_path / "best.onnx"), x), model(x, training=False), atol=1e-5
    )
    done = export_command(str(model_path), "--format", "onnx", "--quantize", "dynamic")
    assert done.returncode == 1 and "Received: quantize='dynamic'" in done.stderr
    done = export_command(str(model_path), "--format", "tflite", "--opset", "17")
    assert done.returncode == 1 and "--opset applies to ONNX only" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["best.keras", "best.onnx", "images.npy"]


@pytest.mark.parametrize("family", ["sknet", "shufflenet_sk"])
def test_a_model_of_any_input_size_runs_at_even_and_odd_sizes(family, tmp_path):
    # The README's fine-tuned model takes any size. Its dilated paths once reached ONNX with
    # auto_pad=SAME_UPPER, which ONNX Runtime refuses on dilated convolutions, and its strided
    # dilated paths cropped odd sizes (a modulo of a negative size, truncated by the converter).
    from keras_sknet.applications import SKNet

    if family == "sknet":
        model = SKNet((1, 1), input_shape=(None, None, 3), classes=CLASSES, min_dim=8)
    else:
        # Every kind of ShuffleNetV2SK unit (strided in each stage, then one not strided), fewer of
        # them: the bug is per unit, and the 19 units of ShuffleNetV2SK took 49 s to convert.
        model = ShuffleNetV2(
            0.5, input_shape=(None, None, 3), classes=CLASSES, attention="sk", stage_depths=(2, 1, 1)
        )
    randomize_batch_norms(model, np.random.default_rng(2))
    path = str(tmp_path / "any_size.onnx")
    assert export.to_onnx(model, path).passed
    rng = np.random.default_rng(3)
    for size in (48, 67):
        x = rng.normal(size=(2, size, size, 3)).astype("float32")
        np.testing.assert_allclose(ort_outputs(path, x), model(x, training=False), atol=1e-5)
