"""The training and evaluation transforms of `training.data.preprocessing` in NumPy and Pillow.

The grain pipeline's counterparts of the `tf.data` ops, with the same semantics
(tests compare the two on the same images):

- `read_rgb`: JPEG, PNG, GIF (first frame), BMP, WebP to uint8 RGB, as
  `tf.io.decode_image(channels=3)` (grayscale repeated, alpha dropped).
- `resize`: TensorFlow's antialiased `tf.image.resize` (`scale_and_translate`
  with the triangle or Keys cubic kernel), as separable weight matrices.
- `random_crop_window`: the window `tf.image.sample_distorted_bounding_box`
  draws (aspect ratio uniform in its range, then the height uniform between
  the heights the area range allows; 10 attempts), with the same fallback.
- `inception_crop`, `center_crop`, `pad_and_crop`, `random_flip`: Section 4.1
  and 4.2's transforms.
- `mixup`, `cutmix`: Keras' `MixUp` and `CutMix` layers' maths (per-image
  Beta weights, a permutation of the batch, labels mixed in the images'
  proportions).

Random draws come from a `numpy.random.Generator` that the caller seeds per
image or per batch (grain's `random_map` hands each element its own).
"""

import functools
import io

import numpy as np

from keras_sknet.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD
from training.data.options import ASPECT_RATIO_RANGE, DEFAULT_CROP_PCT, STANDARD_AREA_RANGE

# The kernels of `tf.image.resize(antialias=True)`: name -> (radius, function of |x|).
_KERNELS = {
    "bilinear": (1.0, lambda x: np.maximum(0.0, 1.0 - x)),
    "bicubic": (
        2.0,
        lambda x: np.where(
            x < 1.0,
            ((1.5 * x - 2.5) * x) * x + 1.0,
            np.where(x < 2.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0, 0.0),
        ),
    ),
}
NUMPY_INTERPOLATIONS = tuple(_KERNELS)
_CROP_ATTEMPTS = 10


def read_rgb(source):
    """Decodes an image file or its bytes to uint8 RGB `(height, width, 3)` with Pillow.

    Args:
        source: a path, or the encoded bytes.

    Returns:
        A uint8 array `(height, width, 3)`.

    Raises:
        OSError: the file cannot be read or decoded (truncated files included).
    """
    from PIL import Image

    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    with Image.open(handle) as image:
        image.load()  # decodes to the end: a truncated file fails here
        return np.asarray(image.convert("RGB"))


@functools.lru_cache(maxsize=256)
def _resize_taps(in_size, out_size, interpolation):
    """The non-zero band of `_resize_weights`: `(indices, weights)`, each `(out_size, taps)`."""
    matrix = _resize_weights(in_size, out_size, interpolation)
    nonzero = matrix != 0
    start, count = nonzero.argmax(axis=1), nonzero.sum(axis=1)
    taps = np.arange(max(int(count.max()), 1))
    indices = np.minimum(start[:, None] + taps, in_size - 1)
    weights = np.take_along_axis(matrix, indices, axis=1) * (taps < count[:, None])
    return indices, weights.astype(np.float32)


def _resize_weights(in_size, out_size, interpolation):
    """The `(out_size, in_size)` float32 matrix of TensorFlow's `scale_and_translate` along one axis."""
    radius, kernel = _KERNELS[interpolation]
    # TensorFlow passes the scale out / in and inverts it, both in float32.
    inv_scale = np.float32(1.0) / (np.float32(out_size) / np.float32(in_size))
    kernel_scale = max(inv_scale, np.float32(1.0))  # antialias: widen the kernel when shrinking
    sample = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * inv_scale
    source = np.arange(in_size, dtype=np.float32) + np.float32(0.5)
    distance = np.abs(source[None, :] - sample[:, None]) / kernel_scale
    weights = np.where(distance < radius, kernel(distance), 0.0).astype(np.float32)
    total = weights.sum(axis=1, keepdims=True)
    return np.where(np.abs(total) > 0, weights / np.where(total == 0, 1, total), 0.0).astype(np.float32)


