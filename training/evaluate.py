"""Command line: single-crop top-1 / top-5 of a trained run, at 224 or 320 (Table 2).

python -m training.evaluate --model-dir runs/sk50 --image-size 320

On Keras' tensorflow or jax backend, whichever trained the run (`.keras` files are
the same for both).
"""

import argparse
import dataclasses
import json
import os
import sys


def load_experiment(model_dir):
    """The resolved experiment a run was trained with (its config.json)."""
    from training.experiments import Experiment

    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        raise ValueError(f"{model_dir} is not a run directory: it has no config.json.")
    with open(path) as f:
        config = json.load(f)
    fields = {f.name for f in dataclasses.fields(Experiment)}
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in fields}
    return Experiment(**config)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--model", default="best", help="best, last, or a path to a .keras model")
    parser.add_argument("--image-size", type=int, help="evaluation crop (default: the experiment's)")
    parser.add_argument(
        "--crop-pct", type=float, help="resize to image-size / crop-pct before the centre crop"
    )
    parser.add_argument("--data-dir")
    parser.add_argument("--manual-dir")
    args = parser.parse_args(argv)

    import keras

    import keras_sknet  # noqa: F401  (registers the layers)
    from keras_sknet.utils.files import write_json_atomically
    from training import optimizers  # noqa: F401  (registers the optimiser)
    from training.data import DatasetUnavailableError
    from training.trainer import evaluate_model

    try:
        experiment = load_experiment(args.model_dir)
        path = (
            args.model
            if args.model.endswith(".keras")
            else os.path.join(args.model_dir, f"{args.model}.keras")
        )
        if not os.path.exists(path):
            raise ValueError(f"No model at {path}: train first, or pass --model last / a .keras path.")
        model = keras.models.load_model(path)
        result = evaluate_model(
            model, experiment, args.data_dir, args.manual_dir, args.image_size, args.crop_pct
        )
    except (ValueError, DatasetUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    result["model"] = path
    out = os.path.join(args.model_dir, f"eval_{result['image_size']}.json")
    write_json_atomically(out, result, indent=2)
    print(
        f"{experiment.name} ({os.path.basename(path)}): top-1 {100 * result['top1']:.2f}%, "
        f"top-5 {100 * result['top5']:.2f}% on {result['examples']} {result['split']} images, "
        f"single {result['image_size']}x{result['image_size']} crop. Written to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
