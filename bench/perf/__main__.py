"""`python -m bench.perf NAME`: run one benchmark module of this package (e.g. `metrics`)."""

import importlib
import pkgutil
import sys

import bench.perf

names = sorted(m.name for m in pkgutil.iter_modules(bench.perf.__path__) if not m.name.startswith("_"))
if len(sys.argv) != 2 or sys.argv[1] not in names:
    sys.exit(f"usage: python -m bench.perf {{{'|'.join(names)}}}")
importlib.import_module(f"bench.perf.{sys.argv[1]}").main()
