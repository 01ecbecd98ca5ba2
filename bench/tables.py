"""Result tables in the SAT paper's layouts, and the leaderboard, from one long format of entries.

An *entry* row is (method, level, key, metric, value, lo, hi, cases, datasets, classes, source): ``value`` and
its bootstrap interval ``lo``/``hi`` in percent (the papers print percent; runs store fractions and are
converted here); intervals and counts are NaN for published numbers.
Layouts: by region like SAT Table 1 (rows metric x method, columns regions); by class or dataset like SAT
Table 2 (keys as rows, columns metric x method). The best value of each comparison is marked: bold in
Markdown, underlined in LaTeX (as in the paper), a trailing ``*`` in CSV.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from protocols.aggregate import METRICS, OVERALL

ENTRY_COLUMNS = ["method", "level", "key", "metric", "value", "lo", "hi", "cases", "datasets", "classes", "source"]
REGION_LABELS = {
    "brain": "Brain", "head and neck": "H&N", "upper limb": "UL", "thorax": "Thorax", "spine": "Spine",
    "abdomen": "Abdomen", "lower limb": "LL", "pelvis": "Pelvis", "whole body": "WB", "lesion": "Lesion",
    OVERALL: "All",
}
FORMATS = ("md", "csv", "latex")
_PUBLISHED_LEVELS = {"organ": "class"}


def run_entries(scores: pd.DataFrame, intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Entries from `protocols.aggregate` scores and optional `protocols.stats` intervals (fractions to percent)."""
    ids = ["method", "level", "key", "cases", "datasets", "classes"]
    long = scores.melt(id_vars=ids, value_vars=list(METRICS), var_name="metric", value_name="value")
    long = long.assign(value=long["value"] * 100, lo=np.nan, hi=np.nan, source="run")
    for side in ("lo", "hi") if intervals is not None else ():
        bound = intervals.melt(id_vars=["method", "key"], value_vars=[f"{m}_{side}" for m in METRICS],
                               var_name="metric", value_name=side)
        bound["metric"] = bound["metric"].str.removesuffix(f"_{side}")
        long = long.drop(columns=side).merge(bound, on=["method", "key", "metric"], how="left")
        long[side] = long[side] * 100
    return long[ENTRY_COLUMNS]


def published_entries(
    published: pd.DataFrame, key_of: Callable[[str, str], str], dataset_of: Callable[[str], str] = str,
) -> tuple[pd.DataFrame, list[str]]:
    """Entries from `protocols.published` rows, labelled ``method (paper)``; notes say what was not usable.

    Only DSC and NSD at class, region, dataset or overall level are comparable with a run; class keys are
    mapped to the unified ``modality_class`` keys with ``key_of``, dataset names as printed (``TS Organs``) to
    the names runs use with ``dataset_of``.
    """
    frame = published.assign(level=published["level"].replace(_PUBLISHED_LEVELS))
    usable = frame["metric"].isin(METRICS) & frame["level"].isin(["class", "region", "dataset", "overall"])
    notes = [
        f"{paper} table {table}: {len(group)} cells left out, not comparable with a run "
        f"(metrics {', '.join(sorted(set(group['metric'])))}; levels {', '.join(sorted(set(group['level'])))})"
        for (paper, table), group in frame[~usable].groupby(["paper", "table"], sort=True)
    ]
    frame = frame[usable & frame["value"].notna()]
    keys = frame["key"].where(frame["level"] != "overall", OVERALL)
    is_class = frame["level"] == "class"
    keys[is_class] = [key_of(m, k) for m, k in zip(frame.loc[is_class, "modality"], frame.loc[is_class, "key"])]
    is_dataset = frame["level"] == "dataset"
    keys[is_dataset] = [dataset_of(name) for name in frame.loc[is_dataset, "key"]]
    entries = pd.DataFrame({
        "method": frame["method"] + " (" + frame["paper"] + ")", "level": frame["level"], "key": keys,
        "metric": frame["metric"], "value": frame["value"], "lo": np.nan, "hi": np.nan,
        "cases": np.nan, "datasets": np.nan, "classes": np.nan, "source": "published",
    })
    return entries.drop_duplicates(["method", "level", "key", "metric"]).reset_index(drop=True), notes


