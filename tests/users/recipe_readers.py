"""What the reader of README.md and docs/*.md has, so that their ```python blocks run as printed.

`tests/users/test_recipes.py` runs each page's blocks, in page order and in one namespace, as a
reader pastes them: `python -m tests.users.recipe_readers PAGE` in a fresh folder (the reader's,
with a fresh home). Before the first block, the page's reader function below puts there what the
page takes for granted, and returns the variables the reader already has in memory:

- files: `dog.jpg`, `cat.jpg`, `photos/` (flat, or one sub-folder per class), a timm checkpoint
  `model.safetensors`, the official Caffe files, their own `.weights.h5`: small generated JPEGs
  and random weights of the right architecture;
- variables: `images`, `labels`, `model`, `train_images`, ...: small NumPy arrays (32-64 px where
  the model takes any size, 224 where it is built for 224), and a small classifier fitted to
  synthetic classes where a page starts from "a trained Keras model";
- datasets in `~/tensorflow_datasets`: ImageNet prepared from its tars, CIFAR-100 downloaded,
  scales_demo generated, each as a TFDS-prepared folder with a few random examples
  (`write_prepared_tfds`);
- the network: `weights="imagenet"` downloads from a Hugging Face Hub mirror on this machine
  (`HF_ENDPOINT=file://...`, the switch `keras_sknet.weights.registry` reads) serving timm-layout
  checkpoints of random weights, written once by `write_hub_mirror`. The registry pins no sha256,
  so the first download is verified by structure and recorded, as a reader's is. Keras' ImageNet
  class index, which `decode_predictions` fetches with a pinned md5, is not on this machine: a
  stand-in with the same wordnet ids is served instead (`stand_in_class_index`).

A block that cannot run here starts with `# not run: <reason>` and is skipped (and counted).
"""

import os
import re
import sys
import time
import traceback

import numpy as np

from tests.helpers import REPOSITORY

BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
NOT_RUN = "# not run:"
MIRROR = "RECIPES_HUB_MIRROR"  # the folder write_hub_mirror filled (HF_ENDPOINT points at it)
HUB_MODELS = ("SKNet50", "SKResNet18")
# A page's limit. README.md exports SKNet-50 five ways (int8 calibrates on 100 images at 224):
# minutes on 2 busy cores.
RECIPE_TIMEOUT_S = 1800  # the models whose weights="imagenet" the pages ask for


def python_blocks(page):
    """The ```python blocks of `page` (relative to the repository): [(first line number, source)]."""
    with open(os.path.join(REPOSITORY, page), encoding="utf-8") as f:
        text = f.read()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


# --- the reader's files -------------------------------------------------------------------------


def class_images(count, size, seed=0, num_classes=10):
    """`(images, labels)`: float32 RGB [0, 255] images whose class sets colour and stripes."""
    from tests.support import synthetic

    return synthetic.class_images(count, size, seed, num_classes=num_classes)


def write_jpegs(folder, images, prefix="img"):
    """Writes each of `images` (RGB [0, 255]) as `folder/<prefix>_<i>.jpg`."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(np.asarray(image).astype("uint8")).save(os.path.join(folder, f"{prefix}_{i:03d}.jpg"))


def write_photo(path, size=(240, 180), seed=0):
    """A JPEG photo of `size` (width, height) at `path`."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype="uint8")
    Image.fromarray(pixels).save(path)


def write_class_folders(root, per_class, size, classes=("cats", "dogs"), seed=0):
    """`root/<class>/*.jpg`: `per_class` small JPEGs per class."""
    images, _ = class_images(per_class * len(classes), size, seed, num_classes=len(classes))
    for i, name in enumerate(classes):
        write_jpegs(os.path.join(root, name), images[i * per_class : (i + 1) * per_class], prefix=name)


def fitted_classifier(model, images, labels, num_classes=10):
    """`model` with its `predictions` layer fitted to `labels` (a reader's trained classifier)."""
    from tests.support import synthetic

    synthetic.fit_classifier(model, images, labels, num_classes=num_classes)
    return model


def write_hub_mirror(root):
    """A Hub mirror at `root` (`<repo>/resolve/<revision>/<file>`) with random timm checkpoints."""
    from keras_sknet import applications, weights
    from keras_sknet.weights.safetensors_io import save_safetensors

    for name in HUB_MODELS:
        config = weights.PRETRAINED[name]
        path = os.path.join(root, config.hf_repo, "resolve", config.revision, config.filename)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        model = getattr(applications, name)()
        # Trained nets' pooled features share a large positive part (they follow a ReLU); random
        # ones hardly do, and a head trained for a few steps on them (README's) then has top-1
        # margins that int8 rounding flips. The last unit's last BatchNorm offset gives them one.
        beta = [w for w in model.weights if w.path.endswith("beta") and "/sk/" not in w.path][-1]
        beta.assign(np.full(beta.shape, 10.0, "float32"))
        save_safetensors(path + ".tmp", weights.timm_state_dict(model))
        os.replace(path + ".tmp", path)


