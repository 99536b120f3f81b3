"""Command line: convert timm checkpoints and Caffe models to Keras weights files, fetch and list weights.

    python -m keras_sknet.weights convert model.safetensors --model SKNet50 --output sknet50.weights.h5
    python -m keras_sknet.weights convert SKNet-101.caffemodel --model SKNet101 --output x.weights.h5
    python -m keras_sknet.weights convert model.safetensors --model SKNet50 --output x.weights.h5 \
        --compare-timm
    python -m keras_sknet.weights download SKNet50
    python -m keras_sknet.weights info

`convert` reads the checkpoint (`.safetensors`, or a PyTorch file with
`keras-sknet[interop]`), converts it (every tensor name and shape checked),
writes the Keras weights file under a temporary name, reloads it into a fresh
model and compares outputs with the converted in-memory model, and only then
renames it into place. `--compare-timm` also runs timm itself (in a separate
process) on the same inputs and compares logits. A `.caffemodel` (the
authors' SKNet-50 / SKNet-101, downloaded by the user: see `info`) is read
with NumPy and converted into the release's architecture, which the written
file must be loaded into again (the command prints how).
"""

import contextlib
import os
import subprocess
import sys
import tempfile

import numpy as np

from keras_sknet.utils import cli

TIMM_REFERENCE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "timm_reference.py")


_PREPROCESSING = {"caffe": "caffe: BGR, minus 104/117/123 on 0-255", "torch": "torch: RGB mean/std"}


def _build(model_name, state_dict):
    from keras_sknet import applications

    head = state_dict.get("fc.weight")
    include_top = head is not None
    kwargs = dict(
        include_top=include_top, weights=None, input_shape=(None, None, 3), classifier_activation=None
    )
    if include_top:
        kwargs["classes"] = int(head.shape[0])
    else:
        kwargs["pooling"] = "avg"
    return getattr(applications, model_name)(**kwargs)


