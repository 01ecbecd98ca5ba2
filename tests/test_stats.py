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


def test_paired_test_matches_scipy_and_reports_what_was_left_out():
    a = labelled(rows_for("A"))
    b = labelled(rows_for("B")).assign(dsc=lambda f: f["dsc"] + np.linspace(0.01, 0.1, len(f)))
    b = b[b["dataset"] != "D3"]
    result = stats.paired_test(a, b, "dsc")
    matched = a[a["dataset"] != "D3"].dropna(subset=["dsc"])
    expected = wilcoxon(matched["dsc"].to_numpy(), b.dropna(subset=["dsc"])["dsc"].to_numpy())
    assert result.p_value == pytest.approx(expected.pvalue)
    assert (result.pairs, result.only_a, result.only_b, result.dropped_nan) == (len(matched), 1, 0, 1)
    assert result.mean_b > result.mean_a


def test_paired_test_of_identical_runs_is_not_significant():
    a = labelled(rows_for("A"))
    result = stats.paired_test(a, a.assign(method="B"), "nsd")
    assert result.p_value == 1.0


def test_paired_test_needs_shared_pairs():
    a = labelled(rows_for("A"))
    with pytest.raises(ValueError, match="share no"):
        stats.paired_test(a, a.assign(dataset=a["dataset"] + "-other"), "dsc")


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
