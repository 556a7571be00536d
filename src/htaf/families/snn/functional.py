"""Spiking neurons as pure step functions with typed parameters (the Norse way).

One time step of a neuron with membrane state ``v`` and input current ``x``:

    h_t = β v_{t-1} + c x_t          charge (IF: β = 1; c = 1, or 1 - β with decay_input)
    s_t = f(h_t - θ)                 fire: the estimator; exactly 1{h_t >= θ} in hard mode
    v_t = h_t - θ s_t                soft reset ("subtract")
    v_t = (1 - s_t) h_t + s_t v_r    hard reset (to v_r)

``detach_reset`` takes ``s_t`` out of the reset's gradient (the reset still happens). ``h_t`` is
"the membrane" that traces and the mean-membrane decoder read.

Beyond LIF, the same charge / fire / reset with more state (a NamedTuple in, one out):
:func:`synaptic_step` (a synaptic current ``i_t = α i_{t-1} + x_t`` feeds the membrane),
:func:`alif_step` (the threshold ``θ + adapt · a`` rises with the spike trace ``a``) and
:func:`rlif_step` (the previous spikes come back through ``W_rec``).

**Threshold convention.** A neuron fires at ``v >= θ``, as in SpikingJelly and everywhere in
htaf (``H(0) = 1``). snnTorch and Norse fire at ``v > θ``; the two differ only when the
membrane lands exactly on the threshold, which with float inputs is rare but not impossible
(integer-valued currents do it).

**Decay.** ``β`` directly, or SpikingJelly's time constant ``τ`` with ``β = 1 - 1/τ`` (so
``τ = 10`` is ``β = 0.9``; ``τ`` must be > 1). The membrane leaks towards 0. PLIF (Fang et al.
2021) learns ``w`` with ``1/τ = sigmoid(w)``, i.e. ``β = sigmoid(-w)``; it decays its input by
default, as in the paper.

**Spikes.** ``spike_fn`` is an estimator module, built once by its owner and kept as a
submodule of the model (``self.spike = htaf.estimators.get("atan")``), so that
``htaf.harden(model)`` / ``htaf.soften(model)`` reach it and per-layer state stays per layer.
A name is refused: these functions are pure and build nothing. The modules of
:mod:`~htaf.families.snn.neurons` (``LIF(spike_fn="atan")``...) take a name and build one
estimator per module. HTAF in smooth mode (its default) trains surrogate-free; a surrogate in
hard mode (theirs) is the usual surrogate-gradient training; ``htaf.harden(model)`` gives
exact spikes at evaluation.

**Reset gradient.** ``detach_reset`` defaults to True, everywhere in htaf (these parameters,
the modules, the snn family): with HTAF's peak gradient α₀α₁/4 = 5.5, an attached soft reset
multiplies the membrane's gradient by ``1 - θ f'`` (down to -4.5 at θ = 1) at every step. snnTorch
detaches its reset always; SpikingJelly's ``LIFNode`` defaults to ``detach_reset=False``.

    self.spike = htaf.estimators.get("atan")                       # in the owner's __init__
    s, v = lif_step(x, None, LIFParameters(beta=0.9), self.spike)  # v = None: rest
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from htaf.estimators import Estimator

__all__ = [
    "DETACH_RESET",
    "ALIFParameters",
    "ALIFState",
    "IFParameters",
    "LIFParameters",
    "PLIFParameters",
    "RLIFParameters",
    "RLIFState",
    "SynapticParameters",
    "SynapticState",
    "alif_step",
    "beta_from_tau",
    "if_step",
    "lif_step",
    "plif_step",
    "rlif_step",
    "spike_estimator",
    "synaptic_step",
]

Reset = Literal["soft", "hard"]
RESETS = ("soft", "hard")
#: The one default of ``detach_reset``: parameters, neuron modules and the snn family.
DETACH_RESET = True


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_beta(beta: object, name: str = "beta") -> float:
    """``beta`` as a float in (0, 1]; ValueError naming ``name`` otherwise."""
    value = _finite(beta, name)
    if not 0 < value <= 1:
        raise ValueError(f"{name} (membrane decay) must be in (0, 1], got {value}")
    return value


def beta_from_tau(tau: object, name: str = "tau") -> float:
    """SpikingJelly's time constant as a decay: ``β = 1 - 1/τ``; ``τ`` must be > 1."""
    value = _finite(tau, name)
    if value <= 1:
        raise ValueError(
            f"{name} (membrane time constant) must be > 1 so that beta = 1 - 1/tau is in "
            f"(0, 1), got {value}"
        )
    return 1.0 - 1.0 / value


