"""Reading Caffe's `.caffemodel` files with NumPy alone (no Caffe, no protobuf package).

A caffemodel is a binary protobuf `NetParameter`. Only the fields that hold
weights are read; every other field is skipped by its wire type, as protobuf
itself does with unknown fields:

| message        | field                     | number | wire type            |
|----------------|---------------------------|--------|----------------------|
| NetParameter   | layer (LayerParameter)    | 100    | length-delimited     |
| NetParameter   | layers (V1LayerParameter) | 2      | length-delimited     |
| LayerParameter | name / blobs              | 1 / 7  | length-delimited     |
| V1LayerParameter | name / blobs            | 4 / 6  | length-delimited     |
| BlobProto      | num, channels, height, width (legacy shape) | 1-4 | varint |
| BlobProto      | data (float32)            | 5      | packed, or one by one |
| BlobProto      | shape (BlobShape: dim 1, packed int64) | 7 | length-delimited |
| BlobProto      | double_data (float64)     | 8      | packed, or one by one |

Files written by Caffe since 2015 use `layer` (V2); older ones `layers` (V1).
A file written by a Caffe that upgraded V1 nets may hold both; the V2 layers
are then the ones Caffe itself reads.
"""

import os

import numpy as np

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
# (name field, blobs field) of LayerParameter (V2) and V1LayerParameter, by NetParameter field.
_LAYER_FIELDS = {100: (1, 7), 2: (4, 6)}
# Every field NetParameter has: name, layers, input, input_dim, force_backward, state,
# debug_info, input_shape, layer. A file that starts with another is not one: refused at once
# rather than parsed as noise (later unknown fields are skipped, as protobuf does).
_NET_FIELDS = (1, 2, 3, 4, 5, 6, 7, 8, 100)


class _Truncated(Exception):
    """The bytes end inside a field."""


def _varint(data, pos):
    result = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise _Truncated()
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _fields(data):
    """Yields `(field_number, wire_type, value)` of one message; `value` is an int or a memoryview."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _LENGTH:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise _Truncated()
            value, pos = data[pos : pos + size], pos + size
        elif wire in (_FIXED32, _FIXED64):
            size = 4 if wire == _FIXED32 else 8
            if pos + size > end:
                raise _Truncated()
            value, pos = data[pos : pos + size], pos + size
        else:  # 3 and 4 are the deprecated groups, 6 and 7 do not exist
            raise ValueError(f"wire type {wire} (field {number})")
        yield number, wire, value


def _packed(value, wire, dtype):
    """One element (wire type 5 / 1) or a packed run (wire type 2) of a fixed-width field."""
    dtype = np.dtype(dtype).newbyteorder("<")
    if wire == _LENGTH and len(value) % dtype.itemsize:
        raise ValueError(f"a packed {dtype.name} field of {len(value)} bytes")
    return np.frombuffer(value, dtype=dtype)


def _packed_varints(value, wire):
    if wire == _VARINT:
        return [value]
    dims, pos = [], 0
    while pos < len(value):
        dim, pos = _varint(value, pos)
        dims.append(dim)
    return dims


def _blob(data):
    """A `BlobProto` as a float32 array of its shape."""
    legacy, shape, chunks, double_chunks = {}, None, [], []
    for number, wire, value in _fields(data):
        if number in (1, 2, 3, 4) and wire == _VARINT:
            legacy[number] = value
        elif number == 5 and wire in (_LENGTH, _FIXED32):
            chunks.append(_packed(value, wire, np.float32))
        elif number == 8 and wire in (_LENGTH, _FIXED64):
            double_chunks.append(_packed(value, wire, np.float64))
        elif number == 7 and wire == _LENGTH:
            shape = []
            for dim_number, dim_wire, dim in _fields(value):
                if dim_number == 1:
                    shape.extend(_packed_varints(dim, dim_wire))
    if legacy:
        # As Caffe's Blob::FromProto: any legacy field makes the shape 4D (num, channels,
        # height, width), the unset ones 0 (their proto default).
        shape = [legacy.get(i, 0) for i in (1, 2, 3, 4)]
    elif shape is None:
        shape = []  # no shape at all: a scalar, as Caffe counts it
    values = np.concatenate(chunks) if chunks else np.concatenate(double_chunks or [np.zeros(0)])
    count = int(np.prod(shape, dtype=np.int64))
    if values.size != count:
        raise ValueError(f"a blob of shape {tuple(shape)} holds {values.size} values, not {count}")
    return values.astype(np.float32).reshape(shape)


def _layer(data, name_field, blobs_field):
    name, blobs = None, []
    for number, wire, value in _fields(data):
        if number == name_field and wire == _LENGTH:
            name = bytes(value).decode("utf-8")
        elif number == blobs_field and wire == _LENGTH:
            blobs.append(_blob(value))
    return name, blobs


def read_caffemodel(path):
    """Reads the weights of a Caffe `.caffemodel` (a binary `NetParameter`).

    Args:
        path: the file; V2 (`layer`) and V1 (`layers`) layouts are read.

    Returns:
        `{layer_name: [blob, ...]}` in file order, every blob a float32 array
        of the shape Caffe stored (its `shape`, or the legacy 4D
        num/channels/height/width). Layers without weights (ReLU, Pooling,
        ...) are listed with no blobs.

    Raises:
        ValueError: naming the file, if it is truncated, is not a protobuf
            `NetParameter`, or holds no layers.

    Example:
        >>> blobs = read_caffemodel("SKNet-50.caffemodel")
        >>> [b.shape for b in blobs["conv1/7x7_s2/bn"]]
        [(1, 64, 1, 1), (1, 64, 1, 1), (1, 64, 1, 1), (1, 64, 1, 1)]
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = memoryview(f.read())
    layers = {1: {}, 2: {}}  # by layout: V2 and V1 (V2 wins where a file has both)
    try:
        for index, (number, wire, value) in enumerate(_fields(data)):
            if index == 0 and number not in _NET_FIELDS:
                raise ValueError(f"it starts with field {number}, which NetParameter does not have")
            if number in _LAYER_FIELDS and wire == _LENGTH:
                name, blobs = _layer(value, *_LAYER_FIELDS[number])
                if name is None:
                    raise ValueError("a layer without a name")
                target = layers[2 if number == 100 else 1]
                if name in target:
                    raise ValueError(f"two layers named {name!r}")
                target[name] = blobs
    except _Truncated:
        raise ValueError(
            f"{path!r} is truncated: the data ends inside a protobuf field (an incomplete download?)"
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path!r} is not a Caffe model (a binary NetParameter): {error}") from None
    result = layers[2] or layers[1]
    if not result:
        raise ValueError(f"{path!r} is not a Caffe model: it holds no Caffe layers")
    return result
