"""SegVol network: official key layout and size, strict loading, and parity with the official forward pass.

Oracles: ../shared/reference/official_models/SegVol.json (keys, shapes, counts measured from the official code)
and tests/goldens/segvol_parity.npz (the official forward with parity weights, made by
tests/goldens/make_segvol_goldens.py).
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("segment_anything")

from models.checkpoints import CheckpointError, load_state_dict
from models.segvol import checkpoint
from models.segvol.checkpoint import LAYOUT, official_layout
from models.segvol.network import SegVolNetwork
from models.segvol.text import TEMPLATE, load_tokenizer, tokenize

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT.parent / "shared" / "reference" / "official_models" / "SegVol.json"
GOLDEN = ROOT / "tests" / "goldens" / "segvol_parity.npz"
sys.path.insert(0, str(ROOT / "tests" / "goldens"))
import make_segvol_goldens as golden
from tiny_clip import write_tiny_clip_tokenizer


@pytest.fixture(scope="module")
def meta_network():
    with torch.device("meta"):
        return SegVolNetwork()


@pytest.fixture(scope="module")
def parity_network():
    return checkpoint.parity_network()


def test_parameter_count_is_the_official_one(meta_network):
    assert sum(p.numel() for p in meta_network.parameters()) == 180_890_064
    by_part = {name: sum(p.numel() for p in part.parameters()) for name, part in meta_network.named_children()}
    assert by_part == {"image_encoder": 87_388_416, "mask_decoder": 29_923_716, "prompt_encoder": 17_996,
                       "text_encoder": 63_559_936}


def test_official_layout_equals_the_official_keys_and_shapes(meta_network):
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} absent")
    spec = json.loads(SPEC.read_text())
    layout = {k: list(v.shape) for k, v in official_layout(meta_network).items()}
    assert layout == spec["state_dict"]
    assert len(layout) == spec["num_state_dict_entries"] == 475


def _official_checkpoint(meta_network) -> dict:
    """Official-layout entries as SegVol_v1.pth['model'] holds them (`module.` prefixed; meta tensors but for
    position_ids: the checks here run before any value is read)."""
    return {f"module.{k}": v for k, v in official_layout(meta_network).items()}


def test_loads_an_official_checkpoint_strictly_and_names_every_mismatch(meta_network):
    state = _official_checkpoint(meta_network)
    assert len(state) == 475 and all(k.startswith("module.") for k in state)
    with torch.device("meta"):
        loaded = load_state_dict(SegVolNetwork(), {"model": state}, LAYOUT)  # 474: position_ids checked, not kept
    own = meta_network.state_dict()
    assert loaded.state_dict().keys() == own.keys() and not loaded.training
    # MONAI >= 1.5 builds of SegVol save unused cross-attention norms: exactly these are accepted
    extra = {f"module.image_encoder.blocks.{i}.norm_cross_attn.{p}": torch.ones(768) for i in range(12)
             for p in ("weight", "bias")}
    with torch.device("meta"):
        load_state_dict(SegVolNetwork(), {"model": {**state, **extra}}, LAYOUT)
        target = SegVolNetwork()
    broken = dict(state)
    del broken["module.mask_decoder.iou_token.weight"]
    broken["module.image_encoder.blocks.0.cross_attn.out_proj.weight"] = torch.zeros(768, 768)
    broken["module.prompt_encoder.no_mask_embed.weight"] = torch.zeros(1, 512)
    with pytest.raises(CheckpointError) as error:
        load_state_dict(target, {"model": broken}, LAYOUT, source="SegVol_v1.pth")
    message = str(error.value)
    assert message.startswith("SegVol_v1.pth: does not match SegVolNetwork: ")
    assert "1 missing: mask_decoder.iou_token.weight" in message
    assert "1 unexpected: image_encoder.blocks.0.cross_attn.out_proj.weight" in message
    assert "prompt_encoder.no_mask_embed.weight: checkpoint (1, 512), network (1, 768)" in message
    bad_positions = dict(state)
    bad_positions["module.text_encoder.clip_text_model.text_model.embeddings.position_ids"] = torch.zeros(1, 77)
    with torch.device("meta"), pytest.raises(CheckpointError, match="position_ids is not 0..76"):
        load_state_dict(SegVolNetwork(), {"model": bad_positions}, LAYOUT)


def test_tokenizer_applies_the_template_with_its_period(tmp_path):
    tokenizer = load_tokenizer(write_tiny_clip_tokenizer(tmp_path / "clip"))
    assert TEMPLATE.format("liver") == "A computerized tomography of a liver."
    ids, mask = tokenize(tokenizer, ["liver", "left kidney"])
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert (ids[:, 0] == 49406).all() and mask[0].sum() < mask[1].sum()  # padded to the longer name
    assert ids[0, mask[0].sum() - 1] == 49407 and ids[0, -1] == 49407  # end token, then end-token padding
    with pytest.raises(FileNotFoundError, match="no CLIP tokenizer directory"):
        load_tokenizer(tmp_path / "absent")


def _close(actual, expected, what):
    """Relative tolerance 1e-4, measured against the golden's scale (logits cross zero)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


