"""Every layout (SAT-DS record, nnU-Net raw, MSD task, user manifest) loads into one Case; paths stay in root."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.data.catalog.cases import (discover_sources, load_case, manifest_sources, msd_sources, nnunet_sources,
                                 resolve_inside, satds_record_source)
from bench.data.io import InputError, write_volume

AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


def _label_map() -> np.ndarray:
    labels = np.zeros((6, 5, 4), np.uint8)
    labels[1:3, 1:3, 1] = 2  # right kidney
    labels[3:5, 1:3, 2] = 3  # left kidney
    labels[1, 4, 3] = 1  # liver
    return labels


def _pair(folder, image_rel, label_rel, labels=None, affine=AFFINE):
    labels = _label_map() if labels is None else labels
    write_volume(folder / image_rel, np.random.default_rng(0).normal(size=labels.shape), affine)
    write_volume(folder / label_rel, labels, AFFINE)


def test_nnunet_raw_dataset_gets_catalog_classes(tmp_path):
    folder = tmp_path / "Dataset018_CHAOSMR"
    _pair(folder, "imagesTs/case_1_0000.nii.gz", "labelsTs/case_1.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1}, "file_ending": ".nii.gz",
                                                     "channel_names": {"0": "MR"}}))
    [source] = nnunet_sources(folder)
    case = load_case(source)
    assert (case.case_id, case.dataset, case.modality) == ("case_1", "CHAOS_MRI", "MRI")
    assert list(case.masks) == ["liver", "right kidney", "left kidney", "spleen", "kidney"]
    assert case.masks["kidney"].sum() == 8 and not case.masks["spleen"].any()
    assert case.spacing == (1.5, 1.5, 3.0)
    assert discover_sources(folder) == [source]


def test_unknown_nnunet_dataset_uses_its_own_labels(tmp_path):
    folder = tmp_path / "Dataset999_Mine"
    _pair(folder, "imagesTs/a_0000.nii.gz", "labelsTs/a.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "Left_Kidney": 3, "kidneys": [2, 3]},
                                                     "channel_names": {"0": "CT"}}))
    [source] = nnunet_sources(folder)
    assert source.classes == {"left kidney": (3,), "kidneys": (2, 3)} and source.modality == "CT"
    assert load_case(source).masks["kidneys"].sum() == 8


def test_msd_task_folder(tmp_path):
    folder = tmp_path / "Task03_Liver"
    _pair(folder, "imagesTr/liver_0.nii.gz", "labelsTr/liver_0.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}]}))
    [source] = msd_sources(folder)
    assert source.dataset == "MSD_Liver" and source.classes["liver"] == (1, 2)  # SAT-DS: liver includes tumour
    assert discover_sources(folder) == [source]


def test_satds_record(tmp_path):
    _pair(tmp_path, "data/nii/img.nii.gz", "data/nii/seg.nii.gz")
    record = {"image": "data/nii/img.nii.gz", "mask": "data/nii/seg.nii.gz", "dataset": "CHAOS_MRI",
              "modality": "MRI T2", "patient_id": "34", "label": ["liver"]}
    case = load_case(satds_record_source(record, tmp_path))
    assert case.modality == "MRI T2" and case.masks["kidney"].sum() == 8
    jsonl = tmp_path / "CHAOS_MRI.jsonl"
    jsonl.write_text(json.dumps(record) + "\n")
    assert [s.case_id for s in discover_sources(tmp_path, jsonl)] == ["34"]


def test_manifest_with_class_map_and_with_catalog_dataset(tmp_path):
    _pair(tmp_path, "scans/a.nii.gz", "labels/a.nii.gz")
    manifest = tmp_path / "cases.yaml"
    manifest.write_text("modality: CT\nclasses: {kidneys: [2, 3], Liver: 1}\n"
                        "cases:\n  - {image: scans/a.nii.gz, label: labels/a.nii.gz}\n"
                        "  - {image: scans/a.nii.gz, label: labels/a.nii.gz, id: b, dataset: KiTS23}\n")
    first, second = manifest_sources(manifest)
    assert first.classes == {"kidneys": (2, 3), "liver": (1,)} and first.case_id == "a"
    assert second.dataset == "KiTS23" and second.classes["kidney"] == (1, 2, 3)


@pytest.mark.parametrize("escape", ["../outside.nii.gz", "/etc/passwd", "scans/../../x.nii.gz"])
def test_path_escaping_the_root_is_rejected(tmp_path, escape):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(InputError, match="escapes the data root"):
        resolve_inside(root, escape)
    manifest = root / "m.json"
    manifest.write_text(json.dumps({"modality": "CT", "classes": {"x": 1},
                                    "cases": [{"image": escape, "label": "l.nii.gz"}]}))
    with pytest.raises(InputError, match="escapes the data root"):
        manifest_sources(manifest)


def test_bad_manifests_name_the_file(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("cases: []\n")
    with pytest.raises(InputError, match="m.yaml: expected a non-empty `cases`"):
        manifest_sources(manifest)
    manifest.write_text("cases: [{image: a.nii.gz, label: b.nii.gz}]\n")
    with pytest.raises(InputError, match="case 1 has no `classes`"):
        manifest_sources(manifest)
    with pytest.raises(InputError, match="no dataset.json"):
        discover_sources(tmp_path)


def test_a_symlink_inside_the_root_to_shared_storage_is_a_case(tmp_path):
    """Datasets are often folders of links into shared storage: the entry lies inside the root, its target need
    not; only the path as written (`..`, absolute) may not leave the root."""
    storage = tmp_path / "storage" / "scan.nii.gz"
    storage.parent.mkdir()
    storage.write_bytes(b"")
    root = tmp_path / "root"
    (root / "imagesTs").mkdir(parents=True)
    (root / "imagesTs" / "case_0000.nii.gz").symlink_to(storage)
    assert resolve_inside(root, "imagesTs/case_0000.nii.gz") == root.resolve() / "imagesTs" / "case_0000.nii.gz"
    with pytest.raises(InputError, match="escapes the data root"):
        resolve_inside(root, "imagesTs/../../storage/scan.nii.gz")
