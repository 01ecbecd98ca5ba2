"""nnU-Net checkpoints from elsewhere are read as weights only: an nnU-Net-shaped checkpoint loads, pickled code does not."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.nnunet.worker import load_checkpoint

RAN = []


class Payload:
    def __reduce__(self):
        return (RAN.append, ("code ran",))


def test_an_nnunet_checkpoint_loads(tmp_path):
    checkpoint = {
        "network_weights": {"encoder.stages.0.0.convs.0.conv.weight": torch.ones(2, 1, 3, 3, 3)},
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.99, "nesterov": True}]},
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.5)], "ema_fg_dice": [np.float32(0.25)], "epoch": [np.int64(0)]},
        "_best_ema": np.float64(0.25), "current_epoch": 1,
        "init_args": {"plans": {"a": [1, 2]}, "configuration": "3d_fullres", "fold": "all", "dataset_json": {},
                      "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(checkpoint, tmp_path / "checkpoint_final.pth")
    loaded = load_checkpoint(tmp_path / "checkpoint_final.pth")
    assert torch.equal(loaded["network_weights"]["encoder.stages.0.0.convs.0.conv.weight"], torch.ones(2, 1, 3, 3, 3))
    assert loaded["logging"]["mean_fg_dice"] == [0.5] and loaded["init_args"]["configuration"] == "3d_fullres"


def test_pickled_code_is_refused(tmp_path):
    torch.save({"network_weights": {}, "trainer_name": Payload()}, tmp_path / "checkpoint_final.pth")
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tmp_path / "checkpoint_final.pth")
    assert RAN == []
