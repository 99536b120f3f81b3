"""timm's side of the parity tests, run as a separate script (PyTorch side only).

Run it by path (`tests.support.TIMM_REFERENCE_SCRIPT`), never import it next to
TensorFlow: importing TensorFlow and then torchvision (which timm imports) in one
process crashes. It imports only NumPy, torch, timm and the library's own
keras_sknet/weights/timm_reference.py (by path: importing keras_sknet would import
Keras), whose `reference` mode `--compare-timm` runs and whose `outputs` is used here.

    python timm_reference.py random OUT_DIR --models skresnet18,skresnext50_32x4d \\
        --sizes 224x224,193x161 --batches 1,4 --seed 0
        -> OUT_DIR/<model>.safetensors   random timm weights, randomised BatchNorm
           OUT_DIR/inputs_<h>x<w>.npy    NHWC float32 inputs (the largest batch)
           OUT_DIR/<model>.npz           logits_<h>x<w>_b<n>, features_<h>x<w>_b<n>

    python timm_reference.py features OUT_DIR --models skresnet18 --layers 1,1,1,1 \\
        --sizes 65x49 --output-strides 32,16,8 --seed 0
        -> OUT_DIR/<model>.safetensors   random timm weights (optionally fewer units per stage)
           OUT_DIR/inputs_<h>x<w>.npy    NHWC float32 inputs, batch 2
           OUT_DIR/<model>_features.npz  os<s>_<h>x<w>_<i>: `features_only=True,
                                         output_stride=s` map i (NHWC)

    python timm_reference.py transform IMAGES.npy NAME OUT.npy
        -> timm's evaluation transform for NAME (e.g. skresnext50_32x4d.ra_in1k)
           applied to uint8 HWC images (PIL), as NHWC float32
"""

import argparse
import importlib.util
import os

import numpy as np
import timm
import torch
from safetensors.torch import save_file


def _library_reference():
    """This checkout's keras_sknet/weights/timm_reference.py, loaded by path (without importing
    keras_sknet)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, "keras_sknet", "weights", "timm_reference.py")
    spec = importlib.util.spec_from_file_location("keras_sknet_timm_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


library = _library_reference()
outputs = library.outputs


def randomize_batch_norms(model, generator):
    """Non-trivial BatchNorm statistics and affine parameters, so that parity tests see them."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
        classifier = model.get_classifier()
        if getattr(classifier, "bias", None) is not None:
            classifier.bias.copy_(torch.randn(classifier.bias.shape, generator=generator) * 0.1)


def _sizes(text):
    return [tuple(int(v) for v in size.split("x")) for size in text.split(",")]


def random_models(out_dir, models, sizes, batches, seed):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    inputs = {}
    for h, w in sizes:
        inputs[(h, w)] = rng.normal(size=(max(batches), h, w, 3)).astype(np.float32)
        np.save(os.path.join(out_dir, f"inputs_{h}x{w}.npy"), inputs[(h, w)])
    for index, name in enumerate(models):
        torch.manual_seed(seed + index)
        model = timm.create_model(name, pretrained=False).eval()
        randomize_batch_norms(model, torch.Generator().manual_seed(seed + index))
        save_file(model.state_dict(), os.path.join(out_dir, f"{name}.safetensors"))
        results = {}
        for (h, w), images in inputs.items():
            for n in batches:
                logits, features = outputs(model, images[:n])
                results[f"logits_{h}x{w}_b{n}"] = logits
                results[f"features_{h}x{w}_b{n}"] = features
        np.savez(os.path.join(out_dir, f"{name}.npz"), **results)


def feature_maps(out_dir, models, layers, sizes, output_strides, seed):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    inputs = {}
    for h, w in sizes:
        inputs[(h, w)] = rng.normal(size=(2, h, w, 3)).astype(np.float32)
        np.save(os.path.join(out_dir, f"inputs_{h}x{w}.npy"), inputs[(h, w)])
    extra = {"layers": layers} if layers else {}
    for index, name in enumerate(models):
        torch.manual_seed(seed + index)
        model = timm.create_model(name, pretrained=False, **extra).eval()
        randomize_batch_norms(model, torch.Generator().manual_seed(seed + index))
        state = model.state_dict()
        save_file(state, os.path.join(out_dir, f"{name}.safetensors"))
        body = {k: v for k, v in state.items() if not k.startswith("fc.")}
        results = {}
        for stride in output_strides:
            features = timm.create_model(
                name, pretrained=False, features_only=True, output_stride=stride, **extra
            ).eval()
            features.load_state_dict(body)
            for (h, w), images in inputs.items():
                x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
                with torch.no_grad():
                    maps = features(x)
                for i, feature in enumerate(maps):
                    results[f"os{stride}_{h}x{w}_{i}"] = feature.numpy().transpose(0, 2, 3, 1)
        np.savez(os.path.join(out_dir, f"{name}_features.npz"), **results)


def transform(images_path, name, out_path):
    from PIL import Image

    model = timm.create_model(name, pretrained=False)
    config = timm.data.resolve_model_data_config(model)
    pipeline = timm.data.create_transform(**config, is_training=False)
    images = np.load(images_path)
    out = [pipeline(Image.fromarray(image)).numpy().transpose(1, 2, 0) for image in images]
    np.save(out_path, np.stack(out).astype(np.float32))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rand = commands.add_parser("random", help="random timm checkpoints and their outputs")
    rand.add_argument("out_dir")
    rand.add_argument("--models", required=True, help="comma-separated timm architectures")
    rand.add_argument("--sizes", default="224x224", help="comma-separated HxW")
    rand.add_argument("--batches", default="1,4", help="comma-separated batch sizes")
    rand.add_argument("--seed", type=int, default=0)
    feat = commands.add_parser("features", help="random timm checkpoints and their feature maps")
    feat.add_argument("out_dir")
    feat.add_argument("--models", required=True, help="comma-separated timm architectures")
    feat.add_argument("--layers", default="", help="units per stage, e.g. 1,1,1,1 (default the model's)")
    feat.add_argument("--sizes", default="65x49", help="comma-separated HxW")
    feat.add_argument("--output-strides", default="32,16,8", help="comma-separated output strides")
    feat.add_argument("--seed", type=int, default=0)
    tra = commands.add_parser("transform", help="timm's eval transform of uint8 images")
    tra.add_argument("images")
    tra.add_argument("name")
    tra.add_argument("out")
    args = parser.parse_args(argv)
    library.set_threads()
    if args.command == "random":
        random_models(
            args.out_dir,
            args.models.split(","),
            _sizes(args.sizes),
            [int(b) for b in args.batches.split(",")],
            args.seed,
        )
    elif args.command == "features":
        feature_maps(
            args.out_dir,
            args.models.split(","),
            [int(n) for n in args.layers.split(",")] if args.layers else None,
            _sizes(args.sizes),
            [int(s) for s in args.output_strides.split(",")],
            args.seed,
        )
    else:
        transform(args.images, args.name, args.out)


if __name__ == "__main__":
    main()
