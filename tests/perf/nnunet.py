"""Predicting one AMOS-size case with SAT-DS's AMOS22 specialist (Dataset003 plans, random weights), end to end.

The case is the real AMOS22 label (512 x 512 x 82 at 0.78 x 0.78 x 5 mm) with a synthetic CT drawn from it (organ
intensities plus noise), converted by `baselines.nnunet.convert` as SAT's test case. The model folder holds
SAT-DS's released plans and a checkpoint of nnU-Net's own He-initialised network. Timed in one run: nnU-Net's
predictor (child process: start, preprocessing/resampling to 2 x 0.69 x 0.69 mm, sliding window, export) and the
project's part (ingestion under the unified classes and DSC/NSD scoring of all 16 classes). The seconds and each
part's share are printed; the network's cost scales with the window count (step size) and 8x with mirroring.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from baselines.nnunet import ingest, stages
from baselines.nnunet.convert import convert_dataset
from baselines.nnunet.plans import installed_plans, sat_plans_file
from baselines.nnunet.workspace import SAT_PLANS, Workspace
from bench.data.catalog import load_catalog
from tests.perf import timed
from bench.data.catalog.cases import CaseSource

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
AMOS = SHARED / "data" / "amos" / "amos_0013_label.nii.gz"


def synthetic_ct(label_path: Path, folder: Path, case: str, slices: int | None,
                 rng: np.random.Generator) -> tuple[Path, Path]:
    """A CT-like image on the label's grid (air outside the body, organ intensities in HU, Gaussian noise) and the
    label, both cut to the `slices` central slices when asked (geometry kept: the affine moves with the cut)."""
    label = nib.load(str(label_path))
    labels = np.asarray(label.dataobj)
    affine = label.affine.copy()
    if slices is not None and slices < labels.shape[2]:
        first = (labels.shape[2] - slices) // 2
        labels = labels[:, :, first:first + slices]
        affine[:3, 3] = label.affine[:3, :3] @ np.array([0, 0, first]) + label.affine[:3, 3]
    organ_hu = np.concatenate([[-80.0], rng.uniform(20, 200, int(labels.max()))])
    image = organ_hu[labels] + rng.normal(0, 15, labels.shape)
    image[:, :40] = -1000.0
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), str(folder / f"{case}_image.nii.gz"))
    nib.save(nib.Nifti1Image(labels, affine, label.header), str(folder / f"{case}_label.nii.gz"))
    return folder / f"{case}_image.nii.gz", folder / f"{case}_label.nii.gz"


def sliding_windows(shape_xyz, spacing_xyz, configuration: dict, step_size: float) -> int:
    """Windows nnU-Net's predictor runs on a case: the (z, y, x) shape resampled to the plans' spacing, padded to
    the patch, stepped by `step_size` of the patch."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    patch = configuration["patch_size"]
    shape = [max(round(n * s / t), p) for n, s, t, p in
             zip(shape_xyz[::-1], spacing_xyz[::-1], configuration["spacing"], patch)]
    return int(np.prod([len(steps) for steps in compute_steps_for_sliding_window(shape, patch, step_size)]))


