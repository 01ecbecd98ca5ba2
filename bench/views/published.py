"""Published result tables of the seed papers (SAT, SegVol, SAM-Med3D), read from the packaged tidy CSV files.

Each file ``results/published/<name>.csv`` (packaged as ``bench/views/published_tables``, a link to that folder, so that a
wheel carries the tables) holds one paper table, one row per printed cell, with the columns
``COLUMNS``; ``results/published/README.md`` describes every entry and the conventions (units, metric names).
Each paper scored on its own grid (``PAPER_GRIDS``, see the README): a run is compared with a published number
as like for like only when it was scored on the same grid.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from protocols.errors import BenchError

PUBLISHED_DIR = Path(__file__).resolve().parent / "published_tables"
COLUMNS = ["paper", "table", "caption", "method", "metric", "level", "key", "modality", "value", "note"]
# The grid each paper scored on (results/published/README.md and the papers' evaluation sections):
# SAT scores in SAT-DS's preprocessed space (RAS, 1 x 1 x 3 mm, NSD with spacing (1, 1, 3)); SegVol in the raw voxel
# grid (no resampling; the foreground crop and padding leave Dice unchanged); SAM-Med3D on volumes resampled to
# 1.5 mm isotropic and cropped to 128^3 around the target, a grid no run of this harness uses.
PAPER_GRIDS = {"SAT": "satds", "SegVol": "native", "SAM-Med3D": "sammed3d-1.5mm"}
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
        raise BenchError(f"{name}.csv has columns {list(frame.columns)}, expected {COLUMNS}")
    return frame


def paper_grid(paper: str) -> str:
    """The grid a paper's numbers were scored on (``PAPER_GRIDS``); ``unknown`` (cross-grid to every run) else."""
    return PAPER_GRIDS.get(paper, "unknown")


def published_entries() -> pd.DataFrame:
    """All rows of all packaged tables, in the order of ``list_published()``."""
    return pd.concat([load_published(name) for name in list_published()], ignore_index=True)
