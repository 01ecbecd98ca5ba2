"""One interface for every segmentation model (v2): declared capabilities, provenance and one `segment` call.

`segment(image, targets, state)` segments several targets of one image in one call and returns one boolean mask
per target name, in the image's grid. A target is a class name with its prompts (text, points, boxes, previous
mask). A text-prompted model encodes the image once for all targets; a specialist answers all its classes from
one forward pass; an interactive model may loop internally. `state` is a dict the caller creates once per image
and hands to every call on that image: the model keeps there whatever it carries between calls (by convention
per-target memory such as the previous low-resolution logits under the target's name, image-level entries such
as an image embedding under keys starting with "_").

A model declares what it can do (`Capabilities`); the harness reads the declaration and never probes a model by
trying a call. `segment` checks every target against it and raises `UnsupportedPrompt` before the model sees
anything it did not declare. Torch-backed models expose their `torch.nn.Module` as `network` (state-dict keys
exactly the official checkpoint's, see `models.checkpoints`).

A model that declares `reports_phases` times its work inside `segment` in `phase("preprocess")`, `phase("model")`
and `phase("postprocess")` blocks (not nested); whoever calls `segment` inside `recorded_phases()` gets each
phase's wall seconds (the engine's meter stores them beside the call's seconds). Outside a recording a phase
block times nothing.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.checkpoints import CheckpointError, CheckpointLayout, load_checkpoint
from protocols.prompts import PROMPT_KINDS, Click, Prompt
from protocols.prompts_boxes import segvol_points
from protocols.errors import BenchError

MODALITIES = ("CT", "MRI", "PET", "US")
INPUT_GRIDS = ("native", "satds")
DEVICES = ("cpu", "cuda")
PHASES = ("preprocess", "model", "postprocess")
_RECORDING: ContextVar[dict[str, float] | None] = ContextVar("phase_seconds", default=None)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase `name` of a `segment` call (one of `PHASES`): preprocess (the model's own input
    preparation: crop, text encoding, file round trip), model (its network passes), postprocess (the output
    back to the image's grid, thresholds). The wall seconds add to the enclosing `recorded_phases()`, if any;
    on a GPU, work still queued when the block ends counts in the phase that waits for it."""
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; one of {', '.join(PHASES)}")
    seconds = _RECORDING.get()
    start = time.perf_counter()
    try:
        yield
    finally:
        if seconds is not None:
            seconds[name] += time.perf_counter() - start


@contextmanager
def recorded_phases() -> Iterator[dict[str, float]]:
    """The wall seconds of each phase entered in the block, by name (0.0 for a phase not entered)."""
    seconds = dict.fromkeys(PHASES, 0.0)
    token = _RECORDING.set(seconds)
    try:
        yield seconds
    finally:
        _RECORDING.reset(token)


class UnsupportedPrompt(BenchError):
    """A model was given a prompt kind, an image dimensionality or a device it does not declare."""

    kind = "model"


