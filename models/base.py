"""One interface for every segmentation model: declared capabilities and a single `segment` call.

A model declares what it can do (`Capabilities`): the image dimensionalities it takes, the prompt kinds it
understands, and whether it wants every click so far or only the newest one. The harness reads those
declarations; it never probes a model by trying a call and catching the failure. `segment` checks a prompt
against them and raises `UnsupportedPrompt` before the model sees anything it did not declare.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.prompts import PROMPT_KINDS, Prompt


class UnsupportedPrompt(ValueError):
    """A model was given a prompt kind or an image dimensionality it does not declare."""


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a model declares. `accumulates_clicks`: True if each call must get all clicks so far (SAM-Med3D,
    SegVol); False if it takes only the newest click and carries the rest in its state (SAM's iterative
    mask-logit refinement)."""

    ndims: frozenset[int]
    prompts: frozenset[str]
    accumulates_clicks: bool

    def __post_init__(self):
        unknown = set(self.prompts) - set(PROMPT_KINDS)
        if unknown or not set(self.ndims) <= {2, 3} or not self.ndims:
            raise ValueError(f"invalid capabilities: ndims={set(self.ndims)}, unknown prompt kinds {unknown}")


@dataclass(frozen=True, kw_only=True, eq=False)
class Image:
    """An image in its native grid: array in voxel-index order, spacing (mm) per axis, voxel-to-world affine."""

    array: np.ndarray
    spacing: tuple[float, ...]
    affine: np.ndarray

    def __post_init__(self):
        if self.array.ndim != len(self.spacing):
            raise ValueError(f"image of shape {self.array.shape} needs {self.array.ndim} spacings, "
                             f"got {self.spacing}")


class Model(ABC):
    """A promptable segmentation model. Subclasses set `name` and `capabilities` and implement `_segment`."""

    name: str
    capabilities: Capabilities

    def check(self, image: Image, prompt: Prompt) -> None:
        """Raise UnsupportedPrompt unless the image dimensionality and every prompt kind are declared."""
        if image.array.ndim not in self.capabilities.ndims:
            raise UnsupportedPrompt(f"model {self.name!r} takes {sorted(self.capabilities.ndims)}D images, "
                                    f"got a {image.array.ndim}D image")
        missing = prompt.kinds() - self.capabilities.prompts
        if missing:
            raise UnsupportedPrompt(f"model {self.name!r} does not take {', '.join(sorted(missing))} prompts "
                                    f"(it takes: {', '.join(sorted(self.capabilities.prompts)) or 'none'})")

    def segment(self, image: Image, prompt: Prompt, state: Any = None) -> tuple[np.ndarray, Any]:
        """A boolean mask in the image's grid, and the state to pass to the next call (None at the start)."""
        self.check(image, prompt)
        mask, new_state = self._segment(image, prompt, state)
        if mask.shape != image.array.shape or mask.dtype != bool:
            raise RuntimeError(f"model {self.name!r} returned a {mask.dtype} mask of shape {mask.shape} "
                               f"for an image of shape {image.array.shape}")
        return mask, new_state

    @abstractmethod
    def _segment(self, image: Image, prompt: Prompt, state: Any) -> tuple[np.ndarray, Any]:
        """The model's own work, on a prompt already checked against its capabilities."""
