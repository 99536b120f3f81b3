"""SKNet, ResNeXt, SENet and SK-ResNet in keras-hub (optional: needs the `hub` extra).

`import keras_sknet.hub` registers `SKNetBackbone`, `SKNetImageConverter`,
`SKNetImageClassifierPreprocessor` and `SKNetImageClassifier` (the `SKNet()`
family), and their `SKResNet*` counterparts (the basic-block `SKResNet()` nets),
under the package `keras_sknet`, so that keras-hub's own
`keras_hub.models.Backbone.from_preset(dir)` and
`keras_hub.models.ImageClassifier.from_preset(dir)` return them.
`preset_from_weights(model_name, weights, directory)` writes a preset; the
command line `python -m keras_sknet.hub presets DIR` writes one per pretrained
model. `import keras_sknet` never imports this package. See docs/backbones.md.
"""

# ruff: noqa: F401  (_import_names imports the package's names and returns them as locals())

from keras_sknet.utils import cli


def _import_names():  # in `python -m keras_sknet.hub`, on first use (cli.import_names)
    try:
        import keras_hub  # noqa: F401
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "keras_sknet.hub needs keras-hub: pip install 'keras-sknet[hub]' && "
            "pip install --no-deps keras-hub==0.32.0 (see docs/backbones.md, 'keras-hub'). "
            f"Import failed with: {error}"
        ) from error

    from keras_sknet.hub.backbone import SKNetBackbone, SKResNetBackbone
    from keras_sknet.hub.presets import (
        HUB_MODELS,
        backbone_class,
        preset_from_weights,
        write_pretrained_presets,
    )
    from keras_sknet.hub.tasks import (
        SKNetImageClassifier,
        SKNetImageClassifierPreprocessor,
        SKNetImageConverter,
        SKResNetImageClassifier,
        SKResNetImageClassifierPreprocessor,
        SKResNetImageConverter,
    )

    return locals()


__all__ = [
    "HUB_MODELS",
    "SKNetBackbone",
    "SKNetImageClassifier",
    "SKNetImageClassifierPreprocessor",
    "SKNetImageConverter",
    "SKResNetBackbone",
    "SKResNetImageClassifier",
    "SKResNetImageClassifierPreprocessor",
    "SKResNetImageConverter",
    "backbone_class",
    "preset_from_weights",
    "write_pretrained_presets",
]

cli.import_names(globals(), _import_names)
