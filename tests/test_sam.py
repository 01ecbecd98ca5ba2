"""SAM ViT-B/L/H from the official package: keys against the official manifests, and the slice paths against
the package's own SamPredictor (the reference implementation) on a small SAM built from the package's modules."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("segment_anything")
from segment_anything import SamPredictor
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from models.parity import load_parity_weights
from models.checkpoints import load_state_dict
from models.sam.network import VARIANTS, build_sam
from models.sam.slices import decode, encode, to_uint8


def small_sam(img_size: int = 64) -> Sam:
    """A SAM of the package's own modules, small enough for CI, with parity weights."""
    dim = 16
    grid = img_size // 16
    sam = Sam(
        image_encoder=ImageEncoderViT(img_size=img_size, patch_size=16, embed_dim=32, depth=2, num_heads=2,
                                      mlp_ratio=2, out_chans=dim, qkv_bias=True, use_rel_pos=True,
                                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                      window_size=3, global_attn_indexes=(1,)),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid),
                                     input_image_size=(img_size, img_size), mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=dim, iou_head_depth=3,
                                 iou_head_hidden_dim=16,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=32, num_heads=2)),
    )
    return load_parity_weights(sam).eval()


def _ct_slice(shape=(40, 52), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    plane = rng.normal(40, 30, shape)
    plane[10:25, 12:30] += 300
    return plane.astype(np.float32)


@pytest.mark.parametrize("variant", VARIANTS)
def test_package_state_dict_matches_the_official_manifest(shared_dir, variant):
    manifest = json.loads((shared_dir / "reference" / "official_models" / f"SAM_{variant}.json").read_text())
    sam = build_sam(variant, device="meta")
    shapes = {key: list(value.shape) for key, value in sam.state_dict().items()}
    assert shapes == manifest["state_dict"]
    assert sum(p.numel() for p in sam.parameters()) == manifest["total_params"]
    assert next(sam.parameters()).is_meta


def test_strict_loading_names_missing_and_unexpected_keys():
    sam = small_sam()
    weights = dict(sam.state_dict())
    weights["extra.weight"] = weights.pop("mask_decoder.iou_token.weight")
    with pytest.raises(ValueError, match="ckpt.pth: does not match Sam: 1 missing: .*iou_token.*; 1 unexpected: extra"):
        load_state_dict(sam, weights, source="ckpt.pth")


def test_official_api_path_equals_the_package_predictor():
    """Points in (x, y), previous low-res logits as mask_input, best-IoU mask of three, threshold at 0."""
    sam = small_sam()
    plane = _ct_slice()
    window = (-100.0, 400.0)
    predictor = SamPredictor(sam)
    predictor.set_image(np.repeat(to_uint8(plane, window)[..., None], 3, axis=2))
    encoded = encode(sam, plane, "sam-api", window)
    torch.testing.assert_close(encoded.embedding, predictor.features, rtol=0, atol=0)

    points, labels = np.array([[20.0, 15.0]]), np.array([1])
    first = decode(sam, encoded, points, labels)
    masks, ious, low_res = predictor.predict(points, labels, multimask_output=True)
    best = int(np.argmax(ious))
    np.testing.assert_array_equal(first.mask, masks[best])
    np.testing.assert_allclose(first.low_res_logits[0, 0].numpy(), low_res[best], rtol=1e-6, atol=1e-6)
    assert first.iou == pytest.approx(float(ious[best]), rel=1e-6)

    points, labels = np.array([[20.0, 15.0], [3.0, 35.0]]), np.array([1, 0])
    second = decode(sam, encoded, points, labels, previous=first)
    masks, ious, low_res = predictor.predict(points, labels, mask_input=low_res[best][None], multimask_output=True)
    best = int(np.argmax(ious))
    np.testing.assert_array_equal(second.mask, masks[best])
    np.testing.assert_allclose(second.low_res_logits[0, 0].numpy(), low_res[best], rtol=1e-6, atol=1e-6)

    box = np.array([10, 8, 30, 26])
    boxed = decode(sam, encoded, box_xyxy=box)
    masks, ious, _ = predictor.predict(box=box, multimask_output=True)
    np.testing.assert_array_equal(boxed.mask, masks[int(np.argmax(ious))])


def test_sam_med3d_baseline_path_minmax_resize_then_unbiased_zscore():
    """validation.py: min-max over the slice to [0, 255], bilinear resize, z-score with torch's unbiased std."""
    sam = small_sam()
    plane = _ct_slice((30, 50))
    x = (plane - plane.min()) / (plane.max() - plane.min() + 1e-10) * 255.0
    x = F.interpolate(torch.from_numpy(np.repeat(x[None, None], 3, axis=1)), (64, 64), mode="bilinear",
                      align_corners=False).numpy().astype(np.float64)
    x = (x - x.mean()) / x.std(ddof=1)
    expected = sam.image_encoder(torch.from_numpy(x).float())
    encoded = encode(sam, plane, "sam-med3d-2d-baseline")
    torch.testing.assert_close(encoded.embedding, expected, rtol=1e-4, atol=1e-4)
    assert encoded.input_size == (64, 64) and encoded.offset == (0, 0)
    np.testing.assert_allclose(encoded.to_model([[25.0, 15.0]]), [[25.0 * 64 / 50, 15.0 * 64 / 30]])
    result = decode(sam, encoded, np.array([[25.0, 15.0]]), np.array([1]))
    low = F.interpolate(F.interpolate(result.low_res_logits, (64, 64), mode="bilinear", align_corners=False),
                        (30, 50), mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(result.mask, low[0, 0].numpy() > 0)


def test_sam_med2d_path_pads_small_slices_centred_and_resizes_large_ones_nearest():
    sam = small_sam()
    small = (np.arange(20 * 31) % 251).reshape(20, 31).astype(np.uint8)
    encoded = encode(sam, small, "sam-med2d")
    assert encoded.offset == ((64 - 20) // 2, (64 - 31) // 2) and encoded.input_size == (20, 31)
    np.testing.assert_allclose(encoded.to_model([[0.0, 0.0], [30.0, 19.0]]), [[16.0, 22.0], [46.0, 41.0]])
    normalised = (torch.from_numpy(small).float().expand(1, 3, 20, 31) - sam.pixel_mean) / sam.pixel_std
    padded = torch.zeros(1, 3, 64, 64)
    padded[..., 22:42, 16:47] = normalised
    torch.testing.assert_close(encoded.embedding, sam.image_encoder(padded))
    result = decode(sam, encoded, np.array([[15.0, 10.0]]), np.array([1]))
    up = F.interpolate(result.low_res_logits, (64, 64), mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(result.mask, up[0, 0, 22:42, 16:47].numpy() > 0)

    large = (np.arange(70 * 90) % 253).reshape(70, 90).astype(np.uint8)
    encoded = encode(sam, large, "sam-med2d")
    rows, cols = np.floor(np.arange(64) * 70 / 64).astype(int), np.floor(np.arange(64) * 90 / 64).astype(int)
    resized = torch.from_numpy(large[np.ix_(rows, cols)]).float().expand(1, 3, 64, 64)
    torch.testing.assert_close(encoded.embedding, sam.image_encoder((resized - sam.pixel_mean) / sam.pixel_std))
    assert encoded.input_size == (64, 64) and encoded.offset == (0, 0)


def test_sam_med2d_path_feeds_back_probabilities_and_the_others_logits():
    sam = small_sam()
    plane = _ct_slice((30, 30)).astype(np.float32)
    for path, feedback in (("sam-med2d", torch.sigmoid), ("sam-med3d-2d-baseline", lambda t: t)):
        encoded = encode(sam, to_uint8(plane), path)
        first = decode(sam, encoded, np.array([[12.0, 14.0]]), np.array([1]))
        second = decode(sam, encoded, np.array([[12.0, 14.0]]), np.array([1]), previous=first)
        coords = torch.as_tensor(encoded.to_model([[12.0, 14.0]]), dtype=torch.float32)[None]
        sparse, dense = sam.prompt_encoder(points=(coords, torch.ones(1, 1, dtype=torch.int64)), boxes=None,
                                           masks=feedback(first.low_res_logits))
        low, iou = sam.mask_decoder(encoded.embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, True)
        torch.testing.assert_close(second.low_res_logits, low[:, int(iou.argmax()), None])


def test_bad_slices_and_empty_prompts_are_clear_errors():
    sam = small_sam()
    with pytest.raises(ValueError, match="2D array"):
        encode(sam, np.zeros((4, 4, 4)), "sam-api")
    with pytest.raises(ValueError, match="unknown slice path"):
        encode(sam, np.zeros((4, 4)), "sam-med3d")
    with pytest.raises(ValueError, match="at least one point or a box"):
        decode(sam, encode(sam, np.zeros((8, 8)), "sam-api"))


def test_to_uint8_windows_and_keeps_uint8():
    np.testing.assert_array_equal(to_uint8(np.array([[-200.0, 0.0, 150.0, 900.0]]), (-100, 400)),
                                  [[0, 51, 128, 255]])
    image = np.array([[3, 7]], np.uint8)
    assert to_uint8(image) is image
    np.testing.assert_array_equal(to_uint8(np.full((2, 2), 5.0)), np.zeros((2, 2), np.uint8))


def test_model_encodes_a_slice_once_and_refines_with_all_clicks_and_the_previous_mask():
    from models.adapters import SliceWise
    from models.base import Image, Target
    from models.sam.model import SamSlices
    from protocols.prompts import Box, Click, Prompt

    sam = small_sam()
    calls = []
    sam.image_encoder.register_forward_hook(lambda *args: calls.append(1))
    model = SamSlices(network=sam, path="sam-med3d-2d-baseline", name="small-sam")
    volume = np.stack([_ct_slice(seed=k) for k in range(4)], axis=2)
    image = Image(array=volume, spacing=(1.0, 1.0, 2.0), affine=np.eye(4))
    adapter = SliceWise(model=model, axis=2)

    state = {}
    first = Prompt(points=(Click((15, 20, 1), True),))
    mask = adapter.segment(image, [Target("t", first)], state)["t"]
    second = Prompt(points=(Click((15, 20, 1), True), Click((35, 3, 1), False)))
    mask = adapter.segment(image, [Target("t", second)], state)["t"]
    assert len(calls) == 1 and set(state["t"]) == {1}
    assert not mask[..., [0, 2, 3]].any()

    encoded = encode(sam, volume[..., 1], "sam-med3d-2d-baseline")
    expected = decode(sam, encoded, np.array([[20.0, 15.0]]), np.array([1]))
    expected = decode(sam, encoded, np.array([[20.0, 15.0], [3.0, 35.0]]), np.array([1, 0]), previous=expected)
    np.testing.assert_array_equal(mask[..., 1], expected.mask)

    boxed = model.segment(Image(array=volume[..., 2], spacing=(1.0, 1.0), affine=np.eye(4)),
                          [Target("t", Prompt(boxes=(Box((8, 10), (26, 30)),)))])["t"]
    reference = decode(sam, encode(sam, volume[..., 2], "sam-med3d-2d-baseline"), box_xyxy=np.array([10, 8, 31, 27]))
    np.testing.assert_array_equal(boxed, reference.mask)


def test_factories_load_official_state_dicts_strictly():
    from models.sam.model import sam

    reference = build_sam("vit_b", device="meta").state_dict()
    weights = {key: torch.zeros(value.shape) for key, value in reference.items()}
    model = sam("vit_b", state_dict=weights)
    assert model.name == "sam-vit-b" and model.path == "sam-api"
    assert not any(p.detach().any() for p in model.network.parameters())
    del weights["image_encoder.neck.0.weight"]
    message = "SAM vit_b checkpoint: does not match Sam: 1 missing: image_encoder.neck.0.weight$"
    with pytest.raises(ValueError, match=message):
        sam("vit_b", state_dict=weights)


@pytest.mark.slow
def test_sam_vit_b_segment_equals_the_official_predictor_goldens():
    """Goldens: tests/goldens/make_sam_goldens.py, the official SamPredictor.predict with SAM ViT-B and the parity
    weights. Through `sam-vit-b`'s `segment` on the 2D slice (one 1024 encoder pass, ~20-60 s on CPU): a point;
    the point and a negative one with the previous low-res logits fed back as mask_input; a box; the box with both
    points and its previous logits. Each round keeps the mask of the highest predicted IoU."""
    from pathlib import Path

    from models.base import Image, Target
    from models.parity import parity_state_dict
    from models.sam.model import sam
    from protocols.prompts import Box, Click, Prompt

    golden = np.load(Path(__file__).parent / "goldens" / "sam_vit_b_predictor.npz")
    model = sam("vit_b", state_dict=parity_state_dict(build_sam("vit_b")))
    image = Image(array=golden["image"], spacing=(1.0, 1.0), affine=np.eye(3))
    clicks = tuple(Click((int(y), int(x)), bool(label)) for (x, y), label in zip(golden["points"], golden["labels"]))
    x0, y0, x1, y1 = (int(v) for v in golden["box"])
    box = Box((y0, x0), (y1 - 1, x1 - 1))  # inclusive; the model hands SAM (x0, y0, x1, y1)
    rounds = {"point": ("p", Prompt(points=clicks[:1])), "refine": ("p", Prompt(points=clicks)),
              "box": ("b", Prompt(boxes=(box,))), "box_refine": ("b", Prompt(points=clicks, boxes=(box,)))}
    state: dict = {}
    for name, (target, prompt) in rounds.items():
        mask = model.segment(image, [Target(target, prompt)], state)[target]
        result = state[target].result
        ious = golden[f"{name}_ious"]
        assert result.iou == pytest.approx(float(ious.max()), abs=1e-4), name
        expected = golden[f"{name}_low_res_sub"]
        np.testing.assert_allclose(result.low_res_logits[0, 0, ::8, ::8].numpy(), expected, rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max(), err_msg=name)
        assert (mask != golden[f"{name}_mask"]).sum() <= 2, name
    assert golden["box_mask"].sum() > 1000 and golden["refine_mask"].any()
