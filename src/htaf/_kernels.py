"""Fused CPU kernels for HTAF (private): ``csrc/htaf_kernels.c``, loaded with :mod:`ctypes`.

Eager PyTorch evaluates HTAF as a chain of elementwise ops, each of which allocates (and
page-faults) a full-size temporary and streams it through memory. Here the forward and the
backward are each one pass over memory: a small C file, compiled on first use by
:mod:`htaf._build` into a per-user cache directory and called on contiguous CPU float32/float64
buffers (by the native operator of :mod:`htaf._native` where it builds, else through
:mod:`ctypes`), parallelised with OpenMP (the same ``libgomp`` that PyTorch has loaded, with
``torch.get_num_threads()`` threads).

The float32 pair is hand-vectorised with intrinsics for AVX-512 and for AVX2 + FMA (faster
than the compiler's vectorisation of the portable loops: see benchmarks/README.md); a CPU with
neither runs the portable loops, and the tests check every pair against a float64 truth.
Every kernel works through its output in 1 MiB blocks; a freshly allocated large output has
each block's pages faulted in, in one system call, before the block is computed (see
``HTAF_BLOCKS``).

Nothing here needs PyTorch headers. Every failure (no compiler, no OpenMP, a read-only cache,
``HTAF_DISABLE_KERNELS=1``) makes :func:`available` return False, and callers use the pure-torch
path in :mod:`htaf.functional`. The C code is built without ``-ffast-math``: NaN in gives NaN
out, and ``exp`` (``csrc/htaf_exp.h``) is a vectorisable Cody-Waite + polynomial implementation
accurate to about one ulp that underflows gradually, so the float32 gradient tail stays as
accurate as the reference. The environment variables are :mod:`htaf._build`'s.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from htaf._build import Once, compiler, first_library, kernels_allowed

__all__ = [
    "DTYPES", "MIN_NUMEL", "SIMD", "SOURCE", "available", "backward", "forward", "step", "supports",
    "tracing",
]  # fmt: skip

#: The kernels' source file in ``htaf/csrc``.
SOURCE = "htaf_kernels.c"
#: The hand-vectorised float32 pairs (``htaf_fwd_f32_<isa>``), best first; a library has those
#: its compiler targeted.
SIMD = ("avx512", "avx2")

# Below this many elements the pure-torch path is used: per-call overhead dominates there.
# From 1024 up, one fused call beats the ~16 small torch ops of the backward (benchmarks/
# README.md, "Figures behind choices in the code"). The build happens once per machine.
MIN_NUMEL = 1 << 10
# The dtypes the kernels exist for.
DTYPES = (torch.float32, torch.float64)
# Below this many elements one thread does the work (OpenMP fork/join is not free).
_PARALLEL_NUMEL = 1 << 12


def _declare(lib: ctypes.CDLL) -> None:
    """Give ctypes the C signatures of the kernels (it would guess ints otherwise)."""
    i64, vp, ci = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    variants = [("f32", ctypes.c_float), ("f64", ctypes.c_double)]
    variants += [(f"f32_{isa}", ctypes.c_float) for isa in SIMD]
    for suffix, real in variants:
        if not hasattr(lib, f"htaf_fwd_{suffix}"):
            continue  # the SIMD functions exist only when the compiler targets their ISA
        fwd = getattr(lib, f"htaf_fwd_{suffix}")
        fwd.argtypes = [vp, vp, i64, real, real, ci]
        fwd.restype = None
        bwd = getattr(lib, f"htaf_bwd_{suffix}")
        bwd.argtypes = [vp, vp, real, vp, i64, real, real, real, ci]
        bwd.restype = None
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        step = getattr(lib, f"htaf_step_{suffix}")
        step.argtypes = [vp, vp, i64, real, ci]
        step.restype = None


def _functions(lib: ctypes.CDLL) -> dict[torch.dtype, tuple[Any, Any]]:
    simd = [f"f32_{isa}" for isa in SIMD if hasattr(lib, f"htaf_fwd_f32_{isa}")]
    f32 = simd[0] if simd else "f32"
    return {
        torch.float32: (getattr(lib, f"htaf_fwd_{f32}"), getattr(lib, f"htaf_bwd_{f32}")),
        torch.float64: (lib.htaf_fwd_f64, lib.htaf_bwd_f64),
    }


@dataclass(frozen=True)
class Kernels:
    """The loaded kernels: one immutable value, published whole by :data:`_load`, so that a
    reader never sees a library without its functions (:mod:`htaf._native` and
    :mod:`htaf.families.snn.fused` hand these functions' addresses to their own code)."""

    lib: ctypes.CDLL
    #: dtype -> (forward, backward); the first float32 pair of :data:`SIMD` that was compiled.
    fns: Mapping[torch.dtype, tuple[Any, Any]]
    #: dtype -> the exact step (used by the native operator's hard estimators).
    step_fns: Mapping[torch.dtype, Any]
    #: Built with OpenMP: large calls may use several threads.
    openmp: bool

    def threads(self, n: int) -> int:
        """Threads for a call over ``n`` elements."""
        return torch.get_num_threads() if self.openmp and n >= _PARALLEL_NUMEL else 1


def _open() -> Kernels | None:
    """Build (once per machine) and load the kernels; None where that is not possible."""
    cc = compiler() if kernels_allowed() else None
    if cc is None:
        return None
    # PyDLL keeps the GIL: the calls are short (OpenMP parallelises inside them), so releasing
    # and reacquiring it around each would cost more than other threads could gain.
    found = first_library("htaf_kernels", SOURCE, cc, ("htaf_kernels_abi", 1), loader=ctypes.PyDLL)
    if found is None:
        return None
    lib, flags = found
    _declare(lib)
    steps = {torch.float32: lib.htaf_step_f32, torch.float64: lib.htaf_step_f64}
    return Kernels(lib, _functions(lib), steps, "-fopenmp" in flags)


#: The kernels, built on the first call; None where they cannot be used.
_load: Once[Kernels] = Once(_open, "htaf kernels")


def available() -> bool:
    """Whether the compiled kernels can be used (compiles them on the first call)."""
    return _load() is not None


def _is_plain_cpu(t: Tensor) -> bool:
    if type(t) not in (torch.Tensor, torch.nn.Parameter):
        return False  # FakeTensor, FunctionalTensor, other subclasses
    if t.device.type != "cpu" or t.layout != torch.strided:
        return False
    is_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return not (is_wrapped is not None and is_wrapped(t))


def tracing() -> bool:
    """Whether dynamo, TorchScript or jit.trace is recording: they need the pure-torch path.
    Ask this first: under dynamo, sizes may be symbolic and comparing them would add guards."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


def supports(x: Tensor) -> bool:
    """Whether the fast path handles ``x`` (already in its compute dtype). Cheap checks first;
    compiles the kernels on the first large enough call."""
    if tracing() or x.dtype not in DTYPES or x.numel() < MIN_NUMEL:
        return False
    return _is_plain_cpu(x) and _load() is not None


def _dense_order(t: Tensor) -> list[int] | None:
    """Permutation that makes a dense, non-overlapping ``t`` contiguous, or None."""
    order = sorted(range(t.dim()), key=lambda d: t.stride(d), reverse=True)
    return order if t.permute(order).is_contiguous() else None


def forward(x: Tensor, a0: float, a1: float) -> Tensor:
    """HTAF of a tensor accepted by :func:`supports`; the result has the layout of ``x`` when
    ``x`` is dense, else it is contiguous."""
    k = _load()
    assert k is not None
    fn = k.fns[x.dtype][0]
    order = None if x.is_contiguous() else _dense_order(x)
    xp = x.permute(order) if order is not None else x.contiguous()
    out = torch.empty_like(xp, memory_format=torch.contiguous_format)
    n = xp.numel()
    fn(xp.data_ptr(), out.data_ptr(), n, a0, a1, k.threads(n))
    if order is not None:
        out = out.permute([order.index(d) for d in range(x.dim())])
    return out


def backward(x: Tensor, a0: float, a1: float, grad: Tensor) -> Tensor:
    """``grad * HTAF'(x)`` for ``x`` accepted by :func:`supports` and ``grad`` of the same shape
    and dtype (a broadcast scalar such as the gradient of ``.sum()`` is not materialised)."""
    k = _load()
    assert k is not None
    fn = k.fns[x.dtype][1]
    order = None if x.is_contiguous() else _dense_order(x)
    xp = x.permute(order) if order is not None else x.contiguous()
    if grad.dtype != x.dtype:
        grad = grad.to(x.dtype)
    gp, gs = None, 0.0
    if order is None and grad.is_contiguous():
        gp = grad  # the usual case: no stride inspection
    elif grad.numel() == 1 or all(st == 0 for st in grad.stride()):
        gs = grad.reshape(-1)[0].item()
    else:
        gp = (grad.permute(order) if order is not None else grad).contiguous()
    out = torch.empty_like(xp, memory_format=torch.contiguous_format)
    n = xp.numel()
    gptr = None if gp is None else gp.data_ptr()
    fn(xp.data_ptr(), gptr, gs, out.data_ptr(), n, -2 * a0, -a1, 4 * a0 * a1, k.threads(n))
    if order is not None:
        out = out.permute([order.index(d) for d in range(x.dim())])
    return out


def step(x: Tensor, lo: float) -> Tensor:
    """The exact step ``1 if x >= 0 else lo`` (NaN stays NaN) of a contiguous CPU float32 or
    float64 tensor, as a new contiguous tensor."""
    k = _load()
    assert k is not None and x.is_contiguous()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    n = x.numel()
    k.step_fns[x.dtype](x.data_ptr(), out.data_ptr(), n, lo, k.threads(n))
    return out
