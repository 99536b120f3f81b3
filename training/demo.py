"""The offline demo, end to end: train on scales_demo, export, read the selection (Section 4.4).

    python -m training.demo [--model-dir saved_models/scales_demo] [--data-dir DIR]

1. trains the `scales_demo` experiment (resumes if interrupted; skips if done);
2. exports the best model to `export/`: a SavedModel and TFLite float32 and int8
   files, each verified against Keras on LiteRT;
3. runs the scale experiment of Section 4.4 on test scenes that the dataset
   redraws at 1.0x, 1.5x and 2.0x (the same scene, only the object enlarged),
   writing Figure 3/4-style plots and the numbers;
4. prints where everything went.
"""

import os
import sys

from keras_sknet.utils import cli

SCALES = (1.0, 1.5, 2.0)
PROG = "python -m training.demo"


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=os.path.join("saved_models", "scales_demo"))
    parser.add_argument("--data-dir", help="TFDS data directory (default: TFDS's own)")
    parser.add_argument(
        "--analysis-scenes", type=int, default=480, help="test scenes for the scale experiment"
    )
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=2)
    args = parser.parse_args(argv)
    if args.analysis_scenes < 1:
        parser.error(
            f"--analysis-scenes must be at least 1. Received: --analysis-scenes {args.analysis_scenes}"
        )
    return args


def scenes_at_scales(count, scales=SCALES):
    """The first `count` test scenes drawn at each scale: `({scale: images}, labels)`, RGB uint8."""
    import numpy as np

    from training.data import render_example

    drawn = {s: [] for s in scales}
    labels = []
    for scene in range(count):
        for s in scales:
            image, label, _ = render_example(scene, "test", scale=s)
            drawn[s].append(image)
        labels.append(label)
    return {s: np.stack(v) for s, v in drawn.items()}, np.asarray(labels)


def export_all(model, export_dir, data_dir, size=64):
    """SavedModel + TFLite float32 and int8 (int8: calibrated on training images, checked on others)."""
    from keras_sknet.export.saved_model import to_saved_model
    from keras_sknet.export.tflite import to_tflite

    # A rerun of the demo replaces its own earlier exports (never a folder with other files).
    data = dict(data_dir=data_dir, input_size=(size, size), overwrite=True)
    return [
        to_saved_model(
            model,
            os.path.join(export_dir, "saved_model"),
            validation_data="scales_demo",
            split="test",
            **data,
        ),
        to_tflite(
            model,
            os.path.join(export_dir, "scales_demo_float32.tflite"),
            representative_data="scales_demo",
            split="test",
            **data,
        ),
        to_tflite(
            model,
            os.path.join(export_dir, "scales_demo_int8.tflite"),
            quantize="int8",
            representative_data="scales_demo",
            split="train",
            **data,
        ),
    ]


def analyse(model, model_dir, scenes):
    from keras_sknet.analysis.scales import scale_experiment
    from keras_sknet.applications import preprocess_input

    drawn, labels = scenes_at_scales(scenes)
    inputs = {s: preprocess_input(images.astype("float32")) for s, images in drawn.items()}
    report = scale_experiment(model, inputs[SCALES[0]], scales=SCALES, labels=labels, scaled_images=inputs)
    paths = {
        "figure3": os.path.join(model_dir, "attention_scales.png"),
        "figure4": os.path.join(model_dir, "attention_classes.png"),
        "numbers": os.path.join(model_dir, "attention_scales.json"),
    }
    from training.data.render import CLASS_NAMES

    report.plot(paths["figure3"])
    report.plot_classes(paths["figure4"], units=report.units, scales=SCALES, class_names=CLASS_NAMES)
    report.save_json(paths["numbers"])
    return report, paths


def main(argv=None):
    args = parse_args(argv)
    return cli.run(lambda: _work(args), prog=PROG)


def _work(args):
    cli.quiet_tensorflow()
    from training.run_dir import check_run_dir

    check_run_dir(args.model_dir)  # before any work: a folder of the user's is refused
    keras = cli.import_keras()

    import keras_sknet.applications  # noqa: F401  (registers the layers and ZooModel for load_model)
    from keras_sknet.export.common import ExportError
    from training.experiments import get_experiment
    from training.fit_loop import TrainingDiverged
    from training.trainer import train

    try:
        summary = train(
            get_experiment("scales_demo"), args.model_dir, data_dir=args.data_dir, verbose=args.verbose
        )
    except TrainingDiverged as error:
        raise cli.UserError(str(error)) from error
    model = keras.models.load_model(os.path.join(args.model_dir, "best.keras"))
    try:
        exports = export_all(model, os.path.join(args.model_dir, "export"), args.data_dir)
    except ExportError as error:  # said in one line, as before
        raise cli.UserError(str(error)) from error
    report, figures = analyse(model, args.model_dir, args.analysis_scenes)

    final = summary["final"]
    print(
        f"\n== scales_demo: test top-1 {100 * final['top1']:.2f}% ({final['examples']} images), "
        f"{summary['wall_time_seconds'] / 60:.1f} min"
    )
    print(f"   run directory: {args.model_dir} (best.keras, last.keras, metrics.csv, logs/, summary.json)")
    print("\n== exports (verified on LiteRT)")
    for result in exports:
        print(result.summary())
    print(
        f"\n== selection vs object scale ({args.analysis_scenes} test scenes drawn at "
        + "/".join(f"{s:g}x" for s in SCALES)
        + ")"
    )
    print(report.summary())
    print("\n   " + "\n   ".join(f"{name}: {path}" for name, path in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
