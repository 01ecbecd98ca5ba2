"""The one spec of a run: everything that determines its numbers, stored in run.json (resuming requires equality).

Both commands that store runs build a `RunSpec`: `bench run` / `bench clicks` name a registry model that the engine
builds and runs on each case (`bench.engine.runner`), `bench evaluate` names a model whose answers are on disk
(`predictions`: the folder of its prediction files, scored by `bench.engine.evaluation`). Either way the protocol
says how cases are prompted and scored; `bench evaluate`'s is `protocols.protocol.evaluation_protocol` (no
prompts; its grid, tolerance, empty rule, metrics, ignore label and lesion matching). What a case brings of its
own (dataset, modality, class map, SAT-DS orientation) travels with the case (`CaseSource`, `CasePair`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from protocols.protocol import Protocol


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """A run: its name, the model, the protocol, and either the folder of the model's answers on disk
    (`predictions`) or how the model is built and run (the other fields)."""

    run: str
    model: str
    protocol: Protocol
    predictions: str | None = None  # bench evaluate: the prediction folder (resolved), the model's answers
    model_args: Mapping[str, object] = field(default_factory=dict)
    checkpoint: str | None = None
    trust_checkpoint: bool = False
    device: str = "cpu"
    classes: tuple[str, ...] | None = None
    replay: str | None = None
    weights: tuple[dict, ...] = ()  # the official files used, checked against models/weights.yaml (bench.engine.weights)

    @property
    def on_disk(self) -> bool:
        """Whether the model's answers are files on disk (`bench evaluate`), not a model to run."""
        return self.predictions is not None

    def as_config(self) -> dict:
        """run.json's record of the spec (the caller adds what the cases bring and what it does not compare)."""
        if self.on_disk:
            return {"command": "evaluate", "run": self.run, "model": self.model,
                    "protocol": self.protocol.to_json(), "pred_dir": self.predictions}
        config = {key: value for key, value in asdict(self).items() if key != "predictions"}
        config.update(command="run", protocol=self.protocol.to_json())
        if config.pop("trust_checkpoint") and self.checkpoint:
            config["trusted_checkpoint"] = self.checkpoint  # unpickled whole: named, not compared on resume
        return config
