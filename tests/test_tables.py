"""Table layouts (SAT Table 1/2), best-value marks, published entries, coverage restriction and the leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench import tables
from bench.catalog import load_catalog
from bench.cli import app
from bench.commands.tables import satds_dataset_name
from protocols import aggregate
from protocols.published import load_published
from tests.test_aggregate import TERMS, key_of, rows_for


def entries_of(*methods: str) -> pd.DataFrame:
    rows = pd.concat([rows_for(m).assign(dsc=lambda f, i=i: f["dsc"] - 0.1 * i) for i, m in enumerate(methods)])
    scores = aggregate.all_scores(aggregate.attach_terms(rows, TERMS, key_of))
    return pd.concat([tables.run_entries(scores[level]) for level in aggregate.LEVELS], ignore_index=True)


def published(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["method", "metric", "level", "key", "modality", "value"])
    return frame.assign(paper="P", table="1", caption="", note="")


def test_run_entries_are_percent_with_intervals():
    scores = aggregate.scores(aggregate.attach_terms(rows_for(), TERMS, key_of), "overall")
    ci = pd.DataFrame({"method": ["A"], "key": ["all"], "dsc_lo": [0.5], "dsc_hi": [0.7],
                       "nsd_lo": [0.3], "nsd_hi": [0.4]})
    entries = tables.run_entries(scores, ci).set_index("metric")
    assert entries.loc["dsc", "value"] == pytest.approx(64.0)
    assert entries.loc["dsc", ["lo", "hi"]].tolist() == pytest.approx([50.0, 70.0])
    assert entries.loc["nsd", ["lo", "hi"]].tolist() == pytest.approx([30.0, 40.0])
    assert entries.loc["dsc", "classes"] == 5


def test_published_entries_map_class_keys_and_note_other_metrics():
    frame = published([
        ("nnU-Nets", "dsc", "class", "Liver", "ct", 95.0),
        ("nnU-Nets", "dsc", "overall", "overall", "", 80.0),
        ("SegVol", "dsc@text", "organ", "Liver", "ct", 90.0),
        ("nnU-Nets", "nsd", "region", "abdomen", "", np.nan),
    ])
    entries, notes = tables.published_entries(frame, lambda m, c: f"{m}_{c.lower()}")
    assert entries[["method", "level", "key", "value"]].values.tolist() == [
        ["nnU-Nets (P)", "class", "ct_liver", 95.0], ["nnU-Nets (P)", "overall", "all", 80.0]]
    assert notes == ["P table 1: 1 cells left out, not comparable with a run (metrics dsc@text; levels class)"]


def test_restrict_to_runs_keeps_shared_keys_and_says_what_was_left_out():
    runs = entries_of("A")
    pub, _ = tables.published_entries(published([
        ("X", "dsc", "dataset", "d-1", "", 70.0), ("X", "dsc", "dataset", "Other", "", 60.0),
        ("X", "dsc", "region", "brain", "", 50.0),
    ]), key_of)
    kept, notes = tables.restrict_to_runs(pd.concat([runs, pub]), "dataset")
    assert kept.loc[kept["method"] == "X (P)", "key"].tolist() == ["D1"]  # "d-1" spells "D1"
    assert notes == ["X (P): 1 dataset keys not covered by any run left out"]
    regions, notes = tables.restrict_to_runs(pd.concat([runs, pub]), "region")
    assert "brain" in set(regions["key"]) and "as printed" in notes[0]


def test_region_layout_follows_table_1():
    table = tables.layout(entries_of("A", "B"), "region")
    assert list(table.columns) == ["Abdomen", "WB", "Lesion"]
    assert table.index.tolist() == [("dsc", "A"), ("dsc", "B"), ("nsd", "A"), ("nsd", "B")]
    assert table.loc[("dsc", "A"), "Abdomen"] == pytest.approx(100 * 2.0 / 3)


def test_best_marks_compare_methods_within_a_metric():
    region = tables.layout(entries_of("A", "B"), "region")
    best = tables.best_mask(region)
    assert best.loc[("dsc", "A")].all() and not best.loc[("dsc", "B")].any()
    assert best.loc[("nsd", "B")].all()  # nsd = 1 - dsc, so B is better there
    by_dataset = tables.layout(entries_of("A", "B"), "dataset")
    marks = tables.best_mask(by_dataset)
    assert marks[("dsc", "A")].all() and marks[("nsd", "B")].all()
    single = tables.best_mask(tables.layout(entries_of("A"), "dataset"))
    assert not single.to_numpy().any()


@pytest.mark.parametrize(("fmt", "marked"), [("md", "**66.67**"), ("csv", "66.67*"), ("latex", r"\underline{66.67}")])
def test_render_marks_best_values(fmt, marked):
    text = tables.render(tables.layout(entries_of("A", "B"), "region"), fmt)
    assert marked in text
    assert "56.67" in text and "**56.67**" not in text


def test_render_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        tables.render(tables.layout(entries_of("A"), "region"), "html")


def test_with_intervals_writes_value_and_bounds():
    values = pd.DataFrame({"x": [1.0, np.nan, 3.0]})
    lo, hi = pd.DataFrame({"x": [0.5, np.nan, np.nan]}), pd.DataFrame({"x": [1.5, np.nan, np.nan]})
    assert tables.with_intervals(values, lo, hi)["x"].tolist() == ["1.00 [0.50, 1.50]", "-", "3.00"]


def test_leaderboard_deltas_use_only_keys_shared_with_the_baseline():
    entries = pd.concat([
        tables.published_entries(published([
            ("nnU-Nets", m, "class", k, "ct", v) for m in ("dsc", "nsd") for k, v in (("liver", 90.0), ("spleen", 80.0))
        ]), key_of)[0],
        entries_of("A"),
    ])
    assert tables.default_baseline(["A", "nnU-Nets (P)"]) == "nnU-Nets (P)"
    assert tables.default_baseline(["A", "B"]) is None
    board = tables.leaderboard(entries, "class", "nnU-Nets (P)").set_index("method")
    # A on ct_liver 70 and ct_spleen 90 (its other classes are left out): mean 80 vs baseline 85
    assert board.loc["A", "d_dsc"] == pytest.approx(80.0 - 85.0)
    assert board.loc["A", "common_dsc"] == pytest.approx(80.0)  # the basis of the rank, shown beside the delta
    assert board.loc["A", "common_dsc_keys"] == 2
    assert board.loc["A", "dsc"] == pytest.approx(64.0)
    assert board.loc["A", "coverage"] == "5 classes, 3 datasets, 7 cases"
    assert board.loc["nnU-Nets (P)", "coverage"] == "2 classes (published)"
    assert board.loc["nnU-Nets (P)", "rank"] == 1
    text = tables.render_leaderboard(board.reset_index(), "nnU-Nets (P)")
    assert "-5.00" in text and "+0.00" in text


def test_leaderboard_without_baseline_ranks_on_keys_all_methods_cover():
    board = tables.leaderboard(entries_of("A", "B").iloc[::-1], "class")  # B is listed first, A scores higher
    assert board["method"].tolist() == ["A", "B"]
    assert board["common_dsc_keys"].tolist() == [5, 5]
    with pytest.raises(ValueError, match="baseline"):
        tables.leaderboard(entries_of("A"), "class", "nnU-Nets")


def write_runs(folder) -> list:
    """Two runs on catalog classes (CT liver and kidney tumour, MRI liver), written like `bench evaluate`."""
    dirs = []
    for run, shift in (("nnU-Nets", 0.0), ("model", -0.1)):
        rng = np.random.default_rng(0)
        records = [
            dict(run=run, model=run, dataset=dataset, case_id=f"c{i}", modality=modality, class_name=name,
                 dsc=float(np.clip(rng.uniform(0.6, 0.95) + shift, 0, 1)), nsd=float(rng.uniform(0.5, 0.9)))
            for dataset, modality, names, n in (("AbdomenCT1K", "CT", ("liver",), 4),
                                                ("KiTS23", "CT", ("liver", "kidney tumor"), 3),
                                                ("AMOS22 MRI", "MRI", ("liver",), 2))
            for i in range(n) for name in names
        ]
        path = folder / run
        path.mkdir()
        pd.DataFrame(records).to_parquet(path / "metrics.parquet")
        dirs.append(path)
    return dirs


@pytest.fixture()
def run_dirs(tmp_path):
    return write_runs(tmp_path)


def test_commands_print_tables_leaderboard_and_comparison(run_dirs):
    runner = CliRunner()
    runs = [arg for path in run_dirs for arg in ("--run", str(path))]
    result = runner.invoke(app, ["tables", *runs, "--published", "sat-table1", "--by", "region"])
    assert result.exit_code == 0, result.output
    assert "| dsc | nnU-Nets (SAT) |" in result.output and "Lesion" in result.output
    assert "nnU-Nets: 3 classes, 3 datasets, 9 cases" in result.output
    result = runner.invoke(app, ["tables", *runs, "--by", "class", "--ci-seed", "0", "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    assert "ct_liver" in result.output and "mri_liver" in result.output and "[" in result.output
    result = runner.invoke(app, ["leaderboard", *runs, "--published", "sat-table3", "--published", "sat-table4"])
    assert result.exit_code == 0, result.output
    assert "deltas against nnU-Nets on the class keys both cover" in result.output
    assert "SAT-Pro (SAT)" in result.output and "not covered by any run left out" in result.output
    result = runner.invoke(app, ["compare", *map(str, run_dirs)])
    assert result.exit_code == 0, result.output
    assert "| dsc | 12 |" in result.output
    result = runner.invoke(app, ["tables", *runs, "--by", "organ"])
    assert result.exit_code == 2 and "unknown --by" in result.output


def write_click_run(folder):
    """An interactive run: three clicks on CT liver in two cases, written like `bench clicks`."""
    clicks = pd.DataFrame([
        dict(run="clicker", model="clicker", dataset="KiTS23", case_id=f"c{case}", modality="CT", class_name="liver",
             prompt_policy="center", first_click="center", seed=0, click=k, dsc=0.5 + 0.1 * k, nsd=0.4 + 0.1 * k)
        for case in range(2) for k in (1, 2, 3)
    ])
    path = folder / "clicker"
    path.mkdir()
    clicks.to_parquet(path / "metrics.parquet")
    return path


def test_tables_summarise_click_rows_apart(run_dirs, tmp_path):
    path = write_click_run(tmp_path)
    result = CliRunner().invoke(app, ["tables", "--run", str(run_dirs[0]), "--run", str(path), "--by", "class"])
    assert result.exit_code == 0, result.output
    assert "| ct_liver |" in result.output and "clicker" not in result.output.split("Interactive")[0]
    assert "Interactive clicks (percent)" in result.output
    assert "| clicker | liver | center | center | 2 | 60.00 | 80.00 |" in result.output


def test_published_dataset_names_map_to_the_names_runs_use():
    frame = published([("nnU-Nets", "dsc", "dataset", name, "", 90.0) for name in ("TS Organs", "MM-WHS MR", "X")])
    entries, _ = tables.published_entries(frame, key_of, satds_dataset_name)
    assert entries["key"].tolist() == ["TotalSegmentator_Organs", "MM_WHS_MRI", "X"]  # unknown names unchanged
    resolved = {satds_dataset_name(name) for name in load_published("sat-table2")["key"]}
    assert len(resolved) == 72 and all(name in load_catalog().datasets for name in resolved)
