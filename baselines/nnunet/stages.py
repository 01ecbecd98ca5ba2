"""nnU-Net's pipeline stages for one SAT-DS dataset: plan (+ preprocess), train, predict.

Each stage runs nnunetv2's own Python API in a child process (`baselines.nnunet.worker`) with the environment of
`baselines.nnunet.workspace`, so nnU-Net's global settings (paths, pool sizes, torch threads) never leak into the
caller and its "spawn" pools always find a guarded main module. Inputs are checked here first, so a wrong call
fails with one line naming the missing file, before a child starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from baselines.nnunet.convert import FILE_ENDING
from baselines.nnunet.plans import install_plans, sat_plans_file
from baselines.nnunet.workspace import NNUNET_PLANS, SAT_PLANS, Workspace, allowed_workers, stage_environment
from bench.data.catalog import DatasetInfo
from bench.data.io import InputError
from protocols.errors import BenchError

DEFAULT_TRAINER = "nnUNetTrainer"
DEFAULT_CONFIGURATION = "3d_fullres"


class StageError(BenchError):
    """An nnU-Net stage failed in its child process; the message gives the error line and the log file."""

    kind = "model"


@dataclass(frozen=True)
class Settings:
    """How stages run: device, nnU-Net pool sizes, torch threads, and whether nnU-Net's output is shown."""

    device: str = "cpu"
    workers: int | None = None  # nnU-Net's pools (fingerprint, preprocessing, export): default cores - 1
    da_workers: int | None = None  # nnUNet_n_proc_DA: default 0 on CPU, min(12, cores) on GPU
    threads: int | None = None
    quiet: bool = False


def run_stage(workspace: Workspace, stage: str, spec: dict, settings: Settings) -> None:
    """Run `stage` with `spec` in a child process; StageError with the error line and log path on failure."""
    logs = workspace.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = f"{stage}-{spec.get('dataset', 'x')}-{time.strftime('%Y%m%d-%H%M%S')}-{time.perf_counter_ns() % 10**6}"
    log = logs / f"{stamp}.log"
    spec_file = logs / f"{stamp}.json"
    spec_file.write_text(json.dumps({**spec, "stage": stage, "log": str(log), "threads": settings.threads},
                                    indent=2))
    env = stage_environment(workspace, stage, settings.device, settings.workers, settings.da_workers)
    command = [sys.executable, "-m", "baselines.nnunet.worker", str(spec_file)]
    if settings.quiet:
        with open(log.with_suffix(".out"), "w") as output:
            result = subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT, check=False)
    else:
        result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        lines = log.read_text().strip().splitlines() if log.is_file() else []
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise StageError(f"nnU-Net {stage} of {spec.get('dataset')} failed: {reason} (log: {log})")


def raw_folder(workspace: Workspace, info: DatasetInfo) -> Path:
    folder = workspace.raw / info.nnunet_name
    if not (folder / "dataset.json").is_file():
        raise InputError(f"{folder}: no converted dataset; run `bench baselines nnunet convert --dataset {info.name}`")
    return folder


def plan(workspace: Workspace, info: DatasetInfo, use_sat_plans: bool, satds: Path | None = None,
         configurations: tuple[str, ...] = (DEFAULT_CONFIGURATION,), settings: Settings = Settings()) -> str:
    """Plan and preprocess; returns the plans identifier (SAT_PLANS for SAT-DS's plans, else NNUNET_PLANS)."""
    raw = raw_folder(workspace, info)
    if use_sat_plans:
        if satds is None:
            raise InputError("--use-sat-plans needs --satds PATH (the SAT-DS folder holding nnunet/DatasetNNN_Name/)")
        install_plans(sat_plans_file(satds, info), raw, workspace.preprocessed, SAT_PLANS)
        identifier, planner = SAT_PLANS, False
    else:
        identifier, planner = NNUNET_PLANS, True
    spec = {"dataset": info.nnunet_name, "dataset_id": info.nnunet_id, "run_planner": planner,
            "planner": "ExperimentPlanner", "plans_identifier": identifier, "configurations": list(configurations),
            "processes": allowed_workers(settings.workers)}
    run_stage(workspace, "plan", spec, settings)
    return identifier


def installed_plans(workspace: Workspace, info: DatasetInfo) -> list[str]:
    """Plans identifiers present for a dataset, SAT-DS's first."""
    folder = workspace.preprocessed / info.nnunet_name
    return [name for name in (SAT_PLANS, NNUNET_PLANS) if (folder / f"{name}.json").is_file()]


