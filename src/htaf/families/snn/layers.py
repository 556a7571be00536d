"""Synapses over spike trains that save little for the backward pass.

A ``nn.Linear`` keeps its float32 input for the weight gradient: for a spiking MLP fed by
rate-coded images that is the encoded image and every hidden spike, in float32, at every time
step, the bulk of what the peers' BPTT keeps. :func:`spike_linear` computes the same layer but
keeps the input in the cheapest form that reproduces it exactly:

* spikes that come out of a neuron layer: nothing new. The neuron already saved its membrane
  sequence ``h``; the spikes are recomputed from it (``NeuronSequence.respike``), bit for bit,
  in either forward mode (HTAF's smooth spikes included);
* other binary input (encoded images): packed into bits, 1/32 of float32;
* anything else: the input itself, as ``nn.Linear`` does.

The gradients are those of ``F.linear`` exactly (same matmuls, same operands).

A :class:`SpikeTrain` carries the values between layers together with that knowledge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from htaf.families.snn.fused import NeuronSequence, pack_bits, unpack_bits

__all__ = ["SpikeTrain", "spike_linear"]


@dataclass
class SpikeTrain:
    """Values ``(T, B, ...)`` (or ``(B, ...)`` held for ``steps`` steps when ``constant``)."""

    values: Tensor
    steps: int
    constant: bool = False
    binary: bool = False  # exactly 0/1: may be stored as bits
    membrane: Tensor | None = None  # with respike: the values are respike(membrane)
    respike: Callable[[Tensor], Tensor] | None = None

    @classmethod
    def from_neurons(cls, seq: NeuronSequence, binary: bool) -> SpikeTrain:
        return cls(seq.spikes, seq.spikes.shape[0], False, binary, seq.membrane, seq.respike)

    def sequence(self) -> Tensor:
        """The values as ``(T, B, ...)`` (a view for a constant input)."""
        if self.constant:
            return self.values.expand(self.steps, *self.values.shape)
        return self.values


class _SpikeLinear(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, store: str,
        membrane: Tensor | None, respike: Callable | None,
    ) -> Tensor:  # fmt: skip
        ctx.store, ctx.shape, ctx.dtype = store, tuple(x.shape), x.dtype
        ctx.has_bias = bias is not None
        if store == "membrane":
            ctx.respike = respike
            ctx.save_for_backward(weight, membrane)
        elif store == "bits":
            ctx.save_for_backward(weight, pack_bits(x))
        else:
            ctx.save_for_backward(weight, x)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple:
        weight, kept = ctx.saved_tensors
        gx = gw = gb = None
        g2 = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[0]:
            gx = grad.matmul(weight.to(grad.dtype))
        if ctx.needs_input_grad[1]:
            if ctx.store == "membrane":
                x = ctx.respike(kept)
            elif ctx.store == "bits":
                x = unpack_bits(kept, ctx.shape, ctx.dtype)
            else:
                x = kept
            gw = g2.t().matmul(x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb, None, None, None


def spike_linear(inp: SpikeTrain, layer: nn.Linear) -> Tensor:
    """``layer`` applied to a spike train at every step: ``(T, B, out)``, or ``(B, out)`` for a
    constant train (computed once), saving the input as the module doc says."""
    x = inp.values
    if not torch.is_grad_enabled():
        return layer(x)
    if inp.respike is not None and inp.membrane is not None:
        store = "membrane"
    elif inp.binary:
        store = "bits"
    else:
        store = "input"
    return _SpikeLinear.apply(x, layer.weight, layer.bias, store, inp.membrane, inp.respike)