def matching_key(name: str) -> str:
    """A spelling-insensitive form of a dataset or class name ("AMOS22 CT" == "amos22-ct")."""
    return re.sub(r"[^0-9a-z]+", "", str(name).lower())


def restrict_to_runs(entries: pd.DataFrame, level: str) -> tuple[pd.DataFrame, list[str]]:
    """Keep published keys that some run covers (spellings unified), and say what was left out.

    Region and overall numbers cannot be recomputed from printed tables, so they are kept as printed and
    the note says that they average over the paper's whole class set.
    """
    runs = entries[(entries["source"] == "run") & (entries["level"] == level)]
    published = entries[(entries["source"] == "published") & (entries["level"] == level)]
    if published.empty or runs.empty:
        return pd.concat([runs, published], ignore_index=True), []
    if level in ("region", "overall"):
        note = f"published {level} values are as printed: averages over each paper's full class set"
        return pd.concat([runs, published], ignore_index=True), [note]
    run_keys = {matching_key(k): k for k in runs["key"].unique()}
    matched = published["key"].map(lambda k: run_keys.get(matching_key(k)))
    notes = [
        f"{method}: {group['key'].nunique()} {level} keys not covered by any run left out"
        for method, group in published[matched.isna()].groupby("method", sort=True)
    ]
    kept = published[matched.notna()].assign(key=matched[matched.notna()])
    return pd.concat([runs, kept], ignore_index=True), notes


def comparable(entries: pd.DataFrame, by: str) -> tuple[pd.DataFrame, list[str]]:
    """Entries of one protocol (``region`` includes the overall column) with published keys restricted to runs."""
    parts, notes = [], []
    for level in ("region", "overall") if by == "region" else (by,):
        part, left_out = restrict_to_runs(entries, level)
        parts.append(part.assign(level=by))
        notes += left_out
    return pd.concat(parts, ignore_index=True), notes


def shared_region_entries(entries: pd.DataFrame, groups: pd.Series) -> pd.DataFrame | None:
    """Region entries of runs and published class tables on their shared classes, when a published table has
    class values for the classes the runs cover; None otherwise."""
    classes, _ = restrict_to_runs(entries, "class")
    if not (classes["source"] == "published").any():
        return None
    return regions_on_shared_classes(classes, groups)


