"""HTAF and the exact step as ``torch.library`` custom operators, for ``torch.compile`` (private).

Why it exists: dynamo can trace neither the fused kernels of :mod:`htaf._kernels` (ctypes calls
on data pointers) nor the C++ operators of :mod:`htaf._native`, so a compiled model used to
trace htaf's pure-PyTorch decomposition instead, and inductor's code for it (four ``exp`` per
element) ran slower than eager HTAF. As custom operators with fake kernels and autograd
formulas the kernels become opaque nodes of the graph: dynamo traces them without a graph
break, AOTAutograd puts the backward operator into the backward graph, and inductor calls the
very kernels eager mode calls, so compiled and eager results agree bit for bit.

The operators (namespace ``htaf``, CPU float32/float64 only):

* ``htaf(x, alpha0, alpha1)``: ``σ(α1·tanh(α0·x))``; its backward is ``htaf_backward``.
* ``htaf_backward(x, grad, alpha0, alpha1)``: ``grad·HTAF'(x)``. Its own backward (HTAF's
  double backward) is ``(gg·grad·HTAF''(x), gg·HTAF'(x))``: the first term in ATen ops
  (:func:`_htaf_grad2`), the second this operator again, so every order of
  derivative exists.
* ``step(x, lo)``: ``1 if x >= 0 else lo``, NaN kept; no gradient (callers use it without one).
* ``step_with_rule(x, rule, lo)``: the step forward, ``grad·rule`` backward, where ``rule`` is
  an estimator's backward rule, evaluated (detached) by the caller and traced by dynamo, so
  inductor fuses it with the rest of the graph.

Every output is a new contiguous tensor (the fake kernels promise that layout).

Lazy by design: importing this module loads (or compiles, once per machine) the kernels and
registers the operators. htaf imports it only where dynamo traces an htaf call (dynamo runs an
``import`` statement instead of tracing it), so ``import htaf`` costs nothing more. Where the
kernels are unavailable (``HTAF_DISABLE_KERNELS=1``, no C compiler, not Linux) nothing is
registered, :data:`AVAILABLE` is False, and callers trace the pure-PyTorch path as before.
``HTAF_DISABLE_NATIVE`` concerns the C++ operators only: these need no C++ compiler.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from htaf import _kernels

__all__ = ["AVAILABLE", "htaf", "htaf_backward", "step", "step_with_rule", "takes"]

#: Whether the operators are registered (the kernels loaded when this module was imported).
AVAILABLE: bool = _kernels.available()


def takes(x: Tensor) -> bool:
    """Whether the operators handle ``x``: a strided CPU float32/float64 tensor, with the
    kernels available. Under dynamo every test here is on static metadata: no guard on sizes.
    Other devices and half precision keep the pure-PyTorch path, which inductor fuses."""
    return (
        AVAILABLE
        and x.device.type == "cpu"
        and x.layout == torch.strided
        and (x.dtype in _kernels.DTYPES)
    )


def _check(x: Tensor, what: str = "x") -> None:
    if x.dtype not in _kernels.DTYPES:
        raise TypeError(f"htaf::{what} must be float32 or float64, got {x.dtype}")


def _empty(x: Tensor) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _same_shape(x: Tensor, other: Tensor, name: str) -> None:
    if other.shape != x.shape:
        raise ValueError(f"{name} must have the shape of x, {tuple(x.shape)}, got "
                         f"{tuple(other.shape)}")  # fmt: skip


if AVAILABLE:

    @torch.library.custom_op("htaf::htaf", mutates_args=(), device_types="cpu")
    def htaf(x: Tensor, alpha0: float, alpha1: float) -> Tensor:
        """HTAF(x) = σ(α1·tanh(α0·x)) by the fused forward kernel."""
        _check(x)
        return _kernels.forward(x.contiguous(), alpha0, alpha1)

    @htaf.register_fake
    def _(x: Tensor, alpha0: float, alpha1: float) -> Tensor:
        return _empty(x)

    @torch.library.custom_op("htaf::htaf_backward", mutates_args=(), device_types="cpu")
    def htaf_backward(x: Tensor, grad: Tensor, alpha0: float, alpha1: float) -> Tensor:
        """grad·HTAF'(x) by the fused backward kernel (a broadcast scalar grad, such as the
        gradient of ``.sum()``, is read once, not materialised)."""
        _check(x)
        _same_shape(x, grad, "grad")
        return _kernels.backward(x.contiguous(), alpha0, alpha1, grad)

    @htaf_backward.register_fake
    def _(x: Tensor, grad: Tensor, alpha0: float, alpha1: float) -> Tensor:
        _same_shape(x, grad, "grad")
        return _empty(x)

    def _htaf_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, ctx.a0, ctx.a1 = inputs
        ctx.save_for_backward(x)  # only the input, as in eager mode

    def _htaf_vjp(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        (x,) = ctx.saved_tensors
        return htaf_backward(x, grad, ctx.a0, ctx.a1), None, None

    htaf.register_autograd(_htaf_vjp, setup_context=_htaf_setup)

    def _htaf_grad2(x: Tensor, a0: float, a1: float) -> Tensor:
        """HTAF''(x), for the double backward of the operator.

        With z = a0·x, u = a1·tanh(z) and HTAF' = a0·a1·σ'(u)·sech²(z), where
        σ''(u) = −σ'(u)·tanh(u/2) and (sech²)'(z) = −2·sech²(z)·tanh(z):

            HTAF''(x) = −a0 · HTAF'(x) · (a1·tanh(u/2)·sech²(z) + 2·tanh(z))

        HTAF' comes from the fused backward kernel (so every higher order goes through the operator
        again); the bracket is bounded by a1 + 2, so the product underflows no sooner than HTAF'
        itself. tanh and sech² come from e = exp(−2|z|) and f = exp(−|u|), which never overflow.
        """
        e = torch.exp(-2 * a0 * x.abs())
        one_e = 1 + e
        tanh_abs_z = (1 - e) / one_e
        f = torch.exp(-a1 * tanh_abs_z)
        sech2 = 4 * e / (one_e * one_e)
        bracket = a1 * (1 - f) / (1 + f) * sech2 + 2 * tanh_abs_z
        # tanh(z) and tanh(u/2) share the sign of x; HTAF'' is odd, and 0 at x = 0.
        first = htaf_backward(x, torch.ones_like(x), a0, a1)
        return -a0 * torch.sign(x) * first * bracket

    def _backward_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, grad, ctx.a0, ctx.a1 = inputs
        ctx.save_for_backward(x, grad)

    def _backward_vjp(ctx: Any, gg: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        # d(grad·HTAF'(x)) = grad·HTAF''(x)·dx + HTAF'(x)·dgrad
        x, grad = ctx.saved_tensors
        dx = gg * grad * _htaf_grad2(x, ctx.a0, ctx.a1) if ctx.needs_input_grad[0] else None
        dgrad = htaf_backward(x, gg, ctx.a0, ctx.a1) if ctx.needs_input_grad[1] else None
        return dx, dgrad, None, None

    htaf_backward.register_autograd(_backward_vjp, setup_context=_backward_setup)

    @torch.library.custom_op("htaf::step", mutates_args=(), device_types="cpu")
    def step(x: Tensor, lo: float) -> Tensor:
        """The exact step: 1 where x >= 0, ``lo`` (0 or −1) below, NaN kept."""
        _check(x)
        return _kernels.step(x.contiguous(), lo)

    @step.register_fake
    def _(x: Tensor, lo: float) -> Tensor:
        return _empty(x)

    @torch.library.custom_op("htaf::step_with_rule", mutates_args=(), device_types="cpu")
    def step_with_rule(x: Tensor, rule: Tensor, lo: float) -> Tensor:
        """:func:`step` forward; backward ``grad·rule`` (``rule`` is not differentiated)."""
        _check(x)
        _same_shape(x, rule, "rule")
        return _kernels.step(x.contiguous(), lo)

    @step_with_rule.register_fake
    def _(x: Tensor, rule: Tensor, lo: float) -> Tensor:
        _same_shape(x, rule, "rule")
        return _empty(x)

    def _rule_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.save_for_backward(inputs[1])  # the rule only: x itself is not needed

    def _rule_vjp(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (rule,) = ctx.saved_tensors
        return grad * rule, None, None

    step_with_rule.register_autograd(_rule_vjp, setup_context=_rule_setup)
