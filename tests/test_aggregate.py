"""Hand-computed macro averages on a tiny table (SAT paper 8.3): class-, region-, dataset-wise and overall."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from protocols import aggregate

TERMS = pd.DataFrame(
    [
        ("ct_liver", ("abdomen",), False),
        ("mri_liver", ("abdomen",), False),
        ("ct_spleen", ("abdomen",), False),
        ("ct_liver tumor", ("abdomen",), True),
        ("ct_aorta", ("thorax", "abdomen"), False),
    ],
    columns=["key", "regions", "abnormal"],
)


def key_of(modality: str, class_name: str) -> str:
    return f"{modality.split()[0].lower()}_{class_name}"


def rows_for(run: str = "A") -> pd.DataFrame:
    """D1 and D2 both annotate CT liver with 2 and 4 cases; D3 is MRI liver; tumor has one NaN (excluded)."""
    records = [
        ("D1", "c1", "CT", "liver", 0.9), ("D1", "c2", "CT", "liver", 0.7),
        ("D1", "c1", "CT", "liver tumor", 0.5), ("D1", "c2", "CT", "liver tumor", math.nan),
        ("D1", "c1", "CT", "aorta", 0.8), ("D1", "c2", "CT", "aorta", 0.6),
        *[("D2", f"c{i}", "CT", "liver", 0.6) for i in range(1, 5)],
        ("D2", "c1", "CT", "spleen", 1.0), ("D2", "c2", "CT", "spleen", 0.8),
        ("D2", "c3", "CT", "spleen", 0.9), ("D2", "c4", "CT", "spleen", 0.9),
        ("D3", "m1", "MRI T1", "liver", 0.4),
    ]
    frame = pd.DataFrame(records, columns=["dataset", "case_id", "modality", "class_name", "dsc"])
    return frame.assign(nsd=1.0 - frame["dsc"], run=run, model=run)


@pytest.fixture()
def labelled() -> pd.DataFrame:
    return aggregate.attach_terms(rows_for(), TERMS, key_of)


def table(labelled: pd.DataFrame, level: str) -> pd.DataFrame:
    return aggregate.scores(labelled, level).set_index("key")


def test_region_group_rules():
    assert aggregate.region_group(("abdomen",), False) == "abdomen"
    assert aggregate.region_group(("thorax", "abdomen"), False) == "whole body"
    assert aggregate.region_group(("thorax", "abdomen"), True) == "lesion"
    assert aggregate.region_group((), False) == "unassigned"


def test_class_is_macro_over_datasets_not_pooled(labelled):
    classes = table(labelled, "class")
    liver = classes.loc["ct_liver"]
    assert liver["dsc"] == pytest.approx((0.8 + 0.6) / 2)  # pooled would be 4.0 / 6
    assert liver["nsd"] == pytest.approx(1 - 0.7)
    assert (liver["cases"], liver["datasets"], liver["classes"]) == (6, 2, 1)


def test_same_organ_in_mri_and_ct_are_two_classes(labelled):
    classes = table(labelled, "class")
    assert classes.loc["mri_liver", "dsc"] == pytest.approx(0.4)
    assert classes.loc["mri_liver", "cases"] == 1
    assert len(classes) == 5


def test_lesion_and_whole_body_groups(labelled):
    classes = table(labelled, "class")
    assert classes.loc["ct_liver tumor", "group"] == "lesion"
    assert classes.loc["ct_liver tumor", "dsc"] == pytest.approx(0.5)  # the NaN case is left out of the mean
    assert classes.loc["ct_aorta", "group"] == "whole body"
    regions = table(labelled, "region")
    assert regions.loc["lesion", "dsc"] == pytest.approx(0.5)
    assert regions.loc["whole body", "dsc"] == pytest.approx(0.7)
    assert regions.loc["abdomen", "dsc"] == pytest.approx((0.7 + 0.4 + 0.9) / 3)
    assert regions.loc["abdomen", ["cases", "datasets", "classes"]].tolist() == [7, 3, 3]
    assert regions.loc["lesion", ["cases", "datasets", "classes"]].tolist() == [1, 1, 1]  # the NaN case: uncounted


def test_overall_is_mean_over_classes(labelled):
    overall = table(labelled, "overall").loc["all"]
    assert overall["dsc"] == pytest.approx((0.7 + 0.4 + 0.5 + 0.7 + 0.9) / 5)
    assert overall[["cases", "datasets", "classes"]].tolist() == [7, 3, 5]


def test_dataset_is_mean_over_its_classes(labelled):
    datasets = table(labelled, "dataset")
    assert datasets.loc["D1", "dsc"] == pytest.approx((0.8 + 0.5 + 0.7) / 3)
    assert datasets.loc["D2", "dsc"] == pytest.approx((0.6 + 0.9) / 2)
    assert datasets.loc["D3", "dsc"] == pytest.approx(0.4)
    assert datasets.loc["D1", ["cases", "datasets", "classes"]].tolist() == [2, 1, 3]


def test_all_scores_matches_single_levels_and_methods_stay_apart():
    rows = pd.concat([rows_for("A"), rows_for("B").assign(dsc=lambda f: f["dsc"] / 2)], ignore_index=True)
    labelled = aggregate.attach_terms(rows, TERMS, key_of)
    every = aggregate.all_scores(labelled)
    for level in aggregate.LEVELS:
        pd.testing.assert_frame_equal(every[level], aggregate.scores(labelled, level))
    overall = every["overall"].set_index("method")["dsc"]
    assert overall["B"] == pytest.approx(overall["A"] / 2)


def test_repeating_cases_in_one_dataset_leaves_class_score_unchanged(labelled):
    """Macro averaging: a dataset's weight does not grow with its number of cases."""
    more = labelled[labelled["dataset"] == "D2"].assign(case_id=lambda f: f["case_id"] + "-copy")
    bigger = pd.concat([labelled, more], ignore_index=True)
    before, after = table(labelled, "class"), table(bigger, "class")
    np.testing.assert_allclose(after["dsc"], before["dsc"])
    assert after.loc["ct_liver", "cases"] == 10


