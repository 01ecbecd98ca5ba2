"""SAT's sliding-window inference against the official code's own outputs (tests/goldens/sat_*.npz).

Oracles: SAT's `split_3d` (every axis length up to 1000 / 400 and whole 3D shapes), SAT's `compute_gaussian`
for the 288 x 288 x 96 window, and the official `inference()` loop run end to end on a small volume with parity
weights (windows, padding, batches, blending, threshold).
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("positional_encodings")

from models.parity import load_parity_weights
from models.sat.inference import THRESHOLD, blending_weights, predict_volume, split_windows
from models.sat.network import NANO, SATNetwork

GOLDENS = Path(__file__).parent / "goldens"
CT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "totalsegmentator_example" / "ct.nii.gz"


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDENS / "sat_inference.npz")


def official_axis(golden, size: int, length: int) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in span) for span in golden[f"axis_{size}"][length - 1] if span[0] >= 0]


def test_axis_split_equals_official_for_every_length(golden):
    for size, column in ((288, 0), (96, 2)):
        for length in range(1, len(golden[f"axis_{size}"]) + 1):
            shape = [1, 1, 1]
            shape[column] = length
            ours = [window[column] for window in split_windows(shape)]
            assert ours == official_axis(golden, size, length), (size, length)


def test_3d_split_equals_official(golden):
    for i, shape in enumerate(golden["split_shapes"]):
        expected = [((w[0], w[1]), (w[2], w[3]), (w[4], w[5])) for w in golden[f"split_{i}"].tolist()]
        assert split_windows(tuple(shape)) == expected, tuple(shape)


def test_windows_on_the_real_ct_after_sat_preprocessing(golden):
    if not CT.is_file():
        pytest.skip(f"{CT} is absent")
    from bench.data.io import read_volume
    from bench.engine.preprocess import preprocess

    shape = preprocess(read_volume(CT), "ct").image.shape
    expected = list(product(official_axis(golden, 288, shape[0]), official_axis(golden, 288, shape[1]),
                            official_axis(golden, 96, shape[2])))
    windows = split_windows(shape)
    assert windows == expected
    if shape == (353, 283, 30):  # by hand: 353 -> starts 0 and 353 - 288; 283 and 30 fit one (padded) window
        assert windows == [((0, 288), (0, 283), (0, 30)), ((65, 353), (0, 283), (0, 30))]


def test_blending_weights_equal_official(golden):
    weights = blending_weights()
    assert weights.dtype == np.float16 == np.dtype(str(golden["gaussian_dtype"]))
    np.testing.assert_array_equal(weights[::8, ::8, ::4], golden["gaussian_strided"])
    np.testing.assert_array_equal(np.stack([weights[:, 144, 48], weights[144, :, 48]]), golden["gaussian_axes"])
    np.testing.assert_array_equal(weights[144, 144, :], golden["gaussian_depth"])
    np.testing.assert_array_equal(weights[:4, :4, :4], golden["gaussian_corner"])
    assert weights.astype(np.float64).sum() == float(golden["gaussian_sum"])  # every float16 rounding as SAT's
    assert weights.max() == 10 and weights[144, 144, 48] == 10 and weights.min() > 0


@pytest.fixture(scope="module")
def engine():
    data = np.load(GOLDENS / "sat_network.npz")
    network = load_parity_weights(SATNetwork(NANO, image_size=tuple(int(n) for n in data["window"]))).eval()
    return network, data


@pytest.mark.slow  # ~24 s on two CPU cores
def test_predict_volume_equals_official_inference_loop(engine, monkeypatch):
    """The official loop ran with each query's logits shifted by a constant (else parity weights give all
    foreground); the same shift here. Its probabilities and masks are the oracle."""
    network, g = engine
    shift = torch.from_numpy(g["engine_shift"])[None, :, None, None, None]
    monkeypatch.setattr(network, "logits", lambda masks, features: SATNetwork.logits(masks, features) - shift)
    shape = tuple(int(n) for n in g["engine_volume"])
    image = torch.randn(shape, generator=torch.Generator().manual_seed(int(g["engine_seed"]))).numpy()
    official_windows = [((w[0], w[1]), (w[2], w[3]), (w[4], w[5])) for w in g["engine_windows"].tolist()]
    assert split_windows(shape, network.image_size) == official_windows
    probabilities = predict_volume(network, torch.from_numpy(g["queries"]), image, batch_size=1)  # official: 2
    s = int(g["engine_stride"])
    np.testing.assert_allclose(probabilities[:, ::2 * s, ::2 * s, ::2 * s], g["engine_probabilities_strided"],
                               atol=1e-5)
    probabilities = probabilities[:, ::s, ::s, ::s]
    official = np.unpackbits(g["engine_masks_strided"])[:probabilities.size].reshape(probabilities.shape)
    assert 0.2 < official.mean() < 0.8  # a real mask, not a constant
    near = np.abs(probabilities - THRESHOLD) < 1e-4  # float32 rounding may flip only voxels this close to 0.5
    assert np.array_equal((probabilities > THRESHOLD)[~near], official[~near].astype(bool)) and near.mean() < 1e-3


def test_predict_volume_on_a_scan_smaller_than_the_window(engine):
    """One window, zero-padded at the end of every axis: probabilities are the padded forward's sigmoid (the
    weights cancel), whatever the query chunking."""
    network, g = engine
    image = torch.randn((50, 40, 20), generator=torch.Generator().manual_seed(7))
    queries = torch.from_numpy(g["queries"][:2])
    padded = torch.zeros(network.image_size)
    padded[:50, :40, :20] = image
    with torch.no_grad():
        expected = torch.sigmoid(network(queries, padded.expand(1, 3, -1, -1, -1)))[0, :, :50, :40, :20]
    probabilities = predict_volume(network, queries, image.numpy(), query_chunk=1)  # chunks: float rounding only
    np.testing.assert_allclose(probabilities, expected.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="3D scan"):
        predict_volume(network, queries, image.numpy()[0])