def write_model(folder: Path, plans: dict, description: dict, seed: int) -> Path:
    """nnU-Net model folder (plans.json, dataset.json, fold_0/checkpoint_final.pth) with He-initialised weights."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    config = PlansManager(json.loads(json.dumps(plans))).get_configuration("3d_fullres")
    with torch.random.fork_rng(devices=[]):  # module initialisers draw from torch's global generator: seed it
        torch.manual_seed(seed)              # for this network only and restore the caller's state after
        network = get_network_from_plans(config.network_arch_class_name, config.network_arch_init_kwargs,
                                         config.network_arch_init_kwargs_req_import, 1,
                                         len(description["labels"]), allow_init=True, deep_supervision=False)
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(description))
    torch.save({"network_weights": network.state_dict(), "trainer_name": "nnUNetTrainer",
                "init_args": {"configuration": "3d_fullres"}, "inference_allowed_mirroring_axes": (0, 1, 2)},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder


def ours_on_full_case(info, model: Path, scratch: Path):
    """The Timing of ingestion + scoring on the full AMOS case, its converted reference standing in for a
    prediction (the network's output is not needed to time our part); and the number of rows."""
    workspace = Workspace(scratch / "full")
    source = CaseSource(info.test_ids[0], AMOS, AMOS, "CT", info.mask_values, info.name)
    convert_dataset(info, [source], workspace.raw)
    references = workspace.raw / info.nnunet_name / "labelsTs"
    outcome, timing = timed(_ingest_and_score, info, references, model, references, scratch / "full-scored")
    return timing, len(outcome.table)


def _ingest_and_score(info, predictions: Path, model: Path, references: Path, scratch: Path):
    """Our part of the specialist pipeline: the predictions ingested and scored."""
    folder = ingest.ingest(info, predictions, model, scratch / "ingested")
    return ingest.score(info, folder, references, scratch / "run", progress=False)


def _children_cpu() -> float:
    """CPU seconds of this process's finished child processes (the predictor runs in one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--satds", type=Path, default=SHARED / "satds", help="SAT-DS folder holding nnunet/")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--step-size", type=float, default=0.5, help="sliding-window step (nnU-Net default 0.5)")
    parser.add_argument("--mirroring", action="store_true", help="test-time mirroring (8x the network time)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the predictor")
    parser.add_argument("--slices", type=int, default=None,
                        help="cut the case to this many central slices (default: all 82, the full AMOS case)")
    args = parser.parse_args()

    info = load_catalog().dataset("AMOS22_CT")
    rng = np.random.default_rng(0)
    full = nib.load(str(AMOS))
    with tempfile.TemporaryDirectory(prefix="perf-nnunet-") as scratch:
        scratch = Path(scratch)
        workspace = Workspace(scratch / "work")
        case = info.test_ids[0].removesuffix(".nii.gz")
        image, label = synthetic_ct(AMOS, scratch / "case", case, args.slices, rng)
        convert_dataset(info, [CaseSource(info.test_ids[0], image, label, "CT", info.mask_values, info.name)],
                        workspace.raw)
        raw = workspace.raw / info.nnunet_name
        plans = installed_plans(json.loads(sat_plans_file(args.satds, info).read_text()), raw.name, SAT_PLANS)
        configuration = plans["configurations"]["3d_fullres"]
        model = write_model(scratch / "model", plans, json.loads((raw / "dataset.json").read_text()), seed=0)
        settings = stages.Settings(device=args.device, threads=args.threads, quiet=True, workers=1)
        predictions = scratch / "predictions"

        children = _children_cpu()
        _, predicting = timed(stages.predict, workspace, info, model, predictions, step_size=args.step_size,
                              mirroring=args.mirroring, processes=0, settings=settings)
        predictor, predictor_cpu = predicting.wall, predicting.cpu + _children_cpu() - children
        outcome, scoring = timed(_ingest_and_score, info, predictions, model, raw / "labelsTs", scratch)
        ours = scoring.wall
        shape = nib.load(str(label)).shape
        spacing = full.header.get_zooms()
        windows = sliding_windows(shape, spacing, configuration, args.step_size)
        full_windows = sliding_windows(full.shape, spacing, configuration, args.step_size)
        ours_full = ours_on_full_case(info, model, scratch) if full_windows != windows else None

    total = predictor + ours
    print(f"AMOS22 case {'x'.join(map(str, shape))} voxels (full case {'x'.join(map(str, full.shape))}), Dataset003 "
          f"plans (patch {configuration['patch_size']}, spacing {configuration['spacing']}), random weights, "
          f"device {args.device}, step {args.step_size}, mirroring {'on' if args.mirroring else 'off'}")
    print(f"total                      {total:8.1f} s  (CPU {predictor_cpu + scoring.cpu:.1f} s)")
    print(f"nnU-Net predictor          {predictor:8.1f} s  ({100 * predictor / total:5.1f} %, CPU {predictor_cpu:.1f} s "
          f"with its child process)  child process: start, preprocessing, {windows} sliding windows "
          f"({predictor / windows:.1f} s each at most), export")
    print(f"ingestion + DSC/NSD (ours) {ours:8.1f} s  ({100 * ours / total:5.1f} %, CPU {scoring.cpu:.1f} s)  "
          f"{len(outcome.table)} (case, class) rows")
    if ours_full is not None:
        estimate = full_windows * predictor / windows
        print(f"full case: {full_windows} windows, predictor about {estimate:.0f} s at this run's seconds per window; "
              f"ingestion + DSC/NSD measured on it: {ours_full[0]:.1f} ({ours_full[1]} rows), "
              f"{100 * ours_full[0].wall / (estimate + ours_full[0].wall):.1f} % of the total")
