"""What the exporters share: the model and its input, the checks and their report, safe writes."""

import dataclasses
import os

import keras
import numpy as np

from keras_sknet.utils import files
from keras_sknet.utils import images as data_lib
from keras_sknet.utils.validation import check_positive_int

# Max abs diff against Keras of a float32 TensorFlow graph (SavedModel, frozen function).
GRAPH_TOLERANCE = 1e-4
# Name of the input of every exported signature.
INPUT_NAME = "images"
# Spatial size the checks use for a model that accepts any size.
VERIFY_SIZE = 64
# Images for the float checks when no data is given: model input drawn from N(0, 1),
# the distribution of preprocessed images.
GENERATED_IMAGES = 8
# Float checks on real data use at most this many images (outputs are compared element-wise).
FLOAT_CHECK_IMAGES = 16
# Held-out images under which a top-1 agreement check cannot judge an export.
MIN_HELD_OUT = 20
# Bytes per weight of an export, for the disk-space check (`estimated_size`).
WEIGHT_BYTES = {"none": 4, "float16": 2, "dynamic": 1, "int8": 1}
# Output name of a subclassed model (it has no output layer), as Keras' own exports name it.
DEFAULT_OUTPUT_NAME = "output_0"


def inference_graphs(portable, served=False):
    """A block in which models trace as inference graphs for export or freezing.

    Grouped and dilated convolutions get no gradient functions (a frozen graph
    cannot store them, and exports serve inference). With `portable=True`
    they are also built as `keras_sknet.layers.tf_conv.portable_conv2d`, so
    that a SavedModel written on a machine with TensorFlow's oneDNN kernels
    also runs where TensorFlow runs its Eigen kernels (CPUs without AVX-512,
    Apple silicon): grappler would otherwise fuse each grouped convolution
    with its BatchNorm into an op Eigen lacks. That costs 2-6% on oneDNN
    (docs/platforms.md); TFLite drops the barrier and is unaffected.

    With `served=True` (SavedModels, which TensorFlow runs as they are) the
    BatchNorms are a multiply and a bias add (`tf_conv.affine_batch_norm`): a
    serving process on oneDNN with an AVX2 CPU runs a convolution fused with a
    BatchNorm ten times slower at batch 1 (SKNet-50: 1052 ms against 105 ms,
    oneDNN capped at AVX2 on a Zen 4), for 5-10% elsewhere (docs/export.md).

    Args:
        portable: True for graphs that leave this process.
        served: True for graphs that TensorFlow will run without a converter.

    Returns:
        A context manager.
    """
    import contextlib

    from keras_sknet.layers import tf_conv

    stack = contextlib.ExitStack()
    stack.enter_context(tf_conv.convolution_path("portable" if portable else None, gradients=False))
    if served:
        stack.enter_context(tf_conv.affine_batch_norm())
    return stack


class ExportError(RuntimeError):
    """An export could not be produced (conversion failed, or non-builtin operators)."""


class VerificationError(ExportError):
    """An export was produced but failed its checks; nothing was written."""


@dataclasses.dataclass
class Check:
    """One verification check: `value` against `threshold` (`"<="` or `">="`).

    A check that cannot judge the export (`not_judged` says why: too few
    images, or a model that predicts one class for all of them) neither
    passes nor fails: the export is written and its summary says so.
    """

    name: str
    value: float
    threshold: float
    relation: str
    images: int
    detail: str = ""
    not_judged: str = ""
    hint: str = ""  # how to accept a result under the threshold, for the failure message

    @property
    def within(self):
        if not np.isfinite(self.value):
            return False
        return self.value <= self.threshold if self.relation == "<=" else self.value >= self.threshold

    @property
    def passed(self):
        return not self.not_judged and self.within

    @property
    def failed(self):
        return not self.not_judged and not self.within

    def __str__(self):
        value = f"{self.value:.2%}" if "agreement" in self.name else f"{self.value:.3g}"
        threshold = f"{self.threshold * 100:g}%" if "agreement" in self.name else f"{self.threshold:g}"
        verdict = f"NOT JUDGED, {self.not_judged}" if self.not_judged else "ok" if self.passed else "FAILED"
        detail = f", {self.detail}" if self.detail else ""
        return f"{self.name} = {value} ({self.relation} {threshold}: {verdict}; {self.images} images{detail})"


