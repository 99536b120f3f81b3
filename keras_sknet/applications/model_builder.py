"""What every model function shares: argument checks, the input, the head, weights.

Follows `keras.applications`: arguments are checked first, in a fixed order,
with messages that end in "Received: ...". Two deliberate differences, both
because every head here pools globally: any input size at or above the
network's minimum works with `include_top=True` (the paper also evaluates at
320x320), and so does an input of unknown size, `(None, None, 3)`.
"""

import numbers

import keras

from keras_sknet.applications.zoo_model import ZooModel
from keras_sknet.utils.validation import check_positive_int
from keras_sknet.weights.records import MODELS
from keras_sknet.weights.sources import Source, prepared, resolve

POOLING_MODES = (None, "avg", "max")
# Stem name -> (default input size, the stem's stride).
STEMS = {"imagenet": (224, 4), "cifar": (32, 1)}

# Appended to each model function's own docstring (`documented`).
ARGUMENTS_DOCSTRING = """
    The model takes images already processed by
    `keras_sknet.applications.preprocess_input` (RGB in [0, 255] -> ImageNet
    mean/std); it does no normalisation of its own. Channels-last only.

    Args:
        include_top: whether to include the global-average-pool + fully
            connected classifier on top.
        weights: `None` (random initialisation, He init), `"imagenet"`
            (the public timm checkpoint, fetched and converted once; for the
            models in `keras_sknet.weights.PRETRAINED`), or the path to a
            weights file: a Keras weights file (`.weights.h5`) or a timm
            checkpoint (`.safetensors`, or a PyTorch state dict with
            `keras-sknet[interop]`), converted on load; the weights of a whole
            saved model (`.keras`) also load if they fit. SKNet50 and SKNet101
            also take the authors' Caffe weights (`.caffemodel`, downloaded
            by the user; see `keras_sknet.weights.CAFFE_WEIGHTS`).
        input_tensor: optional Keras tensor (the output of `keras.Input()` or
            of a layer) to use as the model's input.
        input_shape: optional `(height, width, channels)`; defaults to
            `{default_shape}` with `include_top=True` and `(None, None, 3)`
            without. Height and width must be at least {min_size} or None.
        pooling: with `include_top=False`, `None` (4D feature map), `"avg"` or
            `"max"` (global pooling to a 2D tensor).
        classes: number of classes of the classifier (used with
            `include_top=True`).
        classifier_activation: activation of the classifier, a name or a
            callable; `None` returns logits.
        name: the model's name.

    Returns:
        A `keras.Model`.
    """


def validate_arguments(include_top, classes, pooling, classifier_activation):
    """Checks the keras.applications arguments a model function receives, but `weights`.

    `weights` is checked once, by `keras_sknet.weights.sources.resolve`.
    """
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    if include_top:
        check_positive_int("classes", classes)
        if classifier_activation is not None and not callable(classifier_activation):
            keras.activations.get(classifier_activation)  # raises for unknown names
    if pooling not in POOLING_MODES:
        raise ValueError(f"`pooling` must be one of {POOLING_MODES}. Received: pooling={pooling!r}")


def check_pretrained(source, include_top, classes, channels, num_classes):
    """`weights="imagenet"` fits: the checkpoint's classes with the classifier, RGB input."""
    if include_top and classes != num_classes:
        raise ValueError(
            f"If using `weights='imagenet'` with `include_top=True`, `classes` should be {num_classes}. "
            f"Received: classes={classes!r}"
        )
    if channels != 3:
        raise ValueError(
            f"`weights='imagenet'` needs RGB inputs, 3 channels. Received: {channels} input channels"
        )


