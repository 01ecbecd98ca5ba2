"""The results store: tidy rows, one per (case, class[, click]), kept as Parquet.

A run directory holds `run.json` (the settings that made it, the provenance and the run's status),
`cases/<key>.parquet` (one file per scored case, written atomically: a temporary file renamed into place, with the
fingerprints of the input files and any notes in the Parquet metadata) and `metrics.parquet` (all case files
concatenated, rewritten when a run completes). The case files are the source of truth: a run killed midway keeps
every case it finished and stays readable (`read_metrics` then reads the case files and says the run is
incomplete); running the same command again skips the cases whose inputs are unchanged, and since a case is one
file it can never be stored twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.data.io import InputError
from bench.engine.upgrade import upgraded
from protocols.errors import BenchError

METRIC_COLUMNS = [
    "run", "model", "dataset", "case_id", "modality", "class_name",
    "dsc", "nsd", "tolerance_mm", "grid", "ref_empty", "pred_empty", "ref_voxels", "pred_voxels",
    "spacing", "seconds",
]
METRICS_FILE = "metrics.parquet"
CONFIG_FILE = "run.json"
_CASES = "cases"
_CASE_META = b"medseg_bench_case"
# run.json keys that describe a run rather than set its numbers: not compared when a run is resumed.
_UNCOMPARED = ("provenance", "status", "unscored_labels", "trusted_checkpoint", "cost", "time_limit",
               "label_values", "command_line", "summary")


LOCK_FILE = ".lock"


class RunLocked(BenchError):
    """Another live process holds the run folder (its host and pid are named)."""

    kind = "store"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(out_dir: Path):
    """Hold `out_dir` for one client: a second client refuses instead of interleaving its writes. The lock file names
    the holder's host and pid; a lock left by a dead process on this host is taken over."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = out_dir / LOCK_FILE
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for _ in range(2):
        try:
            with open(lock, "x") as handle:
                json.dump(holder, handle)
            break
        except FileExistsError:
            try:
                other = json.loads(lock.read_text())
            except (OSError, ValueError):
                other = {}
            if other.get("host") == holder["host"] and isinstance(other.get("pid"), int) and not _alive(other["pid"]):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise RunLocked(f"{out_dir} is in use by {other.get('host', '?')} pid {other.get('pid', '?')} since "
                            f"{other.get('since', '?')}; wait for it, or remove {lock} if that process is gone")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


class InvalidRows(BenchError):
    """Stored rows that cannot be results: the message names the file and the column."""

    kind = "store"


_REQUIRED = ("run", "model", "dataset", "case_id", "modality", "class_name", "dsc", "nsd")
_COUNTS = ("ref_voxels", "pred_voxels")