def regions_on_shared_classes(entries: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Region and overall entries recomputed from class entries, on the classes every method covers.

    This puts runs and published class tables (e.g. SAT Tables 3-4) on exactly the same classes;
    ``groups`` maps a class key to its region group. The ``classes`` count says how many classes remain.
    """
    classes = entries[entries["level"] == "class"]
    parts = []
    for metric, frame in classes.groupby("metric", sort=False):
        wide = frame.pivot_table(index="key", columns="method", values="value", aggfunc="first").dropna()
        long = wide.stack().rename("value").reset_index().assign(group=lambda f: f["key"].map(groups))
        for level, by in (("region", ["method", "group"]), ("overall", ["method"])):
            summary = long.groupby(by, sort=False)["value"].agg(["mean", "count"]).reset_index()
            parts.append(pd.DataFrame({
                "method": summary["method"], "level": "region",
                "key": summary["group"] if level == "region" else OVERALL, "metric": metric,
                "value": summary["mean"], "lo": np.nan, "hi": np.nan, "cases": np.nan, "datasets": np.nan,
                "classes": summary["count"], "source": "shared",
            }))
    if not parts:
        return pd.DataFrame(columns=ENTRY_COLUMNS)
    position = {method: i for i, method in enumerate(dict.fromkeys(classes["method"]))}
    return pd.concat(parts, ignore_index=True).sort_values("method", key=lambda m: m.map(position), kind="stable")


def layout(entries: pd.DataFrame, by: str, metrics: Sequence[str] = METRICS, value: str = "value") -> pd.DataFrame:
    """One column of entries (percent) of one level arranged like SAT Table 1 (``region``) or Table 2."""
    frame = entries[(entries["level"] == by) & entries["metric"].isin(metrics)]
    methods = list(dict.fromkeys(frame["method"]))
    if by in ("region", "overall"):
        table = frame.pivot_table(
            index=["metric", "method"], columns="key", values=value, aggfunc="first", dropna=False
        )
        regions = [k for k in REGION_LABELS if k in table.columns and k != OVERALL]
        order = regions + sorted(set(table.columns) - set(REGION_LABELS)) + [OVERALL] * (OVERALL in table.columns)
        table = table.reindex(columns=order).rename(columns=REGION_LABELS)
        rows = pd.MultiIndex.from_product([[m for m in metrics if m in set(frame["metric"])], methods])
        return table.reindex(rows).rename_axis(index=["metric", "method"], columns=None)
    table = frame.pivot_table(index="key", columns=["metric", "method"], values=value, aggfunc="first", dropna=False)
    columns = pd.MultiIndex.from_product([[m for m in metrics if m in set(frame["metric"])], methods])
    return table.reindex(columns=columns).sort_index().rename_axis(index=by, columns=["metric", "method"])


def with_intervals(values: pd.DataFrame, lo: pd.DataFrame, hi: pd.DataFrame) -> pd.DataFrame:
    """Cells as text ``value [lo, hi]`` (two decimals); values without an interval stay plain."""
    def cell(v: float, low: float, high: float) -> str:
        if pd.isna(v):
            return "-"
        return f"{v:.2f}" if pd.isna(low) else f"{v:.2f} [{low:.2f}, {high:.2f}]"

    return pd.DataFrame(
        [[cell(*triple) for triple in zip(*rows)] for rows in zip(values.to_numpy(), lo.to_numpy(), hi.to_numpy())],
        index=values.index, columns=values.columns,
    )


def best_mask(table: pd.DataFrame) -> pd.DataFrame:
    """True where a value is the best of its comparison (methods of one metric), given two or more values."""
    if isinstance(table.index, pd.MultiIndex):  # region layout: compare down each column within a metric
        best = table.groupby(level="metric", sort=False).transform("max")
        counts = table.groupby(level="metric", sort=False).transform("count")
    else:  # key layout: compare along each row within a metric
        best = table.T.groupby(level="metric", sort=False).transform("max").T
        counts = table.T.groupby(level="metric", sort=False).transform("count").T
    return (table == best) & (counts >= 2)


def render(table: pd.DataFrame, fmt: str, best: pd.DataFrame | None = None) -> str:
    """The table as Markdown, CSV or LaTeX text with two decimals, best values marked."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    best = best_mask(table) if best is None else best
    mark = {"md": "**{}**", "csv": "{}*", "latex": r"\underline{{{}}}"}[fmt]
    text = table.apply(lambda column: [
        mark.format(_cell(v)) if b else _cell(v) for v, b in zip(column, best[column.name])
    ])
    header = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in table.columns]
    index_names = [str(n) for n in table.index.names]
    labels = [map(str, i if isinstance(i, tuple) else (i,)) for i in table.index]
    body = [[*label, *row] for label, row in zip(labels, text.to_numpy().tolist())]
    head = [*index_names, *header]
    if fmt == "csv":
        return "\n".join(",".join(_csv_cell(c) for c in line) for line in [head, *body]) + "\n"
    if fmt == "latex":
        escape = lambda c: c.replace("&", r"\&").replace("_", r"\_").replace("%", r"\%")  # noqa: E731
        spec = "l" * len(index_names) + "r" * len(header)
        lines = [" & ".join(map(escape, head)) + r" \\ \midrule"]
        lines += [" & ".join(escape(c) if not c.startswith("\\underline") else c for c in row) + r" \\" for row in body]
        wrapped = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", *lines, r"\bottomrule", r"\end{tabular}"]
        return "\n".join(wrapped) + "\n"
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(index_names) + ["---:"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body]) + "\n"


def _cell(value) -> str:
    if isinstance(value, str):
        return value
    return "-" if pd.isna(value) else f"{value:.2f}"


def _csv_cell(cell: str) -> str:
    return f'"{cell}"' if any(c in cell for c in ',"\n') else cell


def coverage_lines(entries: pd.DataFrame) -> list[str]:
    """One line per run: how many classes, datasets and cases its numbers rest on."""
    overall = entries[(entries["source"] == "run") & (entries["level"] == "overall")].drop_duplicates("method")
    return [f"{entry['method']}: {_counts(entry)}" for _, entry in overall.iterrows()]


