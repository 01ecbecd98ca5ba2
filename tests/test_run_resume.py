"""`bench run`'s resume rule on changed inputs: a changed case is run again, and a failed re-run leaves none of its
old rows behind (as `bench evaluate` does)."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from bench.engine import store
from bench.cli.app import app
from bench.data.io import write_volume

AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])


def _folders(tmp_path):
    label = np.zeros((16, 16, 8), np.uint8)
    label[4:10, 5:11, 2:6] = 1
    for case in ("case_0001", "case_0002"):
        write_volume(tmp_path / "images" / f"{case}_0000.nii.gz", label.astype(np.float32) * 100, AFFINE)
        write_volume(tmp_path / "labels" / f"{case}.nii.gz", label, AFFINE)
    return ["run", "--model", "oracle", "--images", str(tmp_path / "images"), "--refs", str(tmp_path / "labels"),
            "--labels", "1=liver", "--modality", "CT", "--out", str(tmp_path / "out")]


def test_changed_image_is_run_again_and_a_failed_rerun_drops_the_old_rows(tmp_path):
    args = _folders(tmp_path)
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert set(store.read_cases(tmp_path / "out").case_id) == {"case_0001", "case_0002"}
    image = tmp_path / "images" / "case_0002_0000.nii.gz"
    write_volume(image, np.ones((16, 16, 8), np.float32), AFFINE)  # changed content, still valid
    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0 and "ran 1 case(s), 1 already stored" in rerun.output, rerun.output
    write_volume(image, np.ones((15, 16, 8), np.float32), AFFINE)  # now unusable: shape differs from its label
    failed = CliRunner().invoke(app, args)
    assert failed.exit_code == 1 and "case_0002" in failed.output, failed.output
    assert set(store.read_cases(tmp_path / "out").case_id) == {"case_0001"}
