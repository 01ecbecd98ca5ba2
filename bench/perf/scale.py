"""Cases per second on AMOS-size cases: the local executor with one worker, and Dask with one and two workers.

`python -m bench.perf scale [--cases 40] [--repeats 2]`: the same folder is scored in four configurations in
this run (the best of the repeats counts, each into a fresh run folder), so the ratios compare like with like:
Dask's overhead at one worker against the local executor, the speed-up of two Dask workers over one, and, as the
machine's own bound on that speed-up, two local pool processes over one and the workers' compute time alone and
side by side (from Dask's task stream: two busy cores each run slower than one).
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
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration; the best one counts")
    args = parser.parse_args()
    from distributed import Client, get_task_stream

    from bench.executors import local_cluster

    settings = RunSettings(run="perf", model="degraded", dataset="AMOS22_CT", modality="CT", classes=CLASSES)
    rates, compute = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pred, ref = write_cases(root, args.cases)

        def rate(name: str, **options) -> float:
            """Cases per second of the best of `--repeats` runs, each into a fresh run folder."""
            best = 0.0
            for repeat in range(args.repeats):
                start = time.perf_counter()
                evaluate_folders(pred, ref, root / f"{name}-{repeat}", settings, progress=False, **options)
                best = max(best, args.cases / (time.perf_counter() - start))
            return best

        for workers in (1, 2):
            rates[f"local, {workers} worker(s)"] = rate(f"local{workers}", workers=workers)
        for workers in (1, 2):
            with local_cluster(workers) as cluster, Client(cluster) as client:
                client.run(importlib.import_module, "bench.evaluation")  # as warm as this process
                with get_task_stream(client) as stream:  # the cluster is up: its start-up is not the run's
                    rates[f"dask, {workers} worker(s)"] = rate(f"dask{workers}", executor="dask",
                                                               scheduler=cluster.scheduler_address)
                compute[workers] = sum(part["stop"] - part["start"] for task in stream.data
                                       for part in task["startstops"] if part["action"] == "compute") / args.repeats
    for name, rate in rates.items():
        print(f"{name:<20}: {rate:6.2f} cases/s")
    local, pool, one, two = rates.values()
    print(f"Dask overhead at 1 worker : {local / one - 1:+.1%}   (target < 10%)")
    print(f"2 Dask workers vs 1       : {two / one:.2f} x   (target >= 1.8 x on 2 cores)")
    print(f"2 pool processes vs 1     : {pool / local:.2f} x   (what this machine gives two processes, no Dask)")
    print(f"worker compute per run    : {compute[1]:.2f} s alone, {compute[2]:.2f} s with two workers side by side "
          f"(bound on the speed-up without any overhead: {2 * compute[1] / compute[2]:.2f} x)")


if __name__ == "__main__":
    main()
