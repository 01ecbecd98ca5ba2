"""The model interface, the 2D-to-3D adapter, the registry and the weightless reference models."""

from __future__ import annotations

import numpy as np
import pytest

from models.adapters import SliceWise
from models.base import Capabilities, Image, Model, Target, UnsupportedPrompt
from models.reference.oracle import PerturbationOracle, degrade
from models.registry import get_model, model_names, register_model
from protocols.prompts import Box, Click, Prompt
from protocols.prompts_slices import slice_boxes, slice_points


class BoxAndPoints(Model):
    """A 2D test model: fills its boxes and marks its positive points; counts its calls per image."""

    name = "box_and_points"

    def __init__(self, *, accumulates: bool = True):
        self.capabilities = Capabilities(ndims=frozenset({2}), prompts=frozenset({"points", "boxes"}),
                                         accumulates_clicks=accumulates)
        self.calls = 0

    def _segment(self, image, targets, state):
        masks = {}
        for target in targets:
            self.calls += 1
            mask = state.get(target.name, np.zeros(image.shape, bool)).copy()
            for box in target.prompt.boxes:
                mask[box.lo[0]:box.hi[0] + 1, box.lo[1]:box.hi[1] + 1] = True
            for click in target.prompt.points:
                mask[click.point] = click.positive
            state[target.name] = masks[target.name] = mask
        return masks


def _one(model, image, prompt, state=None):
    """Segment one target named "t"; returns (mask, state) as the tests below read it."""
    state = {} if state is None else state
    return model.segment(image, [Target("t", prompt)], state)["t"], state


def _image(shape=(10, 12, 6), spacing=(1.0, 1.0, 2.0)) -> Image:
    return Image(array=np.zeros(shape, np.float32), spacing=spacing, affine=np.eye(4))


def test_undeclared_prompt_kind_or_dimensionality_is_a_clear_error():
    model = get_model("region_growing")
    with pytest.raises(UnsupportedPrompt, match="does not take text prompts"):
        _one(model, _image(), Prompt(text="liver"))
    with pytest.raises(UnsupportedPrompt, match="does not take text prompts"):
        _one(model, _image(), Prompt(points=(Click((1, 1, 1), True),), text="liver"))
    with pytest.raises(UnsupportedPrompt, match="takes \\[2\\]D images"):
        _one(BoxAndPoints(), _image(), Prompt())
    with pytest.raises(ValueError, match="invalid capabilities"):
        Capabilities(ndims=frozenset({3}), prompts=frozenset({"scribbles"}), accumulates_clicks=True)


def test_slice_wise_routes_prompts_and_leaves_unprompted_slices_empty():
    inner = BoxAndPoints()
    model = SliceWise(model=inner, axis=2)
    assert model.capabilities.ndims == {2, 3} and model.capabilities.prompts == {"points", "boxes"}
    prompt = Prompt(points=(Click((2, 3, 1), True),), boxes=(Box((5, 5, 3), (6, 7, 4)),))
    mask, state = _one(model, _image(), prompt)
    assert mask.shape == (10, 12, 6)
    assert mask[2, 3, 1] and mask[:, :, 1].sum() == 1
    assert mask[5:7, 5:8, 3:5].all() and mask[:, :, 3:5].sum() == 12
    assert not mask[:, :, [0, 2, 5]].any()
    assert sorted(state["t"]) == [1, 3, 4] and inner.calls == 3


def test_slice_wise_passes_a_2d_image_straight_to_its_2d_model():
    inner = BoxAndPoints()
    plane = Prompt(points=(Click((2, 3), True),), boxes=(Box((5, 5), (6, 7)),))
    mask, state = _one(SliceWise(model=inner, axis=2), _image((10, 12), (1.0, 1.0)), plane)
    direct, direct_state = _one(BoxAndPoints(), _image((10, 12), (1.0, 1.0)), plane)
    np.testing.assert_array_equal(mask, direct)
    assert mask[2, 3] and mask[5:7, 5:8].all() and mask.sum() == 7 and inner.calls == 1
    np.testing.assert_array_equal(state["t"], direct_state["t"])  # the inner model's own state, not per slice


