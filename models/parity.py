"""Parity weights (../shared/README.md): weights that depend on state-dict key names alone, so the official code
and a re-implementation with the same keys get identical weights, and attention, relative positions and
normalisation matter (a faithful rewrite agrees to ~1e-6, a real bug differs by 0.1-1)."""

from __future__ import annotations

import math
import zlib

import torch
from torch import nn


def parity_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The parity value of one floating-point state-dict entry."""
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    r = torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(shape) == 1:
        return 1 + 0.1 * r if key.endswith("weight") else 0.1 * r
    if "rel_pos" in key or "pos_embed" in key:
        return 0.1 * r
    return r / math.sqrt(math.prod(shape) / shape[0])


def parity_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parity values for every floating-point entry of `model.state_dict()`; other entries as constructed."""
    return {key: parity_tensor(key, tuple(value.shape)) if value.is_floating_point() else value
            for key, value in model.state_dict().items()}