@dataclasses.dataclass
class ExportResult:
    """What an export produced and how it was verified.

    Attributes:
        format: `"saved_model"`, `"tflite"` or `"onnx"`.
        quantize: `"none"`, `"float16"`, `"dynamic"` or `"int8"`.
        path: where it was written (None for an in-memory TFLite export).
        size: bytes (a SavedModel: all its files).
        input_shape: the exported input shape (None = any size).
        checks: its `Check`s (passed, or not judged).
        operators: TFLite or ONNX operator counts (TFLite, ONNX).
        xnnpack: `XnnpackCoverage` of the TFLite model (TFLite only).
        content: the TFLite flatbuffer or the ONNX model's bytes (TFLite, ONNX).
        frozen: whether the weights are graph constants (SavedModel only).
        opset: the ONNX opset (ONNX only).
        input_type: `"float32"` (model input: `preprocess_input` output) or
            `"uint8"` (RGB images, preprocessing inside; see `export.serving`).
        signatures: the SavedModel's signature names (SavedModel only).
        notes: lines for people about the export, e.g. ONNX int8's measured
            speed over float32, or that int8 will not pay on this CPU.
    """

    format: str
    quantize: str
    path: str
    size: int
    input_shape: tuple
    checks: list
    operators: dict = None
    xnnpack: object = None
    content: bytes = dataclasses.field(default=None, repr=False)
    frozen: bool = False
    opset: int = None
    input_type: str = "float32"
    signatures: tuple = ()
    notes: tuple = ()

    @property
    def passed(self):
        """Whether every check passed (False if one could not judge the export)."""
        return all(check.passed for check in self.checks)

    def summary(self):
        """A few lines for people: where, how big, what was checked."""
        where = self.path if self.path else "(in memory)"
        lines = [
            f"{self.format} ({self.quantize}{', frozen' if self.frozen else ''}"
            f"{f', opset {self.opset}' if self.opset else ''}) -> {where}",
            f"  size: {self.size / 2**20:.2f} MiB ({self.size:,} bytes); input {self.input_shape} "
            + (
                "uint8 RGB images, preprocessing inside"
                if self.input_type == "uint8"
                else "float32 model input"
            ),
        ]
        if self.signatures:
            lines.append(f"  signatures: {', '.join(self.signatures)}")
        if self.xnnpack is not None:
            outside = ", ".join(f"{name} x{n}" for name, n in sorted(self.xnnpack.outside.items()))
            lines.append(
                f"  XNNPACK: {self.xnnpack.partitions} partition(s); "
                + (f"ops outside: {outside}" if outside else "the whole graph")
            )
        lines += [f"  {'NOT verified' if check.not_judged else 'verified'}: {check}" for check in self.checks]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def check_quantization(quantize, accepted):
    quantize = "none" if quantize is None else quantize
    if quantize not in accepted:
        raise ValueError(f"`quantize` must be one of {accepted}. Received: quantize={quantize!r}")
    return quantize


def load_model(model):
    """Returns `model` if it is a Keras model, else loads it from a `.keras` / `.h5` file.

    Raises:
        ValueError: no such file, or the file is not a Keras model.
    """
    if isinstance(model, keras.Model):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(
            "`model` must be a keras.Model or the path to a Keras model file (.keras). "
            f"Received: model of type {type(model).__name__}"
        )
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise ValueError(f"No model file at {path!r}" + (" (it is a folder)" if os.path.isdir(path) else ""))
    import keras_sknet.applications  # noqa: F401  (registers the layers and ZooModel for deserialisation)

    try:
        loaded = keras.saving.load_model(path, compile=False)
    except Exception as error:  # zip, h5py and Keras raise many types for a bad file
        raise ValueError(
            f"{path!r} is not a Keras model file (.keras, or legacy .h5): {type(error).__name__}: {error}"
        ) from error
    if not isinstance(loaded, keras.Model):
        raise ValueError(f"{path!r} holds a {type(loaded).__name__}, not a keras.Model")
    return loaded


