"""run.json files of earlier versions, read in today's shape.

Before the one spec (`bench.engine.spec`), `bench evaluate` wrote its scoring settings as top-level fields
(`tolerance_mm`, `empty_policy`, `grid`, `distances`, `metrics`, `ignore_label`, `lesion_*`); today they are its
protocol's scoring (`protocols.protocol.evaluation_protocol`), as a model run's are. `upgraded` rewrites the old
fields into that protocol, so an old run folder resumes under the same settings and every view reads one shape.
"""

from __future__ import annotations

OLD_EVALUATE_FIELDS = ("tolerance_mm", "empty_policy", "grid", "distances", "metrics", "ignore_label",
                       "lesion_classes", "lesion_connectivity", "lesion_matcher", "lesion_match_iou",
                       "lesion_instance_maps")


def upgraded(config: dict) -> dict:
    """`config` in today's shape: an old `bench evaluate` run.json (no `protocol`) gets its scoring fields as its
    protocol; anything else is returned as it is. Fields an old version did not write take the value that
    version scored with (native grid, 1 mm, empty policy `sat`)."""
    if "protocol" in config or not (config.get("command") == "evaluate" or "tolerance_mm" in config):
        return config
    from protocols.class_metrics import DISTANCE_NAMES, LESION, parse_metrics  # only old runs need these
    from protocols.protocol import LesionMatching, evaluation_protocol

    metrics = parse_metrics(config.get("metrics") or (DISTANCE_NAMES if config.get("distances") else ()))
    lesion_classes = config.get("lesion_classes")
    lesions = (LesionMatching(None if lesion_classes is None else tuple(lesion_classes),
                              config.get("lesion_connectivity"), config.get("lesion_matcher", "hungarian"),
                              float(config.get("lesion_match_iou", 0.5)), bool(config.get("lesion_instance_maps")))
               if LESION in metrics else None)
    protocol = evaluation_protocol(grid=config.get("grid", "native"),
                                   tolerance_mm=float(config.get("tolerance_mm", 1.0)),
                                   empty=config.get("empty_policy", "sat"), metrics=metrics,
                                   ignore_label=config.get("ignore_label"), lesions=lesions)
    kept = {key: value for key, value in config.items() if key not in OLD_EVALUATE_FIELDS}
    return {**kept, "command": "evaluate", "protocol": protocol.to_json()}
