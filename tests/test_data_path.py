"""The data path as a new user meets it: real file names, catalog datasets, class subsets, stale resumes,
permissions, name and modality resolution, label-set aliases, provenance."""

import json
import os
import shutil
import stat

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import ndimage
from typer.testing import CliRunner

from bench.engine import store
from bench.data.catalog import load_catalog
from bench.data.catalog.names import unified_class_name
from bench.cli.app import app
from bench.data.io import read_label_map, write_volume
from protocols.case import evaluate_case

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _label(seed: int, shape=(24, 20, 8)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    x, y = rng.integers(2, 8, 2)
    label[x:x + 10, y:y + 8, 1:6] = 1
    label[14:20, 3:9, 2:7] = 2
    return label


def _shifted(label: np.ndarray, seed: int) -> np.ndarray:
    return np.roll(label, tuple(np.random.default_rng(seed).integers(-1, 2, 3)), axis=(0, 1, 2))


# Case ids from real file names ------------------------------------------------------------------------------------

REAL_NAMES = ["amos_0013", "FLARE22_Tr_0031", "word_0106", "segrap_0000", "segrap_0001"]


def test_real_file_names_are_distinct_cases_and_only_predictions_carry_a_channel_tag(tmp_path):
    truth = {}
    for index, name in enumerate(REAL_NAMES):
        ref = _label(index)
        pred = _shifted(ref, index)
        write_volume(tmp_path / "ref" / f"{name}.nii.gz", ref, AFFINE)
        tagged = name in ("amos_0013", "word_0106")  # nnU-Net's channel tag on a prediction is tolerated
        write_volume(tmp_path / "pred" / f"{name}{'_0000' if tagged else ''}.nii.gz", pred, AFFINE)
        truth[name] = evaluate_case(pred, ref, (0.8, 0.8, 2.5), {"liver": 1, "spleen": 2})
    result = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                     "--labels", "1=liver,2=spleen", "--dataset", "mixed", "--modality", "CT")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert sorted(table.case_id.unique()) == sorted(REAL_NAMES)
    for name, scores in truth.items():
        rows = table[table.case_id == name].set_index("class_name")
        assert [rows.loc[s.class_name, "dsc"] for s in scores] == [s.dsc for s in scores]


def test_a_reference_named_like_a_channel_tag_keeps_its_name(tmp_path):
    write_volume(tmp_path / "ref" / "segrap_0000.nii.gz", _label(0), AFFINE)
    write_volume(tmp_path / "pred" / "segrap_0000_0000.nii.gz", _label(0), AFFINE)
    result = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                     "--labels", "1=liver,2=spleen", "--dataset", "d", "--modality", "CT")
    assert result.exit_code == 0, result.output
    assert set(pd.read_parquet(tmp_path / "out" / "metrics.parquet").case_id) == {"segrap_0000"}


def test_a_prediction_without_reference_is_named(tmp_path):
    write_volume(tmp_path / "ref" / "amos_0013.nii.gz", _label(0), AFFINE)
    write_volume(tmp_path / "pred" / "amos_0014.nii.gz", _label(0), AFFINE)
    result = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                     "--labels", "1=liver", "--dataset", "d", "--modality", "CT")
    assert result.exit_code == 2 and "amos_0014.nii.gz" in result.output and "Traceback" not in result.output


# Catalog datasets --------------------------------------------------------------------------------------------------

def _amos_raw(shared_dir, root):
    """An nnU-Net raw AMOS22 folder holding the real AMOS label under its real name (a test case of SAT's split)
    and a training case, with SAT-DS's own dataset.json for the specialist."""
    folder = root / "Dataset003_AMOS22CT"
    (folder / "labelsTs").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    shutil.copy(shared_dir / "satds" / "nnunet" / "Dataset003_AMOS22CT" / "dataset.json", folder)
    shutil.copy(shared_dir / "data" / "amos" / "amos_0013_label.nii.gz", folder / "labelsTs" / "amos_0013.nii.gz")
    label = read_label_map(folder / "labelsTs" / "amos_0013.nii.gz")
    write_volume(folder / "labelsTr" / "amos_0001.nii.gz", label.array[:64, :64, :8], label.affine)
    return folder, label


