"""Where each model's official files come from (`models/weights.yaml`) and whether a local file is the right one.

The registry is data: per model its licence, what it needs besides its checkpoint, and its files, each with its
source (a Hugging Face repo file or folder, a plain URL, or a page to download from by hand) and the size and
SHA-256 only where the publisher states them. `check_file` compares a local file with that; `check_tokenizer`
does the same for a tokenizer folder: published checksums where there are any (SegVol's `config/clip`), else the
vocabulary's size and known token ids, and a pin: the vocabulary's hash is recorded the first time a folder is
used (`pins.json` under the Hugging Face cache's assets) and any later folder must match it, unless trusted.
No torch here: these checks run before anything heavy is loaded.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from models.checkpoints import sha256_of
from protocols.errors import BenchError

REGISTRY = Path(__file__).with_name("weights.yaml")
LIBRARY = "medseg-bench"  # the name under which this project keeps non-hub files in the Hugging Face cache


class WeightsMismatch(BenchError):
    """A local file or folder that is not the one the registry names (size, checksum, vocabulary)."""

    kind = "checkpoint"


@dataclass(frozen=True)
class WeightFile:
    """One file (or folder) a model needs, and where it comes from."""

    model: str
    role: str
    option: str
    hub: dict | None = None
    url: str | None = None
    urls: dict = field(default_factory=dict)
    manual: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    vocabulary: dict | None = None
    needed_for: str | None = None
    cited: str = ""
    note: str = ""
    also: str = ""

    @property
    def is_folder(self) -> bool:
        return bool(self.urls) or (self.hub is not None and "file" not in self.hub and "select" not in self.hub)

    def source(self) -> str:
        """The source as one string: `hf://repo/path`, the URL, or `download by hand from URL`."""
        if self.hub is not None:
            path = self.hub.get("file") or self.hub.get("folder") or ""
            return f"hf://{self.hub['repo']}/{path}".rstrip("/")
        if self.url:
            return self.url
        if self.urls:
            first = next(iter(self.urls.values()))["url"]
            return first.rsplit("/", 1)[0] + "/"
        return f"download by hand from {self.manual}"

    def published(self) -> str:
        """The checksum the publisher states, as shown to users."""
        if self.sha256:
            return self.sha256
        if self.sha256_prefix:
            return f"{self.sha256_prefix}... (prefix in the file name)"
        if self.urls:
            return "per file (see below)"
        return "none published"


@dataclass(frozen=True)
class ModelWeights:
    name: str
    licence: str
    needs: tuple[str, ...]
    files: tuple[WeightFile, ...]
    requires_weights: bool = False  # True: no run with random weights (SAT refuses them)

    def file_for(self, option: str) -> WeightFile | None:
        return next((f for f in self.files if f.option == option), None)


@cache
def _registry() -> dict:
    return yaml.safe_load(REGISTRY.read_text())


def weight_models() -> list[str]:
    return sorted(_registry())


def model_weights(name: str) -> ModelWeights | None:
    """The registry entry of a model; None for a model without one (reference models, registered ones)."""
    entry = _registry().get(name)
    if entry is None:
        return None
    files = tuple(WeightFile(model=name, **item) for item in entry.get("files") or ())
    return ModelWeights(name, entry.get("licence", "not stated"), tuple(entry.get("needs") or ()), files,
                        bool(entry.get("requires_weights", False)))


def select(paths: list[str], entry: WeightFile) -> list[str]:
    """The paths of a hub folder that `entry`'s select/exclude globs pick (all of them without a select)."""
    pattern, exclude = entry.hub.get("select"), entry.hub.get("exclude")
    names = [p for p in paths if not pattern or fnmatch.fnmatch(Path(p).name, pattern)]
    return [p for p in names if not exclude or not fnmatch.fnmatch(Path(p).name, exclude)]


def check_file(path: str | Path, entry: WeightFile) -> str:
    """The file's SHA-256, after checking its size and checksum against what the publisher states; a
    WeightsMismatch names the file, the model and both values."""
    path = Path(path)
    if entry.size is not None and path.stat().st_size != entry.size:
        raise WeightsMismatch(f"{path}: {path.stat().st_size} bytes, but {entry.model}'s {entry.role} "
                              f"({entry.source()}) has {entry.size}")
    digest = sha256_of(path)
    expected = entry.sha256 or entry.sha256_prefix
    if expected and not digest.startswith(expected):
        raise WeightsMismatch(f"{path}: SHA-256 {digest} is not the published {expected} of {entry.model}'s "
                              f"{entry.role} ({entry.source()})")
    return digest


