"""Per-image decoding and augmentation ops for `tf.data` pipelines.

All random ops are stateless and take an explicit `seed` (a `(2,)` int tensor),
so a pipeline built with a seed produces the same images on every run
(`tf.data.Dataset.random` hands each element its own seed).

- ImageNet style (Section 4.1, after Szegedy et al. [42]): random-size crop
  (area 8%-100%, aspect ratio 3/4-4/3) decoded straight from the JPEG's crop
  window, resized to the training size, random horizontal flip. Evaluation:
  the centre crop of side `crop_pct * min(height, width)` resized to the test
  size (224 or 320 in Table 2), the same region as timm's "resize the shorter
  side to size / crop_pct, then crop size x size".
- CIFAR style (Section 4.2, after ResNeXt): zero-pad 4, random 32x32 crop,
  random horizontal flip.

Images stay RGB `float32` in [0, 255] until the pipeline's last step applies
`preprocess_input`; every decoder returns 3 channels (grayscale is repeated,
alpha is dropped as PIL's `convert("RGB")` does, CMYK JPEGs are converted).
"""

import tensorflow as tf

from training.data.options import (  # noqa: F401  (importable here, as before)
    ASPECT_RATIO_RANGE,
    DEFAULT_CROP_PCT,
    INTERPOLATIONS,
    LIGHTWEIGHT_AREA_RANGE,
    STANDARD_AREA_RANGE,
)


def decode_rgb(image_bytes):
    """Decodes JPEG, PNG, GIF (first frame), BMP or WebP bytes to a uint8 RGB image.

    Args:
        image_bytes: a scalar string tensor.

    Returns:
        A uint8 tensor `(height, width, 3)`.
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def to_rgb(image):
    """A decoded uint8 image with 1 (grayscale), 2 (grayscale + alpha), 3 or 4 (RGBA) channels as RGB."""
    channels = image.shape[-1]
    if channels in (1, 2):
        return tf.image.grayscale_to_rgb(image[..., :1])
    if channels == 4:
        return image[..., :3]
    if channels != 3:
        raise ValueError(f"Images must have 1 to 4 channels (static shape). Received shape {image.shape}")
    return image


def _clamped_full_window(height, width, aspect_ratio_range):
    """The largest centred window of the whole image within the aspect-ratio range."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    ratio = w / h
    lo, hi = aspect_ratio_range
    crop_h = tf.where(ratio < lo, w / lo, h)
    crop_w = tf.where(ratio > hi, h * hi, w)
    crop_h = tf.cast(tf.round(tf.minimum(crop_h, h)), tf.int32)
    crop_w = tf.cast(tf.round(tf.minimum(crop_w, w)), tf.int32)
    return tf.stack([(height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w])


def random_crop_window(shape, seed, area_range=STANDARD_AREA_RANGE, aspect_ratio_range=ASPECT_RATIO_RANGE):
    """Samples a random-size crop window `[y, x, height, width]` of an image.

    The crop covers a fraction of the image's area drawn from `area_range`
    with an aspect ratio drawn from `aspect_ratio_range` (10 attempts); when
    no attempt fits, it falls back to the whole image clamped to the aspect
    ratio range, as torchvision's `RandomResizedCrop` does.

    Args:
        shape: the image's `[height, width, channels]` (int32 tensor).
        seed: a `(2,)` int tensor.
        area_range: `(min, max)` fraction of the image area.
        aspect_ratio_range: `(min, max)` width / height.

    Returns:
        An int32 tensor `[y, x, height, width]`.
    """
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    failed = tf.reduce_all(tf.equal(size[:2], shape[:2]))
    return tf.cond(
        failed, lambda: _clamped_full_window(shape[0], shape[1], aspect_ratio_range), lambda: window
    )


def center_crop_window(shape, crop_pct=DEFAULT_CROP_PCT):
    """The centred square window of side `crop_pct * min(height, width)`, `[y, x, side, side]`."""
    side = tf.cast(tf.round(crop_pct * tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)), tf.int32)
    side = tf.maximum(side, 1)
    return tf.stack([(shape[0] - side) // 2, (shape[1] - side) // 2, side, side])


def decode_crop(image_bytes, window_fn):
    """Decodes only the window `window_fn(shape)` of an encoded image.

    JPEGs are read with `decode_and_crop_jpeg`, which skips the image data
    outside the window; other formats are decoded whole and then cropped.

    Args:
        image_bytes: a scalar string tensor (any format of `decode_rgb`).
        window_fn: maps the image's `[height, width, channels]` to a window
            `[y, x, height, width]`.

    Returns:
        A uint8 RGB tensor of the window's size.
    """

    def from_jpeg():
        window = window_fn(tf.image.extract_jpeg_shape(image_bytes))
        return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)

    def from_other():
        image = decode_rgb(image_bytes)
        window = window_fn(tf.shape(image))
        return tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])

    image = tf.cond(tf.image.is_jpeg(image_bytes), from_jpeg, from_other)
    image.set_shape([None, None, 3])
    return image


