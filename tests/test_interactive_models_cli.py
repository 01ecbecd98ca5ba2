"""Every interactive model through `bench clicks` under the `harness` preset, fed the same stored clicks: SAM-Med2D
and SAM ViT-B slice-wise, nnInteractive (random-weights model folder) and SAM-Med3D-turbo, random weights on CPU,
on a small CT-like volume. The first click is the same whatever the model, without replay (the centre policy);
with `--replay` a model gets exactly the clicks another model's run stored, and produces one row per click (about
a minute on 2 CPU cores: SAM ViT-B encodes 1024 x 1024 slices)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("segment_anything")
pytest.importorskip("nnInteractive")
pytest.importorskip("torchio")

import bench.engine.runner as runner  # noqa: E402
from bench.cli.app import app  # noqa: E402
from bench.data.io import write_volume  # noqa: E402
from models.nninteractive.folder import write_random_model_folder  # noqa: E402

AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("interactive")
    rng = np.random.default_rng(0)
    label = np.zeros((64, 56, 20), np.uint8)
    label[20:44, 18:40, 6:14] = 1
    image = (rng.normal(0, 20, label.shape) + 60 * label - 20).astype(np.int16)
    write_volume(root / "images" / "toy_0000.nii.gz", image, AFFINE)
    write_volume(root / "refs" / "toy.nii.gz", label, AFFINE)
    return root, write_random_model_folder(root / "nni", patch_size=(32, 32, 32))


def _clicks(folders, model, out, *extra, n_clicks=2):
    root, _ = folders
    runner.PROCESS_MODELS.clear()
    result = CliRunner().invoke(app, ["clicks", "--model", model, "--modality", "CT", "--images", str(root / "images"), "--refs",
                                      str(root / "refs"), "--labels", "1=liver", "--protocol", "harness",
                                      "--n-clicks", str(n_clicks), "--out", str(out), *extra])
    runner.PROCESS_MODELS.clear()
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out / "metrics.parquet")
    assert rows.click.tolist() == list(range(1, n_clicks + 1)) and set(rows.model) == {model} and set(rows.protocol) == {"harness"}
    assert rows.dsc.between(0, 1).all() and rows.nsd.between(0, 1).all()
    return json.loads(runner.prompt_record_path(out, "toy", "liver").read_text())["clicks"]


@pytest.mark.slow
def test_every_interactive_model_takes_the_same_stored_clicks(folders, tmp_path):
    first = _clicks(folders, "sam-med2d", tmp_path / "sam-med2d")
    assert len(first) == 2 and first[0]["positive"]
    options = {"nninteractive": ["--checkpoint", str(folders[1]), "--model-args", "autozoom=false"]}
    alone = _clicks(folders, "nninteractive", tmp_path / "alone", *options["nninteractive"], n_clicks=1)
    assert alone[0] == first[0]  # the centre of the target: the same first click whatever the model
    for model in ("sam-vit-b", "nninteractive", "sam-med3d-turbo"):
        replayed = _clicks(folders, model, tmp_path / model, "--replay", str(tmp_path / "sam-med2d"),
                           *options.get(model, []))
        assert [click["point"] for click in replayed] == [click["point"] for click in first]
        assert [click["positive"] for click in replayed] == [click["positive"] for click in first]
