"""nnU-Net predictions into the benchmark: label values to SAT's unified classes, derived classes, scores.

A model's `dataset.json` names its labels (the dataset's original names, e.g. `left_kidney` or `L5`); each maps to
the catalog's class (`left kidney`, `lumbar vertebrae 5 (l5)`) and so to the value the converted references use.
Where the model's values differ from the references' (a model trained elsewhere with another label order), the
predictions are rewritten in the references' values; otherwise they are scored as written. Derived classes
(kidney = left kidney + right kidney) are unions of label values in the catalog's class map, so they are rebuilt
from every prediction exactly as SAT-DS's loader builds them from the references.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from bench.data.catalog import DatasetInfo
from bench.data.catalog.names import unified_class_name
from bench.engine.evaluation import RunOutcome, evaluate_folders, evaluation_spec
from bench.data.io import InputError

MODEL_NAME = "nnU-Net"


def label_lookup(info: DatasetInfo, labels: dict) -> dict[int, int]:
    """Model label value -> the catalog's nnU-Net value, from a dataset.json `labels` mapping (name -> value)."""
    channel_value = {entry["class"]: int(entry["value"]) for entry in info.nnunet_labels.values()}
    by_original = {name: entry["class"] for name, entry in info.nnunet_labels.items()}
    lookup, unknown = {}, []
    for name, value in labels.items():
        if name == "background":
            continue
        if isinstance(value, (list, tuple)):  # nnU-Net region-based labels: not a SAT-DS specialist
            raise InputError(f"{info.name}: label {name!r} is a region ({value}); only plain label maps are ingested")
        cls = by_original.get(name) or unified_class_name(name)
        if cls not in channel_value:
            unknown.append(name)
            continue
        lookup[int(value)] = channel_value[cls]
    if unknown:
        raise InputError(f"{info.name}: model label(s) {', '.join(map(repr, unknown))} match no class of the dataset "
                         f"(expected {', '.join(sorted(info.nnunet_labels))})")
    return lookup


def model_lookup(info: DatasetInfo, model_folder: Path) -> dict[int, int]:
    path = Path(model_folder) / "dataset.json"
    try:
        description = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read the model's dataset.json ({error})") from error
    return label_lookup(info, description.get("labels", {}))


def remap_predictions(prediction_folder: Path, lookup: dict[int, int], out_folder: Path) -> Path:
    """Rewrite every `<case>.nii.gz` in the references' values (header kept); a value outside `lookup` is an error."""
    out_folder.mkdir(parents=True, exist_ok=True)
    table = np.zeros(max(lookup, default=0) + 1, np.uint16)
    for value, target in lookup.items():
        table[value] = target
    for path in sorted(prediction_folder.glob("*.nii.gz")):
        image = nib.load(str(path))
        array = np.asanyarray(image.dataobj)
        if array.size and (array.min() < 0 or array.max() >= table.size):
            raise InputError(f"{path}: label value {int(array.max())} is not in the model's dataset.json")
        header = image.header.copy()
        header.set_data_dtype(np.uint16)
        nib.save(nib.Nifti1Image(table[array], image.affine, header), str(out_folder / path.name))
    return out_folder


def ingest(info: DatasetInfo, prediction_folder: Path, model_folder: Path, work_folder: Path) -> Path:
    """The folder to score: the predictions themselves if their values are the references', else a remapped copy."""
    lookup = model_lookup(info, model_folder)
    if all(source == target for source, target in lookup.items()):
        return prediction_folder
    return remap_predictions(prediction_folder, lookup, work_folder)


def score(info: DatasetInfo, prediction_folder: Path, reference_folder: Path, out: Path, run: str | None = None,
          model: str = MODEL_NAME, tolerance_mm: float = 1.0, empty_policy: str = "sat", workers: int = 1,
          progress: bool = True) -> RunOutcome:
    """DSC/NSD of every predicted test case for every class of the dataset, derived classes included."""
    classes = info.nnunet_classes()
    spec = evaluation_spec(run=run or out.name, model=model, predictions=prediction_folder, classes=classes,
                           tolerance_mm=tolerance_mm, empty_policy=empty_policy)
    return evaluate_folders(reference_folder, out, spec, dataset=info.name, modality=info.modality, classes=classes,
                            workers=workers, progress=progress)
