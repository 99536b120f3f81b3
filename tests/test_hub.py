"""keras_sknet.hub against keras-hub's own contract, and presets round trip.

keras-hub's `TestCase` checks (serialization, predict on tensors and datasets,
the backbone's name, mixed precision on every sublayer, int8/float8
quantization through a `DTypePolicyMap`, `.keras` saving, fit/predict of the
task with and without the preprocessor, `from_preset`) on a tiny backbone;
on tiny bottleneck and basic-block backbones; then a preset written by
`preset_from_weights` must give the logits of the zoo model with the same
weights (a .weights.h5, a random timm skresnet18 checkpoint, the same served
as `weights="imagenet"` by a local HTTP Hub mirror, a synthetic Caffe
SKNet-50), its converter must crop as `eval_transform`, and the fine-tuning
recipe of docs/backbones.md must train. Skipped without keras-hub unless
KERAS_SKNET_REQUIRE_HUB=1 (set by scripts/test.sh: CI fails instead).
"""

import functools
import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading

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
from keras_sknet.applications import sknet, skresnet  # noqa: E402
from keras_sknet.hub import (  # noqa: E402
    HUB_MODELS,
    SKNetBackbone,
    SKNetImageClassifier,
    SKNetImageClassifierPreprocessor,
    SKNetImageConverter,
    SKResNetBackbone,
    SKResNetImageClassifier,
    SKResNetImageClassifierPreprocessor,
    SKResNetImageConverter,
    backbone_class,
    preset_from_weights,
    write_pretrained_presets,
)
from keras_sknet.hub import presets as hub_presets  # noqa: E402
from keras_sknet.hub import tasks as hub_tasks  # noqa: E402
from keras_sknet.weights import eval_transform, registry  # noqa: E402
from tests.helpers import run_as_user  # noqa: E402

TINY = dict(stage_depths=(1, 1, 1, 1), cardinality=4, bottleneck_width=4, min_dim=8, image_shape=(32, 32, 3))
TINY_SKRESNET = dict(stage_depths=(1, 1, 1, 1), image_shape=(32, 32, 3))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_TIMM = all(importlib.util.find_spec(m) is not None for m in ("torch", "timm", "safetensors"))


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

    def test_cifar_stem_backbone(self):
        tiny = dict(stage_depths=(1, 1, 1), cardinality=2, bottleneck_width=4, kernel_sizes=(3, 1), min_dim=8)
        backbone = SKNetBackbone(**tiny, stem="cifar", reduction=32)
        pyramid = keras.Model(backbone.inputs, backbone.pyramid_outputs)
        reference = applications.feature_extractor(
            applications.SKNet(
                **tiny, stem="cifar", reduction=32, include_top=False, input_shape=(None, None, 3)
            )
        )
        reference.set_weights(pyramid.get_weights())
        x = applications.preprocess_input(_images(1, 16))
        ours, expected = pyramid(x), reference(x)
        self.assertEqual(list(ours), ["P0", "P1", "P2"])
        for level in expected:
            self.assertAllClose(ours[level], expected[level], atol=1e-5, rtol=1e-5)
        self.assertEqual(SKNetBackbone.from_config(backbone.get_config()).get_config(), backbone.get_config())

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
    with pytest.raises(ValueError, match="model_name='ShuffleNetV2SK'") as error:
        preset_from_weights("ShuffleNetV2SK", "imagenet", target)
    assert all(name in str(error.value) for name in HUB_MODELS)
    with pytest.raises(ValueError, match=r"`crop_pct` must be None .* or False .*Received: crop_pct=2"):
        preset_from_weights("SKNet26", None, target, crop_pct=2)
    assert (target / "keep.txt").read_text() == "old"


