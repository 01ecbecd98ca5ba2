"""A tiny CLIP tokenizer (byte-level BPE, a handful of merges) written to a directory, for tests and goldens.

Its special tokens keep CLIP's ids (49406 start, 49407 end = pad), so pooling at the end token works as with the
real tokenizer; the other ids are small. Used by tests/goldens/make_segvol_goldens.py (official code) and by the
tests (this project), so both sides tokenise with the same files.
"""

import json
from pathlib import Path

MERGES = ["l i", "v e", "li ve", "live r</w>", "o f</w>", "t o", "s p", "sp l", "spl e", "e n</w>", "sple en</w>"]


def byte_chars() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable character table, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_tiny_clip_tokenizer(directory) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = byte_chars()
    tokens = base + [c + "</w>" for c in base] + ["".join(m.split()) for m in MERGES]
    vocab = {t: i for i, t in enumerate(tokens)}
    vocab["<|startoftext|>"] = 49406
    vocab["<|endoftext|>"] = 49407
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>"}
    (directory / "special_tokens_map.json").write_text(json.dumps(specials))
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, **specials}))
    return directory