def test_catalog_dataset_by_name_on_the_real_amos_label(shared_dir, tmp_path):
    folder, label = _amos_raw(shared_dir, tmp_path)
    pred = label.array.copy()
    pred[ndimage.binary_dilation(label.array == 6, iterations=1) & (pred == 0)] = 6  # liver one voxel too wide
    write_volume(tmp_path / "pred" / "amos_0013.nii.gz", pred, label.affine)
    result = _invoke("evaluate", "--dataset", "AMOS22_CT", "--root", folder, "--pred", tmp_path / "pred",
                     "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    info = load_catalog().dataset("AMOS22_CT")
    assert list(table.class_name) == list(info.classes)  # channel order, derived classes last
    assert set(table.dataset) == {"AMOS22_CT"} and set(table.modality) == {"CT"} and set(table.grid) == {"native"}
    rows = table.set_index("class_name")
    kidney = evaluate_case(pred, label.array, label.spacing, {"kidney": (2, 3)})[0]
    assert rows.loc["kidney", "dsc"] == kidney.dsc and rows.loc["kidney", "ref_voxels"] == kidney.ref_voxels
    assert rows.loc["liver", "dsc"] < 1.0 and rows.loc["spleen", "dsc"] == 1.0
    # AMOS label 15 (prostate/uterus) is no SAT-DS AMOS22_CT class: named once, recorded, not an error
    assert "ref label 15" in result.output and "pred label 15" in result.output
    assert json.loads((tmp_path / "out" / "run.json").read_text())["unscored_labels"] == {
        "pred label 15": 1, "ref label 15": 1}
    # the training case is not in SAT's test split; --split train finds it and not the test case
    trained = _invoke("evaluate", "--dataset", "AMOS22_CT", "--root", folder, "--pred", tmp_path / "pred",
                      "--out", tmp_path / "out2", "--split", "train")
    assert trained.exit_code == 2 and "amos_0013.nii.gz" in trained.output


def test_catalog_modality_cannot_be_contradicted(shared_dir, tmp_path):
    folder, label = _amos_raw(shared_dir, tmp_path)
    write_volume(tmp_path / "pred" / "amos_0013.nii.gz", label.array, label.affine)
    result = _invoke("evaluate", "--dataset", "AMOS22_CT", "--root", folder, "--pred", tmp_path / "pred",
                     "--out", tmp_path / "out", "--modality", "MRI")
    assert result.exit_code == 2 and "contradicts the catalog" in result.output


def test_totalsegmentator_style_raw_folder_lands_in_sat_terms(shared_dir, tmp_path):
    """An nnU-Net raw folder in TotalSegmentator v2's own label names (a dataset the catalog does not know by this
    name): the class names map to SAT terms, so every class has a region."""
    source = shared_dir / "data" / "totalsegmentator_example"
    names = json.loads((source / "classes.json").read_text())
    folder = tmp_path / "Dataset999_TSExample"
    (folder / "labelsTs").mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({
        "name": "TSExample", "channel_names": {"0": "CT"}, "file_ending": ".nii.gz",
        "labels": {"background": 0, **{name: int(value) for value, name in names.items()}}}))
    shutil.copy(source / "seg_total.nii.gz", folder / "labelsTs" / "s0011.nii.gz")
    (tmp_path / "pred").mkdir()
    shutil.copy(source / "seg_total_fast.nii.gz", tmp_path / "pred" / "s0011.nii.gz")
    result = _invoke("evaluate", "--ref", folder / "labelsTs", "--pred", tmp_path / "pred", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert set(table.dataset) == {"TSExample"} and set(table.modality) == {"CT"} and len(table) == 117
    assert {"left kidney", "lumbar vertebrae 1 (l1)", "left rib 3", "left auricle of heart"} <= set(table.class_name)
    keys = set(load_catalog().terms["key"])
    assert all(f"ct_{name}" in keys for name in table.class_name)
    assert "no SAT term" not in result.output


def test_dataset_name_and_modality_are_asked_for_not_guessed(tmp_path):
    write_volume(tmp_path / "labelsTs" / "case_1.nii.gz", _label(0), AFFINE)
    write_volume(tmp_path / "pred" / "case_1.nii.gz", _label(0), AFFINE)
    base = ["evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "labelsTs", "--out", tmp_path / "out",
            "--labels", "1=liver"]
    no_name = _invoke(*base, "--modality", "CT")
    assert no_name.exit_code == 2 and "pass --dataset NAME" in no_name.output
    no_modality = _invoke(*base, "--dataset", "mine")
    assert no_modality.exit_code == 2 and "pass --modality" in no_modality.output
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "Mine", "channel_names": {"0": "T2"},
                                                       "labels": {"background": 0, "liver": 1}}))
    named = _invoke(*base[:-2])
    assert named.exit_code == 0, named.output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert set(table.dataset) == {"Mine"} and set(table.modality) == {"MRI"}


