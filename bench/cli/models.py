"""`bench models list|show|fetch|verify`: what each model needs, where its official files come from (the registry
models/weights.yaml), downloading them into the Hugging Face cache, and whether local files are the right ones."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli.app import HandledGroup
from protocols.errors import BenchError
from models.registry import ModelUnavailable, describe, get_model, model_names, shipped_entries, takes_checkpoint

models_app = typer.Typer(
    cls=HandledGroup, no_args_is_help=True,
    help="Models: list them, show what one needs and where its files come from, fetch them, verify local files.")


@models_app.command("list")
def list_models() -> None:
    """Every registered model with its parameter count, prompts and input grid, as the registry declares them
    (nothing is imported or built: `bench models show NAME` builds the network and says what it needs)."""
    entries = shipped_entries()
    typer.echo(f"| {'model':<18} | {'parameters':>13} | {'prompts':<30} | {'grid':<6} |")
    typer.echo(f"|{'-' * 20}|{'-' * 15}|{'-' * 32}|{'-' * 8}|")
    for name in model_names():
        entry = entries.get(name)
        if entry is None:  # added with register_model in this process: its factory says nothing until built
            typer.echo(f"| {name:<18} | {'-':>13} | {'(registered in this process)':<30} | {'-':<6} |")
            continue
        parameters = "its folder" if entry.parameters is None else f"{entry.parameters:,}"
        prompts = ", ".join(entry.prompts) or "none (automatic)"
        typer.echo(f"| {name:<18} | {parameters:>13} | {prompts:<30} | {entry.input_grid:<6} |")


_CHECKPOINT_KEYS = ("checkpoint_files", "download", "published_sha256")  # shown from the registry instead


def _size(entry) -> str:
    if entry.size is not None:
        return f"{entry.size:,} bytes"
    if entry.urls:
        return f"{sum(spec.get('size', 0) for spec in entry.urls.values()):,} bytes in {len(entry.urls)} files"
    return "not published"


def _show_weights(name: str) -> None:
    """The registry's sources for `name`, and what of them is in the local cache."""
    from bench.engine.weights import cached, fetch_command
    from models.weights import WeightsMismatch, model_weights

    weights = model_weights(name)
    if weights is None:
        typer.echo(f"{'weights':>18}: none (no official files)")
        return
    typer.echo(f"{'licence':>18}: {weights.licence}")
    typer.echo(f"{'needs besides':>18}: {'; '.join(weights.needs) or 'nothing'}")
    if not weights.files:
        typer.echo(f"{'files':>18}: no published weights")
        return
    typer.echo(f"{'without the files':>18}: {'refused' if weights.requires_weights else 'runs with random weights (flagged)'}")
    for entry in weights.files:
        option = "--checkpoint" if entry.option == "checkpoint" else f"--model-args {entry.option}="
        try:
            found = cached(entry)
        except WeightsMismatch as error:
            found = f"ambiguous ({error})"
        typer.echo(f"{entry.role:>18}: {entry.source()}  [{option}]")
        typer.echo(f"{'':>18}  size {_size(entry)}; SHA-256 {entry.published()}")
        for file_name, spec in entry.urls.items():
            typer.echo(f"{'':>18}  {file_name}: {spec['size']:,} bytes, SHA-256 {spec['sha256']}")
        if entry.vocabulary:
            tokens = ", ".join(f"{t}={i}" for t, i in (entry.vocabulary.get("tokens") or {}).items())
            typer.echo(f"{'':>18}  vocabulary: {entry.vocabulary.get('size')} tokens" + (f"; {tokens}" if tokens else ""))
        typer.echo(f"{'':>18}  checked against {entry.cited}")
        if entry.note:
            typer.echo(f"{'':>18}  note: {entry.note}")
        typer.echo(f"{'':>18}  cached: {found or f'no (`{fetch_command(entry)}`)'}")


@models_app.command("show")
def show(name: str = typer.Argument(..., help="Model name.")) -> None:
    """Capabilities, implementation version, parameter count, and the official files: sources, sizes,
    checksums, licence, what else the model needs and what of it is cached locally."""
    if name not in model_names():
        raise ModelUnavailable(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    if takes_checkpoint(name):  # its network is built from the trained-model folder: nothing to describe without it
        info = {"name": name, "checkpoint": f"its trained-model folder, built from it: bench run --model {name} "
                                            f"--checkpoint DIR (`bench models verify {name} --checkpoint DIR` checks one)"}
    else:
        info = describe(name)
    for key, value in info.items():
        if key in _CHECKPOINT_KEYS:
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        typer.echo(f"{key:>18}: {shown if shown not in (None, '') else '-'}")
    _show_weights(name)


@models_app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="Model name."),
    to: Path = typer.Option(None, help="Download into this folder instead of the Hugging Face cache."),
) -> None:
    """Download a model's official files (Hugging Face hub through huggingface_hub, or HTTPS with resume) into
    the Hugging Face cache, check sizes and checksums, and print each file's path."""
    from bench.engine.weights import fetch as fetch_file
    from models.weights import model_weights, weight_models

    weights = model_weights(name)
    if weights is None:
        raise ModelUnavailable(f"{name!r}: no official files to fetch (models with some: {', '.join(weight_models())})")
    if not weights.files:
        raise ModelUnavailable(f"{name}: no published files to fetch ({'; '.join(weights.needs)})")
    for entry in weights.files:
        path = fetch_file(entry, to)
        typer.echo(f"{entry.role}: {path}")


@models_app.command("verify")
def verify(
    name: str = typer.Argument(..., help="Model name."),
    checkpoint: Path = typer.Option(None, help="Checkpoint file (or folder) to check and load strictly."),
    tokenizer: Path = typer.Option(None, help="Tokenizer folder to check against the registry."),
    trust_checkpoint: bool = typer.Option(False, help="Unpickle everything (only for files you trust)."),
) -> None:
    """Check local files against the registry (size, published SHA-256, tokenizer vocabulary) and load the
    checkpoint strictly into the model; exit 1 when a file is not the published one."""
    from models.weights import WeightsMismatch, check_file, check_tokenizer, model_weights

    if checkpoint is None and tokenizer is None:
        raise BenchError("give --checkpoint FILE and/or --tokenizer DIR")
    weights = model_weights(name)
    differs = False
    if tokenizer is not None:
        entry = next((f for f in weights.files if f.role == "tokenizer"), None) if weights else None
        if entry is None:
            raise BenchError(f"{name}: takes no tokenizer")
        try:
            record = check_tokenizer(tokenizer, entry)
        except WeightsMismatch as error:
            typer.secho(str(error), fg="red", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{tokenizer}: {name}'s tokenizer ({record['verified']}; vocabulary SHA-256 "
                   f"{record['vocabulary_sha256']})")
    if checkpoint is None:
        return
    model = get_model(name)
    model.load_checkpoint(str(checkpoint), trust=trust_checkpoint)
    provenance = model.provenance()
    typer.echo(f"{checkpoint}: loads into {name} strictly ({provenance.parameters:,} parameters)")
    typer.echo(f"sha256: {provenance.sha256}")
    entry = weights.file_for("checkpoint") if weights else None
    if entry is not None and checkpoint.is_file() and (entry.sha256 or entry.sha256_prefix or entry.size):
        try:
            check_file(checkpoint, entry)
            typer.echo(f"matches the published {entry.published()} ({entry.source()})")
        except WeightsMismatch as error:
            typer.secho(str(error), fg="red", err=True)
            differs = True
    else:
        typer.echo("no published SHA-256 to compare with")
    if differs:
        raise typer.Exit(1)
