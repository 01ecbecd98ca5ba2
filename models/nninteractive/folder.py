"""A model folder in nnInteractive's trained-model layout, with random weights, for tests and benchmarks.

Real weights cannot be downloaded here; this writes what `initialize_from_trained_model_folder` reads
(nnInteractive 2.6.0 inference_session.py:2176-2303): `plans.json` (one configuration, a residual-encoder
U-Net), `dataset.json`, `inference_info.json` (legacy default capability: 7 interaction channels) and
`fold_0/checkpoint_final.pth` holding only plain data and tensors. The official model (Dataset225_nnInteractiveV2,
`3d_fullres_ps192_bs24`) has the same layout with a large network.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CONFIGURATION = "3d_fullres"


def _plans(patch_size: tuple[int, int, int], features: tuple[int, ...]) -> dict:
    stages = len(features)
    architecture = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
        "arch_kwargs": {
            "n_stages": stages, "features_per_stage": list(features), "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * stages, "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1),
            "n_blocks_per_stage": [1] * stages, "n_conv_per_stage_decoder": [1] * (stages - 1), "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": list(patch_size), "median_image_size_in_voxels": list(patch_size),
        "spacing": [1.0, 1.0, 1.0], "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": resampling,
        "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_seg_kwargs": {**resampling, "order": 1},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {**resampling, "order": 1},
        "architecture": architecture, "batch_dice": True,
    }
    return {
        "dataset_name": "Dataset999_RandomInteractive", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
        "original_median_shape_after_transp": list(patch_size), "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: configuration}, "experiment_planner_used": "none",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {"mean": 0.0, "std": 1.0, "median": 0.0,
                                                              "min": -1.0, "max": 1.0, "percentile_00_5": -1.0,
                                                              "percentile_99_5": 1.0}},
    }


def write_random_model_folder(path: Path, *, patch_size: tuple[int, int, int] = (64, 64, 64),
                              features: tuple[int, ...] = (4, 8, 16), seed: int = 0) -> Path:
    """Write a random-weights nnInteractive model folder at `path` and return it."""
    from nnInteractive.trainer.nnInteractiveTrainer import nnInteractiveTrainer_stub
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    path = Path(path)
    (path / "fold_0").mkdir(parents=True, exist_ok=True)
    plans = _plans(patch_size, features)
    dataset = {"channel_names": {"0": "image"}, "labels": {"background": 0, "object": 1}, "numTraining": 0,
               "file_ending": ".nii.gz"}
    (path / "plans.json").write_text(json.dumps(plans, indent=1))
    (path / "dataset.json").write_text(json.dumps(dataset, indent=1))
    (path / "inference_info.json").write_text(json.dumps(
        {"point_radius": 4, "interaction_decay": 0.98, "pad_mode_image": "constant"}))
    manager = PlansManager(plans)
    with torch.random.fork_rng(devices=[]):  # module initialisers draw from torch's global generator: seed it
        torch.manual_seed(seed)              # for this network only and restore the caller's state after
        network = nnInteractiveTrainer_stub.build_network_architecture(
            manager, manager.get_configuration(CONFIGURATION), 1 + 7, 2, enable_deep_supervision=False)
    torch.save({"trainer_name": "nnInteractiveTrainer_stub", "init_args": {"configuration": CONFIGURATION},
                "network_weights": network.state_dict()}, path / "fold_0" / "checkpoint_final.pth")
    return path
