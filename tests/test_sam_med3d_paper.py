"""`sam-med3d-paper`: SAM-Med3D's paper-era validation (uni-medical/SAM-Med3D@b5927c7) where it differs from
today's script: clicks made from the upsampled logits > 0.5 (validation.py:274 passes the logits to
utils/click_method.py:172 and :227, which threshold `prev_seg > 0.5`: a probability of 0.622), not from the
scored sigmoid > 0.5 mask; and the loader's identity affine (no reorientation) and CT clamp to [-1000, 1000]
(utils/data_loader.py:56-62)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchio")

from bench.engine.interactive import run_clicks  # noqa: E402
from bench.data.io import Volume  # noqa: E402
from bench.engine.presets import load_protocol  # noqa: E402
from bench.engine.spaces import crop_space, resample  # noqa: E402
from models.base import Image  # noqa: E402
from models.sam_med3d.mask_decoder import upscale_logits  # noqa: E402
from models.sam_med3d.model import SamMed3DModel  # noqa: E402
from protocols.protocol import ProtocolError, parse_protocol  # noqa: E402

CORE, HALO = 10.0, 0.3  # low-res logits: sigmoid(0.3) = 0.574 is in the scored mask, 0.3 > 0.5 is false


class FixedLogits(torch.nn.Module):
    """A fake SAM-Med3D network answering fixed low-res logits: CORE in a cube, HALO in a slab beside it."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        logits = torch.full((1, 1, 32, 32, 32), -10.0)
        logits[..., 8:16, 8:16, 8:16] = CORE
        logits[..., 16:22, 8:16, 8:16] = HALO
        self.logits = logits
        fake = self

        class Encoder(torch.nn.Module):
            def forward(self, x):
                return torch.zeros(1, 384, 8, 8, 8)

        class Prompt(torch.nn.Module):
            def forward(self, points, boxes, masks):
                return torch.zeros(1, points[0].shape[1] + 1, 384), torch.zeros(1, 384, 8, 8, 8)

            def get_dense_pe(self):
                return torch.zeros(1, 384, 8, 8, 8)

        class Decoder(torch.nn.Module):
            def forward(self, image_embeddings, image_pe, sparse, dense, multimask_output):
                return fake.logits.clone(), torch.tensor([[0.5]])

        self.image_encoder, self.prompt_encoder, self.mask_decoder = Encoder(), Prompt(), Decoder()


@pytest.fixture(scope="module")
def fixed_model():
    """The real SamMed3DModel (crop, state, feedback) around the fake network."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("models.sam_med3d.model.build_sam_med3d", FixedLogits)
        return SamMed3DModel(name="sam-med3d", checkpoint_file="sam_med3d.pth")


def _crop_image() -> Image:
    """An image already on the model's grid (128^3, 1.5 mm, RAS), as the crop space hands it over."""
    return Image(array=np.random.default_rng(0).normal(size=(128,) * 3).astype(np.float32),
                 spacing=(1.5,) * 3, affine=np.diag([1.5, 1.5, 1.5, 1.0]))


@pytest.mark.parametrize("errors_from", ["prediction", "logits"])
def test_paper_era_clicks_come_from_the_logits_above_one_half(fixed_model, errors_from):
    """The reference is exactly the scored mask (sigmoid > 0.5): judged on it, the prediction is perfect and
    the loop stops; judged as the paper-era generator does (logits > 0.5), the halo (0 < logit <= 0.5) is
    missed, and click 2 is a positive click in it."""
    logits = upscale_logits(fixed_model.network.logits)[0, 0].numpy()
    reference = logits > 0.0
    halo = reference & ~(logits > 0.5)
    assert halo.sum() > 1000
    steps = run_clicks(model=fixed_model, image=_crop_image(), reference=reference, n_clicks=2,
                       score=lambda pred: (float((pred == reference).all()), 0.0, int(pred.sum())),
                       policy_for=lambda k: "ritm" if k <= 2 else "random_error",
                       rng_for=lambda k: np.random.default_rng(k), feed="newest", click_spacing=(1, 1, 1),
                       errors_from=errors_from)
    assert steps[0].dsc == 1.0  # the scored mask is the reference
    if errors_from == "prediction":
        assert steps[1].clicks == ()  # perfect: no second click
    else:
        click = steps[1].click
        assert click.positive and halo[click.point]
        # RITM: among the voxels deeper than half the maximum distance of the FN region (the halo)
        from scipy.ndimage import distance_transform_edt
        depth = distance_transform_edt(np.pad(halo, 1))[1:-1, 1:-1, 1:-1]
        assert depth[click.point] > depth.max() / 2


