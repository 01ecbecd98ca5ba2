"""Lesion-wise scores: hand-built lesion stories (found, merged, split, missed, false), the two matchers, the
empty rules, and the SegFM CVPR'25 text-track and panoptica goldens (tests/goldens/lesions_*.json)."""

import numpy as np
import pytest

from protocols.lesions import connected_lesions, instance_scores, lesion_scores, match, sequential_instances


def _story():
    """Five reference lesions and five predicted ones at 1 mm^3 voxels:
    A (64 voxels) found with IoU 48/80 = 0.6 (DSC 0.75); B1 and B2 (48 each) merged into one prediction M (112):
    IoU 48/112 < 0.5, no match; C (128) split into C1 and C2 (48 each): IoU 0.375, no match; D (8) missed; F (12)
    a false lesion."""
    ref, pred = np.zeros((40, 10, 10), bool), np.zeros((40, 10, 10), bool)
    ref[2:6, 2:6, 2:6] = True
    pred[2:6, 2:6, 3:7] = True
    ref[10:13, 2:6, 2:6] = ref[14:17, 2:6, 2:6] = True
    pred[10:17, 2:6, 2:6] = True
    ref[20:28, 2:6, 2:6] = True
    pred[20:23, 2:6, 2:6] = pred[25:28, 2:6, 2:6] = True
    ref[32:34, 2:4, 2:4] = True
    pred[32:35, 7:9, 7:9] = True
    return pred, ref


def test_story_of_found_merged_split_missed_and_false_lesions():
    pred, ref = _story()
    row, table = lesion_scores(pred, ref, (1.0, 1.0, 1.0))
    assert (row["lesion_ref"], row["lesion_pred"], row["lesion_tp"], row["lesion_fp"], row["lesion_fn"]) == (5, 5, 1,
                                                                                                             4, 4)
    assert row["lesion_precision"] == row["lesion_recall"] == row["lesion_f1"] == row["rq"] == pytest.approx(0.2)
    assert row["sq"] == pytest.approx(0.6) and row["pq"] == pytest.approx(0.12)
    assert row["lesion_dsc"] == pytest.approx(0.75)
    assert row["lesion_nsd"] == 1.0  # a one-voxel shift: every surfel within the 1 mm tolerance
    assert lesion_scores(pred, ref, (1.0, 1.0, 1.0), tolerance_mm=0.5)[0]["lesion_nsd"] < 1.0
    assert (row["lesions_lt100"], row["found_lt100"], row["lesions_100_1000"], row["found_100_1000"],
            row["lesions_gt1000"]) == (4, 1, 1, 0, 0)
    refs = [lesion for lesion in table if lesion.side == "ref"]
    assert [lesion.voxels for lesion in refs] == [64, 48, 48, 128, 8]
    assert [lesion.partner for lesion in refs] == [1, 0, 0, 0, 0] and refs[0].iou == pytest.approx(0.6)
    assert [lesion.size_bin for lesion in refs] == ["lt100", "lt100", "lt100", "100_1000", "lt100"]
    # at IoU 0.4 the merged prediction matches one of B1/B2 (0.43), the split halves still none (0.375)
    assert lesion_scores(pred, ref, (1.0, 1.0, 1.0), threshold=0.4)[0]["lesion_tp"] == 2
    # anisotropic voxels scale the volumes: C at 8 mm^3 a voxel is > 1000 mm^3
    assert lesion_scores(pred, ref, (2.0, 2.0, 2.0))[0]["lesions_gt1000"] == 1


