"""Protocols as data: everything that changes the numbers of a run, parsed and checked from a mapping.

A preset (`protocols/presets/<name>.yaml`, lm-evaluation-harness style) names:
- `space`: where the model is run and clicks are made: `native` grid, `satds` (SAT-DS preprocessing: RAS,
  1 x 1 x 3 mm, foreground crop) or `crop` (resampled to `spacing`, canonical orientation, a `size` box centred
  on the label's bounding box, zero-padded), as SAM-Med3D's validation does; for `crop`, `canonical: false`
  keeps the stored voxel order (SAM-Med3D's paper-era loader gave TorchIO an identity affine, so its
  `ToCanonical` did nothing) and `clamp: [lo, hi]` clips CT intensities after resampling (its `tio.Clamp`);
- `prompts`: the kinds given (`text`, `points`, `boxes`; in a click protocol a box is the first interaction and
  stays in every later call), the box rule (`tight`, SAM-Med2D's `largest_component_exclusive`, or the SegFM
  challenge's `segfm_mid_slice`: the middle slice's 2D box over the target's z range), SegVol-style point sets,
  and, for click protocols, the click schedule (`clicks`: [[from_click, policy], ...], a next-click policy applied
  to an empty prediction for click 1), whether the model gets all clicks or only the newest (the model then
  carries its previous logits), the number of clicks, per-slice prompting for 2D models, the seed, whether a
  perfect target stops its loop (`stop_at_perfect`), what a failed model call gives (`on_failure`: `raise`, or
  `previous`: the previous prediction, empty at the first, as the SegFM script scores a run that wrote nothing),
  and `errors_from`: the mask next clicks are made from (`prediction`, the scored mask; `logits`: the model's
  upsampled logits > 0.5, i.e. probability > 0.622, as SAM-Med3D's paper-era click generator, for models that
  declare `logit_masks`; the others fall back to their prediction);
- `scoring`: the grid (`native`, or `space`: where the loop ran), distances in `mm` or `voxels` of that grid,
  the Dice variant (`standard`, or `plus_one`: SegVol's 2|P and R| / (|P| + |R| + 1)), empty targets (`sat`: both
  empty = 1, `nan`, `skip`: left out), the NSD tolerance (one number of mm, or per class as data:
  `tolerance_mm: {liver: 2.0, "*": 1.0}`, where `*` is every class not named and defaults to 1 mm; each row
  records the tolerance it was scored at), and what is reported (`per_click`, `auc`, `final`,
  `max_over_clicks`: only to reproduce a paper that reported it, labelled as such; `cases`: per case the mean
  over the classes present, as the SegFM challenge's table), the AUC (`normalised` to [0, 1], or `trapezoid`:
  the SegFM script's area over the click predictions with x = 0..N-1), the NSD rule `nsd_zero_at_dsc` (a
  case's NSD is 0 where its class-mean DSC is at most this), `time_limit_s_per_class` (a case's scores are 0
  where its model time exceeds this times its classes; applied on request), and `label_map: true`: a case's
  class masks are written into one label map in class order, later classes overwriting earlier ones, and each
  class is scored from that map (SAM-Med3D's current validate_paired_img_gt); `bench evaluate` builds its
  protocol (`bench.engine.evaluation.evaluation_spec`: no prompts, the grid, tolerance and empty rule given) with
  three more scoring fields that presets do not set: the `metrics` beyond DSC and NSD, an `ignore_label`, and
  `lesions` (how lesion-wise scores match lesions);
- `model_args`: options the protocol sets for models by name pattern (SAM's intensity path in SAM-Med3D's 2D
  baseline), under any the user gives;
- `rules`: each rule the preset reproduces, with the official file:line it comes from
  (`{rule: ..., official: "owner/repo@commit:path:line"}`), and `differences`: every way it knowingly departs
  from that official script (both shown by `bench protocols show NAME`).
Pure: a mapping in, a frozen `Protocol` out; no I/O (the files are read by `bench.engine.presets`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from fnmatch import fnmatchcase

from protocols.metrics import BASE_METRICS, EMPTY_POLICIES, check_tolerance
from protocols.prompts_clicks import FIRST_CLICKS, NEXT_CLICKS
from protocols.errors import BenchError

SPACES = ("native", "satds", "crop")
PROMPT_KINDS = ("text", "points", "boxes")
BOX_RULES = ("tight", "largest_component_exclusive", "segfm_mid_slice")
FEEDS = ("all", "newest")
ON_FAILURE = ("raise", "previous")
PROTOCOL_GRIDS = ("native", "space")
DISTANCES = ("mm", "voxels")
DICE_VARIANTS = ("standard", "plus_one")
EMPTY_TARGETS = (*EMPTY_POLICIES, "skip")  # `skip`: empty references are left out before scoring
REPORTS = ("per_click", "auc", "final", "max_over_clicks", "cases")
AUCS = ("normalised", "trapezoid")
ERRORS_FROM = ("prediction", "logits")
CLICK_POLICIES = tuple(sorted(set(FIRST_CLICKS) | set(NEXT_CLICKS)))


class ProtocolError(BenchError):
    """A protocol mapping with an unknown key or value; the message names the preset and the field."""

    kind = "protocol"


@dataclass(frozen=True)
class Space:
    grid: str = "native"
    spacing: tuple[float, ...] | None = None
    size: tuple[int, ...] | None = None
    centre: str = "label"
    canonical: bool = True
    clamp: tuple[float, float] | None = None


@dataclass(frozen=True)
class Prompts:
    kinds: tuple[str, ...] = ("points",)
    boxes: str = "tight"
    clicks: tuple[tuple[int, str], ...] = ((1, "center"), (2, "center_largest_error"))
    feed: str = "all"
    n_clicks: int = 5
    per_slice_axis: int | None = None
    segvol_points: tuple[int, int] | None = None
    seed: int = 0
    stop_at_perfect: bool = True
    on_failure: str = "raise"
    errors_from: str = "prediction"

    def policy(self, click: int) -> str:
        """The policy that makes click `click` (1-based): the last schedule entry starting at or before it."""
        return [name for start, name in self.clicks if start <= click][-1]

    def next_clicks_label(self) -> str:
        """The `prompt_policy` of click rows: the policy of clicks 2 and later (`ritm@2,random_error@3` when it
        changes; `first_click` holds the policy of click 1)."""
        clicks = self.clicks
        ranges = [(max(start, 2), policy) for (start, policy), following in zip(clicks, [*clicks[1:], (None, None)])
                  if following[0] is None or following[0] > max(start, 2)]
        return ranges[0][1] if len(ranges) == 1 else ",".join(f"{policy}@{start}" for start, policy in ranges)


@dataclass(frozen=True)
class LesionMatching:
    """How lesion-wise scores find and match lesions (`protocols.lesions`): the classes scored so (None: every
    class), the connectivity of a lesion (None: full, 26 in 3D and 8 in 2D), the matcher and its IoU threshold,
    and whether the files are instance label maps whose instances are the lesions."""

    classes: tuple[str, ...] | None = None
    connectivity: int | None = None
    matcher: str = "hungarian"
    match_iou: float = 0.5
    instance_maps: bool = False


EVALUATION_ONLY = {"metrics": list(BASE_METRICS), "ignore_label": None, "lesions": None}  # scoring fields: defaults


@dataclass(frozen=True)
class Scoring:
    grid: str = "native"
    distances: str = "mm"
    dice: str = "standard"
    empty: str = "sat"
    tolerance_mm: float = 1.0
    report: tuple[str, ...] = ("per_click", "auc", "final")
    auc: str = "normalised"
    nsd_zero_at_dsc: float | None = None
    time_limit_s_per_class: float | None = None
    class_tolerance_mm: tuple[tuple[str, float], ...] = ()
    label_map: bool = False
    metrics: tuple[str, ...] = BASE_METRICS
    ignore_label: int | None = None
    lesions: LesionMatching | None = None

    def tolerance_for(self, class_name: str) -> float:
        """The NSD tolerance of a class: its own when the preset names it, else `tolerance_mm`."""
        return dict(self.class_tolerance_mm).get(class_name, self.tolerance_mm)


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str = ""
    sources: tuple[str, ...] = ()
    space: Space = field(default_factory=Space)
    prompts: Prompts = field(default_factory=Prompts)
    scoring: Scoring = field(default_factory=Scoring)
    model_args: dict = field(default_factory=dict)
    rules: tuple[tuple[str, str], ...] = ()
    differences: tuple[str, ...] = ()
    version: int = 1  # bumped by a preset's author when its rules change: run.json records it, resume compares it

    def model_args_for(self, model: str) -> dict:
        """Options the protocol sets for a model (e.g. SAM's intensity path), by name pattern (`sam-vit-*`);
        later patterns win, and options given on the command line win over all of them."""
        out: dict = {}
        for pattern, options in self.model_args.items():
            if fnmatchcase(model, pattern):
                out.update(options)
        return out

    @property
    def interactive(self) -> bool:
        return "points" in self.prompts.kinds and self.prompts.segvol_points is None

    def to_json(self) -> dict:
        """The protocol as run.json records it. Fields at their defaults that only `bench evaluate` sets are left
        out, and so are the prompts of a protocol that gives none, so a model run's record is what it was before
        they existed (resuming compares it)."""
        data = asdict(self)
        data["scoring"]["metrics"] = list(self.scoring.metrics)
        data["scoring"] = {key: value for key, value in data["scoring"].items()
                           if key not in EVALUATION_ONLY or value != EVALUATION_ONLY[key]}
        if not self.prompts.kinds:
            del data["prompts"]
        return data


def evaluation_protocol(*, grid: str = "native", tolerance_mm: float = 1.0, empty: str = "nan",
                        metrics: Sequence[str] = BASE_METRICS, ignore_label: int | None = None,
                        lesions: LesionMatching | None = None) -> Protocol:
    """`bench evaluate`'s protocol: predictions on disk, no prompts, scored on the native grid or on SAT-DS's
    (`satds`: both sides taken to SAT-DS's 1 x 1 x 3 mm grid and scored there)."""
    satds = grid == "satds"
    return Protocol("evaluate", "Prediction files scored against the references.",
                    space=Space(grid="satds" if satds else "native"), prompts=Prompts(kinds=()),
                    scoring=Scoring(grid="space" if satds else "native", empty=empty, tolerance_mm=tolerance_mm,
                                    report=("final",), metrics=tuple(metrics), ignore_label=ignore_label,
                                    lesions=lesions))


def with_overrides(protocol: Protocol, *, n_clicks: int | None = None, seed: int | None = None) -> Protocol:
    """The protocol with another number of clicks or seed (e.g. SAM-Med3D's 10 clicks for its Tables 3-4); the
    changed values are part of the run's configuration like everything else."""
    if n_clicks is not None and n_clicks < 1:
        raise ProtocolError(f"protocol {protocol.name!r}: n_clicks must be >= 1, got {n_clicks}")
    prompts = replace(protocol.prompts, n_clicks=protocol.prompts.n_clicks if n_clicks is None else int(n_clicks),
                      seed=protocol.prompts.seed if seed is None else int(seed))
    return replace(protocol, prompts=prompts)


def _choice(preset: str, where: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ProtocolError(f"protocol {preset!r}: {where} = {value!r}; choose from {', '.join(map(str, allowed))}")


def _section(preset: str, data: Mapping, name: str, known: set[str]) -> Mapping:
    section = data.get(name) or {}
    if not isinstance(section, Mapping):
        raise ProtocolError(f"protocol {preset!r}: `{name}` must be a mapping")
    unknown = sorted(set(section) - known)
    if unknown:
        raise ProtocolError(f"protocol {preset!r}: unknown {name} field(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
    return section


def _floats(value) -> tuple[float, ...] | None:
    values = value if isinstance(value, list | tuple) else [value] * 3
    return None if value is None else tuple(float(v) for v in values)


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def _ints(value) -> tuple[int, ...] | None:
    values = value if isinstance(value, list | tuple) else [value] * 3
    return None if value is None else tuple(int(v) for v in values)


def parse_protocol(data: Mapping) -> Protocol:
    """A checked `Protocol` from a mapping (a parsed preset file); unknown keys or values are errors."""
    if not isinstance(data, Mapping) or "name" not in data:
        raise ProtocolError("a protocol needs a mapping with a `name`")
    name = str(data["name"])
    unknown = sorted(set(data) - {"name", "version", "description", "sources", "space", "prompts", "scoring",
                                  "model_args", "rules", "differences"})
    if unknown:
        raise ProtocolError(f"protocol {name!r}: unknown field(s) {', '.join(unknown)}")
    space_data = _section(name, data, "space", {"grid", "spacing", "size", "centre", "canonical", "clamp"})
    clamp = space_data.get("clamp")
    if clamp is not None and (not isinstance(clamp, list | tuple) or len(clamp) != 2 or clamp[0] >= clamp[1]):
        raise ProtocolError(f"protocol {name!r}: space.clamp must be [low, high] with low < high, got {clamp!r}")
    space = Space(str(space_data.get("grid", "native")), _floats(space_data.get("spacing")),
                  _ints(space_data.get("size")), str(space_data.get("centre", "label")),
                  _flag(name, "space.canonical", space_data.get("canonical", True)),
                  None if clamp is None else (float(clamp[0]), float(clamp[1])))
    _choice(name, "space.grid", space.grid, SPACES)
    _choice(name, "space.centre", space.centre, ("label",))
    if space.grid == "crop" and (space.spacing is None or space.size is None):
        raise ProtocolError(f"protocol {name!r}: a crop space needs `spacing` and `size`")
    if space.grid != "crop" and (not space.canonical or space.clamp is not None):
        raise ProtocolError(f"protocol {name!r}: space.canonical and space.clamp apply to a crop space only")
    prompt_data = _section(name, data, "prompts", {"kinds", "boxes", "clicks", "feed", "n_clicks", "per_slice_axis",
                                                   "segvol_points", "seed", "stop_at_perfect", "on_failure",
                                                   "errors_from"})
    defaults = Prompts()
    clicks = tuple((int(start), str(policy)) for start, policy in prompt_data.get("clicks", defaults.clicks))
    segvol = prompt_data.get("segvol_points")
    prompts = Prompts(
        kinds=tuple(prompt_data.get("kinds", defaults.kinds)), boxes=str(prompt_data.get("boxes", defaults.boxes)),
        clicks=clicks, feed=str(prompt_data.get("feed", defaults.feed)),
        n_clicks=int(prompt_data.get("n_clicks", defaults.n_clicks)),
        per_slice_axis=prompt_data.get("per_slice_axis"),
        segvol_points=None if segvol is None else (int(segvol[0]), int(segvol[1])),
        seed=int(prompt_data.get("seed", defaults.seed)),
        stop_at_perfect=bool(prompt_data.get("stop_at_perfect", defaults.stop_at_perfect)),
        on_failure=str(prompt_data.get("on_failure", defaults.on_failure)),
        errors_from=str(prompt_data.get("errors_from", defaults.errors_from)),
    )
    _choice(name, "prompts.on_failure", prompts.on_failure, ON_FAILURE)
    _choice(name, "prompts.errors_from", prompts.errors_from, ERRORS_FROM)
    for kind in prompts.kinds:
        _choice(name, "prompts.kinds", kind, PROMPT_KINDS)
    if not prompts.kinds:
        raise ProtocolError(f"protocol {name!r}: prompts.kinds is empty")
    _choice(name, "prompts.boxes", prompts.boxes, BOX_RULES)
    _choice(name, "prompts.feed", prompts.feed, FEEDS)
    if not clicks or clicks[0][0] != 1 or [s for s, _ in clicks] != sorted({s for s, _ in clicks}):
        raise ProtocolError(f"protocol {name!r}: prompts.clicks must start at click 1 and increase")
    for _, policy in clicks:
        _choice(name, "prompts.clicks policy", policy, CLICK_POLICIES)
    for start, policy in clicks[1:]:
        _choice(name, f"prompts.clicks policy from click {start}", policy, sorted(NEXT_CLICKS))
    if prompts.per_slice_axis is not None and prompts.per_slice_axis not in (0, 1, 2):
        raise ProtocolError(f"protocol {name!r}: prompts.per_slice_axis must be 0, 1 or 2")
    if prompts.segvol_points is not None and min(prompts.segvol_points) < 0:
        raise ProtocolError(f"protocol {name!r}: prompts.segvol_points must be two counts >= 0")
    if prompts.n_clicks < 1:
        raise ProtocolError(f"protocol {name!r}: prompts.n_clicks must be >= 1")
    scoring_data = _section(name, data, "scoring", {"grid", "distances", "dice", "empty", "tolerance_mm", "report",
                                                    "auc", "nsd_zero_at_dsc", "time_limit_s_per_class",
                                                    "label_map"})
    default_tolerance, class_tolerances = _tolerances(name, scoring_data.get("tolerance_mm", 1.0))
    scoring = Scoring(
        grid=str(scoring_data.get("grid", "native")), distances=str(scoring_data.get("distances", "mm")),
        dice=str(scoring_data.get("dice", "standard")), empty=str(scoring_data.get("empty", "sat")),
        tolerance_mm=default_tolerance,
        report=tuple(scoring_data.get("report", Scoring().report)), auc=str(scoring_data.get("auc", "normalised")),
        nsd_zero_at_dsc=_optional_float(scoring_data.get("nsd_zero_at_dsc")),
        time_limit_s_per_class=_optional_float(scoring_data.get("time_limit_s_per_class")),
        class_tolerance_mm=class_tolerances,
        label_map=_flag(name, "scoring.label_map", scoring_data.get("label_map", False)),
    )
    _choice(name, "scoring.auc", scoring.auc, AUCS)
    _choice(name, "scoring.grid", scoring.grid, PROTOCOL_GRIDS)
    _choice(name, "scoring.distances", scoring.distances, DISTANCES)
    _choice(name, "scoring.dice", scoring.dice, DICE_VARIANTS)
    _choice(name, "scoring.empty", scoring.empty, EMPTY_TARGETS)
    for item in scoring.report:
        _choice(name, "scoring.report", item, REPORTS)
    if scoring.label_map and scoring.grid != "native":
        raise ProtocolError(f"protocol {name!r}: scoring.label_map scores one map of all classes: it needs "
                            f"scoring.grid native")
    sources = data.get("sources") or ()
    model_args = data.get("model_args") or {}
    if not isinstance(model_args, Mapping) or not all(isinstance(v, Mapping) for v in model_args.values()):
        raise ProtocolError(f"protocol {name!r}: model_args must map model name patterns to options")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ProtocolError(f"protocol {name!r}: version must be a whole number >= 1, got {version!r}")
    return Protocol(name, str(data.get("description", "")).strip(), tuple(map(str, sources)), space, prompts, scoring,
                    {str(k): dict(v) for k, v in model_args.items()}, _rules(name, data.get("rules") or ()),
                    tuple(str(d).strip() for d in data.get("differences") or ()), version)


MERGED_SECTIONS = ("space", "prompts", "scoring", "model_args")


def merge_include(base: Mapping, child: Mapping) -> dict:
    """A preset that `include`s a base: the base's fields with the child's over them. The sections
    (`MERGED_SECTIONS`) merge field by field, so a child names only what it changes; any other field (name,
    version, description, sources, rules, differences) the child gives replaces the base's. The child must give
    its own `name`."""
    if "name" not in child:
        raise ProtocolError("a preset with `include` needs its own `name`")
    merged = {key: value for key, value in base.items() if key != "include"}
    for key, value in child.items():
        if key == "include":
            continue
        if key in MERGED_SECTIONS and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _tolerances(preset: str, value) -> tuple[float, tuple[tuple[str, float], ...]]:
    """(default tolerance, (class, tolerance) pairs) from a number or a `{class: mm}` mapping (`*`: the rest)."""
    per_class = dict(value) if isinstance(value, Mapping) else {"*": value}
    checked = {}
    for class_name, mm in per_class.items():
        try:
            checked[str(class_name)] = float(mm)
            check_tolerance(checked[str(class_name)])
        except (TypeError, ValueError):
            raise ProtocolError(f"protocol {preset!r}: scoring.tolerance_mm {class_name!r} = {mm!r}: a finite "
                                "number of mm >= 0") from None
    default = checked.pop("*", Scoring.tolerance_mm)
    return default, tuple(sorted(checked.items()))


def _flag(preset: str, where: str, value) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"protocol {preset!r}: {where} must be true or false, got {value!r}")
    return value


def _rules(preset: str, rules) -> tuple[tuple[str, str], ...]:
    """(rule, official file:line) pairs; each entry must name both."""
    out = []
    for entry in rules:
        if not isinstance(entry, Mapping) or set(entry) != {"rule", "official"}:
            raise ProtocolError(f"protocol {preset!r}: each of `rules` needs exactly `rule` and `official`")
        out.append((str(entry["rule"]).strip(), str(entry["official"]).strip()))
    return tuple(out)