def validate_rows(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Check rows read from `source` against the results schema; older runs get `grid` = native."""
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise InvalidRows(f"{source}: missing column(s) {', '.join(missing)}")
    if table.empty:
        raise InvalidRows(f"{source}: no rows")
    for column in ("dsc", "nsd"):
        if not pd.api.types.is_float_dtype(table[column]):
            raise InvalidRows(f"{source}: column {column} must hold numbers, found {table[column].dtype}")
        values = table[column].dropna()
        if ((values < 0) | (values > 1)).any():
            bad = values[(values < 0) | (values > 1)].iloc[0]
            raise InvalidRows(f"{source}: column {column} has a value outside [0, 1] ({float(bad):g})")
    for column in ("run", "model", "dataset", "case_id", "class_name"):
        if table[column].isna().any():
            row = int(table[column].isna().to_numpy().argmax())
            raise InvalidRows(f"{source}: column {column} has a missing value (row {row})")
    for column in _COUNTS:
        if column not in table.columns:
            continue
        counts = pd.to_numeric(table[column], errors="coerce")
        if (counts.isna() & table[column].notna()).any():
            raise InvalidRows(f"{source}: column {column} must hold voxel counts, found {table[column].dtype}")
        for problem, bad in (("a negative value", counts < 0), ("a non-integer value", counts != counts.round())):
            if bad.any():
                raise InvalidRows(f"{source}: column {column} has {problem} ({float(counts[bad].iloc[0]):g})")
    if table["dsc"].isna().all() and table["nsd"].isna().all():
        raise InvalidRows(f"{source}: every score is NaN: nothing to aggregate")
    if "grid" not in table.columns:
        table = table.assign(grid="native")
    return table


class RunConfigMismatch(BenchError):
    """The output directory already holds results made with different settings."""

    kind = "store"


def hashed_name(name: str) -> str:
    """A safe, unique path component for any name: its readable stem plus a short hash of the exact name (never
    `..`, a separator or an absolute path)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{stem}.{digest}"


# A plain file name (letters, digits, spaces, `._()+,-`, starting with a letter or digit) is kept as it is, so
# `predictions/ts_0001/left kidney.nii.gz` stays readable; any other name gets its `hashed_name`.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()+,-]{0,99}")


def safe_name(name: str) -> str:
    """The one path component the store builds from a case id, class name or run name: the name itself when it is
    a plain file name, else its `hashed_name` (so `../../evil`, `/abs/path` or `a/b` never leave the run folder)."""
    if _PLAIN_NAME.fullmatch(name) and not name.endswith((".", " ")):
        return name
    return hashed_name(name).lstrip(".")  # `../x` -> `_.._x.<hash>`: not hidden, so folder listings show it


def refuse_colliding_names(names: Iterable[str], what: str) -> None:
    """InputError when two of `names` would share a path component (`safe_name`, compared without case, since a
    macOS or Windows disk does not tell `Case1` from `case1`): one file would overwrite the other."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(safe_name(name).casefold(), name)
        if other != name:
            raise InputError(f"{what} {other!r} and {name!r} would be stored under one file name (names are "
                             "compared without case); rename one of them")


def case_file_name(case_key: str) -> str:
    """A safe, unique file name for a case key (`hashed_name` + .parquet)."""
    return f"{hashed_name(case_key)}.parquet"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; results are for others to read too
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data) -> None:
    """Write a JSON file atomically (a reader never sees half of it, a killed run leaves the old one)."""
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True)))


def _comparable(config: dict) -> dict:
    return {k: v for k, v in json.loads(json.dumps(config, sort_keys=True)).items() if k not in _UNCOMPARED}


def _changed(previous: dict, current: dict, prefix: str = "") -> list[str]:
    """The settings that differ, a section's by its fields (`protocol.version`, `protocol.scoring.tolerance_mm`)."""
    changed = []
    for key in sorted(set(previous) | set(current)):
        old, new = previous.get(key), current.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            changed += _changed(old, new, f"{prefix}{key}.")
        else:
            changed.append(prefix + key)
    return changed


def check_run(out_dir: Path, config: dict, *, overwrite: bool = False) -> None:
    """Raise RunConfigMismatch if `out_dir` stores cases made with other settings (read-only check). A folder that
    stored no case yet takes new settings; `overwrite` takes them whatever it holds."""
    if overwrite or not (out_dir / CONFIG_FILE).is_file() or not stored_case_files(out_dir):
        return
    previous, current = _comparable(read_config(out_dir)), _comparable(config)
    if previous != current:
        changed = _changed(previous, current)
        raise RunConfigMismatch(
            f"{out_dir} holds a run made with different settings ({', '.join(changed)}); "
            "use another --out directory, or --overwrite to score everything again"
        )


def open_run(out_dir: Path, config: dict, *, overwrite: bool = False) -> None:
    """Create or reopen a run directory for writing (after `check_run`); `overwrite` drops every stored case. The
    settings are compared as JSON, so tuples and lists are the same."""
    check_run(out_dir, config, overwrite=overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        shutil.rmtree(out_dir / _CASES, ignore_errors=True)
        (out_dir / METRICS_FILE).unlink(missing_ok=True)
    normalised = json.loads(json.dumps(config, sort_keys=True))
    if (out_dir / CONFIG_FILE).is_file() and stored_case_files(out_dir):
        normalised = {**read_config(out_dir), **{k: normalised[k] for k in _UNCOMPARED if k in normalised}}
    write_json(out_dir / CONFIG_FILE, {**normalised, "status": "running"})


def update_config(out_dir: Path, **values) -> None:
    """Set run.json entries that do not change the numbers (status, unscored labels); an unchanged run.json is
    not rewritten (a complete run re-run with nothing to do writes nothing)."""
    config = read_config(out_dir)
    updated = json.loads(json.dumps({**config, **values}, sort_keys=True))
    if updated != config:
        write_json(Path(out_dir) / CONFIG_FILE, updated)


def read_config(out_dir: Path) -> dict:
    """A run folder's run.json, in today's shape (`bench.engine.upgrade`: older versions' files read so)."""
    return upgraded(json.loads((Path(out_dir) / CONFIG_FILE).read_text()))


def stored_case_files(out_dir: Path) -> list[Path]:
    return sorted((Path(out_dir) / _CASES).glob("*.parquet"))


def write_case(out_dir: Path, case_key: str, rows: pd.DataFrame, meta: dict | None = None) -> Path:
    """Store all rows of one case at once (atomic), with `meta` (input fingerprints, notes) beside them."""
    path = Path(out_dir) / _CASES / case_file_name(case_key)
    table = pa.Table.from_pandas(rows, preserve_index=False)
    info = json.dumps({"case": case_key, **(meta or {})}, sort_keys=True).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _CASE_META: info})
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return path


