"""A trained nnU-Net specialist as a benchmark model: `bench run --model nnunet --checkpoint MODEL_FOLDER ...`.

A specialist takes no prompts: one forward pass of `nnUNetPredictor` segments every class of its dataset, and each
target (a unified class name of the catalog) is read from that one label map. The label map goes through the same
ingestion as `bench baselines nnunet predict` (`baselines.nnunet.ingest`): the model's label values (its
dataset.json) to the catalog's nnU-Net values, derived classes (kidney = left + right) as unions of values.

The image is handed to nnU-Net exactly as its prediction stage sees a test file: written once to a NIfTI with the
image's affine and read back with the reader the plans name (`image_reader_writer`, e.g. `NibabelIOWithReorient`);
the segmentation is written and read back with the same class, so it returns in the image's own voxel grid. The
checkpoints are read as weights only (`baselines.nnunet.worker.initialise_predictor`) unless `trust_checkpoint`.
On CPU, prediction uses as many torch threads as the prediction stage's child process does (nnU-Net caps them at
`nnUNet_def_n_proc`, cores - 1 here): convolutions sum in a thread-dependent order, and near-tied voxels would
otherwise flip between the two paths (`threads=N` overrides). Phases (`models.base.phase`): preprocess = the
image's file round trip, model = `predict_single_npy_array` (nnU-Net's own resampling and normalisation, the
sliding windows, the export to the image's grid), postprocess = the segmentation's file round trip and the label
lookup.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from baselines.nnunet import ingest
from baselines.nnunet.stages import available_folds
from baselines.nnunet.workspace import TRAINER_DIR, allowed_workers
from bench.data.catalog import DatasetInfo, load_catalog
from models.base import Capabilities, Image, Model, Target, UnsupportedPrompt, phase
from models.checkpoints import sha256_of
from protocols.errors import BenchError

LABELS_KEY = "_nnunet_labels"  # the state entry holding the image's label map in the catalog's nnU-Net values


@contextlib.contextmanager
def _project_trainers():
    """`nnUNet_extTrainer` names the project's trainers while nnU-Net looks a trainer up; restored afterwards."""
    before = os.environ.get("nnUNet_extTrainer")
    os.environ["nnUNet_extTrainer"] = os.pathsep.join(filter(None, [str(TRAINER_DIR), before]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("nnUNet_extTrainer", None)
        else:
            os.environ["nnUNet_extTrainer"] = before


@contextlib.contextmanager
def _torch_threads(threads: int):
    """Torch's CPU threads for one prediction, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def model_dataset(folder: Path, dataset: str | None = None) -> DatasetInfo:
    """The catalog dataset of a model folder: `dataset` if given, else the one whose nnU-Net folder name the
    plans carry (`dataset_name`, e.g. Dataset003_AMOS22CT)."""
    catalog = load_catalog()
    if dataset is not None:
        return catalog.dataset(dataset)
    name = json.loads((folder / "plans.json").read_text()).get("dataset_name")
    for info in catalog.datasets.values():
        if info.nnunet_name == name:
            return info
    raise BenchError(f"{folder / 'plans.json'}: dataset_name {name!r} is no SAT-DS specialist's folder; name the "
                     "dataset with --model-args dataset=NAME")


class NnUNet(Model):
    """A trained nnU-Net v2 model folder (plans.json, dataset.json, fold_X/checkpoint_final.pth) on 3D images."""

    name = "nnunet"
    version = "1"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset(), accumulates_clicks=False,
                                devices=frozenset({"cpu", "cuda"}), reports_phases=True)

    def __init__(self, *, checkpoint: str | Path, dataset: str | None = None, folds: str | None = None,
                 checkpoint_name: str = "checkpoint_final.pth", step_size: float = 0.5, mirroring: bool = True,
                 device: str = "cpu", threads: int | None = None, trust_checkpoint: bool = False):
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        from baselines.nnunet.worker import initialise_predictor

        folder = Path(checkpoint)
        missing = [name for name in ("plans.json", "dataset.json") if not (folder / name).is_file()]
        if missing:
            raise BenchError(f"{folder}: not a trained nnU-Net model folder (missing {', '.join(missing)})")
        fold_names = str(folds).split(",") if folds is not None else available_folds(folder, checkpoint_name)
        paths = [folder / f"fold_{fold}" / checkpoint_name for fold in fold_names]
        if not paths or not all(path.is_file() for path in paths):
            raise BenchError(f"{folder}: no {checkpoint_name} for fold(s) {', '.join(fold_names) or 'any'}")
        self.info = model_dataset(folder, dataset)
        self.lookup = ingest.model_lookup(self.info, folder)
        self.classes = self.info.nnunet_classes()
        fold_ids = [fold if fold == "all" else int(fold) for fold in fold_names]
        with contextlib.redirect_stdout(io.StringIO()), _project_trainers():  # nnU-Net prints as it looks things up
            self.predictor = nnUNetPredictor(tile_step_size=float(step_size), use_gaussian=True,
                                             use_mirroring=bool(mirroring), perform_everything_on_device=False,
                                             device=torch.device("cpu"), verbose=False, allow_tqdm=False)
            if trust_checkpoint:
                self.predictor.initialize_from_trained_model_folder(str(folder), fold_ids, checkpoint_name)
            else:
                try:
                    initialise_predictor(self.predictor, folder, fold_ids, checkpoint_name)
                except pickle.UnpicklingError as error:
                    reason = (str(error).strip().splitlines() or ["unpickling refused"])[0]
                    raise BenchError(f"{folder}: a checkpoint holds objects outside the allow-list ({reason}); load "
                                     "it only if you trust it (--trust-checkpoint)") from None
                except (KeyError, RuntimeError, EOFError) as error:
                    raise BenchError(f"{folder}: not a readable nnU-Net checkpoint ({type(error).__name__}: "
                                     f"{error})") from None
        self.network = self.predictor.network.eval()  # nnU-Net switches it only when it predicts
        self.threads = int(threads) if threads else min(allowed_workers(), torch.get_num_threads())
        self.checkpoint = str(folder)
        self.checkpoint_sha256 = sha256_of(paths[0]) if len(paths) == 1 else None
        self.to(device)

    def to(self, device: str) -> NnUNet:
        import torch

        super().to(device)
        self.predictor.device = torch.device(device)
        self.predictor.perform_everything_on_device = device == "cuda"
        return self

    def batch_settings(self) -> dict[str, Any]:
        """The sliding-window step, the axes test-time mirroring flips (none when off or the checkpoint allows
        none: nnU-Net's `mirror_axes`), torch's CPU threads in the prediction."""
        axes = self.predictor.allowed_mirroring_axes if self.predictor.use_mirroring else None
        return {"tile_step_size": self.predictor.tile_step_size, "mirror_axes": list(axes or ()),
                "threads": self.threads}

    def load_checkpoint(self, path: str, *, trust: bool = False) -> Model:
        raise BenchError("nnunet is built from its trained-model folder: give it as --checkpoint")

    def label_map(self, image: Image) -> np.ndarray:
        """The predicted label map in the image's voxel grid, in the catalog's nnU-Net label values."""
        import nibabel as nib

        manager = self.predictor.plans_manager
        io = manager.image_reader_writer_class()
        with tempfile.TemporaryDirectory(prefix="nnunet-") as tmp:
            image_file, seg_file = Path(tmp) / "case_0000.nii", Path(tmp) / "case.nii"  # uncompressed: fast
            with phase("preprocess"):
                nib.save(nib.Nifti1Image(np.asarray(image.array, np.float32), image.affine), str(image_file))
                data, properties = io.read_images([str(image_file)])
            with _torch_threads(self.threads), phase("model"):
                segmentation = self.predictor.predict_single_npy_array(data, properties)
            with phase("postprocess"):
                io.write_seg(np.asarray(segmentation), str(seg_file), properties)
                labels = np.asanyarray(nib.load(str(seg_file)).dataobj)
        with phase("postprocess"):
            table = np.zeros(max([*self.lookup, int(labels.max(initial=0))]) + 1, np.int32)
            for value, target in self.lookup.items():
                table[value] = target
            return table[labels]

    def _segment(self, image: Image, targets: Sequence[Target], state: dict[str, Any]) -> dict[str, np.ndarray]:
        unknown = [target.name for target in targets if target.name not in self.classes]
        if unknown:
            raise UnsupportedPrompt(f"nnunet ({self.info.name}) segments {', '.join(self.classes)}; not "
                                    f"{', '.join(unknown)}")
        if LABELS_KEY not in state:
            state[LABELS_KEY] = self.label_map(image)
        labels = state[LABELS_KEY]
        return {target.name: np.isin(labels, self.classes[target.name]) for target in targets}


def nnunet(*, checkpoint: str | Path, **options) -> NnUNet:
    """The registry's factory: a trained nnU-Net model folder (`--checkpoint`), options as `NnUNet` takes them."""
    return NnUNet(checkpoint=checkpoint, **options)
