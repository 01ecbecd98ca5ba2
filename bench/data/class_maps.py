"""Class maps (class name -> label values) from every place a user writes one, parsed by one function.

Sources: a JSON file (`{"liver": 1}`, `{"1": "liver"}`, a union `{"kidney": [2, 3]}`, or an nnU-Net / MSD
`dataset.json` through its `labels`), inline `--labels "1=liver,2+3=kidney"`, and the `classes` of a user manifest.
Names are brought to SAT's unified spelling (`kidney_left` -> `left kidney`, `vertebrae_L1` -> `lumbar vertebrae 1
(l1)`) by `bench.data.catalog.names.unified_class_name`, so a TotalSegmentator-style run lands in SAT's regions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from bench.data.catalog.names import unified_class_name
from bench.data.io import InputError

ClassValues = dict[str, tuple[int, ...]]


def _label_value(raw, name: str, source: str) -> int:
    """One label value: a non-negative integer (JSON `true` is not 1, `2.5` is not 2)."""
    if isinstance(raw, bool) or not isinstance(raw, int | str) or (isinstance(raw, str) and not raw.strip().isdigit()):
        raise InputError(f"{source}: class {name!r} has label {raw!r}; expected a non-negative integer or a list")
    return int(raw)


def parse_class_map(mapping: Mapping, source: str, *, unify: bool = True) -> ClassValues:
    """{name: value or [values]} or {value: name}; an nnU-Net/MSD dataset.json is read through its `labels`.
    Background (0) is left out; two entries naming the same class, or two classes with the same label values
    (`1=liver,1=spleen`: one would be scored with the other's mask), are errors, not a silent overwrite. Classes
    whose values merely overlap are unions on purpose (`kidney: [2, 3]` beside `left kidney: 2`)."""
    if not isinstance(mapping, Mapping):
        raise InputError(f"{source}: a class map must be a mapping of class names to label values")
    if isinstance(mapping.get("labels"), Mapping):
        mapping = mapping["labels"]
    classes: ClassValues = {}
    for key, value in mapping.items():
        if isinstance(value, str) and str(key).strip().isdigit():
            key, value = value, key
        name = str(key).strip()
        values = tuple(_label_value(v, name, source) for v in (value if isinstance(value, list | tuple) else [value]))
        if not values:
            raise InputError(f"{source}: class {name!r} has an empty label list")
        if values == (0,):
            continue
        if 0 in values:
            raise InputError(f"{source}: class {name!r} includes label 0 (background)")
        if unify:
            name = unified_class_name(name)
        if name in classes:
            raise InputError(f"{source}: class {name!r} is given twice")
        same = next((other for other, taken in classes.items() if set(taken) == set(values)), None)
        if same is not None:
            raise InputError(f"{source}: label value {'+'.join(map(str, values))} is claimed by both {same!r} and "
                             f"{name!r}; give each class its own value (a union lists several: 2+3=kidney)")
        classes[name] = values
    if not classes:
        raise InputError(f"{source}: the class map is empty")
    return classes


def read_json_mapping(path: Path) -> dict:
    """A JSON object from a file; InputError naming the file otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read JSON ({error})") from error
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object at the top level")
    return data


def read_class_map(path: Path) -> ClassValues:
    """Class map from a JSON file (see module docstring)."""
    return parse_class_map(read_json_mapping(path), str(path))


def parse_labels(text: str) -> ClassValues:
    """Class map from "1=liver,2=spleen" (a value list "2+3=kidney" makes a union class)."""
    mapping: dict[str, list[str]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        values, sep, name = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--labels: expected VALUE=NAME, got {item!r}")
        if name in mapping:
            raise InputError(f"--labels: class {name!r} is given twice")
        mapping[name] = [v.strip() for v in values.split("+")]
    return parse_class_map(mapping, "--labels")
