"""The paper's scale experiment (Section 4.4, Figures 3 and 4).

Enlarge the central object by a central crop and a resize back to the input
size (1.0x, 1.5x, 2.0x), read every SK unit's attention, and compare the
attention of the larger kernel with that of the smaller one. The paper finds
that in low and middle units (SK_2_3, SK_3_4) the larger kernel gets more
attention as the object grows, and that the pattern fades in the last units
(SK_5_3).
"""

import dataclasses
import numbers

import keras
import numpy as np

from keras_sknet.analysis.attention import AttentionReader, check_images
from keras_sknet.utils.files import write_json_atomically


def enlarge_center(images, scale):
    """Crops the central 1/scale of each image and resizes it back (bilinear).

    Args:
        images: `(N, H, W, C)` floats.
        scale: >= 1; 1.0 returns the images unchanged.

    Returns:
        `(N, H, W, C)` float32: the central object `scale` times larger.
    """
    images = np.asarray(images, "float32")
    if scale == 1.0:
        return images
    height, width = images.shape[1:3]
    crop_h = max(1, int(round(height / scale)))
    crop_w = max(1, int(round(width / scale)))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = images[:, top : top + crop_h, left : left + crop_w, :]
    # Half-pixel-centred bilinear on every backend (tf.image.resize on TensorFlow).
    resized = keras.ops.image.resize(crop, (height, width), interpolation="bilinear", antialias=False)
    return keras.ops.convert_to_numpy(resized).astype("float32")


def _check_scales(scales):
    if not isinstance(scales, (list, tuple)) or not scales:
        raise ValueError(f"`scales` must be a non-empty list of numbers >= 1. Received: scales={scales!r}")
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not s >= 1.0:
            raise ValueError(
                "Every scale must be a number >= 1 (1.0 is the original image; the experiment "
                f"enlarges, it cannot shrink). Received: scales={tuple(scales)!r}"
            )
    return tuple(float(s) for s in scales)


@dataclasses.dataclass
class ScaleReport:
    """What the scale experiment measured.

    Attributes:
        scales: the enlargement factors, e.g. (1.0, 1.5, 2.0).
        units: SK unit names in depth order.
        large_path, small_path: `{unit: path index}` of the larger and the smaller kernel.
        large_attention: `{unit: (S, C)}` the larger kernel's attention per channel,
            averaged over images, per scale.
        differences: `{unit: (S, N)}` per image, the mean over channels of the larger
            kernel's attention minus the smaller one's.
        labels: `(N,)` class of each image, or None.
    """

    scales: tuple
    units: list
    large_path: dict
    small_path: dict
    large_attention: dict
    differences: dict
    labels: np.ndarray = None

    def mean_difference(self, unit):
        """`(S,)`: the attention difference averaged over images, per scale."""
        return self.differences[unit].mean(axis=1)

    def std_difference(self, unit):
        """`(S,)`: its standard deviation over images."""
        return self.differences[unit].std(axis=1)

    def increase_share(self, unit, lower=0, upper=1):
        """Share of images whose difference grows from scale index `lower` to `upper`."""
        d = self.differences[unit]
        return float(np.mean(d[upper] > d[lower]))

    def per_class(self, unit):
        """`(classes, (S, K))`: the mean difference of each class, per scale."""
        if self.labels is None:
            raise ValueError("The experiment was run without `labels`: there are no classes to average over.")
        classes = np.unique(self.labels)
        means = np.stack([self.differences[unit][:, self.labels == c].mean(axis=1) for c in classes], axis=1)
        return classes, means

    def summary(self):
        """A Markdown table: per unit, the mean difference at each scale and how often it grows."""
        header = " / ".join(f"{s:g}x" for s in self.scales)
        lines = [
            f"| unit | large - small kernel attention at {header} | images where it grows {self.scales[0]:g}x -> "
            f"{self.scales[-1]:g}x |",
            "|---|---|---|",
        ]
        for unit in self.units:
            means = " / ".join(f"{m:+.4f}" for m in self.mean_difference(unit))
            share = (
                self.increase_share(unit, 0, len(self.scales) - 1) if len(self.scales) > 1 else float("nan")
            )
            lines.append(f"| {unit} | {means} | {100 * share:.0f}% |")
        return "\n".join(lines)

    def to_dict(self):
        """The report's numbers as plain Python (JSON-ready)."""
        out = {
            "scales": list(self.scales),
            "units": {
                unit: {
                    "large_path": int(self.large_path[unit]),
                    "small_path": int(self.small_path[unit]),
                    "mean_difference": self.mean_difference(unit).tolist(),
                    "std_difference": self.std_difference(unit).tolist(),
                    "increase_share_first_to_last": self.increase_share(unit, 0, len(self.scales) - 1)
                    if len(self.scales) > 1
                    else None,
                }
                for unit in self.units
            },
        }
        if self.labels is not None:
            for unit in self.units:
                classes, means = self.per_class(unit)
                out["units"][unit]["per_class_mean_difference"] = {
                    str(int(c)): means[:, i].tolist() for i, c in enumerate(classes)
                }
        return out

    def save_json(self, path):
        """Writes `to_dict()` to `path` atomically."""
        write_json_atomically(path, self.to_dict(), indent=2)

    def plot(self, path, unit=None):
        """Figure 3 style PNG: one unit's per-channel attention, and the difference across units."""
        from keras_sknet.analysis.plots import plot_scales

        plot_scales(self, path, unit=unit)

    def plot_classes(self, path, units=None, scales=None, class_names=None):
        """Figure 4 style PNG: per-class mean differences on representative units."""
        from keras_sknet.analysis.plots import plot_classes

        plot_classes(self, path, units=units, scales=scales, class_names=class_names)


