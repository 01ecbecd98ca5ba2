"""Runs as the result views read them: rows labelled with the catalog's terms, the empty-mask policy re-applied from
the stored flags, each run's grid and policy, and the entries (macro averages) that tables, leaderboard and report
share. No command and no report code lives here, so both can import it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.engine import store
from bench.data.catalog import CatalogError, load_catalog, term_key
from bench.views.tables import published_entries, run_entries
from protocols import aggregate, stats
from protocols.cost import apply_time_limit
from protocols.metrics import EMPTY_POLICIES
from bench.views.published import load_published
from protocols.errors import BenchError

DEFAULT_GRID = "native"
DEFAULT_POLICY = "sat"
UNTRAINED = "(untrained)"  # the mark of a run made with random weights, in every table, leaderboard and report


@dataclass(frozen=True)
class Runs:
    """Rows of one or more runs: standard rows labelled with the catalog's terms, interactive click rows apart.

    ``protocol`` gives each method its ``grid`` and empty ``policy``; ``configs`` each run folder's run.json.
    """

    rows: pd.DataFrame
    clicks: pd.DataFrame
    notes: list[str]
    protocol: pd.DataFrame = field(default_factory=pd.DataFrame)
    configs: dict[str, dict] = field(default_factory=dict)


def time_limited(rows: pd.DataFrame, config: dict) -> tuple[pd.DataFrame, str | None]:
    """A run made with `--time-limit` (run.json's flag): its rows with the protocol's time limit re-applied from
    the stored seconds (`protocols.cost.apply_time_limit`), and a note saying so; else the rows as they are."""
    limit = ((config.get("protocol") or {}).get("scoring") or {}).get("time_limit_s_per_class")
    if not config.get("time_limit") or limit is None:
        return rows, None
    rows = apply_time_limit(rows, float(limit))
    over = rows.loc[rows["over_time_limit"], "case_id"].nunique()
    return rows, (f"{config.get('run')}: time limit {limit:g} s per class re-applied from the stored seconds "
                  f"({over} case(s) over it scored 0)")


def _read_run(path: Path, empty_policy: str | None) -> tuple[pd.DataFrame, str | None, dict]:
    """One run's rows with ``grid`` (``native`` where an older run has none) and ``policy`` filled in, its time
    limit re-applied (`time_limited`) after any ``empty_policy``; the time limit's note; its run.json."""
    rows = store.read_metrics([path])
    run_dir = path if path.is_dir() else path.parent
    config = store.read_config(run_dir) if (run_dir / store.CONFIG_FILE).is_file() else {}
    if "grid" not in rows.columns:  # rows older than the grid column: bench evaluate's, on the grid it names
        space = (config.get("protocol") or {}).get("space") or {}
        rows["grid"] = "satds" if space.get("grid") == "satds" else DEFAULT_GRID
    rows["grid"] = rows["grid"].fillna(DEFAULT_GRID).astype(str)
    rows["untrained"] = bool(config.get("untrained", False))
    if empty_policy is None:
        rows["policy"] = stored_policy(config)
    elif not {"ref_empty", "pred_empty"} <= set(rows.columns) or rows[["ref_empty", "pred_empty"]].isna().any().any():
        raise BenchError(f"{path}: rows without ref_empty/pred_empty flags; --empty-policy cannot be re-applied")
    else:
        rows = aggregate.apply_empty_policy(rows, empty_policy).assign(policy=empty_policy)
    return *time_limited(rows, config), config


def stored_policy(config: dict) -> str:
    """The empty-mask policy a run was scored under (its protocol's); ``sat`` for a run folder without run.json."""
    policy = ((config.get("protocol") or {}).get("scoring") or {}).get("empty")
    return policy if policy in EMPTY_POLICIES else DEFAULT_POLICY


def load_runs(run_dirs: Sequence[Path], empty_policy: str | None = None) -> Runs:
    """Read the runs' metrics; click rows (a ``click`` value) are summarised per click, not macro-averaged.

    ``empty_policy`` (``sat`` or ``nan``) re-applies that policy to every run from its stored flags; None keeps
    each run's scores as stored (its run.json's policy, ``sat`` when it has none).
    """
    parts, configs, limits = [], {}, []
    for path in map(Path, run_dirs):
        rows, limit, config = _read_run(path, empty_policy)
        parts.append(rows)
        configs[str(path)] = config
        limits += [limit] if limit else []
    rows = pd.concat(parts, ignore_index=True)
    grids = rows.groupby("run", sort=False)["grid"].nunique()
    rows["method"] = rows["run"].where(~rows["run"].map(grids > 1), rows["run"] + " (" + rows["grid"] + ")")
    for column in ("method", "model"):  # click tables name the model, the others the method
        if column in rows:
            rows[column] = rows[column].where(~rows["untrained"], rows[column] + " " + UNTRAINED)
    is_click = rows["click"].notna() if "click" in rows.columns else pd.Series(False, index=rows.index)
    standard = rows[~is_click]
    labelled = aggregate.attach_terms(standard, load_catalog().terms, term_key)
    unassigned = sorted(labelled.loc[labelled["group"] == aggregate.UNASSIGNED, "key"].unique())
    notes = [f"classes not in the catalog (region 'unassigned'): {', '.join(unassigned)}"] if unassigned else []
    notes += limits
    protocol = rows.drop_duplicates("method").set_index("method")[["grid", "policy", "untrained"]]
    return Runs(rows=labelled, clicks=rows[is_click], notes=notes, protocol=protocol, configs=configs)


def satds_dataset_name(name: str) -> str:
    """The SAT-DS name of a dataset named as a paper prints it; unknown names stay as they are."""
    try:
        return load_catalog().dataset(name).name
    except CatalogError:
        return name


def full_coverage(rows: pd.DataFrame) -> set[tuple[str, str, str]]:
    """(method, level, key) of run entries that rest on SAT-DS's complete test split, as a paper's numbers do.

    A dataset is complete when the run scored every case of its test split and every class of the catalog; a
    class when every catalog dataset annotating it is in the run with its whole test split. Region and overall
    entries never are (the papers average over their full class sets).
    """
    catalog = load_catalog()
    annotating: dict[str, set[str]] = {}
    for name, info in catalog.datasets.items():
        for key in info.term_keys().values() if info.n_test_scans else ():
            annotating.setdefault(key, set()).add(name)
    complete = set()
    scored = rows[rows[list(aggregate.METRICS)].notna().any(axis=1)]
    for method, own in scored.groupby("method", sort=False):
        full_datasets = set()
        for name, part in own.groupby("dataset", sort=False):
            try:
                info = catalog.dataset(str(name))
            except CatalogError:
                continue
            whole = part["case_id"].nunique() == info.n_test_scans > 0  # the test split, not train cases too
            if whole and set(info.term_keys().values()) <= set(part["key"]):
                full_datasets.add(info.name)
                complete.add((method, "dataset", str(name)))
        for key in own["key"].unique():
            needed = annotating.get(key)
            if needed and needed <= full_datasets:
                complete.add((method, "class", key))
    return complete


def collect_entries(
    runs: Runs, published: Sequence[str] = (), intervals: np.random.Generator | None = None, n_boot: int = 1000,
    scorer: Callable[[pd.DataFrame], dict[str, pd.DataFrame]] = aggregate.all_scores,
    metrics: Sequence[str] = aggregate.METRICS,
) -> tuple[pd.DataFrame, list[str]]:
    """(entries of runs and published tables in run order, notes); bootstrap intervals if a generator is given.

    Run entries carry their grid, empty policy and whether they cover a complete test split (``full``).
    `scorer` computes every level's DSC/NSD aggregates (pandas here; `bench.views.dask_aggregate.dask_scores` on a
    cluster); other `metrics` (row columns such as ``iou`` or ``hd95_mm``) are averaged here with pandas.
    """
    if runs.rows.empty:
        raise BenchError("the runs hold no standard (non-click) rows to macro-average")
    scores = scorer(runs.rows) if tuple(metrics) == aggregate.METRICS else aggregate.all_scores(runs.rows, metrics)
    ci = (stats.bootstrap_ci(runs.rows, intervals, n_boot=n_boot, metrics=tuple(metrics))
          if intervals is not None else None)
    entries = pd.concat([run_entries(scores[level], ci[level] if ci else None) for level in aggregate.LEVELS])
    entries["grid"] = entries["method"].map(runs.protocol["grid"])
    entries["policy"] = entries["method"].map(runs.protocol["policy"])
    entries["untrained"] = entries["method"].map(runs.protocol["untrained"]).eq(True)
    complete = full_coverage(runs.rows)
    entries["full"] = [(m, lv, k) in complete for m, lv, k in entries[["method", "level", "key"]].itertuples(index=False)]
    parts, notes = [entries], list(runs.notes)
    for name in published:
        table, skipped = published_entries(load_published(name), term_key, satds_dataset_name)
        parts.append(table)
        notes += skipped
    entries = pd.concat(parts, ignore_index=True)
    position = {method: i for i, method in enumerate(dict.fromkeys([*runs.rows["method"], *entries["method"]]))}
    return entries.sort_values("method", key=lambda m: m.map(position), kind="stable"), notes


def empty_lines(runs: Runs) -> list[str]:
    """Per run: how many (case, class) rows are empty in both reference and prediction, and how they count."""
    counts = aggregate.both_empty(runs.rows)
    lines = []
    for method, count in counts.items():
        if pd.isna(count):
            lines.append(f"{method}: no ref_empty/pred_empty flags stored, empty (case, class) rows cannot be counted")
            continue
        lines.append(f"{method}: {both_empty_line(int(count), runs.protocol.loc[method, 'policy'])}")
    return lines


def both_empty_line(count: int, policy: str, total: int | None = None) -> str:
    """How many (case, class) rows are empty in both reference and prediction, and how the policy counts them."""
    effect = ("each scored 1 (policy sat)" if policy == "sat"
              else "left out of means and counts (policy nan)")
    return f"{count}{f' of {total}' if total is not None else ''} (case, class) rows empty in both reference and " \
           f"prediction, {effect}"
