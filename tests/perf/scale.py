"""Cases per second on AMOS-size cases: `bench evaluate`'s executors against a bare ProcessPoolExecutor.

`python -m tests.perf scale [--cases 40] [--repeats 2]`: the same folder is scored (read, check, DSC + NSD, store)
in this run by
- a plain loop over the cases in this process, no executor (`score + store` per case, the work itself);
- a bare `concurrent.futures.ProcessPoolExecutor` with two processes mapping that same per-case work;
- `evaluate_folders` with the local executor (one worker: a loop in this process; two: a process pool);
- `evaluate_folders` on a Dask LocalCluster of one and of two single-threaded workers (started before timing).
The best of the repeats counts, each into a fresh run folder. Targets: with two workers, the local pool and Dask
reach >= 95% of the bare pool's speed-up over the plain loop; with one worker, both are within 5% of the loop.
Throughput is wall-clock by nature: on a machine shared with other work the numbers move with its load, printed;
beside it the CPU seconds per case of the best run, in this process and its workers (`_timing.tree_cpu`).
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from bench.engine.evaluation import _score_and_store, evaluate_folders, evaluation_spec, with_reference
from bench.data.matching import match_cases
from tests.perf._timing import load_line, tree_cpu
from tests.perf.cases import CLASSES, write_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration; the best one counts")
    args = parser.parse_args()
    from distributed import Client

    from bench.engine.executors import local_cluster

    reference = {"dataset": "AMOS22_CT", "modality": "CT", "classes": CLASSES}
    rates = {}
    print(f"before: {load_line()}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pred, ref = write_cases(root, args.cases)
        spec = evaluation_spec(run="perf", model="degraded", predictions=pred, classes=CLASSES)
        pairs = with_reference(match_cases(pred, ref)[0], **reference)
        runs = iter(range(10**6))

        def rate(run) -> tuple[float, float]:
            """Cases per second of the best of `--repeats` runs, each into a fresh run folder, and that run's CPU
            seconds per case."""
            best = (0.0, 0.0)
            for _ in range(args.repeats):
                out_dir = root / f"run{next(runs)}"
                start, cpu = time.perf_counter(), tree_cpu()
                run(out_dir)
                wall, cpu = time.perf_counter() - start, tree_cpu() - cpu
                best = max(best, (args.cases / wall, cpu / args.cases))
            return best

        def loop(out_dir: Path) -> None:
            for pair in pairs:
                _score_and_store(pair, spec=spec, out_dir=out_dir)

        def bare_pool(out_dir: Path) -> None:
            with ProcessPoolExecutor(max_workers=2) as pool:
                list(pool.map(partial(_score_and_store, spec=spec, out_dir=out_dir), pairs))

        rates["no executor (loop)"] = rate(loop)
        rates["bare pool, 2 procs"] = rate(bare_pool)
        for workers in (1, 2):
            rates[f"local, {workers} worker(s)"] = rate(
                lambda out_dir: evaluate_folders(ref, out_dir, spec, **reference, progress=False, workers=workers))
        for workers in (1, 2):
            with local_cluster(workers) as cluster, Client(cluster) as client:
                client.run(importlib.import_module, "bench.engine.evaluation")  # as warm as this process
                rates[f"dask, {workers} worker(s)"] = rate(
                    lambda out_dir: evaluate_folders(ref, out_dir, spec, **reference, progress=False, executor="dask",
                                                     scheduler=cluster.scheduler_address))
    cpu = {name: per_case for name, (_, per_case) in rates.items()}
    rates = {name: value for name, (value, _) in rates.items()}
    for name, value in rates.items():
        print(f"{name:<20}: {value:6.2f} cases/s, {cpu[name]:.3f} s CPU/case")
    base, bare = rates["no executor (loop)"], rates["bare pool, 2 procs"] / rates["no executor (loop)"]
    print(f"bare pool, 2 processes vs loop : {bare:.2f} x   (what this machine gives two processes now)")
    for name in ("local", "dask"):
        two, one = rates[f"{name}, 2 worker(s)"] / base, rates[f"{name}, 1 worker(s)"] / base
        print(f"{name:<5}: 2 workers {two:.2f} x the loop = {two / bare:.0%} of the bare pool's speed-up "
              f"(target >= 95%); 1 worker {one:.0%} of the loop (target >= 95%)")
    print(f"after: {load_line()}")


if __name__ == "__main__":
    main()
