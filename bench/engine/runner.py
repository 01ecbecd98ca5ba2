"""The model runner: a catalog case in, scored rows and native-grid predictions out, under one protocol.

The unit of work is `run_case(source, spec) -> CaseResult`: it reads one case, builds (once per process) the
model the spec names, runs it in the protocol's working space (`bench.engine.spaces`), maps predictions back to the
native grid and scores them on the grid the protocol names. It writes nothing and depends only on its
(picklable) arguments, so a process pool or Dask can run it unchanged; `run_cases` is the local driver that
stores each case atomically (rows, prompts, NIfTI masks with the reference's affine) and resumes.

Prompts: each target gets the protocol's prompt kinds that the model declares (`text` = the class name;
`boxes`; SegVol-style point sets; clicks in the interactive loop, after a first call with the box alone where the
click protocol gives boxes); kinds it does not declare are left out and
listed in run.json, and a model that takes none of them is refused, unless it declares no prompt kind at all (a
specialist such as nnU-Net: one call per case, every class, under any protocol). An oracle also gets the reference.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench.engine import store
from bench.data.catalog.cases import CaseSource, load_case
from bench.engine.driver import input_meta, run_folder
from bench.engine.interactive import run_clicks
from bench.data.io import InputError, write_volume
from bench.engine.model_pool import PROCESS_MODELS
from bench.engine.meter import COST_COLUMNS, CaseMemory, environment, timed_call
from bench.engine.provenance import provenance
from bench.engine.spec import RunSpec
from bench.data.sammed2d import mask_name, write_mask
from bench.engine.spaces import SpaceCase, crop_space, native_space, resample, satds_space
from bench.data.sources import planar
from bench.engine.weights import resolve_run_files
from models.base import Model, Target
from models.registry import declared_devices, get_model, takes_checkpoint
from protocols.target_scores import check_rules, target_scores
from protocols.label_maps import overwrite_in_order
from protocols.prompts import Box, Click, Prompt, clicks_from_json, clicks_to_json, prompt_rng
from protocols.prompts_boxes import box_from_mask, largest_component_box
from protocols.prompts_segfm import draw_box_shift, segfm_box
from protocols.prompts_slices import slice_boxes, target_slices
from protocols.protocol import Protocol

EXTRA_COLUMNS = ["protocol", "prompt_policy", "first_click", "click", "seed", *COST_COLUMNS]
RUN_COLUMNS = store.METRIC_COLUMNS + [c for c in EXTRA_COLUMNS if c not in store.METRIC_COLUMNS]
PREDICTIONS_DIR = "predictions"
PROMPTS_DIR = "prompts"


def run_config(spec: RunSpec, model: Model, sources: str) -> dict:
    """run.json of a model run: the spec, where its cases come from, and what the built model says of itself."""
    return {**spec.as_config(), "sources": sources, "model_provenance": model.provenance().to_json(),
            "prompts_given": sorted(given_kinds(model, spec.protocol)),
            "untrained": random_weights(spec.checkpoint, model)}


@dataclass(frozen=True, eq=False)
class CaseResult:
    """What one case produced: its rows, its prompt records and its final native-grid masks (of a 2D
    SA-Med2D case, with the PNG name each is saved under: its reference mask's, as SAM-Med2D's test.py does)."""

    case_id: str
    rows: pd.DataFrame
    prompts: dict[str, dict]
    masks: dict[str, np.ndarray]
    affine: np.ndarray
    seconds: float
    png_names: dict[str, str] = field(default_factory=dict)


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str, declared: frozenset[str]) -> str:
    """`auto`: CUDA when torch sees a GPU and the model declares it, else CPU."""
    if device not in DEVICES:
        raise InputError(f"--device {device!r}: choose from {', '.join(DEVICES)}")
    if device != "auto":
        return device
    if "cuda" in declared:
        try:
            import torch
        except ImportError:
            return "cpu"
        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


def prompt_record_path(out: Path, case_id: str, class_name: str) -> Path:
    """Where the prompts of one (case, class) are stored in a run folder (safe names, unique by hash)."""
    return Path(out) / PROMPTS_DIR / store.hashed_name(case_id) / f"{store.hashed_name(class_name)}.json"


def replayed_clicks(run_dir: str | None, case_id: str, class_name: str) -> list[Click]:
    """The clicks another run stored for (case, class), in order; none without a run to replay."""
    if run_dir is None:
        return []
    path = prompt_record_path(Path(run_dir), case_id, class_name)
    if not path.is_file():
        raise InputError(f"--replay: no stored clicks for case {case_id!r}, class {class_name!r} ({path})")
    return clicks_from_json(json.loads(path.read_text()))


def model_for(spec: RunSpec) -> Model:
    """The spec's model from this process's pool (`bench.engine.model_pool`): built, loaded and moved to the
    spec's device once, then reused by every case."""
    return PROCESS_MODELS.get(_model_key(spec), partial(_build, spec))


