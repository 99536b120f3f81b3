"""Code the tests share with benchmarks/ and scripts the tests run; never part of the wheel.

- `TIMM_REFERENCE_SCRIPT`: timm's side of the parity tests, run by path in a fresh
  interpreter (tests/support/timm_reference.py: random checkpoints, feature maps, timm's
  transform).
- `tests.support.synthetic`: synthetic classes that make checks of random-weight models
  meaningful (the export tests and benchmarks/bench_export.py, bench_peers.py).
- `tests.support.markdown`: BENCHMARKS.md's sections (every benchmark writes its table
  through it; tests/test_benchmarks_markdown.py checks it).

benchmarks/ import from here; tests import nothing from benchmarks/ (tests/test_gpu_check.py
loads the one script it tests, benchmarks/gpu_check.py, by path, and runs its commands).
"""

import os

TIMM_REFERENCE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "timm_reference.py")
