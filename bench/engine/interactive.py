"""The interactive loop: an optional box, then k simulated clicks, one model call each, a score after each call.

For k = 1..N the next click is made from the current error (the first from the reference alone: a first-click
policy, or a next-click policy applied to an empty prediction), the model gets all clicks so far or only the
newest (`feed`; a model that feeds back its previous logits keeps them in its state; a model that keeps its own
interaction history always gets only the newest), and the mask is scored by
the caller's `score`. With `per_slice_axis` every round adds one click to each target slice not yet perfect
(SAM-Med3D's 2D baseline: round k = the k-th point of each slice). With a `box` the first call gets the box
alone (step 0, the SegFM challenge's first interaction), every later call the box and the clicks, and click 1
is made from the box prediction's error. A perfect prediction stops the loop early; its scores are repeated so
every curve has N points (unless the protocol says to call the model again). With `errors_from="logits"` the
next click is made from the model's logit mask (`Model.logit_mask`: logits > 0.5, SAM-Med3D's paper-era click
generator) instead of the scored mask (the loop stops when that mask has no error left), for a model that
declares `logit_masks`; other models fall back to their prediction. This is the side-effect edge (model calls,
the clock: each step records the model's wall time); curve summaries are pure, in `protocols.interactive`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.engine.meter import NO_CALL, CallCost, timed_call
from models.base import Image, Model, Target, UnsupportedPrompt
from protocols.prompts import Box, Click, Prompt
from protocols.prompts_clicks import FIRST_CLICKS, first_click, next_click
from protocols.prompts_slices import slice_round
from protocols.errors import BenchError

ON_FAILURE = ("raise", "previous")
Score = Callable[[np.ndarray], tuple[float, float, int]]


@dataclass(frozen=True)
class ClickStep:
    """The outcome of click (or round) k (0: the box alone): the clicks given (empty once the loop stopped or for
    the box), the scores, and the model call's cost (`bench.engine.meter.CallCost`: wall and CPU seconds, the
    warm-up mark when it was the process's first call of the model, the phases; zero for a step without a call)."""

    click_index: int
    clicks: tuple[Click, ...]
    dsc: float
    nsd: float
    pred_voxels: int
    mask: np.ndarray | None = None
    failed: str | None = None
    cost: CallCost = NO_CALL

    @property
    def seconds(self) -> float:
        return self.cost.seconds

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
               state: dict | None = None, text: str | None = None, box: Box | None = None,
               stop_at_perfect: bool = True, on_failure: str = "raise",
               errors_from: str = "prediction") -> list[ClickStep]:
    """Run N clicks (rounds) on one target. `rng_for(k)` gives the generator of click k; `click_spacing` the
    spacing clicks are measured in (default the image's; ones for voxel distances); `replay` clicks, when given,
    replace the policy for the first clicks (exact replay; not with per-slice rounds); `text` goes with every
    call (a model taking text and clicks); `box`, when given, is step 0 and goes with every later call. Without
    `stop_at_perfect` a perfect target is called again with no new click (the SegFM script calls its docker for
    every class each round); `on_failure="previous"` scores a call that raised as the previous prediction (empty
    at the first), as the SegFM script scores a run that wrote no output, and names the error in the step."""
    if n_clicks < 1:
        raise BenchError(f"n_clicks must be >= 1, got {n_clicks}")
    if reference.shape != image.shape or reference.dtype != bool:
        raise BenchError(f"reference must be a boolean mask of the image's shape {image.shape}")
    if on_failure not in ON_FAILURE:
        raise BenchError(f"on_failure must be one of {ON_FAILURE}, got {on_failure!r}")
    spacing = tuple(click_spacing or image.spacing)
    oracle = "reference" in model.capabilities.prompts
    state = {} if state is None else state
    given: list[Click] = []
    steps: list[ClickStep] = []
    pred = np.zeros_like(reference)
    boxes = () if box is None else (box,)
    from_logits = errors_from == "logits" and model.capabilities.logit_masks
    clicked = pred  # the mask next clicks are made from

    def call(k: int, new: tuple[Click, ...]) -> ClickStep:
        capabilities = model.capabilities
        everything = capabilities.accumulates_clicks or (feed == "all" and not capabilities.keeps_history)
        points = tuple(given) if everything else new
        prompt = Prompt(points=points, boxes=boxes, text=text, reference=reference if oracle else None)
        start, cpu = time.perf_counter(), time.process_time()
        failed, cost = None, None
        try:
            masks, cost = timed_call(model, image, [Target(name, prompt)], state)
            mask = masks[name]
        except UnsupportedPrompt:
            raise
        except Exception as error:  # noqa: BLE001 - the SegFM rule: a failed run keeps the previous output
            if on_failure == "raise":
                raise
            mask, failed = pred, f"{type(error).__name__}: {error}"
        if cost is None:  # a failed call: its time until it raised
            cost = CallCost(time.perf_counter() - start, time.process_time() - cpu)
        return ClickStep(k, new, *score(mask), mask, failed, cost)

    if box is not None:
        steps.append(call(0, ()))
        pred = clicked = steps[-1].mask
    for k in range(1, n_clicks + 1):
        policy = policy_for(k)
        if steps and np.array_equal(clicked, reference):
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
        if not new and stop_at_perfect:
            last = steps[-1] if steps else ClickStep(k, (), 0.0, 0.0, 0, pred)
            steps.append(ClickStep(k, (), last.dsc, last.nsd, last.pred_voxels, last.mask))
            continue
        given.extend(new)
        steps.append(call(k, new))
        pred = steps[-1].mask
        clicked = model.logit_mask(image, name, state) if from_logits else pred
    return steps
