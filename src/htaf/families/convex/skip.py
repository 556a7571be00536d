"""A linear skip term beside the threshold units, eliminated in closed form.

The two-layer network with a skip connection is ``f(x) = sum_j a_j 1{[x, 1] u_j >= 0} + x·w + b``.
Trained with weight decay ``beta/2`` on every weight, the units' penalty becomes
``beta |a_j|`` (:mod:`.model`) and the skip's is ``lam/2 ||w||^2`` with ``lam = beta``; the bias
``b`` is not penalised. ``lam = beta`` holds for a standardized target: for ``y`` with standard
deviation ``sigma`` the same network fitted to ``y / sigma`` and scaled back has
``lam = beta / sigma`` (:func:`skip_decay`), so scaling ``y`` scales ``beta`` and leaves ``lam``
alone, as it leaves a ridge regression's penalty alone. The program

    minimize_{z, w, b}  1/2 ||H z + X w + b - y||^2 + beta ||z||_1 + lam/2 ||w||^2

is convex, and ``w, b`` solve a ridge regression on the residual ``r = y - H z`` in closed
form. With the centred ``X - mean = A diag(s) B^T`` (thin SVD), what remains is

    minimize_z  1/2 (y - H z)^T M (y - H z) + beta ||z||_1,
    M = I - Q diag(c) Q^T,   Q = [1/sqrt(n), A],   c = [1, s^2 / (s^2 + lam)],

a Lasso with design ``L H`` and target ``L y`` for ``L = M^(1/2) = I - Q diag(f) Q^T``,
``f = 1 - sqrt(1 - c)`` (``L^2 = M`` since ``2f - f^2 = c``). :class:`Whitened` is that design:
it keeps the bits of ``H`` and applies ``L`` to vectors, and its Gram matrix
``H^T M H = H^T H - (Q^T H)^T diag(c) (Q^T H)`` is a rank-``(d + 1)`` correction of the
popcount Gram. The solver's duality gap on it certifies the whole program, ``w`` and ``b``
included. As ``lam -> inf`` the skip vanishes and the bias stays: ``M`` centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from htaf.families.convex.arrangements import Arrangements

__all__ = ["RidgeSkip", "Whitened", "skip_decay"]

#: Singular values of the centred inputs below this fraction of the largest are dropped
#: (a constant or duplicated column adds nothing to the skip).
RANK_RTOL = 1e-10
#: Rows of the Gram correction subtracted at a time (no k × k temporary in compact mode).
BLOCK_ROWS = 512


def skip_decay(beta: float, y: np.ndarray) -> float:
    """``lam = beta / sigma``, ``sigma`` the root mean square of ``y - mean(y)`` (1 if zero)."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    sigma = float(np.sqrt(np.mean((y - y.mean()) ** 2))) if y.size else 0.0
    return float(beta) / (sigma if sigma > 0 else 1.0)


@dataclass
class RidgeSkip:
    """The skip term's algebra for fixed inputs ``X`` (n × d): the basis ``Q``, the shrinkage
    ``c`` of a decay ``lam`` and the ridge fit of ``w, b`` on a residual."""

    mean: np.ndarray
    A: np.ndarray
    s: np.ndarray
    Bt: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> RidgeSkip:
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        mean = X.mean(axis=0)
        A, s, Bt = np.linalg.svd(X - mean, full_matrices=False)
        keep = s > RANK_RTOL * (s[0] if s.size else 0.0)
        return cls(mean, A[:, keep], s[keep], Bt[keep])

    @property
    def Q(self) -> np.ndarray:
        """``[1/sqrt(n), A]``: orthonormal columns (``A`` is orthogonal to the ones)."""
        n = self.A.shape[0]
        return np.hstack([np.full((n, 1), 1.0 / np.sqrt(n)), self.A])

    def shrinkage(self, lam: float) -> np.ndarray:
        """``c = [1, s^2 / (s^2 + lam)]`` (1: the bias is never shrunk)."""
        return np.r_[1.0, self.s**2 / (self.s**2 + float(lam))]

    def fit(self, r: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
        """``(w, b)`` minimising ``1/2 ||r - X w - b||^2 + lam/2 ||w||^2``."""
        r = np.asarray(r, dtype=np.float64).reshape(-1)
        mean_r = float(r.mean())
        w = self.Bt.T @ ((self.s / (self.s**2 + float(lam))) * (self.A.T @ (r - mean_r)))
        return w, mean_r - float(self.mean @ w)


class Whitened:
    """The design ``L H`` of the module doc, for :func:`~.solver.solve_lasso`: the bits of
    ``H`` stay as they are and ``L`` is applied to vectors.

    Args:
        H: the arrangement matrix.
        Q: ``(n, m)`` orthonormal columns; ``QtH``: ``Q^T H`` ``(m, P)`` (shared along a path,
            where only ``c`` changes).
        c: the shrinkage in ``[0, 1]`` of each column of ``Q``.
    """

    def __init__(self, H: Arrangements, Q: np.ndarray, QtH: np.ndarray, c: np.ndarray):
        self.H, self.Q, self.QtH = H, Q, QtH
        self.c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
        self.f = 1.0 - np.sqrt(1.0 - self.c)
        self.directions = H.directions

    @staticmethod
    def project(H: Arrangements, Q: np.ndarray) -> np.ndarray:
        """``Q^T H`` from the bits, one ``H^T q`` per column of ``Q``."""
        return np.stack([H.rmatvec(q) for q in Q.T]) if Q.shape[1] else np.zeros((0, H.n_columns))

    @property
    def n(self) -> int:
        return self.H.n

    @property
    def n_columns(self) -> int:
        return self.H.n_columns

    @property
    def nbytes(self) -> int:
        return self.H.nbytes

    def whiten(self, v: np.ndarray) -> np.ndarray:
        """``L v`` (``v``: a vector, or columns side by side)."""
        f = self.f if v.ndim == 1 else self.f[:, None]
        return v - self.Q @ (f * (self.Q.T @ v))

    def matvec(self, z: np.ndarray) -> np.ndarray:
        """``L H z``."""
        return self.whiten(self.H.matvec(z))

    def rmatvec(self, r: np.ndarray) -> np.ndarray:
        """``(L H)^T r = H^T L r``."""
        return self.H.rmatvec(self.whiten(r))

    def gram(self, ws: np.ndarray) -> np.ndarray:
        """``H_ws^T M H_ws``, corrected in row blocks in place."""
        G = self.H.gram(ws)
        B = self.QtH[:, ws]
        cB = self.c[:, None] * B
        for start in range(0, G.shape[0], BLOCK_ROWS):
            stop = start + BLOCK_ROWS
            G[start:stop] -= B[:, start:stop].T @ cB
        return G

    def column_counts(self) -> np.ndarray:
        """``diag(H^T M H)``, the squared column norms of ``L H``."""
        return self.H.column_counts() - (self.c[:, None] * self.QtH**2).sum(axis=0)

    def dense(self) -> np.ndarray:
        return self.whiten(self.H.dense())
