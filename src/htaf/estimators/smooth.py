"""Smooth stand-ins for the step, trained surrogate-free: HTAF and the continuation baselines."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from htaf import _native
from htaf import functional as hf
from htaf.estimators.base import Estimator
from htaf.estimators.registry import register

#: The fraction of its first batch's inputs that ``htaf(auto)`` puts in HTAF's live region
#: (derivative >= 1% of its peak). Chosen by benchmarks/recipes.py (see the README).
AUTO_LIVE = 0.5


@register
class HTAF(Estimator):
    r"""Heavy Tailed Activation Function (the paper's method).

    forward (smooth): :math:`\sigma(\alpha_1\tanh(\alpha_0 x))`; forward (hard): :math:`H(x)`.
    backward: :math:`\alpha_0\alpha_1\sigma(u)\sigma(-u)\,\mathrm{sech}^2(\alpha_0 x)`,
    :math:`u = \alpha_1\tanh(\alpha_0 x)`.

    **Scale-aware by default.** ``htaf`` (``alpha0="auto"``, spec ``htaf(auto)``) chooses
    :math:`\alpha_0` from the data: on its first input it sets
    :math:`\alpha_0 = z^\ast(\alpha_1)/Q_{\text{live}}(|x|)`, so that a fraction ``live`` of
    the inputs lies where the derivative is at least 1% of its peak
    (:func:`htaf.functional.calibrate_alpha0`). :math:`\alpha_1`, the sharpness of the binary
    limit, stays as given. The calibrated value travels in ``state_dict``; ``htaf(2,11)`` gives
    the paper's constants. Call :func:`htaf.calibrate` to calibrate on a chosen batch, with
    errors that name the layer. An input with one value everywhere has no scale: it gets the
    exact step (no gradient) and calibration waits for the next input.
    """

    name = "htaf"
    description = (
        "Heavy Tailed Activation Function, sigmoid(a1·tanh(a0·x)), surrogate-free; "
        "alpha0=auto: set on the first batch"
    )
    source = "Kim et al. 2026, arXiv:2605.11558"
    forward_formula = "sigmoid(alpha1 * tanh(alpha0 * x))"
    backward_formula = "a0·a1·σ(u)σ(−u)·sech²(a0·x), u = a1·tanh(a0·x)"
    default_mode = "smooth"
    defaults = {"alpha0": "auto", "alpha1": 11.0}

    def __init__(self, *, live: float = AUTO_LIVE, **kwargs: object):
        alpha0 = kwargs.pop("alpha0", "auto")
        auto = isinstance(alpha0, str)
        if auto and alpha0 != "auto":
            raise ValueError(f"alpha0 must be a positive number or 'auto', got {alpha0!r}")
        super().__init__(alpha0=1.0 if auto else alpha0, **kwargs)  # type: ignore[arg-type]
        self.auto = auto
        self.live = hf.check_param(live, "live")
        if self.live >= 1:
            raise ValueError(f"live must be in (0, 1), got {self.live}")
        #: Where calibration errors say the estimator sits (set by htaf.calibrate).
        self.where = "htaf(auto)"
        #: Why the last forward could not calibrate (a constant input), for htaf.calibrate.
        self.deferred = ""
        self.calibrated = not auto
        if auto:
            self.alpha0 = math.nan  # never used: the first forward calibrates

    @property
    def pending(self) -> bool:
        """True until an ``htaf(auto)`` estimator has seen its first input."""
        return not self.calibrated

    def calibrate(self, x: Tensor) -> float:
        """Set :math:`\alpha_0` from the inputs ``x`` (threshold at 0); returns it."""
        self.alpha0 = hf.calibrate_alpha0(x, self.alpha1, self.live, where=self.where)
        self.calibrated = True
        return self.alpha0

    def uncalibrate(self) -> None:
        """Forget alpha0: the next forward (or :meth:`calibrate`) sets it again."""
        if not self.auto:
            raise ValueError(f"{self.where} has a fixed alpha0={self.alpha0:g}; nothing to forget")
        self.alpha0, self.calibrated = math.nan, False

    def set_param(self, key: str, value: float) -> None:
        super().set_param(key, value)
        if key == "alpha0":  # a value set by hand (a schedule, a user) is a calibrated one
            self.calibrated = True

    def forward(self, x: Tensor) -> Tensor:
        if self.pending:
            try:
                self.calibrate(x)
            except hf.ConstantInputError as err:
                # No scale to read (snnTorch's first reset sees a resting membrane): answer
                # with the exact step, without a gradient, and calibrate on the next input.
                self.deferred = str(err)
                return self.output_hard(x.detach())
        # The hot path of every HTAF network: alpha0 and alpha1 were validated when set, and
        # the operator checks the rest, so the generic wrapper's checks would only cost time.
        if self._mode == "smooth" and not self.signed and _native.accepts(x):
            return _native.htaf(x, self.alpha0, self.alpha1)
        return super().forward(x)

    @property
    def smooth_is_forward(self) -> bool:
        # The limits are σ(∓α1) whatever α0 is, so an uncalibrated htaf(auto) answers too.
        low = 1 / (1 + math.exp(self.alpha1))
        return low <= self.SPAN_TOLERANCE

    def smooth(self, x: Tensor) -> Tensor:
        return hf.htaf(x, self._alpha0(), self.alpha1)

    def grad(self, x: Tensor) -> Tensor:
        return hf.htaf_derivative(x, self._alpha0(), self.alpha1)

    def _alpha0(self) -> float:
        if self.pending:
            raise RuntimeError(
                f"{self.where} has no alpha0 yet: run a forward, or htaf.calibrate(model, batch), "
                "before calling its smooth or grad directly"
            )
        return self.alpha0

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if not self.auto:
            return text
        a0 = "auto" if self.pending else f"auto:{self.alpha0:g}"
        return text.replace(f"alpha0={self.alpha0:g}", f"alpha0={a0}", 1) + f", live={self.live:g}"

    def get_extra_state(self) -> dict[str, Any]:
        state = super().get_extra_state()
        state["auto"] = {"live": self.live, "calibrated": not self.pending}
        if self.pending:
            state["params"] = {k: v for k, v in state["params"].items() if k != "alpha0"}
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        auto = state.get("auto")
        super().set_extra_state(state)
        self.auto = auto is not None  # None: saved with a fixed alpha0
        self.calibrated = not self.auto or bool(auto["calibrated"])
        if self.auto:
            self.live = float(auto["live"])
        if not self.calibrated:
            self.alpha0 = math.nan


@register
class ScaledSigmoid(Estimator):
    r"""Scaled sigmoid, the paper's smooth baseline.

    forward (smooth): :math:`\sigma(\beta x)`;
    backward: :math:`\beta\sigma(\beta x)\sigma(-\beta x)`.
    """

    name = "scaled_sigmoid"
    description = "sigmoid(beta·x), the smooth baseline with the same eps-bound (beta=22)"
    source = "Kim et al. 2026 (baseline)"
    forward_formula = "sigmoid(beta * x)"
    backward_formula = "beta·σ(beta·x)·σ(−beta·x)"
    default_mode = "smooth"
    defaults = {"beta": 22.0}

    def smooth(self, x: Tensor) -> Tensor:
        return hf.scaled_sigmoid(x, self.beta)

    def grad(self, x: Tensor) -> Tensor:
        return hf.scaled_sigmoid_derivative(x, self.beta)


@register
class TanhContinuation(Estimator):
    r"""HashNet's continuation: :math:`\tanh(\beta x)` sharpened towards the sign during training.

    forward (smooth): :math:`\tanh(\beta x)`; backward: :math:`\beta\,\mathrm{sech}^2(\beta x)`.
    Pair it with :func:`htaf.estimators.schedule.hashnet`, which sets
    :math:`\beta = (1 + \gamma t)^{1/2}` at iteration :math:`t` (:math:`\gamma = 0.005`).
    """

    name = "tanh_continuation"
    description = "tanh(beta·x) with HashNet's schedule beta=(1+0.005·t)^0.5"
    source = "Cao et al. 2017, HashNet (ICCV)"
    forward_formula = "tanh(beta * x)"
    backward_formula = "beta·sech²(beta·x)"
    natural = "signed"
    default_mode = "smooth"
    defaults = {"beta": 1.0}

    def smooth(self, x: Tensor) -> Tensor:
        return torch.tanh(self.beta * x)

    def grad(self, x: Tensor) -> Tensor:
        # sech²(z) = 4e/(1+e)² with e = exp(-2|z|): no 1 - tanh² cancellation in the tail.
        e = torch.exp(-2 * self.beta * x.abs())
        return self.beta * 4 * e / (1 + e) ** 2