class SKResNetHubTest(TestCase):
    """The same keras-hub contract on the basic-block backbone and its own task classes."""

    def setUp(self):
        self.images = keras.ops.convert_to_tensor(_images())
        self.backbone = SKResNetBackbone(**TINY_SKRESNET)
        self.preprocessor = SKResNetImageClassifierPreprocessor(SKResNetImageConverter(image_size=(32, 32)))
        self.task_kwargs = dict(backbone=self.backbone, num_classes=3, preprocessor=self.preprocessor)

    def test_backbone_contract(self):
        self.run_vision_backbone_test(
            cls=SKResNetBackbone,
            init_kwargs=TINY_SKRESNET,
            input_data=self.images,
            expected_output_shape=(2, 1, 1, 512),
            expected_pyramid_output_keys=["P1", "P2", "P3", "P4", "P5"],
            expected_pyramid_image_sizes=[(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)],
            run_data_format_check=False,  # the zoo is channels-last only
        )

    def test_classifier_presets(self):
        # keras-hub's run_task_test is the SKNet classes' (above); these subclasses only change the
        # backbone class, which is what from_preset looks up.
        preset = os.path.join(self.get_temp_dir(), "tiny")
        SKResNetImageClassifier(**self.task_kwargs).save_to_preset(preset)
        self.run_preset_test(
            cls=SKResNetImageClassifier, preset=preset, input_data=self.images, expected_output_shape=(2, 3)
        )
        # keras-hub's base classes (and ours) find the SK-ResNet classes from the preset's backbone class.
        self.assertIsInstance(keras_hub.models.Backbone.from_preset(preset), SKResNetBackbone)
        self.assertIsInstance(keras_hub.models.ImageClassifier.from_preset(preset), SKResNetImageClassifier)
        self.assertIsInstance(SKNetImageClassifier.from_preset(preset), SKResNetImageClassifier)
        self.assertIsInstance(keras_hub.layers.ImageConverter.from_preset(preset), SKResNetImageConverter)

    def test_pyramid_is_the_zoo_feature_extractor(self):
        backbone = SKResNetBackbone(stage_depths=(1, 1, 1, 1), output_stride=16)
        reference = applications.feature_extractor(
            applications.SKResNet(
                (1, 1, 1, 1), include_top=False, input_shape=(None, None, 3), output_stride=16
            )
        )
        pyramid = keras.Model(backbone.inputs, backbone.pyramid_outputs)
        reference.set_weights(pyramid.get_weights())
        x = applications.preprocess_input(_images(1, 40))
        ours, expected = pyramid(x), reference(x)
        self.assertEqual(
            [tuple(v.shape[1:]) for v in ours.values()],
            [(20, 20, 64), (10, 10, 64), (5, 5, 128), (3, 3, 256), (3, 3, 512)],
        )
        for level in expected:
            self.assertAllClose(ours[level], expected[level], atol=1e-5, rtol=1e-5)


def test_hub_covers_every_sknet_and_skresnet_zoo_model():
    configs = {**sknet.MODEL_CONFIGS, **skresnet.MODEL_CONFIGS}
    assert sorted(name.lower() for name in HUB_MODELS) == sorted(configs)
    assert set(registry.PRETRAINED) <= set(HUB_MODELS)
    for name in HUB_MODELS:
        assert callable(getattr(applications, name))
        expected = SKResNetBackbone if name.lower() in skresnet.MODEL_CONFIGS else SKNetBackbone
        assert backbone_class(name) is expected
        assert hub_presets.backbone_arguments(name) == configs[name.lower()]


def test_write_pretrained_presets_covers_every_pretrained_model(monkeypatch, tmp_path):
    written = []
    monkeypatch.setattr(
        hub_presets,
        "preset_from_weights",
        lambda name, weights, path, **options: written.append((name, weights, path)) or path,
    )
    paths = write_pretrained_presets(tmp_path)
    assert [name for name, _, _ in written] == list(registry.PRETRAINED)
    assert all(weights == "imagenet" for _, weights, _ in written)
    assert paths == [str(tmp_path / name.lower()) for name in registry.PRETRAINED]


# --- The converter's centre crop against the weights' evaluation transform ---


