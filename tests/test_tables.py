"""Table layouts (SAT Table 1/2), best-value marks, published entries, coverage restriction and the leaderboard."""

from __future__ import annotations

import json
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.views import tables
from bench.data.catalog import load_catalog
from bench.cli.app import app
from bench.views.leaderboard import (
    board_notes,
    default_baseline,
    leaderboard,
    ranked,
    render_leaderboard,
)
from bench.views.runs import satds_dataset_name
from protocols import aggregate
from bench.views.published import load_published
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


@pytest.mark.parametrize(("fmt", "marked"), [("md", "**66.67**"), ("latex", r"\underline{66.67}")])
def test_render_marks_best_values(fmt, marked):
    text = tables.render(tables.layout(entries_of("A", "B"), "region"), fmt)
    assert marked in text
    assert "56.67" in text and "**56.67**" not in text


def test_csv_keeps_plain_numbers_that_parse():
    import io

    text = tables.render(tables.layout(entries_of("A", "B"), "region"), "csv")
    frame = pd.read_csv(io.StringIO(text))
    assert list(frame.columns) == ["metric", "method", "Abdomen", "WB", "Lesion"]
    assert frame["Abdomen"].dtype == float and "*" not in text
    assert frame.loc[0, "Abdomen"] == pytest.approx(100 * 2.0 / 3, abs=1e-6)
    assert frame.loc[1, "WB"] == 60  # float noise (60.00000000000001) rounded away


def test_marks_only_among_comparable_entries():
    """A run beside a published number of another grid: neither is marked against the other; two runs of the
    same grid and coverage are; a run of another grid or policy is left out of their comparison."""
    a = entries_of("A", "B", "C")
    pub, _ = tables.published_entries(published([("X", m, "class", "liver", "ct", 99.0) for m in ("dsc", "nsd")]),
                                      key_of)
    b = a.copy()
    b.loc[b["method"] == "C", "grid"] = "satds"  # C scored on SAT's grid
    entries = pd.concat([b, pub.assign(grid="satds")], ignore_index=True)
    values = tables.layout(entries, "class")
    groups = tables.comparability_layout(entries, "class")
    marks = tables.best_mask(values, groups, runs=["A", "B", "C"])
    assert marks.loc["ct_liver", ("dsc", "A")]  # best among the native runs A and B
    assert not marks.loc["ct_liver", ("dsc", "X (P)")]  # 99 > every run, but a complete test set vs a partial run
    assert not marks.loc["ct_liver", ("dsc", "C")]  # C is alone on its grid among runs with partial coverage
    full = entries.copy()
    full.loc[(full["method"] == "C") & (full["key"] == "ct_liver"), "full"] = True
    marks = tables.best_mask(values, tables.comparability_layout(full, "class"), runs=["A", "B", "C"])
    assert marks.loc["ct_liver", ("dsc", "X (P)")] and not marks.loc["ct_liver", ("dsc", "C")]
    assert marks.loc["ct_liver", ("dsc", "A")]  # the native runs keep their own comparison
    policy = entries.copy()
    policy.loc[policy["method"] == "B", "policy"] = "nan"
    marks = tables.best_mask(values, tables.comparability_layout(policy, "class"), runs=["A", "B", "C"])
    assert not marks.loc["ct_liver"].any()  # A, B (other policy) and C (other grid) each stand alone
    notes = tables.cross_notes(entries)
    assert any("cross-grid" in n and "A (native)" in n for n in notes)


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
        ]), key_of)[0].assign(grid="native"),  # deltas need the same grid and policy
        entries_of("A"),
    ])
    other_grid = entries.assign(grid=np.where(entries["source"] == "published", "satds", entries["grid"]))
    assert pd.isna(leaderboard(other_grid, "class", "nnU-Nets (P)").set_index("method").loc["A", "d_dsc"])
    assert default_baseline(["A", "nnU-Nets (P)"]) == "nnU-Nets (P)"
    assert default_baseline(["A", "B"]) is None
    board = leaderboard(entries, "class", "nnU-Nets (P)").set_index("method")
    # A on ct_liver 70 and ct_spleen 90 (its other classes are left out): mean 80 vs baseline 85
    assert board.loc["A", "d_dsc"] == pytest.approx(80.0 - 85.0)
    assert board.loc["A", "d_keys"] == 2
    assert board.loc["A", "common_dsc"] == pytest.approx(64.0)  # A alone: its common keys are all 5 of its own
    assert board.loc["A", "dsc"] == pytest.approx(64.0)
    assert board.loc["A", "coverage"] == "5 classes, 3 datasets, 7 cases"
    assert board.loc["nnU-Nets (P)", "coverage"] == "2 classes (published, complete test sets)"
    assert board.loc["A", "rank"] == 1 and pd.isna(board.loc["nnU-Nets (P)", "rank"])  # published: beside, unranked
    assert (board.loc["nnU-Nets (P)", "common_keys"], board.loc["nnU-Nets (P)", "common_of"]) == (2, 5)
    text = render_leaderboard(board.reset_index(), "nnU-Nets (P)")
    assert "-5.00" in text and "+0.00" in text and "| 2/5 |" in text


