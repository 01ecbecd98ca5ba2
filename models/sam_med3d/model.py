"""SAM-Med3D and SAM-Med3D-turbo behind the model interface: points only, the crop made by the model itself, the
image encoder once per (case, target), the prompt encoder and mask decoder once per click.

The image comes on the native grid (`input_grid="native"`), and the model makes its 128^3 view of it:
- an image already on the model's grid (128^3, 1.5 mm, RAS: a protocol's crop space, `sam-med3d` and
  `sam-med3d-paper`, which centre it on the label as the official scripts do) is taken as it is, z-normalised;
- any other image gets the official TorchIO chain (`preprocess.crop_around_point`) centred on the target's first
  positive click, not on the label: no oracle localisation (the `harness` preset and `bench clicks`).
The crop, its embedding and the last low-res logits live in `state[target name]`; every call runs one decoder
pass with the points it is given (all so far, or the newest: the protocol's `feed`) and the previous logits
(zeros through mask_downscaling on the first pass), and the 128^3 mask goes back to the image's grid. Phases
(`models.base.phase`): preprocess = the crop and the clicks' crop positions, model = the encoder (first call of
a target) and the decoder pass, postprocess = the mask back to the image's grid.

Decided where the official code has no answer (docs/reproducing/sam-med3d.md says the same):
- no positive click yet (nothing to centre on; the official script answers an empty target with zeros): an
  empty mask, and no crop is made until a positive click comes;
- clicks that fall outside the crop are left out (the official clicks are drawn inside it; moving them to the
  border would invent a click); when none of a call's clicks is inside, the previous mask is returned unchanged
  and the logits are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.base import Capabilities, CheckpointInfo, Image, Model, Target, phase
from models.checkpoints import CheckpointLayout
from models.sam_med3d.inference import crop_positions, encode, predict_click
from models.sam_med3d.network import build_sam_med3d
from models.sam_med3d.preprocess import Crop, as_crop, crop_around_point, on_model_grid, to_native

_DOWNLOAD = "https://github.com/uni-medical/SAM-Med3D#-checkpoint"


@dataclass(eq=False)
class TargetState:
    """One target of one image: the crop and its embedding (made once), the last logits and native mask."""

    crop: Crop
    embedding: torch.Tensor
    low_res: torch.Tensor | None = None
    mask: np.ndarray | None = None
    logits: np.ndarray | None = None


class SamMed3DModel(Model):
    """The `vit_b_ori` network (`network`, official keys) with SAM-Med3D's crop, click and feedback protocol."""

    version = "1"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"points"}), accumulates_clicks=False,
                                previous_logits=True, input_grid="native", logit_masks=True,
                                devices=frozenset({"cpu", "cuda"}), reports_phases=True)
    checkpoint_layout = CheckpointLayout(key="model_state_dict")

    def __init__(self, *, name: str, checkpoint_file: str):
        self.name = name
        self.network = build_sam_med3d()
        self.checkpoint_info = CheckpointInfo(files=(checkpoint_file,), download=_DOWNLOAD)

    def crop(self, image: Image, anchor: tuple[int, ...]) -> Crop:
        """The model's 128^3 view: the image itself when it is on the model's grid, else the TorchIO crop
        centred on `anchor` (a native voxel index)."""
        if on_model_grid(image.shape, image.affine):
            return as_crop(image.array, image.affine)
        return crop_around_point(image.array, image.affine, anchor)

    def _segment(self, image: Image, targets: Sequence[Target], state: dict[str, Any]) -> Mapping[str, np.ndarray]:
        if image.channels != 1:
            raise ValueError(f"model {self.name!r} takes one-channel images, got {image.channels} channels")
        return {target.name: self._segment_target(image, target, state) for target in targets}

    def _segment_target(self, image: Image, target: Target, state: dict[str, Any]) -> np.ndarray:
        clicks = target.prompt.points
        memory: TargetState | None = state.get(target.name)
        if memory is None:
            anchor = next((click.point for click in clicks if click.positive), None)
            if anchor is None:
                return np.zeros(image.shape, bool)
            with phase("preprocess"):
                crop = self.crop(image, anchor)
            with phase("model"):
                memory = state[target.name] = TargetState(crop, encode(self.network, crop))
        with phase("preprocess"):
            positions, inside = crop_positions(np.array([c.point for c in clicks], float).reshape(-1, 3),
                                               memory.crop)
        if not inside.any():
            return memory.mask if memory.mask is not None else np.zeros(image.shape, bool)
        labels = np.array([int(c.positive) for c in clicks])[inside]
        with phase("model"):
            result = predict_click(self.network, memory.embedding, positions[inside], labels, memory.low_res)
        memory.low_res = result.low_res
        memory.logits = result.crop_logits
        with phase("postprocess"):
            memory.mask = to_native(result.crop_mask, memory.crop)
        return memory.mask

    def logit_mask(self, image: Image, name: str, state: dict[str, Any], threshold: float = 0.5) -> np.ndarray:
        """The last prediction as upsampled logits > `threshold` (not sigmoid > 0.5): the mask the paper-era
        click generator makes errors from (SAM-Med3D@b5927c7 validation.py:274 hands the upsampled logits to
        utils/click_method.py:172 and :227, `prev_seg > 0.5`); empty before the first prediction."""
        memory: TargetState | None = state.get(name)
        if memory is None or memory.logits is None:
            return np.zeros(image.shape, bool)
        return to_native(memory.logits > threshold, memory.crop)


def sam_med3d() -> SamMed3DModel:
    """SAM-Med3D (`sam_med3d.pth`, the original release); weights random until `load_checkpoint`."""
    return SamMed3DModel(name="sam-med3d", checkpoint_file="sam_med3d.pth")


def sam_med3d_turbo() -> SamMed3DModel:
    """SAM-Med3D-turbo (`sam_med3d_turbo.pth`, fine-tuned on 44 more datasets; the same architecture)."""
    return SamMed3DModel(name="sam-med3d-turbo", checkpoint_file="sam_med3d_turbo.pth")
