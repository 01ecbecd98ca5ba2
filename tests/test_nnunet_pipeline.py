"""nnU-Net specialists end to end on CPU, on a tiny SAT-DS-style dataset cut from the real TotalSegmentator CT.

Six crops of the example CT (3 mm) with five organs in TotalSegmentator_Organs mask values, laid out as SAT-DS
records with patient ids from SAT's own split (4 train, 2 test; the session fixture `nnunet_tiny` of
tests/conftest.py): convert -> plan with nnU-Net's planner and with SAT-DS's shipped plans -> preprocess -> train
the project's smoke trainer (fold all) -> predict -> ingest -> score.
nnunetv2 runs for real (child processes, worker counts 1); a few minutes on two cores.
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

from baselines.nnunet import ingest, stages
from baselines.nnunet.convert import CASES_FILE
from baselines.nnunet.workspace import NNUNET_PLANS, SAT_PLANS, SMOKE_TRAINER
from bench.data.catalog import load_catalog, term_key
from bench.data.catalog.cases import satds_jsonl_sources
from bench.cli.app import app

pytestmark = pytest.mark.slow  # trains a model


@pytest.fixture(scope="module")
def pipeline(nnunet_tiny, shared_dir, tmp_path_factory):
    """The rest of the stages run once on the session's converted and planned data (`nnunet_tiny`): SAT-DS's own
    plans, the smoke training (fold all) and the prediction, with the CLI's outputs of each stage."""
    work, workspace, info = nnunet_tiny["work"], nnunet_tiny["workspace"], nnunet_tiny["info"]
    runner = CliRunner()

    def bench(*args):
        result = runner.invoke(app, ["baselines", "nnunet", *args, "--work", str(work)])
        assert result.exit_code == 0, result.output
        return result.output

    outputs = {"plan": bench("plan", "--dataset", info.name, "--use-sat-plans", "--satds", str(shared_dir / "satds"),
                             "--workers", "1")}
    outputs["train"] = bench("train", "--dataset", info.name, "--fold", "all", "--trainer", SMOKE_TRAINER, "--plans",
                             NNUNET_PLANS, "--device", "cpu", "--workers", "1")
    model = workspace.model_folder(info.nnunet_name, SMOKE_TRAINER, NNUNET_PLANS, "3d_fullres")
    run = tmp_path_factory.mktemp("pipeline") / "run"
    outputs["predict"] = bench("predict", "--dataset", info.name, "--trainer", SMOKE_TRAINER, "--plans", NNUNET_PLANS,
                               "--device", "cpu", "--out", str(run))
    return {**nnunet_tiny, "model": model, "outputs": outputs, "run": run}


def test_conversion_respects_sats_split_and_keeps_geometry(pipeline):
    info, folder = pipeline["info"], pipeline["workspace"].raw / pipeline["info"].nnunet_name
    train = sorted(p.name for p in (folder / "imagesTr").iterdir())
    test = sorted(p.name for p in (folder / "imagesTs").iterdir())
    assert train == sorted(f"{i}_0000.nii.gz" for i in info.train_ids[:4])
    assert test == sorted(f"{i}_0000.nii.gz" for i in info.test_ids[:2])
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == sorted(f"{i}.nii.gz" for i in info.test_ids[:2])
    description = json.loads((folder / "dataset.json").read_text())
    assert description["numTraining"] == 4 and description["channel_names"] == {"0": "CT"}
    cases = json.loads((folder / CASES_FILE).read_text())["cases"]
    for source in satds_jsonl_sources(pipeline["jsonl"], pipeline["root"]):
        part = "Ts" if cases[source.case_id]["split"] == "test" else "Tr"
        original_image, original_label = nib.load(str(source.image)), nib.load(str(source.label))
        image = nib.load(str(folder / f"images{part}" / f"{source.case_id}_0000.nii.gz"))
        label = nib.load(str(folder / f"labels{part}" / f"{source.case_id}.nii.gz"))
        for converted, original in ((image, original_image), (label, original_label)):
            assert np.array_equal(converted.affine, original.affine)
            assert converted.header.get_zooms() == original.header.get_zooms()
            assert np.array_equal(np.asarray(converted.dataobj), np.asarray(original.dataobj))


