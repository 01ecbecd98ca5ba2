"""The catalog's data: 72 datasets, 498 terms, regions, splits and scan counts as SAT-DS publishes them."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bench.data.catalog import CatalogError, load_catalog, modality_prefix, term_key
from bench.data.catalog.importer import CURATED, DATA_DIR, SatdsImportError, import_satds

REGION_COUNTS = {"brain": 137, "head and neck": 92, "thorax": 102, "spine": 56, "abdomen": 57, "pelvis": 29,
                 "lower limb": 10, "upper limb": 9, "whole body": 6}
TOTALSEG = [f"TotalSegmentator_{part}" for part in ("Cardiac", "Muscles", "Organs", "Ribs", "Vertebrae", "v2")]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_counts(catalog):
    assert len(catalog.datasets) == 72
    assert len(catalog.terms) == 498 and catalog.terms["key"].is_unique
    assert Counter(r for regions in catalog.terms["regions"] for r in regions) == REGION_COUNTS
    assert catalog.terms["abnormal"].sum() == 24
    assert list(catalog.terms.columns) == ["key", "modality", "class_name", "regions", "abnormal"]
    assert set(catalog.terms["modality"]) == {"ct", "mri", "pet"}


def test_every_class_is_a_term_and_every_term_is_used(catalog):
    keys = set(catalog.terms["key"])
    used = {key for info in catalog.datasets.values() for key in info.term_keys().values()}
    assert used == keys


def test_full_key_decides_the_region(catalog):
    """SAT's merge script strips the modality and files mri_esophagus under head and neck; we must not."""
    assert catalog.term("ct_esophagus")["regions"] == ("head and neck",)
    assert catalog.term("mri_esophagus")["regions"] == ("thorax",)
    assert catalog.term("ct_liver")["key"] != catalog.term("mri_liver")["key"]


def test_split_sizes(catalog):
    assert len(catalog.datasets["AbdomenCT1K"].test_ids) == 198
    for name in TOTALSEG:
        info = catalog.datasets[name]
        assert (len(info.test_ids), len(info.train_ids), info.n_scans) == (240, 962, 1202)
    assert catalog.datasets["CHAOS_MRI"].n_test_scans == 12  # 4 patients, 3 scans each


def test_counts_match_satds_manifests(catalog, satds_dir):
    for name, info in catalog.datasets.items():
        records = (satds_dir / "jsonl" / f"{name}.jsonl").read_text().splitlines()
        split = json.loads((satds_dir / "split_json" / f"{name}.json").read_text())
        assert info.n_scans == len(records), name
        assert set(info.test_ids) == set(split["test"]) and set(info.train_ids) == set(split["train"]), name
        assert info.nnunet_name == f"Dataset{info.nnunet_id:03d}_" + info.nnunet_name.split("_", 1)[1]
        assert (satds_dir / "nnunet" / info.nnunet_name / "dataset.json").is_file()


def test_data_files_are_the_importers_output(satds_dir):
    imported = import_satds(satds_dir)
    for key in ("terms", "datasets"):
        assert json.loads((DATA_DIR / f"{key}.json").read_text()) == json.loads(json.dumps(imported[key])), key


def test_dataset_facts(catalog):
    kits = catalog.dataset("kits23")
    assert kits.modality == "CT" and kits.region == "abdomen" and kits.nnunet_id == 34
    assert kits.classes == ("kidney", "kidney tumor", "kidney cyst")
    assert kits.download_url.startswith("https://")
    assert catalog.dataset("CHAOS_MRI").sequences == ("MRI T1", "MRI T2")
    assert all(info.download_url.startswith("http") for info in catalog.datasets.values())
    with pytest.raises(CatalogError, match="unknown dataset 'nope'"):
        catalog.dataset("nope")


def test_orientation_is_satds_loaders(catalog):
    """SAT-DS loader.py reorients to ASR (MRSpineSeg, VerSe), IPL (ToothFairy), LPS (BTCV_Cervix), not at all
    (MyoPS2020) and to RAS everywhere else."""
    special = {"MRSpineSeg": "ASR", "VerSe": "ASR", "ToothFairy": "IPL", "BTCV_Cervix": "LPS", "MyoPS2020": "none"}
    assert {name: info.orientation for name, info in catalog.datasets.items() if info.orientation != "RAS"} == special
    assert catalog.dataset("AMOS22_CT").orientation == "RAS"


def test_bad_curated_orientation_names_the_entry(satds_dir, tmp_path):
    curated = tmp_path / "curated.yaml"
    curated.write_text(CURATED.read_text().replace("orientation: IPL", "orientation: IPX"))
    with pytest.raises(SatdsImportError, match="ToothFairy: orientation 'IPX' is not an axis code"):
        import_satds(satds_dir, curated)


@pytest.mark.parametrize(("modality", "name", "key"), [
    ("CT", "liver", "ct_liver"), ("ct", "Liver", "ct_liver"), ("MRI", "liver", "mri_liver"),
    ("MRI T1", "Left Optic Radiation", "mri_left optic radiation"), ("MR", "prostate", "mri_prostate"),
    ("MRI FLAIR", "white matter hyperintensities", "mri_white matter hyperintensities"),
    ("PET", "tumor", "pet_tumor"),
])
def test_term_key(modality, name, key):
    assert term_key(modality, name) == key


@pytest.mark.parametrize("modality", ["US", "", "xray", "computed tomography"])
def test_term_key_rejects_unknown_modality(modality):
    with pytest.raises(ValueError, match="unknown modality"):
        modality_prefix(modality)
