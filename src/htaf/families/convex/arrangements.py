"""The arrangement matrix of a two-layer threshold network, stored as bits.

For data ``X`` (n × d) with a ones column appended, ``Xa = [X, 1]``, each direction
``u ∈ R^(d+1)`` gives one hidden step unit ``1{Xa u >= 0}`` and one column of

    H = 1{Xa U >= 0} ∈ {0, 1}^(n × P).

Ergen et al. sample ``u_i ~ N(0, I)``; two directions that split the data the same way give the
same column, so duplicates are dropped (as the official code's ``np.unique(axis=1)``), and so
is the all-zero column (a unit that never fires does nothing).

``H`` is stored column by column as bits: column ``j`` is row ``j`` of ``words`` (``P × W``
``uint64``, ``W = ceil(n / 64)``), bit ``i % 64`` of word ``i // 64`` is ``H[i, j]``. That is
32× less memory than float32: at n = 10 000 and P = 100 000, 125 MB instead of 4 GB. The
products the solver needs come from the bits:

* ``H^T r``: a byte-lookup table per 8 rows (see :mod:`._kernels`), never unpacking ``H``;
* ``H z`` for a sparse ``z``: only the support's columns are unpacked;
* ``H_S^T H_S`` (Gram) and the column norms: popcounts of ANDs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from htaf.families.convex import _kernels

__all__ = ["Arrangements", "augment", "pack_columns", "popcount"]

#: Rows per block when compacting or hashing the bits.
CHUNK = 512
#: Bytes of the float64 block ``[X, 1] U`` computed at a time while building ``H``.
BLOCK_BYTES = 1 << 24
#: Bytes of the float64 columns unpacked at a time by ``H z``.
MATVEC_BYTES = 1 << 25
#: Columns per chunk of the numpy ``H^T r``: bounds its gather temporary.
TMATVEC_CHUNK = 4096


def augment(X: np.ndarray) -> np.ndarray:
    """``[X, 1]``: the inputs with a ones column, so that a direction's last entry is a bias."""
    X = np.asarray(X, dtype=np.float64)
    return np.hstack([X, np.ones((X.shape[0], 1))])


def popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per element of a uint64 array (``np.bitwise_count`` where numpy has it)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).astype(np.int64)
    bytes_ = words.view(np.uint8).reshape(*words.shape, 8)  # pragma: no cover - numpy < 2
    return _BYTE_BITS[bytes_].sum(-1)  # pragma: no cover


_BYTE_BITS = np.array([bin(v).count("1") for v in range(256)], dtype=np.int64)
#: Bit b of byte value v, as float64: row v of the table that turns bytes into row sums.
_BYTE_TABLE = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.float64)


