"""Troiano et al.'s decoupled backward rules: the forward keeps the true step, the backward only
keeps the gradient's direction (arXiv:2509.07236).

The jamming rules draw ``u ~ U[0, 1]`` fresh for every element and every pass from the
estimator's own ``torch.Generator``, whose state travels in ``state_dict`` so runs resume
bit-for-bit.

Every rule here is ``space_independent``: Troiano et al. define them as what the backward pass
does with the upstream gradient (pass it, pass it inside a window, scale it by a factor in
[0, 1]), not as the derivative of a function that approximates the step, so a rule means the
same with {0, 1} and with ±1 outputs (``signed=True``), as ``ste`` does: peak gradient 1 in
both spaces, never 2. The triangular rule follows the family: its weight ``max(0, 1 − |x|/w)``
is at most 1 in either space. The smooth forwards are shifted by 1/2 between the spaces (see
:mod:`htaf.estimators.base`) so that their derivative stays the rule.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from htaf.estimators.base import Estimator
from htaf.estimators.registry import register

_SOURCE = "Troiano et al. 2025, arXiv:2509.07236"


@register
class DecoupledConstant(Estimator):
    """forward: H(x); backward: 1 (pass-through)."""

    name = "decoupled_constant"
    description = "decoupled rule: constant (pass-through) backward"
    source = _SOURCE
    forward_formula = "H(x)  [smooth: 1/2 + x]"
    backward_formula = "1  (±1 and {0,1} alike)"
    space_independent = True

    def smooth(self, x: Tensor) -> Tensor:
        return 0.5 + x

    def grad(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)


@register
class DecoupledRectangular(Estimator):
    """forward: H(x); backward: 1{−half_width <= x <= half_width}, half_width = 0.5."""

    name = "decoupled_rectangular"
    description = "decoupled rule: rectangular window 1{a <= x <= b}"
    source = _SOURCE
    forward_formula = "H(x)  [smooth: 1/2 + clamp(x, −half_width, half_width)]"
    backward_formula = "1{|x| <= half_width}  (±1 and {0,1} alike)"
    space_independent = True
    defaults = {"half_width": 0.5}

    def smooth(self, x: Tensor) -> Tensor:
        w = self.half_width
        return 0.5 + x.clamp(-w, w)

    def grad(self, x: Tensor) -> Tensor:
        return (x.abs() <= self.half_width).to(x.dtype)


@register
class DecoupledTriangular(Estimator):
    """forward: H(x); backward: max(0, 1 − |x|/w), w = 1."""

    name = "decoupled_triangular"
    description = "decoupled rule: triangular max(0, 1 − |x|/w)"
    source = _SOURCE
    forward_formula = "H(x)  [smooth: 1/2 + x − x|x|/(2w) on |x|<=w]"
    backward_formula = "max(0, 1 − |x|/w)  (±1 and {0,1} alike)"
    space_independent = True
    defaults = {"w": 1.0}

    def smooth(self, x: Tensor) -> Tensor:
        c = x.clamp(-self.w, self.w)
        return 0.5 + c - c * c.abs() / (2 * self.w)

    def grad(self, x: Tensor) -> Tensor:
        return torch.relu(1 - x.abs() / self.w)


class _Jamming(Estimator):
    """Shared machinery: a per-estimator generator; ``smooth`` is the step (no primitive)."""

    has_primitive = False
    stochastic = True
    space_independent = True

    def __init__(self, *, generator: torch.Generator | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator

    def uniform(self, x: Tensor) -> Tensor:
        device = self.generator.device if self.generator is not None else x.device
        u = torch.rand(x.shape, generator=self.generator, device=device, dtype=x.dtype)
        return u.to(x.device)

    def window(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)

    def smooth(self, x: Tensor) -> Tensor:
        return self.hard(x)

    def grad(self, x: Tensor) -> Tensor:
        return self.uniform(x) * self.window(x)

    def get_extra_state(self) -> dict[str, Any]:
        state = super().get_extra_state()
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        if "generator" in state:
            if self.generator is None:
                self.generator = torch.Generator()
            self.generator.set_state(state["generator"])


@register
class Jamming(_Jamming):
    """forward: H(x); backward: u ~ U[0, 1] per element and pass (full jamming)."""

    name = "jamming"
    description = "decoupled rule: full jamming, u ~ U[0,1]"
    source = _SOURCE
    forward_formula = "H(x)"
    backward_formula = "u,  u ~ U[0, 1]"


@register
class JammingPositive(_Jamming):
    """forward: H(x); backward: u·1{x >= 0}, u ~ U[0, 1]."""

    name = "jamming_positive"
    description = "decoupled rule: positive jamming, u·1{x >= 0}"
    source = _SOURCE
    forward_formula = "H(x)"
    backward_formula = "u·1{x >= 0},  u ~ U[0, 1]"

    def window(self, x: Tensor) -> Tensor:
        return (x >= 0).to(x.dtype)


@register
class JammingRectangular(_Jamming):
    """forward: H(x); backward: u·1{|x| <= half_width}, half_width = 5, u ~ U[0, 1]."""

    name = "jamming_rectangular"
    description = "decoupled rule: rectangular jamming, u·1{-5 <= x <= 5}"
    source = _SOURCE
    forward_formula = "H(x)"
    backward_formula = "u·1{|x| <= 5},  u ~ U[0, 1]"
    defaults = {"half_width": 5.0}

    def window(self, x: Tensor) -> Tensor:
        return (x.abs() <= self.half_width).to(x.dtype)
