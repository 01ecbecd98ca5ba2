"""SAM-Med3D vit_b_ori: keys/shapes against the official manifest, strict loading, the trained quirks of the
relative-position bias against a loop oracle, and parity with the official code (tests/goldens, made by
tests/goldens/make_sam_med3d_goldens.py from uni-medical/SAM-Med3D with the parity weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")

from models.parity import parity_state_dict
from models.sam_med3d.image_encoder import official_rel_pos_bias
from models.checkpoints import CheckpointError, extract_state_dict, load_state_dict
from models.sam_med3d.inference import encode, predict_click
from models.sam_med3d.model import SamMed3DModel
from models.sam_med3d.network import PARAMETER_COUNT, build_sam_med3d

LAYOUT = SamMed3DModel.checkpoint_layout  # the official `model_state_dict`

GOLDEN = Path(__file__).parent / "goldens" / "sam_med3d_parity.npz"
END_TO_END = Path(__file__).parent / "goldens" / "sam_med3d_end_to_end.npz"


@pytest.fixture(scope="module")
def meta_model():
    with torch.device("meta"):
        return build_sam_med3d()


def test_keys_and_shapes_equal_official_manifest(meta_model, shared_dir):
    manifest = json.loads((shared_dir / "reference" / "official_models" / "SAM-Med3D_vit_b_ori.json").read_text())
    ours = {key: list(value.shape) for key, value in meta_model.state_dict().items()}
    assert ours == manifest["state_dict"]
    assert sum(p.numel() for p in meta_model.parameters()) == manifest["total_params"]
    for name, count in manifest["params_by_top_level"].items():
        assert sum(p.numel() for p in getattr(meta_model, name).parameters()) == count


def test_parameter_count_under_meta_device(meta_model):
    assert sum(p.numel() for p in meta_model.parameters()) == PARAMETER_COUNT == 100_509_232
    assert all(p.is_meta for p in meta_model.parameters())


def test_strict_loading_names_missing_unexpected_and_prefixed_keys():
    with torch.device("meta"):
        model = build_sam_med3d()
    state = dict(model.state_dict())
    partly = {(f"module.{key}" if index < 3 else key): value for index, (key, value) in enumerate(state.items())}
    with pytest.raises(CheckpointError, match="a DDP prefix this layout does not strip"):  # not on every key
        load_state_dict(model, {"model_state_dict": partly}, LAYOUT)
    broken = dict(state)
    del broken["image_encoder.blocks.3.attn.rel_pos_d"]
    broken["mask_decoder.extra.weight"] = torch.zeros(1, device="meta")
    broken["image_encoder.neck.0.weight"] = torch.zeros(384, 768, 1, 1, device="meta")
    with pytest.raises(CheckpointError) as error:
        load_state_dict(model, {"model_state_dict": broken}, LAYOUT)
    message = str(error.value)
    assert "1 missing: image_encoder.blocks.3.attn.rel_pos_d" in message
    assert "1 unexpected: mask_decoder.extra.weight" in message
    assert "image_encoder.neck.0.weight: checkpoint (384, 768, 1, 1), network (384, 768, 1, 1, 1)" in message


def test_meta_construction_then_loading_assigns_real_tensors():
    with torch.device("meta"):
        model = build_sam_med3d()
    state = {key: torch.full(value.shape, 0.5) for key, value in model.state_dict().items()}
    load_state_dict(model, {"model_state_dict": state}, LAYOUT)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert float(model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix[1, 2]) == 0.5


def test_official_checkpoint_layout_gives_its_model_state_dict():
    tensors = {"a": torch.zeros(1)}
    assert extract_state_dict({"model_state_dict": tensors, "epoch": 3, "args": object()}, LAYOUT) == tensors
    with pytest.raises(CheckpointError, match="no 'model_state_dict' entry"):
        extract_state_dict(tensors, LAYOUT)
    with pytest.raises(CheckpointError, match="not a mapping of names to tensors"):
        extract_state_dict({"model_state_dict": [1, 2]}, LAYOUT)


def _relative(q_pos: int, k_pos: int, table: torch.Tensor, size: int) -> torch.Tensor:
    return table[q_pos - k_pos + size - 1]


def test_rel_pos_bias_reproduces_the_official_broadcast_not_the_textbook_one():
    """Loop oracle of the official broadcast: bias[qd,qh,qw,kd,kh,kw] = t_d[qd,qh,qw,kw] + t_h[qd,qh,kd,kw]
    + t_w[qd,qh,kh,kw], with t_a[qd,qh,qw,j] = q[qd,qh,qw] . R_a[q_a - j]; the textbook decomposition
    (t_d[..,kd] + t_h[..,kh] + t_w[..,kw]) gives a different bias."""
    size, channels = 3, 2
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, size ** 3, channels, generator=generator)
    tables = tuple(torch.randn(2 * size - 1, channels, generator=generator) for _ in range(3))
    grid = q.reshape(size, size, size, channels)

    def term(axis: int, qd: int, qh: int, qw: int, j: int) -> float:
        position = (qd, qh, qw)[axis]
        return float(grid[qd, qh, qw] @ _relative(position, j, tables[axis], size))

    official = torch.zeros(size, size, size, size, size, size)
    textbook = torch.zeros_like(official)
    r = range(size)
    for qd, qh, qw, kd, kh, kw in ((a, b, c, d, e, f) for a in r for b in r for c in r
                                   for d in r for e in r for f in r):
        official[qd, qh, qw, kd, kh, kw] = (term(0, qd, qh, qw, kw) + term(1, qd, qh, kd, kw)
                                            + term(2, qd, qh, kh, kw))
        textbook[qd, qh, qw, kd, kh, kw] = term(0, qd, qh, qw, kd) + term(1, qd, qh, qw, kh) + term(2, qd, qh, qw, kw)
    ours = official_rel_pos_bias(q, tables, size).reshape(official.shape)
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-6)
    assert (ours - textbook).abs().max() > 0.1


@pytest.fixture(scope="module")
def parity_run():
    """The parity model and the embedding of the golden's seeded image: one 128^3 encoder forward (10-30 s on
    2 CPU cores), shared by the tests below."""
    golden = np.load(GOLDEN)
    model = build_sam_med3d()
    load_state_dict(model, parity_state_dict(model))
    image = torch.randn((1, 1, 128, 128, 128), generator=torch.Generator().manual_seed(int(golden["seed"])))
    with torch.no_grad():
        embedding = model.image_encoder(image)
    return model, embedding, golden


def _assert_matches(actual: torch.Tensor, golden: np.ndarray) -> None:
    """rtol 1e-4 of each value, with an absolute floor of 1e-4 of the output's largest magnitude (values near 0)."""
    np.testing.assert_allclose(np.asarray(actual), golden, rtol=1e-4, atol=1e-4 * float(np.abs(golden).max()))


