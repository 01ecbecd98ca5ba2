"""SegVol's zoom-out-zoom-in inference (inference_demo.py, utils/monai_inferers_utils.py), step by step.

Zoom-out: the whole scan resized to 32 x 256 x 256, one forward, logits back to the zoom-in grid by (legacy)
nearest interpolation. Zoom-in: the region where sigmoid > 0.5, padded towards the window size, scanned by
32 x 256 x 256 windows (overlap 0.5, uniform blending); each window gets its own prompts: the box of the
zoom-out prediction inside it (the user's box when one window covers the region), points drawn from the user's
positive points inside it (`points.select_points`, torch's RNG through a local generator) plus that box, and
the text in every window. Its logits replace the zoom-out logits
inside the region. Final mask: sigmoid > 0.5, mapped back to the native grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.data.utils import dense_patch_slices

from models.segvol.preprocess import ROI, Preprocessed, to_native
from models.segvol.text import tokenize
from models.segvol.points import select_points

OVERLAP = 0.5
TEXT_BATCH = 16  # classes decoded together (each needs ~60 MB of activations)


@dataclass(frozen=True, eq=False)
class SegVolPrompt:
    """One target's prompts on the zoom-out grid, (D, H, W) voxel indices: text (class name), box
    (d0, h0, w0, d1, h1, w1) inclusive, points (N, 3) with labels (N,) 1 / 0 / -1."""

    text: str | None = None
    box: np.ndarray | None = None
    points: np.ndarray | None = None
    point_labels: np.ndarray | None = None

    def __post_init__(self):
        if self.text is None and self.box is None and self.points is None:
            raise ValueError("a SegVol prompt needs a text, a box or points")
        if (self.points is None) != (self.point_labels is None):
            raise ValueError("points need labels (1 positive, 0 negative, -1 ignore)")


def official_prompt(label: np.ndarray, name: str, kinds: str,
                    generator: torch.Generator | None = None) -> SegVolPrompt:
    """inference_demo.py's prompts for one class from its zoom-out label: `kinds` joins "text", "box", "point"
    with "+" (SegVol Table 1: text, box, point, box+text, point+text). Points: one random positive, 3 more
    positives and 3 negatives (`select_points(..., 3, 3)`); box: the label's inclusive bounding box."""
    chosen = set(kinds.split("+"))
    if not chosen or chosen - {"text", "box", "point"}:
        raise ValueError(f"SegVol prompt kinds are text, box, point joined by '+', got {kinds!r}")
    points = labels = None
    if "point" in chosen:
        if generator is None:
            raise ValueError("point prompts need a torch.Generator")
        points, labels = select_points(label > 0, generator, n_positive_extra=3, n_negative_extra=3)
    return SegVolPrompt(text=name if "text" in chosen else None, box=segvol_box(label) if "box" in chosen else None,
                        points=points, point_labels=labels)


def segvol_box(mask: np.ndarray) -> np.ndarray:
    """SegVol's `generate_box`: (min..., max...) inclusive voxel indices of a mask, all -1 when it is empty."""
    hits = np.nonzero(mask)
    if not hits[0].size:
        return np.full(2 * mask.ndim, -1, dtype=np.int64)
    return np.array([h.min() for h in hits] + [h.max() for h in hits], dtype=np.int64)


