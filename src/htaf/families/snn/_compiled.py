"""The fused neuron kernel as ``torch.library`` custom operators, for ``torch.compile`` (private).

Dynamo cannot trace the ctypes calls of :mod:`htaf.families.snn.fused`, so a compiled model
used to break its graph at every neuron layer. As custom operators with fake kernels and an
autograd formula, the kernels are opaque nodes of one graph: AOTAutograd puts the backward
operator into the backward graph, and inductor calls the very kernels eager mode calls, so the
compiled and eager results agree bit for bit.

* ``htaf_snn::sequence(x, v0, beta, table, ...)``: ``(spikes, h, v_last)`` of a neuron layer
  over ``steps`` steps (``x`` is ``(steps, M)``, or ``(M,)`` held when ``const``). ``beta`` is
  a 0-d tensor (PLIF learns it); ``table`` the estimator's backward rule at ``h - θ`` where the
  kernel does not know it by formula (evaluated by the caller, traced by dynamo).
* ``htaf_snn::sequence_backward(...)``: ``(dx, dv0, dβ)``, the reverse recurrence.
* ``htaf_snn::fire(h, ...)``: the spikes again from the membrane (``NeuronSequence.respike``).
* ``htaf_snn::conv_bn``, ``conv_bn_backward``, ``max_pool``, ``max_pool_backward``: the ATen
  calls of ``layers.spike_conv_bn`` and ``layers.spike_max_pool`` (pure PyTorch, registered
  whatever the kernel), so that inductor keeps ATen's channels-last BatchNorm and pooling.

The neuron modules (``LIF``...) call :func:`neuron_sequence` here under dynamo, which imports
(and registers) this module only there (dynamo runs an ``import`` rather than tracing it);
where the kernel cannot be built :data:`AVAILABLE` is False and the fused path is traced
instead (the pure-PyTorch recurrences, with a graph break where a learned decay is read).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from htaf.families.snn import binary_matmul, fused

#: Whether the operators are registered (the kernel built and loaded).
AVAILABLE: bool = fused.kernel_available()


def _fn(name: str, dtype: torch.dtype) -> Any:
    return getattr(fused._load().lib, f"{name}_{'f32' if dtype == torch.float32 else 'f64'}")


def _check(x: Tensor) -> None:
    if x.dtype not in (torch.float32, torch.float64) or x.device.type != "cpu":
        raise TypeError(f"htaf_snn operators take CPU float32/float64 tensors, got {x.dtype} "
                        f"on {x.device}")  # fmt: skip


if AVAILABLE:

    @torch.library.custom_op("htaf_snn::sequence", mutates_args=(), device_types="cpu")
    def sequence(
        x: Tensor, v0: Tensor | None, beta: Tensor, table: Tensor | None, steps: int,
        const: bool, threshold: float, v_reset: float, hard_reset: bool, detach_reset: bool,
        fire: int, f0: float, f1: float, rule: int, r0: float, r1: float,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """The forward recurrence by the C++ kernel (``table``, ``rule``... serve the backward)."""
        _check(x)
        x = x.contiguous()
        m = x.shape[-1]
        s = torch.empty((steps, m), dtype=x.dtype)
        h = torch.empty_like(s)
        v_last = torch.empty(m, dtype=x.dtype)
        v0 = v0.contiguous() if v0 is not None else None
        _fn("snn_forward", x.dtype)(
            x.data_ptr(), 0 if const else m, fused._ptr(v0), s.data_ptr(), h.data_ptr(),
            v_last.data_ptr(), steps, m, float(beta), threshold, v_reset, int(hard_reset), fire,
            f0, f1, fused._htaf_fns(x.dtype)[0], fused._threads(steps * m),
        )  # fmt: skip
        return s, h, v_last

    @sequence.register_fake
    def _(x, v0, beta, table, steps, const, threshold, v_reset, hard_reset, detach_reset,
          fire, f0, f1, rule, r0, r1):  # fmt: skip
        m = x.shape[-1]
        s = x.new_empty((steps, m))
        return s, torch.empty_like(s), x.new_empty((m,))

    @torch.library.custom_op("htaf_snn::sequence_backward", mutates_args=(), device_types="cpu")
    def sequence_backward(
        h: Tensor, gs: Tensor | None, gh: Tensor | None, gv: Tensor | None,
        table: Tensor | None, v0: Tensor | None, beta: Tensor, const: bool, need_beta: bool,
        threshold: float, v_reset: float, hard_reset: bool, detach_reset: bool, fire: int,
        f0: float, f1: float, rule: int, r0: float, r1: float,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """``(dx, dv0, dβ)`` by the C++ kernel; ``dx`` is summed over time when ``const``."""
        _check(h)
        steps, m = h.shape
        gs, gh, gv, table, v0 = (
            t.contiguous() if t is not None else None for t in (gs, gh, gv, table, v0)
        )
        gx = torch.empty(m if const else (steps, m), dtype=h.dtype)
        gv0 = torch.empty(m, dtype=h.dtype)
        lib = fused._load().lib
        blocks = -(-m // int(lib.snn_block()))
        dbeta = torch.zeros(blocks, dtype=torch.float64)
        _fn("snn_backward", h.dtype)(
            h.contiguous().data_ptr(), fused._ptr(gs), fused._ptr(gh), fused._ptr(gv),
            fused._ptr(table), fused._ptr(v0), gx.data_ptr(), 0 if const else m, gv0.data_ptr(),
            dbeta.data_ptr() if need_beta else None, steps, m, float(beta), threshold, v_reset,
            int(hard_reset), int(detach_reset), fire, f0, f1, rule, r0, r1,
            *fused._htaf_fns(h.dtype), fused._threads(steps * m),
        )  # fmt: skip
        return gx, gv0, dbeta.sum().to(beta.dtype)

    @sequence_backward.register_fake
    def _(h, gs, gh, gv, table, v0, beta, const, need_beta, threshold, v_reset, hard_reset,
          detach_reset, fire, f0, f1, rule, r0, r1):  # fmt: skip
        steps, m = h.shape
        return h.new_empty((m,) if const else (steps, m)), h.new_empty((m,)), beta.new_empty(())

    _OPTIONS = ("steps", "const", "threshold", "v_reset", "hard_reset", "detach_reset", "fire",
                "f0", "f1", "rule", "r0", "r1")  # fmt: skip

    def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        _, v0, beta, table, *options = inputs
        ctx.options = dict(zip(_OPTIONS, options, strict=True))
        ctx.need_beta = beta.requires_grad
        ctx.set_materialize_grads(False)  # unused outputs (h, v_last) need no zeros
        # the membrane sequence (an output) and what the rule needs; v0 only for dβ
        ctx.save_for_backward(output[1], table, v0 if ctx.need_beta else None, beta)

    def _vjp(ctx: Any, gs: Tensor | None, gh: Tensor | None, gv: Tensor | None) -> tuple:
        h, table, v0, beta = ctx.saved_tensors
        o = ctx.options
        gx, gv0, dbeta = sequence_backward(
            h, gs, gh, gv, table, v0, beta, o["const"], ctx.need_beta, o["threshold"],
            o["v_reset"], o["hard_reset"], o["detach_reset"], o["fire"], o["f0"], o["f1"],
            o["rule"], o["r0"], o["r1"],
        )  # fmt: skip
        need = ctx.needs_input_grad
        return (gx if need[0] else None, gv0 if need[1] else None,
                dbeta if ctx.need_beta else None, *([None] * (1 + len(_OPTIONS))))  # fmt: skip

    sequence.register_autograd(_vjp, setup_context=_setup)

    @torch.library.custom_op("htaf_snn::fire", mutates_args=(), device_types="cpu")
    def fire(h: Tensor, threshold: float, kind: int, f0: float, f1: float) -> Tensor:
        """``f(h - θ)`` by the kernel, without a graph."""
        _check(h)
        h = h.contiguous()
        out = torch.empty_like(h)
        _fn("snn_fire", h.dtype)(
            h.data_ptr(), out.data_ptr(), h.numel(), threshold, kind, f0, f1,
            fused._htaf_fns(h.dtype)[0], fused._threads(h.numel()),
        )  # fmt: skip
        return out

    @fire.register_fake
    def _(h, threshold, kind, f0, f1):
        return torch.empty_like(h, memory_format=torch.contiguous_format)


if AVAILABLE:

    @torch.library.custom_op("htaf_snn::pack_bits", mutates_args=(), device_types="cpu")
    def pack_bits(x: Tensor) -> Tensor:
        """:func:`~htaf.families.snn.fused.pack_bits` by the kernel (inductor's code for the
        shifts and sums of the pure-PyTorch packing is several times slower)."""
        return fused.pack_bits(x)

    @pack_bits.register_fake
    def _(x):
        return x.new_empty(((x.numel() + 7) // 8,), dtype=torch.uint8)

    @torch.library.custom_op("htaf_snn::unpack_bits", mutates_args=(), device_types="cpu")
    def unpack_bits(packed: Tensor, shape: list[int], dtype: torch.dtype) -> Tensor:
        """:func:`~htaf.families.snn.fused.unpack_bits` by the kernel."""
        return fused.unpack_bits(packed, tuple(shape), dtype)

    @unpack_bits.register_fake
    def _(packed, shape, dtype):
        return packed.new_empty(shape, dtype=dtype)


#: Whether the binary-matmul operators are registered (both kernels built and loaded).
GATHER: bool = AVAILABLE and binary_matmul.available()

if GATHER:

    @torch.library.custom_op("htaf_snn::binary_linear", mutates_args=(), device_types="cpu")
    def binary_linear(
        bits: Tensor, shape: list[int], weight: Tensor, bias: Tensor | None
    ) -> Tensor:
        """:func:`~htaf.families.snn.binary_matmul.linear` (no autograd: the caller's)."""
        return binary_matmul.linear(bits, (shape[0], shape[1]), weight, bias)

    @binary_linear.register_fake
    def _(bits, shape, weight, bias):
        return weight.new_empty((shape[0], weight.shape[0]))

    @torch.library.custom_op("htaf_snn::binary_weight_grad", mutates_args=(), device_types="cpu")
    def binary_weight_grad(bits: Tensor, shape: list[int], grad: Tensor) -> Tensor:
        """:func:`~htaf.families.snn.binary_matmul.weight_grad`."""
        return binary_matmul.weight_grad(bits, (shape[0], shape[1]), grad)

    @binary_weight_grad.register_fake
    def _(bits, shape, grad):
        return grad.new_empty((grad.shape[1], shape[1]))


def bits_take(x: Tensor) -> bool:
    """Whether :func:`pack_bits` and :func:`unpack_bits` handle a float tensor like ``x``."""
    return AVAILABLE and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def neuron_sequence(
    x: Tensor, p: Any, est: Any, *, beta: Tensor | float, v0: Tensor | None, steps: int | None,
    backend: str,
) -> fused.NeuronSequence | None:  # fmt: skip
    """:func:`~htaf.families.snn.fused.neuron_sequence` through the operators, under dynamo;
    None where they do not apply (the caller traces the fused path then)."""
    if backend == "torch" or fused._UNROLLED:
        return None
    if getattr(est, "pending", False):  # calibration reads the data: not in a graph
        raise RuntimeError(
            f"{type(est).__name__}(alpha0=auto) calibrates on its first input, which a "
            "compiled graph cannot do: run one forward in eager mode (or "
            "htaf.calibrate(model, batch)) before torch.compile"
        )
    const = steps is not None
    steps, shape = (steps, tuple(x.shape)) if const else (x.shape[0], tuple(x.shape[1:]))
    if p.decay_input:
        x = (1 - beta) * x
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):  # as the fused path: float32's range
        x = x.float()
    if not takes(x, est):
        return None
    order = fused.dense_order(x, 0 if const else 1)  # channels-last: as the eager path
    x, v0, state_order = fused.in_memory_order(x, v0, const, order)
    shape = tuple(x.shape) if const else tuple(x.shape[1:])
    m = 1
    for d in shape:
        m *= d
    flat = x.reshape((m,) if const else (steps, m))
    v_flat = v0.reshape(m).to(flat.dtype) if v0 is not None else None
    s, h, v, respike = run(fused._Neuron(p, est, True), flat, steps, const, v_flat, beta)
    s, h, v = fused.unflatten_state(s, h, v, steps, shape, state_order)
    return fused.NeuronSequence(s.to(dtype), h.to(dtype), v.to(dtype), respike=respike)