def check_input_size(input_size):
    if input_size is None:
        return None
    if not isinstance(input_size, (list, tuple)) or len(input_size) != 2:
        raise ValueError(f"`input_size` must be (height, width). Received: input_size={input_size!r}")
    return tuple(check_positive_int("input_size", size) for size in input_size)


def model_image_shape(model):
    """The `(None, H, W, C)` image input of a functional, Sequential or subclassed model.

    A subclassed model has no input layer: its input is the shape it was built
    or first called with (height and width as then).
    """
    try:
        inputs = model.inputs  # functional and Sequential models
    except (AttributeError, ValueError):  # subclassed, or a Sequential not built yet
        inputs = None
    if inputs:
        if len(inputs) != 1:
            raise ValueError(
                f"Only single-input image models can be exported. Received a model with {len(inputs)} inputs"
            )
        shape = tuple(inputs[0].shape)
    else:
        built = (model.get_build_config() or {}).get("input_shape")
        if not isinstance(built, (list, tuple)) or not all(d is None or isinstance(d, int) for d in built):
            raise ValueError(
                f"Model {model.name!r} has no input shape yet: call it once on images (`model(images)`) or "
                "build it (`model.build((None, height, width, 3))`) before exporting"
            )
        shape = (None, *built[1:])
    if len(shape) != 4 or shape[-1] is None:
        raise ValueError(f"Expected a model on images (batch, H, W, C). Received input shape {shape}")
    return (None, *shape[1:])


def output_name(model):
    """The name of an export's output: the model's output layer (`"predictions"`, `"avg_pool"`, ...).

    A functional model's output name, a Sequential model's last layer, and
    `DEFAULT_OUTPUT_NAME` for a subclassed model (no output layer).
    """
    names = getattr(model, "output_names", None)  # functional models only
    if names:
        return names[0]
    if isinstance(model, keras.Sequential) and model.layers:
        return model.layers[-1].name
    return DEFAULT_OUTPUT_NAME


def model_with_input(model, batch_size, input_size):
    """The model and its export input shape `(batch, H, W, C)`.

    A functional model built for another spatial size is rebuilt from its
    config with the new input (same weights): every model of the zoo pools
    globally.
    """
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):  # subclassed: its call decides
        outputs = None
    if outputs is not None and len(outputs) != 1:
        raise ValueError(
            f"Only single-output image models can be exported. Received a model with {len(outputs)} outputs"
        )
    shape = model_image_shape(model)
    height, width = shape[1:3]
    if input_size is not None and (height, width) != input_size:
        if height is not None or width is not None:
            model = _rebuild_with_input(model, input_size + (shape[-1],))
        height, width = input_size
    return model, (batch_size, height, width, shape[-1])


def _rebuild_with_input(model, image_shape):
    try:
        config = model.get_config()
        inputs = [layer for layer in config["layers"] if layer["class_name"] == "InputLayer"]
        inputs[0]["config"]["batch_shape"] = [None, *image_shape]
        rebuilt = model.__class__.from_config(config)
        rebuilt.set_weights(model.get_weights())
    except Exception as error:
        raise ValueError(
            f"Could not rebuild model {model.name!r} for input size {image_shape[:2]} (its input is "
            f"{model_image_shape(model)}): {error}. Export at the model's own size, or build it with "
            "input_shape=(None, None, 3)."
        ) from error
    return rebuilt


def keras_outputs(model, images, batch_size=32):
    """The Keras model's inference outputs on `images` (float32 NumPy)."""
    outputs = [
        keras.ops.convert_to_numpy(model(images[start : start + batch_size], training=False))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs).astype("float32")


def verification_shape(input_shape):
    """The shape of the check images for `input_shape`: free height and width at VERIFY_SIZE."""
    shape = list(input_shape)
    shape[1:3] = [size or VERIFY_SIZE for size in input_shape[1:3]]
    return shape


