"""Matching prediction files to reference cases by case id.

A case is a volume file (`case.nii.gz`, a label map) or a folder (`case/<class name>.nii.gz`, one binary mask per
class: SAT's output layout). Case ids are the reference file names without their volume suffix, unchanged:
`amos_0013`, `FLARE22_Tr_0031` and `segrap_0000` are three cases. Only a prediction may carry nnU-Net's channel
suffix (`amos_0013_0000.nii.gz`), and it is stripped only when that names a reference.

A 2D case of an SA-Med2D folder (`bench.data.sammed2d`) is one image with a tuple of reference mask PNGs; the
prediction of a mask is the PNG of the same name in a flat folder (SAM-Med2D's test.py `--save_pred` layout).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.data.catalog.orientation import SAT_ORIENTATION
from bench.data.io import InputError, volume_suffix

_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


@dataclass(frozen=True)
class CasePair:
    """A case's prediction and reference: volume files or case folders, or (2D) tuples of mask files in the
    same order; with what the reference set says of the case, as a `CaseSource` carries it (its dataset,
    modality, class map and SAT-DS orientation; `bench.engine.evaluation.with_reference` sets them)."""

    case_id: str
    pred: Path | tuple[Path, ...]
    ref: Path | tuple[Path, ...]
    dataset: str = ""
    modality: str = ""
    classes: Mapping = field(default_factory=dict)
    orientation: str = SAT_ORIENTATION


def entry_name(path: Path) -> str:
    """A volume file's name without its volume suffix, or a folder's name."""
    suffix = volume_suffix(path)
    return path.name[: -len(suffix)] if suffix and path.is_file() else path.name


def _is_case_folder(path: Path) -> bool:
    return path.is_dir() and any(volume_suffix(f) and f.is_file() for f in path.iterdir())


def list_cases(folder: Path) -> dict[str, Path]:
    """Name -> volume file or per-class mask folder, for every case in `folder` (hidden entries, other files and
    folders holding no volume file, such as `logs/`, are not cases)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    cases: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not ((entry.is_file() and volume_suffix(entry)) or _is_case_folder(entry)):
            continue
        key = entry_name(entry)
        if key in cases:
            raise InputError(f"{folder}: case {key!r} appears twice ({cases[key].name} and {entry.name})")
        cases[key] = entry
    return cases


def case_id_for(name: str, refs: Mapping[str, Path]) -> str | None:
    """The reference case a prediction or image entry names: itself, or itself without a `_0000` channel tag."""
    for candidate in (name, _CHANNEL_SUFFIX.sub("", name)):
        if candidate in refs:
            return candidate
    return None


def _orphans(pred_dir: Path, orphans: list[str], elsewhere: Mapping[str, str] | None = None) -> InputError:
    """No reference for these predictions; ``elsewhere`` (case id -> where it is instead, e.g. another split)
    names where a case was found and what to pass."""
    elsewhere = elsewhere or {}
    stems = {name: name[: -len(volume_suffix(Path(name)))] if volume_suffix(Path(name)) else name for name in orphans}
    where = {name: elsewhere.get(stem) or elsewhere.get(_CHANNEL_SUFFIX.sub("", stem)) for name, stem in stems.items()}
    listed = ", ".join(f"{name} ({where[name]})" if where[name] else name for name in orphans[:10])
    hint = "; pass --split all to score every case under the root" if any(where.values()) else ""
    return InputError(f"{pred_dir}: no reference for prediction(s) {listed}"
                      + (f" and {len(orphans) - 10} more" if len(orphans) > 10 else "") + hint)


def _match_mask_files(pred_dir: Path, refs: Mapping[str, tuple[Path, ...]]) -> tuple[list[CasePair], list[str]]:
    """2D cases: every reference mask of a case predicted by the PNG of the same name, or none of them."""
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: not a directory")
    preds = {f.name: f for f in sorted(pred_dir.iterdir())
             if f.is_file() and f.suffix.lower() == ".png" and not f.name.startswith(".")}
    if not preds:
        raise InputError(f"{pred_dir}: no prediction PNGs found")
    known = {path.name for paths in refs.values() for path in paths}
    orphans = [name for name in preds if name not in known]
    if orphans:
        raise _orphans(pred_dir, orphans)
    pairs, unmatched = [], []
    for case_id in sorted(refs):
        names = [path.name for path in refs[case_id]]
        missing = [name for name in names if name not in preds]
        if len(missing) == len(names):
            unmatched.append(case_id)
        elif missing:
            raise InputError(f"{pred_dir / missing[0]}: prediction missing (case {case_id} has predictions for "
                             f"{len(names) - len(missing)} of its {len(names)} masks; predict all or none)")
        else:
            pairs.append(CasePair(case_id, tuple(preds[name] for name in names), tuple(refs[case_id])))
    return pairs, unmatched


def match_predictions(pred_dir: Path, refs: Mapping[str, Path | tuple[Path, ...]],
                      elsewhere: Mapping[str, str] | None = None) -> tuple[list[CasePair], list[str]]:
    """A pair for every prediction, and the ids of references without a prediction.

    Every prediction must name a reference (nnU-Net's evaluator convention): an orphan is an error listing it,
    with where ``elsewhere`` says its case is (a case of another split).
    """
    if refs and all(isinstance(ref, tuple) for ref in refs.values()):
        return _match_mask_files(pred_dir, refs)
    preds = list_cases(pred_dir)
    if not preds:
        raise InputError(f"{pred_dir}: no prediction volumes or case folders found")
    pairs: dict[str, CasePair] = {}
    orphans = []
    for name, path in preds.items():
        case_id = case_id_for(name, refs)
        if case_id is None:
            orphans.append(path.name)
        elif case_id in pairs:
            raise InputError(f"{pred_dir}: case {case_id!r} is predicted twice ({pairs[case_id].pred.name} and "
                             f"{path.name})")
        else:
            pairs[case_id] = CasePair(case_id, path, refs[case_id])
    if orphans:
        raise _orphans(pred_dir, orphans, elsewhere)
    return [pairs[key] for key in sorted(pairs)], sorted(set(refs) - set(pairs))


def match_cases(pred_dir: Path, ref_dir: Path) -> tuple[list[CasePair], list[str]]:
    """`match_predictions` against the cases of a reference folder."""
    return match_predictions(pred_dir, list_cases(ref_dir))
