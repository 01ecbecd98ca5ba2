"""nnU-Net's environment as the project sets it per stage, checked against what nnunetv2 itself reads from it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from baselines.nnunet.workspace import SMOKE_TRAINER, TRAINER_DIR, Workspace, augmentation_workers, stage_environment


def test_augmentation_workers_rule():
    assert augmentation_workers("plan", "cpu", 0) == 1  # the planner's torch.set_num_threads needs >= 1
    assert augmentation_workers("plan", "cuda") == 1
    assert augmentation_workers("train", "cpu") == 0  # single-threaded augmentation on CPU
    assert augmentation_workers("train", "cpu", 3) == 3
    assert 1 <= augmentation_workers("train", "cuda") <= 12


def test_stage_environment_needs_nothing_from_the_user(tmp_path):
    env = stage_environment(Workspace(tmp_path / "work"), "train", "cpu", workers=1, base={})
    assert env["nnUNet_raw"] == str((tmp_path / "work" / "raw").resolve())
    assert env["nnUNet_preprocessed"] == str((tmp_path / "work" / "preprocessed").resolve())
    assert env["nnUNet_results"] == str((tmp_path / "work" / "results").resolve())
    assert env["nnUNet_extTrainer"] == str(TRAINER_DIR)
    assert (env["nnUNet_def_n_proc"], env["nnUNet_n_proc_DA"]) == ("1", "0")


def test_nnunet_reads_the_environment_and_finds_the_smoke_trainer(tmp_path):
    pytest.importorskip("nnunetv2")
    env = stage_environment(Workspace(tmp_path), "plan", "cpu", workers=1)
    code = ("import json, nnunetv2.paths as p, nnunetv2.configuration as c\n"
            "from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA\n"
            "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
            f"t = find({SMOKE_TRAINER!r})\n"
            "print(json.dumps([str(p.nnUNet_raw), c.default_num_processes, get_allowed_n_proc_DA(), t.__name__]))")
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    raw, pool, augmentation, trainer = json.loads(output.stdout.strip().splitlines()[-1])
    assert (raw, pool, augmentation, trainer) == (str((tmp_path / "raw").resolve()), 1, 1, SMOKE_TRAINER)
