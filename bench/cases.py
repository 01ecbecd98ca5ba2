"""Matching prediction files to reference files by case id, and reading class maps.

A case is a volume file (`case.nii.gz`, label map) or a folder (`case/<class name>.nii.gz`, one binary mask
per class: SAT's output layout). nnU-Net image suffixes (`case_0000.nii.gz`) are tolerated when matching.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bench.io import InputError, volume_suffix
from protocols.case import ClassMap

_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


@dataclass(frozen=True)
class CasePair:
    case_id: str
    pred: Path
    ref: Path


def case_id(path: Path) -> str:
    """Case id of a volume file or a per-class folder: the name without volume suffix or `_0000` channel tag."""
    suffix = volume_suffix(path)
    stem = path.name[: -len(suffix)] if suffix else path.name
    return _CHANNEL_SUFFIX.sub("", stem)


def list_cases(folder: Path) -> dict[str, Path]:
    """Case id -> volume file or per-class folder, for every case in `folder`."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    cases: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not (entry.is_dir() or volume_suffix(entry)):
            continue
        key = case_id(entry)
        if key in cases:
            raise InputError(f"{folder}: case {key!r} appears twice ({cases[key].name} and {entry.name})")
        cases[key] = entry
    return cases


def match_cases(pred_dir: Path, ref_dir: Path) -> tuple[list[CasePair], list[str]]:
    """Pairs for every prediction, and the ids of references that have no prediction.

    Every prediction must have a reference (nnU-Net's evaluator convention); references without a
    prediction are returned so that the caller can report them.
    """
    preds, refs = list_cases(pred_dir), list_cases(ref_dir)
    if not preds:
        raise InputError(f"{pred_dir}: no prediction volumes or case folders found")
    orphans = sorted(set(preds) - set(refs))
    if orphans:
        raise InputError(f"{ref_dir}: no reference for predicted case(s) {', '.join(orphans[:10])}")
    pairs = [CasePair(key, preds[key], refs[key]) for key in sorted(preds)]
    return pairs, sorted(set(refs) - set(preds))


def _class_map_from_mapping(mapping: dict, source: str) -> dict[str, int | tuple[int, ...]]:
    """Accept {name: value(s)} or {value: name}; an nnU-Net dataset.json is read through its "labels"."""
    if "labels" in mapping and isinstance(mapping["labels"], dict):
        mapping = mapping["labels"]
    classes: dict[str, int | tuple[int, ...]] = {}
    for key, value in mapping.items():
        if isinstance(value, str) and str(key).isdigit():
            key, value = value, int(key)
        if isinstance(value, list):
            value = tuple(int(v) for v in value)
        elif isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            value = int(value)
        else:
            raise InputError(f"{source}: class {key!r} has label {value!r}; expected an integer or a list")
        if key == "background" and value == 0:
            continue
        classes[str(key)] = value
    if not classes:
        raise InputError(f"{source}: the class map is empty")
    return classes


def read_class_map(path: Path) -> ClassMap:
    """Class map from JSON: {"liver": 1, "kidney": [2, 3]}, {"1": "liver"}, or an nnU-Net dataset.json."""
    try:
        mapping = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read class map ({error})") from error
    if not isinstance(mapping, dict):
        raise InputError(f"{path}: a class map must be a JSON object")
    return _class_map_from_mapping(mapping, str(path))


def parse_labels(text: str) -> ClassMap:
    """Class map from "1=liver,2=spleen" (a value list "2+3=kidney" makes a union class)."""
    mapping: dict[str, list[int] | int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        values, sep, name = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--labels: expected VALUE=NAME, got {item!r}")
        try:
            numbers = [int(v) for v in values.split("+")]
        except ValueError as error:
            raise InputError(f"--labels: label value in {item!r} is not an integer") from error
        mapping[name.strip()] = numbers[0] if len(numbers) == 1 else numbers
    return _class_map_from_mapping(mapping, "--labels")
