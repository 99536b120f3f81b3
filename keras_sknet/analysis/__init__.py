"""What the selection does (Section 4.4): attention read-out and the scale experiment.

from keras_sknet.analysis import attention_weights, scale_experiment
att = attention_weights(model, images)          # {"SK_3_4": (N, M, C), ...}
report = scale_experiment(model, images, scales=(1.0, 1.5, 2.0), labels=labels)
report.plot("attention.png")
"""

# ruff: noqa: F401  (_import_names imports the package's names and returns them as locals())

from keras_sknet.utils import cli


def _import_names():  # in `python -m keras_sknet.analysis`, on first use (cli.import_names)
    from keras_sknet.analysis.attention import AttentionReader, attention_weights, unit_name
    from keras_sknet.analysis.scales import ScaleReport, enlarge_center, scale_experiment

    return locals()


__all__ = [
    "AttentionReader",
    "ScaleReport",
    "attention_weights",
    "enlarge_center",
    "scale_experiment",
    "unit_name",
]

cli.import_names(globals(), _import_names)
