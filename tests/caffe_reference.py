"""An independent stand-in for Caffe: the official SKNet prototxts' layers, a caffemodel writer, and
a NumPy interpreter of the layers' semantics.

- `release_layers` writes the layer list of github.com/implus/SKNet's `models/sknet50.prototxt` /
  `sknet101.prototxt` from their naming scheme (unit `convS_B/`: `1x1_reduce`, `3x3g32`,
  `3x3g32d2`, `convS_B_3x3` (Eltwise), `B_global_pool`, `B_fc1`, `B_fc2`, `B_re`, `B_softmax`,
  `B_slice`, `B_slice1`, `B_slice0`, `B_w0/reshape`, `scale`, `B_axpy`, `1x1_increase`,
  `1x1_proj`, `convS_B`). It was checked once against the two released prototxts (same layer
  names, types, bottoms, tops and parameters, in the same order, loss and accuracy layers aside).
- `random_blobs` makes weights for those layers; `write_caffemodel` writes them as a binary
  NetParameter (V2 `layer` or V1 `layers` with legacy 4D blob shapes), with fields the reader
  must skip.
- `run_net` runs the layers as Caffe computes them, in float64: Convolution (group, dilation,
  stride, pad; output size floor((n + 2p - d(k - 1) - 1) / s) + 1) by im2col + matmul, Pooling in
  ceil mode, CuDNNBatchNorm, Eltwise SUM, Reshape (0 copies, -1 infers), Softmax over an axis,
  Slice, Scale (axis 0, second bottom), Axpy, InnerProduct. It shares no code with keras_sknet.
"""

import math
import struct

import numpy as np

# ---------------------------------------------------------------- the release's layers


def _conv(name, bottom, num_output, kernel_size=1, stride=1, pad=0, group=1, dilation=1):
    return dict(
        name=name,
        type="Convolution",
        bottom=[bottom],
        top=[name],
        num_output=num_output,
        kernel_size=kernel_size,
        stride=stride,
        pad=pad,
        group=group,
        dilation=dilation,
    )


def _bn(name, bottom):
    return dict(name=name, type="CuDNNBatchNorm", bottom=[bottom], top=[name])


def _relu(name, blob):
    return dict(name=name, type="ReLU", bottom=[blob], top=[blob])


def _reshape(name, bottom, dims):
    return dict(name=name, type="Reshape", bottom=[bottom], top=[name], dims=list(dims))


