"""SegVol's inference pieces (inference_demo.py): preprocessing and its inverse, prompts, ROI, window scan, zoom-in.

Oracles: MONAI's own transforms (SpatialPad, CropForeground, Resize nearest-exact: what SegVol's demo calls),
hand-computed values, and fake networks whose output is known, so positions and blending can be checked exactly.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
monai_transforms = pytest.importorskip("monai.transforms")

from models.segvol.inference import (
    SegVolPrompt,
    box_cube,
    logits_to_roi,
    official_prompt,
    positive_point_map,
    scan_interval,
    segment_volume,
    segvol_box,
    window_slices,
    zoom_in,
)
from models.segvol.preprocess import (
    ROI,
    foreground_normalise,
    label_zoom_out,
    native_to_zoom_out,
    preprocess,
    to_native,
    to_segvol_grid,
)


def synthetic_ct(shape=(300, 200, 20), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like volume in native (X, Y, Z) order: air border, soft tissue body, a bright 'organ'; and its label."""
    rng = np.random.default_rng(seed)
    x, y, z = np.ogrid[:shape[0], :shape[1], :shape[2]]
    body = ((x - 150) / 120.0) ** 2 + ((y - 100) / 80.0) ** 2 < 1
    organ = ((x - 180) / 30.0) ** 2 + ((y - 90) / 25.0) ** 2 + ((z - 10) / 6.0) ** 2 < 1
    image = np.where(body, 40.0, -1000.0) + np.where(organ, 80.0, 0.0) + rng.normal(0, 10, shape)
    return image.astype(np.float32), organ & body


def test_foreground_normalisation_by_hand():
    image = np.array([0, 0, 0, 0, 10, 20, 30, 40], np.float32).reshape(2, 2, 2)
    fg = np.array([20, 30, 40], np.float64)  # voxels above the mean 12.5
    lower, upper = 20 + 0.0005 * 2 * 10, 40 - 0.0005 * 2 * 10  # linear percentiles 0.05 / 99.95 of 3 values
    expected = (np.clip(image.astype(np.float64), lower, upper) - 30) / fg.std()
    np.testing.assert_allclose(foreground_normalise(image), expected.reshape(2, 2, 2), rtol=1e-6)


def test_preprocessing_chain_equals_monai_transforms():
    image, _ = synthetic_ct()
    out = preprocess(image)
    # the demo's chain with MONAI's transforms as the oracle (after the two hand-written normalisations)
    x = np.swapaxes(foreground_normalise(image), -1, -3)
    x = ((x - x.min()) / (x - x.min()).max())[None]
    x = monai_transforms.SpatialPad(spatial_size=ROI, mode="constant")(x)
    x = monai_transforms.CropForeground()(x)
    np.testing.assert_array_equal(out.image, np.asarray(x)[0])
    zoom = monai_transforms.Resize(spatial_size=ROI, mode="nearest-exact")(x)
    np.testing.assert_array_equal(out.zoom_out, np.asarray(zoom)[0])
    assert out.zoom_out.shape == ROI and out.image.dtype == np.float32
    assert out.geometry.pad == ((6, 6), (28, 28), (0, 0))  # (D, H, W) = (20, 200, 300) padded to (32, 256, 300)


def test_inverse_is_exact_and_labels_follow_the_image():
    image, label = synthetic_ct()
    out = preprocess(image)
    on_grid = to_segvol_grid(label, out.geometry)
    assert on_grid.shape == out.image.shape
    np.testing.assert_array_equal(to_native(on_grid, out.geometry), label)  # the body (and organ) lies in the crop
    rng = np.random.default_rng(1)
    noise = rng.random(out.image.shape) > 0.5
    np.testing.assert_array_equal(to_segvol_grid(to_native(noise, out.geometry), out.geometry), noise)
    zoomed = label_zoom_out(label, out.geometry)
    assert zoomed.shape == ROI and zoomed.dtype == bool and zoomed.any()
    centre = tuple(int(c.mean()) for c in np.nonzero(label))
    assert zoomed[native_to_zoom_out(centre, out.geometry)]


