"""A local Hugging Face hub cache written in the layout `huggingface_hub` itself writes and reads
(https://huggingface.co/docs/huggingface_hub/guides/manage-cache): `models--OWNER--NAME/blobs/<hash>` holding each
file once, `refs/main` naming the commit, `snapshots/<commit>/<path>` a relative symlink to its blob. Large (LFS)
files' blobs are named by their SHA-256, as on the hub. `scan_cache_dir` accepts it (tests check)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put_hub_file(hub_cache: Path, repo: str, path_in_repo: str, content: bytes, commit: str = COMMIT) -> Path:
    """Write one repo file into the cache; returns its snapshot path (what hf_hub_download returns)."""
    repo_dir = Path(hub_cache) / ("models--" + repo.replace("/", "--"))
    blob = repo_dir / "blobs" / hashlib.sha256(content).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(content)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit / path_in_repo
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if snapshot.is_symlink() or snapshot.exists():
        snapshot.unlink()
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return snapshot
