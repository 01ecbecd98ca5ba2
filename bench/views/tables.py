"""Result tables in the SAT paper's layouts, and the leaderboard, from one long format of entries.

An *entry* row is (method, level, key, metric, value, lo, hi, cases, datasets, classes, source, grid, policy,
full): ``value`` and its bootstrap interval ``lo``/``hi`` in percent (the papers print percent; runs store
fractions and are converted here; HD95/ASSD stay in mm, the volume difference in mm^3); intervals and counts are NaN for published numbers. ``grid`` is where the
scores were computed (``native``, ``satds``, or a paper's own grid), ``policy`` the empty-mask policy and
``full`` whether the entry rests on a complete test split (always for a published number).
Layouts: by region like SAT Table 1 (rows metric x method, columns regions); by class or dataset like SAT
Table 2 (keys as rows, columns metric x method). The best value of each comparison is marked, only among
comparable entries (`comparability`): bold in Markdown, underlined in LaTeX (as in the paper); CSV keeps plain
numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from protocols.aggregate import METRICS, OVERALL
from protocols.class_metrics import LOWER_IS_BETTER, SIGNED
from bench.views.published import paper_grid
from protocols.errors import BenchError

ENTRY_COLUMNS = [
    "method", "level", "key", "metric", "value", "lo", "hi", "cases", "datasets", "classes", "source",
    "grid", "policy", "full",
]
REGION_LABELS = {
    "brain": "Brain", "head and neck": "H&N", "upper limb": "UL", "thorax": "Thorax", "spine": "Spine",
    "abdomen": "Abdomen", "lower limb": "LL", "pelvis": "Pelvis", "whole body": "WB", "lesion": "Lesion",
    OVERALL: "All",
}
FORMATS = ("md", "csv", "latex")
FORMAT_ALIASES = {"markdown": "md"}
LONGTABLE_ROWS = 40  # a longer LaTeX table is a longtable (SAT's class tables run to 119 rows)


def canonical_format(fmt: str) -> str:
    """A table format by its name or alias (``markdown`` is ``md``); ValueError for an unknown one."""
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise BenchError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)} (or markdown)")
    return fmt
_PUBLISHED_LEVELS = {"organ": "class"}
UNSCALED = frozenset({*LOWER_IS_BETTER, "vol_diff_mm3"})  # printed as they are (mm, mm^3), not in percent


def run_entries(scores: pd.DataFrame, intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Entries from `protocols.aggregate` scores and optional `protocols.stats` intervals, for every metric the
    scores hold (fractions to percent; distances and volumes stay in mm and mm^3)."""
    ids = ["method", "level", "key", "cases", "datasets", "classes"]
    metrics = [c for c in scores.columns if c not in (*ids, "group")]
    scale = {m: 1.0 if m in UNSCALED else 100.0 for m in metrics}
    long = scores.melt(id_vars=ids, value_vars=metrics, var_name="metric", value_name="value")
    long = long.assign(value=long["value"] * long["metric"].map(scale), lo=np.nan, hi=np.nan, source="run",
                       grid="native", policy="sat", full=False)
    for side in ("lo", "hi") if intervals is not None else ():
        bound = intervals.melt(id_vars=["method", "key"], value_vars=[f"{m}_{side}" for m in metrics],
                               var_name="metric", value_name=side)
        bound["metric"] = bound["metric"].str.removesuffix(f"_{side}")
        long = long.drop(columns=side).merge(bound, on=["method", "key", "metric"], how="left")
        long[side] = long[side] * long["metric"].map(scale)
    return long[ENTRY_COLUMNS]