def test_box_points_and_maps_as_segvol_builds_them():
    mask = np.zeros((6, 8, 10), bool)
    mask[1:3, 2:6, 4] = True
    np.testing.assert_array_equal(segvol_box(mask), [1, 2, 4, 2, 5, 4])
    np.testing.assert_array_equal(segvol_box(np.zeros_like(mask)), [-1] * 6)
    cube = box_cube(np.array([1, 2, 4, 2, 5, 4]), mask.shape)
    np.testing.assert_array_equal(cube > 0, mask)  # inclusive bounds
    points = np.array([[1, 2, 4], [0, 0, 0], [-1, -1, -1]])
    np.testing.assert_array_equal(np.argwhere(positive_point_map(points, np.array([1, 0, -1]), mask.shape)),
                                  [[1, 2, 4]])
    prompt = official_prompt(mask, "liver", "point+text", torch.Generator().manual_seed(0))
    assert prompt.text == "liver" and prompt.box is None and prompt.points.shape == (7, 3)
    np.testing.assert_array_equal(prompt.point_labels, [1, 1, 1, 1, 0, 0, 0])
    assert mask[tuple(prompt.points[:4].T)].all() and not mask[tuple(prompt.points[4:].T)].any()
    again = official_prompt(mask, "liver", "point+text", torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(again.points, prompt.points)  # seeded
    small = np.zeros_like(mask)
    small[0, 0, :2] = True  # 2 positives: 1 + both again as extras, 3 negatives, one ignore point: 7 in all
    few = official_prompt(small, "x", "point", torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(few.point_labels, [1, 1, 1, 0, 0, 0, -1])
    assert few.text is None and (few.points[-1] == -1).all()
    box = official_prompt(mask, "liver", "box", None)
    np.testing.assert_array_equal(box.box, [1, 2, 4, 2, 5, 4])
    with pytest.raises(ValueError, match="text, box, point"):
        official_prompt(mask, "liver", "mask", None)


def test_roi_from_logits_by_hand():
    logits = -torch.ones((40, 300, 260))
    logits[10:12, 100:110, 0:5] = 1.0
    roi = logits_to_roi(logits)
    # D: extent 2, shortfall 30 -> 15 each side; H: extent 10, 246 -> 123 each side, clipped; W: 251 -> 125
    assert roi == (slice(0, 27), slice(0, 233), slice(0, 130))
    logits[:] = -1
    logits[20, 150, 130] = 1.0
    assert logits_to_roi(logits) == (slice(5, 36), slice(23, 278), slice(3, 258))  # odd shortfall: one short
    assert logits_to_roi(-torch.ones((4, 4, 4))) is None


def test_window_scan_positions_by_hand():
    assert scan_interval((40, 300, 256), ROI) == (16, 128, 256)
    starts = sorted({tuple(s.start for s in w) for w in window_slices((40, 300, 256))})
    assert starts == [(0, 0, 0), (0, 44, 0), (8, 0, 0), (8, 44, 0)]  # the last window on an axis ends flush
    assert window_slices(ROI) == [(slice(0, 32), slice(0, 256), slice(0, 256))]
    assert len(window_slices((64, 512, 512))) == 3 * 3 * 3


class Recorder(torch.nn.Module):
    """A fake SegVol: logits = image + offset per call, recording the prompts each window gets."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def forward(self, image, text_embedding=None, boxes=None, points=None):
        self.calls.append((boxes, points))
        return image + len(self.calls)


def test_zoom_in_blends_uniformly_and_prompts_each_window():
    network = Recorder()
    region = torch.rand((40, 300, 256))
    zoom_out_logits = -torch.ones_like(region)
    zoom_out_logits[5:30, 10:20, 100:200] = 1
    user_box = torch.zeros_like(region)
    out = zoom_in(network, region, zoom_out_logits, SegVolPrompt(box=np.zeros(6)), None, user_box, None)
    # windows at D 0 / 8 and H 0 / 44, offsets 1..4 in MONAI's order: voxels seen by several windows get the mean
    expected = region.clone()
    offsets = torch.zeros_like(region)
    count = torch.zeros_like(region)
    for k, window in enumerate(window_slices(tuple(region.shape)), start=1):
        offsets[window] += k
        count[window] += 1
    torch.testing.assert_close(out, expected + offsets / count, rtol=0, atol=1e-6)
    # several windows: each gets the box of the zoom-out prediction inside it
    boxes = [b[0].tolist() for b, _ in network.calls]
    assert boxes[0] == [5, 10, 100, 29, 19, 199]

    network = Recorder()
    small = torch.rand((20, 200, 100))  # one window: the user's box, on the unpadded grid as SegVol slices it
    cube = torch.zeros_like(small)
    cube[2:4, 5:9, 1:3] = 1
    zoom_in(network, small, torch.ones_like(small), SegVolPrompt(box=np.zeros(6)), None, cube, None)
    assert len(network.calls) == 1 and network.calls[0][0][0].tolist() == [2, 5, 1, 3, 8, 2]


def test_segment_volume_returns_native_masks_with_a_fake_network():
    class Threshold(Recorder):
        def encode_image(self, image):
            return image

        def decode(self, embedding, text_embedding=None, boxes=None, points=None):
            return (embedding - 0.5) * 10

        def forward(self, image, text_embedding=None, boxes=None, points=None):
            self.calls.append((boxes, points))
            return (image - 0.5) * 10

    image, _ = synthetic_ct()
    volume = preprocess(image)
    network = Threshold()
    (zoomed_out, zoomed_in) = [segment_volume(network, volume, [SegVolPrompt(box=np.array([0, 0, 0, 31, 255, 255]))],
                                              use_zoom_in=flag)[0] for flag in (False, True)]
    assert zoomed_out.shape == zoomed_in.shape == image.shape and zoomed_in.dtype == bool
    # zoom-in on the full-resolution region recovers the bright voxels exactly where zoom-out predicted them
    on_grid = to_segvol_grid(zoomed_in, volume.geometry)
    expected = volume.image > 0.5
    roi = logits_to_roi(torch.from_numpy((to_segvol_grid(zoomed_out, volume.geometry) - 0.5).astype(np.float32)))
    np.testing.assert_array_equal(on_grid[roi], expected[roi])
    with pytest.raises(ValueError, match="box or points, not both"):
        segment_volume(network, volume, [SegVolPrompt(box=np.zeros(6), points=np.zeros((1, 3)),
                                                      point_labels=np.ones(1))])


def test_zoom_in_point_mode_draws_points_per_window_and_adds_the_prediction_box():
    network = Recorder()
    small = torch.rand((20, 200, 100))
    point_map = torch.zeros_like(small)
    point_map[3, 7, 9] = 1
    logits = -torch.ones_like(small)
    logits[4:6, 10:12, 20:22] = 1
    prompt = SegVolPrompt(points=np.zeros((1, 3)), point_labels=np.ones(1))
    zoom_in(network, small, logits, prompt, None, point_map, torch.Generator().manual_seed(0))
    (boxes, (points, labels)), = network.calls
    assert points[0].tolist() == [[3, 7, 9]] * 2 + [[-1, -1, -1]] * 3  # 1 + 4 positives drawn from one voxel
    assert labels[0].tolist() == [1, 1, -1, -1, -1]
    pad = (6, 28, 78)  # the image is padded to the window; the prediction box follows it, the point map does not
    assert boxes[0].tolist() == [4 + pad[0], 10 + pad[1], 20 + pad[2], 5 + pad[0], 11 + pad[1], 21 + pad[2]]