def release_layers(stage_depths=(3, 4, 6, 3), fuse_dims=None, head="7x7"):
    """The layers of the release's prototxt (train-time loss/accuracy layers left out).

    Args:
        stage_depths: (3, 4, 6, 3) for SKNet-50, (3, 4, 23, 3) for SKNet-101.
        fuse_dims: d of B_fc1 per stage; default max(C / 16, 32), as SKNet-50's
            (32, 32, 32, 64); the released SKNet-101 has (32, 16, 32, 64).
        head: "7x7" (the release's `avepool/7x7`, kernel 7 stride 1: global at 224 only) or
            "global" (what evaluating at other sizes, e.g. the published 320, needs).
    """
    widths = [128 * 2**s for s in range(len(stage_depths))]
    if fuse_dims is None:
        fuse_dims = [max(w // 16, 32) for w in widths]
    layers = [
        dict(name="input", type="Input", bottom=[], top=["data"]),
        _conv("conv1/7x7_s2", "data", 64, 7, stride=2, pad=3),
        _bn("conv1/7x7_s2/bn", "conv1/7x7_s2"),
        _relu("conv1/7x7_s2/relu", "conv1/7x7_s2/bn"),
        dict(
            name="pool1/3x3_s2",
            type="Pooling",
            bottom=["conv1/7x7_s2/bn"],
            top=["pool1/3x3_s2"],
            pool="MAX",
            kernel_size=3,
            stride=2,
        ),
    ]
    previous = "pool1/3x3_s2"
    for s, depth in enumerate(stage_depths):
        width, out, d = widths[s], 2 * widths[s], fuse_dims[s]
        for b in range(depth):
            p = f"conv{s + 2}_{b + 1}"
            stride = 2 if s > 0 and b == 0 else 1
            reduce_, path0, path1 = f"{p}/1x1_reduce/bn", f"{p}/3x3g32/bn", f"{p}/3x3g32d2/bn"
            layers += [
                _conv(f"{p}/1x1_reduce", previous, width),
                _bn(reduce_, f"{p}/1x1_reduce"),
                _relu(f"{p}/1x1_reduce/relu", reduce_),
                _conv(f"{p}/3x3g32", reduce_, width, 3, stride=stride, pad=1, group=32),
                _bn(path0, f"{p}/3x3g32"),
                _relu(f"{p}/3x3g32/relu", path0),
                _conv(f"{p}/3x3g32d2", reduce_, width, 3, stride=stride, pad=2, group=32, dilation=2),
                _bn(path1, f"{p}/3x3g32d2"),
                _relu(f"{p}/3x3g32d2/relu", path1),
                dict(name=f"{p}_3x3", type="Eltwise", bottom=[path0, path1], top=[f"{p}_3x3"]),
                dict(
                    name=f"{p}/B_global_pool",
                    type="Pooling",
                    bottom=[f"{p}_3x3"],
                    top=[f"{p}/B_global_pool"],
                    pool="AVE",
                    global_pooling=True,
                ),
                _conv(f"{p}/B_fc1", f"{p}/B_global_pool", d),
                _bn(f"{p}/B_fc1/bn", f"{p}/B_fc1"),
                _relu(f"{p}/B_fc1/relu", f"{p}/B_fc1/bn"),
                _conv(f"{p}/B_fc2", f"{p}/B_fc1/bn", 2 * width),
                _reshape(f"{p}/B_re", f"{p}/B_fc2", (0, 2, -1, 0)),
                dict(
                    name=f"{p}/B_softmax",
                    type="Softmax",
                    bottom=[f"{p}/B_re"],
                    top=[f"{p}/B_softmax"],
                    axis=1,
                ),
                dict(
                    name=f"{p}/B_slice",
                    type="Slice",
                    bottom=[f"{p}/B_softmax"],
                    top=[f"{p}/B_slice0_", f"{p}/B_slice1_"],
                    axis=1,
                    slice_point=[1],
                ),
                _reshape(f"{p}/B_slice1", f"{p}/B_slice1_", (0, width, -1, 0)),
                _reshape(f"{p}/B_slice0", f"{p}/B_slice0_", (0, width, -1, 0)),
                _reshape(f"{p}/B_w0/reshape", f"{p}/B_slice0", (0, 0)),
                dict(
                    name=f"{p}/scale",
                    type="Scale",
                    bottom=[path0, f"{p}/B_w0/reshape"],
                    top=[f"{p}/scale"],
                    axis=0,
                ),
                dict(
                    name=f"{p}/B_axpy",
                    type="Axpy",
                    bottom=[f"{p}/B_slice1", path1, f"{p}/scale"],
                    top=[f"{p}/B_axpy"],
                ),
                _conv(f"{p}/1x1_increase", f"{p}/B_axpy", out),
                _bn(f"{p}/1x1_increase/bn", f"{p}/1x1_increase"),
            ]
            shortcut = previous
            if b == 0:
                layers += [
                    _conv(f"{p}/1x1_proj", previous, out, stride=stride),
                    _bn(f"{p}/1x1_proj/bn", f"{p}/1x1_proj"),
                ]
                shortcut = f"{p}/1x1_proj/bn"
            layers += [
                dict(name=p, type="Eltwise", bottom=[f"{p}/1x1_increase/bn", shortcut], top=[p]),
                _relu(f"{p}/relu", p),
            ]
            previous = p
    pool = dict(name="avepool/7x7", type="Pooling", bottom=[previous], top=["avepool/7x7"], pool="AVE")
    pool.update(dict(kernel_size=7, stride=1) if head == "7x7" else dict(global_pooling=True))
    layers += [
        pool,
        dict(
            name="classifier",
            type="InnerProduct",
            bottom=["avepool/7x7"],
            top=["classifier"],
            num_output=1000,
        ),
    ]
    return layers


def random_blobs(layers, seed=0):
    """`{layer: [blobs]}` for the layers with weights, scaled so that activations stay O(1).

    BatchNorm variances are positive; the residual branches' last BatchNorm has small gammas so
    that 16-33 residual additions do not blow up; the attention logits are O(1).
    """
    rng = np.random.default_rng(seed)
    channels, blobs = {"data": 3}, {}
    for layer in layers:
        name, kind = layer["name"], layer["type"]
        bottom = layer["bottom"][0] if layer["bottom"] else None
        if kind == "Convolution":
            c_in, k, g = channels[bottom], layer["kernel_size"], layer["group"]
            fan_in = c_in // g * k * k
            std = math.sqrt(2.0 / fan_in) if "/B_fc" not in name else 1.0 / math.sqrt(fan_in)
            shape = (layer["num_output"], c_in // g, k, k)
            blobs[name] = [(rng.standard_normal(shape) * std).astype(np.float32)]
            channels[name] = layer["num_output"]
        elif kind == "CuDNNBatchNorm":
            c = channels[bottom]
            low, high = (0.1, 0.3) if name.endswith(("1x1_increase/bn", "1x1_proj/bn")) else (0.6, 1.2)
            blobs[name] = [
                rng.uniform(low, high, (1, c, 1, 1)).astype(np.float32),  # gamma
                rng.uniform(-0.2, 0.2, (1, c, 1, 1)).astype(np.float32),  # beta
                rng.uniform(-0.2, 0.2, (1, c, 1, 1)).astype(np.float32),  # running mean
                rng.uniform(0.5, 1.5, (1, c, 1, 1)).astype(np.float32),  # running variance
            ]
            channels[name] = c
        elif kind == "InnerProduct":
            c_in = channels[bottom]
            blobs[name] = [
                (rng.standard_normal((layer["num_output"], c_in)) / math.sqrt(c_in)).astype(np.float32),
                rng.uniform(-0.5, 0.5, (layer["num_output"],)).astype(np.float32),
            ]
        elif kind == "Axpy":  # a * x + y: x's channels
            channels[layer["top"][0]] = channels[layer["bottom"][1]]
        elif kind in ("ReLU", "Pooling", "Eltwise", "Scale"):
            channels[layer["top"][0]] = channels[bottom]
        # Reshape, Softmax, Slice: the attention logits, whose channels no weight depends on.
    return blobs


# ---------------------------------------------------------------- a protobuf writer


def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _bytes(field, payload):
    return _key(field, 2) + _varint(len(payload)) + payload


def _blob(array, legacy):
    array = np.asarray(array, dtype="<f4")
    if legacy:
        shape = (1,) * (4 - array.ndim) + array.shape
        out = b"".join(_key(i + 1, 0) + _varint(d) for i, d in enumerate(shape))
    else:
        out = _bytes(7, _bytes(1, b"".join(_varint(d) for d in array.shape)))  # BlobShape, packed dims
    return out + _bytes(5, array.tobytes())


def write_caffemodel(path, layers, blobs, layout="v2", name="sknet"):
    """Writes a binary NetParameter, as Caffe's `Net::ToProto` does, with every layer in order.

    V2 (`layer` = 100: name 1, type 2, bottom 3, top 4, blobs 7) or V1 (`layers` = 2: bottom 2,
    top 3, name 4, type 5 as an enum, blobs 6; legacy num/channels/height/width shapes). Each
    layer also carries a ParamSpec-like field (a float lr_mult) that a reader must skip.
    """
    out = [_bytes(1, name.encode())]
    for layer in layers:
        body = []
        if layout == "v2":
            body.append(_bytes(1, layer["name"].encode()))
            body.append(_bytes(2, layer["type"].encode()))
            body += [_bytes(3, b.encode()) for b in layer["bottom"]]
            body += [_bytes(4, t.encode()) for t in layer["top"]]
            body.append(_bytes(6, _key(3, 5) + struct.pack("<f", 1.0)))  # param { lr_mult: 1 }
            body += [_bytes(7, _blob(b, legacy=False)) for b in blobs.get(layer["name"], [])]
            out.append(_bytes(100, b"".join(body)))
        else:
            body += [_bytes(2, b.encode()) for b in layer["bottom"]]
            body += [_bytes(3, t.encode()) for t in layer["top"]]
            body.append(_bytes(4, layer["name"].encode()))
            body.append(_key(5, 0) + _varint(4))  # type: CONVOLUTION (any enum value)
            body += [_bytes(6, _blob(b, legacy=True)) for b in blobs.get(layer["name"], [])]
            body.append(_key(7, 5) + struct.pack("<f", 1.0))  # blobs_lr: a fixed32 to skip
            out.append(_bytes(2, b"".join(body)))
    with open(path, "wb") as f:
        f.write(b"".join(out))


# ---------------------------------------------------------------- the interpreter


def _convolution(x, w, stride, pad, dilation, group):
    n, c, h, width = x.shape
    out_c, c_per_group, k, _ = w.shape
    span = dilation * (k - 1) + 1
    ho, wo = (h + 2 * pad - span) // stride + 1, (width + 2 * pad - span) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    # im2col: (n, c, k, k, ho, wo) gathered by strided slices, one per kernel tap.
    cols = np.empty((n, c, k, k, ho, wo), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            top, left = i * dilation, j * dilation
            cols[:, :, i, j] = xp[
                :, :, top : top + stride * (ho - 1) + 1 : stride, left : left + stride * (wo - 1) + 1 : stride
            ]
    cols = cols.reshape(n, group, c_per_group * k * k, ho * wo)
    weights = w.reshape(group, out_c // group, c_per_group * k * k)
    y = np.matmul(weights[None], cols)  # (n, group, out_c / group, ho * wo)
    return y.reshape(n, out_c, ho, wo)


def _pool(x, layer):
    n, c, h, w = x.shape
    if layer.get("global_pooling"):
        k, stride, pad = (h, w), 1, 0
    else:
        k, stride, pad = (layer["kernel_size"],) * 2, layer["stride"], layer.get("pad", 0)
    # Caffe's output size rounds up; a last window starting in the padding is dropped.
    sizes = []
    for size, kk in zip((h, w), k):
        out = int(math.ceil((size + 2 * pad - kk) / stride)) + 1
        if pad and (out - 1) * stride >= size + pad:
            out -= 1
        sizes.append(out)
    ho, wo = sizes
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            h0, w0 = i * stride - pad, j * stride - pad
            h1, w1 = min(h0 + k[0], h + pad), min(w0 + k[1], w + pad)
            area = (h1 - h0) * (w1 - w0)  # AVE divides by the window within the padded size
            window = x[:, :, max(h0, 0) : min(h1, h), max(w0, 0) : min(w1, w)]
            if layer["pool"] == "MAX":
                y[:, :, i, j] = window.max(axis=(2, 3))
            else:
                y[:, :, i, j] = window.sum(axis=(2, 3)) / area
    return y


def _reshape_dims(shape, dims):
    out = [shape[i] if d == 0 else d for i, d in enumerate(dims)]
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = int(np.prod(shape)) // known
    return out


def run_net(layers, blobs, image, eps=1e-5):
    """Runs the layers on `image` (N, C, H, W) in float64; returns the `classifier` output."""
    values = {"data": np.asarray(image, dtype=np.float64)}
    for layer in layers:
        kind = layer["type"]
        if kind == "Input":
            continue
        x = [values[b] for b in layer["bottom"]]
        w = [np.asarray(b, dtype=np.float64) for b in blobs.get(layer["name"], [])]
        if kind == "Convolution":
            y = _convolution(x[0], w[0], layer["stride"], layer["pad"], layer["dilation"], layer["group"])
        elif kind == "CuDNNBatchNorm":
            gamma, beta, mean, var = w
            y = gamma * (x[0] - mean) / np.sqrt(var + eps) + beta
        elif kind == "ReLU":
            y = np.maximum(x[0], 0.0)
        elif kind == "Eltwise":
            y = x[0] + x[1]
        elif kind == "Pooling":
            y = _pool(x[0], layer)
        elif kind == "Reshape":
            y = x[0].reshape(_reshape_dims(x[0].shape, layer["dims"]))
        elif kind == "Softmax":
            e = np.exp(x[0] - x[0].max(axis=layer["axis"], keepdims=True))
            y = e / e.sum(axis=layer["axis"], keepdims=True)
        elif kind == "Slice":
            parts = np.split(x[0], layer["slice_point"], axis=layer["axis"])
            for top, part in zip(layer["top"], parts):
                values[top] = part
            continue
        elif kind == "Scale":
            scale = x[1]
            axis = layer["axis"]
            y = x[0] * scale.reshape(scale.shape + (1,) * (x[0].ndim - axis - scale.ndim))
        elif kind == "Axpy":
            a, xx, yy = x
            y = a * xx + yy
        elif kind == "InnerProduct":
            y = x[0].reshape(x[0].shape[0], -1) @ w[0].T + w[1]
        else:
            raise ValueError(f"no such layer type here: {kind}")
        values[layer["top"][0]] = y
    return values["classifier"]
