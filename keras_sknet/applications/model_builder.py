"""What every model function shares: argument checks, the input, the head, weights.

Follows `keras.applications`: arguments are checked first, in a fixed order,
with messages that end in "Received: ...". Two deliberate differences, both
because every head here pools globally: any input size at or above the
network's minimum works with `include_top=True` (the paper also evaluates at
320x320), and so does an input of unknown size, `(None, None, 3)`.
"""

import difflib
import numbers
import os

import keras

from keras_sknet.applications.zoo_model import ZooModel
from keras_sknet.utils.validation import check_positive_int
from keras_sknet.weights.checkpoint import ACCEPTED_FILES, is_caffemodel_path

POOLING_MODES = (None, "avg", "max")

BASE_DOCSTRING = """Instantiates the {description}.

    Reference: {reference}

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

    Example:
        >>> model = {example}
        >>> model.output_shape
        {example_output}
    """


def _weights_help():
    return f"`weights` takes None (random initialization), 'imagenet' or the path to {ACCEPTED_FILES}"


def validate_arguments(weights, include_top, classes, pooling, classifier_activation):
    """Checks the keras.applications arguments a model function receives.

    Only names and types: a file given as `weights` is checked by `check_weights_file`.
    """
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(f"{_weights_help()}. Received: weights={weights!r}")
        path = os.fsdecode(weights)
        if os.path.isdir(path):
            raise ValueError(f"weights={path!r} is a folder, not a file. {_weights_help()}.")
        if not os.path.isfile(path):
            if path == "imagenet":
                from keras_sknet.weights.registry import PRETRAINED

                raise ValueError(
                    "No pretrained ImageNet weights are available for this model "
                    f"(models with weights='imagenet': {', '.join(sorted(PRETRAINED))}). "
                    "Pass `weights=None` or the path to a weights file. "
                    f"Received: weights={weights!r}"
                )
            if not os.path.splitext(path)[1] and os.sep not in path and "/" not in path:
                # A bare word is a name, not a file: "imagnet", "ImageNet", "pretrained".
                close = difflib.get_close_matches(path.lower(), ["imagenet"], n=1, cutoff=0.6)
                guess = " (did you mean 'imagenet'?)" if close else ""
                raise ValueError(
                    f"Unknown weights name {path!r}{guess}, and no file has that name. "
                    f"{_weights_help()}. Received: weights={path!r}"
                )
            raise ValueError(f"No such weights file: {path!r}. {_weights_help()}. Received: weights={path!r}")
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    if include_top:
        check_positive_int("classes", classes)
        if classifier_activation is not None and not callable(classifier_activation):
            keras.activations.get(classifier_activation)  # raises for unknown names
    if pooling not in POOLING_MODES:
        raise ValueError(f"`pooling` must be one of {POOLING_MODES}. Received: pooling={pooling!r}")


def check_weights_file(weights):
    """Checks that a file given as `weights` is whole and what its name says; returns its format.

    Cheap (a few bytes, a zip's or an HDF5 file's directory): it runs before any model is
    built and before a big file is read, so an empty, truncated or misnamed file is told at once.

    Args:
        weights: an existing file (see `validate_arguments`).

    Returns:
        `"keras"`, `"safetensors"`, `"torch"` or `"caffe"` (see `detect_format`).
    """
    from keras_sknet.weights.checkpoint import detect_format

    fmt = detect_format(weights)
    if fmt == "keras":
        from keras_sknet.weights.keras_weights import check_keras_file

        check_keras_file(weights)
    return fmt


def resolve_weights(weights, model, include_top, classes, pooling, classifier_activation, channels=3):
    """Turns `weights="imagenet"` into the model's converted, cached public checkpoint.

    The other arguments are checked first, so a call that would fail never
    downloads anything. Any other `weights` value is returned unchanged.

    Args:
        weights: the `weights` argument of a model function.
        model: the model function's name, e.g. `"SKNet50"`.
        include_top, classes, pooling, classifier_activation: its other arguments.
        channels: the channels of its input (the checkpoints take RGB: 3).

    Returns:
        A path to a Keras weights file, or `weights` itself.
    """
    if not (isinstance(weights, str) and weights == "imagenet"):
        return weights
    from keras_sknet.weights.registry import PRETRAINED

    if model not in PRETRAINED:
        return weights  # validate_arguments explains which models have weights
    validate_arguments(None, include_top, classes, pooling, classifier_activation)
    expected = PRETRAINED[model].num_classes
    if include_top and classes != expected:
        raise ValueError(
            f"If using `weights='imagenet'` with `include_top=True`, `classes` should be {expected}. "
            f"Received: classes={classes!r}"
        )
    if channels != 3:
        raise ValueError(
            f"`weights='imagenet'` needs RGB inputs, 3 channels. Received: {channels} input channels"
        )
    from keras_sknet.weights.download import pretrained_weights_path

    return pretrained_weights_path(model)


