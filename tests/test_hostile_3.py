"""Hostile inputs, round three (issue 27): nothing written outside `--out`, no case lost to a duplicate id, no
inflation bomb read whole, no silent wrong number, workers that die with their parent, and one-line messages.
Each input is made on the fly and the command run as a user runs it."""

import gzip
import json
import os
import re
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
from typer.testing import CliRunner

from bench.cli.app import app
from bench.data.io import InputError, read_label_map, write_volume

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])
PROJECT = Path(__file__).resolve().parents[1]


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _assert_clean_error(result, *needles, code=2):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error")]) == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output


def _run_limited(args, limit_gb=1.5, timeout=120):
    """A `bench` command in a subprocess whose address space is capped (a runaway allocation fails fast)."""
    def cap():
        limit = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT)}
    return subprocess.run([sys.executable, "-m", "bench.cli.app", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=cap, timeout=timeout, cwd=PROJECT, env=env)


def _pair(tmp_path, ref=None, name="case_0"):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 2) if ref is None else ref
    write_volume(tmp_path / "ref" / f"{name}.nii.gz", ref, AFFINE)
    write_volume(tmp_path / "pred" / f"{name}.nii.gz", ref, AFFINE)


def _evaluate(tmp_path, *extra, labels="1=liver"):
    return _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                   "--dataset", "d", "--modality", "CT", "--labels", labels, *extra)


# Volumes: shape, size announced by the header, data files --------------------------------------------------------

def _nifti_bytes(array, affine=AFFINE) -> bytes:
    image = nib.Nifti1Image(array, affine)
    return image.header.binaryblock + b"\0" * 4 + np.asarray(array).tobytes(order="F")


def test_a_header_with_no_voxels_is_an_input_error(tmp_path):
    header = nib.Nifti1Header(_nifti_bytes(np.zeros((4, 4, 3), np.uint8))[:348])
    header["dim"][1] = 0
    for name in ("empty.nii", "empty.nii.gz"):
        data = header.binaryblock + b"\0" * 4
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        with pytest.raises(InputError, match=rf"{name}: .*no voxels \(0 x 4 x 3\)"):
            read_label_map(tmp_path / name)


def test_a_zero_voxel_pair_is_not_scored_as_perfect(tmp_path):
    header = nib.Nifti1Header(_nifti_bytes(np.zeros((4, 4, 3), np.uint8))[:348])
    header["dim"][1] = 0
    for side in ("ref", "pred"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "case_0.nii.gz").write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    result = _evaluate(tmp_path)
    assert result.exit_code != 0 and "no voxels" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("shape, accepted", [((6, 5, 4, 1), True), ((6, 5, 4, 2), False), ((6, 5, 4, 1, 1), False),
                                             ((6, 5, 4, 1, 3), False)])
def test_four_and_five_dimensional_files_say_what_is_supported(tmp_path, shape, accepted):
    array = np.zeros(shape, np.uint8)
    array[1:3, 1:3, 1:3] = 1
    path = tmp_path / "multi.nii.gz"
    nib.save(nib.Nifti1Image(array, AFFINE), str(path))
    if accepted:
        volume = read_label_map(path)
        assert volume.array.shape == shape[:3] and volume.array.sum() == 8
        assert volume.spacing == pytest.approx((0.8, 0.8, 2.5))
        return
    with pytest.raises(InputError) as error:
        read_label_map(path)
    message = str(error.value)
    assert "multi.nii.gz" in message and f"{len(shape)}-D" in message and " x ".join(map(str, shape)) in message
    assert "3-D, or 4-D with one channel" in message and "broadcast" not in message and "inconsistent" not in message


def test_a_4d_image_with_one_channel_scores(tmp_path):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 2)
    write_volume(tmp_path / "ref" / "case_0.nii.gz", ref, AFFINE)
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(ref[..., None], AFFINE), str(tmp_path / "pred" / "case_0.nii.gz"))
    result = _evaluate(tmp_path)
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "out" / "metrics.parquet").dsc.tolist() == [1.0]


