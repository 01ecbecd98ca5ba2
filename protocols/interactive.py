"""The interactive loop: k simulated clicks, one model call each, DSC/NSD after every click; curve summaries.

For k = 1..N the next click is made from the current error (the first from the reference alone), the model
is called with all clicks so far or only the newest (as its capabilities declare) and its previous state,
and the mask is scored. A perfect prediction stops the loop early; its scores are repeated so every curve
has N points. Scores reported are DSC@k, NSD@k, the final value and the normalised area under the curve,
never the maximum over clicks (that would reward a model for clicks that made it worse).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.base import Image, Model
from protocols.case import evaluate_case
from protocols.prompts import Click, Prompt
from protocols.prompts_clicks import first_click, next_click

CURVE_KEYS = ["run", "model", "dataset", "case_id", "class_name", "prompt_policy", "first_click", "seed"]
SUMMARY_KEYS = ["model", "class_name", "prompt_policy", "first_click"]


@dataclass(frozen=True)
class ClickStep:
    """The outcome of click k: the click given (None once the loop stopped on a perfect mask) and scores."""

    click_index: int
    click: Click | None
    dsc: float
    nsd: float
    pred_voxels: int
    seconds: float


def _score(pred: np.ndarray, ref_labels: np.ndarray, spacing, tolerance_mm: float) -> tuple[float, float, int]:
    score = evaluate_case(pred.astype(np.uint8), ref_labels, spacing, {"target": 1}, tolerance_mm)[0]
    return score.dsc, score.nsd, score.pred_voxels


def run_clicks(*, model: Model, image: Image, reference: np.ndarray, policy: str, first: str, n_clicks: int,
               rng_for: Callable[[int], np.random.Generator], tolerance_mm: float = 1.0,
               text: str | None = None, replay: Sequence[Click] = ()) -> list[ClickStep]:
    """Run N clicks on one target. `rng_for(k)` gives the generator of click k (see `prompts.prompt_rng`);
    `replay` clicks, when given, are used in place of the policy for the first clicks (exact replay)."""
    if n_clicks < 1:
        raise ValueError(f"n_clicks must be >= 1, got {n_clicks}")
    if reference.shape != image.array.shape or reference.dtype != bool:
        raise ValueError(f"reference must be a boolean mask of the image's shape {image.array.shape}")
    ref_labels = reference.astype(np.uint8)
    oracle = "reference" in model.capabilities.prompts
    clicks: list[Click] = []
    steps: list[ClickStep] = []
    pred, state = np.zeros_like(reference), None
    for k in range(1, n_clicks + 1):
        if k > 1 and np.array_equal(pred, reference):
            click = None  # perfect: stop here, replayed clicks included
        elif k <= len(replay):
            click = replay[k - 1]
        elif k == 1:
            click = first_click(first, reference, image.spacing, rng_for(k))
        else:
            click = next_click(policy, pred, reference, image.spacing, rng_for(k))
        if click is None:
            last = steps[-1]
            steps.append(ClickStep(k, None, last.dsc, last.nsd, last.pred_voxels, 0.0))
            continue
        clicks.append(click)
        prompt = Prompt(points=tuple(clicks) if model.capabilities.accumulates_clicks else (click,),
                        text=text, reference=reference if oracle else None)
        start = time.perf_counter()
        pred, state = model.segment(image, prompt, state)
        seconds = time.perf_counter() - start
        steps.append(ClickStep(k, click, *_score(pred, ref_labels, image.spacing, tolerance_mm), seconds))
    return steps


def normalised_auc(values: Sequence[float]) -> float:
    """Trapezoidal area under a score-vs-clicks curve over clicks 1..N, divided by N - 1 (so it lies in [0, 1]
    for scores in [0, 1]); a one-click curve's area is its only value."""
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return float(values[0])
    return float(((values[1:] + values[:-1]) / 2.0).sum() / (values.size - 1))


def _curve(group: pd.DataFrame, at: Sequence[int]) -> dict[str, float]:
    ordered = group.sort_values("click")
    out = {}
    for metric in ("dsc", "nsd"):
        values = ordered[metric].to_numpy(float)
        for k in at:
            out[f"{metric}@{k}"] = values[k - 1] if k <= values.size else np.nan
        out[f"{metric}_final"] = values[-1]
        out[f"{metric}_auc"] = normalised_auc(values)
    return out


def summarise_clicks(rows: pd.DataFrame, *, at: Sequence[int] = (1, 3, 5, 10),
                     by: Sequence[str] = SUMMARY_KEYS) -> pd.DataFrame:
    """Per-(model, class, policy) means over cases of DSC/NSD@k, final value and normalised AUC.

    `rows` are click rows (one per case, class and click, as `bench clicks` stores them); each curve is
    summarised first, then curves are averaged, with `cases` counting them. `@k` beyond a run's N is NaN.
    """
    keys = [key for key in CURVE_KEYS if key in rows.columns]
    curves = pd.DataFrame([
        {**dict(zip(keys, key)), **_curve(group, at)} for key, group in rows.groupby(keys, dropna=False)
    ])
    metrics = [column for column in curves.columns if column not in keys]
    grouped = curves.groupby(list(by), dropna=False)
    table = grouped[metrics].mean()
    table.insert(0, "cases", grouped.size())
    return table.reset_index()


def mean_curves(rows: pd.DataFrame, *, by: Sequence[str] = SUMMARY_KEYS) -> pd.DataFrame:
    """Mean DSC and NSD over cases at every click, per `by` group (model, class, policy): the curves a report
    draws. Curves stopped early on a perfect mask already carry repeated scores, so every click has all cases."""
    keys = [key for key in by if key in rows.columns]
    return rows.groupby([*keys, "click"], sort=True)[["dsc", "nsd"]].mean().reset_index()
