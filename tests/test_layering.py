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