def test_slice_wise_along_another_axis_and_newest_click_keeps_other_slices():
    model = SliceWise(model=BoxAndPoints(accumulates=False), axis=0)
    mask, state = _one(model, _image(), Prompt(points=(Click((4, 1, 1), True),)))
    mask, state = _one(model, _image(), Prompt(points=(Click((7, 2, 2), True),)), state)
    assert mask[4, 1, 1] and mask[7, 2, 2] and mask.sum() == 2
    assert not model.capabilities.accumulates_clicks


def test_slice_wise_needs_a_2d_model():
    with pytest.raises(ValueError, match="2D"):
        SliceWise(model=_ThreeDOnly())


class _ThreeDOnly(Model):
    name = "three_d_only"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"points"}), accumulates_clicks=True)

    def _segment(self, image, targets, state):
        return {target.name: np.zeros(image.shape, bool) for target in targets}


def test_registry_lists_builds_and_rejects():
    assert {"region_growing", "oracle"} <= set(model_names())
    assert get_model("oracle", shift=3).shift == 3
    with pytest.raises(ValueError, match="unknown model 'sam9'.*region_growing"):
        get_model("sam9")

    @register_model("test_three_d_only")
    def factory(**options):
        return _ThreeDOnly()

    assert isinstance(get_model("test_three_d_only"), _ThreeDOnly)
    with pytest.raises(ValueError, match="already registered"):
        register_model("oracle")(factory)


def test_oracle_degrades_deterministically_and_repairs_around_clicks():
    ref = np.zeros((20, 20, 10), bool)
    ref[5:15, 5:15, 2:8] = True
    moved = degrade(ref, erosion=0, dilation=0, shift=2, rng=np.random.default_rng(0))
    assert moved.sum() == ref.sum() and (moved != ref).any()
    assert (moved == degrade(ref, erosion=0, dilation=0, shift=2, rng=np.random.default_rng(0))).all()
    assert degrade(ref, erosion=1, dilation=0, shift=0, rng=np.random.default_rng(0)).sum() == 8 * 8 * 4
    oracle = PerturbationOracle(shift=2, repair_mm=3.0, seed=0)
    image = _image((20, 20, 10), (1.0, 1.0, 1.0))
    start, state = _one(oracle, image, Prompt(reference=ref))
    assert (start == moved).all()
    repaired, _ = _one(oracle, image, Prompt(points=(Click((10, 10, 5), True),), reference=ref), state)
    i, j, k = np.indices(ref.shape)
    ball = (i - 10) ** 2 + (j - 10) ** 2 + (k - 5) ** 2 <= 9
    assert (repaired[ball] == ref[ball]).all() and (repaired[~ball] == start[~ball]).all()
    assert (start[ball] != ref[ball]).any()


def _two_blobs() -> tuple[Image, np.ndarray, np.ndarray]:
    array = np.full((40, 40, 12), -100.0, np.float32)
    a = np.zeros(array.shape, bool)
    b = np.zeros(array.shape, bool)
    a[5:18, 5:18, 2:10] = True
    b[24:36, 22:36, 2:10] = True
    array[a] = 60.0
    array[b] = 60.0
    array += np.random.default_rng(0).normal(0, 5, array.shape).astype(np.float32)
    return Image(array=array, spacing=(1.0, 1.0, 2.0), affine=np.eye(4)), a, b