@pytest.mark.parametrize("shape", [(45, 61), (70, 37)], ids=["landscape", "portrait"])
def test_converter_crop_matches_eval_transform(shape):
    import tensorflow as tf

    images = np.random.default_rng(5).integers(0, 256, (2, *shape, 3)).astype("float32")
    converter = SKNetImageConverter(
        image_size=(32, 32), crop_pct=0.875, interpolation="bicubic", antialias=True
    )
    expected = np.asarray(eval_transform(images, "SKResNet18", input_size=32))  # bicubic, 0.875
    np.testing.assert_allclose(converter(images), expected, atol=1e-5)
    np.testing.assert_allclose(converter(images[0]), expected[0], atol=1e-5)  # unbatched
    # In tf.data, one image at a time (unknown sides in the graph) and batched.
    per_image = np.stack(list(tf.data.Dataset.from_tensor_slices(images).map(converter).as_numpy_iterator()))
    np.testing.assert_allclose(per_image, expected, atol=1e-5)
    # BGR with the Caffe mean is preprocess_input(mode="caffe").
    caffe = SKNetImageConverter(
        image_size=(32, 32),
        crop_pct=0.875,
        interpolation="bilinear",
        antialias=True,
        channel_order="bgr",
        scale=(1.0, 1.0, 1.0),
        offset=(-104.0, -117.0, -123.0),
    )
    np.testing.assert_allclose(
        caffe(images),
        eval_transform(images, registry.CAFFE_WEIGHTS["SKNet50"], input_size=32),
        atol=1e-4,
    )
    # The crop travels in the config (and so in preprocessor.json).
    restored = SKNetImageConverter.from_config(caffe.get_config())
    assert (restored.crop_pct, restored.channel_order) == (0.875, "bgr")
    np.testing.assert_allclose(restored(images), caffe(images))
    # Without crop_pct: keras-hub's plain resize, as before (a crop would differ on these images).
    assert not np.allclose(
        SKNetImageConverter(image_size=(32, 32), interpolation="bicubic")(images), expected, atol=1e-2
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            dict(image_size=(32, 32), crop_pct=1.5),
            r"`crop_pct` must be None or a number in \(0, 1\].*crop_pct=1.5",
        ),
        (dict(image_size=(32, 32), crop_pct="0.9"), r"crop_pct='0.9'"),
        (dict(crop_pct=0.875), r"`crop_pct` needs `image_size`.*image_size=None"),
        (dict(channel_order="BGR"), r"`channel_order` must be one of \('rgb', 'bgr'\).*channel_order='BGR'"),
    ],
)
def test_converter_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SKNetImageConverter(**kwargs)


# --- Presets of real checkpoint formats: timm (a file, and served as weights="imagenet"), Caffe ---


def _zoo_logits(model_name, weights, images, size, model=None):
    """The zoo model's logits on the weights' evaluation transform of `images` (the independent path)."""
    net = getattr(applications, model_name)(
        weights=weights, classifier_activation=None, input_shape=(size, size, 3)
    )
    expected = np.asarray(net(eval_transform(images, model or model_name, input_size=size), training=False))
    assert expected.std(axis=1).min() > 1e-2  # the logits carry information: a wrong weight shows
    return expected


