"""SegVol's point prompts as inference_demo.py draws them: `select_points` on the zoom-out label with torch's RNG
(a local generator seeded from the harness's per-prompt numpy Generator), against the official function
(tests/goldens/segvol_points.npz, made by make_segvol_point_goldens.py from BAAI-DCAI/SegVol@5768c97)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.base import Image, Model  # noqa: E402
from models.segvol.points import draw_points, select_points, torch_generator, zoom_out_to_native  # noqa: E402
from models.segvol.preprocess import label_zoom_out, native_to_zoom_out, preprocess  # noqa: E402

GOLDEN = Path(__file__).parent / "goldens" / "segvol_points.npz"
CALLS = {"blob": (3, 3), "two": (3, 3), "empty": (3, 3), "window": (4, 0)}


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("seed", [0, 7, 2024])
def test_select_points_equals_the_official_function(name, seed):
    golden = np.load(GOLDEN)
    positive, negative = CALLS[name]
    points, labels = select_points(golden[f"label_{name}"], torch.Generator().manual_seed(seed),
                                   n_positive_extra=positive, n_negative_extra=negative)
    np.testing.assert_array_equal(points, golden[f"points_{name}_{seed}"])
    np.testing.assert_array_equal(labels, golden[f"labels_{name}_{seed}"])


def test_the_global_torch_generator_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    select_points(np.ones((3, 3, 3)), torch_generator(np.random.default_rng(0)), n_positive_extra=3)
    assert torch.equal(torch.rand(3), expected)


def _scan():
    """A native scan (x, y, z) whose foreground crop is longer than the zoom-out grid on every axis, a target."""
    rng = np.random.default_rng(2)
    image = rng.random((300, 270, 40), dtype=np.float32) + 0.1
    label = np.zeros(image.shape, bool)
    label[100:160, 90:130, 10:25] = True
    return image, label


def test_points_are_drawn_on_the_zoom_out_label_and_stored_as_native_voxels_that_map_back():
    image, label = _scan()
    geometry = preprocess(image).geometry
    clicks, drawn, _ = draw_points(label, geometry, np.random.default_rng(11), n_positive_extra=3,
                                   n_negative_extra=3)
    official, labels = select_points(label_zoom_out(label, geometry), torch_generator(np.random.default_rng(11)),
                                     n_positive_extra=3, n_negative_extra=3)
    assert [c.positive for c in clicks] == [True] * 4 + [False] * 3 and labels.tolist() == [1] * 4 + [0] * 3
    for click, point in zip(clicks, official):
        assert native_to_zoom_out(click.point, geometry) == tuple(point)  # replaying the stored voxel: same point
        assert label[click.point] == click.positive
    assert zoom_out_to_native(official[0], geometry) == clicks[0].point
    np.testing.assert_array_equal(drawn, official)


def test_other_models_keep_the_native_numpy_draw_and_segvol_overrides_it():
    from models.segvol.model import SegVol
    image, label = _scan()
    assert SegVol.draw_points is not Model.draw_points
    from protocols.prompts_boxes import segvol_points
    coords, labels = segvol_points(label, np.random.default_rng(4), n_positive_extra=3, n_negative_extra=3)

    class Plain(Model):
        name = "plain"

        def _segment(self, image, targets, state):
            return {}

    drawn = Plain().draw_points(Image(array=image, spacing=(1, 1, 1), affine=np.eye(4)), label,
                                np.random.default_rng(4), n_positive_extra=3, n_negative_extra=3, state={})
    assert [c.point for c in drawn] == [tuple(p) for p in coords.tolist()]
