"""Benchmark: aggregate SAT-DS-test-scale synthetic rows (302K) into the class, region and dataset tables.

Run with ``python -m tests.perf.aggregate [--rows N] [--repeats R] [--bootstrap B]``; prints the best wall
time of R repeats. The target is under 2 s for 302K rows (labelling rows with their terms included). With
``--bootstrap B`` it also times 95% intervals for every aggregate from B replicates.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from tests.perf import timed
from protocols import aggregate, stats

REGIONS = ("brain", "head and neck", "upper limb", "thorax", "spine", "abdomen", "lower limb", "pelvis")


def synthetic_terms(rng: np.random.Generator, n_classes: int = 497) -> pd.DataFrame:
    """A made-up terminology: mostly single-region classes, some multi-region, about a tenth abnormal."""
    regions = [tuple(rng.choice(REGIONS, size=1 + (rng.random() < 0.05), replace=False)) for _ in range(n_classes)]
    return pd.DataFrame({
        "key": [f"{'ct' if i % 3 else 'mri'}_class{i}" for i in range(n_classes)],
        "regions": regions,
        "abnormal": rng.random(n_classes) < 0.1,
    })


def synthetic_rows(rng: np.random.Generator, terms: pd.DataFrame, n_rows: int, n_datasets: int = 72) -> pd.DataFrame:
    """``n_rows`` per-case rows spread over ``n_datasets`` datasets, each with its own classes and cases."""
    frames = []
    per_dataset = -(-n_rows // n_datasets)
    for d in range(n_datasets):
        keys = rng.choice(terms["key"].to_numpy(), size=int(rng.integers(2, 40)), replace=False)
        n_cases = -(-per_dataset // len(keys))
        key = np.tile(keys, n_cases)
        dsc = rng.beta(8, 2, size=key.size)
        frames.append(pd.DataFrame({
            "run": "synthetic", "dataset": f"dataset{d}",
            "case_id": np.repeat([f"case{i}" for i in range(n_cases)], len(keys)),
            "modality": np.where(np.char.startswith(key.astype(str), "ct"), "CT", "MRI"),
            "class_name": np.char.partition(key.astype(str), "_")[:, 2],
            "dsc": dsc, "nsd": np.clip(dsc + rng.normal(0, 0.05, size=key.size), 0, 1),
        }))
    return pd.concat(frames, ignore_index=True).head(n_rows)


def synthetic_key(modality: str, class_name: str) -> str:
    return f"{modality.lower()}_{class_name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=302_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=0, help="also time intervals from this many replicates")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    terms = synthetic_terms(rng)
    rows = synthetic_rows(rng, terms, args.rows)
    times = []
    for _ in range(args.repeats):
        tables, timing = timed(lambda: aggregate.all_scores(aggregate.attach_terms(rows, terms, synthetic_key)))
        times.append(timing)
    sizes = ", ".join(f"{level} {len(table)}" for level, table in tables.items())
    best = min(times, key=lambda timing: timing.wall)
    print(f"{len(rows):,} rows -> {sizes} aggregates: best {best:.3f} of {args.repeats} (target < 2 s wall)")
    if args.bootstrap:
        labelled = aggregate.attach_terms(rows, terms, synthetic_key)
        _, timing = timed(stats.bootstrap_ci, labelled, np.random.default_rng(args.seed), n_boot=args.bootstrap)
        print(f"bootstrap intervals for every aggregate, {args.bootstrap} replicates: {timing:.3f}")


if __name__ == "__main__":
    main()
