"""Spiking neurons as pure step functions with typed parameters (the Norse way).

One time step of a neuron with membrane state ``v`` and input current ``x``:

    h_t = β v_{t-1} + c x_t          charge (IF: β = 1; c = 1, or 1 - β with decay_input)
    s_t = f(h_t - θ)                 fire: the estimator; exactly 1{h_t >= θ} in hard mode
    v_t = h_t - θ s_t                soft reset ("subtract")
    v_t = (1 - s_t) h_t + s_t v_r    hard reset (to v_r)

``detach_reset`` takes ``s_t`` out of the reset's gradient (the reset still happens). ``h_t`` is
"the membrane" that traces and the mean-membrane decoder read.

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
from typing import Literal

import torch
from torch import Tensor, nn

from htaf.estimators import Estimator

__all__ = [
    "DETACH_RESET",
    "IFParameters",
    "LIFParameters",
    "PLIFParameters",
    "beta_from_tau",
    "if_step",
    "lif_step",
    "plif_step",
    "spike_estimator",
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
