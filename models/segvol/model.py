"""SegVol behind the model interface (v2): a native-grid scan in, one native-grid mask per target out.

SegVol does its own preprocessing (`preprocess`: no reorientation, no resampling) and its exact inverse, so it
takes the scan on the native grid. Prompts arrive as the runner draws them and the prompt JSON stores them: voxel
indices of the native file. They are moved onto SegVol's 32 x 256 x 256 zoom-out grid, where inference_demo.py
draws its own prompts from the resized label:
- a box becomes, per axis, the zoom-out indices whose nearest-exact source voxel lies inside it: the box of the
  resized box cube, which equals the demo's box of the resized label whenever every sampled slice of the label's
  box meets the label (always for a label whose projection on each axis is an interval);
- a click becomes the zoom-out voxel whose cell holds the native voxel's centre (`native_to_zoom_out`).
The prompt kinds SegVol uses are chosen with `prompts` (SegVol Table 1: text, box, point, box+text, point+text;
the demo's default is text+box) and declared as the model's capabilities, so the runner hands over exactly those.
Every call gets all clicks so far (`accumulates_clicks`); the preprocessed scan and its zoom-out embedding are
kept in the image's state, so a new click costs a decoder pass (plus the zoom-in windows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base import (
    Capabilities,
    CheckpointInfo,
    Image,
    Model,
    ModelOptionError,
    Target,
    UnsupportedPrompt,
)
from models.segvol.checkpoint import LAYOUT
from models.segvol.inference import SegVolPrompt, segment_volume, zoom_out_embedding
from models.segvol.preprocess import (
    ROI,
    Geometry,
    native_to_zoom_out,
    preprocess,
    zoom_out_sources,
)
from models.segvol.points import draw_points
from protocols.prompts import Box, Click, Prompt

# SegVol's names for its prompt kinds -> the interface's
KINDS = {"text": "text", "box": "boxes", "point": "points"}
STATE = "_segvol_preprocessed"  # per image: the preprocessed scan and its zoom-out embedding
EMBEDDING = "_segvol_embedding"
DRAWN = "_segvol_drawn_points"  # per image: native clicks -> the zoom-out points they were drawn as


def parse_prompts(prompts: str) -> frozenset[str]:
    """`text+box` -> the interface's kinds {"text", "boxes"}; a one-line error for anything else."""
    chosen = [part.strip() for part in str(prompts).split("+")]
    unknown = [part for part in chosen if part not in KINDS]
    if unknown or not chosen:
        raise ModelOptionError(f"segvol prompts={prompts!r}: join text, box, point with '+' (e.g. text+box)")
    return frozenset(KINDS[part] for part in chosen)


def _zoom_in_index(index: tuple[int, ...], geometry: Geometry) -> tuple[int, ...]:
    """A native voxel index (x, y, z) on the zoom-in grid (d, h, w) (may lie outside the crop)."""
    return tuple(i + before - crop.start for i, (before, _), crop in zip(index[::-1], geometry.pad, geometry.crop))


