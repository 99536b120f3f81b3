#!/usr/bin/env bash
# The GPU check (issue 14): on one lent GPU, in under 8 minutes, the backend tests on Keras' JAX
# and PyTorch backends, then SKNet-50 against timm's skresnext50_32x4d (and ResNeXt-50 for the
# SK overhead): inference at batch 1/64/256 and a training step at batch 128, float32 and mixed
# bfloat16, Keras on JAX (XLA) and on PyTorch, timm eager, channels_last and torch.compile.
# Prints a ratio table and writes it to $OUT/gpu_check.md (benchmarks/gpu_check.py says how).
#
# Then the scales_demo recipe trained by `python -m training.train` on Keras' JAX backend with the
# grain pipeline, its images/s beside timm's training step for the closest SK net.
#
# The GPU machines have no TensorFlow, keras, namex, optree or grain and no network. Before a run, here:
#     bash scripts/prepare_gpu_wheels.sh      # wheels and the backend tests' reference -> .gpu/
# then the device `run` (from the repository root, which is where it starts):
#     command:   bash benchmarks/gpu_check.sh
#     carry:     [".gpu"]
#     timeout_s: 480   (the check stops itself after --budget, 440 s by default)
# What comes back in $OUT: gpu_check.log (everything printed), gpu_check.md (the table),
# results.jsonl (every measurement; `python -m benchmarks.gpu_check report` remakes the table),
# tests-jax.log and tests-torch.log. Put the table into BENCHMARKS.md (it replaces the section of
# the same title: the previous GPU run, or the previous CPU dry run) with
#     python -m benchmarks.gpu_check append <files_at>/gpu_check.md
#
# On a CPU, every path at tiny sizes (CI runs this through tests/test_gpu_check.py):
#     bash benchmarks/gpu_check.sh --cpu-tiny
#
# Options:
#   --cpu-tiny          tiny nets and inputs on the CPU, no torch.compile (unless --compile on)
#   --budget SECONDS    stop by then, counted from this script's start (default 440; 600 with --cpu-tiny)
#   --out DIR           where the log and results go (default $OUT, else saved_models/gpu_check)
#   --wheels DIR        install these wheels first with pip --no-index --target (default .gpu/wheels
#                       on the GPU when it exists; on a CPU only when given)
#   --reference DIR     the backend tests' reference made on TensorFlow (default .gpu/reference)
#   --backend-tests DIR the backend tests (default tests/backends); skipped, saying why, if absent
#   --compile auto|on|off  timm under torch.compile (auto: on the GPU only)
#   --like-gpu-image    (a CPU rehearsal) run Python without the packages the GPU image lacks:
#                       TensorFlow, and keras, namex, optree and grain when --wheels gives them
set -uo pipefail
START=$(date +%s)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=gpu
BUDGET=""
OUT_DIR="${OUT:-saved_models/gpu_check}"
WHEELS=""
REFERENCE=.gpu/reference
BACKEND_TESTS=tests/backends
COMPILE=auto
LIKE_GPU_IMAGE=0
PYTHON="${PYTHON:-python3}"

usage() {
    sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-tiny) MODE=cpu-tiny ;;
        --budget) BUDGET="$2"; shift ;;
        --out) OUT_DIR="$2"; shift ;;
        --wheels) WHEELS="$2"; shift ;;
        --reference) REFERENCE="$2"; shift ;;
        --backend-tests) BACKEND_TESTS="$2"; shift ;;
        --compile) COMPILE="$2"; shift ;;
        --like-gpu-image) LIKE_GPU_IMAGE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown option '$1'; accepted: --cpu-tiny --budget --out --wheels --reference --backend-tests --compile --like-gpu-image --help" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$BUDGET" ]; then
    if [ "$MODE" = gpu ]; then BUDGET=440; else BUDGET=600; fi
elif [[ ! "$BUDGET" =~ ^[0-9]+$ ]]; then
    echo "gpu_check.sh: --budget takes whole seconds; received '$BUDGET'" >&2
    exit 2
fi
if [ -z "$WHEELS" ] && [ "$MODE" = gpu ] && [ -d .gpu/wheels ]; then
    WHEELS=.gpu/wheels
fi

mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
# Everything printed also goes to the log in $OUT, which comes back even if the call times out.
exec > >(tee "$OUT_DIR/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "[$(date +%H:%M:%S)] gpu_check.sh $MODE: budget ${BUDGET}s, out $OUT_DIR, python $(command -v "$PYTHON")"

PYTHON_FLAGS=()
SITE=""
if [ -n "$WHEELS" ]; then
    if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "gpu_check.sh: no wheels in '$WHEELS' (make them with scripts/prepare_gpu_wheels.sh)" >&2
        exit 2
    fi
    SITE="$WORK/site"
    echo "[$(date +%H:%M:%S)] installing $(ls "$WHEELS" | grep -c '\.whl$') wheels from $WHEELS: $(cd "$WHEELS" && ls *.whl | tr '\n' ' ')"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl || { echo "gpu_check.sh: installing the wheels failed" >&2; exit 1; }
fi

if [ "$LIKE_GPU_IMAGE" = 1 ]; then
    # A view of this Python's site-packages without what the GPU image lacks, used with -S.
    VIEW="$WORK/site-view"
    mkdir -p "$VIEW"
    hide='tensorflow|tensorflow[-_].*|tf_keras.*|.*\.pth|__editable__.*'
    if [ -n "$SITE" ]; then
        hide="$hide|keras|keras-.*|namex.*|optree.*|grain|grain-.*|array_record.*|etils.*|cloudpickle.*|portpicker.*"
    fi
    while IFS= read -r dir; do
        for entry in "$dir"/*; do
            name="$(basename "$entry")"
            if [[ ! "$name" =~ ^($hide)$ ]] && [ ! -e "$VIEW/$name" ]; then
                ln -s "$entry" "$VIEW/$name"
            fi
        done
    done < <("$PYTHON" -c 'import site; print("\n".join(site.getsitepackages()))')
    PYTHON_FLAGS=(-S)
    export PYTHONPATH="${SITE:+$SITE:}$VIEW"
    echo "[$(date +%H:%M:%S)] like the GPU image: python -S over $VIEW (hidden: $hide)"
elif [ -n "$SITE" ]; then
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PYTHON" "${PYTHON_FLAGS[@]}" -m benchmarks.gpu_check run --mode "$MODE" \
    --started "$START" --deadline "$((START + BUDGET))" --out "$OUT_DIR" \
    --reference "$REFERENCE" --backend-tests "$BACKEND_TESTS" --compile "$COMPILE"
status=$?
echo "[$(date +%H:%M:%S)] gpu_check.sh: exit $status after $(( $(date +%s) - START ))s"
exit $status
