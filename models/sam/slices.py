"""One 2D slice through a SAM-style network: encode once, then decode each prompt round from the cached embedding.

Three input paths, because the published comparisons differ in intensity handling and resizing:

- `sam-api`: SAM's official 2-D API. The slice is windowed to uint8 (given window, else its own min-max),
  replicated to RGB and passed to the package's `SamPredictor.set_image` (longest side resized to the model
  input, SAM's pixel mean/std, zero padding bottom/right).
- `sam-med3d-2d-baseline`: SAM-Med3D's 2D comparison (validation.py `finetune_model_predict2D`, --dim 2):
  per-slice min-max to [0, 255], bilinear resize to the square model input, per-slice z-score with the
  unbiased standard deviation over the three replicated channels. Not SAM's pixel mean/std.
- `sam-med2d`: SAM-Med2D's test.py: uint8 slice as grey RGB, SAM's pixel mean/std, then zero padding to the
  input centred if both sides are smaller than it, else a nearest-neighbour resize to the square input.

Decoding is the same for all: points (x = column, y = row) and boxes mapped into the model frame, the previous
round's low-res mask as `mask_input` (logits for SAM and the baseline; sigmoid probabilities for SAM-Med2D,
as its test.py feeds back), multimask output with the highest predicted IoU kept, bilinear back to the model
input, the slice's extent cut out, bilinear to the slice size, foreground where the logit is > 0.
Clicks are slice pixels scaled into the model frame as SAM's `apply_coords` does (x * new_w / old_w); the
official SAM-Med3D and SAM-Med2D scripts instead sample their clicks on the already resized slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor
from segment_anything.modeling import Sam

PATHS = ("sam-api", "sam-med3d-2d-baseline", "sam-med2d")
# What each path feeds back as the next round's mask_input.
FEEDBACK = {"sam-api": "logits", "sam-med3d-2d-baseline": "logits", "sam-med2d": "probabilities"}


@dataclass(frozen=True, eq=False)
class EncodedSlice:
    """A slice's image embedding and where the slice lies in the model's square input."""

    embedding: torch.Tensor          # (1, C, h, w)
    original_size: tuple[int, int]   # (rows, columns) of the slice
    input_size: tuple[int, int]      # extent of the slice inside the model input (after resizing)
    offset: tuple[int, int]          # (top, left) of that extent (non-zero only for centred padding)
    path: str

    def to_model(self, xy: np.ndarray) -> np.ndarray:
        """Slice pixel coordinates (x, y) -> model-input coordinates, as the path's transform maps them."""
        scale = np.array([self.input_size[1] / self.original_size[1], self.input_size[0] / self.original_size[0]])
        return np.asarray(xy, np.float64) * scale + np.array([self.offset[1], self.offset[0]])

    def box_to_model(self, box_xyxy: np.ndarray) -> np.ndarray:
        """A box (x0, y0, x1, y1), upper edge exclusive, in slice pixels -> the model frame (2, 2). On the
        sam-med2d path a resized slice's box is the box test.py takes of the nearest-resized mask: resized pixel i
        samples slice pixel floor(i * in / out) (OpenGVLab/SAM-Med2D@bfd2b93:utils.py:161-167, DataLoader.py:73-78),
        so the box runs from ceil(x0 * out / in) to ceil(x1 * out / in); elsewhere the corners are scaled."""
        corners = np.asarray(box_xyxy, np.float64).reshape(2, 2)
        if self.path != "sam-med2d" or self.input_size == self.original_size:
            return self.to_model(corners)
        scale = np.array([self.input_size[1] / self.original_size[1], self.input_size[0] / self.original_size[0]])
        return np.ceil(corners * scale - 1e-9)  # exact multiples stay (5 * 0.8 is 4.000000000000001)


@dataclass(frozen=True, eq=False)
class SliceResult:
    """One decoding round: the binary mask in the slice grid, the kept low-res logits (1, 1, h, w), its IoU."""

    mask: np.ndarray
    low_res_logits: torch.Tensor
    iou: float


