"""A run's per-case rows in formats other tools read: CSV, JSON records, and nnU-Net's ``summary.json``.

The nnU-Net summary follows ``nnunetv2.evaluation.evaluate_predictions.compute_metrics_on_folder``: per case the
metrics of every label (or region, keyed ``"(2, 3)"``) with Dice, IoU, TP, FP, FN, TN, n_pred, n_ref; ``mean``
per label as the NaN-ignoring mean over cases; ``foreground_mean`` the mean of those over labels. As in nnU-Net a
label absent from both reference and prediction has Dice and IoU NaN (whatever empty policy the run used). TP, FP
and FN follow from the stored DSC and voxel counts (TP = DSC (n_pred + n_ref) / 2); TN needs the volume size,
which a run does not store, so it is NaN.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from protocols.errors import BenchError

FORMATS = ("csv", "json", "nnunet-summary")
_NNUNET_METRICS = ("Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref")


def label_key(value) -> str:
    """nnU-Net's key of a label (``"1"``) or region (``"(2, 3)"``), as its ``label_or_region_to_key``."""
    if isinstance(value, (list, tuple)):
        return str(tuple(int(v) for v in value)) if len(value) > 1 else str(int(value[0]))
    return str(int(value))


def case_metrics(row: pd.Series) -> dict[str, float]:
    """One (case, class) row as nnU-Net's metric dict."""
    n_pred, n_ref = int(row["pred_voxels"]), int(row["ref_voxels"])
    tp = 0 if n_pred == 0 or n_ref == 0 else round(float(row["dsc"]) * (n_pred + n_ref) / 2)
    fp, fn = n_pred - tp, n_ref - tp
    empty = tp + fp + fn == 0
    return {"Dice": math.nan if empty else 2 * tp / (2 * tp + fp + fn), "IoU": math.nan if empty else tp / (tp + fp + fn),
            "FP": fp, "TP": tp, "FN": fn, "TN": math.nan, "n_pred": n_pred, "n_ref": n_ref}


def nnunet_summary(rows: pd.DataFrame, classes: dict, files: dict[str, tuple[str, str]] | None = None) -> dict:
    """The ``summary.json`` dict of one run's rows; ``classes`` maps class names to label values (run.json),
    ``files`` case ids to (reference file, prediction file)."""
    missing = [c for c in ("pred_voxels", "ref_voxels", "dsc") if c not in rows.columns]
    if missing:
        raise BenchError(f"rows lack {', '.join(missing)}; nnU-Net's summary needs voxel counts")
    unknown = sorted(set(rows["class_name"]) - set(classes))
    if unknown:
        raise BenchError(f"no label value for class(es) {', '.join(unknown)} in run.json 'classes'")
    keys = {name: label_key(value) for name, value in classes.items() if name in set(rows["class_name"])}
    files = files or {}
    per_case = []
    for case_id, group in rows.groupby("case_id", sort=True):
        ref, pred = files.get(case_id, (case_id, case_id))
        metrics = {keys[r["class_name"]]: case_metrics(r) for _, r in group.iterrows()}
        per_case.append({"metrics": metrics, "prediction_file": pred, "reference_file": ref})
    means = {}
    for key in keys.values():
        values = [case["metrics"][key] for case in per_case if key in case["metrics"]]
        means[key] = {m: _nanmean([v[m] for v in values]) for m in _NNUNET_METRICS}
    foreground = {m: float(np.mean([means[k][m] for k in means if k != "0"])) for m in _NNUNET_METRICS}
    return {"foreground_mean": foreground, "mean": means, "metric_per_case": per_case}


def _nanmean(values: list[float]) -> float:
    array = np.asarray(values, dtype=float)
    return float(np.nanmean(array)) if np.isfinite(array).any() else math.nan


def at_click(rows: pd.DataFrame, click: int | None = None) -> pd.DataFrame:
    """One row per (case, class): click rows reduced to the final click (the masks a run writes), or to click
    ``click`` (a target whose loop stopped earlier keeps its last click); other rows as they are."""
    if "click" not in rows.columns or rows["click"].isna().all():
        if click is not None:
            raise BenchError("--click: this run has no click rows")
        return rows
    if click is not None:
        if click < 1 or click > rows["click"].max():
            raise BenchError(f"--click {click}: the run has clicks 1 to {int(rows['click'].max())}")
        rows = rows[rows["click"] <= click]
    return rows.sort_values("click", kind="stable").drop_duplicates(["case_id", "class_name"], keep="last")


def export_text(rows: pd.DataFrame, fmt: str, config: dict | None = None,
                files: dict[str, tuple[str, str]] | None = None, click: int | None = None) -> str:
    """The rows as ``csv`` (one line per case and class), ``json`` (records) or ``nnunet-summary`` (of the final
    click of a click run, or of ``click``)."""
    if fmt == "csv":
        return rows.to_csv(index=False)
    if fmt == "json":
        return json.dumps(json.loads(rows.to_json(orient="records")), indent=1) + "\n"
    if fmt == "nnunet-summary":
        classes = (config or {}).get("classes")
        classes = classes if isinstance(classes, dict) else (config or {}).get("label_values")
        if not classes:
            raise BenchError("nnunet-summary needs the label value of each class, which this run's run.json does not "
                             "record (`bench evaluate` records 'classes', `bench run`/`clicks` 'label_values'); "
                             "export --format csv instead, or run it again")
        return json.dumps(nnunet_summary(at_click(rows, click), classes, files), indent=4, sort_keys=True) + "\n"
    raise BenchError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def case_files(config: dict) -> dict[str, tuple[str, str]]:
    """Case id -> (reference file, prediction file) from run.json's ref_dir/pred_dir, where they exist."""
    from bench.data.io import InputError
    from bench.data.matching import list_cases, match_predictions

    try:
        pairs, _ = match_predictions(Path(config["pred_dir"]), list_cases(Path(config["ref_dir"])))
    except (KeyError, InputError, OSError):
        return {}
    return {pair.case_id: (str(pair.ref), str(pair.pred)) for pair in pairs}
