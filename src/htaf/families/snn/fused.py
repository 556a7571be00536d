"""The memory-light multi-step neuron: one autograd node for a whole (T, ...) sequence.

    out = neuron_sequence(x, LIFParameters(beta=0.9), estimator)   # x: (T, ...) currents
    out.spikes, out.membrane, out.v                                   # (T, ...), (T, ...), (...)

Unrolled in autograd, every time step of a neuron saves several tensors (its membrane, the
spike, the reset's operands), so BPTT memory grows by a few copies of the state per step. Here
the node saves **only the membrane sequence** ``h`` (what the backward needs): the spikes, the
estimator's backward rule ``g(h - θ)`` and the states after each reset are recomputed from it.
The backward is the reverse recurrence (``functional`` gives the forward)

    dh_t = gs_t g_t + gh_t + dv_t a_t,   dx_t = dh_t,   dv_{t-1} = β dh_t,   dβ = Σ_t dh_t v_{t-1}

with ``a_t = ∂v_t/∂h_t``: ``1 - θ g_t`` (soft reset), ``1 - s_t + (v_r - h_t) g_t`` (hard
reset), and without the ``g`` term when the reset is detached. It holds for every registered
estimator: in hard mode ``g`` is the estimator's rule, in smooth mode the derivative of its
smooth forward (the same function for every estimator with a primitive; see
``htaf.estimators.base``). Stochastic rules (jamming) are drawn once per backward pass, over the
whole sequence, from the estimator's own generator: the same numbers, in the same order, as an
unrolled loop draws step by step.

Two backends give the same values and gradients:

* ``"kernel"``: a C++ kernel (``htaf/csrc/lif_kernels.cpp``), compiled on first use by
  :mod:`htaf._build` and called through ctypes; OpenMP over blocks of neurons, the
  time loop inside. It knows the step, HTAF and sigmoid forwards and the rules of htaf,
  sigmoid_surrogate, scaled_sigmoid, atan, fast_sigmoid and triangle by formula (HTAF through
  :mod:`htaf._kernels`' vectorised functions); any other rule is evaluated by the estimator
  (vectorised over the whole sequence) and passed in.
* ``"torch"``: the same recurrences in PyTorch (any device, any estimator).

``"auto"`` picks the kernel for contiguous CPU float32/float64 tensors when it builds, and
PyTorch otherwise (``HTAF_DISABLE_KERNELS=1`` switches the kernel off).

Under ``torch.no_grad()`` no node is built. A constant input (``steps=T`` with ``x`` of shape
``(...)``: direct encoding) is read T times without being copied, and its gradient is the sum
over time.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from htaf import _build, _kernels
from htaf.estimators import Estimator, harden
from htaf.estimators.smooth import HTAF, ScaledSigmoid
from htaf.estimators.surrogates import ATan, FastSigmoid, SigmoidSurrogate, Triangle
from htaf.families.snn.functional import ALIFParameters, IFParameters, recurrent_current

__all__ = [
    "BACKENDS", "NeuronSequence", "alif_sequence", "kernel_available", "neuron_sequence",
    "pack_bits", "rlif_sequence", "spike_values", "synaptic_current", "unpack_bits",
]  # fmt: skip

BACKENDS = ("auto", "kernel", "torch")
_SOURCE = "lif_kernels.cpp"  # in htaf/csrc
# Below this many elements (T x M) the kernel runs on one thread.
_PARALLEL_NUMEL = 1 << 15

FIRE_STEP, FIRE_HTAF, FIRE_SIGMOID = 0, 1, 2
RULE_TABLE, RULE_HTAF, RULE_SIGMOID, RULE_ATAN, RULE_FAST_SIGMOID, RULE_TRIANGLE = range(6)


@dataclass
class NeuronSequence:
    """A neuron layer's run over T steps: spikes and membrane ``(T, ...)``, last state ``(...)``."""

    spikes: Tensor
    membrane: Tensor  # h_t, the membrane after charging and before the reset
    v: Tensor  # the state after the last step's reset
    #: ``respike(membrane)`` gives ``spikes`` again without a graph (bit for bit from the
    #: kernel and for exact spikes; to rounding otherwise): a layer fed by these spikes can
    #: save the membrane (already saved here) instead of the spikes.
    respike: Callable[[Tensor], Tensor] | None = field(repr=False, default=None)
    #: The whole last state of a neuron with more than a membrane (``SynapticState``,
    #: ``ALIFState``, ``RLIFState``); None for IF, LIF and PLIF, whose state is ``v``.
    state: tuple | None = field(repr=False, default=None)


# -- the kernel library ------------------------------------------------------------------------
class _Library(NamedTuple):
    lib: ctypes.CDLL
    openmp: bool  # built with -fopenmp: large calls may use several threads


