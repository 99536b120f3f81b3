#!/usr/bin/env bash
# Sets up .venv and runs the main job on the embedded default: trains the scales_demo experiment,
# exports the model (SavedModel, TFLite float32 and int8, each verified) into saved_models/, runs the
# scale experiment of Section 4.4 and prints where everything went. About 10 minutes on 2 CPU cores.
# Extra arguments go to `python -m training.demo` (e.g. --model-dir, --data-dir).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh" "cpu,training,export,analysis"
python -m training.demo "$@"
