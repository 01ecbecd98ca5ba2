"""Benchmark: the CLI's start-up cost, in CPU seconds of a fresh process, beside a bare `import typer` measured in
the same run (the interpreter's own start), and whether a weightless model's run imports torch.

Run with ``python -m tests.perf startup [--repeats R]``. Goals (issue 21): `bench run --model oracle` and
`bench clicks --model region_growing` with a bad argument exit within 1 CPU-s; `bench run --help` and
`bench models list` under 0.5 s; a run of the oracle on a native-grid protocol imports no torch.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = [sys.executable, "-m", "bench.cli.app"]
REFERENCE = 'python -c "import typer" (reference)'
BAD = ["--images", "/nonexistent", "--refs", "/nonexistent", "--labels", "1=liver", "--modality", "CT"]


def cpu_seconds(command: list[str], repeats: int) -> tuple[float, float]:
    """The least CPU time (user + system) and the least wall time of `repeats` runs of `command` in a fresh
    process."""
    cpu = wall = float("inf")
    for _ in range(repeats):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), min(wall, time.perf_counter() - start)
        cpu = min(cpu, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return cpu, wall


def oracle_imports_torch(folder: Path) -> bool:
    """Whether `bench run --model oracle` on one small case (harness protocol, native grid) imports torch."""
    from bench.data.io import write_volume

    (folder / "images").mkdir()
    (folder / "refs").mkdir()
    label = np.zeros((24, 24, 12), np.uint8)
    label[6:18, 6:18, 3:9] = 1
    write_volume(folder / "images" / "case_0000.nii.gz", label.astype(np.float32) * 100, np.eye(4))
    write_volume(folder / "refs" / "case.nii.gz", label, np.eye(4))
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "bench.cli.app", "run", "--model", "oracle",
                          "--images", str(folder / "images"), "--refs", str(folder / "refs"), "--labels", "1=liver",
                          "--modality", "CT", "--protocol", "harness", "--out", str(folder / "out")],
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"the oracle run failed: {run.stderr.splitlines()[-1:]}")
    return any(line.rsplit("|", 1)[-1].strip() == "torch" for line in run.stderr.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    reference, reference_wall = cpu_seconds([sys.executable, "-c", "import typer"], args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "bench run --model oracle (bad argument)": [*BENCH, "run", "--model", "oracle", *BAD, "--out", f"{tmp}/o"],
            "bench clicks --model region_growing (bad argument)":
                [*BENCH, "clicks", "--model", "region_growing", *BAD, "--out", f"{tmp}/o"],
            "bench run --help": [*BENCH, "run", "--help"],
            "bench models list": [*BENCH, "models", "list"],
        }
        print(f"{'command':<52} {'CPU s':>7} {'x import typer':>15} {'wall s':>7}")
        print(f"{REFERENCE:<52} {reference:7.2f} {1.0:15.1f} {reference_wall:7.2f}")
        for name, command in commands.items():
            seconds, wall = cpu_seconds(command, args.repeats)
            print(f"{name:<52} {seconds:7.2f} {seconds / reference:15.1f} {wall:7.2f}")
        print(f"a weightless model's run imports torch: {oracle_imports_torch(Path(tmp))}")
