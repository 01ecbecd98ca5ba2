"""Effort and time budgets of click runs: clicks to reach a target Dice (NoC) and a per-class time limit.

NoC@t (interactive-segmentation papers, e.g. RITM's NoC@85/NoC@90): the number of clicks after which a target's
DSC first reaches t. A target that never reaches it within the run's N clicks counts N (the cap) and is a
failure (NoF@t); both are reported, so a capped mean is never read as a reached one. A box-only first
interaction (click 0, SegFM) that already reaches t counts 0 clicks. The time limit is SegFM CVPR'25's: a case
whose model time exceeds the limit times its number of classes scores 0 on every class. Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from protocols.errors import BenchError

TARGET_KEYS = ["run", "model", "dataset", "case_id", "class_name", "protocol", "prompt_policy", "first_click", "seed"]
CASE_KEYS = ["run", "dataset", "case_id"]


def target_label(target: float) -> str:
    """`85` for 0.85: the column suffix of NoC@85 and NoF@85."""
    return f"{100 * target:g}"


def clicks_to_reach(dsc_by_click: Sequence[float], clicks: Sequence[int], target: float) -> tuple[int, bool]:
    """(the first click whose DSC is >= `target`, True), or (the last click, False) when none reaches it.
    `clicks` are the click numbers of the scores, ascending (0 for a box-only first interaction)."""
    values = np.asarray(dsc_by_click, dtype=float)
    if values.size == 0 or values.size != len(clicks):
        raise BenchError("one DSC per click is needed, and at least one click")
    reached = np.flatnonzero(values >= target)
    if reached.size:
        return int(clicks[reached[0]]), True
    return int(clicks[-1]), False


def noc_per_target(rows: pd.DataFrame, targets: Sequence[float] = (0.85, 0.90)) -> pd.DataFrame:
    """One row per (case, class) curve of click rows: `noc@T` (capped at the curve's last click) and `reached@T`
    for every target T (fractions of 1)."""
    keys = [key for key in TARGET_KEYS if key in rows.columns]
    records = []
    for key, curve in rows.groupby(keys, dropna=False, sort=True):
        curve = curve.sort_values("click")
        record = dict(zip(keys, key))
        record["n_clicks"] = int(curve["click"].max())
        for target in targets:
            noc, reached = clicks_to_reach(curve["dsc"], curve["click"].astype(int).tolist(), target)
            record[f"noc@{target_label(target)}"], record[f"reached@{target_label(target)}"] = noc, reached
        records.append(record)
    return pd.DataFrame(records)


def noc_summary(per_target: pd.DataFrame, targets: Sequence[float] = (0.85, 0.90),
                by: Sequence[str] = ("run", "model")) -> pd.DataFrame:
    """Per `by` group: the mean NoC@T over targets (capped values included) and NoF@T, the count of targets that
    never reached T; `targets` counts the (case, class) curves."""
    grouped = per_target.groupby(list(by), dropna=False, sort=True)
    table = pd.DataFrame({"targets": grouped.size()})
    for target in targets:
        label = target_label(target)
        table[f"NoC@{label}"] = grouped[f"noc@{label}"].mean()
        table[f"NoF@{label}"] = grouped[f"reached@{label}"].apply(lambda reached: int((~reached.astype(bool)).sum()))
    return table.reset_index()


def over_time_limit(rows: pd.DataFrame, limit_s_per_class: float) -> pd.Series:
    """Per row: whether its case's summed model seconds exceed `limit_s_per_class` times its number of classes."""
    keys = [key for key in CASE_KEYS if key in rows.columns]
    by_case = rows.groupby(keys, dropna=False)
    total = by_case["seconds"].transform("sum")
    classes = by_case["class_name"].transform("nunique")
    return total > limit_s_per_class * classes


def apply_time_limit(rows: pd.DataFrame, limit_s_per_class: float) -> pd.DataFrame:
    """The rows with DSC and NSD set to 0 on every row of a case over the time limit (`over_time_limit` column
    added), from the stored seconds: the limit is re-applied without running anything again."""
    over = over_time_limit(rows, limit_s_per_class)
    out = rows.assign(over_time_limit=over)
    out.loc[over, ["dsc", "nsd"]] = 0.0
    return out
