"""nnInteractive (MIC-DKFZ, PyPI `nninteractive`) behind the model interface: its own inference session, fed clicks.

The session (nnInteractive 2.6.0 inference/inference_session.py) keeps every interaction of the current object
and predicts after each one, writing a binary mask into a target buffer; so this model declares
`keeps_history` and the click loop hands it only the newest click per call, whatever the protocol's `feed`
(re-adding earlier clicks would add them again: 4 clicks would make 10 interactions and 10 predictions). It works in the voxel grid of the array it is given, with no
resampling or reorientation, and normalises the image itself (z-score over the non-zero bounding box): pass raw
intensities. Coordinates are our voxel indices unchanged. A box (inclusive indices) becomes the session's
half-open `[lo, hi + 1)` per axis; the official checkpoint takes only 2D boxes (one axis one voxel thick).

Loading: a trained-model folder (`plans.json`, `dataset.json`, `inference_info.json`, `fold_X/<checkpoint>`) as
`initialize_from_trained_model_folder` reads it. That loader unpickles the checkpoint fully, so the file is
first read with PyTorch's restricted unpickler (tensors, plain containers, numpy scalars) and refused if it
holds anything else, unless `trust_checkpoint=True`.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base import Capabilities, Image, Model, ModelOptionError, Target
from models.checkpoints import CheckpointError

_REQUIRED = ("plans.json", "dataset.json")
# nnInteractive plans autozoom's refinement patches with this margin per side (2.6.0 inference_session.py:2104;
# MIC-DKFZ/nnInteractive@154d9c6:nnInteractive/inference/inference_session.py:1680): a patch of at most twice
# the margin on an axis covers nothing, and utils/bboxes.py:197 (@154d9c6 :181) then fails with a TypeError.
REFINEMENT_MARGIN = 24


def _numpy_globals() -> list:
    """What nnU-Net checkpoints pickle besides tensors: numpy scalars in their training logs."""
    names = [np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))]
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray.scalar, *names]


def checkpoint_path(folder: Path, fold: int | str | None = None, checkpoint_name: str = "checkpoint_final.pth") -> Path:
    """The checkpoint file of a model folder; a missing piece is a one-line error naming it."""
    folder = Path(folder)
    missing = [name for name in _REQUIRED if not (folder / name).is_file()]
    if not ((folder / "inference_info.json").is_file() or (folder / "inference_session_class.json").is_file()):
        missing.append("inference_info.json")
    if missing:
        raise CheckpointError(f"{folder}: not an nnInteractive model folder (missing {', '.join(missing)})")
    folds = sorted(p.name for p in folder.glob("fold_*") if p.is_dir())
    if fold is None:
        if len(folds) != 1:
            raise CheckpointError(f"{folder}: choose a fold, found {folds or 'no fold_* folder'}")
        fold_name = folds[0]
    else:
        fold_name = f"fold_{fold}"
    path = folder / fold_name / checkpoint_name
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    return path


def check_checkpoint(path: Path) -> None:
    """Refuse a checkpoint that needs more than the restricted unpickler allows, or lacks the session's keys."""
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "unpickling refused"
        raise CheckpointError(f"{path}: holds objects outside the allow-list ({reason}); "
                         f"load it only if you trust it (trust_checkpoint=True)") from None
    except (OSError, RuntimeError, EOFError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({error})") from None
    missing = [key for key in ("trainer_name", "init_args", "network_weights") if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not an nnInteractive checkpoint (missing {', '.join(missing)})")


class NnInteractive(Model):
    """nnInteractive's session on a 3D image: points and boxes, positive or negative, one object per session."""

    name = "nninteractive"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"points", "boxes"}), accumulates_clicks=False,
                                keeps_history=True)

    def __init__(self, *, checkpoint: str | Path, fold: int | str | None = None,
                 checkpoint_name: str = "checkpoint_final.pth", device: str = "cpu", autozoom: bool = True,
                 threads: int = 2, trust_checkpoint: bool = False, verbose: bool = False):
        from nnInteractive.inference.inference_session import nnInteractiveInferenceSession

        path = checkpoint_path(Path(checkpoint), fold, checkpoint_name)
        if not trust_checkpoint:
            check_checkpoint(path)
        self.verbose = verbose
        with self._quiet():
            self.session = nnInteractiveInferenceSession(
                device=torch.device(device), use_torch_compile=False, verbose=verbose, torch_n_threads=threads,
                do_autozoom=autozoom, interactions_storage="auto", enable_undo=False)
            self.session.initialize_from_trained_model_folder(str(checkpoint), use_fold=path.parent.name[5:],
                                                              checkpoint_name=checkpoint_name)
        self.session.network.eval()  # the session leaves it in training mode (2.6.0 inference_session.py:2281-2288)
        patch = tuple(int(p) for p in self.session.configuration_manager.patch_size)
        if autozoom and min(patch) <= 2 * REFINEMENT_MARGIN:
            raise ModelOptionError(f"{checkpoint}: patch size {patch} is too small for nnInteractive's autozoom "
                                   f"refinement (it needs more than {2 * REFINEMENT_MARGIN} voxels per axis); turn it "
                                   f"off with --model-args autozoom=false")
        self.buffer: np.ndarray | None = None

    def _quiet(self):
        """The session prints progress on stdout; keep it off unless verbose."""
        return contextlib.nullcontext() if self.verbose else contextlib.redirect_stdout(io.StringIO())

    def start(self, image: np.ndarray) -> None:
        """Set a new 3D image (raw intensities) and an empty target for a new object."""
        if image.ndim != 3:
            raise ValueError(f"nnInteractive takes a 3D image, got shape {image.shape}")
        with self._quiet():
            self.session.set_image(image[None])
            self.buffer = np.zeros(image.shape, np.uint8)
            self.session.set_target_buffer(self.buffer)

    def new_object(self) -> None:
        """Forget every interaction and empty the target; the image stays."""
        with self._quiet():
            self.session.reset_interactions()

    def add_point(self, index: tuple[int, int, int], positive: bool) -> list[list[int]] | None:
        """Add a click at a voxel index and predict; returns the changed region (half-open per axis)."""
        with self._quiet():
            return self.session.add_point_interaction(tuple(int(i) for i in index), include_interaction=positive)

    def add_box(self, lo: tuple[int, int, int], hi: tuple[int, int, int], positive: bool = True):
        """Add a box of inclusive voxel indices and predict (2D boxes only for the official checkpoint)."""
        with self._quiet():
            return self.session.add_bbox_interaction([[int(a), int(b) + 1] for a, b in zip(lo, hi)],
                                                     include_interaction=positive)

    @property
    def mask(self) -> np.ndarray:
        if self.buffer is None:
            raise RuntimeError("nnInteractive: no image set")
        return self.buffer.astype(bool)

    def _segment(self, image: Image, targets: Sequence[Target], state: dict[str, Any]) -> dict[str, np.ndarray]:
        """One object at a time: a new target starts a new object (its interactions so far are forgotten), so
        a target's calls must come in one run, as the interactive loop makes them."""
        if "_object" not in state:
            self.start(image.array)
        masks = {}
        for target in targets:
            if state.get("_object", target.name) != target.name:
                self.new_object()
            state["_object"] = target.name
            for box in target.prompt.boxes:
                self.add_box(box.lo, box.hi, positive=True)
            for click in target.prompt.points:
                self.add_point(click.point, click.positive)
            masks[target.name] = self.mask
        return masks
