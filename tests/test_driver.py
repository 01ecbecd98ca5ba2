"""The one driver loop (`bench.engine.driver`): which errors are one case's failure, and which end the run."""

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
