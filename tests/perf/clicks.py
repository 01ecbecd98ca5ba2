"""Time to compute the next click on a real clinical label map, for every click policy.

Each of the 15 AMOS22 organs (512 x 512 x 82 at 0.78 x 0.78 x 5 mm) is the reference; the prediction is the
organ shifted by (3, 3, 1) voxels, a realistic error. Every policy computes its click on the full volume
(the crop to the error's bounding box is part of what is timed). Prints the median and the worst time per
policy over organs (best of 3 calls each), and, as the reference measured in the same run, scipy's
`distance_transform_edt` of the FN crop (what a straightforward `ritm` would call twice).
Run: `python -m tests.perf.clicks` (or `python -m tests.perf clicks`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt

from bench.data.io import read_label_map
from tests.perf import Timing, timed
from protocols.prompts_clicks import FIRST_CLICKS, NEXT_CLICKS, first_click, next_click
from protocols.boxes import bounding_box

AMOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "amos" / "amos_0013_label.nii.gz"
SHIFT = (3, 3, 1)
TARGET_MS = 50.0


def shifted(mask: np.ndarray, shift: tuple[int, ...]) -> np.ndarray:
    """`mask` moved by `shift` voxels (positive steps only; voxels moved in from outside are background)."""
    out = np.zeros_like(mask)
    out[tuple(slice(s, None) for s in shift)] = mask[tuple(slice(0, n - s) for n, s in zip(mask.shape, shift))]
    return out


def _best_ms(function, *args, repeats: int = 3, **kwargs) -> Timing:
    """The call of `repeats` with the shortest wall time (the one least disturbed by other load), in ms."""
    best = min((timed(function, *args, **kwargs)[1] for _ in range(repeats)), key=lambda timing: timing.wall)
    return Timing(1e3 * best.wall, 1e3 * best.cpu)


def main() -> None:
    if not AMOS.is_file():
        sys.exit(f"{AMOS} is absent: this benchmark needs ../shared/data/amos")
    volume = read_label_map(AMOS)
    spacing = volume.spacing
    print(f"AMOS label {volume.array.shape} at spacing {tuple(round(s, 3) for s in spacing)}; "
          f"prediction = organ shifted by {SHIFT} voxels; best of 3 calls per organ")
    times: dict[str, list[Timing]] = {name: [] for name in [*NEXT_CLICKS, *(f"first:{n}" for n in FIRST_CLICKS)]}
    scipy_ms = []
    for value in range(1, int(volume.array.max()) + 1):
        ref = volume.array == value
        if not ref.any():
            continue
        pred = shifted(ref, SHIFT)
        rng = np.random.default_rng(value)
        for name in NEXT_CLICKS:
            times[name].append(_best_ms(next_click, name, pred, ref, spacing, rng))
        for name in FIRST_CLICKS:
            times[f"first:{name}"].append(_best_ms(first_click, name, ref, spacing, rng))
        fn = np.ascontiguousarray((ref & ~pred)[bounding_box(ref ^ pred)])
        scipy_ms.append(_best_ms(distance_transform_edt, np.pad(fn, 1), sampling=spacing))
    print(f"\n| policy | median ms | median CPU ms | max ms | median < {TARGET_MS:g} ms |")
    print("|---|---|---|---|---|")
    for name, values in times.items():
        median = float(np.median([t.wall for t in values]))
        print(f"| {name} | {median:.1f} | {np.median([t.cpu for t in values]):.1f} | "
              f"{max(t.wall for t in values):.1f} | {'yes' if median < TARGET_MS else 'NO'} |")
    walls = [t.wall for t in scipy_ms]
    print(f"\nreference: scipy distance_transform_edt of the FN crop alone: median {np.median(walls):.1f} ms (CPU "
          f"{np.median([t.cpu for t in scipy_ms]):.1f} ms), max {max(walls):.1f} ms ({len(scipy_ms)} organs)")


if __name__ == "__main__":
    main()