def resize(image, size, interpolation="bilinear", antialias=True):
    """Resizes to `size` x `size` float32, antialiased when shrinking (as PIL and torchvision do)."""
    image = tf.image.resize(image, [size, size], method=interpolation, antialias=antialias)
    return tf.clip_by_value(image, 0.0, 255.0) if interpolation == "bicubic" else image


def inception_crop(
    image_bytes,
    size,
    seed,
    area_range=STANDARD_AREA_RANGE,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
    interpolation="bilinear",
    antialias=True,
):
    """ImageNet training transform: random-size crop + resize + random horizontal flip.

    Section 4.1: "random size cropping to 224 x 224 and random horizontal
    flipping [42]". Only the crop window of a JPEG is decoded.

    Args:
        image_bytes: encoded image (scalar string tensor).
        size: output side in pixels.
        seed: a `(2,)` int tensor.
        area_range, aspect_ratio_range: as in `random_crop_window`.
        interpolation: resize method (`"bilinear"`, `"bicubic"`, ...).
        antialias: antialias when shrinking.

    Returns:
        float32 RGB image `(size, size, 3)` in [0, 255].

    Example:
        >>> image = inception_crop(tf.io.read_file("cat.jpg"), 224, tf.constant([1, 2]))
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = decode_crop(
        image_bytes, lambda shape: random_crop_window(shape, crop_seed, area_range, aspect_ratio_range)
    )
    image = resize(image, size, interpolation, antialias)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def center_crop(image_bytes, size, crop_pct=DEFAULT_CROP_PCT, interpolation="bilinear", antialias=True):
    """ImageNet evaluation transform: the centre `crop_pct` square, resized to `size`.

    Section 4.1 / Table 2: "a centre crop on the validation set, where
    224 x 224 or 320 x 320 pixels are cropped". With `crop_pct=0.875` the
    region equals resizing the shorter side to `size / 0.875` and cropping
    `size` x `size` (timm's default for SKNet checkpoints).

    Args:
        image_bytes: encoded image (scalar string tensor).
        size: output side in pixels (224 or 320 in the paper).
        crop_pct: side of the crop as a fraction of the shorter image side.
        interpolation, antialias: as in `resize`.

    Returns:
        float32 RGB image `(size, size, 3)` in [0, 255].
    """
    image = decode_crop(image_bytes, lambda shape: center_crop_window(shape, crop_pct))
    return resize(image, size, interpolation, antialias)


def pad_and_crop(image, seed, padding=4):
    """CIFAR training transform: zero-pad by `padding`, random crop back, random flip.

    Args:
        image: an image tensor `(height, width, channels)`.
        seed: a `(2,)` int tensor.
        padding: pixels of zero padding on every side.

    Returns:
        An image of the input's shape and dtype.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    image = tf.image.stateless_random_crop(padded, shape, crop_seed)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def random_flip(image, seed):
    """Random horizontal flip with a `(2,)` int seed."""
    return tf.image.stateless_random_flip_left_right(image, seed)