def test_both_plans_preprocessed_without_colliding(pipeline):
    assert f"plans {SAT_PLANS}, preprocessed 3d_fullres" in pipeline["outputs"]["plan"]
    preprocessed = pipeline["workspace"].preprocessed / pipeline["info"].nnunet_name
    sat = json.loads((preprocessed / f"{SAT_PLANS}.json").read_text())
    own = json.loads((preprocessed / f"{NNUNET_PLANS}.json").read_text())
    assert sat["plans_name"] == SAT_PLANS and own["plans_name"] == NNUNET_PLANS
    assert sat["dataset_name"] == own["dataset_name"] == pipeline["info"].nnunet_name
    sat_dir = preprocessed / sat["configurations"]["3d_fullres"]["data_identifier"]
    own_dir = preprocessed / own["configurations"]["3d_fullres"]["data_identifier"]
    assert sat_dir != own_dir
    for folder in (sat_dir, own_dir):  # each holds all four training cases, neither deleted the other
        assert {p.name.split(".")[0] for p in folder.iterdir() if p.suffix != ".pkl"} >= set(
            pipeline["info"].train_ids[:4])
    assert sat["configurations"]["3d_fullres"]["patch_size"] == [128, 128, 128]  # SAT-DS's Table 11 row


def test_training_writes_a_checkpoint_and_resumes_as_done(pipeline):
    assert f"{pipeline['info'].name}: trained" in pipeline["outputs"]["train"]
    assert (pipeline["model"] / "fold_all" / "checkpoint_final.pth").is_file()
    _, status = stages.train(pipeline["workspace"], pipeline["info"], "all", trainer=SMOKE_TRAINER,
                             plans_identifier=NNUNET_PLANS, settings=stages.Settings(quiet=True))
    assert status == "done"


def test_predictions_keep_the_test_images_geometry(pipeline):
    folder = pipeline["workspace"].raw / pipeline["info"].nnunet_name
    predictions = pipeline["workspace"].predictions / pipeline["info"].nnunet_name / pipeline["model"].name
    for image in sorted((folder / "imagesTs").iterdir()):
        prediction = nib.load(str(predictions / image.name.replace("_0000", "")))
        reference = nib.load(str(image))
        assert prediction.shape == reference.shape
        assert np.allclose(prediction.affine, reference.affine, atol=1e-4)


def test_scores_are_finite_rows_under_unified_names(pipeline):
    table = pd.read_parquet(pipeline["run"] / "metrics.parquet")
    info = pipeline["info"]
    assert sorted(table.case_id.unique()) == sorted(info.test_ids[:2])
    assert list(table[table.case_id == info.test_ids[0]].class_name) == list(info.classes)
    assert {"kidney", "adrenal gland", "lung lower lobe"} <= set(table.class_name)  # derived classes
    assert all(math.isfinite(v) for v in table.dsc) and all(math.isfinite(v) for v in table.nsd)
    assert set(table.dataset) == {info.name} and set(table.model) == {ingest.MODEL_NAME}
    terms = set(load_catalog().terms.key)
    assert {term_key(m, c) for m, c in zip(table.modality, table.class_name)} <= terms
    # kidney is scored as the union of the two kidney channels, from the same prediction files
    kidney = table[table.class_name == "kidney"].set_index("case_id")
    sides = table[table.class_name.isin(["left kidney", "right kidney"])].groupby("case_id")
    assert (kidney.ref_voxels == sides.ref_voxels.sum()).all()
    assert (kidney.pred_voxels == sides.pred_voxels.sum()).all()
