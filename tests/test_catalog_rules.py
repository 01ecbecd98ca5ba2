"""Derived classes and the nnU-Net name mapping, checked on small hand-made label maps."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.catalog import apply_rules, class_masks, load_catalog, nnunet_class_name, resolve_rules
from bench.data.catalog.rules import bilateral_rules

CATALOG = load_catalog()


def _masks(dataset: str, label_map) -> dict[str, np.ndarray]:
    return class_masks(np.asarray(label_map), CATALOG.datasets[dataset].class_values)


def _voxels(mask) -> list[int]:
    return np.flatnonzero(mask).tolist()


def test_chaos_mri_kidney_is_left_plus_right():
    masks = _masks("CHAOS_MRI", [0, 1, 2, 3, 4])  # liver, right kidney, left kidney, spleen
    assert _voxels(masks["kidney"]) == [2, 3]
    assert _voxels(masks["right kidney"]) == [2]


def test_kits23_kidney_includes_tumour_and_cyst():
    masks = _masks("KiTS23", [0, 1, 2, 3])
    assert _voxels(masks["kidney"]) == [1, 2, 3]
    assert _voxels(masks["kidney tumor"]) == [2] and _voxels(masks["kidney cyst"]) == [3]


@pytest.mark.parametrize("dataset", ["BraTS2023_GLI", "BraTS2023_MEN", "BraTS2023_MET", "BraTS2023_PED",
                                     "BraTS2023_SSA"])
def test_brats_tumour_is_core_edema_enhancing(dataset):
    masks = _masks(dataset, [0, 1, 2, 3])
    assert _voxels(masks["brain tumor"]) == [1, 2, 3]
    assert CATALOG.datasets[dataset].classes[-1] == "brain tumor"


def test_totalsegmentator_pairs_give_bilateral_classes():
    organs = CATALOG.datasets["TotalSegmentator_Organs"]
    masks = _masks("TotalSegmentator_Organs", [organs.nnunet_labels[label]["value"] for label in
                                               ("left_kidney", "right_kidney", "left_lung_lower_lobe", "liver")])
    assert _voxels(masks["kidney"]) == [0, 1]
    assert _voxels(masks["lung lower lobe"]) == [2]
    ribs = CATALOG.datasets["TotalSegmentator_Ribs"]
    assert len(ribs.class_values["rib"]) == 24 and ribs.class_values["rib 3"] == tuple(sorted(
        ribs.nnunet_labels[label]["value"] for label in ("left_rib_3", "right_rib_3")))


def test_couinaud_lobes_from_segments():
    masks = _masks("Couinaud_Liver", list(range(9)))
    assert _voxels(masks["left lobe of liver"]) == [2, 3, 4]
    assert _voxels(masks["right lobe of liver"]) == [5, 6, 7, 8]
    assert not masks["left lobe of liver"][1] and not masks["right lobe of liver"][1]  # caudate lobe in neither


@pytest.mark.parametrize("dataset", ["MM_WHS_CT", "MM_WHS_MRI"])
def test_mmwhs_atrium_and_ventricle(dataset):
    masks = _masks(dataset, list(range(8)))  # myo, LA, LV, RA, RV, ascending aorta, pulmonary artery
    assert _voxels(masks["heart atrium"]) == [2, 4]
    assert _voxels(masks["heart ventricle"]) == [3, 5]


def test_segrap_overlaps_count_for_both_structures():
    info = CATALOG.datasets["SegRap2023_Task1"]
    value = {label: entry["value"] for label, entry in info.nnunet_labels.items()}
    overlap = value["left temporal lobe hippocampus overlap"]
    assert overlap in info.class_values["left temporal lobe"] and overlap in info.class_values["left hippocampus"]
    assert overlap in info.class_values["temporal lobe"] and overlap in info.class_values["brain"]
    assert value["left lens"] in info.class_values["left eyeball"]
    assert "left temporal lobe hippocampus overlap" not in info.classes


def test_rules_on_binary_masks_match_label_values():
    """Every dataset: the rules applied to per-channel masks equal the resolved label values on a label map."""
    rng = np.random.default_rng(0)
    for name, info in CATALOG.datasets.items():
        channels = {entry["class"]: entry["value"] for entry in info.nnunet_labels.values()}
        label_map = rng.integers(0, max(channels.values()) + 1, size=400)
        from_rules = apply_rules({c: label_map == v for c, v in channels.items()}, info.rules)
        from_values = class_masks(label_map, info.class_values)
        for cls in info.classes:
            assert np.array_equal(from_rules[cls], from_values[cls]), (name, cls)


def test_nnunet_mapping_covers_every_label_of_every_dataset():
    assert len(CATALOG.datasets) == 72
    for name, info in CATALOG.datasets.items():
        used = {v for values in info.class_values.values() for v in values}
        for label, entry in info.nnunet_labels.items():
            assert entry["value"] in used or entry["class"] in info.ignored_channels, (name, label)
        assert set(info.class_values) == set(info.classes), name
        assert all(info.class_values[c] for c in info.classes), name
    assert CATALOG.datasets["DAP_Atlas"].ignored_channels == ("rectum",)  # SAT-DS's loader skips it


@pytest.mark.parametrize(("label", "name"), [
    ("left_adrenal_gland", "left adrenal gland"), ("left_clavicula", "left clavicle"),
    ("L5", "lumbar vertebrae 5 (l5)"),
    ("T12", "thoracic vertebrae 12 (t12)"), ("C1", "cervical vertebrae 1 (c1)"),
    ("disc L5 sacrum", "intervertebral disc between lumbar vertebrae 5 (l5) and sacrum"),
    ("disc T12 L1", "intervertebral disc between thoracic vertebrae 12 (t12) and lumbar vertebrae 1 (l1)"),
    ("sacral vertebrae 1 (S1)", "sacral vertebrae 1 (s1)"), ("heart myocardium", "myocardium"),
    ("white_matter_hyperintensities", "white matter hyperintensities"), ("adrenal", "adrenal gland"),
])
def test_nnunet_class_name(label, name):
    assert nnunet_class_name(label, {"clavicula": "clavicle", "heart myocardium": "myocardium",
                                     "adrenal": "adrenal gland"}) == name


def test_rule_helpers():
    assert bilateral_rules(["left lung", "right lung", "lung", "trachea"], set()) == [
        ("lung", ("left lung", "right lung"))]
    assert bilateral_rules(["left lung", "right lung", "lung"], {"lung"}) == []
    assert resolve_rules({"a": 1, "b": 2}, [("a", ("a", "b")), ("c", ("a",))]) == {
        "a": (1, 2), "b": (2,), "c": (1, 2)}
    with pytest.raises(KeyError, match="unknown source"):
        resolve_rules({"a": 1}, [("c", ("a", "zzz"))])