def test_totalsegmentator_label_set_targets_are_catalog_classes():
    label_sets = store.Path(__file__).parents[1] / "bench" / "data" / "catalog" / "label_sets.yaml"
    tables = yaml.safe_load(label_sets.read_text())
    ts_classes = {c for name, info in load_catalog().datasets.items() if name.startswith("TotalSegmentator")
                  for c in info.classes}
    assert len(tables["totalsegmentator_v2"]) == 117
    assert set(tables["totalsegmentator_v2"].values()) <= ts_classes
    assert unified_class_name("kidney_left") == "left kidney"
    assert unified_class_name("vertebrae_L1") == "lumbar vertebrae 1 (l1)"
    assert unified_class_name("Left_Clavicula") == "left clavicle"


# Resume without stale numbers --------------------------------------------------------------------------------------

def _folder_run(tmp_path, n=3):
    for index in range(n):
        ref = _label(index)
        write_volume(tmp_path / "ref" / f"case_{index}.nii.gz", ref, AFFINE)
        write_volume(tmp_path / "pred" / f"case_{index}.nii.gz", _shifted(ref, index), AFFINE)
    return ["evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
            "--labels", "1=liver,2=spleen", "--dataset", "d", "--modality", "CT"]


def test_changed_prediction_is_rescored_and_deleted_one_dropped(tmp_path):
    command = _folder_run(tmp_path)
    assert _invoke(*command).exit_code == 0
    perfect = read_label_map(tmp_path / "ref" / "case_1.nii.gz").array
    write_volume(tmp_path / "pred" / "case_1.nii.gz", perfect, AFFINE)
    (tmp_path / "pred" / "case_2.nii.gz").unlink()
    result = _invoke(*command)
    assert result.exit_code == 0, result.output
    assert "scored 1 case(s), 1 stored with unchanged inputs" in result.output and "case_2" in result.output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert sorted(table.case_id.unique()) == ["case_0", "case_1"]
    assert (table[table.case_id == "case_1"].dsc == 1.0).all()


def test_touched_but_identical_file_is_not_rescored_and_overwrite_rescores_all(tmp_path):
    command = _folder_run(tmp_path)
    assert _invoke(*command).exit_code == 0
    path = tmp_path / "pred" / "case_0.nii.gz"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert "scored 0 case(s), 3 stored" in _invoke(*command).output
    assert "scored 3 case(s), 0 stored" in _invoke(*command, "--overwrite").output


def test_changed_reference_is_rescored(tmp_path):
    command = _folder_run(tmp_path)
    assert _invoke(*command).exit_code == 0
    write_volume(tmp_path / "ref" / "case_0.nii.gz", read_label_map(tmp_path / "pred" / "case_0.nii.gz").array, AFFINE)
    assert "scored 1 case(s), 2 stored" in _invoke(*command).output
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert (table[table.case_id == "case_0"].dsc == 1.0).all()


def test_a_run_folder_without_stored_cases_takes_corrected_settings(tmp_path):
    command = _folder_run(tmp_path, n=1)
    write_volume(tmp_path / "pred" / "case_0.nii.gz", np.zeros((3, 3, 3), np.uint8), AFFINE)
    assert _invoke(*command).exit_code == 1  # geometry mismatch: nothing stored
    write_volume(tmp_path / "pred" / "case_0.nii.gz", _label(0), AFFINE)
    fixed = _invoke(*command[:-2], "--modality", "MRI")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads((tmp_path / "out" / "run.json").read_text())["modality"] == "MRI"