def published_entries(
    published: pd.DataFrame, key_of: Callable[[str, str], str], dataset_of: Callable[[str], str] = str,
) -> tuple[pd.DataFrame, list[str]]:
    """Entries from `bench.views.published` rows, labelled ``method (paper)``; notes say what was not usable.

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
        "grid": frame["paper"].map(paper_grid), "policy": "sat", "full": True,
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
    protocol = classes.drop_duplicates("method").set_index("method")[["grid", "policy"]]
    full = classes.set_index(["method", "key"])["full"].astype(bool)
    full = full[~full.index.duplicated()]
    parts = []
    for metric, frame in classes.groupby("metric", sort=False):
        wide = frame.pivot_table(index="key", columns="method", values="value", aggfunc="first").dropna()
        long = wide.stack().rename("value").reset_index().assign(group=lambda f: f["key"].map(groups))
        long["full"] = full.reindex(pd.MultiIndex.from_frame(long[["method", "key"]])).to_numpy(dtype=bool)
        for level, by in (("region", ["method", "group"]), ("overall", ["method"])):
            summary = long.groupby(by, sort=False).agg(
                mean=("value", "mean"), count=("value", "count"), full=("full", "all")).reset_index()
            parts.append(pd.DataFrame({
                "method": summary["method"], "level": "region",
                "key": summary["group"] if level == "region" else OVERALL, "metric": metric,
                "value": summary["mean"], "lo": np.nan, "hi": np.nan, "cases": np.nan, "datasets": np.nan,
                "classes": summary["count"], "source": "shared",
                "grid": summary["method"].map(protocol["grid"]), "policy": summary["method"].map(protocol["policy"]),
                "full": summary["full"],
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


def comparability(entries: pd.DataFrame) -> pd.Series:
    """A label per entry: entries with equal labels may be ranked against each other.

    Same grid and empty policy, and the same coverage: either both complete (a published number, or a run on a
    whole test split) or both resting on the same numbers of cases, datasets and classes.
    """
    counts = entries[["cases", "datasets", "classes"]].astype("float64").fillna(-1).astype(int).astype(str)
    partial = "cases " + counts["cases"] + ", datasets " + counts["datasets"] + ", classes " + counts["classes"]
    coverage = partial.where(~entries["full"].fillna(False).astype(bool), "complete")
    return entries["grid"].astype(str) + " | " + entries["policy"].astype(str) + " | " + coverage


def comparability_layout(entries: pd.DataFrame, by: str, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """The `comparability` labels arranged like ``layout(entries, by, metrics)``."""
    return layout(entries.assign(comparable=comparability(entries)), by, metrics, value="comparable")


def best_mask(
    table: pd.DataFrame, groups: pd.DataFrame | None = None, runs: Sequence[str] = ()
) -> pd.DataFrame:
    """True where a value is the best of its comparison (methods of one metric) among two or more comparable values:
    the largest, the smallest for distances, none for signed volume errors (`protocols.class_metrics`).

    ``groups`` (same shape as ``table``, from `comparability_layout`) splits a comparison into comparable sets;
    without it every value is comparable. Only sets holding one of the ``runs`` are marked when any run has a
    value in the comparison, so a published number is never marked above a run it cannot be compared with.
    """
    region = isinstance(table.index, pd.MultiIndex)  # region layout: methods down the rows, else across columns
    values = table if region else table.T
    labels = (groups if region else groups.T) if groups is not None else pd.DataFrame("", values.index, values.columns)
    marks = pd.DataFrame(False, index=values.index, columns=values.columns)
    methods = values.index.get_level_values("method")
    is_run = np.isin(methods, list(runs))
    for metric in dict.fromkeys(values.index.get_level_values("metric")):
        if metric in SIGNED:
            continue
        rows = np.flatnonzero(values.index.get_level_values("metric") == metric)
        for column in range(values.shape[1]):
            scores = values.iloc[rows, column].to_numpy(dtype=float)
            kinds = labels.iloc[rows, column].to_numpy()
            present = ~np.isnan(scores)
            runs_present = (present & is_run[rows]).any()
            for kind in set(kinds[present]):
                members = present & (kinds == kind)
                if members.sum() < 2 or (runs_present and not (members & is_run[rows]).any()):
                    continue
                best = scores[members].min() if metric in LOWER_IS_BETTER else scores[members].max()
                marks.iloc[rows[members & (scores == best)], column] = True
    return marks if region else marks.T


def cross_notes(entries: pd.DataFrame) -> list[str]:
    """What the marks leave out: runs beside published numbers of another grid, protocol or coverage."""
    runs = entries[entries["source"] == "run"].drop_duplicates("method")
    published = entries[entries["source"] == "published"].drop_duplicates("method")
    notes = []
    for grid, papers in published.groupby("grid", sort=False):
        crossed = runs[runs["grid"] != grid]
        if len(crossed):
            notes.append(f"{', '.join(papers['method'])}: scored on the {grid} grid, the runs "
                         f"{', '.join(crossed['method'] + ' (' + crossed['grid'] + ')')} on another: cross-grid, "
                         "shown side by side, never marked against each other")
    others = runs[runs["grid"] != runs["grid"].iloc[0]] if len(runs) else runs
    if len(others):
        notes.append("runs scored on different grids (" + ", ".join(dict.fromkeys(runs["grid"])) + ") are not "
                     "marked against each other")
    if runs["policy"].nunique() > 1:
        notes.append("runs scored under different empty-mask policies are not marked against each other "
                     "(re-apply one with --empty-policy)")
    if len(published) and len(runs):
        partial = entries[(entries["source"] == "run") & entries["level"].isin(["class", "dataset"])]
        partial = partial[~partial["full"].fillna(False).astype(bool)]
        if len(partial):
            notes.append("published numbers rest on complete SAT-DS test splits: a run's class or dataset value "
                         "is marked against them only where it covers the complete test split "
                         f"({partial.drop_duplicates(['method', 'key'])['key'].nunique()} keys are not)")
    return notes


def interval_columns(values: pd.DataFrame, lo: pd.DataFrame, hi: pd.DataFrame) -> pd.DataFrame:
    """Numeric table with each value column followed by its ``lo`` and ``hi`` columns (for CSV)."""
    parts = {}
    for column in values.columns:
        name = " ".join(map(str, column)) if isinstance(column, tuple) else str(column)
        parts[name], parts[f"{name} lo"], parts[f"{name} hi"] = values[column], lo[column], hi[column]
    return pd.DataFrame(parts, index=values.index)


def render(table: pd.DataFrame, fmt: str, best: pd.DataFrame | None = None) -> str:
    """The table as Markdown, CSV or LaTeX text. Markdown and LaTeX print two decimals and mark the best values;
    CSV keeps plain numbers (full precision, empty for missing) and marks nothing, so it parses as data."""
    fmt = canonical_format(fmt)
    header = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in table.columns]
    index_names = [str(n) for n in table.index.names]
    labels = [list(map(str, i if isinstance(i, tuple) else (i,))) for i in table.index]
    head = [*index_names, *header]
    if fmt == "csv":
        body = [[*label, *map(_csv_number, row)] for label, row in zip(labels, table.to_numpy().tolist())]
        return "\n".join(",".join(_csv_cell(c) for c in line) for line in [head, *body]) + "\n"
    best = best_mask(table) if best is None else best
    mark = {"md": "**{}**", "latex": r"\underline{{{}}}"}[fmt]
    text = table.apply(lambda column: [
        mark.format(_cell(v, fmt)) if b else _cell(v, fmt) for v, b in zip(column, best[column.name])
    ])
    body = [[*label, *row] for label, row in zip(labels, text.to_numpy().tolist())]
    if fmt == "latex":
        spec = "l" * len(index_names) + "r" * len(header)
        environment = "longtable" if len(body) > LONGTABLE_ROWS else "tabular"  # longtable breaks across pages
        packages = "booktabs" + (", longtable" if environment == "longtable" else "")
        header_line = " & ".join(map(_latex_escape, head)) + r" \\ \midrule"
        lines = [header_line + (r" \endhead" if environment == "longtable" else "")]
        lines += [" & ".join([*map(_latex_escape, row[: len(index_names)]), *row[len(index_names):]]) + r" \\"
                  for row in body]
        wrapped = [rf"% needs \usepackage{{{packages}}}".replace("{booktabs, longtable}",
                                                                 r"{booktabs} and \usepackage{longtable}"),
                   rf"\begin{{{environment}}}{{{spec}}}", r"\toprule", *lines, r"\bottomrule",
                   rf"\end{{{environment}}}"]
        return "\n".join(wrapped) + "\n"
    lines = ["| " + " | ".join(map(markdown_cell, head)) + " |",
             "|" + "|".join(["---"] * len(index_names) + ["---:"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(markdown_cell, row)) + " |" for row in body]) + "\n"


def markdown_cell(text) -> str:
    """A Markdown table cell: a `|` in a class or run name is escaped, so it cannot shift the cells after it."""
    return str(text).replace("|", "\\|")


_LATEX_SPECIAL = {"&": r"\&", "_": r"\_", "%": r"\%", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}", "Δ": r"$\Delta$"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _cell(value, fmt: str = "md") -> str:
    if isinstance(value, str):
        return _latex_escape(value) if fmt == "latex" else value
    return "-" if pd.isna(value) else f"{value:.2f}"


def _csv_number(value) -> str:
    if isinstance(value, str):
        return value
    if pd.isna(value):
        return ""
    rounded = round(float(value), 6)  # percent to 1e-6: beyond float noise, below any printed digit
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


def _csv_cell(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n') else cell


def coverage_lines(entries: pd.DataFrame) -> list[str]:
    """One line per run (how many classes, datasets and cases its numbers rest on, its grid and policy) and per
    published method (complete test sets, its grid)."""
    overall = entries[(entries["source"] == "run") & (entries["level"] == "overall")].drop_duplicates("method")
    lines = [f"{entry['method']}: {counts(entry)}; {entry['grid']} grid, empty policy {entry['policy']}"
             for _, entry in overall.iterrows()]
    published = entries[entries["source"] == "published"].drop_duplicates("method")
    lines += [f"{entry['method']}: published, on the paper's complete test sets; {entry['grid']} grid"
              for _, entry in published.iterrows()]
    return lines


def counts(entry: pd.Series) -> str:
    """``N classes, N datasets, N cases`` of a run entry."""
    return ", ".join(plural(int(entry[c]), c) for c in ("classes", "datasets", "cases"))


def plural(count: int, noun: str) -> str:
    """``1 class``, ``2 classes``, ``1 dataset`` (``noun`` in the plural)."""
    return f"{count} {noun if count != 1 else noun.removesuffix('es' if noun.endswith('sses') else 's')}"
