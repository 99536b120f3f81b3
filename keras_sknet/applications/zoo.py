"""The model zoo beside the paper: every model's size against its published one.

`PAPER_SIZES` lists the paper's parameter counts and multiply-adds (Tables 1,
2, 4, 5, 6, 7 and S2) with the model that reproduces each row: the named
models' rows come from their records (`keras_sknet.weights.records`), the
ablations of Tables 6 and 7 are `SKNet()` arguments listed here;
`measure()` builds them and counts; `python -m keras_sknet` prints the table.
"""

import dataclasses
import functools
from collections.abc import Callable

from keras_sknet.applications import sknet
from keras_sknet.utils.flops import count_flops, count_params
from keras_sknet.weights.records import MODELS


@dataclasses.dataclass(frozen=True)
class PaperSize:
    """One published row: the paper's numbers and how to build the model."""

    label: str
    source: str
    build: Callable
    params: float | None  # trainable parameters, millions
    macs: float | None  # multiply-adds for one image, millions
    tolerance: tuple | None  # relative (params, MACs) tolerance; None: reported only
    note: str = ""


def _sknet50(**kwargs):
    return lambda: sknet.SKNet((3, 4, 6, 3), **kwargs)


def _named_rows(*tables):
    """The rows of the named models' records (keras_sknet.weights.records) from these tables, in record order."""
    import keras_sknet.applications as applications

    rows = []
    for record in MODELS.values():
        for size in record.paper:
            if size.source in tables:
                function = getattr(applications, record.name)
                build = functools.partial(function, **size.arguments)
                rows.append(
                    PaperSize(
                        size.label, size.source, build, size.params, size.macs, size.tolerance, size.note
                    )
                )
    return tuple(sorted(rows, key=lambda row: tables.index(row.source)))


# Tolerances of ../shared/TARGETS.md: (params, MACs).
_IMAGENET_TOL = (0.015, 0.03)
_CIFAR_TOL = (0.015, None)

PAPER_SIZES = (
    *_named_rows("Table 1", "Table S2", "Table 2"),
    # Table 6: the second path of SKNet-50 (the first is 3x3, D=1, G=32).
    PaperSize(
        "SKNet-50, 2nd path 3x3 D=3", "Table 6", _sknet50(kernel_sizes=(3, 7)), 27.5, 4470, _IMAGENET_TOL
    ),
    PaperSize(
        "SKNet-50, 2nd path 3x3 D=1", "Table 6", _sknet50(kernel_sizes=(3, 3)), 27.5, 4470, _IMAGENET_TOL
    ),
    PaperSize(
        "SKNet-50, 2nd path 5x5 G=64",
        "Table 6",
        _sknet50(kernel_sizes=(3, 5), dilate_large_kernels=False, sk_groups=(32, 64)),
        28.1,
        4560,
        _IMAGENET_TOL,
    ),
    PaperSize(
        "SKNet-50, 2nd path 7x7 G=128",
        "Table 6",
        _sknet50(kernel_sizes=(3, 7), dilate_large_kernels=False, sk_groups=(32, 128)),
        28.1,
        4550,
        _IMAGENET_TOL,
    ),
    # Table 7: K3 = 3x3, K5 = 3x3 dilation 2, K7 = 3x3 dilation 3; "sum" = no SK attention.
    PaperSize("K3", "Table 7", _sknet50(kernel_sizes=(3,), attention=False), 25.0, 4240, _IMAGENET_TOL),
    PaperSize("K5", "Table 7", _sknet50(kernel_sizes=(5,), attention=False), 25.0, 4240, _IMAGENET_TOL),
    PaperSize("K7", "Table 7", _sknet50(kernel_sizes=(7,), attention=False), 25.0, 4240, _IMAGENET_TOL),
    PaperSize(
        "K3+K5 sum", "Table 7", _sknet50(kernel_sizes=(3, 5), attention=False), 26.5, 4460, _IMAGENET_TOL
    ),
    PaperSize("K3+K5 SK", "Table 7", _sknet50(kernel_sizes=(3, 5)), 27.5, 4470, _IMAGENET_TOL),
    PaperSize(
        "K3+K7 sum", "Table 7", _sknet50(kernel_sizes=(3, 7), attention=False), 26.5, 4460, _IMAGENET_TOL
    ),
    PaperSize("K3+K7 SK", "Table 7", _sknet50(kernel_sizes=(3, 7)), 27.5, 4470, _IMAGENET_TOL),
    PaperSize(
        "K5+K7 sum", "Table 7", _sknet50(kernel_sizes=(5, 7), attention=False), 26.5, 4460, _IMAGENET_TOL
    ),
    PaperSize("K5+K7 SK", "Table 7", _sknet50(kernel_sizes=(5, 7)), 27.5, 4470, _IMAGENET_TOL),
    PaperSize(
        "K3+K5+K7 sum",
        "Table 7",
        _sknet50(kernel_sizes=(3, 5, 7), attention=False),
        28.0,
        4690,
        _IMAGENET_TOL,
    ),
    PaperSize("K3+K5+K7 SK", "Table 7", _sknet50(kernel_sizes=(3, 5, 7)), 29.3, 4700, _IMAGENET_TOL),
    # Table 4, stages {4, 6, 6}; by width, then plain, SE, SK.
    *sorted(_named_rows("Table 4"), key=lambda row: row.build.keywords["alpha"]),
    # Table 5, 32x32, CIFAR-10 head.
    *_named_rows("Table 5"),
    PaperSize(
        "SENet-29 on 8x64d",
        "Table 5",
        lambda: sknet.SKNet(
            (3, 3, 3),
            block="resnext",
            stem="cifar",
            cardinality=8,
            bottleneck_width=64,
            se_reduction=16,
            classes=10,
        ),
        35.0,
        None,
        _CIFAR_TOL,
        "the printed 35.0M matches SE on ResNeXt-29 8x64d, not on the 16x32d the text names",
    ),
)


