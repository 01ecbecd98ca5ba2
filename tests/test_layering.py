"""Layering, checked on the import graph (every import statement, function-level ones included):
`protocols/` is pure (no `models`, no `bench`, no clock), `models/` does not import `bench/`, and only the
CLI reaches `bench.cli` (commands parse and print; the engine never depends on them)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLOCK = {"time", "datetime"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


def test_protocols_import_neither_models_nor_bench_nor_the_clock():
    offenders = {str(path.relative_to(ROOT)): sorted(name for name in _imports(path)
                                                     if _top(name) in {"models", "bench"} | CLOCK)
                 for path in _files("protocols")}
    assert not {k: v for k, v in offenders.items() if v}


def test_models_do_not_import_bench():
    offenders = {str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if _top(n) == "bench")
                 for path in _files("models")}
    assert not {k: v for k, v in offenders.items() if v}


def test_only_the_cli_and_commands_import_commands():
    offenders = set()
    for path in _files("bench"):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("bench/cli/") or relative == "bench/cli/app.py":
            continue
        if any(name.startswith("bench.cli") for name in _imports(path)):
            offenders.add(relative)
    assert not offenders


def test_the_import_check_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from bench.cli.run import run\n    import time\n")
    assert {"bench.cli.run", "time"} <= _imports(module)


LADDER = ("protocols", "models", "bench.data", "bench.engine", "baselines", "bench.views", "bench.cli")


def _layer(name: str) -> int | None:
    """The rung of a module on the ladder (its longest matching package), None outside the project."""
    rungs = [i for i, package in enumerate(LADDER) if name == package or name.startswith(package + ".")]
    return max(rungs, key=lambda i: len(LADDER[i])) if rungs else None


def test_every_import_runs_down_the_ladder():
    """protocols < models < bench.data < bench.engine < baselines < bench.views < bench.cli: a module imports
    its own rung or one below, never one above (so nothing imports a package that imports it back)."""
    upward = {}
    for package in {p.split(".")[0] for p in LADDER}:
        for path in _files(package):
            module = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            own = _layer(module)
            if own is None:  # bench/__init__.py and the like sit above the ladder's rungs
                continue
            above = sorted(name for name in _imports(path) if (_layer(name) or 0) > own)
            if above:
                upward[module] = above
    assert not upward


def test_the_registry_names_only_models_below_it():
    """The registry's own entries import models/ only; baselines add theirs through the entry-point group."""
    from models.registry import _BUILTIN, PLUGINS

    assert {entry.target.split(":")[0].split(".")[0] for entry in _BUILTIN.values()} == {"models"}
    assert "baselines" not in (ROOT / "models" / "registry.py").read_text().split('PLUGINS = "')[0]
    assert PLUGINS in (ROOT / "pyproject.toml").read_text()
