"""Build SAM ViT-B/L/H with the official `segment-anything` package and load a state dict strictly.

The package is the reference implementation (facebookresearch/segment-anything; PyPI 1.0): we build its
networks without a checkpoint (the package's own loader unpickles everything) and load tensors that
`models.checkpoints` has read safely. `device="meta"` builds without allocating weights (size and key checks).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam

VARIANTS = ("vit_b", "vit_l", "vit_h")


def build_sam(variant: str, *, device: str | torch.device = "cpu") -> Sam:
    """The package's SAM `variant` (1024 input, eval mode) with its own random initialisation."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown SAM variant {variant!r}; known: {', '.join(VARIANTS)}")
    with torch.device(device):
        return sam_model_registry[variant](checkpoint=None).eval()


def load_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict"):
    """Load every key of `model` from `state_dict` and nothing else; a mismatch names the keys."""
    expected, given = set(model.state_dict()), set(state_dict)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise ValueError(f"{source}: {len(missing)} missing keys {missing[:5]}, "
                         f"{len(unexpected)} unexpected keys {unexpected[:5]}")
    model.load_state_dict(state_dict, strict=True)
    return model


def sam_from_state_dict(variant: str, state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict") -> Sam:
    """SAM `variant` with the weights of an official checkpoint (`sam_vit_b_01ec64.pth` is a raw state dict,
    no prefix)."""
    return load_strict(build_sam(variant), state_dict, source=source)
