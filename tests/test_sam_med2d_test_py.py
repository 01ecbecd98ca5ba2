"""SAM-Med2D against its official test.py: the box handed to the network and the whole test loop on the demo data.

Goldens: tests/goldens/make_sam_med2d_test_goldens.py on OpenGVLab/SAM-Med2D (the official get_boxes_from_mask,
and test.py's main with the parity weights, in box mode and in point mode with 5 iterations).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("segment_anything")
from bench.data.sammed2d import read_cases
from models.base import Image, Target
from models.parity import parity_state_dict
from models.sam.model import SamSlices, sam_med2d
from models.sam_med2d.network import build_sam_med2d
from protocols.case import evaluate_case
from protocols.prompts import Click, Prompt
from protocols.prompts_boxes import largest_component_box
from tests.test_sam import small_sam

GOLDENS = Path(__file__).parent / "goldens" / "sam_med2d_test.npz"
SIZE = 256


def _capture_boxes(network) -> list:
    """The boxes (model-input frame) each prompt-encoder call gets."""
    boxes: list = []
    network.prompt_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: boxes.append(kwargs["boxes"]), with_kwargs=True)
    return boxes


def test_the_network_gets_get_boxes_from_mask_s_box():
    """test.py's box is utils.get_boxes_from_mask(mask, max_pixel=0) (DataLoader.py:78): the largest component's
    regionprops box (x0, y0, x1 + 1, y1 + 1), no jitter. Pinned on the model-input frame (256 x 256 masks, where
    the sam-med2d path maps pixels unchanged), through the model's `segment`."""
    golden = np.load(GOLDENS)
    masks = np.unpackbits(golden["box_masks"], axis=-1).astype(bool)
    model = SamSlices(network=small_sam(SIZE), path="sam-med2d", name="small-sam-med2d")
    boxes = _capture_boxes(model.network)
    plane = np.full((SIZE, SIZE), 100, np.uint8)
    for mask, expected in zip(masks, golden["box_boxes"]):
        model.segment(Image(array=plane, spacing=(1.0, 1.0), affine=np.eye(3)),
                      [Target("t", Prompt(boxes=(largest_component_box(mask),)))])
        np.testing.assert_array_equal(boxes[-1].numpy()[0], expected)
    assert len(boxes) == len(masks) == 6


@pytest.fixture(scope="module")
def parity_sam_med2d():
    model = sam_med2d(checkpoint={"model": parity_state_dict(build_sam_med2d())})
    return model


def _to_slice(xy, shape):
    """A test.py point (x, y) of the 256 frame -> the slice pixel (row, column) the project's path maps onto it:
    centred padding when both sides are smaller than 256, else a resize by 256 / side."""
    rows, cols = shape
    x, y = xy
    if rows < SIZE and cols < SIZE:
        return int(y) - (SIZE - rows) // 2, int(x) - (SIZE - cols) // 2
    return int(round(y * rows / SIZE)), int(round(x * cols / SIZE))


@pytest.mark.slow
def test_test_py_loop_on_the_demo_data(sammed2d_demo, parity_sam_med2d):
    """test.py main on data_demo with the parity weights: in box mode one pass per mask; in point mode the first
    random foreground point then 4 passes each adding one error point, the previous sigmoid mask fed back. The
    official clicks are replayed (drawn by numpy's global generator in the official script) through `segment`;
    the box is the project's own `largest_component_box`. Masks equal test.py's pixel for pixel (up to a
    threshold pixel flipped by another CPU's float kernels), Dice too."""
    golden = np.load(GOLDENS)
    record = json.loads(str(golden["record"]))
    cases = {case.case_id: case for case in read_cases(sammed2d_demo, "test")}
    model, states = parity_sam_med2d, {}
    for mode in ("box_mode", "point_mode"):
        for i, official in enumerate(record[mode]):
            stem = Path(official["name"]).stem
            case = next(c for c in cases.values() if stem.startswith(c.case_id + "_"))
            name = stem[len(case.case_id) + 1:]
            image = Image(array=case.plane(), spacing=case.spacing, affine=np.eye(3))
            shared = states.setdefault(case.case_id, {})
            state = {"_encoded": shared["_encoded"]} if "_encoded" in shared else shared
            reference = case.masks[name]
            for call in official["calls"]:
                if official["calls"][0]["box"] is not None:
                    assert call["points"] is None and len(official["calls"]) == 1
                    prompt = Prompt(boxes=(largest_component_box(reference),))
                else:
                    assert call["box"] is None and call["mask_input"] == (call is not official["calls"][0])
                    prompt = Prompt(points=tuple(Click(_to_slice(xy, reference.shape), bool(label))
                                                 for xy, label in zip(call["points"], call["labels"])))
                mask = model.segment(image, [Target(name, prompt)], state)[name]
            shared.setdefault("_encoded", state["_encoded"])
            expected = np.unpackbits(golden[f"{mode.split('_')[0]}_{i}"], axis=-1)[:, :reference.shape[1]]
            # float32 convolutions differ in their last bits between CPU kernels (AVX2 / AVX-512), which can flip
            # a pixel whose logit sits at the threshold: at most one pixel in 10^5, Dice within 1e-4.
            flipped = int((mask != expected.astype(bool)).sum())
            assert flipped <= mask.size // 100_000, f"{mode} {stem}: {flipped} pixels differ from test.py"
            (score,) = evaluate_case({name: mask}, {name: reference}, case.spacing, {name: 1})
            exact = 1e-6 if flipped == 0 else 1e-4  # test.py's Dice has eps 1e-7
            assert score.dsc == pytest.approx(official["metrics"]["dice"], abs=exact), (mode, stem)


def test_the_network_gets_test_py_s_box_on_the_demo_slices_padded_and_resized(sammed2d_demo):
    """On the demo data test.py boxes the mask after its 256 transform: centred padding (225 x 155) shifts the
    box; a nearest resize (512 x 512) samples every second pixel, so the box's corners are rounded up, not
    halved. Each of the 11 test masks: the box the network gets equals test.py's."""
    golden = np.load(GOLDENS)
    model = SamSlices(network=small_sam(SIZE), path="sam-med2d", name="small-sam-med2d")
    boxes = _capture_boxes(model.network)
    cases = list(read_cases(sammed2d_demo, "test"))
    for official in json.loads(str(golden["record"]))["box_mode"]:
        stem = Path(official["name"]).stem
        case = next(c for c in cases if stem.startswith(c.case_id + "_"))
        reference = case.masks[stem[len(case.case_id) + 1:]]
        model.segment(Image(array=case.plane(), spacing=case.spacing, affine=np.eye(3)),
                      [Target("t", Prompt(boxes=(largest_component_box(reference),)))])
        np.testing.assert_array_equal(boxes[-1].numpy()[0], official["calls"][0]["box"], err_msg=stem)
    assert len(boxes) == 11
