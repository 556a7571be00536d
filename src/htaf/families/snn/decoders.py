"""Decoders: the output layer's activity over T steps in, logits ``(B, K)`` out.

* ``count``: spike count ``Σ_t s_t`` (the output layer spikes; snnTorch's rate-coded
  cross-entropy): logits in [0, T];
* ``membrane``: mean membrane of a non-spiking output layer, a leaky integrator
  ``v_t = β v_{t-1} + x_t`` started at rest: ``(1/T) Σ_t v_t``. It is linear in the currents,
  ``Σ_t w_t x_t`` with ``w_t = (1 - β^(T-t)) / ((1 - β) T)`` (``(T - t)/T`` for β = 1), which is
  how it is computed: no state to save;
* ``first_spike``: ``T - t_first`` for the first spike at step ``t_first`` (0 if silent),
  written ``Σ_t (T - t) s_t Π_{t'<t} (1 - s_t')`` so that smooth spikes and surrogate
  gradients reach it: the earlier, the larger.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DECODERS", "first_spike", "mean_membrane", "spike_count"]

DECODERS = ("count", "membrane", "first_spike")


def spike_count(spikes: Tensor) -> Tensor:
    """``Σ_t s_t`` over the time dimension (dim 0)."""
    return spikes.sum(0)


def membrane_weights(steps: int, beta: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """``w_t`` of :func:`mean_membrane`, ``t = 0..T-1``."""
    remaining = torch.arange(steps, 0, -1, dtype=torch.float64)  # T - t
    w = remaining if beta == 1.0 else (1 - beta**remaining) / (1 - beta)
    return (w / steps).to(dtype)


def mean_membrane(currents: Tensor, beta: float) -> Tensor:
    """Mean over T of a leaky integrator's membrane driven by ``currents`` ``(T, B, K)``."""
    w = membrane_weights(currents.shape[0], beta, currents.dtype).to(currents.device)
    return torch.tensordot(w, currents, dims=([0], [0]))


def first_spike(spikes: Tensor) -> Tensor:
    """``T - t_first`` (0 for a silent output), differentiable through the spikes."""
    steps = spikes.shape[0]
    silent_before = torch.cumprod(1 - spikes, 0)
    first = spikes * torch.cat([torch.ones_like(spikes[:1]), silent_before[:-1]])
    score = torch.arange(steps, 0, -1, dtype=spikes.dtype, device=spikes.device)
    return torch.tensordot(score, first, dims=([0], [0]))
