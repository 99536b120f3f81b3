"""Serving graphs that take images: `uint8` RGB in, class probabilities out, preprocessing inside.

A serving client of a float32 export must re-implement `preprocess_input`
(the ImageNet mean and standard deviation), the commonest source of silently
wrong predictions in deployments. With `input_type="uint8"` an export takes
`uint8` RGB images `(N, H, W, 3)` and applies, inside its graph:

1. the resize to the model's input size (bilinear; SavedModel and ONNX take
   any height and width, TFLite the model's own size, static);
2. `preprocess_input` (`(x / 255 - mean) / std`, the ImageNet statistics);
3. the model, and a softmax if its classifier returns logits
   (`classifier_activation=None`): the output is always probabilities.

A SavedModel also gets `serving_bytes`, a signature on encoded JPEG / PNG /
BMP / GIF images (a string tensor `(N,)`, what TF Serving clients send as
`{"b64": ...}`), decoded to RGB and resized to the model's size inside.

Every such export is verified like the float ones: its outputs on `uint8`
images against the Keras model's on `preprocess_input` of the same images.
"""

import numpy as np

from keras_sknet.utils.imagenet import preprocess_input

INPUT_TYPES = ("float32", "uint8")
# Name of the encoded-images input of the SavedModel's `serving_bytes` signature.
BYTES_INPUT_NAME = "image_bytes"
BYTES_SIGNATURE = "serving_bytes"


def check_input_type(input_type, preprocess):
    """Validates `input_type`; a `uint8` export reads raw RGB data, so `preprocess` must be the default."""
    if input_type not in INPUT_TYPES:
        raise ValueError(f"`input_type` must be one of {INPUT_TYPES}. Received: input_type={input_type!r}")
    if input_type == "uint8" and preprocess != "imagenet":
        raise ValueError(
            "A uint8 export applies preprocess_input inside its graph and reads its check images as raw "
            f"RGB: leave `preprocess='imagenet'` (the default). Received: preprocess={preprocess!r}"
        )
    return input_type


def returns_logits(model):
    """Whether the model's output layer is a classifier without activation (logits)."""
    import keras

    layer = model.layers[-1]
    return isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.linear


def image_function(call, model, size):
    """Wraps `call` (model input -> model output, TensorFlow) into `uint8` images -> probabilities.

    Args:
        call: the model's inference pass on float32 model input.
        model: the Keras model (for whether it returns logits).
        size: `(height, width)` to resize to, or None to feed the images as they are.

    Returns:
        A function of a `uint8` tensor `(N, H, W, 3)`.
    """
    import tensorflow as tf

    logits = returns_logits(model)

    def serve(images):
        x = tf.cast(images, tf.float32)
        if size is not None and tuple(x.shape[1:3]) != tuple(size):
            x = tf.image.resize(x, size, method="bilinear")
        y = call(preprocess_input(x))
        return tf.nn.softmax(y) if logits else y

    return serve


def bytes_function(image_serve, size):
    """Wraps a `uint8` serving function into one on encoded images: a string tensor `(N,)`."""
    import tensorflow as tf

    def decode(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    def serve(image_bytes):
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec((*size, 3), tf.uint8))
        return image_serve(images)

    return serve


def reference_outputs(model, raw, batch_size=32):
    """What a `uint8` export must return: the Keras model on `preprocess_input(raw)`, as probabilities."""
    import keras

    outputs = []
    for start in range(0, len(raw), batch_size):
        y = model(preprocess_input(raw[start : start + batch_size].astype("float32")), training=False)
        if returns_logits(model):
            y = keras.ops.softmax(y)
        outputs.append(keras.ops.convert_to_numpy(y))
    return np.concatenate(outputs).astype("float32")


def encode_png(raw):
    """Each `uint8` image as PNG bytes (lossless: the bytes signature must give the same outputs)."""
    import tensorflow as tf

    return np.array([tf.io.encode_png(image).numpy() for image in raw], dtype=object)
