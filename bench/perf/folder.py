"""Scoring a folder end to end (read, check, DSC + NSD, store) against nnU-Net's own evaluator on the same folder.

`python -m bench.perf folder [--cases 30]`: the same AMOS-size cases are scored by `bench evaluate`'s engine (one
worker, DSC and NSD@1mm) and by nnU-Net v2's `compute_metrics_on_folder_simple` (one process, Dice and IoU only), in
this run, and the ratio is printed. The floor is the time to read both label maps of every case (ISA-L inflate and
array view), printed beside: scoring cannot be faster than reading.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.evaluation import RunSettings, evaluate_folders
from bench.io import read_label_map
from bench.perf.cases import CLASSES, write_cases


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=30)
    args = parser.parse_args()
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder_simple

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pred, ref = write_cases(root, args.cases)
        settings = RunSettings(run="perf", model="degraded", dataset="AMOS22_CT", modality="CT", classes=CLASSES)
        reading = _timed(lambda: [read_label_map(f) for f in sorted(pred.iterdir()) + sorted(ref.iterdir())])
        ours = _timed(lambda: evaluate_folders(pred, ref, root / "run", settings, progress=False))
        theirs = _timed(lambda: compute_metrics_on_folder_simple(str(ref), str(pred), list(CLASSES.values()),
                                                                  str(root / "summary.json"), num_processes=1))
    print(f"{args.cases} AMOS-size cases (512 x 512 x 82, 15 classes), one worker each")
    print(f"this project (DSC + NSD, stored) : {ours:7.2f} s  ({ours / args.cases:.3f} s/case)")
    print(f"nnU-Net evaluate_simple (Dice)   : {theirs:7.2f} s  ({theirs / args.cases:.3f} s/case)")
    print(f"speed-up                         : {theirs / ours:7.2f} x   (target >= 5 x)")
    print(f"floor: reading both label maps   : {reading:7.2f} s  ({reading / ours:.0%} of this project's time)")


if __name__ == "__main__":
    main()