def _build(spec: RunSpec) -> Model:
    options = dict(spec.model_args)
    if spec.checkpoint and takes_checkpoint(spec.model):  # a trained-model folder the model reads itself
        options.update(checkpoint=spec.checkpoint, trust_checkpoint=spec.trust_checkpoint)
    model = get_model(spec.model, **options)
    if spec.checkpoint and not takes_checkpoint(spec.model):
        model.load_checkpoint(spec.checkpoint, trust=spec.trust_checkpoint)
    return model.to(spec.device)


def _model_key(spec: RunSpec) -> tuple:
    return spec.model, tuple(sorted(spec.model_args.items())), spec.checkpoint, spec.trust_checkpoint, spec.device


def parse_model_args(items: list[str] | None) -> dict:
    """`key=value` pairs; values read as YAML scalars (numbers, true/false), else strings."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--model-args {item!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(value) if value else ""
    return out


def model_spec(*, run: str, model: str, protocol: Protocol, model_args: list[str] | None, checkpoint: Path | None,
               trust_checkpoint: bool, device: str, only: list[str] | None, replay: Path | None) -> RunSpec:
    """The RunSpec of `bench run` and `bench clicks`: the preset's model options under the user's, the checkpoint,
    and the device (auto: CUDA when the model declares it and torch sees a GPU). Official files given as paths or
    hf:// references, or cached registry defaults, are resolved and checked first (`bench.engine.weights`); then the model
    is built and loaded once (kept for the run), so a bad checkpoint fails before any case."""
    options = {**protocol.model_args_for(model), **parse_model_args(model_args)}
    checkpoint, options, weights = resolve_run_files(model, str(checkpoint) if checkpoint else None, options,
                                                     set(protocol.prompts.kinds))
    spec = RunSpec(run=run, model=model, protocol=protocol, model_args=options, checkpoint=checkpoint,
                   trust_checkpoint=trust_checkpoint, classes=tuple(only) if only else None,
                   replay=str(replay.resolve()) if replay else None, weights=tuple(weights))
    if trust_checkpoint and checkpoint:  # said once, before anything is unpickled
        print(f"note: --trust-checkpoint: {checkpoint} is unpickled whole, so any code it holds runs with your "
              "rights (arbitrary code); use it only for a file from a source you trust (recorded in run.json)",
              file=sys.stderr)
    spec = replace(spec, device=resolve_device(device, declared_devices(model)))
    model_for(spec)  # built once, on its device, before any case
    return spec


def untrained(spec: RunSpec) -> bool:
    """Whether the spec's model has a network but no weights were given: it runs with random weights (recorded in
    run.json as ``untrained``; every view marks such a run and never ranks it)."""
    return random_weights(spec.checkpoint, model_for(spec))


def random_weights(checkpoint: str | None, model: Model) -> bool:
    """A model with a network and no checkpoint runs with random weights."""
    return checkpoint is None and model.network is not None


def given_kinds(model: Model, protocol: Protocol) -> set[str]:
    """Prompt kinds of the protocol the model declares; InputError when it takes none of them."""
    kinds = set(protocol.prompts.kinds) & model.capabilities.prompts
    if not kinds and model.capabilities.prompts and "reference" not in model.capabilities.prompts:
        raise InputError(f"model {model.name!r} takes none of protocol {protocol.name!r}'s prompts "
                         f"({', '.join(protocol.prompts.kinds)}); it takes "
                         f"{', '.join(sorted(model.capabilities.prompts))}")
    return kinds


def scorer(reference: np.ndarray, spacing, *, tolerance_mm: float = 1.0, dice: str = "standard",
           empty: str = "sat") -> Callable[[np.ndarray], tuple[float, float, int]]:
    """A function scoring a boolean prediction against `reference` by the protocol's rules
    (`protocols.target_scores.target_scores`: DSC, NSD@tolerance, predicted voxels)."""
    check_rules(dice, empty)
    return partial(target_scores, ref=reference, spacing=tuple(spacing), tolerance_mm=tolerance_mm, dice=dice,
                   empty=empty)


def _score_fn(reference: np.ndarray, spacing, protocol: Protocol,
              name: str) -> Callable[[np.ndarray], tuple[float, float, int]]:
    scoring = protocol.scoring
    spacing = (1.0,) * reference.ndim if scoring.distances == "voxels" else tuple(spacing)
    return scorer(reference, spacing, tolerance_mm=scoring.tolerance_for(name), dice=scoring.dice,
                  empty=scoring.empty)


def _row(case_id: str, name: str, source: CaseSource, spec: RunSpec, reference: np.ndarray, spacing,
         dsc: float, nsd: float, pred_voxels: int, seconds: float, **extra) -> dict:
    row = {"run": spec.run, "model": spec.model, "dataset": source.dataset or "", "case_id": case_id,
           "modality": source.modality, "class_name": name, "dsc": dsc, "nsd": nsd,
           "tolerance_mm": spec.protocol.scoring.tolerance_for(name), "ref_empty": not reference.any(),
           "pred_empty": pred_voxels == 0, "ref_voxels": int(np.count_nonzero(reference)),
           "pred_voxels": int(pred_voxels), "spacing": "x".join(f"{s:g}" for s in spacing), "seconds": seconds,
           "grid": "native" if spec.protocol.scoring.grid == "native" else spec.protocol.space.grid,
           "protocol": spec.protocol.name, "seed": spec.protocol.prompts.seed}
    row.update(extra)
    return row


def _static_prompt(name: str, reference: np.ndarray, kinds: set[str], protocol: Protocol, rng, oracle: bool,
                   model: Model, image, state: dict) -> Prompt:
    """The one-shot prompt of a target: text, boxes, SegVol points (only the declared kinds; the points drawn by
    `model.draw_points`, on the model's own grid where its official code draws them there)."""
    prompts = protocol.prompts
    boxes: tuple = ()
    points: tuple[Click, ...] = ()
    if "boxes" in kinds and reference.any():
        if prompts.per_slice_axis is not None and reference.ndim == 3:  # per slice of a 2D image: the image
            axis = prompts.per_slice_axis
            if prompts.boxes == "largest_component_exclusive":
                boxes = tuple(_slice_box(reference, axis, index) for index in target_slices(reference, axis))
            else:
                boxes = slice_boxes(reference, axis)
        else:
            boxes = ((largest_component_box(reference) if prompts.boxes == "largest_component_exclusive"
                      else box_from_mask(reference)),)
    if "points" in kinds and prompts.segvol_points is not None and reference.any():
        points = model.draw_points(image, reference, rng, n_positive_extra=prompts.segvol_points[0],
                                   n_negative_extra=prompts.segvol_points[1], state=state)
    return Prompt(points=points, boxes=boxes, text=name if "text" in kinds else None,
                  reference=reference if oracle else None)


def _slice_box(reference: np.ndarray, axis: int, index: int) -> Box:
    where = [slice(None)] * reference.ndim
    where[axis] = index
    box = largest_component_box(reference[tuple(where)])
    lift = lambda values, value: tuple(values[:axis]) + (value,) + tuple(values[axis:])  # noqa: E731
    return Box(lift(box.lo, index), lift(box.hi, index))


def _click_box(reference: np.ndarray, rule: str, rng: np.random.Generator) -> tuple[Box, dict]:
    """The box of a click protocol's first interaction, and its JSON record (the SegFM box keeps its middle
    slice and the margin drawn)."""
    if rule == "segfm_mid_slice":
        found = segfm_box(reference, draw_box_shift(rng))
        return found.box, found.to_json()
    box = largest_component_box(reference) if rule == "largest_component_exclusive" else box_from_mask(reference)
    return box, {"lo": list(box.lo), "hi": list(box.hi)}


def _static_case(source, spec, model, kinds, native: SpaceCase, volume, names) -> tuple[list, dict, dict]:
    protocol = spec.protocol
    if protocol.space.grid == "crop":
        raise InputError(f"protocol {protocol.name!r}: a crop space is implemented for click protocols only")
    oracle = "reference" in model.capabilities.prompts
    satds = protocol.space.grid == "satds" or model.capabilities.input_grid == "satds"
    space = satds_space(volume, source.modality, native.masks, source.orientation) if satds else native
    state: dict = {}
    targets = [Target(name, _static_prompt(name, space.masks[name], kinds, protocol,
                                           prompt_rng(protocol.prompts.seed, source.case_id, name, "static", 1),
                                           oracle, model, space.image, state)) for name in names]
    masks, cost = timed_call(model, space.image, targets, state)
    share = max(len(targets), 1)  # one call for every target: each row gets its share
    native_masks = {name: space.to_native(mask) for name, mask in masks.items()}
    in_space = protocol.scoring.grid == "space" and (protocol.space.grid == "satds") == satds
    rows = []
    for target in targets:
        name = target.name
        pred, ref, spacing = ((masks[name], space.masks[name], space.image.spacing) if in_space
                              else (native_masks[name], native.masks[name], native.image.spacing))
        dsc, nsd, pred_voxels = _score_fn(ref, spacing, protocol, name)(pred)
        spacing = (1.0,) * ref.ndim if protocol.scoring.distances == "voxels" else spacing
        rows.append(_row(source.case_id, name, source, spec, ref, spacing, dsc, nsd, pred_voxels,
                         cost.seconds / share, **cost.columns(share), prompt_policy="+".join(sorted(kinds)),
                         first_click=None, click=None))
    records = {t.name: {"case_id": source.case_id, "class_name": t.name, "text": t.prompt.text,
                        "boxes": [{"lo": list(b.lo), "hi": list(b.hi)} for b in t.prompt.boxes],
                        "points": [c.to_json() for c in t.prompt.points]} for t in targets}
    return rows, records, native_masks


def _interactive_case(source, spec, model, kinds, native: SpaceCase, volume, names) -> tuple[list, dict, dict]:
    protocol = spec.protocol
    prompts = protocol.prompts
    if model.capabilities.input_grid == "satds" and protocol.space.grid != "satds":
        raise InputError(f"model {model.name!r} works on the SAT-DS grid; click protocol {protocol.name!r} runs on "
                         f"the {protocol.space.grid} grid")
    shared = None
    if protocol.space.grid == "satds":
        shared = satds_space(volume, source.modality, native.masks, source.orientation)
    elif protocol.space.grid == "native":
        shared = native
    else:
        resampled = resample(volume, source.modality, native.masks, protocol.space)
    state: dict = {}
    rows, records, final, combined = [], {}, {}, []
    for name in names:
        if not native.masks[name].any():
            continue  # a click needs a target
        space = shared if shared is not None else crop_space(resampled, name, protocol.space)
        reference = space.masks[name]
        if not reference.any():
            continue
        in_space = protocol.scoring.grid == "space"
        voxels = protocol.scoring.distances == "voxels"
        if in_space:
            score = _score_fn(reference, space.image.spacing, protocol, name)
            spacing = (1.0,) * reference.ndim if voxels else space.image.spacing
        native_score = _score_fn(native.masks[name], native.image.spacing, protocol, name)
        if not in_space:
            score = lambda pred, space=space, native_score=native_score: native_score(space.to_native(pred))  # noqa: E731
            spacing = (1.0,) * reference.ndim if voxels else native.image.spacing
        box_rng = prompt_rng(prompts.seed, source.case_id, name, "box", 0)
        box, box_record = _click_box(reference, prompts.boxes, box_rng) if "boxes" in kinds else (None, None)
        steps = run_clicks(
            model=model, image=space.image, reference=reference, score=score, n_clicks=prompts.n_clicks,
            policy_for=prompts.policy, name=name, feed=prompts.feed,
            per_slice_axis=prompts.per_slice_axis if reference.ndim == 3 else None,  # a 2D image is one slice
            click_spacing=(1.0,) * reference.ndim if voxels else None,
            rng_for=lambda k, name=name: prompt_rng(prompts.seed, source.case_id, name,
                                                    f"first:{prompts.policy(1)}" if k == 1 else prompts.policy(k), k),
            replay=replayed_clicks(spec.replay, source.case_id, name), state=state if shared is not None else {},
            text=name if "text" in kinds else None, box=box, stop_at_perfect=prompts.stop_at_perfect,
            on_failure=prompts.on_failure, errors_from=prompts.errors_from,
        )
        ref_for_row = reference if in_space else native.masks[name]
        if protocol.scoring.label_map:
            steps = list(steps)
            combined.append((name, steps, space, native_score))
        for step in steps:
            rows.append(_row(source.case_id, name, source, spec, ref_for_row, spacing, step.dsc, step.nsd,
                             step.pred_voxels, step.seconds, **step.cost.columns(),
                             prompt_policy=protocol.prompts.next_clicks_label(),
                             first_click=prompts.policy(1), click=step.click_index))
        records[name] = clicks_to_json(case_id=source.case_id, class_name=name,
                                       policy=protocol.prompts.next_clicks_label(),
                                       first_click=prompts.policy(1), seed=prompts.seed,
                                       clicks=[c for step in steps for c in step.clicks], replayed_from=spec.replay)
        if box_record is not None:
            records[name]["box"] = box_record
        failures = [{"click": step.click_index, "error": step.failed} for step in steps if step.failed]
        if failures:
            records[name]["failed"] = failures
        final[name] = space.to_native(steps[-1].mask) if steps[-1].mask is not None else np.zeros_like(
            native.masks[name])
    if combined:
        final = _rescore_through_label_map(rows, combined, native)
    return rows, records, final


def _rescore_through_label_map(rows: list[dict], combined: list, native: SpaceCase) -> dict[str, np.ndarray]:
    """`scoring.label_map`: after every click, the classes' native masks written into one label map in class
    order (later classes overwrite earlier ones, `protocols.label_maps`), each class's row scored from that
    map, as SAM-Med3D's current script scores its combined prediction file; returns the final masks so."""
    by_key = {(row["class_name"], row["click"]): row for row in rows}
    final: dict[str, np.ndarray] = {}
    for k in range(len(combined[0][1])):
        masks = {name: (space.to_native(steps[k].mask) if steps[k].mask is not None
                        else np.zeros_like(native.masks[name])) for name, steps, space, _ in combined}
        read_back = overwrite_in_order(masks)
        for name, steps, _, score in combined:
            dsc, nsd, pred_voxels = score(read_back[name])
            by_key[(name, steps[k].click_index)].update(dsc=dsc, nsd=nsd, pred_voxels=pred_voxels,
                                                        pred_empty=pred_voxels == 0)
        final = read_back
    return final


def run_case(source: CaseSource, spec: RunSpec) -> CaseResult:
    """Rows, prompt records and native-grid masks of one case (reads the case, writes nothing)."""
    start = time.perf_counter()
    case = load_case(source)
    names = [n for n in case.masks if spec.classes is None or n in spec.classes]
    model = model_for(spec)
    kinds = given_kinds(model, spec.protocol)
    if spec.protocol.scoring.empty == "skip":
        names = [n for n in names if case.masks[n].any()]
    with CaseMemory() as memory:  # from the case read to its last score
        native = native_space(case.image, source.modality, case.masks)
        if spec.protocol.interactive and kinds:  # a specialist (no prompts) runs once under any protocol
            rows, records, masks = _interactive_case(source, spec, model, kinds, native, case.image, names)
        else:
            rows, records, masks = _static_case(source, spec, model, kinds, native, case.image, names)
    table = pd.DataFrame(rows).reindex(columns=RUN_COLUMNS).assign(peak_rss_mb=memory.peak_rss_mb,
                                                                   peak_gpu_mb=memory.peak_gpu_mb)
    png_names = ({mask_name(path, source.case_id): path.name for path in source.label}
                 if isinstance(source.label, tuple) else {})
    return CaseResult(source.case_id, table, records, masks, case.affine, time.perf_counter() - start, png_names)


def store_case(out: Path, result: CaseResult, meta: dict | None = None, write_masks: bool = True) -> None:
    """Prompts, masks (`predictions/<case>/<class>.nii.gz`, the reference's affine; a 2D SA-Med2D case's as
    0/255 PNGs `predictions/<reference mask file name>`, SAM-Med2D's test.py layout, which `bench evaluate`
    reads), then the rows (last, so a stored case is complete)."""
    for name, record in result.prompts.items():
        store.write_json(prompt_record_path(out, result.case_id, name), record)
    if write_masks:
        for name, mask in result.masks.items():
            if result.png_names:
                write_mask(out / PREDICTIONS_DIR / result.png_names[name], mask)
            else:
                folder = out / PREDICTIONS_DIR / store.safe_name(result.case_id)
                write_volume(folder / f"{store.safe_name(name)}.nii.gz", mask, result.affine)
    store.write_case(out, result.case_id, result.rows, meta)


def _inputs(source: CaseSource) -> dict:
    """The input files a stored case's resume check fingerprints."""
    return {"image": source.image, "label": source.label}


def _case_id(source: CaseSource) -> str:
    return source.case_id


class CaseFailures(InputError):
    """Cases that could not be run; the others are stored, and running the same command again resumes."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        listed = "; ".join(f"{case}: {message}" for case, message in list(errors.items())[:5])
        super().__init__(f"{len(errors)} case(s) failed, nothing stored for them ({listed})")


def label_values(sources: Sequence[CaseSource]) -> dict[str, list[int]]:
    """Class name -> the label values it is made of, over all cases (what nnU-Net's summary.json is keyed by)."""
    values: dict[str, list[int]] = {}
    for source in sources:
        if not isinstance(source.label, tuple):  # 2D PNG cases: one mask file per class, no label values
            values.update({name: [int(v) for v in np.atleast_1d(v)] for name, v in source.classes.items()})
    return values


def run_and_store(source: CaseSource, *, out: Path, spec: RunSpec, write_masks: bool = True) -> None:
    """The task an executor runs: one case run and stored atomically (picklable with `functools.partial`)."""
    store_case(out, run_case(source, spec), input_meta(_inputs(source)), write_masks)


def run_cases(sources: Sequence[CaseSource], out: Path, spec: RunSpec, *, sources_label: str,
              on_case: Callable[[int, int, str], None] | None = None, write_masks: bool = True,
              overwrite: bool = False, workers: int = 1, executor: str = "local",
              scheduler: str | None = None) -> tuple[pd.DataFrame, int, int]:
    """Run every case not stored with unchanged inputs in `out` (the resume rules of `bench evaluate`: image
    and label fingerprints; cases no longer listed are dropped); returns (all rows, cases run, cases kept).
    Cases run where `executor` says (`bench.engine.executors`: in this process, a local pool of `workers`, or Dask);
    each worker builds the model once. `on_case(number, total, case_id)` is called as each case is stored.
    Failed cases raise `CaseFailures` at the end, after every other case is stored."""
    if not sources:
        raise InputError("no cases to run")
    store.refuse_colliding_names([source.case_id for source in sources], "case ids")
    for source in sources:
        store.refuse_colliding_names(source.classes, f"case {source.case_id}: class names")
    if planar(sources) and spec.protocol.space.grid != "native":
        raise InputError(f"protocol {spec.protocol.name!r} works on the {spec.protocol.space.grid} grid; 2D PNG "
                         "cases have only their own pixel grid (use a native-grid protocol: harness, sam-med2d)")
    config = {**run_config(spec, model_for(spec), sources_label), "provenance": provenance(),
              "label_values": label_values(sources)}
    gpu = {"GPU": 1} if executor == "dask" and spec.device.startswith("cuda") else None  # one model per GPU
    outcome = run_folder(sources, out, config, partial(run_and_store, out=out, spec=spec, write_masks=write_masks),
                         _case_id, _inputs, overwrite=overwrite, on_case=on_case, executor=executor,
                         workers=workers, scheduler=scheduler, resources=gpu)
    if outcome.errors:
        raise CaseFailures(outcome.errors)
    if not outcome.wrote:
        return store.read_cases(out), 0, len(sources)
    rows = store.consolidate(out)
    store.update_config(out, cost=_cost_config(spec, rows, executor, workers))
    return rows, len(outcome.ran), len(sources) - len(outcome.ran)


def _cost_config(spec: RunSpec, rows: pd.DataFrame, executor: str, workers: int) -> dict:
    """run.json's `cost`: the settings the cost columns were measured under (the batch settings: where cases ran,
    targets per model call, the model's own), the model's loading time in this process and the warm-up calls' wall
    times (one per process that ran cases)."""
    model = model_for(spec)
    batch = {"executor": executor, "workers": workers, "targets_per_call": model.capabilities.targets_per_call,
             **model.batch_settings()}
    warmups = rows["warmup_seconds"].dropna() if "warmup_seconds" in rows.columns else pd.Series(dtype=float)
    return {**environment(spec.device, batch), "load_seconds": PROCESS_MODELS.load_seconds(_model_key(spec)),
            "warmup_seconds": [float(v) for v in warmups]}
