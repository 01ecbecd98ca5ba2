"""`python -m tests.perf NAME [ARGS]`: run one benchmark module of this package (e.g. `metrics`)."""

import importlib
import os
import pkgutil
import sys

import tests.perf

# Scoring benchmarks compare CPU seconds on one thread: BLAS/OpenMP pools are pinned before numpy is imported.
ONE_THREAD = {"metrics", "folder", "scaling", "scale"}

names = sorted(m.name for m in pkgutil.iter_modules(tests.perf.__path__) if not m.name.startswith("_"))
if len(sys.argv) < 2 or sys.argv[1] not in names:
    sys.exit(f"usage: python -m tests.perf {{{'|'.join(names)}}} [ARGS]")
name = sys.argv[1]
if name in ONE_THREAD:
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
sys.argv = [f"python -m tests.perf {name}", *sys.argv[2:]]  # the module's own argument parser sees its ARGS
importlib.import_module(f"tests.perf.{name}").main()