def resolve_plans(workspace: Workspace, info: DatasetInfo, requested: str | None) -> str:
    """The requested plans identifier if installed, else SAT-DS's plans if installed, else nnU-Net's."""
    present = installed_plans(workspace, info)
    if requested is not None:
        if not (workspace.preprocessed / info.nnunet_name / f"{requested}.json").is_file():
            raise InputError(f"{workspace.preprocessed / info.nnunet_name / (requested + '.json')}: plans not found; "
                             f"run `bench baselines nnunet plan --dataset {info.name}` first")
        return requested
    if not present:
        raise InputError(f"{workspace.preprocessed / info.nnunet_name}: no plans; "
                         f"run `bench baselines nnunet plan --dataset {info.name}` first")
    return present[0]


def train(workspace: Workspace, info: DatasetInfo, fold: str = "0", configuration: str = DEFAULT_CONFIGURATION,
          trainer: str = DEFAULT_TRAINER, plans_identifier: str | None = None,
          settings: Settings = Settings()) -> tuple[Path, str]:
    """Train one fold (resuming from `checkpoint_latest.pth`); returns (model folder, "trained" | "done")."""
    plans_identifier = resolve_plans(workspace, info, plans_identifier)
    model = workspace.model_folder(info.nnunet_name, trainer, plans_identifier, configuration)
    fold_folder = model / f"fold_{fold}"
    if (fold_folder / "checkpoint_final.pth").is_file() and (fold_folder / "validation" / "summary.json").is_file():
        return model, "done"
    spec = {"dataset": info.nnunet_name, "configuration": configuration, "fold": fold, "trainer": trainer,
            "plans_identifier": plans_identifier, "device": settings.device,
            "continue_training": (fold_folder / "checkpoint_latest.pth").is_file()
            or (fold_folder / "checkpoint_final.pth").is_file()}
    run_stage(workspace, "train", spec, settings)
    return model, "trained"


def available_folds(model_folder: Path, checkpoint_name: str = "checkpoint_final.pth") -> list[str]:
    """Folds with a checkpoint: `all` alone if present, else 0-4 in order."""
    found = sorted(p.parent.name.removeprefix("fold_") for p in model_folder.glob(f"fold_*/{checkpoint_name}"))
    if "all" in found:
        return ["all"]
    return sorted(found, key=int)


def predict(workspace: Workspace, info: DatasetInfo, model_folder: Path, output_folder: Path,
            folds: list[str] | None = None, checkpoint_name: str = "checkpoint_final.pth", step_size: float = 0.5,
            mirroring: bool = True, processes: int | None = None, settings: Settings = Settings()) -> list[str]:
    """nnUNetPredictor on the dataset's test images (`imagesTs`); returns the predicted case ids."""
    for name in ("dataset.json", "plans.json"):
        if not (model_folder / name).is_file():
            raise InputError(f"{model_folder / name}: not found (a trained nnU-Net model folder holds "
                             "dataset.json, plans.json and fold_X/checkpoint_final.pth)")
    folds = folds or available_folds(model_folder, checkpoint_name)
    missing = [f for f in folds if not (model_folder / f"fold_{f}" / checkpoint_name).is_file()]
    if not folds or missing:
        raise InputError(f"{model_folder}: no {checkpoint_name} for fold(s) {', '.join(missing) or 'any'}")
    images = sorted((raw_folder(workspace, info) / "imagesTs").glob(f"*_0000{FILE_ENDING}"))
    if not images:
        raise InputError(f"{raw_folder(workspace, info) / 'imagesTs'}: no test images")
    cases = [image.name[: -len(f"_0000{FILE_ENDING}")] for image in images]
    output_folder.mkdir(parents=True, exist_ok=True)
    if processes is None:
        processes = 0 if settings.device == "cpu" else 2
    spec = {"dataset": info.nnunet_name, "model_folder": str(model_folder.resolve()), "folds": folds,
            "checkpoint_name": checkpoint_name, "images": [str(i.resolve()) for i in images], "cases": cases,
            "output_folder": str(output_folder.resolve()), "device": settings.device, "step_size": step_size,
            "mirroring": mirroring, "processes": processes, "progress": not settings.quiet}
    run_stage(workspace, "predict", spec, settings)
    return cases