def test_connectivity_is_stated_and_changes_what_a_lesion_is():
    mask = np.zeros((5, 5, 5), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # corner neighbours only
    assert connected_lesions(mask).max() == 1 and connected_lesions(mask, 6).max() == 2
    assert connected_lesions(mask, 18).max() == 2
    with pytest.raises(ValueError, match="connectivity"):
        connected_lesions(mask, 8)


def test_greedy_and_hungarian_differ_below_one_half():
    """Reference X overlaps P1 (0.6) and P2 (0.35), Y only P1 (0.4): greedy takes X-P1 and leaves Y and P2 alone;
    the Hungarian assignment (panoptica's MaxBipartiteMatching, SegFM's cost) matches both."""
    iou = np.array([[0.6, 0.35], [0.4, 0.0]])
    assert match(iou, 0.3, "greedy") == [(0, 0)]
    assert match(iou, 0.3, "hungarian") == [(0, 1), (1, 0)]
    assert match(iou, 0.5, "greedy") == match(iou, 0.5, "hungarian") == [(0, 0)]
    assert match(np.array([[0.5]]), 0.5) == [(0, 0)]  # the threshold is inclusive
    with pytest.raises(ValueError, match="matcher"):
        match(iou, 0.5, "best")


def test_empty_rules():
    empty = np.zeros((6, 6, 6), bool)
    lesion = empty.copy()
    lesion[1:3, 1:3, 1:3] = True
    both, _ = lesion_scores(empty, empty, (1, 1, 1))
    assert both["lesion_f1"] == both["pq"] == both["lesion_dsc"] == 1.0 and both["lesion_ref"] == 0
    assert np.isnan(lesion_scores(empty, empty, (1, 1, 1), empty_policy="nan")[0]["lesion_f1"])
    missed, _ = lesion_scores(empty, lesion, (1, 1, 1))
    assert (missed["lesion_fn"], missed["lesion_precision"], missed["lesion_recall"], missed["lesion_f1"],
            missed["lesion_dsc"], missed["sq"], missed["pq"]) == (1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    false, _ = lesion_scores(lesion, empty, (1, 1, 1))
    assert (false["lesion_fp"], false["lesion_recall"], false["lesion_f1"]) == (1, 0.0, 0.0)


def test_instance_maps_are_scored_as_given():
    """Two touching instances of one label map stay two lesions (no connected components are taken)."""
    ref = np.zeros((8, 8, 4), np.int32)
    ref[0:4, :, :], ref[4:8, :, :] = 7, 3
    pred = np.where(ref > 0, 1, 0)
    row, _ = instance_scores(sequential_instances(pred), sequential_instances(ref), (1, 1, 1))
    assert (row["lesion_ref"], row["lesion_pred"], row["lesion_tp"]) == (2, 1, 1)  # IoU exactly 0.5 with each


def _instance_story():
    """Reference instances at 1 mm^3 voxels: A (id 1, 64 voxels) and B (id 2, 64) touching face to face, C (id 3,
    8) apart; predicted instances: A' (id 4) = A, B' (id 9, 48 voxels inside B, touching A'), F (id 2, 12) a false
    lesion. As instances: A-A' IoU 1, B-B' IoU 48/64 = 0.75, C missed, F false."""
    ref, pred = np.zeros((20, 10, 6), np.uint16), np.zeros((20, 10, 6), np.uint16)
    ref[2:6, 2:6, 1:5], ref[6:10, 2:6, 1:5], ref[14:16, 2:4, 1:3] = 1, 2, 3
    pred[2:6, 2:6, 1:5], pred[6:10, 2:6, 2:5], pred[15:18, 7:9, 1:3] = 4, 9, 2
    return pred, ref


def test_instance_maps_through_evaluate_case_keep_touching_lesions_apart():
    """`evaluate_case(instance_maps=True)`: lesions are the given instances, by hand TP 2, FP 1, FN 1, lesion
    precision = recall = F1 = RQ = 2/3, SQ = (1 + 0.75) / 2, PQ = SQ x RQ, matched DSC (1 + 96/112) / 2; the class
    is every non-zero voxel (DSC 2 x 112 / (124 + 136)). Connected components would merge A with B and A' with B'
    (IoU 112/128: one match, F1 1/2)."""
    from protocols.case import evaluate_case

    pred, ref = _instance_story()
    score, = evaluate_case(pred, ref, (1.0, 1.0, 1.0), {"tumour": 1}, metrics=("lesion",), instance_maps=True)
    row = score.extra
    assert (row["lesion_ref"], row["lesion_pred"], row["lesion_tp"], row["lesion_fp"], row["lesion_fn"]) == (3, 3, 2,
                                                                                                             1, 1)
    assert row["lesion_precision"] == row["lesion_recall"] == row["lesion_f1"] == row["rq"] == pytest.approx(2 / 3)
    assert row["sq"] == pytest.approx(0.875) and row["pq"] == pytest.approx(0.875 * 2 / 3)
    assert row["lesion_dsc"] == pytest.approx((1 + 96 / 112) / 2)
    assert score.dsc == pytest.approx(224 / 260) and (score.pred_voxels, score.ref_voxels) == (124, 136)
    assert [(lesion.side, lesion.lesion, lesion.voxels, lesion.partner) for lesion in score.lesions] == [
        ("ref", 1, 64, 2), ("ref", 2, 64, 3), ("ref", 3, 8, 0), ("pred", 1, 12, 0), ("pred", 2, 64, 1),
        ("pred", 3, 48, 2)]  # predicted instances renumbered in order of value: 2, 4, 9
    merged = evaluate_case(pred, ref, (1.0, 1.0, 1.0), {"tumour": (1, 2, 3, 4, 9)}, metrics=("lesion",))[0].extra
    assert (merged["lesion_ref"], merged["lesion_pred"], merged["lesion_tp"], merged["lesion_f1"]) == (2, 2, 1, 0.5)
    missed = evaluate_case(np.zeros_like(pred), ref, (1.0, 1.0, 1.0), {"tumour": 1}, metrics=("lesion",),
                           instance_maps=True)[0].extra
    assert (missed["lesion_ref"], missed["lesion_pred"], missed["lesion_fn"], missed["lesion_f1"]) == (3, 0, 3, 0.0)


def test_instance_maps_reject_what_is_not_one_class_of_instances():
    from protocols.case import evaluate_case

    pred, ref = _instance_story()
    for classes, sides, message in (({"a": 1, "b": 2}, (pred, ref), "one class; the class map names 2 \\(a, b\\)"),
                                    ({"a": 1}, ({"a": pred > 0}, ref), "pred is per-class masks"),
                                    ({"a": 1}, (pred, -ref.astype(np.int16)), "negative")):
        with pytest.raises(ValueError, match=message):
            evaluate_case(*sides, (1.0, 1.0, 1.0), classes, metrics=("lesion",), instance_maps=True)


def test_instance_values_need_no_table_as_large_as_the_largest():
    instances = np.array([[0, 2**31 - 1], [5, 5]], np.int32)
    assert sequential_instances(instances).tolist() == [[0, 2], [1, 1]]


def _golden_cases():
    import json
    from pathlib import Path

    goldens = Path(__file__).parent / "goldens"
    data = np.load(goldens / "lesion_inputs.npz")
    cases = [(data[f"pred_{i}"], data[f"ref_{i}"]) for i in range(len(data.files) // 2)]
    return cases, json.loads((goldens / "lesions_segfm.json").read_text()), json.loads(
        (goldens / "lesions_panoptica.json").read_text())


def _scores(pred, ref, matcher="hungarian"):
    """The prediction's lesions are its 6-connected components, the reference an instance map (SegFM's setup)."""
    return instance_scores(connected_lesions(pred, 6), sequential_instances(ref), (1.0, 1.0, 2.0), matcher=matcher)[0]


def test_segfm_text_track_f1_and_dsc_of_true_positives():
    """CVPR25_text_eval.py (its matching functions and per-case lines, run by tests/goldens/make_lesion_goldens.py):
    TP/FP/FN, F1 at IoU 0.5 and the mean DSC of the matched lesions."""
    cases, segfm, _ = _golden_cases()
    for (pred, ref), golden in zip(cases, segfm["cases"], strict=True):
        row = _scores(pred, ref)
        assert (row["lesion_tp"], row["lesion_fp"], row["lesion_fn"]) == (golden["tp"], golden["fp"], golden["fn"])
        assert row["lesion_f1"] == pytest.approx(golden["f1"], abs=1e-12)
        assert row["lesion_dsc"] == pytest.approx(golden["dsc_tp"], abs=1e-12)


@pytest.mark.parametrize("matcher", ["greedy", "hungarian"])
def test_panoptica_panoptic_quality(matcher):
    """panoptica 2.1.7 (NaiveThresholdMatching / MaxBipartiteMatching at IoU 0.5): RQ, SQ, PQ, matched DSC."""
    cases, _, panoptica = _golden_cases()
    for (pred, ref), golden in zip(cases, panoptica[matcher], strict=True):
        row = _scores(pred, ref, matcher)
        assert (row["lesion_tp"], row["lesion_fp"], row["lesion_fn"]) == (golden["tp"], golden["fp"], golden["fn"])
        for ours, theirs in (("rq", "rq"), ("sq", "sq"), ("pq", "pq"), ("lesion_dsc", "sq_dsc")):
            assert row[ours] == pytest.approx(golden[theirs], abs=1e-12), ours


def test_detection_rate_by_size_pools_cases_and_classes():
    import pandas as pd

    from protocols.lesions import detection_by_size

    rows = pd.DataFrame({"method": ["a", "a", "b"], "lesions_lt100": [3, 1, 2], "found_lt100": [1, 1, 2],
                         "lesions_100_1000": [0, 2, 0], "found_100_1000": [0, 1, 0],
                         "lesions_gt1000": [0, 0, 0], "found_gt1000": [0, 0, 0]})
    table = detection_by_size(rows).set_index(["method", "size_bin"])
    assert table.loc[("a", "lt100"), "rate"] == 0.5 and table.loc[("a", "100_1000"), "rate"] == 0.5
    assert table.loc[("b", "lt100"), "rate"] == 1.0 and np.isnan(table.loc[("a", "gt1000"), "rate"])
    assert table.loc[("a", "lt100"), "lesions"] == 4
