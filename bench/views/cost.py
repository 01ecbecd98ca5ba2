"""Cost beside accuracy: one row per run with DSC/NSD, seconds per case and per call, peak memory and NoC.

Read from the stored rows (`bench.engine.meter` measured them) and run.json, so nothing runs again: a run stored with
`bench clicks --time-limit` has its protocol's time limit re-applied from the stored seconds. DSC/NSD are the
mean over (case, class) rows, at the last click for click runs, in percent. Seconds are medians: per case the sum
of its model calls' seconds, per call each call's own (click runs: one call per click; the rows of a perfect
target after it stopped made no call); the warm-up call of each process (`warmup_seconds`) is left out of both
and shown apart, with the model's loading time (unless it was the run's only call: then it is used, and said).
A `bench evaluate` run made no model call (its rows' seconds are the scoring's, without `cpu_seconds`): '-', said.
Memory is the largest per-case peak (RSS rise, CUDA allocated).
A model that reports its phases gets their median seconds per call (pre, model, post); the columns are left out
when no run has them. Runs measured under different settings (run.json's `cost`: device, threads, executor,
workers) get a `settings` letter each, runs of one model under one letter whose own settings differ (windows per
pass, tile step) a number after it, and a note naming what differs, as runs of different grids are noted and not
marked against each other.
`dice_per_second` is the click runs' DSC against cumulative model seconds per click.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.engine import store
from bench.engine.meter import PHASE_COLUMNS, SETTINGS
from bench.views.runs import time_limited
from bench.views.tables import render
from protocols.cost import noc_per_target, noc_summary, target_label
from protocols.errors import BenchError

CASE = ["dataset", "case_id"]
PHASE_LABELS = dict(zip(PHASE_COLUMNS, ("pre s/call", "model s/call", "post s/call")))
SECONDS_COLUMNS = ("s/case", "s/call", "CPU s/call", *PHASE_LABELS.values(), "warm-up s", "load s")


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    return rows[name] if name in rows.columns else pd.Series(np.nan, index=rows.index)


def _clicks(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["click"].notna()] if "click" in rows.columns else rows.iloc[:0]


def timed_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows whose seconds count in the cost figures: the model calls' (the meter's `cpu_seconds` with them; a
    `bench evaluate` row's seconds are its case's scoring), all but the warm-up calls' (all, when that is every one)."""
    rows = rows[_column(rows, "cpu_seconds").notna()]
    warm = _column(rows, "warmup_seconds").notna()
    timed = rows[~warm] if not warm.all() else rows
    return timed.assign(**{name: _column(timed, name) for name in ("seconds", "cpu_seconds", *PHASE_COLUMNS)})


def case_seconds(rows: pd.DataFrame) -> pd.Series:
    """Per case, the summed wall seconds of its model calls (warm-up left out)."""
    return timed_rows(rows).groupby(CASE)["seconds"].sum(min_count=1).dropna()


