"""Goldens for protocols/lesions.py from the official lesion scorers, on fixed seeded instance maps.

    python tests/goldens/make_lesion_goldens.py inputs                      # lesion_inputs.npz (the cases)
    python tests/goldens/make_lesion_goldens.py segfm /path/to/CVPR-MedSegFMCompetition COMMIT  # lesions_segfm.json
    /path/to/panoptica-venv/bin/python tests/goldens/make_lesion_goldens.py panoptica        # lesions_panoptica.json

`segfm` runs the matching functions of JunMa11/CVPR-MedSegFMCompetition's CVPR25_text_eval.py (read from the
checkout given, the script itself is never imported: it starts Docker at import) with its own per-case F1 and
DSC-of-TP lines, in an environment with cc3d, scikit-image and surface-distance. `panoptica` runs panoptica 2.1.7
(pip; it pins numpy/pandas below this project's, so it runs in its own venv) with both of its matchers. Every
case is a reference instance map and a binary prediction made from it (lesions shifted, grown, dropped,
invented); the prediction's lesions are its 6-connected components, as SegFM takes them.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
INPUTS = HERE / "lesion_inputs.npz"
SPACING = (1.0, 1.0, 2.0)


def make_inputs() -> None:
    rng = np.random.default_rng(24)
    cases = {}
    for index in range(4):
        ref = np.zeros((24, 24, 12), np.uint8)
        pred = np.zeros((24, 24, 12), bool)
        for lesion in range(1, 7):
            size = rng.integers(2, 6, 3)
            corner = [rng.integers(0, n - s) for n, s in zip(ref.shape, size)]
            box = tuple(slice(c, c + s) for c, s in zip(corner, size))
            ref[box][ref[box] == 0] = lesion
            fate = rng.random()
            if fate < 0.6:  # found, shifted by up to one voxel and sometimes grown
                shift = rng.integers(-1, 2, 3)
                moved = tuple(slice(max(b.start + d, 0), b.stop + d + (fate < 0.2)) for b, d in zip(box, shift))
                pred[moved] = True
            elif fate < 0.8:  # half found
                pred[box[0].start:box[0].start + max(1, size[0] // 2), box[1], box[2]] = True
        for _ in range(2):  # false lesions
            corner = [rng.integers(0, n - 2) for n in ref.shape]
            pred[tuple(slice(c, c + 2) for c in corner)] = True
        cases[f"ref_{index}"], cases[f"pred_{index}"] = ref, pred
    np.savez_compressed(INPUTS, **cases)


def cases():
    data = np.load(INPUTS)
    return [(data[f"pred_{i}"], data[f"ref_{i}"]) for i in range(len(data.files) // 2)]


def segfm(checkout: Path, commit: str) -> None:
    """F1 at IoU 0.5 and the mean DSC of the matched lesions, as CVPR25_text_eval.py computes them per case."""
    import cc3d
    from scipy.optimize import linear_sum_assignment
    from skimage import segmentation
    from surface_distance import compute_dice_coefficient

    source = (checkout / "CVPR25_text_eval.py").read_text()
    wanted = {"_label_overlap", "_intersection_over_union", "_true_positive", "eval_tp_fp_fn"}
    tree = ast.parse(source)
    functions = ast.Module([node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in wanted],
                           type_ignores=[])
    namespace = {"np": np, "linear_sum_assignment": linear_sum_assignment}
    exec(compile(functions, "CVPR25_text_eval.py", "exec"), namespace)
    results = []
    for pred, ref in cases():
        seg_npz = pred.astype(np.uint8)
        tumor_inst, _ = cc3d.connected_components(seg_npz, connectivity=6, return_N=True)  # as lines 256-262
        seg_npz[tumor_inst > 0] = tumor_inst[tumor_inst > 0] + np.max(seg_npz)
        gt_npz = segmentation.relabel_sequential(ref)[0]
        seg_npz = segmentation.relabel_sequential(seg_npz)[0]
        tp, fp, fn, matched_pairs = namespace["eval_tp_fp_fn"](gt_npz, seg_npz)
        precision = tp / (tp + fp) if (tp + fp) > 0 else 0
        recall = tp / (tp + fn) if (tp + fn) > 0 else 0
        f1 = 2 * precision * recall / (precision + recall) if (precision + recall) > 0 else 0
        dsc_tp = (float(np.mean([compute_dice_coefficient(gt_npz == g + 1, seg_npz == p + 1) for g, p in matched_pairs]))
                  if matched_pairs else 0)
        results.append({"tp": int(tp), "fp": int(fp), "fn": int(fn), "f1": float(f1), "dsc_tp": dsc_tp})
    source = f"JunMa11/CVPR-MedSegFMCompetition@{commit}:CVPR25_text_eval.py:57-153,254-282"
    (HERE / "lesions_segfm.json").write_text(json.dumps({"source": source, "cases": results}, indent=1))


def panoptica_goldens() -> None:
    """RQ, SQ (mean IoU of matches), PQ, the mean DSC of matches and TP/FP/FN with both panoptica matchers."""
    import panoptica
    from panoptica import InputType, MaxBipartiteMatching, NaiveThresholdMatching, Panoptica_Evaluator

    results = {}
    for name, matcher in (("greedy", NaiveThresholdMatching()), ("hungarian", MaxBipartiteMatching())):
        rows = []
        for pred, ref in cases():
            import cc3d
            pred_instances = cc3d.connected_components(pred.astype(np.uint8), connectivity=6).astype(np.uint8)
            evaluator = Panoptica_Evaluator(expected_input=InputType.UNMATCHED_INSTANCE, instance_matcher=matcher,
                                            verbose=False)
            result = evaluator.evaluate(pred_instances, ref.astype(np.uint8), verbose=False)["ungrouped"]
            rows.append({"tp": int(result.tp), "fp": int(result.fp), "fn": int(result.fn), "rq": float(result.rq),
                         "sq": float(result.sq), "pq": float(result.pq), "sq_dsc": float(result.sq_dsc)})
        results[name] = rows
    (HERE / "lesions_panoptica.json").write_text(json.dumps(
        {"source": f"panoptica {panoptica.__version__ if hasattr(panoptica, '__version__') else '2.1.7'} (PyPI)",
         **results}, indent=1))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "inputs":
        make_inputs()
    elif mode == "segfm":
        segfm(Path(sys.argv[2]), sys.argv[3])  # the checkout and its short commit
    elif mode == "panoptica":
        panoptica_goldens()
    else:
        sys.exit(__doc__)
