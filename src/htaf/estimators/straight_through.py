"""Straight-through estimators: the exact sign forward with a hand-picked backward (BNN literature).

These live in the signed space, as in Larq; ``signed=False`` gives {0, 1} outputs (the Heaviside
step). ``ste`` and ``ste_clipped`` pass the upstream gradient straight through (or cancel it) in
either space: backward 1 and ``1{|x| <= clip}`` on {0, 1} as on ±1, which is what
straight-through means for a Heaviside unit (Bengio et al. 2013) and equals Troiano et al.'s
constant rule. ``approx_sign`` and ``swish_sign`` approximate the derivative of the sign, so on
{0, 1} outputs, a step half as high, their backward is halved.
"""

from __future__ import annotations

import torch
from torch import Tensor

from htaf.estimators.base import Estimator
from htaf.estimators.registry import register


@register
class STE(Estimator):
    """Straight-through estimator. forward: sign(x), or H(x) with ``signed=False``;
    backward: 1 (identity) in both output spaces.

    smooth: x on ±1 outputs, x + 1/2 on {0, 1} outputs (derivative 1 in both).
    """

    name = "ste"
    description = "straight-through: sign (or Heaviside) forward, identity backward"
    source = "Bengio et al. 2013; BinaryConnect"
    forward_formula = "sign(x) or H(x)  [smooth: x, or x + 1/2 on {0,1}]"
    backward_formula = "1  (±1 and {0,1} alike)"
    natural = "signed"
    space_independent = True

    def smooth(self, x: Tensor) -> Tensor:
        return x

    def grad(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)


@register
class STEClipped(Estimator):
    """Clipped straight-through. forward: sign(x), or H(x) with ``signed=False``;
    backward: 1{|x| <= clip} in both output spaces.

    smooth: clamp(x, -clip, clip), plus 1/2 on {0, 1} outputs.
    """

    name = "ste_clipped"
    description = "straight-through with the gradient cancelled outside |x| <= clip"
    source = "Hubara et al. 2016, BinaryNet; Larq ste_sign"
    forward_formula = "sign(x) or H(x)  [smooth: clamp(x, -clip, clip) (+ 1/2 on {0,1})]"
    backward_formula = "1{|x| <= clip}  (±1 and {0,1} alike)"
    natural = "signed"
    space_independent = True
    defaults = {"clip": 1.0}

    def smooth(self, x: Tensor) -> Tensor:
        return x.clamp(-self.clip, self.clip)

    def grad(self, x: Tensor) -> Tensor:
        return (x.abs() <= self.clip).to(x.dtype)


@register
class ApproxSign(Estimator):
    """Bi-Real Net's approx_sign. forward: sign(x); backward: (2 - 2|x|)·1{|x| <= 1}.

    The derivative of a smooth sign: halved on {0, 1} outputs.
    """

    name = "approx_sign"
    description = "piecewise-quadratic sign approximation of Bi-Real Net"
    source = "Liu et al. 2018, Bi-Real Net; Larq approx_sign"
    forward_formula = "sign(x)  [smooth: 2x - x|x| on |x|<=1, sign(x) outside]"
    backward_formula = "(2 - 2|x|)·1{|x| <= 1}  (halved on {0,1})"
    natural = "signed"

    def smooth(self, x: Tensor) -> Tensor:
        c = x.clamp(-1.0, 1.0)
        return 2 * c - c * c.abs()

    def grad(self, x: Tensor) -> Tensor:
        return (2 - 2 * x.abs()).clamp(min=0)


@register
class SwishSign(Estimator):
    r"""SignSwish. forward: sign(x); backward:
    :math:`\beta(2 - \beta x\tanh(\beta x/2)) / (1 + \cosh\beta x)`.

    The derivative of a smooth sign: halved on {0, 1} outputs.
    """

    name = "swish_sign"
    description = "SignSwish: derivative of 2σ(βx)(1+βx(1−σ(βx)))−1"
    source = "Darabi et al. 2018, BNN+; Larq swish_sign"
    forward_formula = "sign(x)  [smooth: 2σ(βx)(1 + βx(1 − σ(βx))) − 1]"
    backward_formula = "β(2 − βx·tanh(βx/2)) / (1 + cosh βx)  (halved on {0,1})"
    natural = "signed"
    defaults = {"beta": 5.0}

    def _bx(self, x: Tensor) -> Tensor:
        # Beyond |βx| = 100 the derivative is below 1e-40; clamping keeps βx·σ(−βx) finite.
        return self.beta * x.clamp(-100 / self.beta, 100 / self.beta)

    def smooth(self, x: Tensor) -> Tensor:
        bx = self._bx(x)
        s = torch.sigmoid(bx)
        return 2 * s * (1 + bx * torch.sigmoid(-bx)) - 1

    def grad(self, x: Tensor) -> Tensor:
        # 1/(1 + cosh z) = 2e/(1+e)² with e = exp(-|z|): cosh would overflow for |z| > 89.
        bx = self._bx(x)
        e = torch.exp(-bx.abs())
        return self.beta * (2 - bx * torch.tanh(bx / 2)) * 2 * e / (1 + e) ** 2
