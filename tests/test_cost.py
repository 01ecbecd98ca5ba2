"""Cost beside accuracy: a weightless model with a known cost per call run through `bench clicks` and `bench run`,
its recorded seconds, CPU seconds and peak memory checked within (generous: the machine is shared) tolerances,
its warm-up call kept apart; a model sleeping a known time per phase (preprocessing, model, postprocessing): its
phase seconds recorded per call, empty for a model that reports none; the batch settings in run.json and runs
measured under different settings marked; NoC and Dice-per-second from hand-built click curves; the time limit
zeroing exactly the cases above it, re-applied from the stored seconds by `bench tables --cost`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bench.engine.runner as runner
from bench.cli.app import app
from bench.views.cost import cost_table, dice_per_second
from bench.data.io import write_volume
from models.base import Capabilities, Model, phase, recorded_phases
from models.registry import register_model, unregister_model
from protocols.cost import apply_time_limit, clicks_to_reach, noc_per_target, noc_summary

SLEEP_S, CPU_S, ARRAY_MB, FIRST_SLEEP_S = 0.15, 0.1, 64, 0.6
PRE_S, MODEL_S, POST_S = 0.05, 0.2, 0.1


class KnownCost(Model):
    """Sleeps `SLEEP_S` times the image's maximum per call (the first call of the object `FIRST_SLEEP_S` more:
    its loading), burns `CPU_S` of CPU time, and holds a touched array of `ARRAY_MB` during the call; returns the
    box (or an empty mask without one)."""

    name = "known-cost"
    version = "1"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"points", "boxes"}), accumulates_clicks=True)

    def __init__(self):
        self.calls = 0

    def _segment(self, image, targets, state):
        time.sleep(SLEEP_S * float(image.array.max()) + (FIRST_SLEEP_S if self.calls == 0 else 0.0))
        self.calls += 1
        held = np.ones(ARRAY_MB * 2**20 // 8)  # float64: ARRAY_MB megabytes, every page written
        start = time.process_time()
        while time.process_time() - start < CPU_S:
            held[:1024] += 1.0
        return {target.name: box_mask(image.shape, target.prompt.boxes) for target in targets}


class PhasedCost(KnownCost):
    """Reports its phases: sleeps `PRE_S` preprocessing, `MODEL_S` in its model (the first call of the object
    `FIRST_SLEEP_S` more), `POST_S` postprocessing; the box as its mask. Its windows per pass: 3."""

    name = "phased-cost"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"points", "boxes"}), accumulates_clicks=True,
                                reports_phases=True)

    def batch_settings(self) -> dict:
        return {"windows_per_pass": 3}

    def _segment(self, image, targets, state):
        with phase("preprocess"):
            time.sleep(PRE_S)
        with phase("model"):
            time.sleep(MODEL_S + (FIRST_SLEEP_S if self.calls == 0 else 0.0))
            self.calls += 1
        with phase("postprocess"):
            time.sleep(POST_S)
            return {target.name: box_mask(image.shape, target.prompt.boxes) for target in targets}


def box_mask(shape, boxes) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for box in boxes:
        mask[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))] = True
    return mask


@pytest.fixture(autouse=True)
def known_cost():
    register_model("known-cost")(KnownCost)
    register_model("phased-cost")(PhasedCost)
    runner.PROCESS_MODELS.clear()
    yield
    runner.PROCESS_MODELS.clear()
    unregister_model("known-cost")
    unregister_model("phased-cost")


def _folders(tmp_path, levels: dict[str, float]) -> tuple:
    """One 16^3 case per entry: image filled with the level (the sleep factor), a cube of label 1, a slab of 2."""
    images, refs = tmp_path / "images", tmp_path / "refs"
    images.mkdir(), refs.mkdir()
    for case, level in levels.items():
        label = np.zeros((16, 16, 16), np.uint8)
        label[4:12, 4:12, 5:11] = 1
        label[:, :, 13:15] = 2
        write_volume(images / f"{case}_0000.nii.gz", np.full(label.shape, level, np.float32), np.eye(4))
        write_volume(refs / f"{case}.nii.gz", label, np.eye(4))
    return images, refs


def _fresh_bench(*args: str) -> subprocess.CompletedProcess:
    """`bench ARGS` with the known-cost model in a fresh process: an RSS increase is only seen where the array's
    pages are new to the process (a long test session may already hold freed pages that malloc hands out again)."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from test_cost import KnownCost; "
              "from models.registry import register_model; register_model('known-cost')(KnownCost); "
              "from bench.cli.app import app; app(sys.argv[2:])")
    return subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent), *args], capture_output=True,
                          text=True, cwd=Path(__file__).parent.parent, timeout=300)


