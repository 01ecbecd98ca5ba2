"""The results store: tidy rows, one per (case, class[, click]), kept as Parquet.

A run directory holds `run.json` (the configuration that made it), `cases/<key>.parquet` (one file per scored
case, written atomically: a temporary file renamed into place) and `metrics.parquet` (all case files
concatenated, rewritten atomically after every run). A run killed midway keeps every case it finished;
running the same command again skips them, and since a case is one file it can never be stored twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

METRIC_COLUMNS = [
    "run", "model", "dataset", "case_id", "modality", "class_name",
    "dsc", "nsd", "tolerance_mm", "ref_empty", "pred_empty", "ref_voxels", "pred_voxels",
    "spacing", "seconds",
]
METRICS_FILE = "metrics.parquet"
CONFIG_FILE = "run.json"
_CASES = "cases"


class RunConfigMismatch(ValueError):
    """The output directory already holds results made with different settings."""


def case_file_name(case_key: str) -> str:
    """A safe, unique file name for a case key (readable stem plus a short hash of the exact key)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", case_key)[:80]
    digest = hashlib.sha1(case_key.encode()).hexdigest()[:10]
    return f"{stem}.{digest}.parquet"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_json(path: Path, data) -> None:
    """Write a JSON file atomically (a reader never sees half of it, a killed run leaves the old one)."""
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True)))


def open_run(out_dir: Path, config: dict) -> None:
    """Create the run directory, or check that an existing one was made with the same configuration (compared
    as JSON, so tuples and lists are the same)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / CONFIG_FILE
    normalised = json.loads(json.dumps(config, sort_keys=True))
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != normalised:
            changed = sorted(k for k in set(previous) | set(normalised) if previous.get(k) != normalised.get(k))
            raise RunConfigMismatch(
                f"{out_dir} holds a run made with different settings ({', '.join(changed)}); "
                "use another --out directory or remove it"
            )
        return
    write_json(config_path, normalised)


def read_config(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / CONFIG_FILE).read_text())


def is_done(out_dir: Path, case_key: str) -> bool:
    return (Path(out_dir) / _CASES / case_file_name(case_key)).exists()


def write_case(out_dir: Path, case_key: str, rows: pd.DataFrame) -> Path:
    """Store all rows of one case at once (atomic)."""
    path = Path(out_dir) / _CASES / case_file_name(case_key)
    _atomic_write(path, lambda tmp: rows.to_parquet(tmp, index=False))
    return path


def read_cases(out_dir: Path) -> pd.DataFrame:
    """All stored case rows of a run directory, in a stable order."""
    files = sorted((Path(out_dir) / _CASES).glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def consolidate(out_dir: Path) -> pd.DataFrame:
    """Rewrite `metrics.parquet` from the case files and return it."""
    table = read_cases(out_dir)
    _atomic_write(Path(out_dir) / METRICS_FILE, lambda tmp: table.to_parquet(tmp, index=False))
    return table


def read_metrics(paths: Iterable[Path]) -> pd.DataFrame:
    """Rows of one or more runs (each a run directory or a metrics.parquet file)."""
    tables = []
    for path in map(Path, paths):
        file = path / METRICS_FILE if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"{path}: no {METRICS_FILE} (run `bench evaluate` first)")
        tables.append(pd.read_parquet(file))
    return pd.concat(tables, ignore_index=True)
