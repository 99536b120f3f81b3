"""Per-image ops of training.data.preprocessing against NumPy references."""

import base64

import numpy as np
import pytest
import tensorflow as tf

from training.data import preprocessing as pre


def _jpeg(image, quality=95):
    return tf.io.encode_jpeg(image, quality=quality).numpy()


@pytest.fixture
def photo(rng):
    """A smooth 90x120 image (JPEG-friendly) with distinct rows and columns."""
    y, x = np.mgrid[0:90, 0:120]
    image = np.stack([x * 2, y * 2.5, (x + y)], axis=-1) + rng.integers(0, 10, (90, 120, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def test_random_crop_window_respects_area_and_aspect_ranges():
    shape = tf.constant([300, 400, 3])
    areas, ratios = [], []
    for i in range(200):
        y, x, h, w = pre.random_crop_window(shape, tf.constant([i, 7]), (0.08, 1.0), (3 / 4, 4 / 3)).numpy()
        assert 0 <= y and 0 <= x and y + h <= 300 and x + w <= 400 and h > 0 and w > 0
        areas.append(h * w / (300 * 400))
        ratios.append(w / h)
    # TF rounds the sampled height and width to pixels: allow a pixel's worth of slack.
    assert min(areas) >= 0.08 - 0.01 and max(areas) <= 1.0
    assert min(ratios) >= 3 / 4 - 0.05 and max(ratios) <= 4 / 3 + 0.05
    assert max(areas) - min(areas) > 0.5  # the scale really varies (random-size crop)


def test_random_crop_window_is_a_function_of_the_seed():
    shape = tf.constant([100, 80, 3])
    first = pre.random_crop_window(shape, tf.constant([3, 4])).numpy()
    assert (pre.random_crop_window(shape, tf.constant([3, 4])).numpy() == first).all()
    others = {tuple(pre.random_crop_window(shape, tf.constant([s, 4])).numpy()) for s in range(10)}
    assert len(others) > 5


def test_random_crop_window_falls_back_to_the_clamped_whole_image():
    # A 10x200 strip cannot hold any 3/4-4/3 crop of >= 50% of its area: torchvision's fallback is
    # the centred window of the whole height with the widest allowed aspect ratio.
    window = pre.random_crop_window(tf.constant([10, 200, 3]), tf.constant([1, 2]), (0.5, 1.0)).numpy()
    assert window.tolist() == [0, (200 - 13) // 2, 10, 13]


@pytest.mark.parametrize(("height", "width"), [(90, 120), (120, 90), (100, 100), (375, 500)])
def test_center_crop_window_matches_resize_then_crop(height, width):
    # timm: resize the shorter side to size / crop_pct, then crop size x size from the centre.
    # The same region in the original image, by NumPy arithmetic:
    size, crop_pct = 224, 0.875
    scale = (size / crop_pct) / min(height, width)
    resized_h, resized_w = round(height * scale), round(width * scale)
    top, left = round((resized_h - size) / 2) / scale, round((resized_w - size) / 2) / scale
    y, x, h, w = pre.center_crop_window(tf.constant([height, width, 3]), crop_pct).numpy()
    tolerance = max(1.0, 1.0 / scale)  # one pixel of the resized image
    assert abs(h - size / scale) <= tolerance and abs(w - size / scale) <= tolerance
    assert abs(y - top) <= tolerance and abs(x - left) <= tolerance


def test_decode_crop_of_a_jpeg_equals_decoding_then_cropping(photo):
    data = _jpeg(photo)
    window = tf.constant([13, 21, 40, 70])
    cropped = pre.decode_crop(tf.constant(data), lambda shape: window).numpy()
    full = tf.io.decode_jpeg(data).numpy()
    np.testing.assert_array_equal(cropped, full[13:53, 21:91])


def test_decode_crop_of_a_png_crops_the_exact_pixels(photo):
    window = tf.constant([5, 6, 30, 40])
    cropped = pre.decode_crop(tf.io.encode_png(photo), lambda shape: window).numpy()
    np.testing.assert_array_equal(cropped, photo[5:35, 6:46])


def test_decoders_give_rgb_for_gray_and_rgba(photo):
    gray = photo[..., :1]
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(pre.decode_rgb(tf.io.encode_png(gray)).numpy(), np.repeat(gray, 3, -1))
    np.testing.assert_array_equal(pre.decode_rgb(tf.io.encode_png(rgba)).numpy(), photo)  # alpha dropped
    gray_jpeg = pre.decode_rgb(tf.io.encode_jpeg(gray)).numpy()
    assert gray_jpeg.shape == photo.shape and (gray_jpeg == gray_jpeg[..., :1]).all()
    np.testing.assert_array_equal(pre.to_rgb(tf.constant(rgba)).numpy(), photo)
    np.testing.assert_array_equal(pre.to_rgb(tf.constant(gray)).numpy(), np.repeat(gray, 3, -1))


def test_center_crop_keeps_the_centre_only():
    # A white frame around a black centre of exactly half the shorter side: crop_pct 0.5 sees only black.
    image = np.full((80, 120, 3), 255, np.uint8)
    image[20:60, 40:80] = 0
    out = pre.center_crop(tf.io.encode_png(image), 16, crop_pct=0.5).numpy()
    assert out.shape == (16, 16, 3) and out.max() < 1e-3
    wide = pre.center_crop(tf.io.encode_png(image), 16, crop_pct=1.0).numpy()
    assert wide[0, 0].min() > 250  # the full shorter side reaches the white frame


def test_inception_crop_with_the_whole_image_is_a_resize_or_its_mirror(photo):
    data = tf.constant(_jpeg(photo))
    full = pre.resize(tf.cast(tf.io.decode_jpeg(data), tf.float32), 64).numpy()
    seen = set()
    for i in range(8):
        # area 1 and the image's own aspect ratio: the only window is the whole image.
        out = pre.inception_crop(data, 64, tf.constant([i, 0]), (1.0, 1.0), (4 / 3, 4 / 3)).numpy()
        flipped = np.allclose(out, full[:, ::-1], atol=1e-4)
        assert flipped or np.allclose(out, full, atol=1e-4)
        seen.add(flipped)
    assert seen == {True, False}  # the flip is random


def test_inception_crop_is_deterministic_per_seed(photo):
    data = tf.constant(_jpeg(photo))
    a = pre.inception_crop(data, 32, tf.constant([5, 5])).numpy()
    np.testing.assert_array_equal(a, pre.inception_crop(data, 32, tf.constant([5, 5])).numpy())
    assert not np.array_equal(a, pre.inception_crop(data, 32, tf.constant([6, 5])).numpy())


def test_pad_and_crop_is_a_shifted_window_of_the_zero_padded_image(rng):
    image = rng.integers(1, 256, (32, 32, 3)).astype(np.uint8)  # no zeros: padding is visible
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    offsets = set()
    for i in range(40):
        out = pre.pad_and_crop(tf.constant(image), tf.constant([i, 1])).numpy()
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if np.array_equal(out, (padded[:, ::-1] if flip else padded)[dy : dy + 32, dx : dx + 32])
        ]
        assert matches, "output is not a crop of the padded (possibly flipped) image"
        offsets.add(matches[0][:2])
    assert len(offsets) > 10


# 6x4 images, left half (200, 30, 40), right half (10, 90, 250), saved by Pillow.
_GIF = "R0lGODdhBgAEAIEAAMgeKApa+gAAAAAAACwAAAAABgAEAAAIEAABCAxAUCAAggEMIlRIMCAAOw=="
_BMP = (
    "Qk2GAAAAAAAAADYAAAAoAAAABgAAAAQAAAABABgAAAAAAFAAAADEDgAAxA4AAAAAAAAAAAAAKB7IKB7IKB7I+loK+loK+loKAAAoHsgo"
    "HsgoHsj6Wgr6Wgr6WgoAACgeyCgeyCgeyPpaCvpaCvpaCgAAKB7IKB7IKB7I+loK+loK+loKAAA="
)
_WEBP_LOSSLESS = "UklGRiIAAABXRUJQVlA4TBYAAAAvBcAAAA9wLeIr+N5Ff/6DBz2I6H8A"


@pytest.mark.parametrize("encoded", [_GIF, _BMP, _WEBP_LOSSLESS], ids=["gif", "bmp", "webp"])
def test_other_formats_decode_to_rgb(encoded):
    expected = np.zeros((4, 6, 3), np.uint8)
    expected[:, :3], expected[:, 3:] = (200, 30, 40), (10, 90, 250)
    image = pre.decode_rgb(tf.constant(base64.b64decode(encoded))).numpy()
    np.testing.assert_array_equal(image, expected)