def _declare(lib: ctypes.CDLL) -> None:
    """Give ctypes the C signatures of the kernel (it would guess ints otherwise)."""
    i64, vp, ci = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fwd = getattr(lib, f"snn_forward_{suffix}")
        fwd.argtypes = [vp, i64, vp, vp, vp, vp, i64, i64, real, real, real, ci, ci, real, real,
                        vp, ci]  # fmt: skip
        bwd = getattr(lib, f"snn_backward_{suffix}")
        bwd.argtypes = [vp, vp, vp, vp, vp, vp, vp, i64, vp, vp, i64, i64, real, real, real, ci,
                        ci, ci, real, real, ci, real, real, vp, vp, ci]  # fmt: skip
        fire = getattr(lib, f"snn_fire_{suffix}")
        fire.argtypes = [vp, vp, i64, real, ci, real, real, vp, ci]
        pack = getattr(lib, f"snn_pack_{suffix}")
        pack.argtypes = [vp, vp, i64, ci]
        unpack = getattr(lib, f"snn_unpack_{suffix}")
        unpack.argtypes = [vp, vp, i64, ci]
        for fn in (fwd, bwd, fire, pack, unpack):
            fn.restype = None
    lib.snn_block.restype = ctypes.c_longlong


def _open() -> _Library | None:
    """Build (once per machine) and load the kernel; None where that is not possible."""
    # HTAF comes from htaf._kernels' vectorised functions: both build or neither.
    if not (_build.kernels_allowed() and _kernels.available()):
        return None
    cxx = _build.cxx_compiler()
    if cxx is None:
        return None
    # CDLL releases the GIL: the calls are long.
    found = _build.first_library("htaf_snn", _SOURCE, cxx, ("snn_kernels_abi", 2))
    if found is None:
        return None
    lib, flags = found
    _declare(lib)
    return _Library(lib, "-fopenmp" in flags)


#: The kernel library, built on the first call; None where it cannot be used.
_load: _build.Once[_Library] = _build.Once(_open, "htaf snn kernels")


def kernel_available() -> bool:
    """Whether the C++ kernel can be used (builds it on the first call, once per machine)."""
    return _load() is not None


def _kernel_accepts(*tensors: Tensor | None) -> bool:
    if _kernels.tracing() or torch._C._are_functorch_transforms_active():
        return False
    for t in tensors:
        if t is None:
            continue
        if t.dtype not in _kernels.DTYPES or not _kernels._is_plain_cpu(t):
            return False
    return _load() is not None


def _htaf_fns(dtype: torch.dtype) -> tuple[int, int]:
    """Addresses of htaf._kernels' HTAF forward and backward for ``dtype``."""
    fns = _kernels._load().fns[dtype]
    return tuple(ctypes.cast(fn, ctypes.c_void_p).value or 0 for fn in fns)


def _threads(n: int) -> int:
    return torch.get_num_threads() if _load().openmp and n >= _PARALLEL_NUMEL else 1


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def dense_order(x: Tensor, first: int = 0) -> list[int] | None:
    """The permutation ``order`` for which ``x.permute(order)`` is contiguous when ``x`` (at
    least ``first + 3`` dims) holds channels-last activations: its last three dims
    ``(C, H, W)`` lie in memory as ``(H, W, C)``; None for any other tensor.

    The neuron is elementwise, so it runs on the memory as it lies: a channels-last layer is
    neither copied to the standard layout and back nor handed on in a layout its next
    convolution would convert again. (Only this one order is tried, with no sort of the
    strides: dynamo cannot sort symbolic strides.)"""
    d = x.dim()
    if d - first < 3 or x.is_contiguous():
        return None
    order = [*range(d - 3), d - 2, d - 1, d - 3]
    return order if x.permute(order).is_contiguous() else None


def in_memory_order(
    x: Tensor, v0: Tensor | None, const: bool, order: list[int] | None
) -> tuple[Tensor, Tensor | None, list[int] | None]:
    """``x`` and the state ``v0`` permuted by ``order`` (from :func:`dense_order`), so that
    their dims are in memory order, and the state's own order (None: no permutation)."""
    if order is None:
        return x, v0, None
    state_order = order if const else [d - 1 for d in order[1:]]
    return x.permute(order), v0.permute(state_order) if v0 is not None else None, state_order


def inverse_order(order: list[int]) -> list[int]:
    out = [0] * len(order)
    for i, d in enumerate(order):
        out[d] = i
    return out


# -- what the kernel knows about an estimator ------------------------------------------------
def _hard(est: Estimator) -> bool:
    return est.mode == "hard" or not est.has_primitive


#: What the kernel computes itself, by exact estimator class (a subclass may change the
#: formula): its spike forward (None: only the estimator can), its backward rule, and the
#: attributes that are the kernel's two parameters.
_KERNEL_FORMULAS: dict[type, tuple[int | None, int, tuple[str, ...]]] = {
    HTAF: (FIRE_HTAF, RULE_HTAF, ("alpha0", "alpha1")),
    SigmoidSurrogate: (FIRE_SIGMOID, RULE_SIGMOID, ("alpha",)),
    ScaledSigmoid: (FIRE_SIGMOID, RULE_SIGMOID, ("beta",)),
    ATan: (None, RULE_ATAN, ("alpha",)),
    FastSigmoid: (None, RULE_FAST_SIGMOID, ("k",)),
    Triangle: (None, RULE_TRIANGLE, ("alpha",)),
}


