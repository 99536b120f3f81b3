#!/usr/bin/env bash
# Prepares here what the GPU check (benchmarks/gpu_check.sh) carries to a lent GPU machine, which
# has Python 3.12, JAX, PyTorch and timm but no TensorFlow, keras, namex or optree, and no network
# (nor grain, which the trainer needs there: the check trains the scales_demo recipe on JAX).
# Writes the git-ignored folder .gpu/:
#   .gpu/wheels     keras, grain and the dependencies the GPU image lacks, as wheels for CPython 3.12 on
#                   manylinux x86-64, one version each: the versions installed here, so the GPU
#                   runs the Keras this project was tested with
#   .gpu/reference  the backend tests' reference outputs, made here on Keras' TensorFlow backend
#                   (python -m tests.backends.make_reference), when tests/backends has that module
# Then carry ".gpu" in the device run (see the top of benchmarks/gpu_check.sh).
#
# Usage: bash scripts/prepare_gpu_wheels.sh [--python-version 3.12] [--dest .gpu]
#   --python-version  the GPU machine's Python (3.12); another one makes wheels for a rehearsal
#                     here: gpu_check.sh --cpu-tiny --like-gpu-image --wheels DEST/wheels
#   --dest            the folder to fill (default .gpu, which .gitignore ignores)
# Needs the project's environment (.venv, with TensorFlow for the reference) and PyPI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY_VERSION=3.12
DEST=.gpu
while [ $# -gt 0 ]; do
    case "$1" in
        --python-version) PY_VERSION="$2"; shift ;;
        --dest) DEST="$2"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "prepare_gpu_wheels.sh: unknown option '$1'; accepted: --python-version, --dest, --help" >&2; exit 2 ;;
    esac
    shift
done
if [ -x .venv/bin/python ]; then PYTHON="${PYTHON:-.venv/bin/python}"; else PYTHON="${PYTHON:-python3}"; fi

# What keras needs that the GPU image does not have, and what it needs that the image has (the
# image's package list, 2026-11); the check below reads the wheels' metadata against both. Then
# grain (the trainer's input pipeline without TensorFlow) and what it needs, etils' epath extra
# included (fsspec, importlib-resources, zipp): all carried, as the image's list does not name them.
PACKAGES=(keras namex optree grain array-record etils cloudpickle portpicker psutil protobuf fsspec importlib-resources zipp)
GPU_IMAGE_HAS="absl-py h5py ml-dtypes numpy packaging rich typing-extensions"

WHEELS="$DEST/wheels"
rm -rf "$WHEELS"
mkdir -p "$WHEELS"
pins=()
for name in "${PACKAGES[@]}"; do
    version="$("$PYTHON" -c "import importlib.metadata as m; print(m.version('$name'))")" || {
        echo "prepare_gpu_wheels.sh: $name is not installed in $PYTHON; install the project first" >&2
        exit 1
    }
    pins+=("$name==$version")
done
echo "downloading ${pins[*]} for CPython $PY_VERSION, manylinux x86-64, into $WHEELS"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$PY_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$WHEELS" "${pins[@]}"

# Every requirement of the wheels must be one of them or already on the GPU image.
"$PYTHON" - "$WHEELS" "$GPU_IMAGE_HAS" <<'EOF'
import glob, re, sys, zipfile

folder, image = sys.argv[1], set(sys.argv[2].split())
def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()
carried, missing = {}, []
for path in sorted(glob.glob(f"{folder}/*.whl")):
    with zipfile.ZipFile(path) as wheel:
        metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    name = canonical(re.search(r"^Name: (.+)$", metadata, re.M).group(1))
    if name in carried:
        sys.exit(f"two wheels of {name} in {folder}: {carried[name]} and {path}; keep one")
    carried[name] = path
    for line in re.findall(r"^Requires-Dist: (.+)$", metadata, re.M):
        if "extra ==" in line:
            continue
        requirement = canonical(re.match(r"[A-Za-z0-9_.\-]+", line).group(0))
        missing.append((name, requirement))
missing = [(n, r) for n, r in missing if r not in carried and r not in image]
if missing:
    sys.exit("requirements neither carried nor on the GPU image: " + ", ".join(f"{n} needs {r}" for n, r in missing))
print(f"complete: {', '.join(sorted(carried))} carried; the rest of their requirements are on the GPU image")
EOF

# The same install as on the GPU, checked for CPython $PY_VERSION on manylinux x86-64.
check="$(mktemp -d)"
trap 'rm -rf "$check"' EXIT
# Every manylinux tag the download accepted (pip does not take a manylinux_2_17 wheel, such as
# array-record's, for --platform manylinux_2_28 alone).
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --only-binary=:all: \
    --python-version "$PY_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    --target "$check" "$WHEELS"/*.whl
echo "the wheels install for CPython $PY_VERSION (pip install --no-index --target)"

REFERENCE="$DEST/reference"
rm -rf "$REFERENCE"
if [ -f tests/backends/make_reference.py ]; then
    echo "making the backend tests' reference on TensorFlow into $REFERENCE"
    KERAS_BACKEND=tensorflow "$PYTHON" -m tests.backends.make_reference "$REFERENCE"
else
    echo "no tests/backends/make_reference.py in this checkout: no reference made (the GPU check skips the backend tests)"
fi
du -sh "$DEST"