def _bomb(path: Path, announced: tuple[int, ...], members: int) -> Path:
    """A .nii.gz whose header announces `announced` uint8 voxels, followed by `members` gzip members of 16 MiB of
    zeros each (a few MB on disk)."""
    header = nib.Nifti1Image(np.zeros(announced, np.uint8), AFFINE).header.binaryblock + b"\0" * 4
    zeros = gzip.compress(b"\0" * 2**24, compresslevel=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header) + zeros * members)
    return path


def test_an_inflation_bomb_is_refused_in_bounded_memory(tmp_path):
    """A 3 MB stream of 3 GiB whose header announces 122 x 101 x 30 voxels: read no further than announced."""
    for side in ("ref", "pred"):
        _bomb(tmp_path / side / "case_0.nii.gz", (122, 101, 30), members=192)
    result = _run_limited(["evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out",
                           tmp_path / "out", "--dataset", "d", "--modality", "CT", "--labels", "1=liver"])
    assert result.returncode != 0 and "MemoryError" not in result.stderr, result.stderr[-2000:]
    assert "case_0.nii.gz" in result.stderr and "longer than its header announces" in result.stderr, result.stderr
    assert not (tmp_path / "out" / "metrics.parquet").exists()


@pytest.mark.parametrize("cut, needle", [(-1, "longer than its header announces"), (+1, "shorter than")])
def test_a_stream_of_the_wrong_length_is_refused(tmp_path, cut, needle):
    array = np.zeros((6, 5, 4), np.uint8)
    data = _nifti_bytes(array)
    header = nib.Nifti1Header(data[:348])
    header["dim"][3] = 4 + cut  # announces one slice less (longer stream) or one more (shorter stream)
    (tmp_path / "v.nii.gz").write_bytes(gzip.compress(header.binaryblock + data[348:]))
    with pytest.raises(InputError, match=f"v.nii.gz: .*{needle}"):
        read_label_map(tmp_path / "v.nii.gz")


def test_an_announcement_no_gzip_stream_can_hold_is_refused_before_inflating(tmp_path):
    header = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), AFFINE).header
    header.set_data_shape((4096, 4096, 1280))  # 20 GiB from a file of a few dozen bytes
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    with pytest.raises(InputError, match="huge.nii.gz: the header announces 20 GiB"):
        read_label_map(path)


def _mhd(path: Path, data_file: str, shape=(6, 5, 4), element="MET_UCHAR") -> Path:
    path.write_text(f"ObjectType = Image\nNDims = 3\nDimSize = {' '.join(map(str, shape))}\nElementType = {element}\n"
                    f"ElementSpacing = 1 1 1\nElementDataFile = {data_file}\n")
    return path


@pytest.mark.parametrize("target, needle", [
    ("/dev/zero", "its data file /dev/zero is not a regular file"),
    ("short.raw", "its data file short.raw holds 100 bytes, the header announces 120 (6 x 5 x 4 voxels)"),
    ("long.raw", "its data file long.raw holds 500 bytes, the header announces 120"),
    ("absent.raw", "absent.raw is not found"),
])
def test_detached_data_must_be_a_regular_file_of_the_announced_size(tmp_path, target, needle):
    (tmp_path / "short.raw").write_bytes(b"\0" * 100)
    (tmp_path / "long.raw").write_bytes(b"\0" * 500)
    with pytest.raises(InputError, match=re.escape(needle)):
        read_label_map(_mhd(tmp_path / "v.mhd", target))


def test_a_tiny_header_pointing_at_dev_zero_is_refused_in_bounded_memory(tmp_path):
    """A 140-byte .mhd announcing 8 GB from /dev/zero took 7.85 GB before."""
    for side in ("ref", "pred"):
        (tmp_path / side).mkdir()
        _mhd(tmp_path / side / "case_0.mhd", "/dev/zero", shape=(2000, 2000, 2000))
    result = _run_limited(["evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out",
                           tmp_path / "out", "--dataset", "d", "--modality", "CT", "--labels", "1=liver"])
    assert result.returncode != 0 and "MemoryError" not in result.stderr, result.stderr[-2000:]
    assert "case_0.mhd: its data file /dev/zero is not a regular file" in result.stderr, result.stderr


