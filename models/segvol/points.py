"""SegVol's point prompts drawn as its own code draws them: `select_points` on the zoom-out label, torch's RNG.

inference_demo.py:66 draws 1 + 3 positive and 3 negative points from the class's 32 x 256 x 256 zoom-out label
(`select_points(label_resize, num_positive_extra=3, num_negative_extra=3)`), and every zoom-in window draws
1 + 4 positives from the zoom-out positives inside it (utils/monai_inferers_utils.py:227-228). The rule
(utils/monai_inferers_utils.py:405-460): positives are values > 0.9, negatives < 0.1, in C order
(`torch.nonzero`); one positive by `torch.randint`, the extra positives and negatives as the first ones of a
`torch.randperm`; an ignore point (-1, label -1) first when there is no positive; ignore points pad the set to
1 + extras. Here the draws use a local `torch.Generator` (never the global one), seeded from the harness's
per-prompt numpy Generator, so the distribution is the official one and a run is reproducible; the same seed
gives the official function's points under `torch.manual_seed(seed)` (tests/goldens/segvol_points.npz).
"""

from __future__ import annotations

import numpy as np
import torch

from models.segvol.preprocess import ROI, Geometry, label_zoom_out, zoom_out_sources
from protocols.prompts import Click

POSITIVE_ABOVE, NEGATIVE_BELOW = 0.9, 0.1


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A local CPU torch generator seeded from a numpy Generator (one draw of it)."""
    return torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))


def select_points(preds: np.ndarray, generator: torch.Generator, *, n_positive_extra: int = 4,
                  n_negative_extra: int = 0, fixed_extra: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) and labels (N,) of 1 positive, 0 negative, -1 ignore, by SegVol's `select_points` rule."""
    values = torch.as_tensor(np.asarray(preds, np.float32))
    positives = torch.nonzero(values > POSITIVE_ABOVE)
    negatives = torch.nonzero(values < NEGATIVE_BELOW)
    points, labels = [], []
    if not len(positives):
        n_positive_extra = 0
        points.append(torch.full((1, 3), -1, dtype=torch.int64))
        labels.append(-1)
    else:
        points.append(positives[torch.randint(len(positives), (1,), generator=generator)])
        labels.append(1)
    if n_positive_extra > 0:
        extra = positives[torch.randperm(len(positives), generator=generator)[:n_positive_extra]]
        points.append(extra)
        labels.extend([1] * len(extra))
    if n_negative_extra > 0:
        extra = negatives[torch.randperm(len(negatives), generator=generator)[:n_negative_extra]]
        points.append(extra)
        labels.extend([0] * len(extra))
    total = 1 + (n_positive_extra + n_negative_extra if fixed_extra is None else fixed_extra)
    padding = max(total - len(labels), 0)
    points.append(torch.full((padding, 3), -1, dtype=torch.int64))
    labels.extend([-1] * padding)
    return torch.cat(points).numpy().astype(np.int64), np.array(labels, dtype=np.int64)


def zoom_out_to_native(point: np.ndarray, geometry: Geometry) -> tuple[int, int, int]:
    """The native voxel (x, y, z) that zoom-out voxel (d, h, w) samples (nearest-exact through the crop and pad):
    the index a stored prompt keeps. `native_to_zoom_out` brings it back to the same zoom-out voxel wherever the
    zoom-in axis is at least as long as the zoom-out one (downsampling); on a shorter axis (fewer than 32 slices
    in the foreground crop) to a zoom-out voxel sampling the same native voxel, one step away at most."""
    out = []
    for index, (before, _), crop, size in zip(point, geometry.pad, geometry.crop, ROI):
        source = int(zoom_out_sources(crop.stop - crop.start, size)[int(index)])
        out.append(source + crop.start - before)
    return tuple(out[::-1])


def draw_points(label: np.ndarray, geometry: Geometry, rng: np.random.Generator, *, n_positive_extra: int,
                n_negative_extra: int) -> tuple[tuple[Click, ...], np.ndarray, np.ndarray]:
    """inference_demo.py's point set for one class, drawn on its zoom-out label: the native clicks they sample
    (ignore points left out), and the zoom-out points and labels as drawn (ignore points included)."""
    coords, labels = select_points(label_zoom_out(label, geometry), torch_generator(rng),
                                   n_positive_extra=n_positive_extra, n_negative_extra=n_negative_extra)
    clicks = tuple(Click(zoom_out_to_native(point, geometry), bool(value)) for point, value in zip(coords, labels)
                   if value >= 0)
    return clicks, coords, labels
