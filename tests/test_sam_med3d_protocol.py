"""SAM-Med3D's TorchIO crop and back-mapping on the real CT of ../shared/data/totalsegmentator_example, against
the official `data_preprocess`/`data_postprocess` (tests/goldens/sam_med3d_crops.npz, made by
tests/goldens/make_sam_med3d_goldens.py with torchio 0.20.8, current when the official script was written), the
runner's crop space of the SAM-Med3D presets (`bench.engine.spaces`) against both, an identity-like fake network (the
crop's own label must come back as the reference inside the crop), and the encoder-once / decoder-per-click
plumbing with a counting fake model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nib = pytest.importorskip("nibabel")
pytest.importorskip("torchio")
pytest.importorskip("segment_anything")

from bench.data.io import Volume
from bench.engine.presets import load_protocol
from bench.engine.spaces import crop_space, resample
from models.base import Image, Target
from models.sam_med3d.inference import crop_positions, encode, predict_click
from models.sam_med3d.model import SamMed3DModel
from models.sam_med3d.preprocess import (
    as_crop,
    crop_around_label,
    crop_around_point,
    native_to_crop,
    to_native,
)
from protocols.prompts import Click, Prompt

GOLDEN = Path(__file__).parent / "goldens" / "sam_med3d_crops.npz"
CLASSES = (5, 2, 7)  # liver, kidney_right, pancreas


@pytest.fixture(scope="module", params=["ras", "las"])
def ct_case(request, shared_dir):
    """(name, image, affine, label map): the real CT as stored (RAS), and flipped along its first axis (LAS, so
    ToCanonical has work to do)."""
    folder = shared_dir / "data" / "totalsegmentator_example"
    image, label = nib.load(folder / "ct.nii.gz"), nib.load(folder / "seg_total.nii.gz")
    if request.param == "las":
        image, label = image.slicer[::-1], label.slicer[::-1]
    return request.param, np.asanyarray(image.dataobj), image.affine, np.asanyarray(label.dataobj)


def _inside(crop, shape, margin: float) -> np.ndarray:
    """Native voxels whose centre lies inside the crop box grown (margin > 0) or shrunk (< 0) by `margin` voxels."""
    coords = native_to_crop(np.indices(shape).reshape(3, -1).T, crop)
    low, high = -0.5 - margin, crop.image.shape[-1] - 0.5 + margin
    return np.all((coords > low) & (coords < high), axis=1).reshape(shape)


@pytest.mark.parametrize("value", CLASSES)
def test_crop_and_back_mapping_equal_the_official_code(ct_case, value):
    name, image, affine, labels = ct_case
    golden = np.load(GOLDEN)
    key = f"{name}_{value}"
    crop = crop_around_label(image, affine, labels == value)
    np.testing.assert_allclose(crop.affine, golden[f"{key}_affine"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(crop.image[0, 0, ::8, ::8, ::8].numpy(), golden[f"{key}_image_sub"], rtol=1e-6,
                               atol=1e-6)
    assert float(crop.image.double().mean()) == pytest.approx(float(golden[f"{key}_image_mean"]), abs=1e-6)
    assert float(crop.image.double().std()) == pytest.approx(float(golden[f"{key}_image_std"]), rel=1e-6)
    official_label = np.unpackbits(golden[f"{key}_label_bits"])[:128 ** 3].reshape((128,) * 3).astype(bool)
    np.testing.assert_array_equal(crop.label, official_label)
    official_native = np.unpackbits(golden[f"{key}_native_bits"])[:labels.size].reshape(labels.shape).astype(bool)
    np.testing.assert_array_equal(to_native(crop.label, crop), official_native)
    noise = np.random.default_rng(value).random((128, 128, 128)) > 0.5  # edges everywhere: tie-breaking shows
    official_noise = (np.unpackbits(golden[f"{key}_noise_native_bits"])[:labels.size].reshape(labels.shape)
                      .astype(bool))
    np.testing.assert_array_equal(to_native(noise, crop), official_noise)


@pytest.mark.parametrize("value", CLASSES)
def test_identity_network_round_trip_reproduces_the_reference_inside_the_crop(ct_case, value):
    """A fake network that returns the crop's label: mapped back, it equals the reference on every native voxel
    inside the crop and is empty outside it (half-voxel boundary band excepted)."""
    _, image, affine, labels = ct_case
    reference = labels == value
    crop = crop_around_label(image, affine, reference)
    native = to_native(crop.label, crop)
    assert native.shape == reference.shape and native.dtype == bool
    inside = _inside(crop, reference.shape, margin=-0.01)
    np.testing.assert_array_equal(native[inside], reference[inside])
    assert not native[~_inside(crop, reference.shape, margin=0.01)].any()
    assert reference[inside].sum() > 0.9 * reference.sum()  # the crop holds (nearly) the whole organ


@pytest.fixture(scope="module")
def crop_spaces(ct_case):
    """(name, labels, {class value: crop space}) of the `sam-med3d` preset (today's chain; the paper-era presets
    use the same space without reorientation and with the CT clamp, tests/test_sam_med3d_paper.py): the scan
    resampled once with every class, then one crop per class, as the runner builds them."""
    from dataclasses import replace

    name, image, affine, labels = ct_case
    space = load_protocol("sam-med3d").space
    assert space.grid == "crop" and all(replace(load_protocol(p).space, canonical=True, clamp=None) == space
                                        for p in ("sam-med3d-paper", "sam-med3d-2d-baseline"))
    volume = Volume(image, tuple(np.linalg.norm(affine[:3, :3], axis=0)), affine)
    resampled = resample(volume, "CT", {f"class {v}": labels == v for v in CLASSES}, space)
    return name, labels, {v: crop_space(resampled, f"class {v}", space) for v in CLASSES}


@pytest.mark.parametrize("value", CLASSES)
def test_crop_space_of_the_presets_is_the_official_chain(ct_case, crop_spaces, value):
    """The presets' crop space is the official TorchIO chain: its image (un-normalised, the model z-normalises
    it) gives the model the official input exactly, its target mask is the official cropped label, every other
    class is cropped by the same window, and `to_native` is the official `data_postprocess`: all equal to
    `crop_around_label` and to the official code's outputs (golden), RAS and LAS."""
    name, image, affine, labels = ct_case
    _, _, spaces = crop_spaces
    space = spaces[value]
    golden = np.load(GOLDEN)
    key = f"{name}_{value}"
    official = crop_around_label(image, affine, labels == value)
    assert space.image.array.dtype == np.float32 and space.image.shape == (128, 128, 128)
    assert space.image.spacing == (1.5, 1.5, 1.5)
    np.testing.assert_allclose(space.image.affine, golden[f"{key}_affine"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(space.image.array, np.rint(space.image.array))  # the int16 CT resampled as int16
    model_view = as_crop(space.image.array, space.image.affine)
    torch.testing.assert_close(model_view.image, official.image, rtol=0, atol=0)
    np.testing.assert_allclose(model_view.image[0, 0, ::8, ::8, ::8].numpy(), golden[f"{key}_image_sub"],
                               rtol=1e-6, atol=1e-6)
    official_label = np.unpackbits(golden[f"{key}_label_bits"])[:128 ** 3].reshape((128,) * 3).astype(bool)
    np.testing.assert_array_equal(space.masks[f"class {value}"], official_label)
    for other in CLASSES:  # the other classes through the same window: their nearest resample onto the crop grid
        np.testing.assert_array_equal(space.masks[f"class {other}"], _crop_of(labels == other, affine, official))
    official_native = np.unpackbits(golden[f"{key}_native_bits"])[:labels.size].reshape(labels.shape).astype(bool)
    np.testing.assert_array_equal(space.to_native(space.masks[f"class {value}"]), official_native)
    noise = np.random.default_rng(value).random((128, 128, 128)) > 0.5  # edges everywhere: tie-breaking shows
    official_noise = (np.unpackbits(golden[f"{key}_noise_native_bits"])[:labels.size].reshape(labels.shape)
                      .astype(bool))
    np.testing.assert_array_equal(space.to_native(noise), official_noise)


@pytest.mark.parametrize("value", CLASSES)
def test_crop_space_round_trip_reproduces_the_native_reference_inside_the_crop(ct_case, crop_spaces, value):
    _, _, spaces = crop_spaces
    _, image, affine, labels = ct_case
    space, reference = spaces[value], labels == value
    native = space.to_native(space.masks[f"class {value}"])
    official = crop_around_label(image, affine, reference)
    np.testing.assert_array_equal(native, to_native(official.label, official))
    inside = _inside(official, reference.shape, margin=-0.01)
    np.testing.assert_array_equal(native[inside], reference[inside])
    assert not native[~_inside(official, reference.shape, margin=0.01)].any()


def test_click_centred_crop_round_trip_and_click_position(ct_case):
    """The harness crop: the same TorchIO crop centred on a click instead of the label; the click lands at the
    crop centre and the round trip of the cropped reference is exact inside the crop."""
    _, image, affine, labels = ct_case
    reference = labels == 2
    click = np.argwhere(reference)[len(np.argwhere(reference)) // 3]
    crop = crop_around_point(image, affine, tuple(click))
    assert crop.label is None
    assert np.all(np.abs(native_to_crop(click, crop)[0] - 63.5) <= 1.0)
    fake = to_native(_crop_of(reference, affine, crop), crop)
    inside = _inside(crop, reference.shape, margin=-0.01)
    np.testing.assert_array_equal(fake[inside], reference[inside])
    with pytest.raises(ValueError, match="outside the image"):
        crop_around_point(image, affine, (-50, 0, 0))


def _crop_of(mask: np.ndarray, affine: np.ndarray, crop) -> np.ndarray:
    """`mask` on the crop grid by nearest neighbour (the label a crop_around_point crop has no copy of)."""
    import torchio as tio

    reference = tio.ScalarImage(tensor=torch.zeros((1, 128, 128, 128)), affine=crop.affine)
    image = tio.LabelMap(tensor=torch.as_tensor(mask.astype(np.uint8))[None], affine=affine)
    return tio.Resample(target=reference)(image).data[0].numpy() > 0


def test_bad_inputs_are_refused():
    image = np.zeros((20, 20, 20), np.int16)
    with pytest.raises(ValueError, match="empty"):
        crop_around_label(image, np.eye(4), np.zeros_like(image, bool))
    with pytest.raises(ValueError, match="does not match"):
        crop_around_label(image, np.eye(4), np.ones((20, 20, 19), bool))
    with pytest.raises(ValueError, match="3D images"):
        crop_around_point(image[0], np.eye(4), (1, 1, 1))


class CountingModel(torch.nn.Module):
    """A fake SamMed3D: counts encoder and decoder calls, records the mask input of each decoder call, and
    answers logits +10 inside a fixed cube of the 32^3 grid, -10 elsewhere (plus the pass number / 1000, so
    that each pass's logits differ), and records them."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.encoder_calls, self.mask_inputs, self.points, self.outputs = 0, [], [], []
        model = self

        class Encoder(torch.nn.Module):
            def forward(self, x):
                model.encoder_calls += 1
                return torch.zeros(1, 384, 8, 8, 8)

        class Prompt(torch.nn.Module):
            def forward(self, points, boxes, masks):
                model.mask_inputs.append(masks.clone())
                model.points.append(points[0].clone())
                return torch.zeros(1, points[0].shape[1] + 1, 384), torch.zeros(1, 384, 8, 8, 8)

            def get_dense_pe(self):
                return torch.zeros(1, 384, 8, 8, 8)

        class Decoder(torch.nn.Module):
            def forward(self, image_embeddings, image_pe, sparse, dense, multimask_output):
                assert multimask_output is False
                logits = torch.full((1, 1, 32, 32, 32), -10.0)
                logits[..., 8:16, 8:16, 8:16] = 10.0
                model.outputs.append(logits + len(model.outputs) / 1000)
                return model.outputs[-1], torch.tensor([[0.5]])

        self.image_encoder, self.prompt_encoder, self.mask_decoder = Encoder(), Prompt(), Decoder()


def test_encoder_once_decoder_per_click_and_logits_fed_back(shared_dir):
    folder = shared_dir / "data" / "totalsegmentator_example"
    image, labels = nib.load(folder / "ct.nii.gz"), nib.load(folder / "seg_total.nii.gz")
    reference = np.asanyarray(labels.dataobj) == 5
    crop = crop_around_label(np.asanyarray(image.dataobj), image.affine, reference)
    model = CountingModel()
    embedding = encode(model, crop)
    previous, points, clicks = None, np.zeros((0, 3)), [((64, 64, 64), 1), ((30, 40, 50), 0), ((70, 60, 64), 1)]
    for point, label in clicks:
        points = np.vstack([points, point])
        result = predict_click(model, embedding, points, [c[1] for c in clicks[:len(points)]], previous, crop)
        previous = result.low_res
    assert model.encoder_calls == 1 and len(model.mask_inputs) == 3
    assert not model.mask_inputs[0].any() and model.mask_inputs[0].shape == (1, 1, 32, 32, 32)
    assert all(torch.equal(model.mask_inputs[i + 1], model.outputs[i]) for i in range(2))
    assert torch.equal(previous, model.outputs[2])
    assert [p.shape[1] for p in model.points] == [1, 2, 3]
    cube = np.zeros((128,) * 3, bool)
    cube[32:64, 32:64, 32:64] = True  # the 4x upscaled logit cube: trilinear rounds its edges off
    assert result.crop_mask[34:62, 34:62, 34:62].all() and not result.crop_mask[~cube].any()
    np.testing.assert_array_equal(result.native, to_native(result.crop_mask, crop))
    with pytest.raises(ValueError, match="labels"):
        predict_click(model, embedding, [[1, 2, 3]], [2], None)


@pytest.mark.parametrize("accumulate", [True, False])
def test_the_model_feeds_the_points_it_is_given_and_its_last_logits(accumulate):
    """Through `SamMed3DModel.segment` with the counting network: the crop and its embedding are made once (on
    the first positive click), each call passes exactly the clicks it is given (all so far, or the newest: the
    protocol's `feed`) at their crop voxels, and the previous pass's logits are the next pass's mask input."""
    image = np.zeros((40, 40, 40), np.float32)
    image[10:30, 10:30, 10:30] = 100
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    with torch.device("meta"):
        model = SamMed3DModel(name="counting", checkpoint_file="none.pth")
    model.network = network = CountingModel()
    clicks = [Click((20, 20, 20), True), Click((15, 20, 25), False), Click((22, 23, 24), True)]
    state: dict = {}
    for k in range(len(clicks)):
        given = clicks[:k + 1] if accumulate else clicks[k:k + 1]
        mask = model.segment(Image(array=image, spacing=(2.0, 2.0, 2.0), affine=affine),
                             [Target("t", Prompt(points=tuple(given)))], state)["t"]
    crop = state["t"].crop
    torch.testing.assert_close(crop.image, crop_around_point(image, affine, (20, 20, 20)).image, rtol=0, atol=0)
    assert network.encoder_calls == 1
    assert [p.shape[1] for p in network.points] == ([1, 2, 3] if accumulate else [1, 1, 1])
    assert network.points[-1][0, -1].tolist() == crop_positions(np.array([[22, 23, 24]], float), crop)[0][0].tolist()
    assert not network.mask_inputs[0].any()
    assert all(torch.equal(network.mask_inputs[i + 1], network.outputs[i]) for i in range(2))
    assert torch.equal(state["t"].low_res, network.outputs[2])
    assert mask.shape == image.shape and mask.dtype == bool


def test_native_clicks_land_on_the_crop_voxel_of_the_same_world_point():
    image = np.zeros((300, 60, 40), np.int16)  # 2 x 3 x 4 mm: 400 mm along the first axis, longer than the crop
    image[100:200, 20:40, 10:30] = 100
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    crop = crop_around_point(image, affine, (150, 30, 20))
    positions, inside = crop_positions(np.array([[150, 30, 20], [5, 30, 20]], float), crop)  # as the model moves them
    world = affine @ np.array([150, 30, 20, 1.0])
    expected = np.rint((np.linalg.inv(crop.affine) @ world)[:3])
    assert positions[0].tolist() == expected.tolist()
    assert inside.tolist() == [True, False]  # 400 mm along the first axis: voxel 5 lies outside the 192 mm crop
