"""Surrogate gradients from the spiking-network literature: Heaviside forward, smooth backward.

Each ``smooth`` is the primitive of its surrogate centred at 1/2, so ``smooth' == grad``; most
integrate to 1 and so run from 0 to 1 (fast_sigmoid spans 1/2 ± 1/k, triangle 1/2 ± alpha/2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from htaf.estimators.base import Estimator
from htaf.estimators.registry import register


@register
class SigmoidSurrogate(Estimator):
    """forward: H(x); backward: alpha·σ(alpha·x)·σ(−alpha·x)  [smooth: σ(alpha·x)]."""

    name = "sigmoid_surrogate"
    description = "sigmoid surrogate gradient (SpikingJelly Sigmoid, alpha=4)"
    source = "SpikingJelly surrogate.Sigmoid; snnTorch sigmoid (slope 25)"
    forward_formula = "H(x)  [smooth: σ(alpha·x)]"
    backward_formula = "alpha·σ(alpha·x)·σ(−alpha·x)"
    defaults = {"alpha": 4.0}

    def smooth(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.alpha * x)

    def grad(self, x: Tensor) -> Tensor:
        return self.alpha * torch.sigmoid(self.alpha * x) * torch.sigmoid(-self.alpha * x)


@register
class ATan(Estimator):
    """forward: H(x); backward: alpha / (2(1 + (π·alpha·x/2)²))."""

    name = "atan"
    description = "arctangent surrogate gradient (alpha=2)"
    source = "Fang et al. 2021; SpikingJelly surrogate.ATan"
    forward_formula = "H(x)  [smooth: 1/2 + atan(π·alpha·x/2)/π]"
    backward_formula = "alpha / (2(1 + (π·alpha·x/2)²))"
    defaults = {"alpha": 2.0}

    def _z(self, x: Tensor) -> Tensor:
        # Clamp so that z² stays finite in float32; the surrogate is < 1e-30 far before that.
        return (math.pi / 2 * self.alpha) * x.clamp(-1e15, 1e15)

    def smooth(self, x: Tensor) -> Tensor:
        return 0.5 + torch.atan(self._z(x)) / math.pi

    def grad(self, x: Tensor) -> Tensor:
        return self.alpha / (2 * (1 + self._z(x) ** 2))


@register
class FastSigmoid(Estimator):
    """SuperSpike. forward: H(x); backward: 1 / (1 + k|x|)²."""

    name = "fast_sigmoid"
    description = "fast sigmoid / SuperSpike surrogate (k=25)"
    source = "Zenke & Ganguli 2018, SuperSpike; snnTorch fast_sigmoid"
    forward_formula = "H(x)  [smooth: 1/2 + x/(1 + k|x|)]"
    backward_formula = "1 / (1 + k|x|)²"
    defaults = {"k": 25.0}

    def _x(self, x: Tensor) -> Tensor:
        return x.clamp(-1e15, 1e15)

    def smooth(self, x: Tensor) -> Tensor:
        x = self._x(x)
        return 0.5 + x / (1 + self.k * x.abs())

    def grad(self, x: Tensor) -> Tensor:
        return 1 / (1 + self.k * self._x(x).abs()) ** 2


@register
class Triangle(Estimator):
    """forward: H(x); backward: alpha·relu(1 − |x|)."""

    name = "triangle"
    description = "triangular surrogate gradient"
    source = "Esser et al. 2016; snnTorch triangular"
    forward_formula = "H(x)  [smooth: 1/2 + alpha·(x − x|x|/2) on |x|<=1]"
    backward_formula = "alpha·relu(1 − |x|)"
    defaults = {"alpha": 1.0}

    def smooth(self, x: Tensor) -> Tensor:
        c = x.clamp(-1.0, 1.0)
        return 0.5 + self.alpha * (c - c * c.abs() / 2)

    def grad(self, x: Tensor) -> Tensor:
        return self.alpha * torch.relu(1 - x.abs())


@register
class Rectangular(Estimator):
    """forward: H(x); backward: (1/width)·1{|x| <= width/2} (unit area)."""

    name = "rectangular"
    description = "rectangular window surrogate of unit area"
    source = "Wu et al. 2018, STBP"
    forward_formula = "H(x)  [smooth: clamp(x/width + 1/2, 0, 1)]"
    backward_formula = "(1/width)·1{|x| <= width/2}"
    defaults = {"width": 1.0}

    def smooth(self, x: Tensor) -> Tensor:
        return (x / self.width + 0.5).clamp(0.0, 1.0)

    def grad(self, x: Tensor) -> Tensor:
        return (x.abs() <= self.width / 2).to(x.dtype) / self.width


@register
class PiecewiseQuadratic(Estimator):
    """forward: H(x); backward: max(0, alpha − alpha²|x|)."""

    name = "piecewise_quadratic"
    description = "piecewise quadratic surrogate (alpha=1)"
    source = "Esser et al. 2016; SpikingJelly PiecewiseQuadratic"
    forward_formula = "H(x)  [smooth: 1/2 + alpha·x − alpha²x|x|/2 on |x|<=1/alpha]"
    backward_formula = "max(0, alpha − alpha²|x|)"
    defaults = {"alpha": 1.0}

    def smooth(self, x: Tensor) -> Tensor:
        c = x.clamp(-1 / self.alpha, 1 / self.alpha)
        return 0.5 + self.alpha * c - self.alpha**2 * c * c.abs() / 2

    def grad(self, x: Tensor) -> Tensor:
        return (self.alpha - self.alpha**2 * x.abs()).clamp(min=0)


@register
class PiecewiseExp(Estimator):
    """forward: H(x); backward: (alpha/2)·exp(−alpha|x|)."""

    name = "piecewise_exp"
    description = "piecewise exponential surrogate (alpha=1)"
    source = "Shrestha & Orchard 2018, SLAYER; SpikingJelly PiecewiseExp"
    forward_formula = "H(x)  [smooth: 1/2 + sign(x)(1 − exp(−alpha|x|))/2]"
    backward_formula = "(alpha/2)·exp(−alpha|x|)"
    defaults = {"alpha": 1.0}

    def smooth(self, x: Tensor) -> Tensor:
        return 0.5 + torch.sign(x) * (-torch.expm1(-self.alpha * x.abs())) / 2

    def grad(self, x: Tensor) -> Tensor:
        return self.alpha / 2 * torch.exp(-self.alpha * x.abs())


@register
class Erf(Estimator):
    """forward: H(x); backward: (alpha/√π)·exp(−alpha²x²)."""

    name = "erf"
    description = "Gaussian (erf) surrogate gradient (alpha=2)"
    source = "SpikingJelly surrogate.Erf"
    forward_formula = "H(x)  [smooth: (1 + erf(alpha·x))/2]"
    backward_formula = "(alpha/√π)·exp(−alpha²x²)"
    defaults = {"alpha": 2.0}

    def smooth(self, x: Tensor) -> Tensor:
        return (1 + torch.erf(self.alpha * x)) / 2

    def grad(self, x: Tensor) -> Tensor:
        ax = self.alpha * x.clamp(-1e15, 1e15)
        return self.alpha / math.sqrt(math.pi) * torch.exp(-ax * ax)