def test_click_run_records_seconds_cpu_memory_and_the_warm_up_apart(tmp_path):
    images, refs = _folders(tmp_path, {"a": 1.0})
    out = tmp_path / "run"
    result = _fresh_bench("clicks", "--modality", "CT", "--model", "known-cost", "--images", str(images), "--refs",
                          str(refs), "--labels", "1=cube", "--n-clicks", "4", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = pd.read_parquet(out / "metrics.parquet").sort_values("click")
    first, later = rows.iloc[0], rows.iloc[1:]
    assert first["warmup_seconds"] == first["seconds"] >= SLEEP_S + FIRST_SLEEP_S
    assert later["warmup_seconds"].isna().all()
    assert later["seconds"].between(SLEEP_S + CPU_S, SLEEP_S + CPU_S + 1.5).all()
    assert later["cpu_seconds"].between(CPU_S, CPU_S + 0.5).all()  # the sleep costs no CPU
    assert (later["cpu_seconds"] < later["seconds"] - SLEEP_S / 2).all()
    assert rows["peak_rss_mb"].between(ARRAY_MB - 4, ARRAY_MB + 200).all() and rows["peak_gpu_mb"].isna().all()
    cost = json.loads((out / "run.json").read_text())["cost"]
    assert cost["device"] == "cpu" and cost["warmup_seconds"] == [pytest.approx(first["seconds"])]
    assert cost["load_seconds"] < 1.0 and cost["rss"].startswith("VmHWM")
    table, _ = cost_table([out])
    (record,) = table.to_dict("records")
    assert record["s/call"] == pytest.approx(later["seconds"].median())  # the warm-up left out
    assert record["s/case"] == pytest.approx(later["seconds"].sum())
    assert record["warm-up s"] == pytest.approx(first["seconds"])


def test_static_run_shares_one_call_between_its_targets(tmp_path):
    images, refs = _folders(tmp_path, {"a": 1.0, "b": 1.0})
    out = tmp_path / "run"
    result = _fresh_bench("run", "--model", "known-cost", "--images", str(images), "--refs", str(refs),
                          "--labels", "1=cube,2=slab", "--modality", "CT", "--protocol", "segvol", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = pd.read_parquet(out / "metrics.parquet").sort_values(["case_id", "class_name"])
    assert rows["warmup_seconds"].notna().tolist() == [True, True, False, False]  # case a had the first call
    b = rows[rows["case_id"] == "b"]
    assert b["seconds"].iloc[0] == b["seconds"].iloc[1] and b["seconds"].sum() >= SLEEP_S + CPU_S
    assert b["cpu_seconds"].sum() == pytest.approx(CPU_S, abs=0.5)
    assert b["peak_rss_mb"].iloc[0] >= ARRAY_MB - 4
    table, _ = cost_table([out])
    assert table["s/case"].iloc[0] == pytest.approx(b["seconds"].sum())  # case b only: a held the warm-up
    assert table["s/call"].iloc[0] == pytest.approx(b["seconds"].sum())


def test_noc_counts_the_first_click_reaching_the_target_and_caps_the_others():
    assert clicks_to_reach([0.5, 0.86, 0.95], [1, 2, 3], 0.85) == (2, True)
    assert clicks_to_reach([0.5, 0.86, 0.95], [1, 2, 3], 0.90) == (3, True)
    assert clicks_to_reach([0.5, 0.86, 0.88], [1, 2, 3], 0.90) == (3, False)  # the cap, a failure
    assert clicks_to_reach([0.9, 0.8, 0.95], [0, 1, 2], 0.85) == (0, True)  # the box alone reached it
    curves = {("c1", "liver"): [0.86, 0.9, 0.92], ("c1", "spleen"): [0.2, 0.5, 0.84], ("c2", "liver"): [0.1, 0.9, 0.91]}
    rows = pd.DataFrame([{"run": "r", "model": "m", "case_id": case, "class_name": name, "click": k + 1, "dsc": dsc}
                         for (case, name), values in curves.items() for k, dsc in enumerate(values)])
    per_target = noc_per_target(rows).set_index(["case_id", "class_name"])
    assert per_target["noc@85"].to_dict() == {("c1", "liver"): 1, ("c1", "spleen"): 3, ("c2", "liver"): 2}
    assert per_target["reached@85"].to_dict() == {("c1", "liver"): True, ("c1", "spleen"): False,
                                                  ("c2", "liver"): True}
    (summary,) = noc_summary(noc_per_target(rows)).to_dict("records")
    assert summary["NoC@85"] == pytest.approx((1 + 3 + 2) / 3) and summary["NoF@85"] == 1
    assert summary["NoC@90"] == pytest.approx((2 + 3 + 2) / 3) and summary["NoF@90"] == 1
    assert summary["targets"] == 3


def test_time_limit_zeroes_exactly_the_cases_above_it():
    seconds = {"fast": [40.0, 50.0], "edge": [90.0, 90.0], "slow": [100.0, 81.0]}  # two classes: limit 180 s
    rows = pd.DataFrame([{"run": "r", "dataset": "d", "case_id": case, "class_name": f"k{i}", "dsc": 0.8, "nsd": 0.7,
                          "seconds": s} for case, values in seconds.items() for i, s in enumerate(values)])
    limited = apply_time_limit(rows, 90.0).set_index(["case_id", "class_name"])
    assert limited["over_time_limit"].groupby("case_id").all().to_dict() == {"edge": False, "fast": False,
                                                                             "slow": True}
    assert (limited.loc["slow", ["dsc", "nsd"]] == 0).all().all()
    assert (limited.loc[["fast", "edge"], "dsc"] == 0.8).all() and (rows["dsc"] == 0.8).all()  # rows unchanged


def test_stored_time_limit_flag_is_reapplied_by_tables_cost(tmp_path):
    """`bench clicks --time-limit` under the SegFM preset with a 2 s limit: the slow case (3 calls of 1 s
    and more) is over it, the fast one (3 calls of 0.1 s, and the warm-up's 0.6 s) is not; run.json stores the flag, and `bench tables --cost` re-applies it
    from the stored seconds, without running the model."""
    preset = Path(__file__).parents[1] / "protocols" / "presets" / "segfm-cvpr25.yaml"
    protocol = tmp_path / "segfm-2s.yaml"
    protocol.write_text(preset.read_text().replace("time_limit_s_per_class: 90", "time_limit_s_per_class: 2"))
    images, refs = _folders(tmp_path, {"fast": 0.0, "slow": 6.0})
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["clicks", "--modality", "CT", "--model", "known-cost", "--protocol", str(protocol), "--images",
                                      str(images), "--refs", str(refs), "--labels", "1=cube", "--n-clicks", "2",
                                      "--out", str(out), "--time-limit"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["time_limit"] is True
    stored = pd.read_parquet(out / "metrics.parquet")
    totals = stored.groupby("case_id")["seconds"].sum()
    assert totals["slow"] > 3 * (6 * SLEEP_S + CPU_S) and totals["fast"] < 2.0
    table, notes = cost_table([out])
    final_dsc = stored[stored["click"] == 2].set_index("case_id")["dsc"]
    assert table["DSC"].iloc[0] == pytest.approx(100 * final_dsc["fast"] / 2)  # slow scored 0
    assert any("time limit 2 s per class re-applied" in note and "1 case(s)" in note for note in notes)
    shown = CliRunner().invoke(app, ["tables", "--cost", "--run", str(out), "--noc-targets", "50,99"])
    assert shown.exit_code == 0, shown.output
    assert "NoC@50" in shown.output and "NoF@99" in shown.output and "s/call" in shown.output
    from bench.views.runs import load_runs

    clicks = load_runs([out]).clicks  # every view reads the runs so: the click tables and the report's curves too
    assert (clicks.loc[clicks["case_id"] == "slow", ["dsc", "nsd"]] == 0).all().all()
    assert clicks.loc[clicks["case_id"] == "fast", "dsc"].tolist() == stored.loc[stored["case_id"] == "fast", "dsc"].tolist()
    assert any("time limit 2 s per class re-applied" in note for note in load_runs([out]).notes)
    refused = CliRunner().invoke(app, ["tables", "--cost", "--run", str(out), "--noc-targets", "85,x"])
    assert refused.exit_code == 2 and "--noc-targets '85,x'" in refused.output


def test_leaderboard_cost_puts_the_runs_cost_beside_dsc_nsd_and_the_click_runs_below(tmp_path):
    images, refs = _folders(tmp_path, {"a": 1.0})
    out, clicks, scored = tmp_path / "run", tmp_path / "clicks", tmp_path / "scored"
    ran = CliRunner().invoke(app, ["run", "--modality", "CT", "--model", "known-cost", "--images", str(images), "--refs", str(refs),
                                   "--labels", "1=cube,2=slab", "--modality", "CT", "--protocol", "segvol",
                                   "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    ran = CliRunner().invoke(app, ["clicks", "--modality", "CT", "--model", "known-cost", "--images", str(images),
                                   "--refs", str(refs), "--labels", "1=cube", "--n-clicks", "2", "--out", str(clicks)])
    assert ran.exit_code == 0, ran.output
    ran = CliRunner().invoke(app, ["evaluate", "--pred", str(refs), "--ref", str(refs), "--labels", "1=cube,2=slab",
                                   "--dataset", "d", "--modality", "CT", "--out", str(scored)])
    assert ran.exit_code == 0, ran.output
    runs = ["--run", str(out), "--run", str(clicks), "--run", str(scored)]
    shown = CliRunner().invoke(app, ["leaderboard", *runs, "--published", "sat-table2", "--cost"])
    assert shown.exit_code == 0, shown.output
    board, cost = shown.output.split("Cost of the runs")
    header = next(line for line in board.splitlines() if line.startswith("| rank"))
    assert header.index("NSD (own)") < header.index("s/case") < header.index("s/call") < header.index("peak RSS MB")
    seconds = cost_table([out])[0]["s/case"].iloc[0]
    assert f"| {seconds:.3g} |" in next(line for line in board.splitlines() if "| run |" in line)
    assert "scored |" in board and "| clicks | known-cost | cpu | 1 |" in cost and "NoC@85" in cost
    assert "clicks: a click run, not ranked here" in shown.output  # said, not dropped silently
    assert "its only model call was the warm-up" in shown.output  # one case, one call: said, not hidden
    csv = CliRunner().invoke(app, ["leaderboard", *runs, "--cost", "--format", "csv"])
    assert csv.exit_code == 0 and "s/case" in csv.output.splitlines()[0]


def test_a_scored_prediction_folder_has_no_model_time_in_the_cost_views(tmp_path):
    """`bench evaluate` rows hold the scoring's seconds, the same for every class of a case: no model cost."""
    from bench.views.report.cost import cost_sections

    images, refs = _folders(tmp_path, {"a": 1.0, "b": 1.0})
    scored = tmp_path / "scored"
    ran = CliRunner().invoke(app, ["evaluate", "--pred", str(refs), "--ref", str(refs), "--labels", "1=cube,2=slab",
                                   "--dataset", "d", "--modality", "CT", "--out", str(scored)])
    assert ran.exit_code == 0, ran.output
    assert pd.read_parquet(scored / "metrics.parquet")["seconds"].gt(0).all()
    table, notes = cost_table([scored])
    (record,) = table.to_dict("records")
    assert record["DSC"] == 100 and record["cases"] == 2
    assert all(np.isnan(record[column]) for column in ("s/case", "s/call", "CPU s/call", "peak RSS MB"))
    assert any(note.startswith("scored: no model calls measured") for note in notes)
    sections, _ = cost_sections([scored], tmp_path / "report", "figures", np.random.default_rng(0), 10)
    assert [title for title, _ in sections] == ["Cost beside accuracy"]  # no point without model seconds


def test_report_draws_accuracy_vs_time_click_latency_and_dice_per_second(tmp_path):
    from bench.views.report.write import write_report

    images, refs = _folders(tmp_path, {"a": 1.0})
    out = tmp_path / "run"
    ran = CliRunner().invoke(app, ["clicks", "--modality", "CT", "--model", "known-cost", "--images", str(images), "--refs", str(refs),
                                   "--labels", "1=cube", "--n-clicks", "3", "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    index = write_report([out], tmp_path / "report", pictures=0, n_boot=10)
    html = index.read_text()
    assert "Cost beside accuracy" in html and "NoF@85" in html
    for stem in ("cost_accuracy_vs_time", "cost_click_latency", "cost_dice_per_second"):
        assert (tmp_path / "report" / "figures" / f"{stem}.svg").is_file() and f"figures/{stem}.svg" in html


PHASE_COLUMNS = ["preprocess_seconds", "model_seconds", "postprocess_seconds"]


def test_phases_are_recorded_only_inside_a_recording_and_only_under_their_names():
    with phase("model"):  # no recording: nothing to add to, nothing raised
        pass
    with recorded_phases() as outer:
        with phase("preprocess"):
            time.sleep(0.02)
        with recorded_phases() as inner:
            with phase("postprocess"):
                time.sleep(0.02)
        with phase("preprocess"):
            time.sleep(0.02)
    assert outer["preprocess"] >= 0.04 and outer["model"] == 0.0 and outer["postprocess"] == 0.0
    assert inner["postprocess"] >= 0.02 and inner["preprocess"] == 0.0
    with pytest.raises(ValueError, match="unknown phase 'decode'"):
        with phase("decode"):
            pass


def test_click_run_records_each_calls_phases_and_the_warm_up_apart(tmp_path):
    images, refs = _folders(tmp_path, {"a": 1.0})
    out, plain = tmp_path / "run", tmp_path / "plain"
    for model, folder in (("phased-cost", out), ("known-cost", plain)):
        result = CliRunner().invoke(app, ["clicks", "--modality", "CT", "--model", model, "--images", str(images),
                                          "--refs", str(refs), "--labels", "1=cube", "--n-clicks", "3",
                                          "--out", str(folder)])
        assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out / "metrics.parquet").sort_values("click")
    first, later = rows.iloc[0], rows.iloc[1:]
    assert first["warmup_seconds"] == first["seconds"] and first["model_seconds"] >= MODEL_S + FIRST_SLEEP_S
    for column, expected in zip(PHASE_COLUMNS, (PRE_S, MODEL_S, POST_S)):
        assert later[column].between(expected, expected + 0.5).all(), column
    assert (rows[PHASE_COLUMNS].sum(axis=1) <= rows["seconds"]).all()
    assert pd.read_parquet(plain / "metrics.parquet")[PHASE_COLUMNS].isna().all().all()  # not reported: empty, not 0
    table, _ = cost_table([out, plain])
    phased, known = table.to_dict("records")
    assert phased["pre s/call"] == pytest.approx(later["preprocess_seconds"].median())  # the warm-up left out
    assert phased["model s/call"] == pytest.approx(later["model_seconds"].median())
    assert phased["post s/call"] == pytest.approx(later["postprocess_seconds"].median())
    assert all(np.isnan(known[column]) for column in ("pre s/call", "model s/call", "post s/call"))
    shown = CliRunner().invoke(app, ["tables", "--cost", "--run", str(out), "--run", str(plain)])
    assert shown.exit_code == 0, shown.output
    assert "| pre s/call | model s/call | post s/call |" in shown.output
    without = CliRunner().invoke(app, ["tables", "--cost", "--run", str(plain)])
    assert "pre s/call" not in without.output  # no run reports phases: no phase columns


def _phased_static_run(tmp_path) -> tuple[Path, Path, Path]:
    """`bench run` of the phased-cost model under the static segvol protocol on two cases of two classes:
    (images, references, run folder)."""
    images, refs = _folders(tmp_path, {"a": 1.0, "b": 1.0})
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--model", "phased-cost", "--images", str(images), "--refs", str(refs),
                                      "--labels", "1=cube,2=slab", "--modality", "CT", "--protocol", "segvol",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    return images, refs, out


def test_static_run_shares_the_calls_phases_between_its_targets(tmp_path):
    _, _, out = _phased_static_run(tmp_path)
    b = pd.read_parquet(out / "metrics.parquet").query("case_id == 'b'")
    assert (b[PHASE_COLUMNS].iloc[0] == b[PHASE_COLUMNS].iloc[1]).all()
    assert b["model_seconds"].sum() == pytest.approx(MODEL_S, abs=0.5) and b["model_seconds"].sum() >= MODEL_S
    table, _ = cost_table([out])
    assert table["model s/call"].iloc[0] == pytest.approx(b["model_seconds"].sum())  # one call: its shares summed


def test_run_json_records_the_batch_settings_and_tables_mark_runs_measured_under_others(tmp_path):
    images, refs, out = _phased_static_run(tmp_path)
    cost = json.loads((out / "run.json").read_text())["cost"]
    assert cost["batch"] == {"executor": "local", "workers": 1, "targets_per_call": None, "windows_per_pass": 3}
    same, threads, windows = tmp_path / "same", tmp_path / "threads", tmp_path / "windows"
    for copy, change in ((same, {}), (threads, {"torch_threads": 99, "batch": {**cost["batch"], "workers": 2}}),
                         (windows, {"batch": {**cost["batch"], "windows_per_pass": 1}})):
        copy.mkdir()
        (copy / "metrics.parquet").write_bytes((out / "metrics.parquet").read_bytes())
        config = json.loads((out / "run.json").read_text())
        config["cost"].update(change)
        (copy / "run.json").write_text(json.dumps(config))
    table, notes = cost_table([out, same])
    assert "settings" not in table.columns and not any("settings" in note for note in notes)
    table, notes = cost_table([out, same, threads])
    assert table["settings"].tolist() == ["A", "A", "B"]
    (note,) = [note for note in notes if note.startswith("cost measured under different settings")]
    assert "torch_threads (A: " in note and "batch.workers (A: 1; B: 2)" in note and "device" not in note
    table, notes = cost_table([out, windows, threads])  # the model's own settings: A1 and A2
    assert table["settings"].tolist() == ["A1", "A2", "B"]
    assert any("phased-cost under settings A: its own settings differ" in note
               and "batch.windows_per_pass (A1: 3; A2: 1)" in note for note in notes)
    plain = tmp_path / "plain"
    result = CliRunner().invoke(app, ["run", "--model", "known-cost", "--images", str(images), "--refs", str(refs),
                                      "--labels", "1=cube,2=slab", "--modality", "CT", "--protocol", "segvol",
                                      "--out", str(plain)])
    assert result.exit_code == 0, result.output
    table, notes = cost_table([out, plain])  # another model: its own settings (none here) are not compared
    assert "settings" not in table.columns and not any("settings" in note for note in notes)


def _click_rows(curves: dict, seconds: dict, warm: tuple = ()) -> pd.DataFrame:
    return pd.DataFrame([{"run": "r", "model": "m", "dataset": "d", "case_id": case, "class_name": name,
                          "click": k, "dsc": dsc, "nsd": dsc, "seconds": seconds[case, name][k],
                          "warmup_seconds": seconds[case, name][k] if (case, name, k) in warm else np.nan}
                         for (case, name), values in curves.items() for k, dsc in enumerate(values)])


def test_dice_per_second_is_the_median_dsc_against_the_median_cumulative_seconds():
    curves = {("c1", "liver"): [0.2, 0.6, 0.9], ("c1", "spleen"): [0.4, 0.5, 0.5], ("c2", "liver"): [0.1, 0.7, 0.8]}
    seconds = {("c1", "liver"): [1.0, 2.0, 3.0], ("c1", "spleen"): [2.0, 1.0, 0.0], ("c2", "liver"): [4.0, 4.0, 1.0]}
    curve = dice_per_second(_click_rows(curves, seconds))
    assert curve["click"].tolist() == [0, 1, 2] and curve["targets"].tolist() == [3, 3, 3]
    assert curve["seconds"].tolist() == [2.0, 3.0, 6.0]  # cumulative: (1, 2, 4), (3, 3, 8), (6, 3, 9)
    assert curve["DSC"].tolist() == pytest.approx([20.0, 60.0, 80.0])
    warmed = dice_per_second(_click_rows(curves, seconds, warm=(("c2", "liver", 0),)))
    assert warmed["targets"].tolist() == [2, 2, 2]  # the target holding the warm-up left out
    assert warmed["seconds"].tolist() == [1.5, 3.0, 4.5] and warmed["DSC"].tolist() == pytest.approx([30, 55, 70])
    assert dice_per_second(_click_rows(curves, seconds).assign(click=np.nan)).empty  # not a click run


def test_accuracy_vs_time_points_carry_the_dsc_interval_over_cases_and_the_seconds_quartiles():
    """Hand-built one-shot rows: case a (DSC 0.9, 0.7; 1 s), b (0.5, 0.3; 3 s), c (0.1, NaN; 5 s). The point's DSC
    is the cost table's mean over (case, class) rows; its interval resamples cases, so it lies within the means
    of the replicates drawing one case only (10 and 80) and, with n_boot large, spans more than a point."""
    from bench.views.report.cost import accuracy_point

    values = {"a": ([0.9, 0.7], 1.0), "b": ([0.5, 0.3], 3.0), "c": ([0.1, np.nan], 5.0)}
    rows = pd.DataFrame([{"run": "r", "model": "m", "dataset": "d", "case_id": case, "class_name": f"k{i}",
                          "dsc": dsc, "nsd": dsc, "seconds": seconds / 2, "cpu_seconds": seconds / 2}
                         for case, (dscs, seconds) in values.items() for i, dsc in enumerate(dscs)])
    point = accuracy_point(rows, np.random.default_rng(0), 500)
    assert point["DSC"] == pytest.approx(100 * (0.9 + 0.7 + 0.5 + 0.3 + 0.1) / 5)
    assert point["median"] == 3.0 and point["q1"] == 2.0 and point["q3"] == 4.0
    assert 10.0 - 1e-9 <= point["DSC_lo"] < point["DSC"] < point["DSC_hi"] <= 80.0 + 1e-9
    assert accuracy_point(rows.assign(cpu_seconds=np.nan), np.random.default_rng(0), 10) is None  # no model time


def test_case_memory_resets_the_cuda_peak_per_case_and_reads_it_at_the_end(monkeypatch):
    """Without a GPU here: a stand-in for torch.cuda records the calls; the peak is reset as a case starts and read
    (in MB) as it ends, so each case's figure is its own."""
    import bench.engine.meter as meter

    class FakeCuda:
        def __init__(self):
            self.calls, self.peak = [], 0

        def reset_peak_memory_stats(self):
            self.calls.append("reset")
            self.peak = 0

        def max_memory_allocated(self):
            self.calls.append("read")
            return self.peak

    cuda = FakeCuda()
    monkeypatch.setattr(meter, "_cuda", lambda: cuda)
    for allocated in (300, 100):  # the second case's smaller peak is not hidden by the first's
        with meter.CaseMemory() as memory:
            cuda.peak = allocated * meter.MB
        assert memory.peak_gpu_mb == allocated
    assert cuda.calls == ["reset", "read", "reset", "read"]