def _stand_in_example(features, rng):
    import tensorflow_datasets as tfds

    example = {}
    for key, feature in features.items():
        if isinstance(feature, tfds.features.Image):
            example[key] = rng.integers(0, 256, tuple(d or 40 for d in feature.shape), dtype="uint8")
        elif isinstance(feature, tfds.features.ClassLabel):
            example[key] = int(rng.integers(0, feature.num_classes))
        elif isinstance(feature, tfds.features.Text):
            example[key] = "stand-in"
        elif isinstance(feature, tfds.features.Scalar):
            example[key] = np.ones((), feature.np_dtype)
        else:
            raise ValueError(f"No stand-in for the feature {key!r} of this dataset: {feature!r}")
    return example


def write_prepared_tfds(data_dir, name, splits, count=4):
    """`data_dir/<name>/<version>/` as TFDS leaves a prepared dataset, with `count` random examples per split.

    The registered builder `name` then finds it prepared and reads it (its features, version and
    file names), as it reads a dataset the reader downloaded and prepared (ImageNet from its tars).
    """
    import json
    import shutil
    import tempfile

    import tensorflow_datasets as tfds

    data_dir = os.path.expanduser(data_dir)
    real = tfds.builder(name, data_dir=data_dir)
    features = real.info.features
    stand_in = f"recipe_stand_in_{name}"

    class StandIn(tfds.core.GeneratorBasedBuilder):
        name = stand_in
        VERSION = real.version

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=features, supervised_keys=real.info.supervised_keys
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(seed) for seed, split in enumerate(splits)}

        def _generate_examples(self, seed):
            rng = np.random.default_rng(seed)
            for i in range(count):
                yield i, _stand_in_example(features, rng)

    work = tempfile.mkdtemp()
    try:
        StandIn(data_dir=work).download_and_prepare()
        target = real.data_dir  # data_dir/name[/config]/version
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(os.path.join(work, stand_in, str(real.version)), target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for file in os.listdir(target):
        if file.startswith(stand_in):
            os.rename(os.path.join(target, file), os.path.join(target, name + file[len(stand_in) :]))
    info_path = os.path.join(target, "dataset_info.json")
    with open(info_path) as f:
        info = json.load(f)
    info["name"] = real.name
    if real.builder_config is not None:
        info["configName"] = real.builder_config.name
    with open(info_path, "w") as f:
        json.dump(info, f)


def stand_in_class_index(folder):
    """`decode_predictions` fetches Keras' ImageNet class index from storage.googleapis.com, pinned by
    its md5; that file is not on this machine. A local index with the same wordnet ids in the same
    order (TFDS's ImageNet labels; each name is its id) stands in for the server: the function's
    default origin and md5 point at it, in this process only."""
    import hashlib
    import json

    import tensorflow_datasets as tfds

    from keras_sknet.applications import imagenet_utils

    ids = tfds.builder("imagenet2012").info.features["label"].names
    path = os.path.join(folder, "imagenet_class_index.json")
    with open(path, "w") as f:
        json.dump({str(i): [wnid, wnid] for i, wnid in enumerate(ids)}, f)
    with open(path, "rb") as f:
        md5 = hashlib.md5(f.read()).hexdigest()
    path_arg, _, _, cache_dir = imagenet_utils.load_class_index.__defaults__
    imagenet_utils.load_class_index.__defaults__ = (
        path_arg,
        "file://" + os.path.abspath(path),
        md5,
        cache_dir,
    )


def mirrored_checkpoint(name):
    """The mirror's checkpoint file of model `name` (a timm file the reader downloaded)."""
    from keras_sknet import weights

    config = weights.PRETRAINED[name]
    return os.path.join(os.environ[MIRROR], config.hf_repo, "resolve", config.revision, config.filename)


# --- each page's reader -------------------------------------------------------------------------


def readme():
    """A dog photo, preprocessed training images of 10 classes, 130 photos (int8 calibration), images."""
    stand_in_class_index(os.environ[MIRROR])
    write_photo("dog.jpg")
    photos, _ = class_images(130, 48, seed=1)
    write_jpegs("photos", photos)
    from keras_sknet.applications import preprocess_input

    train_images, train_labels = class_images(16, 64, seed=2)
    images, _ = class_images(2, 64, seed=3)
    return dict(train_images=preprocess_input(train_images), train_labels=train_labels, images=images)


def analysis():
    """A trained model with SK units, centred-object images (preprocessed) and their labels."""
    from keras_sknet.applications import SKNet, preprocess_input

    images, labels = class_images(12, 64, seed=1, num_classes=3)
    model = SKNet((1, 1, 1, 1), input_shape=(64, 64, 3), classes=3)
    fitted_classifier(model, images, labels, num_classes=3)
    return dict(model=model, images=preprocess_input(images), labels=labels)


def backbones():
    """Images to read maps from (64 px: sides divisible by 32); photos/train/<class>/*.jpg to fine-tune on."""
    write_class_folders("photos/train", per_class=1, size=40)
    images, _ = class_images(1, 64, seed=1)
    return dict(images=images)


def export():
    """A trained classifier (a one-unit-per-stage SKNet at 32 px), 140 photos, a JPEG."""
    from keras_sknet.applications import SKNet

    model = SKNet((1, 1), input_shape=(32, 32, 3), classes=10)
    fitted_classifier(model, *class_images(200, 32, seed=1))
    images, _ = class_images(140, 32, seed=2)
    write_photo("cat.jpg", size=(50, 40))
    return dict(model=model, images=images, photos_uint8=images[:4].astype("uint8"))


def paper():
    """Images at the models' 224 px, and a 64-channel feature map `x` for the layers."""
    images, _ = class_images(1, 224, seed=1)
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 64)).astype("float32")
    return dict(images=images, x=x)


