"""SA-Med2D-20M-style 2D PNG cases through `bench evaluate`, `bench clicks` and `bench run` (SAM-Med2D's own data)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import surface_distance
from typer.testing import CliRunner

from bench.cli.app import app
from bench.data.sammed2d import image_modality

CASE = "amos_0004_75"
CASE_MASKS = ("aorta_000", "inferior_vena_cava_000", "liver_000")


def _png(path) -> np.ndarray:
    """An independent reader (SimpleITK) of a mask PNG: 0/255 grey as a boolean array."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))) == 255


def _write(path, mask: np.ndarray, channels: int = 1) -> None:
    array = mask.astype(np.uint8) * 255
    if channels == 3:
        array = np.repeat(array[..., None], 3, axis=2)
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=channels == 3), str(path))


def _shifted_predictions(sammed2d_demo, folder, shift=4, channels=3):
    folder.mkdir(parents=True, exist_ok=True)
    for name in CASE_MASKS:
        reference = _png(sammed2d_demo / "masks" / f"{CASE}_{name}.png")
        _write(folder / f"{CASE}_{name}.png", np.roll(reference, shift, axis=1), channels)
    return folder


def _evaluate(sammed2d_demo, pred, out, *extra):
    return CliRunner().invoke(app, ["evaluate", "--ref", str(sammed2d_demo), "--pred", str(pred), "--out", str(out),
                                    "--modality", "CT", *extra])


def test_evaluate_scores_each_mask_file_against_hand_computed_dsc_and_surface_distance(sammed2d_demo, tmp_path):
    pred = _shifted_predictions(sammed2d_demo, tmp_path / "pred")
    result = _evaluate(sammed2d_demo, pred, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "NSD tolerance 1 pixel" in result.output
    assert "1 reference(s) without prediction, not scored: s0619_32" in result.output  # the other image
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("class_name")
    assert sorted(rows.index) == sorted(CASE_MASKS) and set(rows.case_id) == {CASE}
    assert set(rows.spacing) == {"1x1"} and set(rows.modality) == {"CT"} and set(rows.dataset) == {sammed2d_demo.name}
    for name in CASE_MASKS:
        ref = _png(sammed2d_demo / "masks" / f"{CASE}_{name}.png")
        shifted = np.roll(ref, 4, axis=1)
        assert rows.loc[name, "dsc"] == pytest.approx(2 * (ref & shifted).sum() / (ref.sum() + shifted.sum()))
        oracle = surface_distance.compute_surface_dice_at_tolerance(
            surface_distance.compute_surface_distances(ref, shifted, (1.0, 1.0)), 1.0)
        assert rows.loc[name, "nsd"] == pytest.approx(oracle, abs=1e-9)
        assert 0 < rows.loc[name, "nsd"] < rows.loc[name, "dsc"] < 1


def test_evaluate_resumes_on_touch_and_rescores_a_changed_png(sammed2d_demo, tmp_path):
    pred = _shifted_predictions(sammed2d_demo, tmp_path / "pred", channels=1)
    assert _evaluate(sammed2d_demo, pred, tmp_path / "out").exit_code == 0
    liver = pred / f"{CASE}_liver_000.png"
    os.utime(liver, ns=(liver.stat().st_atime_ns, liver.stat().st_mtime_ns + 10**9))
    again = _evaluate(sammed2d_demo, pred, tmp_path / "out")
    assert "scored 0 case(s), 1 stored with unchanged inputs" in again.output
    _write(liver, _png(sammed2d_demo / "masks" / liver.name))  # now a perfect prediction
    changed = _evaluate(sammed2d_demo, pred, tmp_path / "out")
    assert "scored 1 case(s), 0 stored" in changed.output
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("class_name")
    assert rows.loc["liver_000", "dsc"] == 1.0 and rows.loc["aorta_000", "dsc"] < 1.0


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_bad_prediction_folders_are_one_line_errors_naming_the_file(sammed2d_demo, tmp_path):
    pred = _shifted_predictions(sammed2d_demo, tmp_path / "pred")
    _write(pred / f"{CASE}_kidney_000.png", np.zeros((512, 512), bool))
    orphan = _evaluate(sammed2d_demo, pred, tmp_path / "out")
    assert orphan.exit_code == 2 and f"{CASE}_kidney_000.png" in _error_line(orphan)
    (pred / f"{CASE}_kidney_000.png").unlink()
    (pred / f"{CASE}_aorta_000.png").unlink()
    missing = _evaluate(sammed2d_demo, pred, tmp_path / "out")
    assert missing.exit_code == 2 and f"{CASE}_aorta_000.png" in _error_line(missing)
    colour = np.zeros((512, 512, 3), np.uint8)
    colour[10:20, 10:20, 0] = 255
    sitk.WriteImage(sitk.GetImageFromArray(colour, isVector=True), str(pred / f"{CASE}_aorta_000.png"))
    bad = _evaluate(sammed2d_demo, pred, tmp_path / "out")  # found when the case is read: a failed case, as for volumes
    failed = [line for line in bad.output.splitlines() if line.startswith(f"error in case {CASE}: ")]
    assert bad.exit_code == 1 and len(failed) == 1 and f"{CASE}_aorta_000.png: a colour mask" in failed[0]
    satds = _evaluate(sammed2d_demo, pred, tmp_path / "out", "--grid", "satds")
    assert satds.exit_code == 2 and "--grid satds" in _error_line(satds)
    unknown = CliRunner().invoke(app, ["evaluate", "--ref", str(sammed2d_demo), "--pred", str(pred), "--out",
                                       str(tmp_path / "out")])
    assert unknown.exit_code == 2 and "--modality" in _error_line(unknown)


def test_modality_comes_from_the_sa_med2d_20m_naming_convention_only():
    assert image_modality("ct_00--AbdomenCT1K--Case_00001--z_0085") == "CT"
    assert image_modality("mr_t1--BraTS2021--BraTS2021_00000--x_0077") == "MRI"
    assert image_modality("pet_00--autoPET--PETCT_0af7--z_0100") == "PET"
    assert image_modality("amos_0004_75") is None and image_modality("s0114_111") is None
    assert image_modality("x_ray--CheXmask--0001--2d_none") is None


def test_clicks_give_one_row_per_click_for_each_mask(sammed2d_demo, tmp_path):
    result = CliRunner().invoke(app, ["clicks", "--model", "sam-med2d", "--root", str(sammed2d_demo), "--out",
                                      str(tmp_path / "clicks"), "--n-clicks", "3", "--modality", "CT"])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "clicks" / "metrics.parquet")
    masks = {path.stem for path in (sammed2d_demo / "masks").glob("*.png")}
    test_masks = {f"{case}_{name}" for case, name in zip(rows.case_id, rows.class_name)}
    assert len(test_masks) == 11 and test_masks <= masks
    clicks = rows.groupby(["case_id", "class_name"])["click"].apply(lambda k: sorted(k.astype(int)))
    assert all(k == [1, 2, 3] for k in clicks)
    assert set(rows.spacing) == {"1x1"}


