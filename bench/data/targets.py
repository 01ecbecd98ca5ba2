"""What a run is scored against: dataset name, modality, class map and reference cases, from the catalog or ad hoc.

`--dataset NAME --root DIR` takes everything from the catalog: the cases of SAT's split, the modality, the classes in
the dataset's channel order with derived classes. A folder of references (`--ref DIR`) is ad hoc: classes from
`--classes`/`--labels` or the `dataset.json` beside the references, the dataset name from `--dataset` or that
dataset.json, the modality from the catalog, `--modality` or the dataset.json's channel names. Nothing is guessed:
a missing name or modality is asked for, and a modality that contradicts the catalog is an error. An SA-Med2D
folder of 2D PNG slices (`--ref DIR` holding `label2image_test.json` or `image2label_train.json`) is 2D: its cases
are images, its classes the mask names of each image, its dataset name the folder's unless `--dataset` is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.data.catalog import CatalogError, load_catalog
from bench.data.catalog.cases import CaseSource, catalog_classes, dataset_sources, discover_sources, sammed2d_sources, split_of
from bench.data.catalog.catalog import DatasetInfo
from bench.data.catalog.orientation import SAT_ORIENTATION
from protocols.terms import modality_prefix, term_key
from bench.data.class_maps import ClassValues, parse_labels, read_class_map, read_json_mapping
from bench.data.io import InputError
from bench.data.matching import list_cases
from bench.data.sammed2d import is_data_folder

_MRI_CHANNELS = {"t1", "t1w", "t1ce", "t1c", "t1gd", "t2", "t2w", "flair", "adc", "dwi", "pd", "cine", "lge", "mr"}


@dataclass(frozen=True)
class ReferenceSet:
    """What a command scores against: the dataset and modality, the class map, each case's reference file(s),
    where they came from (run.json's `references`), the SAT-DS orientation, the classes without a SAT term,
    cases of the dataset left out by the split, and the cases with their images where the data has them (a
    catalog-style root or an SA-Med2D folder; `bench.data.sources` adds an ad-hoc `--images` folder): what
    `bench run` and `bench clicks` run on. (A `models.base.Target` is one thing a model segments.)"""

    dataset: str
    modality: str
    classes: ClassValues
    refs: dict[str, Path | tuple[Path, ...]]
    source: str
    orientation: str = SAT_ORIENTATION
    unmapped: list[str] = field(default_factory=list)
    ndim: int = 3
    elsewhere: dict[str, str] = field(default_factory=dict)  # case id -> the split it is in, for cases left out
    sources: tuple[CaseSource, ...] = ()


def _known(name: str | None) -> DatasetInfo | None:
    if not name:
        return None
    try:
        return load_catalog().dataset(name)
    except CatalogError:
        return None


def dataset_description(ref: Path) -> tuple[Path | None, dict]:
    for candidate in (ref / "dataset.json", ref.parent / "dataset.json"):
        if candidate.is_file():
            return candidate, read_json_mapping(candidate)
    return None, {}


def user_classes(classes: Path | None, labels: str | None) -> ClassValues | None:
    if classes and labels:
        raise InputError("give either --classes or --labels, not both")
    if classes:
        return read_class_map(classes)
    return parse_labels(labels) if labels else None


def _modality(explicit: str | None, info: DatasetInfo | None, description: dict, where: str) -> str:
    """The catalog's modality (an explicit one must agree), else --modality, else the dataset.json's channel name."""
    if explicit is not None:
        try:
            modality_prefix(explicit)
        except ValueError as error:
            raise InputError(f"--modality: {error}") from error
    if info is not None:
        if explicit is not None and modality_prefix(explicit) != modality_prefix(info.modality):
            raise InputError(f"--modality {explicit} contradicts the catalog: {info.name} is {info.modality}")
        return info.modality
    if explicit is not None:
        return explicit
    channels = description.get("channel_names") or description.get("modality") or {}
    first = str(next(iter(channels.values()), "")) if isinstance(channels, dict) else ""
    if first.lower() in _MRI_CHANNELS:
        return "MRI"
    try:
        modality_prefix(first)
        return first
    except ValueError:
        raise InputError(f"{where}: the modality is unknown; pass --modality CT, MRI or PET") from None


def _unmapped(modality: str, classes: ClassValues) -> list[str]:
    """Class names with no SAT term for this modality (they score, but fall outside SAT's regions)."""
    keys = set(load_catalog().terms["key"])
    return [name for name in classes if term_key(modality, name) not in keys]


def _subset(known: ClassValues, asked: ClassValues | None, what: str) -> ClassValues:
    """The dataset's classes, or the subset asked for by their names (an unknown name is an error)."""
    if asked is None:
        return dict(known)
    unknown = [name for name in asked if name not in known]
    if unknown:
        raise InputError(f"class(es) {', '.join(unknown)} are not {what} ({', '.join(known)})")
    return {name: known[name] for name in asked}


def catalog_references(name: str, root: Path, split: str, manifest: Path | None, modality: str | None,
                   classes: ClassValues | None) -> ReferenceSet:
    info = load_catalog().dataset(name)
    sources = dataset_sources(info.name, root, split, manifest)
    modality = _modality(modality, info, {}, str(root))
    chosen = _subset(sources[0].classes, classes, f"{info.name} classes")
    chosen_ids = {s.case_id for s in sources}
    elsewhere = {} if split == "all" else {
        s.case_id: f"in SAT's {split_of(info, s.case_id)} split of {info.name}"
        for s in dataset_sources(info.name, root, "all", manifest) if s.case_id not in chosen_ids}
    return ReferenceSet(info.name, modality, chosen, {s.case_id: s.label for s in sources},
                        f"{root.resolve()} ({split} split)", info.orientation, _unmapped(modality, chosen),
                        elsewhere=elsewhere, sources=tuple(sources))


def discovered_references(root: Path, manifest: Path | None, dataset: str | None, modality: str | None,
                          classes: ClassValues | None) -> ReferenceSet:
    """A catalog-style folder of a dataset the catalog does not name (its dataset.json, or a manifest): its cases,
    class map and modality, named by `dataset`, else by the cases' own name, its dataset.json's `name` or the
    folder's name (nnU-Net's `Dataset991_Name`)."""
    sources = discover_sources(root, manifest)
    if not sources:
        raise InputError(f"{root}: no cases found")
    description = read_json_mapping(root / "dataset.json") if (root / "dataset.json").is_file() else {}
    name = dataset or sources[0].dataset or str(description.get("name") or root.resolve().name)
    sources = [replace(source, dataset=name) for source in sources]
    first = sources[0]
    chosen = _subset(first.classes, classes, f"classes of {root}")
    modality = modality or first.modality
    return ReferenceSet(first.dataset, modality, chosen, {s.case_id: s.label for s in sources},
                        str(root.resolve()) + (f" ({manifest})" if manifest else ""), SAT_ORIENTATION,
                        _unmapped(modality, chosen), sources=tuple(sources))


def folder_references(ref: Path, dataset: str | None, modality: str | None,
                      classes: ClassValues | None) -> ReferenceSet:
    description_path, description = dataset_description(ref)
    name = dataset or description.get("name")
    if not name:
        raise InputError(f"{ref}: the dataset name is unknown (no dataset.json with a `name` beside the "
                         "references); pass --dataset NAME")
    info = _known(str(name))
    if classes is None and description_path is not None:
        classes = read_class_map(description_path)
        if info is not None:
            classes = catalog_classes(info, classes, description_path)
    if classes is None and info is not None:
        classes = dict(info.class_values)
    if classes is None:
        raise InputError(f"no class map: pass --classes FILE.json or --labels '1=liver,...' (no dataset.json "
                         f"near {ref})")
    modality = _modality(modality, info, description, str(description_path or ref))
    return ReferenceSet(info.name if info else str(name), modality, classes, list_cases(ref), str(ref.resolve()),
                        info.orientation if info else SAT_ORIENTATION, _unmapped(modality, classes))


def sammed2d_references(ref: Path, split: str, dataset: str | None, modality: str | None) -> ReferenceSet:
    """An SA-Med2D folder's split: each image a case, its reference masks (tuples of PNGs) its classes."""
    sources = sammed2d_sources(ref, split, modality, dataset)
    classes = {name: 1 for source in sources for name in source.classes}
    return ReferenceSet(sources[0].dataset if sources else ref.name, sources[0].modality if sources else str(modality),
                        classes, {s.case_id: s.label for s in sources}, f"{ref.resolve()} ({split} split)", ndim=2,
                        sources=tuple(sources))


def resolve_references(*, ref: Path | None, root: Path | None, dataset: str | None, split: str = "test",
                       manifest: Path | None = None, classes: Path | None = None, labels: str | None = None,
                       modality: str | None = None) -> ReferenceSet:
    """The one resolution of what `bench evaluate`, `bench run` and `bench clicks` score against, from their
    options: a data root (`--root`: a catalog dataset with `--dataset`, a catalog-style folder of another dataset,
    or an SA-Med2D folder) or a folder of references (`--ref`; an SA-Med2D folder too)."""
    given = user_classes(classes, labels)
    if root is not None and ref is not None:
        raise InputError("give either --root (a dataset folder) or --ref (a folder of references), not both")
    folder = root if root is not None else ref
    if folder is None:
        raise InputError("give --ref DIR (a folder of references) or --dataset NAME --root DIR")
    if is_data_folder(folder) and manifest is None:
        if given is not None:
            raise InputError(f"{folder}: an SA-Med2D folder names its own masks; drop --classes/--labels")
        return sammed2d_references(folder, split, dataset, modality)
    if ref is not None:
        return folder_references(ref, dataset, modality, given)
    if _known(dataset) is not None:
        return catalog_references(dataset, root, split, manifest, modality, given)
    return discovered_references(root, manifest, dataset, modality, given)
