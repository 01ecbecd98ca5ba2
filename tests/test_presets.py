"""Every protocol preset against a hand-made case: the prompts a model receives, the space it runs in and the
scores, as the official code behaves (each test cites the models_spec.md lines it follows)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

import bench.engine.runner as runner
from bench.data.catalog.cases import discover_sources
from bench.data.io import read_volume, write_volume
from bench.engine.preprocess import plan_transform
from bench.engine.presets import load_protocol, preset_names
from bench.engine.runner import run_case, run_cases
from bench.engine.spec import RunSpec
from models.base import Capabilities, Model
from models.registry import register_model
from protocols.prompts import Box
from protocols.protocol import ProtocolError, parse_protocol, with_overrides

LIVER = (slice(4, 11), slice(5, 12), slice(2, 9))  # a 7 x 7 x 7 cube: centre (7, 8, 5)
SPLEEN_BIG = (slice(12, 18), slice(2, 8), slice(3, 6))
SPLEEN_SMALL = (slice(12, 14), slice(12, 14), slice(3, 6))


class Recorder(Model):
    """Records every call (image geometry, targets and prompts); returns the reference it is given, with the
    first `hole` planes along axis 0 of the target removed on the first call of each target (`hole_always`:
    on every call)."""

    name = "test-recorder"
    calls: list[dict] = []
    hole = 0
    hole_always = False

    def __init__(self, *, prompts=("points", "boxes", "text")):
        self.capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({*prompts, "reference"}),
                                         accumulates_clicks=False)

    def _segment(self, image, targets, state):
        out = {}
        for target in targets:
            Recorder.calls.append({"shape": image.shape, "spacing": tuple(image.spacing), "image": image.array,
                                   "name": target.name, "prompt": target.prompt})
            mask = target.prompt.reference.copy()
            first = target.name not in state
            state[target.name] = True
            if self.hole and (first or self.hole_always) and mask.any():
                start = int(np.flatnonzero(mask.any(axis=(1, 2)))[0])
                mask[start:start + self.hole] = False
            out[target.name] = mask
        return out


register_model("test-recorder")(Recorder)
register_model("test-recorder-text")(lambda: Recorder(prompts=("text",)))
register_model("test-recorder-specialist")(lambda: Recorder(prompts=()))  # no prompt kind: one call, every class


@pytest.fixture(autouse=True)
def fresh_recorder():
    runner.PROCESS_MODELS.clear()
    Recorder.calls, Recorder.hole, Recorder.hole_always = [], 0, False
    yield
    runner.PROCESS_MODELS.clear()


def _labels() -> np.ndarray:
    labels = np.zeros((20, 20, 12), np.uint8)
    labels[LIVER] = 1
    labels[SPLEEN_BIG] = 2
    labels[SPLEEN_SMALL] = 2
    return labels


@pytest.fixture
def dataset(tmp_path):
    """An nnU-Net raw dataset (imagesTs/labelsTs/dataset.json) with one 1 mm case; class `absent` is empty."""
    root = tmp_path / "Dataset990_Hand"
    labels = _labels()
    image = 100.0 + 50.0 * labels
    write_volume(root / "imagesTs" / "hand_0000.nii.gz", image, np.eye(4))
    write_volume(root / "labelsTs" / "hand.nii.gz", labels, np.eye(4))
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "spleen": 2, "absent": 3},
        "numTest": 1, "file_ending": ".nii.gz"}))
    return root


def _run(dataset, preset, model="test-recorder", **overrides):
    protocol = with_overrides(load_protocol(preset), **overrides)
    (source,) = discover_sources(dataset)
    return run_case(source, RunSpec(run="t", model=model, protocol=protocol))


def _calls(name):
    return [call for call in Recorder.calls if call["name"] == name]


def test_every_preset_parses_and_names_its_sources():
    assert set(preset_names()) == {"sat", "segvol", "sam-med3d-paper", "sam-med3d", "sam-med3d-2d-baseline",
                                   "sam-med2d", "sam-med2d-points", "segfm-cvpr25", "harness"}
    for name in preset_names():
        protocol = load_protocol(name)
        assert protocol.name == name and protocol.sources and protocol.description
    with pytest.raises(ProtocolError, match="unknown scoring field"):
        parse_protocol({"name": "x", "scoring": {"dice_kind": "plus_one"}})
    with pytest.raises(ProtocolError, match="must start at click 1"):
        parse_protocol({"name": "x", "prompts": {"clicks": [[2, "ritm"]]}})
    with pytest.raises(ProtocolError, match="per_slice_axis must be 0, 1 or 2"):
        parse_protocol({"name": "x", "prompts": {"per_slice_axis": 3}})
    with pytest.raises(ProtocolError, match="from click 2.*choose from"):
        parse_protocol({"name": "x", "prompts": {"clicks": [[1, "center"], [2, "center"]]}})


def test_harness_centre_click_then_centre_of_the_largest_error_all_clicks_native_mm(dataset):
    """README protocol: first click at the distance maximum of the target (centre of a 7^3 cube: (7, 8, 5)),
    then the centre of the largest error component; every call gets all clicks; scores on the native grid."""
    Recorder.hole = 3  # the first answer misses planes 4-6 of the liver: a 3 x 7 x 7 slab
    result = _run(dataset, "harness")
    calls = _calls("liver")
    assert len(calls) == 2 and calls[0]["shape"] == (20, 20, 12) and calls[0]["spacing"] == (1.0, 1.0, 1.0)
    first, second = calls[0]["prompt"].points, calls[1]["prompt"].points
    assert [c.point for c in first] == [(7, 8, 5)] and first[0].positive
    assert len(second) == 2 and second[1].point == (5, 8, 5) and second[1].positive  # middle of the slab
    liver = result.rows[result.rows.class_name == "liver"].sort_values("click")
    assert liver.click.tolist() == list(range(1, 11))
    assert liver.dsc.iloc[0] == pytest.approx(2 * 4 * 49 / (4 * 49 + 343)) and (liver.dsc.iloc[1:] == 1.0).all()
    assert set(result.rows.class_name) == {"liver", "spleen"}  # no click on an absent target
    assert set(result.rows.spacing) == {"1x1x1"} and set(result.rows.protocol) == {"harness"}


def test_harness_leaves_out_a_target_empty_in_both_reference_and_prediction(dataset):
    """The harness default (nnU-Net, MONAI ignore_empty): the row is stored with its flags and no score, where
    SAT's rule (the sat preset) scores it 1."""
    rows = _run(dataset, "harness", model="test-recorder-specialist").rows.set_index("class_name")
    assert rows.loc["absent", "ref_empty"] and rows.loc["absent", "pred_empty"]
    assert np.isnan(rows.loc["absent", "dsc"]) and np.isnan(rows.loc["absent", "nsd"])
    assert rows.loc["liver", "dsc"] == 1.0
    sat = _run(dataset, "sat", model="test-recorder-specialist").rows.set_index("class_name")
    assert sat.loc["absent", "dsc"] == 1.0


