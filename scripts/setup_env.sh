# Sourced by the scripts beside it: creates .venv (once) and installs the project into it.
# Usage: source scripts/setup_env.sh "cpu,test"   (the extras to install)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# requirements/ci.txt: the exact versions CI needs (torch with its torchvision, ruff) within
# the extras' ranges; constraints pin only what the extras install.
python -m pip install --quiet -e ".[${1:-cpu}]" -c requirements/ci.txt
# keras-hub without its dependencies: they are the hub extra's, less tensorflow-text, whose pin
# pulls the full `tensorflow` wheel beside tensorflow-cpu (docs/backbones.md, "keras-hub").
if [[ ",${1:-cpu}," == *",hub,"* ]]; then
    python -m pip install --quiet --no-deps -c requirements/ci.txt keras-hub
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