def test_detached_nrrd_data_must_be_a_regular_file(tmp_path):
    path = tmp_path / "v.nhdr"
    path.write_text("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 6 5 4\nencoding: raw\ndata file: /dev/zero\n")
    with pytest.raises(InputError, match="v.nhdr: its data file /dev/zero is not a regular file"):
        read_label_map(path)
    (tmp_path / "v.raw").write_bytes(bytes(120))
    path.write_text("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 6 5 4\nencoding: raw\ndata file: v.raw\n")
    assert read_label_map(path).array.shape == (6, 5, 4)


def test_a_good_detached_mhd_still_reads(tmp_path):
    (tmp_path / "v.raw").write_bytes(bytes(range(120)))
    volume = read_label_map(_mhd(tmp_path / "v.mhd", "v.raw"))
    assert volume.array.shape == (6, 5, 4) and int(volume.array[5, 4, 3]) == 119


def _manifest(tmp_path, cases, name="m.yaml", **top):
    import yaml
    path = tmp_path / name
    body = {"modality": "CT", "classes": {"liver": 1}, **top, "cases": cases}
    path.write_text(json.dumps(body) if name.endswith(".json") else yaml.safe_dump(body))
    return path


# Class maps -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", [("--labels", "1=liver,1=spleen"), ("--classes", {"1": "liver", "spleen": 1}),
                                           ("--classes", {"liver": [2, 3], "kidney": [3, 2]})])
def test_a_label_value_claimed_by_two_classes_is_refused(tmp_path, option, value):
    _pair(tmp_path)
    if option == "--classes":
        (tmp_path / "classes.json").write_text(json.dumps(value))
        value = tmp_path / "classes.json"
    result = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / "out",
                     "--dataset", "d", "--modality", "CT", option, value)
    _assert_clean_error(result, "claimed by both", code=2)
    assert not (tmp_path / "out" / "metrics.parquet").exists()


def test_a_union_that_shares_values_on_purpose_still_scores(tmp_path):
    ref = np.zeros((10, 10, 6), np.uint8)
    ref[1:4, 1:4, 1:4], ref[6:9, 6:9, 1:4] = 2, 3
    _pair(tmp_path, ref=ref)
    result = _evaluate(tmp_path, labels="2=left kidney,3=right kidney,2+3=kidney")
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert sorted(rows.class_name) == ["kidney", "left kidney", "right kidney"]
    assert rows.set_index("class_name").ref_voxels.to_dict() == {"kidney": 54, "left kidney": 27, "right kidney": 27}


# Manifests: a case id given twice ---------------------------------------------------------------------------------

def _manifest_case(tmp_path, name="a"):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 2)
    write_volume(tmp_path / f"{name}_img.nii.gz", ref.astype(np.float32) * 100, AFFINE)
    write_volume(tmp_path / f"{name}_lab.nii.gz", ref, AFFINE)
    return {"image": f"{name}_img.nii.gz", "label": f"{name}_lab.nii.gz"}


def _duplicate_manifest(tmp_path, kind):
    first, second = _manifest_case(tmp_path, "a"), _manifest_case(tmp_path, "b")
    if kind == "jsonl":
        records = [{**case, "mask": case.pop("label"), "dataset": "AMOS22_CT", "modality": "CT", "patient_id": "p1"}
                   for case in (first, second)]
        path = tmp_path / "m.jsonl"
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
        return path, ("line 1", "line 2")
    return _manifest(tmp_path, [{**first, "id": "p1"}, {**second, "id": "p1"}], name=f"m.{kind}"), ("case 1",
                                                                                                     "case 2")


