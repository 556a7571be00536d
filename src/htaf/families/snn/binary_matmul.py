"""Products of a 0/1 matrix with float matrices, by adding the rows its ones select.

A synapse fed by spikes computes, with ``X`` the ``(T·B, n_in)`` matrix of 0/1 spikes,

    forward           Y = X Wᵀ + b,     Y[r] = b + Σ_{i : X[r,i] = 1} W[:, i]
    weight gradient   dW = Gᵀ X,        dWᵀ[i] = Σ_{r : X[r,i] = 1} G[r]

A dense product multiplies every entry of ``X``; these sums read only the operand rows that a
one selects, so at spike density ``d`` they do about ``d`` of the work (event-driven, as
neuromorphic hardware runs). Both read ``X`` as the bits that the synapse keeps for its backward
anyway (:func:`~htaf.families.snn.fused.pack_bits`): no float copy of ``X`` is made.

The C kernel (``csrc/binary_matmul.c``) lists the ones of ``X`` by row or by column and adds
tile-major operand rows (its header says why). It runs where it is faster: float32 on the CPU,
at least :data:`MIN_WIDTH` outputs and at most :data:`MAX_DENSITY` ones (the crossover:
benchmarks/README.md, "SNN step"). Elsewhere, and where the kernel cannot be built, the same
functions unpack the bits and multiply densely. Either way the result is the dense product's up
to float summation order.
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from htaf import _build
from htaf.families.snn.fused import unpack_bits

__all__ = ["MAX_DENSITY", "MIN_WIDTH", "available", "fits", "linear", "weight_grad"]

#: Above this fraction of ones the dense product can be faster.
MAX_DENSITY = 0.3
#: Below this many output columns the dense product can be faster (a tile is 64 wide).
MIN_WIDTH = 64

_SOURCE = "binary_matmul.c"


class _Library(NamedTuple):
    lib: ctypes.CDLL
    openmp: bool
    tile: int
    chunk: int


def _open() -> _Library | None:
    cc = _build.compiler()
    if not _build.kernels_allowed() or cc is None:
        return None
    found = _build.first_library("htaf_binary_matmul", _SOURCE, cc, ("bm_abi", 4))
    if found is None:
        return None
    lib, flags = found
    i64, vp, ci = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    for name in ("bm_rows_count", "bm_cols_count"):
        getattr(lib, name).argtypes = [vp, i64, i64, i64, vp, ci]
    for name in ("bm_rows_fill", "bm_cols_fill"):
        getattr(lib, name).argtypes = [vp, i64, i64, i64, vp, vp, ci]
    lib.bm_gather.argtypes = [vp, vp, i64, i64, vp, i64, i64, i64, vp, vp, ci]
    lib.bm_transpose.argtypes = [vp, i64, i64, i64, i64, vp, i64, ci]
    for name in ("bm_tile", "bm_chunk"):
        getattr(lib, name).restype = i64
    return _Library(lib, "-fopenmp" in flags, int(lib.bm_tile()), int(lib.bm_chunk()))


_load: _build.Once[_Library] = _build.Once(_open, "htaf binary matmul kernel")


def available() -> bool:
    """Whether the kernel can be used (builds it on the first call, once per machine)."""
    return _load() is not None


def fits(width: int, like: Tensor) -> bool:
    """Whether the kernel takes a product with ``width`` output columns of ``like``'s dtype and
    device, once built (:func:`available`) and when ``X`` is sparse enough."""
    return like.dtype == torch.float32 and like.device.type == "cpu" and width >= MIN_WIDTH


def _threads() -> int:
    return torch.get_num_threads() if _load().openmp else 1


def _lists(bits: Tensor, rows: int, cols: int, by_rows: bool) -> tuple[Tensor, Tensor, int]:
    """``(ptr, idx, chunks)``: the ones of the bits, by row (column chunks) or by column."""
    lib = _load()
    chunks = -(-(cols if by_rows else rows) // lib.chunk)
    counts = torch.zeros(chunks * (rows if by_rows else cols) + 1, dtype=torch.int64)
    count = lib.lib.bm_rows_count if by_rows else lib.lib.bm_cols_count
    count(bits.data_ptr(), bits.numel(), rows, cols, counts[1:].data_ptr(), _threads())
    ptr = counts.cumsum_(0)
    idx = torch.empty(int(ptr[-1]), dtype=torch.int32)
    at = ptr if by_rows else ptr[:-1].clone()  # bm_cols_fill advances these cursors in place
    fill = lib.lib.bm_rows_fill if by_rows else lib.lib.bm_cols_fill
    fill(bits.data_ptr(), bits.numel(), rows, cols, at.data_ptr(), idx.data_ptr(), _threads())
    return ptr, idx, chunks


def _transpose(m: Tensor, group: int | None = None) -> Tensor:
    """``m.t()`` as a new row-major matrix or, with ``group``, tile-major
    (``[tiles][cols][group]``, zero padded: ``_tile_major`` of ``m.t()``), for a row-major
    float32 ``m`` (the kernel's blocked transpose)."""
    rows, cols = m.shape
    size = group or rows
    tiles = -(-rows // size)
    out = (torch.zeros if rows % size else torch.empty)(tiles, cols, size)
    _load().lib.bm_transpose(m.data_ptr(), rows, cols, cols, size, out.data_ptr(), size,
                             _threads())  # fmt: skip
    return out if group else out.view(cols, rows)


def _tile_major(m: Tensor) -> Tensor:
    """``m`` (n, width) as ``[tiles][n][tile]``, zero padded to whole tiles."""
    tile = _load().tile
    if m.t().is_contiguous():  # a transposed weight: one blocked pass
        return _transpose(m.t(), tile)
    n, width = m.shape
    tiles = -(-width // tile)
    if width % tile:
        m = torch.cat([m, m.new_zeros(n, tiles * tile - width)], 1)
    return m.reshape(n, tiles, tile).transpose(0, 1).contiguous()


def _gather(ptr: Tensor, idx: Tensor, chunks: int, m: Tensor, init: Tensor | None) -> Tensor:
    """``out[a] = init + Σ_{b in list(a)} m[b]``: ``(n_a, width)`` for ``m`` ``(n_b, width)``."""
    lib = _load()
    n_a = (ptr.numel() - 1) // chunks
    (n_b, width), m = m.shape, m.detach()
    if width % lib.tile == 0 and m.is_contiguous():  # row-major as it is
        operand, tile_stride, ld = m, lib.tile, width
    else:
        operand, tile_stride, ld = _tile_major(m), n_b * lib.tile, lib.tile
    out = torch.empty(n_a, width, dtype=torch.float32)
    init_ptr = init.detach().contiguous().data_ptr() if init is not None else None
    lib.lib.bm_gather(ptr.data_ptr(), idx.data_ptr(), n_a, chunks, operand.data_ptr(),
                      tile_stride, ld, width, init_ptr, out.data_ptr(), _threads())  # fmt: skip
    return out


def _check(bits: Tensor, shape: tuple[int, int], operand: Tensor, dim: int) -> None:
    """The kernel reads ``rows·cols`` bits, and ``operand``'s ``dim`` must be ``shape[dim]``."""
    rows, cols = shape
    if bits.dtype != torch.uint8 or bits.numel() * 8 < rows * cols:
        raise ValueError(f"bits: expected at least {rows * cols} bits as uint8 for X of shape "
                         f"{shape}, got {bits.numel()} {bits.dtype} elements")  # fmt: skip
    if operand.dim() != 2 or operand.shape[dim] != shape[dim]:
        raise ValueError(f"operand of shape {tuple(operand.shape)} does not match X of shape "
                         f"{shape}")  # fmt: skip


def _sparse(ptr: Tensor, rows: int, cols: int) -> bool:
    return int(ptr[-1]) <= MAX_DENSITY * rows * cols


def linear(bits: Tensor, shape: tuple[int, int], weight: Tensor, bias: Tensor | None) -> Tensor:
    """``X Wᵀ + b`` for the 0/1 matrix ``X`` of ``shape`` packed in ``bits``: ``(rows, out)``."""
    rows, cols = shape
    _check(bits, shape, weight, 1)
    if rows and cols and fits(weight.shape[0], weight) and available():
        ptr, idx, chunks = _lists(bits, rows, cols, by_rows=True)
        if _sparse(ptr, rows, cols):
            return _gather(ptr, idx, chunks, weight.t(), bias)
    return F.linear(unpack_bits(bits, shape, weight.dtype), weight, bias)


def weight_grad(bits: Tensor, shape: tuple[int, int], grad: Tensor) -> Tensor:
    """``Gᵀ X`` for the 0/1 matrix ``X`` of ``shape`` packed in ``bits``: ``(out, cols)``."""
    rows, cols = shape
    _check(bits, shape, grad, 0)
    if rows and cols and fits(grad.shape[1], grad) and available():
        ptr, idx, chunks = _lists(bits, rows, cols, by_rows=False)
        if _sparse(ptr, rows, cols):
            return _transpose(_gather(ptr, idx, chunks, grad, None))
    return grad.t().matmul(unpack_bits(bits, shape, grad.dtype))