@pytest.fixture(scope="module")
def skresnet18_checkpoint(tmp_path_factory):
    """A random timm skresnet18 (randomised BatchNorm) as .safetensors, written by timm in a subprocess."""
    if not HAVE_TIMM:
        pytest.skip("needs the interop extra (torch, timm, safetensors)")
    from tests.support import TIMM_REFERENCE_SCRIPT

    out = tmp_path_factory.mktemp("timm")
    result = subprocess.run(
        [sys.executable, TIMM_REFERENCE_SCRIPT, "random", str(out), "--models", "skresnet18"]
        + ["--sizes", "32x32", "--batches", "1", "--seed", "0"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "skresnet18.safetensors"


def test_skresnet18_preset_from_a_timm_checkpoint(skresnet18_checkpoint, tmp_path):
    preset = preset_from_weights("SKResNet18", skresnet18_checkpoint, tmp_path / "skresnet18", image_size=32)
    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    assert isinstance(classifier, SKResNetImageClassifier)
    converter = classifier.preprocessor.image_converter
    config = registry.PRETRAINED["SKResNet18"]
    assert (converter.crop_pct, converter.interpolation) == (config.crop_pct, config.interpolation)
    images = _images(2, 45, seed=4)[:, :, :40]  # non-square: the centre crop matters
    expected = _zoo_logits("SKResNet18", str(skresnet18_checkpoint), images, 32)
    logits = classifier.predict(images, verbose=0)
    np.testing.assert_allclose(logits, expected, atol=1e-4 * np.abs(expected).max())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def hub_mirror(tmp_path, monkeypatch):
    """A local Hugging Face Hub mirror: http.server on 127.0.0.1, HF_ENDPOINT pointing at it."""
    root = tmp_path / "mirror"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    yield root
    server.shutdown()
    server.server_close()
    thread.join()


def test_imagenet_preset_downloads_through_the_command_line(skresnet18_checkpoint, hub_mirror, tmp_path):
    from keras_sknet.weights import cache_dir

    config = registry.PRETRAINED["SKResNet18"]
    served = hub_mirror / config.hf_repo / "resolve" / config.revision / config.filename
    assert config.url.endswith(f"/{config.hf_repo}/resolve/{config.revision}/{config.filename}")
    served.parent.mkdir(parents=True)
    served.write_bytes(skresnet18_checkpoint.read_bytes())

    # weights="imagenet"
    done = run_as_user(
        ["-m", "keras_sknet.hub", "presets", str(tmp_path / "presets"), "--model", "SKResNet18"], cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    preset = tmp_path / "presets" / "skresnet18"
    printed = done.stdout
    assert "Downloading data from http://127.0.0.1:" in printed  # keras.utils.get_file, from the mirror
    assert printed.split()[-1] == str(preset)
    assert str(tmp_path / "keras_home") in cache_dir()
    assert any(name.startswith("skresnet18") for name in os.listdir(cache_dir()))  # downloaded, converted
    metadata = keras_hub.src.utils.preset_utils.load_json(str(preset), "metadata.json")
    assert (
        metadata["keras_sknet"]["model"] == "SKResNet18" and metadata["keras_sknet"]["weights"] == "imagenet"
    )

    classifier = keras_hub.models.ImageClassifier.from_preset(str(preset))
    images = _images(1, 300, seed=6)[:, :, :260]  # the preset's own evaluation: 256 shorter side, centre 224
    expected = _zoo_logits("SKResNet18", str(skresnet18_checkpoint), images, 224)
    logits = classifier.predict(images, verbose=0)
    np.testing.assert_allclose(logits, expected, atol=1e-4 * np.abs(expected).max())


def test_sknet50_preset_from_the_official_caffe_weights(tmp_path):
    """A synthetic SKNet-50 caffemodel (the release's names and shapes) against a NumPy Caffe interpreter."""
    from tests.caffe_reference import random_blobs, release_layers, run_net, write_caffemodel

    layers = release_layers((3, 4, 6, 3), head="global")  # global pool: any input size, as the zoo's
    blobs = random_blobs(layers, seed=0)
    path = tmp_path / "SKNet-50.caffemodel"
    write_caffemodel(path, layers, blobs)
    preset = preset_from_weights("SKNet50", path, tmp_path / "sknet50_caffe", image_size=32)
    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    assert classifier.backbone.stem_pool == "caffe"
    converter = classifier.preprocessor.image_converter
    assert (converter.channel_order, converter.crop_pct) == ("bgr", 0.875)
    images = _images(2, 45, seed=7)[:, :40]
    caffe_input = eval_transform(images, registry.CAFFE_WEIGHTS["SKNet50"], input_size=32)  # BGR - mean
    expected = run_net(layers, blobs, np.transpose(np.asarray(caffe_input), (0, 3, 1, 2)))
    assert expected.std(axis=1).min() > 1e-2
    logits = classifier.predict(images, verbose=0)
    np.testing.assert_allclose(logits, expected, atol=1e-4 * np.abs(expected).max())
    with pytest.raises(ValueError, match="No official Caffe weights exist for 'ResNeXt50'"):
        preset_from_weights("ResNeXt50", path, tmp_path / "resnext50")


# --- The fine-tuning recipe of docs/backbones.md, run as written ---


def _recipe_parts():
    """The recipe's code block, split into setup, phase 1 (frozen backbone) and phase 2 (everything)."""
    docs = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "backbones.md")
    with open(docs) as f:
        text = f.read()
    section = text[text.index("## Fine-tuning on a folder of images") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    frozen, unfrozen = "backbone.trainable = False", "backbone.trainable = True"
    assert code.count(frozen) == code.count(unfrozen) == 1, "the recipe's two phases moved"
    setup, rest = code.split(frozen)
    phase1, phase2 = rest.split(unfrozen)
    return setup, frozen + phase1, unfrozen + phase2


def test_fine_tuning_recipe_of_the_docs_trains(tmp_path):
    rng = np.random.default_rng(8)
    for label in ("cats", "dogs"):
        (tmp_path / "train" / label).mkdir(parents=True)
        for i in range(4):  # 8 images of 40 x 48: the recipe's image_size resizes them
            keras.utils.save_img(tmp_path / "train" / label / f"{i}.png", rng.integers(0, 256, (40, 48, 3)))
    substitutions = {
        '"photos/train"': repr(str(tmp_path / "train")),
        "image_size=(224, 224)": "image_size=(32, 32)",
        "batch_size=32": "batch_size=4",  # two steps per phase
        'weights="imagenet"': "weights=None",  # offline: no download in the tests
        "epochs=5": "epochs=1",
        # SK-ResNet-18's builder with one unit per stage: the same layers and freezing, half the
        # units, and 10 s less of TensorFlow tracing the second phase's gradients on one core.
        "backbone = SKResNet18(": "backbone = SKResNet((1, 1, 1, 1), ",
        "import SKResNet18,": "import SKResNet, SKResNet18,",
    }
    parts = list(_recipe_parts())
    for old, new in substitutions.items():
        assert any(old in part for part in parts), f"the recipe no longer has {old}"
        parts = [part.replace(old, new) for part in parts]
    setup, phase1, phase2 = parts

    keras.utils.set_random_seed(9)
    namespace = {}
    exec(setup, namespace)
    backbone, model = namespace["backbone"], namespace["model"]
    assert model.output_shape == (None, 2)  # one logit per class folder
    before = [w.numpy().copy() for w in backbone.weights]
    head_before = [w.numpy().copy() for w in model.layers[-1].weights]

    exec(phase1, namespace)
    assert np.all(np.isfinite(model.history.history["loss"]))
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, backbone.weights))  # BN statistics too
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(head_before, model.layers[-1].weights))

    exec(phase2, namespace)
    assert np.all(np.isfinite(model.history.history["loss"]))
    changed = [not np.array_equal(a, w.numpy()) for a, w in zip(before, backbone.weights)]
    trainable = {id(w) for w in backbone.trainable_weights}
    assert all(c for c, w in zip(changed, backbone.weights) if id(w) in trainable and "kernel" in w.path)


