"""Reading and writing `.safetensors` files with NumPy alone (no PyTorch).

The format (https://github.com/huggingface/safetensors): an 8-byte
little-endian header length N, N bytes of UTF-8 JSON mapping each tensor name
to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets into the byte
buffer that follows; an optional `"__metadata__"` entry maps strings to
strings), then the buffer. Every check below turns a truncated, corrupted or
foreign file into a `ValueError` that names the file, before any tensor is
used.
"""

import json
import os
import struct

import numpy as np

from keras_sknet.utils.files import atomic_path

# safetensors dtype -> NumPy dtype (BF16 is read as uint16 and widened to float32).
DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
_NUMPY_TO_SAFETENSORS = {np.dtype(v): k for k, v in DTYPES.items() if k != "BF16"}
# A header larger than this is not a checkpoint header (the reference reader uses 100 MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024


def _invalid(path, reason):
    return ValueError(f"{str(path)!r} is not a valid .safetensors file: {reason}")


def _truncated(path, reason):
    return ValueError(f"{str(path)!r} is truncated: {reason}; an incomplete download or copy?")


def read_header(path):
    """Parses and checks the header of a `.safetensors` file.

    Args:
        path: the file.

    Returns:
        `(entries, data_start)`: `{name: (dtype, shape, begin, end)}` with
        byte offsets relative to `data_start`, the offset of the buffer.

    Raises:
        ValueError: truncated file, bad JSON, unknown dtypes, offsets that do
            not match shapes or overlap, or a buffer of the wrong size.
    """
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise _invalid(path, f"only {file_size} bytes, shorter than the 8-byte header length")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > MAX_HEADER_BYTES:
            raise _invalid(
                path, f"a header length of {header_size} bytes (the format allows {MAX_HEADER_BYTES})"
            )
        if 8 + header_size > file_size:
            raise _truncated(path, f"its header says {header_size} bytes, the whole file has {file_size}")
        raw = f.read(header_size)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _invalid(path, f"the header is not JSON ({error})") from error
    if not isinstance(header, dict):
        raise _invalid(path, "the header is not a JSON object")

    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError) as error:
            raise _invalid(path, f"malformed entry for tensor {name!r}") from error
        if dtype not in DTYPES:
            raise _invalid(path, f"tensor {name!r} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise _invalid(path, f"tensor {name!r} has a malformed shape {shape!r}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dtype]).itemsize
        if not (
            isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end and end - begin == nbytes
        ):
            raise _invalid(path, f"tensor {name!r}: data offsets {[begin, end]} do not match shape {shape}")
        entries[name] = (dtype, tuple(shape), begin, end)

    data_start = 8 + header_size
    buffer_size = file_size - data_start
    position = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2]):
        if begin != position:
            raise _invalid(
                path, f"tensor {name!r} starts at byte {begin}, expected {position} (gap or overlap)"
            )
        position = end
    if position > buffer_size:
        raise _truncated(path, f"its tensors need {position} bytes of data, the file holds {buffer_size}")
    if position < buffer_size:
        raise _invalid(path, f"{buffer_size - position} bytes after its last tensor (padded or corrupted)")
    return entries, data_start


def load_safetensors(path):
    """Reads every tensor of a `.safetensors` file into NumPy arrays.

    Args:
        path: the file.

    Returns:
        `{name: np.ndarray}`; BF16 tensors come back as float32.

    Example:
        >>> tensors = load_safetensors("model.safetensors")
        >>> tensors["conv1.weight"].shape
        (64, 3, 7, 7)
    """
    entries, data_start = read_header(path)
    tensors = {}
    with open(path, "rb") as f:
        for name, (dtype, shape, begin, end) in entries.items():
            f.seek(data_start + begin)
            data = f.read(end - begin)
            if len(data) != end - begin:
                raise _invalid(path, f"tensor {name!r} is cut short (file truncated while reading?)")
            array = np.frombuffer(data, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<")).reshape(shape)
            if dtype == "BF16":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            tensors[name] = array.astype(array.dtype.newbyteorder("="))
    return tensors


def save_safetensors(path, tensors, metadata=None):
    """Writes NumPy arrays as a `.safetensors` file (atomically: temp file + rename).

    Args:
        path: the file to write.
        tensors: `{name: array}` of a dtype in `DTYPES` (not bfloat16).
        metadata: optional `{str: str}` stored as `__metadata__`.
    """
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        array = np.asarray(
            tensors[name]
        )  # tobytes() writes C order (ascontiguousarray would make scalars 1-D)
        if array.dtype not in _NUMPY_TO_SAFETENSORS:
            raise ValueError(f"Cannot store tensor {name!r} of dtype {array.dtype} in a .safetensors file")
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": _NUMPY_TO_SAFETENSORS[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # align the buffer to 8 bytes, as the reference writer does
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for chunk in chunks:
            f.write(chunk)
