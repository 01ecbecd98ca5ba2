"""SegVol behind the model interface: prompts moved onto the zoom-out grid, `bench models verify` on an official-layout
checkpoint, `bench run` under the `segvol` and `harness` presets on a dataset made from the real CT in ../shared.

Oracles: the demo's own prompt construction (box of the resized label, `official_prompt`), the official key layout
(`official_layout`, checked against SegVol.json in test_segvol_network.py), the stored prompt JSON of another model's
run (what SegVol must be given under `--replay`), and the pieces' own `segment_volume` for the expected masks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("segment_anything")
from typer.testing import CliRunner

from bench.engine import runner
from bench.cli.app import app
from bench.data.io import read_label_map, read_volume
from models.parity import parity_tensor
from models.registry import get_model
from models.segvol.checkpoint import official_layout
from models.segvol.inference import official_prompt, segvol_box
from models.segvol.model import zoom_out_box, zoom_out_prompt
from models.segvol.network import SegVolNetwork
from models.segvol.preprocess import label_zoom_out, native_to_zoom_out, preprocess
from protocols.prompts import Box, Click, Prompt
from protocols.prompts_boxes import box_from_mask

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "goldens"))
from tiny_clip import write_tiny_clip_tokenizer

KEEP = {"liver": 5, "spleen": 1}


def ellipsoid_scan(shape=(600, 200, 20)) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like native (X, Y, Z) volume: a body with a bright ellipsoid 'organ', and the organ's label. X (SegVol's
    W) is shrunk to 256 on the zoom-out grid, Y and Z are stretched."""
    x, y, z = np.ogrid[:shape[0], :shape[1], :shape[2]]
    body = ((x - 300) / 240.0) ** 2 + ((y - 100) / 80.0) ** 2 < 1
    organ = ((x - 360) / 60.0) ** 2 + ((y - 90) / 25.0) ** 2 + ((z - 10) / 6.0) ** 2 < 1
    return np.where(body, 40.0, -1000.0).astype(np.float32) + 80.0 * organ, organ


