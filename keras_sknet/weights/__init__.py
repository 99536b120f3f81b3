"""Pretrained weights: timm checkpoints, their conversion, and `weights="imagenet"`.

- `PRETRAINED`, `pretrained_config(model)`: the public checkpoints (Hugging
  Face Hub, pinned revision) and their evaluation settings.
- `eval_transform(images, model)`: resize / centre-crop / normalise as the
  published accuracy was measured.
- `read_checkpoint(path)`: a timm checkpoint (`.safetensors` without
  PyTorch; PyTorch files with `torch.load(weights_only=True)`) as NumPy.
- `load_timm_state_dict(model, state_dict)`: convert into a built model,
  all or nothing; `CheckpointMismatchError` lists what does not fit.
  `timm_state_dict(model)` goes the other way.
- `load_keras_weights(model, path)`: a Keras weights file (or a `.keras` archive's
  weights) into a model, a file of another architecture told in one line.
- `check_output_file(path, overwrite)`: where a converted file goes, checked before
  any work (writable folder, no user's file replaced unless asked).
- `pretrained_weights_path(model)`: fetch, verify, convert and cache once.
- `CAFFE_WEIGHTS`, `caffe_weights_config(model)`: the authors' own Caffe
  weights of SKNet-50 / SKNet-101 (downloaded by the user, not shipped);
  `read_caffemodel(path)` reads a `.caffemodel` with NumPy and
  `load_caffe_blobs(model, blobs)` converts it; `SKNet50(weights="x.caffemodel")`
  does both.
- Command line: `python -m keras_sknet.weights convert CHECKPOINT --model SKNet50 --output x.weights.h5`.
"""

# ruff: noqa: F401  (_import_names imports the package's names and returns them as locals())

from keras_sknet.utils import cli


def _import_names():  # in `python -m keras_sknet.weights`, on first use (cli.import_names)
    from keras_sknet.weights.caffe_converter import caffe_weight_map, load_caffe_blobs, match_caffe_blobs
    from keras_sknet.weights.caffemodel import read_caffemodel
    from keras_sknet.weights.checkpoint import detect_format, read_checkpoint, sha256_of
    from keras_sknet.weights.download import cache_dir, pretrained_weights_path
    from keras_sknet.weights.keras_weights import load_keras_weights
    from keras_sknet.weights.output import check_output_file
    from keras_sknet.weights.preprocessing import eval_transform
    from keras_sknet.weights.registry import (
        CAFFE_WEIGHTS,
        PRETRAINED,
        TIMM_ARCHITECTURES,
        CaffeWeights,
        PretrainedConfig,
        caffe_weights_config,
        pretrained_config,
    )
    from keras_sknet.weights.safetensors_io import load_safetensors, save_safetensors
    from keras_sknet.weights.timm_converter import (
        CheckpointMismatchError,
        load_timm_state_dict,
        match_state_dict,
        timm_state_dict,
        timm_weight_map,
    )

    return locals()


__all__ = [
    "CAFFE_WEIGHTS",
    "PRETRAINED",
    "CaffeWeights",
    "CheckpointMismatchError",
    "PretrainedConfig",
    "TIMM_ARCHITECTURES",
    "cache_dir",
    "check_output_file",
    "caffe_weight_map",
    "caffe_weights_config",
    "detect_format",
    "eval_transform",
    "load_caffe_blobs",
    "load_keras_weights",
    "load_safetensors",
    "load_timm_state_dict",
    "match_caffe_blobs",
    "match_state_dict",
    "pretrained_config",
    "pretrained_weights_path",
    "read_caffemodel",
    "read_checkpoint",
    "save_safetensors",
    "sha256_of",
    "timm_state_dict",
    "timm_weight_map",
]

cli.import_names(globals(), _import_names)