def test_result_files_are_readable_by_others_and_run_json_has_provenance(tmp_path):
    command = _folder_run(tmp_path, n=1)
    previous = os.umask(0o022)
    try:
        assert _invoke(*command).exit_code == 0
    finally:
        os.umask(previous)
    for path in [tmp_path / "out" / "metrics.parquet", tmp_path / "out" / "run.json",
                 *(tmp_path / "out" / "cases").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    config = json.loads((tmp_path / "out" / "run.json").read_text())
    assert config["status"] == "complete"
    assert {"harness_version", "git_commit", "date", "host", "python", "libraries"} <= set(config["provenance"])
    assert config["provenance"]["libraries"]["numpy"] == np.__version__


def test_an_incomplete_run_is_readable_and_says_so(tmp_path, capsys):
    command = _folder_run(tmp_path)
    assert _invoke(*command).exit_code == 0
    (tmp_path / "out" / "metrics.parquet").unlink()  # as after a kill: case files only, status not complete
    store.update_config(tmp_path / "out", status="running")
    rows = store.read_metrics([tmp_path / "out"])
    assert len(rows) == 3 * 2 and "incomplete" in capsys.readouterr().err


# Per-class mask folders --------------------------------------------------------------------------------------------

def test_mask_folders_need_only_requested_classes_and_unions_are_built(tmp_path):
    ref = _label(0)
    ref[2:4, 15:18, 1:3] = 3
    write_volume(tmp_path / "ref" / "case_0.nii.gz", ref, AFFINE)
    for name, value in (("liver", 1), ("spleen", 2)):
        write_volume(tmp_path / "pred" / "case_0" / f"{name}.nii.gz", ref == value, AFFINE)
    result = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                     "--labels", "1=liver,2=spleen,1+2=liver or spleen", "--dataset", "d", "--modality", "CT")
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("class_name")
    assert list(rows.index) == ["liver", "spleen", "liver or spleen"] and (rows.dsc == 1.0).all()
    assert "ref label 3" in result.output


def test_two_files_for_one_class_are_refused(tmp_path):
    ref = _label(0)
    write_volume(tmp_path / "ref" / "case_0.nii.gz", ref, AFFINE)
    write_volume(tmp_path / "pred" / "case_0" / "liver.nii.gz", ref == 1, AFFINE)
    write_volume(tmp_path / "pred" / "case_0" / "liver.nii", np.zeros_like(ref, bool), AFFINE)
    result = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                     "--labels", "1=liver", "--dataset", "d", "--modality", "CT")
    assert result.exit_code == 1 and "several mask files" in result.output


@pytest.mark.parametrize("text", ["1=liver,2=liver", "true=liver"])
def test_ambiguous_inline_labels_are_refused(tmp_path, text):
    _folder_run(tmp_path, n=1)
    result = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                     "--labels", text, "--dataset", "d", "--modality", "CT")
    assert result.exit_code == 2 and "--labels" in result.output


def test_grid_satds_scores_on_sat_grid_and_is_recorded(shared_dir, tmp_path):
    from bench.engine.scoring_grid import to_scoring_grid

    folder, label = _amos_raw(shared_dir, tmp_path)
    pred = label.array.copy()
    pred[ndimage.binary_dilation(label.array == 1, iterations=1) & (pred == 0)] = 1  # spleen one voxel too wide
    write_volume(tmp_path / "pred" / "amos_0013.nii.gz", pred, label.affine)
    base = ["evaluate", "--dataset", "AMOS22_CT", "--root", folder, "--pred", tmp_path / "pred", "--labels",
            "1=spleen,6=liver"]
    assert _invoke(*base, "--out", tmp_path / "native").exit_code == 0
    result = _invoke(*base, "--out", tmp_path / "satds", "--grid", "satds")
    assert result.exit_code == 0, result.output
    native = pd.read_parquet(tmp_path / "native" / "metrics.parquet").set_index("class_name")
    satds = pd.read_parquet(tmp_path / "satds" / "metrics.parquet").set_index("class_name")
    assert set(satds.grid) == {"satds"} and set(satds.spacing) == {"1x1x3"} and set(native.grid) == {"native"}
    p, r, spacing = to_scoring_grid(pred, label.array, label.affine, label.array.shape, "satds", "RAS")
    expected = evaluate_case(p, r, spacing, {"spleen": 1, "liver": 6})
    assert [satds.loc[s.class_name, "nsd"] for s in expected] == [s.nsd for s in expected]
    assert satds.loc["spleen", "nsd"] != native.loc["spleen", "nsd"]
    protocol = json.loads((tmp_path / "satds" / "run.json").read_text())["protocol"]
    assert (protocol["space"]["grid"], protocol["scoring"]["grid"]) == ("satds", "space")


