"""The one driver (`bench.engine.driver`): the resume rule, the run-folder loop, and which errors are one case's
failure and which end the run."""

from __future__ import annotations

import pytest

from bench.data.io import InputError
from bench.engine.driver import drive, is_case_error, is_current, input_meta, pending


def _torch_like(name: str, module: str) -> type:
    return type(name, (RuntimeError,), {"__module__": module})


def test_the_per_case_errors_include_a_cuda_out_of_memory_and_no_other_runtime_error():
    assert is_case_error(_torch_like("OutOfMemoryError", "torch.cuda")("CUDA out of memory"))
    assert is_case_error(_torch_like("OutOfMemoryError", "torch")("CUDA out of memory"))
    for error in (InputError("bad file"), ValueError("shape"), MemoryError(), OSError("gone")):
        assert is_case_error(error)
    assert not is_case_error(RuntimeError("a defect"))
    assert not is_case_error(_torch_like("OutOfMemoryError", "mylib")("not torch's"))
    assert not is_case_error(KeyError("a defect"))


def test_an_out_of_memory_case_is_recorded_and_the_other_cases_run(tmp_path):
    done = []
    oom = _torch_like("OutOfMemoryError", "torch.cuda")

    def task(case):
        if case == "b":
            raise oom("CUDA out of memory. Tried to allocate 2.00 GiB")
        done.append(case)

    stored = []
    errors = drive(task, ["a", "b", "c"], tmp_path, str, on_case=lambda n, total, case: stored.append((n, case)))
    assert errors == {"b": "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"}
    assert done == ["a", "c"] and stored == [(1, "a"), (3, "c")]


def test_any_other_error_ends_the_run():
    def task(case):
        raise KeyError(case)

    with pytest.raises(KeyError):
        drive(task, ["a", "b"], None, str)


def test_the_resume_rule_compares_every_named_input(tmp_path):
    first, second = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    inputs = {"image": first, "label": second}
    meta = input_meta(inputs)
    assert is_current(inputs, meta) and not is_current(inputs, None)
    assert not is_current(inputs, {"image": meta["image"]})  # a stored case without its label's fingerprint
    second.write_bytes(b"changed")
    assert not is_current(inputs, meta)
    todo, gone = pending(["x", "y"], {"x": meta, "z": meta}, str, lambda case: inputs)
    assert todo == ["x", "y"] and gone == ["z"]


def test_run_folder_runs_changed_cases_drops_gone_ones_and_leaves_a_finished_run_alone(tmp_path):
    """The one driver of `bench evaluate` and `bench run`: the resume rule, the dropped cases, and a complete run
    with nothing to do left unwritten (a read-only folder can be re-run)."""
    import pandas as pd

    from bench.engine import store
    from bench.engine.driver import run_folder

    inputs = {name: tmp_path / f"{name}.txt" for name in ("a", "b")}
    for path in inputs.values():
        path.write_text("1")
    out = tmp_path / "run"
    ran = []

    def task(case):
        ran.append(case)
        row = pd.DataFrame([{"run": "r", "model": "m", "dataset": "d", "case_id": case, "modality": "CT",
                             "class_name": "x", "dsc": 1.0, "nsd": 1.0, "ref_voxels": 1, "pred_voxels": 1}])
        store.write_case(out, case, row, input_meta({"file": inputs[case]}))

    def go(cases):
        outcome = run_folder(cases, out, {"setting": 1}, task, str, lambda case: {"file": inputs[case]})
        if outcome.wrote and not outcome.errors:
            store.consolidate(out)
        return outcome

    assert go(["a", "b"]).ran == ["a", "b"]
    config_time = (out / "run.json").stat().st_mtime_ns
    again = go(["a", "b"])
    assert (again.ran, again.wrote, (out / "run.json").stat().st_mtime_ns) == ([], False, config_time)
    inputs["b"].write_text("22")  # b's input changed: b alone runs again
    assert go(["a", "b"]).ran == ["b"]
    outcome = go(["a"])  # b is gone from the cases: its rows are dropped
    assert (outcome.ran, outcome.dropped, sorted(store.stored_cases(out))) == ([], ["b"], ["a"])
