#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite. Extra arguments go to pytest.
# The interop extra (torch, torchvision, timm) is installed for the timm parity tests, which
# must then run, not skip (KERAS_SKNET_REQUIRE_INTEROP=1); the data extra (tensorflow-datasets)
# (in the training extra) for training/; the export extra (ai-edge-litert) for keras_sknet.export;
# the onnx extra (onnx, onnxruntime, tf2onnx) for the ONNX exports, which then must run
# (KERAS_SKNET_REQUIRE_ONNX=1); the jax and torch extras for tests/backends, which then must run (KERAS_SKNET_REQUIRE_BACKENDS=1),
# and for the GPU check's CPU dry run (tests/test_gpu_check.py); the hub extra (with keras-hub
# installed --no-deps) for keras_sknet.hub, whose tests then must run (KERAS_SKNET_REQUIRE_HUB=1).
#
# TensorFlow runs its CPU convolutions on one of two kernel libraries, fixed at import: oneDNN
# (what keras_sknet turns on by default on x86) or Eigen (CPUs without AVX-512 VNNI/AMX, Arm,
# TF_ENABLE_ONEDNN_OPTS=0). The first pass runs everything on oneDNN; the second runs the
# tests that exercise the kernels (marker `kernels`) again on Eigen, whatever this machine's
# CPU would pick. Each pass checks that it got the library it asked for. A third pass reruns the
# numerical comparisons between backends and kernel libraries with the instruction sets capped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh" "cpu,test,interop,training,export,onnx,analysis,jax,torch,hub"
python -m ruff check .
python -m ruff format --check .
export KERAS_SKNET_REQUIRE_INTEROP=1
export KERAS_SKNET_REQUIRE_BACKENDS=1
export KERAS_SKNET_REQUIRE_ONNX=1
export KERAS_SKNET_REQUIRE_HUB=1
# Two pytest workers share the cores: each library gets its share of threads, not all of them.
# Threads in each other's way made the capped pass more than twice as slow on 2 cores. (JAX has
# no working thread setting: XLA_FLAGS' --xla_cpu_multi_thread_eigen=false changed nothing.)
workers=2
threads=$(( $(nproc) / workers ))
threads=$(( threads > 0 ? threads : 1 ))
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}"
export TF_NUM_INTRAOP_THREADS="${TF_NUM_INTRAOP_THREADS:-$threads}"
# Never hang: a test process that crashes (a segfault in a kernel library) fails the run at once
# (--max-worker-restart=0; pytest-xdist would otherwise start new workers and run the crashing file
# again, and a dead worker once left the controller waiting forever); a hung test fails after
# setup.cfg's pytest timeout; and `timeout` ends a pass that hangs anyway.
pass_limit="${KERAS_SKNET_PASS_TIMEOUT:-3600}"
# KERAS_SKNET_JUNIT_DIR=DIR keeps each pass's per-test wall and CPU times (the `cpu_s` property,
# tests/conftest.py) in DIR/pass1.xml, pass2.xml, pass3.xml: what tests/conftest.py's LONGEST_FIRST follows.
pass_number=0
run_pytest() {
    pass_number=$((pass_number + 1))
    local report=()
    if [ -n "${KERAS_SKNET_JUNIT_DIR:-}" ]; then
        mkdir -p "$KERAS_SKNET_JUNIT_DIR"
        report=(--junitxml="$KERAS_SKNET_JUNIT_DIR/pass$pass_number.xml")
    fi
    timeout --kill-after=60 "$pass_limit" \
        python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder --max-worker-restart=0 -q \
        "${report[@]}" "$@"
}
TF_ENABLE_ONEDNN_OPTS=1 KERAS_SKNET_EXPECT_KERNELS=onednn run_pytest "$@"
status=0
TF_ENABLE_ONEDNN_OPTS=0 KERAS_SKNET_EXPECT_KERNELS=eigen run_pytest -m kernels "$@" || status=$?
# Named tests with none among them that exercise the kernels (pytest's exit code 5) are fine.
if [ "$status" -ne 0 ] && ! { [ "$status" -eq 5 ] && [ "$#" -gt 0 ]; }; then
    exit "$status"
fi
# The cross-backend and cross-kernel comparisons (marker `numerics`) once more with every
# library's instruction sets capped below this CPU's, standing in for older CPUs: oneDNN,
# PyTorch's ATen and XLA (JAX) then run narrower kernels that round differently.
if grep -q avx512f /proc/cpuinfo 2>/dev/null; then
    caps=(ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 XLA_FLAGS=--xla_cpu_max_isa=AVX2)
else
    caps=(ONEDNN_MAX_CPU_ISA=AVX ATEN_CPU_CAPABILITY=default XLA_FLAGS=--xla_cpu_max_isa=AVX)
fi
echo "Numerical comparisons again with ${caps[*]}"
status=0
(
    export "${caps[@]}"
    TF_ENABLE_ONEDNN_OPTS=1 KERAS_SKNET_EXPECT_KERNELS=onednn run_pytest -m numerics "$@"
) || status=$?
if [ "$status" -ne 0 ] && ! { [ "$status" -eq 5 ] && [ "$#" -gt 0 ]; }; then
    exit "$status"
fi
