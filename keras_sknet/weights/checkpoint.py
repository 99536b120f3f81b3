"""Reading timm checkpoints: `.safetensors` with NumPy, PyTorch files safely.

`.safetensors` needs nothing beyond NumPy. PyTorch files (`.pth`, `.pt`,
`.bin`, `.ckpt`) are read with `torch.load(..., weights_only=True)`, which only
rebuilds tensors and plain containers and refuses to run code stored in the
pickle; they need PyTorch (`pip install keras-sknet[interop]`).
"""

import hashlib
import os
import zipfile

import numpy as np

from keras_sknet.weights.safetensors_io import load_safetensors, read_header

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
CAFFE_SUFFIX = ".caffemodel"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Training checkpoints wrap the weights: {"state_dict": {...}, "optimizer": ...}.
_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


def sha256_of(path, chunk_size=1 << 20):
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_caffemodel_path(path):
    """Whether `weights` names a Caffe model (by its `.caffemodel` suffix, as Caffe writes them)."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(CAFFE_SUFFIX)


def detect_format(path):
    """Tells a Keras weights file from a timm checkpoint or a Caffe model.

    Args:
        path: an existing file.

    Returns:
        `"keras"` (`.weights.h5` / `.keras`), `"safetensors"`, `"torch"` or
        `"caffe"` (`.caffemodel`, the official SKNet release).

    Raises:
        ValueError: the file is none of these.
    """
    path = os.fspath(path)
    lower = path.lower()
    with open(path, "rb") as f:
        head = f.read(8)
    if lower.endswith(CAFFE_SUFFIX):
        return "caffe"
    if lower.endswith(KERAS_SUFFIXES) or head == _HDF5_MAGIC:
        return "keras"
    if lower.endswith(".safetensors"):
        return "safetensors"
    if lower.endswith(TORCH_SUFFIXES) or head.startswith(b"PK") or head[:1] == b"\x80":
        return "torch"
    try:
        read_header(path)
        return "safetensors"
    except ValueError:
        pass
    raise ValueError(
        f"{path!r} is not a recognised weights file. Accepted: a Keras weights file "
        "(`.weights.h5`), a timm checkpoint as `.safetensors`, a PyTorch state dict "
        f"({', '.join(TORCH_SUFFIXES)}), or an official Caffe SKNet model ({CAFFE_SUFFIX})."
    )


def _load_torch(path):
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading the PyTorch file {path!r} needs PyTorch: `pip install keras-sknet[interop]`, "
            "or convert it to .safetensors first."
        ) from error
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            if f.read(1) != b"\x80":
                raise ValueError(f"{path!r} is not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        # weights_only=True: tensors and containers only, no code from the file is run.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, bad pickle, forbidden globals, ...
        raise ValueError(f"Could not read the PyTorch checkpoint {path!r}: {error}") from error
    if isinstance(state, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} does not hold a state dict (found a {type(state).__name__})")
    arrays = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                value = value.float()
            arrays[str(name)] = value.numpy()
    return arrays


def read_checkpoint(path):
    """Reads a timm checkpoint into NumPy arrays, keyed as timm's `state_dict()`.

    Args:
        path: a `.safetensors` file or a PyTorch state dict (also a training
            checkpoint holding one under "state_dict", "model", ...).
            DataParallel's "module." prefixes are removed.

    Returns:
        `{name: np.ndarray}`.

    Raises:
        ValueError: a truncated, corrupted or foreign file.

    Example:
        >>> state = read_checkpoint("model.safetensors")
        >>> state["fc.weight"].shape
        (1000, 2048)
    """
    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt in ("keras", "caffe"):
        raise ValueError(
            f"{path!r} is a {'Keras weights file' if fmt == 'keras' else 'Caffe model'}, not a timm checkpoint"
        )
    arrays = load_safetensors(path) if fmt == "safetensors" else _load_torch(path)
    if arrays and all(name.startswith("module.") for name in arrays):
        arrays = {name[len("module.") :]: value for name, value in arrays.items()}
    return {name: np.asarray(value) for name, value in arrays.items()}
