"""The one checkpoint loader: official layouts, strict loading with a readable key report, no blind unpickling.

Official checkpoints hold more than tensors (uni-medical/SAM-Med3D@f3de1fa train.py:213-225,
BAAI-DCAI/SegVol@5768c97 inference_demo.py:189-196): SAM-Med3D pickles an
`argparse.Namespace` and optimizer state, SAM-Med2D a whole optimizer object, SAT and SegVol carry a DDP
`module.` prefix under `model_state_dict` / `model`. A file from a stranger is read with
`torch.load(weights_only=True)` and an allow-list: tensors, plain containers, `argparse.Namespace`, and the
optimizer classes of `torch.optim`, which are *replaced* by an inert `DroppedObject` (their state is never
needed, and no optimizer code runs). Any other pickled global is refused with a one-line error naming it; only
`trust=True` (`--trust-checkpoint`) unpickles everything, as the official code does.

Layouts (`CheckpointLayout`): each model declares how its official files differ from its `network`, and
`load_state_dict` is the one strict match (every key and shape, one error naming the missing, unexpected and
mis-shaped keys) for all of them. A loaded network is left in eval mode.
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

from protocols.errors import BenchError

LAYOUT_KEYS = ("model_state_dict", "state_dict", "model", "network_weights")
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL (\S+)")


class CheckpointError(BenchError):
    """A checkpoint that cannot be loaded as given; the message names the file and the problem."""

    kind = "checkpoint"


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
    """Where the weights sit in an official checkpoint and how their names map onto `model.network`.

    - `key`: the sub-dict holding them (None: a bare state dict or the first of `LAYOUT_KEYS` that holds one);
    - `prefix`: stripped when every key carries it (DDP's `module.`);
    - `drop`: entries the official loader filters out of the file before loading (SAT's text encoder);
    - `unused`: entries the official inference network does not have and its loader ignores, accepted only
      where the network has no such key (SAT's deep-supervision heads, buffers older library versions saved);
    - `arange`: entries that must hold 0, 1, ..., n-1 (a legacy `position_ids` buffer), checked before use;
    - `rename`: (pattern, replacement) pairs turning the file's names into the network's.
    Patterns are regular expressions searched in the file's names (after `prefix`)."""

    key: str | None = None
    prefix: str = "module."
    drop: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()
    arange: tuple[str, ...] = ()
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
    """The state dict of a checkpoint in `layout`: the sub-dict, one prefix stripped, `drop` applied; names as
    in the file (without the prefix)."""
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
    return {name: tensor for name, tensor in weights.items()
            if not any(re.search(pattern, name) for pattern in layout.drop)}


def _network_name(name: str, layout: CheckpointLayout) -> str:
    for pattern, replacement in layout.rename:
        name = re.sub(pattern, replacement, name)
    return name


def _listing(title: str, keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
    return f"{len(keys)} {title}: {shown}"


def load_state_dict(network, checkpoint: Any, layout: CheckpointLayout = CheckpointLayout(), *,
                    source: str = "checkpoint"):
    """Load `checkpoint` (an unpickled checkpoint or a bare state dict) in `layout` into the torch module
    `network` strictly, and leave it in eval mode; returns `network`. Every key and shape must match after the
    layout's fix-ups, else one CheckpointError lists the missing (network names), unexpected (the file's
    names) and mis-shaped keys."""
    expected = network.state_dict()
    weights, unexpected = {}, []
    for name, tensor in extract_state_dict(checkpoint, layout, source).items():
        if any(re.search(pattern, name) for pattern in layout.arange) and not _is_arange(tensor):
            raise CheckpointError(f"{source}: {name} is not 0..{tensor.numel() - 1}")
        target = _network_name(name, layout)
        if target in expected:
            weights[target] = tensor
        elif not any(re.search(pattern, name) for pattern in layout.unused):
            unexpected.append(name)
    missing = sorted(set(expected) - set(weights))
    misshaped = sorted(f"{k}: checkpoint {tuple(v.shape)}, network {tuple(expected[k].shape)}"
                       for k, v in weights.items() if tuple(v.shape) != tuple(expected[k].shape))
    problems = [_listing(title, keys) for title, keys in
                (("missing", missing), ("unexpected", sorted(unexpected)), ("shape mismatches", misshaped)) if keys]
    if problems:
        hint = ("; every unexpected key starts with 'module.': a DDP prefix this layout does not strip"
                if unexpected and all(k.startswith("module.") for k in unexpected) else "")
        raise CheckpointError(f"{source}: does not match {type(network).__name__}: " + "; ".join(problems) + hint)
    network.load_state_dict(weights, strict=True, assign=any(p.is_meta for p in network.parameters()))
    return network.eval()


def _is_arange(tensor) -> bool:
    """0, 1, ..., n-1 in any shape."""
    import torch

    return torch.equal(tensor.reshape(-1).long(), torch.arange(tensor.numel(), device=tensor.device))


def load_checkpoint(network, path: str | Path, layout: CheckpointLayout = CheckpointLayout(), *,
                    trust: bool = False) -> str:
    """Read `path` and load it in `layout` into `network` (`load_state_dict`); returns the file's SHA-256."""
    load_state_dict(network, read_checkpoint(path, trust=trust), layout, source=str(path))
    return sha256_of(path)