def test_leaderboard_without_baseline_ranks_on_keys_all_methods_cover():
    board = leaderboard(entries_of("A", "B").iloc[::-1], "class")  # B is listed first, A scores higher
    assert board["method"].tolist() == ["A", "B"]
    assert board["common_keys"].tolist() == [5, 5]
    with pytest.raises(ValueError, match="baseline"):
        leaderboard(entries_of("A"), "class", "nnU-Nets")


def demo_situation() -> pd.DataFrame:
    """The demo's two runs on its 5 CT organs (class means as the demo prints them) and a published baseline that
    covers only liver and spleen, where the worse run happens to be closer to the baseline."""
    careful = {"aorta": 82.91, "left kidney": 80.22, "liver": 92.29, "right kidney": 81.22, "spleen": 84.29}
    coarse = {"aorta": 77.85, "left kidney": 74.09, "liver": 94.19, "right kidney": 18.86, "spleen": 83.46}
    rows = [dict(run=run, dataset="demo", case_id=f"c{i}", modality="CT", class_name=name, dsc=v / 100, nsd=v / 100)
            for run, means in (("careful_net", careful), ("coarse_net", coarse)) for name, v in means.items()
            for i in range(4)]
    labelled = aggregate.attach_terms(pd.DataFrame(rows), TERMS_DEMO, key_of)
    scores = aggregate.all_scores(labelled)
    runs = pd.concat([tables.run_entries(scores[level]) for level in aggregate.LEVELS], ignore_index=True)
    baseline, _ = tables.published_entries(published([
        ("nnU-Nets", m, "class", k, "ct", v) for m in ("dsc", "nsd") for k, v in (("liver", 94.06), ("spleen", 94.34))
    ]), key_of)
    return pd.concat([runs, baseline.assign(grid="native")], ignore_index=True)  # a delta needs the same grid


TERMS_DEMO = pd.DataFrame([(f"ct_{c}", ("abdomen",), False) for c in
                           ("aorta", "left kidney", "liver", "right kidney", "spleen")],
                          columns=["key", "regions", "abnormal"])


def test_demo_leaderboard_ranks_the_better_model_first():
    """Issue 15: ranking on the 2 classes shared with the baseline put coarse_net (69.7 mean) above careful_net
    (84.2); runs are now ranked on the 5 classes both runs cover."""
    entries = demo_situation()
    board, chosen, notes = ranked(entries, "class")
    assert chosen == "nnU-Nets (P)"
    assert board["method"].tolist()[:2] == ["careful_net", "coarse_net"]
    assert board["rank"].tolist()[:2] == [1, 2] and board["rank"].isna().tolist()[2:] == [True]
    assert board.loc[0, "common_dsc"] == pytest.approx(84.186) and board.loc[1, "common_dsc"] == pytest.approx(69.69)
    assert board.loc[1, "d_dsc"] > board.loc[0, "d_dsc"]  # the deltas on the 2 shared keys still show it
    assert any("on the 5 class keys all 2 of them cover" in n for n in notes)


