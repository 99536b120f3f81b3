"""What the selection does (Section 4.4): attention read-out and the scale experiment.

from keras_sknet.analysis import attention_weights, scale_experiment
att = attention_weights(model, images)          # {"SK_3_4": (N, M, C), ...}
report = scale_experiment(model, images, scales=(1.0, 1.5, 2.0), labels=labels)
report.plot("attention.png")
"""

from keras_sknet.utils import cli

if not cli.COMMAND_LINE:  # `python -m keras_sknet.analysis` imports these once its arguments are checked
    from keras_sknet.analysis.attention import AttentionReader, attention_weights, unit_name
    from keras_sknet.analysis.scales import ScaleReport, enlarge_center, scale_experiment

__all__ = [
    "AttentionReader",
    "ScaleReport",
    "attention_weights",
    "enlarge_center",
    "scale_experiment",
    "unit_name",
]
