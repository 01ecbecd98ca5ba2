"""The engine's own rules (bench.engine): the scorer's policies, the one set of per-case errors."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import bench.engine.runner as runner
from bench.engine import meter
from bench.cli.app import app
from bench.data.io import write_volume
from bench.engine import store
from bench.engine.runner import scorer
from models.base import Capabilities, Model
from models.registry import register_model, unregister_model


def _ref() -> np.ndarray:
    ref = np.zeros((6, 6, 4), bool)
    ref[1:4, 1:4, 1:3] = True
    return ref


@pytest.mark.parametrize("option", [{"empty": "sta"}, {"empty": "NaN"}, {"dice": "plus-one"}])
def test_scorer_refuses_an_unknown_policy(option):
    with pytest.raises(ValueError, match=repr(next(iter(option.values())))):
        scorer(_ref(), (1.0, 1.0, 1.0), **option)


@pytest.mark.parametrize(("empty", "expected"), [("sat", 1.0), ("skip", 1.0), ("nan", None)])
def test_scorer_empty_policies_on_both_empty(empty, expected):
    ref = np.zeros((6, 6, 4), bool)
    dsc, nsd, voxels = scorer(ref, (1.0, 1.0, 1.0), empty=empty)(ref)
    assert voxels == 0
    assert (np.isnan(dsc) and np.isnan(nsd)) if expected is None else (dsc, nsd) == (expected, expected)


def _torch_like(module: str, name: str = "OutOfMemoryError") -> type[RuntimeError]:
    """An exception class as torch names its CUDA out-of-memory error, without importing torch."""
    return type(name, (RuntimeError,), {"__module__": module})


class OutOfMemoryOnce(Model):
    """Segments nothing; on the case whose image holds 2.0 it fails as torch does when CUDA memory runs out."""

    name = "oom-once"
    version = "1"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"boxes"}), accumulates_clicks=False)
    error: type[BaseException] = _torch_like("torch.cuda")

    def _segment(self, image, targets, state):
        if float(image.array.max()) == 2.0:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {target.name: np.zeros(image.shape, bool) for target in targets}


@pytest.fixture
def oom_model():
    register_model("oom-once")(OutOfMemoryOnce)
    runner.PROCESS_MODELS.clear()
    yield
    runner.PROCESS_MODELS.clear()
    unregister_model("oom-once")


@pytest.mark.parametrize("torch_error", [False, True])
def test_an_out_of_memory_case_fails_alone_and_the_run_goes_on(oom_model, tmp_path, monkeypatch, torch_error):
    if torch_error:  # torch's own class (torch.cuda.OutOfMemoryError), raised on any machine
        monkeypatch.setattr(OutOfMemoryOnce, "error", pytest.importorskip("torch").cuda.OutOfMemoryError)
    images, refs = tmp_path / "images", tmp_path / "refs"
    images.mkdir(), refs.mkdir()
    for case, level in {"a": 1.0, "b": 2.0, "c": 3.0}.items():
        label = np.zeros((12, 12, 8), np.uint8)
        label[3:9, 3:9, 2:6] = 1
        write_volume(images / f"{case}_0000.nii.gz", np.full(label.shape, level, np.float32), np.eye(4))
        write_volume(refs / f"{case}.nii.gz", label, np.eye(4))
    out = tmp_path / "run"
    args = ["run", "--model", "oom-once", "--images", str(images), "--refs", str(refs), "--labels", "1=cube",
            "--modality", "CT", "--protocol", "segvol", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "error in case b: OutOfMemoryError: CUDA out of memory" in result.output, result.output
    assert "1 case(s) failed" in result.output and "Traceback" not in result.output
    assert sorted(store.stored_cases(out)) == ["a", "c"]
    assert not (out / "metrics.parquet").exists()


class CountedBuilds(Model):
    """Segments nothing; counts how often it is built and on which devices it is put."""

    name = "counted-builds"
    version = "1"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"boxes"}), accumulates_clicks=False,
                                devices=frozenset({"cpu", "cuda"}))
    builds: list[str] = []

    def __init__(self) -> None:
        super().__init__()
        CountedBuilds.builds.append("built")

    def to(self, device: str) -> Model:
        CountedBuilds.builds.append(device)
        return super().to(device)

    def _segment(self, image, targets, state):
        return {target.name: np.zeros(image.shape, bool) for target in targets}


def test_a_model_is_built_once_on_the_device_its_class_declares(tmp_path, monkeypatch):
    """--device auto picks CUDA from the class's declared devices (no build on CPU first): one build, one move."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(meter, "_cuda", lambda: None)  # no GPU memory to measure here
    register_model("counted-builds")(CountedBuilds)
    runner.PROCESS_MODELS.clear()
    CountedBuilds.builds = []
    try:
        images, refs = tmp_path / "images", tmp_path / "refs"
        images.mkdir(), refs.mkdir()
        label = np.zeros((12, 12, 8), np.uint8)
        label[3:9, 3:9, 2:6] = 1
        for case in ("a", "b"):
            write_volume(images / f"{case}_0000.nii.gz", label.astype(np.float32), np.eye(4))
            write_volume(refs / f"{case}.nii.gz", label, np.eye(4))
        result = CliRunner().invoke(app, ["run", "--model", "counted-builds", "--images", str(images), "--refs",
                                          str(refs), "--labels", "1=cube", "--modality", "CT", "--protocol", "segvol",
                                          "--device", "auto", "--out", str(tmp_path / "run")])
        assert result.exit_code == 0, result.output
        assert CountedBuilds.builds == ["built", "cuda"]
    finally:
        runner.PROCESS_MODELS.clear()
        unregister_model("counted-builds")
