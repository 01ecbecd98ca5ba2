"""The one error base: a `BenchError` is a problem the user can fix (a file, a preset, a checkpoint, a model's
environment, a run folder), reported by the CLI's top-level handler as one line and exit code 2, never a traceback.

Each error class of the project derives from it and names its `kind`:

- `input`: a file or folder that cannot be read or scored as given (`InputError`, `CatalogError`, ...);
- `protocol`: a preset or protocol field that is unknown or inconsistent (`ProtocolError`);
- `checkpoint`: weights that are missing or are not the ones a model needs (`CheckpointError`, ...);
- `model`: a model that cannot run here or cannot take what it was given (`ModelUnavailable`, ...);
- `store`: a run folder that holds other settings, bad rows, or is locked by another process (`RunLocked`, ...).

It is a `ValueError`, so code that validated with ValueError keeps catching it.
"""

from __future__ import annotations

ERROR_KINDS = ("input", "protocol", "checkpoint", "model", "store")


class BenchError(ValueError):
    """A problem with what the user gave; the message names the file or field and the problem."""

    kind = "input"