@pytest.mark.parametrize("protocol", ["sam-med2d", "harness"])
def test_run_predictions_rescore_equal_with_evaluate(sammed2d_demo, tmp_path, protocol):
    run_dir = tmp_path / "run"
    args = ["run", "--model", "sam-med2d", "--root", str(sammed2d_demo), "--protocol", protocol, "--out", str(run_dir),
            "--modality", "CT"] + (["--n-clicks", "2"] if protocol == "harness" else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    files = sorted(path.name for path in (run_dir / "predictions").iterdir())
    assert files == sorted(path.name for path in (sammed2d_demo / "masks").glob("*.png")
                           if path.name in (sammed2d_demo / "label2image_test.json").read_text())
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(run_dir / "predictions" / files[0])))
    assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 255}
    scored = _evaluate(sammed2d_demo, run_dir / "predictions", tmp_path / "eval")
    assert scored.exit_code == 0, scored.output
    key = ["case_id", "class_name"]
    run_rows = pd.read_parquet(run_dir / "metrics.parquet")
    run_rows = run_rows[run_rows.click.isna() | (run_rows.click == run_rows.click.max())].set_index(key).sort_index()
    eval_rows = pd.read_parquet(tmp_path / "eval" / "metrics.parquet").set_index(key).sort_index()
    assert list(run_rows.index) == list(eval_rows.index) and len(eval_rows) == 11
    np.testing.assert_allclose(run_rows.dsc, eval_rows.dsc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(run_rows.nsd, eval_rows.nsd, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(run_rows.pred_voxels, eval_rows.pred_voxels)
