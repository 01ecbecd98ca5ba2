"""One nnU-Net stage in a child process: `python -m baselines.nnunet.worker SPEC.json`.

The parent (`baselines.nnunet.stages`) sets nnU-Net's environment for this process before anything of nnunetv2 is
imported (`nnUNet_def_n_proc` is read at import). nnU-Net starts its pools with the "spawn" method, which re-imports
the main module in every worker: everything below runs only under the `__main__` guard.

A failing stage writes its traceback to the spec's `log` file and exits 1 with one line on stderr.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

CHECKPOINT_GLOBALS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype")


def plan(spec: dict) -> None:
    """Fingerprint and plan with nnU-Net's planner (unless the plans are installed already), then preprocess."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess

    dataset_id, processes = int(spec["dataset_id"]), int(spec["processes"])
    identifier = spec["plans_identifier"]
    if spec["run_planner"]:
        extract_fingerprints([dataset_id], num_processes=processes, check_dataset_integrity=True,
                             show_progress_bar=False)
        identifier = plan_experiments([dataset_id], experiment_planner_class_name=spec["planner"],
                                      overwrite_plans_name=None if identifier == "nnUNetPlans" else identifier)
    preprocess([dataset_id], plans_identifier=identifier, configurations=tuple(spec["configurations"]),
               num_processes=(processes,), show_progress_bar=False)


def train(spec: dict) -> None:
    import torch
    from nnunetv2.run.run_training import run_training

    run_training(str(spec["dataset"]), spec["configuration"], spec["fold"], trainer_class_name=spec["trainer"],
                 plans_identifier=spec["plans_identifier"], continue_training=bool(spec["continue_training"]),
                 device=torch.device(spec["device"]))


def _safe_globals():
    """The non-tensor types an nnU-Net checkpoint pickles (numpy scalars in its logs), as objects."""
    import importlib

    found = []
    for dotted in CHECKPOINT_GLOBALS:
        module, _, name = dotted.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    import numpy as np

    found.extend(type(np.dtype(kind)) for kind in ("float64", "float32", "int64", "int32"))
    return found


def load_checkpoint(path: Path) -> dict:
    """An nnU-Net checkpoint read without running pickled code: tensors, containers, numpy scalars only."""
    import torch

    with torch.serialization.safe_globals(_safe_globals()):
        return torch.load(path, map_location=torch.device("cpu"), weights_only=True)


def initialise_predictor(predictor, model_folder: Path, folds: list, checkpoint_name: str) -> None:
    """nnUNetPredictor.initialize_from_trained_model_folder, but with checkpoints loaded as weights only."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    plans_manager = PlansManager(json.loads((model_folder / "plans.json").read_text()))
    checkpoints = [load_checkpoint(model_folder / f"fold_{fold}" / checkpoint_name) for fold in folds]
    first = checkpoints[0]
    configuration = plans_manager.get_configuration(first["init_args"]["configuration"])
    trainer_class = recursive_find_trainer_class_by_name(first["trainer_name"])
    network = trainer_class.build_network_architecture(
        plans_manager, configuration, determine_num_input_channels(plans_manager, configuration, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False)
    parameters = [checkpoint["network_weights"] for checkpoint in checkpoints]
    network.load_state_dict(parameters[0])
    mirroring = first.get("inference_allowed_mirroring_axes")
    predictor.manual_initialization(network, plans_manager, configuration, parameters, dataset_json,
                                    first["trainer_name"], tuple(mirroring) if mirroring is not None else None)


def predict(spec: dict) -> None:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    device = torch.device(spec["device"])
    predictor = nnUNetPredictor(tile_step_size=float(spec["step_size"]), use_gaussian=True,
                                use_mirroring=bool(spec["mirroring"]), perform_everything_on_device=device.type == "cuda",
                                device=device, verbose=False, allow_tqdm=bool(spec["progress"]))
    folds = [fold if fold == "all" else int(fold) for fold in spec["folds"]]
    initialise_predictor(predictor, Path(spec["model_folder"]), folds, spec["checkpoint_name"])
    inputs = [[str(path)] for path in spec["images"]]
    outputs = [str(Path(spec["output_folder"]) / case) for case in spec["cases"]]
    if int(spec["processes"]) == 0:
        predictor.predict_from_files_sequential(inputs, outputs, save_probabilities=False, overwrite=True)
    else:
        predictor.predict_from_files(inputs, outputs, save_probabilities=False, overwrite=True,
                                     num_processes_preprocessing=int(spec["processes"]),
                                     num_processes_segmentation_export=int(spec["processes"]))


STAGES = {"plan": plan, "train": train, "predict": predict}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    log = Path(spec["log"])
    try:
        if spec.get("threads"):
            import torch

            torch.set_num_threads(int(spec["threads"]))
        STAGES[spec["stage"]](spec)
    except BaseException as error:  # noqa: BLE001 - the parent gets one line, the log the whole traceback
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        print(f"nnU-Net {spec['stage']} failed: {type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
