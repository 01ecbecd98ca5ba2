"""`bench run`, `bench models` and `bench clicks --root` as a user runs them, on a catalog-style (nnU-Net raw)
dataset built from the real TotalSegmentator CT in ../shared."""

from __future__ import annotations

import json
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bench.engine.runner as runner
from bench.cli.app import app
from bench.data.io import read_label_map, write_volume
from bench.engine.presets import preset_names

KEEP = {"spleen": 1, "kidney_right": 2, "gallbladder": 4}


@pytest.fixture(scope="module")
def raw_dataset(ts_raw_dataset):
    """Dataset991_TSExample: the real CT as imagesTs/ts_0001_0000.nii.gz, three of its classes as labelsTs."""
    return ts_raw_dataset("Dataset991_TSExample", KEEP)


@pytest.fixture(autouse=True)
def fresh_models():
    runner.PROCESS_MODELS.clear()
    yield
    runner.PROCESS_MODELS.clear()


@pytest.mark.slow
@pytest.mark.parametrize("preset", preset_names())
@pytest.mark.parametrize("model", ["region_growing", "oracle"])
def test_bench_run_every_preset_end_to_end(raw_dataset, tmp_path, model, preset):
    out = tmp_path / "run"
    args = ["run", "--model", model, "--dataset", "TSExample", "--root", str(raw_dataset), "--protocol", preset,
            "--class", "gallbladder", "--n-clicks", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    if model == "region_growing" and preset == "sat":  # text prompts only: refused, with the reason
        assert result.exit_code == 2 and "takes none of protocol 'sat''s prompts (text)" in result.output
        assert "Traceback" not in result.output
        return
    assert result.exit_code == 0, result.output
    assert "ran 1 case(s), 0 already stored" in result.output and "[1/1] ts_0001" in result.output
    rows = pd.read_parquet(out / "metrics.parquet")
    assert set(rows.class_name) == {"gallbladder"} and set(rows.protocol) == {preset}
    assert rows.dsc.between(0, 1).all() and set(rows.dataset) == {"TSExample"}
    reference = nib.load(raw_dataset / "labelsTs" / "ts_0001.nii.gz")
    mask = nib.load(out / "predictions" / "ts_0001" / "gallbladder.nii.gz")
    assert mask.shape == reference.shape and np.allclose(mask.affine, reference.affine)
    assert CliRunner().invoke(app, args).output.count("ran 0 case(s), 1 already stored") == 1


def test_bench_run_clear_errors(raw_dataset, tmp_path):
    base = ["run", "--root", str(raw_dataset), "--out", str(tmp_path / "o")]
    for extra, message in [(["--model", "sam9"], "unknown model 'sam9'"),
                           (["--model", "oracle", "--protocol", "sam-med4d"], "unknown protocol 'sam-med4d'"),
                           (["--model", "oracle", "--class", "lung"], "--class lung"),
                           (["--model", "sat-nano"], "sat-nano: checkpoint (hf://zzh99/SAT/Nano/nano.pth) is needed"),
                           (["--model", "oracle", "--model-args", "shift"], "expected key=value")]:
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output


def test_bench_models_list_show_verify(tmp_path):
    listing = CliRunner().invoke(app, ["models", "list"])
    assert listing.exit_code == 0 and "region_growing" in listing.output and "sam-med3d-turbo" in listing.output
    shown = CliRunner().invoke(app, ["models", "show", "oracle"])
    assert shown.exit_code == 0 and "reference" in shown.output and "parameters: 0" in shown.output
    missing = CliRunner().invoke(app, ["models", "verify", "oracle", "--checkpoint", str(tmp_path / "x.pth")])
    assert missing.exit_code == 2 and "no weights to load" in missing.output


def test_bench_clicks_takes_cases_and_classes_from_a_catalog_dataset(raw_dataset, tmp_path):
    out = tmp_path / "clicks"
    result = CliRunner().invoke(app, ["clicks", "--model", "oracle", "--root", str(raw_dataset), "--n-clicks", "2",
                                      "--class", "spleen", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out / "metrics.parquet")
    assert set(rows.class_name) == {"spleen"} and len(rows) == 2
    report = CliRunner().invoke(app, ["report", "--run", str(out), "--out", str(tmp_path / "report"), "--n-boot", "5"])
    assert report.exit_code == 0, report.output  # the run's tolerance, read from its protocol (was "?")
    page = (tmp_path / "report" / "index.html").read_text()
    assert "NSD tolerance 1.0 mm" in page and "NSD tolerance ?" not in page
    both = CliRunner().invoke(app, ["clicks", "--model", "oracle", "--root", str(raw_dataset), "--images",
                                    str(raw_dataset), "--out", str(tmp_path / "x")])
    assert both.exit_code == 2 and "not both" in both.output


@pytest.mark.slow
def test_bench_clicks_under_a_preset_gives_bench_runs_rows(raw_dataset, tmp_path):
    """`bench clicks --protocol P` is `bench run --protocol P` without the masks: same clicks, same scores."""
    common = ["--model", "region_growing", "--root", str(raw_dataset), "--protocol", "sam-med3d-paper",
              "--n-clicks", "2", "--class", "gallbladder", "--seed", "5"]
    clicked = CliRunner().invoke(app, ["clicks", *common, "--out", str(tmp_path / "c")])
    assert clicked.exit_code == 0, clicked.output
    assert "under sam-med3d-paper" in clicked.output and "max DSC over clicks" in clicked.output
    assert "NSD tolerance 1 voxel of the working space" in clicked.output
    ran = CliRunner().invoke(app, ["run", *common, "--out", str(tmp_path / "r")])
    assert ran.exit_code == 0, ran.output
    columns = ["case_id", "class_name", "click", "dsc", "nsd", "pred_voxels", "protocol", "prompt_policy", "seed"]
    c, r = (pd.read_parquet(tmp_path / name / "metrics.parquet")[columns] for name in ("c", "r"))
    pd.testing.assert_frame_equal(c, r)
    assert c.click.tolist() == [1, 2] and set(c.protocol) == {"sam-med3d-paper"} and set(c.seed) == {5}
    assert c.prompt_policy.iloc[0] == "ritm@2,random_error@3" and not (tmp_path / "c" / "predictions").exists()


def test_bench_clicks_protocol_errors_are_one_line(raw_dataset, tmp_path):
    base = ["clicks", "--model", "region_growing", "--root", str(raw_dataset), "--out", str(tmp_path / "o")]
    for extra, message in [(["--protocol", "sam-med2d"], "--protocol sam-med2d gives no clicks (prompts: boxes)"),
                           (["--protocol", "harness", "--policy", "random_error", "--tolerance", "2"],
                            "drop --policy, --tolerance"),
                           (["--protocol", "sam-med4d"], "unknown protocol 'sam-med4d'"),
                           (["--model-args", "x"], "expected key=value")]:
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_bench_run_on_a_catalog_dataset_by_name(shared_dir, tmp_path):
    """`--dataset AMOS22_CT --root DIR`: SAT's test split, the catalog's classes (derived `kidney` = left + right)
    and modality, on the real AMOS label (the image is made from it: the label is what the catalog path reads)."""
    folder = tmp_path / "Dataset003_AMOS22CT"
    (folder / "labelsTs").mkdir(parents=True)
    (folder / "imagesTs").mkdir()
    (folder / "dataset.json").write_text((shared_dir / "satds" / "nnunet" / "Dataset003_AMOS22CT" /
                                          "dataset.json").read_text())
    label = read_label_map(shared_dir / "data" / "amos" / "amos_0013_label.nii.gz")
    write_volume(folder / "labelsTs" / "amos_0013.nii.gz", label.array, label.affine)
    write_volume(folder / "imagesTs" / "amos_0013_0000.nii.gz", 40.0 * label.array.astype(np.float32), label.affine)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--model", "oracle", "--dataset", "AMOS22_CT", "--root", str(folder),
                                      "--class", "kidney", "--n-clicks", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out / "metrics.parquet")
    assert set(rows.class_name) == {"kidney"} and set(rows.dataset) == {"AMOS22_CT"} and set(rows.modality) == {"CT"}
    assert rows.ref_voxels.iloc[0] == int(np.isin(label.array, (2, 3)).sum())


def test_device_auto_is_cpu_without_a_declared_or_visible_gpu():
    from bench.engine.runner import resolve_device

    assert resolve_device("auto", frozenset({"cpu"})) == "cpu" and resolve_device("cpu", frozenset({"cpu"})) == "cpu"
    with pytest.raises(ValueError, match="--device 'tpu'"):
        resolve_device("tpu", frozenset({"cpu"}))


def test_a_broken_case_fails_alone_and_the_run_resumes(raw_dataset, tmp_path):
    root = tmp_path / "Dataset992_Broken"
    (root / "imagesTs").mkdir(parents=True)
    (root / "labelsTs").mkdir()
    for name in ("dataset.json", "imagesTs/ts_0001_0000.nii.gz", "labelsTs/ts_0001.nii.gz"):
        (root / name).write_bytes((raw_dataset / name).read_bytes())
    label = read_label_map(raw_dataset / "labelsTs" / "ts_0001.nii.gz")
    write_volume(root / "labelsTs" / "ts_0002.nii.gz", label.array[:50], label.affine)  # not the image's grid
    (root / "imagesTs" / "ts_0002_0000.nii.gz").write_bytes((raw_dataset / "imagesTs/ts_0001_0000.nii.gz").read_bytes())
    args = ["run", "--model", "oracle", "--root", str(root), "--class", "spleen", "--n-clicks", "1",
            "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "error in case ts_0002" in result.output and "Traceback" not in result.output
    assert (tmp_path / "o" / "predictions" / "ts_0001" / "spleen.nii.gz").is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "[1/1] ts_0002" not in again.output and "error in case ts_0002" in again.output


def test_a_model_with_a_network_and_no_checkpoint_is_named_untrained(raw_dataset, tmp_path, network_model):
    """A researcher who forgets --checkpoint gets scores of random weights: the run says so (a model without a
    network, e.g. region growing, has no weights to forget)."""
    for model, noted in (("network-growing", True), ("region_growing", False)):
        for command in ("clicks", "run"):
            result = CliRunner().invoke(app, [command, "--model", model, "--root", str(raw_dataset), "--class",
                                              "spleen", "--n-clicks", "1", "--out", str(tmp_path / command / model)])
            assert result.exit_code == 0, result.output
            assert ("runs with random weights" in result.output) == noted, result.output
            config = json.loads((tmp_path / command / model / "run.json").read_text())
            assert config["untrained"] is noted
            assert config["command_line"].startswith(f"bench {command} --model {model} ")
            assert 0 < config["summary"]["dsc"] <= 1 and config["summary"]["classes"] == 1
    table = CliRunner().invoke(app, ["tables", "--run", str(tmp_path / "run" / "network-growing"),
                                     "--run", str(tmp_path / "run" / "region_growing")])
    assert "network-growing (untrained)" in table.output, table.output


def test_a_cuda_out_of_memory_fails_its_case_alone_and_the_run_goes_on(raw_dataset, tmp_path, monkeypatch):
    """A case too large for the GPU is that case's failure (`bench.engine.driver`'s per-case errors): the other
    case is run and stored, the command names the case and exits 1, with no traceback."""
    root = tmp_path / "Dataset993_TwoCases"
    (root / "imagesTs").mkdir(parents=True)
    (root / "labelsTs").mkdir()
    (root / "dataset.json").write_bytes((raw_dataset / "dataset.json").read_bytes())
    for case in ("ts_0001", "ts_0002"):
        (root / f"imagesTs/{case}_0000.nii.gz").write_bytes((raw_dataset / "imagesTs/ts_0001_0000.nii.gz").read_bytes())
        (root / f"labelsTs/{case}.nii.gz").write_bytes((raw_dataset / "labelsTs/ts_0001.nii.gz").read_bytes())
    OutOfMemoryError = type("OutOfMemoryError", (RuntimeError,), {"__module__": "torch.cuda"})  # torch's, unimported
    real = runner.run_case

    def out_of_memory_on_the_second(source, spec):
        if source.case_id == "ts_0002":
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(source, spec)

    monkeypatch.setattr(runner, "run_case", out_of_memory_on_the_second)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["run", "--model", "oracle", "--root", str(root), "--class", "spleen",
                                      "--protocol", "harness", "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "error in case ts_0002: OutOfMemoryError: CUDA out of memory" in result.output
    assert (out / "predictions" / "ts_0001" / "spleen.nii.gz").is_file()
    assert not (out / "predictions" / "ts_0002").exists()


def test_evaluate_and_run_resolve_one_catalog_style_root_alike(raw_dataset, tmp_path):
    """One source resolution (issue 21): `bench evaluate --root` takes a catalog-style folder that the catalog does
    not name, as `bench run --root` does, with the same cases, classes and dataset; the run's predictions scored
    by `bench evaluate` give the run's own DSC and NSD (harness protocol: native grid, 1 mm)."""
    run = CliRunner().invoke(app, ["run", "--model", "oracle", "--dataset", "TSExample", "--root", str(raw_dataset),
                                   "--protocol", "harness", "--n-clicks", "1", "--out", str(tmp_path / "run")])
    assert run.exit_code == 0, run.output
    scored = CliRunner().invoke(app, ["evaluate", "--dataset", "TSExample", "--root", str(raw_dataset), "--pred",
                                      str(tmp_path / "run" / "predictions"), "--out", str(tmp_path / "eval")])
    assert scored.exit_code == 0, scored.output
    ran = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    ran = ran.sort_values("click").drop_duplicates(["case_id", "class_name"], keep="last")
    evaluated = pd.read_parquet(tmp_path / "eval" / "metrics.parquet")
    keys = ["case_id", "class_name", "dataset", "modality"]
    both = ran.merge(evaluated, on=keys, suffixes=("_run", "_eval"))
    assert len(both) == len(ran) == len(evaluated) == len(KEEP)
    assert np.allclose(both.dsc_run, both.dsc_eval, atol=1e-12) and np.allclose(both.nsd_run, both.nsd_eval, atol=1e-12)


def test_a_catalog_style_root_of_an_unnamed_dataset_names_its_rows(raw_dataset, tmp_path):
    """A folder the catalog does not name, with no --dataset: its dataset.json `name`, else the folder's name
    (nnU-Net's `Dataset991_TSExample`), never an empty dataset column (found by running it as a user would)."""
    run = CliRunner().invoke(app, ["run", "--model", "oracle", "--root", str(raw_dataset), "--protocol", "harness",
                                   "--n-clicks", "1", "--out", str(tmp_path / "run")])
    assert run.exit_code == 0, run.output
    scored = CliRunner().invoke(app, ["evaluate", "--root", str(raw_dataset), "--pred",
                                      str(tmp_path / "run" / "predictions"), "--out", str(tmp_path / "eval")])
    assert scored.exit_code == 0, scored.output
    for folder in ("run", "eval"):
        rows = pd.read_parquet(tmp_path / folder / "metrics.parquet")
        assert set(rows.dataset) == {raw_dataset.name}, folder
    assert f"predictions on {raw_dataset.name} (CT)" in scored.output


@pytest.mark.parametrize("command", ["run", "clicks"])
def test_ref_is_spelled_as_bench_evaluate_spells_it(tmp_path, command):
    """`--ref` (bench evaluate's name) is `--refs`: the same folder reaches the same check."""
    (tmp_path / "images").mkdir()
    outputs = [CliRunner().invoke(app, [command, "--model", "oracle", "--images", str(tmp_path / "images"), option,
                                        str(tmp_path / "labels"), "--labels", "1=liver", "--modality", "CT",
                                        "--out", str(tmp_path / "out")]) for option in ("--ref", "--refs")]
    assert [o.exit_code for o in outputs] == [2, 2] and outputs[0].output == outputs[1].output, outputs[0].output
    assert "labels" in outputs[0].output and "No such option" not in outputs[0].output
