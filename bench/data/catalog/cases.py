"""Every data layout loads into one Case: image, geometry and named binary masks (derived classes included).

Layouts: a SAT-DS jsonl record, an nnU-Net raw dataset (`imagesTs`/`labelsTs` + `dataset.json`), an MSD task
folder (`dataset.json` listing `training`/`test` pairs), a user manifest (YAML or JSON: image, label, dataset,
modality, class map) and an SA-Med2D folder of 2D PNG slices (`bench.data.sammed2d`: the label is a tuple of mask
files, one class per mask, the image a grey plane with spacing (1, 1)). Listing cases (`CaseSource`) touches no
volume; `load_case` reads one. Every path resolves inside the given data root; a path escaping it is rejected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from bench.data.catalog.catalog import Catalog, CatalogError, DatasetInfo, load_catalog
from bench.data.catalog.orientation import SAT_ORIENTATION
from bench.data.catalog.rules import class_masks, resolve_rules
from bench.data.class_maps import parse_class_map
from bench.data.io import InputError, Volume, check_same_geometry, read_label_map, read_volume, volume_suffix
from bench.data.sammed2d import PLANE_SPACING, data_modality, mask_name, read_case, read_index

ClassValues = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class CaseSource:
    """Where one case lives and how its label values become classes; nothing is read yet."""

    case_id: str
    image: Path
    label: Path | tuple[Path, ...]
    modality: str
    classes: ClassValues
    dataset: str | None = None
    orientation: str = SAT_ORIENTATION  # SAT-DS's axes for its dataset (`with_catalog_orientation`)


def with_catalog_orientation(sources: Sequence[CaseSource]) -> list[CaseSource]:
    """The cases with the SAT-DS orientation of their catalog dataset (RAS unless the catalog names another, e.g.
    ASR for the spine sets), so the case carries it to every space that reorients (`satds`)."""
    catalog = load_catalog()
    oriented = []
    for source in sources:
        try:
            orientation = catalog.dataset(source.dataset).orientation if source.dataset else None
        except CatalogError:
            orientation = None
        oriented.append(replace(source, orientation=orientation or SAT_ORIENTATION))
    return oriented


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
    """`path` (relative to root, or absolute) as an absolute path inside root; InputError if it escapes root.
    The check is on the path as written (`..` and absolute paths may not leave the root); a symbolic link inside
    the root may point anywhere, as datasets linked into shared storage do."""
    root = Path(root).resolve()
    resolved = Path(os.path.normpath(root / path))
    if not resolved.is_relative_to(root):
        raise InputError(f"{path}: path escapes the data root {root}")
    return resolved


def load_case(source: CaseSource) -> Case:
    """Read image and label map, check they share one geometry, and split the labels into class masks (a 2D
    SA-Med2D case: the grey plane and its mask PNGs, checked by `bench.data.sammed2d.read_case`)."""
    if isinstance(source.label, tuple):
        slice_case = read_case(source.image, list(source.label))
        plane = Volume(slice_case.plane(), PLANE_SPACING, np.eye(4), source.image)
        return Case(source.case_id, source.dataset, source.modality, plane, slice_case.masks)
    image = read_volume(source.image)
    labels = read_label_map(source.label)
    check_same_geometry(image, labels)
    return Case(source.case_id, source.dataset, source.modality, image, class_masks(labels.array, source.classes))


def _read_mapping(path: Path) -> dict:
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise InputError(f"{path}: cannot read ({type(error).__name__}: {error})") from error
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return data


def _catalog_dataset(name, catalog: Catalog) -> DatasetInfo | None:
    if not name or not isinstance(name, str):
        return None
    try:
        return catalog.dataset(name)
    except CatalogError:
        return None


_RECORD_KEYS = ("image", "mask", "dataset", "modality")


def satds_record_source(record: Mapping, root: str | Path, catalog: Catalog | None = None,
                        where: str = "SAT-DS record") -> CaseSource:
    """A SAT-DS jsonl record (paths relative to root); classes and label values come from the catalog."""
    catalog = catalog or load_catalog()
    if not isinstance(record, Mapping):
        raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in _RECORD_KEYS if not isinstance(record.get(key), str)]
    if missing:
        raise InputError(f"{where}: missing or non-text field(s) {', '.join(missing)}")
    try:
        info = catalog.dataset(record["dataset"])
    except CatalogError as error:
        raise InputError(f"{where}: {error}") from None
    image = resolve_inside(root, record["image"])
    return CaseSource(str(record.get("patient_id", image.name)), image, resolve_inside(root, record["mask"]),
                      str(record["modality"]), info.mask_values, info.name)


def satds_jsonl_sources(path: str | Path, root: str | Path, catalog: Catalog | None = None) -> list[CaseSource]:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read SAT-DS records ({error})") from error
    sources, entries = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}, line {number}: not JSON ({error.msg})") from None
        sources.append(satds_record_source(record, root, catalog, f"{path}, line {number}"))
        entries.append(f"line {number}")
    return refuse_duplicate_ids(sources, entries, path)


def sammed2d_sources(root: str | Path, split: str = "test", modality: str | None = None,
                     dataset: str | None = None) -> list[CaseSource]:
    """The 2D cases of an SA-Med2D folder's split: one per image (case id = image stem), its masks as classes;
    the modality from `modality`, else from the image names (`bench.data.sammed2d.data_modality`)."""
    root = Path(root)
    index = read_index(root, split)
    stems: dict[str, Path] = {}
    for image in index:
        if stems.setdefault(image.stem, image) != image:
            raise InputError(f"{root}: two images named {image.stem} ({stems[image.stem]} and {image})")
    modality = data_modality(root, index, modality)
    name = dataset or root.resolve().name
    return [CaseSource(image.stem, image, tuple(masks), modality,
                       {mask_name(mask, image.stem): (1,) for mask in masks}, name) for image, masks in index.items()]


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
    classes = info.class_values if info else parse_class_map(description.get("labels", {}), str(folder / "dataset.json"))
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
    classes = info.mask_values if info else parse_class_map(description.get("labels", {}), str(folder / "dataset.json"))
    dataset = info.name if info else None
    modality = _modality(description, dataset, catalog)
    sources = []
    for pair in description.get("training", []):
        image = resolve_inside(folder, pair["image"])
        sources.append(CaseSource(image.name.split(".")[0], image, resolve_inside(folder, pair["label"]), modality,
                                  classes, dataset))
    return refuse_duplicate_ids(sources, [f"training entry {n}" for n in range(1, len(sources) + 1)],
                                folder / "dataset.json")


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
        if not isinstance(entry, Mapping):
            raise InputError(f"{path}: case {number} must be a mapping with `image` and `label`, got {entry!r}")
        classes, info = _manifest_classes(entry, manifest, catalog, f"{path}: case {number}")
        if classes is None:
            raise InputError(f"{path}: case {number} has no `classes` and no known `dataset` to take them from")
        modality = entry.get("modality") or manifest.get("modality") or (info.modality if info else None)
        if not modality or not isinstance(entry.get("image"), str) or not isinstance(entry.get("label"), str):
            raise InputError(f"{path}: case {number} needs `image`, `label` and a `modality` (or a known dataset)")
        image = resolve_inside(root, entry["image"])
        dataset = info.name if info else entry.get("dataset", manifest.get("dataset"))
        sources.append(CaseSource(str(entry.get("id", image.name.split(".")[0])), image,
                                  resolve_inside(root, entry["label"]), str(modality), classes, dataset))
    return refuse_duplicate_ids(sources, [f"case {number}" for number in range(1, len(sources) + 1)], path)


def refuse_duplicate_ids(sources: list[CaseSource], entries: Sequence[str], where: Path) -> list[CaseSource]:
    """`sources` when every case id is unique; otherwise InputError naming both entries (a second case with the same
    id would replace the first in the results store: one case silently lost)."""
    first: dict[str, int] = {}
    for index, source in enumerate(sources):
        earlier = first.setdefault(source.case_id, index)
        if earlier != index:
            raise InputError(f"{where}: case id {source.case_id!r} is given twice ({entries[earlier]}: "
                             f"{sources[earlier].image.name}, {entries[index]}: {source.image.name}); give each "
                             "case its own id")
    return sources


def _manifest_classes(entry: Mapping, manifest: Mapping, catalog: Catalog, where: str):
    """(classes, catalog dataset) of a manifest entry: its own class map or dataset, else the manifest's."""
    for level in (entry, manifest):
        info = _catalog_dataset(level.get("dataset"), catalog)
        if "classes" in level:
            return parse_class_map(level["classes"], f"{where} classes"), info
        if info is not None:
            return info.class_values, info
    return None, None


