"""`bench export`: CSV and JSON that parse back to the rows, and an nnU-Net summary.json equal to the one nnU-Net's
own evaluator writes for the same files (the oracle: nnunetv2.evaluation.evaluate_predictions)."""

from __future__ import annotations

import io
from pathlib import Path
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.cli.app import app
from bench.engine.evaluation import evaluate_folders, evaluation_spec
from bench.data.io import write_volume


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Three cases, labels 1 (liver), 2 and 3 (kidney = 2 + 3); case c2 has no kidney on either side."""
    root = tmp_path_factory.mktemp("export")
    refs, preds = root / "labelsTs", root / "preds"
    refs.mkdir()
    preds.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        ref = np.zeros((20, 18, 16), np.uint8)
        ref[3:12, 4:14, 2:10] = 1
        if i != 2:
            ref[13:17, 2:8, 4:12] = 2
            ref[13:17, 10:16, 4:12] = 3
        pred = ref.copy()
        flips = rng.random(ref.shape) < 0.05
        pred[flips] = rng.integers(0, 4, flips.sum())
        if i == 2:
            pred[pred > 1] = 0
        write_volume(refs / f"c{i}.nii.gz", ref, np.diag([0.8, 0.8, 2.5, 1.0]))
        write_volume(preds / f"c{i}.nii.gz", pred, np.diag([0.8, 0.8, 2.5, 1.0]))
    classes = {"liver": 1, "kidney": (2, 3)}
    out = root / "run"
    evaluate_folders(refs, out, evaluation_spec(run="r", model="m", predictions=preds, classes=classes),
                     dataset="demo", modality="CT", classes=classes, progress=False)
    return refs, preds, out


def test_nnunet_summary_equals_nnunets_own(scored):
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    refs, preds, out = scored
    result = CliRunner().invoke(app, ["export", "--run", str(out), "--format", "nnunet-summary"])
    assert result.exit_code == 0, result.output
    ours = json.loads(result.stdout)
    regions = [1, (2, 3)]
    theirs = [compute_metrics(str(refs / f"c{i}.nii.gz"), str(preds / f"c{i}.nii.gz"), SimpleITKIO(), regions)
              for i in range(3)]
    assert len(ours["metric_per_case"]) == 3
    for mine, oracle in zip(ours["metric_per_case"], theirs):
        assert mine["reference_file"] == oracle["reference_file"]
        for region in regions:
            expected, got = oracle["metrics"][region], mine["metrics"][str(region)]
            for metric in ("TP", "FP", "FN", "n_pred", "n_ref"):
                assert got[metric] == expected[metric], (region, metric)
            for metric in ("Dice", "IoU"):
                np.testing.assert_allclose(got[metric], expected[metric], rtol=1e-12)  # NaN == NaN for c2's kidney
    for region in regions:
        dice = np.nanmean([t["metrics"][region]["Dice"] for t in theirs])
        assert ours["mean"][str(region)]["Dice"] == pytest.approx(dice)
    fg = np.mean([np.nanmean([t["metrics"][r]["Dice"] for t in theirs]) for r in regions])
    assert ours["foreground_mean"]["Dice"] == pytest.approx(fg)


def test_csv_and_json_parse_back_to_the_rows(scored, tmp_path):
    _, _, out = scored
    rows = pd.read_parquet(out / "metrics.parquet")
    result = CliRunner().invoke(app, ["export", "--run", str(out)])
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert len(frame) == len(rows) == 6
    np.testing.assert_allclose(frame["dsc"], rows["dsc"])
    target = tmp_path / "rows.json"
    result = CliRunner().invoke(app, ["export", "--run", str(out), "--format", "json", "--out", str(target)])
    records = json.loads(target.read_text())
    assert result.exit_code == 0 and [r["case_id"] for r in records] == rows["case_id"].tolist()
    result = CliRunner().invoke(app, ["export", "--run", str(tmp_path), "--format", "csv"])
    assert result.exit_code == 2 and "metrics.parquet" in result.output


def test_nnunet_summary_of_a_bench_run_scores_its_final_masks_or_a_chosen_click(scored, tmp_path):
    """`bench run`/`bench clicks` runs have no run.json 'classes' and one row per click: the summary is of the final
    click (its masks are the ones written), or of `--click K`; nnU-Net reads the label values as keys."""
    from bench.data.io import read_label_map

    refs, _, _ = scored
    images = tmp_path / "images"
    for ref in refs.iterdir():
        volume = read_label_map(ref)
        write_volume(images / ref.name.replace(".nii.gz", "_0000.nii.gz"), 100.0 + 50 * volume.array, volume.affine)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--model", "region_growing", "--images", str(images), "--refs", str(refs),
                                      "--labels", "1=liver,2+3=kidney", "--modality", "CT", "--n-clicks", "3",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = CliRunner().invoke(app, ["export", "--run", str(out), "--format", "nnunet-summary"])
    assert summary.exit_code == 0, summary.output
    cases = {Path(c["reference_file"]).name.removesuffix(".nii.gz"): c["metrics"]
             for c in json.loads(summary.stdout)["metric_per_case"]}
    for case, metrics in cases.items():
        ref = read_label_map(refs / f"{case}.nii.gz").array
        for key, values in (("1", (1,)), ("(2, 3)", (2, 3))):
            if key not in metrics:  # c2 has no kidney: no target to click on, no row
                assert case == "c2"
                continue
            truth = np.isin(ref, values)
            pred = read_label_map(out / "predictions" / case / f"{'liver' if key == '1' else 'kidney'}.nii.gz").array > 0
            tp = int(np.count_nonzero(truth & pred))
            assert (metrics[key]["TP"], metrics[key]["n_pred"], metrics[key]["n_ref"]) == (
                tp, int(pred.sum()), int(truth.sum()))
    rows = pd.read_parquet(out / "metrics.parquet")
    first = CliRunner().invoke(app, ["export", "--run", str(out), "--format", "nnunet-summary", "--click", "1"])
    liver = rows[(rows.click == 1) & (rows.class_name == "liver")].sort_values("case_id")
    dice = [c["metrics"]["1"]["Dice"] for c in json.loads(first.stdout)["metric_per_case"]]
    np.testing.assert_allclose(dice, liver["dsc"], rtol=1e-6)
