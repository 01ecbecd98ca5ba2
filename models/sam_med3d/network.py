"""SAM-Med3D `vit_b_ori` (SAM-Med3D and SAM-Med3D-turbo share it): the three official submodules, with the
official state-dict keys (an official checkpoint's `model_state_dict`, keys without a prefix, loads strictly in
`SamMed3DModel.checkpoint_layout`).

`build_sam_med3d()` works under `with torch.device("meta")` for size checks without allocating 400 MB.
"""

from __future__ import annotations

from torch import nn

from models.sam_med3d.image_encoder import ImageEncoderViT3D
from models.sam_med3d.mask_decoder import MaskDecoder3D
from models.sam_med3d.prompt_encoder import PromptEncoder3D

LOW_RES_SIZE = 32
PARAMETER_COUNT = 100_509_232  # official vit_b_ori (uni-medical/SAM-Med3D@f3de1fa segment_anything/build_sam3D.py:48)


class SamMed3D(nn.Module):
    """Container with the official submodule names; the official code calls the submodules directly."""

    def __init__(self):
        super().__init__()
        self.image_encoder = ImageEncoderViT3D()
        self.prompt_encoder = PromptEncoder3D()
        self.mask_decoder = MaskDecoder3D()


def build_sam_med3d() -> SamMed3D:
    """The `vit_b_ori` network in eval mode (randomly initialised; weights by `models.checkpoints`)."""
    return SamMed3D().eval()
