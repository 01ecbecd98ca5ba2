"""Where nnU-Net's files live and the environment each nnU-Net stage runs under, set by the project per run.

nnU-Net v2 is configured through environment variables: `nnUNet_raw`, `nnUNet_preprocessed`, `nnUNet_results`
(its three folders), `nnUNet_extTrainer` (extra trainer folders), `nnUNet_n_proc_DA` (augmentation workers) and
`nnUNet_def_n_proc` (default pool size, read once when nnunetv2 is imported). A user never sets them: every stage
runs in a child process (`baselines.nnunet.worker`) whose environment is built here from one workspace folder.

Rule for `nnUNet_n_proc_DA`: at least 1 while planning (the planner calls `torch.set_num_threads` with it; 0 fails),
0 for training on CPU (single-threaded augmentation, no worker processes), nnU-Net's own cap on GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TRAINER_DIR = Path(__file__).resolve().parent / "trainers"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORKSPACE = Path("results/nnunet")
SAT_PLANS = "nnUNetPlans_SATDS"  # plans identifier of SAT-DS's shipped plans once installed
NNUNET_PLANS = "nnUNetPlans"  # plans identifier of nnU-Net's own planner
SMOKE_TRAINER = "nnUNetTrainer_BenchSmoke"


@dataclass(frozen=True)
class Workspace:
    """nnU-Net's three folders under one root: `raw/`, `preprocessed/`, `results/`; predictions under `predictions/`."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    def model_folder(self, dataset_folder: str, trainer: str, plans: str, configuration: str) -> Path:
        """nnU-Net's training output folder: `results/<dataset>/<trainer>__<plans>__<configuration>`."""
        return self.results / dataset_folder / f"{trainer}__{plans}__{configuration}"


def allowed_workers(requested: int | None = None) -> int:
    """Processes for nnU-Net's pools: as requested, else cores - 1, at least 1."""
    if requested is not None:
        return max(1, requested)
    return max(1, (os.cpu_count() or 2) - 1)


def augmentation_workers(stage: str, device: str, requested: int | None = None) -> int:
    """`nnUNet_n_proc_DA` for a stage: >= 1 when planning, 0 for CPU training, else nnU-Net's 12 capped by cores."""
    if stage == "plan":
        return max(1, requested or 1)
    if requested is not None:
        return max(0, requested)
    return 0 if device == "cpu" else min(12, os.cpu_count() or 1)


def stage_environment(workspace: Workspace, stage: str, device: str = "cpu", workers: int | None = None,
                      da_workers: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The full environment of a child process running one nnU-Net stage."""
    env = dict(os.environ if base is None else base)
    env.update({
        "nnUNet_raw": str(workspace.raw.resolve()),
        "nnUNet_preprocessed": str(workspace.preprocessed.resolve()),
        "nnUNet_results": str(workspace.results.resolve()),
        "nnUNet_extTrainer": str(TRAINER_DIR),
        "nnUNet_def_n_proc": str(allowed_workers(workers)),
        "nnUNet_n_proc_DA": str(augmentation_workers(stage, device, da_workers)),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")])),
    })
    return env
