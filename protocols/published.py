"""Published result tables of the seed papers (SAT, SegVol, SAM-Med3D), read from the packaged tidy CSV files.

Each file ``results/published/<name>.csv`` holds one paper table, one row per printed cell, with the columns
``COLUMNS``; ``results/published/README.md`` describes every entry and the conventions (units, metric names).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PUBLISHED_DIR = Path(__file__).resolve().parents[1] / "results" / "published"
COLUMNS = ["paper", "table", "caption", "method", "metric", "level", "key", "modality", "value", "note"]
_DTYPES = {column: str for column in COLUMNS if column != "value"} | {"value": float}


def list_published() -> list[str]:
    """Names of the packaged tables, e.g. ``sat-table1``, ``segvol-table2``, ``sam-med3d-table3``."""
    return sorted(path.stem for path in PUBLISHED_DIR.glob("*.csv"))


def load_published(name: str) -> pd.DataFrame:
    """The tidy rows of one table; ``-`` cells are NaN, empty text cells are empty strings."""
    known = list_published()
    if name not in known:
        raise KeyError(f"unknown published table {name!r}; known: {', '.join(known)}")
    frame = pd.read_csv(
        PUBLISHED_DIR / f"{name}.csv", dtype=_DTYPES, keep_default_na=False, na_values={"value": ["", "NaN", "-"]}
    )
    if list(frame.columns) != COLUMNS:
        raise ValueError(f"{name}.csv has columns {list(frame.columns)}, expected {COLUMNS}")
    return frame


def published_entries() -> pd.DataFrame:
    """All rows of all packaged tables, in the order of ``list_published()``."""
    return pd.concat([load_published(name) for name in list_published()], ignore_index=True)
