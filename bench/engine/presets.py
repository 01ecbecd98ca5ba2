"""Reading protocol presets: the YAML files in `protocols/presets/` (or a user's file), parsed into `Protocol`s."""

from __future__ import annotations

from pathlib import Path

import yaml

from protocols.protocol import Protocol, ProtocolError, merge_include, parse_protocol

PRESETS_DIR = Path(__file__).resolve().parents[2] / "protocols" / "presets"
DEFAULT_PRESET = "harness"


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def _preset_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A shipped preset's file by name, or a YAML file by path (an `include` path is relative to its preset)."""
    path = Path(name_or_path)
    if path.suffix:
        return path if relative_to is None or path.is_absolute() else relative_to.parent / path
    path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ProtocolError(f"unknown protocol {str(name_or_path)!r}; presets: {', '.join(preset_names())}")
    return path


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A preset file's mapping with its `include` chain merged in (`protocols.protocol.merge_include`)."""
    if path.resolve() in seen:
        chain = " -> ".join(p.name for p in (*seen, path.resolve()))
        raise ProtocolError(f"{path}: `include` loops back ({chain})")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ProtocolError(f"{path}: cannot read protocol ({type(error).__name__}: {error})") from error
    if not isinstance(data, dict) or "include" not in data:
        return data
    try:
        base_path = _preset_path(str(data["include"]), path)
    except ProtocolError as error:
        raise ProtocolError(f"{path}: include: {error}") from error
    base = _read(base_path, (*seen, path.resolve()))
    try:
        return merge_include(base, data)
    except ProtocolError as error:
        raise ProtocolError(f"{path}: {error}") from error


def load_protocol(name_or_path: str | Path) -> Protocol:
    """A shipped preset by name, or a YAML file by path, its `include` of a base preset merged in;
    ProtocolError names the file and the problem."""
    path = _preset_path(name_or_path)
    data = _read(path)
    try:
        return parse_protocol(data)
    except ProtocolError as error:
        raise ProtocolError(f"{path}: {error}") from error
