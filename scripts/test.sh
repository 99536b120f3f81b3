#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite. Extra arguments go to pytest.
# The interop extra (torch, torchvision, timm) is installed for the timm parity tests, which
# must then run, not skip (KERAS_SKNET_REQUIRE_INTEROP=1); the data extra (tensorflow-datasets)
# (in the training extra) for training/; the export extra (ai-edge-litert) for keras_sknet.export;
# the jax extra for the GPU check's CPU dry run (tests/test_gpu_check.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh" "cpu,test,interop,jax,training,export,analysis"
export KERAS_SKNET_REQUIRE_INTEROP=1
python -m pytest -n 2 --dist loadfile -q "$@"