def test_region_growing_follows_positive_clicks_and_obeys_negative_ones():
    image, a, b = _two_blobs()
    model = get_model("region_growing")
    mask, state = _one(model, image, Prompt(points=(Click((11, 11, 6), True),)))
    assert (mask & a).sum() > 0.8 * a.sum() and not (mask & b).any()
    both, _ = _one(model, image, Prompt(points=(Click((11, 11, 6), True), Click((30, 30, 6), True))), state)
    assert (both & b).sum() > 0.8 * b.sum()
    cut, _ = _one(model, image, Prompt(points=(Click((11, 11, 6), True), Click((11, 16, 6), False))), state)
    assert cut.sum() < mask.sum() and not cut[11, 16, 6]
    assert not _one(model, image, Prompt(points=(Click((11, 16, 6), False),)))[0].any()


def test_slice_wise_takes_sam_med3d_n_points_per_slice():
    ref = np.zeros((10, 12, 6), bool)
    ref[2:8, 3:9, 1:4] = True
    model = SliceWise(model=BoxAndPoints(), axis=2)
    points = slice_points(ref, 2, 3, np.random.default_rng(0), ring_width=2)
    mask, state = _one(model, _image(), Prompt(points=points))
    assert sorted(state["t"]) == [1, 2, 3] and mask[:, :, 1:4].sum() == 2 * 3  # two positives per slice
    boxed, _ = _one(model, _image(), Prompt(boxes=slice_boxes(ref, 2)))
    assert (boxed == ref).all()


def test_region_growing_seeds_at_a_box_centre_and_stays_inside_the_box():
    image, a, b = _two_blobs()
    model = get_model("region_growing")
    mask, _ = _one(model, image, Prompt(boxes=(Box((5, 5, 2), (17, 17, 9)),)))
    assert (mask & a).sum() > 0.8 * a.sum() and not (mask & b).any()
    clipped, _ = _one(model, image, Prompt(boxes=(Box((5, 5, 2), (17, 10, 9)),)))
    assert clipped.any() and not clipped[:, 11:, :].any()


def _torch_modules(model: Model) -> list:
    """Every torch module a model holds (its `network`, SAT's `text_network`, a slice-wise model's inner one)."""
    import torch

    return [value for value in vars(model).values() if isinstance(value, torch.nn.Module)]


def test_every_registered_model_class_declares_its_capabilities_as_class_data():
    """The engine reads what a model can do before building it (once per device): `capabilities` is class data
    of the class each registry entry builds, and the built model (default options) declares the same."""
    pytest.importorskip("torch")
    import torch

    from models.registry import shipped_entries, ModelUnavailable, model_capabilities, model_class

    checked = 0
    for name, entry in shipped_entries().items():
        try:
            cls = model_class(name)
        except ModelUnavailable:
            continue
        assert isinstance(getattr(cls, "capabilities", None), Capabilities), name
        declared = model_capabilities(name)
        assert declared == (SliceWise.capabilities_of(cls.capabilities) if entry.slicewise else cls.capabilities)
        # what `bench models list` shows from the entry alone, without importing the class
        assert (entry.prompts, entry.input_grid) == (tuple(sorted(declared.prompts)), declared.input_grid), name
        checked += 1
        if entry.checkpoint_argument:  # built from a trained-model folder: tests/test_nninteractive.py, nnunet
            assert entry.parameters is None, name
            continue
        with torch.device("meta"):
            model = get_model(name)
        assert model.capabilities == declared, name
        assert model.provenance().parameters == entry.parameters, name
    assert checked >= 4


def test_every_registered_model_is_in_eval_mode_when_built():
    """No model's network is in training mode at any point a caller can reach it (dropout, batch-norm
    statistics): built (here on the meta device) and, through `models.checkpoints`, after loading."""
    pytest.importorskip("torch")
    import torch

    from models.registry import shipped_entries, ModelUnavailable

    built = 0
    for name, entry in shipped_entries().items():
        if entry.checkpoint_argument:
            continue
        try:
            with torch.device("meta"):
                model = get_model(name)
        except ModelUnavailable:
            continue
        for module in _torch_modules(model):
            assert not any(m.training for m in module.modules()), name
            built += 1
    assert built >= 4
