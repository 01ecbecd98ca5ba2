"""`bench datasets import-satds`: build the catalog's data files from a SAT-DS checkout and the curated facts.

Reads `jsonl/<Dataset>.jsonl` (scans and class lists), `split_json/<Dataset>.json` (SAT's split),
`terminology_list.json` (the 498 unified terms) and `nnunet/DatasetNNN_Name/dataset.json` (label values of the
nnU-Net baselines), joins them with `curated.yaml` (download pages, regions, derived-class rules, SAT-DS's
reorientation where it is not RAS) and checks that every class resolves to label values and every nnU-Net label
is used. Any SAT-DS checkout can be run through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from bench.data.catalog.names import class_name, nnunet_class_name
from bench.data.catalog.orientation import SAT_ORIENTATION, orientation_code
from bench.data.catalog.rules import bilateral_rules, resolve_rules
from protocols.terms import modality_prefix, split_key, term_key
from protocols.errors import BenchError

CURATED = Path(__file__).with_name("curated.yaml")
DATA_DIR = Path(__file__).with_name("data")
_MODALITY_NAMES = {"ct": "CT", "mri": "MRI", "pet": "PET"}


class SatdsImportError(BenchError):
    """A SAT-DS checkout or curated entry that cannot be turned into a catalog; the message names the file."""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SatdsImportError(f"{path}: cannot read JSON ({error})") from error


def _read_jsonl(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise SatdsImportError(f"{path}: cannot read JSON lines ({error})") from error


def _unique(items) -> list[str]:
    return list(dict.fromkeys(str(item) for item in items))


def _folder_key(name: str) -> str:
    return name.lower().replace("_", "").replace("mri", "mr")


def nnunet_folders(satds: Path) -> dict[str, Path]:
    """nnU-Net dataset folders keyed by a normalised dataset name (`AMOS22_MRI` and `Dataset004_AMOS22MR` agree)."""
    folders = sorted(p for p in (satds / "nnunet").glob("Dataset*_*") if p.is_dir())
    return {_folder_key(p.name.split("_", 1)[1]): p for p in folders}


def import_terms(terminology: Mapping) -> list[dict]:
    """One row per unified key: modality, class name, the regions that list it, and the abnormal flag."""
    abnormal = set(terminology["abnormal"])
    rows = []
    for key in terminology["all"]:
        modality, name = split_key(key)
        regions = [region for region, keys in terminology["region_based"].items() if key in keys]
        rows.append({"key": key, "modality": modality, "class_name": name, "regions": regions,
                     "abnormal": key in abnormal})
    return rows


def _class_list(records: list[dict], path: Path) -> list[str]:
    first = _unique(class_name(label) for label in records[0]["label"])
    for number, record in enumerate(records, 1):
        if _unique(class_name(label) for label in record["label"]) != first:
            raise SatdsImportError(f"{path}: record {number} lists other classes than record 1")
    return first


def import_dataset(name: str, satds: Path, folder: Path, curated: Mapping, aliases: Mapping[str, str],
                   terms: set[str]) -> dict:
    """The catalog entry of one dataset; SatdsImportError names the file or curated entry that does not fit."""
    jsonl = satds / "jsonl" / f"{name}.jsonl"
    records = _read_jsonl(jsonl)
    if not records:
        raise SatdsImportError(f"{jsonl}: no records")
    classes = _class_list(records, jsonl)
    prefixes = {modality_prefix(record["modality"]) for record in records}
    if len(prefixes) != 1:
        raise SatdsImportError(f"{jsonl}: records mix modalities {sorted(prefixes)}")
    modality = prefixes.pop()
    split = _read_json(satds / "split_json" / f"{name}.json")
    train_ids, test_ids = _unique(split.get("train", [])), _unique(split.get("test", []))
    labels = {k: int(v) for k, v in _read_json(folder / "dataset.json")["labels"].items() if int(v) != 0}
    channels = {nnunet_class_name(label, aliases): value for label, value in labels.items()}
    explicit = [(target, tuple(sources)) for rule in curated.get("rules", []) for target, sources in rule.items()]
    rules = explicit + bilateral_rules(classes, set(channels) | {target for target, _ in explicit})
    try:
        values = resolve_rules(channels, rules)
    except KeyError as error:
        raise SatdsImportError(f"{CURATED}: {name}: {error.args[0]}") from error
    unresolved = [c for c in classes if c not in values]
    if unresolved:
        raise SatdsImportError(f"{folder / 'dataset.json'}: {name}: classes without nnU-Net labels: {unresolved}")
    used = {v for c in classes for v in values[c]} | {channels[c] for c in curated.get("ignored", [])}
    unused = [label for label, value in labels.items() if value not in used]
    if unused:
        raise SatdsImportError(f"{folder / 'dataset.json'}: {name}: nnU-Net labels mapped to no class: {unused}")
    unknown = sorted(set(curated.get("mask_values", {})) - set(channels))
    if unknown:
        raise SatdsImportError(f"{CURATED}: {name}: mask_values for unknown channels {unknown}")
    mask_channels = {**channels, **curated.get("mask_values", {})}
    try:
        orientation = orientation_code(curated.get("orientation", SAT_ORIENTATION))
    except ValueError as error:
        raise SatdsImportError(f"{CURATED}: {name}: {error}") from error
    return {
        "name": name,
        "modality": _MODALITY_NAMES[modality],
        "sequences": sorted({record["modality"] for record in records}),
        "region": curated["region"],
        "orientation": orientation,
        "classes": classes,
        "rules": [[target, list(sources)] for target, sources in rules],
        "class_values": {c: list(values[c]) for c in classes},
        "mask_values": {c: list(v) for c, v in resolve_rules(mask_channels, rules).items() if c in classes},
        "nnunet_labels": {label: {"value": value, "class": nnunet_class_name(label, aliases)}
                          for label, value in labels.items()},
        "ignored_channels": list(curated.get("ignored", [])),
        "unlisted_terms": [c for c in classes if term_key(modality, c) not in terms],
        "n_scans": len(records),
        "n_test_scans": sum(str(record["patient_id"]) in set(test_ids) for record in records),
        "train_ids": train_ids,
        "test_ids": test_ids,
        "split_overlap": sorted(set(train_ids) & set(test_ids)),
        "download_url": curated["url"],
        "nnunet_id": int(folder.name[len("Dataset"):].split("_", 1)[0]),
        "nnunet_name": folder.name,
    }


def import_satds(satds: str | Path, curated_path: Path = CURATED) -> dict:
    """Terms and datasets of a SAT-DS checkout, joined with the curated facts; every dataset must be curated."""
    satds = Path(satds)
    curated = yaml.safe_load(curated_path.read_text())
    terminology = _read_json(satds / "terminology_list.json")
    terms = import_terms(terminology)
    folders = nnunet_folders(satds)
    names = sorted(p.name[: -len(".jsonl")] for p in (satds / "jsonl").glob("*.jsonl"))
    if not names:
        raise SatdsImportError(f"{satds / 'jsonl'}: no <Dataset>.jsonl files")
    datasets = {}
    for name in names:
        if name not in curated["datasets"]:
            raise SatdsImportError(f"{curated_path}: no entry for dataset {name}")
        folder = folders.get(_folder_key(name))
        if folder is None:
            raise SatdsImportError(f"{satds / 'nnunet'}: no DatasetNNN_* folder for {name}")
        datasets[name] = import_dataset(name, satds, folder, curated["datasets"][name], curated.get("aliases", {}),
                                        {row["key"] for row in terms})
        datasets[name]["paper_name"] = curated.get("paper_names", {}).get(name, name)
    unknown = sorted(set(curated.get("paper_names", {})) - set(names))
    if unknown:
        raise SatdsImportError(f"{curated_path}: paper_names for unknown datasets {unknown}")
    return {"terms": terms, "datasets": datasets}


def write_catalog(catalog: Mapping, out_dir: Path = DATA_DIR) -> list[Path]:
    """Write `terms.json` and `datasets.json` (stable order, one dataset per top-level key)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for key in ("terms", "datasets"):
        path = out_dir / f"{key}.json"
        path.write_text(json.dumps(catalog[key], indent=1, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths
