"""`bench evaluate` end to end: matching, class maps, rows, errors that write nothing, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.cli.app import app
from bench.data.io import write_volume
from bench.engine import store
from bench.engine.upgrade import upgraded
from bench.views.runs import stored_policy
from protocols.case import evaluate_case

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])
CLASSES = {"liver": 1, "spleen": 2, "kidney": 3}
SPACING = tuple(float(np.float32(s)) for s in (0.8, 0.8, 2.5))  # as stored in a NIfTI header


def _case(rng, shape=(30, 28, 10)):
    ref = np.zeros(shape, np.uint8)
    ref[4:16, 3:15, 2:8] = 1
    ref[18:26, 16:25, 1:6] = 2
    ref[2:8, 20:26, 4:9] = 3
    pred = np.roll(ref, tuple(rng.integers(-2, 3, 3)), axis=(0, 1, 2))
    return pred, ref


def _folders(root, n_cases=3, seed=0, shape=(30, 28, 10)):
    rng = np.random.default_rng(seed)
    cases = {}
    for index in range(n_cases):
        pred, ref = _case(rng, shape)
        name = f"case_{index:03d}"
        write_volume(root / "ref" / f"{name}.nii.gz", ref, AFFINE)
        write_volume(root / "pred" / f"{name}.nii.gz", pred, AFFINE)
        cases[name] = (pred, ref)
    (root / "classes.json").write_text(json.dumps(CLASSES))
    return cases


def _evaluate(root, *extra):
    named = [] if "--dataset" in extra else ["--dataset", "d"]
    named += [] if "--modality" in extra else ["--modality", "CT"]
    args = ["evaluate", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "--out", str(root / "out"),
            *named, *extra]
    return CliRunner().invoke(app, args)


def _scoring(out) -> dict:
    """The scoring settings run.json records (the evaluate protocol's)."""
    return json.loads((out / "run.json").read_text())["protocol"]["scoring"]


def test_a_run_folder_of_the_earlier_run_json_shape_resumes_and_reads_the_same(tmp_path):
    """Before the one spec, bench evaluate wrote its scoring settings as top-level run.json fields: such a folder
    resumes under the same settings (nothing re-scored), is refused under other ones, and its views read the
    policy it was scored with."""
    _folders(tmp_path, n_cases=1)
    first = _evaluate(tmp_path, "--labels", "1=liver,2=spleen", "--tolerance", "2", "--empty-policy", "sat")
    assert first.exit_code == 0, first.output
    config = json.loads((tmp_path / "out" / "run.json").read_text())
    old = {key: value for key, value in config.items() if key != "protocol"}
    old.update(tolerance_mm=2.0, empty_policy="sat", grid="native", distances=False)  # as the old as_config wrote
    (tmp_path / "out" / "run.json").write_text(json.dumps(old))
    again = _evaluate(tmp_path, "--labels", "1=liver,2=spleen", "--tolerance", "2", "--empty-policy", "sat")
    assert again.exit_code == 0, again.output
    assert "scored 0 case(s), 1 stored with unchanged inputs" in again.output
    assert store.read_config(tmp_path / "out")["protocol"] == json.loads(json.dumps(config["protocol"]))
    (tmp_path / "out" / "run.json").write_text(json.dumps(old))
    other = _evaluate(tmp_path, "--labels", "1=liver,2=spleen", "--empty-policy", "sat")
    assert other.exit_code == 2 and "(protocol.scoring.tolerance_mm)" in other.output and "Traceback" not in other.output
    assert stored_policy(store.read_config(tmp_path / "out")) == "sat"
    old.update(empty_policy="nan")
    assert stored_policy(upgraded(old)) == "nan" and upgraded(old)["protocol"]["scoring"]["tolerance_mm"] == 2.0


def test_rows_match_evaluate_case(tmp_path):
    cases = _folders(tmp_path)
    result = _evaluate(tmp_path, "--classes", str(tmp_path / "classes.json"), "--model", "m", "--dataset", "d")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert len(table) == 3 * 3 and not table.duplicated(["case_id", "class_name"]).any()
    assert set(table.model) == {"m"} and set(table.dataset) == {"d"} and set(table.spacing) == {"0.8x0.8x2.5"}
    for case_id, (pred, ref) in cases.items():
        expected = evaluate_case(pred, ref, SPACING, CLASSES)
        rows = table[table.case_id == case_id].set_index("class_name")
        for score in expected:
            assert rows.loc[score.class_name, "dsc"] == score.dsc
            assert rows.loc[score.class_name, "nsd"] == score.nsd
    assert "liver" in result.output and "NSD" in result.output


def test_inline_labels_channel_suffix_and_unscored_references(tmp_path):
    _folders(tmp_path, n_cases=2)
    (tmp_path / "pred" / "case_000.nii.gz").rename(tmp_path / "pred" / "case_000_0000.nii.gz")
    (tmp_path / "pred" / "case_001.nii.gz").unlink()
    result = _evaluate(tmp_path, "--labels", "1=liver,2=spleen,3=kidney,1+2=liver_or_spleen")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert set(table.case_id) == {"case_000"} and len(table) == 4
    assert "1 reference(s) without prediction" in result.output and "case_001" in result.output


def test_all_digit_four_digit_case_ids_and_their_channel_tag(tmp_path):
    """Real case ids of four digits (`0001`, `1234`, `0000`): a prediction `1234_0000.nii.gz` is case `1234` (the
    tag is stripped, not mistaken for the id), `0000_0000.nii.gz` is case `0000`, and the ids stay strings with
    their leading zeros through the rows and the resume."""
    rng = np.random.default_rng(4)
    truth = {}
    for case_id, pred_name in (("0001", "0001_0000"), ("1234", "1234_0000"), ("0000", "0000_0000")):
        pred, ref = _case(rng)
        write_volume(tmp_path / "ref" / f"{case_id}.nii.gz", ref, AFFINE)
        write_volume(tmp_path / "pred" / f"{pred_name}.nii.gz", pred, AFFINE)
        truth[case_id] = {s.class_name: s.dsc for s in evaluate_case(pred, ref, SPACING, CLASSES)}
    write_volume(tmp_path / "ref" / "0002.nii.gz", _case(rng)[1], AFFINE)  # a reference nobody predicted
    result = _evaluate(tmp_path, "--labels", "1=liver,2=spleen,3=kidney")
    assert result.exit_code == 0, result.output
    assert "1 reference(s) without prediction" in result.output and "0002" in result.output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert sorted(table.case_id) == sorted(case for case in truth for _ in CLASSES)
    assert {(row.case_id, row.class_name): row.dsc for row in table.itertuples()} == {
        (case, name): dsc for case, scores in truth.items() for name, dsc in scores.items()}
    again = _evaluate(tmp_path, "--labels", "1=liver,2=spleen,3=kidney")
    assert again.exit_code == 0 and "scored 0 case(s), 3 stored with unchanged inputs" in again.output


def test_per_class_mask_folders(tmp_path):
    cases = _folders(tmp_path, n_cases=1)
    pred, _ = cases["case_000"]
    (tmp_path / "pred" / "case_000.nii.gz").unlink()
    for name, value in CLASSES.items():
        write_volume(tmp_path / "pred" / "case_000" / f"{name}.nii.gz", pred == value, AFFINE)
    result = _evaluate(tmp_path, "--classes", str(tmp_path / "classes.json"))
    assert result.exit_code == 0, result.output
    reference = pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("class_name")
    _, ref = cases["case_000"]
    for score in evaluate_case(pred, ref, SPACING, CLASSES):
        assert reference.loc[score.class_name, "nsd"] == score.nsd


def test_geometry_mismatch_writes_nothing_for_that_case(tmp_path):
    _folders(tmp_path, n_cases=3)
    pred = np.zeros((30, 28, 10), np.uint8)
    write_volume(tmp_path / "pred" / "case_001.nii.gz", pred, np.diag([0.8, 0.8, 3.0, 1.0]))
    result = _evaluate(tmp_path, "--classes", str(tmp_path / "classes.json"))
    assert result.exit_code == 1
    assert "geometry mismatch" in result.output
    assert "pred/case_001.nii.gz" in result.output and "ref/case_001.nii.gz" in result.output
    assert not (tmp_path / "out" / "metrics.parquet").exists()
    assert len(list((tmp_path / "out" / "cases").glob("*.parquet"))) == 2


def test_a_subset_of_classes_is_scored_and_the_rest_named_once(tmp_path):
    cases = _folders(tmp_path, n_cases=2)
    result = _evaluate(tmp_path, "--labels", "1=liver,2=spleen")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert set(table.class_name) == {"liver", "spleen"}
    for case_id, (pred, ref) in cases.items():
        expected = {s.class_name: s.dsc for s in evaluate_case(pred, ref, SPACING, {"liver": 1, "spleen": 2})}
        assert table[table.case_id == case_id].set_index("class_name").dsc.to_dict() == expected
    assert result.output.count("not in the class map") == 1
    assert "pred label 3 (2 cases)" in result.output and "ref label 3 (2 cases)" in result.output
    config = json.loads((tmp_path / "out" / "run.json").read_text())
    assert config["unscored_labels"] == {"pred label 3": 2, "ref label 3": 2}


def test_resume_skips_stored_cases_and_refuses_other_settings(tmp_path):
    _folders(tmp_path, n_cases=3)
    classes = ["--classes", str(tmp_path / "classes.json")]
    assert _evaluate(tmp_path, *classes).exit_code == 0
    first = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    next((tmp_path / "out" / "cases").glob("case_001*")).unlink()
    result = _evaluate(tmp_path, *classes)
    assert result.exit_code == 0 and "scored 1 case(s), 2 stored with unchanged inputs" in result.output
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "out" / "metrics.parquet").drop(columns="seconds"), first.drop(columns="seconds")
    )
    other = _evaluate(tmp_path, *classes, "--tolerance", "2")
    assert other.exit_code == 2 and "different settings (protocol.scoring.tolerance_mm)" in other.output


