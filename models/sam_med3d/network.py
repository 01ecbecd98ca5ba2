"""SAM-Med3D `vit_b_ori` (SAM-Med3D and SAM-Med3D-turbo share it): the three official submodules and strict
loading of an official `model_state_dict` (keys without a prefix).

`build_sam_med3d()` works under `with torch.device("meta")` for size checks without allocating 400 MB.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from models.sam_med3d.image_encoder import ImageEncoderViT3D
from models.sam_med3d.mask_decoder import MaskDecoder3D
from models.sam_med3d.prompt_encoder import PromptEncoder3D

INPUT_SIZE = 128
LOW_RES_SIZE = 32
PARAMETER_COUNT = 100_509_232  # official vit_b_ori (models_spec.md section 3.1)


class SamMed3D(nn.Module):
    """Container with the official submodule names; the official code calls the submodules directly."""

    def __init__(self):
        super().__init__()
        self.image_encoder = ImageEncoderViT3D()
        self.prompt_encoder = PromptEncoder3D()
        self.mask_decoder = MaskDecoder3D()


def build_sam_med3d() -> SamMed3D:
    """The `vit_b_ori` network in eval mode (randomly initialised; load weights with `load_official_weights`)."""
    return SamMed3D().eval()


def official_state_dict(checkpoint: Mapping) -> Mapping[str, torch.Tensor]:
    """The model tensors of an official checkpoint (`{'model_state_dict': ..., 'args': ..., ...}`) or a bare
    state dict."""
    state = checkpoint.get("model_state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise TypeError(f"'model_state_dict' is a {type(state).__name__}, not a mapping of tensors")
    return state


def load_official_weights(model: SamMed3D, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load an official-layout state dict strictly; missing, unexpected or mis-shaped keys raise one
    ValueError that lists them (a `module.` prefix is named as the likely cause)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mis_shaped = sorted(f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
                        for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape)
    if missing or unexpected or mis_shaped:
        problems = [f"{label} ({len(keys)}): {', '.join(keys[:8])}{', ...' if len(keys) > 8 else ''}"
                    for label, keys in (("missing", missing), ("unexpected", unexpected),
                                        ("wrong shape", mis_shaped)) if keys]
        hint = ("; keys start with 'module.': strip the DDP prefix"
                if unexpected and all(k.startswith("module.") for k in unexpected) else "")
        raise ValueError("not a SAM-Med3D vit_b_ori state dict: " + "; ".join(problems) + hint)
    model.load_state_dict(state_dict, strict=True, assign=any(p.is_meta for p in model.parameters()))
