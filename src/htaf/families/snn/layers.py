"""Synapses over spike trains that save little for the backward pass.

A ``nn.Linear`` keeps its float32 input for the weight gradient: for a spiking MLP fed by
rate-coded images that is the encoded image and every hidden spike, in float32, at every time
step, the bulk of what the peers' BPTT keeps. :func:`spike_linear` computes the same layer but
keeps the input in the cheapest form that reproduces it exactly:

* spikes that come out of a neuron layer: nothing new. The neuron already saved its membrane
  sequence ``h``; the spikes are recomputed from it (``NeuronSequence.respike``), bit for bit,
  in either forward mode (HTAF's smooth spikes included);
* other binary input (encoded images, pooled spikes): packed into bits, 1/32 of float32;
* small non-negative integers (the sums of spikes of SEW-ResNet's ADD connection): uint8;
* anything else: the input itself, as ``nn.Linear`` does.

The gradients are those of ``F.linear`` exactly (same matmuls, same operands), except on exact
spikes (0/1 input) of a wide enough float32 layer: there the forward and the weight gradient are
:mod:`.binary_matmul`'s sums of the weights the spikes select, read from the bits, equal to the
matmuls up to float summation order.

:func:`spike_conv_bn` does the same for ``Conv2d -> BatchNorm2d`` on the ``T·B`` merged batch:
it keeps the conv's input as above and nothing else (no float input, no conv output for
BatchNorm); the backward recomputes the convolution from it (one more conv forward, the cheap
part of a conv's backward) and then runs ATen's own BatchNorm and convolution backward on the
same operands, so the gradients are those of ``bn(conv(x))`` to float rounding.
:func:`spike_max_pool` keeps only where the maxima were, as int32 (ATen keeps int64 indices
next to the float input); its backward scatters the gradient there. (Pooling the recomputed
input again in the backward would keep nothing, but costs the input's recomputation and a
second pooling: more time than a quarter of the input's float32 bytes are worth.)

A :class:`SpikeTrain` carries the values between layers together with that knowledge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from htaf.families.snn import binary_matmul
from htaf.families.snn.fused import (
    NeuronSequence,
    dense_order,
    inverse_order,
    pack_bits,
    unpack_bits,
)

__all__ = ["SpikeTrain", "spike_conv_bn", "spike_linear", "spike_max_pool"]


@dataclass
class SpikeTrain:
    """Values ``(T, B, ...)`` (or ``(B, ...)`` held for ``steps`` steps when ``constant``)."""

    values: Tensor
    steps: int
    constant: bool = False
    binary: bool = False  # exactly 0/1: may be stored as bits
    membrane: Tensor | None = None  # with respike: the values are respike(membrane)
    respike: Callable[[Tensor], Tensor] | None = None
    #: The values are integers in ``[0, levels]`` (exact spikes and their sums; 0: unknown).
    levels: int = 0

    @property
    def integer_levels(self) -> int:
        """``levels``, or 1 for a binary train."""
        return 1 if self.binary else self.levels

    @classmethod
    def from_neurons(cls, seq: NeuronSequence, binary: bool) -> SpikeTrain:
        return cls(seq.spikes, seq.spikes.shape[0], False, binary, seq.membrane, seq.respike)

    def sequence(self) -> Tensor:
        """The values as ``(T, B, ...)`` (a view for a constant input)."""
        if self.constant:
            return self.values.expand(self.steps, *self.values.shape)
        return self.values


def _store(inp: SpikeTrain) -> str:
    """How a synapse keeps its input ``inp`` for the backward (module doc)."""
    if inp.respike is not None and inp.membrane is not None:
        return "membrane"
    levels = inp.integer_levels
    if levels == 1:
        return "bits"
    if 1 < levels <= 255:
        return "uint8"
    return "input"


def _compiled_cpu(x: Tensor) -> Any:
    """The custom-operator module :mod:`._compiled` under dynamo for a CPU tensor ``x``
    (None elsewhere)."""
    if not (torch.compiler.is_compiling() and x.device.type == "cpu"):
        return None
    # Dynamo runs this import rather than tracing it: the operators register lazily.
    from htaf.families.snn import _compiled

    return _compiled


def _compiled_bits(x: Tensor) -> Any:
    """The kernel's bit packing as custom operators under dynamo (None elsewhere)."""
    ops = _compiled_cpu(x)
    return ops if ops is not None and ops.bits_take(x) else None


def _compiled_layers(x: Tensor) -> Any:
    """The Conv->BN and pooling operators under dynamo (None elsewhere): inductor's own code
    for BatchNorm and pooling is slower than ATen's on channels-last activations."""
    ops = _compiled_cpu(x)
    return ops if ops is not None and ops.layers_take(x) else None


