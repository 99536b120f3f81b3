"""Renders the scenes of the embedded `scales_demo` dataset with NumPy only.

A scene is one object of a shape class drawn at a controlled scale (1.0x,
1.5x or 2.0x of a base size, the three scales of Section 4.4 / Figure 3) on a
cluttered background: a colour gradient with low-frequency noise, thin line
segments and small blobs cut from the same shapes. Everything is drawn from
one seed, and the object's scale does not enter any random draw, so
`render_scene(seed, label, scale)` with the same seed and label and another
scale gives the same scene with only the object resized about its centre:
the paper's "same target object in different scales".

Shapes are anti-aliased by 2x2 supersampling, lines by their distance field;
the maths is float64 NumPy, so a seed gives the same pixels on every machine.
"""

import functools

import numpy as np

CLASS_NAMES = ("disc", "ring", "square", "frame", "triangle", "plus", "star", "crescent")
SCALES = (1.0, 1.5, 2.0)

_SUPERSAMPLE = 2
# A shape's farthest point from its centre, in units of its radius (the square's corners).
_MAX_EXTENT = 0.8 * np.sqrt(2.0)


def _regular_polygon(n, radius, phase):
    angles = phase + 2.0 * np.pi * np.arange(n) / n
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


_TRIANGLE = _regular_polygon(3, 1.0, np.pi / 2)
# Five outer points (radius 1) alternating with five inner ones (radius 0.42).
_STAR = np.stack(
    [_regular_polygon(5, 1.0, np.pi / 2), _regular_polygon(5, 0.42, np.pi / 2 + np.pi / 5)], axis=1
).reshape(10, 2)


def _polygon_inside(u, v, vertices):
    """Even-odd rule: True where (u, v) lies inside the closed polygon."""
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    x0, y0 = vertices[-1]
    for x1, y1 in vertices:
        if y0 != y1:
            crosses = (y0 > v) != (y1 > v)
            inside ^= crosses & (u < x0 + (v - y0) * (x1 - x0) / (y1 - y0))
        x0, y0 = x1, y1
    return inside


def shape_mask(label, u, v):
    """Membership of object-frame points in shape `label` (radius 1, centred at 0).

    Args:
        label: class index into `CLASS_NAMES`.
        u, v: broadcastable arrays of coordinates in units of the object's radius.

    Returns:
        A boolean array of the broadcast shape.
    """
    name = CLASS_NAMES[label]
    if name in ("disc", "ring", "crescent"):
        r2 = u * u + v * v
        if name == "disc":
            return r2 < 1.0
        if name == "ring":
            return (r2 < 1.0) & (r2 > 0.55**2)
        return (r2 < 1.0) & ((u - 0.45) ** 2 + v * v > 0.8**2)
    if name in ("square", "frame"):
        box = np.maximum(np.abs(u), np.abs(v))
        return (box < 0.8) & (box > (0.42 if name == "frame" else -1.0))
    if name == "triangle":
        return _polygon_inside(u, v, _TRIANGLE)
    if name == "plus":
        au, av = np.abs(u), np.abs(v)
        return ((au < 0.3) & (av < 0.95)) | ((av < 0.3) & (au < 0.95))
    return _polygon_inside(u, v, _STAR)


@functools.lru_cache(maxsize=8)
def _pixel_centres(count, supersample=1):
    return (np.arange(count * supersample) + 0.5) / supersample


def _window(size, center, reach):
    """Pixel index ranges (rows, cols) within `reach` of `center` (x, y), clipped to the canvas."""
    x0, y0 = (max(0, min(size, int(np.floor(c - reach)))) for c in center)
    x1, y1 = (max(0, min(size, int(np.ceil(c + reach)) + 1)) for c in center)
    return (y0, y1), (x0, x1)


def _shape_coverage(label, size, center, radius, angle):
    """Anti-aliased coverage of a rotated shape over its window: `((rows, cols), coverage)`."""
    (r0, r1), (c0, c1) = _window(size, center, radius * _MAX_EXTENT + 1.0)
    s = _SUPERSAMPLE
    xs = _pixel_centres(size, s)[c0 * s : c1 * s][None, :] - center[0]
    ys = _pixel_centres(size, s)[r0 * s : r1 * s][:, None] - center[1]
    cos, sin = np.cos(angle) / radius, np.sin(angle) / radius
    mask = shape_mask(label, cos * xs + sin * ys, cos * ys - sin * xs)
    coverage = mask.reshape(r1 - r0, s, c1 - c0, s).mean(axis=(1, 3))
    return ((r0, r1), (c0, c1)), coverage


def _paint(canvas, window, coverage, colour):
    """Blends `colour` (RGB, or RGB per column of the window) into the canvas by coverage."""
    (r0, r1), (c0, c1) = window
    region = canvas[r0:r1, c0:c1]
    region += coverage[..., None] * (colour - region)


def _segment_coverage(size, start, end, width):
    """Anti-aliased coverage of a line segment (a capsule `width` pixels wide): `(window, coverage)`."""
    reach = width / 2.0 + 1.0
    (r0, r1), (c0, c1) = _window(size, (start + end) / 2.0, np.abs(end - start).max() / 2.0 + reach)
    x = _pixel_centres(size)[None, c0:c1] - start[0]
    y = _pixel_centres(size)[r0:r1, None] - start[1]
    dx, dy = end - start
    t = np.minimum(np.maximum((x * dx + y * dy) / max(dx * dx + dy * dy, 1e-9), 0.0), 1.0)
    distance = np.hypot(x - t * dx, y - t * dy)
    return ((r0, r1), (c0, c1)), np.minimum(np.maximum(width / 2.0 + 0.5 - distance, 0.0), 1.0)