def zoom_out_box(box: Box, geometry: Geometry) -> np.ndarray:
    """A native box (inclusive voxel indices) as SegVol's zoom-out box (d0, h0, w0, d1, h1, w1): per axis the
    zoom-out indices sampling a voxel inside the box; the cell of the box's centre on an axis where none does."""
    lo, hi = _zoom_in_index(box.lo, geometry), _zoom_in_index(box.hi, geometry)
    centre = native_to_zoom_out(tuple((a + b) // 2 for a, b in zip(box.lo, box.hi)), geometry)
    starts, stops = [], []
    for axis, (a, b, size) in enumerate(zip(lo, hi, ROI)):
        sources = zoom_out_sources(geometry.shape[axis], size)
        inside = np.flatnonzero((sources >= a) & (sources <= b))
        starts.append(int(inside[0]) if inside.size else centre[axis])
        stops.append(int(inside[-1]) if inside.size else centre[axis])
    return np.array(starts + stops, dtype=np.int64)


def zoom_out_prompt(prompt: Prompt, geometry: Geometry, name: str,
                    drawn: Mapping[tuple[Click, ...], tuple[np.ndarray, np.ndarray]] | None = None
                    ) -> SegVolPrompt | None:
    """A target's native-grid prompt on the zoom-out grid; None when it carries nothing SegVol can use. Points
    this model drew itself (`drawn`: native clicks -> the zoom-out points and labels, ignore points included)
    go as drawn."""
    if len(prompt.boxes) > 1:
        raise UnsupportedPrompt(f"SegVol takes one box per target, got {len(prompt.boxes)} for {name!r}")
    box = zoom_out_box(prompt.boxes[0], geometry) if prompt.boxes else None
    points = labels = None
    if prompt.points and drawn and tuple(prompt.points) in drawn:
        points, labels = drawn[tuple(prompt.points)]
    elif prompt.points:
        points = np.array([native_to_zoom_out(c.point, geometry) for c in prompt.points], dtype=np.int64)
        labels = np.array([int(c.positive) for c in prompt.points], dtype=np.int64)
    if prompt.text is None and box is None and points is None:
        return None
    return SegVolPrompt(text=prompt.text, box=box, points=points, point_labels=labels)


class SegVol(Model):
    """SegVol with zoom-out (and optionally zoom-in) inference; weights from `SegVol_v1.pth`, tokenizer from `clip`
    (SegVol's config/clip folder). `seed` seeds the local torch generator of the points SegVol draws per zoom-in
    window in point mode (one generator per call)."""

    name = "segvol"
    version = "1"
    # with the default prompts; an instance built with other `prompts` declares those instead
    capabilities = Capabilities(ndims=frozenset({3}), prompts=parse_prompts("text+box"), accumulates_clicks=True,
                                input_grid="native", devices=frozenset({"cpu", "cuda"}))
    checkpoint_layout = LAYOUT  # `SegVol_v1.pth`: DataParallel's `module.` prefix, transformers 4.18 CLIP names
    checkpoint_info = CheckpointInfo(files=("SegVol_v1.pth", "config/clip/"),
                                     download="https://github.com/BAAI-DCAI/SegVol (SegVol_v1.pth; tokenizer in "
                                              "config/clip)")

    def __init__(self, *, clip: str | None = None, zoom_in: bool = True, prompts: str = "text+box", seed: int = 0):
        from models.segvol.network import SegVolNetwork

        kinds = parse_prompts(prompts)
        if type(zoom_in) is not bool:  # a ValueError, so the CLI reports it as a bad option
            raise ValueError(f"segvol zoom_in={zoom_in!r}: true or false")
        if zoom_in and {"boxes", "points"} <= kinds:
            raise ValueError("segvol: zoom-in takes a box or points, not both (prompts=box+point needs zoom_in=false)")
        if clip is not None and not Path(clip).is_dir():
            raise ValueError(f"segvol clip={clip}: no such folder (SegVol's config/clip with the CLIP tokenizer)")
        self.clip, self.zoom_in, self.seed = clip, zoom_in, int(seed)
        self.capabilities = replace(SegVol.capabilities, prompts=kinds)
        self.network = SegVolNetwork().eval()
        self._tokenizer = None

    def tokenizer(self):
        if self._tokenizer is None:
            if self.clip is None:
                raise ValueError("segvol: text prompts need the CLIP tokenizer folder: --model-args clip=DIR "
                                 "(SegVol's config/clip)")
            from models.segvol.text import load_tokenizer

            self._tokenizer = load_tokenizer(self.clip)
        return self._tokenizer

    def _preprocessed(self, image: Image, state: dict[str, Any]):
        if image.channels != 1:
            raise ValueError(f"SegVol takes one-channel scans, got {image.channels} channels")
        if STATE not in state:
            state[STATE] = preprocess(image.array)
        return state[STATE]

    def draw_points(self, image: Image, reference: np.ndarray, rng: np.random.Generator, *, n_positive_extra: int,
                    n_negative_extra: int, state: dict[str, Any]) -> tuple[Click, ...]:
        """inference_demo.py's points: `select_points` on the class's zoom-out label with a torch generator
        seeded from `rng` (`points.draw_points`), given back as the native voxels they sample; the zoom-out
        points themselves are kept in `state`, so the following `segment` decodes exactly them (a native voxel
        of an axis shorter than the zoom-out grid is sampled by two zoom-out voxels)."""
        clicks, coords, labels = draw_points(reference, self._preprocessed(image, state).geometry, rng,
                                             n_positive_extra=n_positive_extra, n_negative_extra=n_negative_extra)
        state.setdefault(DRAWN, {})[clicks] = (coords, labels)
        return clicks

    def _segment(self, image: Image, targets: Sequence[Target], state: dict[str, Any]) -> Mapping[str, np.ndarray]:
        volume = self._preprocessed(image, state)
        prompts = {t.name: zoom_out_prompt(t.prompt, volume.geometry, t.name, state.get(DRAWN)) for t in targets}
        given = [name for name, prompt in prompts.items() if prompt is not None]
        masks = {name: np.zeros(image.shape, bool) for name, prompt in prompts.items() if prompt is None}
        if given:
            if EMBEDDING not in state:
                state[EMBEDDING] = zoom_out_embedding(self.network, volume)
            texts = any(prompts[name].text is not None for name in given)
            found = segment_volume(self.network, volume, [prompts[name] for name in given],
                                   tokenizer=self.tokenizer() if texts else None, use_zoom_in=self.zoom_in,
                                   generator=torch.Generator().manual_seed(self.seed),
                                   embedding=state[EMBEDDING])
            masks.update(zip(given, found))
        return masks
