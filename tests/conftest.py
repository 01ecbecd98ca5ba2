"""Shared fixtures: the read-only real data in ../shared (tests using it skip cleanly when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    return SHARED


@pytest.fixture(scope="session")
def satds_dir(shared_dir: Path) -> Path:
    path = shared_dir / "satds"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path
