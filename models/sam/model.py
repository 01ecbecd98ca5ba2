"""SAM-style networks (SAM ViT-B/L/H, SAM-Med2D) behind the model interface, one 2D slice per call.

The image is encoded on the first call for a slice and the embedding kept in the state, so later clicks on that
slice run only the prompt encoder and mask decoder. Every call gets all clicks so far (as SAM-Med3D's 2D
baseline and SAM-Med2D's test.py feed them) plus the previous round's low-res mask. Points are voxel indices
(row, column), turned into SAM's (x, y); a box (inclusive pixel indices, as every `Box`) becomes the continuous
corners (x0, y0, x1 + 1, y1 + 1), SAM-Med2D's exclusive-max convention (regionprops, OpenGVLab/SAM-Med2D@bfd2b93:
utils.py:28-32, 49, 65): `protocols.prompts_boxes.largest_component_box` gives exactly its test-time box. SAM
decodes at most one box per round. 3D volumes go through `models.adapters.SliceWise`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from segment_anything.modeling import Sam

from models.base import Capabilities, Image, Model, ModelOptionError, Target, UnsupportedPrompt
from models.checkpoints import CheckpointLayout, load_state_dict
from models.sam.network import build_sam
from models.sam.slices import PATHS, EncodedSlice, SliceResult, decode, encode
from models.sam_med2d.network import LAYOUT as SAM_MED2D_LAYOUT
from models.sam_med2d.network import build_sam_med2d


@dataclass(frozen=True, eq=False)
class SliceState:
    encoded: EncodedSlice
    result: SliceResult


class SamSlices(Model):
    """`network` on one 2D slice along input path `path` (see models.sam.slices); `window` for uint8 paths;
    `checkpoint_layout` of the network's official checkpoint."""

    capabilities = Capabilities(ndims=frozenset({2}), prompts=frozenset({"points", "boxes"}), accumulates_clicks=True,
                                previous_logits=True, devices=frozenset({"cpu", "cuda"}))

    def __init__(self, *, network: Sam, path: str, name: str, window: tuple[float, float] | None = None,
                 checkpoint_layout: CheckpointLayout = CheckpointLayout()):
        if path not in PATHS:
            raise ModelOptionError(f"unknown slice path {path!r}; known: {', '.join(PATHS)}")
        self.network, self.path, self.name, self.window = network, path, name, window
        self.checkpoint_layout = checkpoint_layout

    def _segment(self, image: Image, targets: Sequence[Target], state: dict[str, Any]) -> dict[str, np.ndarray]:
        if "_encoded" not in state:  # one encoder pass per slice, shared by its targets
            state["_encoded"] = encode(self.network, image.array, self.path, self.window)
        encoded = state["_encoded"]
        masks = {}
        for target in targets:
            prompt = target.prompt
            if len(prompt.boxes) > 1:
                raise UnsupportedPrompt(f"model {self.name!r} takes at most one box per slice, "
                                        f"got {len(prompt.boxes)}")
            points = np.array([[c.point[1], c.point[0]] for c in prompt.points], np.float64).reshape(-1, 2)
            labels = np.array([int(c.positive) for c in prompt.points], np.int64)
            box = None
            if prompt.boxes:
                lo, hi = prompt.boxes[0].lo, prompt.boxes[0].hi
                box = np.array([lo[1], lo[0], hi[1] + 1, hi[0] + 1], np.float64)
            previous = state.get(target.name)
            result = decode(self.network, encoded, points, labels, box,
                            previous=previous.result if previous is not None else None)
            state[target.name] = SliceState(encoded, result)
            masks[target.name] = result.mask
        return masks


def sam(variant: str = "vit_b", *, state_dict: Mapping[str, torch.Tensor] | None = None, path: str = "sam-api",
        window: tuple[float, float] | None = None, device: str = "cpu") -> SamSlices:
    """SAM `variant` per slice; weights from an official checkpoint's state dict (random without one)."""
    network = build_sam(variant)
    if state_dict is not None:
        load_state_dict(network, state_dict, source=f"SAM {variant} checkpoint")
    return SamSlices(network=network.to(device), path=path, name=f"sam-{variant.replace('_', '-')}", window=window)


def sam_med2d(*, checkpoint: Mapping | None = None, path: str = "sam-med2d",
              window: tuple[float, float] | None = None, device: str = "cpu") -> SamSlices:
    """SAM-Med2D per slice; weights from the `model` entry of `sam-med2d_b.pth` (random without one)."""
    network = build_sam_med2d()
    if checkpoint is not None:
        load_state_dict(network, checkpoint, SAM_MED2D_LAYOUT, source="SAM-Med2D checkpoint")
    return SamSlices(network=network.to(device), path=path, name="sam-med2d", window=window,
                     checkpoint_layout=SAM_MED2D_LAYOUT)