def _pack(x: Tensor) -> Tensor:
    """:func:`pack_bits`, by its custom operator under dynamo."""
    ops = _compiled_bits(x)
    return ops.pack_bits(x) if ops is not None else pack_bits(x)


def _keep(ctx: Any, x: Tensor, store: str) -> Tensor:
    """``x`` as ``store`` says; sets ``ctx.order``, the memory order bits are packed in."""
    ctx.order = None
    if store == "bits":
        # packed as the values lie in memory (channels-last), so that they unpack to that layout
        ctx.order = dense_order(x)
        x = x.permute(ctx.order) if ctx.order is not None else x
        return _pack(x)
    if store == "uint8":
        return x.to(torch.uint8)
    return x


def _restore(kept: Tensor, ctx: Any) -> Tensor:
    """The float input that :func:`_keep` kept (``ctx``: store, shape, dtype, respike, order)."""
    if ctx.store == "membrane":
        return ctx.respike(kept).reshape(ctx.shape)
    if ctx.store == "bits":
        order = ctx.order
        shape = ctx.shape if order is None else tuple(ctx.shape[d] for d in order)
        ops = _compiled_bits(torch.empty(0, dtype=ctx.dtype, device=kept.device))
        if ops is not None:
            x = ops.unpack_bits(kept, list(shape), ctx.dtype)
        else:
            x = unpack_bits(kept, shape, ctx.dtype)
        return x if order is None else x.permute(inverse_order(order))
    if ctx.store == "uint8":
        return kept.to(ctx.dtype)
    return kept


def _gather_fns(x: Tensor, weight: Tensor, binary: bool) -> tuple[Callable, Callable] | None:
    """``(linear, weight_grad)`` of :mod:`.binary_matmul` (its custom operators under dynamo)
    where a Linear on ``x`` may add the weight columns its spikes select; None where it
    multiplies densely."""
    if not (binary and x.is_contiguous() and binary_matmul.fits(weight.shape[0], weight)):
        return None
    ops = _compiled_cpu(weight)  # fits() took CPU weights only
    if ops is not None:
        return (ops.binary_linear, ops.binary_weight_grad) if ops.GATHER else None
    if not binary_matmul.available():
        return None
    return binary_matmul.linear, binary_matmul.weight_grad