def _formulas(est: Estimator) -> tuple[int | None, int, float, float]:
    """(fire kind, rule kind, p0, p1) of ``est``; (None, RULE_TABLE, 0, 0) for any other."""
    fire, rule, names = _KERNEL_FORMULAS.get(type(est), (None, RULE_TABLE, ()))
    p0, p1 = (*(getattr(est, name) for name in names), 0.0, 0.0)[:2]
    return fire, rule, p0, p1


def _fire_spec(est: Estimator) -> tuple[int, float, float] | None:
    """The spike forward as (kind, p0, p1), or None where only the estimator can compute it."""
    if _hard(est):
        return FIRE_STEP, 0.0, 0.0
    fire, _, p0, p1 = _formulas(est)
    return None if fire is None else (fire, p0, p1)


def _rule_spec(est: Estimator) -> tuple[int, float, float]:
    """The backward rule as (kind, p0, p1); RULE_TABLE: the estimator evaluates it."""
    _, rule, p0, p1 = _formulas(est)
    return rule, p0, p1


def _step(u: Tensor) -> Tensor:
    return torch.where(torch.isnan(u), u, (u >= 0).to(u.dtype))


def spike_values(est: Estimator, u: Tensor) -> Tensor:
    """The spikes ``f(u)`` of ``est`` in its current mode, without a graph (no random draws)."""
    with torch.no_grad():
        if _hard(est):
            return _step(u)
        return est._to_output(est.smooth(u))


def _rule_values(est: Estimator, u: Tensor) -> Tensor:
    with torch.no_grad():
        return est.output_grad(u)


# -- forward and backward, each in both backends --------------------------------------------
@dataclass(frozen=True)
class _Neuron:
    """Everything but the input and the decay: parameters, estimator, and which backend runs."""

    p: IFParameters
    est: Estimator
    kernel: bool

    @property
    def hard_reset(self) -> int:
        return int(self.p.reset == "hard")

    def reset(self, h: Tensor, s: Tensor) -> Tensor:
        if self.p.reset == "soft":
            return h - self.p.threshold * s
        return h * (1 - s) + self.p.v_reset * s


def _forward(
    n: _Neuron, x: Tensor, steps: int, const: bool, v0: Tensor | None, beta: float
) -> tuple[Tensor, Tensor, Tensor]:
    """``(spikes, h, v_last)`` as (steps, M) / (M,) tensors; ``x`` is (steps, M) or (M,)."""
    m = x.shape[-1]
    fire = _fire_spec(n.est)
    if n.kernel and fire is not None:
        s = torch.empty((steps, m), dtype=x.dtype)
        h = torch.empty_like(s)
        v_last = torch.empty(m, dtype=x.dtype)
        lib = _load().lib
        fn = lib.snn_forward_f32 if x.dtype == torch.float32 else lib.snn_forward_f64
        fn(x.data_ptr(), 0 if const else m, _ptr(v0), s.data_ptr(), h.data_ptr(),
           v_last.data_ptr(), steps, m, beta, n.p.threshold, n.p.v_reset, n.hard_reset, fire[0],
           fire[1], fire[2], _htaf_fns(x.dtype)[0], _threads(steps * m))  # fmt: skip
        return s, h, v_last
    v = v0 if v0 is not None else torch.zeros(m, dtype=x.dtype, device=x.device)
    spikes, hs = [], []
    for t in range(steps):
        h = beta * v + (x if const else x[t])
        s = spike_values(n.est, h - n.p.threshold)
        v = n.reset(h, s)
        spikes.append(s)
        hs.append(h)
    return torch.stack(spikes), torch.stack(hs), v


