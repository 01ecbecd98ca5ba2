"""SegVol's official state-dict layout (`SegVol_v1.pth['model']`) and its strict loading into `SegVolNetwork`.

The official keys differ from this network's in three documented ways (models_spec.md section 2.2):
- DataParallel's `module.` prefix on every key;
- transformers 4.18 naming of the CLIP text tower: a `text_model.` level and the persistent buffer
  `...text_model.embeddings.position_ids` (0..76), which newer transformers no longer store;
- a SegVol built with MONAI >= 1.5 also saves unused `image_encoder.blocks.N.norm_cross_attn.*` LayerNorms; they are
  accepted (and ignored) when present, and nothing else is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

CLIP_OLD = "text_encoder.clip_text_model.text_model."
CLIP_NEW = "text_encoder.clip_text_model."
POSITION_IDS = CLIP_OLD + "embeddings.position_ids"
UNUSED_CROSS_NORM = re.compile(r"image_encoder\.blocks\.\d+\.norm_cross_attn\.(weight|bias)")


class CheckpointMismatch(ValueError):
    """A state dict whose keys or shapes do not fit SegVol's."""


def native_key(official: str) -> str:
    """The network's key for an official key (`module.` already stripped)."""
    return CLIP_NEW + official[len(CLIP_OLD):] if official.startswith(CLIP_OLD) else official


def official_key(native: str) -> str:
    """The official key for a network key (inverse of `native_key`)."""
    return CLIP_OLD + native[len(CLIP_NEW):] if native.startswith(CLIP_NEW) else native


def official_layout(network: nn.Module) -> dict[str, torch.Tensor]:
    """The network's state dict under official key names, with the position_ids buffer transformers 4.18 saved:
    exactly the entries of an official checkpoint (without `module.`)."""
    state = {official_key(k): v for k, v in network.state_dict().items()}
    state[POSITION_IDS] = torch.arange(77, device="cpu").unsqueeze(0)
    return state


def to_native(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official-layout tensors -> network keys: strip `module.`, map the CLIP names, drop position_ids (checked
    to be 0..76) and MONAI's unused cross-attention norms."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if UNUSED_CROSS_NORM.fullmatch(key):
            continue
        if key == POSITION_IDS:
            if not torch.equal(value.reshape(-1).long(), torch.arange(value.numel())):
                raise CheckpointMismatch(f"{key} is not 0..{value.numel() - 1}")
            continue
        out[native_key(key)] = value
    return out


def load_official_state_dict(network: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load an official-layout state dict strictly; a mismatch raises one error listing every missing key,
    unexpected key and shape difference."""
    native = to_native(state)
    own = network.state_dict()
    missing = sorted(set(own) - set(native))
    unexpected = sorted(set(native) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(native[k].shape)}, network {tuple(own[k].shape)}"
                    for k in set(own) & set(native) if native[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        lines = [f"{title} ({len(items)}): {', '.join(official_key(i) for i in items[:8])}"
                 + (" ..." if len(items) > 8 else "")
                 for title, items in (("missing", missing), ("unexpected", unexpected)) if items]
        if shapes:
            more = " ..." if len(shapes) > 8 else ""
            lines.append(f"shape mismatch ({len(shapes)}): {'; '.join(shapes[:8])}{more}")
        raise CheckpointMismatch("not a SegVol state dict: " + " | ".join(lines))
    network.load_state_dict(native, strict=True)


def parity_network():
    """SegVol with the parity weights (../shared/README.md) derived from the official key names and loaded
    through `load_official_state_dict`: the weights the official code gets in the parity goldens."""
    from models.parity import parity_tensor
    from models.segvol.network import SegVolNetwork

    with torch.device("meta"):
        layout = official_layout(SegVolNetwork())
    network = SegVolNetwork().eval()
    load_official_state_dict(network, {key: parity_tensor(key, like) for key, like in layout.items()})
    return network
