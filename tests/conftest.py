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