def verify_outputs(run, model, input_shape, images, tolerance=GRAPH_TOLERANCE, reference=None):
    """Checks `run(images)` (NumPy out) against the Keras model (or `reference`, its expected outputs).

    The batch, and, when the exported batch is free, one image alone (it must
    give its row of the batched result).
    """
    if reference is None:
        reference = keras_outputs(model, images)
    checks = [max_abs_diff_check(reference, run(images), tolerance)]
    if input_shape[0] is None and len(images) > 1:
        check = max_abs_diff_check(reference[:1], run(images[:1]), tolerance)
        check.name, check.detail = "max abs diff at batch 1", f"batch {len(images)} above"
        checks.append(check)
    return checks


def generated_images(input_shape, count=GENERATED_IMAGES):
    _, height, width, channels = input_shape
    rng = np.random.default_rng(0)
    return rng.standard_normal((count, height, width, channels)).astype("float32")


def read_images(source, input_shape, count, data_args):
    """Images from a representative / validation source, sized for the model input."""
    _, height, width, _ = input_shape
    if height is None or width is None:
        raise ValueError("Pass `input_size` to read images for a model whose input size is not fixed")
    return data_lib.load_images(source, (height, width), count, **data_args)


def check_images(
    quantize, float_modes, input_shape, representative_data, validation_data, counts, data_args, raw=False
):
    """The images of an export's checks: `(calibration images or None, images to verify on)`.

    int8 calibrates on the first `num_calibration` images of
    `representative_data` and checks on the next ones (at least
    `MIN_HELD_OUT`) unless `validation_data` is given. The float modes
    (`float_modes`) compare outputs element-wise on a few images: from
    `validation_data`, else `representative_data`, else generated model input.
    With `raw=True` (exports that take `uint8` images) the images are `uint8`
    RGB: read without preprocessing, or generated uniformly in [0, 255].
    """
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "Full-integer int8 export needs representative data to calibrate the activation ranges: "
            "pass `representative_data` (images: array, dataset, folder, .npy/.npz file or TFDS name). "
            "Received: representative_data=None"
        )
    if raw:
        data_args = {**data_args, "preprocess": None}
    calibration, images = _read_check_images(
        quantize, float_modes, input_shape, representative_data, validation_data, counts, data_args
    )
    if images is None:
        images = generated_images(input_shape)
        if raw:
            _, height, width, channels = input_shape
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, (GENERATED_IMAGES, height, width, channels), dtype="uint8")
    if raw:
        calibration = None if calibration is None else _uint8(calibration)
        images = _uint8(images)
    return calibration, images


def _uint8(images):
    return np.clip(np.round(images), 0, 255).astype("uint8")


def _read_check_images(
    quantize, float_modes, input_shape, representative_data, validation_data, counts, data_args
):
    """`check_images` from the given sources; the images to verify on are None when no source is given."""
    num_calibration, num_validation = counts
    calibration = None
    if quantize == "int8":
        # The held-out images follow the calibration ones in the same source.
        extra = num_validation if validation_data is None else 0
        images = read_images(representative_data, input_shape, num_calibration + extra, data_args)
        if not len(images):
            raise ValueError("`representative_data` gave no images")
        calibration, held_out = images[:num_calibration], images[num_calibration:]
        if validation_data is None:
            if not len(held_out):
                raise ValueError(
                    f"The int8 check needs held-out images after the {num_calibration} calibration images "
                    f"(at least {MIN_HELD_OUT} to judge), and the representative data gave {len(images)} in "
                    "all. Lower `num_calibration` or pass `validation_data`"
                )
            return calibration, held_out
    # Outputs are compared element-wise in the float modes: a few images are enough.
    count = FLOAT_CHECK_IMAGES if quantize in float_modes else num_validation
    for name, source in (("validation_data", validation_data), ("representative_data", representative_data)):
        if source is not None:
            images = read_images(source, input_shape, count, data_args)
            if not len(images):
                raise ValueError(f"`{name}` gave no images")
            return calibration, images
    return calibration, None