def test_distances_are_extra_columns_on_request(tmp_path):
    import surface_distance

    command = _folder_run(tmp_path, n=1)
    plain = _invoke(*command)
    assert plain.exit_code == 0 and "hd95_mm" not in pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    result = _invoke(*command[:-8], "--out", tmp_path / "dist", *command[-6:], "--distances")
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "dist" / "metrics.parquet").set_index("class_name")
    ref = read_label_map(tmp_path / "ref" / "case_0.nii.gz")
    pred = read_label_map(tmp_path / "pred" / "case_0.nii.gz")
    for name, value in (("liver", 1), ("spleen", 2)):
        distances = surface_distance.compute_surface_distances(ref.array == value, pred.array == value, ref.spacing)
        assert rows.loc[name, "hd95_mm"] == pytest.approx(surface_distance.compute_robust_hausdorff(distances, 95),
                                                          abs=1e-9)
        assert rows.loc[name, "dsc"] == pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index(
            "class_name").loc[name, "dsc"]


def test_a_prediction_for_a_case_outside_sats_split_names_the_split(shared_dir, tmp_path):
    """amos_0014 lies in labelsTs (nnU-Net's test folder) but in SAT's train split: say so and how to score it."""
    folder, label = _amos_raw(shared_dir, tmp_path)
    (folder / "labelsTs" / "amos_0013.nii.gz").rename(folder / "labelsTs" / "amos_0014.nii.gz")
    (folder / "labelsTs" / "amos_0013.nii.gz").symlink_to(folder / "labelsTs" / "amos_0014.nii.gz")
    assert "amos_0014.nii.gz" in map(str, load_catalog().dataset("AMOS22_CT").train_ids)
    write_volume(tmp_path / "pred" / "amos_0014.nii.gz", label.array, label.affine)
    result = _invoke("evaluate", "--dataset", "AMOS22_CT", "--root", folder, "--pred", tmp_path / "pred",
                     "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "amos_0014.nii.gz (in SAT's train split of AMOS22_CT)" in result.output
    assert "--split all" in result.output and "Traceback" not in result.output
    everything = _invoke("evaluate", "--dataset", "AMOS22_CT", "--root", folder, "--pred", tmp_path / "pred",
                         "--out", tmp_path / "out", "--split", "all")
    assert everything.exit_code == 0, everything.output


def test_the_official_amos22_download_layout_is_read(shared_dir, tmp_path):
    """AMOS22 as downloaded: imagesTr/labelsTr, imagesVa/labelsVa, imagesTs, its own dataset.json (MSD-style, no
    labelsTs). A case under labelsVa is found; a root in no known layout lists what was looked for."""
    root = tmp_path / "amos22"
    (root / "labelsTr").mkdir(parents=True)
    (root / "labelsVa").mkdir()
    (root / "imagesTs").mkdir()
    shutil.copy(shared_dir / "data" / "amos" / "amos_0013_label.nii.gz", root / "labelsVa" / "amos_0013.nii.gz")
    (root / "dataset.json").write_text(json.dumps({"name": "AMOS", "labels": {"0": "background", "1": "spleen"},
                                                   "training": [], "validation": []}))
    (tmp_path / "pred").mkdir()
    shutil.copy(shared_dir / "data" / "amos" / "amos_0013_label.nii.gz", tmp_path / "pred" / "amos_0013.nii.gz")
    result = _invoke("evaluate", "--dataset", "AMOS22_CT", "--root", root, "--pred", tmp_path / "pred",
                     "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("class_name")
    assert rows.loc["liver", "dsc"] == 1.0 and set(rows.case_id) == {"amos_0013"}
    verified = _invoke("datasets", "verify", "AMOS22_CT", "--root", root)
    assert "1 case(s) checked" in verified.output and "missing file" in verified.output  # no imagesVa here
    (tmp_path / "empty").mkdir()
    nothing = _invoke("evaluate", "--dataset", "AMOS22_CT", "--root", tmp_path / "empty", "--pred", tmp_path / "pred",
                      "--out", tmp_path / "out2")
    assert nothing.exit_code == 2 and "labelsVa" in nothing.output and "labelsTs" in nothing.output
    assert "--manifest" in nothing.output
