"""Models by name (lm-evaluation-harness style): the CLI, presets and tests say "sat-nano" or "region_growing".

Built-in entries name a module and a factory (`module:factory`), imported only when asked for, so heavy
back-ends (torch, checkpoints) load only for the model in use. A factory builds the model without any checkpoint,
tokenizer folder or network access (weights random until `load_checkpoint`), and does no data-dependent work, so
it also runs under `with torch.device("meta")`. `register_model` adds a factory under a new name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points

from models.adapters import SliceWise
from models.base import Capabilities, Model, ModelOptionError
from protocols.errors import BenchError


@dataclass(frozen=True)
class Entry:
    """A built-in model: its factory (`module:function`), default options, whether it is a 2D model run slice
    by slice on volumes (`models.adapters.SliceWise`, axial), and whether its factory takes the weights itself
    (`checkpoint=`: a trained-model folder) instead of `Model.load_checkpoint` after construction.

    `prompts`, `input_grid` and `parameters` (of the network built with the default options; None when it is
    built from a trained-model folder) are what `bench models list` shows without importing the model (torch
    alone takes seconds); tests/test_models.py pins them to the class's capabilities and to the network built
    on the meta device."""

    target: str
    options: dict = field(default_factory=dict)
    slicewise: bool = False
    checkpoint_argument: bool = False
    prompts: tuple[str, ...] = ()
    input_grid: str = "native"
    parameters: int | None = None


_CLICKS = ("boxes", "points")
_BUILTIN = {
    "region_growing": Entry("models.reference.region_growing:RegionGrowing", prompts=_CLICKS, parameters=0),
    "oracle": Entry("models.reference.oracle:PerturbationOracle", prompts=(*_CLICKS, "reference", "text"),
                    parameters=0),
    "sat-nano": Entry("models.sat:sat_nano", prompts=("text",), input_grid="satds", parameters=109_194_624),
    "sat-pro": Entry("models.sat:sat_pro", prompts=("text",), input_grid="satds", parameters=475_561_344),
    "segvol": Entry("models.segvol.model:SegVol", prompts=("boxes", "text"), parameters=180_890_064),
    "sam-med3d": Entry("models.sam_med3d:sam_med3d", prompts=("points",), parameters=100_509_232),
    "sam-med3d-turbo": Entry("models.sam_med3d:sam_med3d_turbo", prompts=("points",), parameters=100_509_232),
    "sam-vit-b": Entry("models.sam.model:sam", {"variant": "vit_b"}, slicewise=True, prompts=_CLICKS,
                       parameters=93_735_472),
    "sam-vit-l": Entry("models.sam.model:sam", {"variant": "vit_l"}, slicewise=True, prompts=_CLICKS,
                       parameters=312_342_832),
    "sam-vit-h": Entry("models.sam.model:sam", {"variant": "vit_h"}, slicewise=True, prompts=_CLICKS,
                       parameters=641_090_608),
    "sam-med2d": Entry("models.sam.model:sam_med2d", slicewise=True, prompts=_CLICKS, parameters=271_241_776),
    "nninteractive": Entry("models.nninteractive.session:NnInteractive", checkpoint_argument=True, prompts=_CLICKS),
}
PLUGINS = "medseg_bench.models"  # entry-point group: packages above models/ (baselines/) add their models here
_REGISTERED: dict[str, Callable[..., Model]] = {}


@cache
def shipped_entries() -> dict[str, Entry]:
    """The models this project ships: those of models/ and those a package above it declares as an `Entry` in
    the `medseg_bench.models` entry points of pyproject.toml (the nnU-Net specialists of baselines/), so models/
    never names a package above it."""
    entries = dict(_BUILTIN)
    for point in entry_points(group=PLUGINS):
        entry = point.load()
        if not isinstance(entry, Entry):
            raise TypeError(f"entry point {point.name} = {point.value} is not a models.registry.Entry")
        entries[point.name] = entry
    return entries


class ModelUnavailable(BenchError):
    """A model that cannot be built here: an unknown name, or an implementation that cannot be imported (not
    written yet, or a missing package)."""

    kind = "model"



def register_model(name: str) -> Callable[[Callable[..., Model]], Callable[..., Model]]:
    """Decorator: register a model factory (a class or function taking keyword arguments) under `name`."""
    def decorate(factory: Callable[..., Model]) -> Callable[..., Model]:
        if name in shipped_entries() or name in _REGISTERED:
            raise ValueError(f"a model named {name!r} is already registered")
        _REGISTERED[name] = factory
        return factory
    return decorate


def unregister_model(name: str) -> None:
    """Remove a model added with `register_model` (tests register throw-away models)."""
    _REGISTERED.pop(name, None)


def model_names() -> list[str]:
    return sorted(set(shipped_entries()) | set(_REGISTERED))


def _target(entry: Entry, name: str) -> Callable[..., Model]:
    """The class or factory function an entry names, imported; ModelUnavailable names the module when it
    cannot be imported."""
    module_name, function = entry.target.split(":")
    try:
        module = import_module(module_name)
    except ImportError as error:
        raise ModelUnavailable(f"model {name!r} ({entry.target}) is not available here: {error}") from error
    if not hasattr(module, function):
        raise ModelUnavailable(f"model {name!r}: module {module_name} has no factory {function!r}")
    return getattr(module, function)


def model_factory(name: str) -> Callable[..., Model]:
    """A function building the model registered under `name` from keyword options (defaults bound, 2D models
    wrapped slice-wise); ModelUnavailable names the module when it cannot be imported."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in shipped_entries():
        raise ModelUnavailable(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    entry = shipped_entries()[name]
    factory = _target(entry, name)

    def build(**options) -> Model:
        model = factory(**{**entry.options, **options})
        return SliceWise(model=model, axis=2) if entry.slicewise else model

    return build


def takes_checkpoint(name: str) -> bool:
    """Whether the model's factory takes its weights itself (`checkpoint=`, e.g. a trained-model folder)."""
    return name in shipped_entries() and shipped_entries()[name].checkpoint_argument


def get_model(name: str, **options) -> Model:
    """A new model instance by name, with its keyword options; unknown names list the known ones, a missing
    or unknown option is named."""
    factory = model_factory(name)
    try:
        return factory(**options)
    except TypeError as error:
        if "required" in str(error) or "unexpected keyword" in str(error):
            raise ModelOptionError(f"model {name!r}: {error} (options go in --model-args key=value; weights in "
                             "--checkpoint)") from None
        raise


def describe(name: str) -> dict:
    """What `bench models show` prints: capabilities, version, checkpoint needs and the parameter count of the
    network built on the meta device (no memory, no weights)."""
    try:
        import torch

        with torch.device("meta"):
            model = get_model(name)
    except ImportError:
        model = get_model(name)
    capabilities = model.capabilities
    info = model.checkpoint_info
    return {
        "name": name, "class": f"{type(model).__module__}.{type(model).__qualname__}", "version": model.version,
        "parameters": model.provenance().parameters, "dimensions": sorted(capabilities.ndims),
        "prompts": sorted(capabilities.prompts), "accumulates_clicks": capabilities.accumulates_clicks,
        "previous_logits": capabilities.previous_logits, "keeps_history": capabilities.keeps_history,
        "input_grid": capabilities.input_grid,
        "targets_per_call": capabilities.targets_per_call, "devices": sorted(capabilities.devices),
        "checkpoint_files": list(info.files), "download": info.download, "published_sha256": info.sha256,
    }


def model_class(name: str) -> type[Model]:
    """The class the built-in entry `name` builds (before slice-wise wrapping), without building it: the entry
    itself or its factory's return annotation."""
    if name not in shipped_entries():
        raise ModelUnavailable(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    cls = _built_class(_target(shipped_entries()[name], name))
    if cls is None:
        raise TypeError(f"model {name!r}: {shipped_entries()[name].target} does not say which Model class it builds")
    return cls


def _built_class(factory: Callable[..., Model]) -> type[Model] | None:
    """The Model class a factory builds: the factory itself when it is one, else its return annotation (None
    when it does not say)."""
    cls = factory if isinstance(factory, type) else inspect.signature(factory, eval_str=True).return_annotation
    return cls if isinstance(cls, type) and issubclass(cls, Model) else None


def declared_devices(name: str) -> frozenset[str]:
    """The devices model `name` declares, read from its class without building it (`--device auto` picks from
    them). A registered factory that does not say which class it builds (no return annotation) declares CPU."""
    if name in _REGISTERED:
        cls = _built_class(_REGISTERED[name])
        return cls.capabilities.devices if cls is not None else frozenset({"cpu"})
    return model_capabilities(name).devices


def model_capabilities(name: str) -> Capabilities:
    """What the built-in model `name` declares with its default options, read from class data (no model is
    built): its class's `capabilities`, in slice-wise form for a 2D model run slice by slice."""
    capabilities = model_class(name).capabilities
    return SliceWise.capabilities_of(capabilities) if shipped_entries()[name].slicewise else capabilities
