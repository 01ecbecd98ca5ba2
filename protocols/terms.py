"""Unified terminology keys: `modality_class` such as `ct_liver` or `mri_liver` (different classes on purpose).

Results rows and SAT-DS records spell modalities loosely ("CT", "MRI T1", "MRI FLAIR", "MR", "PET"); every
spelling maps to one of three modality prefixes. Matching is always on the full key, never on the class name
alone: SAT's merge script strips the modality and so files `mri_esophagus` under head and neck.
"""

from __future__ import annotations

from protocols.errors import BenchError

MODALITIES = ("ct", "mri", "pet")
_MODALITY_WORDS = {"ct": "ct", "mri": "mri", "mr": "mri", "pet": "pet"}


def class_name(label: str) -> str:
    """The unified spelling of a SAT-DS label: lower case, single spaces."""
    return " ".join(label.lower().split())


def modality_prefix(modality: str) -> str:
    """`ct`, `mri` or `pet` from a modality string such as "CT", "MRI T2", "MR" or "pet"; ValueError otherwise."""
    words = str(modality).strip().lower().replace("-", " ").replace("_", " ").split()
    if not words or words[0] not in _MODALITY_WORDS:
        raise BenchError(f"unknown modality {modality!r}: expected CT, MRI (any sequence, e.g. 'MRI T1') or PET")
    return _MODALITY_WORDS[words[0]]


def term_key(modality: str, name: str) -> str:
    """The unified key of a class seen in a modality: term_key("MRI T1", "Left Kidney") == "mri_left kidney"."""
    return f"{modality_prefix(modality)}_{class_name(name)}"


def split_key(key: str) -> tuple[str, str]:
    """(modality prefix, class name) of a key such as `ct_liver`."""
    prefix, sep, name = key.partition("_")
    if not sep or prefix not in MODALITIES:
        raise BenchError(f"malformed terminology key {key!r}: expected '<ct|mri|pet>_<class name>'")
    return prefix, name