def _vocabulary(folder: Path) -> dict[str, int]:
    """Token -> id of a tokenizer folder, read from its files (tokenizer.json, vocab.json or vocab.txt)."""
    if (folder / "tokenizer.json").is_file():
        model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("model", {})
        vocab = model.get("vocab")
        if isinstance(vocab, dict):
            return vocab
        if isinstance(vocab, list):  # unigram: [[token, score], ...]
            return {token: i for i, (token, _) in enumerate(vocab)}
    if (folder / "vocab.json").is_file():
        return json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    if (folder / "vocab.txt").is_file():
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
        return {token: i for i, token in enumerate(lines)}
    raise WeightsMismatch(f"{folder}: no tokenizer.json, vocab.json or vocab.txt")


def vocabulary_sha256(vocabulary: dict[str, int]) -> str:
    """A hash of the token -> id table itself (independent of file formatting)."""
    table = "\n".join(f"{i}\t{token}" for token, i in sorted(vocabulary.items(), key=lambda item: item[1]))
    return hashlib.sha256(table.encode("utf-8")).hexdigest()


def _hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
                ).expanduser()


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (HF_HUB_CACHE, HF_HOME), as the hub client does."""
    return Path(os.environ.get("HF_HUB_CACHE") or _hf_home() / "hub").expanduser()


def assets_dir(namespace: str, *, create: bool = False) -> Path:
    """This project's folder in the Hugging Face assets cache, in `huggingface_hub.cached_assets_path`'s layout
    (ASSETS/LIBRARY/NAMESPACE/default; written here so that URL downloads need no hub client): files from plain
    URLs, and the tokenizer pins."""
    root = Path(os.environ.get("HF_ASSETS_CACHE") or _hf_home() / "assets").expanduser()
    folder = root / LIBRARY / namespace / "default"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def pins_path() -> Path:
    return assets_dir("pins") / "pins.json"


def check_tokenizer(folder: str | Path, entry: WeightFile, *, trust: bool = False) -> dict:
    """Check a tokenizer folder against the registry: each file with a published SHA-256, the vocabulary's
    size and known ids, and the pinned vocabulary hash (pinned now when none is). Returns what a run records:
    {path, vocabulary_sha256, files: {name: sha256}, verified: how}. `trust` skips the refusals (recorded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsMismatch(f"{folder}: tokenizer folder not found ({entry.model} needs {entry.source()})")
    problems, files = [], {}
    for name, spec in entry.urls.items():
        path = folder / name
        if not path.is_file():
            continue
        files[name] = sha256_of(path)
        if files[name] != spec["sha256"]:
            problems.append(f"{name} has SHA-256 {files[name][:12]}..., not the published {spec['sha256'][:12]}...")
    vocabulary = _vocabulary(folder)
    expected = entry.vocabulary or {}
    if "size" in expected and len(vocabulary) != expected["size"]:
        problems.append(f"its vocabulary has {len(vocabulary)} tokens, not {expected['size']}")
    for token, token_id in (expected.get("tokens") or {}).items():
        if vocabulary.get(token) != token_id:
            problems.append(f"token {token!r} has id {vocabulary.get(token)}, not {token_id}")
    digest = vocabulary_sha256(vocabulary)
    pins = json.loads(pins_path().read_text()) if pins_path().is_file() else {}
    key = f"{entry.source()}#vocabulary"
    pinned = pins.get(key)
    if pinned and pinned != digest:
        problems.append(f"its vocabulary hash {digest[:12]}... differs from the one pinned at first use "
                        f"{pinned[:12]}... ({pins_path()})")
    if problems and not trust:
        raise WeightsMismatch(f"{folder}: not {entry.model}'s tokenizer ({entry.source()}): " + "; ".join(problems)
                              + " (pass trust_tokenizer=true to use it anyway)")
    if not problems and not pinned and not entry.urls:
        pins[key] = digest
        assets_dir("pins", create=True)
        pins_path().write_text(json.dumps(pins, indent=1))
    how = ("trusted despite: " + "; ".join(problems)) if problems else (
        "published SHA-256 of each file" if entry.urls and len(files) == len(entry.urls) else
        "vocabulary checks" if entry.urls else "vocabulary size and the hash pinned at first use")
    return {"path": str(folder), "vocabulary_sha256": digest, "files": files, "verified": how}


def offline() -> bool:
    """Whether the Hugging Face client is told to stay offline (HF_HUB_OFFLINE=1)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