def _run_timm(checkpoint, arch, images, tolerance, keras_outputs):
    with tempfile.TemporaryDirectory() as tmp:
        inputs, out = os.path.join(tmp, "inputs.npy"), os.path.join(tmp, "timm.npz")
        np.save(inputs, images)
        result = subprocess.run(
            [
                sys.executable,
                TIMM_REFERENCE_SCRIPT,
                "reference",
                os.path.abspath(checkpoint),
                arch,
                inputs,
                out,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            if "No module named" in result.stderr:
                raise cli.UserError(
                    "--compare-timm needs torch and timm: pip install keras-sknet[interop]\n"
                    + result.stderr[-500:]
                )
            raise cli.UserError(f"timm could not run the checkpoint:\n{result.stderr[-2000:]}")
        reference = np.load(out)
        key = "logits" if keras_outputs.shape == reference["logits"].shape else "features"
        diff = float(np.max(np.abs(keras_outputs - reference[key])))
    if diff > tolerance:
        raise cli.UserError(f"Keras and timm {key} differ by {diff:.3g} > tolerance {tolerance:g}")
    return key, diff


def _check_paths(args):
    """The checkpoint and the output, checked before anything is imported, read or converted."""
    cli.check_input_file(args.checkpoint, "checkpoint file")
    if not args.output.endswith(".weights.h5"):
        raise cli.UserError(
            f"The output must be a Keras weights file ending in .weights.h5. Received: --output {args.output!r}"
        )
    cli.check_output_path(args.output, "--output", overwrite=args.overwrite)


@contextlib.contextmanager
def _write_verified(model, rebuild, output):
    """Writes `model`'s weights to `output`, renamed into place only if the block succeeds and a fresh
    `rebuild()` reloads them to the same outputs; yields `(images, outputs, reload_diff)`."""
    from keras_sknet.utils.files import atomic_path

    images = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32)
    expected = np.asarray(model(images, training=False))
    # A temporary name in the same directory, renamed into place once verified.
    with atomic_path(output, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
        reloaded = rebuild()
        reloaded.load_weights(tmp)
        reload_diff = float(np.max(np.abs(np.asarray(reloaded(images, training=False)) - expected)))
        if reload_diff > 1e-6:
            raise RuntimeError(  # a bug of ours (or of h5py), not a user's mistake: keep the traceback
                f"The written file does not reproduce the converted model (max diff {reload_diff:.3g})"
            )
        yield images, expected, reload_diff


def convert_caffe(args):
    from keras_sknet import applications
    from keras_sknet.weights.checkpoint import sha256_of
    from keras_sknet.weights.records import MODELS
    from keras_sknet.weights.registry import CAFFE_WEIGHTS

    if args.model not in CAFFE_WEIGHTS:
        raise cli.UserError(
            f"Unknown model {args.model!r} for a Caffe model. The official Caffe weights are "
            f"{', '.join(sorted(CAFFE_WEIGHTS))}'s."
        )
    if args.compare_timm:
        raise cli.UserError("--compare-timm compares timm checkpoints; a Caffe model has no timm counterpart")
    config = CAFFE_WEIGHTS[args.model]
    architecture = {**MODELS[args.model].config, **config.architecture}
    kwargs = dict(input_shape=(None, None, 3), classifier_activation=None, name=args.model.lower())
    model = getattr(applications, args.model)(weights=args.checkpoint, **kwargs)

    def rebuild():
        return applications.SKNet(**architecture, weights=None, **kwargs)

    with _write_verified(model, rebuild, args.output) as (_, _, reload_diff):
        pass
    shown = ", ".join(f"{key}={value!r}" for key, value in config.architecture.items())
    print(f"converted {len(model.weights)} arrays of {args.checkpoint} into {args.model} (the Caffe release)")
    print(f"reloaded {args.output}: outputs identical to the converted model (max diff {reload_diff:.1g})")
    print(f"wrote {args.output} (sha256 {sha256_of(args.output)})")
    print(
        "load it into the release's architecture: keras_sknet.applications.SKNet("
        f"**MODEL_CONFIGS[{args.model.lower()!r}], {shown}, weights={args.output!r}); inputs: "
        f"preprocess_input(images, mode={config.preprocessing!r})"
    )


def convert(args):
    _check_paths(args)
    cli.import_keras()
    from keras_sknet.weights.checkpoint import is_caffemodel_path, read_checkpoint, sha256_of
    from keras_sknet.weights.registry import TIMM_ARCHITECTURES
    from keras_sknet.weights.timm_converter import load_timm_state_dict

    if is_caffemodel_path(args.checkpoint):
        return convert_caffe(args)
    if args.model not in TIMM_ARCHITECTURES:
        raise cli.UserError(
            f"Unknown model {args.model!r}. Models with a timm layout: "
            f"{', '.join(sorted(TIMM_ARCHITECTURES))}."
        )

    # A checkpoint that is not one (ValueError) or needs torch (ImportError): one line, from cli.run.
    state_dict = read_checkpoint(args.checkpoint)
    model = _build(args.model, state_dict)
    count = load_timm_state_dict(model, state_dict, source=f"The checkpoint {args.checkpoint!r}")

    rebuild = lambda: _build(args.model, state_dict)  # noqa: E731
    with _write_verified(model, rebuild, args.output) as (images, expected, reload_diff):
        timm_report = None
        if args.compare_timm:
            arch = TIMM_ARCHITECTURES[args.model]
            timm_report = _run_timm(args.checkpoint, arch, images, args.tolerance, expected)

    what = (
        f"{expected.shape[-1]} classes" if "fc.weight" in state_dict else "no classifier (include_top=False)"
    )
    print(f"converted {count} tensors of {args.checkpoint} into {args.model} ({what})")
    print(f"reloaded {args.output}: outputs identical to the converted model (max diff {reload_diff:.1g})")
    if timm_report:
        print(f"timm {TIMM_ARCHITECTURES[args.model]}: max |{timm_report[0]} diff| = {timm_report[1]:.3g}")
    print(f"wrote {args.output} (sha256 {sha256_of(args.output)})")


def download(args):
    if args.cache_dir is not None:
        cli.check_output_path(args.cache_dir, "--cache-dir", folder=True)
    cli.import_keras()
    from keras_sknet import applications
    from keras_sknet.weights.download import pretrained_weights_path
    from keras_sknet.weights.registry import PRETRAINED

    if args.model not in PRETRAINED:
        raise cli.UserError(
            f"Unknown model {args.model!r}. Models with pretrained weights: {', '.join(sorted(PRETRAINED))}."
        )
    try:
        path = pretrained_weights_path(
            getattr(applications, args.model), cache_root=args.cache_dir, force_download=args.force
        )
    except ConnectionError as error:
        raise cli.UserError(str(error)) from error
    print(path)


def info(args):
    cli.import_keras()
    from keras_sknet.weights.registry import CAFFE_WEIGHTS, PRETRAINED

    print("| model | timm checkpoint | top-1 | input | crop_pct | interpolation | source |")
    print("|---|---|---|---|---|---|---|")
    for config in PRETRAINED.values():
        print(
            f"| {config.model} | {config.timm_name} | {config.top1} | {config.input_size} "
            f"| {config.crop_pct} "
            f"| {config.interpolation} | {config.url} |"
        )
    print()
    print(
        "The authors' own Caffe weights (github.com/implus/SKNet). The release has no license, so "
        "keras_sknet neither ships nor downloads them: download the .caffemodel yourself and pass "
        "it, e.g. SKNet50(weights='SKNet-50.caffemodel'), or convert it with `convert`. "
        "Published errors; not measured here."
    )
    print()
    print("| model | top-1 error 224 | top-1 error 320 | parameters | preprocessing | download | source |")
    print("|---|---|---|---|---|---|---|")
    for config in CAFFE_WEIGHTS.values():
        print(
            f"| {config.model} | {config.top1_error_224}% | {config.top1_error_320}% | {config.num_params:,} "
            f"| {_PREPROCESSING[config.preprocessing]} | {config.download_url} | {config.source} |"
        )


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m keras_sknet.weights", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "convert", help="convert a timm checkpoint or a Caffe model to a Keras weights file and check it"
    )
    p.add_argument(
        "checkpoint", help=".safetensors, a PyTorch state dict (.pth/.pt/.bin), or an official .caffemodel"
    )
    p.add_argument("--model", required=True, help="keras_sknet model function, e.g. SKNet50")
    p.add_argument("--output", required=True, help="the Keras weights file to write (*.weights.h5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.add_argument(
        "--compare-timm", action="store_true", help="also compare logits with timm (needs torch, timm)"
    )
    p.add_argument(
        "--tolerance", type=cli.positive_float, default=1e-4, help="max |Keras - timm| (default 1e-4)"
    )
    p.set_defaults(run=convert)
    p = commands.add_parser(
        "download", help="fetch, verify and convert a model's public checkpoint into the cache"
    )
    p.add_argument("model")
    p.add_argument(
        "--cache-dir", default=None, help="Keras home to cache under (default $KERAS_HOME or ~/.keras)"
    )
    p.add_argument("--force", action="store_true", help="download and convert again")
    p.set_defaults(run=download)
    p = commands.add_parser("info", help="list the pretrained weights and their preprocessing")
    p.set_defaults(run=info)
    args = parser.parse_args(argv)
    cli.quiet_tensorflow()
    return cli.run(lambda: args.run(args), prog=parser.prog)


if __name__ == "__main__":
    sys.exit(main())
