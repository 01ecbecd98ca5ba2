"""Derived classes as declarative rules: a class is the union of source channels, as SAT-DS's loaders build them.

A rule `(target, sources)` sets target = union of its sources, where a source is a label-map channel or a class
set by an earlier rule; a rule may widen a channel of its own name (KiTS23: kidney = kidney + tumour + cyst).
Rules resolve to label values once, so any label map (SAT-DS mask, nnU-Net prediction) yields every class by a
single `np.isin`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from protocols.label_maps import class_mask

Rule = tuple[str, tuple[str, ...]]


def bilateral_rules(classes: Sequence[str], defined: set[str]) -> list[Rule]:
    """`X = left X + right X` for every class X not in `defined` whose left and right halves are classes too."""
    present = set(classes)
    return [
        (name, (f"left {name}", f"right {name}"))
        for name in classes
        if name not in defined and f"left {name}" in present and f"right {name}" in present
    ]


def resolve_rules(channels: Mapping[str, int], rules: Sequence[Rule]) -> dict[str, tuple[int, ...]]:
    """Label values of every channel and rule target, the rules applied in order; KeyError names a missing source."""
    values = {name: (int(value),) for name, value in channels.items()}
    for target, sources in rules:
        missing = [source for source in sources if source not in values]
        if missing:
            raise KeyError(f"rule {target!r}: unknown source(s) {missing}")
        values[target] = tuple(sorted({v for source in sources for v in values[source]}))
    return values


def class_masks(label_map: np.ndarray, class_values: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
    """One boolean mask per class from a label map and each class's label values."""
    return {name: class_mask(label_map, values) for name, values in class_values.items()}


def apply_rules(masks: Mapping[str, np.ndarray], rules: Sequence[Rule]) -> dict[str, np.ndarray]:
    """The same rules on per-channel binary masks (SAT's one-file-per-class layout): returns all masks, derived too."""
    out = {name: np.asarray(mask, bool) for name, mask in masks.items()}
    for target, sources in rules:
        missing = [source for source in sources if source not in out]
        if missing:
            raise KeyError(f"rule {target!r}: unknown source(s) {missing}")
        out[target] = np.logical_or.reduce([out[source] for source in sources])
    return out
