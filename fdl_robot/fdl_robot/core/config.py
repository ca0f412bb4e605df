"""Configuration dataclasses and the parameter mappings they are built from.

Every library setting has one home: a frozen dataclass next to the code it configures
(``TrackerConfig``, ``LiftingConfig``, ``DetectorConfig``, ``CameraConfig``,
``SafetyConfig``, ``PolicyInputsConfig``, ``ACTConfig``, ...), whose field defaults are the
defaults. Anything that configures it from outside (a ROS node's parameters, a command
line) reads those defaults with :func:`field_default` and builds the config by keyword
with :func:`from_mapping`, never positionally and never restating a value.

ROS parameters have no tuple type, so a list value given for a field whose default is a
tuple is converted to a tuple (frozen configs stay hashable and immutable).
"""
from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Mapping, TypeVar

__all__ = ["field_default", "from_mapping"]

C = TypeVar("C")


def field_default(config_cls: type, name: str) -> Any:
    """The default of field ``name`` of a dataclass (KeyError if there is no such field)."""
    if not is_dataclass(config_cls):
        raise TypeError(f"{config_cls!r} is not a dataclass")
    for f in fields(config_cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
            raise KeyError(f"{config_cls.__name__}.{name} has no default")
    raise KeyError(f"{config_cls.__name__} has no field '{name}'")


def from_mapping(config_cls: type[C], values: Mapping[str, Any]) -> C:
    """``config_cls(**{k: values[k]})`` for the keys of ``values`` that are its fields.

    Other keys are ignored (a node's parameters hold topics as well); missing fields keep
    their defaults.
    """
    kwargs = {}
    for f in fields(config_cls):
        if f.name in values:
            value = values[f.name]
            if isinstance(value, list) and isinstance(f.default, tuple):
                value = tuple(value)
            kwargs[f.name] = value
    return config_cls(**kwargs)
