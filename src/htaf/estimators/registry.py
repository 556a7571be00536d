"""One registry of estimators, looked up by name: ``get("htaf", alpha0=2, alpha1=11)``.

Names may carry parameters, as the CLI and the study labels write them: ``"htaf(2,11)"`` or
``"scaled_sigmoid(beta=30)"``; positional values follow the order of ``defaults``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

_REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)

#: Continuous activations for reference rows (not binary; ``harden`` leaves them alone).
REFERENCE_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class UnknownEstimatorError(ValueError):
    """Raised for a name that is not registered; the message lists the close matches."""


@dataclass(frozen=True)
class EstimatorInfo:
    name: str
    description: str
    defaults: dict[str, float | str]
    source: str
    forward: str
    backward: str
    natural: str
    default_mode: str
    stochastic: bool
    #: True where the backward passes the upstream gradient unchanged in both output spaces;
    #: else it scales with the map s = 2u − 1 between {0, 1} and ±1 outputs.
    space_independent: bool


def register(cls: T) -> T:
    """Class decorator adding an estimator to the registry under ``cls.name``."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"estimator name {cls.name!r} is empty or already registered")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    return sorted(_REGISTRY)


def _unknown(name: str, choices: list[str]) -> UnknownEstimatorError:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownEstimatorError(
        f"unknown estimator {name!r}{hint} (available: {', '.join(choices)})"
    )


_SPEC = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(?:\((.*)\))?\s*$")


def parse_spec(spec: str) -> tuple[str, dict[str, float | str]]:
    """Split ``"htaf(2, alpha1=11)"`` into ``("htaf", {"alpha0": 2.0, "alpha1": 11.0})``.

    Values are numbers, or ``auto`` for a parameter the estimator chooses from the data
    (``htaf(auto)``). A parameter given twice, or a positional value after a named one, is
    refused: specs become run labels, so one spelling must mean one estimator.
    """
    match = _SPEC.match(spec)
    if not match:
        raise UnknownEstimatorError(f"cannot parse estimator spec {spec!r}; use name(a, b=c)")
    name, args = match.group(1), match.group(2)
    cls = _REGISTRY.get(name)
    order = list(cls.defaults) if cls else []
    params: dict[str, float | str] = {}
    named = False
    for i, item in enumerate(a for a in (args or "").split(",") if a.strip()):
        key, eq, value = item.partition("=") if "=" in item else ("", "", item)
        key = key.strip()
        if eq:
            named = True
        elif named:
            raise ValueError(f"in {spec!r}, positional value {value.strip()!r} follows a named one")
        else:
            key = order[i] if i < len(order) else f"arg{i}"
        if key in params:
            raise ValueError(f"parameter {key!r} is given twice in {spec!r}")
        params[key] = _value(value, key, spec)
    return name, params


def _value(text: str, key: str, spec: str) -> float | str:
    text = text.strip()
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"parameter {key!r} of {spec!r} is not a number: {text!r}") from None


def get(name: str, **params: Any) -> nn.Module:
    """Build the estimator called ``name`` (optionally with parameters in the name)."""
    base, spec_params = parse_spec(name)
    if base not in _REGISTRY:
        raise _unknown(base, names())
    return _REGISTRY[base](**{**spec_params, **params})


def activation(name: str, **params: Any) -> nn.Module:
    """An estimator, or a continuous reference activation (``relu``, ``tanh``, ...)."""
    base = parse_spec(name)[0]
    if base in REFERENCE_ACTIVATIONS:
        return REFERENCE_ACTIVATIONS[base]()
    if base not in _REGISTRY:
        raise _unknown(base, names() + sorted(REFERENCE_ACTIVATIONS))
    return get(name, **params)


def is_binary(name: str) -> bool:
    """True for registered estimators, False for the continuous reference activations."""
    return parse_spec(name)[0] in _REGISTRY


def has_smooth_forward(name: str) -> bool:
    """Whether ``name``'s smooth forward is a model of its own
    (:attr:`Estimator.smooth_is_forward`); a continuous reference (``relu``) always is."""
    return not is_binary(name) or bool(get(name).smooth_is_forward)


def available() -> list[EstimatorInfo]:
    """Every registered estimator with its description, defaults, formulas and source."""
    return [
        EstimatorInfo(
            name=cls.name,
            description=cls.description,
            defaults=dict(cls.defaults),
            source=cls.source,
            forward=cls.forward_formula,
            backward=cls.backward_formula,
            natural=cls.natural,
            default_mode=cls.default_mode,
            stochastic=cls.stochastic,
            space_independent=cls.space_independent,
        )
        for cls in (_REGISTRY[n] for n in names())
    ]
