"""Parity weights (../shared/README.md): deterministic weights derived from state-dict key names alone, so the
official code and a re-implementation with the same keys get identical weights and can be compared output for
output. Large enough that attention, positions and normalisation all matter: a faithful rewrite agrees to ~1e-6,
a real bug differs by 0.1-1.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import torch


def parity_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The parity value of one floating-point entry `key` of shape `shape` (float32)."""
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    r = torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(shape) == 1:
        return 1 + 0.1 * r if key.endswith("weight") else 0.1 * r
    if "rel_pos" in key or "pos_embed" in key:
        return 0.1 * r
    return r / math.sqrt(math.prod(shape) / shape[0])


def parity_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every floating-point entry replaced by its parity value (same dtype); other entries kept as constructed."""
    return {key: parity_tensor(key, tuple(value.shape)).to(value.dtype) if value.is_floating_point() else value
            for key, value in state.items()}
