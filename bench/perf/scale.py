"""Cases per second on AMOS-size cases: the local executor with one worker, and Dask with one and two workers.

`python -m bench.perf scale [--cases 40]`: the same folder is scored four times in this run (each into a fresh
run folder), so the ratios compare like with like: Dask's overhead at one worker against the local executor, the
speed-up of two Dask workers over one, and, as the machine's own bound on that speed-up, two local pool processes
over one.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from pathlib import Path

from bench.evaluation import RunSettings, evaluate_folders
from bench.perf.cases import CLASSES, write_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=40)
    args = parser.parse_args()
    from distributed import Client

    from bench.executors import local_cluster

    settings = RunSettings(run="perf", model="degraded", dataset="AMOS22_CT", modality="CT", classes=CLASSES)
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pred, ref = write_cases(root, args.cases)
        for workers in (1, 2):
            start = time.perf_counter()
            evaluate_folders(pred, ref, root / f"local{workers}", settings, progress=False, workers=workers)
            rates[f"local, {workers} worker(s)"] = args.cases / (time.perf_counter() - start)
        for workers in (1, 2):
            with local_cluster(workers) as cluster, Client(cluster) as client:
                client.run(importlib.import_module, "bench.evaluation")  # as warm as this process
                start = time.perf_counter()  # the cluster is up: its start-up is not the run's
                evaluate_folders(pred, ref, root / f"dask{workers}", settings, progress=False, executor="dask",
                                 scheduler=cluster.scheduler_address)
                rates[f"dask, {workers} worker(s)"] = args.cases / (time.perf_counter() - start)
    for name, rate in rates.items():
        print(f"{name:<20}: {rate:6.2f} cases/s")
    local, pool, one, two = rates.values()
    print(f"Dask overhead at 1 worker : {local / one - 1:+.1%}   (target < 10%)")
    print(f"2 Dask workers vs 1       : {two / one:.2f} x   (target >= 1.8 x on 2 cores)")
    print(f"2 pool processes vs 1     : {pool / local:.2f} x   (what this machine gives two processes, no Dask)")


if __name__ == "__main__":
    main()