def test_segfm_box_first_then_five_clicks_in_the_error_plane(dataset):
    """SegFM (CVPR'25): the box alone first (the liver cube's box: on a 20-voxel side every margin rounds to 0),
    then 5 calls with the box and all clicks so far, each new click in the missing plane (an error 1 voxel thick:
    all 49 voxels tie at distance 1; the script's seeded draw picks one, in its (z, y, x) order)."""
    Recorder.hole, Recorder.hole_always = 1, True  # never perfect: the loop runs all 5 clicks
    result = _run(dataset, "segfm-cvpr25")
    calls = _calls("liver")
    assert len(calls) == 6 and not calls[0]["prompt"].points
    assert all(c["prompt"].boxes == (Box((4, 5, 2), (10, 11, 8)),) for c in calls)
    pick = np.random.RandomState(42).choice(49)  # CVPR25_iter_eval.py:166-172 over the plane, z slowest
    assert all(c["prompt"].points[-1].point == (4, 5 + pick % 7, 2 + pick // 7) for c in calls[1:])
    assert [len(c["prompt"].points) for c in calls] == [0, 1, 2, 3, 4, 5]
    assert sorted(result.rows[result.rows.class_name == "liver"].click) == [0, 1, 2, 3, 4, 5]


def test_sat_text_prompts_all_classes_in_one_call_scored_on_the_satds_grid(dataset):
    """models_spec.md lines 149-156, 183-184: RAS, 1 x 1 x 3 mm, CT window [-500, 1000] then z-score; every class
    a text query in one call; scored in the preprocessed space (spacing 1,1,3); empty GT and empty prediction
    score 1."""
    result = _run(dataset, "sat", model="test-recorder-text")
    assert [c["name"] for c in Recorder.calls] == ["liver", "spleen", "absent"]
    call = Recorder.calls[0]
    sat_grid = plan_transform(np.eye(4), (20, 20, 12)).resampled_shape  # MONAI Spacing's grid; no crop (all > 0)
    assert sat_grid[:2] == (20, 20) and call["shape"] == sat_grid and call["spacing"] == (1.0, 1.0, 3.0)
    assert abs(float(call["image"].mean())) < 1e-5 and float(call["image"].std()) == pytest.approx(1.0, abs=1e-4)
    assert all(c["prompt"].text == c["name"] and not c["prompt"].points and not c["prompt"].boxes
               for c in Recorder.calls)
    rows = result.rows.set_index("class_name")
    assert (rows.dsc == 1.0).all() and (rows.nsd == 1.0).all() and rows.loc["absent", "ref_empty"]
    assert set(rows.spacing) == {"1x1x3"} and rows.click.isna().all()
    assert result.masks["liver"].shape == (20, 20, 12)  # mapped back to the native grid


def test_segvol_text_box_and_points_dice_plus_one_empty_skipped(dataset):
    """models_spec.md lines 306-309: box = inclusive bounding box; points = 1 + 3 positives and 3 negatives
    drawn uniformly; inference_demo's Dice has +1 in the denominator; absent categories are skipped."""
    result = _run(dataset, "segvol")
    prompts = {c["name"]: c["prompt"] for c in Recorder.calls}
    assert set(prompts) == {"liver", "spleen"}
    liver = prompts["liver"]
    assert liver.text == "liver" and liver.boxes == (Box((4, 5, 2), (10, 11, 8)),)
    truth = _labels() == 1
    positives = [c.point for c in liver.points if c.positive]
    negatives = [c.point for c in liver.points if not c.positive]
    assert len(positives) == 4 and len(negatives) == 3
    assert all(truth[p] for p in positives) and not any(truth[p] for p in negatives)
    rows = result.rows.set_index("class_name")
    assert rows.loc["liver", "dsc"] == pytest.approx(2 * 343 / (2 * 343 + 1))
    assert "absent" not in rows.index


def test_sam_med3d_paper_crop_ritm_then_random_newest_click_voxel_distances(dataset):
    """models_spec.md lines 449-455: 1.5 mm, canonical, 128^3 crop centred on the label; RITM (uniform over the
    voxels deeper than half the maximum distance) for clicks 1-2, then uniform error; only the newest click per
    call; distances in voxels of the crop; max over clicks reported (labelled)."""
    Recorder.hole, Recorder.hole_always = 1, True
    protocol = load_protocol("sam-med3d-paper")
    assert [protocol.prompts.policy(k) for k in range(1, 6)] == ["ritm", "ritm"] + ["random_error"] * 3
    assert "max_over_clicks" in protocol.scoring.report
    result = _run(dataset, "sam-med3d-paper")
    calls = _calls("liver")
    assert len(calls) == 5 and all(len(c["prompt"].points) == 1 for c in calls)
    first = calls[0]
    assert first["shape"] == (128, 128, 128) and first["spacing"] == (1.5, 1.5, 1.5)
    ref = first["prompt"].reference
    lo, hi = np.argwhere(ref).min(axis=0), np.argwhere(ref).max(axis=0) + 1
    assert np.all(np.abs((lo + hi) / 2 - 64) <= 1)  # centred on the label's bounding box
    depth = distance_transform_edt(np.pad(ref, 1))[1:-1, 1:-1, 1:-1]
    click = first["prompt"].points[0]
    assert click.positive and depth[click.point] > depth.max() / 2  # RITM on an empty prediction: the core
    rows = result.rows[result.rows.class_name == "liver"]
    assert set(rows.spacing) == {"1x1x1"} and set(rows.first_click) == {"ritm"}
    assert set(rows.prompt_policy) == {"ritm@2,random_error@3"}


def test_sam_med3d_one_accumulated_random_click_scored_on_the_native_grid(dataset):
    """models_spec.md lines 420-444: num_clicks=1, a uniformly random GT voxel first, points accumulated, the
    128^3 prediction mapped back to the original grid and scored there; seed 233."""
    result = _run(dataset, "sam-med3d")
    calls = _calls("liver")
    assert len(calls) == 1 and calls[0]["shape"] == (128, 128, 128)
    click = calls[0]["prompt"].points[0]
    assert click.positive and calls[0]["prompt"].reference[click.point]
    rows = result.rows.set_index("class_name")
    assert rows.loc["liver", "ref_voxels"] == 343 and rows.loc["liver", "spacing"] == "1x1x1"
    assert set(result.rows.seed) == {233}
    assert result.masks["liver"].shape == (20, 20, 12)


def test_sam_med3d_2d_baseline_one_click_per_target_slice_per_round(dataset):
    """models_spec.md lines 502-512: every axial slice of the crop holding the target gets a click (a uniform
    target pixel first, then the slice's error), accumulated round after round: N, 2N, ... points."""
    Recorder.hole, Recorder.hole_always = 1, True
    _run(dataset, "sam-med3d-2d-baseline", n_clicks=2)
    first, second = _calls("liver")
    ref = first["prompt"].reference
    slices = np.flatnonzero(ref.any(axis=(0, 1)))
    assert sorted(c.point[2] for c in first["prompt"].points) == slices.tolist()
    assert all(c.positive and ref[c.point] for c in first["prompt"].points)
    assert len(second["prompt"].points) > len(first["prompt"].points)  # accumulated


def test_sam_med2d_box_of_the_largest_component(dataset):
    """models_spec.md lines 552-554: get_boxes_from_mask boxes the largest connected component (recorded
    inclusive; the network gets regionprops' exclusive hi + 1); the small spleen component is left out; one pass
    per slice."""
    result = _run(dataset, "sam-med2d")
    boxes = {c["name"]: c["prompt"].boxes for c in Recorder.calls}
    assert boxes["spleen"] == tuple(Box((12, 2, z), (17, 7, z)) for z in (3, 4, 5))  # regionprops: hi + 1
    assert all(not c["prompt"].points for c in Recorder.calls)
    assert set(result.rows.class_name) == {"liver", "spleen", "absent"} and result.rows.click.isna().all()


def test_sam_med2d_point_mode_random_target_pixel_then_error_points_per_slice(dataset):
    """models_spec.md lines 555-563: point_num 1 starts with one random foreground pixel per image (slice), each
    further pass adds one point uniform over that slice's error (1 = missed, 0 = extra), accumulated."""
    Recorder.hole, Recorder.hole_always = 1, True  # the first plane along axis 0 is always missed
    result = _run(dataset, "sam-med2d-points", n_clicks=2)
    first, second = _calls("liver")
    truth = _labels() == 1
    assert first["shape"] == (20, 20, 12) and sorted(c.point[2] for c in first["prompt"].points) == list(range(2, 9))
    assert all(c.positive and truth[c.point] for c in first["prompt"].points)
    new = second["prompt"].points[len(first["prompt"].points):]
    assert len(new) == 7 and all(c.positive and c.point[0] == 4 for c in new)  # each slice's only error: plane 4
    assert set(result.rows.spacing) == {"1x1x1"}


def test_a_model_that_takes_none_of_the_prompts_is_refused(dataset):
    with pytest.raises(ValueError, match="region_growing.*takes none of protocol 'sat'"):
        _run(dataset, "sat", model="region_growing")


def test_run_cases_writes_native_niftis_and_resumes(dataset, tmp_path):
    (source,) = discover_sources(dataset)
    spec = RunSpec(run="r", model="oracle", protocol=with_overrides(load_protocol("harness"), n_clicks=2))
    out = tmp_path / "run"
    rows, done, skipped = run_cases([source], out, spec, sources_label="hand")
    assert (done, skipped) == (1, 0) and len(rows) == 2 * 2
    written = read_volume(out / "predictions" / "hand" / "liver.nii.gz")
    assert written.array.shape == (20, 20, 12) and np.allclose(written.affine, np.eye(4))
    config = json.loads((out / "run.json").read_text())
    assert config["model_provenance"]["name"] == "oracle" and config["protocol"]["name"] == "harness"
    assert run_cases([source], out, spec, sources_label="hand")[1:] == (0, 1)
    changed = _labels()
    changed[LIVER] = 0  # the reference changed: the case is run again (bench evaluate's resume rule)
    write_volume(source.label, changed, np.eye(4))
    rows, done, skipped = run_cases([source], out, spec, sources_label="hand")
    assert (done, skipped) == (1, 0) and set(rows.class_name) == {"spleen"}
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_run_case_is_a_picklable_task_with_the_same_result_in_another_process(dataset):
    """The unit of work a process pool or Dask runs: arguments and result pickle, the numbers do not change.
    A spawned worker, as Dask's: this process has run torch's OpenMP threads (the crop space is TorchIO's), and
    a worker forked after that hangs at its first parallel torch operation."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    (source,) = discover_sources(dataset)
    spec = RunSpec(run="p", model="oracle", protocol=with_overrides(load_protocol("sam-med3d-paper"), n_clicks=2))
    assert pickle.loads(pickle.dumps(spec)) == spec
    local = run_case(source, spec)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = pool.submit(run_case, source, spec).result()
    columns = ["class_name", "click", "dsc", "nsd", "pred_voxels"]
    assert remote.rows[columns].equals(local.rows[columns])


def test_replay_gives_another_model_the_stored_clicks(dataset, tmp_path):
    """Every model under the same stored prompts: a run replaying another gets its clicks, in order."""
    (source,) = discover_sources(dataset)
    protocol = with_overrides(load_protocol("sam-med3d-paper"), n_clicks=3)
    run_cases([source], tmp_path / "a", RunSpec(run="a", model="oracle", protocol=protocol), sources_label="hand")
    Recorder.hole, Recorder.hole_always = 1, True
    replayed = RunSpec(run="b", model="test-recorder", protocol=protocol, replay=str(tmp_path / "a"))
    run_cases([source], tmp_path / "b", replayed, sources_label="hand")
    stored = json.loads(runner.prompt_record_path(tmp_path / "a", "hand", "liver").read_text())
    given = [call["prompt"].points[-1].point for call in _calls("liver")]
    assert given[:len(stored["clicks"])] == [tuple(c["point"]) for c in stored["clicks"]]
    again = json.loads(runner.prompt_record_path(tmp_path / "b", "hand", "liver").read_text())
    assert again["replayed_from"] == str(tmp_path / "a")


def test_cases_in_a_process_pool_give_the_same_rows(dataset, tmp_path):
    (source,) = discover_sources(dataset)
    second = tmp_path / "second"
    second.mkdir()
    for name in ("image", "label"):
        (second / getattr(source, name).name).write_bytes(getattr(source, name).read_bytes())
    sources = [source, replace(source, case_id="hand2", image=second / source.image.name,
                               label=second / source.label.name)]
    spec = RunSpec(run="w", model="oracle", protocol=with_overrides(load_protocol("harness"), n_clicks=2))
    serial, _, _ = run_cases(sources, tmp_path / "serial", spec, sources_label="hand")
    pooled, done, _ = run_cases(sources, tmp_path / "pooled", spec, sources_label="hand", workers=2)
    columns = ["case_id", "class_name", "click", "dsc", "nsd"]
    assert done == 2 and pooled[columns].equals(serial[columns])


def test_protocol_sets_model_options_by_name_and_the_user_overrides_them(dataset, tmp_path):
    """SAM-Med3D's 2D baseline feeds SAM and SAM-Med2D its own intensity path (models_spec.md lines 506-507)."""
    from typer.testing import CliRunner

    from bench.cli.app import app

    built = []
    register_model("sam-vit-test")(lambda **options: built.append(options) or Recorder())
    protocol = load_protocol("sam-med3d-2d-baseline")
    assert protocol.model_args_for("sam-vit-h") == {"path": "sam-med3d-2d-baseline"}
    assert protocol.model_args_for("oracle") == {}
    args = ["run", "--model", "sam-vit-test", "--root", str(dataset), "--protocol", "sam-med3d-2d-baseline",
            "--n-clicks", "1", "--class", "liver"]
    assert CliRunner().invoke(app, args + ["--out", str(tmp_path / "a")]).exit_code == 0
    assert CliRunner().invoke(app, args + ["--out", str(tmp_path / "b"), "--model-args", "path=sam-api"]).exit_code == 0
    assert built == [{"path": "sam-med3d-2d-baseline"}, {"path": "sam-api"}]
    assert json.loads((tmp_path / "b" / "run.json").read_text())["model_args"] == {"path": "sam-api"}


def test_a_protocol_file_of_ones_own(tmp_path):
    from bench.engine.presets import load_protocol as load

    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nprompts: {kinds: [points], clicks: [[1, random], [2, fn_fp_coin]], n_clicks: 3}\n")
    protocol = load(path)
    assert protocol.name == "mine" and protocol.prompts.policy(3) == "fn_fp_coin" and protocol.interactive
    path.write_text("name: bad\nscoring: {dice: plus_two}\n")
    with pytest.raises(ProtocolError, match="mine.yaml: protocol 'bad': scoring.dice = 'plus_two'"):
        load(path)
    with pytest.raises(ProtocolError, match="unknown protocol 'nope'; presets: harness"):
        load("nope")


def test_per_class_nsd_tolerances_are_data():
    """`tolerance_mm: {class: mm, "*": default}` in a preset: each class is scored (and its row labelled) at its
    own tolerance; a bad value is a one-line protocol error."""
    import numpy as np

    from bench.engine.runner import _score_fn
    from protocols.metrics import surface_dice
    from protocols.protocol import ProtocolError, parse_protocol

    protocol = parse_protocol({"name": "t", "scoring": {"tolerance_mm": {"liver": 3.0, "*": 0.5}}})
    assert protocol.scoring.tolerance_for("liver") == 3.0 and protocol.scoring.tolerance_for("spleen") == 0.5
    assert parse_protocol({"name": "t", "scoring": {"tolerance_mm": {"liver": 3.0}}}).scoring.tolerance_for("x") == 1.0
    ref = np.zeros((12, 12, 6), bool)
    ref[3:8, 3:8, 1:4] = True
    pred = np.roll(ref, 2, axis=0)
    for name in ("liver", "spleen"):
        nsd = _score_fn(ref, (1.0, 1.0, 1.0), protocol, name)(pred)[1]
        assert nsd == surface_dice(pred, ref, (1, 1, 1), protocol.scoring.tolerance_for(name))
    assert _score_fn(ref, (1.0,) * 3, protocol, "liver")(pred)[1] > _score_fn(ref, (1.0,) * 3, protocol, "x")(pred)[1]
    with pytest.raises(ProtocolError, match="tolerance_mm 'liver'"):
        parse_protocol({"name": "t", "scoring": {"tolerance_mm": {"liver": -1}}})

class Grower(Recorder):
    """The reference grown by one voxel (face neighbours): neighbouring classes' predictions then overlap."""

    name = "test-grower"

    def _segment(self, image, targets, state):
        from scipy.ndimage import binary_dilation
        return {t.name: binary_dilation(t.prompt.reference) for t in targets}


register_model("test-grower")(Grower)


def test_label_map_scoring_lets_later_classes_overwrite_earlier_ones(dataset):
    """`scoring.label_map` (on in `sam-med3d`, as its script writes one combined map and scores each class from
    it; off in `harness`): the grown liver and spleen overlap; through the map the liver loses the shared
    voxels to the spleen (the later class), the spleen keeps all of its own."""
    from scipy.ndimage import binary_dilation
    assert load_protocol("sam-med3d").scoring.label_map and not load_protocol("harness").scoring.label_map
    labels = _labels()
    liver, spleen = binary_dilation(labels == 1), binary_dilation(labels == 2)
    shared = int((liver & spleen).sum())
    assert shared > 0
    harness = with_overrides(load_protocol("harness"), n_clicks=1)
    combined = replace(harness, scoring=replace(harness.scoring, label_map=True))
    (source,) = discover_sources(dataset)
    rows = {name: run_case(source, RunSpec(run="t", model="test-grower", protocol=protocol)).rows.set_index(
        "class_name") for name, protocol in (("separate", harness), ("combined", combined))}
    assert rows["separate"].loc["liver", "pred_voxels"] == liver.sum()
    assert rows["combined"].loc["liver", "pred_voxels"] == liver.sum() - shared
    assert rows["combined"].loc["spleen", "pred_voxels"] == rows["separate"].loc["spleen", "pred_voxels"]
    overlap = int((liver & ~spleen & (labels == 1)).sum())
    assert rows["combined"].loc["liver", "dsc"] == pytest.approx(2 * overlap / (liver.sum() - shared +
                                                                               (labels == 1).sum()))
    with pytest.raises(ProtocolError, match="label_map.*scoring.grid native"):
        parse_protocol({"name": "x", "scoring": {"grid": "space", "label_map": True}})


OFFICIAL = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+@[0-9a-f]{7,40}:[\w./-]+\.\w+:\d+(-\d+)?$"
RULES_ELSEWHERE = {"sam-med2d": "h-sam2d", "sam-med2d-points": "h-sam2d", "segfm-cvpr25": "h-segfm"}  # issue 20


@pytest.mark.parametrize("name", [name for name in preset_names() if name != "harness"])
def test_every_shipped_preset_lists_its_rules_with_official_file_and_line(name):
    """`bench protocols show NAME` prints these: each rule names the official owner/repo@commit:path:line it
    reproduces; no source cites the reference notes (not part of the repository)."""
    import re
    protocol = load_protocol(name)
    if not protocol.rules and name in RULES_ELSEWHERE:
        pytest.skip(f"{name}: its rules are filled on branch {RULES_ELSEWHERE[name]} (issue 20)")
    assert protocol.rules, f"{name}: no rules"
    for rule, official in protocol.rules:
        assert rule and re.match(OFFICIAL, official), f"{name}: {official!r}"
    assert not any("models_spec" in source for source in protocol.sources)


def test_harness_rules_cite_our_readme_and_state_no_differences():
    protocol = load_protocol("harness")
    assert protocol.rules and all(official.startswith("README.md") for _, official in protocol.rules)
    assert protocol.differences == ()


def test_protocols_list_and_show_print_every_field_rule_and_difference(tmp_path):
    from typer.testing import CliRunner

    from bench.cli.app import app
    listed = CliRunner().invoke(app, ["protocols", "list"])
    assert listed.exit_code == 0 and all(name in listed.output for name in preset_names())
    shown = CliRunner().invoke(app, ["protocols", "show", "sam-med3d-paper"])
    assert shown.exit_code == 0, shown.output
    protocol = load_protocol("sam-med3d-paper")
    for line in ("space.canonical: False", "space.clamp: [-1000.0, 1000.0]", "prompts.errors_from: logits",
                 "scoring.label_map: False", "prompts.feed: newest"):
        assert line in shown.output
    for rule, official in protocol.rules:
        assert rule in shown.output and f"<- {official}" in shown.output
    assert all(difference in shown.output for difference in protocol.differences)
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\nscoring: {tolerance_mm: 2.0}\n")
    own = CliRunner().invoke(app, ["protocols", "show", str(mine)])
    assert own.exit_code == 0 and "scoring.tolerance_mm: 2.0" in own.output and "rules: -" in own.output
    bad = CliRunner().invoke(app, ["protocols", "show", "nope"])
    assert bad.exit_code == 2 and "unknown protocol 'nope'" in bad.output
