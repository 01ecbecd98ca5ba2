"""Protocol rules that moved into protocols/: the click rows' policy label (hand-computed schedules)."""

from __future__ import annotations

import pytest

from protocols.protocol import Prompts


@pytest.mark.parametrize("clicks, label", [
    (((1, "center"), (2, "center_largest_error")), "center_largest_error"),
    (((1, "ritm"), (3, "random_error")), "ritm@2,random_error@3"),  # SAM-Med3D's paper-era schedule
    (((1, "random_error"),), "random_error"),  # one policy for every click
    (((1, "center"), (2, "ritm"), (2, "random_error")), "random_error"),  # a later entry for click 2 wins
])
def test_next_clicks_label(clicks, label):
    assert Prompts(clicks=clicks).next_clicks_label() == label
