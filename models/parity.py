"""Parity weights: deterministic weights derived from state-dict key names alone (docs/add-a-model.md).

The official code and a re-implementation with the same keys get identical weights, so their outputs can be
compared on a fixed input without the real checkpoints. Unlike a small-std initialisation, these weights make
attention, relative positions and normalisation matter: a faithful rewrite agrees to ~1e-6, a bug by 0.1-1.
"""

from __future__ import annotations

import math
import zlib

import torch


def parity_tensor(key: str, like: torch.Tensor) -> torch.Tensor:
    """The parity weight for one state-dict entry (non-floating entries are returned as they are)."""
    if not like.is_floating_point():
        return like
    shape = tuple(like.shape)
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    r = torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(shape) == 1:
        return 1 + 0.1 * r if key.endswith("weight") else 0.1 * r
    if "rel_pos" in key or "pos_embed" in key:
        return 0.1 * r
    return r / math.sqrt(r.numel() / shape[0])


def parity_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parity weights for every entry of `module.state_dict()`."""
    return {key: parity_tensor(key, value) for key, value in module.state_dict().items()}


def load_parity_weights(module: torch.nn.Module) -> torch.nn.Module:
    """Load parity weights strictly (every key, nothing extra) and return the module."""
    module.load_state_dict(parity_state_dict(module), strict=True)
    return module
