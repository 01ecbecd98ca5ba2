"""SAM-Med3D click by click: the encoder runs once per crop, the prompt encoder and decoder once per click.

Official loop (SAM-Med3D utils/infer_utils.py:91-181): embedding = image_encoder(crop); the first pass feeds a
zero 32^3 previous mask through mask_downscaling (not the no-mask embedding); each pass gives
mask_decoder(..., multimask_output=False) low-res logits, which become the next pass's mask input; the crop mask
is sigmoid(trilinear(low-res -> 128^3)) > 0.5. Which points to pass (all so far, as today's script; only the
newest, as the paper-era validation) is the protocol's choice, not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.sam_med3d.mask_decoder import upscale_logits
from models.sam_med3d.network import LOW_RES_SIZE, SamMed3D
from models.sam_med3d.preprocess import Crop, native_to_crop, to_native


@dataclass(frozen=True, eq=False)
class ClickResult:
    """low_res: (1, 1, 32, 32, 32) logits (the next click's mask input); crop_mask: bool 128^3 (sigmoid > 0.5);
    crop_logits: the upsampled 128^3 logits (float32; the paper-era click generator thresholds them at 0.5);
    native: bool mask on the native grid (None when not asked for); iou: the predicted IoU."""

    low_res: torch.Tensor
    crop_mask: np.ndarray
    crop_logits: np.ndarray
    native: np.ndarray | None
    iou: float


def zero_low_res() -> torch.Tensor:
    """The first pass's previous mask: zeros, fed through mask_downscaling as the official loop does."""
    return torch.zeros(1, 1, LOW_RES_SIZE, LOW_RES_SIZE, LOW_RES_SIZE)


@torch.no_grad()
def encode(model: SamMed3D, crop: Crop) -> torch.Tensor:
    """The (1, 384, 8, 8, 8) image embedding of a crop: once per case (and class, when crops differ)."""
    device = next(model.parameters()).device
    return model.image_encoder(crop.image.to(device))


@torch.no_grad()
def predict_click(model: SamMed3D, embedding: torch.Tensor, points: np.ndarray, labels: np.ndarray,
                  previous_low_res: torch.Tensor | None, crop: Crop | None = None) -> ClickResult:
    """One decoder pass.

    points: (N, 3) crop voxel coordinates in the crop's array order (what `native_to_crop` gives; the official
    clicks are integer indices), labels: (N,) 1 positive / 0 negative; previous_low_res: the last pass's
    logits, or None on the first pass (zeros). With `crop`, the mask is also mapped to the native grid.
    """
    device = embedding.device
    points = np.asarray(points, np.float32).reshape(-1, 3)
    labels = np.asarray(labels).reshape(-1)
    if len(points) == 0 or len(points) != len(labels) or not set(labels.tolist()) <= {0, 1}:
        raise ValueError(f"need N >= 1 points with N labels in {{0, 1}}, got {len(points)} points, labels {labels}")
    previous = zero_low_res() if previous_low_res is None else previous_low_res
    sparse, dense = model.prompt_encoder(
        points=(torch.from_numpy(points)[None].to(device), torch.from_numpy(labels.astype(np.int64))[None].to(device)),
        boxes=None, masks=previous.to(device))
    low_res, iou = model.mask_decoder(embedding, model.prompt_encoder.get_dense_pe(), sparse, dense,
                                      multimask_output=False)
    logits = upscale_logits(low_res)
    crop_mask = (torch.sigmoid(logits) > 0.5)[0, 0].cpu().numpy()
    native = to_native(crop_mask, crop) if crop is not None else None
    return ClickResult(low_res=low_res.cpu(), crop_mask=crop_mask, crop_logits=logits[0, 0].float().cpu().numpy(),
                       native=native, iou=float(iou[0, 0]))


def crop_positions(points: np.ndarray, crop: Crop) -> tuple[np.ndarray, np.ndarray]:
    """Native voxel indices (N, 3) -> the nearest crop voxels (N, 3, float) and whether each lies in the crop."""
    positions = np.rint(native_to_crop(points, crop))
    return positions, np.all((positions >= 0) & (positions < crop.image.shape[-1]), axis=1)