def _backward(
    n: _Neuron,
    h: Tensor,
    gs: Tensor | None,
    gh: Tensor | None,
    gv: Tensor | None,
    v0: Tensor | None,
    beta: float,
    const: bool,
    need_beta: bool,
) -> tuple[Tensor, Tensor, float]:
    """``(dx, dv0, dβ)``; ``dx`` is (steps, M), or (M,) summed over time when ``const``."""
    steps, m = h.shape
    fire, (rule, r0, r1) = _fire_spec(n.est), _rule_spec(n.est)
    table = _rule_values(n.est, h - n.p.threshold) if rule == RULE_TABLE else None
    if n.kernel and fire is not None:
        gs, gh = (g.contiguous() if g is not None else None for g in (gs, gh))
        gv = gv.contiguous() if gv is not None else None
        gx = torch.empty(m if const else (steps, m), dtype=h.dtype)
        gv0 = torch.empty(m, dtype=h.dtype)
        lib = _load().lib
        blocks = -(-m // int(lib.snn_block()))
        dbeta = torch.zeros(blocks, dtype=torch.float64) if need_beta else None
        fn = lib.snn_backward_f32 if h.dtype == torch.float32 else lib.snn_backward_f64
        fn(h.data_ptr(), _ptr(gs), _ptr(gh), _ptr(gv), _ptr(table), _ptr(v0), gx.data_ptr(),
           0 if const else m, gv0.data_ptr(), _ptr(dbeta), steps, m, beta, n.p.threshold,
           n.p.v_reset, n.hard_reset, int(n.p.detach_reset), fire[0], fire[1], fire[2], rule, r0,
           r1, *_htaf_fns(h.dtype), _threads(steps * m))  # fmt: skip
        return gx, gv0, float(dbeta.sum()) if dbeta is not None else 0.0
    u = h - n.p.threshold
    g = table if table is not None else _rule_values(n.est, u)
    s = spike_values(n.est, u) if (n.p.reset == "hard" or need_beta) else None
    if n.p.reset == "soft":
        a = torch.ones_like(h) if n.p.detach_reset else 1 - n.p.threshold * g
    else:
        a = (1 - s) if n.p.detach_reset else (1 - s) + (n.p.v_reset - h) * g
    dv = gv if gv is not None else torch.zeros(m, dtype=h.dtype, device=h.device)
    gx = torch.zeros(m, dtype=h.dtype, device=h.device) if const else torch.empty_like(h)
    dbeta = torch.zeros((), dtype=torch.float64, device=h.device)
    for t in range(steps - 1, -1, -1):
        dh = dv * a[t]
        if gs is not None:
            dh = dh + gs[t] * g[t]
        if gh is not None:
            dh = dh + gh[t]
        if const:
            gx += dh
        else:
            gx[t] = dh
        if need_beta:
            if t > 0:
                v_prev = n.reset(h[t - 1], s[t - 1])
            else:
                v_prev = v0 if v0 is not None else torch.zeros_like(dh)
            dbeta += (dh.double() * v_prev.double()).sum()
        dv = beta * dh
    return gx, dv, float(dbeta)


class _SequenceFunction(torch.autograd.Function):
    """The autograd node: saves the membrane sequence (and v0 when β is learned) only."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, v0: Tensor | None, beta: Tensor | None, n: _Neuron, steps: int,
        const: bool, beta_value: float,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        s, h, v_last = _forward(n, x, steps, const, v0, beta_value)
        ctx.n, ctx.const, ctx.beta_value = n, const, beta_value
        ctx.need_beta = beta is not None and beta.requires_grad
        ctx.save_for_backward(h, v0 if ctx.need_beta else None)
        ctx.set_materialize_grads(False)
        return s, h, v_last

    @staticmethod
    def backward(ctx: Any, gs: Tensor | None, gh: Tensor | None, gv: Tensor | None) -> tuple:
        h, v0 = ctx.saved_tensors
        gx, gv0, dbeta = _backward(
            ctx.n, h, gs, gh, gv, v0, ctx.beta_value, ctx.const, ctx.need_beta
        )
        gbeta = torch.tensor(dbeta, dtype=h.dtype) if ctx.need_beta else None
        needs = ctx.needs_input_grad
        return (gx if needs[0] else None, gv0 if needs[1] else None, gbeta,
                None, None, None, None)  # fmt: skip


def neuron_sequence(
    x: Tensor,
    p: IFParameters,
    est: Estimator,
    *,
    beta: Tensor | float | None = None,
    v0: Tensor | None = None,
    steps: int | None = None,
    backend: str = "auto",
) -> NeuronSequence:
    """Run a neuron layer over time in one node (see the module doc).

    Args:
        x: input currents ``(T, ...)``; or ``(...)`` held constant for ``steps`` steps.
        p: the neuron's parameters (:class:`IFParameters`, ``LIFParameters``...); the input is
            scaled by ``1 - β`` first when ``p.decay_input``.
        est: the spike estimator (``signed=False``), in the mode to use.
        beta: the decay, overriding ``p.beta``; a tensor (PLIF's ``sigmoid(-w)``) gets a gradient.
        v0: the state before the first step (default: 0, at rest), shape ``(...)``.
        steps: T for a constant input.
        backend: ``"auto"``, ``"kernel"`` (error where it cannot run) or ``"torch"``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    const = steps is not None
    if const:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps (T) must be a positive integer, got {steps!r}")
        shape = tuple(x.shape)
    else:
        if x.dim() < 1 or x.shape[0] < 1:
            raise ValueError(f"x must be (T, ...) with T >= 1, got shape {tuple(x.shape)}")
        steps, shape = x.shape[0], tuple(x.shape[1:])
    beta = p.beta if beta is None else beta
    beta_value = float(beta.detach()) if isinstance(beta, Tensor) else float(beta)
    if p.decay_input:
        x = (1 - beta) * x
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):  # the recurrences want float32's range
        x = x.float()
    # channels-last: the state dims in memory order (the unrolled loop keeps the logical dims)
    order = None if _UNROLLED else dense_order(x, 0 if const else 1)
    x, v0, state_order = in_memory_order(x, v0, const, order)
    shape = tuple(x.shape) if const else tuple(x.shape[1:])
    m = 1
    for d in shape:
        m *= d
    flat = x.reshape((m,) if const else (steps, m)).contiguous()
    v_flat = v0.reshape(m).to(flat.dtype).contiguous() if v0 is not None else None
    beta_t = beta if isinstance(beta, Tensor) else None
    kernel = backend != "torch" and _kernel_accepts(flat, v_flat)
    if backend == "kernel" and not kernel:
        raise ValueError("backend 'kernel' needs contiguous CPU float32/float64 tensors and a "
                         "C++ compiler (see htaf._build)")  # fmt: skip
    n = _Neuron(p, est, kernel)
    if _UNROLLED:
        s, h, v = _unrolled(n, flat, steps, const, v_flat, beta)
        s, h, v = s.reshape(steps, *shape), h.reshape(steps, *shape), v.reshape(shape)
        return NeuronSequence(s.to(dtype), h.to(dtype), v.to(dtype))
    if getattr(est, "pending", False):
        _calibrate(n, flat, steps, const, v_flat, beta_value)
    grads = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (flat, v_flat, beta_t)
    )
    if grads:
        s, h, v = _SequenceFunction.apply(flat, v_flat, beta_t, n, steps, const, beta_value)
    else:
        s, h, v = _forward(n, flat, steps, const, v_flat, beta_value)
    s, h, v = unflatten_state(s, h, v, steps, shape, state_order)
    if dtype != s.dtype:
        s, h, v = s.to(dtype), h.to(dtype), v.to(dtype)
    return NeuronSequence(s, h, v, respike=lambda hh: _respike(n, hh))