def test_runs_of_other_grids_are_ranked_apart():
    entries = entries_of("A", "B")
    entries.loc[entries["method"] == "B", "grid"] = "satds"
    board = leaderboard(entries, "class")
    assert board["rank"].tolist() == [1, 1]
    assert any("ranked separately" in n for n in board_notes(board, "class", None))


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
    assert "| dsc | nnU-Nets (SAT) |" in result.stdout and "Lesion" in result.stdout
    assert "nnU-Nets: 3 classes, 3 datasets, 9 cases; native grid" in result.stderr
    assert "cross-grid" in result.stderr and result.stdout.splitlines()[-1].startswith("| ")
    result = runner.invoke(app, ["tables", *runs, "--by", "class", "--ci-seed", "0", "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    assert "ct_liver" in result.stdout and "mri_liver" in result.stdout and "[" in result.stdout
    result = runner.invoke(app, ["leaderboard", *runs, "--published", "sat-table3", "--published", "sat-table4"])
    assert result.exit_code == 0, result.output
    assert "deltas against nnU-Nets" in result.stdout and "ranked by DSC on the 3 class keys" in result.stderr
    assert "SAT-Pro (SAT)" in result.stdout and "not covered by any run left out" in result.stderr
    result = runner.invoke(app, ["compare", *map(str, run_dirs)])
    assert result.exit_code == 0, result.output
    assert "| dsc | 9 | 3 | 3 |" in result.stdout and "Holm" in result.stderr
    result = runner.invoke(app, ["tables", *runs, "--by", "organ"])
    assert result.exit_code == 2 and "organ" in result.output


def test_csv_and_latex_on_stdout_alone(run_dirs):
    """`> table.csv` parses (numbers stay numbers, intervals in lo/hi columns); `> table.tex` holds one tabular."""
    import io

    runs = [arg for path in run_dirs for arg in ("--run", str(path))]
    result = CliRunner().invoke(app, ["tables", *runs, "--by", "class", "--format", "csv", "--ci-seed", "0",
                                      "--n-boot", "20", "--published", "sat-table3"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert frame["class"].tolist() == ["ct_kidney tumor", "ct_liver", "mri_liver"]
    assert frame["dsc nnU-Nets"].dtype == float and frame["dsc nnU-Nets lo"].dtype == float
    assert (frame["dsc nnU-Nets lo"] <= frame["dsc nnU-Nets"]).all()
    assert "bootstrap" in result.stderr
    result = CliRunner().invoke(app, ["tables", *runs, "--format", "latex"])
    tex = result.stdout
    assert tex.startswith("% needs \\usepackage{booktabs}\n\\begin{tabular}") and tex.rstrip().endswith("\\end{tabular}")
    assert tex.count("\\begin{tabular}") == 1 and "\\underline{" in tex
    result = CliRunner().invoke(app, ["leaderboard", *runs, "--published", "sat-table3", "--format", "csv"])
    board = pd.read_csv(io.StringIO(result.stdout))
    assert board.loc[0, "method"] == "nnU-Nets" and board["common_dsc"].dtype == float


def test_choices_are_listed_in_help():
    for command in ("tables", "leaderboard", "report"):
        text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "sat|nan" in text and "--empty-policy" in text
    assert "md|markdown|csv|latex" in CliRunner().invoke(app, ["tables", "--help"], env={"COLUMNS": "200"}).output
    result = CliRunner().invoke(app, ["tables", "--run", "x", "--format", "html"])
    assert result.exit_code == 2 and "html" in result.output


def write_flagged_run(folder, name="flagged"):
    """Liver in 3 cases; case c2 has neither reference nor prediction of the liver (stored as 1 under sat)."""
    rows = pd.DataFrame([
        dict(run=name, model=name, dataset="KiTS23", case_id=f"c{i}", modality="CT", class_name="liver",
             dsc=d, nsd=d, ref_empty=i == 2, pred_empty=i == 2)
        for i, d in enumerate((0.8, 0.6, 1.0))
    ])
    path = folder / name
    path.mkdir()
    rows.to_parquet(path / "metrics.parquet")
    return path


def test_empty_policy_is_reapplied_from_the_flags(tmp_path):
    path = write_flagged_run(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["tables", "--run", str(path), "--by", "class"])
    assert "| ct_liver | 80.00 | 80.00 |" in result.stdout  # (0.8 + 0.6 + 1.0) / 3
    assert "flagged: 1 (case, class) rows empty in both reference and prediction, each scored 1" in result.stderr
    assert "3 cases" in result.stderr
    result = runner.invoke(app, ["tables", "--run", str(path), "--by", "class", "--empty-policy", "nan"])
    assert "| ct_liver | 70.00 | 70.00 |" in result.stdout  # the empty case left out
    assert "left out of means and counts (policy nan)" in result.stderr and "2 cases" in result.stderr
    result = runner.invoke(app, ["leaderboard", "--run", str(path), "--published", "sat-table3",
                                 "--empty-policy", "nan"])
    assert "| 70.00 |" in result.stdout
    plain = write_runs(tmp_path)[0]
    result = runner.invoke(app, ["tables", "--run", str(plain), "--empty-policy", "sat"])
    assert result.exit_code == 2 and "flags" in result.output


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


def write_spleen_run(folder, grid: str | None, dsc: float, n_cases: int = 8):
    """MSD_Spleen (8 test scans, one class) scored case by case, on the given grid (None: an older run without a
    grid column)."""
    rows = pd.DataFrame([
        {"run": f"spleen-{grid}", "model": "m", "dataset": "MSD_Spleen", "case_id": f"spleen_{i}", "modality": "CT",
         "class_name": "spleen", "dsc": dsc, "nsd": dsc, "ref_empty": False, "pred_empty": False}
        for i in range(n_cases)
    ])
    if grid is not None:
        rows["grid"] = grid
    path = folder / f"spleen-{grid}-{n_cases}"
    path.mkdir()
    rows.to_parquet(path / "metrics.parquet")
    return path


@pytest.mark.parametrize(("grid", "dsc", "marked"), [
    ("satds", 0.99, "**99.00**"),     # a complete test split on SAT's grid: compared with SAT's numbers, and best
    ("satds", 0.90, "**94.15**"),     # ... and SAT-Pro's 94.15 is marked above it
    (None, 0.99, None),               # an older run (native grid): cross-grid, nothing marked
])
def test_published_dataset_numbers_are_marked_only_on_the_same_grid_and_a_complete_split(tmp_path, grid, dsc, marked):
    path = write_spleen_run(tmp_path, grid, dsc)
    result = CliRunner().invoke(app, ["tables", "--run", str(path), "--by", "dataset", "--metric", "dsc",
                                      "--published", "sat-table2"])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.stdout.splitlines() if row.startswith("| MSD_Spleen |"))
    if marked:
        assert marked in line and line.count("**") == 2
    else:
        assert "**" not in line and "cross-grid" in result.stderr
        assert "spleen-None (native)" in result.stderr


def test_partial_split_is_not_marked_against_a_paper(tmp_path):
    path = write_spleen_run(tmp_path, "satds", 0.99, n_cases=3)
    result = CliRunner().invoke(app, ["tables", "--run", str(path), "--by", "dataset", "--metric", "dsc",
                                      "--published", "sat-table2"])
    line = next(row for row in result.stdout.splitlines() if row.startswith("| MSD_Spleen |"))
    assert "**" not in line and "complete test split" in result.stderr


def test_compare_says_when_the_protocols_differ(tmp_path):
    a, b = write_spleen_run(tmp_path, "satds", 0.9), write_spleen_run(tmp_path, "native", 0.8)
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "| dsc | 8 | 1 | 1 | 90.00 | 80.00 | -10.00 | [-10.00, -10.00] |" in result.stdout
    assert "another grid or empty policy (native, sat) than A (satds, sat)" in result.stderr


def test_compare_per_class_with_holm_over_classes(run_dirs):
    result = CliRunner().invoke(app, ["compare", *map(str, run_dirs), "--per-class"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ") and ("ct_" in line or "mri_" in line)]
    assert len(lines) == 6  # 3 classes x 2 metrics
    assert "Holm correction over all 6 tests" in result.stderr


def test_more_cases_than_the_test_split_is_not_the_papers_test_set(tmp_path):
    path = write_spleen_run(tmp_path, "satds", 0.99, n_cases=41)  # --split all: train cases too
    result = CliRunner().invoke(app, ["tables", "--run", str(path), "--by", "dataset", "--metric", "dsc",
                                      "--published", "sat-table2"])
    line = next(row for row in result.stdout.splitlines() if row.startswith("| MSD_Spleen |"))
    assert "**" not in line


def write_clicks(folder, name, dsc_by_case: dict, *, per_slice: bool = False, paper_era: bool = False):
    """A click run (`bench clicks` rows and a run.json naming its protocol): `dsc_by_case` maps (dataset, case)
    to the DSC after clicks 1, 2, ..."""
    rows = pd.DataFrame([
        dict(run=name, model=name, dataset=dataset, case_id=case, modality="CT", class_name="liver",
             prompt_policy="random_error", first_click="random_error", seed=0, click=k, dsc=dsc, nsd=dsc)
        for (dataset, case), scores in dsc_by_case.items() for k, dsc in enumerate(scores, 1)])
    path = folder / name
    path.mkdir()
    rows.to_parquet(path / "metrics.parquet")
    protocol = {"name": "p", "prompts": {"per_slice_axis": 2 if per_slice else None},
                "scoring": {"report": ["per_click", "final"] + (["max_over_clicks"] if paper_era else [])}}
    (path / "run.json").write_text(json.dumps({"run": name, "protocol": protocol}))
    return path


def test_tables_lay_click_runs_out_as_sam_med3d_table3_beside_the_paper(tmp_path):
    """Hand-computed: datasets first (D1 cases at 0.50 and 0.70, D2 at 0.30, plus 0.01 per click: 46 after one
    click, not the pooled 51); a per-slice run fills the kN row; a paper-era run gets its max-over-clicks row;
    the paper's rows are those of its Table 3."""
    plus = lambda base, n: [base + 0.01 * k for k in range(1, n + 1)]  # noqa: E731
    runs = [write_clicks(tmp_path, "sam3d", {("D1", "a1"): plus(0.5, 10), ("D1", "a2"): plus(0.7, 10),
                                             ("D2", "b1"): plus(0.3, 10)}),
            write_clicks(tmp_path, "sam2d", {("D1", "s1"): [0.2, 0.4, 0.6, 0.8, 1.0]}, per_slice=True),
            write_clicks(tmp_path, "paper", {("D1", "p1"): [0.4, 0.9] + [0.1] * 8}, paper_era=True)]
    args = ["tables", *(f"--run={run}" for run in runs), "--published", "sam-med3d-table3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = result.output.split("SAM-Med3D Table 3 layout")[1]
    assert "| sam3d | k points | 46.00 | 48.00 | 50.00 | 55.00 |" in table
    assert "| sam2d | k points per slice (kN) | 20.00 | 60.00 | 100.00 | - |" in table
    assert "| paper | k points | 40.00 | 10.00 | 10.00 | 10.00 |" in table
    assert "| paper | k points, max over clicks 1..k (paper-era) | 40.00 | 90.00 | 90.00 | 90.00 |" in table
    assert "| SAM-Med3D (SAM-Med3D paper, 1.5 mm grid) | k points | 49.91 | 56.38 | 58.57 | 60.94 |" in table
    assert "| SAM (SAM-Med3D paper, 1.5 mm grid) | k points per slice (kN) | 17.01 | 31.86 | 44.72 | - |" in table
    assert "1.5 mm crops" in result.output
    alone = CliRunner().invoke(app, ["tables", f"--run={runs[0]}"])
    assert "SAM-Med3D paper" not in alone.output and "| sam3d | k points | 46.00" in alone.output
    table4 = CliRunner().invoke(app, ["tables", f"--run={runs[0]}", "--published", "sam-med3d-table4"])
    assert table4.exit_code == 0 and "sam-med3d-table4 is not laid out" in table4.output


def write_distance_runs(folder) -> list:
    """Two runs with IoU and HD95 columns (as `bench evaluate --metrics iou,hd95` writes): 'near' has HD95 2 mm
    on every row, 'far' 5 mm, except one KiTS23 case of 'far' at 11 mm."""
    dirs = []
    for run, hd95 in (("near", 2.0), ("far", 5.0)):
        records = [
            dict(run=run, model=run, dataset=dataset, case_id=f"c{i}", modality="CT", class_name=name, dsc=0.8,
                 nsd=0.7, iou=0.6 if run == "near" else 0.5,
                 hd95_mm=11.0 if (run, dataset, i) == ("far", "KiTS23", 0) else hd95)
            for dataset, names, n in (("AbdomenCT1K", ("liver",), 2), ("KiTS23", ("liver", "kidney tumor"), 2))
            for i in range(n) for name in names
        ]
        path = folder / run
        path.mkdir()
        pd.DataFrame(records).to_parquet(path / "metrics.parquet")
        dirs.append(path)
    return dirs


def test_every_view_takes_metric_with_lower_is_better_for_distances(tmp_path):
    """--metric hd95: values in mm (not x100), datasets-first class means, the smallest marked best, the
    leaderboard ranked lowest first; --metric iou in percent; a metric the rows lack is a one-line error."""
    near, far = write_distance_runs(tmp_path)
    runs = ["--run", str(near), "--run", str(far)]
    runner = CliRunner()
    result = runner.invoke(app, ["tables", *runs, "--by", "class", "--metric", "hd95"])
    assert result.exit_code == 0, result.output
    # ct_liver of 'far': AbdomenCT1K 5, KiTS23 (11 + 5) / 2 = 8 -> datasets first: 6.5
    assert "| ct_liver | **2.00** | 6.50 |" in result.stdout
    assert "| ct_kidney tumor | **2.00** | 8.00 |" in result.stdout
    result = runner.invoke(app, ["tables", *runs, "--by", "class", "--metric", "iou"])
    assert "| ct_liver | **60.00** | 50.00 |" in result.stdout
    board = runner.invoke(app, ["leaderboard", *runs, "--metric", "hd95", "--published", "sat-table3"])
    assert board.exit_code == 0, board.output
    lines = [line for line in board.stdout.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert lines[0].startswith("| 1 | near") and lines[1].startswith("| 2 | far")
    assert "ranked by HD95_MM" in board.stderr and "lowest first" in board.stderr
    compared = runner.invoke(app, ["compare", str(near), str(far), "--metric", "hd95"])
    assert compared.exit_code == 0, compared.output
    assert "| hd95_mm | 4 |" in compared.stdout and "| 2.00 |" in compared.stdout
    missing = runner.invoke(app, ["tables", *runs, "--metric", "assd"])
    assert missing.exit_code == 2 and "no assd_mm column" in missing.output and "Traceback" not in missing.output
    unknown = runner.invoke(app, ["tables", *runs, "--metric", "hd99"])
    assert unknown.exit_code == 2 and "unknown --metric 'hd99'" in unknown.output


def test_report_takes_metric(tmp_path):
    near, far = write_distance_runs(tmp_path)
    result = CliRunner().invoke(app, ["report", "--run", str(near), "--run", str(far), "--out", str(tmp_path / "r"),
                                      "--metric", "hd95", "--pictures", "0", "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "index.html").read_text()
    assert "HD95_MM per region" in page and (tmp_path / "r" / "figures" / "regions_hd95_mm.png").is_file()


def test_report_has_a_lesion_section_when_rows_carry_lesion_columns(tmp_path):
    near, far = write_distance_runs(tmp_path)
    for path, found in ((near, 1), (far, 0)):
        rows = pd.read_parquet(path / "metrics.parquet")
        rows = rows.assign(lesions_lt100=2, found_lt100=found, lesions_100_1000=1, found_100_1000=1,
                           lesions_gt1000=0, found_gt1000=0, lesion_f1=0.5)
        rows.to_parquet(path / "metrics.parquet")
    result = CliRunner().invoke(app, ["report", "--run", str(near), "--run", str(far), "--out", str(tmp_path / "r"),
                                      "--metric", "lesion_f1", "--pictures", "0", "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Lesion detection by size" in page and (tmp_path / "r" / "figures" / "lesions_by_size.png").is_file()


def write_dataset_run(folder, name: str, dataset: str, organs: dict[str, float], config: dict | None = None):
    """A run on one dataset: two cases of each organ at the given DSC, as `bench evaluate` writes it."""
    rows = pd.DataFrame([dict(run=name, model=name, dataset=dataset, case_id=f"c{i}", modality="CT", class_name=c,
                              dsc=v, nsd=v, ref_empty=False, pred_empty=False)
                         for c, v in organs.items() for i in range(2)])
    path = folder / name
    path.mkdir()
    rows.to_parquet(path / "metrics.parquet")
    (path / "run.json").write_text(json.dumps({"run": name, "empty_policy": "nan", "grid": "native", **(config or {})}))
    return path


def test_leaderboard_ranks_only_on_dataset_class_pairs_every_ranked_run_covers(tmp_path):
    """A TotalSegmentator run and an AMOS run share class keys (liver, spleen) but no (dataset, class): they are
    not ranked against each other; the second is listed apart with the reason, and no delta crosses them."""
    ts = write_dataset_run(tmp_path, "ts-run", "TotalSegmentator", {"liver": 0.9, "spleen": 0.8})
    ts2 = write_dataset_run(tmp_path, "ts-other", "TotalSegmentator", {"liver": 0.7, "spleen": 0.95, "aorta": 0.2})
    amos = write_dataset_run(tmp_path, "amos-run", "AMOS22_CT", {"liver": 0.99, "spleen": 0.99})
    result = CliRunner().invoke(app, ["leaderboard", "--run", str(ts), "--run", str(ts2), "--run", str(amos),
                                      "--published", "sat-table3", "--baseline", "ts-run", "--format", "csv"])
    assert result.exit_code == 0, result.output
    board = pd.read_csv(__import__("io").StringIO(result.stdout)).set_index("method")
    assert board.loc["ts-run", "rank"] == 1 and board.loc["ts-other", "rank"] == 2  # 85 vs 82.5 on liver+spleen
    assert board.loc["ts-other", "common_dsc"] == pytest.approx(82.5) and board.loc["ts-run", "common_of"] == 2
    assert pd.isna(board.loc["amos-run", "rank"]) and pd.isna(board.loc["amos-run", "common_dsc"])
    assert pd.isna(board.loc["amos-run", "d_dsc"]) and board.loc["ts-other", "d_dsc"] == pytest.approx(-2.5)
    assert pd.isna(board.filter(like="(SAT)", axis=0)["d_dsc"]).all()  # the paper: another grid and policy
    assert "amos-run: not ranked, shares no (dataset, class) with the ranked runs" in result.stderr


def test_untrained_runs_are_marked_and_never_ranked_among_trained_runs(tmp_path):
    trained = write_dataset_run(tmp_path, "trained", "TotalSegmentator", {"liver": 0.5})
    random = write_dataset_run(tmp_path, "random", "TotalSegmentator", {"liver": 0.9}, {"untrained": True})
    runner = CliRunner()
    result = runner.invoke(app, ["leaderboard", "--run", str(trained), "--run", str(random), "--published",
                                 "sat-table3"])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.stdout.splitlines() if "random (untrained)" in row)
    assert line.startswith("| - |")
    assert next(row for row in result.stdout.splitlines() if "| trained " in row).startswith("| 1 |")
    assert "random (untrained): not ranked, made with random weights" in result.stderr
    tables_result = runner.invoke(app, ["tables", "--run", str(trained), "--run", str(random), "--by", "class"])
    assert "random (untrained)" in tables_result.stdout


def test_latex_says_it_needs_booktabs_and_long_tables_use_longtable():
    small = pd.DataFrame({"DSC": [90.0, 80.0]}, index=pd.Index(["liver", "spleen"], name="class"))
    text = tables.render(small, "latex", best=small.astype(bool) & False)
    assert text.splitlines()[0].startswith("%") and r"\usepackage{booktabs}" in text.splitlines()[0]
    assert r"\begin{tabular}{lr}" in text and "longtable" not in text
    catalog_classes = sorted(load_catalog().terms["key"])[:119]  # a class table as long as SAT's Table 3
    long = pd.DataFrame({"DSC": np.linspace(50, 90, 119)}, index=pd.Index(catalog_classes, name="class"))
    text = tables.render(long, "latex", best=long.astype(bool) & False)
    assert r"\usepackage{longtable}" in text.splitlines()[0] and r"\begin{longtable}{lr}" in text
    assert r"\endhead" in text and text.rstrip().endswith(r"\end{longtable}") and text.count(r"\\") == 120


def test_markdown_is_accepted_as_a_format_name(run_dirs):
    runs = [arg for path in run_dirs for arg in ("--run", str(path))]
    for command in ("tables", "leaderboard"):
        md = CliRunner().invoke(app, [command, *runs, "--format", "md"])
        markdown = CliRunner().invoke(app, [command, *runs, "--format", "markdown"])
        assert markdown.exit_code == 0, markdown.output
        assert markdown.stdout == md.stdout