@pytest.mark.slow
def test_forward_reproduces_the_official_goldens(parity_network, tmp_path):
    """One image embedding, six prompt kinds (point, box, text, box+text, point+text, a batch of two texts)."""
    expected = np.load(GOLDEN)
    tokenizer = load_tokenizer(write_tiny_clip_tokenizer(tmp_path / "clip"))
    image = golden.golden_image()
    assert float(image.double().sum()) == expected["image_sum"]
    for name in golden.TEXTS:
        np.testing.assert_array_equal(tokenize(tokenizer, [name])[0][0].numpy(),
                                      expected[f"ids_{name.replace(' ', '_')}"])
    with torch.no_grad():
        embedding = parity_network.encode_image(image)
        _close(embedding[golden.EMBED_SUB], expected["image_embedding"], "image embedding")
        for name, (text, boxes, points) in golden.prompts().items():
            text_embedding = None
            if text is not None:
                text_embedding = parity_network.encode_text(*tokenize(tokenizer, [text] if isinstance(text, str)
                                                                      else text))
                if name in ("text", "texts"):
                    _close(text_embedding, expected[f"text_embedding_{name}"], f"text embedding {name}")
            low = parity_network.decode(embedding, text_embedding, boxes, points, low_res=True)
            _close(low[golden.LOW_SUB], expected[f"low_{name}"], f"low-res logits {name}")
            logits = torch.nn.functional.interpolate(low, size=(32, 256, 256), mode="trilinear", align_corners=False)
            _close(logits[golden.FULL_SUB], expected[f"logits_{name}"], f"logits {name}")


CT = ROOT.parent / "shared" / "data" / "totalsegmentator_example"


@pytest.mark.slow
def test_real_ct_zoom_out_zoom_in_gives_a_native_grid_mask(parity_network, tmp_path):
    """The real CT (122 x 101 x 30) through preprocessing, zoom-out, zoom-in and back, with a box+text prompt drawn
    from the liver label as the demo does; parity weights, so the grid and the zoom-in bookkeeping are checked."""
    if not (CT / "ct.nii.gz").is_file():
        pytest.skip(f"{CT} absent")
    from bench.data.io import read_label_map, read_volume
    from models.segvol.inference import (
        logits_to_roi,
        official_prompt,
        segment_volume,
        window_slices,
    )
    from models.segvol.preprocess import label_zoom_out, preprocess, to_segvol_grid

    image = read_volume(CT / "ct.nii.gz").array
    liver = read_label_map(CT / "seg_total.nii.gz").array == 5
    volume = preprocess(image)
    prompt = official_prompt(label_zoom_out(liver, volume.geometry), "liver", "box+text")
    tokenizer = load_tokenizer(write_tiny_clip_tokenizer(tmp_path / "clip"))
    windows = []
    hook = parity_network.image_encoder.register_forward_hook(lambda m, i, o: windows.append(i[0].shape))
    try:
        mask, = segment_volume(parity_network, volume, [prompt], tokenizer=tokenizer, use_zoom_in=True)
    finally:
        hook.remove()
    assert mask.shape == image.shape and mask.dtype == bool
    on_grid = to_segvol_grid(mask, volume.geometry)
    assert on_grid.shape == volume.image.shape
    # one zoom-out forward, then one per window of the predicted region (none if nothing was predicted)
    roi = logits_to_roi(torch.from_numpy(on_grid.astype(np.float32) - 0.5))
    region = () if roi is None else tuple(max(s.stop - s.start, r) for s, r in zip(roi, (32, 256, 256)))
    assert len(windows) >= 1 + (roi is not None) and all(w == (1, 1, 32, 256, 256) for w in windows)
    print(f"SegVol on the real CT: crop {volume.image.shape}, {len(windows) - 1} zoom-in windows"
          f"{'' if roi is None else f' over {region} ({len(window_slices(region))} at most)'}")
