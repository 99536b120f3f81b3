#!/usr/bin/env bash
# Sets up .venv and runs the main job: the model zoo's sizes beside the paper's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh" "cpu"
python -m keras_sknet
