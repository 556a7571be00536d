"""Schedules that move an estimator hyperparameter during training (continuation).

A schedule is a plain object with ``step()``; call it from any loop, once per iteration or once
per epoch — your choice, it only counts calls::

    sched = Schedule(model, "alpha1", linear(4.0, 11.0, steps=50))
    for epoch in range(50):
        train_one_epoch(model)
        sched.step()

``hashnet()`` reproduces HashNet's ``beta = (1 + 0.005 t)^0.5`` for ``tanh_continuation``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn

from htaf.estimators.base import estimators_in

Curve = Callable[[int], float]


def constant(value: float) -> Curve:
    return lambda t: value


def _progress(t: int, steps: int, hold: int) -> float:
    """Where ``t`` is on a ramp that waits ``hold`` calls, then takes ``steps``: 0 to 1."""
    if hold < 0 or steps < 0:
        raise ValueError(f"schedule steps and hold must be >= 0, got steps={steps}, hold={hold}")
    return min(max(t - hold, 0), steps) / max(steps, 1)


def linear(start: float, end: float, steps: int, hold: int = 0) -> Curve:
    """``start + (end - start) * p`` with ``p = clip((t - hold) / steps, 0, 1)``: ``start``
    for the first ``hold`` calls, then a straight ramp to ``end`` over ``steps``."""
    _progress(0, steps, hold)
    return lambda t: start + (end - start) * _progress(t, steps, hold)


def exponential(start: float, end: float, steps: int, hold: int = 0) -> Curve:
    """Geometric interpolation ``start * (end/start)^p``, ``p`` as in :func:`linear`."""
    _progress(0, steps, hold)
    return lambda t: start * (end / start) ** _progress(t, steps, hold)


def cosine(start: float, end: float, steps: int, hold: int = 0) -> Curve:
    """Half-cosine ramp ``end + (start - end) (1 + cos(pi p)) / 2``, ``p`` as in
    :func:`linear`."""
    _progress(0, steps, hold)
    return lambda t: end + (start - end) * (1 + math.cos(math.pi * _progress(t, steps, hold))) / 2


def hashnet(gamma: float = 0.005, beta0: float = 1.0) -> Curve:
    """HashNet's continuation ``beta = beta0 * (1 + gamma * t)^0.5`` (t counts iterations)."""
    return lambda t: beta0 * (1 + gamma * t) ** 0.5


CURVES: dict[str, Callable[..., Curve]] = {
    "constant": constant,
    "linear": linear,
    "exponential": exponential,
    "cosine": cosine,
    "hashnet": hashnet,
}


class Schedule:
    """Set ``param`` of every estimator in ``model`` (optionally only those named ``only``)
    to ``curve(t)``, where ``t`` counts calls to :meth:`step`."""

    def __init__(self, model: nn.Module, param: str, curve: Curve, *, only: str | None = None):
        self.model, self.param, self.curve, self.only = model, param, curve, only
        self.t = 0
        if not self.targets():
            raise ValueError(f"no estimator in the model has a parameter {param!r}")
        self.apply()

    @classmethod
    def from_config(cls, model: nn.Module, config: dict[str, Any]) -> Schedule:
        """Build from ``{"param": "alpha1", "kind": "linear", "start": 4, "end": 11, ...}``."""
        config = dict(config)
        param, kind = config.pop("param"), config.pop("kind")
        only = config.pop("only", None)
        config.pop("unit", None)
        if kind not in CURVES:
            raise ValueError(f"unknown schedule kind {kind!r} (choose from {', '.join(CURVES)})")
        return cls(model, param, CURVES[kind](**config), only=only)

    def targets(self) -> list[nn.Module]:
        return [
            est
            for est in estimators_in(self.model)
            if self.param in est.defaults and (self.only is None or est.name == self.only)
        ]

    @property
    def value(self) -> float:
        return float(self.curve(self.t))

    def apply(self) -> None:
        for est in self.targets():
            est.set_param(self.param, self.value)

    def step(self) -> float:
        """Advance one unit and return the new value."""
        self.t += 1
        self.apply()
        return self.value

    def state_dict(self) -> dict[str, int]:
        return {"t": self.t}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.t = int(state["t"])
        self.apply()
