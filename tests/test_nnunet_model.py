"""`bench run --model nnunet --checkpoint MODEL_FOLDER` is the same path as `bench baselines nnunet predict`.

The tiny SAT-DS-style crops of the real TotalSegmentator CT, converted and planned with nnU-Net's own planner, are
the session's (`nnunet_tiny` in tests/conftest.py, shared with test_nnunet_pipeline); the model folder is written
in nnU-Net's layout (plans.json, dataset.json, fold_all/checkpoint_final.pth as `nnUNetTrainer.save_checkpoint`
writes it) with parity weights for the planned network and no test-time mirroring, so its label maps hold many
classes (training is the pipeline test's job). The baseline predicts and scores the two test cases in nnU-Net's
child process; `bench run` runs the same folder in-process as a v2 model. Oracle: the baseline's own prediction
files and scores, which the run must equal mask for mask and number for number (derived classes as unions of the
same label map).
"""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("nnunetv2")
torch = pytest.importorskip("torch")

from baselines.nnunet.workspace import NNUNET_PLANS, Workspace
from bench.data.catalog import load_catalog, term_key
from bench.cli.app import app
from models.base import Image, Target, UnsupportedPrompt
from models.parity import load_parity_weights
from models.registry import get_model

pytestmark = pytest.mark.slow  # the session's nnU-Net planning, a child-process prediction and a run: over 20 s


