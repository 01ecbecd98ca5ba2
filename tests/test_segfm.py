"""The `segfm-cvpr25` preset against the official CVPR25_iter_eval.py, run unchanged on fixed cases
(tests/goldens/make_segfm_goldens.py): a scripted model answers every interaction with the label map the
script's scripted docker wrote; through the real runner the model must receive the script's box and clicks
(points, signs, order) and the case table must equal the script's CSV (DSC/NSD per interaction, AUC, final)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bench.engine.runner as runner
from bench.data.catalog.cases import discover_sources
from bench.data.io import write_volume
from bench.engine.presets import load_protocol
from bench.engine.runner import run_case
from bench.engine.spec import RunSpec
from models.base import Capabilities, Model
from models.registry import register_model
from protocols.interactive import case_table
from protocols.prompts import Box

GOLDENS = Path(__file__).parent / "goldens" / "segfm"
EXPECTED = json.loads((GOLDENS / "expected.json").read_text())["cases"]
CLASSES = {"first": 1, "second": 2}


def _inputs() -> dict[str, dict]:
    with np.load(GOLDENS / "cases.npz") as data:
        arrays = dict(data)
    return {name: {"labels": arrays[f"{name}/labels"],
                   "preds": [arrays.get(f"{name}/pred{n}") for n in range(case["n_preds"])]}
            for name, case in EXPECTED.items()}


INPUTS = _inputs()
NAMES = sorted(INPUTS)


class Scripted(Model):
    """Answers call n of a target with class `target` of the case's n-th stored label map (the case is read from
    the image, 1000 x its index); a stored failure raises. Records the prompts."""

    name = "test-segfm-scripted"
    calls: list[dict] = []

    def __init__(self, *, boxes: bool = True):
        self.capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"points", *(["boxes"] * boxes)}),
                                         accumulates_clicks=False)

    def _segment(self, image, targets, state):
        case = NAMES[int(image.array.flat[0]) // 1000]
        out = {}
        for target in targets:
            n = state.get(f"_calls/{target.name}", 0)
            state[f"_calls/{target.name}"] = n + 1
            Scripted.calls.append({"case": case, "name": target.name, "prompt": target.prompt})
            pred = INPUTS[case]["preds"][n]
            if pred is None:
                raise RuntimeError("the scripted run wrote nothing")
            out[target.name] = pred == CLASSES[target.name]
        return out


register_model("test-segfm-scripted")(Scripted)
register_model("test-segfm-scripted-nobox")(lambda: Scripted(boxes=False))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("segfm") / "Dataset991_SegFM"
    for index, name in enumerate(NAMES):
        labels = INPUTS[name]["labels"]
        affine = np.diag([*EXPECTED[name]["spacing"], 1.0])
        write_volume(root / "imagesTs" / f"{name}_0000.nii.gz", 1000.0 * index + labels, affine)
        write_volume(root / "labelsTs" / f"{name}.nii.gz", labels, affine)
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, **CLASSES}, "numTest": len(NAMES),
        "file_ending": ".nii.gz"}))
    return {source.case_id: source for source in discover_sources(root)}


@pytest.fixture(scope="module")
def results(dataset):
    runner.PROCESS_MODELS.clear()
    Scripted.calls = []
    protocol = load_protocol("segfm-cvpr25")
    out = {}
    for name in NAMES:
        model = "test-segfm-scripted" if EXPECTED[name]["box"] else "test-segfm-scripted-nobox"
        out[name] = run_case(dataset[name], RunSpec(run="golden", model=model, protocol=protocol))
    calls = list(Scripted.calls)
    runner.PROCESS_MODELS.clear()
    return out, calls


def _official_points(call: dict, cls: int) -> list[tuple[tuple[int, ...], bool]]:
    """The clicks the script had given class `cls` (1-based) before one interaction, in order, in our axis
    order (the script's are (z, y, x)), with their signs."""
    if call["clicks"] is None:
        return []
    given, order = call["clicks"][cls - 1], call["clicks_order"][cls - 1]
    taken = {"fg": 0, "bg": 0}
    out = []
    for kind in order:
        if kind is None:
            continue
        point = given[kind][taken[kind]]
        taken[kind] += 1
        out.append((tuple(reversed(point)), kind == "fg"))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_clicks_and_signs_equal_the_official_script(results, name):
    _, calls = results
    expected = EXPECTED[name]
    for cls_name, cls in CLASSES.items():
        ours = [c["prompt"] for c in calls if c["case"] == name and c["name"] == cls_name]
        if not (INPUTS[name]["labels"] == cls).any():
            assert not ours
            continue
        assert len(ours) == len(expected["calls"])  # 6 calls (5 without a box), a perfect class too
        for prompt, official in zip(ours, expected["calls"]):
            assert [(c.point, c.positive) for c in prompt.points] == _official_points(official, cls)


@pytest.mark.parametrize("name", [n for n in NAMES if EXPECTED[n]["box"]])
def test_box_equals_get_boxes_for_the_margin_drawn(results, name):
    """The box every call gets is get_boxes.mask3D_to_bbox's for the margin the run drew (stored with it)."""
    result, calls = results
    for cls_name, cls in CLASSES.items():
        if cls_name not in result[name].prompts:
            continue
        record = result[name].prompts[cls_name]["box"]
        official = EXPECTED[name]["boxes"][str(record["shift"])][cls - 1]
        box = Box((official["z_mid_x_min"], official["z_mid_y_min"], official["z_min"]),
                  (official["z_mid_x_max"], official["z_mid_y_max"], official["z_max"]))
        assert record["z_mid"] == official["z_mid"] and (record["lo"], record["hi"]) == (list(box.lo), list(box.hi))
        assert all(c["prompt"].boxes == (box,) for c in calls if c["case"] == name and c["name"] == cls_name)


@pytest.mark.parametrize("name", NAMES)
def test_case_scores_auc_and_final_equal_the_official_csv(results, name):
    result, _ = results
    scoring = load_protocol("segfm-cvpr25").scoring
    (row,) = case_table(result[name].rows, n_clicks=5, auc=scoring.auc,
                        nsd_zero_at_dsc=scoring.nsd_zero_at_dsc).to_dict("records")
    official = EXPECTED[name]["csv"]
    keys = [f"{m}_{k}" for m in ("DSC", "NSD") for k in range(1, 7)] + ["DSC_AUC", "NSD_AUC", "DSC_Final",
                                                                        "NSD_Final", "num_class"]
    assert {k: row[k] for k in keys} == pytest.approx({k: official[k] for k in keys}, abs=1e-12)


def test_the_goldens_cover_the_rules_they_are_named_for():
    """The fixed cases still exercise what they stand for: a case DSC of 0.18 (NSD 0), two classes whose mean
    DSC <= 0.2 while one is above, failures at the first and a later interaction, ties and a case without box."""
    csv = {name: case["csv"] for name, case in EXPECTED.items()}
    assert csv["dsc018"]["DSC_2"] == pytest.approx(0.18, abs=0.002) and csv["dsc018"]["NSD_2"] == 0.0
    assert 0.2 < csv["dsc018"]["DSC_3"] < 0.22 and csv["dsc018"]["NSD_3"] > 0
    assert csv["two_class"]["DSC_2"] <= 0.2 and csv["two_class"]["NSD_2"] == 0.0
    assert csv["fail_first"]["DSC_1"] == 0.0 and csv["fail_mid"]["DSC_3"] == csv["fail_mid"]["DSC_2"]
    assert csv["nobox"]["DSC_1"] == csv["nobox"]["NSD_1"] == 0.0
    assert None in EXPECTED["two_class"]["calls"][-1]["clicks_order"][0]  # a perfect class gets no click


def test_time_limit_zeroes_a_case_above_90_s_per_class(results):
    result, _ = results
    rows = result["slabs"].rows.copy()
    scoring = load_protocol("segfm-cvpr25").scoring
    limit = scoring.time_limit_s_per_class
    rows["seconds"] = 0.0
    rows.loc[rows.index[0], "seconds"] = limit + 1.0  # one class: over 90 s in total
    (slow,) = case_table(rows, n_clicks=5, time_limit_s_per_class=limit).to_dict("records")
    assert slow["DSC_Final"] == slow["NSD_AUC"] == slow["DSC_1"] == 0.0 and slow["TotalRunningTime"] == limit + 1
    rows.loc[rows.index[0], "seconds"] = limit
    (in_time,) = case_table(rows, n_clicks=5, time_limit_s_per_class=limit).to_dict("records")
    assert in_time["DSC_Final"] == pytest.approx(EXPECTED["slabs"]["csv"]["DSC_Final"])


def test_failed_calls_are_listed_with_the_prompts(results):
    """fail_mid's runs 3 and 5 wrote nothing (the scripted model raised): kept as the previous prediction, named."""
    result, _ = results
    failed = result["fail_mid"].prompts["first"]["failed"]
    assert [item["click"] for item in failed] == [2, 4] and all("RuntimeError" in item["error"] for item in failed)
    assert "failed" not in result["slabs"].prompts["first"]


def test_bench_clicks_prints_the_case_table_and_says_when_the_model_takes_no_box(dataset, tmp_path):
    """As a user runs it: one line saying the model gets no box, and the per-case table with the script's
    columns; --time-limit is refused by a preset that sets none."""
    from typer.testing import CliRunner

    from bench.cli.app import app

    runner.PROCESS_MODELS.clear()
    source = dataset["nobox"]
    images, refs = tmp_path / "images", tmp_path / "refs"
    images.mkdir(), refs.mkdir()
    (images / "nobox_0000.nii.gz").symlink_to(source.image)
    (refs / "nobox.nii.gz").symlink_to(source.label)
    args = ["clicks", "--model", "test-segfm-scripted-nobox", "--protocol", "segfm-cvpr25", "--images", str(images),
            "--refs", str(refs), "--labels", "1=first", "--out", str(tmp_path / "run"), "--time-limit", "--modality", "CT"]
    result = CliRunner().invoke(app, args)
    runner.PROCESS_MODELS.clear()
    assert result.exit_code == 0, result.output
    assert "takes no boxes prompts: under segfm-cvpr25 it gets points only" in result.output
    assert "DSC_AUC" in result.output and "time limit 90 s per class applied" in result.output
    expected = EXPECTED["nobox"]["csv"]
    assert f"DSC_AUC {expected['DSC_AUC']:.4f}, NSD_AUC {expected['NSD_AUC']:.4f}" in result.output
    refused = CliRunner().invoke(app, [*args[:4], "harness", *args[5:]])
    assert refused.exit_code == 2 and "--time-limit: protocol harness sets no time limit" in refused.output


def test_large_crop_edt_is_the_scripts_downsampled_path(monkeypatch):
    """compute_edt's 2x path (a padded crop above 60 M voxels; the goldens lower that threshold to 1000 in the
    official function so a small component takes it): the same distances and the same seeded pick."""
    import protocols.prompts_segfm as segfm

    golden = json.loads((GOLDENS / "large_roi.json").read_text())
    expected = np.array(golden["edt"])
    component = expected > 0
    monkeypatch.setattr(segfm, "LARGE_ROI", 1000)
    distances = segfm.challenge_edt(component) * component
    assert np.array_equal(distances, expected) and expected.max() > 1
    assert list(segfm.draw_maximum(distances, np.random.RandomState(segfm.TIE_SEED))) == golden["center"]
    monkeypatch.setattr(segfm, "LARGE_ROI", 60_000_000)
    assert not np.array_equal(segfm.challenge_edt(component) * component, expected)  # the path matters here