@pytest.mark.parametrize("kind", ["yaml", "json", "jsonl"])
@pytest.mark.parametrize("command", ["evaluate", "run", "clicks", "verify"])
def test_a_case_id_given_twice_in_a_manifest_is_refused_naming_both(tmp_path, kind, command):
    manifest, entries = _duplicate_manifest(tmp_path, kind)
    common = ["--root", tmp_path, "--manifest", manifest]
    args = {"evaluate": ["evaluate", "--pred", tmp_path / "pred", "--dataset", "AMOS22_CT", "--out", tmp_path / "o"],
            "run": ["run", "--model", "oracle", "--out", tmp_path / "o"],
            "clicks": ["clicks", "--model", "region_growing", "--n-clicks", "1", "--out", tmp_path / "o"],
            "verify": ["datasets", "verify", "AMOS22_CT"]}[command]
    (tmp_path / "pred").mkdir()
    result = _invoke(*args, *common)
    _assert_clean_error(result, "case id 'p1' is given twice", *entries, code=2)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.parquet"))


def test_datasets_verify_checks_the_manifests_own_classes(tmp_path):
    manifest = _manifest(tmp_path, [_manifest_case(tmp_path)])
    result = _invoke("datasets", "verify", "AMOS22_CT", "--root", tmp_path, "--manifest", manifest)
    assert result.exit_code == 0, result.output
    assert "1 case(s) checked, 0 problem(s)" in result.output
    absent = _manifest(tmp_path, [_manifest_case(tmp_path)], name="m2.yaml", classes={"liver": 1, "spleen": 2})
    result = _invoke("datasets", "verify", "AMOS22_CT", "--root", tmp_path, "--manifest", absent)
    assert result.exit_code == 1 and "class 'spleen' is absent from every case" in result.output
    assert "aorta" not in result.output


# Nothing written outside --out ------------------------------------------------------------------------------------

def _files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file() or path.is_symlink()}


def test_hostile_case_ids_class_names_and_run_names_write_nothing_outside_out(tmp_path):
    data = tmp_path / "deep" / "er" / "data"
    data.mkdir(parents=True)
    cases = [{**_manifest_case(data, name), "id": case_id}
             for name, case_id in (("a", "../../evil"), ("b", str(tmp_path / "abs_evil")), ("c", ".."),
                                   ("d", "ok/../../x"))]
    manifest = _manifest(data, cases, classes={"../../../evilcls": 1})
    out = tmp_path / "deep" / "er" / "out"
    before = _files(tmp_path)
    result = _invoke("run", "--model", "oracle", "--root", data, "--manifest", manifest, "--out", out,
                     "--run", "../../evilrun")
    assert result.exit_code == 0, result.output
    outside = {path for path in _files(tmp_path) - before if not path.is_relative_to(out)}
    assert not outside, outside
    assert len(list((out / "cases").glob("*.parquet"))) == 4
    predictions = sorted(path.relative_to(out / "predictions") for path in (out / "predictions").rglob("*.nii.gz"))
    assert len(predictions) == 4 and all(len(path.parts) == 2 for path in predictions), predictions
    assert not any(part.startswith(".") for path in predictions for part in path.parts), predictions
    rows = pd.read_parquet(out / "metrics.parquet")
    assert set(rows.case_id) == {case["id"] for case in cases} and set(rows.class_name) == {"../../../evilcls"}


