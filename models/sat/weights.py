"""How the two official SAT checkpoints map onto our modules (`models.checkpoints.load_state_dict` loads them).

SAT saves `DDP(model).state_dict()` (zhaoziheng/SAT@5676be5 train/trainer.py:246-253), so keys carry `module.`.
What each official loader discards, and nothing more, is left out here; the official loaders are partial
(`partial_load` and `text_encoder_partial_load` default to True, evaluate/params.py:32-37 and :112-117: any key
of the wrong name or shape is skipped and a missing one stays randomly initialised), ours are strict, so a file
that is not SAT's fails instead of running with random weights:
- the segmentation network's file (model/build_model.py:38-68, no filter of its own): its deep-supervision
  heads `mid_mask_embed_proj.*` are in every official checkpoint, and the inference network
  (deep_supervision=False, evaluate/params.py:141-145; model/maskformer.py:187-212 builds them only with deep
  supervision) skips them through the partial load; they load where the network has them;
- the text encoder's file: the loader filters out every entry containing `atlas_tower` or `temperature`
  (pre-training leftovers, model/text_encoder.py:64-65); MPNet's `embeddings.position_ids`, a persistent
  buffer in transformers 4.21.3 but not in 5.x, is accepted where the module has no such buffer.
"""

from __future__ import annotations

from models.checkpoints import CheckpointLayout

NETWORK_LAYOUT = CheckpointLayout(unused=(r"^mid_mask_embed_proj\.",))
TEXT_LAYOUT = CheckpointLayout(drop=("atlas_tower", "temperature"), unused=(r"embeddings\.position_ids$",))
