"""SAM-Med2D: keys and size against the official manifest, outputs against goldens from the official code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("segment_anything")
from segment_anything.modeling import MaskDecoder, TwoWayTransformer

from models.checkpoints import load_state_dict
from models.parity import parity_state_dict
from models.sam.slices import decode, encode
from models.sam_med2d.network import LAYOUT, PerImageMaskDecoder, build_sam_med2d

GOLDENS = Path(__file__).parent / "goldens" / "sam_med2d_parity.npz"


def test_state_dict_and_size_match_the_official_manifest(shared_dir):
    manifest = json.loads((shared_dir / "reference" / "official_models" / "SAM-Med2D_vit_b.json").read_text())
    model = build_sam_med2d(device="meta")
    assert {key: list(value.shape) for key, value in model.state_dict().items()} == manifest["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == manifest["total_params"] == 271_241_776
    adapters = [key for key in model.state_dict() if ".Adapter." in key]
    assert len(adapters) == 72 and len(model.state_dict()) - len(adapters) == 314
    # The parity goldens cannot tell these apart (the normalised variances dwarf both), so pin them here.
    block = model.image_encoder.blocks[0]
    assert block.Adapter.norm.eps == 1e-5 and block.norm1.eps == block.norm2.eps == 1e-6


@pytest.fixture(scope="module")
def parity_model():
    """SAM-Med2D with the parity weights, loaded through the checkpoint path ({'model', 'optimizer'})."""
    model = build_sam_med2d()
    return load_state_dict(model, {"model": parity_state_dict(model), "optimizer": object()}, LAYOUT)


def _close(actual, expected):
    expected = np.asarray(expected)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_outputs_equal_the_official_code_goldens(parity_model):
    """Goldens: tests/goldens/make_sam_med2d_goldens.py on OpenGVLab/SAM-Med2D with the same parity weights."""
    golden = np.load(GOLDENS)
    model = parity_model
    encoded = encode(model, golden["image"], "sam-med2d")  # 256 x 256: the nearest resize is the identity
    assert list(encoded.embedding.shape) == list(golden["embedding_shape"])
    _close(encoded.embedding[0, ::4, ::2, ::2], golden["embedding_sub"])

    point, negative = golden["point"], golden["negative"]
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(points=(torch.tensor(point[None], dtype=torch.float32),
                                                     torch.tensor([[1]])), boxes=None, masks=None)
        low, iou = model.mask_decoder(encoded.embedding, model.prompt_encoder.get_dense_pe(), sparse, dense, True)
    _close(low, golden["point_low_res"])
    _close(iou, golden["point_iou"])

    first = decode(model, encoded, point, np.array([1]))
    best = int(golden["point_iou"][0].argmax())
    _close(first.low_res_logits, golden["point_low_res"][:, best:best + 1])
    refined = decode(model, encoded, np.concatenate([point, negative]), np.array([1, 0]), previous=first)
    best = int(golden["refine_iou"][0].argmax())
    _close(refined.low_res_logits, golden["refine_low_res"][:, best:best + 1])
    assert refined.iou == pytest.approx(float(golden["refine_iou"][0, best]), rel=1e-4)

    boxed = decode(model, encoded, box_xyxy=golden["box"])
    best = int(golden["box_iou"][0].argmax())
    _close(boxed.low_res_logits, golden["box_low_res"][:, best:best + 1])
    assert boxed.mask.shape == (256, 256)


def test_decoder_pairs_prompt_rows_with_their_own_image():
    torch.manual_seed(0)
    dim = 16
    decoder = PerImageMaskDecoder(num_multimask_outputs=3, transformer_dim=dim, iou_head_hidden_dim=16,
                                  transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=32, num_heads=2))
    images, pe = torch.randn(2, dim, 4, 4), torch.randn(1, dim, 4, 4)
    sparse, dense = torch.randn(2, 3, dim), torch.randn(2, dim, 4, 4)
    masks, iou = decoder(images, pe, sparse, dense, multimask_output=True)
    reference = MaskDecoder(num_multimask_outputs=3, transformer_dim=dim, iou_head_hidden_dim=16,
                            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=32, num_heads=2))
    reference.load_state_dict(decoder.state_dict())
    for i in range(2):
        one_masks, one_iou = reference(images[i:i + 1], pe, sparse[i:i + 1], dense[i:i + 1], multimask_output=True)
        torch.testing.assert_close(masks[i:i + 1], one_masks)
        torch.testing.assert_close(iou[i:i + 1], one_iou)
    with pytest.raises(ValueError, match="one prompt set per image: 2 images, 1 prompt sets"):
        decoder(images, pe, sparse[:1], dense[:1], multimask_output=True)


def test_checkpoint_needs_a_model_dict_of_tensors_with_every_key():
    model = build_sam_med2d(device="meta")
    with pytest.raises(ValueError, match="sam-med2d_b.pth: no 'model' entry"):
        load_state_dict(model, {"state_dict": {}}, LAYOUT, source="sam-med2d_b.pth")
    with pytest.raises(ValueError, match="not a mapping of names to tensors"):
        load_state_dict(model, {"model": {"args": object()}}, LAYOUT)
    state = {key: torch.empty(value.shape, device="meta") for key, value in model.state_dict().items()}
    del state["image_encoder.blocks.0.Adapter.norm.weight"]
    with pytest.raises(ValueError, match="ckpt: does not match Sam: 1 missing: .*Adapter.norm.weight"):
        load_state_dict(model, {"model": state}, LAYOUT, source="ckpt")
