"""The 2D-to-3D adapter: a 2D model run slice by slice along one axis, with per-slice prompts.

3D prompts are routed to slices: a click goes to the slice holding it; a box goes to every slice it spans
(a per-slice box from `protocols.prompts_slices` is one slice thick). Slices that never received a prompt
stay empty. Each (target, slice) keeps its own model state and mask, so a model that takes only the newest
click refines the slice that click is on and leaves the others as they were. A slice is given as a 2D image
with the in-plane spacing, the volume's affine (for reference; 2D models work in pixel coordinates) and modality.
A 2D image (one slice, e.g. an SA-Med2D PNG case) goes to the 2D model as it is, with its prompts and state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.base import Capabilities, Image, Model, Target
from protocols.prompts import Box, Click, Prompt

SLICE_PROMPTS = frozenset({"points", "boxes"})


def _drop(values: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return values[:axis] + values[axis + 1:]


class SliceWise(Model):
    """Runs `model` (which must take 2D images) on the slices along `axis` that have prompts; a 2D image is
    passed straight through."""

    def __init__(self, *, model: Model, axis: int = 2):
        if 2 not in model.capabilities.ndims:
            raise ValueError(f"SliceWise needs a model that takes 2D images; {model.name!r} does not")
        if not model.capabilities.prompts & SLICE_PROMPTS:
            raise ValueError(f"SliceWise needs a model that takes points or boxes; {model.name!r} does not")
        self.model = model
        self.axis = axis
        self.name = f"{model.name}@slices{axis}"
        self.version = model.version
        self.network = model.network
        self.checkpoint_layout = model.checkpoint_layout
        self.capabilities = self.capabilities_of(model.capabilities)

    @staticmethod
    def capabilities_of(inner: Capabilities) -> Capabilities:
        """What a 2D model declaring `inner` declares run slice by slice (read without building either)."""
        return Capabilities(
            ndims=frozenset({2, 3}), prompts=inner.prompts & SLICE_PROMPTS, accumulates_clicks=inner.accumulates_clicks,
            previous_logits=inner.previous_logits, keeps_history=inner.keeps_history, devices=inner.devices,
            reports_phases=inner.reports_phases,
        )

    def batch_settings(self) -> dict[str, Any]:
        return self.model.batch_settings()

    def _route(self, prompt: Prompt, depth: int) -> dict[int, Prompt]:
        points: dict[int, list[Click]] = defaultdict(list)
        boxes: dict[int, list[Box]] = defaultdict(list)
        for click in prompt.points:
            points[click.point[self.axis]].append(Click(_drop(click.point, self.axis), click.positive))
        for box in prompt.boxes:
            for index in range(max(box.lo[self.axis], 0), min(box.hi[self.axis], depth - 1) + 1):
                boxes[index].append(Box(_drop(box.lo, self.axis), _drop(box.hi, self.axis)))
        return {index: Prompt(points=tuple(points[index]), boxes=tuple(boxes[index]))
                for index in sorted(set(points) | set(boxes))}

    def _segment(self, image: Image, targets: Sequence[Target], state: dict[str, Any]) -> Mapping[str, np.ndarray]:
        if image.ndim == 2:
            return self.model.segment(image, targets, state)
        if image.channels != 1:
            raise ValueError(f"SliceWise takes one-channel volumes, got {image.channels} channels")
        array = np.moveaxis(image.array, self.axis, 0)
        plane_spacing = _drop(tuple(image.spacing), self.axis)
        masks = {}
        for target in targets:
            slices = state.setdefault(target.name, {})  # slice index -> (inner state, mask)
            for index, slice_prompt in self._route(target.prompt, array.shape[0]).items():
                plane = Image(array=array[index], spacing=plane_spacing, affine=image.affine,
                              modality=image.modality)
                inner_state = slices[index][0] if index in slices else {}
                inner = self.model.segment(plane, [Target(target.name, slice_prompt)], inner_state)
                slices[index] = (inner_state, inner[target.name])
            mask = np.zeros(array.shape, bool)
            for index, (_, plane_mask) in slices.items():
                mask[index] = plane_mask
            masks[target.name] = np.moveaxis(mask, 0, self.axis)
        return masks