def stored_cases(out_dir: Path) -> dict[str, dict]:
    """Case key -> the metadata stored with its rows (read from the Parquet footers only)."""
    stored = {}
    for file in stored_case_files(out_dir):
        schema = _read_case_file(file, pq.read_schema)
        meta = json.loads((schema.metadata or {}).get(_CASE_META, b"{}"))
        stored[meta.get("case", file.name)] = meta
    return stored


def _read_case_file(file: Path, read):
    """`read(file)` for a stored case file; a damaged one (a disk filled up, a hand edit) is named with the way
    out, since every resume reads it."""
    try:
        return read(file)
    except (OSError, ValueError):  # pyarrow's errors derive from these
        raise InvalidRows(f"{file}: a stored case file is not readable Parquet (damaged, or not written here); "
                          "delete it to score that case again, or run with --overwrite") from None


def drop_case(out_dir: Path, case_key: str) -> None:
    (Path(out_dir) / _CASES / case_file_name(case_key)).unlink(missing_ok=True)


def read_cases(out_dir: Path) -> pd.DataFrame:
    """All stored case rows of a run directory, in a stable order."""
    files = stored_case_files(out_dir)
    if not files:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    return pd.concat([_read_case_file(f, pd.read_parquet) for f in files], ignore_index=True)


def consolidate(out_dir: Path) -> pd.DataFrame:
    """Rewrite `metrics.parquet` from the case files, mark the run complete, and return the rows."""
    table = read_cases(out_dir)
    _atomic_write(Path(out_dir) / METRICS_FILE, lambda tmp: table.to_parquet(tmp, index=False))
    if (Path(out_dir) / CONFIG_FILE).is_file():
        update_config(out_dir, status="complete")
    return table


def run_status(run_dir: Path) -> str:
    """`complete`, or `incomplete` for a run under way, killed, or with failed cases."""
    config = Path(run_dir) / CONFIG_FILE
    complete = config.is_file() and json.loads(config.read_text()).get("status", "complete") == "complete"
    return "complete" if complete and (Path(run_dir) / METRICS_FILE).is_file() else "incomplete"


def read_metrics(paths: Iterable[Path]) -> pd.DataFrame:
    """Rows of one or more runs (each a run directory or a metrics.parquet file). A run directory that is not
    complete is read from its case files, with a note on stderr."""
    tables = []
    for path in map(Path, paths):
        if path.is_dir() and run_status(path) == "incomplete" and stored_case_files(path):
            print(f"note: {path} is incomplete (under way, killed or with failed cases): "
                  f"{len(stored_case_files(path))} stored case(s) read", file=sys.stderr)
            tables.append(validate_rows(read_cases(path), path / _CASES))
            continue
        file = path / METRICS_FILE if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"{path}: no {METRICS_FILE} (run `bench evaluate` first)")
        try:
            table = pd.read_parquet(file)
        except (OSError, ValueError) as error:  # pyarrow's errors derive from these
            raise InvalidRows(f"{file}: not a readable Parquet file ({type(error).__name__})") from None
        tables.append(validate_rows(table, file))
    return pd.concat(tables, ignore_index=True)
