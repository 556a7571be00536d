"""HTAF and the exact step as native PyTorch operators with C++ autograd nodes (private).

Why it exists: on small batches, reaching a fused kernel of :mod:`htaf._kernels` through a
Python ``autograd.Function`` and :mod:`ctypes` costs more than the kernel itself, enough to
keep a DHN step at batch 64 well behind ReLU's. The hard estimators (straight-through,
surrogates, decoupled rules) paid more: PyTorch's compare, cast, isnan and where for the step,
and the straight-through graph around it (the figures: benchmarks/README.md, "Before the native
operators"). Here a small C++ file (``csrc/htaf_native.cpp``) registers three operators:

* ``htaf(x, alpha0, alpha1)``: HTAF, with its hand-written backward;
* ``step(x, lo)``: the exact step ``1 if x >= 0 else lo`` (NaN stays NaN), no gradient;
* ``step_with_rule(x, rule, lo)``: the step forward and ``grad * rule`` backward, where
  ``rule`` is an estimator's backward rule evaluated (without a graph) by the caller.

The C++ file holds no math. It is handed the addresses of the kernels that :mod:`htaf._kernels`
compiled and loaded, and calls them; a second derivative of HTAF (``create_graph=True``) uses
ATen ops with the formula of :func:`htaf.functional.htaf_derivative`, so it stays
differentiable.

It is compiled on first use against the installed PyTorch's headers (about 15 s, once per
PyTorch version and machine) into the kernels' cache directory, under a file lock so that
parallel workers build it once. Any failure (no C++ compiler, no headers, no kernels,
``HTAF_DISABLE_NATIVE=1``) makes :func:`accepts` return False, and callers use their pure
PyTorch paths instead.

Eager mode only: dynamo cannot trace these operators (their autograd lives in C++ and their
kernels read data pointers), so under ``torch.compile`` the same kernels are reached through
the ``torch.library`` custom operators of :mod:`htaf._ops`, which have fake kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from htaf import _build, _kernels

__all__ = ["accepts", "available", "htaf", "step", "step_with_rule"]

logger = logging.getLogger(__name__)

#: The operators' source file in ``htaf/csrc``.
SOURCE = "htaf_native.cpp"


def _command(cxx: str, std: str, out: Path) -> list[str]:
    from torch.utils import cpp_extension

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    libdirs = cpp_extension.library_paths()
    return [
        cxx, std, "-O2", "-shared", "-fPIC", "-w", f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        *[f"-I{p}" for p in cpp_extension.include_paths()], str(_build.CSRC / SOURCE),
        "-o", str(out),
        # Libraries after the source: linkers with --as-needed drop those named before it.
        *[f"-L{p}" for p in libdirs], *[f"-Wl,-rpath,{p}" for p in libdirs],
        "-ltorch", "-ltorch_cpu", "-lc10",
    ]  # fmt: skip


def _target(cxx: str) -> Path:
    key = "\0".join([_build.source_key(SOURCE), cxx, torch.__version__, torch.__file__,
                     sys.platform])  # fmt: skip
    return _build.cache_dir() / f"htaf_native_{hashlib.sha256(key.encode()).hexdigest()[:20]}.so"


def _compile(cxx: str, target: Path) -> bool:
    def commands(out: Path) -> list[list[str]]:
        # PyTorch >= 2.6 wants C++20, older versions C++17.
        return [_command(cxx, std, out) for std in ("-std=c++20", "-std=c++17")]

    return _build.compile_library(commands, target)


def _built_library() -> Path | None:
    cxx = _build.cxx_compiler()
    if cxx is None:
        return None
    target = _target(cxx)
    if target.exists():
        return target
    import fcntl  # POSIX only; _load() reaches here only on Linux

    target.parent.mkdir(parents=True, exist_ok=True)  # for the lock file
    with open(target.parent / ".htaf_native.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel workers: one builds, the others wait
        if not target.exists():
            msg = "htaf: compiling the native HTAF operators into %s (once, about 15 s)"
            logger.warning(msg, target.parent)
            if not _compile(cxx, target):
                return None
    return target


def _address(fn: Any) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


def _open() -> dict[str, Any] | None:
    """Build the operators (once per machine), load them and hand them the kernels; the
    operators by name, or None where any of that is not possible."""
    kernels = _kernels._load() if _build.kernels_allowed("HTAF_DISABLE_NATIVE") else None
    if kernels is None:
        return None
    path = _built_library()
    if path is None:
        return None
    torch.ops.load_library(str(path))
    ops = torch.ops.htaf_native
    if ops.abi() != 2:  # abi() in csrc/htaf_native.cpp
        return None
    (f32, b32), (f64, b64) = (kernels.fns[d] for d in _kernels.DTYPES)
    s32, s64 = (kernels.step_fns[d] for d in _kernels.DTYPES)
    parallel = _kernels._PARALLEL_NUMEL if kernels.openmp else 1 << 62
    ops.set_kernels(*[_address(fn) for fn in (f32, b32, f64, b64, s32, s64)], parallel)
    return {"htaf": ops.htaf.default, "step": ops.step.default, "rule": ops.step_with_rule.default}


#: The loaded operators by name, built on the first call; None where they are unavailable.
_load: _build.Once[dict[str, Any]] = _build.Once(_open, "htaf native operators")


def available() -> bool:
    """Whether the native operators can be used (builds them on the first call)."""
    return _load() is not None


def accepts(x: Tensor) -> bool:
    """Whether :func:`htaf` handles ``x``: a plain contiguous CPU float32/float64 tensor in
    eager mode, outside functorch transforms. Cheap checks first; builds the operator on the
    first accepted call."""
    if not isinstance(x, Tensor):
        return False  # the callers' checks name the bad input
    if _kernels.tracing() or torch._C._are_functorch_transforms_active():
        return False  # vmap and friends need an autograd.Function with setup_context
    if x.dtype not in _kernels.DTYPES or not x.is_contiguous():
        return False
    return _kernels._is_plain_cpu(x) and _load() is not None


def htaf(x: Tensor, a0: float, a1: float) -> Tensor:
    """HTAF through the native operator, for ``x`` accepted by :func:`accepts`."""
    return _load()["htaf"](x, a0, a1)


def step(x: Tensor, lo: float) -> Tensor:
    """The exact step ``1 if x >= 0 else lo`` (NaN stays NaN), without a gradient, for ``x``
    accepted by :func:`accepts`."""
    return _load()["step"](x, lo)


def step_with_rule(x: Tensor, rule: Tensor, lo: float) -> Tensor:
    """:func:`step` forward and ``grad * rule`` backward, for ``x`` accepted by :func:`accepts`
    and ``rule`` of its shape (detached: the rule is not differentiated)."""
    return _load()["rule"](x, rule, lo)
