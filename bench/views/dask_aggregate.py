"""SAT's macro averages with the per-row work on a Dask cluster (`bench tables --executor dask`).

The rows are split into pieces that each hold whole (method, dataset) groups, so every cell (method, dataset,
class) and every case lies in one piece. Each worker computes its pieces' cells and the distinct cases behind
every unit of every level with the pandas code (`protocols.aggregate.Cells`); the client concatenates the cells,
adds up the case counts and finishes with `level_scores`. No shuffle is needed, and the cells are the pandas
path's to the bit, so the tables are equal, not merely close.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from protocols.aggregate import CELL_KEYS, LEVEL_UNITS, LEVELS, METRICS, Cells, level_scores

Partial = tuple[pd.DataFrame, dict[str, pd.Series]]


def pieces_by_dataset(rows: pd.DataFrame, n_pieces: int) -> list[pd.DataFrame]:
    """`rows` in at most `n_pieces` pieces of whole (method, dataset) groups, balanced by row count (largest
    group first onto the lightest piece)."""
    groups = sorted(rows.groupby(["method", "dataset"], sort=True).indices.values(), key=len, reverse=True)
    count = max(1, min(n_pieces, len(groups)))
    loads, members = [0] * count, [[] for _ in range(count)]
    for positions in groups:
        lightest = int(np.argmin(loads))
        loads[lightest] += len(positions)
        members[lightest].append(positions)
    return [rows.iloc[np.sort(np.concatenate(parts))] for parts in members if parts]


def partial_scores(rows: pd.DataFrame) -> Partial:
    """One piece's cells, and per level the distinct cases behind each of its units (indexed by the unit)."""
    cells = Cells(rows)
    counts = {}
    for level in LEVELS:
        units = cells.table.groupby(LEVEL_UNITS[level], sort=True).size().index
        counts[level] = pd.Series(cells.case_counts(level), index=units)
    return cells.table, counts


def combine(partials: list[Partial]) -> dict[str, pd.DataFrame]:
    """Every level's aggregates from the pieces' partial results (cells of different pieces never overlap)."""
    cells = pd.concat([table for table, _ in partials]).sort_values(CELL_KEYS, kind="stable").reset_index(drop=True)
    scores = {}
    for level in LEVELS:
        counts = pd.concat([piece[level] for _, piece in partials]).groupby(level=LEVEL_UNITS[level], sort=True).sum()
        scores[level] = level_scores(cells, level, counts.to_numpy(dtype=np.int64))
    return scores


def dask_scores(rows: pd.DataFrame, client, pieces: int | None = None) -> dict[str, pd.DataFrame]:
    """Every level's aggregates of labelled rows (as `protocols.aggregate.all_scores`), computed on `client`'s
    cluster in `pieces` pieces (default: two per worker thread)."""
    rows = rows[[*CELL_KEYS, "case_id", *METRICS]]
    if pieces is None:
        pieces = 2 * max(sum(client.nthreads().values()), 1)
    futures = client.map(partial_scores, client.scatter(pieces_by_dataset(rows, pieces)))
    return combine(client.gather(futures))