def test_readable_names_keep_their_prediction_paths(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    manifest = _manifest(data, [{**_manifest_case(data), "id": "ts_0001"}], classes={"left kidney": 1})
    result = _invoke("run", "--model", "oracle", "--root", data, "--manifest", manifest, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "predictions" / "ts_0001" / "left kidney.nii.gz").is_file()


def test_names_that_only_differ_in_case_are_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    manifest = _manifest(data, [{**_manifest_case(data, "a"), "id": "Case1"}, {**_manifest_case(data, "b"),
                                                                                 "id": "case1"}])
    result = _invoke("run", "--model", "oracle", "--root", data, "--manifest", manifest, "--out", tmp_path / "o")
    _assert_clean_error(result, "'Case1' and 'case1'", code=2)


# Reports and stored rows ------------------------------------------------------------------------------------------

def _scored_run(tmp_path, run="model|a", class_name="liver|left", out="out"):
    _pair(tmp_path)
    (tmp_path / "classes.json").write_text(json.dumps({class_name: 1}))
    result = _invoke("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out", tmp_path / out,
                     "--dataset", "d", "--modality", "CT", "--classes", tmp_path / "classes.json", "--run", run)
    assert result.exit_code == 0, result.output
    return tmp_path / out


def _markdown_rows(text: str) -> list[list[str]]:
    import re as regex
    return [regex.split(r"(?<!\\)\|", line.strip())[1:-1] for line in text.splitlines() if line.startswith("|")]


def test_a_pipe_in_a_class_or_run_name_is_escaped_in_markdown(tmp_path):
    out = _scored_run(tmp_path, out="out|b")
    for args in (["tables", "--run", out, "--by", "class"], ["compare", out, out, "--n-boot", "20"],
                 ["compare", out, out, "--per-class"]):
        result = _invoke(*args)
        assert result.exit_code == 0, result.output
        rows = _markdown_rows(result.stdout)
        assert rows and len({len(row) for row in rows}) == 1, result.stdout
        assert "liver\\|left" in result.stdout or "model\\|a" in result.stdout or "out\\|b" in result.stdout


@pytest.mark.parametrize("change, needle", [
    (lambda t: t.assign(case_id=None), "column case_id has a missing value"),
    (lambda t: t.assign(class_name=None), "column class_name has a missing value"),
    (lambda t: t.assign(ref_voxels=-5), "column ref_voxels has a negative value (-5)"),
    (lambda t: t.assign(pred_voxels=2.5), "column pred_voxels has a non-integer value (2.5)"),
])
def test_tables_and_export_refuse_hand_edited_ids_and_counts(tmp_path, change, needle):
    out = _scored_run(tmp_path, run="r", class_name="liver")
    metrics = out / "metrics.parquet"
    change(pd.read_parquet(metrics)).to_parquet(metrics)
    for command in (["tables", "--run", out], ["export", "--run", out, "--format", "csv"]):
        _assert_clean_error(_invoke(*command), needle, "metrics.parquet", code=2)


def test_a_corrupt_case_file_is_named_with_the_way_out(tmp_path):
    out = _scored_run(tmp_path, run="r", class_name="liver")
    (out / "metrics.parquet").unlink()
    case_file = next((out / "cases").glob("*.parquet"))
    case_file.write_bytes(b"PAR1 garbage")
    result = _evaluate(tmp_path, "--run", "r", labels="1=liver")
    _assert_clean_error(result, case_file.name, "delete it", "--overwrite", code=2)
    assert "ArrowInvalid" not in result.output
    _assert_clean_error(_invoke("tables", "--run", out), case_file.name, code=2)


def test_report_out_that_is_a_file_is_refused(tmp_path):
    out = _scored_run(tmp_path, run="r", class_name="liver")
    (tmp_path / "report.html").write_text("mine")
    result = _invoke("report", "--run", out, "--out", tmp_path / "report.html", "--pictures", "0", "--n-boot", "10")
    _assert_clean_error(result, "report.html", "not a folder", code=2)
    assert (tmp_path / "report.html").read_text() == "mine"


def test_clicks_name_the_classes_asked_for_and_not_found(tmp_path):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 2)
    write_volume(tmp_path / "refs" / "c1.nii.gz", ref, AFFINE)
    write_volume(tmp_path / "images" / "c1_0000.nii.gz", ref.astype(np.float32) * 100, AFFINE)
    result = _invoke("clicks", "--model", "region_growing", "--images", tmp_path / "images", "--refs",
                     tmp_path / "refs", "--labels", "1=liver,2=spleen,3=aorta", "--class", "spleen", "--class",
                     "aorta", "--n-clicks", "2", "--modality", "CT", "--out", tmp_path / "out")
    _assert_clean_error(result, "contains any requested class (spleen, aorta)", code=1)


# Checkpoints ------------------------------------------------------------------------------------------------------

def _folders(tmp_path):
    ref = np.pad(np.ones((4, 4, 3), np.uint8), 2)
    write_volume(tmp_path / "refs" / "c1.nii.gz", ref, AFFINE)
    write_volume(tmp_path / "images" / "c1_0000.nii.gz", ref.astype(np.float32) * 100, AFFINE)
    return ["--images", tmp_path / "images", "--refs", tmp_path / "refs", "--labels", "1=liver", "--modality", "CT"]


