"""How scoring grows: with the number of voxels and with the number of classes, on the real AMOS label.

`python -m tests.perf scaling [--repeats 3] [--oracle]`: DSC + NSD@1mm of every class (`evaluate_case`) on
- the AMOS case of `tests.perf metrics` nearest-upsampled to 1x, 2x and 4x the voxels (each voxel repeated along
  the first axis, then also the second; same spacing, so the work per voxel stays alike);
- the same AMOS foreground relabelled into 5, 15, 39 and 117 classes (organs merged, or cut into stripes).
The growth exponent is the least-squares slope of log CPU seconds against log size (1 = linear; target <= 1.1).
With `--oracle`, surface-distance's exponent over the voxel sweep is printed beside (slow: minutes).
"""

from __future__ import annotations

import argparse

import numpy as np

from tests.perf._timing import best_of, load_line
from tests.perf._workloads import Workload, amos, split_classes, upsampled
from tests.perf.metrics import oracle_scores
from protocols.case import evaluate_case

TARGET = 1.1


def _exponent(sizes, seconds) -> float:
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def _sweep(title: str, workloads: list[Workload], sizes: list[int], repeats: int, oracle: bool) -> None:
    print(f"\n{title}")
    ours, theirs = [], []
    for size, w in zip(sizes, workloads):
        timing, _ = best_of(repeats, lambda: evaluate_case(w.pred, w.ref, w.spacing, w.classes))
        ours.append(timing.cpu)
        line = f"  {size:>10,}: {timing}  ({len(w.classes)} classes, {w.ref.shape})"
        if oracle:
            oracle_timing, _ = best_of(1, lambda: oracle_scores(w.pred, w.ref, w.spacing, w.classes))
            theirs.append(oracle_timing.cpu)
            line += f"; surface-distance {oracle_timing.cpu:.2f} s CPU"
        print(line)
    print(f"  growth exponent: {_exponent(sizes, ours):.2f} (target <= {TARGET:g})"
          + (f"; surface-distance {_exponent(sizes, theirs):.2f}" if oracle else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per size; the best counts")
    parser.add_argument("--oracle", action="store_true", help="also time surface-distance on the voxel sweep")
    args = parser.parse_args()
    print(f"one thread; {load_line()}")
    base = amos()
    grown = [upsampled(base, factors) for factors in ((1,), (2,), (2, 2))]
    _sweep("voxels (AMOS, the benchmark's degradation, nearest-upsampled)", grown,
           [w.ref.size for w in grown], args.repeats, args.oracle)
    relabelled = []
    for n in (5, 15, 39, 117):
        pred, ref = split_classes(base.pred, n), split_classes(base.ref, n)
        relabelled.append(Workload(f"{n} classes", pred, ref, base.spacing, {f"class {v}": v for v in range(1, n + 1)}))
    _sweep("classes (AMOS foreground relabelled)", relabelled, [len(w.classes) for w in relabelled], args.repeats,
           False)
    print(f"\n{load_line()}")


if __name__ == "__main__":
    main()
