"""The leaderboard: runs ranked among themselves on the keys they all share, published entries beside them.

Ranking on keys some methods lack rewards coverage gaps (a run that skips its hard classes climbs), so runs are
ranked by their mean on the keys every ranked run covers, and the count of those keys is shown. Given the runs'
cells, those keys are (dataset, class) pairs: a TotalSegmentator run and an AMOS run share class names but no
data, so a run sharing no pair with the runs ranked before it is listed apart, unranked, with the reason. Runs are
ranked only against runs of the same grid and empty-mask policy; a run made with random weights ("untrained") is
never ranked. Published entries are listed after the runs, unranked, with their mean on the same common keys (as
many as they cover). Deltas against a baseline need the same grid and policy, and are on the keys (for two runs:
the (dataset, class) pairs) the method and the baseline both cover, with the count. With the runs' cost
(`with_cost`: `bench.views.cost`'s table) the runs get its median seconds per case and per call, peak memory and
NoC columns beside their DSC/NSD; published entries have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.views.tables import UNSCALED, counts, plural, render, restrict_to_runs
from protocols.aggregate import METRICS
from protocols.class_metrics import LOWER_IS_BETTER
from protocols.errors import BenchError


def default_baseline(methods: Sequence[str]) -> str | None:
    """The nnU-Net specialists when present (a run or published entry named nnU-Net...), else none."""
    return next((m for m in methods if m.lower().startswith("nnu-net")), None)


def _means(wide: pd.DataFrame, method: str, keys: pd.Index, metrics: Sequence[str]) -> tuple[dict[str, float], int]:
    """(metric -> mean of the method over those of ``keys`` it covers, how many it covers)."""
    means, covered = {}, 0
    for metric in metrics:
        column = wide.get((metric, method))
        values = column.reindex(keys).dropna() if column is not None else pd.Series(dtype=float)
        means[metric] = values.mean() if len(values) else np.nan
        covered = max(covered, len(values))
    return means, covered


def _shared_keys(wide: pd.DataFrame, methods: Sequence[str]) -> pd.Index:
    """Keys where every method has a value for every metric it reports."""
    columns = [c for c in wide.columns if c[1] in set(methods)]
    return wide[columns].dropna().index if columns else pd.Index([])


def _pairs(cells: pd.DataFrame, method: str, metrics: Sequence[str]) -> set[tuple[str, str]]:
    """The (dataset, class key) pairs a run scored."""
    own = cells[(cells["method"] == method) & cells[list(metrics)].notna().all(axis=1)]
    return set(zip(own["dataset"], own["key"]))


def _pair_means(cells: pd.DataFrame, method: str, pairs: set, level: str,
                metrics: Sequence[str]) -> tuple[dict[str, float], int]:
    """(metric -> the method's macro mean over ``pairs`` at ``level``, in percent (distances in mm), how many units
    they hold)."""
    own = cells[cells["method"] == method]
    own = own[[pair in pairs for pair in zip(own["dataset"], own["key"])]]
    units = own.groupby("key" if level == "class" else "dataset")[list(metrics)].mean()
    scale = {m: 1.0 if m in UNSCALED else 100.0 for m in metrics}
    return {m: scale[m] * units[m].mean() if len(units) else np.nan for m in metrics}, len(units)


def _ranked_groups(cells: pd.DataFrame, runs: Sequence[str], groups: dict,
                   metrics: Sequence[str]) -> tuple[dict, dict[str, str]]:
    """Per ranking group, the (dataset, class) pairs every ranked run covers; the runs listed apart, with why.
    Runs join in order; one that would leave no shared pair is kept apart."""
    common: dict = {}
    apart: dict[str, str] = {}
    for method in runs:
        own, group = _pairs(cells, method, metrics), groups[method]
        shared = own if group not in common else common[group] & own
        if not shared:
            apart[method] = "shares no (dataset, class) with the ranked runs" if group in common else \
                "has no scored (dataset, class)"
            continue
        common[group] = shared
    return common, apart


def leaderboard(entries: pd.DataFrame, level: str = "class", baseline: str | None = None,
                cells: pd.DataFrame | None = None, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """One row per method: ``rank`` (runs only, by the first of `metrics` on the common keys: highest first, lowest
    for a distance), means on the ``common`` keys of its ranking group, means on all of
    its own keys, deltas against ``baseline`` on the keys both cover (``d_keys``), grid, policy and coverage, and
    ``apart``: why a run is not ranked. ``cells`` (the runs' (method, dataset, key) means, fractions) make the
    common keys (dataset, class) pairs; without them they are the level's keys."""
    metrics = list(metrics)
    frame = entries[(entries["level"] == level) & entries["metric"].isin(metrics)]
    wide = frame.pivot_table(index="key", columns=["metric", "method"], values="value", aggfunc="first")
    methods = list(dict.fromkeys(frame["method"]))
    if baseline is not None and baseline not in methods:
        raise BenchError(f"baseline {baseline!r} has no {level} entries; methods: {', '.join(methods)}")
    protocol = frame.drop_duplicates("method").set_index("method")
    untrained = protocol["untrained"].eq(True) if "untrained" in protocol else pd.Series(False, index=protocol.index)
    apart = {m: "made with random weights (untrained): it tests the pipeline, not the model"
             for m in methods if protocol.loc[m, "source"] == "run" and untrained[m]}
    runs = [m for m in methods if protocol.loc[m, "source"] == "run" and m not in apart]
    groups = {m: (protocol.loc[m, "grid"], protocol.loc[m, "policy"]) for m in runs}
    first_group = groups[runs[0]] if runs else None
    if cells is not None:
        common_pairs, pair_apart = _ranked_groups(cells, runs, groups, metrics)
        apart |= pair_apart
        runs = [m for m in runs if m not in pair_apart]
        common_of = {g: pd.Index(sorted({k if level == "class" else d for d, k in pairs}))
                     for g, pairs in common_pairs.items()}
    else:
        common_pairs = {}
        common_of = {g: _shared_keys(wide, [m for m in runs if groups[m] == g]) for g in set(groups.values())}
    reference = common_of.get(first_group, _shared_keys(wide, methods))
    rows = []
    for method in methods:
        own = frame[frame["method"] == method]
        row = {"method": method, "source": protocol.loc[method, "source"], "grid": protocol.loc[method, "grid"],
               "policy": protocol.loc[method, "policy"], "keys": own["key"].nunique(), "apart": apart.get(method, "")}
        row |= {m: own.loc[own["metric"] == m, "value"].mean() for m in metrics}
        common = common_of[groups[method]] if method in runs else reference
        if method in apart:
            means, covered = dict.fromkeys(metrics, np.nan), 0
        elif method in runs and cells is not None:
            means, covered = _pair_means(cells, method, common_pairs[groups[method]], level, metrics)
        else:
            means, covered = _means(wide, method, common, metrics)
        row |= {f"common_{m}": v for m, v in means.items()} | {"common_keys": covered, "common_of": len(common)}
        if baseline:
            row |= _delta(wide, cells, protocol, method, baseline, level, metrics)
        row["coverage"] = _coverage(entries, method, row["keys"], level)
        rows.append(row)
    board = pd.DataFrame(rows)
    board["_run"] = board["method"].isin(runs)
    board["_group"] = [str(groups.get(m, "")) for m in board["method"]]
    higher = metrics[0] not in LOWER_IS_BETTER
    board = board.sort_values(["_run", "_group", f"common_{metrics[0]}", metrics[0]],
                              ascending=[False, True, not higher, not higher], na_position="last", kind="stable")
    ranks = board[board["_run"]].groupby("_group", sort=False).cumcount() + 1
    board.insert(0, "rank", ranks.reindex(board.index).astype("Int64"))
    return board.drop(columns=["_run", "_group"]).reset_index(drop=True)


def _delta(wide, cells, protocol, method: str, baseline: str, level: str, metrics: Sequence[str]) -> dict:
    """The method's means minus the baseline's on the keys both cover ((dataset, class) pairs for two runs);
    none across grids or empty policies."""
    same = all(protocol.loc[method, c] == protocol.loc[baseline, c] for c in ("grid", "policy"))
    both_runs = cells is not None and (protocol.loc[[method, baseline], "source"] == "run").all()
    if not same:
        mine = theirs = dict.fromkeys(metrics, np.nan)
        shared = 0
    elif both_runs:
        pairs = _pairs(cells, method, metrics) & _pairs(cells, baseline, metrics)
        (mine, shared), (theirs, _) = (_pair_means(cells, method, pairs, level, metrics),
                                       _pair_means(cells, baseline, pairs, level, metrics))
    else:
        keys = _shared_keys(wide, [method, baseline])
        (mine, _), (theirs, _), shared = (_means(wide, method, keys, metrics), _means(wide, baseline, keys, metrics),
                                          len(keys))
    return {f"d_{m}": mine[m] - theirs[m] for m in metrics} | {"d_keys": shared}


COST_COLUMNS = ("s/case", "s/call", "peak RSS MB", "peak GPU MB")  # and NoC@T, NoF@T where a run has them
_SECONDS = ("s/case", "s/call")


def with_cost(board: pd.DataFrame, cost: pd.DataFrame, run_of: dict[str, str]) -> pd.DataFrame:
    """The board with the runs' cost columns (`cost`: `bench.views.cost.cost_table`, indexed by run and model;
    `run_of`: each method's run), NaN for published entries; NoC columns only when a ranked run has them."""
    per_run = cost.reset_index().set_index("run")
    columns = [*COST_COLUMNS, *(c for c in per_run.columns if c.startswith(("NoC@", "NoF@")))]
    joined = per_run[columns].reindex(board["method"].map(run_of)).set_index(board.index)
    kept = [c for c in columns if c in COST_COLUMNS or joined[c].notna().any()]
    return pd.concat([board, joined[kept]], axis=1)


def _cost_columns(board: pd.DataFrame) -> list[str]:
    return [c for c in board.columns if c in COST_COLUMNS or c.startswith(("NoC@", "NoF@"))]


def _coverage(entries: pd.DataFrame, method: str, keys: int, level: str) -> str:
    """A run's counts; a published entry's number of keys."""
    overall = entries[(entries["method"] == method) & (entries["level"] == "overall") & (entries["source"] == "run")]
    if len(overall):
        return counts(overall.iloc[0])
    return f"{plural(keys, 'classes' if level == 'class' else level + 's')} (published, complete test sets)"


def board_notes(
    board: pd.DataFrame, level: str, baseline: str | None, metrics: Sequence[str] = METRICS
) -> list[str]:
    """How the board was ranked and what its comparisons cross (grids, policies)."""
    label = metrics[0].upper()
    order = "lowest first" if metrics[0] in LOWER_IS_BETTER else "highest first"
    runs = board[(board["source"] == "run") & (board["apart"] == "")]
    groups = runs.groupby(["grid", "policy"], sort=False)
    notes = []
    for (grid, policy), group in groups:
        keys = int(group["common_of"].iloc[0])
        notes.append(f"runs on the {grid} grid, empty policy {policy}: ranked by {label} on the {keys} {level} keys "
                     f"all {len(group)} of them cover ('{label} (common)', {order}); "
                     f"{'/'.join(m.upper() for m in metrics)} (own) are means over each run's own keys")
    if groups.ngroups > 1:
        notes.append("runs of different grids or empty policies are ranked separately, never against each other")
    notes += [f"{method}: not ranked, {why}" for method, why in zip(board["method"], board["apart"]) if why]
    published = board[board["source"] != "run"]
    if len(published):
        notes.append("published entries are listed beside the runs, unranked: their 'common' column says how many of "
                     "the runs' common keys they cover; they rest on complete test sets, the runs on their coverage")
        grids = set(runs["grid"])
        crossed = published[~published["grid"].isin(grids)]
        notes += [f"{', '.join(group['method'])}: scored on the {grid} grid, cross-grid to every run here"
                  for grid, group in crossed.groupby("grid", sort=False)]
    if baseline:
        notes.append(f"Δ: the method's mean minus {baseline}'s on the keys both cover (count in 'Δ keys'); none "
                     "across grids or empty policies")
    return notes


def leaderboard_view(
    board: pd.DataFrame, baseline: str | None, metrics: Sequence[str] = METRICS
) -> pd.DataFrame:
    """The leaderboard as display text: scores in percent (distances in mm), deltas signed, key counts."""
    view = pd.DataFrame({"rank": board["rank"].map(lambda r: "-" if pd.isna(r) else str(int(r))),
                         "method": board["method"], "grid": board["grid"]})
    for metric in metrics:
        view[f"{metric.upper()} (common)"] = board[f"common_{metric}"].map(_number)
    view["common"] = [f"{int(k)}/{int(n)}" for k, n in zip(board["common_keys"], board["common_of"])]
    for metric in metrics:
        view[f"{metric.upper()} (own)"] = board[metric].map(_number)
    for column in _cost_columns(board):
        view[column] = board[column].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}" if column in _SECONDS
                                         else str(int(v)) if column.startswith("NoF@") else f"{v:.2f}")
    view["keys"] = board["keys"].astype(int).astype(str)
    if baseline:
        for metric in metrics:
            view[f"Δ{metric.upper()}"] = board[f"d_{metric}"].map(lambda v: _number(v, signed=True))
        view["Δ keys"] = board["d_keys"].astype(int).astype(str)
    view["coverage"] = board["coverage"]
    return view.set_index(["rank", "method"]).astype(str)