def unflatten_state(
    s: Tensor, h: Tensor, v: Tensor, steps: int, shape: tuple[int, ...],
    state_order: list[int] | None,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``(steps, M)``, ``(steps, M)``, ``(M,)`` back to ``(steps, *dims)``, ``(*dims)``; with
    ``state_order``, ``shape`` is in memory order and the views are permuted back to the
    logical dims (the memory left as it lies)."""
    s, h, v = s.reshape(steps, *shape), h.reshape(steps, *shape), v.reshape(shape)
    if state_order is None:
        return s, h, v
    back = inverse_order(state_order)
    seq_back = [0, *(d + 1 for d in back)]
    return s.permute(seq_back), h.permute(seq_back), v.permute(back)


#: Set inside :func:`unrolled`.
_UNROLLED: list[bool] = []


@contextmanager
def unrolled() -> Iterator[None]:
    """Run every neuron layer as a plain autograd loop that calls its estimator module once
    per step, so that hooks on the estimator (:func:`htaf.diagnose`) see each step's input
    ``h - θ`` and its gradient. The same values; more memory and time than the fused node."""
    _UNROLLED.append(True)
    try:
        yield
    finally:
        _UNROLLED.pop()


def _unrolled(
    n: _Neuron, x: Tensor, steps: int, const: bool, v0: Tensor | None, beta: Tensor | float
) -> tuple[Tensor, Tensor, Tensor]:
    v = v0 if v0 is not None else torch.zeros(x.shape[-1], dtype=x.dtype, device=x.device)
    spikes, hs = [], []
    for t in range(steps):
        h = beta * v + (x if const else x[t])
        s = n.est(h - n.p.threshold)
        v = n.reset(h, s.detach() if n.p.detach_reset else s)
        spikes.append(s)
        hs.append(h)
    return torch.stack(spikes), torch.stack(hs), v


def _calibrate(
    n: _Neuron, x: Tensor, steps: int, const: bool, v0: Tensor | None, beta: float
) -> None:
    """``htaf(auto)`` in a layer run over time sets alpha0 on the membranes ``h - θ`` of every
    step of its first input (run with exact spikes), not only on the first step's."""
    with torch.no_grad(), harden(n.est):
        h = _forward(n, x.detach(), steps, const, v0 if v0 is None else v0.detach(), beta)[1]
    n.est.calibrate(h - n.p.threshold)


def _respike(n: _Neuron, h: Tensor) -> Tensor:
    """``f(h - θ)`` without a graph, as the forward of ``n`` computed it."""
    fire = _fire_spec(n.est)
    if n.kernel and fire is not None and h.dtype in _kernels.DTYPES:
        order = dense_order(h)
        if order is not None:  # elementwise: in memory order, and the result in the same
            return _respike(n, h.permute(order)).permute(inverse_order(order))
        h = h.contiguous()
        out = torch.empty_like(h)
        lib = _load().lib
        fn = lib.snn_fire_f32 if h.dtype == torch.float32 else lib.snn_fire_f64
        fn(h.data_ptr(), out.data_ptr(), h.numel(), n.p.threshold, *fire, _htaf_fns(h.dtype)[0],
           _threads(h.numel()))  # fmt: skip
        return out
    return spike_values(n.est, h - n.p.threshold)


# -- binary tensors as bits ------------------------------------------------------------------------
_SHIFTS = torch.arange(8, dtype=torch.uint8)


def pack_bits(x: Tensor) -> Tensor:
    """A 0/1 tensor as ``ceil(n/8)`` bytes, least significant bit first (nonzero counts as 1)."""
    n = x.numel()
    if _kernel_accepts(x):
        x = x.contiguous()
        out = torch.empty((n + 7) // 8, dtype=torch.uint8)
        lib = _load().lib
        fn = lib.snn_pack_f32 if x.dtype == torch.float32 else lib.snn_pack_f64
        fn(x.data_ptr(), out.data_ptr(), n, _threads(n))
        return out
    bits = torch.zeros(-(-n // 8) * 8, dtype=torch.uint8, device=x.device)
    bits[:n] = (x.reshape(-1) != 0).to(torch.uint8)
    return (bits.view(-1, 8) << _SHIFTS.to(x.device)).sum(1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """The 0/1 tensor of ``shape`` and ``dtype`` that :func:`pack_bits` packed."""
    n = 1
    for d in shape:
        n *= d
    out = torch.empty(shape, dtype=dtype, device=packed.device)
    if _kernel_accepts(out):
        lib = _load().lib
        fn = lib.snn_unpack_f32 if dtype == torch.float32 else lib.snn_unpack_f64
        fn(packed.data_ptr(), out.data_ptr(), n, _threads(n))
        return out
    bits = (packed.unsqueeze(-1) >> _SHIFTS.to(packed.device)) & 1
    return out.copy_(bits.reshape(-1)[:n].reshape(shape))


# -- the neurons beyond LIF ------------------------------------------------------------------------
def _flat_state(t: Tensor | None, m: int, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.reshape(m).to(dtype).contiguous()


def synaptic_current(
    x: Tensor, alpha: float, i0: Tensor | None = None, *, steps: int | None = None
) -> Tensor:
    """The synaptic current ``i_t = α i_{t-1} + x_t`` over time, ``(T, ...)``, from ``i0``
    (default 0). A constant input (``steps=T``) gives ``i_t = x (1 - α^{t+1})/(1 - α)`` (plus
    ``α^{t+1} i0``). Only scalar multiplications and sums: autograd saves nothing for it."""
    if steps is not None:
        k = torch.arange(1, steps + 1, dtype=x.dtype, device=x.device)
        gain = k if alpha == 1 else (1 - alpha**k) / (1 - alpha)
        shape = (steps,) + (1,) * x.dim()
        i = gain.view(shape) * x
        return i if i0 is None else i + (alpha**k).view(shape) * i0
    out, i = [], i0
    for t in range(x.shape[0]):
        i = x[t] if i is None else alpha * i + x[t]
        out.append(i)
    return torch.stack(out)


def _alif_states(
    p: ALIFParameters, est: Estimator, h: Tensor, a0: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(u, s, b)``: every step's ``h - b``, spikes and threshold, recomputed from the membrane
    sequence ``h`` ``(T, M)``: the threshold depends only on earlier spikes."""
    a = a0 if a0 is not None else torch.zeros_like(h[0])
    us, ss, bs = [], [], []
    for t in range(h.shape[0]):
        b = p.threshold + p.adapt * a
        u = h[t] - b
        s = spike_values(est, u)
        a = p.rho * a + s
        us.append(u)
        ss.append(s)
        bs.append(b)
    return torch.stack(us), torch.stack(ss), torch.stack(bs)


def _alif_reset(p: ALIFParameters, h: Tensor, s: Tensor, b: Tensor) -> Tensor:
    return h - b * s if p.reset == "soft" else h * (1 - s) + p.v_reset * s


def _alif_forward(
    p: ALIFParameters, est: Estimator, x: Tensor, steps: int, const: bool,
    v0: Tensor | None, a0: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """``(spikes, h, v_last, a_last)`` as (steps, M) / (M,) tensors, without a graph."""
    m = x.shape[-1]
    v = v0 if v0 is not None else torch.zeros(m, dtype=x.dtype, device=x.device)
    a = a0 if a0 is not None else torch.zeros_like(v)
    spikes, hs = [], []
    for t in range(steps):
        h = p.beta * v + (x if const else x[t])
        b = p.threshold + p.adapt * a
        s = spike_values(est, h - b)
        v = _alif_reset(p, h, s, b)
        a = p.rho * a + s
        spikes.append(s)
        hs.append(h)
    return torch.stack(spikes), torch.stack(hs), v, a


class _ALIFFunction(torch.autograd.Function):
    """ALIF over a whole sequence in one node that saves the membrane sequence only.

    The backward recomputes the thresholds and spikes from ``h`` and runs the reverse
    recurrence over the two states (``gs_t`` is the upstream gradient of ``s_t``)::

        ds_t = gs_t + da_t + [attached reset] dv_t ∂v_t/∂s_t      (soft: -b_t; hard: v_r - h_t)
        du_t = ds_t g_t                                          (u_t = h_t - b_t)
        dh_t = du_t + gh_t + dv_t ∂v_t/∂h_t                      (soft: 1; hard: 1 - s_t)
        db_t = -du_t - dv_t s_t [soft reset]
        dx_t = dh_t,  dv_{t-1} = β dh_t,  da_{t-1} = ρ da_t + adapt · db_t
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, v0: Tensor | None, a0: Tensor | None, p: ALIFParameters,
        est: Estimator, steps: int, const: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        s, h, v, a = _alif_forward(p, est, x, steps, const, v0, a0)
        ctx.p, ctx.est, ctx.const = p, est, const
        ctx.save_for_backward(h, a0)
        ctx.set_materialize_grads(False)
        return s, h, v, a

    @staticmethod
    def backward(
        ctx: Any, gs: Tensor | None, gh: Tensor | None, gv: Tensor | None, ga: Tensor | None
    ) -> tuple:
        h, a0 = ctx.saved_tensors
        p, est = ctx.p, ctx.est
        u, s, b = _alif_states(p, est, h, a0)
        g = _rule_values(est, u)  # the whole sequence at once: draws in forward order
        zero = torch.zeros_like(h[0])
        dv = gv if gv is not None else zero
        da = ga if ga is not None else zero
        gx = torch.zeros_like(h[0]) if ctx.const else torch.empty_like(h)
        soft = p.reset == "soft"
        for t in range(h.shape[0] - 1, -1, -1):
            ds = da if gs is None else da + gs[t]
            if not p.detach_reset:
                ds = ds + dv * (-b[t] if soft else p.v_reset - h[t])
            du = ds * g[t]
            dh = du + (dv if soft else dv * (1 - s[t]))
            if gh is not None:
                dh = dh + gh[t]
            db = -du - dv * s[t] if soft else -du
            if ctx.const:
                gx += dh
            else:
                gx[t] = dh
            dv = p.beta * dh
            da = p.rho * da + p.adapt * db
        needs = ctx.needs_input_grad
        return (gx if needs[0] else None, dv if needs[1] else None, da if needs[2] else None,
                None, None, None, None)  # fmt: skip


def alif_sequence(
    x: Tensor,
    p: ALIFParameters,
    est: Estimator,
    *,
    v0: Tensor | None = None,
    a0: Tensor | None = None,
    steps: int | None = None,
) -> tuple[NeuronSequence, Tensor]:
    """ALIF (:class:`~htaf.families.snn.functional.ALIFParameters`) over time in one node that
    saves only the membrane sequence, as :func:`neuron_sequence` does for LIF; returns the run
    and the last adaptation ``a``. PyTorch only (any device): the C++ kernel covers IF, LIF and
    PLIF, whose threshold is a constant."""
    const = steps is not None
    if const:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps (T) must be a positive integer, got {steps!r}")
        shape = tuple(x.shape)
    else:
        if x.dim() < 1 or x.shape[0] < 1:
            raise ValueError(f"x must be (T, ...) with T >= 1, got shape {tuple(x.shape)}")
        steps, shape = x.shape[0], tuple(x.shape[1:])
    if p.decay_input:
        x = (1 - p.beta) * x
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    m = 1
    for d in shape:
        m *= d
    flat = x.reshape((m,) if const else (steps, m))
    v_flat, a_flat = _flat_state(v0, m, flat.dtype), _flat_state(a0, m, flat.dtype)
    if getattr(est, "pending", False):  # htaf(auto): alpha0 from every step's u (exact spikes)
        with torch.no_grad(), harden(est):
            v_d, a_d = (t if t is None else t.detach() for t in (v_flat, a_flat))
            hh = _alif_forward(p, est, flat.detach(), steps, const, v_d, a_d)[1]
            est.calibrate(_alif_states(p, est, hh, a_flat)[0])
    grads = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (flat, v_flat, a_flat)
    )
    if _UNROLLED:
        s, h, v, a = _alif_unrolled(p, est, flat, steps, const, v_flat, a_flat)
    elif grads:
        s, h, v, a = _ALIFFunction.apply(flat, v_flat, a_flat, p, est, steps, const)
    else:
        s, h, v, a = _alif_forward(p, est, flat, steps, const, v_flat, a_flat)
    s, h = s.reshape(steps, *shape).to(dtype), h.reshape(steps, *shape).to(dtype)
    respike = None
    if dtype == flat.dtype:  # the membrane as computed: the spikes come back bit for bit

        def respike(hh: Tensor) -> Tensor:
            return _alif_states(p, est, hh.reshape(steps, m), a_flat)[1].reshape(hh.shape)

    seq = NeuronSequence(s, h, v.reshape(shape).to(dtype), respike=respike)
    return seq, a.reshape(shape).to(dtype)


def _alif_unrolled(
    p: ALIFParameters, est: Estimator, x: Tensor, steps: int, const: bool,
    v0: Tensor | None, a0: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """The plain autograd loop (inside :func:`unrolled`): the estimator module once per step."""
    m = x.shape[-1]
    v = v0 if v0 is not None else torch.zeros(m, dtype=x.dtype, device=x.device)
    a = a0 if a0 is not None else torch.zeros_like(v)
    spikes, hs = [], []
    for t in range(steps):
        h = p.beta * v + (x if const else x[t])
        b = p.threshold + p.adapt * a
        s = est(h - b)
        v = _alif_reset(p, h, s.detach() if p.detach_reset else s, b)
        a = p.rho * a + s
        spikes.append(s)
        hs.append(h)
    return torch.stack(spikes), torch.stack(hs), v, a


def _outer(dh: Tensor, s: Tensor) -> Tensor:
    """``Σ dh_i s_j`` over every batch element and pixel: the weight gradient ``(N, N)``."""
    n = dh.shape[1]
    return dh.movedim(1, -1).reshape(-1, n).T @ s.movedim(1, -1).reshape(-1, n)


def _rlif_forward(
    p: IFParameters, est: Estimator, x: Tensor, w: Tensor, steps: int, const: bool,
    v0: Tensor | None, s0: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``(spikes, h, v_last)`` over time, without a graph; ``x`` is ``(T, B, N, ...)``."""
    first = x if const else x[0]
    v = v0 if v0 is not None else torch.zeros_like(first)
    s, c = s0, (1 - p.beta) if p.decay_input else 1.0
    spikes, hs = [], []
    for t in range(steps):
        current = x if const else x[t]
        if s is not None:
            current = current + recurrent_current(s, w)
        h = p.beta * v + c * current
        s = spike_values(est, h - p.threshold)
        v = h - p.threshold * s if p.reset == "soft" else h * (1 - s) + p.v_reset * s
        spikes.append(s)
        hs.append(h)
    return torch.stack(spikes), torch.stack(hs), v


class _RLIFFunction(torch.autograd.Function):
    """A recurrent LIF layer over a whole sequence in one node that saves the membrane
    sequence ``h`` (and the weights and initial state) only. The threshold is a constant, so
    the spikes and the rule come back from ``h`` elementwise; the backward then runs::

        ds_t = gs_t + c W^T dh_{t+1} + [attached reset] dv_t ∂v_t/∂s_t
        dh_t = ds_t g_t + gh_t + dv_t ∂v_t/∂h_t
        dx_t = c dh_t,  dv_{t-1} = β dh_t,  dW = c Σ_t dh_t s_{t-1}^T,  ds_{-1} = c W^T dh_0

    with ``c = 1 - β`` under decay_input, else 1 (the recurrence is one matrix product per
    step, in PyTorch; the C++ kernel's loop is per neuron).
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, w: Tensor, v0: Tensor | None, s0: Tensor | None, p: IFParameters,
        est: Estimator, steps: int, const: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        s, h, v = _rlif_forward(p, est, x, w, steps, const, v0, s0)
        ctx.p, ctx.est, ctx.const = p, est, const
        ctx.save_for_backward(h, w, s0)
        ctx.set_materialize_grads(False)
        return s, h, v

    @staticmethod
    def backward(ctx: Any, gs: Tensor | None, gh: Tensor | None, gv: Tensor | None) -> tuple:
        h, w, s0 = ctx.saved_tensors
        p, est = ctx.p, ctx.est
        u = h - p.threshold
        g = _rule_values(est, u)  # the whole sequence at once: draws in forward order
        s = spike_values(est, u)
        c = (1 - p.beta) if p.decay_input else 1.0
        soft = p.reset == "soft"
        dv = gv if gv is not None else torch.zeros_like(h[0])
        gx = torch.zeros_like(h[0]) if ctx.const else torch.empty_like(h)
        gw = torch.zeros_like(w)
        dh_next = None
        for t in range(h.shape[0] - 1, -1, -1):
            ds = torch.zeros_like(h[t]) if gs is None else gs[t]
            if dh_next is not None:
                ds = ds + c * recurrent_current(dh_next, w.T)
            if not p.detach_reset:
                ds = ds + dv * (-p.threshold if soft else p.v_reset - h[t])
            dh = ds * g[t] + (dv if soft else dv * (1 - s[t]))
            if gh is not None:
                dh = dh + gh[t]
            if ctx.const:
                gx += c * dh
            else:
                gx[t] = c * dh
            prev = s[t - 1] if t > 0 else s0
            if prev is not None:
                gw += c * _outer(dh, prev)
            dv = p.beta * dh
            dh_next = dh
        ds0 = c * recurrent_current(dh_next, w.T) if s0 is not None else None
        needs = ctx.needs_input_grad
        return (gx if needs[0] else None, gw if needs[1] else None, dv if needs[2] else None,
                ds0 if needs[3] else None, None, None, None, None)  # fmt: skip


def rlif_sequence(
    x: Tensor,
    w_rec: Tensor,
    p: IFParameters,
    est: Estimator,
    *,
    v0: Tensor | None = None,
    s0: Tensor | None = None,
    steps: int | None = None,
) -> NeuronSequence:
    """A recurrent LIF layer (``h_t = β v_{t-1} + x_t + W_rec s_{t-1}``) over time in one
    node that saves only the membrane sequence; ``x`` is ``(T, B, N, ...)`` (or ``(B, N, ...)``
    for ``steps`` steps), ``W_rec`` mixes dimension N. The last state is ``(v, spikes[-1])``.
    PyTorch only (any device): one matrix product per step couples the neurons, which the C++
    kernel's per-neuron time loop cannot do."""
    const = steps is not None
    if const:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps (T) must be a positive integer, got {steps!r}")
    else:
        steps = x.shape[0]
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    w = w_rec.to(x.dtype)
    v0, s0 = (t if t is None else t.to(x.dtype) for t in (v0, s0))
    if getattr(est, "pending", False):  # htaf(auto): alpha0 from every step's h - θ
        with torch.no_grad(), harden(est):
            v_d, s_d = (t if t is None else t.detach() for t in (v0, s0))
            hh = _rlif_forward(p, est, x.detach(), w.detach(), steps, const, v_d, s_d)[1]
            est.calibrate(hh - p.threshold)
    grads = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, w, v0, s0)
    )
    if grads:
        s, h, v = _RLIFFunction.apply(x, w, v0, s0, p, est, steps, const)
    else:
        s, h, v = _rlif_forward(p, est, x, w, steps, const, v0, s0)
    return NeuronSequence(s.to(dtype), h.to(dtype), v.to(dtype),
                          respike=lambda hh: spike_values(est, hh - p.threshold))  # fmt: skip