def _is_size(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _looks_channels_first(shape):
    """(3, 224, 224), (1, None, None): a channel count first, a spatial size (or None) last."""
    first, last = shape[0], shape[-1]
    return _is_size(first) and first in (1, 3, 4) and (last is None or (_is_size(last) and last > 4))


def _check_input_shape(input_shape, min_size, name="input_shape"):
    """Returns `input_shape` as a tuple of ints (or None sizes) after checking it is channels-last."""
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
        raise ValueError(
            f"`{name}` must be a tuple of three integers (height, width, channels), channels last, "
            f"e.g. (224, 224, 3). Received: {name}={input_shape!r}"
        )
    shape = tuple(int(d) if _is_size(d) else d for d in input_shape)
    height, width, channels = shape
    bad_channels = not _is_size(channels) or channels < 1
    too_small = any(size is not None and (not _is_size(size) or size < min_size) for size in (height, width))
    if (bad_channels or too_small) and _looks_channels_first(shape):
        # Said first: "at least 32x32" would send a PyTorch user to resize, not to transpose.
        raise ValueError(
            f"`{name}` must be channels-last, (height, width, channels) such as (224, 224, 3); "
            f"{shape} looks channels-first (channels, height, width). Received: {name}={shape}"
        )
    if bad_channels:
        raise ValueError(
            f"The channels (last) dimension of `{name}` must be a positive integer. Received: {name}={shape}"
        )
    if too_small:
        raise ValueError(
            f"Input height and width must be at least {min_size}x{min_size} (or None) for this "
            f"network. Received: {name}={shape}"
        )
    return shape


def check_input(input_tensor, input_shape, default_size, min_size, include_top):
    """Checks the model's input arguments; returns the input shape (without the batch).

    Args:
        input_tensor, input_shape: the model function's arguments.
        default_size, min_size: the default and smallest input height/width.
        include_top: the default shape is `(default_size, default_size, 3)` with the
            classifier, `(None, None, 3)` without.

    Returns:
        `(height, width, channels)`.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras_sknet models are channels-last. Received: "
            f"keras.config.image_data_format()={keras.config.image_data_format()!r}"
        )
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                "`input_tensor` must be a Keras tensor: the output of `keras.Input()` or "
                f"of a Keras layer. Received: input_tensor of type {type(input_tensor).__name__}"
            )
        tensor_shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(
                "`input_shape` does not match the shape of `input_tensor`. "
                f"Received: input_shape={tuple(input_shape)}, input_tensor.shape={input_tensor.shape}"
            )
        return _check_input_shape(tensor_shape, min_size, name="input_tensor.shape[1:]")
    if input_shape is None:
        return (default_size, default_size, 3) if include_top else (None, None, 3)
    return _check_input_shape(input_shape, min_size)


def model_input(input_tensor, input_shape, default_size, min_size, include_top):
    """Returns `(image_input, model_inputs)`: the tensor to build on and the model's inputs."""
    shape = check_input(input_tensor, input_shape, default_size, min_size, include_top)
    if input_tensor is not None:
        return input_tensor, keras.utils.get_source_inputs(input_tensor)
    image_input = keras.Input(shape=shape)
    return image_input, image_input


def classification_head(x, include_top, pooling, classes, classifier_activation):
    """Global pooling and the classifier, as keras.applications builds them."""
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        # Under mixed precision the classifier runs in float32 (stable softmax and loss).
        head_dtype = "float32" if keras.config.dtype_policy().name.startswith("mixed") else None
        return keras.layers.Dense(
            classes, activation=classifier_activation, dtype=head_dtype, name="predictions"
        )(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def build_model(
    features,
    *,
    default_size,
    min_size,
    include_top,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    name,
):
    """The one builder behind every model function.

    Args:
        features: `features(image_input) -> feature map`, the network body.
        default_size, min_size: the default and smallest input height/width.
        The rest: the keras.applications arguments of the public functions.

    Returns:
        A `keras.Model`, with `weights` loaded if a path was given: a Keras
        weights file as it is, a timm checkpoint or a caffemodel converted
        (all or nothing; with `include_top=False` its classifier is left out).
    """
    source = (
        weights if isinstance(weights, Source) else resolve(weights)
    )  # once; a model function resolved it
    validate_arguments(include_top, classes, pooling, classifier_activation)
    # Every check that needs no file content comes before reading one (a checkpoint can be 100s of MB).
    check_input(input_tensor, input_shape, default_size, min_size, include_top)
    # The weights are read (or fetched) before the model is built, and the model is built once.
    with prepared(source, include_top, classes, cacheable=input_tensor is None) as load:
        image_input, inputs = model_input(input_tensor, input_shape, default_size, min_size, include_top)
        outputs = classification_head(
            features(image_input), include_top, pooling, classes, classifier_activation
        )
        model = ZooModel(inputs, outputs, name=name)  # keras.Model with fast predict and eager calls
        load(model)
    return model


def min_input_size(stem, num_stages):
    """The network's total stride: smaller inputs would be pooled below 1x1."""
    return STEMS[stem][1] * 2 ** (num_stages - 1)


def input_sizes(config):
    """`(default_size, min_size)`: the input height/width of a stage_depths architecture (a record's config)."""
    stem = config.get("stem", "imagenet")
    return STEMS[stem][0], min_input_size(stem, len(config["stage_depths"]))


def documented(model_name, sizes=None):
    """Appends the sections every model function shares (Args, Returns) to its own docstring.

    Args:
        model_name: the model function's record, e.g. `"SKNet50"`.
        sizes: `(default_size, min_size)` of its input; default from the record's `stage_depths`.
    """
    default_size, min_size = sizes or input_sizes(MODELS[model_name].config)

    def decorate(function):
        shared = ARGUMENTS_DOCSTRING.format(
            default_shape=f"({default_size}, {default_size}, 3)", min_size=min_size
        )
        own, example = function.__doc__.rstrip(), ""
        if "\n    Example:" in own:  # the shared sections go before the function's example
            own, example = own.split("\n    Example:", 1)
            example = "\n    Example:" + example + "\n"
        function.__doc__ = own.rstrip() + "\n" + shared.rstrip() + "\n" + example
        return function

    return decorate


def named_model(builder, model_name, **arguments):
    """What every named model function does: its record's architecture, its `weights`, the builder.

    Args:
        builder: the family builder, e.g. `SKNet`, called as `builder(**record.config, **arguments)`.
        model_name: the model function's name, e.g. `"SKNet50"`: its record
            (`keras_sknet.weights.records.MODELS`) gives the architecture, and
            `weights="imagenet"` its checkpoint.
        **arguments: the keras.applications arguments of the model function.

    Returns:
        A `keras.Model`.
    """
    record = MODELS[model_name]
    if "stage_depths" in record.config:
        # The input is checked before `weights="imagenet"` may download anything.
        _, min_size = input_sizes(record.config)
        shape = check_input(
            arguments["input_tensor"], arguments["input_shape"], None, min_size, arguments["include_top"]
        )
    source = resolve(arguments["weights"], record)  # the one check of `weights`
    if source is not None and source.kind == "imagenet":
        include_top, classes = arguments["include_top"], arguments["classes"]
        validate_arguments(include_top, classes, arguments["pooling"], arguments["classifier_activation"])
        check_pretrained(source, include_top, classes, shape[-1], record.pretrained.num_classes)
    architecture = dict(record.config)
    if record.caffe is not None and source is not None and source.kind == "caffe":
        # The official Caffe weights need the release's architecture (its stem pool, ...).
        architecture.update(record.caffe.architecture)
    arguments["weights"] = source
    return builder(**architecture, **arguments)
