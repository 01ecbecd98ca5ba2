"""Prompt types, per-prompt random generators and the JSON form that lets a run be replayed exactly.

Coordinates are voxel indices in the image's native array order (i, j, k), never millimetres. Every random
choice takes an explicit `numpy.random.Generator`; `prompt_rng` derives one for a (case, class, policy,
click) from a single run seed by hashing, so two models given the same run seed see the same first prompts
and nothing depends on global random state or on the order in which cases are processed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from protocols.errors import BenchError

PROMPT_KINDS = ("text", "points", "boxes", "mask", "reference")


@dataclass(frozen=True)
class Click:
    """One point prompt: a voxel index and whether it marks the target (positive) or background (negative)."""

    point: tuple[int, ...]
    positive: bool

    def to_json(self) -> dict:
        return {"point": [int(c) for c in self.point], "positive": bool(self.positive)}

    @classmethod
    def from_json(cls, data: dict) -> Click:
        return cls(tuple(int(c) for c in data["point"]), bool(data["positive"]))


@dataclass(frozen=True)
class Box:
    """An axis-aligned box of voxel indices, inclusive at both ends (`lo[a] <= hi[a]` on every axis)."""

    lo: tuple[int, ...]
    hi: tuple[int, ...]

    def __post_init__(self):
        if len(self.lo) != len(self.hi) or any(a > b for a, b in zip(self.lo, self.hi)):
            raise BenchError(f"invalid box lo={self.lo} hi={self.hi}")


@dataclass(frozen=True, eq=False)
class Prompt:
    """What a model is given in one call. Only the kinds a model declares may be set.

    `mask` is a previous-mask prompt (bool array in the image grid); `reference` is the ground truth, a
    channel only oracles used for pipeline tests may declare.
    """

    points: tuple[Click, ...] = ()
    boxes: tuple[Box, ...] = ()
    text: str | None = None
    mask: np.ndarray | None = field(default=None, repr=False)
    reference: np.ndarray | None = field(default=None, repr=False)

    def kinds(self) -> frozenset[str]:
        present = {
            "points": bool(self.points),
            "boxes": bool(self.boxes),
            "text": self.text is not None,
            "mask": self.mask is not None,
            "reference": self.reference is not None,
        }
        return frozenset(kind for kind, used in present.items() if used)


def prompt_rng(run_seed: int, case_id: str, class_name: str, policy: str, click: int) -> np.random.Generator:
    """The generator for one prompt, derived from the run seed and the prompt's identity by SHA-256."""
    key = json.dumps([int(run_seed), str(case_id), str(class_name), str(policy), int(click)])
    digest = hashlib.sha256(key.encode()).digest()
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest[:16], "little")))


def clicks_to_json(*, case_id: str, class_name: str, policy: str, first_click: str, seed: int,
                   clicks: list[Click], replayed_from: str | None = None) -> dict:
    """The JSON record of the clicks given for one (case, class), with everything needed to replay them;
    `replayed_from` names the run whose stored clicks came first (they were not made by this seed)."""
    return {
        "replayed_from": replayed_from,
        "case_id": case_id,
        "class_name": class_name,
        "policy": policy,
        "first_click": first_click,
        "seed": int(seed),
        "clicks": [dict(click.to_json(), click=k) for k, click in enumerate(clicks, start=1)],
    }


def clicks_from_json(record: dict) -> list[Click]:
    """The clicks of a record written by `clicks_to_json`, in click order."""
    ordered = sorted(record["clicks"], key=lambda item: item["click"])
    return [Click.from_json(item) for item in ordered]
