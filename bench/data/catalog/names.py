"""Unified class names: SAT-DS label spelling and nnU-Net label names brought to one lower-case form.

SAT-DS writes classes with mixed case ("Left Optic Radiation", "lumbar vertebrae 5 (L5)"); its terminology keys are
lower case. nnU-Net dataset.json files keep the datasets' original names ("left_adrenal_gland", "L5",
"disc L4 L5"), which are mapped here to the SAT-DS names so nnU-Net predictions can be scored under them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import yaml

from protocols.terms import class_name

_LABEL_SETS = Path(__file__).with_name("label_sets.yaml")
_CURATED = Path(__file__).with_name("curated.yaml")

_SPINE_SEGMENTS = {"c": "cervical vertebrae", "t": "thoracic vertebrae", "l": "lumbar vertebrae",
                   "s": "sacral vertebrae"}
_VERTEBRA = re.compile(r"^([ctls])(\d+)$")
_DISC = re.compile(r"^disc ([ctls]\d+) ([ctls]\d+|sacrum)$")


def _vertebra(code: str) -> str:
    match = _VERTEBRA.match(code)
    if match is None:
        return code
    segment, number = match.groups()
    return f"{_SPINE_SEGMENTS[segment]} {number} ({segment}{number})"


def nnunet_class_name(label: str, aliases: Mapping[str, str]) -> str:
    """The SAT-DS class name of an nnU-Net label name: `left_adrenal_gland` -> `left adrenal gland`, `L5` ->
    `lumbar vertebrae 5 (l5)`, `disc L5 sacrum` -> `intervertebral disc between lumbar vertebrae 5 (l5) and sacrum`,
    and the curated aliases, also behind a side (`left_clavicula` -> `left clavicle`)."""
    name = class_name(label.replace("_", " "))
    disc = _DISC.match(name)
    if disc is not None:
        upper, lower = disc.groups()
        return f"intervertebral disc between {_vertebra(upper)} and {_vertebra(lower)}"
    side, _, rest = name.partition(" ")
    if side in ("left", "right") and rest in aliases:
        return f"{side} {aliases[rest]}"
    return aliases.get(name, _vertebra(name))


@cache
def _label_set_aliases() -> dict[str, str]:
    """Original label name -> SAT-DS class name, over every well-known label set in `label_sets.yaml`."""
    tables = yaml.safe_load(_LABEL_SETS.read_text())
    return {label: target for table in tables.values() for label, target in table.items()}


@cache
def _curated_aliases() -> dict[str, str]:
    return dict(yaml.safe_load(_CURATED.read_text()).get("aliases", {}))


def unified_class_name(label: str) -> str:
    """SAT-DS's name for a class name written by a user, a dataset.json or a well-known label set
    (`kidney_left` -> `left kidney`, `vertebrae_L1` -> `lumbar vertebrae 1 (l1)`, `Liver` -> `liver`)."""
    known = _label_set_aliases().get(label.strip())
    return known if known is not None else nnunet_class_name(label, _curated_aliases())