def takes(x: Tensor, est: Any) -> bool:
    """Whether the operators run a layer with input ``x`` and estimator ``est``: static
    metadata only (no guard on sizes under dynamo)."""
    return (
        AVAILABLE
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and fused._fire_spec(est) is not None
    )


def run(
    n: Any, x: Tensor, steps: int, const: bool, v0: Tensor | None, beta: Tensor | float
) -> tuple[Tensor, Tensor, Tensor, Any]:
    """``(spikes, h, v_last, respike)`` of the layer ``n`` (a ``fused._Neuron``) through the
    operators; ``x`` is ``(steps, M)`` or ``(M,)``."""
    f_kind, f0, f1 = fused._fire_spec(n.est)
    rule, r0, r1 = fused._rule_spec(n.est)
    beta_t = beta if isinstance(beta, Tensor) else torch.tensor(beta, dtype=torch.float64)
    table = None
    if rule == fused.RULE_TABLE and torch.is_grad_enabled():
        # the rule needs h, which only the forward gives: run it once without a graph first
        with torch.no_grad():
            h = sequence(x, v0, beta_t.detach(), None, steps, const, *_args(n, f_kind, f0, f1))[1]
            table = fused._rule_values(n.est, h - n.p.threshold)
    s, h, v = sequence(x, v0, beta_t, table, steps, const, *_args(n, f_kind, f0, f1, rule, r0, r1))
    threshold = n.p.threshold

    def respike(hh: Tensor) -> Tensor:
        if f_kind == fused.FIRE_STEP:
            # an expression that inductor compiles into one vectorised loop into a buffer of
            # its own (the kernel call writes fresh memory and runs one block at a time)
            return step(hh - threshold)
        order = fused.dense_order(hh)  # elementwise: in memory order, as the eager path
        if order is not None:
            out = fire(hh.permute(order), threshold, f_kind, f0, f1)
            return out.permute(fused.inverse_order(order))
        return fire(hh, threshold, f_kind, f0, f1)

    return s, h, v, respike


