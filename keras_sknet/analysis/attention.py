"""Reading the selection weights of every SK unit (Section 4.4).

`attention_weights(model, images)` runs the model once over the images and
returns the softmax attention of every SK convolution, per path and channel,
named like the paper: SK_3_4 is the 4th unit of stage 3 (`conv3_block4`).
Nothing is rebuilt or retrained: the model runs as it is, with
`keras_sknet.layers.record_attention` collecting the weights on the way.
"""

import re
import weakref

import keras
import numpy as np

from keras_sknet.layers.selective_kernel import SKConv, record_attention

# conv3_block4/sk -> SK_3_4; stage2_unit1/left_sk -> SK_2_1_left (ShuffleNetV2's second SK path).
_UNIT_PATTERN = re.compile(r"^(?:conv|stage)(\d+)_(?:block|unit)(\d+)/(?:(\w+)_)?sk$")


def unit_name(layer_path):
    """The paper's name of an SK unit from its layer path, or the path itself.

    Example:
        >>> unit_name("conv3_block4/sk"), unit_name("stage2_unit1/left_sk")
        ('SK_3_4', 'SK_2_1_left')
    """
    match = _UNIT_PATTERN.match(layer_path)
    if match is None:
        return layer_path
    stage, unit, branch = match.groups()
    name = f"SK_{stage}_{unit}"
    return name if branch in (None, "right") else f"{name}_{branch}"


def sk_layers(model):
    """`{layer.path: layer}` for every SKConv with attention in `model`, at any depth."""
    layers = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, SKConv) and layer.attention:
            layers[layer.path] = layer
    return layers


def kernel_extents(layer):
    """The receptive field of each path of an SKConv: dilation * (k - 1) + 1."""
    return [conv.dilation_rate * (conv.kernel_size - 1) + 1 for conv in layer.path_convs]


def check_images(model, images):
    """Validates a batch of model inputs; returns it as float32 NumPy."""
    if keras.ops.is_tensor(images):
        images = keras.ops.convert_to_numpy(images)
    elif hasattr(images, "numpy"):  # a tensor of another framework, e.g. a tf.Tensor from tf.data
        images = images.numpy()
    if not isinstance(images, np.ndarray):
        raise ValueError(
            f"`images` must be a NumPy array or a tensor of shape (N, H, W, C). "
            f"Received: images of type {type(images).__name__}"
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            "`images` must be floats as the model takes them (apply "
            "keras_sknet.applications.preprocess_input to RGB images in [0, 255]). "
            f"Received: dtype {images.dtype}"
        )
    expected = tuple(model.inputs[0].shape[1:])
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"`images` must have shape (N, H, W, C) with N >= 1. Received shape {images.shape}")
    for got, want in zip(images.shape[1:], expected):
        if want is not None and got != want:
            raise ValueError(
                f"`images` of shape {images.shape} do not fit the model's input shape (None, *{expected})"
            )
    return images.astype("float32", copy=False)


# One compiled read-out per model, shared by every reader of it (a scale experiment after an
# attention read-out compiles nothing again). The functions read the variables at each call and
# hold the model only weakly, so that the cache does not keep it alive.
_FORWARDS = weakref.WeakKeyDictionary()


def _compiled_forward(model):
    """`images -> {layer path: attention}`: one inference pass, compiled where the backend compiles.

    TensorFlow: a `tf.function`; JAX: `jax.jit` over the model's stateless call
    (the recorded attention leaves the compiled function as outputs); PyTorch:
    an eager pass without gradient tracking.
    """
    if model not in _FORWARDS:
        _FORWARDS[model] = _make_forward(weakref.ref(model))
    return _FORWARDS[model]


def _make_forward(model_ref):
    def run(images):
        with record_attention() as attention:
            model_ref()(images, training=False)
        return attention

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(run, reduce_retracing=True)
    if backend == "jax":
        import jax

        def stateless_run(trainable, non_trainable, images):
            with record_attention() as attention:
                model_ref().stateless_call(trainable, non_trainable, images, training=False)
            return attention

        compiled = jax.jit(stateless_run)

        def forward(images):
            model = model_ref()
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            return compiled(trainable, non_trainable, images)

        return forward
    if backend == "torch":
        import torch

        def forward(images):
            with torch.no_grad():
                return run(images)

        return forward
    return run


class AttentionReader:
    """Runs `model` and collects every SK unit's attention, in one forward pass per batch.

    Args:
        model: a Keras model containing `SKConv` layers (any model of the zoo with SK
            units, or a user model).
        batch_size: images per forward pass.

    Raises:
        ValueError: if the model has no SK unit with attention.
    """

    def __init__(self, model, batch_size=32):
        self.model = model
        self.batch_size = batch_size
        self.layers = sk_layers(model)
        if not self.layers:
            raise ValueError(
                f"Model {model.name!r} has no SK units (SKConv layers with attention): there is no "
                "selection to read. Use a model such as SKNet50, SKNet29 or ShuffleNetV2SK."
            )
        self._forward = _compiled_forward(model)

    def __call__(self, images):
        """Returns `{unit name: array (N, M, C)}`, ordered by depth."""
        images = check_images(self.model, images)
        chunks = [
            self._forward(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)
        ]
        return {
            unit_name(path): np.concatenate(
                [keras.ops.convert_to_numpy(chunk[path]).astype("float32") for chunk in chunks]
            )
            for path in chunks[0]
        }

    def extents(self):
        """`{unit name: receptive field of each path}`."""
        return {unit_name(path): kernel_extents(layer) for path, layer in self.layers.items()}


def attention_weights(model, images, batch_size=32):
    """The softmax attention of every SK unit of `model` on `images`.

    Section 4.4: the attention values of each path and channel of every SK unit.

    Args:
        model: a Keras model containing `SKConv` layers (zoo or user model).
        images: float array `(N, H, W, C)`, as the model takes it (preprocessed).
        batch_size: images per forward pass.

    Returns:
        `{unit name: array (N, M, C)}` ordered by depth; names follow the paper
        ("SK_3_4" = stage 3, unit 4), other SKConv layers keep their layer path.
        Each `[n, :, c]` sums to 1 over the M paths.

    Example:
        >>> att = attention_weights(SKNet50(), preprocess_input(images))
        >>> att["SK_3_4"].shape
        (8, 2, 256)
    """
    return AttentionReader(model, batch_size)(images)
