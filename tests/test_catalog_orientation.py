"""A catalog dataset that SAT-DS does not reorient to RAS (MRSpineSeg: ASR, SAT-DS loader.py:278) reaches the
SAT-DS grid of `bench evaluate --grid satds` and `bench run` in its own axes.

The scan is native RAS at 1 mm, shape (x, y, z) = (6, 12, 12), and every mask is constant along x. In ASR the
array axes are (A, S, R) = (y, z, x) and the 3 mm axis of SAT-DS's 1 x 1 x 3 mm grid is x: its 6 planes give 3
samples (MONAI's Spacingd spans the 5 mm from the first to the last voxel centre: x = 0, 3, 5), each the same
(y, z) pattern, while y and z keep every plane. So on the ASR grid a mask of n z planes has 6 * n * 3 voxels and
each score is the (y, z) one, hand-computed below. On a RAS grid z would be the 3 mm axis (z = 0, 3, 6, 9, 11
kept) and the numbers differ.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bench.engine.runner as runner
from bench.cli.app import app
from bench.data.catalog import load_catalog
from bench.data.io import write_volume

CASE = "Case160"  # in SAT's test split of MRSpineSeg (split_json/MRSpineSeg.json)
SHAPE = (6, 12, 12)


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _sacrum(z: slice) -> np.ndarray:
    """Label 1 (sacrum) over every x, y in [2, 8), the given z planes."""
    label = np.zeros(SHAPE, np.uint8)
    label[:, 2:8, z] = 1
    return label


def _mrspineseg_raw(root, label: np.ndarray):
    """An nnU-Net raw folder named as the catalog's MRSpineSeg, with one test case: a positive image (SAT-DS's
    foreground crop keeps the whole grid) and `label`."""
    folder = root / load_catalog().dataset("MRSpineSeg").nnunet_name
    write_volume(folder / "imagesTs" / f"{CASE}_0000.nii.gz", np.linspace(1, 2, label.size).reshape(SHAPE), np.eye(4))
    write_volume(folder / "labelsTs" / f"{CASE}.nii.gz", label, np.eye(4))
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MR"}, "file_ending": ".nii.gz",
                                                     "labels": {"background": 0, "sacrum": 1}}))
    return folder


def test_evaluate_on_the_satds_grid_reorients_mrspineseg_to_asr(tmp_path):
    """Reference z in [3, 9), prediction z in [3, 8): on the ASR grid DSC = 2 * 5 / (6 + 5) = 10/11 and the
    reference has 6 (y) * 6 (z) * 3 (x) = 108 voxels. On a RAS grid both keep z = 3, 6 only: DSC 1."""
    folder = _mrspineseg_raw(tmp_path, _sacrum(slice(3, 9)))
    write_volume(tmp_path / "pred" / f"{CASE}.nii.gz", _sacrum(slice(3, 8)), np.eye(4))
    result = _invoke("evaluate", "--dataset", "MRSpineSeg", "--root", folder, "--pred", tmp_path / "pred",
                     "--out", tmp_path / "out", "--grid", "satds")
    assert result.exit_code == 0, result.output
    sacrum = pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("class_name").loc["sacrum"]
    assert sacrum.dsc == pytest.approx(10 / 11) and sacrum.ref_voxels == 108
    assert json.loads((tmp_path / "out" / "run.json").read_text())["orientation"] == "ASR"


def test_run_on_the_satds_grid_reorients_mrspineseg_to_asr(tmp_path):
    """`bench run --protocol sat` scores on its SAT-DS space: the reference z in [3, 6) has 6 (y) * 3 (z) * 3 (x)
    = 54 voxels there in ASR; in RAS (only z = 3 kept) it would have 6 (x) * 6 (y) * 1 = 36."""
    folder = _mrspineseg_raw(tmp_path, _sacrum(slice(3, 6)))
    runner.PROCESS_MODELS.clear()
    result = _invoke("run", "--model", "oracle", "--dataset", "MRSpineSeg", "--root", folder, "--protocol", "sat",
                     "--class", "sacrum", "--out", tmp_path / "run")
    runner.PROCESS_MODELS.clear()
    assert result.exit_code == 0, result.output
    sacrum = pd.read_parquet(tmp_path / "run" / "metrics.parquet").set_index("class_name").loc["sacrum"]
    assert sacrum.ref_voxels == 54 and sacrum.spacing == "1x1x3"
