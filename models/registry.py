"""Models by name (lm-evaluation-harness style): the CLI, configs and tests all say "region_growing" or "oracle".

Built-in entries name a module and a factory, imported only when asked for, so heavy back-ends (torch,
checkpoints) load only for the model in use. `register_model` adds a factory under a new name.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from models.base import Model

_BUILTIN = {
    "region_growing": "models.reference.region_growing:RegionGrowing",
    "oracle": "models.reference.oracle:PerturbationOracle",
}
_REGISTERED: dict[str, Callable[..., Model]] = {}


def register_model(name: str) -> Callable[[Callable[..., Model]], Callable[..., Model]]:
    """Decorator: register a model factory (a class or function taking keyword arguments) under `name`."""
    def decorate(factory: Callable[..., Model]) -> Callable[..., Model]:
        if name in _BUILTIN or name in _REGISTERED:
            raise ValueError(f"a model named {name!r} is already registered")
        _REGISTERED[name] = factory
        return factory
    return decorate


def model_names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def get_model(name: str, **options) -> Model:
    """A new model instance by name, with its keyword options; unknown names list the known ones."""
    if name in _REGISTERED:
        return _REGISTERED[name](**options)
    if name not in _BUILTIN:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    module, factory = _BUILTIN[name].split(":")
    return getattr(import_module(module), factory)(**options)
