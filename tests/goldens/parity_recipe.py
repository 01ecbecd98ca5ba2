"""The parity recipe of docs/add-a-model.md, shared by the golden scripts (which import it from their own folder,
so the goldens depend on no project code): weights derived from each state_dict key's name alone."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import torch


def parity_weights(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each floating-point tensor drawn from a generator seeded by the CRC-32 of its key: vectors 1 + 0.1 r
    (weights) or 0.1 r (biases), relative-position and position tables 0.1 r (so they matter), matrices
    r / sqrt(fan-in); other tensors (buffers of integers) kept."""
    weights = {}
    for key, value in state.items():
        if not value.is_floating_point():
            weights[key] = value
            continue
        shape = tuple(value.shape)
        r = torch.randn(shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8"))),
                        dtype=torch.float32)
        if len(shape) == 1:
            weights[key] = 1 + 0.1 * r if key.endswith("weight") else 0.1 * r
        elif "rel_pos" in key or "pos_embed" in key:
            weights[key] = 0.1 * r
        else:
            weights[key] = r / math.sqrt(math.prod(shape) / shape[0])
    return weights