def resize(image, size, interpolation="bilinear"):
    """Resizes to `size` x `size` as `tf.image.resize(..., antialias=True)` does, in float32.

    Args:
        image: `(height, width, channels)` array.
        size: the output side, or `(height, width)`.
        interpolation: "bilinear" or "bicubic" (bicubic is clipped to [0, 255], as the
            tf.data pipeline does).

    Returns:
        float32 `(size, size, channels)`.

    Example:
        >>> resize(np.zeros((48, 64, 3), np.uint8), 32).shape
        (32, 32, 3)
    """
    if interpolation not in _KERNELS:
        raise ValueError(
            f"The grain pipeline resizes with {NUMPY_INTERPOLATIONS}. Received: interpolation={interpolation!r}"
        )
    height, width = (size, size) if np.isscalar(size) else size
    image = np.asarray(image, np.float32)
    # Each output row (column) mixes a few neighbouring input rows: a banded, separable sum.
    row_index, row_weight = _resize_taps(image.shape[0], height, interpolation)
    col_index, col_weight = _resize_taps(image.shape[1], width, interpolation)
    out = np.einsum("ot,otwc->owc", row_weight, image[row_index])
    out = np.einsum("pt,optc->opc", col_weight, out[:, col_index])
    return np.clip(out, 0.0, 255.0) if interpolation == "bicubic" else out


def to_uint8(image):
    """Rounds and clips to uint8, as the tf.data pipeline does before caching or batching."""
    return np.clip(np.round(image), 0.0, 255.0).astype(np.uint8)


def _clamped_full_window(height, width, aspect_ratio_range):
    """The largest centred window of the whole image within the aspect-ratio range."""
    ratio = np.float32(width) / np.float32(height)
    lo, hi = aspect_ratio_range
    crop_h = width / lo if ratio < lo else height
    crop_w = height * hi if ratio > hi else width
    crop_h = int(np.round(min(crop_h, height)))
    crop_w = int(np.round(min(crop_w, width)))
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def _try_crop(height, width, area_range, aspect_ratio, rng):
    """One attempt of `sample_distorted_bounding_box` (TensorFlow's `GenerateRandomCrop`)."""
    min_area = area_range[0] * width * height
    max_area = area_range[1] * width * height
    crop_h = int(np.rint(np.sqrt(min_area / aspect_ratio)))
    max_h = int(np.rint(np.sqrt(max_area / aspect_ratio)))
    if np.rint(max_h * aspect_ratio) > width:
        max_h = int((width + 0.5 - 1e-7) / aspect_ratio)
        if np.rint(max_h * aspect_ratio) > width:
            max_h -= 1
    max_h = min(max_h, height)
    crop_h = min(crop_h, max_h)
    if crop_h < max_h:
        crop_h += int(rng.integers(0, max_h - crop_h + 1))
    crop_w = int(np.rint(crop_h * aspect_ratio))
    if crop_w * crop_h < min_area:
        crop_h += 1
        crop_w = int(np.rint(crop_h * aspect_ratio))
    area = crop_w * crop_h
    if area < min_area or area > max_area or not 0 < crop_w <= width or not 0 < crop_h <= height:
        return None
    y = int(rng.integers(0, height - crop_h)) if crop_h < height else 0
    x = int(rng.integers(0, width - crop_w)) if crop_w < width else 0
    return y, x, crop_h, crop_w


def random_crop_window(
    height, width, rng, area_range=STANDARD_AREA_RANGE, aspect_ratio_range=ASPECT_RATIO_RANGE
):
    """Samples a random-size crop window `(y, x, height, width)` as the tf.data pipeline does.

    The crop covers a fraction of the image's area in `area_range` with an
    aspect ratio (width / height) drawn uniformly from `aspect_ratio_range` (10
    attempts); when no attempt fits, or the crop is the whole image, it is the
    whole image clamped to the aspect-ratio range (torchvision's fallback).

    Args:
        height, width: the image's size.
        rng: a `numpy.random.Generator`.
        area_range: `(min, max)` fraction of the image area.
        aspect_ratio_range: `(min, max)` width / height.

    Returns:
        `(y, x, crop_height, crop_width)` ints.
    """
    for _ in range(_CROP_ATTEMPTS):
        ratio = rng.random() * (aspect_ratio_range[1] - aspect_ratio_range[0]) + aspect_ratio_range[0]
        window = _try_crop(height, width, area_range, ratio, rng)
        if window is not None:
            break
    if window is None or window[2:] == (height, width):
        return _clamped_full_window(height, width, aspect_ratio_range)
    return window


def center_crop_window(height, width, crop_pct=DEFAULT_CROP_PCT):
    """The centred square window of side `crop_pct * min(height, width)`: `(y, x, side, side)`."""
    side = max(int(np.round(np.float32(crop_pct) * np.float32(min(height, width)))), 1)
    return (height - side) // 2, (width - side) // 2, side, side


def _crop(image, window):
    y, x, h, w = window
    return image[y : y + h, x : x + w]


def random_flip(image, rng):
    """Flips left-right with probability 1/2."""
    return image[:, ::-1] if rng.random() < 0.5 else image


