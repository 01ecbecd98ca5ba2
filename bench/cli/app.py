"""The `bench` command line: one typer app; each command lives in its own module under `bench/cli/`.

Commands are imported only when invoked (`LazyGroup`), so `bench --help` and `bench --version` start without
loading numpy, pandas, scipy or torch. `COMMANDS` holds each command's module and its one-line summary for the
help listing (a test checks the summaries against the commands' docstrings).
"""

from __future__ import annotations

import os
import sys
from importlib import import_module

import typer
from typer.core import TyperGroup

from protocols.errors import BenchError

# name -> ("module:attribute", summary); the attribute is a command function or a typer sub-app.
COMMANDS = {
    "evaluate": ("bench.cli.evaluate:evaluate",
                 "Score predictions against references: per-case, per-class DSC and NSD, resumable."),
    "demo": ("bench.cli.demo:demo", "Run everything on a synthetic CT set: score two pretend models, run the "
             "two weightless interactive models with `bench run` (harness protocol, 10 clicks), print tables and a "
             "leaderboard, write the HTML report."),
    "tables": ("bench.cli.tables:tables", "Tables like SAT Table 1 (by region) and Table 2 (by dataset or "
               "class); best values marked among comparables."),
    "leaderboard": ("bench.cli.leaderboard:leaderboard_command", "Rank runs on the keys they all share, "
                    "published entries beside them; deltas on the keys both cover."),
    "compare": ("bench.cli.compare:compare", "Patient-level paired tests of each run against the first: "
                "Wilcoxon over cases, interval, effect size, Holm."),
    "report": ("bench.cli.report:report", "Write the HTML report; open OUT/index.html in a browser."),
    "export": ("bench.cli.export:export",
               "Export a run's per-case rows as CSV, JSON, or nnU-Net's summary.json (read by nnU-Net's tooling)."),
    "clicks": ("bench.cli.clicks:clicks",
               "Simulate clicks on every case and class: DSC/NSD after each click, resumable, prompts saved as JSON."),
    "run": ("bench.cli.run:run", "Run a model on every case: its own preprocessing, the protocol's prompts, "
            "predictions mapped back to the native grid and written as NIfTI, DSC/NSD scored into the results "
            "store; re-running resumes."),
    "datasets": ("bench.cli.datasets:datasets_app",
                 "The 72 SAT-DS datasets: classes, regions, splits; verify a local copy."),
    "protocols": ("bench.cli.protocols:protocols_app",
                  "Protocol presets: list them, show one's fields, rules and differences."),
    "models": ("bench.cli.models:models_app", "Models: list them, show what one needs and where its files come "
               "from, fetch them, verify local files."),
    "baselines": ("bench.cli.baselines:baselines_app", "Baselines: SAT's per-dataset nnU-Net specialists."),
}


def load_command(name: str):
    """The click command of one entry of COMMANDS (importing its module now)."""
    module, attribute = COMMANDS[name][0].split(":")
    target = getattr(import_module(module), attribute)
    if isinstance(target, typer.Typer):
        _plain_help(target)
        return typer.main.get_group(target)
    single = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None)
    single.command(name)(target)
    return typer.main.get_command(single)


def _plain_help(group: typer.Typer) -> None:
    """Click's plain help for a typer group and its subgroups: rich's option tables cut lines with '…' at 80
    columns."""
    group.rich_markup_mode = None
    for sub in group.registered_groups:
        _plain_help(sub.typer_instance)


class HandledGroup(TyperGroup):
    """The top-level error handler, for the `bench` group and each command group (`bench datasets`, ...):

    a `BenchError` (what the user gave: a file, preset, checkpoint, model or run folder; `protocols.errors`) or an
    `OSError` (a file missing, unreadable, a full disk) is printed as its one-line message with exit code 2; any
    other exception no command handled is printed as one line naming its type (with the traceback only under
    `bench --debug ...`), and the exit code is 1.
    """

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # `bench ... | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except (BenchError, OSError) as error:
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(2) from None
        except Exception as error:
            if _debug(ctx) or type(error).__module__.split(".")[0] in ("typer", "click"):
                raise  # exits, usage errors and aborts are typer's to print
            message = " ".join(str(error).split()) or "(no message)"
            typer.secho(f"error: {type(error).__name__}: {message} (run `bench --debug ...` for the traceback)",
                        fg="red", err=True)
            raise typer.Exit(1) from None


def _debug(ctx: typer.Context) -> bool:
    """Whether `bench --debug` was given (on this group or one above it)."""
    while ctx is not None:
        if ctx.params.get("debug"):
            return True
        ctx = ctx.parent
    return False


class LazyGroup(HandledGroup):
    """A typer group whose subcommands are imported on first use; the listing uses the summaries in COMMANDS."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, name: str):
        return load_command(name) if name in COMMANDS else None

    def format_commands(self, ctx: typer.Context, formatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in COMMANDS.items()])


app = typer.Typer(
    cls=LazyGroup,
    help="Benchmark universal medical image segmentation models with SAT-DS protocols (DSC, NSD).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from bench.engine.provenance import git_commit, harness_version

        commit = git_commit()
        typer.echo(f"medseg-bench {harness_version()}" + (f" (commit {commit})" if commit else ""))
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the harness version and exit."),
         debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an unexpected error.")) -> None:
    """Benchmark universal medical image segmentation models with SAT-DS protocols (DSC, NSD)."""


if __name__ == "__main__":
    app()