def call_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model call with its `seconds`, `cpu_seconds` and phase seconds: the click rows that made a
    call, or per case of a one-shot run its one call (the rows' shares summed)."""
    timed = timed_rows(rows)
    if _clicks(rows).empty:
        columns = ["seconds", "cpu_seconds", *PHASE_COLUMNS]
        return timed.groupby(CASE)[columns].sum(min_count=1).dropna(subset=["seconds"])
    return timed[timed["seconds"] > 0]


def click_latency(rows: pd.DataFrame) -> pd.DataFrame:
    """Click runs: per click index the median, first and third quartile of the calls' wall seconds."""
    calls = call_rows(rows)
    if _clicks(rows).empty or calls.empty:
        return pd.DataFrame(columns=["click", "median", "q1", "q3"])
    grouped = calls.groupby("click")["seconds"]
    return pd.DataFrame({"median": grouped.median(), "q1": grouped.quantile(0.25),
                         "q3": grouped.quantile(0.75)}).reset_index()


def dice_per_second(rows: pd.DataFrame) -> pd.DataFrame:
    """Click runs: per click index the median over targets (case, class) of the DSC (percent) and of the model
    seconds the target took up to and including that click; a target one of whose calls was the process's
    warm-up is left out (unless every target is). Columns click, seconds, DSC, targets; empty for other runs."""
    clicks = _clicks(rows)
    if clicks.empty:
        return pd.DataFrame(columns=["click", "seconds", "DSC", "targets"])
    target = [*CASE, "class_name"]
    warm = clicks.assign(warm=_column(clicks, "warmup_seconds").notna()).groupby(target)["warm"].transform("any")
    kept = (clicks[~warm] if not warm.all() else clicks).sort_values("click")
    kept = kept.assign(seconds=_column(kept, "seconds")).dropna(subset=["seconds"])  # runs stored without times
    grouped = kept.assign(cumulative=kept.groupby(target)["seconds"].cumsum()).groupby("click")
    return pd.DataFrame({"seconds": grouped["cumulative"].median(), "DSC": 100 * grouped["dsc"].median(),
                         "targets": grouped.size()}).reset_index()


def scored_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows DSC/NSD are read from: all, or the last click of each (case, class) for click runs."""
    clicks = _clicks(rows)
    return rows if clicks.empty else clicks[clicks["click"] == clicks.groupby(["case_id", "class_name"])[
        "click"].transform("max")]


def run_cost(rows: pd.DataFrame, config: dict, targets: Sequence[float]) -> dict:
    """The cost row of one run's rows (with its run.json)."""
    clicks, scored = _clicks(rows), scored_rows(rows)
    warm = _column(rows, "warmup_seconds").notna()
    calls = call_rows(rows)
    cost = config.get("cost") or {}
    record = {"run": str(rows["run"].iloc[0]), "model": str(rows["model"].iloc[0]),
              "device": cost.get("device") or config.get("device") or "-",
              "cases": int(rows.groupby(CASE).ngroups), "DSC": 100 * rows.loc[scored.index, "dsc"].mean(),
              "NSD": 100 * rows.loc[scored.index, "nsd"].mean(),
              "s/case": case_seconds(rows).median(),
              "s/call": calls["seconds"].median(), "CPU s/call": calls["cpu_seconds"].median(),
              **{label: calls[column].median() for column, label in PHASE_LABELS.items()},
              "peak RSS MB": _column(rows, "peak_rss_mb").max(), "peak GPU MB": _column(rows, "peak_gpu_mb").max(),
              "warm-up s": _column(rows, "warmup_seconds").max(), "load s": cost.get("load_seconds", np.nan),
              "warm-up only": bool(warm.all()), "no calls": calls.empty}
    if not clicks.empty:
        summary = noc_summary(noc_per_target(clicks, targets), targets).iloc[0]
        for target in targets:
            label = target_label(target)
            record[f"NoC@{label}"], record[f"NoF@{label}"] = summary[f"NoC@{label}"], int(summary[f"NoF@{label}"])
    return record


def read_run(path: Path) -> tuple[pd.DataFrame, dict, list[str]]:
    """A run's rows (its stored time limit re-applied), its run.json, and a note when the limit was applied."""
    rows = store.read_metrics([path])
    run_dir = path if path.is_dir() else path.parent
    config = store.read_config(run_dir) if (run_dir / store.CONFIG_FILE).is_file() else {}
    rows, note = time_limited(rows, config)
    return rows, config, [note] if note else []


HARNESS_BATCH = ("executor", "workers")  # the harness's batch settings; the rest of `batch` is the model's own


def settings_of(config: dict) -> tuple[dict, dict] | None:
    """The settings a run's costs were measured under (run.json's `cost`, `SETTINGS`; batch entries as
    `batch.NAME`): (the harness's: device, threads, memory method, executor, workers; the model's own: targets per
    call, its `batch_settings`), or None for a run that recorded none."""
    cost = config.get("cost")
    if not cost:
        return None
    flat = {}
    for key in SETTINGS:
        value = cost.get(key)
        flat.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value})
    own = {k: v for k, v in flat.items() if k.startswith("batch.") and k.removeprefix("batch.") not in HARNESS_BATCH}
    return {k: v for k, v in flat.items() if k not in own}, own


def _distinct(entries: Sequence[dict]) -> tuple[list[int], list[dict]]:
    """Each entry's index among the distinct entries (in order of first appearance), and those entries."""
    distinct: list[dict] = []
    for entry in entries:
        if entry not in distinct:
            distinct.append(entry)
    return [distinct.index(entry) for entry in entries], distinct


def _differences(labelled: dict[str, dict]) -> str:
    keys = dict.fromkeys(k for entry in labelled.values() for k in entry)
    return ", ".join(f"{k} ({'; '.join(f'{label}: {entry.get(k)}' for label, entry in labelled.items())})"
                     for k in keys if len({repr(entry.get(k)) for entry in labelled.values()}) > 1)


def settings_marks(runs: Sequence[str], models: Sequence[str], settings: Sequence[tuple[dict, dict] | None]
                   ) -> tuple[list[str], list[str]]:
    """A mark per run and notes naming what differs, or no marks when nothing does: a letter per distinct harness
    settings (device, threads, executor, workers), and a number after it where runs of one model under one letter
    differ in the model's own settings (windows per pass, tile step); '-' for a run without settings. Different
    models' own settings are not compared."""
    measured = [i for i, entry in enumerate(settings) if entry is not None]
    index, harness = _distinct([settings[i][0] for i in measured])
    marks = {i: chr(ord("A") + g) for i, g in zip(measured, index)}
    notes = []
    if len(harness) > 1:
        letters = [chr(ord("A") + g) for g in range(len(harness))]
        members = "; ".join(f"{letter}: {', '.join(runs[i] for i in measured if marks[i] == letter)}"
                            for letter in letters)
        notes.append(f"cost measured under different settings ({members}): "
                     f"{_differences(dict(zip(letters, harness)))}; seconds and memory compare like for like only "
                     "within one settings letter")
    for letter, model in dict.fromkeys((marks[i], models[i]) for i in measured):
        same = [i for i in measured if marks[i] == letter and models[i] == model]
        own_index, own = _distinct([settings[i][1] for i in same])
        if len(own) < 2:
            continue
        for i, g in zip(same, own_index):
            marks[i] = f"{letter}{g + 1}"
        notes.append(f"{model} under settings {letter}: its own settings differ between runs "
                     f"({'; '.join(f'{marks[i]}: {runs[i]}' for i in same)}): "
                     f"{_differences({f'{letter}{g + 1}': entry for g, entry in enumerate(own)})}")
    if not notes:
        return [], []
    return [marks.get(i, "-") for i in range(len(settings))], notes