@dataclass(frozen=True)
class IFParameters:
    """Integrate-and-fire: no leak (``β = 1``)."""

    threshold: float = 1.0
    reset: Reset = "soft"
    v_reset: float = 0.0  # the hard reset's target; unused by the soft reset
    detach_reset: bool = DETACH_RESET  # the spike leaves the reset's gradient (module doc)

    def __post_init__(self) -> None:
        if _finite(self.threshold, "threshold") <= 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if self.reset not in RESETS:
            raise ValueError(f"reset must be 'soft' or 'hard', got {self.reset!r}")
        _finite(self.v_reset, "v_reset")
        if not isinstance(self.detach_reset, bool):
            raise ValueError(f"detach_reset must be true or false, got {self.detach_reset!r}")

    @property
    def beta(self) -> float:
        return 1.0

    @property
    def decay_input(self) -> bool:
        return False


@dataclass(frozen=True)
class LIFParameters(IFParameters):
    """Leaky integrate-and-fire with decay ``β`` in (0, 1] (see :func:`beta_from_tau`)."""

    beta: float = 0.9  # type: ignore[assignment]  # a field here, a constant 1 for IF
    decay_input: bool = False  # type: ignore[assignment]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_beta(self.beta)

    @classmethod
    def from_tau(cls, tau: float, **kwargs: object) -> LIFParameters:
        """SpikingJelly's ``LIFNode(tau=...)`` decay, ``β = 1 - 1/τ``."""
        return cls(beta=beta_from_tau(tau), **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PLIFParameters(IFParameters):
    """Parametric LIF (Fang et al. 2021): ``1/τ = sigmoid(w)``, ``w`` learned from ``init_tau``."""

    init_tau: float = 2.0
    decay_input: bool = True  # type: ignore[assignment]

    def __post_init__(self) -> None:
        super().__post_init__()
        beta_from_tau(self.init_tau, "init_tau")

    @property
    def beta(self) -> float:  # the initial decay
        return beta_from_tau(self.init_tau, "init_tau")

    @property
    def init_w(self) -> float:
        """``w`` with ``sigmoid(w) = 1/init_tau``."""
        return -math.log(self.init_tau - 1.0)


def spike_estimator(spike_fn: nn.Module) -> Estimator:
    """``spike_fn`` checked as a neuron's estimator: an htaf estimator with 0/1 output.

    A name is refused with a TypeError that says what to pass: the step functions never build
    an estimator, since one built (or shared) behind the model's back is out of reach of
    ``htaf.harden(model)`` and would share its state across layers.
    """
    if isinstance(spike_fn, str):
        raise TypeError(
            f"spike_fn must be an estimator module, got the name {spike_fn!r}: build it once "
            f"with htaf.estimators.get({spike_fn!r}) and keep it as a submodule of your model "
            f"(so that htaf.harden(model) reaches it), or use the LIF/IF/PLIF modules, which "
            f"take a name and build one estimator per layer"
        )
    return _check(spike_fn, type(spike_fn).__name__)


def _check(est: nn.Module, name: str) -> Estimator:
    if not isinstance(est, Estimator):
        raise ValueError(
            f"spike_fn must be an htaf estimator, got {name!r} (a continuous activation such "
            f"as relu does not spike)"
        )
    if est.signed:
        raise ValueError(f"spike_fn {est.name!r} has signed=True; spikes are 0/1 (signed=False)")
    return est


def _fire(h: Tensor, p: IFParameters, est: Estimator) -> tuple[Tensor, Tensor]:
    """``s = f(h - θ)`` and the state after the reset."""
    s = est(h - p.threshold)
    r = s.detach() if p.detach_reset else s
    if p.reset == "soft":
        return s, h - p.threshold * r
    return s, h * (1 - r) + p.v_reset * r


def _state(x: Tensor, v: Tensor | None) -> Tensor:
    if v is None:
        return torch.zeros_like(x)
    if v.shape != x.shape:
        raise ValueError(f"state v has shape {tuple(v.shape)}, input x {tuple(x.shape)}")
    return v


def if_step(
    x: Tensor, v: Tensor | None, p: IFParameters, spike_fn: nn.Module
) -> tuple[Tensor, Tensor]:
    """One integrate-and-fire step: ``h = v + x``; returns ``(spikes, v_next)``."""
    return _fire(_state(x, v) + x, p, spike_estimator(spike_fn))


def lif_step(
    x: Tensor, v: Tensor | None, p: LIFParameters, spike_fn: nn.Module
) -> tuple[Tensor, Tensor]:
    """One leaky integrate-and-fire step: ``h = β v + x`` (``(1 - β) x`` with decay_input)."""
    x_in = (1 - p.beta) * x if p.decay_input else x
    return _fire(p.beta * _state(x, v) + x_in, p, spike_estimator(spike_fn))


def plif_step(
    x: Tensor,
    v: Tensor | None,
    w: Tensor,
    p: PLIFParameters,
    spike_fn: nn.Module,
) -> tuple[Tensor, Tensor]:
    """One parametric LIF step with learnable ``w``: ``β = sigmoid(-w)``, ``1/τ = sigmoid(w)``."""
    beta = torch.sigmoid(-w)
    x_in = (1 - beta) * x if p.decay_input else x
    return _fire(beta * _state(x, v) + x_in, p, spike_estimator(spike_fn))


# -- the neurons people use beyond LIF: current-based, adaptive threshold, recurrent ----------
def check_decay(value: object, name: str, what: str) -> float:
    """A decay factor in (0, 1]; ValueError naming ``name`` (and ``what`` it decays) otherwise."""
    value = _finite(value, name)
    if not 0 < value <= 1:
        raise ValueError(f"{name} ({what} decay) must be in (0, 1], got {value}")
    return value


@dataclass(frozen=True)
class SynapticParameters(LIFParameters):
    """Current-based LIF (snnTorch ``Synaptic``): a synaptic current ``i`` with decay ``alpha``
    in (0, 1] filters the input before the membrane integrates it::

        i_t = α i_{t-1} + x_t
        h_t = β v_{t-1} + i_t        ((1 - β) i_t with decay_input)

    then fire and reset as LIF. The current is not reset by a spike (snnTorch, Norse).
    """

    alpha: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_decay(self.alpha, "alpha", "synaptic current")


@dataclass(frozen=True)
class ALIFParameters(LIFParameters):
    """Adaptive-threshold LIF (Bellec et al. 2018, "Long short-term memory and learning-to-learn
    in networks of spiking neurons"; the usual neuron on SHD)::

        b_t = θ + adapt · a_{t-1}          the threshold rises with recent spikes
        h_t = β v_{t-1} + x_t
        s_t = f(h_t - b_t)
        v_t = h_t - b_t s_t                soft reset by the threshold crossed (hard: to v_r)
        a_t = ρ a_{t-1} + s_t              the adaptation, decay ``rho`` in (0, 1]

    ``threshold`` is the baseline ``b0``; ``adapt`` >= 0 is the paper's β (named so here because
    β is the membrane decay). Bellec's ``a_t = ρ a_{t-1} + (1 - ρ) s_t`` is ``adapt = β_B (1 -
    ρ)``. The spike stays in the adaptation's gradient (only the reset may be detached).
    """

    rho: float = 0.9
    adapt: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_decay(self.rho, "rho", "adaptation")
        if _finite(self.adapt, "adapt") < 0:
            raise ValueError(f"adapt (threshold rise per unit of adaptation) must be >= 0, got "
                             f"{self.adapt}")  # fmt: skip


@dataclass(frozen=True)
class RLIFParameters(LIFParameters):
    """Recurrent LIF (snnTorch ``RLeaky``, Norse ``LIFRecurrent``): LIF whose input adds the
    previous step's spikes through recurrent weights ``W_rec`` (see :func:`rlif_step`)."""


class SynapticState(NamedTuple):
    """The state of a current-based LIF: membrane ``v`` and synaptic current ``i``."""

    v: Tensor
    i: Tensor


class ALIFState(NamedTuple):
    """The state of an ALIF neuron: membrane ``v`` and adaptation ``a``."""

    v: Tensor
    a: Tensor


class RLIFState(NamedTuple):
    """The state of a recurrent LIF: membrane ``v`` and the previous step's spikes ``s``."""

    v: Tensor
    s: Tensor


def _checked_state(
    state: NamedTuple | None, kind: type, shape: tuple[int, ...], like: Tensor, who: str
) -> NamedTuple:
    """``state`` (or rest: zeros) with every part of ``shape``; ValueError naming the part."""
    if state is None:
        return kind(*(torch.zeros_like(like) for _ in kind._fields))
    if not isinstance(state, tuple) or len(state) != len(kind._fields):
        raise ValueError(
            f"{who}: the state must be a {kind.__name__}({', '.join(kind._fields)}) or None, "
            f"got {type(state).__name__}"
        )
    for name, part in zip(kind._fields, state, strict=True):
        if not isinstance(part, Tensor):
            raise ValueError(f"{who}: state {name} must be a tensor, got {type(part).__name__}")
        if tuple(part.shape) != shape:
            raise ValueError(
                f"{who}: state {name} has shape {tuple(part.shape)}, expected {shape} (the "
                f"shape of the input current)"
            )
    return kind(*state)


def _charge(beta: float, v: Tensor, current: Tensor, decay_input: bool) -> Tensor:
    return beta * v + ((1 - beta) * current if decay_input else current)


def synaptic_step(
    x: Tensor, state: SynapticState | None, p: SynapticParameters, spike_fn: nn.Module
) -> tuple[Tensor, SynapticState]:
    """One current-based LIF step (:class:`SynapticParameters`); returns ``(spikes, state)``."""
    est = spike_estimator(spike_fn)
    st = _checked_state(state, SynapticState, tuple(x.shape), x, "synaptic neuron")
    i = p.alpha * st.i + x
    s, v = _fire(_charge(p.beta, st.v, i, p.decay_input), p, est)
    return s, SynapticState(v, i)


def alif_step(
    x: Tensor, state: ALIFState | None, p: ALIFParameters, spike_fn: nn.Module
) -> tuple[Tensor, ALIFState]:
    """One adaptive-threshold LIF step (:class:`ALIFParameters`); returns ``(spikes, state)``."""
    est = spike_estimator(spike_fn)
    st = _checked_state(state, ALIFState, tuple(x.shape), x, "ALIF neuron")
    b = p.threshold + p.adapt * st.a
    h = _charge(p.beta, st.v, x, p.decay_input)
    s = est(h - b)
    r = s.detach() if p.detach_reset else s
    v = h - b * r if p.reset == "soft" else h * (1 - r) + p.v_reset * r
    return s, ALIFState(v, p.rho * st.a + s)


def recurrent_current(s: Tensor, w_rec: Tensor) -> Tensor:
    """``W_rec`` applied to spikes ``(B, N, ...)`` over the feature dimension 1 (channels of a
    feature map: a 1×1 recurrence at every pixel)."""
    if s.dim() == 2:
        return F.linear(s, w_rec)
    return F.linear(s.movedim(1, -1), w_rec).movedim(-1, 1)


def rlif_step(
    x: Tensor,
    state: RLIFState | None,
    w_rec: Tensor,
    p: RLIFParameters,
    spike_fn: nn.Module,
    w_in: Tensor | None = None,
) -> tuple[Tensor, RLIFState]:
    """One recurrent LIF step; returns ``(spikes, state)``::

        c_t = W_in x_t  (or x_t when w_in is None: x is already the input current)
        h_t = β v_{t-1} + c_t + W_rec s_{t-1}     ((1 - β)(...) with decay_input)

    then fire and reset as LIF. ``w_rec`` is ``(N, N)`` over the feature dimension 1 of the
    current ``(B, N, ...)``; the state's parts must have the current's shape.
    """
    est = spike_estimator(spike_fn)
    current = x if w_in is None else F.linear(x, w_in)
    if current.dim() < 2:
        raise ValueError(f"recurrent neuron: the input current must be (B, N, ...), got shape "
                         f"{tuple(current.shape)}")  # fmt: skip
    n = current.shape[1]
    if tuple(w_rec.shape) != (n, n):
        raise ValueError(f"recurrent neuron: w_rec has shape {tuple(w_rec.shape)}, expected "
                         f"({n}, {n}) for {n} neurons")  # fmt: skip
    st = _checked_state(state, RLIFState, tuple(current.shape), current, "recurrent neuron")
    h = _charge(p.beta, st.v, current + recurrent_current(st.s, w_rec), p.decay_input)
    s, v = _fire(h, p, est)
    return s, RLIFState(v, s)
