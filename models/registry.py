"""Models by name (lm-evaluation-harness style): the CLI, presets and tests say "sat-nano" or "region_growing".

Built-in entries name a module and a factory (`module:factory`), imported only when asked for, so heavy
back-ends (torch, checkpoints) load only for the model in use. A factory builds the model without any checkpoint,
tokenizer folder or network access (weights random until `load_checkpoint`), and does no data-dependent work, so
it also runs under `with torch.device("meta")`. `register_model` adds a factory under a new name.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from models.base import Model

_BUILTIN = {
    "region_growing": "models.reference.region_growing:RegionGrowing",
    "oracle": "models.reference.oracle:PerturbationOracle",
    "sat-nano": "models.sat:sat_nano",
    "sat-pro": "models.sat:sat_pro",
    "segvol": "models.segvol:segvol",
    "sam-med3d": "models.sam_med3d:sam_med3d",
    "sam-med3d-turbo": "models.sam_med3d:sam_med3d_turbo",
    "sam-vit-b": "models.sam:sam_vit_b",
    "sam-vit-l": "models.sam:sam_vit_l",
    "sam-vit-h": "models.sam:sam_vit_h",
    "sam-med2d": "models.sam_med2d:sam_med2d",
    "nninteractive": "models.nninteractive:nninteractive",
    "nnunet": "baselines.nnunet:nnunet",
}
_REGISTERED: dict[str, Callable[..., Model]] = {}


class ModelUnavailable(ValueError):
    """A registered model whose implementation cannot be imported here (not written yet, or a missing package)."""


def register_model(name: str) -> Callable[[Callable[..., Model]], Callable[..., Model]]:
    """Decorator: register a model factory (a class or function taking keyword arguments) under `name`."""
    def decorate(factory: Callable[..., Model]) -> Callable[..., Model]:
        if name in _BUILTIN or name in _REGISTERED:
            raise ValueError(f"a model named {name!r} is already registered")
        _REGISTERED[name] = factory
        return factory
    return decorate


def unregister_model(name: str) -> None:
    """Remove a model added with `register_model` (tests register throw-away models)."""
    _REGISTERED.pop(name, None)


def model_names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def model_factory(name: str) -> Callable[..., Model]:
    """The factory registered under `name`; ModelUnavailable names the module when it cannot be imported."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    module_name, factory = _BUILTIN[name].split(":")
    try:
        module = import_module(module_name)
    except ImportError as error:
        raise ModelUnavailable(f"model {name!r} ({_BUILTIN[name]}) is not available here: {error}") from error
    if not hasattr(module, factory):
        raise ModelUnavailable(f"model {name!r}: module {module_name} has no factory {factory!r}")
    return getattr(module, factory)


def get_model(name: str, **options) -> Model:
    """A new model instance by name, with its keyword options; unknown names list the known ones."""
    return model_factory(name)(**options)


def describe(name: str) -> dict:
    """What `bench models show` prints: capabilities, version, checkpoint needs and the parameter count of the
    network built on the meta device (no memory, no weights)."""
    factory = model_factory(name)
    try:
        import torch

        with torch.device("meta"):
            model = factory()
    except ImportError:
        model = factory()
    capabilities = model.capabilities
    info = model.checkpoint_info
    return {
        "name": name, "class": f"{type(model).__module__}.{type(model).__qualname__}", "version": model.version,
        "parameters": model.provenance().parameters, "dimensions": sorted(capabilities.ndims),
        "prompts": sorted(capabilities.prompts), "accumulates_clicks": capabilities.accumulates_clicks,
        "previous_logits": capabilities.previous_logits, "input_grid": capabilities.input_grid,
        "targets_per_call": capabilities.targets_per_call, "devices": sorted(capabilities.devices),
        "checkpoint_files": list(info.files), "download": info.download, "published_sha256": info.sha256,
    }
