"""Every data layout loads into one Case: image, geometry and named binary masks (derived classes included).

Layouts: a SAT-DS jsonl record, an nnU-Net raw dataset (`imagesTs`/`labelsTs` + `dataset.json`), an MSD task
folder (`dataset.json` listing `training`/`test` pairs) and a user manifest (YAML or JSON: image, label, dataset,
modality, class map). Listing cases (`CaseSource`) touches no volume; `load_case` reads one. Every path resolves
inside the given data root; a path escaping it is rejected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bench.catalog.catalog import Catalog, CatalogError, DatasetInfo, load_catalog
from bench.catalog.names import class_name, nnunet_class_name
from bench.catalog.rules import class_masks
from bench.io import InputError, Volume, check_same_geometry, read_label_map, read_volume

ClassValues = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class CaseSource:
    """Where one case lives and how its label values become classes; nothing is read yet."""

    case_id: str
    image: Path
    label: Path
    modality: str
    classes: ClassValues
    dataset: str | None = None


@dataclass(frozen=True)
class Case:
    """A loaded case: the image volume (spacing, affine) and one boolean mask per class, derived classes included."""

    case_id: str
    dataset: str | None
    modality: str
    image: Volume
    masks: dict[str, np.ndarray]

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.image.spacing

    @property
    def affine(self) -> np.ndarray:
        return self.image.affine


def resolve_inside(root: str | Path, path: str | Path) -> Path:
    """`path` (relative to root, or absolute) as a resolved path inside root; InputError if it escapes root."""
    root = Path(root).resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise InputError(f"{path}: path escapes the data root {root}")
    return resolved


def load_case(source: CaseSource) -> Case:
    """Read image and label map, check they share one geometry, and split the labels into class masks."""
    image = read_volume(source.image)
    labels = read_label_map(source.label)
    check_same_geometry(image, labels)
    return Case(source.case_id, source.dataset, source.modality, image, class_masks(labels.array, source.classes))


def _read_mapping(path: Path) -> dict:
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise InputError(f"{path}: cannot read ({type(error).__name__}: {error})") from error
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return data


def _catalog_dataset(name: str | None, catalog: Catalog) -> DatasetInfo | None:
    if not name:
        return None
    try:
        return catalog.dataset(name)
    except CatalogError:
        return None


def _plain_classes(labels: Mapping[str, int | list[int]], rename=class_name) -> dict[str, tuple[int, ...]]:
    """Class map written by hand or in a dataset.json: name -> value(s), background (0) left out."""
    out = {}
    for name, value in labels.items():
        values = tuple(int(v) for v in (value if isinstance(value, list | tuple) else [value]))
        if values != (0,):
            out[rename(name)] = values
    return out


def _nnunet_name(label: str) -> str:
    return nnunet_class_name(label, {})


def satds_record_source(record: Mapping, root: str | Path, catalog: Catalog | None = None) -> CaseSource:
    """A SAT-DS jsonl record (paths relative to root); classes and label values come from the catalog."""
    catalog = catalog or load_catalog()
    info = catalog.dataset(record["dataset"])
    image = resolve_inside(root, record["image"])
    return CaseSource(str(record.get("patient_id", image.name)), image, resolve_inside(root, record["mask"]),
                      str(record["modality"]), info.mask_values, info.name)


def satds_jsonl_sources(path: str | Path, root: str | Path, catalog: Catalog | None = None) -> list[CaseSource]:
    path = Path(path)
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read SAT-DS records ({error})") from error
    return [satds_record_source(record, root, catalog) for record in records]


def _modality(description: Mapping, info_name: str | None, catalog: Catalog) -> str:
    if info_name:
        return catalog.datasets[info_name].modality
    channels = description.get("channel_names") or description.get("modality") or {}
    return str(next(iter(channels.values()), "unknown"))


def nnunet_sources(folder: str | Path, split: str = "Ts", catalog: Catalog | None = None) -> list[CaseSource]:
    """Cases of an nnU-Net raw dataset: `labels<split>/<case><ending>` with `images<split>/<case>_0000<ending>`."""
    catalog = catalog or load_catalog()
    folder = Path(folder)
    description = _read_mapping(folder / "dataset.json")
    ending = description.get("file_ending", ".nii.gz")
    info = next((i for i in catalog.datasets.values() if i.nnunet_name == folder.name), None)
    classes = info.class_values if info else _plain_classes(description.get("labels", {}), _nnunet_name)
    dataset = info.name if info else None
    modality = _modality(description, dataset, catalog)
    label_dir = folder / f"labels{split}"
    if not label_dir.is_dir():
        raise InputError(f"{label_dir}: folder not found (nnU-Net layout needs labels{split} next to dataset.json)")
    sources = []
    for label in sorted(label_dir.glob(f"*{ending}")):
        case_id = label.name[: -len(ending)]
        image = resolve_inside(folder, f"images{split}/{case_id}_0000{ending}")
        sources.append(CaseSource(case_id, image, resolve_inside(folder, label.relative_to(folder)), modality,
                                  classes, dataset))
    return sources


def msd_sources(folder: str | Path, catalog: Catalog | None = None) -> list[CaseSource]:
    """Cases of an MSD task folder (`TaskNN_Name/dataset.json` listing `training` image/label pairs)."""
    catalog = catalog or load_catalog()
    folder = Path(folder)
    description = _read_mapping(folder / "dataset.json")
    info = _catalog_dataset(f"MSD_{folder.name.split('_', 1)[-1]}", catalog)
    labels = {name: int(value) for value, name in description.get("labels", {}).items()}  # MSD: {"1": "liver"}
    classes = info.mask_values if info else _plain_classes(labels, _nnunet_name)
    dataset = info.name if info else None
    modality = _modality(description, dataset, catalog)
    sources = []
    for pair in description.get("training", []):
        image = resolve_inside(folder, pair["image"])
        sources.append(CaseSource(image.name.split(".")[0], image, resolve_inside(folder, pair["label"]), modality,
                                  classes, dataset))
    return sources


def manifest_sources(path: str | Path, root: str | Path | None = None,
                     catalog: Catalog | None = None) -> list[CaseSource]:
    """Cases of a user manifest (YAML/JSON): top-level `dataset`, `modality`, `classes` (name -> value or list of
    values; defaults to the catalog dataset's classes) apply to every entry of `cases` unless it overrides them.
    Paths are relative to root (default: the manifest's folder)."""
    catalog = catalog or load_catalog()
    path = Path(path)
    manifest = _read_mapping(path)
    root = Path(root) if root is not None else path.parent
    entries = manifest.get("cases")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: expected a non-empty `cases` list of {{image, label}} entries")
    sources = []
    for number, entry in enumerate(entries, 1):
        classes, info = _manifest_classes(entry, manifest, catalog)
        if classes is None:
            raise InputError(f"{path}: case {number} has no `classes` and no known `dataset` to take them from")
        modality = entry.get("modality") or manifest.get("modality") or (info.modality if info else None)
        if not modality or "image" not in entry or "label" not in entry:
            raise InputError(f"{path}: case {number} needs `image`, `label` and a `modality` (or a known dataset)")
        image = resolve_inside(root, entry["image"])
        dataset = info.name if info else entry.get("dataset", manifest.get("dataset"))
        sources.append(CaseSource(str(entry.get("id", image.name.split(".")[0])), image,
                                  resolve_inside(root, entry["label"]), str(modality), classes, dataset))
    return sources


def _manifest_classes(entry: Mapping, manifest: Mapping, catalog: Catalog):
    """(classes, catalog dataset) of a manifest entry: its own class map or dataset, else the manifest's."""
    for level in (entry, manifest):
        info = _catalog_dataset(level.get("dataset"), catalog)
        if "classes" in level:
            return _plain_classes(level["classes"]), info
        if info is not None:
            return info.class_values, info
    return None, None


def discover_sources(root: str | Path, manifest: str | Path | None = None,
                     catalog: Catalog | None = None) -> list[CaseSource]:
    """Cases under root: from a manifest (`.jsonl` = SAT-DS records) if given, else root's own dataset.json
    (nnU-Net raw when it has `labelsTs`/`labelsTr`, MSD when it lists `training` pairs)."""
    root = Path(root)
    if manifest is not None:
        manifest = Path(manifest)
        if manifest.suffix == ".jsonl":
            return satds_jsonl_sources(manifest, root, catalog)
        return manifest_sources(manifest, root, catalog)
    description_path = root / "dataset.json"
    if not description_path.is_file():
        raise InputError(f"{root}: no dataset.json; pass a manifest (YAML/JSON, or SAT-DS .jsonl) instead")
    if (root / "labelsTs").is_dir():
        return nnunet_sources(root, "Ts", catalog)
    if "training" in _read_mapping(description_path):
        return msd_sources(root, catalog)
    return nnunet_sources(root, "Tr", catalog)
