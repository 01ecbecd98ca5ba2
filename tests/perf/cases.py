"""A folder of AMOS-size cases for the throughput benchmarks: the real AMOS label as every reference, each
prediction degraded with its own seed (`_workloads.degrade`), written once into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.io import read_label_map, write_volume
from tests.perf._workloads import AMOS, AMOS_CLASSES, degrade, require

CLASSES = {name: index + 1 for index, name in enumerate(AMOS_CLASSES)}


def write_cases(root: Path, n_cases: int) -> tuple[Path, Path]:
    """`root/ref` and `root/pred` with `n_cases` AMOS-size label maps each (`amos_0000.nii.gz`, ...)."""
    volume = read_label_map(require(AMOS))
    for index in range(n_cases):
        name = f"amos_{index:04d}.nii.gz"
        write_volume(root / "ref" / name, volume.array, volume.affine)
        write_volume(root / "pred" / name, degrade(volume.array, np.random.default_rng(index)), volume.affine)
    return root / "pred", root / "ref"
