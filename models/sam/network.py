"""Build SAM ViT-B/L/H with the official `segment-anything` package.

The package is the reference implementation (facebookresearch/segment-anything; PyPI 1.0): we build its
networks without a checkpoint (the package's own loader unpickles everything) and `models.checkpoints` loads the
tensors it has read safely (`sam_vit_b_01ec64.pth` is a bare state dict, no prefix). `device="meta"` builds
without allocating weights (size and key checks).
"""

from __future__ import annotations

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam
from models.base import ModelOptionError

VARIANTS = ("vit_b", "vit_l", "vit_h")


def build_sam(variant: str, *, device: str | torch.device = "cpu") -> Sam:
    """The package's SAM `variant` (1024 input, eval mode) with its own random initialisation."""
    if variant not in VARIANTS:
        raise ModelOptionError(f"unknown SAM variant {variant!r}; known: {', '.join(VARIANTS)}")
    with torch.device(device):
        return sam_model_registry[variant](checkpoint=None).eval()
