"""The estimator both peers receive."""

from __future__ import annotations

from typing import Any

from htaf import estimators
from htaf.estimators import Estimator


def spike_estimator(name: str, mode: str | None, params: dict[str, Any]) -> Estimator:
    """``estimators.get(name, **params)`` with 0/1 spikes and ``mode`` (default: the
    estimator's own: HTAF smooth, surrogates hard)."""
    if not isinstance(name, str):
        raise TypeError(f"give the estimator by name (see `htaf estimators`), got {name!r}")
    if "signed" in params:
        raise ValueError("spikes are 0/1: the peers' estimators cannot be signed")
    est = estimators.get(name, **params)
    if mode is not None:
        est.mode = mode
    return est