OTHER_BACKENDS = ("jax", "torch")


@pytest.fixture(scope="module")
def backend_runs(tmp_path_factory):
    """A preset written here (TensorFlow), loaded and saved again on JAX and on PyTorch, both at once.

    The preprocessor takes the longest path: a non-square uint8 image resized and centre-cropped
    (`crop_pct`), channels reversed, normalised. The weights are random, BatchNorm statistics too.
    """
    from tests.helpers import missing_backends, randomize_batch_norms, subprocess_environment

    missing = missing_backends(OTHER_BACKENDS)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (pip install -e .[jax,torch])")

    root = tmp_path_factory.mktemp("hub_backends")
    backbone = SKNetBackbone(**TINY)
    randomize_batch_norms(backbone, np.random.default_rng(5))
    converter = SKNetImageConverter(image_size=(32, 32), crop_pct=0.875, channel_order="bgr", antialias=True)
    classifier = SKNetImageClassifier(
        backbone=backbone, num_classes=7, preprocessor=SKNetImageClassifierPreprocessor(converter)
    )
    classifier.save_to_preset(str(root / "preset"))
    images = np.random.default_rng(6).integers(0, 256, (3, 45, 37, 3)).astype("uint8")
    preprocessed = keras.ops.convert_to_numpy(classifier.preprocessor(images))
    np.savez(root / "images.npz", images=images, preprocessed=preprocessed)
    started = {}
    for backend in OTHER_BACKENDS:
        backend_env = subprocess_environment(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        if backend == "jax":
            # XLA's CPU optimisations took most of the JAX run's minute and change no result checked.
            backend_env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
        command = [sys.executable, "-m", "tests.hub_backend_worker", str(root / "preset")]
        command += [str(root / "images.npz"), str(root / backend)]
        started[backend] = subprocess.Popen(
            command, cwd=ROOT, env=backend_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    runs = {}
    for backend, process in started.items():
        text, _ = process.communicate(timeout=600)
        runs[backend] = (process.returncode, text, root / backend)
    pyramid = keras.Model(backbone.inputs, backbone.pyramid_outputs)
    expected = {name: keras.ops.convert_to_numpy(v) for name, v in pyramid(preprocessed).items()}
    expected["logits"] = classifier.predict(images, batch_size=len(images), verbose=0)
    expected["preprocessed"] = preprocessed
    return runs, expected, images, classifier


def _outputs(backend_runs, backend):
    runs, expected, images, classifier = backend_runs
    returncode, text, output = runs[backend]
    assert returncode == 0, text[-6000:]
    with open(output / "outputs.json") as f:
        described = json.load(f)
    return described, dict(np.load(output / "outputs.npz")), expected, images, output, classifier


@pytest.mark.numerics
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_preset_written_on_tensorflow_runs_on_backend(backend_runs, backend):
    """keras-hub's from_preset on JAX and PyTorch gives our classes, the same preprocessing and outputs."""
    described, got, expected, _, _, classifier = _outputs(backend_runs, backend)
    assert described == {
        "backend": backend,
        "classifier": "SKNetImageClassifier",
        "backbone": "SKNetBackbone",
    }
    assert sorted(got) == sorted(expected) and "P5" in got
    for name, want in expected.items():
        scale = np.abs(want).max()
        assert scale > 0 and np.abs(want).std() > 0, name  # a real comparison, not of zeros
        if name.startswith("P"):  # the pyramid, on the same inputs
            np.testing.assert_allclose(got[name], want, atol=1e-4 * scale, err_msg=name)
    # keras-hub's predict preprocesses in its input pipeline: in tf.data (TensorFlow's resize, as
    # here) or, where grain is installed, eagerly on this backend's ops (the worker's
    # `preprocessed`). Its logits are the model's on one of the two.
    scale = np.abs(expected["logits"]).max()
    candidates = {
        "tf.data": expected["logits"],
        "eager": keras.ops.convert_to_numpy(classifier(got["preprocessed"])),
    }
    distances = {path: float(np.abs(got["logits"] - want).max()) for path, want in candidates.items()}
    assert min(distances.values()) <= 1e-4 * scale, (distances, scale)
    # Called eagerly the converter runs this backend's resize, which rounds a few pixels to the
    # neighbouring grey level (docs/backbones.md): at most one grey level, on few values.
    grey_level = max(hub_tasks.DEFAULT_SCALE)  # one step of the [0, 255] input, normalised
    difference = np.abs(got["preprocessed"] - expected["preprocessed"])
    assert difference.max() <= grey_level * 1.001 + 1e-5, (difference.max(), grey_level)
    assert np.mean(difference > 1e-4) <= 0.01, np.mean(difference > 1e-4)


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_preset_saved_on_backend_loads_here(backend_runs, backend):
    """The preset saved again on JAX / PyTorch loads here: the same converter, weights and outputs."""
    _, got, _, _, output, classifier = _outputs(backend_runs, backend)
    loaded = keras_hub.models.ImageClassifier.from_preset(str(output / "preset"))
    assert isinstance(loaded, SKNetImageClassifier)
    assert (
        loaded.preprocessor.image_converter.get_config()
        == classifier.preprocessor.image_converter.get_config()
    )
    for saved, original in zip(loaded.get_weights(), classifier.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, original)  # a round trip: nothing changed on the way
    logits = keras.ops.convert_to_numpy(loaded(got["preprocessed"]))
    expected_logits = keras.ops.convert_to_numpy(classifier(got["preprocessed"]))
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5 * np.abs(expected_logits).max())
    assert np.abs(expected_logits).std() > 0
