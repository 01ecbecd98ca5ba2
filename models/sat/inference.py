"""SAT's sliding-window inference on a scan already in SAT space (zhaoziheng/SAT@5676be5
evaluate/inference_engine.py:17-137, data/inference_dataset.py:17-55).

Windows of 288 x 288 x 96 at half-window stride (`split_windows`), zero-padded at the end of each axis for
scans smaller than a window, the 1-channel scan repeated to 3 channels. Every window runs the backbone once for
all requested classes (their queries batched); sigmoid probabilities are blended with SAT's float16 Gaussian
(`blending_weights`, top-left corner for clipped windows), divided by the summed weights and thresholded at 0.5.
Under CUDA everything runs in fp16 autocast as in SAT; on a CPU in float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import product

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from models.sat.network import WINDOW, SATNetwork
from models.sat.text import SATTextEncoder, SATTokenizer, modality_code

THRESHOLD = 0.5
Window = tuple[tuple[int, int], ...]


def _axis_windows(length: int, size: int) -> list[tuple[int, int]]:
    """SAT's split of one axis: max(ceil(L / stride) - 1, 1) windows at stride size // 2, the last one moved
    back to end at L (start 0 when the axis is shorter than the window)."""
    stride = size // 2
    spans = []
    for i in range(max(math.ceil(length / stride) - 1, 1)):
        start = i * stride
        spans.append((start, start + size) if start + size <= length else (max(length - size, 0), length))
    return spans


def split_windows(shape: Sequence[int], window: Sequence[int] = WINDOW) -> list[Window]:
    """((start, stop) per axis) of every window over a volume of `shape`, in SAT's order (last axis fastest)."""
    return list(product(*(_axis_windows(length, size) for length, size in zip(shape, window))))


@lru_cache(maxsize=4)
def _gaussian(window: tuple[int, ...]) -> np.ndarray:
    impulse = np.zeros(window)
    impulse[tuple(n // 2 for n in window)] = 1
    gaussian = gaussian_filter(impulse, [n / 8 for n in window], 0, mode="constant", cval=0)
    gaussian = (gaussian / np.max(gaussian) * 10).astype(np.float16)
    gaussian[gaussian == 0] = np.min(gaussian[gaussian != 0])
    gaussian.flags.writeable = False
    return gaussian


def blending_weights(window: Sequence[int] = WINDOW) -> np.ndarray:
    """SAT's Gaussian importance map (float16, peak 10 at the centre i // 2, sigma window / 8, no zeros):
    SAT's `compute_gaussian` exactly (nnU-Net's differs in the last float16 bit of a few voxels). Read-only."""
    return _gaussian(tuple(int(n) for n in window))


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda")


def predict_volume(network: SATNetwork, text_embeddings: torch.Tensor, image: np.ndarray, *, batch_size: int = 2,
                   query_chunk: int = 32) -> np.ndarray:
    """Per-class probabilities [N, H, W, D] (float32) of N text embeddings [N, 768] on a normalised SAT-space
    scan [H, W, D]; `> THRESHOLD` gives SAT's masks. `batch_size` windows per backbone pass (SAT: 2);
    `query_chunk` bounds how many classes' full-resolution logits exist at once (it changes only float rounding).
    `network` runs in the mode it is in: eval, as the model builds and loads it."""
    if image.ndim != 3:
        raise ValueError(f"SAT inference needs a 3D scan, got shape {image.shape}")
    device = next(network.parameters()).device
    window = network.image_size
    gaussian = torch.from_numpy(blending_weights(window).copy()).to(device)
    volume = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    queries = text_embeddings.to(device)
    prediction = torch.zeros((len(queries), *image.shape), dtype=torch.float32)
    weight_sum = torch.zeros(image.shape, dtype=torch.float32)
    windows = split_windows(image.shape, window)
    with torch.inference_mode(), _autocast(device):
        for first in range(0, len(windows), batch_size):
            batch = windows[first:first + batch_size]
            crops = torch.stack([volume[tuple(slice(*span) for span in spans)] for spans in batch])
            pad = [0] * 6
            for axis, (size, target) in enumerate(zip(crops.shape[1:], window)):
                pad[2 * (2 - axis) + 1] = max(target - size, 0)
            crops = F.pad(crops, pad).unsqueeze(1).expand(-1, 3, -1, -1, -1).to(device)
            features = network.encode(crops)
            embeddings = network.mask_embeddings(queries, features)
            for start in range(0, len(queries), query_chunk):
                probabilities = torch.sigmoid(network.logits(embeddings[:, start:start + query_chunk], features))
                for b, spans in enumerate(batch):
                    extent = tuple(slice(0, stop - begin) for begin, stop in spans)
                    target = tuple(slice(*span) for span in spans)
                    weighted = probabilities[(b, slice(None), *extent)] * gaussian[extent]
                    prediction[(slice(start, start + query_chunk), *target)] += weighted.float().cpu()
            for spans in batch:
                extent = tuple(slice(0, stop - begin) for begin, stop in spans)
                weight_sum[tuple(slice(*span) for span in spans)] += gaussian[extent].float().cpu()
    return (prediction / weight_sum).numpy()


def encode_prompts(text_encoder: SATTextEncoder, tokenizer: SATTokenizer, names: Sequence[str],
                   modality: str) -> torch.Tensor:
    """Text embeddings [N, 768] of class names as SAT prompts them: bare lower-case names, the scan's modality."""
    device = next(text_encoder.parameters()).device
    ids, mask = tokenizer([name.lower() for name in names])
    codes = torch.full((len(names),), modality_code(modality), dtype=torch.long)
    with torch.inference_mode(), _autocast(device):
        return text_encoder(ids.to(device), mask.to(device), codes.to(device))
