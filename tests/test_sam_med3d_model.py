"""SAM-Med3D behind the model interface, with a recording fake network in place of the 100M-parameter one: the
crop it makes (around the first click on the native grid, none on a protocol's crop), the points and logits each
decoder pass gets, encoder once per target, clicks outside the crop, the registry entries and the checkpoint
reader. `bench run` end to end on a catalog-style dataset made from the real CT in ../shared (the real network
with parity weights runs in tests/test_sam_med3d_run.py)."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchio")

import nibabel as nib  # noqa: E402
import pandas as pd  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import bench.engine.runner as runner  # noqa: E402
from bench.cli.app import app  # noqa: E402
from bench.data.io import read_label_map, read_volume  # noqa: E402
from models.base import Image, Target, recorded_phases  # noqa: E402
from models.checkpoints import CheckpointError  # noqa: E402
from models.registry import describe, get_model, register_model, unregister_model  # noqa: E402
from models.sam_med3d import SamMed3DModel, sam_med3d  # noqa: E402
from models.sam_med3d.inference import crop_positions  # noqa: E402
from models.sam_med3d.mask_decoder import upscale_logits  # noqa: E402
from models.sam_med3d.network import PARAMETER_COUNT  # noqa: E402
from models.sam_med3d.preprocess import (  # noqa: E402
    crop_around_label,
    crop_around_point,
    native_to_crop,
    to_native,
)
from protocols.prompts import Click, Prompt  # noqa: E402

KEEP = {"gallbladder": 4, "liver": 5}
FAKE = "sam-med3d-fake"


class FakeNetwork(torch.nn.Module):
    """Stands in for SamMed3D's three submodules: records every encoder input and every decoder pass (points,
    labels, mask input), and answers logits +10 on the 3^3 cells of the 32^3 grid around each positive point,
    -10 elsewhere, plus pass number / 1000 so that every pass's logits differ."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.images, self.points, self.labels, self.mask_inputs, self.outputs = [], [], [], [], []
        fake = self

        class Encoder(torch.nn.Module):
            def forward(self, x):
                fake.images.append(x.clone())
                return torch.zeros(1, 384, 8, 8, 8)

        class Prompt_(torch.nn.Module):
            def forward(self, points, boxes, masks):
                assert boxes is None
                fake.points.append(points[0][0].numpy().copy())
                fake.labels.append(points[1][0].numpy().copy())
                fake.mask_inputs.append(masks.clone())
                return torch.zeros(1, points[0].shape[1] + 1, 384), torch.zeros(1, 384, 8, 8, 8)

            def get_dense_pe(self):
                return torch.zeros(1, 384, 8, 8, 8)

        class Decoder(torch.nn.Module):
            def forward(self, image_embeddings, image_pe, sparse, dense, multimask_output):
                assert multimask_output is False
                logits = torch.full((1, 1, 32, 32, 32), -10.0)
                for point, label in zip(fake.points[-1], fake.labels[-1]):
                    if label == 1:
                        cell = np.clip(np.asarray(point, int) // 4, 0, 31)
                        logits[(0, 0, *(slice(max(c - 1, 0), c + 2) for c in cell))] = 10.0
                fake.outputs.append(logits + len(fake.outputs) / 1000)
                return fake.outputs[-1], torch.tensor([[0.5]])

        self.image_encoder, self.prompt_encoder, self.mask_decoder = Encoder(), Prompt_(), Decoder()


def fake_model() -> SamMed3DModel:
    """SAM-Med3D's model class with the fake network (the real one built on the meta device: no memory)."""
    with torch.device("meta"):
        model = sam_med3d()
    model.network = FakeNetwork()
    return model


@pytest.fixture(scope="module")
def fake_registered():
    made: list[SamMed3DModel] = []

    def factory():
        made.append(fake_model())
        return made[-1]

    register_model(FAKE)(factory)
    yield made
    unregister_model(FAKE)


@pytest.fixture(autouse=True)
def fresh_models(fake_registered):
    runner.PROCESS_MODELS.clear()
    fake_registered.clear()
    yield
    runner.PROCESS_MODELS.clear()


@pytest.fixture(scope="module")
def raw_dataset(ts_raw_dataset):
    """Dataset993_TSSamMed3D: the real CT (122 x 101 x 30 at 3 mm) with its gallbladder and liver as labels."""
    return ts_raw_dataset("Dataset993_TSSamMed3D", KEEP)


def _run(raw_dataset, out, preset: str, n_clicks: int, *classes: str):
    args = ["run", "--model", FAKE, "--root", str(raw_dataset), "--protocol", preset, "--n-clicks", str(n_clicks),
            "--out", str(out)]
    for name in classes:
        args += ["--class", name]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out / "metrics.parquet")


