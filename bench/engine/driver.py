"""The one driver of `bench evaluate` (prediction folders scored) and `bench run`/`bench clicks` (a model run):
`run_folder` checks a run folder's settings, finds the stored cases that are current (`pending`, the one resume
rule), runs and stores the rest (`drive`) and drops the cases that are gone; `is_case_error` says which errors
are one case's failure.

Per-case errors (`is_case_error`) end that case only: nothing is stored for it (its old rows are dropped), the
other cases run and are stored, and the command lists the failed cases at the end and exits 1; running it again
resumes. They are what a case's own inputs or size can cause:

- `InputError`: a file that cannot be read or does not match (geometry, classes, prompts to replay);
- `ValueError`: data a protocol or model rejects (an empty box, a class it cannot take);
- `MemoryError`, `OSError`: a case too large for this machine's memory, a file that vanished or a full disk;
- torch's CUDA out-of-memory (`torch.cuda.OutOfMemoryError`, `torch.OutOfMemoryError` since torch 2.5): a case
  too large for the GPU. It is matched by class name and module, so this module never imports torch.

Anything else (a `TypeError`, a `RuntimeError` from a model, Ctrl-C) is a bug or a stop, not a case's failure: it
ends the command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.data.io import InputError
from bench.engine import store
from bench.engine.executors import map_cases
from bench.engine.fingerprint import Files, fingerprint, unchanged

CASE_ERRORS: tuple[type[BaseException], ...] = (InputError, ValueError, MemoryError, OSError)
TORCH_OUT_OF_MEMORY = {("torch.cuda", "OutOfMemoryError"), ("torch", "OutOfMemoryError")}  # (module, class name)
Case = TypeVar("Case")


def is_case_error(error: BaseException) -> bool:
    """Whether `error` is one case's failure (the module docstring says which errors are)."""
    return isinstance(error, CASE_ERRORS) or any((kind.__module__, kind.__name__) in TORCH_OUT_OF_MEMORY
                                                 for kind in type(error).__mro__)


def failure_message(error: BaseException) -> str:
    """A failed case's one-line reason: an InputError's message, or the type and message of anything else."""
    return str(error) if isinstance(error, InputError) else f"{type(error).__name__}: {error}"


def case_failures(results: Iterable[tuple[Case, BaseException | None]]) -> Iterator[tuple[Case, str | None]]:
    """`map_cases`'s results as (case, None) or (case, its failure message); an error that is not a per-case
    error is raised."""
    for case, error in results:
        if error is not None and not is_case_error(error):
            raise error
        yield case, None if error is None else failure_message(error)


def input_meta(inputs: dict[str, Files]) -> dict:
    """What a stored case remembers of its inputs: each side's file fingerprints (`bench.engine.fingerprint`)."""
    return {side: fingerprint(path) for side, path in inputs.items()}


def is_current(inputs: dict[str, Files], meta: dict | None) -> bool:
    """The one resume rule: a stored case is reused when it was made from the same files on every side."""
    return meta is not None and all(side in meta and unchanged(path, meta[side]) for side, path in inputs.items())


def pending(cases: Sequence[Case], stored: dict[str, dict], case_id: Callable[[Case], str],
            inputs: Callable[[Case], dict[str, Files]]) -> tuple[list[Case], list[str]]:
    """(the cases to run, the stored case ids whose case is gone): a case is run again when any of its input
    files changed since it was stored."""
    gone = sorted(set(stored) - {case_id(case) for case in cases})
    return [case for case in cases if not is_current(inputs(case), stored.get(case_id(case)))], gone


def drive(task: Callable[[Case], None], cases: Sequence[Case], out_dir: Path, case_id: Callable[[Case], str], *,
          on_case: Callable[[int, int, str], None] | None = None, **executor_options) -> dict[str, str]:
    """The one driver loop: run and store every case with `map_cases`, report each stored case to `on_case`
    (number finished, total, case id), and return {case id: failure message} of the cases that failed with a
    per-case error. A failed case's old rows are dropped, so a changed case whose re-run failed leaves nothing
    behind."""
    errors: dict[str, str] = {}
    results = map_cases(task, cases, caught=is_case_error, **executor_options)
    for number, (case, message) in enumerate(case_failures(results), 1):
        if message is not None:
            errors[case_id(case)] = message
            store.drop_case(out_dir, case_id(case))
        elif on_case:
            on_case(number, len(cases), case_id(case))
    return errors


@dataclass(frozen=True)
class Outcome:
    """What `run_folder` did: the cases it ran (or tried), the stored case ids it dropped because their case is
    gone, the failures by case id, and whether it wrote anything (a complete run with nothing to do does not)."""

    ran: list
    dropped: list[str]
    errors: dict[str, str]
    wrote: bool


def run_folder(cases: Sequence[Case], out_dir: Path, config: dict, task: Callable[[Case], None],
               case_id: Callable[[Case], str], inputs: Callable[[Case], dict[str, Files]], *, overwrite: bool = False,
               on_case: Callable[[int, int, str], None] | None = None, **executor_options) -> Outcome:
    """The one driver of both commands: check `config` against what `out_dir` holds, run (`task`: one case run
    and stored) every case whose inputs changed since it was stored (`pending`), drop stored cases whose case is
    gone, under the run folder's lock; failures as `drive` reports them. A complete run with nothing to do is
    left as it is, so a read-only run folder can be re-run."""
    store.check_run(out_dir, config, overwrite=overwrite)
    todo, gone = pending(cases, {} if overwrite else store.stored_cases(out_dir), case_id, inputs)
    if not todo and not gone and not overwrite and store.run_status(out_dir) == "complete":
        return Outcome([], [], {}, wrote=False)
    with store.run_lock(out_dir):
        store.open_run(out_dir, config, overwrite=overwrite)
        for stale in gone:
            store.drop_case(out_dir, stale)
        errors = drive(task, todo, out_dir, case_id, on_case=on_case, **executor_options)
    return Outcome(todo, gone, errors, wrote=True)