def write_model_folder(workspace: Workspace, info, folder):
    """A trained-model folder in nnU-Net's layout: the planned 3d_fullres network with parity weights."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = json.loads((workspace.preprocessed / info.nnunet_name / f"{NNUNET_PLANS}.json").read_text())
    dataset_json = json.loads((workspace.raw / info.nnunet_name / "dataset.json").read_text())
    manager = PlansManager(plans)
    heads = manager.get_label_manager(dataset_json).num_segmentation_heads
    network = nnUNetTrainer.build_network_architecture(manager, manager.get_configuration("3d_fullres"), 1, heads,
                                                       enable_deep_supervision=False)
    load_parity_weights(network)  # then saved as the network holds them: aliased keys (all_modules.0) agree
    (folder / "fold_all").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    torch.save({"network_weights": network.state_dict(), "optimizer_state": {"state": {}, "param_groups": []},
                "grad_scaler_state": None, "logging": {"epoch": [np.int64(0)]}, "_best_ema": np.float64(0.0),
                "current_epoch": 1, "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": "all",
                                                  "dataset_json": dataset_json, "device": torch.device("cpu")},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": None},
               folder / "fold_all" / "checkpoint_final.pth")
    return folder


@pytest.fixture(scope="module")
def trained(nnunet_tiny, tmp_path_factory):
    """The session's tiny data and plans, a model folder of the planned network, the baseline's scored run and a
    `bench run` of the same model (model and runs in a folder of this module's own)."""
    root, jsonl, workspace, info = (nnunet_tiny[key] for key in ("root", "jsonl", "workspace", "info"))
    work = tmp_path_factory.mktemp("nnunet_model")
    runner = CliRunner()

    def bench(*args):
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    model = write_model_folder(workspace, info, work / "model" / f"nnUNetTrainer__{NNUNET_PLANS}__3d_fullres")
    bench("baselines", "nnunet", "predict", "--dataset", info.name, "--checkpoint-folder", str(model), "--device",
          "cpu", "--out", str(work / "baseline"), "--work", str(nnunet_tiny["work"]))
    output = bench("run", "--model", "nnunet", "--checkpoint", str(model), "--dataset", info.name, "--root",
                   str(root), "--manifest", str(jsonl), "--device", "cpu", "--out", str(work / "run"))
    return {"root": root, "jsonl": jsonl, "workspace": workspace, "info": info, "model": model, "work": work,
            "output": output, "predictions": workspace.predictions / info.nnunet_name / model.name}


def test_run_scores_equal_the_baselines(trained):
    run = pd.read_parquet(trained["work"] / "run" / "metrics.parquet").set_index(["case_id", "class_name"])
    baseline = pd.read_parquet(trained["work"] / "baseline" / "metrics.parquet").set_index(["case_id", "class_name"])
    info = trained["info"]
    assert sorted(run.index) == sorted(baseline.index)
    assert sorted(run.index.unique("case_id")) == sorted(info.test_ids[:2])
    run = run.loc[baseline.index]
    for column in ("ref_voxels", "pred_voxels"):
        assert (run[column] == baseline[column]).all(), column
    both_empty = baseline.ref_empty & baseline.pred_empty  # harness leaves them out; the baseline (SAT's rule) scores 1
    assert run.loc[both_empty, ["dsc", "nsd"]].isna().all().all() and (baseline.loc[both_empty, "dsc"] == 1).all()
    np.testing.assert_allclose(run.dsc[~both_empty], baseline.dsc[~both_empty], rtol=0, atol=1e-12)
    np.testing.assert_allclose(run.nsd[~both_empty], baseline.nsd[~both_empty], rtol=0, atol=1e-12)


def test_run_masks_are_the_baselines_label_map_under_unified_names(trained):
    info = trained["info"]
    classes = info.nnunet_classes()
    for case in info.test_ids[:2]:
        labels = np.asanyarray(nib.load(str(trained["predictions"] / f"{case}.nii.gz")).dataobj)
        for name, values in classes.items():
            mask = np.asanyarray(nib.load(str(trained["work"] / "run" / "predictions" / case / f"{name}.nii.gz"))
                                 .dataobj).astype(bool)
            assert np.array_equal(mask, np.isin(labels, values)), (case, name)


def test_rows_are_finite_with_unified_names_and_derived_classes(trained):
    table = pd.read_parquet(trained["work"] / "run" / "metrics.parquet")
    info = trained["info"]
    assert list(table[table.case_id == info.test_ids[0]].class_name) == list(info.classes)
    assert {"kidney", "adrenal gland", "lung lower lobe"} <= set(table.class_name)
    scored = table[~(table.ref_empty & table.pred_empty)]  # both empty: left out under harness (NaN)
    assert all(math.isfinite(v) for v in scored.dsc) and all(math.isfinite(v) for v in scored.nsd)
    assert set(table.model) == {"nnunet"} and set(table.dataset) == {info.name}
    assert {term_key(m, c) for m, c in zip(table.modality, table.class_name)} <= set(load_catalog().terms.key)
    config = json.loads((trained["work"] / "run" / "run.json").read_text())
    assert config["prompts_given"] == [] and config["model_provenance"]["parameters"] > 0
    assert config["cost"]["batch"] == {"executor": "local", "workers": 1, "targets_per_call": None,
                                       "tile_step_size": 0.5, "mirror_axes": [], "threads": config["cost"]["batch"]
                                       ["threads"]} and config["cost"]["batch"]["threads"] >= 1
    phases = table[["preprocess_seconds", "model_seconds", "postprocess_seconds"]]  # one call per case, shared
    assert (phases > 0).all().all() and (phases.sum(axis=1) <= table["seconds"]).all()
    assert "ran 2 case(s)" in trained["output"]


def test_the_model_exposes_its_network_and_refuses_classes_it_lacks(trained):
    model = get_model("nnunet", checkpoint=str(trained["model"]))
    assert isinstance(model.network, torch.nn.Module) and not model.capabilities.prompts
    assert not any(m.training for m in model.network.modules())  # in eval mode as soon as it is loaded
    checkpoint = torch.load(trained["model"] / "fold_all" / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)
    state = model.network.state_dict()
    assert set(state) == set(checkpoint["network_weights"])
    assert all(torch.equal(state[k], v) for k, v in checkpoint["network_weights"].items())
    image = Image(array=np.zeros((8, 8, 8), np.float32), spacing=(1.0, 1.0, 1.0), affine=np.eye(4))
    with pytest.raises(UnsupportedPrompt, match="brain"):
        model.segment(image, [Target("liver"), Target("brain")])


def test_a_folder_that_is_no_model_is_one_line(trained, tmp_path):
    result = CliRunner().invoke(app, ["run", "--model", "nnunet", "--checkpoint", str(tmp_path), "--dataset",
                                      trained["info"].name, "--root", str(trained["root"]), "--manifest",
                                      str(trained["jsonl"]), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "not a trained nnU-Net model folder" in result.output
    with pytest.raises(ValueError, match="--checkpoint"):  # what `bench models list` shows as "built from its folder"
        get_model("nnunet")


class Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_checkpoint_with_pickled_code_is_refused_in_one_line(trained, tmp_path):
    folder = tmp_path / "model"
    (folder / "fold_all").mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        (folder / name).write_text((trained["model"] / name).read_text())
    torch.save({"network_weights": {}, "trainer_name": Payload()}, folder / "fold_all" / "checkpoint_final.pth")
    result = CliRunner().invoke(app, ["run", "--model", "nnunet", "--checkpoint", str(folder), "--dataset",
                                      trained["info"].name, "--root", str(trained["root"]), "--manifest",
                                      str(trained["jsonl"]), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "outside the allow-list" in result.output
    assert "pickled code ran" not in result.output and "Traceback" not in result.output