def step(u: Tensor) -> Tensor:
    """The kernel's spike ``1{u >= 0}`` with NaN kept, as :func:`fused._step` computes it, in
    comparisons only: NaN fails both and passes through. Inductor vectorises comparisons but
    compiles ``isnan`` into a scalar loop."""
    return torch.where(u >= 0, 1.0, torch.where(u < 0, 0.0, u))


def _args(n: Any, f_kind: int, f0: float, f1: float, rule: int = 0, r0: float = 0.0,
          r1: float = 0.0) -> tuple:  # fmt: skip
    p = n.p
    return (float(p.threshold), float(p.v_reset), p.reset == "hard", bool(p.detach_reset),
            int(f_kind), float(f0), float(f1), int(rule), float(r0), float(r1))  # fmt: skip


@torch.library.custom_op("htaf_snn::seeded_uniform", mutates_args=())
def seeded_uniform(x: Tensor, steps: int, seed: int) -> Tensor:
    """``(steps, *x.shape)`` uniform draws of a new generator seeded with ``seed``: the eval
    draws of the rate code, which a graph cannot make (it cannot create a generator)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return torch.rand((steps, *x.shape), generator=generator, dtype=x.dtype, device=x.device)


@seeded_uniform.register_fake
def _(x, steps, seed):
    return x.new_empty((steps, *x.shape))


@torch.library.custom_op("htaf_snn::global_uniform", mutates_args=(), device_types="cpu")
def global_uniform(x: Tensor, steps: int) -> Tensor:
    """``(steps, *x.shape)`` uniform draws of torch's global generator, the training draws of
    the rate code as eager mode makes them: inductor's own CPU draws (a counter-based value
    per element) are slower than ATen's and differ from eager's."""
    return torch.rand((steps, *x.shape), dtype=x.dtype, device=x.device)


@global_uniform.register_fake
def _(x, steps):
    return x.new_empty((steps, *x.shape))


# -- Conv -> BatchNorm and max pooling as opaque operators -----------------------------------------
# Inductor would otherwise decompose BatchNorm and pooling into loops of its own, which on
# channels-last activations run slower than ATen's kernels that eager mode calls. As operators
# they run those very kernels (the results bit for bit eager's). Outputs are forced into the
# layout the fake kernels state, since compiled code indexes them by those strides.
def layers_take(x: Tensor) -> bool:
    """Whether the layer operators below handle an activation like ``x``."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.dim() == 4