def _read_timm_checkpoint(weights, include_top, classes):
    """Reads a timm checkpoint and checks `classes` against its classifier before any model is built."""
    from keras_sknet.weights.checkpoint import read_checkpoint

    state_dict = read_checkpoint(weights)
    head = state_dict.get("fc.weight")
    if include_top and head is not None and head.ndim == 2 and head.shape[0] != classes:
        raise ValueError(
            f"The checkpoint {str(weights)!r} has a classifier of {head.shape[0]} classes; with "
            f"`include_top=True`, `classes` should be {head.shape[0]} (or use include_top=False). "
            f"Received: classes={classes!r}"
        )
    return state_dict


def _read_caffe_model(weights, include_top, classes):
    """Reads a caffemodel and checks `classes` against its classifier before any model is built."""
    from keras_sknet.weights.caffe_converter import CLASSIFIER
    from keras_sknet.weights.caffemodel import read_caffemodel

    blobs = read_caffemodel(weights)
    head = blobs.get(CLASSIFIER)
    if include_top and head:
        num_classes = int(head[0].shape[-2]) if head[0].ndim >= 2 else None
        if num_classes is not None and num_classes != classes:
            raise ValueError(
                f"The Caffe model {str(weights)!r} has a classifier of {num_classes} classes; with "
                f"`include_top=True`, `classes` should be {num_classes} (or use include_top=False). "
                f"Received: classes={classes!r}"
            )
    return blobs


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
    validate_arguments(weights, include_top, classes, pooling, classifier_activation)
    # Every check that needs no file content comes before reading one (a checkpoint can be 100s of MB).
    check_input(input_tensor, input_shape, default_size, min_size, include_top)
    state_dict = caffe_blobs = None
    if weights is not None:
        fmt = check_weights_file(weights)
        if fmt == "caffe":
            caffe_blobs = _read_caffe_model(weights, include_top, classes)
        elif fmt != "keras":
            state_dict = _read_timm_checkpoint(weights, include_top, classes)
    image_input, inputs = model_input(input_tensor, input_shape, default_size, min_size, include_top)
    outputs = classification_head(features(image_input), include_top, pooling, classes, classifier_activation)
    model = ZooModel(inputs, outputs, name=name)  # keras.Model with fast predict and eager calls
    if state_dict is not None:
        from keras_sknet.weights.timm_converter import load_timm_state_dict

        load_timm_state_dict(model, state_dict, source=f"The checkpoint {str(weights)!r}")
    elif caffe_blobs is not None:
        from keras_sknet.weights.caffe_converter import load_caffe_blobs

        load_caffe_blobs(model, caffe_blobs, source=f"The Caffe model {str(weights)!r}")
    elif weights is not None:
        from keras_sknet.weights.keras_weights import CLASSIFIER_ARRAYS, load_keras_weights

        if include_top:
            hint, optional = f" (This model: include_top=True, classes={classes}.)", ()
        else:  # a file with a classifier fits a model without one, as in keras.applications
            hint, optional = "", (CLASSIFIER_ARRAYS,)
        load_keras_weights(model, weights, hint=hint, optional=optional)
    return model


def model_variant(builder, config, function_name, docstring, min_size, default_classes=1000, name=None):
    """A keras.applications-style model function for one row of a family's configs.

    Args:
        builder: the family builder, e.g. `SKNet`, called as `builder(**config, **arguments)`.
        config: the variant's architecture arguments (a row of the family's configs).
        function_name: the public name, e.g. "SKNet50"; it also selects `weights="imagenet"`.
        docstring: the function's docstring (`BASE_DOCSTRING` filled in).
        min_size: the smallest input height/width (checked before any download).
        default_classes: the default of `classes`.
        name: the default model name.

    Returns:
        `function(include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name, output_stride) -> keras.Model`; `output_stride`
        (default 32) goes to the builder.
    """

    def model_function(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=default_classes,
        classifier_activation="softmax",
        name=name,
        output_stride=32,
    ):
        # The input is checked before `weights="imagenet"` may download anything.
        shape = check_input(input_tensor, input_shape, None, min_size, include_top)
        weights = resolve_weights(
            weights, function_name, include_top, classes, pooling, classifier_activation, shape[-1]
        )
        architecture = config
        if is_caffemodel_path(weights):
            # The official Caffe weights need the release's architecture (its stem pool, ...).
            from keras_sknet.weights.registry import caffe_weights_config

            architecture = {**config, **caffe_weights_config(function_name).architecture}
        return builder(
            **architecture,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
            output_stride=output_stride,
        )

    model_function.__name__ = model_function.__qualname__ = function_name
    model_function.__doc__ = docstring
    return model_function
