"""The one checkpoint loader: official layouts, strict loading with a readable key report, no blind unpickling.

Official checkpoints hold more than tensors (models_spec.md section 0.2 rule 1): SAM-Med3D pickles an
`argparse.Namespace` and optimizer state, SAM-Med2D a whole optimizer object, SAT and SegVol carry a DDP
`module.` prefix under `model_state_dict` / `model`. A file from a stranger is read with
`torch.load(weights_only=True)` and an allow-list: tensors, plain containers, `argparse.Namespace`, and the
optimizer classes of `torch.optim`, which are *replaced* by an inert `DroppedObject` (their state is never
needed, and no optimizer code runs). Any other pickled global is refused with a one-line error naming it; only
`trust=True` (`--trust-checkpoint`) unpickles everything, as the official code does.

Layouts (`CheckpointLayout`): the sub-dict holding the weights (auto-detected among `LAYOUT_KEYS` when not
given), one prefix stripped when every key carries it, keys dropped (e.g. SAT's training-only
`mid_mask_embed_proj.*`) and renamed (e.g. transformers' flattened CLIP) by regular expressions.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYOUT_KEYS = ("model_state_dict", "state_dict", "model", "network_weights")
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL (\S+)")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as given; the message names the file and the problem."""


class DroppedObject:
    """Stands in for a pickled object a checkpoint carries but inference never needs (an optimizer)."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self) -> str:
        return "<dropped>"


def _plain_dict(*args) -> dict:
    """`collections.defaultdict(factory)` read as a plain dict (optimizer state uses one)."""
    return {}


def _allowed_globals() -> list:
    import torch

    optimizers = [cls for cls in vars(torch.optim).values()
                  if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)]
    return [argparse.Namespace, dict, (_plain_dict, "collections.defaultdict"),
            *[(DroppedObject, f"{cls.__module__}.{cls.__name__}") for cls in optimizers]]


@dataclass(frozen=True)
class CheckpointLayout:
    """Where the weights sit in an official checkpoint and how their names map onto `model.network`."""

    key: str | None = None
    prefix: str = "module."
    drop: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: str | Path, *, trust: bool = False) -> Any:
    """Unpickle a checkpoint to CPU: allow-listed globals only, unless `trust` (then everything)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint file is empty (0 bytes); download it again")
    try:
        if trust:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if trust:
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({_first_line(error)})") from None
        found = _UNSUPPORTED.search(str(error))
        what = f"the pickled global {found.group(1)}" if found else "a pickled object outside the allow-list"
        raise CheckpointError(f"{path}: refused to unpickle {what} (not needed for weights; pass "
                              f"--trust-checkpoint only if you trust the file's source)") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _is_state_dict(value: Any) -> bool:
    import torch

    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def extract_state_dict(checkpoint: Any, layout: CheckpointLayout = CheckpointLayout(),
                       source: str = "checkpoint") -> dict:
    """The state dict of a checkpoint in `layout`: the sub-dict, one prefix stripped, drops and renames applied."""
    if layout.key is not None:
        if not isinstance(checkpoint, Mapping) or layout.key not in checkpoint:
            found = sorted(checkpoint) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
            raise CheckpointError(f"{source}: no {layout.key!r} entry (found: {found})")
        weights = checkpoint[layout.key]
    elif _is_state_dict(checkpoint):
        weights = checkpoint
    else:
        key = next((k for k in LAYOUT_KEYS if isinstance(checkpoint, Mapping) and _is_state_dict(checkpoint.get(k))),
                   None)
        if key is None:
            found = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
            raise CheckpointError(f"{source}: no state dict found (top-level entries: {found}; "
                                  f"looked for {', '.join(LAYOUT_KEYS)})")
        weights = checkpoint[key]
    if not _is_state_dict(weights):
        raise CheckpointError(f"{source}: the weights entry is not a mapping of names to tensors")
    if layout.prefix and all(k.startswith(layout.prefix) for k in weights):
        weights = {k[len(layout.prefix):]: v for k, v in weights.items()}
    out = {}
    for name, tensor in weights.items():
        if any(re.search(pattern, name) for pattern in layout.drop):
            continue
        for pattern, replacement in layout.rename:
            name = re.sub(pattern, replacement, name)
        out[name] = tensor
    return out


def _listing(title: str, keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
    return f"{len(keys)} {title}: {shown}"


def load_state_dict(network, weights: Mapping, *, strict: bool = True, source: str = "checkpoint") -> list[str]:
    """Load `weights` into a torch module. Strict: every key and shape must match, else a CheckpointError lists
    the missing, unexpected and mis-shaped keys. Not strict: matching keys load, the rest are returned."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    misshaped = sorted(f"{k} {tuple(weights[k].shape)} vs {tuple(expected[k].shape)}"
                       for k in set(weights) & set(expected) if tuple(weights[k].shape) != tuple(expected[k].shape))
    problems = [_listing(title, keys) for title, keys in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatches", misshaped)) if keys]
    if strict and problems:
        raise CheckpointError(f"{source}: does not match {type(network).__name__}: " + "; ".join(problems))
    usable = {k: v for k, v in weights.items() if k in expected and tuple(v.shape) == tuple(expected[k].shape)}
    network.load_state_dict(usable, strict=strict, assign=any(p.is_meta for p in network.parameters()))
    return problems


def load_checkpoint(network, path: str | Path, layout: CheckpointLayout = CheckpointLayout(), *,
                    trust: bool = False, strict: bool = True) -> str:
    """Read `path`, extract its state dict in `layout`, load it into `network`; returns the file's SHA-256."""
    weights = extract_state_dict(read_checkpoint(path, trust=trust), layout, source=str(path))
    load_state_dict(network, weights, strict=strict, source=str(path))
    return sha256_of(path)
