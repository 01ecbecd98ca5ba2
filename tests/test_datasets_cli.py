"""`bench datasets list/show/verify/import-satds` through the typer app."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.data.catalog.importer import DATA_DIR
from bench.cli.datasets import datasets_app
from bench.data.io import write_volume

RUNNER = CliRunner()


def _invoke(*args):
    return RUNNER.invoke(datasets_app, [str(a) for a in args])


def test_list_and_show():
    result = _invoke("list")
    assert result.exit_code == 0 and "72 datasets, 498 unified classes" in result.output
    assert "TotalSegmentator_Organs" in result.output
    result = _invoke("show", "kits23")
    assert result.exit_code == 0, result.output
    assert "ct_kidney" in result.output and "kidney + kidney tumor + kidney cyst" in result.output
    assert "test 98 ids" in result.output and "(abnormal)" in result.output
    result = _invoke("show", "nope")
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.output


@pytest.fixture()
def chaos(tmp_path):
    """A two-case nnU-Net raw copy of CHAOS MRI holding all four channels between them."""
    folder = tmp_path / "Dataset018_CHAOSMR"
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    for case, values in (("a", (1, 2)), ("b", (3, 4))):
        labels = np.zeros((4, 4, 3), np.uint8)
        labels[0, 0, 0], labels[1, 1, 1] = values
        write_volume(folder / f"labelsTs/{case}.nii.gz", labels, affine)
        write_volume(folder / f"imagesTs/{case}_0000.nii.gz", np.ones((4, 4, 3)), affine)
    (folder / "dataset.json").write_text(json.dumps({"labels": {"background": 0}, "file_ending": ".nii.gz"}))
    return folder


def test_verify_clean_dataset(chaos):
    result = _invoke("verify", "CHAOS_MRI", "--root", chaos)
    assert result.exit_code == 0, result.output
    assert "2 case(s) checked, 0 problem(s)" in result.output


def test_verify_reports_missing_file_geometry_mismatch_and_absent_class(chaos):
    (chaos / "imagesTs/a_0000.nii.gz").unlink()
    write_volume(chaos / "imagesTs/b_0000.nii.gz", np.ones((4, 4, 3)), np.diag([2.0, 1.0, 2.0, 1.0]))
    result = _invoke("verify", "CHAOS_MRI", "--root", chaos)
    assert result.exit_code == 1
    assert "a: missing file" in result.output and "a_0000.nii.gz" in result.output
    assert "b: geometry mismatch" in result.output
    assert "absent from every case" not in result.output  # the labels hold every class: a missing image is
    assert "2 case(s) checked, 2 problem(s)" in result.output  # one finding, not one per class


def test_verify_names_a_class_absent_only_when_every_label_map_was_read(chaos):
    write_volume(chaos / "labelsTs/b.nii.gz", np.zeros((4, 4, 3), np.uint8), np.diag([1.0, 1.0, 2.0, 1.0]))
    (chaos / "imagesTs/a_0000.nii.gz").unlink()
    result = _invoke("verify", "CHAOS_MRI", "--root", chaos)
    assert "a: missing file" in result.output and "is absent from every case" in result.output
    (chaos / "labelsTs/a.nii.gz").write_bytes(b"not a volume")  # its classes cannot be known
    result = _invoke("verify", "CHAOS_MRI", "--root", chaos)
    assert "absent from every case" not in result.output, result.output
    assert "classes not checked: 1 label map(s) could not be read" in result.output


def test_verify_rejects_an_escaping_manifest(chaos, tmp_path):
    manifest = chaos / "cases.json"
    manifest.write_text(json.dumps({"dataset": "CHAOS_MRI", "cases": [
        {"image": "../elsewhere.nii.gz", "label": "labelsTs/a.nii.gz"}]}))
    result = _invoke("verify", "CHAOS_MRI", "--root", chaos, "--manifest", manifest)
    assert result.exit_code == 2 and "escapes the data root" in result.output


def test_import_satds_writes_the_catalog_data(satds_dir, tmp_path):
    result = _invoke("import-satds", satds_dir, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "72 datasets, 498 terms" in result.output
    for name in ("terms.json", "datasets.json"):
        assert (tmp_path / name).read_text() == (DATA_DIR / name).read_text()


def test_list_is_a_markdown_table_with_its_separator_row():
    lines = _invoke("list").output.splitlines()
    assert lines[0].startswith("| dataset") and set(lines[1].replace("|", "").strip()) <= {"-", ":", " "}
    assert lines[1].count("|") == lines[0].count("|") == lines[2].count("|")
