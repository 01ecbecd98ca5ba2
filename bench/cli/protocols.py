"""`bench protocols list|show`: each preset's description, every field, the rules it reproduces (with the
official file:line) and the ways it knowingly departs from the official script."""

from __future__ import annotations

from dataclasses import asdict

import typer

from bench.cli.app import HandledGroup
from bench.engine.presets import load_protocol, preset_names
from protocols.protocol import Protocol

protocols_app = typer.Typer(
    cls=HandledGroup, no_args_is_help=True,
    help="Protocol presets: list them, show one's fields, rules and differences.")


def _load(name: str) -> Protocol:
    return load_protocol(name)


def _value(value) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return "-" if value is None else str(value)


def _field_lines(protocol: Protocol) -> list[str]:
    """`section.field: value` for every field of the space, prompts and scoring, then the model options."""
    lines = []
    for section in ("space", "prompts", "scoring"):
        for key, value in asdict(getattr(protocol, section)).items():
            lines.append(f"  {section}.{key}: {_value(value)}")
    for pattern, options in protocol.model_args.items():
        lines.append(f"  model_args[{pattern}]: " + ", ".join(f"{k}={v}" for k, v in options.items()))
    return lines


@protocols_app.command("list")
def list_protocols() -> None:
    """Every shipped preset with its description, and how many rules and differences it states."""
    for name in preset_names():
        protocol = _load(name)
        typer.echo(f"{name}  ({len(protocol.rules)} rule(s), each with the file:line it follows; "
                   f"{len(protocol.differences)} stated difference(s))")
        typer.echo(f"  {protocol.description}")


@protocols_app.command("show")
def show(name: str = typer.Argument(..., help="Preset name, or a preset YAML file.")) -> None:
    """A preset's description, sources, every field, its rules (rule <- official file:line), its differences."""
    protocol = _load(name)
    typer.echo(f"protocol: {protocol.name}")
    typer.echo(f"description: {protocol.description}")
    typer.echo("sources:" + ("" if protocol.sources else " -"))
    for source in protocol.sources:
        typer.echo(f"  - {source}")
    typer.echo("fields:")
    for line in _field_lines(protocol):
        typer.echo(line)
    typer.echo("rules:" + ("" if protocol.rules else " -"))
    for index, (rule, official) in enumerate(protocol.rules, 1):
        typer.echo(f"  {index}. {rule}\n     <- {official}")
    typer.echo("differences from the official script:" + ("" if protocol.differences else " none stated"))
    for difference in protocol.differences:
        typer.echo(f"  - {difference}")
