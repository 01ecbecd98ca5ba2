"""SAM-Med3D-turbo with real-sized weights: a checkpoint in the official layout (`model_state_dict` + pickled
`args` Namespace + optimizer and scheduler state) holding the parity weights, checked by `bench models verify`
and run by `bench run` on a catalog-style dataset made from the real CT in ../shared (one 128^3 encoder forward,
10-30 s on 2 CPU cores)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchio")

import nibabel as nib  # noqa: E402
import pandas as pd  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import bench.engine.runner as runner  # noqa: E402
import models.sam_med3d.model as sam_model  # noqa: E402
from bench.cli.app import app  # noqa: E402
from bench.data.io import read_label_map, read_volume, write_volume  # noqa: E402
from models.checkpoints import sha256_of  # noqa: E402
from models.parity import parity_state_dict  # noqa: E402
from models.sam_med3d.inference import crop_positions, predict_click  # noqa: E402
from models.sam_med3d.network import build_sam_med3d  # noqa: E402
from models.sam_med3d.preprocess import native_to_crop, to_native  # noqa: E402
from protocols.prompts import Click  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """sam_med3d_turbo.pth as train.py saves it, with the parity weights (derived from key names alone)."""
    with torch.device("meta"):
        network = build_sam_med3d()
    weights = parity_state_dict(network)
    path = tmp_path_factory.mktemp("ckpt") / "sam_med3d_turbo.pth"
    torch.save({"epoch": 200, "model_state_dict": weights,
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 8e-5, "params": [0, 1]}]},
                "lr_scheduler_state_dict": {"last_epoch": 200, "_step_count": 201}, "losses": [0.31],
                "dices": [0.82], "best_loss": 0.31, "best_dice": 0.82,
                "args": argparse.Namespace(model_type="vit_b_ori", img_size=128, lr=8e-5, multi_click=False),
                "used_datas": ["AMOS22_CT"]}, path)
    return path, weights


@pytest.fixture(scope="module")
def raw_dataset(shared_dir, tmp_path_factory):
    """Dataset994_TSTurbo: the real CT with its gallbladder as the one class."""
    source = shared_dir / "data" / "totalsegmentator_example"
    ct, seg = read_volume(source / "ct.nii.gz"), read_label_map(source / "seg_total.nii.gz")
    root = tmp_path_factory.mktemp("raw") / "Dataset994_TSTurbo"
    write_volume(root / "imagesTs" / "ts_0001_0000.nii.gz", ct.array, ct.affine)
    write_volume(root / "labelsTs" / "ts_0001.nii.gz", (seg.array == 4).astype(np.uint8), ct.affine)
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz",
                                                   "numTest": 1, "labels": {"background": 0, "gallbladder": 1}}))
    return root


def test_models_verify_loads_the_official_layout_strictly_without_trust(checkpoint):
    path, _ = checkpoint
    result = CliRunner().invoke(app, ["models", "verify", "sam-med3d-turbo", "--checkpoint", str(path)])
    assert result.exit_code == 0, result.output
    assert "loads into sam-med3d-turbo strictly (100,509,232 parameters)" in result.output
    assert f"sha256: {sha256_of(path)}" in result.output


@pytest.mark.slow
def test_bench_run_with_parity_weights_on_the_real_ct(checkpoint, raw_dataset, tmp_path, monkeypatch):
    """Harness preset, 2 clicks: the weights loaded are the checkpoint's, the encoder runs once, the stored
    prediction is the decoder's answer to the stored clicks mapped back from the crop, on the reference's grid
    and inside the crop centred on the first click; run.json names the checkpoint and its SHA-256."""
    path, weights = checkpoint
    encoded = []
    original = sam_model.encode
    monkeypatch.setattr(sam_model, "encode", lambda network, crop: encoded.append((crop, original(network, crop)))
                        or encoded[-1][1])
    runner.PROCESS_MODELS.clear()
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--model", "sam-med3d-turbo", "--checkpoint", str(path), "--root",
                                      str(raw_dataset), "--protocol", "harness", "--n-clicks", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = runner.PROCESS_MODELS.models()[0]
    runner.PROCESS_MODELS.clear()
    state = model.network.state_dict()
    for key in ("image_encoder.blocks.0.attn.rel_pos_d", "mask_decoder.iou_token.weight",
                "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"):
        assert torch.equal(state[key], weights[key])
    rows = pd.read_parquet(out / "metrics.parquet")
    assert rows.click.tolist() == [1, 2] and rows.dsc.between(0, 1).all() and set(rows.model) == {"sam-med3d-turbo"}
    config = json.loads((out / "run.json").read_text())
    assert config["model_provenance"]["parameters"] == 100_509_232
    assert config["model_provenance"]["sha256"] == sha256_of(path)
    record = json.loads(runner.prompt_record_path(out, "ts_0001", "gallbladder").read_text())
    clicks = [Click.from_json(c) for c in record["clicks"]]
    assert len(encoded) == 1 and len(clicks) == 2
    crop, embedding = encoded[0]
    assert np.all(np.abs(native_to_crop(clicks[0].point, crop)[0] - 63.5) <= 1.0)
    positions, inside = crop_positions(np.array([c.point for c in clicks], float), crop)
    labels = np.array([int(c.positive) for c in clicks])
    first = predict_click(model.network, embedding, positions[:1][inside[:1]], labels[:1][inside[:1]], None)
    second = predict_click(model.network, embedding, positions[inside], labels[inside], first.low_res)
    image = nib.load(raw_dataset / "imagesTs" / "ts_0001_0000.nii.gz")
    predicted = nib.load(out / "predictions" / "ts_0001" / "gallbladder.nii.gz")
    mask = np.asarray(predicted.dataobj) > 0
    assert mask.shape == image.shape and np.allclose(predicted.affine, image.affine)
    np.testing.assert_array_equal(mask, to_native(second.crop_mask, crop))
    where = native_to_crop(np.argwhere(mask), crop)
    assert np.all((where > -0.5) & (where < 127.5))  # nothing outside the crop


@pytest.mark.slow
def test_bench_clicks_loads_the_checkpoint_under_the_paper_preset(checkpoint, raw_dataset, tmp_path):
    """The issue's command: `bench clicks --model sam-med3d-turbo --checkpoint PATH --root DIR --protocol
    sam-med3d-paper`: the checkpoint's weights, the preset's clicks (RITM first, newest click only), per-click rows,
    and the paper-era max over clicks printed as such."""
    path, weights = checkpoint
    runner.PROCESS_MODELS.clear()
    out = tmp_path / "clicks"
    result = CliRunner().invoke(app, ["clicks", "--model", "sam-med3d-turbo", "--checkpoint", str(path), "--root",
                                      str(raw_dataset), "--protocol", "sam-med3d-paper", "--n-clicks", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = runner.PROCESS_MODELS.models()[0]
    runner.PROCESS_MODELS.clear()
    assert torch.equal(model.network.state_dict()["mask_decoder.iou_token.weight"],
                       weights["mask_decoder.iou_token.weight"])
    rows = pd.read_parquet(out / "metrics.parquet")
    assert rows.click.tolist() == [1, 2] and set(rows.protocol) == {"sam-med3d-paper"}
    assert rows.first_click.iloc[0] == "ritm" and rows.dsc.between(0, 1).all()
    config = json.loads((out / "run.json").read_text())
    assert config["model_provenance"]["sha256"] == sha256_of(path) and config["protocol"]["name"] == "sam-med3d-paper"
    assert "max DSC over clicks" in result.output
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    refused = CliRunner().invoke(app, ["clicks", "--model", "sam-med3d-turbo", "--checkpoint", str(bad), "--root",
                                       str(raw_dataset), "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and str(bad) in refused.output and "Traceback" not in refused.output
