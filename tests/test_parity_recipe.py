"""The golden scripts' parity recipe (tests/goldens/parity_recipe.py, run beside the official code) and the
project's (models/parity.py, what the tests load into our networks) give the same weights: otherwise a golden
would compare two different networks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from models.parity import parity_state_dict  # noqa: E402


def _golden_recipe():
    path = Path(__file__).parent / "goldens" / "parity_recipe.py"
    spec = importlib.util.spec_from_file_location("parity_recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parity_weights


def test_the_goldens_recipe_is_the_projects():
    network = torch.nn.Module()
    network.proj = torch.nn.Linear(6, 4)
    network.norm = torch.nn.LayerNorm(4)
    network.conv = torch.nn.Conv3d(2, 3, 3)
    network.rel_pos_h = torch.nn.Parameter(torch.zeros(7, 4))
    network.pos_embed = torch.nn.Parameter(torch.zeros(1, 5, 4))
    network.register_buffer("index", torch.arange(3))
    ours, theirs = parity_state_dict(network), _golden_recipe()(network.state_dict())
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
