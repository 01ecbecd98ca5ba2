"""`bench models list|show|verify`: what each model needs, and whether a checkpoint file fits it."""

from __future__ import annotations

from pathlib import Path

import typer

from models.checkpoints import CheckpointError
from models.registry import ModelUnavailable, describe, get_model, model_names, takes_checkpoint

models_app = typer.Typer(help="Models: list them, show what one needs, verify a checkpoint.", no_args_is_help=True)


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg="red", err=True)
    raise typer.Exit(2) from error


@models_app.command("list")
def list_models() -> None:
    """Every registered model, with its parameter count and prompts (or why it is not available here)."""
    typer.echo(f"| {'model':<18} | {'parameters':>13} | {'prompts':<24} | {'grid':<6} |")
    typer.echo(f"|{'-' * 20}|{'-' * 15}|{'-' * 26}|{'-' * 8}|")
    for name in model_names():
        try:
            info = describe(name)
        except ModelUnavailable as error:
            typer.echo(f"| {name:<18} | {'-':>13} | not available: {str(error).split(': ', 1)[-1][:60]}")
            continue
        except ValueError:  # built from a trained-model folder only
            typer.echo(f"| {name:<18} | {'-':>13} | built from its model folder (--checkpoint)")
            continue
        typer.echo(f"| {name:<18} | {info['parameters']:>13,} | {', '.join(info['prompts']):<24} | "
                   f"{info['input_grid']:<6} |")


@models_app.command("show")
def show(name: str = typer.Argument(..., help="Model name.")) -> None:
    """Capabilities, implementation version, parameter count and the checkpoint files a model needs."""
    if takes_checkpoint(name):  # its network is built from the trained-model folder: nothing to show without it
        typer.echo(f"{'name':>18}: {name}\n{'checkpoint':>18}: its trained-model folder, built from it: "
                   f"bench run --model {name} --checkpoint DIR (`bench models verify {name} --checkpoint DIR` "
                   "checks one)")
        return
    try:
        info = describe(name)
    except (ModelUnavailable, ValueError) as error:
        _fail(error)
    for key, value in info.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        typer.echo(f"{key:>18}: {shown if shown not in (None, '') else '-'}")


@models_app.command("verify")
def verify(
    name: str = typer.Argument(..., help="Model name."),
    checkpoint: Path = typer.Option(..., help="Checkpoint file (or folder) to check."),
    trust_checkpoint: bool = typer.Option(False, help="Unpickle everything (only for files you trust)."),
) -> None:
    """Load a checkpoint strictly into the model: prints its SHA-256 and whether it matches the published one."""
    try:
        model = get_model(name)
        model.load_checkpoint(str(checkpoint), trust=trust_checkpoint)
    except (ModelUnavailable, CheckpointError, ValueError) as error:
        _fail(error)
    provenance = model.provenance()
    typer.echo(f"{checkpoint}: loads into {name} strictly ({provenance.parameters:,} parameters)")
    typer.echo(f"sha256: {provenance.sha256}")
    published = model.checkpoint_info.sha256
    if published and published != provenance.sha256:
        typer.secho(f"SHA-256 differs from the published {published}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo("matches the published SHA-256" if published else "no published SHA-256 to compare with")
