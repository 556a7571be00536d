"""Neuron modules: thin wrappers of :mod:`~htaf.families.snn.functional` and the fused operator.

Multi-step modules take ``(T, B, ...)`` and return spikes ``(T, B, ...)``::

    lif = LIF(beta=0.9, spike_fn="htaf")
    spikes = lif(currents)                   # (T, B, N) -> (T, B, N)
    out = lif.run(currents)                  # spikes, membrane (T, B, N) and the last state

The state lives inside one call and starts at rest, so there is no ``reset_net`` to forget
between batches (the peers' most common user bug). Single-step cells keep the state explicit,
for online and streaming use::

    cell = LIFCell(beta=0.9)
    v = None
    for x_t in stream:
        s_t, v = cell(x_t, v)

Each module owns its estimator (``self.spike``): a name builds a new one per module (two layers
built from ``"htaf"`` have two estimators, each with its own state), an estimator module is
used as given. ``htaf.harden(model)`` / ``soften`` switch its forward like any other
estimator. The reset is detached by default (``detach_reset=True``, as in the snn family; see
:mod:`~htaf.families.snn.functional`); pass ``detach_reset=False`` for SpikingJelly's
default. Multi-step modules run the fused operator
(:func:`~htaf.families.snn.fused.neuron_sequence`); under ``torch.no_grad()`` their spikes come
from calling ``self.spike`` on the whole membrane sequence, so forward hooks on the estimator
(htaf's activation statistics) see every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from htaf import estimators
from htaf.estimators import Estimator
from htaf.families.snn import functional as SF
from htaf.families.snn.fused import NeuronSequence, neuron_sequence

__all__ = ["IF", "LIF", "NEURONS", "PLIF", "IFCell", "LIFCell", "PLIFCell", "make_neuron"]


def _estimator(spike_fn: str | nn.Module, params: dict[str, Any]) -> Estimator:
    """A new estimator per layer from a name (its own mode), or the given module."""
    if isinstance(spike_fn, str):
        return SF.spike_estimator(estimators.get(spike_fn, **params))
    if params:
        raise ValueError("estimator parameters go with a spike_fn name, not an estimator module")
    return SF.spike_estimator(spike_fn)


def check_sequence(x: Tensor, who: str) -> None:
    """A multi-step module's input must be ``(T, B, ...)``: time, batch, then the neurons."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who} takes a tensor, got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(
            f"{who} is multi-step: it takes (T, B, ...) input with a time dimension first "
            f"(at least 3 dims), got shape {tuple(x.shape)}; for one step use "
            f"{who}Cell, or add the time dimension with x.unsqueeze(0)"
        )
    if x.shape[0] < 1:
        raise ValueError(f"{who}: the time dimension T must be >= 1, got shape {tuple(x.shape)}")


class _Neuron(nn.Module):
    """Shared by the multi-step modules: parameters, estimator, backend, the run."""

    params: SF.IFParameters

    def __init__(self, spike_fn: str | nn.Module, backend: str, params: dict[str, Any]):
        super().__init__()
        self.spike = _estimator(spike_fn, params)
        self.backend = backend
        #: Called with every run's NeuronSequence (statistics of the model around it).
        self.observer: Callable[[NeuronSequence], None] | None = None
        #: ``[v]`` carries the state from one run into the next (time chunks); None: at rest.
        self.carry: list[Tensor | None] | None = None

    def _beta(self) -> Tensor | float:
        return self.params.beta

    def run(
        self, x: Tensor, v0: Tensor | None = None, *, steps: int | None = None
    ) -> NeuronSequence:
        """Spikes and membrane over time; ``steps=T`` holds a ``(B, ...)`` input for T steps."""
        if steps is None:
            check_sequence(x, type(self).__name__)
        if v0 is None and self.carry is not None:
            v0 = self.carry[0]
        out = None
        if torch.compiler.is_compiling():
            # Dynamo runs this import rather than tracing it: the operators register lazily.
            from htaf.families.snn import _compiled

            out = _compiled.neuron_sequence(x, self.params, self.spike, beta=self._beta(), v0=v0,
                                            steps=steps, backend=self.backend)  # fmt: skip
        if out is None:
            out = neuron_sequence(x, self.params, self.spike, beta=self._beta(), v0=v0,
                                  steps=steps, backend=self.backend)  # fmt: skip
        if not torch.is_grad_enabled():  # let forward hooks on the estimator see every step
            out.spikes = self.spike(out.membrane - self.params.threshold)
        if self.carry is not None:
            self.carry[0] = out.v
        if self.observer is not None:
            self.observer(out)
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x).spikes

    @property
    def hard(self) -> bool:
        """Whether the spikes are exactly 0/1 (the estimator's step forward)."""
        return self.spike.mode == "hard" or not self.spike.has_primitive

    def extra_repr(self) -> str:
        return f"{self.params}, spike_fn={self.spike.name!r}"


