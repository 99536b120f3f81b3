#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite. Extra arguments go to pytest.
# The interop extra (torch, torchvision, timm) is installed for the timm parity tests, which
# must then run, not skip (KERAS_SKNET_REQUIRE_INTEROP=1); the data extra (tensorflow-datasets)
# (in the training extra) for training/; the export extra (ai-edge-litert) for keras_sknet.export;
# the jax and torch extras for tests/backends, which then must run (KERAS_SKNET_REQUIRE_BACKENDS=1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh" "cpu,test,interop,training,export,analysis,jax,torch"
export KERAS_SKNET_REQUIRE_INTEROP=1
export KERAS_SKNET_REQUIRE_BACKENDS=1
python -m pytest -n 2 --dist loadfile -q "$@"
