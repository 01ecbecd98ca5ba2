"""The catalog: the 72 SAT-DS datasets and the 498 unified terms, read from the importer's data files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pandas as pd

from bench.data.catalog.importer import DATA_DIR
from bench.data.catalog.orientation import SAT_ORIENTATION
from bench.data.catalog.rules import Rule
from protocols.terms import term_key
from protocols.errors import BenchError

TERM_COLUMNS = ["key", "modality", "class_name", "regions", "abnormal"]
_VALUE_FIELDS = ("rules", "class_values", "mask_values")


class CatalogError(BenchError, LookupError):
    """An unknown dataset or class, or missing catalog data files; the message says which and what exists."""


@dataclass(frozen=True)
class DatasetInfo:
    """One SAT-DS dataset: classes in SAT-DS mask-channel order (derived classes included) and where they come from.

    `class_values` gives each class's label values in the dataset's nnU-Net label map, `mask_values` the same in
    the dataset's own mask files as SAT-DS lists them (equal except for ACDC, LUNA16, MM-WHS), `rules` the
    derived-class unions in the order they apply, `nnunet_labels` each original nnU-Net label name with its value
    and unified class name, `orientation` the axes SAT-DS reorients scans to (`RAS`, `ASR`, ... or `none`).
    """

    name: str
    modality: str
    sequences: tuple[str, ...]
    region: str
    classes: tuple[str, ...]
    class_values: dict[str, tuple[int, ...]]
    mask_values: dict[str, tuple[int, ...]]
    rules: tuple[Rule, ...]
    nnunet_labels: dict[str, dict]
    ignored_channels: tuple[str, ...]
    n_scans: int
    n_test_scans: int
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]
    split_overlap: tuple[str, ...]
    download_url: str
    nnunet_id: int
    nnunet_name: str
    paper_name: str = ""
    regions: tuple[str, ...] = field(default=())
    unlisted_terms: tuple[str, ...] = field(default=())
    orientation: str = SAT_ORIENTATION

    @property
    def derived_classes(self) -> tuple[str, ...]:
        """Classes that are a union of channels (rule targets), in channel order."""
        targets = {target for target, _ in self.rules}
        return tuple(c for c in self.classes if c in targets)

    def term_keys(self) -> dict[str, str]:
        """Class name -> unified key (`ct_liver`)."""
        return {c: term_key(self.modality, c) for c in self.classes}

    def nnunet_classes(self) -> dict[str, tuple[int, ...]]:
        """Class name -> nnU-Net label values, ready for `protocols.case.evaluate_case(classes=...)`."""
        return dict(self.class_values)

    def is_test(self, patient_id: str) -> bool:
        return str(patient_id) in set(self.test_ids)


@dataclass(frozen=True)
class Catalog:
    datasets: dict[str, DatasetInfo]
    terms: pd.DataFrame

    def dataset(self, name: str) -> DatasetInfo:
        """A dataset by its SAT-DS name or the name SAT's tables print (`TS Organs`), case-insensitively and
        ignoring `_`/`-`/spaces (`totalsegmentator organs` works)."""
        if name in self.datasets:
            return self.datasets[name]
        wanted = _loose(name)
        for known, info in self.datasets.items():
            if wanted in (_loose(known), _loose(info.paper_name)):
                return info
        raise CatalogError(f"unknown dataset {name!r}; known: {', '.join(sorted(self.datasets))}")

    def term(self, key: str) -> pd.Series:
        rows = self.terms[self.terms["key"] == key]
        if rows.empty:
            raise CatalogError(f"unknown terminology key {key!r}")
        return rows.iloc[0]


def _loose(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _read(path: Path):
    if not path.is_file():
        raise CatalogError(f"{path}: catalog data missing; run `bench datasets import-satds PATH_TO_SATDS`")
    return json.loads(path.read_text())


def build_catalog(data_dir: Path = DATA_DIR) -> Catalog:
    """A Catalog from `terms.json` and `datasets.json` in data_dir."""
    terms = pd.DataFrame(_read(data_dir / "terms.json"), columns=TERM_COLUMNS)
    terms["regions"] = terms["regions"].map(tuple)
    terms["abnormal"] = terms["abnormal"].astype(bool)
    region_of = dict(zip(terms["key"], terms["regions"]))
    datasets = {}
    for name, raw in _read(data_dir / "datasets.json").items():
        keys = [term_key(raw["modality"], c) for c in raw["classes"]]
        datasets[name] = DatasetInfo(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k not in _VALUE_FIELDS},
            class_values={c: tuple(v) for c, v in raw["class_values"].items()},
            mask_values={c: tuple(v) for c, v in raw["mask_values"].items()},
            rules=tuple((target, tuple(sources)) for target, sources in raw["rules"]),
            regions=tuple(sorted({r for key in keys for r in region_of.get(key, ())})),
        )
    return Catalog(datasets=datasets, terms=terms)


@cache
def load_catalog() -> Catalog:
    """The project's catalog (read once per process)."""
    return build_catalog()