def default_baseline(methods: Sequence[str]) -> str | None:
    """The nnU-Net specialists when present (a run or published entry named nnU-Net...), else none."""
    return next((m for m in methods if m.lower().startswith("nnu-net")), None)


def leaderboard(entries: pd.DataFrame, level: str = "class", baseline: str | None = None) -> pd.DataFrame:
    """Methods ranked on ``level`` entries, each compared with the baseline only on the keys both cover.

    ``<metric>`` is a method's mean over its own keys. With a baseline, ``common_<metric>`` is its mean over the
    keys it shares with the baseline, ``d_<metric>`` that minus the baseline's mean on the same keys, and methods
    are ranked by ``d_dsc``. Without: ``common_<metric>`` over the keys every method covers, ranked by it.
    """
    frame = entries[entries["level"] == level]
    wide = frame.pivot_table(index="key", columns=["metric", "method"], values="value", aggfunc="first")
    methods = list(dict.fromkeys(frame["method"]))
    if baseline is not None and baseline not in methods:
        raise ValueError(f"baseline {baseline!r} has no {level} entries; methods: {', '.join(methods)}")
    rows = []
    for method in methods:
        own = frame[frame["method"] == method]
        row = {"method": method, "source": own["source"].iloc[0], "keys": own["key"].nunique()}
        row |= {m: own.loc[own["metric"] == m, "value"].mean() for m in METRICS}
        others = [baseline] if baseline else methods
        for metric in METRICS:
            name = f"d_{metric}" if baseline else f"common_{metric}"
            columns = list(dict.fromkeys([(metric, method), *[(metric, o) for o in others]]))
            if any(column not in wide.columns for column in columns):
                row[name] = row[f"common_{metric}"] = np.nan
                row[f"common_{metric}_keys"] = 0
                continue
            shared = wide[columns].dropna()
            mine = shared[(metric, method)].mean()
            row[f"common_{metric}"] = mine
            if baseline:
                row[name] = mine - shared[(metric, baseline)].mean()
            row[f"common_{metric}_keys"] = len(shared)
        row["coverage"] = _coverage(entries, method, row["keys"], level)
        rows.append(row)
    board = pd.DataFrame(rows)
    score = "d_dsc" if baseline else "common_dsc"
    board = board.sort_values([score, "dsc"], ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    return board


def _coverage(entries: pd.DataFrame, method: str, keys: int, level: str) -> str:
    """A run's counts (as in `coverage_lines`); a published entry's number of keys."""
    overall = entries[(entries["method"] == method) & (entries["level"] == "overall") & (entries["source"] == "run")]
    if len(overall):
        return _counts(overall.iloc[0])
    return f"{keys} {'classes' if level == 'class' else level + 's'} (published)"


def _counts(entry: pd.Series) -> str:
    return f"{int(entry['classes'])} classes, {int(entry['datasets'])} datasets, {int(entry['cases'])} cases"


def leaderboard_view(board: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """The leaderboard as display text: scores in percent, deltas signed, common-key counts."""
    columns = {"rank": "rank", "method": "method", "dsc": "DSC", "nsd": "NSD",
               "common_dsc": "DSC (common)", "common_nsd": "NSD (common)"}
    if baseline:
        columns |= {"d_dsc": "ΔDSC", "d_nsd": "ΔNSD"}
    columns |= {"common_dsc_keys": "common", "coverage": "coverage"}
    view = board.reindex(columns=list(columns)).rename(columns=columns)
    signed = ("ΔDSC", "ΔNSD") if baseline else ()
    for name in ("DSC", "NSD", "DSC (common)", "NSD (common)", *signed):
        if name in view.columns:
            view[name] = view[name].map(lambda v, s=name in signed: "-" if pd.isna(v) else f"{v:{'+' if s else ''}.2f}")
    view["common"] = view["common"].map(lambda v: "-" if pd.isna(v) else str(int(v)))
    return view.set_index(["rank", "method"]).astype(str)


def render_leaderboard(board: pd.DataFrame, baseline: str | None, fmt: str = "md") -> str:
    """The leaderboard as Markdown, CSV or LaTeX text (nothing marked: the rank says it)."""
    view = leaderboard_view(board, baseline)
    return render(view, fmt, best=pd.DataFrame(False, index=view.index, columns=view.columns))