def _stored_clicks(out, name: str) -> list[Click]:
    record = json.loads(runner.prompt_record_path(out, "ts_0001", name).read_text())
    return [Click.from_json(c) for c in record["clicks"]]


def _crop_mask(logits: torch.Tensor) -> np.ndarray:
    return (torch.sigmoid(upscale_logits(logits)) > 0.5)[0, 0].numpy()


def test_both_names_build_the_official_architecture_on_the_native_grid():
    for name, file in (("sam-med3d", "sam_med3d.pth"), ("sam-med3d-turbo", "sam_med3d_turbo.pth")):
        info = describe(name)
        assert info["parameters"] == PARAMETER_COUNT == 100_509_232
        assert info["class"] == "models.sam_med3d.model.SamMed3DModel" and info["checkpoint_files"] == [file]
        assert info["prompts"] == ["points"] and info["input_grid"] == "native" and info["dimensions"] == [3]
        assert info["previous_logits"] and not info["accumulates_clicks"]
    with torch.device("meta"):
        assert get_model("sam-med3d-turbo").name == "sam-med3d-turbo"
        with pytest.raises(ValueError, match="unexpected keyword"):
            get_model("sam-med3d", crop=64)


def test_harness_crops_around_the_first_click_and_maps_back(raw_dataset, tmp_path, fake_registered):
    """Native grid: the official TorchIO crop centred on the first click (not the label); encoder once per class;
    every click so far mapped to the crop; the previous logits fed back; the mask back on the native grid."""
    out = tmp_path / "harness"
    rows = _run(raw_dataset, out, "harness", 3, "gallbladder", "liver")
    fake = fake_registered[0].network
    assert len(fake.images) == 2 and len(fake.outputs) == len(rows) == 6
    image = read_volume(raw_dataset / "imagesTs" / "ts_0001_0000.nii.gz")
    reference = read_label_map(raw_dataset / "labelsTs" / "ts_0001.nii.gz").array
    for index, name in enumerate(KEEP):
        clicks = _stored_clicks(out, name)
        crop = crop_around_point(np.asarray(image.array, np.float32), image.affine, clicks[0].point)
        torch.testing.assert_close(fake.images[index], crop.image, rtol=0, atol=0)
        positions, inside = crop_positions(np.array([c.point for c in clicks], float), crop)
        for k in range(3):
            call = 3 * index + k
            np.testing.assert_array_equal(fake.points[call], positions[:k + 1][inside[:k + 1]])
            np.testing.assert_array_equal(fake.labels[call], [int(c.positive) for c, i in
                                                              zip(clicks[:k + 1], inside[:k + 1]) if i])
            previous = torch.zeros(1, 1, 32, 32, 32) if k == 0 else fake.outputs[call - 1]
            assert torch.equal(fake.mask_inputs[call], previous)
        predicted = nib.load(out / "predictions" / "ts_0001" / f"{name}.nii.gz")
        mask = np.asarray(predicted.dataobj) > 0
        assert np.allclose(predicted.affine, image.affine) and mask.shape == reference.shape
        np.testing.assert_array_equal(mask, to_native(_crop_mask(fake.outputs[3 * index + 2]), crop))
        assert all(mask[c.point] for c, i in zip(clicks, inside) if c.positive and i)  # the click's own voxel
        assert rows[rows.class_name == name].click.tolist() == [1, 2, 3]


