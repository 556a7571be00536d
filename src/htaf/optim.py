"""Bop, the latent-free optimizer for binary weights (Helwegen et al., NeurIPS 2019).

Bop keeps no latent real-valued weight: a binary weight w in {-1, +1} flips when the
exponential moving average of its gradient is strong enough and points the same way as w
(gradient descent would push w through zero):

    m_t = (1 - gamma) m_{t-1} + gamma g_t
    w_t = -w_{t-1}  if  |m_t| > threshold  and  sign(m_t) = sign(w_{t-1}),  else  w_{t-1}

which is Larq's ``Bop`` update ``w = sign(-sign(w·m - threshold)·w)`` (defaults
``gamma = 1e-4``, ``threshold = 1e-8``). The first step turns every weight into its sign.

:class:`Bop` applies this to the parameter groups marked ``binary=True`` and Adam to all the
others, in one ``torch.optim.Optimizer`` (so learning-rate schedules and checkpoints see one
optimizer, as Larq's ``CaseOptimizer(Bop, Adam)``):

    opt = Bop(bop_param_groups(model), lr=1e-3, gamma=1e-4, threshold=1e-8)

``bop_param_groups`` splits a model by its ``binary_parameters()`` hook or, lacking one, by
its quantized layers (modules with a ``kernel_quantizer``), as Larq's Bop does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["GAMMA", "THRESHOLD", "Bop", "binary_weights", "bop_param_groups"]

#: Larq's defaults (``larq.optimizers.Bop``).
GAMMA = 1e-4
THRESHOLD = 1e-8


def bop_param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """``[{"params": binary, "binary": True}, {"params": the rest}]``.

    The binary weights are the model's ``binary_parameters()`` where it has that hook, else,
    as Larq's Bop finds them, the weights of its quantized layers: every module with a
    ``kernel_quantizer`` set (``QuantLinear``, ``QuantConv2d``...), so a plain
    ``nn.Sequential`` of them works. ``ValueError`` when the model has no binary weight."""
    from htaf.families.hooks import ModelHooks

    binary = ModelHooks(model).binary_parameters() or binary_weights(model)
    if not binary:
        raise ValueError(
            f"optimizer 'bop' flips binary weights, and {type(model).__name__} has none: no "
            "binary_parameters() and no quantized layer (a module with a kernel_quantizer, "
            "e.g. QuantLinear(..., kernel_quantizer='ste_clipped'))"
        )
    ids = {id(p) for p in binary}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups: list[dict[str, Any]] = [{"params": binary, "binary": True}]
    if rest:
        groups.append({"params": rest})
    return groups


def binary_weights(model: nn.Module) -> list[nn.Parameter]:
    """The weights of ``model``'s quantized layers: each module whose ``kernel_quantizer`` is
    set and whose ``weight`` is a parameter, in module order, each once."""
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if getattr(module, "kernel_quantizer", None) is not None and isinstance(
            weight, nn.Parameter
        ):
            found.setdefault(id(weight), weight)
    return list(found.values())


class Bop(torch.optim.Adam):
    """Bop for the groups with ``binary=True``, Adam (``lr``, ``betas``, ...) for the rest.

    Args:
        params: parameter groups; a group with ``"binary": True`` is flipped by Bop (it may set
            its own ``gamma`` and ``threshold``).
        gamma: adaptivity rate of the gradient's moving average, in (0, 1].
        threshold: how strong that average must be to flip a weight, >= 0.
        **adam: ``lr``, ``betas``, ``eps``, ``weight_decay``... for the other groups.
    """

    def __init__(
        self,
        params: Iterable[Any],
        gamma: float = GAMMA,
        threshold: float = THRESHOLD,
        **adam: Any,
    ):
        if not 0 < gamma <= 1:
            raise ValueError(f"Bop's gamma must be in (0, 1], got {gamma!r}")
        if not threshold >= 0:
            raise ValueError(f"Bop's threshold must be >= 0, got {threshold!r}")
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups, "binary": True}]  # plain parameters: all binary
        super().__init__(groups, **adam)
        for group in self.param_groups:
            group.setdefault("binary", False)
            group.setdefault("gamma", gamma)
            group.setdefault("threshold", threshold)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        binary = [g for g in self.param_groups if g["binary"]]
        # Adam skips parameters without a gradient: hide the binary ones from it.
        held = [(p, p.grad) for g in binary for p in g["params"]]
        for p, _ in held:
            p.grad = None
        try:
            super().step()
        finally:
            for p, grad in held:
                p.grad = grad
        for group in binary:
            gamma, threshold = group["gamma"], group["threshold"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "moment" not in state:  # "step" too: Adam's load_state_dict expects it
                    state["step"] = torch.tensor(0.0)
                    state["moment"] = torch.zeros_like(p)
                state["step"] += 1
                m = state["moment"]
                m.lerp_(p.grad, gamma)  # m += gamma (g - m)
                sign = torch.where(p >= 0, 1.0, -1.0).to(p.dtype)
                flip = sign * m > threshold  # |m| > threshold, pointing the way w points
                p.copy_(torch.where(flip, -sign, sign))
        return loss
