"""What both exporters share: the model and its input, the checks and their report, safe writes."""

import dataclasses
import os

import keras
import numpy as np

from keras_sknet.utils import images as data_lib
from keras_sknet.utils.files import atomic_path, replace_directory  # noqa: F401  (common.replace_directory)
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
# Held-out images under which a top-1 agreement check says too little to run.
MIN_HELD_OUT = 20


def inference_graphs(portable):
    """A block in which models trace as inference graphs for export or freezing.

    Grouped and dilated convolutions get no gradient functions (a frozen graph
    cannot store them, and exports serve inference). With `portable=True`
    they are also built as `keras_sknet.layers.tf_conv.portable_conv2d`, so
    that a SavedModel written on a machine with TensorFlow's oneDNN kernels
    also runs where TensorFlow runs its Eigen kernels (CPUs without AVX-512,
    Apple silicon): grappler would otherwise fuse each grouped convolution
    with its BatchNorm into an op Eigen lacks. That costs 2-6% on oneDNN
    (docs/platforms.md); TFLite drops the barrier and is unaffected.

    Args:
        portable: True for graphs that leave this process.

    Returns:
        A context manager.
    """
    from keras_sknet.layers import tf_conv

    return tf_conv.convolution_path("portable" if portable else None, gradients=False)


class ExportError(RuntimeError):
    """An export could not be produced (conversion failed, or non-builtin operators)."""


class VerificationError(ExportError):
    """An export was produced but failed its checks; nothing was written."""


@dataclasses.dataclass
class Check:
    """One verification check: `value` against `threshold` (`"<="` or `">="`)."""

    name: str
    value: float
    threshold: float
    relation: str
    images: int
    detail: str = ""

    @property
    def passed(self):
        if not np.isfinite(self.value):
            return False
        return self.value <= self.threshold if self.relation == "<=" else self.value >= self.threshold

    def __str__(self):
        value = f"{self.value:.2%}" if "agreement" in self.name else f"{self.value:.3g}"
        threshold = f"{self.threshold:.0%}" if "agreement" in self.name else f"{self.threshold:g}"
        verdict = "ok" if self.passed else "FAILED"
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
        checks: the `Check`s it passed.
        operators: TFLite or ONNX operator counts (TFLite, ONNX).
        xnnpack: `XnnpackCoverage` of the TFLite model (TFLite only).
        content: the TFLite flatbuffer or the ONNX model's bytes (TFLite, ONNX).
        frozen: whether the weights are graph constants (SavedModel only).
        opset: the ONNX opset (ONNX only).
        input_type: `"float32"` (model input: `preprocess_input` output) or
            `"uint8"` (RGB images, preprocessing inside; see `export.serving`).
        signatures: the SavedModel's signature names (SavedModel only).
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

    @property
    def passed(self):
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
        lines += [f"  verified: {check}" for check in self.checks]
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
    import keras_sknet.layers  # noqa: F401  (registers the custom layers for deserialisation)

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


def model_with_input(model, batch_size, input_size):
    """The model and its export input shape `(batch, H, W, C)`.

    A model built for another spatial size is rebuilt from its config with
    the new input (same weights): every model of the zoo pools globally.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            "Only single-input, single-output image models can be exported. "
            f"Received a model with {len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] is None:
        raise ValueError(f"Expected a model on images (batch, H, W, C). Received input shape {shape}")
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
            f"{tuple(model.inputs[0].shape)}): {error}. Export at the model's own size, or build it with "
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
            if len(held_out) < MIN_HELD_OUT:
                raise ValueError(
                    f"The int8 check needs at least {MIN_HELD_OUT} held-out images after the "
                    f"{num_calibration} calibration images, and the representative data gave {len(images)} "
                    "in all. Lower `num_calibration` or pass `validation_data`"
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
    agree = float(np.mean(np.argmax(outputs, -1) == np.argmax(reference, -1)))
    classes = len(np.unique(np.argmax(reference, -1)))
    return Check(
        "top-1 agreement",
        agree,
        threshold,
        ">=",
        len(outputs),
        f"Keras predicts {classes} distinct classes, max abs diff {np.max(np.abs(outputs - reference)):.3g}",
    )


def raise_if_failed(checks, what):
    failed = [check for check in checks if not check.passed]
    if failed:
        raise VerificationError(
            f"The {what} export failed its verification, nothing was written: "
            + "; ".join(str(check) for check in failed)
        )


def check_output_path(path, suffix=None, directory=False):
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"`path` must be a file path. Received: path of type {type(path).__name__}")
    path = os.fspath(path)
    if suffix and not path.endswith(suffix):
        raise ValueError(f"A {suffix} export needs a path ending in {suffix!r}. Received: path={path!r}")
    if directory and os.path.isfile(path):
        raise ValueError(f"The SavedModel path {path!r} is an existing file; a SavedModel is a folder")
    if not directory and os.path.isdir(path):
        raise ValueError(f"The output path {path!r} is an existing folder")
    return path


def check_writable(path):
    """Raises ValueError unless a file can be created at `path` (its folder exists or can be made)."""
    folder = os.path.dirname(os.path.abspath(path))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"Cannot write {path!r}: {existing!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"Cannot write {path!r}: the folder {existing!r} is not writable")


def write_file_atomically(path, content):
    """Writes `content` to a temporary file beside `path`, then renames it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def directory_size(path):
    return sum(
        os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(path) for name in files
    )