@pytest.mark.parametrize("preset", ["sam-med3d", "sam-med3d-paper"])
def test_crop_presets_take_the_runner_crop_as_it_is(raw_dataset, tmp_path, fake_registered, preset):
    """On a protocol's crop (128^3, 1.5 mm, RAS, centred on the label by the runner) the model crops nothing
    again: the encoder sees the official input (TorchIO chain centred on the label, z-normalised over voxels > 0,
    `crop_around_label`), the clicks are the crop's voxels as they are; all clicks so far under `sam-med3d`, the
    newest under `sam-med3d-paper`, the previous logits under both; the mask goes back as `data_postprocess`."""
    out = tmp_path / preset
    rows = _run(raw_dataset, out, preset, 3, "gallbladder")
    fake = fake_registered[0].network
    case = read_volume(raw_dataset / "imagesTs" / "ts_0001_0000.nii.gz")
    reference = read_label_map(raw_dataset / "labelsTs" / "ts_0001.nii.gz").array == 1
    official = crop_around_label(case.array, case.affine, reference)
    expected = official.image
    if preset == "sam-med3d-paper":  # the paper-era loader: CT clamped, no reorientation (test_sam_med3d_paper)
        import torchio as tio

        from models.crop_chain import crop_or_pad, resample_canonical
        canonical = resample_canonical(case.array, case.affine, reference[None], spacing=(1.5, 1.5, 1.5),
                                       canonical=False, clamp=(-1000.0, 1000.0))
        cropped = crop_or_pad(canonical, canonical["masks"].data, 128)
        expected = tio.ZNormalization(masking_method=lambda x: x > 0)(cropped.image.data).float()[None]
        assert not torch.equal(expected, official.image)
    assert len(fake.images) == 1
    torch.testing.assert_close(fake.images[0], expected, rtol=0, atol=0)
    clicks = _stored_clicks(out, "gallbladder")
    assert len(fake.points) == len(rows) == len(clicks) == 3
    for k in range(3):
        given = clicks[:k + 1] if preset == "sam-med3d" else clicks[k:k + 1]
        np.testing.assert_array_equal(fake.points[k], [c.point for c in given])
        np.testing.assert_array_equal(fake.labels[k], [int(c.positive) for c in given])
        assert torch.equal(fake.mask_inputs[k], torch.zeros(1, 1, 32, 32, 32) if k == 0 else fake.outputs[k - 1])
    predicted = np.asarray(nib.load(out / "predictions" / "ts_0001" / "gallbladder.nii.gz").dataobj) > 0
    np.testing.assert_array_equal(predicted, to_native(_crop_mask(fake.outputs[-1]), official))


def _elongated() -> Image:
    """A 600 mm long body (2 x 3 x 4 mm voxels): longer than the 192 mm crop along its first axis."""
    array = np.zeros((300, 60, 40), np.float32)
    array[20:280, 10:50, 5:35] = 100.0
    return Image(array=array, spacing=(2.0, 3.0, 4.0), affine=np.diag([2.0, 3.0, 4.0, 1.0]))


def test_no_positive_click_gives_an_empty_mask_and_no_crop():
    model, image, state = fake_model(), _elongated(), {}
    masks = model.segment(image, [Target("t", Prompt(points=(Click((150, 30, 20), False),)))], state)
    assert not masks["t"].any() and masks["t"].shape == image.shape and not state
    assert not model.network.images and not model.network.points
    masks = model.segment(image, [Target("t", Prompt(points=(Click((150, 30, 20), False),
                                                             Click((140, 30, 20), True))))], state)
    assert masks["t"][140, 30, 20] and len(model.network.images) == 1
    crop = state["t"].crop
    assert np.all(np.abs(native_to_crop((140, 30, 20), crop)[0] - 63.5) <= 1.0)  # centred on the positive click
    np.testing.assert_array_equal(model.network.labels[0], [0, 1])


