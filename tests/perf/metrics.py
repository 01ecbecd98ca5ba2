"""Scoring speed and exactness on real label maps: this project vs DeepMind's surface-distance, in one run.

`python -m tests.perf metrics [--repeats 5]`: four cases, each scored with `evaluate_case` (DSC + NSD@1mm of every
class) and with surface-distance class by class, the way its users call it:
- the AMOS22 label (512 x 512 x 82 at 0.78 x 0.78 x 5 mm, 15 organs) against the benchmark's degraded copy (each
  organ shifted by a few voxels, some eroded, one dropped);
- TotalSegmentator's fast model against its full model on one CT (3 mm, 41 classes);
- AMOS against a harder degradation (dilated/eroded organs, a z-shift, label swaps on a boundary band);
- the first AMOS case with the prediction given as per-class masks (a mask folder, SAT's output layout).
Prints CPU and wall seconds of both (the ratio is of CPU seconds: the machine is shared), the largest absolute
NSD/DSC difference, and the peak memory of the project's scoring. With `--all`, also the time of the full metric
set (overlap, HD95 and ASSD besides DSC and NSD, `protocols.class_metrics`) against DSC+NSD alone on the first
case, in the same run (target <= 2 x).
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np

from tests.perf._timing import best_of, load_line, timed
from tests.perf._workloads import Workload, amos, degrade_hard, totalsegmentator
from protocols.case import evaluate_case

TARGET = 40.0


def oracle_scores(pred, ref, spacing, classes) -> dict[str, tuple[float, float]]:
    """(DSC, NSD@1mm) per class with surface-distance, one class at a time; `pred` a label map or per-class masks."""
    import surface_distance  # the oracle, a test dependency

    scores = {}
    for name, value in classes.items():
        ref_mask = ref == value
        pred_mask = pred[name] if isinstance(pred, dict) else pred == value
        if not ref_mask.any() or not pred_mask.any():
            continue  # the oracle raises on empty masks under NumPy 2; both agree on the fixed score
        distances = surface_distance.compute_surface_distances(ref_mask, pred_mask, spacing)
        scores[name] = (
            surface_distance.compute_dice_coefficient(ref_mask, pred_mask),
            surface_distance.compute_surface_dice_at_tolerance(distances, 1.0),
        )
    return scores


def _compare(title: str, pred, ref, spacing, classes, repeats: int) -> float:
    """Print one workload's timings and differences; returns the CPU-time ratio."""
    cold, _ = timed(lambda: evaluate_case(pred, ref, spacing, classes))
    ours_time, ours = best_of(repeats, lambda: evaluate_case(pred, ref, spacing, classes))
    oracle_time, oracle = best_of(1, lambda: oracle_scores(pred, ref, spacing, classes))
    tracemalloc.start()  # a separate, traced run: tracing slows allocation, so it is not a timed one
    evaluate_case(pred, ref, spacing, classes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    by_name = {score.class_name: score for score in ours}
    worst_dsc = max(abs(dsc - by_name[name].dsc) for name, (dsc, _) in oracle.items())
    worst_nsd = max(abs(nsd - by_name[name].nsd) for name, (_, nsd) in oracle.items())
    ratio = oracle_time.cpu / ours_time.cpu
    print(f"\n{title}: {ref.shape} at {tuple(round(s, 3) for s in spacing)} mm, {len(classes)} classes")
    print(f"  this project     : {ours_time}  (best of {repeats}; first call {cold.cpu:.4f} s CPU)")
    print(f"  surface-distance : {oracle_time}")
    print(f"  speed-up         : {ratio:8.1f} x CPU, {oracle_time.wall / ours_time.wall:.1f} x wall   "
          f"(target >= {TARGET:g} x)")
    print(f"  max |NSD diff|   : {worst_nsd:.1e}   max |DSC diff|: {worst_dsc:.1e}   (target <= 1e-12, "
          f"{len(oracle)} classes both non-empty)")
    label_maps = ref.nbytes * 2
    print(f"  peak memory      : {peak / 2**20:.0f} MiB = {peak / label_maps:.2f} x the two label maps")
    return ratio


def _full_set_ratio(pred: np.ndarray, ref: np.ndarray, spacing, classes: dict) -> None:
    """Time DSC+NSD alone and the full metric set, interleaved (best of 3 each), and print their ratio. The full
    set scores lesion-wise the lesion classes, none among AMOS's organs, as `bench evaluate --metrics all` does;
    a third line treats every organ as a lesion class (`--instances`)."""
    timed_sets = {"base": (), "full": ("all",), "every": ("all",)}
    best = dict.fromkeys(timed_sets, float("inf"))
    for _ in range(3):
        for name, metrics in timed_sets.items():
            lesions = None if name == "every" else ()
            timing, _ = timed(lambda: evaluate_case(pred, ref, spacing, classes, metrics=metrics,
                                                    lesion_classes=lesions))
            best[name] = min(best[name], timing.cpu)
    print(f"\nDSC+NSD alone    : {best['base']:8.3f} s CPU  (best of 3)")
    print(f"full metric set  : {best['full']:8.3f} s CPU  (best of 3: + IoU, precision, recall, volume error, HD95, "
          "ASSD)")
    print(f"full / DSC+NSD   : {best['full'] / best['base']:8.2f} x   (target <= 2 x)")
    print(f"+ lesion-wise    : {best['every']:8.3f} s CPU = {best['every'] / best['base']:.2f} x, every organ scored "
          "as lesions (--instances)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of this project's scoring; the best counts")
    parser.add_argument("--all", action="store_true", help="also time the full metric set against DSC+NSD alone")
    args = parser.parse_args()
    print(f"one thread; {load_line()}")
    ratios = {}
    workloads: list[Workload] = [amos(), totalsegmentator(), amos(degrade_hard)]
    for w in workloads:
        ratios[w.name] = _compare(w.name, w.pred, w.ref, w.spacing, w.classes, args.repeats)
    first = workloads[0]
    masks = {name: first.pred == value for name, value in first.classes.items()}
    name = f"{first.name}, prediction as per-class masks"
    ratios[name] = _compare(name, masks, first.ref, first.spacing, first.classes, args.repeats)
    if args.all:
        _full_set_ratio(first.pred, first.ref, first.spacing, first.classes)
    print(f"\nsmallest speed-up: {min(ratios.values()):.1f} x CPU (target >= {TARGET:g} x on every case); {load_line()}")


if __name__ == "__main__":
    main()