def test_native_box_lands_on_the_box_the_demo_draws_on_the_zoom_out_label():
    image, organ = ellipsoid_scan()
    geometry = preprocess(image).geometry
    demo = segvol_box(label_zoom_out(organ, geometry))
    np.testing.assert_array_equal(zoom_out_box(box_from_mask(organ), geometry), demo)
    rng = np.random.default_rng(0)
    thin = 0
    for _ in range(30):  # any box: per axis, the zoom-out extent of the resized slab the box spans on that axis
        lo = rng.integers(0, [590, 190, 18])
        box = Box(tuple(int(v) for v in lo), tuple(int(v) for v in lo + rng.integers(0, [3, 10, 2])))
        centre = native_to_zoom_out(tuple((a + b) // 2 for a, b in zip(box.lo, box.hi)), geometry)
        found = zoom_out_box(box, geometry)
        for native_axis in range(3):
            slab = np.zeros(organ.shape, bool)
            slab[(slice(None),) * native_axis + (slice(box.lo[native_axis], box.hi[native_axis] + 1),)] = True
            axis = 2 - native_axis  # SegVol's (D, H, W) = native (Z, Y, X)
            hits = np.flatnonzero(label_zoom_out(slab, geometry).any(axis=tuple({0, 1, 2} - {axis})))
            expected = (hits[0], hits[-1]) if hits.size else (centre[axis],) * 2  # between samples: the centre
            thin += not hits.size
            assert (found[axis], found[axis + 3]) == expected, (box, native_axis)
    assert thin  # the seed draws boxes that fall between the samples of the shrunk axis
def test_clicks_and_text_move_to_the_zoom_out_grid_and_empty_prompts_give_nothing():
    image, organ = ellipsoid_scan()
    geometry = preprocess(image).geometry
    clicks = (Click((180, 90, 10), True), Click((20, 20, 3), False))
    prompt = zoom_out_prompt(Prompt(points=clicks, text="liver"), geometry, "liver")
    np.testing.assert_array_equal(prompt.points, [native_to_zoom_out(c.point, geometry) for c in clicks])
    np.testing.assert_array_equal(prompt.point_labels, [1, 0])
    assert prompt.text == "liver" and prompt.box is None
    assert label_zoom_out(organ, geometry)[tuple(prompt.points[0])]
    assert zoom_out_prompt(Prompt(), geometry, "x") is None
    with pytest.raises(ValueError, match="one box per target"):
        zoom_out_prompt(Prompt(boxes=(Box((0, 0, 0), (1, 1, 1)),) * 2), geometry, "x")


def test_options_are_checked_before_the_network_is_built(tmp_path):
    for options, message in [({"prompts": "mask"}, "join text, box, point"),
                             ({"prompts": "box+point"}, "not both"),
                             ({"zoom_in": "yes"}, "true or false"),
                             ({"clip": str(tmp_path / "none")}, "no such folder")]:
        with pytest.raises(ValueError, match=message):
            get_model("segvol", **options)


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    """An official-layout SegVol_v1.pth with the parity weights: {'model': DataParallel keys, 'epoch', optimizer}."""
    with torch.device("meta"):
        layout = official_layout(SegVolNetwork())
    path = tmp_path_factory.mktemp("ckpt") / "SegVol_v1.pth"
    weights = {f"module.{key}": parity_tensor(key, like) for key, like in layout.items()}
    torch.save({"model": weights, "epoch": 2000, "optimizer": {"state": {}, "param_groups": []}}, path)
    del weights
    return path


@pytest.fixture(scope="module")
def raw_dataset(ts_raw_dataset):
    """Dataset993_SegVolTS: the real CT (122 x 101 x 30) with its liver and spleen as labelsTs."""
    return ts_raw_dataset("Dataset993_SegVolTS", KEEP)


@pytest.fixture
def decoded(monkeypatch) -> list:
    """What SegVol's network is asked to decode: (text embedding, boxes, (points, labels)) per call."""
    calls = []
    decode = SegVolNetwork.decode

    def recording(self, embedding, text_embedding=None, boxes=None, points=None, low_res=False):
        calls.append((text_embedding, None if boxes is None else boxes.tolist(),
                      None if points is None else (points[0].tolist(), points[1].tolist())))
        return decode(self, embedding, text_embedding, boxes, points, low_res)

    monkeypatch.setattr(SegVolNetwork, "decode", recording)
    return calls


@pytest.fixture(autouse=True)
def fresh_models():
    runner.PROCESS_MODELS.clear()
    yield
    runner.PROCESS_MODELS.clear()


def test_verify_and_run_under_the_segvol_preset_with_an_official_checkpoint(checkpoint_file, raw_dataset, tmp_path,
                                                                          decoded):
    verified = CliRunner().invoke(app, ["models", "verify", "segvol", "--checkpoint", str(checkpoint_file)])
    assert verified.exit_code == 0, verified.output
    assert "loads into segvol strictly (180,890,064 parameters)" in verified.output

    clip = write_tiny_clip_tokenizer(tmp_path / "clip")
    out = tmp_path / "run"
    args = ["run", "--model", "segvol", "--protocol", "segvol", "--root", str(raw_dataset), "--out", str(out),
            "--checkpoint", str(checkpoint_file), "--model-args", f"clip={clip}", "--model-args", "zoom_in=false",
            "--model-args", "trust_tokenizer=true"]  # the tiny CLIP vocabulary is not the published one
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ran 1 case(s), 0 already stored" in result.output
    config = json.loads((out / "run.json").read_text())
    assert config["prompts_given"] == ["boxes", "text"]  # the demo's default text+box; points left out
    assert config["model_provenance"]["parameters"] == 180_890_064
    rows = pd.read_parquet(out / "metrics.parquet")
    assert sorted(rows.class_name) == ["liver", "spleen"] and rows.dsc.between(0, 1).all()

    # SegVol decodes the demo's prompts: text + the box drawn on the zoom-out label (liver, spleen in label order)
    image = read_volume(raw_dataset / "imagesTs" / "ts_0001_0000.nii.gz")
    labels = read_label_map(raw_dataset / "labelsTs" / "ts_0001.nii.gz").array
    geometry = preprocess(np.asarray(image.array, np.float32)).geometry
    network = runner.PROCESS_MODELS.models()[0].network  # the run's model, loaded from the file
    key = "mask_decoder.output_upscaling.1.weight"
    assert torch.equal(network.state_dict()[key], parity_tensor(key, network.state_dict()[key]))
    assert len(decoded) == len(KEEP)
    for (text, boxes, points), (value, name) in zip(decoded, enumerate(KEEP, 1)):
        demo = official_prompt(label_zoom_out(labels == value, geometry), name, "box+text")
        assert boxes == [demo.box.astype(float).tolist()] and points is None and text.shape == (1, 768)
        record = json.loads(next((out / "prompts").glob(f"*/{name}*.json")).read_text())
        box = box_from_mask(labels == value)
        assert record["boxes"] == [{"lo": list(box.lo), "hi": list(box.hi)}] and not record["points"]
        stored = nib.load(out / "predictions" / "ts_0001" / f"{name}.nii.gz")
        assert stored.shape == labels.shape and np.allclose(stored.affine, image.affine)
        mask = np.asarray(stored.dataobj) > 0
        row = rows[rows.class_name == name].iloc[0]
        overlap = int((mask & (labels == value)).sum())
        assert row.dsc == pytest.approx(2 * overlap / (mask.sum() + (labels == value).sum() + 1))
    assert "ran 0 case(s), 1 already stored" in CliRunner().invoke(app, args).output


def test_under_harness_segvol_gets_exactly_the_stored_clicks(raw_dataset, tmp_path, decoded):
    first = tmp_path / "region_growing"
    common = ["--protocol", "harness", "--root", str(raw_dataset), "--class", "liver", "--n-clicks", "2"]
    assert CliRunner().invoke(app, ["run", "--model", "region_growing", "--out", str(first), *common]).exit_code == 0
    stored = json.loads(next((first / "prompts").glob("*/liver*.json")).read_text())
    clicks = [Click.from_json(c) for c in stored["clicks"]]
    assert len(clicks) == 2

    out = tmp_path / "segvol"
    result = CliRunner().invoke(app, ["run", "--model", "segvol", "--out", str(out), "--replay", str(first),
                                      "--model-args", "prompts=point", "--model-args", "zoom_in=false", *common])
    assert result.exit_code == 0, result.output
    image = read_volume(raw_dataset / "imagesTs" / "ts_0001_0000.nii.gz")
    geometry = preprocess(np.asarray(image.array, np.float32)).geometry
    assert len(decoded) == 2  # one zoom-out decode per click, each with every click so far, on the zoom-out grid
    for k, (text, boxes, points) in enumerate(decoded, 1):
        assert text is None and boxes is None
        assert points == ([[list(native_to_zoom_out(c.point, geometry)) for c in clicks[:k]]],
                          [[float(c.positive) for c in clicks[:k]]])
    replayed = json.loads(next((out / "prompts").glob("*/liver*.json")).read_text())
    assert replayed["clicks"] == stored["clicks"] and replayed["replayed_from"] == str(first.resolve())
    rows = pd.read_parquet(out / "metrics.parquet")
    assert sorted(rows.click) == [1, 2] and rows.dsc.between(0, 1).all()


def test_under_the_segvol_preset_points_are_drawn_on_the_zoom_out_label_with_torchs_rule(
        checkpoint_file, raw_dataset, tmp_path, decoded):
    """`prompts=point+text`: SegVol decodes the point set the demo draws (`select_points(label_resize, 3, 3)` on
    the zoom-out label, inference_demo.py:66), from a torch generator seeded by the harness's per-prompt numpy
    Generator; the stored native voxels are the ones those positions sample (each click's label is the
    reference's). On this CT every axis is shorter than the zoom-out grid, so the stored voxels alone would
    land one zoom-out step away on some axes: the model decodes the points as drawn."""
    from bench.data.catalog.cases import discover_sources
    from models.segvol.points import select_points, torch_generator, zoom_out_to_native
    from protocols.prompts import prompt_rng

    clip = write_tiny_clip_tokenizer(tmp_path / "clip")
    out = tmp_path / "run"
    args = ["run", "--model", "segvol", "--protocol", "segvol", "--root", str(raw_dataset), "--out", str(out),
            "--checkpoint", str(checkpoint_file), "--model-args", f"clip={clip}", "--model-args", "zoom_in=false",
            "--model-args", "prompts=point+text", "--model-args", "trust_tokenizer=true", "--class", "liver"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    image = read_volume(raw_dataset / "imagesTs" / "ts_0001_0000.nii.gz")
    liver = read_label_map(raw_dataset / "labelsTs" / "ts_0001.nii.gz").array == 1
    geometry = preprocess(np.asarray(image.array, np.float32)).geometry
    (source,) = discover_sources(raw_dataset)
    official, labels = select_points(label_zoom_out(liver, geometry),
                                     torch_generator(prompt_rng(0, source.case_id, "liver", "static", 1)),
                                     n_positive_extra=3, n_negative_extra=3)
    ((text, boxes, points),) = decoded
    assert boxes is None and points == ([official.astype(float).tolist()], [labels.astype(float).tolist()])
    record = json.loads(next((out / "prompts").glob("*/liver*.json")).read_text())
    stored = [Click.from_json(c) for c in record["points"]]
    assert [c.point for c in stored] == [zoom_out_to_native(p, geometry) for p in official]
    assert [c.positive for c in stored] == [bool(v) for v in labels] == [bool(liver[c.point]) for c in stored]
