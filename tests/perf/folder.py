"""Scoring a folder end to end (read, check, DSC + NSD, store) against reading its files, and against nnU-Net's own
evaluator on the same folder.

`python -m tests.perf folder [--cases 30] [--no-nnunet]`: the same AMOS-size cases are scored by `bench evaluate`'s
engine (one worker, in this process, DSC and NSD@1mm) and by nnU-Net v2's `compute_metrics_on_folder_simple` (one
process, Dice and IoU only), in this run. The floor is the time to inflate and read both label maps of every case
(`bench.data.io.read_label_map`): the target is a whole case within 3x of it. CPU seconds of this process are compared
(the machine is shared); wall seconds are printed beside them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.engine.evaluation import evaluate_folders, evaluation_spec
from bench.data.io import read_label_map
from tests.perf._timing import best_of, load_line, timed
from tests.perf.cases import CLASSES, write_cases

TARGET = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each configuration; the best counts")
    parser.add_argument("--no-nnunet", action="store_true", help="skip nnU-Net's evaluator")
    args = parser.parse_args()
    print(f"one thread; {load_line()}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pred, ref = write_cases(root, args.cases)
        spec = evaluation_spec(run="perf", model="degraded", predictions=pred, classes=CLASSES)
        files = sorted(pred.iterdir()) + sorted(ref.iterdir())
        reading, _ = best_of(args.repeats, lambda: [read_label_map(f) for f in files])
        runs = iter(range(args.repeats))
        ours, _ = best_of(args.repeats, lambda: evaluate_folders(ref, root / f"run{next(runs)}", spec, dataset="AMOS22_CT",
                                                                 modality="CT", classes=CLASSES, progress=False))
        if not args.no_nnunet:
            from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder_simple

            theirs, _ = timed(lambda: compute_metrics_on_folder_simple(
                str(ref), str(pred), list(CLASSES.values()), str(root / "summary.json"), num_processes=1))
    n = args.cases
    print(f"{n} AMOS-size cases (512 x 512 x 82, 15 classes), one worker, best of {args.repeats}")
    print(f"floor: read both label maps      : {reading}  ({reading.cpu / n:.4f} s CPU/case)")
    print(f"this project (DSC + NSD, stored) : {ours}  ({ours.cpu / n:.4f} s CPU/case)")
    print(f"case / reading its files         : {ours.cpu / reading.cpu:7.2f} x CPU, {ours.wall / reading.wall:.2f} x "
          f"wall   (target <= {TARGET:g} x)")
    if not args.no_nnunet:
        print(f"nnU-Net evaluate_simple (Dice)   : {theirs}  ({theirs.total_cpu / n:.4f} s CPU/case)")
        print(f"speed-up over nnU-Net            : {theirs.total_cpu / ours.total_cpu:7.2f} x CPU (its worker's "
              f"included), {theirs.wall / ours.wall:.2f} x wall   (target >= 5 x)")
    print(load_line())


if __name__ == "__main__":
    main()
