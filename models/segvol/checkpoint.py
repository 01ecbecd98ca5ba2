"""SegVol's official state-dict layout (`SegVol_v1.pth['model']`) as a `CheckpointLayout` for `SegVolNetwork`.

The official keys differ from this network's in three documented ways (BAAI-DCAI/SegVol@5768c97
inference_demo.py:189-196, network/model.py:202-206):
- DataParallel's `module.` prefix on every key;
- transformers 4.18 naming of the CLIP text tower: a `text_model.` level and the persistent buffer
  `...text_model.embeddings.position_ids` (0..76, checked), which newer transformers no longer store;
- a SegVol built with MONAI >= 1.5 also saves unused `image_encoder.blocks.N.norm_cross_attn.*` LayerNorms; they are
  accepted (and ignored) when present, and nothing else is.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from models.checkpoints import CheckpointLayout, load_state_dict

CLIP_OLD = "text_encoder.clip_text_model.text_model."
CLIP_NEW = "text_encoder.clip_text_model."
POSITION_IDS = CLIP_OLD + "embeddings.position_ids"
LAYOUT = CheckpointLayout(
    key="model", prefix="module.", rename=((f"^{re.escape(CLIP_OLD)}", CLIP_NEW),),
    unused=(rf"^{re.escape(POSITION_IDS)}$", r"^image_encoder\.blocks\.\d+\.norm_cross_attn\.(weight|bias)$"),
    arange=(rf"^{re.escape(POSITION_IDS)}$",))


def official_key(native: str) -> str:
    """The official key for a network key (the inverse of `LAYOUT`'s rename)."""
    return CLIP_OLD + native[len(CLIP_NEW):] if native.startswith(CLIP_NEW) else native


def official_layout(network: nn.Module) -> dict[str, torch.Tensor]:
    """The network's state dict under official key names, with the position_ids buffer transformers 4.18 saved:
    exactly the entries of an official checkpoint (without `module.`)."""
    state = {official_key(k): v for k, v in network.state_dict().items()}
    state[POSITION_IDS] = torch.arange(77, device="cpu").unsqueeze(0)
    return state


def parity_network():
    """SegVol with the parity weights (docs/add-a-model.md) derived from the official key names and loaded
    in `LAYOUT`: the weights the official code gets in the parity goldens."""
    from models.parity import parity_tensor
    from models.segvol.network import SegVolNetwork

    with torch.device("meta"):
        layout = official_layout(SegVolNetwork())
    weights = {key: parity_tensor(key, like) for key, like in layout.items()}
    return load_state_dict(SegVolNetwork(), {"model": weights}, LAYOUT, source="SegVol parity weights")
