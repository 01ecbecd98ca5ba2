"""The interactive loop (bench.engine.interactive), curve summaries, `bench clicks`, the reference model on a real CT."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.cli.app import app
from bench.engine.interactive import run_clicks
from bench.data.io import read_label_map, read_volume, write_volume
from bench.engine.runner import scorer
from models.base import Capabilities, Image, Model
from models.registry import get_model
from protocols.interactive import max_over_clicks, mean_curves, normalised_auc, summarise_clicks
from protocols.prompts import clicks_from_json, prompt_rng


class Recorder(Model):
    """Returns the reference (from a fixed array) only inside boxes around its clicks; records its prompts."""

    name = "recorder"

    def __init__(self, *, reference: np.ndarray, accumulates: bool):
        self.reference = reference
        self.capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"points"}),
                                         accumulates_clicks=accumulates)
        self.seen: list[tuple] = []

    def _segment(self, image, targets, state):
        (target,) = targets
        self.seen.append(target.prompt.points)
        mask = state.get(target.name, np.zeros(image.shape, bool)).copy()
        for click in target.prompt.points:
            box = tuple(slice(max(c - 3, 0), c + 4) for c in click.point)
            mask[box] = self.reference[box]
        state[target.name] = mask
        return {target.name: mask}


def _case() -> tuple[Image, np.ndarray]:
    ref = np.zeros((24, 24, 10), bool)
    ref[4:20, 4:20, 2:8] = True
    return Image(array=np.zeros(ref.shape, np.float32), spacing=(1.0, 1.0, 2.0), affine=np.eye(4)), ref


def _rng_for(case: str = "c"):
    return lambda k: prompt_rng(0, case, "target", "random_error", k)


def _loop(model, image, ref, policy, first, n_clicks, rng_for, **options):
    return run_clicks(model=model, image=image, reference=ref, score=scorer(ref, image.spacing), n_clicks=n_clicks,
                      policy_for=lambda k: first if k == 1 else policy, rng_for=rng_for, **options)


@pytest.mark.parametrize("accumulates", [True, False])
def test_loop_gives_accumulated_or_newest_clicks_and_scores_every_click(accumulates):
    image, ref = _case()
    model = Recorder(reference=ref, accumulates=accumulates)
    steps = _loop(model, image, ref, "random_error", "random", 4, _rng_for(),
                  feed="all" if accumulates else "newest")
    assert [s.click_index for s in steps] == [1, 2, 3, 4]
    assert [len(p) for p in model.seen] == ([1, 2, 3, 4] if accumulates else [1, 1, 1, 1])
    assert all(seen[-1] == step.click for seen, step in zip(model.seen, steps))
    assert all(0.0 <= s.dsc <= 1.0 and 0.0 <= s.nsd <= 1.0 for s in steps)
    assert steps[-1].dsc >= steps[0].dsc


def test_loop_stops_on_a_perfect_mask_and_repeats_its_scores():
    image, ref = _case()
    oracle = get_model("oracle", shift=0)
    steps = _loop(oracle, image, ref, "ritm", "center", 5, _rng_for())
    assert [s.dsc for s in steps] == [1.0] * 5 and [s.nsd for s in steps] == [1.0] * 5
    assert steps[0].click is not None and all(s.click is None for s in steps[1:])


def test_oracle_curve_rises_and_replay_reproduces_it():
    image, ref = _case()
    oracle = get_model("oracle", shift=2, repair_mm=4.0)
    steps = _loop(oracle, image, ref, "center_largest_error", "center", 6, _rng_for())
    assert steps[-1].dsc > steps[0].dsc
    replayed = _loop(oracle, image, ref, "ritm", "random", 6, _rng_for("other"),
                     replay=[s.click for s in steps if s.click is not None])
    assert [s.dsc for s in replayed] == [s.dsc for s in steps]


def test_same_seed_same_clicks_for_every_model():
    image, ref = _case()
    first = [_loop(model, image, ref, "random_error", "random", 1, _rng_for())[0].click
             for model in (get_model("oracle"), get_model("region_growing"))]
    assert first[0] == first[1]


def test_normalised_auc_known_values():
    assert normalised_auc([0.0, 1.0]) == 0.5
    assert normalised_auc([1.0, 1.0, 1.0]) == 1.0
    assert normalised_auc([0.2, 0.4, 0.6]) == pytest.approx(0.4)
    assert normalised_auc([0.7]) == 0.7


def test_mean_curves_average_cases_at_each_click():
    rows = pd.DataFrame({
        "model": "m", "class_name": "liver", "prompt_policy": "ritm", "first_click": "center",
        "case_id": ["a", "a", "b", "b"], "click": [1, 2, 1, 2],
        "dsc": [0.2, 0.6, 0.4, 0.9], "nsd": [0.1, 0.5, 0.3, 0.7],
    })
    curves = mean_curves(rows)
    assert curves["click"].tolist() == [1, 2]
    assert curves["dsc"].tolist() == pytest.approx([0.3, 0.75])
    assert curves["nsd"].tolist() == pytest.approx([0.2, 0.6])


def test_summary_per_model_and_class_never_takes_the_maximum():
    curve = [0.2, 0.9, 0.4]  # a model that got worse after click 2
    rows = pd.DataFrame({
        "run": "r", "model": "m", "dataset": "d", "case_id": ["a"] * 3 + ["b"] * 3, "class_name": "liver",
        "prompt_policy": "ritm", "first_click": "center", "seed": 0, "click": [1, 2, 3] * 2,
        "dsc": curve + [0.4, 0.5, 0.6], "nsd": [0.1, 0.2, 0.3] * 2,
    })
    summary = summarise_clicks(rows, at=(1, 3, 5))
    row = summary.iloc[0]
    assert row["cases"] == 2 and row["dsc@1"] == pytest.approx(0.3) and row["dsc@3"] == pytest.approx(0.5)
    assert row["dsc_final"] == pytest.approx(0.5) and np.isnan(row["dsc@5"])
    assert row["dsc_auc"] == pytest.approx((normalised_auc(curve) + 0.5) / 2)
    assert row["nsd_auc"] == pytest.approx(0.2)
    paper = max_over_clicks(rows).iloc[0]
    assert paper.iloc[-1] == pytest.approx((0.9 + 0.6) / 2) and "paper-era only" in paper.index[-1]


def _write_set(root) -> None:
    rng = np.random.default_rng(0)
    for case in ("c1", "c2"):
        labels = np.zeros((32, 30, 12), np.uint8)
        labels[4:16, 5:20, 2:10] = 1
        labels[20:28, 8:16, 3:9] = 2
        image = np.where(labels == 1, 80.0, np.where(labels == 2, 200.0, -50.0)) + rng.normal(0, 5, labels.shape)
        affine = np.diag([0.8, 0.8, 2.5, 1.0])
        write_volume(root / "images" / f"{case}_0000.nii.gz", image, affine)
        write_volume(root / "labels" / f"{case}.nii.gz", labels, affine)
    (root / "classes.json").write_text(json.dumps({"liver": 1, "spleen": 2, "absent": 3}))


def test_bench_clicks_stores_rows_and_prompts_and_resumes(tmp_path):
    _write_set(tmp_path)
    out = tmp_path / "run"
    args = ["clicks", "--model", "region_growing", "--modality", "CT", "--images", str(tmp_path / "images"), "--refs",
            str(tmp_path / "labels"), "--classes", str(tmp_path / "classes.json"), "--policy", "ritm",
            "--first-click", "random", "--n-clicks", "3", "--seed", "4", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "simulated 2 case(s), 0 already stored" in result.output and "dsc@3" in result.output
    rows = pd.read_parquet(out / "metrics.parquet")
    assert len(rows) == 2 * 2 * 3 and set(rows.click) == {1, 2, 3} and set(rows.seed) == {4}
    assert {"prompt_policy", "first_click", "dsc", "nsd", "spacing"} <= set(rows.columns)
    assert set(rows.prompt_policy) == {"ritm"} and set(rows.spacing) == {"0.8x0.8x2.5"}
    records = sorted((out / "prompts").rglob("*.json"))
    assert len(records) == 4
    record = json.loads(records[0].read_text())
    assert record["seed"] == 4 and 1 <= len(clicks_from_json(record)) <= 3
    again = CliRunner().invoke(app, args)
    assert "simulated 0 case(s), 2 already stored" in again.output
    changed = CliRunner().invoke(app, args[:-4] + ["--seed", "5", "--out", str(out)])
    assert changed.exit_code == 2 and "different settings" in changed.output


def test_bench_clicks_clear_errors(tmp_path):
    _write_set(tmp_path)
    base = ["clicks", "--model", "region_growing", "--modality", "CT", "--images", str(tmp_path / "images"), "--refs",
            str(tmp_path / "labels"), "--classes", str(tmp_path / "classes.json"), "--out", str(tmp_path / "o")]
    for extra, message in [(["--policy", "nearest"], "unknown --policy"), (["--class", "lung"], "lung"),
                           (["--model", "sam9"], "unknown model")]:
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 2 and message in result.output, result.output


def test_reference_model_improves_with_clicks_on_a_real_ct(shared_dir):
    folder = shared_dir / "data" / "totalsegmentator_example"
    volume, labels = read_volume(folder / "ct.nii.gz"), read_label_map(folder / "seg_total.nii.gz")
    names = {name: int(value) for value, name in json.loads((folder / "classes.json").read_text()).items()}
    image = Image(array=volume.array, spacing=volume.spacing, affine=volume.affine)
    model = get_model("region_growing")
    first, last = [], []
    for organ in ("liver", "spleen", "kidney_left", "kidney_right"):
        ref = labels.array == names[organ]
        steps = _loop(model, image, ref, "center_largest_error", "center", 10,
                      lambda k, organ=organ: prompt_rng(0, "ct", organ, "cle", k))
        first.append(steps[0].dsc)
        last.append(steps[-1].dsc)
    assert np.mean(last) > np.mean(first) + 0.15 and np.mean(last) > 0.7


def test_bench_clicks_replay_reproduces_a_run_with_another_seed(tmp_path):
    _write_set(tmp_path)
    common = ["clicks", "--model", "region_growing", "--modality", "CT", "--images", str(tmp_path / "images"), "--refs",
              str(tmp_path / "labels"), "--labels", "1=liver,2=spleen", "--policy", "random_error",
              "--first-click", "random", "--n-clicks", "4"]
    first = CliRunner().invoke(app, common + ["--seed", "1", "--out", str(tmp_path / "a")])
    replay = CliRunner().invoke(app, common + ["--seed", "2", "--out", str(tmp_path / "b"),
                                               "--replay", str(tmp_path / "a")])
    fresh = CliRunner().invoke(app, common + ["--seed", "2", "--out", str(tmp_path / "c")])
    assert first.exit_code == replay.exit_code == fresh.exit_code == 0, replay.output
    columns = ["case_id", "class_name", "click", "dsc", "nsd"]
    a, b, c = (pd.read_parquet(tmp_path / name / "metrics.parquet")[columns] for name in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    liver_only = CliRunner().invoke(app, common + ["--class", "liver", "--out", str(tmp_path / "d")])
    missing = CliRunner().invoke(app, common + ["--out", str(tmp_path / "e"), "--replay", str(tmp_path / "d")])
    assert liver_only.exit_code == 0 and missing.exit_code == 1 and "no stored clicks" in missing.output  # a failed case


def test_first_click_does_not_depend_on_the_next_click_policy(tmp_path):
    _write_set(tmp_path)
    first = {}
    for policy in ("ritm", "random_error"):
        out = tmp_path / policy
        result = CliRunner().invoke(app, [
            "clicks", "--model", "region_growing", "--modality", "CT", "--images", str(tmp_path / "images"), "--refs",
            str(tmp_path / "labels"), "--classes", str(tmp_path / "classes.json"), "--policy", policy,
            "--first-click", "random", "--n-clicks", "2", "--seed", "3", "--out", str(out)])
        assert result.exit_code == 0, result.output
        records = (out / "prompts").rglob("*.json")
        first[policy] = {p.relative_to(out): clicks_from_json(json.loads(p.read_text()))[0] for p in records}
    assert first["ritm"] == first["random_error"] and len(first["ritm"]) == 4


@pytest.mark.parametrize("command", ["clicks", "run", "evaluate"])
def test_the_modality_of_ad_hoc_folders_is_asked_for_by_every_command(tmp_path, command):
    """One rule for clicks, run and evaluate: an ad-hoc folder's modality is given, never assumed to be CT."""
    _write_set(tmp_path)
    sides = (["--pred", str(tmp_path / "labels"), "--ref", str(tmp_path / "labels"), "--dataset", "d"]
             if command == "evaluate" else ["--model", "region_growing", "--images", str(tmp_path / "images"),
                                            "--refs", str(tmp_path / "labels")])
    result = CliRunner().invoke(app, [command, *sides, "--classes", str(tmp_path / "classes.json"),
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "pass --modality CT, MRI or PET" in result.output, result.output


def test_plus_one_dice_is_segvols_hand_computed():
    from protocols.target_scores import plus_one_dice

    ref = np.zeros((4, 4, 4), bool)
    ref[0, 0, :4] = True  # 4 voxels
    pred = np.zeros_like(ref)
    pred[0, 0, 2:4] = True  # 2 voxels, both in the reference: 2*2 / (2 + 4 + 1)
    assert plus_one_dice(pred, ref) == pytest.approx(4 / 7)
    assert plus_one_dice(np.zeros_like(ref), np.zeros_like(ref)) == 0.0
    assert scorer(ref, (1.0,) * 3, dice="plus_one")(pred)[0] == pytest.approx(4 / 7)
