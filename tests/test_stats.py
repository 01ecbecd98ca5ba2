"""Bootstrap intervals over cases (seeded, stratified by dataset) and the paired Wilcoxon test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from protocols import aggregate, stats
from tests.test_aggregate import TERMS, key_of, rows_for


def labelled(rows: pd.DataFrame) -> pd.DataFrame:
    return aggregate.attach_terms(rows, TERMS, key_of)


def test_resample_counts_keep_every_stratum_size():
    strata = np.array([0, 0, 0, 1, 1, 2])
    counts = stats.resample_counts(strata, 50, np.random.default_rng(1))
    assert counts.shape == (6, 50)
    np.testing.assert_array_equal(counts[:3].sum(axis=0), 3)
    np.testing.assert_array_equal(counts[3:5].sum(axis=0), 2)
    np.testing.assert_array_equal(counts[5], 1)
    again = stats.resample_counts(strata, 50, np.random.default_rng(1))
    np.testing.assert_array_equal(counts, again)


def test_resample_counts_need_sorted_strata():
    with pytest.raises(ValueError, match="sorted"):
        stats.resample_counts(np.array([1, 0]), 3, np.random.default_rng(0))


def test_one_cell_interval_is_the_percentile_interval_of_resampled_means():
    values = np.array([0.2, 0.5, 0.9, 0.7, 0.4])
    rows = pd.DataFrame({"run": "A", "dataset": "D", "case_id": [f"c{i}" for i in range(5)], "modality": "CT",
                         "class_name": "liver", "dsc": values, "nsd": values})
    ci = stats.bootstrap_ci(labelled(rows), np.random.default_rng(7), n_boot=400)
    counts = stats.resample_counts(np.zeros(5, dtype=int), 400, np.random.default_rng(7))
    means = (counts * values[:, None]).sum(axis=0) / 5
    expected = np.percentile(means, [2.5, 97.5])
    for level in ("class", "region", "dataset", "overall"):
        interval = ci[level].iloc[0]
        assert [interval["dsc_lo"], interval["dsc_hi"]] == pytest.approx(expected)


def test_intervals_cover_point_estimates_and_repeat_with_the_seed():
    rows = labelled(rows_for())
    first = stats.bootstrap_ci(rows, np.random.default_rng(3), n_boot=200)
    second = stats.bootstrap_ci(rows, np.random.default_rng(3), n_boot=200)
    for level in aggregate.LEVELS:
        pd.testing.assert_frame_equal(first[level], second[level])
        point = aggregate.scores(rows, level).merge(first[level], on=["method", "key"])
        assert len(point) == len(aggregate.scores(rows, level))
        for metric in aggregate.METRICS:
            assert (point[f"{metric}_lo"] <= point[metric] + 1e-12).all()
            assert (point[metric] <= point[f"{metric}_hi"] + 1e-12).all()
    constant = first["class"].set_index("key").loc["mri_liver"]  # one case: no spread
    assert constant["dsc_lo"] == constant["dsc_hi"] == pytest.approx(0.4)


def four_patients(shift: float = 0.02) -> tuple[pd.DataFrame, pd.DataFrame]:
    """4 patients x 30 classes; B beats A by ``shift`` on every class of every patient, plus seeded noise."""
    rng = np.random.default_rng(5)
    a = pd.DataFrame([dict(run="A", dataset="D", case_id=f"p{p}", modality="CT", class_name=f"c{c}",
                           dsc=rng.uniform(0.5, 0.9)) for p in range(4) for c in range(30)])
    a["nsd"] = a["dsc"]
    b = a.assign(run="B", dsc=a["dsc"] + shift + rng.normal(0, 0.005, len(a)))
    b["nsd"] = b["dsc"]
    return a.assign(method="A", key=a["class_name"]), b.assign(method="B", key=b["class_name"])


def test_paired_test_is_at_patient_level():
    """Issue 15: 120 (case, class) pairs from 4 patients gave p = 1e-24; four patients who all improve give the
    exact two-sided Wilcoxon p of n = 4, 2 / 2**4 = 0.125, and the interval of the mean case difference."""
    a, b = four_patients()
    rows_p = wilcoxon(a["dsc"], b["dsc"]).pvalue
    assert rows_p < 1e-20  # what the (case, class) pairing claimed
    result = stats.paired_test(a, b, "dsc", np.random.default_rng(11), n_boot=500)
    assert (result.cases, result.classes, result.datasets, result.pairs) == (4, 30, 1, 120)
    assert result.p_value == pytest.approx(0.125)
    assert result.effect_size == pytest.approx(1.0)
    case_diff = (b.groupby("case_id")["dsc"].mean() - a.groupby("case_id")["dsc"].mean()).to_numpy()
    assert result.difference == pytest.approx(case_diff.mean())
    counts = stats.resample_counts(np.zeros(4, dtype=int), 500, np.random.default_rng(11))
    expected = np.percentile((counts * case_diff[:, None]).sum(axis=0) / 4, [2.5, 97.5])
    assert [result.lo, result.hi] == pytest.approx(expected)
    assert result.lo <= result.difference <= result.hi and result.lo > 0


def test_paired_difference_averages_datasets_first_and_resamples_within_them():
    """Two datasets, 1 and 3 cases: differences 0.3 and 0.1, 0.1, 0.1; datasets first gives 0.2, pooling 0.15.
    Resampling within datasets never moves a one-case dataset, and the other is constant: the interval is a point."""
    a, _ = four_patients()
    a = a[a["class_name"] == "c0"].assign(dataset=["D1", "D2", "D2", "D2"])
    b = a.assign(method="B", dsc=a["dsc"] + [0.3, 0.1, 0.1, 0.1])
    result = stats.paired_test(a, b, "dsc", np.random.default_rng(0), n_boot=200)
    assert result.difference == pytest.approx(0.2) and result.datasets == 2
    assert result.lo == pytest.approx(0.2) and result.hi == pytest.approx(0.2)


def test_paired_test_reports_what_was_left_out():
    a = labelled(rows_for("A"))
    b = labelled(rows_for("B")).assign(dsc=lambda f: f["dsc"] + np.linspace(0.01, 0.1, len(f)))
    b = b[b["dataset"] != "D3"]
    result = stats.paired_test(a, b, "dsc")
    assert (result.only_a, result.only_b, result.dropped_nan) == (1, 0, 1)
    assert result.cases == 6 and result.mean_b > result.mean_a  # D1: c1, c2; D2: c1..c4


def test_paired_test_of_identical_runs_is_not_significant():
    a = labelled(rows_for("A"))
    result = stats.paired_test(a, a.assign(method="B"), "nsd")
    assert result.p_value == 1.0 and result.difference == 0.0


def test_paired_test_needs_shared_pairs():
    a = labelled(rows_for("A"))
    with pytest.raises(ValueError, match="share no"):
        stats.paired_test(a, a.assign(dataset=a["dataset"] + "-other"), "dsc")


def test_holm_matches_hand_computation():
    """p = (0.01, 0.04, 0.03, 0.005), m = 4: sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> 0.06
    (monotone)."""
    adjusted = stats.holm(np.array([0.01, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm(np.array([0.5, 0.9])), [1.0, 1.0])


def test_per_class_tests_use_cases_as_pairs_with_holm():
    a, b = four_patients()
    table = stats.per_class_tests(a, b, "dsc")
    assert len(table) == 30 and (table["cases"] == 4).all()
    assert table["p_value"].eq(0.125).all() and table["p_holm"].eq(1.0).all()


def test_a_class_scored_in_one_case_stays_in_every_replicate():
    """Liver scores 0.90..0.94 in five cases; the tumour has a score only in c0 (0.1, NaN elsewhere). Every
    replicate must average both classes, so the overall interval lies within [(0.90 + 0.1) / 2, (0.94 + 0.1) / 2]."""
    liver = pd.DataFrame({"run": "A", "dataset": "D", "case_id": [f"c{i}" for i in range(5)], "modality": "CT",
                          "class_name": "liver", "dsc": np.linspace(0.90, 0.94, 5)})
    tumour = liver.assign(class_name="liver tumor", dsc=[0.1, np.nan, np.nan, np.nan, np.nan])
    rows = pd.concat([liver, tumour], ignore_index=True)
    rows["nsd"] = rows["dsc"]
    ci = stats.bootstrap_ci(labelled(rows), np.random.default_rng(0), n_boot=300)["overall"].iloc[0]
    assert 0.50 - 1e-12 <= ci["dsc_lo"] <= ci["dsc_hi"] <= 0.52 + 1e-12
