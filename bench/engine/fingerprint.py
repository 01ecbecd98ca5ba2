"""Fingerprints of input files, so a resumed run re-scores a case whose prediction or reference changed.

A fingerprint holds, for every file of a case (a volume, each volume of a per-class mask folder, or each file of
a tuple of files such as the mask PNGs of a 2D slice), its size,
modification time and SHA-256. A stored case is reused when every file still has the same size and mtime (no
file is read), or, if those changed, the same SHA-256 (a file copied or touched without a change). A file rewritten
in place with different content but the same size and mtime is not noticed: use `--overwrite` after such edits.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bench.data.io import volume_suffix


Files = Path | tuple[Path, ...]


def _files(path: Files) -> list[Path]:
    """The files of a case side that exist (a tuple's missing files are left out, so they count as changed)."""
    if isinstance(path, tuple):
        return sorted((Path(f) for f in path if Path(f).is_file()), key=lambda f: f.name)
    path = Path(path)
    if path.is_dir():
        return sorted(f for f in path.iterdir() if f.is_file() and volume_suffix(f))
    return [path]


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fingerprint(path: Files) -> dict[str, dict]:
    """File name -> {size, mtime_ns, sha256} for a volume file, every volume of a case folder, or each file of
    a tuple."""
    out = {}
    for file in _files(path):
        stat = file.stat()
        out[file.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _sha256(file)}
    return out


def unchanged(path: Files, stored: dict[str, dict]) -> bool:
    """Whether the files at `path` are those fingerprinted in `stored` (hashing only files whose stat changed)."""
    files = _files(path) if isinstance(path, tuple) or Path(path).exists() else []
    if sorted(f.name for f in files) != sorted(stored):
        return False
    for file in files:
        stat, known = file.stat(), stored[file.name]
        if (stat.st_size, stat.st_mtime_ns) == (known["size"], known["mtime_ns"]):
            continue
        if stat.st_size != known["size"] or _sha256(file) != known["sha256"]:
            return False
    return True