def test_an_empty_checkpoint_is_one_line(tmp_path, network_model):
    (tmp_path / "empty.pth").write_bytes(b"")
    for trust in ([], ["--trust-checkpoint"]):
        result = _invoke("run", "--model", "network-growing", *_folders(tmp_path), "--checkpoint",
                         tmp_path / "empty.pth", "--out", tmp_path / "o", *trust)
        _assert_clean_error(result, "empty.pth", "empty", code=2)
        assert "IndexError" not in result.output


def test_a_trusted_checkpoint_is_named_once_and_recorded(tmp_path, network_model):
    path = tmp_path / "weights.pth"
    network_model.save(network_model.nn.Linear(1, 1).state_dict(), path)
    result = _invoke("run", "--model", "network-growing", *_folders(tmp_path), "--checkpoint", path,
                     "--trust-checkpoint", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert result.stderr.count(f"{path}") == 1 and "arbitrary code" in result.stderr, result.stderr
    config = json.loads((tmp_path / "o" / "run.json").read_text())
    assert config["trusted_checkpoint"] == str(path)


# Processes die with their parent ----------------------------------------------------------------------------------

def _children(pid: int) -> set[int]:
    try:
        return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


@pytest.mark.slow
def test_workers_and_the_resource_tracker_die_with_a_parent_killed_while_they_start(tmp_path):
    """`kill -9` of `bench run --workers 2` as its first worker starts (before its initializer can run): spawned
    workers (torch is loaded, so the pool spawns) and multiprocessing's resource tracker must all be gone within a
    few seconds."""
    data = tmp_path / "data"
    data.mkdir()
    manifest = _manifest(data, [{**_manifest_case(data, f"c{n}"), "id": f"c{n}"} for n in range(4)])
    command = [sys.executable, "-m", "bench.cli.app", "run", "--model", "oracle", "--root", data, "--manifest", manifest,
               "--out", tmp_path / "out", "--workers", "2"]
    process = subprocess.Popen(list(map(str, command)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=PROJECT, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    children: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and len(children) < 2 and process.poll() is None:  # the tracker, a worker
        children |= _children(process.pid)
        time.sleep(0.002)
    try:
        assert len(children) >= 2, f"the run started {len(children)} child process(es)"
        assert not list((tmp_path / "out").glob("cases/*.parquet")), "a case was stored before the kill"
        children |= _children(process.pid)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(map(alive, children)):
            time.sleep(0.05)
        assert not [pid for pid in children if alive(pid)], [Path(f"/proc/{pid}/cmdline").read_bytes()[-120:]
                                                             for pid in children if alive(pid)]
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


SCRIPT_SLOW_START = '''
import sys
import time
from pathlib import Path

from bench.engine.executors import map_cases

if __name__ == "__mp_main__":  # a spawned worker: a slow start (heavy imports) before the pool's initializer runs
    time.sleep(1.5)


def task(n):
    time.sleep(120)


if __name__ == "__main__":
    import torch  # noqa: F401  (loaded here, so the pool spawns its workers)

    list(map_cases(task, list(range(4)), workers=2))
'''


@pytest.mark.slow
def test_spawned_workers_killed_parent_during_their_start_die_too(tmp_path):
    """The parent dies while its spawned workers are still importing: the workers must not outlive it (before, the
    death signal was asked for only once the initializer ran, after the parent had gone: the workers then waited
    forever on their task queue, and kept the resource tracker alive)."""
    pytest.importorskip("torch")
    script = tmp_path / "slow_start.py"
    script.write_text(SCRIPT_SLOW_START)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(PROJECT)})
    children: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and len(children) < 3 and process.poll() is None:  # the tracker, two workers
        children |= _children(process.pid)
        time.sleep(0.005)
    try:
        time.sleep(0.3)  # the workers are in their slow start
        children |= _children(process.pid)
        assert len(children) >= 3, children
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.time() + 8
        while time.time() < deadline and any(map(alive, children)):
            time.sleep(0.05)
        assert not [pid for pid in children if alive(pid)], "processes outlived their killed parent"
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
