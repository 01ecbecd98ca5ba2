"""The `bench` entry point: lazy command loading (start-up), --version, summaries that match the commands."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bench.cli.app import COMMANDS, app, load_command
from bench.engine.provenance import harness_version


def test_help_and_version_import_no_numeric_library():
    code = ("import sys; from bench.cli.app import app\n"
            "for argv in (['--help'], ['--version']):\n"
            "    try: app(argv)\n"
            "    except SystemExit: pass\n"
            "heavy = [m for m in ('numpy', 'pandas', 'scipy', 'torch', 'nibabel') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in output and "evaluate" in output and f"medseg-bench {harness_version()}" in output


_BAD = ["--images", "/nonexistent", "--refs", "/nonexistent", "--labels", "1=liver", "--modality", "CT", "--out", "x"]
_IMPORTED = ("import sys; from bench.cli.app import app\n"
             "try: app({argv!r})\n"
             "except SystemExit: pass\n"
             "print('LOADED', [m for m in ('pandas', 'scipy.ndimage', 'torch', 'SimpleITK') if m in sys.modules])")


@pytest.mark.parametrize(("argv", "loaded"), [
    (["run", "--help"], []), (["clicks", "--help"], []), (["models", "list"], []),
    # a bad option is refused after the data readers load, before the engine, scipy or a model
    (["run", "--model", "oracle", *_BAD], ["pandas", "SimpleITK"]),
    (["clicks", "--model", "region_growing", *_BAD], ["pandas", "SimpleITK"]),
])
def test_help_listing_and_a_bad_option_load_no_engine(argv, loaded):
    """Start-up (issue 21; the CPU seconds are `python -m tests.perf startup`'s): what these commands import."""
    output = subprocess.run([sys.executable, "-c", _IMPORTED.format(argv=argv)], capture_output=True, text=True,
                            check=True).stdout
    assert f"LOADED {loaded}" in output, output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_listed_summary_is_the_commands_own(name):
    command = load_command(name)
    if hasattr(command, "commands"):  # a group: its own help text
        assert command.help.split("\n")[0].strip() == COMMANDS[name][1]
    else:
        first = " ".join(command.callback.__doc__.split("\n\n")[0].split())
        assert first == COMMANDS[name][1]


def test_every_command_runs_its_help():
    for name in COMMANDS:
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)


@pytest.mark.parametrize("name", ["nninteractive", "nnunet"])
def test_models_show_of_a_model_built_from_its_folder_says_what_it_needs(name):
    """Both are built from a trained-model folder: `show` says so instead of ending in a TypeError's text."""
    result = CliRunner().invoke(app, ["models", "show", name])
    assert result.exit_code == 0, result.output
    assert "missing 1 required" not in result.output and "--checkpoint" in result.output


def test_help_at_80_columns_is_never_cut():
    """Rich's option tables cut help lines with '…' at 80 columns (12 times in `bench clicks --help`)."""
    for name in COMMANDS:
        command = load_command(name)
        for path in [[name]] + [[name, sub] for sub in getattr(command, "commands", {})]:
            result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
            assert result.exit_code == 0 and "…" not in result.stdout, (path, result.stdout)
            assert max(map(len, result.stdout.splitlines())) <= 80, path
