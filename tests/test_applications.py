"""Every model function behaves as keras.applications does, on small inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sknet import applications
from keras_sknet.layers import record_attention
from tests.helpers import op_by_op, randomize_batch_norms

# (function, kwargs, small input size, channels of the last feature map, default classes)
MODELS = [
    ("SKNet26", {}, 64, 2048, 1000),
    ("SKNet50", {}, 64, 2048, 1000),
    ("SKNet101", {}, 64, 2048, 1000),
    ("ResNeXt50", {}, 64, 2048, 1000),
    ("ResNeXt101", {}, 64, 2048, 1000),
    ("SEResNeXt50", {}, 64, 2048, 1000),
    ("SEResNeXt101", {}, 64, 2048, 1000),
    ("SKResNet18", {}, 64, 512, 1000),
    ("SKNet29", {}, 32, 1024, 10),
    ("ResNeXt29", {}, 32, 1024, 10),
    ("SEResNeXt29", {}, 32, 1024, 10),
    ("ShuffleNetV2", {"alpha": 0.5}, 64, 1024, 1000),
    ("ShuffleNetV2SE", {"alpha": 0.5}, 64, 1024, 1000),
    ("ShuffleNetV2SK", {"alpha": 0.5}, 64, 1024, 1000),
    ("ShuffleNetV2SK", {"alpha": 1.0}, 64, 1024, 1000),
]
IDS = [f"{name}{'-' + str(kw['alpha']) if kw else ''}" for name, kw, *_ in MODELS]


# The 101-layer models repeat their 50-layer family's units (the same layer classes and
# configurations): a .keras round trip of theirs tests nothing the 50's does not.
NO_ROUND_TRIP = {"SKNet101", "ResNeXt101", "SEResNeXt101"}

# Each model function with one of the two poolings, in turn: both are tested on every family.
POOLED = [(*model, ("avg", "max")[i % 2]) for i, model in enumerate(MODELS)]


def stride(size, name):
    return 4 if name.endswith("29") else 32


@pytest.mark.parametrize("name,kwargs,size,channels,classes", MODELS, ids=IDS)
def test_classifier_forward_and_keras_round_trip(name, kwargs, size, channels, classes, rng, tmp_path):
    model = getattr(applications, name)(input_shape=(size, size, 3), **kwargs)
    assert model.output_shape == (None, classes)
    randomize_batch_norms(model, rng)
    x = rng.uniform(-2, 2, size=(1, size, size, 3)).astype("float32")
    y = model.predict(x, verbose=0)  # the user's compiled call, once per model
    assert y.shape == (1, classes)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(op_by_op(model, x), y, atol=1e-6)
    if name in NO_ROUND_TRIP:
        return
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(op_by_op(loaded, x), y, atol=1e-6)


@pytest.mark.parametrize("name,kwargs,size,channels,classes,pooling", POOLED, ids=IDS)
def test_feature_extractor_any_size(name, kwargs, size, channels, classes, pooling, rng):
    function = getattr(applications, name)
    model = function(include_top=False, **kwargs)
    assert model.input_shape == (None, None, None, 3)
    for h, w in [(size, size), (size + 8, size * 2)]:
        s = stride(size, name)
        x = rng.normal(size=(2, h, w, 3)).astype("float32")
        features = op_by_op(model, x)
        assert features.shape == (2, -(-h // s), -(-w // s), channels)
    # A custom input tensor of unknown size, as keras.applications accepts.
    pooled = function(include_top=False, pooling=pooling, input_tensor=keras.Input((None, None, 3)), **kwargs)
    assert pooled.output_shape == (None, channels)
    # With the same weights the pooled model gives the pooled feature map.
    pooled.set_weights(model.get_weights())
    pooled_features = op_by_op(pooled, [x])  # the inputs as a list, as input_tensor made them
    assert pooled_features.shape == (2, channels)
    reduce = {"avg": np.mean, "max": np.max}[pooling]
    np.testing.assert_allclose(pooled_features, reduce(features, axis=(1, 2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["SKNet50", "SKNet29", "ShuffleNetV2SK"])
def test_custom_input_tensor_and_classes(name):
    inputs = keras.Input((48, 40, 3), name="images")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    model = getattr(applications, name)(input_tensor=x, classes=7, classifier_activation=None)
    assert model.inputs[0].name == inputs.name  # the source input, as keras.applications
    assert model.output_shape == (None, 7)
    assert model.layers[-1].activation.__name__ == "linear"


def test_unknown_size_with_top_and_other_channels():
    model = applications.SKNet29(input_shape=(None, None, 1), classes=100)
    assert model(np.zeros((1, 20, 28, 1), "float32")).shape == (1, 100)


def test_attention_of_every_unit_in_one_pass(rng):
    model = applications.SKNet50(include_top=False, input_shape=(64, 64, 3))

    @tf.function
    def forward(images):
        with record_attention() as attention:
            model(images, training=False)
        return attention

    attention = forward(rng.normal(size=(2, 64, 64, 3)).astype("float32"))
    assert len(attention) == 16
    assert attention["conv3_block4/sk"].shape == (2, 2, 256)
    assert attention["conv5_block3/sk"].shape == (2, 2, 1024)


def test_weights_file_round_trip(tmp_path, rng):
    model = applications.SKNet29(classes=5)
    randomize_batch_norms(model, rng)
    path = str(tmp_path / "sknet29.weights.h5")
    model.save_weights(path)
    reloaded = applications.SKNet29(classes=5, weights=path)
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="sknet29.weights.h5"):
        applications.ResNeXt29(classes=5, weights=path)


def test_family_builder_ablations():
    """Tables 6 and 7 are arguments of SKNet(), e.g. K3+K5+K7 without attention."""
    model = applications.SKNet(
        (1, 1), kernel_sizes=(3, 5, 7), attention=False, input_shape=(32, 32, 3), classes=3
    )
    sk = model.get_layer("conv2_block1").sk
    assert sk.num_paths == 3 and not sk.attention
    assert [c.dilation_rate for c in sk.path_convs] == [1, 2, 3]


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: applications.SKNet101(weights="imagenet"), "weights='imagenet'"),
        (lambda: applications.SKNet50(weights="imagenet", classes=10), "classes=10"),
        (lambda: applications.SKNet50(weights="imagenet", pooling="sum", include_top=False), "pooling='sum'"),
        (lambda: applications.SKNet50(weights="/no/such/file.weights.h5"), "/no/such/file.weights.h5"),
        (lambda: applications.SKNet50(weights=3), "weights=3"),
        (lambda: applications.SKNet50(include_top=False, pooling="sum"), "pooling='sum'"),
        (lambda: applications.SKNet50(input_shape=(16, 16, 3)), r"at least 32x32.*\(16, 16, 3\)"),
        (lambda: applications.SKNet29(input_shape=(2, 32, 3)), r"at least 4x4"),
        (lambda: applications.SKNet50(input_shape=(224, 224)), r"input_shape=\(224, 224\)"),
        (lambda: applications.SKNet50(input_shape=(224, 224, 0)), r"\(224, 224, 0\)"),
        (lambda: applications.SKNet50(classes=0), "classes=0"),
        (lambda: applications.SKNet50(classifier_activation="nope"), "nope"),
        (lambda: applications.SKNet50(include_top="yes"), "include_top='yes'"),
        (lambda: applications.SKNet50(input_tensor=np.zeros((1, 64, 64, 3))), "ndarray"),
        (lambda: applications.SKNet50(input_tensor=tf.zeros((1, 64, 64, 3))), "EagerTensor"),
        (
            lambda: applications.SKNet50(input_tensor=keras.Input((64, 64, 3)), input_shape=(32, 32, 3)),
            r"input_shape=\(32, 32, 3\)",
        ),
        (lambda: applications.ShuffleNetV2(alpha=0.75), "alpha=0.75"),
        (lambda: applications.ShuffleNetV2(stage_depths=(4, 8)), r"stage_depths=\(4, 8\)"),
        (lambda: applications.SKNet((3, 4), block="dense"), "block='dense'"),
        (lambda: applications.SKNet((3, 4), stem="tiny"), "stem='tiny'"),
        (lambda: applications.SKNet((3, 0)), "stage_depths=0"),
        (lambda: applications.SKNet((3, 4), kernel_sizes=(3, 4)), r"kernel_sizes=\(3, 4\)"),
        (lambda: applications.SKNet((3, 4), reduction=0), "reduction=0"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_channels_first_is_refused():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_first"):
            applications.SKNet29()
    finally:
        keras.config.set_image_data_format("channels_last")