def box_cube(box: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """SegVol's `build_binary_cube`: the box's voxels (inclusive bounds) set in a zero volume."""
    cube = np.zeros(shape, dtype=np.float32)
    lo, hi = np.asarray(box[:3], int), np.asarray(box[3:], int)
    cube[tuple(slice(a, b + 1) for a, b in zip(lo, hi))] = 1
    return cube


def positive_point_map(points: np.ndarray, labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """SegVol's `build_binary_points`: the positive points set in a zero volume."""
    out = np.zeros(shape, dtype=np.float32)
    positive = np.asarray(points)[np.asarray(labels) == 1].astype(int)
    out[tuple(positive.T)] = 1
    return out


def logits_to_roi(logits: torch.Tensor, window: tuple[int, ...] = ROI) -> tuple[slice, ...] | None:
    """SegVol's `logits2roi_coor`: the box of sigmoid > 0.5, each side widened by half the shortfall to the window
    (floor), clipped to the volume; None when nothing is predicted."""
    hits = torch.nonzero(torch.sigmoid(logits) > 0.5)
    if not hits.shape[0]:
        return None
    roi = []
    for axis, (size, win) in enumerate(zip(logits.shape, window)):
        lo, hi = int(hits[:, axis].min()), int(hits[:, axis].max())
        widen = max(0, win - (hi - lo + 1)) // 2
        roi.append(slice(max(0, lo - widen), min(size, hi + widen + 1)))
    return tuple(roi)


def scan_interval(image_size: tuple[int, ...], roi: tuple[int, ...], overlap: float = OVERLAP) -> tuple[int, ...]:
    """Window step per axis: the window itself where it fits exactly, else int(window * (1 - overlap)) (>= 1)."""
    return tuple(r if r == s else max(int(r * (1 - overlap)), 1) for s, r in zip(image_size, roi))


def window_slices(image_size: tuple[int, ...], roi: tuple[int, ...] = ROI,
                  overlap: float = OVERLAP) -> list[tuple[slice, ...]]:
    """The windows of the scan in MONAI's order (`dense_patch_slices`; the last window on an axis ends flush)."""
    return [tuple(s) for s in dense_patch_slices(image_size, roi, scan_interval(image_size, roi, overlap))]


def _pad_widths(shape: tuple[int, ...], roi: tuple[int, ...]) -> list[tuple[int, int]]:
    return [(max(r - n, 0) // 2, max(r - n, 0) - max(r - n, 0) // 2) for n, r in zip(shape, roi)]


def _device(network) -> torch.device:
    return next(network.parameters()).device


def _as_batch(prompt: SegVolPrompt, device) -> tuple[torch.Tensor | None, tuple | None]:
    boxes = None if prompt.box is None else torch.as_tensor(np.asarray(prompt.box)[None], dtype=torch.float32,
                                                            device=device)
    points = None
    if prompt.points is not None:
        points = (torch.as_tensor(np.asarray(prompt.points)[None], dtype=torch.float32, device=device),
                  torch.as_tensor(np.asarray(prompt.point_labels)[None], dtype=torch.float32, device=device))
    return boxes, points


def zoom_in(network, image: torch.Tensor, logits: torch.Tensor, prompt: SegVolPrompt, text_embedding,
            prompt_map: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    """SegVol's `sliding_window_inference` on the cropped region `image` (D, H, W) with the zoom-out `logits` of
    that region and the user's prompt map (box cube or positive points, on the region) -> logits of the region."""
    device = _device(network)
    shape = tuple(image.shape)
    pad = _pad_widths(shape, ROI)
    flat_pad = [w for pair in reversed(pad) for w in pair]
    padded = F.pad(image, flat_pad)
    global_preds = F.pad((torch.sigmoid(logits) > 0.5).float(), flat_pad)
    size = tuple(padded.shape)
    windows = window_slices(size, ROI)
    out = torch.zeros(size)
    count = torch.zeros(size)
    for window in windows:
        boxes, points = None, None
        if prompt.points is not None:  # SegVol slices the unpadded map with the padded grid's window
            coords, labels = select_points(prompt_map[window].numpy(), generator)
            points = (torch.as_tensor(coords[None], dtype=torch.float32, device=device),
                      torch.as_tensor(labels[None], dtype=torch.float32, device=device))
            boxes = segvol_box(global_preds[window].numpy() > 0)
        elif prompt.box is not None:
            boxes = segvol_box((prompt_map[window] if len(windows) == 1 else global_preds[window]).numpy() > 0)
        if boxes is not None:
            boxes = torch.as_tensor(boxes[None], dtype=torch.float32, device=device)
        with torch.no_grad():
            window_logits = network(padded[window][None, None].to(device), text_embedding, boxes, points)
        out[window] += window_logits[0, 0].float().cpu()
        count[window] += 1
    return (out / count)[tuple(slice(a, a + n) for (a, _), n in zip(pad, shape))]


def _zoom_out(network, embedding, prompts: list[SegVolPrompt], text_embeddings: dict) -> list[torch.Tensor]:
    """Zoom-out logits (1, 32, 256, 256) per prompt; text-only prompts go through the decoder as one batch."""
    device = embedding.device
    out: list[torch.Tensor | None] = [None] * len(prompts)
    text_only = [i for i, p in enumerate(prompts) if p.box is None and p.points is None]
    for start in range(0, len(text_only), TEXT_BATCH):
        chunk = text_only[start:start + TEXT_BATCH]
        batch = torch.cat([text_embeddings[prompts[i].text] for i in chunk])
        for i, logits in zip(chunk, network.decode(embedding, batch)):
            out[i] = logits
    for i, prompt in enumerate(prompts):
        if out[i] is None:
            boxes, points = _as_batch(prompt, device)
            out[i] = network.decode(embedding, text_embeddings.get(prompt.text), boxes, points)[0]
    return out


def zoom_out_embedding(network, volume: Preprocessed) -> torch.Tensor:
    """The image embedding of the zoom-out scan (1, 768, 8, 16, 16): one encoder forward, shared by every prompt."""
    with torch.no_grad():
        return network.encode_image(torch.from_numpy(volume.zoom_out)[None, None].to(_device(network)))


def segment_volume(network, volume: Preprocessed, prompts: list[SegVolPrompt], *, tokenizer=None,
                   use_zoom_in: bool = True, generator: torch.Generator | None = None,
                   embedding: torch.Tensor | None = None) -> list[np.ndarray]:
    """One boolean mask on the native grid per prompt. The zoom-out image embedding (`zoom_out_embedding`, computed
    here unless given) serves all prompts; texts are encoded in one batch. Zoom-in points are drawn with
    `generator` (a local torch.Generator)."""
    if use_zoom_in and any(p.box is not None and p.points is not None for p in prompts):
        raise ValueError("SegVol's zoom-in takes a box or points, not both")
    if any(p.points is not None for p in prompts) and use_zoom_in and generator is None:
        raise ValueError("point prompts with zoom-in need a torch.Generator")
    device = _device(network)
    texts = sorted({p.text for p in prompts if p.text is not None})
    text_embeddings = {}
    if texts:
        if tokenizer is None:
            raise ValueError("text prompts need the CLIP tokenizer")
        ids, mask = tokenize(tokenizer, texts)
        with torch.no_grad():
            embedded = network.encode_text(ids.to(device), mask.to(device))
        text_embeddings = {t: embedded[i:i + 1] for i, t in enumerate(texts)}
    image = torch.from_numpy(volume.image)
    shape = tuple(image.shape)
    if embedding is None:
        embedding = zoom_out_embedding(network, volume)
    with torch.no_grad():
        zoomed_out = _zoom_out(network, embedding, prompts, text_embeddings)
    masks = []
    for prompt, low in zip(prompts, zoomed_out):
        text_embedding = text_embeddings.get(prompt.text)
        logits = F.interpolate(low[None].float().cpu(), size=shape, mode="nearest")[0, 0]
        roi = logits_to_roi(logits) if use_zoom_in else None
        if roi is not None:
            prompt_map = None
            if prompt.points is not None:
                prompt_map = positive_point_map(prompt.points, prompt.point_labels, ROI)
            elif prompt.box is not None:
                prompt_map = box_cube(prompt.box, ROI)
            if prompt_map is not None:
                prompt_map = F.interpolate(torch.from_numpy(prompt_map)[None, None], size=shape, mode="nearest")[0, 0]
                prompt_map = prompt_map[roi]
            logits[roi] = zoom_in(network, image[roi], logits[roi], prompt, text_embedding, prompt_map, generator)
        masks.append(to_native((torch.sigmoid(logits) > 0.5).numpy(), volume.geometry))
    return masks