def test_each_call_reports_its_crop_network_and_mapping_back_as_phases():
    model, image, state = fake_model(), _elongated(), {}
    assert model.capabilities.reports_phases
    for clicks in ((Click((150, 30, 20), False),), (Click((150, 30, 20), False), Click((140, 30, 20), True))):
        start = time.perf_counter()
        with recorded_phases() as seconds:
            model.segment(image, [Target("t", Prompt(points=clicks))], state)
        wall = time.perf_counter() - start
        if len(clicks) == 1:  # no positive click: nothing cropped, encoded or mapped back
            assert seconds == {"preprocess": 0.0, "model": 0.0, "postprocess": 0.0}
    assert all(value > 0 for value in seconds.values()) and sum(seconds.values()) <= wall


def test_clicks_outside_the_crop_are_left_out_and_an_outside_newest_click_keeps_the_mask():
    model, image, state = fake_model(), _elongated(), {}
    first, outside = Click((150, 30, 20), True), Click((30, 30, 20), True)
    one = model.segment(image, [Target("t", Prompt(points=(first,)))], state)["t"]
    low_res = state["t"].low_res
    both = model.segment(image, [Target("t", Prompt(points=(first, outside)))], state)["t"]
    assert len(model.network.points) == 2 and len(model.network.points[1]) == 1  # the outside click left out
    assert not both[30, 30, 20] and both[150, 30, 20] and not np.array_equal(state["t"].low_res, low_res)
    kept = state["t"].low_res
    newest = model.segment(image, [Target("t", Prompt(points=(outside,)))], state)["t"]
    assert len(model.network.points) == 2 and state["t"].low_res is kept  # no decoder pass
    np.testing.assert_array_equal(newest, both)
    assert len(model.network.images) == 1 and one.sum() > 0


def test_two_targets_in_one_call_get_a_crop_each():
    model, image, state = fake_model(), _elongated(), {}
    targets = [Target("a", Prompt(points=(Click((60, 30, 20), True),))),
               Target("b", Prompt(points=(Click((240, 30, 20), True),)))]
    masks = model.segment(image, targets, state)
    assert len(model.network.images) == 2 and set(state) == {"a", "b"}
    assert masks["a"][60, 30, 20] and not masks["a"][240, 30, 20]
    assert masks["b"][240, 30, 20] and not masks["b"][60, 30, 20]
    with pytest.raises(ValueError, match="one-channel"):
        model.segment(Image(array=np.zeros((2, 8, 8, 8), np.float32), spacing=(1.0,) * 3, affine=np.eye(4),
                            channels=2), targets, {})


class Stranger:
    """A pickled global no checkpoint reader should rebuild."""


def test_checkpoint_reader_takes_the_official_layout_without_trust_and_refuses_strangers(tmp_path):
    with torch.device("meta"):
        model = sam_med3d()
    official = {"epoch": 3, "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                "lr_scheduler_state_dict": {"last_epoch": 3}, "losses": [0.5], "dices": [0.7], "best_loss": 0.5,
                "best_dice": 0.7, "args": argparse.Namespace(model_type="vit_b_ori", lr=8e-5), "used_datas": ["x"],
                "model_state_dict": {"mask_decoder.iou_token.weight": torch.zeros(1, 384)}}
    partial = tmp_path / "partial.pth"
    torch.save(official, partial)
    with pytest.raises(CheckpointError, match=r"partial.pth: does not match SamMed3D: 323 missing"):
        model.load_checkpoint(str(partial))
    torch.save({**official, "args": Stranger()}, tmp_path / "stranger.pth")
    with pytest.raises(CheckpointError, match="refused to unpickle the pickled global .*Stranger"):
        model.load_checkpoint(str(tmp_path / "stranger.pth"))
    torch.save({"model": official["model_state_dict"]}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no 'model_state_dict' entry"):
        model.load_checkpoint(str(tmp_path / "other.pth"))
