"""nnU-Net specialists end to end on CPU, on a tiny SAT-DS-style dataset cut from the real TotalSegmentator CT.

Six crops of the example CT (3 mm) with five organs in TotalSegmentator_Organs mask values, laid out as SAT-DS
records with patient ids from SAT's own split (4 train, 2 test): convert -> plan with nnU-Net's planner and with
SAT-DS's shipped plans -> preprocess -> train the project's smoke trainer (fold all) -> predict -> ingest -> score.
nnunetv2 runs for real (child processes, worker counts 1); a few minutes on two cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("nnunetv2")

from baselines.nnunet import ingest, stages
from baselines.nnunet.convert import CASES_FILE
from baselines.nnunet.workspace import NNUNET_PLANS, SAT_PLANS, SMOKE_TRAINER, Workspace
from bench.data.catalog import load_catalog, term_key
from bench.data.catalog.cases import satds_jsonl_sources
from bench.cli.app import app

DATASET = "TotalSegmentator_Organs"
# TotalSegmentator v2 value in seg_total.nii.gz -> TotalSegmentator_Organs mask value (SAT-DS organs_label)
ORGANS = {5: 9, 1: 17, 2: 8, 3: 7, 6: 18}  # liver, spleen, right kidney, left kidney, stomach
CROP = (72, 64, 24)
OFFSETS = [(10, 15, 0), (30, 20, 4), (40, 30, 2), (20, 25, 6), (25, 18, 3), (35, 28, 5)]


def write_tiny_satds(example: Path, root: Path) -> Path:
    """SAT-DS layout (data/nii/.../<id>/ct.nii.gz + organs_label.nii.gz) and its jsonl; returns the jsonl."""
    info = load_catalog().dataset(DATASET)
    ct = nib.load(str(example / "ct.nii.gz"))
    seg = np.asarray(nib.load(str(example / "seg_total.nii.gz")).dataobj)
    organs = np.zeros(seg.shape, np.uint8)
    for total_value, organ_value in ORGANS.items():
        organs[seg == total_value] = organ_value
    image = np.asarray(ct.dataobj)
    ids = list(info.train_ids[:4]) + list(info.test_ids[:2])
    records = []
    for patient, (x, y, z) in zip(ids, OFFSETS):
        box = (slice(x, x + CROP[0]), slice(y, y + CROP[1]), slice(z, z + CROP[2]))
        affine = ct.affine.copy()
        affine[:3, 3] = ct.affine[:3, :3] @ np.array([x, y, z]) + ct.affine[:3, 3]
        folder = root / "data" / "nii" / "Totalsegmentator_dataset" / patient
        folder.mkdir(parents=True)
        nib.save(nib.Nifti1Image(image[box], affine, ct.header), str(folder / "ct.nii.gz"))
        nib.save(nib.Nifti1Image(organs[box], affine), str(folder / "organs_label.nii.gz"))
        records.append({"image": str((folder / "ct.nii.gz").relative_to(root)),
                        "mask": str((folder / "organs_label.nii.gz").relative_to(root)),
                        "label": list(info.classes), "modality": "CT", "dataset": DATASET,
                        "official_split": "train", "patient_id": patient})
    jsonl = root / f"{DATASET}.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    return jsonl


@pytest.fixture(scope="module")
def pipeline(shared_dir, tmp_path_factory):
    """Everything run once: the tiny data, the workspace and the CLI's outputs of each stage."""
    example = shared_dir / "data" / "totalsegmentator_example"
    if not (example / "seg_total.nii.gz").is_file():
        pytest.skip("TotalSegmentator example absent")
    root = tmp_path_factory.mktemp("satds")
    jsonl = write_tiny_satds(example, root)
    work = tmp_path_factory.mktemp("nnunet")
    runner = CliRunner()

    def bench(*args):
        result = runner.invoke(app, ["baselines", "nnunet", *args, "--work", str(work)])
        assert result.exit_code == 0, result.output
        return result.output

    outputs = {"convert": bench("convert", "--dataset", DATASET, "--root", str(root), "--manifest", str(jsonl))}
    settings = stages.Settings(workers=1, threads=2, quiet=True)
    workspace = Workspace(work)
    info = load_catalog().dataset(DATASET)
    stages.plan(workspace, info, use_sat_plans=False, settings=settings)  # nnU-Net's planner
    outputs["plan"] = bench("plan", "--dataset", DATASET, "--use-sat-plans", "--satds", str(shared_dir / "satds"),
                            "--workers", "1")
    outputs["train"] = bench("train", "--dataset", DATASET, "--fold", "all", "--trainer", SMOKE_TRAINER, "--plans",
                             NNUNET_PLANS, "--device", "cpu", "--workers", "1")
    model = workspace.model_folder(info.nnunet_name, SMOKE_TRAINER, NNUNET_PLANS, "3d_fullres")
    outputs["predict"] = bench("predict", "--dataset", DATASET, "--trainer", SMOKE_TRAINER, "--plans", NNUNET_PLANS,
                               "--device", "cpu", "--out", str(work / "run"))
    return {"root": root, "jsonl": jsonl, "workspace": workspace, "info": info, "model": model,
            "outputs": outputs, "run": work / "run"}


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
    assert f"{DATASET}: trained" in pipeline["outputs"]["train"]
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
    assert set(table.dataset) == {DATASET} and set(table.model) == {ingest.MODEL_NAME}
    terms = set(load_catalog().terms.key)
    assert {term_key(m, c) for m, c in zip(table.modality, table.class_name)} <= terms
    # kidney is scored as the union of the two kidney channels, from the same prediction files
    kidney = table[table.class_name == "kidney"].set_index("case_id")
    sides = table[table.class_name.isin(["left kidney", "right kidney"])].groupby("case_id")
    assert (kidney.ref_voxels == sides.ref_voxels.sum()).all()
    assert (kidney.pred_voxels == sides.pred_voxels.sum()).all()
