"""nnU-Net labels of all 72 specialists, conversion rules and ingestion, without running nnU-Net.

Oracles: SAT-DS's shipped `dataset.json` of every specialist (../shared/satds/nnunet), the label encodings the
datasets document (ACDC: 1 RV, 2 myocardium, 3 LV; LUNA16 lung masks: 3 left, 4 right, 5 trachea; MM-WHS: 205
myocardium ... 850 pulmonary artery), and hand-built label maps.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from baselines.nnunet.convert import case_ids, channel_values, convert_dataset, dataset_json, to_nnunet_values
from baselines.nnunet.ingest import label_lookup, remap_predictions
from bench.data.catalog import load_catalog
from bench.data.catalog.cases import CaseSource
from bench.data.io import InputError
from protocols.label_maps import class_mask

CATALOG = load_catalog()
DATASETS = sorted(CATALOG.datasets)


def _shipped(satds_dir: Path, name: str) -> dict:
    return json.loads((satds_dir / "nnunet" / CATALOG.dataset(name).nnunet_name / "dataset.json").read_text())


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_json_equals_satds_specialist(satds_dir, name):
    shipped = _shipped(satds_dir, name)
    ours = dataset_json(CATALOG.dataset(name), shipped["numTraining"])
    for key in ("channel_names", "labels", "file_ending", "overwrite_image_reader_writer", "numTraining"):
        assert ours[key] == shipped[key], key
    assert list(ours["labels"].items()) == sorted(shipped["labels"].items(), key=lambda item: item[1])


@pytest.mark.parametrize("name", DATASETS)
def test_every_label_of_every_specialist_lands_on_its_class(satds_dir, name):
    info = CATALOG.dataset(name)
    lookup = label_lookup(info, _shipped(satds_dir, name)["labels"])
    assert lookup == {v: v for v in range(1, len(info.nnunet_labels) + 1)}  # complete, nothing unmapped
    # one voxel per nnU-Net label: each class selects its own label value and every derived class the union of
    # the channels it is built from (kidney = left kidney + right kidney), in the dataset's class order
    prediction = np.arange(len(info.nnunet_labels) + 1)
    channel_of = {entry["class"]: entry["value"] for entry in info.nnunet_labels.values()}
    expected = {cls: {value} for cls, value in channel_of.items()}
    for target, sources in info.rules:
        expected[target] = set().union(*(expected[s] for s in sources))
    classes = info.nnunet_classes()
    assert list(classes) == list(info.classes)
    for cls in info.classes:
        assert set(prediction[class_mask(prediction, classes[cls])]) == expected[cls], cls
    for cls in info.classes:  # bilateral classes always hold both sides
        if f"left {cls}" in classes and f"right {cls}" in classes:
            assert expected[f"left {cls}"] | expected[f"right {cls}"] <= expected[cls]


def test_a_model_with_another_label_order_is_remapped(tmp_path):
    info = CATALOG.dataset("AMOS22_CT")
    names = list(info.nnunet_labels)
    shuffled = {"background": 0, **{name: i + 1 for i, name in enumerate(reversed(names))}}
    lookup = label_lookup(info, shuffled)
    assert lookup[1] == info.nnunet_labels[names[-1]]["value"]
    array = np.zeros((4, 4, 4), np.uint8)
    array[0, 0, 0] = 1  # the model's value for the last label, "urinary bladder" (14)
    array[1, 1, 1] = len(names)  # the model's value for "spleen" (1)
    affine = np.diag([0.7, 0.7, 5.0, 1.0])
    (tmp_path / "raw").mkdir()
    nib.save(nib.Nifti1Image(array, affine), str(tmp_path / "raw" / "amos_0001.nii.gz"))
    out = remap_predictions(tmp_path / "raw", lookup, tmp_path / "ingested")
    remapped = nib.load(str(out / "amos_0001.nii.gz"))
    assert remapped.get_fdata()[0, 0, 0] == 14 and remapped.get_fdata()[1, 1, 1] == 1
    assert np.array_equal(remapped.affine, nib.load(str(tmp_path / "raw" / "amos_0001.nii.gz")).affine)


def test_unknown_model_label_is_named():
    with pytest.raises(InputError, match="pancreatic duct"):
        label_lookup(CATALOG.dataset("AMOS22_CT"), {"background": 0, "spleen": 1, "pancreatic duct": 2})


@pytest.mark.parametrize("name, expected", [
    ("ACDC", {3: 1, 1: 2, 2: 3}),  # ACDC: 1 RV, 2 myocardium, 3 LV; nnU-Net: LV 1, RV 2, myocardium 3
    ("LUNA16", {3: 1, 4: 2, 5: 3}),  # LUNA16 seg-lungs: 3 left lung, 4 right lung, 5 trachea
    ("MM_WHS_CT", {205: 1, 420: 2, 500: 3, 550: 4, 600: 5, 820: 6, 850: 7}),
    ("AMOS22_CT", {v: v for v in range(1, 15)}),  # 15 (prostate/uterus) is not a SAT-DS class
])
def test_mask_values_to_nnunet_values(name, expected):
    info = CATALOG.dataset(name)
    assert to_nnunet_values(info, info.mask_values) == expected
    assert to_nnunet_values(info, info.class_values) == {v: v for v in expected.values()}  # an nnU-Net raw source


def test_a_class_widened_by_its_own_rule_keeps_its_own_value():
    info = CATALOG.dataset("KiTS23")  # kidney = kidney + tumour + cyst in SAT-DS; nnU-Net label 1 is kidney alone
    assert channel_values(info, info.mask_values)["kidney"] == (1,)
    assert to_nnunet_values(info, info.mask_values) == {1: 1, 2: 2, 3: 3}


def _case(root: Path, patient: str, image_name: str, labels: np.ndarray, affine: np.ndarray) -> CaseSource:
    folder = root / patient
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / image_name
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=labels.shape).astype(np.float32), affine),
             str(image))
    label = folder / f"{patient}_gt.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), str(label))
    return CaseSource(f"{patient}.nii.gz", image, label, "MRI", CATALOG.dataset("ACDC").mask_values, "ACDC")


def test_conversion_remaps_labels_keeps_geometry_and_sats_split(tmp_path):
    info = CATALOG.dataset("ACDC")
    affine = np.array([[-1.5, 0.1, 0, 10], [0, 1.4, 0.2, -20], [0, 0, 10, 5], [0, 0, 0, 1]])
    labels = np.zeros((6, 5, 4), np.uint8)
    labels[0, 0, 0], labels[1, 1, 1], labels[2, 2, 2], labels[3, 3, 3] = 1, 2, 3, 7  # RV, myo, LV, unused value
    train_id, test_id = info.train_ids[0].removesuffix(".nii.gz"), info.test_ids[0].removesuffix(".nii.gz")
    sources = [_case(tmp_path / "data", pid, f"{pid}{ending}", labels, affine)
               for pid, ending in ((train_id, ".nii"), (test_id, ".nii.gz"))]
    report = convert_dataset(info, sources, tmp_path / "raw")
    folder = tmp_path / "raw" / info.nnunet_name
    assert report.train == [train_id] and report.test == [test_id]
    assert report.dropped_values == {7: 2}
    assert not (folder / "imagesTr" / f"{test_id}_0000.nii.gz").exists()
    converted = nib.load(str(folder / "labelsTs" / f"{test_id}.nii.gz"))
    assert np.array_equal(converted.affine, nib.load(str(sources[1].label)).affine)
    assert converted.header.get_zooms() == nib.load(str(sources[1].label)).header.get_zooms()
    values = np.asarray(converted.dataobj)
    assert (values[0, 0, 0], values[1, 1, 1], values[2, 2, 2], values[3, 3, 3]) == (2, 3, 1, 0)
    image = folder / "imagesTs" / f"{test_id}_0000.nii.gz"
    assert image.read_bytes() == sources[1].image.read_bytes()  # copied byte for byte
    plain = folder / "imagesTr" / f"{train_id}_0000.nii.gz"  # a plain .nii is compressed, not rewritten
    assert gzip.decompress(plain.read_bytes()) == sources[0].image.read_bytes()
    again = convert_dataset(info, sources, tmp_path / "raw")
    assert again.reused == 2


def test_a_case_outside_sats_split_is_refused(tmp_path):
    info = CATALOG.dataset("ACDC")
    source = _case(tmp_path, "patient999_frame01", "patient999_frame01.nii.gz", np.zeros((2, 2, 2), np.uint8),
                   np.eye(4))
    with pytest.raises(InputError, match="neither of SAT's splits"):
        convert_dataset(info, [source], tmp_path / "raw")


def test_case_ids_tell_several_scans_of_one_patient_apart(tmp_path):
    def source(patient, *parts):
        return CaseSource(patient, tmp_path.joinpath(*parts), tmp_path / "seg.nii.gz", "MRI", {})

    brats = [source("BraTS-GLI-00000-000", "BraTS-GLI-00000-000", f"BraTS-GLI-00000-000-{s}.nii.gz")
             for s in ("t1n", "t2w")]
    autopet = [source("PETCT_0011f3deaf", "PETCT_0011f3deaf", d, "SUV.nii.gz") for d in ("03-23-2003 A", "11-2004")]
    single = [source("amos_0001.nii.gz", "imagesTr", "amos_0001.nii.gz")]
    assert case_ids(brats + autopet + single) == [
        "BraTS-GLI-00000-000-t1n", "BraTS-GLI-00000-000-t2w", "PETCT_0011f3deaf_03-23-2003_A",
        "PETCT_0011f3deaf_11-2004", "amos_0001"]