def test_unknown_class_is_unassigned_not_dropped():
    rows = rows_for().assign(class_name=lambda f: f["class_name"].replace("spleen", "mystery"))
    classes = aggregate.scores(aggregate.attach_terms(rows, TERMS, key_of), "class").set_index("key")
    assert classes.loc["ct_mystery", "group"] == "unassigned"


def test_repeated_rows_are_an_error(labelled):
    with pytest.raises(ValueError, match="repeat"):
        aggregate.cell_scores(pd.concat([labelled, labelled.head(1)]))


def test_unknown_level_is_an_error(labelled):
    with pytest.raises(ValueError, match="unknown level"):
        aggregate.scores(labelled, "organ")


def test_benchmark_data_aggregates_at_small_scale():
    """The 302K-row benchmark (`python -m tests.perf.aggregate`) on 5,000 rows: every level comes out whole."""
    from tests.perf.aggregate import synthetic_key, synthetic_rows, synthetic_terms

    rng = np.random.default_rng(0)
    terms = synthetic_terms(rng)
    rows = synthetic_rows(rng, terms, 5_000, n_datasets=6)
    tables = aggregate.all_scores(aggregate.attach_terms(rows, terms, synthetic_key))
    assert len(rows) == 5_000
    assert len(tables["dataset"]) == 6
    assert tables["overall"]["cases"].item() == len(rows[["dataset", "case_id"]].drop_duplicates())
    assert tables["overall"]["classes"].item() == len(tables["class"])


def test_empty_policy_is_reapplied_from_the_flags():
    rows = pd.DataFrame({"dsc": [0.8, 1.0, np.nan, 0.3, 0.0], "nsd": [0.7, 1.0, np.nan, 0.2, 0.0],
                         "ref_empty": [False, True, True, False, True], "pred_empty": [False, True, True, False, False],
                         "method": "A"})
    sat = aggregate.apply_empty_policy(rows, "sat")
    assert sat["dsc"].tolist() == [0.8, 1.0, 1.0, 0.3, 0.0]  # a NaN stored under "nan" becomes 1
    nan = aggregate.apply_empty_policy(rows, "nan")
    assert nan["nsd"].isna().tolist() == [False, True, True, False, False] and nan["nsd"].iloc[4] == 0.0
    assert aggregate.both_empty(rows).to_dict() == {"A": 2}
    with pytest.raises(ValueError, match="flags|ref_empty"):
        aggregate.apply_empty_policy(rows.drop(columns="ref_empty"), "sat")
    with pytest.raises(ValueError, match="unknown empty policy"):
        aggregate.apply_empty_policy(rows, "zero")


def test_empty_policy_reapplied_to_overlap_and_distance_columns():
    """IoU follows DSC's rule; HD95 both empty -> 0 (sat) or NaN (nan); one empty keeps its stored worst value."""
    rows = pd.DataFrame({"dsc": [0.5, 1.0, 0.0], "nsd": [0.5, 1.0, 0.0], "iou": [0.4, 1.0, 0.3],
                         "hd95_mm": [3.0, 0.0, 250.0], "ref_empty": [False, True, False],
                         "pred_empty": [False, True, True]})
    nan = aggregate.apply_empty_policy(rows, "nan")
    assert nan["iou"].tolist()[::2] == [0.4, 0.0] and np.isnan(nan["iou"][1]) and np.isnan(nan["hd95_mm"][1])
    assert nan["hd95_mm"][2] == 250.0
    sat = aggregate.apply_empty_policy(nan, "sat")
    assert sat["iou"].tolist() == [0.4, 1.0, 0.0] and sat["hd95_mm"].tolist() == [3.0, 0.0, 250.0]



def test_empty_policy_leaves_rows_not_scored_lesion_wise_alone():
    """Lesion metrics follow DSC's rule on lesion-wise rows; an organ row keeps NaN (it is no lesion class)."""
    rows = pd.DataFrame({"dsc": [1.0, 0.0, 1.0], "nsd": [1.0, 0.0, 1.0], "lesion_f1": [1.0, 0.0, np.nan],
                         "lesion_ref": [0, 2, np.nan], "ref_empty": [True, False, True],
                         "pred_empty": [True, True, True]})
    nan = aggregate.apply_empty_policy(rows, "nan")
    assert np.isnan(nan["lesion_f1"][0]) and nan["lesion_f1"][1] == 0.0 and np.isnan(nan["lesion_f1"][2])
    sat = aggregate.apply_empty_policy(nan, "sat")
    assert sat["lesion_f1"][0] == 1.0 and np.isnan(sat["lesion_f1"][2])


def test_a_one_side_empty_row_stored_with_a_score_is_zero_under_both_policies():
    rows = pd.DataFrame({"dsc": [0.4, 0.7], "nsd": [0.5, 0.9], "ref_empty": [True, False],
                         "pred_empty": [False, True], "method": "A"})
    for policy in ("sat", "nan"):
        fixed = aggregate.apply_empty_policy(rows, policy)
        assert fixed["dsc"].tolist() == [0.0, 0.0] and fixed["nsd"].tolist() == [0.0, 0.0]