def _number(value: float, signed: bool = False) -> str:
    return "-" if pd.isna(value) else f"{value:{'+' if signed else ''}.2f}"


def render_leaderboard(board: pd.DataFrame, baseline: str | None, fmt: str = "md",
                       metrics: Sequence[str] = METRICS) -> str:
    """The leaderboard as Markdown, LaTeX (text, nothing marked: the rank says it) or CSV (plain numbers)."""
    if fmt == "csv":
        deltas = [*(f"d_{m}" for m in metrics), "d_keys"] if baseline else []
        columns = ["rank", "method", "source", "grid", "policy", *(f"common_{m}" for m in metrics), "common_keys",
                   "common_of", *metrics, *_cost_columns(board), "keys", *deltas, "coverage", "apart"]
        return render(board[columns].set_index(["rank", "method"]), "csv")
    view = leaderboard_view(board, baseline, metrics)
    return render(view, fmt, best=pd.DataFrame(False, index=view.index, columns=view.columns))


def ranked(
    entries: pd.DataFrame, by: str = "class", baseline: str | None = None, cells: pd.DataFrame | None = None,
    metrics: Sequence[str] = METRICS,
) -> tuple[pd.DataFrame, str | None, list[str]]:
    """(leaderboard, the baseline used, notes: how it was ranked and what the comparisons left out)."""
    if by not in ("class", "dataset"):
        raise BenchError(f"unknown --by {by!r}; choose class or dataset")
    level_entries, left_out = restrict_to_runs(entries[entries["metric"].isin(metrics)], by)
    chosen = baseline or default_baseline(list(dict.fromkeys(level_entries["method"])))
    board = leaderboard(pd.concat([level_entries, entries[entries["level"] == "overall"]]), by, chosen, cells,
                        metrics)
    return board, chosen, [*board_notes(board, by, chosen, metrics), *left_out]