@dataclasses.dataclass
class Measured:
    row: PaperSize
    params: float  # millions
    macs: float  # millions

    def relative_error(self, what):
        published = getattr(self.row, what)
        if published is None:
            return None
        return getattr(self, what) / published - 1.0

    @property
    def within_tolerance(self):
        """True if params and MACs are within the row's tolerance (None: no target)."""
        if self.row.tolerance is None:
            return None
        checks = zip((self.relative_error("params"), self.relative_error("macs")), self.row.tolerance)
        return all(error is None or tol is None or abs(error) <= tol for error, tol in checks)


def measure(rows=PAPER_SIZES):
    """Builds every row's model and counts its trainable parameters and multiply-adds."""
    import keras

    results = []
    for row in rows:
        model = row.build()
        results.append(Measured(row, count_params(model) / 1e6, count_flops(model) / 1e6))
        del model
        keras.backend.clear_session()
    return results


def _fmt(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(error):
    return "" if error is None else f" ({100 * error:+.1f}%)"


def format_table(results):
    """A Markdown table: model, source, params and MACs (ours vs the paper's), verdict."""
    lines = [
        "| model | paper | params (M) | paper params | MACs (M) | paper MACs | within tolerance | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in results:
        verdict = {True: "yes", False: "NO", None: "reported only"}[m.within_tolerance]
        lines.append(
            f"| {m.row.label} | {m.row.source} | {m.params:.3f}{_pct(m.relative_error('params'))} "
            f"| {_fmt(m.row.params, 2)} | {m.macs:.1f}{_pct(m.relative_error('macs'))} "
            f"| {_fmt(m.row.macs, 2)} | {verdict} | {m.row.note} |"
        )
    return "\n".join(lines)


def main(rows=PAPER_SIZES, measure_sizes=True):
    """Prints the table of `rows` (`python -m keras_sknet` parses its arguments, then calls this).

    Args:
        rows: the `PaperSize` rows to print.
        measure_sizes: False to list the rows and the paper's numbers without building a model.
    """
    if not measure_sizes:
        print("| model | paper | paper params (M) | paper MACs (M) | note |\n|---|---|---|---|---|")
        for row in rows:
            print(
                f"| {row.label} | {row.source} | {_fmt(row.params, 2)} | {_fmt(row.macs, 2)} | {row.note} |"
            )
        return
    print("keras-sknet model zoo: sizes against the paper (trainable params; multiply-adds for one image)")
    print(format_table(measure(rows)))
