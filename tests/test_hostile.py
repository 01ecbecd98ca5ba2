"""Hostile inputs, as a matrix: each bad file, header, option or run folder is made on the fly, the command is run
as a user runs it, and the answer is checked: a one-line error naming the file and the problem (non-zero exit, no
traceback, nothing written for the bad case), or a correct number. Memory-hungry regressions run under an address
space limit in a subprocess, so they fail instead of eating the machine."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from processes import alive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench.cli.app import app
from bench.data.io import InputError, read_label_map, write_volume
from protocols.boxes import label_boxes

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])
PROJECT = Path(__file__).resolve().parents[1]


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _assert_clean_error(result, *needles, code=None):
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def _pair(tmp_path, pred=None, ref=None, name="case_0"):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 2) if ref is None else ref
    write_volume(tmp_path / "ref" / f"{name}.nii.gz", ref, AFFINE)
    write_volume(tmp_path / "pred" / f"{name}.nii.gz", ref if pred is None else pred, AFFINE)


def _evaluate(tmp_path, *extra, labels="1=liver"):
    return _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                   "--dataset", "d", "--modality", "CT", "--labels", labels, *extra)


def _save_nifti(path, array, affine, *, pixdim=None, sform_code=2, qform_code=0):
    image = nib.Nifti1Image(array, affine)
    image.header.set_sform(affine, code=sform_code)
    image.header.set_qform(affine, code=qform_code)
    if pixdim is not None:
        image.header["pixdim"][1:4] = pixdim
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


# Spacing from the header ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pixdim, affine_spacing, needle", [
    ((1.0, 1.0, 1.0), (1.0, 1.0, 3.0), "pixdim gives voxel size 1 x 1 x 1 mm but the affine"),
    ((0.0, 0.0, 0.0), (1.0, 1.0, 3.0), "pixdim gives voxel size 1 x 1 x 1 mm"),  # nibabel reads pixdim 0 as 1
    ((1e-3, 1e-3, 1e-3), (1e-3, 1e-3, 1e-3), "voxel size 0.001 x 0.001 x 0.001 mm is not plausible"),
])
def test_header_spacing_problems_are_refused(tmp_path, pixdim, affine_spacing, needle):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 2)
    write_volume(tmp_path / "ref" / "case_0.nii.gz", ref, np.diag([*affine_spacing, 1.0]))
    _save_nifti(tmp_path / "pred" / "case_0.nii.gz", ref, np.diag([*affine_spacing, 1.0]), pixdim=pixdim)
    result = _evaluate(tmp_path)
    _assert_clean_error(result, needle, "/case_0.nii.gz", code=1)
    assert not (tmp_path / "out" / "cases").exists() or not any((tmp_path / "out" / "cases").iterdir())


def test_spacing_comes_from_the_affine_the_check_uses(tmp_path):
    path = _save_nifti(tmp_path / "a.nii.gz", np.zeros((3, 3, 3), np.uint8), np.diag([0.5, 0.7, 3.0, 1.0]),
                       pixdim=(0.5, 0.7, 3.0))
    assert read_label_map(path).spacing == tuple(float(np.float32(s)) for s in (0.5, 0.7, 3.0))


def test_nan_in_the_affine_is_named(tmp_path):
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[0, 3] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.uint8), affine), str(path))
    with pytest.raises(InputError, match="non-finite|not plausible"):
        read_label_map(path)


# Label values -----------------------------------------------------------------------------------------------------

def _run_limited(args, limit_gb=4.0, timeout=240):
    """A `bench` command in a subprocess whose address space is capped (a runaway allocation fails fast)."""
    def cap():
        limit = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bench.cli.app", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=cap, timeout=timeout, cwd=PROJECT, env=env)


def test_huge_label_values_cost_memory_by_voxels_not_by_value(tmp_path):
    ref = np.zeros((20, 20, 6), np.int32)
    ref[2:8, 2:8, 1:4] = 2**31 - 1
    ref[12:15, 12:16, 2:5] = 2**21  # not in the class map: unscored, named
    _pair(tmp_path, ref=ref)
    result = _run_limited(["evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out",
                           tmp_path / "out", "--dataset", "d", "--modality", "CT", "--labels", "2147483647=big"])
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert table.dsc.tolist() == [1.0] and table.nsd.tolist() == [1.0]
    assert "label 2097152" in result.stderr


def test_label_boxes_renumbered_path_equals_the_direct_one(monkeypatch):
    rng = np.random.default_rng(3)
    labels = ((rng.random((9, 8, 7)) < 0.2) * rng.integers(1, 6, (9, 8, 7))).astype(np.int32)
    direct = label_boxes(labels)
    monkeypatch.setattr("protocols.boxes._MAX_BINS", 0)
    assert label_boxes(labels) == direct
    big = labels.astype(np.int64) * 10**9
    assert label_boxes(big) == {value * 10**9: box for value, box in direct.items()}


@pytest.mark.parametrize("values, needle", [
    (np.array([0.0, np.inf]), "non-finite values"),
    (np.array([0.0, np.nan]), "non-finite values"),
    (np.array([0.0, 50.5]), "non-integer values, e.g. 50.5"),
    (np.array([0.0, -3.0]), "negative values (min -3)"),
])
def test_bad_label_values_are_named_plainly(tmp_path, values, needle):
    ref = np.zeros((6, 6, 4), np.float32)
    ref.flat[: values.size] = values
    _pair(tmp_path, pred=ref, ref=np.pad(np.ones((2, 2, 2), np.uint8), 2))
    result = _evaluate(tmp_path)
    _assert_clean_error(result, needle, "pred/case_0.nii.gz", code=1)
    assert "np.float" not in result.output


# Options ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tolerance", ["inf", "nan", "-1"])
def test_impossible_tolerances_are_refused(tmp_path, tolerance):
    _pair(tmp_path)
    _assert_clean_error(_evaluate(tmp_path, "--tolerance", tolerance), "--tolerance", code=2)


@pytest.mark.parametrize("tolerance", ["1e3", "1e4"])
def test_huge_tolerances_score_in_bounded_memory(tmp_path, tolerance):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 3)
    _pair(tmp_path, pred=np.roll(ref, 2, axis=0), ref=ref)
    result = _run_limited(["evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out",
                           tmp_path / "out", "--dataset", "d", "--modality", "CT", "--labels", "1=liver",
                           "--tolerance", tolerance])
    assert result.returncode == 0, result.stderr
    assert pd.read_parquet(tmp_path / "out" / "metrics.parquet").nsd.tolist() == [1.0]


@pytest.mark.parametrize("option, value", [("--empty-policy", "maybe"), ("--grid", "mine"), ("--split", "val")])
def test_choices_are_checked(tmp_path, option, value):
    _pair(tmp_path)
    _assert_clean_error(_evaluate(tmp_path, option, value), value, code=2)


# Folders ----------------------------------------------------------------------------------------------------------

def test_stray_subfolder_and_extra_mask_files(tmp_path):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 2)
    write_volume(tmp_path / "ref" / "case_0.nii.gz", ref, AFFINE)
    write_volume(tmp_path / "pred" / "case_0" / "liver.nii.gz", ref == 1, AFFINE)
    write_volume(tmp_path / "pred" / "case_0" / "bladder.nii.gz", ref == 1, AFFINE)
    (tmp_path / "pred" / "logs").mkdir()
    (tmp_path / "pred" / "logs" / "run.log").write_text("hello")
    result = _evaluate(tmp_path)
    assert result.exit_code == 0, result.output
    assert "pred mask bladder.nii.gz (1 case)" in result.output


def test_out_inside_an_input_or_a_file_is_refused(tmp_path):
    _pair(tmp_path)
    inside = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out",
                     tmp_path / "pred" / "scores", "--dataset", "d", "--modality", "CT", "--labels", "1=liver")
    _assert_clean_error(inside, "inside the input folder", code=2)
    (tmp_path / "file").write_text("x")
    _assert_clean_error(_invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out",
                                tmp_path / "file", "--dataset", "d", "--modality", "CT", "--labels", "1=liver"),
                        "exists and is not a folder", code=2)


def test_rerunning_a_complete_run_writes_nothing(tmp_path):
    _pair(tmp_path)
    assert _evaluate(tmp_path).exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")}
    again = _evaluate(tmp_path)
    assert again.exit_code == 0 and "scored 0 case(s)" in again.output
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")} == before


@pytest.mark.slow
def test_pool_workers_die_with_a_killed_parent(tmp_path):
    for index in range(12):
        ref = np.zeros((120, 110, 40), np.uint8)
        ref[10 + index:80, 20:90, 5:35] = 1
        _pair(tmp_path, pred=np.roll(ref, 3, axis=0), ref=ref, name=f"case_{index:02d}")
    command = [sys.executable, "-m", "bench.cli.app", "evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref",
               "--out", tmp_path / "out", "--dataset", "d", "--modality", "CT", "--labels", "1=liver",
               "--workers", "2"]
    process = subprocess.Popen(list(map(str, command)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=PROJECT)
    children: set[int] = set()
    deadline = time.time() + 240
    def workers() -> set[int]:
        return {int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()}

    while time.time() < deadline and not list((tmp_path / "out").glob("cases/*.parquet")):
        children |= workers()
        time.sleep(0.05)
    children |= workers()  # a first case stored between two looks: 11 cases still keep both workers busy
    assert children, "the run started no pool workers"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children), "orphaned workers kept running"


# Stored rows ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, needle", [
    (lambda t: t.assign(dsc=5.0), "column dsc has a value outside [0, 1] (5)"),
    (lambda t: t.assign(nsd=-3.0), "column nsd has a value outside [0, 1] (-3)"),
    (lambda t: t.assign(dsc="0.9"), "column dsc must hold numbers"),
    (lambda t: t.drop(columns="case_id"), "missing column(s) case_id"),
    (lambda t: t.iloc[:0], "no rows"),
    (lambda t: t.assign(dsc=np.nan, nsd=np.nan), "every score is NaN"),
])
def test_tables_refuse_rows_that_cannot_be_results(tmp_path, change, needle):
    _pair(tmp_path)
    assert _evaluate(tmp_path).exit_code == 0
    metrics = tmp_path / "out" / "metrics.parquet"
    change(pd.read_parquet(metrics)).to_parquet(metrics)
    for command in (["tables", "--run", tmp_path / "out"], ["leaderboard", "--run", tmp_path / "out"]):
        _assert_clean_error(_invoke(*command), needle, "metrics.parquet")


def test_a_corrupt_metrics_file_is_named(tmp_path):
    _pair(tmp_path)
    assert _evaluate(tmp_path).exit_code == 0
    (tmp_path / "out" / "metrics.parquet").write_bytes(b"not parquet")
    _assert_clean_error(_invoke("tables", "--run", tmp_path / "out"), "not a readable Parquet file")


# Manifests --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, needle", [
    ("m.yaml", "- just\n- a list\n", "expected a mapping at the top level"),
    ("m.yaml", "cases: [one, two]\nmodality: CT\nclasses: {liver: 1}\n", "case 1 must be a mapping"),
    ("m.yaml", "cases: [{image: a.nii.gz, label: b.nii.gz}]\nmodality: CT\nclasses: {liver: six}\n",
     "class 'liver' has label 'six'"),
    ("m.yaml", "cases: [{image: 5, label: b.nii.gz}]\nmodality: CT\nclasses: {liver: 1}\n", "needs `image`"),
    ("m.json", "{not json", "cannot read"),
    ("m.jsonl", '{"image": "a.nii.gz", "dataset": "AMOS22_CT", "modality": "CT"}\n', "line 1: missing"),
    ("m.jsonl", '["a", "b"]\n', "line 1: expected a JSON object"),
])
def test_malformed_manifests_are_named(tmp_path, name, text, needle):
    (tmp_path / name).write_text(text)
    result = _invoke("datasets", "verify", "AMOS22_CT", "--root", tmp_path, "--manifest", tmp_path / name)
    _assert_clean_error(result, needle, code=2)


def test_a_missing_data_root_is_named(tmp_path):
    result = _invoke("datasets", "verify", "AMOS22_CT", "--root", tmp_path / "nope")
    _assert_clean_error(result, "data root not found", code=2)


# The top-level handler --------------------------------------------------------------------------------------------

def test_unexpected_errors_are_one_line_unless_debug(tmp_path, monkeypatch):
    _pair(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr("bench.cli.evaluate.resolve_references", broken)
    result = _evaluate(tmp_path)
    _assert_clean_error(result, "error: RuntimeError: something broke", "--debug", code=1)
    debug = CliRunner().invoke(app, ["--debug", "evaluate", "--pred", str(tmp_path / "pred"), "--out", "x"])
    assert isinstance(debug.exception, RuntimeError)


# Header fuzzing ---------------------------------------------------------------------------------------------------

_FIELDS = st.sampled_from(["dim", "pixdim", "sform_code", "qform_code", "datatype", "scl_slope", "scl_inter",
                           "srow_x", "quatern_b", "qoffset_x", "vox_offset", "bitpix"])
_VALUES = st.one_of(st.integers(-3, 70000), st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.sampled_from([0, 1, 2, 4, 8, 16, 64, 512, 1e-3, 1e9]))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(st.tuples(_FIELDS, st.integers(0, 7), _VALUES), min_size=1, max_size=3))
def test_mutated_headers_read_cleanly_or_fail_with_a_named_error(tmp_path, mutations):
    image = nib.Nifti1Image(np.pad(np.ones((3, 3, 2), np.uint8), 1), AFFINE)
    raw = bytearray(image.header.binaryblock)
    header = nib.Nifti1Header(bytes(raw))
    for field, index, value in mutations:
        try:
            target = header[field]
            if target.shape:
                target[index % target.shape[0]] = value
            else:
                header[field] = value
        except (ValueError, OverflowError, TypeError):
            continue
    path = tmp_path / "fuzz.nii"
    data = np.asarray(image.dataobj).tobytes()
    path.write_bytes(header.binaryblock + b"\0" * 4 + data)
    try:
        volume = read_label_map(path)
    except InputError as error:
        assert "fuzz.nii" in str(error) and "\n" not in str(error)
        return
    assert volume.array.ndim in (2, 3) and all(0.01 <= s <= 100 for s in volume.spacing)
    assert np.issubdtype(volume.array.dtype, np.integer)


def test_json_classes_true_is_not_label_one(tmp_path):
    _pair(tmp_path)
    (tmp_path / "classes.json").write_text(json.dumps({"liver": True}))
    result = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                     "--dataset", "d", "--modality", "CT", "--classes", tmp_path / "classes.json")
    _assert_clean_error(result, "class 'liver' has label True", code=2)


def test_clicks_on_a_class_absent_from_every_reference_say_so(tmp_path):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 2)
    write_volume(tmp_path / "refs" / "c1.nii.gz", ref, AFFINE)
    write_volume(tmp_path / "images" / "c1_0000.nii.gz", ref.astype(np.float32) * 100, AFFINE)
    command = ["clicks", "--model", "region_growing", "--modality", "CT", "--images", tmp_path / "images", "--refs",
               tmp_path / "refs",
               "--labels", "1=liver,2=spleen", "--class", "spleen", "--n-clicks", "2", "--out", tmp_path / "out"]
    for _ in range(2):  # the re-run answers the same way
        _assert_clean_error(_invoke(*command), "contains any requested class", code=1)


SCRIPT_AFTER_TORCH = '''
import torch
from bench.engine.executors import map_cases


def task(n):
    torch.ones(256, 256) @ torch.ones(256, 256)


if __name__ == "__main__":
    torch.ones(512, 512) @ torch.ones(512, 512)  # torch's OpenMP threads now run in this process
    print(sum(error is None for _, error in map_cases(task, list(range(4)), workers=2)))
'''


def test_pool_workers_run_torch_after_the_parent_did(tmp_path):
    """`bench run --workers 2` builds the model (torch) in the parent first; a forked worker then hung at its own
    first parallel torch operation. The pool must finish."""
    pytest.importorskip("torch")
    script = tmp_path / "after_torch.py"
    script.write_text(SCRIPT_AFTER_TORCH)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(PROJECT)})
    assert done.returncode == 0 and done.stdout.strip() == "4", done.stderr[-2000:]


SCRIPT_SLOW_AFTER_TORCH = '''
import sys
import time
from pathlib import Path

import torch
from bench.engine.executors import map_cases


def task(n):
    (Path(sys.argv[1]) / f"started_{n}").touch()
    time.sleep(120)


if __name__ == "__main__":
    torch.ones(8) + 1
    list(map_cases(task, list(range(4)), workers=2))
'''


@pytest.mark.slow
def test_spawned_pool_workers_die_with_a_killed_parent(tmp_path):
    """With torch loaded the pool spawns its workers (see the test above); they must still die with the parent."""
    pytest.importorskip("torch")
    script = tmp_path / "slow_after_torch.py"
    script.write_text(SCRIPT_SLOW_AFTER_TORCH)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    children: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and len(list(tmp_path.glob("started_*"))) < 2:  # both workers inside a task
        children |= {int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()}
        time.sleep(0.1)
    children |= {int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()}
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    assert len(children) >= 2 and not any(alive(pid) for pid in children), children
