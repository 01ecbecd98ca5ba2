"""`bench datasets verify`: every file present and readable, image/label geometry equal, every class seen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.catalog.cases import CaseSource
from bench.io import InputError, check_same_geometry, read_label_map, read_volume


def _case_problems(source: CaseSource) -> tuple[list[str], set[str]]:
    """Problems of one case and the classes its label map contains."""
    missing = [f"{source.case_id}: missing file {path}" for path in (source.image, source.label) if not path.is_file()]
    if missing:
        return missing, set()
    try:
        labels = read_label_map(source.label)
        check_same_geometry(read_volume(source.image), labels)
    except InputError as error:
        return [f"{source.case_id}: {error}"], set()
    present = set(np.unique(labels.array).tolist())
    return [], {name for name, values in source.classes.items() if present.intersection(values)}


def verify_sources(sources: Sequence[CaseSource], classes: Sequence[str]) -> list[str]:
    """Every problem found, one line each; empty when the dataset is complete and consistent."""
    if not sources:
        return ["no cases found"]
    problems: list[str] = []
    seen: set[str] = set()
    for source in sources:
        case_problems, present = _case_problems(source)
        problems += case_problems
        seen |= present
    problems += [f"class {name!r} is absent from every case" for name in classes if name not in seen]
    return problems
