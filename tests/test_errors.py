"""The one error base (`protocols.errors.BenchError`) and the CLI's one handler for it (`bench.cli.app`)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from baselines.nnunet.stages import StageError
from bench.cli.app import HandledGroup
from bench.data.catalog import CatalogError
from bench.data.catalog.importer import SatdsImportError
from bench.data.io import InputError
from bench.engine.store import InvalidRows, RunConfigMismatch, RunLocked
from bench.engine.weights import MissingWeights
from models.base import ModelOptionError, UnsupportedPrompt
from models.checkpoints import CheckpointError
from models.registry import ModelUnavailable
from models.weights import WeightsMismatch
from protocols.errors import ERROR_KINDS, BenchError
from protocols.protocol import ProtocolError

KINDS = {InputError: "input", CatalogError: "input", SatdsImportError: "input", ProtocolError: "protocol",
         CheckpointError: "checkpoint", WeightsMismatch: "checkpoint", MissingWeights: "checkpoint",
         ModelUnavailable: "model", ModelOptionError: "model", UnsupportedPrompt: "model", StageError: "model",
         RunLocked: "store", InvalidRows: "store", RunConfigMismatch: "store"}


@pytest.mark.parametrize("error_class", KINDS)
def test_every_project_error_is_a_bench_error_of_its_kind(error_class):
    assert issubclass(error_class, BenchError) and issubclass(error_class, ValueError)
    assert error_class.kind == KINDS[error_class] and error_class.kind in ERROR_KINDS


def _app_raising(error: BaseException) -> typer.Typer:
    app = typer.Typer(cls=HandledGroup)

    @app.command()
    def fail() -> None:
        raise error

    @app.command()
    def other() -> None:  # a second command keeps `fail` a subcommand, as in `bench`
        pass

    return app


@pytest.mark.parametrize("error", [InputError("x.nii.gz: not a NIfTI file"), ProtocolError("preset p: bad field"),
                                   CheckpointError("w.pth: missing keys"), RunLocked("run: held by pid 7"),
                                   FileNotFoundError(2, "No such file or directory", "x.nii.gz")])
def test_a_bench_error_or_os_error_is_one_line_and_exit_2(error):
    result = CliRunner().invoke(_app_raising(error), ["fail"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"error: {error}"]


def test_any_other_error_is_a_defect_named_by_its_type_and_exit_1():
    result = CliRunner().invoke(_app_raising(KeyError("shape")), ["fail"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("error: KeyError: 'shape' (run `bench --debug ...`")
