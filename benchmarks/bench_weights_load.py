"""`SKNet50(weights=file)` against `SKNet50(weights=None)` + `model.load_weights(file)`.

    python benchmarks/bench_weights_load.py [--rounds 5] [--model SKNet50] [--no-write]

What `weights=` costs beyond Keras' own loading: its checks (`resolve`: the
file's first bytes and, for a Keras file, its HDF5 directory), one build and
one load. For each source (a `.weights.h5` file; the same weights as a timm
`.safetensors` checkpoint, converted on load; and `weights="imagenet"` from a
populated cache, whose 110 MB file is not hashed again while its size and
mtime are unchanged) both ways run in alternating rounds; the table gives
median wall and CPU seconds and their ratio. Keras' `load_weights` cannot read
a timm checkpoint, so that row's baseline is the `.weights.h5` one.
Prints the table and replaces its section of BENCHMARKS.md.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_sknet  # noqa: E402,F401  (oneDNN before TensorFlow)

# isort: split

import keras  # noqa: E402

from benchmarks.common import append_markdown  # noqa: E402
from keras_sknet import applications  # noqa: E402
from keras_sknet.weights.download import cache_dir  # noqa: E402
from keras_sknet.weights.registry import PRETRAINED  # noqa: E402
from keras_sknet.weights.safetensors_io import save_safetensors  # noqa: E402
from keras_sknet.weights.timm_converter import timm_state_dict  # noqa: E402


def _timed(fn):
    keras.backend.clear_session()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="SKNet50", help="a model function with weights='imagenet'")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    function = getattr(applications, args.model)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KERAS_HOME"] = tmp
        model = function(weights=None)
        h5 = os.path.join(tmp, "model.weights.h5")
        model.save_weights(h5)
        checkpoint = os.path.join(tmp, "model.safetensors")
        save_safetensors(checkpoint, timm_state_dict(model))
        # weights="imagenet" from the cache: serve the checkpoint from a local mirror once.
        config = PRETRAINED[args.model]
        served = os.path.join(tmp, "hub", config.hf_repo, "resolve", config.revision, config.filename)
        os.makedirs(os.path.dirname(served))
        os.link(checkpoint, served)
        os.environ["HF_ENDPOINT"] = "file://" + os.path.join(tmp, "hub")
        del model
        first = _timed(lambda: function(weights="imagenet"))
        print(
            f"weights='imagenet', first call (download from a local mirror, convert, cache): "
            f"{first[0]:.2f} s wall, {first[1]:.2f} s CPU; cache {sorted(os.listdir(cache_dir()))}"
        )

        def keras_way():
            function(weights=None).load_weights(h5)

        runners = {
            ".weights.h5": (lambda: function(weights=h5), keras_way),
            "timm .safetensors": (lambda: function(weights=checkpoint), keras_way),
            "'imagenet' (cached)": (lambda: function(weights="imagenet"), keras_way),
        }
        samples = {(key, way): [] for key in runners for way in ("ours", "keras")}
        for _ in range(args.rounds):
            for key, (ours, theirs) in runners.items():
                samples[key, "ours"].append(_timed(ours))
                samples[key, "keras"].append(_timed(theirs))

    rows = []
    for key in runners:
        ours = [statistics.median(s) for s in zip(*samples[key, "ours"], strict=True)]
        theirs = [statistics.median(s) for s in zip(*samples[key, "keras"], strict=True)]
        rows.append(
            f"| {key} | {ours[0]:.2f} / {ours[1]:.2f} | {theirs[0]:.2f} / {theirs[1]:.2f} "
            f"| {ours[0] / theirs[0]:.2f}x | {ours[1] / theirs[1]:.2f}x |"
        )
    table = [
        f"| {args.model}(weights=...) | ours: wall / CPU s | weights=None + load_weights(.weights.h5): "
        "wall / CPU s | wall ratio | CPU ratio |",
        "|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(table))
    if not args.no_write:
        append_markdown(
            "Loading weights: weights=file vs load_weights (bench_weights_load.py)",
            table,
            [
                f"Median of {args.rounds} alternating rounds; each call builds the model (clear_session first). "
                f"First weights='imagenet' (local mirror download, convert into the model being built, "
                f"cache): {first[0]:.2f} s wall, {first[1]:.2f} s CPU."
            ],
        )


if __name__ == "__main__":
    main()
