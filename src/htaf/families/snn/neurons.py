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
from htaf.families.snn import fused
from htaf.families.snn.fused import NeuronSequence, neuron_sequence

__all__ = [
    "ALIF", "IF", "LIF", "NEURONS", "PLIF", "RLIF", "ALIFCell", "IFCell", "LIFCell", "PLIFCell",
    "RLIFCell", "Synaptic", "SynapticCell", "make_neuron",
]  # fmt: skip


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
        out = self._sequence(x, self.params, beta=self._beta(), v0=v0, steps=steps)
        if not torch.is_grad_enabled():  # let forward hooks on the estimator see every step
            out.spikes = self.spike(out.membrane - self.params.threshold)
        if self.carry is not None:
            self.carry[0] = out.v
        if self.observer is not None:
            self.observer(out)
        return out

    def _sequence(
        self, x: Tensor, p: Any, *, beta: Tensor | float | None, v0: Tensor | None,
        steps: int | None,
    ) -> NeuronSequence:  # fmt: skip
        """:func:`neuron_sequence`; under dynamo through the kernel's custom operators."""
        if torch.compiler.is_compiling():
            # Dynamo runs this import rather than tracing it: the operators register lazily.
            from htaf.families.snn import _compiled

            beta = p.beta if beta is None else beta
            out = _compiled.neuron_sequence(x, p, self.spike, beta=beta, v0=v0, steps=steps,
                                            backend=self.backend)  # fmt: skip
            if out is not None:
                return out
        return neuron_sequence(x, p, self.spike, beta=beta, v0=v0, steps=steps,
                               backend=self.backend)  # fmt: skip

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
    """A multi-step neuron module by name: ``if``, ``lif``, ``plif``, ``synaptic``, ``alif`` or
    ``rlif`` (which needs ``size=N``)."""
    if kind not in NEURONS:
        raise ValueError(f"unknown neuron {kind!r} (available: {', '.join(NEURONS)})")
    return NEURONS[kind](**kwargs)


# -- the neurons beyond LIF: current-based, adaptive threshold, recurrent ----------------------
class _StatefulNeuron(LIF):
    """A LIF with more state than ``v`` (a NamedTuple of tensors shaped like the current).

    ``run(x, state)`` takes that NamedTuple (or None: rest); ``carry`` holds the parts stacked
    into one tensor, so time-chunk checkpointing carries the whole state.
    """

    state_type: type
    #: Why the C++ kernel cannot run this neuron (None: it can); ``backend="kernel"`` is then
    #: refused with this reason, and ``"auto"`` runs the fused node in PyTorch.
    no_kernel: str | None = None

    def __init__(self, beta: float = 0.9, **kwargs: Any):
        super().__init__(beta, **kwargs)
        if self.backend not in fused.BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(fused.BACKENDS)}, got "
                             f"{self.backend!r}")  # fmt: skip
        if self.backend == "kernel" and self.no_kernel is not None:
            raise ValueError(
                f"backend 'kernel' cannot run {type(self).__name__}: {self.no_kernel}; its fused "
                f"node runs in PyTorch (backend 'auto' or 'torch'), saving the membrane only"
            )

    def _start(self, state: tuple | Tensor | None) -> tuple | None:
        if state is None and self.carry is not None:
            state = self.carry[0]
        if isinstance(state, Tensor):  # a carried stack of the parts
            return self.state_type(*state.unbind(0))
        return state

    def _finish(self, out: NeuronSequence, state: tuple) -> NeuronSequence:
        out.state = state
        if self.carry is not None:
            self.carry[0] = torch.stack(tuple(state))
        if self.observer is not None:
            self.observer(out)
        return out

    def _check_state(self, state: tuple | None, shape: tuple[int, ...]) -> None:
        if state is None:
            return
        SF._checked_state(state, self.state_type, shape, None, f"{type(self).__name__} neuron")