def test_logit_mask_is_the_upsampled_logits_above_the_threshold(fixed_model):
    state: dict = {}
    image = _crop_image()
    from models.base import Target
    from protocols.prompts import Click, Prompt
    scored = fixed_model.segment(image, [Target("t", Prompt(points=(Click((40, 40, 40), True),)))], state)["t"]
    logits = upscale_logits(fixed_model.network.logits)[0, 0].numpy()
    np.testing.assert_array_equal(scored, logits > 0)
    np.testing.assert_array_equal(fixed_model.logit_mask(image, "t", state), logits > 0.5)
    assert not fixed_model.logit_mask(image, "other", state).any()


def _las_case():
    """A 3 mm scan stored in LAS voxel order (first axis right-to-left), a blob target, CT values past +-1000."""
    rng = np.random.default_rng(3)
    array = rng.integers(-2000, 3000, size=(24, 20, 14)).astype(np.int16)
    target = np.zeros(array.shape, bool)
    target[3:9, 6:12, 4:9] = True  # off-centre along the flipped axis
    las = np.diag([-3.0, 3.0, 3.0, 1.0])
    las[0, 3] = 69.0
    return array, target, las


def test_paper_era_space_keeps_the_stored_voxel_order_and_maps_back_with_the_true_affine():
    """`canonical: false` crops the scan as the paper-era loader saw it (an identity affine: the stored voxel
    order counts as RAS), hands the model that identity affine, and still maps predictions back correctly."""
    array, target, las = _las_case()
    paper = parse_protocol({"name": "p", "space": {"grid": "crop", "spacing": 1.5, "size": 16,
                                                   "canonical": False}}).space
    today = parse_protocol({"name": "t", "space": {"grid": "crop", "spacing": 1.5, "size": 16}}).space
    as_ras = np.diag([3.0, 3.0, 3.0, 1.0])  # the same array read as if it were stored RAS
    crop = crop_space(resample(Volume(array, (3.0,) * 3, las), "CT", {"t": target}, paper), "t", paper)
    same_array_ras = crop_space(resample(Volume(array, (3.0,) * 3, as_ras), "CT", {"t": target}, today), "t", today)
    canonical = crop_space(resample(Volume(array, (3.0,) * 3, las), "CT", {"t": target}, today), "t", today)
    np.testing.assert_array_equal(crop.image.array, same_array_ras.image.array)
    np.testing.assert_array_equal(crop.masks["t"], same_array_ras.masks["t"])
    assert not np.array_equal(crop.image.array, canonical.image.array)  # ToCanonical flips the first axis
    np.testing.assert_array_equal(crop.image.affine, np.diag([1.5, 1.5, 1.5, 1.0]))
    np.testing.assert_array_equal(crop.to_native(crop.masks["t"]), target)
    np.testing.assert_array_equal(canonical.to_native(canonical.masks["t"]), target)


@pytest.mark.parametrize("modality", ["CT", "MRI"])
def test_clamp_clips_ct_only(modality):
    array, target, las = _las_case()
    clamped = parse_protocol({"name": "p", "space": {"grid": "crop", "spacing": 1.5, "size": 16,
                                                     "clamp": [-1000, 1000]}}).space
    crop = crop_space(resample(Volume(array, (3.0,) * 3, las), modality, {"t": target}, clamped), "t", clamped)
    values = crop.image.array[crop.masks["t"]]
    if modality == "CT":
        assert values.min() == -1000 and values.max() == 1000
    else:
        assert values.min() < -1000 and values.max() > 1000