def max_abs_diff_check(reference, outputs, threshold):
    diff = float(np.max(np.abs(outputs - reference))) if outputs.size else float("nan")
    return Check("max abs diff", diff, threshold, "<=", len(outputs))


def agreement_check(reference, outputs, threshold):
    """Top-1 agreement of `outputs` with the Keras model's `reference` outputs, at least `threshold`.

    It cannot judge the export (the check says so, and does not fail) on fewer
    than `MIN_HELD_OUT` images, or when the Keras model predicts one class for
    every image: then any constant output agrees.
    """
    predicted = np.argmax(reference, -1)
    agree = float(np.mean(np.argmax(outputs, -1) == predicted)) if len(outputs) else float("nan")
    classes = len(np.unique(predicted))
    not_judged = ""
    if len(outputs) < MIN_HELD_OUT:
        not_judged = f"too few images to judge (at least {MIN_HELD_OUT})"
    elif classes < 2:
        not_judged = (
            f"Keras predicts class {predicted[0]} for every image, so any constant output would agree; "
            "verify on images the model tells apart"
        )
    diff = float(np.max(np.abs(outputs - reference))) if len(outputs) else float("nan")
    return Check(
        "top-1 agreement",
        agree,
        threshold,
        ">=",
        len(outputs),
        f"Keras predicts {classes} distinct classes, max abs diff {diff:.3g}",
        not_judged=not_judged,
        hint=f"min_agreement= (--min-agreement) accepts a lower agreement than {threshold * 100:g}%",
    )


def raise_if_failed(checks, what):
    failed = [check for check in checks if check.failed]
    if failed:
        hints = sorted({check.hint for check in failed if check.hint})
        raise VerificationError(
            f"The {what} export failed its verification, nothing was written: "
            + "; ".join(str(check) for check in failed)
            + "".join(f"; {hint}" for hint in hints)
        )


def estimated_size(model, quantize="none"):
    """About how many bytes an export of `model` takes: its weights at `WEIGHT_BYTES[quantize]` each.

    For a model file, the file's size stands for the float32 weights, so that
    the disk can be checked before the model is loaded.
    """
    if isinstance(model, (str, os.PathLike)):
        size = os.path.getsize(model) if os.path.isfile(model) else 0
    else:
        size = sum(int(np.prod(weight.shape)) * 4 for weight in model.weights)
    return size * WEIGHT_BYTES[quantize] // 4


def check_output_file(path, suffix, overwrite, model, quantize="none"):
    """`files.check_output_file` for an export of `model`: run before any work (see `keras_sknet.utils.files`)."""
    return files.check_output_file(
        path, suffix=suffix, overwrite=overwrite, size=estimated_size(model, quantize)
    )


def check_min_agreement(min_agreement, quantize, agreement_modes, default):
    """`min_agreement` (None: `default`), refused for an export not checked by top-1 agreement."""
    if min_agreement is None:
        return default
    if quantize not in agreement_modes:
        raise ValueError(
            f"`min_agreement` applies to the exports checked by top-1 agreement ({', '.join(agreement_modes)}); "
            f"the others are checked element-wise. Received: quantize={quantize!r}, min_agreement={min_agreement!r}"
        )
    if (
        isinstance(min_agreement, bool)
        or not isinstance(min_agreement, (int, float, np.number))
        or not (0 <= min_agreement <= 1)
    ):
        raise ValueError(
            f"`min_agreement` must be a fraction in [0, 1] (0.95 for 95%). Received: min_agreement={min_agreement!r}"
        )
    return float(min_agreement)


def write_file_atomically(path, content, overwrite=False):
    """Writes `content` to a temporary file beside `path`, then renames it into place.

    The path is checked again first: a file that appeared during the export
    is replaced only with `overwrite`.
    """
    files.check_output_file(path, overwrite=overwrite)
    with files.atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def directory_size(path):
    return sum(
        os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(path) for name in files
    )