def discover_sources(root: str | Path, manifest: str | Path | None = None,
                     catalog: Catalog | None = None) -> list[CaseSource]:
    """Cases under root: from a manifest (`.jsonl` = SAT-DS records) if given, else root's own dataset.json
    (nnU-Net raw when it has `labelsTs`/`labelsTr`, MSD when it lists `training` pairs)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: data root not found")
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


SPLITS = ("test", "train", "all")


def _split_keys(ids) -> set[str]:
    """Case ids a split's patient ids can appear as: without volume suffix, and without nnU-Net's `_0000` channel
    tag where the id is an image file name (FLARE22 lists `FLARE22_Tr_0020_0000.nii.gz`)."""
    keys = set()
    for patient_id in map(str, ids):
        suffix = volume_suffix(Path(patient_id))
        stem = patient_id[: -len(suffix)] if suffix else patient_id
        keys |= {stem, stem.removesuffix("_0000")}
    return keys


def in_split(info: DatasetInfo, case_id: str, split: str) -> bool:
    """Whether a case belongs to SAT's `test` or `train` split of a dataset (`all`: always)."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if split == "all":
        return True
    return case_id in _split_keys(info.test_ids if split == "test" else info.train_ids)


_SPLIT_FOLDERS = ("Tr", "Va", "Ts")  # labels<X>/ beside images<X>/: nnU-Net raw, MSD, official downloads (AMOS22: Va)
LAYOUTS = ("dataset.json with labelsTr/labelsTs (nnU-Net raw)", "dataset.json listing training pairs (MSD)",
           "labelsTr/labelsVa/labelsTs with imagesTr/imagesVa/imagesTs (official downloads, e.g. AMOS22)",
           "--manifest FILE (YAML/JSON, or SAT-DS .jsonl)")