def test_paper_preset_turns_the_paper_era_options_on_and_checks_them():
    paper, today = load_protocol("sam-med3d-paper"), load_protocol("sam-med3d")
    assert (paper.space.canonical, paper.space.clamp, paper.prompts.errors_from) == (False, (-1000.0, 1000.0),
                                                                                     "logits")
    assert (today.space.canonical, today.space.clamp, today.prompts.errors_from) == (True, None, "prediction")
    with pytest.raises(ProtocolError, match="true or false"):
        parse_protocol({"name": "x", "space": {"grid": "crop", "spacing": 1.5, "size": 8, "canonical": "no"}})
    with pytest.raises(ProtocolError, match="crop space only"):
        parse_protocol({"name": "x", "space": {"clamp": [-1000, 1000]}})
    with pytest.raises(ProtocolError, match="low < high"):
        parse_protocol({"name": "x", "space": {"grid": "crop", "spacing": 1.5, "size": 8, "clamp": [5, 1]}})
    with pytest.raises(ProtocolError, match="errors_from"):
        parse_protocol({"name": "x", "prompts": {"errors_from": "probability"}})


PAPER_GOLDEN = __import__("pathlib").Path(__file__).parent / "goldens" / "sam_med3d_paper.npz"


def test_official_click_generators_fed_the_upsampled_logits_click_only_where_the_logit_mask_errs(fixed_model):
    """Golden (make_sam_med3d_paper_goldens.py): the official RITM and random generators, handed the upsampled
    logits as validation.py:274 hands them, with the reference = the scored mask (sigmoid > 0.5): every one of
    their clicks over 40 seeds is positive and lies in the error of our logit mask (the halo), RITM's among
    the halo's voxels deeper than half its maximum depth; judged on the scored mask there would be no error."""
    from scipy.ndimage import distance_transform_edt

    golden = np.load(PAPER_GOLDEN)
    state: dict = {}
    from models.base import Target
    from protocols.prompts import Click, Prompt
    image = _crop_image()
    scored = fixed_model.segment(image, [Target("t", Prompt(points=(Click((40, 40, 40), True),)))], state)["t"]
    reference = scored
    halo = reference & ~fixed_model.logit_mask(image, "t", state)
    depth = distance_transform_edt(np.pad(halo, 1))[1:-1, 1:-1, 1:-1]
    for name in ("random", "ritm"):
        points, labels = golden[f"clicks_{name}_points"], golden[f"clicks_{name}_labels"]
        assert (labels == 1).all() and halo[tuple(points.T)].all()
        if name == "ritm":
            assert (depth[tuple(points.T)] > depth.max() / 2).all()
        assert len({tuple(p) for p in points}) > 20  # drawn, not fixed


@pytest.mark.parametrize("orientation", ["ras", "las"])
@pytest.mark.parametrize("value", [5, 4])
def test_paper_crop_space_equals_the_official_paper_era_loader(shared_dir, orientation, value):
    """Golden: the paper-era data preparation and loader (resample_nii, Dataset_Union_ALL_Val with its identity
    affine and CT clamp, validation.py's ToCanonical + CropOrPad) on the real CT, as stored (RAS) and stored in LAS
    voxel order: the `sam-med3d-paper` crop space gives the same image and label crop."""
    import nibabel as nib

    golden = np.load(PAPER_GOLDEN)
    folder = shared_dir / "data" / "totalsegmentator_example"
    ct, seg = nib.load(folder / "ct.nii.gz"), nib.load(folder / "seg_total.nii.gz")
    image, labels, affine = np.asanyarray(ct.dataobj), np.asanyarray(seg.dataobj), ct.affine
    if orientation == "las":
        flip = np.diag([-1.0, 1.0, 1.0, 1.0])
        flip[0, 3] = image.shape[0] - 1
        image, labels, affine = image[::-1].copy(), labels[::-1].copy(), affine @ flip
    space = load_protocol("sam-med3d-paper").space
    volume = Volume(image, tuple(np.linalg.norm(affine[:3, :3], axis=0)), affine)
    crop = crop_space(resample(volume, "CT", {"t": labels == value}, space), "t", space)
    key = f"{orientation}_{value}"
    np.testing.assert_allclose(crop.image.array[::4, ::4, ::4], golden[f"{key}_image_sub"], rtol=0, atol=1e-3)
    official_label = np.unpackbits(golden[f"{key}_label_bits"])[:128 ** 3].reshape((128,) * 3).astype(bool)
    np.testing.assert_array_equal(crop.masks["t"], official_label)