def _smooth_noise(rng, size, cells, amplitude):
    """Low-frequency colour noise: a (cells+1)^2 grid of values, bilinearly upsampled."""
    grid = rng.normal(0.0, amplitude, (cells + 1, cells + 1, 3))
    pos = np.linspace(0.0, cells, size)
    i = np.minimum(pos.astype(int), cells - 1)
    f = (pos - i)[:, None, None]
    rows = grid[i] * (1 - f) + grid[i + 1] * f  # (size, cells + 1, 3)
    return rows[:, i] * (1 - f[:, 0][None]) + rows[:, i + 1] * f[:, 0][None]


def _contrasting_colour(rng, reference, min_distance=110.0):
    candidates = rng.uniform(0.0, 255.0, (16, 3))
    far = np.flatnonzero(np.linalg.norm(candidates - reference, axis=1) >= min_distance)
    return candidates[far[0]] if far.size else 255.0 - reference


def render_scene(seed, label, scale, image_size=64, base_size=20):
    """Renders one scene: an object of class `label` at `scale` on clutter.

    Section 4.4 of the paper enlarges one object from 1.0x to 2.0x and reads
    the attention of the SK units; here the scale is a controlled variable.
    All randomness comes from `seed` and none depends on the scale, so the
    same seed and label at 1.0, 1.5 and 2.0 give one scene with the object at
    three sizes, about the same centre.

    Args:
        seed: an int or a sequence of ints (NumPy `SeedSequence` entropy).
        label: the object's class, an index into `CLASS_NAMES`.
        scale: the object's size relative to `base_size`, in (0, 2.0].
        image_size: side of the square image in pixels.
        base_size: the object's diameter at scale 1.0, in pixels.

    Returns:
        `(image, info)`: uint8 RGB array `(image_size, image_size, 3)` and a dict
        with the object's `center` (x, y in pixels), `radius` and `angle`.

    Example:
        >>> triplet = [render_scene(7, label=2, scale=s)[0] for s in SCALES]
    """
    if not 0 <= int(label) < len(CLASS_NAMES):
        raise ValueError(f"`label` must be in [0, {len(CLASS_NAMES)}). Received: label={label!r}")
    if not 0.0 < float(scale) <= max(SCALES):
        raise ValueError(f"`scale` must be in (0, {max(SCALES)}]. Received: scale={scale!r}")
    max_radius = base_size / 2.0 * max(SCALES) * _MAX_EXTENT
    if image_size < 2 * max_radius + 4:
        raise ValueError(
            f"`image_size` must fit the object at {max(SCALES)}x: at least {int(np.ceil(2 * max_radius + 4))} "
            f"for base_size={base_size}. Received: image_size={image_size!r}"
        )
    rng = np.random.default_rng(seed)
    size = image_size

    # Background: a gradient between two colours plus low-frequency noise.
    colours = rng.uniform(0.0, 255.0, (2, 3))
    direction = rng.uniform(0.0, 2.0 * np.pi)
    centres = _pixel_centres(size) / size - 0.5
    t = centres[None, :] * np.cos(direction) + centres[:, None] * np.sin(direction) + 0.5
    t = np.minimum(np.maximum(t, 0.0), 1.0)[..., None]
    canvas = colours[0] * (1 - t) + colours[1] * t + _smooth_noise(rng, size, 4, 18.0)

    # Clutter under the object: thin line segments, then small blobs of random shapes.
    count = int(rng.integers(5, 11))
    starts = rng.uniform(0, size, (count, 2))
    angles = rng.uniform(0, 2 * np.pi, count)
    lengths = rng.uniform(0.3, 1.2, count) * base_size
    ends = starts + lengths[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    widths = rng.uniform(0.8, 2.0, count)
    for start, end, width, colour in zip(starts, ends, widths, rng.uniform(0, 255, (count, 3))):
        _paint(canvas, *_segment_coverage(size, start, end, width), colour)
    count = int(rng.integers(2, 6))
    blobs = zip(
        rng.integers(len(CLASS_NAMES), size=count),
        rng.uniform(0, size, (count, 2)),
        base_size / 2.0 * rng.uniform(0.2, 0.4, count),
        rng.uniform(0, 2 * np.pi, count),
        rng.uniform(0, 255, (count, 3)),
    )
    for shape, center, radius, angle, colour in blobs:
        _paint(canvas, *_shape_coverage(int(shape), size, center, radius, angle), colour)

    # The object. Its centre keeps the largest scale inside the frame, so that changing only
    # `scale` never moves or clips it; a soft shading across it so that it is not one flat colour.
    margin = max_radius + 2.0
    center = rng.uniform(margin, size - margin, 2)
    angle = rng.uniform(0, 2 * np.pi)
    colour = _contrasting_colour(rng, canvas[int(center[1]), int(center[0])])
    shade = rng.uniform(0.75, 1.0)
    radius = base_size / 2.0 * float(scale)
    window, coverage = _shape_coverage(int(label), size, center, radius, angle)
    columns = _pixel_centres(size)[window[1][0] : window[1][1]]
    across = np.minimum(np.maximum((columns - center[0]) / radius, -1.0), 1.0)
    shading = shade + (1.0 - shade) * (0.5 + 0.5 * across)
    _paint(canvas, window, coverage, colour * shading[None, :, None])

    canvas += rng.normal(0.0, 6.0, canvas.shape)
    image = np.rint(np.minimum(np.maximum(canvas, 0.0), 255.0)).astype(np.uint8)
    return image, {"center": center, "radius": radius, "angle": angle}