class Synaptic(_StatefulNeuron):
    """Multi-step current-based LIF (snnTorch ``Synaptic``; Norse ``LIF`` with ``tau_syn``)::

        i_t = α i_{t-1} + x_t,   h_t = β v_{t-1} + i_t,   then fire and reset as LIF.

    Fused: the current is a linear filter of the input (no spike resets it), computed first;
    the membrane runs in the fused node (C++ kernel or PyTorch), which saves only ``h``.

    **Conventions.** snnTorch ``Synaptic(reset_delay=False)`` is this neuron exactly (the same
    ``syn`` and, after the reset, ``mem``), except that it fires at ``mem > θ`` and, with
    ``reset_mechanism="subtract"``, where a reset leaves ``mem >= θ`` (an input over 2θ). With
    ``reset_delay=True`` (its default) snnTorch applies the reset one step late and undecayed:
    ``h_t = β h_{t-1} + i_t - θ s_{t-1}``. Norse's ``LIF`` adds the input to ``i`` after the
    membrane update (one step later), integrates ``dt/τ_mem · i`` (``decay_input``) and decays
    the current with ``α = 1 - dt/τ_syn``.
    """

    state_type = SF.SynapticState

    def __init__(self, alpha: float = 0.5, beta: float = 0.9, **kwargs: Any):
        super().__init__(beta, **kwargs)
        p = self.params
        self.params = SF.SynapticParameters(
            p.threshold, p.reset, p.v_reset, p.detach_reset, beta=p.beta,
            decay_input=p.decay_input, alpha=alpha,  # type: ignore[arg-type]
        )  # fmt: skip

    def run(
        self, x: Tensor, v0: SF.SynapticState | Tensor | None = None, *, steps: int | None = None
    ) -> NeuronSequence:
        """Spikes and membrane over time from ``v0`` (a :class:`SynapticState`; None: rest)."""
        if steps is None:
            check_sequence(x, type(self).__name__)
        state = self._start(v0)
        self._check_state(state, tuple(x.shape if steps is not None else x.shape[1:]))
        p = self.params
        i = fused.synaptic_current(x, p.alpha, None if state is None else state.i, steps=steps)
        out = self._sequence(i, p, beta=None, v0=None if state is None else state.v, steps=None)
        if not torch.is_grad_enabled():
            out.spikes = self.spike(out.membrane - p.threshold)
        return self._finish(out, SF.SynapticState(out.v, i[-1]))


class ALIF(_StatefulNeuron):
    """Multi-step adaptive-threshold LIF (Bellec et al. 2018; see :class:`ALIFParameters`)::

        b_t = θ + adapt · a_{t-1},  h_t = β v_{t-1} + x_t,  s_t = f(h_t - b_t),
        v_t = h_t - b_t s_t,        a_t = ρ a_{t-1} + s_t

    Fused: one node that saves only ``h`` (:func:`~htaf.families.snn.fused.alif_sequence`),
    in PyTorch: the C++ kernel's threshold is a constant.
    """

    state_type = SF.ALIFState
    no_kernel = "the kernel's threshold is a constant, ALIF's moves with every spike"

    def __init__(self, beta: float = 0.9, *, rho: float = 0.9, adapt: float = 0.2, **kwargs: Any):
        super().__init__(beta, **kwargs)
        p = self.params
        self.params = SF.ALIFParameters(
            p.threshold, p.reset, p.v_reset, p.detach_reset, beta=p.beta,
            decay_input=p.decay_input, rho=rho, adapt=adapt,  # type: ignore[arg-type]
        )  # fmt: skip

    def run(
        self, x: Tensor, v0: SF.ALIFState | Tensor | None = None, *, steps: int | None = None
    ) -> NeuronSequence:
        """Spikes and membrane over time from ``v0`` (an :class:`ALIFState`; None: rest)."""
        if steps is None:
            check_sequence(x, type(self).__name__)
        state = self._start(v0)
        self._check_state(state, tuple(x.shape if steps is not None else x.shape[1:]))
        v, a = (None, None) if state is None else state
        out, a_last = fused.alif_sequence(x, self.params, self.spike, v0=v, a0=a, steps=steps)
        if not torch.is_grad_enabled():  # hooks on the estimator see every step
            m = out.membrane.reshape(out.membrane.shape[0], -1)
            a_flat = None if a is None else a.reshape(-1).to(m.dtype)
            u = fused._alif_states(self.params, self.spike, m, a_flat)[0]
            out.spikes = self.spike(u.reshape(out.membrane.shape))
        return self._finish(out, SF.ALIFState(out.v, a_last))