class IF(_Neuron):
    """Multi-step integrate-and-fire: ``h = v + x``; fire at ``h >= threshold``."""

    def __init__(
        self,
        threshold: float = 1.0,
        *,
        reset: str = "soft",
        v_reset: float = 0.0,
        detach_reset: bool = SF.DETACH_RESET,
        spike_fn: str | nn.Module = "htaf",
        backend: str = "auto",
        **estimator_params: Any,
    ):
        super().__init__(spike_fn, backend, estimator_params)
        self.params = SF.IFParameters(threshold, reset, v_reset, detach_reset)  # type: ignore[arg-type]


class LIF(_Neuron):
    """Multi-step leaky integrate-and-fire: ``h = β v + x`` (``β = 1 - 1/tau`` if ``tau``).

    ``detach_reset=True`` (the default, as in the snn family) keeps the spike out of the
    reset's gradient; ``spike_fn`` is a name (a new estimator for this module) or an estimator.
    """

    def __init__(
        self,
        beta: float = 0.9,
        *,
        tau: float | None = None,
        threshold: float = 1.0,
        reset: str = "soft",
        v_reset: float = 0.0,
        detach_reset: bool = SF.DETACH_RESET,
        decay_input: bool = False,
        spike_fn: str | nn.Module = "htaf",
        backend: str = "auto",
        **estimator_params: Any,
    ):
        super().__init__(spike_fn, backend, estimator_params)
        beta = SF.beta_from_tau(tau) if tau is not None else SF.check_beta(beta)
        self.params = SF.LIFParameters(
            threshold,
            reset,
            v_reset,
            detach_reset,
            beta=beta,
            decay_input=decay_input,  # type: ignore[arg-type]
        )


class PLIF(_Neuron):
    """Multi-step parametric LIF (Fang et al. 2021): ``1/τ = sigmoid(w)``, ``w`` learned."""

    def __init__(
        self,
        init_tau: float = 2.0,
        *,
        threshold: float = 1.0,
        reset: str = "soft",
        v_reset: float = 0.0,
        detach_reset: bool = SF.DETACH_RESET,
        decay_input: bool = True,
        spike_fn: str | nn.Module = "htaf",
        backend: str = "auto",
        **estimator_params: Any,
    ):
        super().__init__(spike_fn, backend, estimator_params)
        self.params = SF.PLIFParameters(
            threshold,
            reset,
            v_reset,
            detach_reset,
            init_tau=init_tau,
            decay_input=decay_input,  # type: ignore[arg-type]
        )
        self.w = nn.Parameter(torch.tensor(self.params.init_w))

    def _beta(self) -> Tensor:
        return torch.sigmoid(-self.w)

    @property
    def tau(self) -> float:
        return 1.0 / float(torch.sigmoid(self.w.detach()))


class _Cell(nn.Module):
    def __init__(self, neuron: _Neuron):
        super().__init__()
        self.neuron = neuron

    def forward(self, x: Tensor, v: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step: ``(spikes, v_next)``; ``v=None`` starts at rest."""
        n = self.neuron
        if isinstance(n, PLIF):
            return SF.plif_step(x, v, n.w, n.params, n.spike)
        if isinstance(n, LIF):
            return SF.lif_step(x, v, n.params, n.spike)
        return SF.if_step(x, v, n.params, n.spike)


class IFCell(_Cell):
    """Single-step :class:`IF` with explicit state: ``s, v = cell(x, v)``."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(IF(*args, **kwargs))


class LIFCell(_Cell):
    """Single-step :class:`LIF` with explicit state: ``s, v = cell(x, v)``."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(LIF(*args, **kwargs))


class PLIFCell(_Cell):
    """Single-step :class:`PLIF` with explicit state (and its own learned ``w``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(PLIF(*args, **kwargs))


NEURONS = {"if": IF, "lif": LIF, "plif": PLIF}


def make_neuron(kind: str, **kwargs: Any) -> _Neuron:
    """A multi-step neuron module by name: ``if``, ``lif`` or ``plif``."""
    if kind not in NEURONS:
        raise ValueError(f"unknown neuron {kind!r} (available: {', '.join(NEURONS)})")
    return NEURONS[kind](**kwargs)
