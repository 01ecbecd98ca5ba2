"""nnInteractive's session behind the model interface, on a random-weights model folder (CPU, tiny patch)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

pytest.importorskip("nnInteractive")
from bench.engine.interactive import run_clicks
from models.base import Image, Target
from models.nninteractive.folder import write_random_model_folder
from models.nninteractive.session import NnInteractive, checkpoint_path
from protocols.prompts import Click, Prompt

SHAPE = (48, 40, 36)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_random_model_folder(tmp_path_factory.mktemp("nni") / "model", patch_size=(32, 32, 32))


@pytest.fixture(scope="module")
def model(folder):
    return NnInteractive(checkpoint=folder, autozoom=False)


@pytest.fixture()
def volume():
    return np.random.default_rng(0).normal(100, 20, SHAPE).astype(np.float32)


def _channels(model, kind):
    return model.session.channel_mapping[kind]


def test_points_land_on_our_voxel_indices_and_the_mask_on_the_patch_around_them(model, volume):
    model.start(volume)
    changed = model.add_point((40, 5, 20), positive=True)
    assert changed == [[24, 48], [0, 21], [4, 36]]  # the 32^3 patch centred on the click, clipped to the image
    positive, negative = _channels(model, "points")
    interactions = model.session.interactions
    assert tuple(np.unravel_index(int(torch.argmax(interactions[positive])), SHAPE)) == (40, 5, 20)
    assert float(interactions[negative].max()) == 0
    mask = model.mask
    assert mask.dtype == bool and mask.shape == SHAPE and mask.any()
    outside = np.ones(SHAPE, bool)
    outside[24:48, 0:21, 4:36] = False
    assert not mask[outside].any()

    model.add_point((10, 30, 5), positive=False)
    assert tuple(np.unravel_index(int(torch.argmax(interactions[negative])), SHAPE)) == (10, 30, 5)

    model.new_object()
    assert not model.mask.any() and float(model.session.interactions.max()) == 0


def test_boxes_are_inclusive_and_must_be_flat(model, volume):
    model.start(volume)
    model.add_box((5, 6, 10), (20, 25, 10), positive=True)
    positive, _ = _channels(model, "bbox2d")
    written = np.argwhere(model.session.interactions[positive].numpy() > 0)
    np.testing.assert_array_equal(written.min(0), [5, 6, 10])
    np.testing.assert_array_equal(written.max(0), [20, 25, 10])
    with pytest.raises(ValueError, match="3D bounding box"):
        model.add_box((5, 6, 10), (20, 25, 14))


def test_model_interface_takes_the_newest_click_and_keeps_the_rest(model, volume):
    image = Image(array=volume, spacing=(1.0, 1.0, 1.0), affine=np.eye(4))
    state = {}
    mask = model.segment(image, [Target("t", Prompt(points=(Click((20, 20, 18), True),)))], state)["t"]
    assert model.capabilities.accumulates_clicks is False and mask.any()
    mask = model.segment(image, [Target("t", Prompt(points=(Click((5, 5, 5), False),)))], state)["t"]
    _, negative = _channels(model, "points")
    positive, _ = _channels(model, "points")
    assert float(model.session.interactions[positive, 20, 20, 18]) > 0  # the first click is still there
    assert float(model.session.interactions[negative, 5, 5, 5]) > 0
    with pytest.raises(ValueError, match="3D image"):
        model.start(volume[0])


def test_the_click_loop_hands_the_session_each_click_once_with_one_prediction_per_click(model, volume, monkeypatch):
    """Under `feed: all` the loop must still give nnInteractive only the newest click: its session keeps every
    interaction itself, so re-adding the earlier ones would make 4 clicks 10 interactions and 10 predictions."""
    added, predictions = [], []
    add_point, predict = model.session.add_point_interaction, model.session._predict
    monkeypatch.setattr(model.session, "add_point_interaction",
                        lambda coordinates, **kw: added.append(tuple(coordinates)) or add_point(coordinates, **kw))
    monkeypatch.setattr(model.session, "_predict", lambda *a, **kw: predictions.append(1) or predict(*a, **kw))
    reference = np.zeros(SHAPE, bool)
    reference[14:34, 12:30, 10:26] = True
    steps = run_clicks(model=model, image=Image(array=volume, spacing=(1.0, 1.0, 1.0), affine=np.eye(4)),
                       reference=reference, score=lambda pred: (0.0, 0.0, int(pred.sum())), n_clicks=4,
                       policy_for=lambda k: "center" if k == 1 else "center_largest_error",
                       rng_for=lambda k: np.random.default_rng(k), feed="all")
    clicks = [step.click.point for step in steps]
    assert len(set(clicks)) == 4
    assert (len(added), len(predictions)) == (4, 4) and added == clicks  # one interaction, one prediction a click
    assert model.capabilities.keeps_history


def test_autozoom_on_a_patch_its_refinement_cannot_cover_is_a_one_line_error(folder, tmp_path):
    """nnInteractive plans refinement patches with a 24-voxel margin per side: with a patch of at most 48 voxels
    on an axis its planner finds no patch and fails with `TypeError: 'NoneType' object is not iterable`. The
    official model's patch is 192^3, so only small (test) folders reach it; refuse them with the option to use."""
    with pytest.raises(ValueError, match=r"patch size \(32, 32, 32\) is too small for nnInteractive's autozoom .*"
                                         r"--model-args autozoom=false"):
        NnInteractive(checkpoint=folder)
    edge = write_random_model_folder(tmp_path / "edge", patch_size=(48, 64, 64), features=(2, 4))
    with pytest.raises(ValueError, match=r"patch size \(48, 64, 64\)"):
        NnInteractive(checkpoint=edge)
    wide = write_random_model_folder(tmp_path / "wide", patch_size=(49, 64, 64), features=(2, 4))
    assert NnInteractive(checkpoint=wide).session.do_autozoom


def test_the_session_network_is_in_eval_mode_once_loaded(model):
    assert not any(m.training for m in model.session.network.modules())


def test_model_folder_and_checkpoint_errors(folder, tmp_path):
    with pytest.raises(ValueError, match="not an nnInteractive model folder \\(missing plans.json"):
        checkpoint_path(tmp_path)
    with pytest.raises(ValueError, match="fold_3/checkpoint_final.pth: no such checkpoint"):
        checkpoint_path(folder, fold=3)
    unsafe = write_random_model_folder(tmp_path / "unsafe", patch_size=(32, 32, 32))
    path = unsafe / "fold_0" / "checkpoint_final.pth"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["args"] = argparse.Namespace(lr=1e-4)
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="checkpoint_final.pth: holds objects outside the allow-list"):
        NnInteractive(checkpoint=unsafe)
    trusted = NnInteractive(checkpoint=unsafe, trust_checkpoint=True, autozoom=False)
    assert trusted.session.network is not None
