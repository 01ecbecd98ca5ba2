"""A perturbation oracle for pipeline tests: the reference mask, degraded, then repaired around each click.

It declares the `reference` prompt kind, so the loop hands it the ground truth; no real model may declare
it. The degraded start is the reference eroded or dilated by whole voxels and shifted by `shift` voxels
along directions drawn from a generator seeded by `seed`; every click then restores the reference inside a
ball of `repair_mm` around it. Its curves therefore rise with clicks by construction, at a controlled rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion

from models.base import Capabilities, Image, Model, ModelOptionError, Target
from models.reference.clicks import nearest_click_distance


def degrade(reference: np.ndarray, *, erosion: int, dilation: int, shift: int,
            rng: np.random.Generator) -> np.ndarray:
    """The reference eroded `erosion` times, dilated `dilation` times, then moved by `shift` voxels per axis
    (each axis's sign drawn from `rng`; voxels moved in from outside are background)."""
    mask = binary_erosion(reference, iterations=erosion) if erosion else reference.copy()
    mask = binary_dilation(mask, iterations=dilation) if dilation else mask
    moved = np.zeros_like(mask)
    source, target = [], []
    for size, sign in zip(mask.shape, rng.choice([-1, 1], size=mask.ndim)):
        step = int(np.clip(sign * shift, -size, size))
        source.append(slice(max(-step, 0), size - max(step, 0)))
        target.append(slice(max(step, 0), size - max(-step, 0)))
    moved[tuple(target)] = mask[tuple(source)]
    return moved


class PerturbationOracle(Model):
    """Degraded reference, repaired within `repair_mm` of every click (all clicks so far). It accepts text and
    boxes too (and ignores them), so every protocol can be run end to end without weights."""

    name = "oracle"
    version = "1"
    capabilities = Capabilities(ndims=frozenset({2, 3}), prompts=frozenset({"points", "boxes", "text", "reference"}),
                                accumulates_clicks=True)

    def __init__(self, *, erosion: int = 0, dilation: int = 0, shift: int = 2, repair_mm: float = 10.0,
                 seed: int = 0):
        if min(erosion, dilation, shift) < 0 or repair_mm < 0:
            raise ModelOptionError("erosion, dilation, shift and repair_mm must be >= 0")
        self.erosion, self.dilation, self.shift = erosion, dilation, shift
        self.repair_mm = repair_mm
        self.seed = seed

    def _segment(self, image: Image, targets: Sequence[Target], state: dict[str, Any]) -> Mapping[str, np.ndarray]:
        masks = {}
        for target in targets:
            prompt = target.prompt
            if prompt.reference is None:
                raise ModelOptionError(f"model {self.name!r} needs the reference prompt (target {target.name!r})")
            reference = prompt.reference.astype(bool)
            if target.name not in state:  # the degraded start of this target, drawn once per image
                state[target.name] = degrade(reference, erosion=self.erosion, dilation=self.dilation,
                                             shift=self.shift, rng=np.random.default_rng(self.seed))
            repaired = nearest_click_distance(reference.shape, image.spacing, prompt.points) <= self.repair_mm
            masks[target.name] = np.where(repaired, reference, state[target.name])
        return masks