def _gathered(fns: tuple, bits: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear(x, weight, bias)`` from the bits of ``x`` by :func:`_gather_fns`' ``fns``."""
    y = fns[0](bits, [x.numel() // x.shape[-1], x.shape[-1]], weight, bias)
    return y.view(*x.shape[:-1], weight.shape[0])


def _column_sum(g: Tensor) -> Tensor:
    """``g.sum(0)``, by its custom operator under dynamo (ATen's kernel, not inductor's)."""
    ops = _compiled_cpu(g)
    return ops.column_sum(g) if ops is not None else g.sum(0)


class _SpikeLinear(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, store: str,
        membrane: Tensor | None, respike: Callable | None, binary: bool,
    ) -> Tensor:  # fmt: skip
        ctx.store, ctx.shape, ctx.dtype = store, tuple(x.shape), x.dtype
        ctx.has_bias = bias is not None
        ctx.respike = respike
        ctx.gather = _gather_fns(x, weight, binary)
        if ctx.gather is None:
            kept = membrane if store == "membrane" else _keep(ctx, x, store)
            ctx.save_for_backward(weight, kept)
            return F.linear(x, weight, bias)
        # event-driven: the spikes as bits select the weight columns to add
        ctx.order = None
        bits = _pack(x)
        ctx.save_for_backward(weight, membrane if store == "membrane" else bits)
        return _gathered(ctx.gather, bits, x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple:
        weight, kept = ctx.saved_tensors
        gx = gw = gb = None
        g2 = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[0]:
            gx = grad.matmul(weight.to(grad.dtype))
        if ctx.needs_input_grad[1] and ctx.gather is not None:
            bits = kept if ctx.store == "bits" else _pack(_restore(kept, ctx))
            gw = ctx.gather[1](bits, [g2.shape[0], ctx.shape[-1]], g2.contiguous())
        elif ctx.needs_input_grad[1]:
            x = _restore(kept, ctx)
            gw = g2.t().matmul(x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = _column_sum(g2)
        return gx, gw, gb, None, None, None, None


def spike_linear(inp: SpikeTrain, layer: nn.Linear) -> Tensor:
    """``layer`` applied to a spike train at every step: ``(T, B, out)``, or ``(B, out)`` for a
    constant train (computed once), saving the input as the module doc says."""
    x = inp.values
    if not torch.is_grad_enabled():
        fns = _gather_fns(x, layer.weight, inp.binary)
        if fns is None:
            return layer(x)
        return _gathered(fns, _pack(x), x, layer.weight, layer.bias)
    return _SpikeLinear.apply(x, layer.weight, layer.bias, _store(inp), inp.membrane, inp.respike,
                              inp.binary)  # fmt: skip


# -- Conv2d -> BatchNorm2d and MaxPool2d over spikes --------------------------------------------
class _SpikeConvBN(torch.autograd.Function):
    """``bn(conv(x))`` on the merged batch ``x`` (N, C, H, W), keeping ``x`` as ``store`` says."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, gamma: Tensor, beta: Tensor, membrane: Tensor | None,
        store: str, respike: Callable | None, conv: tuple, bn: tuple,
    ) -> Tensor:  # fmt: skip
        stride, padding, dilation, groups = conv
        running_mean, running_var, training, momentum, eps = bn
        ops = _compiled_layers(x)
        if ops is not None:
            out, mean, invstd, rm, rv = ops.conv_bn(
                x, weight, gamma, beta, running_mean, running_var, training, momentum, eps,
                list(stride), list(padding), list(dilation), groups,
            )  # fmt: skip
            if training and running_mean is not None and running_var is not None:
                running_mean.copy_(rm)
                running_var.copy_(rv)
        else:
            y = F.conv2d(x, weight, None, stride, padding, dilation, groups)
            out, mean, invstd = torch.native_batch_norm(
                y, gamma, beta, running_mean, running_var, training, momentum, eps
            )
        ctx.store, ctx.shape, ctx.dtype, ctx.respike = store, tuple(x.shape), x.dtype, respike
        ctx.conv = conv
        # Running statistics change in place at every training forward: only eval reads them.
        ctx.bn = (None, None, True, eps) if training else (running_mean, running_var, False, eps)
        kept = membrane if store == "membrane" else _keep(ctx, x, store)
        ctx.save_for_backward(weight, gamma, kept, mean, invstd)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple:
        weight, gamma, kept, mean, invstd = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        running_mean, running_var, training, eps = ctx.bn
        need = ctx.needs_input_grad
        x = _restore(kept, ctx)
        ops = _compiled_layers(x)
        if ops is not None:
            grads = ops.conv_bn_backward(
                grad, x, weight, gamma, running_mean, running_var, mean, invstd, training, eps,
                list(stride), list(padding), list(dilation), groups, list(need[:4]),
            )  # fmt: skip
            gx, gw, ggamma, gbeta = (g if n else None for g, n in zip(grads, need, strict=False))
            return gx, gw, ggamma, gbeta, None, None, None, None, None
        y = F.conv2d(x, weight, None, stride, padding, dilation, groups)  # recomputed: cheap
        gy, ggamma, gbeta = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous(memory_format=_memory_format(y)), y, gamma, running_mean, running_var,
            mean, invstd, training, eps,
            [need[0] or need[1], need[2], need[3]],
        )  # fmt: skip
        gx = gw = None
        if need[0] or need[1]:
            gx, gw, _ = torch.ops.aten.convolution_backward(
                gy, x, weight, None, stride, padding, dilation, False, [0] * len(padding),
                groups, [need[0], need[1], False],
            )  # fmt: skip
        return gx, gw, ggamma, gbeta, None, None, None, None, None


def _memory_format(x: Tensor) -> torch.memory_format:
    cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl and not x.is_contiguous() else torch.contiguous_format


def channels_last(x: Tensor) -> Tensor:
    """A ``(N, C, H, W)`` CPU tensor in channels-last memory (a copy unless it is already).

    On the CPU, oneDNN's convolutions, BatchNorm and max pooling run much faster on
    channels-last activations than on the standard layout (the 3-channel input convolution
    most), and the neurons between them run on either layout in place (``fused.dense_order``),
    so the conv stacks keep channels-last from their first convolution on."""
    if x.dim() != 4 or x.device.type != "cpu":
        return x
    ops = _compiled_layers(x)
    if ops is not None:
        return ops.contiguous(x, channels_last=True)
    return x.contiguous(memory_format=torch.channels_last)


def standard_layout(x: Tensor) -> Tensor:
    """``x.contiguous()``; under dynamo on the CPU one copy that all its consumers read (see
    ``_compiled.contiguous``), as in eager mode."""
    ops = _compiled_cpu(x)
    return ops.contiguous(x) if ops is not None else x.contiguous()


def _bn_arguments(bn: nn.BatchNorm2d) -> tuple:
    """``(running_mean, running_var, training, momentum, eps)`` as ``nn.BatchNorm2d.forward``
    chooses them (counting the batch in ``num_batches_tracked`` as it does)."""
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # a cumulative average
            momentum = 1.0 / float(bn.num_batches_tracked)
    training = bn.training or (bn.running_mean is None and bn.running_var is None)
    keep_stats = not bn.training or bn.track_running_stats
    running_mean = bn.running_mean if keep_stats else None
    running_var = bn.running_var if keep_stats else None
    return running_mean, running_var, training, momentum, bn.eps


def _fused_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> bool:
    return (
        conv.bias is None
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and bn.affine
    )


def spike_conv_bn(inp: SpikeTrain, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tensor:
    """``bn(conv(x))`` at every step of ``inp`` on the ``T·B`` merged batch: ``(T, B, C, H, W)``,
    or ``(B, C, H, W)`` for a constant train (computed once); keeps the input as the module doc
    says and nothing else. Any other conv (with a bias, padding by name, non-zero padding
    mode) or BatchNorm without affine parameters runs the modules as they are."""
    x = channels_last(inp.values if inp.constant else inp.values.flatten(0, 1))
    if not torch.is_grad_enabled() or not _fused_conv(conv, bn):
        y = bn(conv(x))
    else:
        layout = (conv.stride, conv.padding, conv.dilation, conv.groups)
        y = _SpikeConvBN.apply(x, conv.weight, bn.weight, bn.bias, inp.membrane, _store(inp),
                               inp.respike, layout, _bn_arguments(bn))  # fmt: skip
    return y if inp.constant else y.unflatten(0, inp.values.shape[:2])


class _SpikeMaxPool(torch.autograd.Function):
    """Max pooling that keeps only where each maximum was, as int32 (ATen keeps int64
    indices next to the float input); the backward scatters the gradient there, without
    recomputing the input and the pooling."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, pool: tuple) -> Tensor:
        ctx.shape, ctx.format, ctx.pool = tuple(x.shape), _memory_format(x), pool
        ops = _compiled_layers(x)
        if ops is not None:
            args = [list(p) for p in pool[:4]]
            y, where = ops.max_pool(x, *args, pool[4])
            at = ops.window_positions(where, list(x.shape), *args, pool[4])
            ctx.tiled = at is not None  # the positions within each window, as uint8
            ctx.save_for_backward(at if ctx.tiled else where.to(torch.int32))
            return y
        y, where = F.max_pool2d(x, *pool, return_indices=True)
        small = x.shape[-2] * x.shape[-1] < 2**31  # flat indices into one (H, W) plane
        ctx.save_for_backward(where.to(torch.int32) if small else where)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple:
        (where,) = ctx.saved_tensors
        ops = _compiled_layers(grad)
        if ops is not None:
            cl = ctx.format == torch.channels_last
            pool = [list(p) for p in ctx.pool[:4]]
            if ctx.tiled:
                gx = ops.scatter_to_maxima(grad, where, list(ctx.shape), cl, pool[0])
            else:
                gx = ops.max_pool_backward(grad, where, list(ctx.shape), cl, *pool, ctx.pool[4])
            return gx, None
        # ATen's backward reads the input's shape and layout only: an uninitialised stand-in
        like = torch.empty(
            ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=ctx.format
        )
        # in the input's layout: ATen picks its kernel by the gradient's layout and would
        # otherwise copy the input gradient (and the indices) to that layout and back
        gx = torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(memory_format=ctx.format), like, *ctx.pool, where.to(torch.int64)
        )
        return gx, None


def spike_max_pool(inp: SpikeTrain, pool: nn.MaxPool2d) -> SpikeTrain:
    """``pool`` at every step of a ``(T, B, C, H, W)`` train, keeping only the int32 positions
    of the maxima for the backward."""
    x = inp.values.flatten(0, 1)
    if not torch.is_grad_enabled() or not x.requires_grad:
        y = pool(x)
    else:
        pair = nn.modules.utils._pair
        stride = pool.stride if pool.stride is not None else pool.kernel_size
        layout = (pair(pool.kernel_size), pair(stride), pair(pool.padding), pair(pool.dilation),
                  pool.ceil_mode)  # fmt: skip
        y = _SpikeMaxPool.apply(x, layout)
    values = y.unflatten(0, inp.values.shape[:2])
    return SpikeTrain(values, inp.steps, binary=inp.binary, levels=inp.levels)