def split_folder_sources(root: Path, info: DatasetInfo) -> list[CaseSource]:
    """Cases of a catalog dataset's own download layout: every label map in labelsTr/, labelsVa/ and labelsTs/,
    its image `<case>_0000` or `<case>` in the matching images folder, the dataset's own mask values. With no
    such folder, the error lists the layouts looked for."""
    sources = []
    for split in _SPLIT_FOLDERS:
        folder = root / f"labels{split}"
        for label in sorted(folder.iterdir()) if folder.is_dir() else ():
            suffix = volume_suffix(label)
            if not suffix or label.name.startswith("."):
                continue
            case_id = label.name[: -len(suffix)]
            tagged = root / f"images{split}" / f"{case_id}_0000{suffix}"
            image = tagged if tagged.exists() else root / f"images{split}" / label.name
            sources.append(CaseSource(case_id, image, resolve_inside(root, label.relative_to(root)), info.modality,
                                      info.mask_values, info.name))
    if not sources:
        raise InputError(f"{root}: no {info.name} case found; looked for: " + "; ".join(LAYOUTS))
    return sources


def split_of(info: DatasetInfo, case_id: str) -> str:
    """The SAT split a case belongs to: ``test``, ``train``, or ``no`` (in neither list)."""
    return next((split for split in ("test", "train") if in_split(info, case_id, split)), "no")


def dataset_sources(name: str, root: str | Path, split: str = "test", manifest: str | Path | None = None,
                    catalog: Catalog | None = None) -> list[CaseSource]:
    """The cases of a catalog dataset under `root` that belong to SAT's split, each with the catalog's classes
    (derived classes included) and modality. An nnU-Net raw root contributes both `labelsTr` and `labelsTs`,
    since SAT's split is not nnU-Net's."""
    catalog = catalog or load_catalog()
    info = catalog.dataset(name)
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: data root not found")
    if manifest is None and (root / "labelsVa").is_dir() or not (root / "dataset.json").is_file():
        found = split_folder_sources(root, info) if manifest is None else discover_sources(root, manifest, catalog)
    elif manifest is None and (root / "labelsTr").is_dir():
        found = nnunet_sources(root, "Tr", catalog) + (nnunet_sources(root, "Ts", catalog)
                                                       if (root / "labelsTs").is_dir() else [])
    else:
        found = discover_sources(root, manifest, catalog)
    sources = [replace(s, classes=catalog_classes(info, s.classes, s.label.parent.parent / "dataset.json"),
                       modality=info.modality, dataset=info.name)
               for s in found if in_split(info, s.case_id, split)]
    if not sources:
        raise InputError(f"{root}: no case of {info.name}'s {split} split found ({len(found)} case(s) under the "
                         f"root; SAT's {split} split lists e.g. {', '.join(_examples(info, split))})")
    return sources


def catalog_classes(info: DatasetInfo, classes: ClassValues, where: Path) -> ClassValues:
    """The catalog's classes, in channel order, with the label values of this source's label maps: SAT-DS records use
    the dataset's own mask values; a folder with its own dataset.json has its channels named there, and the derived
    classes are rebuilt from them by the catalog's rules (kidney = left kidney + right kidney)."""
    if classes in (info.mask_values, info.class_values):
        return dict(classes)
    channels = {name: values[0] for name, values in classes.items() if len(values) == 1}
    try:
        resolved = resolve_rules(channels, info.rules)
    except KeyError as error:
        raise InputError(f"{where}: cannot build {info.name}'s classes "
                         f"({error.args[0]})") from error
    missing = [name for name in info.classes if name not in resolved]
    if missing:
        raise InputError(f"{where}: no label for {info.name} class(es) "
                         f"{', '.join(missing[:10])}")
    return {name: resolved[name] for name in info.classes}


def _examples(info: DatasetInfo, split: str) -> list[str]:
    ids = info.test_ids if split == "test" else info.train_ids
    return sorted(map(str, ids))[:3] or ["(none)"]
