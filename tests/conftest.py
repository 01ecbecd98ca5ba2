"""Shared fixtures: the read-only real data in ../shared (tests using it skip cleanly when it is absent), and a
Hugging Face home of their own, offline (no test reads the user's hub cache or reaches the network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def private_hf_home(tmp_path_factory):
    """HF_HOME in a temporary folder and HF_HUB_OFFLINE=1 for the whole session (subprocesses inherit them)."""
    saved = {key: os.environ.get(key) for key in ("HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_ASSETS_CACHE")}
    os.environ.update(HF_HOME=str(tmp_path_factory.mktemp("hf_home")), HF_HUB_OFFLINE="1")
    for key in ("HF_HUB_CACHE", "HF_ASSETS_CACHE"):
        os.environ.pop(key, None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    return SHARED


@pytest.fixture(scope="session")
def satds_dir(shared_dir: Path) -> Path:
    path = shared_dir / "satds"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def sammed2d_demo(shared_dir: Path) -> Path:
    """SAM-Med2D's demo folder of SA-Med2D-20M-style 2D PNG slices (images/, masks/, index JSON files)."""
    path = shared_dir / "data" / "sammed2d_demo"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def ts_raw_dataset(shared_dir, tmp_path_factory):
    """A factory: an nnU-Net raw folder `name` holding the real TotalSegmentator example CT as
    imagesTs/ts_0001_0000.nii.gz and the classes `keep` (name -> label value in seg_total) renumbered 1..n as
    labelsTs/ts_0001.nii.gz, with its dataset.json."""
    import json

    import numpy as np

    from bench.data.io import read_label_map, read_volume, write_volume

    def make(name: str, keep: dict[str, int]) -> Path:
        source = shared_dir / "data" / "totalsegmentator_example"
        ct, seg = read_volume(source / "ct.nii.gz"), read_label_map(source / "seg_total.nii.gz")
        root = tmp_path_factory.mktemp("raw") / name
        labels = np.zeros(seg.array.shape, np.uint8)
        for new, value in enumerate(keep.values(), 1):
            labels[seg.array == value] = new
        write_volume(root / "imagesTs" / "ts_0001_0000.nii.gz", ct.array, ct.affine)
        write_volume(root / "labelsTs" / "ts_0001.nii.gz", labels, ct.affine)
        (root / "dataset.json").write_text(json.dumps({
            "channel_names": {"0": "CT"}, "file_ending": ".nii.gz", "numTest": 1,
            "labels": {"background": 0, **{label: i for i, label in enumerate(keep, 1)}}}))
        return root

    return make


# TotalSegmentator v2 value in seg_total.nii.gz -> TotalSegmentator_Organs mask value (SAT-DS organs_label)
TINY_ORGANS = {5: 9, 1: 17, 2: 8, 3: 7, 6: 18}  # liver, spleen, right kidney, left kidney, stomach
TINY_CROP = (72, 64, 24)
TINY_OFFSETS = [(10, 15, 0), (30, 20, 4), (40, 30, 2), (20, 25, 6), (25, 18, 3), (35, 28, 5)]


def _write_tiny_satds(example: Path, root: Path, info) -> Path:
    """Six crops of the example CT in SAT-DS layout (data/nii/.../<id>/ct.nii.gz + organs_label.nii.gz) with
    patient ids from SAT's split of `info` (4 train, 2 test), and their jsonl; returns the jsonl."""
    import json

    import nibabel as nib
    import numpy as np

    ct = nib.load(str(example / "ct.nii.gz"))
    seg = np.asarray(nib.load(str(example / "seg_total.nii.gz")).dataobj)
    organs = np.zeros(seg.shape, np.uint8)
    for total_value, organ_value in TINY_ORGANS.items():
        organs[seg == total_value] = organ_value
    image = np.asarray(ct.dataobj)
    ids = list(info.train_ids[:4]) + list(info.test_ids[:2])
    records = []
    for patient, (x, y, z) in zip(ids, TINY_OFFSETS):
        box = (slice(x, x + TINY_CROP[0]), slice(y, y + TINY_CROP[1]), slice(z, z + TINY_CROP[2]))
        affine = ct.affine.copy()
        affine[:3, 3] = ct.affine[:3, :3] @ np.array([x, y, z]) + ct.affine[:3, 3]
        folder = root / "data" / "nii" / "Totalsegmentator_dataset" / patient
        folder.mkdir(parents=True)
        nib.save(nib.Nifti1Image(image[box], affine, ct.header), str(folder / "ct.nii.gz"))
        nib.save(nib.Nifti1Image(organs[box], affine), str(folder / "organs_label.nii.gz"))
        records.append({"image": str((folder / "ct.nii.gz").relative_to(root)),
                        "mask": str((folder / "organs_label.nii.gz").relative_to(root)),
                        "label": list(info.classes), "modality": "CT", "dataset": info.name,
                        "official_split": "train", "patient_id": patient})
    jsonl = root / f"{info.name}.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    return jsonl


@pytest.fixture(scope="session")
def nnunet_tiny(shared_dir, tmp_path_factory):
    """A tiny TotalSegmentator_Organs cut from the real example CT, converted by `bench baselines nnunet convert`
    and planned and preprocessed (3d_fullres) by nnU-Net's own planner, once per session (~15 s):
    test_nnunet_pipeline trains on it, test_nnunet_model builds a model folder from its plans. A user adds only
    names of its own to the workspace (plans, models, predictions) and writes its runs outside it."""
    pytest.importorskip("nnunetv2")
    from typer.testing import CliRunner

    from baselines.nnunet import stages
    from baselines.nnunet.workspace import Workspace
    from bench.cli.app import app
    from bench.data.catalog import load_catalog

    example = shared_dir / "data" / "totalsegmentator_example"
    if not (example / "seg_total.nii.gz").is_file():
        pytest.skip("TotalSegmentator example absent")
    info = load_catalog().dataset("TotalSegmentator_Organs")
    root = tmp_path_factory.mktemp("satds")
    jsonl = _write_tiny_satds(example, root, info)
    work = tmp_path_factory.mktemp("nnunet")
    result = CliRunner().invoke(app, ["baselines", "nnunet", "convert", "--dataset", info.name, "--root", str(root),
                                      "--manifest", str(jsonl), "--work", str(work)])
    assert result.exit_code == 0, result.output
    workspace = Workspace(work)
    stages.plan(workspace, info, use_sat_plans=False, settings=stages.Settings(workers=1, threads=2, quiet=True))
    return {"root": root, "jsonl": jsonl, "work": work, "workspace": workspace, "info": info}


@pytest.fixture
def network_model():
    """Region growing with a one-weight network, registered as `network-growing`: a model whose weights a run can
    forget (untrained) or load (`--checkpoint`); yields torch."""
    torch = pytest.importorskip("torch")
    from models.reference.region_growing import RegionGrowing
    from models.registry import register_model, unregister_model

    class NetworkGrowing(RegionGrowing):
        name = "network-growing"

        def __init__(self, **options):
            super().__init__(**options)
            self.network = torch.nn.Linear(1, 1)

    register_model("network-growing")(NetworkGrowing)
    yield torch
    unregister_model("network-growing")
