"""A deterministic synthetic CT set for the demo and for tests: abdomen-like volumes, label maps, predictions.

Real scans cannot ship with the project, so the demo makes its own: an elliptic body with fat and soft tissue,
five labelled organs (ellipsoids and a tube) at anisotropic spacing, Hounsfield-like intensities with noise,
and predictions of pretend models that degrade the reference in different, seeded ways.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from bench.data.io import write_volume
from protocols.errors import BenchError

SPACING = (0.8, 0.8, 2.5)
SHAPE = (112, 96, 36)
CLASSES = {"liver": 1, "spleen": 2, "right kidney": 3, "left kidney": 4, "aorta": 5}
# centre (mm, relative to the volume centre) and radii (mm) of each organ; the aorta is a tube along z.
_ORGANS = {
    "liver": ((-18.0, -4.0, 0.0), (26.0, 20.0, 30.0)),
    "spleen": ((26.0, 10.0, 6.0), (10.0, 8.0, 16.0)),
    "right kidney": ((-16.0, 18.0, -16.0), (7.0, 6.0, 14.0)),
    "left kidney": ((20.0, 18.0, -14.0), (7.0, 6.0, 14.0)),
    "aorta": ((2.0, 10.0, 0.0), (5.0, 5.0, 1000.0)),
}
_HU = {"liver": 60.0, "spleen": 48.0, "right kidney": 150.0, "left kidney": 150.0, "aorta": 190.0}
PRETEND_MODELS = ("careful_net", "coarse_net")


def _grid_mm(shape: tuple[int, ...], spacing: tuple[float, ...]) -> list[np.ndarray]:
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def make_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (image in HU, label map) pair with organs jittered in position and size."""
    x, y, z = _grid_mm(SHAPE, SPACING)
    body = np.broadcast_to((x / 44.0) ** 2 + (y / 36.0) ** 2 <= 1.0, SHAPE)
    inner = np.broadcast_to((x / 40.0) ** 2 + (y / 32.0) ** 2 <= 1.0, SHAPE)
    image = np.where(body, -90.0, -1000.0)
    image[inner] = 35.0
    labels = np.zeros(SHAPE, np.uint8)
    for name, (centre, radii) in _ORGANS.items():
        c = np.asarray(centre) + rng.normal(0.0, 2.0, 3)
        r = np.asarray(radii) * rng.uniform(0.9, 1.1, 3)
        organ = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0
        labels[organ & inner] = CLASSES[name]
        image[organ & inner] = _HU[name]
    image += rng.normal(0.0, 12.0, SHAPE)
    return image.astype(np.float32), labels


def degrade(labels: np.ndarray, model: str, rng: np.random.Generator) -> np.ndarray:
    """A pretend model's prediction: `careful_net` moves boundaries by about a voxel, `coarse_net` predicts
    on a 4x coarser in-plane grid and sometimes misses the smallest organ."""
    prediction = np.zeros_like(labels)
    for value in np.unique(labels[labels > 0]):
        organ = labels == value
        if model == "careful_net":
            organ = ndimage.shift(organ, (*rng.integers(-1, 2, 2), 0), order=0)
            operation = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
            organ = operation(organ)
        elif model == "coarse_net":
            if value in (CLASSES["left kidney"], CLASSES["right kidney"]) and rng.random() < 0.25:
                continue
            coarse = ndimage.uniform_filter(organ.astype(np.float32), (4, 4, 1))[2::4, 2::4] > 0.5
            organ = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)
            organ = ndimage.shift(organ, (rng.integers(-2, 3), rng.integers(-2, 3), 0), order=0)
        else:
            raise BenchError(f"unknown pretend model {model!r}; known: {PRETEND_MODELS}")
        prediction[organ] = value
    return prediction


def write_demo_set(root: Path, n_cases: int = 4, seed: int = 0) -> Path:
    """Write images/, labels/, predictions/<model>/ and classes.json under `root` (same seed, same files)."""
    rng = np.random.default_rng(seed)
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = [-100.0, -80.0, -40.0]
    for index in range(n_cases):
        case = f"demo_{index:03d}"
        image, labels = make_case(rng)
        write_volume(root / "images" / f"{case}_0000.nii.gz", image, affine)
        write_volume(root / "labels" / f"{case}.nii.gz", labels, affine)
        for model in PRETEND_MODELS:
            write_volume(root / "predictions" / model / f"{case}.nii.gz", degrade(labels, model, rng), affine)
    (root / "classes.json").write_text(json.dumps(CLASSES, indent=2))
    return root
