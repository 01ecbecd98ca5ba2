"""A short nnU-Net trainer for smoke runs: one epoch of two iterations, no mirroring (augmentation or inference).

nnU-Net v2 (2.8) finds trainers by class name, first inside `nnunetv2.training.nnUNetTrainer`, then in every folder
listed in `nnUNet_extTrainer`, importing each module of that folder as a top-level module. This file must therefore
import nothing from the project: it is loaded both by training and by prediction (the checkpoint names its trainer).
"""

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_BenchSmoke(nnUNetTrainer):
    """The default trainer, cut to 1 epoch x 2 iterations (1 validation iteration) and without mirroring."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None