class RLIF(_StatefulNeuron):
    """Multi-step recurrent LIF (snnTorch ``RLeaky``, Norse ``LIFRecurrent``) of ``size``
    neurons: ``h_t = β v_{t-1} + x_t + W_rec s_{t-1}``, ``x`` the input current ``(T, B,
    size, ...)`` (the input weights are the layer before, as with ``RLeaky``). ``W_rec``
    ``(size, size)`` is learned, initialised as ``nn.Linear``'s weight (no bias); on feature
    maps it mixes the channels at every pixel.

    Fused: one node that saves only ``h`` (:func:`~htaf.families.snn.fused.rlif_sequence`),
    in PyTorch: the recurrence couples the neurons through a matrix product at every step,
    which the C++ kernel's per-neuron time loop cannot do. Inside
    :func:`~htaf.families.snn.fused.unrolled` it runs as a plain autograd loop instead.

    **Conventions.** snnTorch ``RLeaky(all_to_all=True, linear_features=size,
    reset_delay=False)`` with a zero recurrent bias is this neuron (see :class:`Synaptic` for
    the firing and reset conventions). Norse's ``LIFRecurrent`` adds input and recurrent
    currents to a synaptic current, one step later.
    """

    state_type = SF.RLIFState
    #: Its layer is built with its number of neurons, ``RLIF(size, ...)``.
    sized = True
    no_kernel = ("the recurrence couples the neurons through a matrix product at every step, "
                 "and the kernel's time loop runs each neuron on its own")  # fmt: skip

    def __init__(self, size: int, beta: float = 0.9, **kwargs: Any):
        super().__init__(beta, **kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size (number of recurrent neurons) must be a positive integer, "
                             f"got {size!r}")  # fmt: skip
        p = self.params
        self.params = SF.RLIFParameters(
            p.threshold, p.reset, p.v_reset, p.detach_reset, beta=p.beta,
            decay_input=p.decay_input,  # type: ignore[arg-type]
        )  # fmt: skip
        self.size = size
        self.w_rec = nn.Parameter(nn.Linear(size, size, bias=False).weight.detach().clone())

    def run(
        self, x: Tensor, v0: SF.RLIFState | Tensor | None = None, *, steps: int | None = None
    ) -> NeuronSequence:
        """Spikes and membrane over time from ``v0`` (an :class:`RLIFState`; None: rest)."""
        if steps is None:
            check_sequence(x, type(self).__name__)
        shape = tuple(x.shape if steps is not None else x.shape[1:])
        if len(shape) < 2 or shape[1] != self.size:
            raise ValueError(
                f"RLIF of size {self.size} takes currents (T, B, {self.size}, ...), got shape "
                f"{tuple(x.shape)}"
            )
        state = self._start(v0)
        self._check_state(state, shape)
        p, est = self.params, self.spike
        first = x if steps is not None else x[0]
        v, s = (None, None) if state is None else state
        if not fused._UNROLLED:
            out = fused.rlif_sequence(x, self.w_rec, p, est, v0=v, s0=s, steps=steps)
            if not torch.is_grad_enabled():  # hooks on the estimator see every step
                out.spikes = est(out.membrane - p.threshold)
            return self._finish(out, SF.RLIFState(out.v, out.spikes[-1]))
        v = torch.zeros_like(first) if v is None else v
        spikes, membranes = [], []
        for t in range(steps or x.shape[0]):
            current = x if steps is not None else x[t]
            if s is not None:
                current = current + SF.recurrent_current(s, self.w_rec)
            h = SF._charge(p.beta, v, current, p.decay_input)
            s, v = SF._fire(h, p, est)
            spikes.append(s)
            membranes.append(h)
        state = SF.RLIFState(v, s)
        out = NeuronSequence(torch.stack(spikes), torch.stack(membranes), state.v)
        return self._finish(out, state)

    def extra_repr(self) -> str:
        return f"size={self.size}, {super().extra_repr()}"


class _StateCell(nn.Module):
    """Single-step wrapper of a stateful neuron: ``s, state = cell(x, state)``."""

    def __init__(self, neuron: _StatefulNeuron, step: Callable[..., tuple[Tensor, tuple]]):
        super().__init__()
        self.neuron = neuron
        self._step = step

    def forward(self, x: Tensor, state: tuple | None = None) -> tuple[Tensor, tuple]:
        """One step: ``(spikes, state)``; ``state=None`` starts at rest."""
        return self._step(x, state, self.neuron.params, self.neuron.spike)


class SynapticCell(_StateCell):
    """Single-step :class:`Synaptic`: ``s, state = cell(x, state)`` (a ``SynapticState``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(Synaptic(*args, **kwargs), SF.synaptic_step)


class ALIFCell(_StateCell):
    """Single-step :class:`ALIF`: ``s, state = cell(x, state)`` (an ``ALIFState``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(ALIF(*args, **kwargs), SF.alif_step)


class RLIFCell(_StateCell):
    """Single-step :class:`RLIF` with its own ``W_rec``: ``s, state = cell(x, state)``."""

    def __init__(self, *args: Any, **kwargs: Any):
        neuron = RLIF(*args, **kwargs)
        super().__init__(neuron, lambda x, st, p, est: SF.rlif_step(x, st, neuron.w_rec, p, est))


NEURONS.update({"synaptic": Synaptic, "alif": ALIF, "rlif": RLIF})