def scale_experiment(model, images, scales=(1.0, 1.5, 2.0), labels=None, batch_size=32, scaled_images=None):
    """Runs the scale experiment of Section 4.4 on `images`.

    For each scale, the central object is enlarged (central crop of 1/scale,
    resized back), and every SK unit's attention is read. For each unit the
    larger and the smaller kernel are the paths with the largest and the
    smallest receptive field (K5 and K3 in SKNet-50; K3 and the 1x1 path in
    SKNet-29).

    Args:
        model: a Keras model with SK units.
        images: `(N, H, W, C)` float model inputs (preprocessed), objects centred.
        scales: enlargement factors, each >= 1.
        labels: optional `(N,)` integer classes, for the per-class view (Figure 4).
        batch_size: images per forward pass.
        scaled_images: optional `{scale: images}` with the same scenes already drawn
            at other scales (e.g. `scales_demo` re-renders a scene with only the
            object enlarged); scales found here are used as given, the others are
            made by central crop and resize.

    Returns:
        A `ScaleReport`.

    Example:
        >>> report = scale_experiment(model, images, scales=(1.0, 1.5, 2.0), labels=labels)
        >>> print(report.summary())
        >>> report.plot("attention.png")
    """
    scales = _check_scales(scales)
    images = check_images(model, images)
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"`labels` must be {len(images)} integers, one per image. "
                f"Received: {len(labels)} labels of dtype {labels.dtype}"
            )
    given = {float(s): check_images(model, v) for s, v in (scaled_images or {}).items()}
    for s, v in given.items():
        if v.shape != images.shape:
            raise ValueError(
                f"scaled_images[{s:g}] must hold the same {len(images)} scenes as `images`, shape "
                f"{images.shape}. Received shape {v.shape}"
            )
    reader = AttentionReader(model, batch_size)
    extents = reader.extents()
    per_scale = [reader(given[s] if s in given else enlarge_center(images, s)) for s in scales]
    units = list(per_scale[0])
    large = {u: int(np.argmax(extents[u])) for u in units}
    small = {u: int(np.argmin(extents[u])) for u in units}
    for unit in units:
        if large[unit] == small[unit]:
            raise ValueError(
                f"SK unit {unit} has paths of one receptive field only: no larger kernel to compare."
            )
    return ScaleReport(
        scales=scales,
        units=units,
        large_path=large,
        small_path=small,
        large_attention={u: np.stack([a[u][:, large[u]].mean(axis=0) for a in per_scale]) for u in units},
        differences={
            u: np.stack([(a[u][:, large[u]] - a[u][:, small[u]]).mean(axis=1) for a in per_scale])
            for u in units
        },
        labels=labels,
    )