def test_workers_give_identical_rows(tmp_path):
    _folders(tmp_path, n_cases=4)
    serial = _evaluate(tmp_path, "--classes", str(tmp_path / "classes.json"))
    assert serial.exit_code == 0
    parallel = CliRunner().invoke(app, [
        "evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"), "--out", str(tmp_path / "par"),
        "--classes", str(tmp_path / "classes.json"), "--workers", "2", "--run", "out", "--dataset", "d",
        "--modality", "CT",
    ])
    assert parallel.exit_code == 0, parallel.output
    columns = ["case_id", "class_name", "dsc", "nsd"]
    a = pd.read_parquet(tmp_path / "out" / "metrics.parquet")[columns]
    b = pd.read_parquet(tmp_path / "par" / "metrics.parquet")[columns]
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    n_cases = 16
    _folders(tmp_path, n_cases=n_cases, shape=(90, 80, 30))
    command = [
        sys.executable, "-m", "bench.cli.app", "evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
        "--dataset", "d", "--modality", "CT", "--out", str(tmp_path / "out"), "--classes", str(tmp_path / "classes.json"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cases_dir = tmp_path / "out" / "cases"
    deadline = time.time() + 300  # generous: start-up is slow when the machine is loaded
    while time.time() < deadline and len(list(cases_dir.glob("*.parquet"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stored_before = len(list(cases_dir.glob("*.parquet")))
    assert stored_before >= 2, "the run stored no cases before the deadline"
    assert stored_before < n_cases, "the run finished before the kill: make the cases larger"
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "stored with unchanged inputs" in result.stdout
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert len(table) == n_cases * len(CLASSES)
    assert not table.duplicated(["case_id", "class_name"]).any()
    clean = subprocess.run(
        [*command[:-4], "--out", str(tmp_path / "clean"), "--classes", str(tmp_path / "classes.json"), "--run", "out"],
        capture_output=True, text=True, check=True,
    )
    assert clean.returncode == 0
    expected = pd.read_parquet(tmp_path / "clean" / "metrics.parquet")
    pd.testing.assert_frame_equal(
        table.sort_values(["case_id", "class_name"]).reset_index(drop=True)[["case_id", "class_name", "dsc", "nsd"]],
        expected.sort_values(["case_id", "class_name"]).reset_index(drop=True)[["case_id", "class_name", "dsc", "nsd"]],
    )


def test_metrics_option_adds_columns_and_default_rows_are_unchanged(tmp_path):
    """--metrics adds the overlap counts and metrics and the distances with their rule; the default run keeps the
    standard columns and run.json keys; the ignore label leaves reference voxels out; bad names are one line."""
    cases = _folders(tmp_path, n_cases=2)
    classes = ["--classes", str(tmp_path / "classes.json")]
    assert _evaluate(tmp_path, *classes).exit_code == 0
    default = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    from bench.engine.store import METRIC_COLUMNS
    assert list(default.columns) == METRIC_COLUMNS
    assert "metrics" not in json.loads((tmp_path / "out" / "run.json").read_text())
    result = _evaluate(tmp_path, *classes, "--metrics", "iou,hd95,recall", "--overwrite")
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert list(rows.columns) == METRIC_COLUMNS + ["tp_voxels", "fp_voxels", "fn_voxels", "iou", "recall", "hd95_mm",
                                                   "distance_rule"]
    for case_id, (pred, ref) in cases.items():
        expected = evaluate_case(pred, ref, SPACING, CLASSES, metrics=("iou", "recall", "hd95"))
        got = rows[rows.case_id == case_id].set_index("class_name")
        for score in expected:
            for column, value in score.extra.items():
                assert got.loc[score.class_name, column] == (pytest.approx(value) if column != "distance_rule"
                                                             else value)
    assert _scoring(tmp_path / "out")["metrics"] == ["dsc", "nsd", "iou", "recall", "hd95"]
    bad = _evaluate(tmp_path, *classes, "--metrics", "dsc,hd99", "--overwrite")
    assert bad.exit_code == 2 and "--metrics: unknown metric 'hd99'" in bad.output and "Traceback" not in bad.output
    clash = _evaluate(tmp_path, *classes, "--ignore-label", "2", "--overwrite")
    assert clash.exit_code == 2 and "--ignore-label 2" in clash.output
    ignored = _evaluate(tmp_path, "--labels", "1=liver", "--ignore-label", "2", "--overwrite")
    assert ignored.exit_code == 0, ignored.output
    assert "ref label 2" not in ignored.output and "ref label 3" in ignored.output  # the ignore label is not reported as an unscored label


def test_lesion_metric_writes_tidy_rows_and_a_lesion_table(tmp_path):
    """--metrics lesion scores the catalog's lesion classes (kidney tumor here, not kidney) lesion by lesion: one
    row per case and class with the lesion columns, and lesions.parquet keyed by case, class, side and lesion."""
    ref = np.zeros((30, 28, 10), np.uint8)
    ref[2:12, 2:12, 1:8] = 1  # kidney
    ref[4:7, 4:7, 2:5] = 2  # kidney tumor: two lesions
    ref[20:24, 20:24, 2:6] = 2
    pred = ref.copy()
    pred[20:24, 20:24, 2:6] = 0  # the second lesion missed
    pred[25:27, 2:4, 2:4] = 2  # a false lesion
    write_volume(tmp_path / "ref" / "case_000.nii.gz", ref, AFFINE)
    write_volume(tmp_path / "pred" / "case_000.nii.gz", pred, AFFINE)
    result = _evaluate(tmp_path, "--labels", "1=kidney,2=kidney tumor", "--metrics", "lesion")
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("class_name")
    assert len(rows) == 2 and np.isnan(rows.loc["kidney", "lesion_f1"])
    tumour = rows.loc["kidney tumor"]
    assert (tumour.lesion_ref, tumour.lesion_pred, tumour.lesion_tp) == (2, 2, 1) and tumour.lesion_f1 == 0.5
    lesions = pd.read_parquet(tmp_path / "out" / "lesions.parquet")
    assert set(lesions.class_name) == {"kidney tumor"} and len(lesions) == 4
    assert not lesions.duplicated(["case_id", "class_name", "side", "lesion"]).any()
    assert lesions[lesions.side == "ref"].partner.tolist() == [1, 0]
    assert _scoring(tmp_path / "out")["lesions"]["classes"] == ["kidney tumor"]
    every = _evaluate(tmp_path, "--labels", "1=kidney,2=kidney tumor", "--metrics", "lesion", "--instances",
                      "--overwrite")
    assert every.exit_code == 0, every.output
    assert pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("class_name").loc["kidney",
                                                                                            "lesion_f1"] == 1.0
    options = ["--matcher", "greedy", "--match-iou", "0.3", "--connectivity", "6", "--overwrite"]
    greedy = _evaluate(tmp_path, "--labels", "1=kidney,2=kidney tumor", "--metrics", "lesion", *options)
    assert greedy.exit_code == 0, greedy.output
    lesions = _scoring(tmp_path / "out")["lesions"]
    assert (lesions["matcher"], lesions["match_iou"], lesions["connectivity"]) == ("greedy", 0.3, 6)
    organs = _evaluate(tmp_path, "--labels", "1=kidney", "--metrics", "lesion", "--overwrite")
    assert organs.exit_code == 0, organs.output
    assert "no class of this class map is a lesion class" in organs.output
    assert pd.read_parquet(tmp_path / "out" / "metrics.parquet")["lesion_f1"].isna().all()
    assert pd.read_parquet(tmp_path / "out" / "lesions.parquet").empty
    bad = _evaluate(tmp_path, "--labels", "1=kidney", "--metrics", "lesion", "--matcher", "best", "--overwrite")
    assert bad.exit_code == 2 and "--matcher" in bad.output and "Traceback" not in bad.output


def test_instance_maps_score_the_given_lesions(tmp_path):
    """--instance-maps: two touching reference lesions with their own values stay two lesions (connected
    components would merge them); one found, one missed, one false; the other instance values are not reported
    as unscored labels; a class map of two classes and --connectivity are one-line errors."""
    ref, pred = np.zeros((30, 28, 10), np.uint16), np.zeros((30, 28, 10), np.uint16)
    ref[4:8, 4:8, 2:6], ref[8:12, 4:8, 2:6] = 3, 7  # touching
    pred[4:8, 4:8, 2:6] = 1  # the first found (IoU 1), the second missed
    pred[20:23, 20:23, 2:4] = 2  # a false lesion
    write_volume(tmp_path / "ref" / "case_000.nii.gz", ref, AFFINE)
    write_volume(tmp_path / "pred" / "case_000.nii.gz", pred, AFFINE)
    result = _evaluate(tmp_path, "--labels", "1=liver tumor", "--instance-maps")
    assert result.exit_code == 0, result.output
    assert "not in the class map" not in result.output and "no class of this class map" not in result.output
    row = pd.read_parquet(tmp_path / "out" / "metrics.parquet").iloc[0]
    assert (row.lesion_ref, row.lesion_pred, row.lesion_tp, row.lesion_fp, row.lesion_fn) == (2, 2, 1, 1, 1)
    assert row.lesion_f1 == row.rq == 0.5 and row.sq == 1.0 and row.pq == 0.5
    assert row.dsc == pytest.approx(2 * 64 / (64 + 18 + 128))
    lesions = pd.read_parquet(tmp_path / "out" / "lesions.parquet")
    assert lesions[lesions.side == "ref"].voxels.tolist() == [64, 64]
    scoring = _scoring(tmp_path / "out")
    assert scoring["lesions"]["instance_maps"] is True and "lesion" in scoring["metrics"]
    components = _evaluate(tmp_path, "--labels", "3+7=liver tumor", "--metrics", "lesion", "--overwrite")
    assert pd.read_parquet(tmp_path / "out" / "metrics.parquet").iloc[0].lesion_ref == 1, components.output
    for extra, message in ((("--labels", "1=liver tumor,2=kidney tumor"), "one class; the class map names 2"),
                           (("--labels", "1=liver tumor", "--connectivity", "6"), "--connectivity")):
        bad = _evaluate(tmp_path, *extra, "--instance-maps", "--overwrite")
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
    assert "--instance-maps" in CliRunner().invoke(app, ["evaluate", "--help"]).output


def _totalsegmentator_pair(shared_dir, root):
    """The real TotalSegmentator example as a one-case folder pair: seg_total_fast scored against seg_total."""
    source = shared_dir / "data" / "totalsegmentator_example"
    for side, name in (("ref", "seg_total.nii.gz"), ("pred", "seg_total_fast.nii.gz")):
        (root / side).mkdir(parents=True)
        (root / side / "s01.nii.gz").symlink_to(source / name)
    return source / "classes.json"


def _both_empty_values(shared_dir):
    from bench.data.io import read_label_map

    source = shared_dir / "data" / "totalsegmentator_example"
    present = set(np.unique(read_label_map(source / "seg_total.nii.gz").array))
    present |= set(np.unique(read_label_map(source / "seg_total_fast.nii.gz").array))
    values = {int(v) for v in json.loads((source / "classes.json").read_text())}
    return values - present, len(values)


def test_both_empty_rows_are_left_out_by_default_and_counted_in_the_printed_table(shared_dir, tmp_path):
    """The default (nnU-Net / MONAI ignore_empty): a class neither scan contains is stored with its flags, left
    out of means, and the printed table says how many rows were left out instead of showing 1.0000."""
    classes = _totalsegmentator_pair(shared_dir, tmp_path)
    absent, n_classes = _both_empty_values(shared_dir)
    assert len(absent) > 50
    result = _evaluate(tmp_path, "--classes", str(classes), "--dataset", "totalseg")
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    both = rows.ref_empty & rows.pred_empty
    assert both.sum() == len(absent) and rows.loc[both, ["dsc", "nsd"]].isna().all().all()
    assert rows.loc[~both, "dsc"].notna().all()
    assert _scoring(tmp_path / "out")["empty"] == "nan"
    assert f"{len(absent)} of {n_classes} (case, class) rows empty in both reference and prediction" in result.output
    assert "left out of means" in result.output
    brain = next(line for line in result.output.splitlines() if line.startswith("| brain "))
    assert "1.0000" not in brain and brain.split("|")[4].strip() == "0" and brain.split("|")[5].strip() == "1"
    overall = rows.loc[~both, "dsc"].mean()
    assert f"{overall:.4f}" in next(line for line in result.output.splitlines() if line.startswith("| mean "))


def test_sat_empty_policy_keeps_sats_rule_on_request(shared_dir, tmp_path):
    classes = _totalsegmentator_pair(shared_dir, tmp_path)
    absent, _ = _both_empty_values(shared_dir)
    result = _evaluate(tmp_path, "--classes", str(classes), "--dataset", "totalseg", "--empty-policy", "sat")
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert (rows.loc[rows.ref_empty & rows.pred_empty, "dsc"] == 1.0).sum() == len(absent)
    assert "each scored 1 (policy sat)" in result.output
    brain = next(line for line in result.output.splitlines() if line.startswith("| brain "))
    assert "1.0000" in brain


def _totalsegmentator_mask_folder(shared_dir, root):
    """A TotalSegmentator-style case: its per-class output folder (one file per class of its own class file,
    `kidney_right.nii.gz`), and the label map it came from, on a small grid."""
    names = json.loads((shared_dir / "data" / "totalsegmentator_example" / "classes.json").read_text())
    ref = np.zeros((12, 10, 8), np.uint8)
    ref[1:5, 1:5, 1:5], ref[6:10, 1:5, 1:5], ref[1:5, 6:9, 2:6] = 1, 2, 3  # spleen, kidney_right, kidney_left
    write_volume(root / "ref" / "s01.nii.gz", ref, AFFINE)
    pred = np.roll(ref, 1, axis=0)
    for value, name in names.items():
        write_volume(root / "pred" / "s01" / f"{name}.nii.gz", (pred == int(value)).astype(np.uint8), AFFINE)
    return shared_dir / "data" / "totalsegmentator_example" / "classes.json", ref, pred


def test_a_totalsegmentator_mask_folder_is_read_by_its_own_class_names(shared_dir, tmp_path):
    classes, ref, pred = _totalsegmentator_mask_folder(shared_dir, tmp_path)
    result = _evaluate(tmp_path, "--classes", str(classes), "--dataset", "totalseg")
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("class_name")
    expected = {s.class_name: s.dsc for s in evaluate_case(pred, ref, SPACING, {"spleen": 1, "right kidney": 2,
                                                                                "left kidney": 3})}
    assert rows.loc["right kidney", "dsc"] == pytest.approx(expected["right kidney"]) and len(rows) == 117
    assert rows.loc["left kidney", "dsc"] == pytest.approx(expected["left kidney"])
    (tmp_path / "pred" / "s01" / "kidney_right.nii.gz").rename(tmp_path / "pred" / "s01" / "right kidney.nii.gz")
    renamed = _evaluate(tmp_path, "--classes", str(classes), "--dataset", "totalseg", "--overwrite")
    assert renamed.exit_code == 0, renamed.output  # the unified name is found too
    write_volume(tmp_path / "pred" / "s01" / "kidney_right.nii.gz", (pred == 2).astype(np.uint8), AFFINE)
    clash = _evaluate(tmp_path, "--classes", str(classes), "--dataset", "totalseg", "--overwrite")
    assert clash.exit_code == 1 and "kidney_right.nii.gz" in clash.output and "right kidney.nii.gz" in clash.output
    assert "Traceback" not in clash.output


def test_run_json_records_the_command_line_that_reproduces_the_run_and_its_summary(tmp_path):
    import shlex

    _folders(tmp_path)
    result = _evaluate(tmp_path, "--classes", str(tmp_path / "classes.json"), "--tolerance", "2")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "out" / "run.json").read_text())
    words = shlex.split(config["command_line"])
    assert words[:2] == ["bench", "evaluate"] and "--tolerance" in words and "2.0" in words
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    means = rows.groupby("class_name")[["dsc", "nsd"]].mean().mean()
    assert config["summary"]["dsc"] == pytest.approx(means["dsc"]) and config["summary"]["nsd"] == pytest.approx(
        means["nsd"])
    assert (config["summary"]["cases"], config["summary"]["classes"], config["summary"]["both_empty"]) == (3, 3, 0)
    again = CliRunner().invoke(app, words[1:])
    assert again.exit_code == 0 and "scored 0 case(s), 3 stored with unchanged inputs" in again.output, again.output


def test_ctrl_c_says_what_was_stored_and_that_the_same_command_resumes(tmp_path, monkeypatch):
    from bench.engine import driver

    _folders(tmp_path)
    real = driver.map_cases

    def interrupted_after_one(task, todo, **options):
        for number, item in enumerate(real(task, todo, **options)):
            if number == 1:  # the second case is stored, then Ctrl-C
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(driver, "map_cases", interrupted_after_one)
    result = _evaluate(tmp_path, "--classes", str(tmp_path / "classes.json"))
    assert result.exit_code == 130
    assert "interrupted: 2 case(s) stored in" in result.output and "run the same command again" in result.output
    monkeypatch.setattr(driver, "map_cases", real)
    again = _evaluate(tmp_path, "--classes", str(tmp_path / "classes.json"))
    assert again.exit_code == 0 and "scored 1 case(s), 2 stored with unchanged inputs" in again.output


def test_one_progress_display_lines_in_a_log(capsys):
    """Not a terminal: the first and last case, and at most one line per interval between."""
    import io

    from bench.engine.progress import CaseProgress

    log = io.StringIO()
    progress = CaseProgress("scoring m", stream=log, every_s=3600)
    for number in range(1, 6):
        progress(number, 5, f"case_{number}")
    progress.close()
    lines = log.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["[1/5]", "[5/5]"] and "ETA" in lines[0]


def test_the_printed_table_keeps_the_class_map_order(shared_dir, tmp_path):
    classes = _totalsegmentator_pair(shared_dir, tmp_path)
    result = _evaluate(tmp_path, "--classes", str(classes), "--dataset", "totalseg")
    names = [line.split("|")[1].strip() for line in result.output.splitlines() if line.startswith("| ")][1:4]
    assert names == ["spleen", "right kidney", "left kidney"]


def test_metric_options_name_every_metric():
    """`bench evaluate --metrics` and the views' `--metric` list every name they accept (lesion and its columns
    included; found as a user: the help stopped at assd)."""
    import inspect
    import re

    from bench.cli.evaluate import evaluate
    from bench.cli.tables import METRIC_HELP
    from protocols.class_metrics import COLUMN_OF, METRIC_NAMES, SHORTHANDS

    metrics_help = inspect.signature(evaluate).parameters["metrics"].default.help
    assert [n for n in (*METRIC_NAMES, *SHORTHANDS) if not re.search(rf"\b{n}\b", metrics_help)] == []
    assert [n for n in COLUMN_OF if not re.search(rf"\b{n}\b", METRIC_HELP)] == []
