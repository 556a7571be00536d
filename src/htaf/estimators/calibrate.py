"""Data-dependent parameters: ``htaf(auto)`` chooses alpha0 from the first inputs it sees.

    model = nn.Sequential(nn.Linear(30, 64), htaf.get("htaf"), nn.Linear(64, 1))
    htaf.calibrate(model, x_batch)        # {'1': 0.41}: alpha0 of each htaf(auto), by layer

Without this call each ``htaf(auto)`` calibrates itself on its first forward; calling it first
picks the batch, runs the layers in forward order (each sees inputs shaped by the layers
already calibrated, as LSUV does), and names the layer in any error.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from htaf.estimators.smooth import HTAF

__all__ = ["auto_estimators", "calibrate"]


def auto_estimators(model: nn.Module) -> list[tuple[str, HTAF]]:
    """``(layer name, estimator)`` for every ``htaf(auto)`` in ``model``, named for errors."""
    found = [(name or "<model>", m) for name, m in model.named_modules()
             if isinstance(m, HTAF) and m.auto]  # fmt: skip
    for name, est in found:
        est.where = f"htaf(auto) at layer {name!r}"
    return found


def calibrate(model: nn.Module, *inputs: Any, again: bool = False, **kwargs: Any) -> dict:
    r"""Calibrate every ``htaf(auto)`` in ``model`` on one forward of ``model(*inputs)``.

    Each sets :math:`\alpha_0 = z^\ast(\alpha_1)/Q_{\text{live}}(|x|)` on its first input
    (:func:`htaf.functional.calibrate_alpha0`). ``again=True`` recalibrates estimators that
    already have a value. The forward runs without gradients, in the model's current
    train/eval mode (so batch norm normalises by the batch, as in training), and leaves every
    buffer (batch-norm running statistics, neuron state) as it found it.

    Returns ``{layer: alpha0}``. Raises ValueError naming the layer for an input that is
    empty, constant or not finite, and for an estimator the forward never reached.
    """
    autos = auto_estimators(model)
    if again:
        for _, est in autos:
            est.uncalibrate()
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    missed = [est.deferred or f"{est.where} saw no input" for _, est in autos if est.pending]
    if missed:
        raise ValueError("; ".join(missed) + ": calibrate on a batch that reaches every layer")
    return {name: est.alpha0 for name, est in autos}
