"""One target's scores under a protocol's scoring rules: (DSC, NSD at the tolerance, predicted voxels) of a
boolean prediction against its boolean reference. Pure: numpy in, numbers out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protocols.case import evaluate_case
from protocols.protocol import DICE_VARIANTS, EMPTY_TARGETS
from protocols.errors import BenchError


def plus_one_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """SegVol's Dice, 2|P and R| / (|P| + |R| + 1) (BAAI-DCAI/SegVol@5768c97 inference_demo.py, dice_score)."""
    pred, ref = pred.astype(bool), ref.astype(bool)
    overlap = int(np.count_nonzero(pred & ref))
    return 2.0 * overlap / (int(np.count_nonzero(pred)) + int(np.count_nonzero(ref)) + 1.0)


def check_rules(dice: str, empty: str) -> None:
    """An unknown Dice variant or empty-target policy is an error, never scored as the default."""
    if dice not in DICE_VARIANTS:
        raise BenchError(f"dice must be one of {DICE_VARIANTS}, got {dice!r}")
    if empty not in EMPTY_TARGETS:
        raise BenchError(f"empty must be one of {EMPTY_TARGETS}, got {empty!r}")


def target_scores(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], *, tolerance_mm: float = 1.0,
                  dice: str = "standard", empty: str = "sat") -> tuple[float, float, int]:
    """(DSC, NSD@tolerance, predicted voxels). `dice` is a `DICE_VARIANTS` name; `empty` an `EMPTY_TARGETS` one
    (`skip` leaves empty targets out before scoring, so what reaches here scores as `sat`)."""
    check_rules(dice, empty)
    result = evaluate_case(pred.astype(np.uint8), ref.astype(np.uint8), spacing, {"target": 1}, tolerance_mm,
                           "nan" if empty == "nan" else "sat")[0]
    dsc = plus_one_dice(pred, ref) if dice == "plus_one" else result.dsc
    return dsc, result.nsd, result.pred_voxels