def pack_columns(bits: np.ndarray) -> np.ndarray:
    """Boolean ``(n, k)`` columns as ``(k, W)`` uint64 words (bit i of column j: row i)."""
    bits = np.asarray(bits, dtype=bool)
    n = bits.shape[0]
    n_words = max(1, -(-n // 64))
    packed = np.packbits(bits.T, axis=1, bitorder="little")  # (k, ceil(n / 8)) bytes
    out = np.zeros((bits.shape[1], n_words * 8), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view("<u8").astype(np.uint64, copy=False)


def _hash_rows(words: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row (sum of words times odd multipliers, mod 2^64)."""
    with np.errstate(over="ignore"):
        return (words * multipliers).sum(axis=1, dtype=np.uint64)


@dataclass
class Arrangements:
    """``H = 1{[X, 1] U >= 0}`` without duplicate or empty columns, bit-packed.

    Attributes:
        words: ``(P, W)`` uint64, column ``j`` of ``H`` in row ``j`` (see the module doc).
        n: rows of ``H`` (samples).
        directions: ``(d + 1, P)`` float64, the direction ``u_j`` of each kept column.
    """

    words: np.ndarray
    n: int
    directions: np.ndarray

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def sample(
        cls,
        X: np.ndarray,
        n_directions: int,
        rng: np.random.Generator | int | None = None,
        *,
        cache_dir: str | Path | None = None,
        max_bytes: int | None = None,
    ) -> Arrangements:
        """Draw ``n_directions`` Gaussian directions for ``X`` (without its ones column) and
        keep one direction per distinct non-empty pattern (the first drawn). ``cache_dir`` and
        ``max_bytes``: see :meth:`from_directions`."""
        if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)):
            raise ValueError(f"n_directions (P) must be a positive integer, got {n_directions!r}")
        if n_directions <= 0:
            raise ValueError(f"n_directions (P) must be a positive integer, got {n_directions}")
        rng = np.random.default_rng(rng)
        Xa = augment(X)
        check_memory(Xa.shape[0], int(n_directions), max_bytes, cache_dir)
        U = rng.standard_normal((Xa.shape[1], int(n_directions)))
        return cls.from_directions(Xa, U, cache_dir=cache_dir, max_bytes=max_bytes)

    @classmethod
    def from_directions(
        cls,
        Xa: np.ndarray,
        U: np.ndarray,
        *,
        cache_dir: str | Path | None = None,
        max_bytes: int | None = None,
    ) -> Arrangements:
        """The deduplicated arrangement of given directions ``U`` ((d + 1) × P) on ``Xa``.

        ``cache_dir``: keep the bits out of core, in a memory-mapped file there (an unnamed
        temporary file, deleted when closed): the products stream it from disk in column
        order, so ``n · P`` may exceed memory. ``max_bytes``: the bits held in memory may not
        exceed it (ValueError saying which P would fit) unless ``cache_dir`` is given.
        """
        Xa, U = np.asarray(Xa, dtype=np.float64), np.asarray(U, dtype=np.float64)
        from threadpoolctl import threadpool_limits

        n, P = Xa.shape[0], U.shape[1]
        check_memory(n, P, max_bytes, cache_dir)
        n_words = max(1, -(-n // 64))
        words = _allocate((P, n_words), cache_dir)
        step = max(8, BLOCK_BYTES // (8 * max(n, 1)))  # directions per block
        # One BLAS thread: as fast on an idle machine, far faster on a loaded one.
        with threadpool_limits(1, user_api="blas"):
            for start in range(0, P, step):
                stop = min(P, start + step)
                words[start:stop] = pack_columns(Xa @ U[:, start:stop] >= 0)
        keep = _distinct_nonzero(words)
        if keep.size < P:  # compact in place, block by block: no second full-size copy of H
            for start in range(0, keep.size, CHUNK):  # keep is sorted, keep[i] >= i
                block = keep[start : start + CHUNK]
                words[start : start + block.size] = words[block]
            small = keep.size < P // 2 and not isinstance(words, np.memmap)
            words = words[: keep.size].copy() if small else words[: keep.size]
        return cls(words=words, n=n, directions=U[:, keep].copy())

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def n_columns(self) -> int:
        return int(self.words.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the bits of ``H``."""
        return int(self.words.nbytes)

    def column_counts(self) -> np.ndarray:
        """``||h_j||^2 = ||h_j||_1``: the number of ones in each column (block by block: no
        full-size temporary, the bits may be on disk)."""
        out = np.empty(self.n_columns, dtype=np.int64)
        for start in range(0, self.n_columns, TMATVEC_CHUNK):
            out[start : start + TMATVEC_CHUNK] = popcount(
                self.words[start : start + TMATVEC_CHUNK]
            ).sum(axis=1)
        return out

    # -- products -------------------------------------------------------------------------------
    def dense(self, columns: np.ndarray | None = None) -> np.ndarray:
        """Columns of ``H`` (all by default) as a float64 ``(n, k)`` matrix."""
        w = self.words if columns is None else self.words[np.asarray(columns, dtype=np.int64)]
        bits = np.unpackbits(w.view(np.uint8), axis=1, count=self.n, bitorder="little")
        return bits.T.astype(np.float64)

    def matvec(self, z: np.ndarray) -> np.ndarray:
        """``H z`` (only the columns where ``z != 0`` are unpacked, MATVEC_BYTES at a time: at
        n = 100 000 a support of 3000 columns would be 2.4 GB as float64)."""
        support = np.flatnonzero(z)
        out = np.zeros(self.n)
        step = max(1, MATVEC_BYTES // (8 * max(self.n, 1)))
        for start in range(0, support.size, step):
            block = support[start : start + step]
            out += self.dense(block) @ z[block]
        return out

    def rmatvec(self, r: np.ndarray) -> np.ndarray:
        """``H^T r`` through byte tables: ``n / 8`` lookups per column."""
        r = np.asarray(r, dtype=np.float64)
        n_bytes = self.words.shape[1] * 8
        padded = np.zeros(n_bytes * 8)
        padded[: self.n] = r
        table = np.ascontiguousarray((_BYTE_TABLE @ padded.reshape(n_bytes, 8).T).T)
        column_bytes = self.words.view(np.uint8)  # (P, n_bytes), little-endian words
        out = np.empty(self.n_columns)
        lib = _kernels.load()
        if lib is not None:
            lib.cvx_tmatvec(
                column_bytes.ctypes.data,
                self.n_columns,
                n_bytes,
                table.ctypes.data,
                out.ctypes.data,
            )
            return out
        positions = np.arange(n_bytes)
        for start in range(0, self.n_columns, TMATVEC_CHUNK):
            block = column_bytes[start : start + TMATVEC_CHUNK]
            out[start : start + len(block)] = table[positions, block].sum(axis=1)
        return out

    def gram(self, columns: np.ndarray) -> np.ndarray:
        """``H_S^T H_S`` for the columns ``S``: ``popcount(h_a AND h_b)``."""
        idx = np.ascontiguousarray(columns, dtype=np.int64)
        k = idx.size
        G = np.empty((k, k))
        lib = _kernels.load()
        if lib is not None:
            lib.cvx_gram(
                self.words.ctypes.data, self.words.shape[1], idx.ctypes.data, k, G.ctypes.data
            )
            return G
        w = self.words[idx]
        step = max(1, (1 << 22) // max(1, k * w.shape[1]))  # rows per block: ~32 MB temporaries
        for start in range(0, k, step):
            block = w[start : start + step]
            G[start : start + len(block)] = popcount(block[:, None, :] & w[None, :, :]).sum(-1)
        return G


def column_bytes(n: int, P: int) -> int:
    """Bytes of the bits of an ``n × P`` arrangement (``ceil(n / 64)`` words per column)."""
    return 8 * max(1, -(-n // 64)) * P


def check_memory(n: int, P: int, max_bytes: int | None, cache_dir: str | Path | None) -> None:
    """ValueError if the bits of ``n × P`` exceed ``max_bytes`` in memory (saying which P fits),
    or if ``cache_dir`` is not a writable folder; nothing is written."""
    if cache_dir is not None:
        folder = Path(cache_dir)
        if not folder.is_dir():
            raise ValueError(f"cache_dir {folder}: not a folder (create it first)")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"cache_dir {folder}: not writable, cannot hold the bits of H")
        return
    if max_bytes is None:
        return
    need = column_bytes(n, P)
    if need > max_bytes:
        fits = max_bytes // column_bytes(n, 1)
        raise ValueError(
            f"P = {P} directions at n = {n} need {need / 2**20:.1f} MiB of bits, over the memory "
            f"cap of {max_bytes / 2**20:.1f} MiB: at most P = {fits} fit; or pass cache_dir to "
            "keep H on disk"
        )


def _allocate(shape: tuple[int, int], cache_dir: str | Path | None) -> np.ndarray:
    """An uninitialised uint64 array: in memory, or memory-mapped on an unnamed temporary file
    in ``cache_dir`` (removed by the system when the last mapping goes)."""
    if cache_dir is None:
        return np.empty(shape, dtype=np.uint64)
    with tempfile.TemporaryFile(dir=cache_dir) as handle:
        handle.truncate(8 * shape[0] * shape[1])
        return np.memmap(handle, dtype=np.uint64, mode="r+", shape=shape)


def _distinct_nonzero(words: np.ndarray) -> np.ndarray:
    """Sorted indices of the first occurrence of each distinct non-zero row of ``words``.

    Rows are grouped by a 64-bit hash; rows that share a hash are compared word by word, so a
    hash collision never merges two different patterns.
    """
    rng = np.random.default_rng(0)
    multipliers = rng.integers(0, 2**63, size=words.shape[1], dtype=np.uint64) * np.uint64(2)
    multipliers += np.uint64(1)
    hashes = np.empty(words.shape[0], dtype=np.uint64)
    nonzero = np.empty(words.shape[0], dtype=bool)
    for start in range(0, words.shape[0], CHUNK):  # chunks: no full-size temporary
        block = words[start : start + CHUNK]
        hashes[start : start + len(block)] = _hash_rows(block, multipliers)
        nonzero[start : start + len(block)] = block.any(axis=1)
    order = np.argsort(hashes, kind="stable")
    order = order[nonzero[order]]
    keep: list[int] = []
    sorted_hashes = hashes[order]
    starts = np.flatnonzero(np.r_[True, sorted_hashes[1:] != sorted_hashes[:-1]])
    ends = np.r_[starts[1:], order.size]
    singles = order[starts[ends - starts == 1]]
    keep.extend(singles.tolist())
    for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=True):
        group = np.sort(order[s:e])  # first drawn first
        seen: list[int] = []
        for j in group:
            if not any(np.array_equal(words[j], words[i]) for i in seen):
                seen.append(int(j))
        keep.extend(seen)
    return np.sort(np.asarray(keep, dtype=np.int64))