class ModelOptionError(BenchError):
    """A model option that is missing, unknown or out of range (options go in --model-args, weights in
    --checkpoint)."""

    kind = "model"


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a model declares.

    - `ndims`: image dimensionalities it takes (2, 3).
    - `prompts`: prompt kinds it understands (`protocols.prompts.PROMPT_KINDS`).
    - `accumulates_clicks`: True if each call must get all clicks so far (SegVol, SAM and SAM-Med2D per slice,
      the reference models); False if the protocol's `feed` decides (all clicks so far, or the newest with the
      rest carried in its state).
    - `previous_logits`: True if it feeds its own previous logits back as a mask prompt (SAM family), kept in
      `state`; the loop then gives only the newest click when the protocol says so.
    - `keeps_history`: True if it keeps every interaction of the current target itself (nnInteractive's
      session): the loop then gives it only the newest interaction whatever the protocol's `feed`, so each
      click is added once and predicted once.
    - `input_grid`: the grid it wants its image on: "native" (it does its own preprocessing, e.g. a crop), or
      "satds" (SAT-DS preprocessing: RAS, 1 x 1 x 3 mm, foreground crop, normalised; the runner maps back).
    - `targets_per_call`: how many prompt sets one call may carry (None: any; SAM-Med2D's decoder takes one).
    - `logit_masks`: True if it can give its last prediction of a target thresholded on the logits instead of
      the probability (`logit_mask`), the mask SAM-Med3D's paper-era click generator made errors from.
    - `devices`: devices it runs on.
    - `reports_phases`: True if `segment` times its work in `phase` blocks; the harness then stores the seconds
      of preprocessing, model and postprocessing beside each call's, and leaves them empty for other models.
    """

    ndims: frozenset[int]
    prompts: frozenset[str]
    accumulates_clicks: bool
    previous_logits: bool = False
    keeps_history: bool = False
    input_grid: str = "native"
    targets_per_call: int | None = None
    logit_masks: bool = False
    devices: frozenset[str] = frozenset({"cpu"})
    reports_phases: bool = False

    def __post_init__(self):
        unknown = set(self.prompts) - set(PROMPT_KINDS)
        if unknown or not set(self.ndims) <= {2, 3} or not self.ndims:
            raise ValueError(f"invalid capabilities: ndims={set(self.ndims)}, unknown prompt kinds {unknown}")
        if self.input_grid not in INPUT_GRIDS or not set(self.devices) <= set(DEVICES) or not self.devices:
            raise ValueError(f"invalid capabilities: input_grid={self.input_grid!r} (one of {INPUT_GRIDS}), "
                             f"devices={set(self.devices)} (subset of {DEVICES})")
        if self.keeps_history and self.accumulates_clicks:
            raise ValueError("invalid capabilities: a model that keeps its own history cannot also need every click")
        if self.targets_per_call is not None and self.targets_per_call < 1:
            raise ValueError(f"invalid capabilities: targets_per_call={self.targets_per_call}")


@dataclass(frozen=True, kw_only=True, eq=False)
class Image:
    """An image in its native grid: array in voxel-index order (channels first when `channels` > 1), spacing
    (mm) per spatial axis, voxel-to-world affine, modality (CT, MRI, PET, US)."""

    array: np.ndarray
    spacing: tuple[float, ...]
    affine: np.ndarray
    modality: str = "CT"
    channels: int = 1

    def __post_init__(self):
        spatial = self.array.ndim - (self.channels > 1)
        if self.channels < 1 or (self.channels > 1 and self.array.shape[0] != self.channels):
            raise ValueError(f"image of shape {self.array.shape} does not have {self.channels} leading channels")
        if spatial != len(self.spacing):
            raise ValueError(f"image of shape {self.array.shape} needs {spatial} spacings, got {self.spacing}")
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r}; one of {', '.join(MODALITIES)}")

    @property
    def shape(self) -> tuple[int, ...]:
        """The spatial shape (channels left out): the shape of every mask for this image."""
        return tuple(self.array.shape[self.channels > 1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclass(frozen=True, eq=False)
class Target:
    """One thing to segment in an image: a class name and its prompts."""

    name: str
    prompt: Prompt = field(default_factory=Prompt)


@dataclass(frozen=True)
class Provenance:
    """What made a prediction: model name, implementation version, parameter count, checkpoint and its SHA-256."""

    name: str
    version: str
    parameters: int
    checkpoint: str | None = None
    sha256: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "parameters": self.parameters,
                "checkpoint": self.checkpoint, "sha256": self.sha256}


@dataclass(frozen=True)
class CheckpointInfo:
    """What a model needs to run with real weights: files, where to get them, published SHA-256 if any."""

    files: tuple[str, ...] = ()
    download: str | None = None
    sha256: str | None = None


class Model(ABC):
    """A promptable segmentation model. Subclasses set `name`, `version` and `capabilities` (class data: the
    engine reads it without building the model) and implement `_segment`; torch-backed ones set `network` (and `checkpoint_layout`/`checkpoint_info`), and override
    `load_checkpoint` when their weights come in several files or a folder."""

    name: str
    version: str = "1"
    capabilities: Capabilities
    network: Any = None
    checkpoint_layout: CheckpointLayout = CheckpointLayout()
    checkpoint_info: CheckpointInfo = CheckpointInfo()
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    device: str = "cpu"

    def load_checkpoint(self, path: str, *, trust: bool = False) -> Model:
        """Load official weights into `network` in `checkpoint_layout` (strict, allow-listed unpickling unless
        `trust`); the network is left in eval mode, as every model builds it."""
        if self.network is None:
            raise CheckpointError(f"model {self.name!r} has no weights to load")
        self.checkpoint_sha256 = load_checkpoint(self.network, path, self.checkpoint_layout, trust=trust)
        self.checkpoint = str(path)
        return self

    def provenance(self) -> Provenance:
        parameters = sum(p.numel() for p in self.network.parameters()) if self.network is not None else 0
        return Provenance(self.name, self.version, int(parameters), self.checkpoint, self.checkpoint_sha256)

    def to(self, device: str) -> Model:
        """Run on `device` (declared in the capabilities); moves `network` when there is one."""
        if device not in self.capabilities.devices:
            raise UnsupportedPrompt(f"model {self.name!r} runs on {', '.join(sorted(self.capabilities.devices))}, "
                                    f"not {device!r}")
        if self.network is not None:
            self.network.to(device)
        self.device = device
        return self

    def check(self, image: Image, targets: Sequence[Target]) -> None:
        """Raise UnsupportedPrompt unless the image dimensionality and every target's prompt kinds are declared."""
        if image.ndim not in self.capabilities.ndims:
            raise UnsupportedPrompt(f"model {self.name!r} takes {sorted(self.capabilities.ndims)}D images, "
                                    f"got a {image.ndim}D image")
        names = [target.name for target in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"target names must be unique, got {names}")
        for target in targets:
            missing = target.prompt.kinds() - self.capabilities.prompts
            if missing:
                raise UnsupportedPrompt(
                    f"model {self.name!r} does not take {', '.join(sorted(missing))} prompts "
                    f"(it takes: {', '.join(sorted(self.capabilities.prompts)) or 'none'})")

    def draw_points(self, image: Image, reference: np.ndarray, rng: np.random.Generator, *, n_positive_extra: int,
                    n_negative_extra: int, state: dict[str, Any]) -> tuple[Click, ...]:
        """A SegVol-style point set for one target (`prompts.segvol_points`), as native clicks: by default drawn
        on the image's grid from `reference` with `rng` (`protocols.prompts_boxes.segvol_points`); a model whose
        official code draws them on its own grid overrides this (SegVol: its zoom-out label, torch's RNG
        seeded from `rng`). `state` is the one the following `segment` call gets."""
        coords, labels = segvol_points(reference, rng, n_positive_extra=n_positive_extra,
                                       n_negative_extra=n_negative_extra)
        return tuple(Click(tuple(int(c) for c in point), bool(label)) for point, label in zip(coords, labels)
                     if label >= 0)

    def batch_settings(self) -> dict[str, Any]:
        """The settings of its calls a cost figure depends on, beyond device and threads (e.g. windows per network
        pass); run.json records them so costs are compared like for like."""
        return {}

    def logit_mask(self, image: Image, name: str, state: dict[str, Any], threshold: float = 0.5) -> np.ndarray:
        """The last prediction of target `name` (kept in `state`) as logits > `threshold`, on the image's grid;
        only for models declaring `logit_masks`."""
        raise UnsupportedPrompt(f"model {self.name!r} does not give logit masks")

    def segment(self, image: Image, targets: Sequence[Target],
                state: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """A boolean mask in the image's grid per target name. `state` (one dict per image, created by the
        caller) carries the model's memory between calls; targets go to `_segment` in chunks of at most
        `targets_per_call`."""
        targets = list(targets)
        self.check(image, targets)
        state = {} if state is None else state
        size = self.capabilities.targets_per_call or max(len(targets), 1)
        masks: dict[str, np.ndarray] = {}
        for start in range(0, len(targets), size):
            chunk = targets[start:start + size]
            masks.update(self._segment(image, chunk, state))
        for target in targets:
            mask = masks.get(target.name)
            if mask is None or mask.shape != image.shape or mask.dtype != bool:
                raise RuntimeError(f"model {self.name!r} returned no boolean mask of shape {image.shape} for "
                                   f"target {target.name!r}")
        return {target.name: masks[target.name] for target in targets}

    @abstractmethod
    def _segment(self, image: Image, targets: Sequence[Target], state: dict[str, Any]) -> Mapping[str, np.ndarray]:
        """The model's own work, on targets already checked against its capabilities."""
