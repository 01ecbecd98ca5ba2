"""SAT's text tower (official `Knowledge_Encoder`, SAT:model/knowledge_encoder.py) and its literal tokenisation.

BioLORD-2023-C (an MPNet) encodes a class name; its token states are mean-pooled over the attention mask,
projected, and a learned modality embedding is added (ct 0, mri 1, us 2, pet 3). SAT tokenises by hand
(SAT:model/tokenizer.py): `[CLS]` + wordpieces + `[SEP]` looked up as ordinary vocabulary strings, padding id 0,
mask = id > 0, at most 256 tokens with `[SEP]` kept last. The tokenizer files are not in SAT's checkpoints: they
come from a local copy of BioLORD-2023-C's tokenizer folder. Official: zhaoziheng/SAT@5676be5
model/knowledge_encoder.py:5-26, model/tokenizer.py:8-46.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import MPNetConfig, MPNetModel

MAX_TOKENS = 256
MODALITY_CODES = {"ct": 0, "mri": 1, "us": 2, "pet": 3}

# FremyCompany/BioLORD-2023-C config.json (SAT-TextEncoder.json, biolord_config_assumed)
BIOLORD_CONFIG = dict(vocab_size=30527, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                      attention_probs_dropout_prob=0.1, max_position_embeddings=514, initializer_range=0.02,
                      layer_norm_eps=1e-5, relative_attention_num_buckets=32, pad_token_id=1, bos_token_id=0,
                      eos_token_id=2)


def modality_code(modality: str) -> int:
    """SAT's modality-embedding index of a modality string ("CT", "MRI T2", "pet", "us", ...)."""
    key = str(modality).strip().lower()
    if key not in MODALITY_CODES:
        from protocols.terms import modality_prefix  # CT / MRI (any sequence) / PET spellings

        key = modality_prefix(modality)
    return MODALITY_CODES[key]


class TextTower(nn.Module):
    """MPNet built from BioLORD-2023-C's config (no download), mean-pooled over the attention mask."""

    def __init__(self):
        super().__init__()
        self.biolord = MPNetModel(MPNetConfig(**BIOLORD_CONFIG))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.biolord(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).float()  # float32 even under autocast, as SAT does
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class SATTextEncoder(nn.Module):
    """Class-name embeddings [N, 768]: pooled MPNet features, projected, plus the modality embedding."""

    def __init__(self):
        super().__init__()
        self.text_tower = TextTower()
        self.projection_layer = nn.Sequential(nn.Linear(768, 768), nn.GELU(), nn.Linear(768, 768))
        self.modality_embed = nn.Embedding(len(MODALITY_CODES), 768)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """Token ids and mask [N, L] (from `SATTokenizer`), modality codes [N]."""
        pooled = self.text_tower(input_ids, attention_mask)
        return self.projection_layer(pooled) + self.modality_embed(modality)


class SATTokenizer:
    """SAT's tokenisation on top of a Hugging Face WordPiece tokenizer (BioLORD-2023-C's, read from a folder)."""

    def __init__(self, wordpiece, max_length: int = MAX_TOKENS):
        self.wordpiece = wordpiece
        self.max_length = max_length

    @classmethod
    def from_folder(cls, folder: str | Path, max_length: int = MAX_TOKENS) -> SATTokenizer:
        """Load a local tokenizer folder (tokenizer.json or vocab.txt, tokenizer_config.json); no download."""
        from transformers import AutoTokenizer

        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: tokenizer folder not found (a local copy of BioLORD-2023-C's "
                                    "tokenizer files is needed)")
        return cls(AutoTokenizer.from_pretrained(str(folder), local_files_only=True), max_length)

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids [N, L] (0-padded, L = longest, at most max_length) and the mask ids > 0, as SAT builds them."""
        if not texts:
            raise ValueError("no text to tokenise: give at least one class name")
        ids = [self.wordpiece.convert_tokens_to_ids(["[CLS]", *self.wordpiece.tokenize(text), "[SEP]"])
               for text in texts]
        length = min(max(len(i) for i in ids), self.max_length)
        out = torch.zeros(len(ids), length, dtype=torch.long)
        sep = self.wordpiece.convert_tokens_to_ids("[SEP]")
        for row, token_ids in enumerate(ids):
            if len(token_ids) > length:
                token_ids = token_ids[:length - 1] + [sep]
            out[row, :len(token_ids)] = torch.tensor(token_ids)
        return out, (out > 0).long()
