"""Typed model options: each family declares a dataclass, and a TOML table fills it.

    @dataclass(frozen=True)
    class DHNOptions:
        widths: tuple[int, ...] = (256, 256, 128)
        dropout: float = 0.0

    parse_options(DHNOptions, {"widths": [64, 64]}, "dhn")  # DHNOptions(widths=(64, 64), ...)

Types come from the annotations: ``int``, ``float``, ``bool``, ``str``, ``str | None``,
``tuple[int, ...]``, ``Literal[...]``. A bad key or value raises ``ConfigError`` naming it as
``model.KEY``; a dataclass may add a ``check()`` method for rules between keys.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from htaf.config import ConfigError


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is tuple:
        item = get_args(tp)[0]
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(
            item, "values"
        )
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if tp is type(None):
        return "none"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, str(tp)
    )


def _coerce(tp: Any, value: Any) -> Any:
    """``value`` as type ``tp``; raises ``TypeError`` when it is not one."""
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
    elif origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _coerce(arg, value)
            except TypeError:
                continue
    elif origin is tuple:
        if isinstance(value, list | tuple):
            return tuple(_coerce(get_args(tp)[0], v) for v in value)
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a family declared a type this parser does not know
        raise ConfigError(f"unsupported option type {tp!r}")
    raise TypeError(value)


def option_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation of an options dataclass."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse_options(cls: type, table: Mapping[str, Any] | None, family: str) -> Any:
    """An instance of the options dataclass ``cls`` from a (TOML) table of overrides."""
    table = dict(table or {})
    types_ = option_types(cls)
    unknown = sorted(set(table) - set(types_))
    if unknown:
        raise ConfigError(
            f"model family {family!r} has no option 'model.{unknown[0]}' "
            f"(its options: {', '.join(types_) or 'none'})"
        )
    values = {}
    for key, raw in table.items():
        try:
            values[key] = _coerce(types_[key], raw)
        except TypeError:
            raise ConfigError(
                f"option 'model.{key}' of family {family!r} must be "
                f"{_describe(types_[key])}, got {raw!r}"
            ) from None
    options = cls(**values)
    check = getattr(options, "check", None)
    if check is not None:
        try:
            check()
        except ValueError as err:
            raise ConfigError(f"model family {family!r}: {err}") from None
    return options


def defaults(cls: type) -> dict[str, Any]:
    """The options' defaults, as plain data (tuples become lists, as TOML writes them)."""
    out = {}
    for f in dataclasses.fields(cls):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


__all__ = ["defaults", "option_types", "parse_options"]