@pytest.mark.slow
def test_parity_with_official_code(parity_run):
    """The official calls: first pass with one point and a zero previous 32^3 mask through mask_downscaling,
    second pass with an accumulated negative point and the first pass's logits."""
    model, embedding, golden = parity_run

    def decode(points, labels, previous):
        sparse, dense = model.prompt_encoder(
            points=(torch.tensor(points[None], dtype=torch.float32), torch.tensor(labels[None])),
            boxes=None, masks=previous)
        low_res, iou = model.mask_decoder(embedding, model.prompt_encoder.get_dense_pe(), sparse, dense,
                                          multimask_output=False)
        return sparse, low_res, iou

    with torch.no_grad():
        sparse1, low1, iou1 = decode(golden["first_points"], golden["first_labels"], torch.zeros(1, 1, 32, 32, 32))
        sparse2, low2, iou2 = decode(golden["second_points"], golden["second_labels"], low1)
        dense_pe = model.prompt_encoder.get_dense_pe()
    step = int(golden["embedding_channels_step"])
    _assert_matches(embedding[0, ::step], golden["embedding"])
    _assert_matches(dense_pe[0, ::16], golden["dense_pe"])
    _assert_matches(sparse1[0], golden["sparse1"])
    _assert_matches(low1[0, 0], golden["low_res1"])
    _assert_matches(iou1[0], golden["iou1"])
    _assert_matches(sparse2[0], golden["sparse2"])
    _assert_matches(low2[0, 0], golden["low_res2"])
    _assert_matches(iou2[0], golden["iou2"])
    assert low1.shape == (1, 1, 32, 32, 32) and embedding.shape == (1, 384, 8, 8, 8)


