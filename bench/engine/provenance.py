"""What made a run: harness version and commit, date, host, Python and library versions (written to run.json)."""

from __future__ import annotations

import platform
import shlex
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "medseg-bench"
_LIBRARIES = ("numpy", "scipy", "nibabel", "SimpleITK", "pandas", "torch", "monai")


def harness_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def git_commit() -> str | None:
    """The commit of the source tree the harness runs from, with `+dirty` for local changes; None outside git."""
    source = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance() -> dict:
    """Read from package metadata, not by importing the libraries (torch alone takes seconds to import)."""
    return {
        "harness_version": harness_version(),
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in _LIBRARIES},
    }


def command_line(context) -> str:
    """The `bench ...` command line of the running command (its typer/click ``context``), rebuilt from the parsed
    options (absolute paths, every value that differs from its default), so that running it again reproduces
    the run."""
    names, level = [], context
    while level.parent is not None:  # the root's name is however bench was started (`python -m bench.cli.app`)
        names.insert(0, level.info_name)
        level = level.parent
    words = ["bench", *names]
    for param in context.command.params:
        value = context.params.get(param.name)
        if value is None or value == param.default or not getattr(param, "opts", None):
            continue
        for item in value if isinstance(value, (list, tuple)) and param.multiple else [value]:
            if isinstance(item, bool):
                words.append(param.opts[0] if item else param.secondary_opts[0])
                continue
            item = getattr(item, "value", item)  # an Enum choice
            words += [param.opts[0], str(Path(item).resolve()) if isinstance(item, Path) else str(item)]
    return shlex.join(words)
