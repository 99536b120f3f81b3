"""keras_sknet.hub against keras-hub's own contract, and presets round trip.

keras-hub's `TestCase` checks (serialization, predict on tensors and datasets,
the backbone's name, mixed precision on every sublayer, int8/float8
quantization through a `DTypePolicyMap`, `.keras` saving, fit/predict of the
task with and without the preprocessor, `from_preset`) on a tiny backbone;
then a preset written by `preset_from_weights` must give the logits of the
zoo model with the same weights. Skipped without keras-hub unless
KERAS_SKNET_REQUIRE_HUB=1 (set by scripts/test.sh: CI fails instead).
"""

import importlib.util
import os

import pytest

if importlib.util.find_spec("keras_hub") is None:
    if os.environ.get("KERAS_SKNET_REQUIRE_HUB") == "1":
        raise ImportError("KERAS_SKNET_REQUIRE_HUB=1 but keras_hub is not installed (the hub extra)")
    pytest.skip(
        "keras_sknet.hub needs keras-hub: pip install -e .[hub] && pip install --no-deps keras-hub==0.32.0",
        allow_module_level=True,
    )

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
from keras_hub.src.tests.test_case import TestCase  # noqa: E402

from keras_sknet import applications  # noqa: E402
from keras_sknet.hub import (  # noqa: E402
    HUB_MODELS,
    SKNetBackbone,
    SKNetImageClassifier,
    SKNetImageClassifierPreprocessor,
    SKNetImageConverter,
    preset_from_weights,
)

TINY = dict(stage_depths=(1, 1, 1, 1), cardinality=4, bottleneck_width=4, min_dim=8, image_shape=(32, 32, 3))


def _images(batch=2, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


class SKNetHubTest(TestCase):
    def setUp(self):
        self.images = keras.ops.convert_to_tensor(_images())  # a backend tensor, as keras-hub's tests pass
        self.backbone = SKNetBackbone(**TINY)
        self.preprocessor = SKNetImageClassifierPreprocessor(SKNetImageConverter(image_size=(32, 32)))
        self.task_kwargs = dict(backbone=self.backbone, num_classes=3, preprocessor=self.preprocessor)

    def test_backbone_contract(self):
        self.run_vision_backbone_test(
            cls=SKNetBackbone,
            init_kwargs=TINY,
            input_data=self.images,
            expected_output_shape=(2, 1, 1, 2048),
            expected_pyramid_output_keys=["P1", "P2", "P3", "P4", "P5"],
            expected_pyramid_image_sizes=[(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)],
            run_data_format_check=False,  # the zoo is channels-last only
        )

    def test_backbone_saving(self):
        self.run_model_saving_test(cls=SKNetBackbone, init_kwargs=TINY, input_data=self.images)

    def test_classifier_task(self):
        self.run_task_test(
            cls=SKNetImageClassifier,
            init_kwargs=self.task_kwargs,
            train_data=(self.images, np.array([0, 2])),
            expected_output_shape=(2, 3),
        )

    def test_presets(self):
        preset = os.path.join(self.get_temp_dir(), "tiny")
        SKNetImageClassifier(**self.task_kwargs).save_to_preset(preset)
        self.run_preset_test(
            cls=SKNetImageClassifier, preset=preset, input_data=self.images, expected_output_shape=(2, 3)
        )
        self.run_preset_test(
            cls=SKNetBackbone, preset=preset, input_data=self.images, expected_output_shape=(2, 1, 1, 2048)
        )
        # keras-hub's own base classes find ours from the registered names.
        self.assertIsInstance(keras_hub.models.Backbone.from_preset(preset), SKNetBackbone)
        self.assertIsInstance(keras_hub.models.ImageClassifier.from_preset(preset), SKNetImageClassifier)

    def test_output_stride_and_pyramid_match_the_zoo(self):
        backbone = SKNetBackbone(**{**TINY, "image_shape": (None, None, 3), "output_stride": 8})
        net = applications.SKNet(
            (1, 1, 1, 1), cardinality=4, bottleneck_width=4, min_dim=8, include_top=False
        )
        for layer in net.layers:
            if layer.weights:
                layer.set_weights(backbone.get_layer(layer.name).get_weights())
        x = applications.preprocess_input(_images(1, 40))
        ours = keras.Model(backbone.inputs, backbone.pyramid_outputs)(x)
        reference = applications.feature_extractor(
            applications.SKNet(
                (1, 1, 1, 1), cardinality=4, bottleneck_width=4, min_dim=8, include_top=False, output_stride=8
            )
        )
        reference.set_weights(keras.Model(backbone.inputs, backbone.pyramid_outputs).get_weights())
        expected = reference(x)
        self.assertEqual(
            [tuple(v.shape[1:3]) for v in ours.values()], [(20, 20), (10, 10), (5, 5), (5, 5), (5, 5)]
        )
        for level in expected:
            self.assertAllClose(ours[level], expected[level], atol=1e-5, rtol=1e-5)

    def test_converter_is_preprocess_input(self):
        images = _images()
        self.assertAllClose(SKNetImageConverter()(images), applications.preprocess_input(images), atol=1e-5)


@pytest.fixture(scope="module")
def sknet26_weights(tmp_path_factory):
    """A random SKNet-26 with 5 classes and its .weights.h5."""
    keras.utils.set_random_seed(1)
    net = applications.SKNet26(classes=5, classifier_activation=None, input_shape=(32, 32, 3))
    # Non-trivial BatchNorm statistics and classifier (zero-initialised), so that copying them is checked.
    rng = np.random.default_rng(2)
    for weight in net.weights:
        if "moving" in weight.path or "predictions" in weight.path:
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    path = tmp_path_factory.mktemp("hub") / "sknet26.weights.h5"
    net.save_weights(path)
    return net, path


def test_preset_round_trip_gives_the_zoo_logits(sknet26_weights, tmp_path):
    net, path = sknet26_weights
    preset = preset_from_weights("SKNet26", path, tmp_path / "sknet26", classes=5, image_size=32)
    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    assert isinstance(classifier, SKNetImageClassifier)
    assert isinstance(keras_hub.models.Backbone.from_preset(preset), SKNetBackbone)
    images = _images(2, 32, seed=3)
    expected = keras.ops.convert_to_numpy(net(applications.preprocess_input(images)))
    logits = classifier.predict(images, verbose=0)  # the preset's preprocessor: preprocess_input
    scale = np.abs(expected).max()
    np.testing.assert_allclose(logits, expected, atol=1e-4 * scale)
    assert np.abs(expected).std() > 0  # a real comparison, not of zeros


def test_preset_refuses_other_models_and_keeps_the_folder(tmp_path):
    target = tmp_path / "preset"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(ValueError, match="SKResNet18.*|model_name") as error:
        preset_from_weights("SKResNet18", "imagenet", target)
    assert all(name in str(error.value) for name in HUB_MODELS)
    assert (target / "keep.txt").read_text() == "old"