@pytest.mark.slow
def test_predict_click_reproduces_the_official_passes(parity_run):
    """predict_click on the cached embedding: no previous logits means the official zero mask; the returned
    logits fed back give the official second pass; the crop mask is sigmoid(trilinear(logits)) > 0.5."""
    model, embedding, golden = parity_run
    first = predict_click(model, embedding, golden["first_points"], golden["first_labels"], None)
    _assert_matches(first.low_res[0, 0], golden["low_res1"])
    assert first.iou == pytest.approx(float(golden["iou1"][0]), rel=1e-4)
    second = predict_click(model, embedding, golden["second_points"], golden["second_labels"], first.low_res)
    _assert_matches(second.low_res[0, 0], golden["low_res2"])
    expected = torch.nn.functional.interpolate(torch.from_numpy(golden["low_res2"])[None, None], size=(128,) * 3,
                                               mode="trilinear", align_corners=False)[0, 0] > 0
    assert second.crop_mask.shape == (128, 128, 128) and second.native is None
    assert (second.crop_mask != expected.numpy()).mean() < 1e-4  # only voxels with logits within float noise of 0


@pytest.mark.slow
def test_end_to_end_equals_the_official_pipeline_on_the_real_ct(parity_run, shared_dir):
    """The official `validate_paired_img_gt` (parity weights, liver, one click, seed 233) against our chain:
    TorchIO crop on the label, the official first click (a uniformly drawn target voxel of the crop, drawn by
    np.random seeded 233), encoder, one decoder pass on a zero previous mask, threshold, back-mapping."""
    from bench.data.io import read_label_map, read_volume
    from models.sam_med3d.preprocess import crop_around_label

    model = parity_run[0]
    golden = np.load(END_TO_END)
    folder = shared_dir / "data" / "totalsegmentator_example"
    image, labels = read_volume(folder / "ct.nii.gz"), read_label_map(folder / "seg_total.nii.gz")
    crop = crop_around_label(image.array, image.affine, labels.array == int(golden["value"]))
    candidates = np.argwhere(crop.label)
    point = candidates[np.random.RandomState(233).randint(len(candidates))]  # the official legacy-seeded draw
    assert [*point.tolist(), 1] == golden["clicks"][0].tolist()
    result = predict_click(model, encode(model, crop), point[None], [1], None, crop)
    official = np.unpackbits(golden["native_bits"])[:labels.array.size].reshape(labels.array.shape).astype(bool)
    assert official.sum() > 10_000
    np.testing.assert_array_equal(result.native, official)


@pytest.mark.slow
def test_runner_crop_space_and_model_give_the_official_pipeline_on_the_real_ct(parity_run, shared_dir):
    """The same official case through the runner's path under the `sam-med3d` preset: its crop space (TorchIO
    chain centred on the label), the model interface taking that crop as it is, the official click, and the
    space's way back to the native grid: the official `validate_paired_img_gt` mask, voxel for voxel."""
    from bench.data.io import read_label_map, read_volume
    from bench.engine.presets import load_protocol
    from bench.engine.spaces import crop_space, resample
    from models.base import Target
    from models.sam_med3d import sam_med3d
    from protocols.prompts import Click, Prompt

    golden = np.load(END_TO_END)
    folder = shared_dir / "data" / "totalsegmentator_example"
    image, labels = read_volume(folder / "ct.nii.gz"), read_label_map(folder / "seg_total.nii.gz")
    space_of = load_protocol("sam-med3d").space
    masks = {"liver": labels.array == int(golden["value"]), "spleen": labels.array == 1}
    space = crop_space(resample(image, "CT", masks, space_of), "liver", space_of)
    candidates = np.argwhere(space.masks["liver"])
    point = tuple(candidates[np.random.RandomState(233).randint(len(candidates))].tolist())
    assert [*point, 1] == golden["clicks"][0].tolist()
    with torch.device("meta"):
        model = sam_med3d()
    model.network = parity_run[0]
    mask = model.segment(space.image, [Target("liver", Prompt(points=(Click(point, True),)))])["liver"]
    official = np.unpackbits(golden["native_bits"])[:labels.array.size].reshape(labels.array.shape).astype(bool)
    np.testing.assert_array_equal(space.to_native(mask), official)