def _format(x: Tensor) -> torch.memory_format:
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format


@torch.library.custom_op("htaf_snn::column_sum", mutates_args=(), device_types="cpu")
def column_sum(g: Tensor) -> Tensor:
    """``g.sum(0)`` of a 2-d ``g`` by ATen: a Linear's bias gradient ``Σ_r G[r]``. Inductor's
    own loop for it walks one strided column block at a time, slower than ATen's."""
    return g.sum(0)


@column_sum.register_fake
def _(g):
    return g.new_empty(g.shape[1:])


@torch.library.custom_op("htaf_snn::conv_bn", mutates_args=(), device_types="cpu")
def conv_bn(
    x: Tensor, weight: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor | None,
    running_var: Tensor | None, training: bool, momentum: float, eps: float, stride: list[int],
    padding: list[int], dilation: list[int], groups: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """``(bn(conv(x)), mean, invstd, running_mean', running_var')``: the statistics updated
    on copies (an operator with autograd around it may not mutate its inputs)."""
    y = torch.nn.functional.conv2d(x, weight, None, stride, padding, dilation, groups)
    y = y.contiguous(memory_format=_format(x))
    rm = running_mean.clone() if running_mean is not None else None
    rv = running_var.clone() if running_var is not None else None
    out, mean, invstd = torch.native_batch_norm(y, gamma, beta, rm, rv, training, momentum, eps)
    empty = x.new_empty(0)
    return (out.contiguous(memory_format=_format(x)), mean, invstd,
            rm if rm is not None else empty, rv if rv is not None else empty)  # fmt: skip


@conv_bn.register_fake
def _(x, weight, gamma, beta, running_mean, running_var, training, momentum, eps, stride, padding,
      dilation, groups):  # fmt: skip
    y = torch.nn.functional.conv2d(x, weight, None, stride, padding, dilation, groups)
    out = torch.empty_like(y, memory_format=_format(x))
    c = weight.shape[0] if training else 0
    stat = x.new_empty(c)
    rm = torch.empty_like(running_mean) if running_mean is not None else x.new_empty(0)
    rv = torch.empty_like(running_var) if running_var is not None else x.new_empty(0)
    return out, stat, torch.empty_like(stat), rm, rv


@torch.library.custom_op("htaf_snn::conv_bn_backward", mutates_args=(), device_types="cpu")
def conv_bn_backward(
    grad: Tensor, x: Tensor, weight: Tensor, gamma: Tensor, running_mean: Tensor | None,
    running_var: Tensor | None, mean: Tensor, invstd: Tensor, training: bool, eps: float,
    stride: list[int], padding: list[int], dilation: list[int], groups: int, need: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """``(dx, dweight, dgamma, dbeta)`` of :func:`conv_bn` (empty where ``need`` says no),
    recomputing the convolution."""
    fmt = _format(x)
    y = torch.nn.functional.conv2d(x, weight, None, stride, padding, dilation, groups)
    y = y.contiguous(memory_format=fmt)
    gy, ggamma, gbeta = torch.ops.aten.native_batch_norm_backward(
        grad.contiguous(memory_format=fmt), y, gamma, running_mean, running_var, mean, invstd,
        training, eps, [need[0] or need[1], need[2], need[3]],
    )  # fmt: skip
    empty = x.new_empty(0)
    gx = gw = empty
    if need[0] or need[1]:
        gx, gw, _ = torch.ops.aten.convolution_backward(
            gy, x, weight, None, stride, padding, dilation, False, [0] * len(padding), groups,
            [need[0], need[1], False],
        )  # fmt: skip
        gx = gx.contiguous(memory_format=fmt) if need[0] else empty
        gw = gw.contiguous() if need[1] else empty
    return (gx, gw, ggamma.contiguous() if need[2] else empty,
            gbeta.contiguous() if need[3] else empty)  # fmt: skip


@conv_bn_backward.register_fake
def _(grad, x, weight, gamma, running_mean, running_var, mean, invstd, training, eps, stride,
      padding, dilation, groups, need):  # fmt: skip
    empty = x.new_empty(0)
    gx = torch.empty_like(x, memory_format=_format(x)) if need[0] else empty
    gw = torch.empty_like(weight, memory_format=torch.contiguous_format) if need[1] else empty
    gg = torch.empty_like(gamma) if need[2] else empty
    gb = torch.empty_like(gamma) if need[3] else empty
    return gx, gw, gg, gb


@torch.library.custom_op("htaf_snn::max_pool", mutates_args=(), device_types="cpu")
def max_pool(
    x: Tensor, kernel: list[int], stride: list[int], padding: list[int], dilation: list[int],
    ceil_mode: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``(pooled, positions of the maxima)``: ATen's int64 positions, which the caller
    converts to what it keeps (in the graph, where inductor fuses the conversion)."""
    y, where = torch.nn.functional.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode,
                                              return_indices=True)  # fmt: skip
    fmt = _format(x)
    return y.contiguous(memory_format=fmt), where.contiguous(memory_format=fmt)


@max_pool.register_fake
def _(x, kernel, stride, padding, dilation, ceil_mode):
    y = torch.nn.functional.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    y = torch.empty_like(y, memory_format=_format(x))
    return y, torch.empty_like(y, dtype=torch.int64)


@torch.library.custom_op("htaf_snn::max_pool_backward", mutates_args=(), device_types="cpu")
def max_pool_backward(
    grad: Tensor, where: Tensor, shape: list[int], channels_last: bool, kernel: list[int],
    stride: list[int], padding: list[int], dilation: list[int], ceil_mode: bool,
) -> Tensor:  # fmt: skip
    """The gradient of the pooling's input, scattered to where the maxima were."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    like = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=fmt)
    gx = torch.ops.aten.max_pool2d_with_indices_backward(
        grad.contiguous(memory_format=fmt), like, kernel, stride, padding, dilation, ceil_mode,
        where.to(torch.int64),
    )  # fmt: skip
    return gx.contiguous(memory_format=fmt)


@max_pool_backward.register_fake
def _(grad, where, shape, channels_last, kernel, stride, padding, dilation, ceil_mode):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=fmt)


# Inductor lowers a layout copy (``x.contiguous(...)``) as a loop that it inlines into every
# consumer rather than computing once: the channels-last input of the first convolution was
# written twice (for the convolution and for the bits it keeps), the flattened conv output twice
# (for the bits and for the matmul), and its loops for a 3-channel transpose are slower than
# ATen's copy. As an operator it is one ATen copy whose output every consumer reads.
@torch.library.custom_op("htaf_snn::strided_copy", mutates_args=(), device_types="cpu")
def strided_copy(x: Tensor, stride: list[int]) -> Tensor:
    """``x`` copied into new memory laid out with ``stride`` (a dense layout of its shape)."""
    return torch.empty_strided(x.shape, stride, dtype=x.dtype, device=x.device).copy_(x)


@strided_copy.register_fake
def _(x, stride):
    return x.new_empty_strided(x.shape, stride)


def _strided_copy_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.stride = inputs[0].stride()


def _strided_copy_vjp(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
    # The gradient in the input's layout: the conv stack's backward runs on channels-last
    # memory as its forward does (the gradient of the flattened conv output comes from a
    # matmul in the standard layout).
    if grad.stride() == ctx.stride:
        return grad, None
    return strided_copy(grad, list(ctx.stride)), None


strided_copy.register_autograd(_strided_copy_vjp, setup_context=_strided_copy_setup)


def dense_strides(shape: tuple[int, ...], channels_last: bool = False) -> list[int]:
    """The strides of a dense tensor of ``shape`` in the standard or the channels-last layout
    (4-d: ``(N, C, H, W)`` lying as ``(N, H, W, C)``)."""
    order = [0, 2, 3, 1] if channels_last and len(shape) == 4 else list(range(len(shape)))
    stride = [0] * len(shape)
    step = 1
    for d in reversed(order):
        stride[d] = step
        step *= shape[d]
    return stride


def contiguous(x: Tensor, channels_last: bool = False) -> Tensor:
    """``x.contiguous(memory_format=...)`` under dynamo: ``x`` itself where it already lies so,
    else :func:`strided_copy` (decided on the traced strides, which dynamo guards anyway)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if x.is_contiguous(memory_format=fmt):
        return x
    return strided_copy(x, dense_strides(tuple(x.shape), channels_last))


def window_positions(
    where: Tensor, shape: list[int], kernel: list[int], stride: list[int], padding: list[int],
    dilation: list[int], ceil_mode: bool,
) -> Tensor | None:  # fmt: skip
    """Where each maximum lies within its window, ``a·kw + b`` as uint8, from ATen's positions
    ``where = i·W + j`` in the input plane, for pooling windows that tile the input (stride =
    kernel, no padding, dilation or partial window, at most 256 elements); None for any other
    pooling. A quarter of the int32 positions' bytes, and what :func:`scatter_to_maxima`
    compares against (``ceil_mode`` is moot without a partial window)."""
    w = shape[3]
    kh, kw = kernel
    ho, wo = where.shape[-2], where.shape[-1]
    tiles = list(stride) == [kh, kw] and not any(padding) and list(dilation) == [1, 1]
    if not tiles or kh * kw > 256 or ho * kh > shape[2] or wo * kw > w:
        return None
    dev = where.device
    # the window (oh, ow) starts at i = oh·kh, j = ow·kw; offset = a·W + b with b < kw <= W
    corner = (torch.arange(ho, device=dev) * (kh * w))[:, None] + torch.arange(wo, device=dev) * kw
    offset = (where - corner).to(torch.int32)
    # a = offset // W as kh - 1 comparisons: inductor's vectorised integer division is slow
    a = sum((offset >= r * w).to(torch.int32) for r in range(1, kh)) if kh > 1 else 0
    return (offset - a * (w - kw)).to(torch.uint8)  # a·kw + b


def scatter_to_maxima(
    grad: Tensor, at: Tensor, shape: list[int], channels_last: bool, kernel: list[int]
) -> Tensor:
    """:func:`max_pool_backward` for the positions ``at`` of :func:`window_positions`, as one
    elementwise expression that inductor compiles into a single loop over the input gradient.

    Input pixel ``(oh·kh + a, ow·kw + b)`` lies in window ``(oh, ow)`` alone, so its gradient
    is that window's gradient where the window's maximum was and 0 elsewhere:
    ``dx[oh·kh + a, ow·kw + b] = g[oh, ow] · 1{at[oh, ow] = a·kw + b}``, ATen's zero fill and
    scatter bit for bit in one pass (rows and columns past the last window get 0)."""
    n, c, h, w = shape
    kh, kw = kernel
    ho, wo = grad.shape[-2], grad.shape[-1]
    # The loop runs over dx in memory order and reads the gradient at the same place: fast
    # where the gradient lies as the input does (the standard-layout copy that dynamo makes
    # of an autograd.Function's gradient is fused into the loop as a read of the original).
    dev = grad.device
    pos = (torch.arange(kh, device=dev)[:, None] * kw + torch.arange(kw, device=dev)).int()
    at = at.int()  # compared as int32: inductor's uint8 comparisons do not vectorise
    if channels_last:  # (n, ho, kh, wo, kw, c): channels innermost, as in memory
        g = grad.permute(0, 2, 3, 1)[:, :, None, :, None, :]
        hit = at.permute(0, 2, 3, 1)[:, :, None, :, None, :] == pos[:, None, :, None]
        dx = torch.where(hit, g, 0).reshape(n, ho * kh, wo * kw, c)
        dx = torch.nn.functional.pad(dx, (0, 0, 0, w - wo * kw, 0, h - ho * kh))
        return dx.permute(0, 3, 1, 2)
    hit = at[:, :, :, None, :, None] == pos[:, None, :]  # (n, c, ho, kh, wo, kw)
    dx = torch.where(hit, grad[:, :, :, None, :, None], 0).reshape(n, c, ho * kh, wo * kw)
    return torch.nn.functional.pad(dx, (0, w - wo * kw, 0, h - ho * kh))
