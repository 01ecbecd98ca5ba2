"""`bench datasets verify`: every file present and readable, image/label geometry equal, every class seen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.data.catalog.cases import CaseSource
from bench.data.io import InputError, check_same_geometry, read_label_map, read_volume


def _case_problems(source: CaseSource) -> tuple[list[str], set[str] | None]:
    """Problems of one case and the classes its label map contains (None when the label map cannot be read). A
    missing or mismatched image is one problem; the label map is still read for its classes."""
    if not source.label.is_file():
        return [f"{source.case_id}: missing file {source.label}"], None
    try:
        labels = read_label_map(source.label)
    except InputError as error:
        return [f"{source.case_id}: {error}"], None
    present = set(np.unique(labels.array).tolist())
    classes = {name for name, values in source.classes.items() if present.intersection(values)}
    if not source.image.is_file():
        return [f"{source.case_id}: missing file {source.image}"], classes
    try:
        check_same_geometry(read_volume(source.image), labels)
    except InputError as error:
        return [f"{source.case_id}: {error}"], classes
    return [], classes


def verify_sources(sources: Sequence[CaseSource], classes: Sequence[str]) -> list[str]:
    """Every problem found, one line each; empty when the dataset is complete and consistent. A class is named
    absent only when every label map was read (an unreadable one might hold it)."""
    if not sources:
        return ["no cases found"]
    problems: list[str] = []
    seen: set[str] = set()
    unread = 0
    for source in sources:
        case_problems, present = _case_problems(source)
        problems += case_problems
        seen |= present or set()
        unread += present is None
    absent = [name for name in classes if name not in seen]
    if unread and absent:
        problems.append(f"classes not checked: {unread} label map(s) could not be read")
    elif absent:
        problems += [f"class {name!r} is absent from every case" for name in absent]
    return problems
