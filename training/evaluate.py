"""Command line: single-crop top-1 / top-5 of a trained run, at 224 or 320 (Table 2).

    python -m training.evaluate --model-dir runs/sk50
    python -m training.evaluate --model-dir runs/sk50 --image-size 320 --model last

The run directory says which data the run trained on (data.json): its dataset,
data folder and classes; `--data-dir` and `--manual-dir` read it from elsewhere.
On Keras' tensorflow or jax backend, whichever trained the run (`.keras` files
are the same for both).
"""

import dataclasses
import json
import os
import sys

from keras_sknet.utils import cli

PROG = "python -m training.evaluate"


def load_experiment(model_dir):
    """The resolved experiment a run was trained with (its config.json).

    Raises:
        FileNotFoundError: `model_dir` does not exist or holds no run (no config.json).
    """
    from training.experiments import Experiment
    from training.run_dir import CONFIG_FILE

    if not os.path.isdir(model_dir):
        raise FileNotFoundError(
            f"--model-dir {model_dir!r} is not a folder: give a run directory of training.train."
        )
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"--model-dir {model_dir!r} holds no training run (no {CONFIG_FILE}): give the --model-dir "
            "that python -m training.train trained into."
        )
    with open(path) as f:
        config = json.load(f)
    fields = {f.name for f in dataclasses.fields(Experiment)}
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in fields}
    return Experiment(**config)


def make_parser():
    parser = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="the run directory of python -m training.train")
    parser.add_argument("--model", default="best", help="best, last, or a path to a .keras model")
    parser.add_argument("--image-size", type=int, help="evaluation crop (default: the experiment's)")
    parser.add_argument(
        "--crop-pct", type=float, help="resize to image-size / crop-pct before the centre crop"
    )
    parser.add_argument("--data-dir", help="where the data is (default: where the run read it)")
    parser.add_argument("--manual-dir", help="manually downloaded archives (default: the run's)")
    return parser


def model_path(model_dir, model):
    """The .keras file `--model` names: best.keras, last.keras of the run, or a path."""
    if model.endswith(".keras"):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"--model {model!r}: no such .keras file.")
        return model
    if model not in ("best", "last"):
        raise cli.UserError(
            f"--model takes best, last or a path to a .keras file. Received: --model {model!r}"
        )
    path = os.path.join(model_dir, f"{model}.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"--model-dir {model_dir!r} has no {model}.keras yet (a run writes it at its first epoch's end): "
            "train first, or pass --model last or --model PATH.keras."
        )
    return path


def data_options(args, experiment, record):
    """(data_dir, manual_dir): the command line's, else the run's; checked in the command line's words."""
    from training.run_dir import is_folder

    record = record or {}
    data_dir = args.data_dir if args.data_dir is not None else record.get("data_dir")
    manual_dir = args.manual_dir if args.manual_dir is not None else record.get("manual_dir")
    if is_folder(experiment.dataset):
        if data_dir is None:
            raise cli.UserError(
                f"the run in {args.model_dir!r} trained on an image folder it did not record: give it as "
                "--data-dir FOLDER"
            )
        if not os.path.isdir(os.path.expanduser(data_dir)):
            where = "--data-dir" if args.data_dir is not None else "the run's image folder (data.json)"
            raise cli.UserError(
                f"{where} {data_dir!r} is not a folder: give the image folder as --data-dir FOLDER"
            )
    return data_dir, manual_dir


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.image_size is not None and args.image_size < 1:
        parser.error(f"--image-size must be at least 1. Received: --image-size {args.image_size}")
    if args.crop_pct is not None and not 0 < args.crop_pct <= 1:
        parser.error(f"--crop-pct must be in (0, 1]. Received: --crop-pct {args.crop_pct}")
    return cli.run(lambda: _work(args), prog=PROG)


def _work(args):
    cli.quiet_tensorflow()
    from training.run_dir import read_data_record

    experiment = load_experiment(args.model_dir)
    path = model_path(args.model_dir, args.model)
    if not os.access(args.model_dir, os.W_OK | os.X_OK):
        raise PermissionError(
            f"--model-dir {args.model_dir!r} is not writable: the result (eval_SIZE.json) is written there."
        )
    record = read_data_record(args.model_dir)
    data_dir, manual_dir = data_options(args, experiment, record)

    keras = cli.import_keras()

    import keras_sknet.applications  # noqa: F401  (registers the layers and ZooModel for load_model)
    from keras_sknet.utils.files import write_json_atomically
    from training import optimizers  # noqa: F401  (registers the optimiser)
    from training.data import DatasetUnavailableError, dataset_info
    from training.evaluation import evaluate_model

    try:
        info = dataset_info(experiment.dataset, data_dir=data_dir, manual_dir=manual_dir, download=False)
    except DatasetUnavailableError as error:
        shown = repr(data_dir) if data_dir else "TensorFlow Datasets' default folder"
        raise cli.UserError(
            f"the dataset {experiment.dataset!r} is not prepared under {shown}: evaluation reads prepared "
            "data only (python -m training.train prepares it); give its folder as --data-dir DIR"
        ) from error
    trained_on = (record or {}).get("class_names")
    if trained_on and info.class_names and list(info.class_names) != trained_on:
        raise cli.UserError(
            f"the data under --data-dir {data_dir!r} has the classes {list(info.class_names)}, the run "
            f"trained on {trained_on}: give the --data-dir it trained on"
        )
    model = keras.models.load_model(path)
    result = evaluate_model(model, experiment, data_dir, manual_dir, args.image_size, args.crop_pct)
    result["model"] = path
    out = os.path.join(args.model_dir, f"eval_{result['image_size']}.json")
    write_json_atomically(out, result, indent=2)
    top5 = f", top-5 {100 * result['top5']:.2f}%" if "top5" in result else ""
    print(
        f"{experiment.name} ({os.path.basename(path)}): top-1 {100 * result['top1']:.2f}%{top5} on "
        f"{result['examples']} {result['split']} images, single {result['image_size']}x"
        f"{result['image_size']} crop. Written to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
