"""Figures in the style of the paper's Figures 3 and 4 (matplotlib, PNG)."""

import os

import numpy as np

from keras_sknet.utils.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    """Saves atomically: a failed write leaves any previous figure in place."""
    # matplotlib picks the format from the name's extension.
    with atomic_path(path, suffix=os.path.splitext(path)[1] or ".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")


def default_unit(units):
    """SK_3_4 as in Figure 3 when the model has it, else the middle unit."""
    return "SK_3_4" if "SK_3_4" in units else units[len(units) // 2]


def plot_scales(report, path, unit=None, channel_group=None):
    """Figure 3 (c): per-channel attention of the larger kernel in `unit`, and the
    mean attention difference (larger minus smaller kernel) in every unit, with
    standard deviations, one curve per scale.

    `channel_group` successive channels are averaged "for the ease of view", as the
    paper does with 16; by default 16 from 256 channels on, fewer for narrower units."""
    plt = _pyplot()
    unit = unit or default_unit(report.units)
    if unit not in report.units:
        raise ValueError(f"Unknown unit {unit!r}. The report has: {', '.join(report.units)}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1.6]})
    channels = len(report.large_attention[unit][0])
    if channel_group is None:
        channel_group = 16 if channels >= 256 else max(1, channels // 16)
    for i, scale in enumerate(report.scales):
        values = report.large_attention[unit][i]
        groups = len(values) // channel_group or 1
        averaged = values[: groups * channel_group].reshape(groups, -1).mean(axis=1) if groups > 1 else values
        left.plot(np.arange(len(averaged)) * min(channel_group, len(values)), averaged, label=f"{scale:g}x")
    left.set_title(f"{unit}: attention of the larger kernel per channel")
    left.set_xlabel(
        f"channel (mean of {channel_group} successive)"
        if len(report.large_attention[unit][0]) > channel_group
        else "channel"
    )
    left.set_ylabel("attention")
    left.legend()

    x = np.arange(len(report.units))
    width = 0.8 / len(report.scales)
    for i, scale in enumerate(report.scales):
        means = [report.mean_difference(u)[i] for u in report.units]
        stds = [report.std_difference(u)[i] for u in report.units]
        right.errorbar(
            x + (i - (len(report.scales) - 1) / 2) * width,
            means,
            yerr=stds,
            fmt="o-",
            ms=3,
            capsize=2,
            lw=1,
            label=f"{scale:g}x",
        )
    right.axhline(0, color="grey", lw=0.5)
    right.set_xticks(x, report.units, rotation=60, fontsize=7)
    right.set_title("mean attention: larger kernel minus smaller kernel")
    right.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_classes(report, path, units=None, scales=None, class_names=None):
    """Figure 4: for representative units, each class's mean attention difference
    (larger minus smaller kernel) at the given scales (default the first two);
    `class_names` labels the classes on the axis."""
    plt = _pyplot()
    if units is None:
        # Low, middle and last unit, like SK_2_3, SK_3_4 and SK_5_3 in the paper.
        candidates = [u for u in ("SK_2_3", "SK_3_4", "SK_5_3") if u in report.units]
        units = candidates or [report.units[0], report.units[len(report.units) // 2], report.units[-1]]
    scales = scales or report.scales[:2]
    for unit in units:
        if unit not in report.units:
            raise ValueError(f"Unknown unit {unit!r}. The report has: {', '.join(report.units)}")
    fig, axes = plt.subplots(1, len(units), figsize=(4.5 * len(units), 3.6), squeeze=False)
    for ax, unit in zip(axes[0], units):
        classes, means = report.per_class(unit)
        for scale in scales:
            i = report.scales.index(float(scale))
            ax.plot(classes, means[i], "o-", ms=3, lw=1, label=f"{scale:g}x")
        ax.set_title(unit)
        ax.set_xlabel("class")
        if class_names is not None:
            ax.set_xticks(classes, [class_names[int(c)] for c in classes], rotation=45, fontsize=8)
        ax.set_ylabel("mean attention difference")
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
