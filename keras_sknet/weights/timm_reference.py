"""timm's outputs for a checkpoint, for `python -m keras_sknet.weights convert ... --compare-timm`.

Run it by path, never import it next to TensorFlow: importing TensorFlow and
then torchvision (which timm imports) in one process crashes, so the command
starts this script in a fresh interpreter. It imports only NumPy, torch and timm.

    python timm_reference.py reference CHECKPOINT ARCH INPUTS.npy OUT.npz
        -> OUT.npz: `logits` and pooled `features` of the checkpoint on NHWC float32 inputs

The parity tests' own modes (random checkpoints, feature maps, timm's transform)
are in tests/support/timm_reference.py, which uses `outputs` from here.
"""

import argparse
import os

import numpy as np
import timm
import torch
from safetensors.torch import load_file


def outputs(model, images_nhwc):
    """(logits, pooled features) of a timm model in eval mode for NHWC inputs."""
    x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model.get_classifier()(features)
    return logits.numpy(), features.numpy()


def reference(checkpoint, arch, inputs_path, out_path):
    """Writes timm's logits and pooled features of `checkpoint` (built as `arch`) on the inputs."""
    if checkpoint.endswith(".safetensors"):
        state = load_file(checkpoint)
    else:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    num_classes = state["fc.weight"].shape[0] if "fc.weight" in state else 0
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes).eval()
    model.load_state_dict(state)
    logits, features = outputs(model, np.load(inputs_path).astype(np.float32))
    np.savez(out_path, logits=logits, features=features)


def set_threads():
    """At most 4 torch threads, unless the caller set a thread budget (scripts/test.sh does)."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ref = commands.add_parser("reference", help="outputs of a checkpoint on given inputs")
    for name in ("checkpoint", "arch", "inputs", "out"):
        ref.add_argument(name)
    args = parser.parse_args(argv)
    set_threads()
    reference(args.checkpoint, args.arch, args.inputs, args.out)


if __name__ == "__main__":
    main()