def cost_table(run_dirs: Sequence[Path], targets: Sequence[float] = (0.85, 0.90)) -> tuple[pd.DataFrame, list[str]]:
    """(one cost row per run, indexed by run and model; notes)."""
    records, notes, settings = [], [], []
    for path in map(Path, run_dirs):
        rows, config, read_notes = read_run(path)
        records.append(run_cost(rows, config, targets))
        settings.append(settings_of(config))
        notes += read_notes
    letters, settings_notes = settings_marks([record["run"] for record in records],
                                             [record["model"] for record in records], settings)
    table = pd.DataFrame(records).set_index(["run", "model"])
    if letters:
        table.insert(table.columns.get_loc("device") + 1, "settings", letters)
    notes += settings_notes
    phases = [label for label in PHASE_LABELS.values() if table[label].isna().all()]
    table = table.drop(columns=phases) if len(phases) == len(PHASE_LABELS) else table
    for run in table.index[table.pop("no calls")].get_level_values("run"):
        notes.append(f"{run}: no model calls measured (predictions scored by `bench evaluate`, whose seconds are "
                     "the scoring's): its seconds and memory are -")
    for run in table.index[table.pop("warm-up only")].get_level_values("run"):
        notes.append(f"{run}: its only model call was the warm-up (one case, one call): its seconds include it")
    notes.append("DSC/NSD: mean over (case, class), at the last click for click runs, percent; s/case, s/call: "
                 "medians of model-call wall seconds (CPU s: the process's CPU time, every thread), the first call "
                 "of each process left out (warm-up s) and the model's loading apart (load s); peak RSS MB: the "
                 "largest per-case rise of the resident set; peak GPU MB: torch.cuda.max_memory_allocated")
    if "pre s/call" in table.columns:
        notes.append("pre/model/post s/call: medians per call of the seconds the model reports for its own "
                     "preprocessing, network passes and postprocessing (- for a model that reports none)")
    if any(column.startswith("NoC@") for column in table.columns):
        notes.append("NoC@T: mean clicks until DSC >= T over (case, class), a target never reaching T counted at the "
                     "run's click cap; NoF@T: how many never reached it")
    return table, notes


def cost_text(run_dirs: Sequence[Path], targets: Sequence[float] = (0.85, 0.90), fmt: str = "md"
              ) -> tuple[str, list[str]]:
    """The cost table rendered (seconds with 3 significant digits in md/latex; plain numbers in CSV), and notes."""
    table, notes = cost_table(run_dirs, targets)
    if fmt != "csv":
        for column in [c for c in SECONDS_COLUMNS if c in table.columns]:
            table[column] = table[column].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}")
        for column in [c for c in table.columns if c.startswith("NoF@") or c == "cases"]:
            table[column] = table[column].map(lambda v: "-" if pd.isna(v) else str(int(v)))
    unmarked = pd.DataFrame(False, index=table.index, columns=table.columns)
    text = render(table, fmt, best=unmarked)
    curves = pd.concat([dice_per_second(rows).assign(run=str(rows["run"].iloc[0]))
                        for rows in (read_run(path)[0] for path in map(Path, run_dirs))], ignore_index=True)
    if curves.empty:
        return text, notes
    if fmt == "csv":
        return text, [*notes, "the click runs' DSC against cumulative seconds is printed in md and latex only"]
    curves = curves.set_index(["run", "click"]).astype({"targets": int})
    curves["seconds"] = curves["seconds"].map(lambda v: f"{v:.3g}")
    curves["targets"] = curves["targets"].map(str)
    heading = ("% " if fmt == "latex" else "") + "DSC against cumulative model seconds per click (click runs; " \
              "medians over (case, class), the warm-up's target left out)"
    return (f"{text}\n{heading}\n\n" + render(curves, fmt, best=pd.DataFrame(False, index=curves.index,
                                                                           columns=curves.columns))), notes


def parse_targets(text: str | None) -> tuple[float, ...]:
    """`--noc-targets 85,90` (percent, or fractions of 1) as fractions; ValueError on anything else."""
    if not text:
        return (0.85, 0.90)
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BenchError(f"--noc-targets {text!r}: expected numbers such as 85,90") from None
    values = [v / 100 if v > 1 else v for v in values]
    if not values or any(not 0 < v <= 1 for v in values):
        raise BenchError(f"--noc-targets {text!r}: targets must lie in (0, 100] percent")
    return tuple(values)
