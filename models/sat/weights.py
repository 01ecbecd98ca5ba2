"""Official SAT checkpoints (already read into a dict of tensors) into our modules, strictly.

SAT saves `DDP(model).state_dict()`, so keys carry `module.`. Besides the model's own keys a checkpoint may hold
entries the official inference code also discards: the deep-supervision heads `mid_mask_embed_proj.*` (training
only, SAT:model/build_model.py:38-68 partial load), MPNet's legacy `embeddings.position_ids` buffer (a persistent
buffer in transformers 4.21.3, not in 5.x) and pre-training leftovers containing `atlas_tower` or `temperature`
(SAT:model/text_encoder.py:64-65). Everything else must match key for key and shape for shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

_DISCARDED_PREFIXES = ("mid_mask_embed_proj.",)
_DISCARDED_SUFFIXES = ("embeddings.position_ids",)
_DISCARDED_PARTS = ("atlas_tower", "temperature")


class CheckpointMismatch(ValueError):
    """A checkpoint's keys or shapes do not match the module it is loaded into."""


def _discardable(key: str) -> bool:
    return (key.startswith(_DISCARDED_PREFIXES) or key.endswith(_DISCARDED_SUFFIXES)
            or any(part in key for part in _DISCARDED_PARTS))


def _listing(label: str, keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
    return f"{len(keys)} {label}: {shown}"


def official_state_dict(module: nn.Module, checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's entries renamed and filtered for `module`: `module.` stripped, entries the official
    code discards dropped unless `module` has them. Raises CheckpointMismatch listing missing, unexpected and
    wrongly shaped keys."""
    expected = module.state_dict()
    entries = {key.removeprefix("module."): value for key, value in checkpoint.items()}
    entries = {key: value for key, value in entries.items() if key in expected or not _discardable(key)}
    missing = [key for key in expected if key not in entries]
    unexpected = [key for key in entries if key not in expected]
    shapes = [f"{key} {list(entries[key].shape)} (model {list(value.shape)})" for key, value in expected.items()
              if key in entries and tuple(entries[key].shape) != tuple(value.shape)]
    problems = [_listing(label, keys) for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("with another shape", shapes)) if keys]
    if problems:
        raise CheckpointMismatch(f"checkpoint does not fit {type(module).__name__}: " + "; ".join(problems))
    return entries


def load_official(module: nn.Module, checkpoint: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load an official-layout state dict into `module` strictly (see `official_state_dict`); returns `module`."""
    module.load_state_dict(official_state_dict(module, checkpoint), strict=True)
    return module
