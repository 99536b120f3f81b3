"""The embedded `scales_demo` dataset: generation time, and how fast a small SK model learns it.

    python benchmarks/bench_scales_demo.py [--epochs 8] [--data-dir DIR] [--no-write]

The claim it checks (issue 4): generating the dataset takes under a minute and
a small SKNet learns it to >= 90% test accuracy in under 10 minutes on 2 CPU
cores. Generation runs into a fresh directory (or `--data-dir`); training is
a plain `model.fit` over `training.data.make_dataset`. Test accuracy is also
reported per object scale (1.0x / 1.5x / 2.0x), the grouping of Section 4.4,
and, as in Figure 3(c), the mean attention of each SK unit's second (dilated,
5x5) path minus its 3x3 path on the same test scenes rendered at each scale.
Prints the tables and appends them to BENCHMARKS.md.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Before anything imports TensorFlow: keras_sknet turns its oneDNN kernels on unless
# TF_ENABLE_ONEDNN_OPTS says otherwise (keras_sknet.platform.prefer_onednn).
import keras_sknet  # noqa: E402,F401

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from benchmarks.common import append_markdown  # noqa: E402
from keras_sknet.applications import SKNet, preprocess_input  # noqa: E402
from keras_sknet.layers import record_attention  # noqa: E402
from training.data import make_dataset, render_example  # noqa: E402
from training.data.render import SCALES  # noqa: E402

# The small SK model and recipe measured here (the trainer's scales_demo experiment uses them):
# three SK units, one per stage, behind the ImageNet stem (64x64 -> 16x16 at the first SK unit),
# 1.02M parameters, 47.6M multiply-adds per image.
MODEL = dict(stage_depths=(1, 1, 1), stem="imagenet", cardinality=8, bottleneck_width=4)
RECIPE = dict(batch_size=64, learning_rate=3e-3, weight_decay=0.05, warmup_fraction=0.05)


def attention_by_scale(model, config, scenes):
    """{SK unit: {scale: mean attention of path 1 (5x5) minus path 0 (3x3)}} over the same scenes."""
    results = {}
    for scale in SCALES:
        images = np.stack([render_example(i, "test", scale=scale, config=config)[0] for i in scenes])
        with record_attention() as attention:
            model(preprocess_input(images.astype("float32")), training=False)
        for unit, weights in attention.items():
            weights = np.asarray(weights)  # (batch, paths, channels)
            results.setdefault(unit, {})[scale] = float((weights[:, 1] - weights[:, 0]).mean())
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: a fresh temp dir)")
    parser.add_argument("--config", default="scales_demo", help="TFDS name, e.g. scales_demo/tiny")
    parser.add_argument("--scenes", type=int, default=600, help="test scenes for the attention read-out")
    parser.add_argument("--save-model", default=None, help="save the trained model (.keras) here")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="scales_demo_")
    builder = tfds.builder(args.config, data_dir=data_dir)
    prepared = builder.is_prepared()
    start, cpu = time.perf_counter(), time.process_time()
    builder.download_and_prepare()
    generation = (time.perf_counter() - start, time.process_time() - cpu)
    print(f"generation: {generation[0]:.1f} s wall, {generation[1]:.1f} s CPU (already prepared: {prepared})")

    keras.utils.set_random_seed(0)
    train = make_dataset(args.config, "train", RECIPE["batch_size"], data_dir=data_dir, seed=0)
    info = builder.info
    steps = args.epochs * (info.splits["train"].num_examples // RECIPE["batch_size"])
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        steps,
        warmup_target=RECIPE["learning_rate"],
        warmup_steps=int(RECIPE["warmup_fraction"] * steps),
    )
    model = SKNet(**MODEL, input_shape=(64, 64, 3), classes=info.features["label"].num_classes)
    model.compile(
        keras.optimizers.AdamW(schedule, weight_decay=RECIPE["weight_decay"]),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start, cpu = time.perf_counter(), time.process_time()
    history = model.fit(train, epochs=args.epochs, verbose=2)
    training, training_cpu = time.perf_counter() - start, time.process_time() - cpu

    test = tfds.as_numpy(builder.as_dataset(split="test", batch_size=-1))
    predictions = model.predict(preprocess_input(test["image"].astype("float32")), batch_size=256, verbose=0)
    correct = predictions.argmax(-1) == test["label"]
    by_scale = {s: correct[np.isclose(test["scale"], s)].mean() for s in SCALES}
    load = os.getloadavg()[0]
    if args.save_model:
        model.save(args.save_model)
    scenes = range(min(args.scenes, info.splits["test"].num_examples))
    attention = attention_by_scale(model, builder.builder_config, scenes)
    row = (
        f"| {args.config} | {generation[0]:.1f} / {generation[1]:.1f} | {args.epochs} "
        f"| {training:.0f} / {training_cpu:.0f} | "
        f"{history.history['accuracy'][-1]:.3f} | {correct.mean():.3f} | "
        + " | ".join(f"{by_scale[s]:.3f}" for s in SCALES)
        + f" | {load:.1f} |"
    )
    table = [
        "| dataset | generation s (wall / CPU) | epochs | training s (wall / CPU) | train acc | test acc "
        "| 1.0x | 1.5x | 2.0x | load avg (1 min) at end |",
        "|---|---|---|---|---|---|---|---|---|---|",
        row,
    ]
    attention_table = [
        f"| SK unit: attention 5x5 - 3x3, {len(scenes)} test scenes | "
        + " | ".join(f"{s}x" for s in SCALES)
        + " |",
        "|---|---|---|---|",
        *(
            f"| {unit} | " + " | ".join(f"{values[s]:+.4f}" for s in SCALES) + " |"
            for unit, values in attention.items()
        ),
    ]
    table += ["", *attention_table]
    print("\n".join(table))
    if not args.no_write:
        append_markdown(
            "scales_demo: generation and a small SK model (bench_scales_demo.py)",
            table,
            [
                f"Model: `SKNet(**{MODEL})`, input 64x64; AdamW lr {RECIPE['learning_rate']} cosine, "
                f"weight decay {RECIPE['weight_decay']}, batch {RECIPE['batch_size']}, random flips.",
                "Targets (issue 4): generation < 60 s, test accuracy >= 0.90 in < 600 s of training. "
                f"CPU seconds count all of this process's threads ({os.cpu_count()} cores here).",
            ],
        )


if __name__ == "__main__":
    main()
