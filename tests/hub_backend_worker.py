"""Loads a keras-hub preset on whichever Keras backend `KERAS_BACKEND` names, and saves it again.

    KERAS_BACKEND=jax python -m tests.hub_backend_worker PRESET IMAGES.npz OUTPUT_DIR

`tests/test_hub.py` writes PRESET on TensorFlow and starts this under JAX and
PyTorch: keras-hub's own `ImageClassifier.from_preset` and `Backbone.from_preset`
must return the keras_sknet classes there too. It leaves in OUTPUT_DIR, in
`outputs.npz`: the classifier's `predict` logits on the uint8 `images` of
IMAGES.npz (keras-hub preprocesses them in tf.data, or eagerly on this backend
where grain is installed), the preprocessor called eagerly on this backend
(`preprocessed`), and the backbone's pyramid on TensorFlow's preprocessing
(`preprocessed` in IMAGES.npz); in `outputs.json` the backend's name and the
classes it got; in `preset/` the classifier saved again from this backend, for
TensorFlow to load.
"""

import argparse
import json
import os

import keras
import keras_hub
import numpy as np

import keras_sknet.hub  # noqa: F401  (registers the classes keras-hub looks up)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("images")
    parser.add_argument("output")
    args = parser.parse_args(argv)
    inputs = np.load(args.images)
    images = inputs["images"]
    classifier = keras_hub.models.ImageClassifier.from_preset(args.preset)
    backbone = keras_hub.models.Backbone.from_preset(args.preset)
    logits = classifier.predict(images, batch_size=len(images), verbose=0)
    preprocessed = classifier.preprocessor(images)
    pyramid = keras.Model(backbone.inputs, backbone.pyramid_outputs)
    levels = {
        name: keras.ops.convert_to_numpy(value) for name, value in pyramid(inputs["preprocessed"]).items()
    }
    os.makedirs(args.output, exist_ok=True)
    classifier.save_to_preset(os.path.join(args.output, "preset"))
    np.savez(
        os.path.join(args.output, "outputs.npz"),
        logits=logits,
        preprocessed=keras.ops.convert_to_numpy(preprocessed),
        **levels,
    )
    with open(os.path.join(args.output, "outputs.json"), "w") as f:
        json.dump(
            {
                "backend": keras.backend.backend(),
                "classifier": type(classifier).__name__,
                "backbone": type(backbone).__name__,
            },
            f,
        )


if __name__ == "__main__":
    main()
