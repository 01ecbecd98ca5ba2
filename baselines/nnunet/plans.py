"""SAT-DS's shipped nnU-Net plans installed beside nnU-Net's own, under a plans identifier of their own.

A copied `nnUNetPlans.json` collides with a locally planned one in three ways, each seen to overwrite or delete
data when missed: `plans_name` names the results folder (`Trainer__<plans_name>__<config>`), `data_identifier`
names the preprocessed folder (nnU-Net deletes it before preprocessing), and `dataset_name` points every path at
a dataset folder. The installed copy gets `plans_name = SAT_PLANS`, `data_identifier = <SAT_PLANS>_<config>` and
the local dataset folder; the raw `dataset.json` is copied to where the preprocessor and trainer read it.
SAT-DS's plans are in nnU-Net's old format; nnunetv2's PlansManager converts them on load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.data.catalog import DatasetInfo
from bench.data.io import InputError
from bench.engine.store import write_json


def sat_plans_file(satds: Path, info: DatasetInfo) -> Path:
    """SAT-DS's `nnunet/<DatasetNNN_Name>/nnUNetPlans.json` for a dataset; InputError naming what is missing."""
    for candidate in (Path(satds) / "nnunet" / info.nnunet_name / "nnUNetPlans.json",
                      Path(satds) / info.nnunet_name / "nnUNetPlans.json"):
        if candidate.is_file():
            return candidate
    raise InputError(f"{Path(satds) / 'nnunet' / info.nnunet_name / 'nnUNetPlans.json'}: SAT-DS plans not found "
                     "(pass --satds PATH: the SAT-DS folder holding nnunet/DatasetNNN_Name/)")


def installed_plans(plans: dict, dataset_folder: str, identifier: str) -> dict:
    """A copy of `plans` that cannot collide with other plans of the same dataset."""
    plans = json.loads(json.dumps(plans))
    plans["dataset_name"] = dataset_folder
    plans["plans_name"] = identifier
    for name, configuration in plans["configurations"].items():
        if "data_identifier" in configuration:
            configuration["data_identifier"] = f"{identifier}_{name}"
    return plans


def install_plans(plans_file: Path, raw_dataset: Path, preprocessed_root: Path, identifier: str) -> Path:
    """Write `<preprocessed>/<dataset>/<identifier>.json` and copy the raw dataset.json beside it."""
    description = raw_dataset / "dataset.json"
    if not description.is_file():
        raise InputError(f"{description}: not found; run `bench baselines nnunet convert` first")
    try:
        plans = json.loads(Path(plans_file).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{plans_file}: cannot read plans ({error})") from error
    if "configurations" not in plans:
        raise InputError(f"{plans_file}: not an nnU-Net plans file (no 'configurations')")
    target = preprocessed_root / raw_dataset.name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(description, target / "dataset.json")
    path = target / f"{identifier}.json"
    write_json(path, installed_plans(plans, raw_dataset.name, identifier))
    return path