def to_uint8(plane: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """A slice as uint8: clipped to `window` (low, high) and scaled to [0, 255], or its own min-max when no
    window is given; a uint8 slice without a window is returned as it is."""
    if window is None and plane.dtype == np.uint8:
        return plane
    plane = plane.astype(np.float64)
    low, high = window if window is not None else (plane.min(), plane.max())
    if high <= low:
        return np.zeros(plane.shape, np.uint8)
    return np.round((np.clip(plane, low, high) - low) / (high - low) * 255).astype(np.uint8)


def _check_plane(plane: np.ndarray) -> None:
    if plane.ndim != 2 or min(plane.shape) == 0:
        raise ValueError(f"a SAM slice must be a non-empty 2D array, got shape {plane.shape}")


@torch.no_grad()
def encode(model: Sam, plane: np.ndarray, path: str, window: tuple[float, float] | None = None) -> EncodedSlice:
    """Run the image encoder once on a 2D slice (rows, columns) along `path` (one of PATHS)."""
    _check_plane(plane)
    size = model.image_encoder.img_size
    device = model.device
    original = tuple(int(s) for s in plane.shape)
    if path == "sam-api":
        predictor = SamPredictor(model)
        predictor.set_image(np.repeat(to_uint8(plane, window)[..., None], 3, axis=2), image_format="RGB")
        return EncodedSlice(predictor.features, original, tuple(predictor.input_size), (0, 0), path)
    if path == "sam-med3d-2d-baseline":
        x = torch.as_tensor(plane, dtype=torch.float32, device=device).expand(1, 3, *original)
        x = (x - x.min()) / (x.max() - x.min() + 1e-10) * 255.0
        x = F.interpolate(x, (size, size), mode="bilinear", align_corners=False)
        x = (x - x.mean()) / x.std()
        return EncodedSlice(model.image_encoder(x), original, (size, size), (0, 0), path)
    if path == "sam-med2d":
        x = torch.as_tensor(to_uint8(plane, window), dtype=torch.float32, device=device).expand(1, 3, *original)
        x = (x - model.pixel_mean) / model.pixel_std
        if original[0] < size and original[1] < size:
            top, left = (size - original[0]) // 2, (size - original[1]) // 2
            x = F.pad(x, (left, size - original[1] - left, top, size - original[0] - top))
            return EncodedSlice(model.image_encoder(x), original, original, (top, left), path)
        x = F.interpolate(x, (size, size), mode="nearest")
        return EncodedSlice(model.image_encoder(x), original, (size, size), (0, 0), path)
    raise ValueError(f"unknown slice path {path!r}; known: {', '.join(PATHS)}")


def _low_res_to_slice(model: Sam, low_res: torch.Tensor, encoded: EncodedSlice) -> torch.Tensor:
    size = model.image_encoder.img_size
    up = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
    (top, left), (rows, cols) = encoded.offset, encoded.input_size
    up = up[..., top:top + rows, left:left + cols]
    if (rows, cols) != encoded.original_size:
        up = F.interpolate(up, encoded.original_size, mode="bilinear", align_corners=False)
    return up


@torch.no_grad()
def decode(
    model: Sam,
    encoded: EncodedSlice,
    points_xy: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    box_xyxy: np.ndarray | None = None,
    previous: SliceResult | None = None,
) -> SliceResult:
    """One prompt round on an encoded slice: points (N, 2) as (x, y) with labels 1/0, an optional box
    (x0, y0, x1, y1) in slice pixels, and the previous round's result (its low-res mask is fed back)."""
    device = model.device
    points = None
    if points_xy is not None and len(points_xy):
        coords = torch.as_tensor(encoded.to_model(points_xy), dtype=torch.float32, device=device)[None]
        points = (coords, torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=device)[None])
    boxes = None
    if box_xyxy is not None:
        corners = encoded.box_to_model(box_xyxy)
        boxes = torch.as_tensor(corners.reshape(1, 4), dtype=torch.float32, device=device)
    if points is None and boxes is None:
        raise ValueError("a SAM decoding round needs at least one point or a box")
    mask_input = None
    if previous is not None:
        mask_input = previous.low_res_logits.to(device)
        if FEEDBACK[encoded.path] == "probabilities":
            mask_input = torch.sigmoid(mask_input)
    sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
    low_res, iou = model.mask_decoder(
        image_embeddings=encoded.embedding,
        image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=True,
    )
    best = int(torch.argmax(iou[0]))
    kept = low_res[:, best:best + 1]
    logits = _low_res_to_slice(model, kept, encoded)
    mask = (logits[0, 0] > model.mask_threshold).cpu().numpy()
    return SliceResult(mask, kept, float(iou[0, best]))
