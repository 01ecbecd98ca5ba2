"""Class names -> CLIP token ids as SegVol feeds them: the template with its final period, padded to the longest."""

from __future__ import annotations

from pathlib import Path

import torch

TEMPLATE = "A computerized tomography of a {}."


def load_tokenizer(directory: str | Path):
    """The CLIP tokenizer from a local directory (SegVol's `config/clip`: vocab.json and merges, or
    tokenizer.json); never downloads."""
    from transformers import AutoTokenizer

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no CLIP tokenizer directory (SegVol's config/clip)")
    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)


def tokenize(tokenizer, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of shape (len(names), longest) for the templated class names."""
    tokens = tokenizer([TEMPLATE.format(name) for name in names], padding=True, return_tensors="pt")
    return tokens["input_ids"], tokens["attention_mask"]
