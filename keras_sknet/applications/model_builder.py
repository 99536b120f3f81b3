"""What every model function shares: argument checks, the input, the head, weights.

Follows `keras.applications`: arguments are checked first, in a fixed order,
with messages that end in "Received: ...". Two deliberate differences, both
because every head here pools globally: any input size at or above the
network's minimum works with `include_top=True` (the paper also evaluates at
320x320), and so does an input of unknown size, `(None, None, 3)`.
"""

import os

import keras

from keras_sknet.applications.zoo_model import ZooModel
from keras_sknet.utils.validation import check_positive_int
from keras_sknet.weights.checkpoint import is_caffemodel_path

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
            `keras-sknet[interop]`), converted on load. SKNet50 and SKNet101
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


def validate_arguments(weights, include_top, classes, pooling, classifier_activation):
    """Checks the keras.applications arguments a model function receives."""
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(
                "The `weights` argument should be either `None` (random initialization), "
                "'imagenet' (for the models with a public checkpoint) or the path to a weights "
                f"file (Keras weights or a timm checkpoint). Received: weights={weights!r}"
            )
        if not os.path.isfile(weights):
            if str(weights) == "imagenet":
                from keras_sknet.weights.registry import PRETRAINED

                raise ValueError(
                    "No pretrained ImageNet weights are available for this model "
                    f"(models with weights='imagenet': {', '.join(sorted(PRETRAINED))}). "
                    "Pass `weights=None` or the path to a weights file. "
                    f"Received: weights={weights!r}"
                )
            raise ValueError(
                "The `weights` argument should be either `None` (random initialization), "
                "'imagenet' or the path to an existing weights file. "
                f"Received: weights={weights!r} (no such file)"
            )
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    if include_top:
        check_positive_int("classes", classes)
        if classifier_activation is not None and not callable(classifier_activation):
            keras.activations.get(classifier_activation)  # raises for unknown names
    if pooling not in POOLING_MODES:
        raise ValueError(f"`pooling` must be one of {POOLING_MODES}. Received: pooling={pooling!r}")


def resolve_weights(weights, model, include_top, classes, pooling, classifier_activation):
    """Turns `weights="imagenet"` into the model's converted, cached public checkpoint.

    The other arguments are checked first, so a call that would fail never
    downloads anything. Any other `weights` value is returned unchanged.

    Args:
        weights: the `weights` argument of a model function.
        model: the model function's name, e.g. `"SKNet50"`.
        include_top, classes, pooling, classifier_activation: its other arguments.

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


def _check_input_shape(input_shape, min_size):
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be a tuple of three integers (height, width, channels), "
            f"channels last. Received: input_shape={input_shape!r}"
        )
    height, width, channels = input_shape
    if channels is None or isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(
            f"The channel dimension of `input_shape` must be a positive integer. "
            f"Received: input_shape={tuple(input_shape)}"
        )
    for size in (height, width):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < min_size):
            raise ValueError(
                f"Input size must be at least {min_size}x{min_size} (or None). "
                f"Received: input_shape={tuple(input_shape)}"
            )
    return tuple(input_shape)


def model_input(input_tensor, input_shape, default_size, min_size, include_top):
    """Returns `(image_input, model_inputs)`: the tensor to build on and the model's inputs."""
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
        _check_input_shape(tensor_shape, min_size)
        return input_tensor, keras.utils.get_source_inputs(input_tensor)
    if input_shape is None:
        input_shape = (default_size, default_size, 3) if include_top else (None, None, 3)
    image_input = keras.Input(shape=_check_input_shape(input_shape, min_size))
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
    state_dict = caffe_blobs = None
    if weights is not None:
        from keras_sknet.weights.checkpoint import detect_format

        fmt = detect_format(weights)
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
        try:
            model.load_weights(weights)
        except Exception as error:  # Keras raises several types for mismatches.
            raise ValueError(
                f"Could not load the weights file {str(weights)!r} into model {name!r} "
                f"(include_top={include_top}, classes={classes}): {error}"
            ) from error
    return model


def model_variant(builder, config, function_name, docstring, default_classes=1000, name=None):
    """A keras.applications-style model function for one row of a family's configs.

    Args:
        builder: the family builder, e.g. `SKNet`, called as `builder(**config, **arguments)`.
        config: the variant's architecture arguments (a row of the family's configs).
        function_name: the public name, e.g. "SKNet50"; it also selects `weights="imagenet"`.
        docstring: the function's docstring (`BASE_DOCSTRING` filled in).
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
        weights = resolve_weights(
            weights, function_name, include_top, classes, pooling, classifier_activation
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