def inception_crop(
    image,
    size,
    rng,
    area_range=STANDARD_AREA_RANGE,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
    interpolation="bilinear",
):
    """ImageNet training transform: random-size crop + resize + random horizontal flip (Section 4.1).

    Args:
        image: uint8 RGB `(height, width, 3)`.
        size: output side in pixels.
        rng: a `numpy.random.Generator`.
        area_range, aspect_ratio_range: as in `random_crop_window`.
        interpolation: "bilinear" or "bicubic".

    Returns:
        float32 RGB `(size, size, 3)` in [0, 255].

    Example:
        >>> crop = inception_crop(read_rgb("cat.jpg"), 224, np.random.default_rng(0))  # doctest: +SKIP
    """
    window = random_crop_window(image.shape[0], image.shape[1], rng, area_range, aspect_ratio_range)
    return random_flip(resize(_crop(image, window), size, interpolation), rng)


def center_crop(image, size, crop_pct=DEFAULT_CROP_PCT, interpolation="bilinear"):
    """ImageNet evaluation transform: the centre `crop_pct` square resized to `size` (Table 2).

    Args:
        image: uint8 RGB `(height, width, 3)`.
        size: output side (224 or 320 in the paper).
        crop_pct: side of the crop as a fraction of the shorter image side.
        interpolation: "bilinear" or "bicubic".

    Returns:
        float32 RGB `(size, size, 3)` in [0, 255].
    """
    return resize(
        _crop(image, center_crop_window(image.shape[0], image.shape[1], crop_pct)), size, interpolation
    )


def pad_and_crop(image, rng, padding=4):
    """CIFAR training transform (Section 4.2): zero-pad by `padding`, random crop back, random flip."""
    height, width = image.shape[:2]
    padded = np.pad(image, [(padding, padding), (padding, padding), (0, 0)])
    y = int(rng.integers(0, 2 * padding + 1))
    x = int(rng.integers(0, 2 * padding + 1))
    return random_flip(padded[y : y + height, x : x + width], rng)


def mixup(images, labels, rng, alpha):
    """Keras' `MixUp(alpha)` on one batch: each image mixed with a permuted one, weight ~ Beta(alpha, alpha).

    Args:
        images: float32 `(batch, height, width, channels)`.
        labels: float32 one-hot `(batch, classes)`.
        rng: a `numpy.random.Generator`.
        alpha: the Beta distribution's parameter.

    Returns:
        `(images, labels)`, float32, labels mixed in the images' proportions.
    """
    order = rng.permutation(len(images))
    weight = rng.beta(alpha, alpha, len(images)).astype(np.float32)
    mixed = weight[:, None, None, None] * images + (1.0 - weight[:, None, None, None]) * images[order]
    return mixed, weight[:, None] * labels + (1.0 - weight[:, None]) * labels[order]


def cutmix(images, labels, rng, alpha):
    """Keras' `CutMix(factor=(alpha, alpha))` on one batch: a box of a permuted image pasted in.

    The box's area fraction is 1 - lambda with lambda ~ Beta(alpha, alpha) per
    image, placed uniformly inside the image; the labels mix by the box's area.

    Args:
        images: float32 `(batch, height, width, channels)`.
        labels: float32 one-hot `(batch, classes)`.
        rng: a `numpy.random.Generator`.
        alpha: the Beta distribution's parameter (in (0, 1]).

    Returns:
        `(images, labels)`, float32.
    """
    batch, height, width = images.shape[:3]
    weight = rng.beta(alpha + 1e-6, alpha + 1e-6, batch).astype(np.float32)
    ratio = np.sqrt(1.0 - weight)
    box_w, box_h = ratio * width, ratio * height
    x0 = rng.random(batch).astype(np.float32) * (width - box_w)
    y0 = rng.random(batch).astype(np.float32) * (height - box_h)
    x1, y1 = x0 + box_w, y0 + box_h
    grid_y, grid_x = np.meshgrid(
        np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij"
    )
    inside = (
        (grid_x >= x0[:, None, None])
        & (grid_x < x1[:, None, None])
        & (grid_y >= y0[:, None, None])
        & (grid_y < y1[:, None, None])
    )
    order = rng.permutation(batch)
    mixed = np.where(inside[..., None], images[order], images)
    kept = (1.0 - (x1 - x0) * (y1 - y0) / (width * height)).astype(np.float32)
    return mixed, kept[:, None] * labels + (1.0 - kept[:, None]) * labels[order]


def normalize(images):
    """`keras_sknet.applications.preprocess_input`'s maths on NumPy images in [0, 255]: float32."""
    mean = np.array(IMAGENET_MEAN, dtype=np.float32) * np.float32(255.0)
    std = np.array(IMAGENET_STD, dtype=np.float32) * np.float32(255.0)
    return (np.asarray(images, np.float32) - mean) / std
