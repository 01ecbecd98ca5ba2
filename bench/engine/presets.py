"""Reading protocol presets: the YAML files in `protocols/presets/` (or a user's file), parsed into `Protocol`s."""

from __future__ import annotations

from pathlib import Path

import yaml

from protocols.protocol import Protocol, ProtocolError, parse_protocol

PRESETS_DIR = Path(__file__).resolve().parents[2] / "protocols" / "presets"
DEFAULT_PRESET = "harness"


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def load_protocol(name_or_path: str | Path) -> Protocol:
    """A shipped preset by name, or a YAML file by path; ProtocolError names the file and the problem."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ProtocolError(f"unknown protocol {str(name_or_path)!r}; presets: {', '.join(preset_names())}")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ProtocolError(f"{path}: cannot read protocol ({type(error).__name__}: {error})") from error
    try:
        return parse_protocol(data)
    except ProtocolError as error:
        raise ProtocolError(f"{path}: {error}") from error
