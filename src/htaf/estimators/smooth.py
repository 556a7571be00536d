"""Smooth stand-ins for the step, trained surrogate-free: HTAF and the continuation baselines."""

from __future__ import annotations

import torch
from torch import Tensor

from htaf import _native
from htaf import functional as F
from htaf.estimators.base import Estimator
from htaf.estimators.registry import register


@register
class HTAF(Estimator):
    r"""Heavy Tailed Activation Function (the paper's method).

    forward (smooth): :math:`\sigma(\alpha_1\tanh(\alpha_0 x))`; forward (hard): :math:`H(x)`.
    backward: :math:`\alpha_0\alpha_1\sigma(u)\sigma(-u)\,\mathrm{sech}^2(\alpha_0 x)`,
    :math:`u = \alpha_1\tanh(\alpha_0 x)`.
    """

    name = "htaf"
    description = "Heavy Tailed Activation Function, sigmoid(a1·tanh(a0·x)), surrogate-free"
    source = "Kim et al. 2026, arXiv:2605.11558"
    forward_formula = "sigmoid(alpha1 * tanh(alpha0 * x))"
    backward_formula = "a0·a1·σ(u)σ(−u)·sech²(a0·x), u = a1·tanh(a0·x)"
    default_mode = "smooth"
    defaults = {"alpha0": 2.0, "alpha1": 11.0}

    def forward(self, x: Tensor) -> Tensor:
        # The hot path of every HTAF network: alpha0 and alpha1 were validated when set, and
        # the operator checks the rest, so the generic wrapper's checks would only cost time.
        if self._mode == "smooth" and not self.signed and _native.accepts(x):
            return _native.htaf(x, self.alpha0, self.alpha1)
        return super().forward(x)

    def smooth(self, x: Tensor) -> Tensor:
        return F.htaf(x, self.alpha0, self.alpha1)

    def grad(self, x: Tensor) -> Tensor:
        return F.htaf_derivative(x, self.alpha0, self.alpha1)


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
        return F.scaled_sigmoid(x, self.beta)

    def grad(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.beta * x)
        return self.beta * s * torch.sigmoid(-self.beta * x)


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