def training():
    """photos/<class>/*.jpg (split into train and validation by the pipeline); in ~/tensorflow_datasets
    ImageNet prepared (from the tars in ~/imagenet_tars), CIFAR-100 downloaded, scales_demo generated;
    in memory `my_uint8_images` and `my_labels` (the reader's own images, for the pipeline's stages)."""
    write_class_folders("photos", per_class=12, size=48)
    write_prepared_tfds("~/tensorflow_datasets", "imagenet2012", ("train", "validation"))
    write_prepared_tfds("~/tensorflow_datasets", "cifar100", ("train", "test"))
    # scales_demo as the demo (scripts/demo.sh) left it: generating it here would take minutes.
    import training.data  # noqa: F401 (registers scales_demo with TFDS)

    write_prepared_tfds("~/tensorflow_datasets", "scales_demo", ("train", "validation", "test"))
    rng = np.random.default_rng(0)
    return {
        "my_uint8_images": rng.integers(0, 256, (16, 150, 150, 3), dtype=np.uint8),
        "my_labels": rng.integers(0, 10, 16, dtype=np.int32),
    }


def weights():
    """A timm checkpoint, own Keras weights, the official Caffe files, dog.jpg, images, a dataset."""
    import shutil

    import tensorflow as tf

    from keras_sknet.applications import MODEL_CONFIGS, SKNet, SKNet50
    from tests.caffe_reference import random_blobs, release_layers, write_caffemodel

    shutil.copy(mirrored_checkpoint("SKNet50"), "model.safetensors")
    SKNet50().save_weights("my_run.weights.h5")
    for name, depths, fuse_dims in (
        ("SKNet-50", (3, 4, 6, 3), None),
        ("SKNet-101", (3, 4, 23, 3), (32, 16, 32, 64)),
    ):
        layers = release_layers(depths, fuse_dims=fuse_dims)
        write_caffemodel(f"{name}.caffemodel", layers, random_blobs(layers, seed=0))
    # What the page's `python -m keras_sknet.weights convert SKNet-50.caffemodel ...` writes: weights of
    # the release's architecture.
    SKNet(**MODEL_CONFIGS["sknet50"], stem_pool="caffe").save_weights("sknet50_caffe.weights.h5")
    write_photo("dog.jpg")
    images, labels = class_images(2, 224, seed=1)
    dataset = tf.data.Dataset.from_tensor_slices((images.astype("uint8"), labels))
    return dict(images=images, dataset=dataset)


READERS = {
    "README.md": readme,
    "docs/analysis.md": analysis,
    "docs/backbones.md": backbones,
    "docs/export.md": export,
    "docs/paper.md": paper,
    "docs/training.md": training,
    "docs/weights.md": weights,
}


# --- the reader pasting the blocks --------------------------------------------------------------


def run_page(page):
    """Runs `page`'s blocks in order in one namespace, after its reader; prints each block's time.

    Prints `@@ start LINE` before and `@@ done LINE SECONDS` (or `@@ not-run LINE 0`) after each
    block, and `@@ reader 0 SECONDS`; a failing block's traceback names the page and its lines.
    """
    start = time.perf_counter()
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    namespace.update(READERS[page]())
    print(f"@@ reader 0 {time.perf_counter() - start:.1f}", flush=True)
    for line, source in python_blocks(page):
        if source.lstrip().startswith(NOT_RUN):
            print(f"@@ not-run {line} 0", flush=True)
            continue
        print(f"@@ start {line}", flush=True)
        start = time.perf_counter()
        # Padded to its place in the page, so that a traceback shows the page's own line numbers.
        code = compile("\n" * (line - 1) + source, os.path.join(REPOSITORY, page), "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            traceback.print_exception(type(error), error, error.__traceback__.tb_next)  # from the page's line
            raise SystemExit(1) from None
        print(f"@@ done {line} {time.perf_counter() - start:.1f}", flush=True)


def main(argv):
    if argv[:1] == ["--hub-mirror"]:
        write_hub_mirror(argv[1])
        return 0
    run_page(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
