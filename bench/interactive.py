"""The interactive loop: k simulated clicks, one model call each, a score after every click.

For k = 1..N the next click is made from the current error (the first from the reference alone: a first-click
policy, or a next-click policy applied to an empty prediction), the model gets all clicks so far or only the
newest (`feed`; a model that feeds back its previous logits keeps them in its state), and the mask is scored by
the caller's `score`. With `per_slice_axis` every round adds one click to each target slice not yet perfect
(SAM-Med3D's 2D baseline: round k = the k-th point of each slice). A perfect prediction stops the loop early;
its scores are repeated so every curve has N points. With `errors_from="logits"` the next click is made from
the model's logit mask (`Model.logit_mask`: logits > 0.5, SAM-Med3D's paper-era click generator) instead of
the scored mask (the loop stops when that mask has no error left), for a model that declares `logit_masks`;
other models fall back to their prediction. This is the side-effect edge (model calls, the clock);
curve summaries are pure and live in `protocols.interactive`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.base import Image, Model, Target
from protocols.prompts import Click, Prompt
from protocols.prompts_clicks import FIRST_CLICKS, first_click, next_click
from protocols.prompts_slices import slice_round

Score = Callable[[np.ndarray], tuple[float, float, int]]


@dataclass(frozen=True)
class ClickStep:
    """The outcome of click (or round) k: the clicks given (empty once the loop stopped) and the scores."""

    click_index: int
    clicks: tuple[Click, ...]
    dsc: float
    nsd: float
    pred_voxels: int
    seconds: float
    mask: np.ndarray | None = None

    @property
    def click(self) -> Click | None:
        return self.clicks[-1] if self.clicks else None


def make_click(policy: str, pred: np.ndarray, ref: np.ndarray, spacing, rng: np.random.Generator,
               k: int) -> Click | None:
    """Click k by `policy`: a first-click policy for k = 1, else (or for a next-click policy at k = 1, on an
    empty prediction) the next click from the error."""
    if policy in FIRST_CLICKS:
        return first_click(policy, ref, spacing, rng) if k == 1 else None
    return next_click(policy, pred, ref, spacing, rng)


def run_clicks(*, model: Model, image: Image, reference: np.ndarray, score: Score, n_clicks: int,
               policy_for: Callable[[int], str], rng_for: Callable[[int], np.random.Generator],
               name: str = "target", feed: str = "all", click_spacing: Sequence[float] | None = None,
               per_slice_axis: int | None = None, replay: Sequence[Click] = (),
               state: dict | None = None, text: str | None = None,
               errors_from: str = "prediction") -> list[ClickStep]:
    """Run N clicks (rounds) on one target. `rng_for(k)` gives the generator of click k; `click_spacing` the
    spacing clicks are measured in (default the image's; ones for voxel distances); `replay` clicks, when given,
    replace the policy for the first clicks (exact replay; not with per-slice rounds); `text` goes with every
    call (a model taking text and clicks)."""
    if n_clicks < 1:
        raise ValueError(f"n_clicks must be >= 1, got {n_clicks}")
    if reference.shape != image.shape or reference.dtype != bool:
        raise ValueError(f"reference must be a boolean mask of the image's shape {image.shape}")
    spacing = tuple(click_spacing or image.spacing)
    oracle = "reference" in model.capabilities.prompts
    state = {} if state is None else state
    given: list[Click] = []
    steps: list[ClickStep] = []
    pred = np.zeros_like(reference)
    from_logits = errors_from == "logits" and model.capabilities.logit_masks
    clicked = pred  # the mask next clicks are made from
    for k in range(1, n_clicks + 1):
        policy = policy_for(k)
        if k > 1 and np.array_equal(clicked, reference):
            new: tuple[Click, ...] = ()  # no error left to click: stop, replayed clicks included
        elif k <= len(replay):
            new = (replay[k - 1],)
        elif per_slice_axis is not None:
            rng = rng_for(k)
            new = slice_round(clicked, reference, per_slice_axis, spacing,
                              lambda p, r, s: make_click(policy, p, r, s, rng, k))
        else:
            click = make_click(policy, clicked, reference, spacing, rng_for(k), k)
            new = () if click is None else (click,)
        if not new:
            last = steps[-1] if steps else ClickStep(k, (), 0.0, 0.0, 0, 0.0, pred)
            steps.append(ClickStep(k, (), last.dsc, last.nsd, last.pred_voxels, 0.0, last.mask))
            continue
        given.extend(new)
        points = tuple(given) if feed == "all" or model.capabilities.accumulates_clicks else new
        prompt = Prompt(points=points, text=text, reference=reference if oracle else None)
        start = time.perf_counter()
        pred = model.segment(image, [Target(name, prompt)], state)[name]
        seconds = time.perf_counter() - start
        clicked = model.logit_mask(image, name, state) if from_logits else pred
        steps.append(ClickStep(k, new, *score(pred), seconds, pred))
    return steps
