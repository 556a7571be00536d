"""C kernels of the convex solver (``htaf/csrc/convex_kernels.c``), built by :mod:`htaf._build`.

Two loops that numpy cannot vectorise well:

* ``tmatvec``: ``H^T r`` for a bit-packed binary ``H``. For each byte position ``k`` of a
  column (rows ``8k .. 8k+7``) a table ``T[k][v] = sum of r[8k+b] over the set bits b of v``
  is built once per ``r`` (in numpy); a column's correlation is then ``sum_k T[k][byte_k]``:
  ``n/8`` lookups instead of ``n`` multiply-adds, and ``H`` is never unpacked.
* ``gram``: ``G[a, b] = popcount(h_a AND h_b)``, the Gram matrix of binary columns.

Every failure (no compiler, ``HTAF_DISABLE_KERNELS=1``, a read-only cache) makes
:func:`load` return None; the same products then run in numpy.
"""

from __future__ import annotations

import ctypes

from htaf._build import Once, compiler, first_library, kernels_allowed


def _open() -> ctypes.CDLL | None:
    cc = compiler() if kernels_allowed() else None
    if cc is None:
        return None
    found = first_library("htaf_convex", "convex_kernels.c", cc, ("cvx_kernels_abi", 1))
    if found is None:
        return None
    lib = found[0]
    i64, vp = ctypes.c_int64, ctypes.c_void_p
    lib.cvx_tmatvec.argtypes = [vp, i64, i64, vp, vp]
    lib.cvx_tmatvec.restype = None
    lib.cvx_gram.argtypes = [vp, i64, vp, i64, vp]
    lib.cvx_gram.restype = None
    return lib


_load: Once[ctypes.CDLL] = Once(_open, "htaf convex kernels")


def load() -> ctypes.CDLL | None:
    """The compiled kernels, or None where they cannot be built (compiled on the first call)."""
    return _load()
