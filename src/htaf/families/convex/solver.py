"""The Lasso of a two-layer threshold network, solved to a certified duality gap.

    minimize_z  P(z) = 1/2 ||H z - y||^2 + beta ||z||_1            (H: n × P, binary)

Its dual is ``maximize_theta D(theta) = 1/2 ||y||^2 - 1/2 ||y - theta||^2`` subject to
``|h_j^T theta| <= beta`` for every column. Any ``z`` gives a feasible dual point by scaling
its residual ``r = y - H z``: ``theta = s r`` with ``s = min(1, beta / ||H^T r||_inf)``, and
``gap = P(z) - D(theta) >= P(z) - P* >= 0``. A solve is *optimal* when
``gap <= tol · P(z)``: ``z`` is then certified within a relative ``tol`` of the optimum.

The method is a working-set method (the outer loop of celer and skglm) for n << P:

1. compute every correlation ``H^T r`` from the bits (:mod:`.arrangements`) and the gap;
   stop when it is below the tolerance;
2. take as working set ``W`` the columns the last solution keeps (its support, or a basis of
   it: step 4) plus the columns whose dual constraint is nearest to active,
   ``(beta - |h_j^T theta|) / ||h_j||`` smallest; it grows every round;
3. solve the Lasso restricted to ``W`` exactly, in Gram form ``1/2 w'Gw - b'w + beta|w|_1``
   (``G = H_W^T H_W`` from popcounts, ``b = H_W^T y``), by a primal-dual interior-point
   method, then make it sparse and exact on its support (:func:`_sparsify`);
4. reduce a large support to a basis (:func:`_basis`): the columns the next round keeps.

Why an interior-point method inside and not coordinate descent as celer and skglm: the
columns of ``H`` are binary and highly correlated (``G`` is singular, condition number
1e16), and coordinate descent crawls once the gap gets small, where an interior-point method
converges in a few tens of Newton steps per round whatever the conditioning, to a far tighter
gap (the figures are in benchmarks/README.md, "Choices in the convex solver"). Each Newton
step factors one ``|W| × |W|`` matrix, so the cost grows with the working set, not with ``n``
or ``P``; ``H^T r`` over all columns is needed once per round only. The flip side: large
working sets (n in the thousands, where the support is too: 0.8-0.9 n at beta = 1e-3 n) cost
``|W|^3`` per step, so the working set is capped at ``max_working_set`` (``MAX_WORKING_SET``
by default) and such solves can end above the tolerance, which their certificate then says
(``optimal: False``; the scikit-learn estimators warn, ``htaf compare`` prints a line).
``max_time_s`` stops a solve between Newton steps with the best certificate so far.

How the working set grows decides the cost, since the last round's ``|W|^3`` dominates. While
a round's solution uses (nearly) all its working set, the optimum needs columns it lacks: the
next set adds ``GROWTH`` × its size. Once a solution leaves part of its set unused (under
``SPARSE``), the missing columns are few: the next set is the kept columns plus
``SPARSE_GROWTH`` × as many.

Restricted problems with more columns than their rank are degenerate, and near interpolation
(beta ~ 1e-3 n, supports of 0.8-0.9 n) they all are: wherever the residual vanishes, columns
that differ only in those rows have the same correlation, so the optimum is a whole face.
Every point of it has the same fit ``f`` and signs ``s_j`` on the equicorrelation set ``E``,
and every ``v >= 0`` with ``H_E diag(s) v = f`` has the same l1 norm: all are optimal, and a
basic one (a vertex) uses at most ``rank(H_E) <= n`` columns. The interior point returns the
dense centre of the face instead (every column of ``W`` nonzero), and a working set built on
it grew by half each round, past what a k × k buffer may hold. So a support of at least
``BASIS_FROM`` columns is reduced to a basis before the next set is chosen: a pivoted
Cholesky of ``D G_SS D`` (``D = diag(|w|)``) keeps linearly independent columns, heavy ones
first, and drops the rest; the restricted problem on the basis keeps the optimum whenever a
basic optimum lies on it, which the pivoting by weight makes likely, not certain. Nothing
depends on it being certain: the next round's working set holds the basis plus the most
violated columns, and the certificate is the duality gap over all P columns. The working
sets then stay near the optimum's support (at most ``(1 + SPARSE_GROWTH) n`` once sparse).
Sets over ``COMPACT_FROM`` columns run in one ``k × k`` buffer (:func:`_interior_point`): 8 k²
bytes at the peak, ``MAX_WORKING_SET`` at most by default.

The solve runs on ``y / s`` and ``beta / s`` with ``s`` the root mean square of ``y``
(``z(c y, c beta) = c z(y, beta)``): the interior point starts from ones, which is far from
the solution of a target in the hundreds. ``z0`` warm-starts a solve from a neighbouring
beta's solution (:mod:`.path`).

``solver="cvxpy"`` hands the same problem to CVXPY (Clarabel), the reference the tests compare
with, as the official code does with MOSEK.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import scipy.linalg  # imported before threadpool_limits, so that its BLAS is limited too

from htaf.families.convex.arrangements import Arrangements, pack_columns
from htaf.families.convex.skip import Whitened

__all__ = ["SOLVERS", "LassoResult", "cvxpy_missing", "lasso_objective", "solve_lasso"]

SOLVERS = ("working_set", "cvxpy")
CVXPY_HINT = "pip install 'htaf[convex]'"


@dataclass
class LassoResult:
    """A Lasso solution with its certificate.

    ``objective`` is ``P(z)``, ``dual`` the dual value of the scaled residual, ``gap`` their
    difference (for CVXPY: the same certificate recomputed from its ``z``); ``optimal`` is
    ``gap <= tol · objective``.
    """

    z: np.ndarray
    objective: float
    dual: float
    gap: float
    tol: float
    optimal: bool
    solver: str
    iterations: int = 0
    time_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def relative_gap(self) -> float:
        return self.gap / max(self.objective, np.finfo(float).tiny)

    def info(self) -> dict[str, Any]:
        """Plain numbers for metrics: objective, gap, relative gap, optimal, nonzeros, ..."""
        return {
            "objective": float(self.objective),
            "dual": float(self.dual),
            "gap": float(self.gap),
            "relative_gap": float(self.relative_gap),
            "tol": float(self.tol),
            "optimal": bool(self.optimal),
            "nonzeros": int(np.count_nonzero(self.z)),
            "solver": self.solver,
            "iterations": int(self.iterations),
            "time_s": float(self.time_s),
        }


def lasso_objective(H: Arrangements, y: np.ndarray, z: np.ndarray, beta: float) -> float:
    """``P(z) = 1/2 ||H z - y||^2 + beta ||z||_1``."""
    r = y - H.matvec(z)
    return float(0.5 * r @ r + beta * np.abs(z).sum())


def certificate(
    H: Arrangements, y: np.ndarray, z: np.ndarray, beta: float
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """``(primal, dual, residual, correlations)`` of ``z`` with the scaled-residual dual."""
    r = y - H.matvec(z)
    c = H.rmatvec(r)
    primal = 0.5 * float(r @ r) + beta * float(np.abs(z).sum())
    cmax = float(np.abs(c).max()) if c.size else 0.0
    s = beta / cmax if cmax > beta else 1.0
    dual = s * float(y @ r) - 0.5 * s * s * float(r @ r)
    return primal, dual, r, c


def cvxpy_missing() -> bool:
    """True when CVXPY cannot be imported (``solver="cvxpy"`` then raises ValueError)."""
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        return True
    return False


def check_inputs(H: Any, y: Any, beta: Any, tol: Any, solver: str) -> tuple[Any, np.ndarray]:
    """Validated ``(Arrangements, y)``; ``ValueError`` naming the bad argument."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if solver == "cvxpy" and cvxpy_missing():
        raise ValueError(f"solver='cvxpy' needs CVXPY, which is not installed: {CVXPY_HINT}")
    real = isinstance(beta, (int, float, np.floating, np.integer)) and not isinstance(beta, bool)
    if not real or not np.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    real = isinstance(tol, (int, float, np.floating)) and not isinstance(tol, bool)
    if not real or not 0 < tol < 1:
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    if not isinstance(H, (Arrangements, Whitened)):
        dense = np.asarray(H)
        if dense.ndim != 2 or not np.isin(dense, (0, 1)).all():
            raise ValueError("H must be an Arrangements or a binary (n, P) matrix")
        H = Arrangements(pack_columns(dense.astype(bool)), dense.shape[0], np.empty((0, 0)))
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.shape[0] != H.n:
        raise ValueError(f"y has {y.shape[0]} entries but H has {H.n} rows")
    if not np.isfinite(y).all():
        raise ValueError("y must be finite")
    return H, y


def solve_lasso(
    H: Arrangements | Whitened | np.ndarray,
    y: np.ndarray,
    beta: float,
    *,
    tol: float = 1e-6,
    solver: str = "working_set",
    max_iter: int = 100,
    max_time_s: float | None = None,
    z0: np.ndarray | None = None,
    max_working_set: int | None = None,
) -> LassoResult:
    """Minimise ``1/2 ||H z - y||^2 + beta ||z||_1`` to a relative duality gap ``tol``.

    ``H``: an :class:`Arrangements` (or a binary matrix), or a :class:`~.skip.Whitened`
    one (the program with a linear skip term). ``solver``: ``"working_set"`` (the method of
    this module) or ``"cvxpy"`` (CVXPY with Clarabel). ``max_iter`` bounds the working-set
    rounds, ``max_time_s`` (if given) the time after which no new round and no new Newton
    step starts, ``max_working_set`` (default ``MAX_WORKING_SET``) the columns of a round
    beyond those it keeps: a round factors k × k matrices (16 k² bytes, k³/3 flops per Newton
    step; sets over ``COMPACT_FROM`` columns need 8 k² bytes).
    ``z0``: a warm start (the solution at a nearby beta, as along a path): its support seeds
    the first working set. The result says whether the gap reached ``tol`` (``optimal``); it
    is returned either way.
    """
    H, y = check_inputs(H, y, beta, tol, solver)
    max_working_set = MAX_WORKING_SET if max_working_set is None else max_working_set
    if isinstance(max_working_set, bool) or not isinstance(max_working_set, (int, np.integer)):
        raise ValueError(f"max_working_set must be a positive integer, got {max_working_set!r}")
    if max_working_set <= 0:
        raise ValueError(f"max_working_set must be a positive integer, got {max_working_set}")
    if z0 is not None:
        z0 = np.asarray(z0, dtype=np.float64).reshape(-1)
        if z0.shape[0] != H.n_columns or not np.isfinite(z0).all():
            raise ValueError(f"z0 must hold {H.n_columns} finite numbers, got shape {z0.shape}")
    beta = float(beta)
    t0 = time.perf_counter()
    if solver == "cvxpy":
        result = _result(H, y, _solve_cvxpy(H, y, beta), beta, tol, "cvxpy", 0)
    else:
        from threadpoolctl import threadpool_limits

        # The factorisations are small (k <= a few thousand): one BLAS thread is as fast on an
        # idle machine and far faster on a loaded one, where OpenBLAS threads spin-wait.
        # The interior point starts from ones: solve the problem scaled to an RMS target of 1
        # (z(c y, c beta) = c z(y, beta)) and certify the rescaled solution on the original.
        scale = float(np.sqrt(np.mean(y * y))) if y.size else 0.0
        scale = scale if scale > 0 else 1.0
        start = None if z0 is None else z0 / scale
        with threadpool_limits(1, user_api="blas"):
            scaled = _solve_working_set(
                H, y / scale, beta / scale, tol, max_iter, max_time_s, start, max_working_set
            )
        result = _result(
            H, y, scaled.z * scale, beta, tol, "working_set", scaled.iterations, scaled.history
        )
    result.time_s = time.perf_counter() - t0
    return result


def _result(
    H: Arrangements,
    y: np.ndarray,
    z: np.ndarray,
    beta: float,
    tol: float,
    solver: str,
    iterations: int,
    history: list[dict[str, float]] | None = None,
) -> LassoResult:
    """``z`` with its certificate."""
    primal, dual, _, _ = certificate(H, y, z, beta)
    gap = max(primal - dual, 0.0)
    return LassoResult(
        z=z,
        objective=primal,
        dual=dual,
        gap=gap,
        tol=tol,
        optimal=bool(gap <= tol * primal),
        solver=solver,
        iterations=iterations,
        history=history or [],
    )


# -- the working-set method ----------------------------------------------------------------------
#: First working-set size.
WS_START = 64
#: Each round's working set: the support plus GROWTH × (the previous size) candidates. A
#: round costs |W|^3, so more rounds on smaller sets beat fewer on larger ones.
GROWTH = 0.5
#: A round whose solution uses under SPARSE of its working set held the optimum's columns
#: nearly all: the next one adds SPARSE_GROWTH × the support.
SPARSE = 0.9
SPARSE_GROWTH = 0.25
#: Working sets larger than this run in one k × k buffer (:func:`_interior_point`'s compact
#: mode): 8 k² bytes at the peak instead of 16 k².
COMPACT_FROM = 2048
#: The largest working set: a Newton step factors a |W| × |W| matrix, which bounds its time,
#: and compact mode holds one such float64 matrix (8 |W|² bytes: 1.15 GB here). Working sets
#: stay under 1.25 n once supports are reduced to bases, so this binds at n > 9600 only.
MAX_WORKING_SET = 12000
#: Supports of at least this many columns are reduced to a basis (:func:`_basis`) before
#: the next working set is chosen (smaller ones are cheap enough to keep whole).
BASIS_FROM = 1000
#: Pivots of the weighted Gram matrix under this fraction of the largest end the basis.
BASIS_TOL = 1e-10
#: Newton steps per restricted problem (a ceiling well above what one takes).
IPM_MAX_ITER = 100
#: Relative gap the restricted problems are solved to (or 1/100 of the tolerance if smaller).
IPM_RTOL = 1e-10


def _past(deadline: float | None) -> bool:
    """Whether the ``time.perf_counter()`` value ``deadline`` (None: none) has passed."""
    return deadline is not None and time.perf_counter() > deadline


def _solve_working_set(
    H: Arrangements,
    y: np.ndarray,
    beta: float,
    tol: float,
    max_iter: int,
    max_time_s: float | None,
    z0: np.ndarray | None = None,
    max_working_set: int = MAX_WORKING_SET,
) -> LassoResult:
    P = H.n_columns
    z = np.zeros(P) if z0 is None else z0.copy()
    norms = np.sqrt(np.maximum(H.column_counts(), 1))
    yy = float(y @ y)
    Hty = H.rmatvec(y)
    history: list[dict[str, float]] = []
    t0, ws_size, previous = time.perf_counter(), WS_START // 2, None
    deadline = None if max_time_s is None else t0 + max_time_s
    finest = min(IPM_RTOL, 0.01 * tol)
    best_z, best = z.copy(), (np.inf, np.inf)
    core = None
    for it in range(1, max_iter + 1):
        primal, dual, _, c = certificate(H, y, z, beta)
        gap = max(primal - dual, 0.0)
        if gap / max(primal, 1e-300) < best[0]:
            best_z, best = z.copy(), (gap / max(primal, 1e-300), gap)
        support = np.flatnonzero(z) if core is None else core
        history.append(
            {
                "round": it,
                "objective": primal,
                "gap": gap,
                "support": int(np.count_nonzero(z)),
                "time_s": time.perf_counter() - t0,
            }
        )
        if core is not None:
            history[-1]["basis"] = int(core.size)
        out_of_time = _past(deadline)
        if gap <= tol * primal or out_of_time:
            break
        cmax = float(np.abs(c).max())
        s = beta / cmax if cmax > beta else 1.0
        priority = (beta - s * np.abs(c)) / norms
        priority[support] = -np.inf
        cap = max(max_working_set, support.size)
        if previous is not None and support.size < SPARSE * previous.size:
            # The last working set held more than its optimum uses: the missing columns are
            # few, so add a few (the next round's k^3 is the cost), not GROWTH x the set.
            ws_size = support.size + int(SPARSE_GROWTH * support.size)
        else:
            ws_size = support.size + int(GROWTH * ws_size)
        ws_size = min(P, cap, max(WS_START, ws_size))
        if ws_size == P:
            ws = np.arange(P)
        else:
            ws = np.sort(np.argpartition(priority, ws_size - 1)[:ws_size])
        if previous is not None and np.array_equal(ws, previous):
            break  # the cap stops the working set from growing: no progress is possible
        previous = ws
        history[-1]["working_set"] = int(ws.size)
        z[:] = 0.0
        bits = (H, ws) if ws.size > COMPACT_FROM else None
        G = None if bits else H.gram(ws)  # compact mode builds its own: no second reference
        z[ws], steps = _interior_point(G, Hty[ws], yy, beta, finest, deadline, bits)
        G = None
        history[-1]["newton_steps"] = steps
        # A solution past its rank is one of many optima (the interior point returns their
        # dense centre): the next working set keeps a basis of it, not all of it.
        late = _past(deadline)  # no next round
        core = _basis(H, ws, z[ws]) if np.count_nonzero(z) >= BASIS_FROM and not late else None
    else:
        primal, dual, _, _ = certificate(H, y, z, beta)
        if max(primal - dual, 0.0) / max(primal, 1e-300) < best[0]:
            best_z, best = z, (max(primal - dual, 0.0) / max(primal, 1e-300), primal - dual)
    if best[0] <= tol:
        best_z = _prune(H, y, best_z, beta, tol)
    return _result(H, y, best_z, beta, tol, "working_set", len(history), history)


def _basis(H: Arrangements, columns: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The columns of a basis of ``w``'s support: a linearly independent subset of
    ``columns[w != 0]`` spanning what they span, taken greedily by weight.

    A pivoted Cholesky (LAPACK ``dpstrf``) of ``D G D``, ``G`` the support's Gram matrix and
    ``D = diag(|w|)``, picks at each step the column of largest ``|w_j|² ||h_j - proj||²``:
    heavy columns first, those of negligible weight or in the span of the chosen ones never
    (pivots under ``BASIS_TOL`` × the largest). At a degenerate restricted optimum (support
    larger than its rank) every ``v >= 0`` with the optimal fit and signs is optimal, and a
    basic one needs at most ``rank`` columns: the basis is what the next working set keeps.
    One ``|S| × |S|`` buffer, factored in place."""
    S = np.flatnonzero(w)
    if S.size == 0:
        return columns[S]
    G = H.gram(columns[S])
    weight = np.abs(w[S])
    G *= weight[:, None]
    G *= weight[None, :]
    top = float(G.diagonal().max())
    # G.T is Fortran-ordered: LAPACK factors it in place (G is symmetric, so either triangle).
    _, pivots, rank, _ = scipy.linalg.lapack.dpstrf(
        G.T, tol=BASIS_TOL * top, lower=1, overwrite_a=1
    )
    G = None
    return columns[np.sort(S[pivots[: max(rank, 1)] - 1])]


#: Relative sizes below which a certified solution's weights are tried at zero (largest first).
PRUNE = (1e-6, 1e-9, 1e-12)


def _prune(H: Arrangements, y: np.ndarray, z: np.ndarray, beta: float, tol: float) -> np.ndarray:
    """``z`` with its entries under ``t · max|z|`` zeroed, for the largest ``t`` of ``PRUNE``
    whose result still certifies ``tol``; else ``z``. A degenerate optimum's interior point
    carries thousands of weights of ~1e-12 (each a hidden unit of the network) that change the
    objective by less than the gap."""
    top = float(np.abs(z).max()) if z.size else 0.0
    for t in PRUNE:
        small = (np.abs(z) < t * top) & (z != 0)
        if not small.any():
            continue
        pruned = np.where(small, 0.0, z)
        primal, dual, _, _ = certificate(H, y, pruned, beta)
        if primal - dual <= tol * primal:
            return pruned
    return z


def _interior_point(
    G: np.ndarray | None,
    b: np.ndarray,
    yy: float,
    beta: float,
    rtol: float,
    deadline: float | None = None,
    bits: tuple[Arrangements, np.ndarray] | None = None,
) -> tuple[np.ndarray, int]:
    """Mehrotra predictor-corrector on the restricted Lasso ``1/2 w'Gw - b'w + beta|w|_1``.

    With ``w = u - v``, ``u, v >= 0`` it is a bound-constrained QP in ``x = (u, v)`` with
    slacks ``s = (s_u, s_v)``. Each Newton system ``(Q + X^-1 S) dx = f`` reduces to one
    ``k × k`` solve for ``dw = du - dv``:

        (G + diag(e)) dw = (d_v f_u - d_u f_v) / (d_u + d_v),   e = d_u d_v / (d_u + d_v),
        du = (f_u + f_v + d_v dw) / (d_u + d_v),   dv = du - dw,        d = s / x,

    whose divisions stay well conditioned as the iterates approach the bounds (one of d_u,
    d_v grows as the other vanishes), even though ``G`` itself is singular. Returns the
    iterate with the smallest Lasso duality gap (the certificate of the module doc), stopping
    at a relative gap ``rtol``, when the gap stops improving, after ``IPM_MAX_ITER`` or at the
    ``deadline`` (a ``time.perf_counter()`` value), and the number of Newton steps (one
    factorisation each).

    ``bits = (H, ws)`` (and ``G`` None): compact mode for large ``k``, in one k × k buffer
    (``G``, built here so that nobody else holds it). Its strict
    lower triangle (C order) keeps ``G``; each step copies it to the upper triangle, adds the
    diagonal and factors the upper triangle in place (LAPACK's lower triangle of ``G.T``),
    leaving the lower one intact. The polish then frees ``G`` and rebuilds what it needs from
    the bits of ``H``'s columns ``ws``: 8 k² bytes at the peak instead of 16 k².
    """
    if G is None:
        assert bits is not None, "the Gram matrix or the bits to build it"
        G = bits[0].gram(bits[1])
    k = b.size
    u, v = np.ones(k), np.ones(k)
    su, sv = np.ones(k), np.ones(k)
    diagonal = np.diag(G).copy()
    jitter = 1e-14 * max(1.0, float(diagonal.max()) if k else 1.0)
    best, best_gap, stalled, mu0 = np.zeros(k), np.inf, 0, None
    M = G if bits is not None else np.empty_like(G)
    steps = 0
    for _ in range(IPM_MAX_ITER):
        w = u - v
        if bits is not None:
            _symmetrize(M, diagonal)
        else:
            np.copyto(M, G)  # M = G + diag(e) below, in place: no k x k temporaries
        g = b - M @ w  # minus the gradient of the smooth part
        gap = _gram_gap(b, yy, beta, w, g)
        mu = (u @ su + v @ sv) / (2 * k)
        mu0 = mu if mu0 is None else mu0
        if gap < best_gap:
            best, best_gap, stalled = (u, v, su, sv), gap, 0
        elif mu < 1e-6 * mu0:  # early iterates may certify worse than a good start: not a stall
            stalled += 1
        late = _past(deadline)
        if gap <= rtol * _gram_primal(b, yy, beta, w, g) or stalled >= 3 or late:
            break
        ru, rv = -g + beta - su, g + beta - sv  # dual residuals
        du, dv = su / u, sv / v
        M.flat[:: k + 1] += du * dv / (du + dv) + jitter
        try:
            if bits is not None:  # the upper triangle of M is the lower one of M.T (Fortran)
                factor = scipy.linalg.cho_factor(
                    M.T, lower=True, overwrite_a=True, check_finite=False
                )
            else:
                factor = scipy.linalg.cho_factor(M, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            break
        steps += 1

        # predictor (affine scaling): complementarity residual x s
        ddu, ddv = _newton(factor, du, dv, -ru - su, -rv - sv)
        dsu, dsv = -su - du * ddu, -sv - dv * ddv
        a = _step(u, ddu, v, ddv, su, dsu, sv, dsv)
        mu_aff = ((u + a * ddu) @ (su + a * dsu) + (v + a * ddv) @ (sv + a * dsv)) / (2 * k)
        sigma = (mu_aff / mu) ** 3
        # corrector: x s + dx_aff ds_aff - sigma mu
        cu = u * su + ddu * dsu - sigma * mu
        cv = v * sv + ddv * dsv - sigma * mu
        ddu, ddv = _newton(factor, du, dv, -ru - cu / u, -rv - cv / v)
        dsu, dsv = (-cu - su * ddu) / u, (-cv - sv * ddv) / v
        a = 0.99 * _step(u, ddu, v, ddv, su, dsu, sv, dsv)
        u, v, su, sv = u + a * ddu, v + a * ddv, su + a * dsu, sv + a * dsv
    M = factor = None  # k x k (one buffer): freed before the polish allocates its own
    if bits is None:
        product, block = (lambda x: G @ x), (lambda A: G[np.ix_(A, A)])
    else:
        G = None  # the caller keeps no reference: the buffer goes before the polish's own
        H, ws = bits
        product = partial(_bits_product, H, ws)
        block = lambda A: H.gram(ws[A])  # noqa: E731
    w = _sparsify(product, block, b, yy, beta, *best) if np.isfinite(best_gap) else np.zeros(k)
    return w, steps


def _symmetrize(M: np.ndarray, diagonal: np.ndarray, rows: int = 512) -> None:
    """Copy ``M``'s strict lower triangle to its upper one and set its diagonal, in blocks of
    ``rows`` (no k × k temporary)."""
    k = M.shape[0]
    for start in range(0, k, rows):
        stop = min(k, start + rows)
        M[start:stop, stop:] = M[stop:, start:stop].T
        block = M[start:stop, start:stop]
        upper = np.triu_indices(stop - start, 1)
        block[upper] = block.T[upper]
    M.flat[:: k + 1] = diagonal


def _bits_product(H: Arrangements, ws: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``G x = H_ws^T (H_ws x)`` from the bits (compact mode, after ``G`` is freed)."""
    z = np.zeros(H.n_columns)
    z[ws] = x
    return H.rmatvec(H.matvec(z))[ws]


def _newton(
    factor: tuple[np.ndarray, bool], du: np.ndarray, dv: np.ndarray, fu: np.ndarray, fv: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(du, dv)`` solving ``(Q + X^-1 S) dx = f`` by the reduction in :func:`_interior_point`."""
    dsum = du + dv
    dw = scipy.linalg.cho_solve(factor, (dv * fu - du * fv) / dsum, check_finite=False)
    ddu = (fu + fv + dv * dw) / dsum
    return ddu, ddu - dw


def _sparsify(
    product: Callable[[np.ndarray], np.ndarray],
    block: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    yy: float,
    beta: float,
    u: np.ndarray,
    v: np.ndarray,
    su: np.ndarray,
    sv: np.ndarray,
) -> np.ndarray:
    """The exact solution on the support an interior point identifies, if it certifies better.

    An interior point is never sparse: where both bounds are active (``u < s_u`` and
    ``v < s_v``, the standard indicator) the optimum has ``w_j = 0`` and the iterate holds
    ``~mu / slack``. Zero those, then make the optimality conditions on the support ``A``
    exact, ``G_AA w_A = b_A - beta sign(w_A)``, by the least-norm correction of ``w_A``
    (which keeps the signs, being small). Returns the candidate with the smallest gap.
    """
    w = u - v
    candidates = [w]
    sparse = np.where((u < su) & (v < sv), 0.0, w)
    A = np.flatnonzero(sparse)
    if A.size:
        sign = np.sign(sparse[A])
        GA = block(A)  # G[A][:, A] in float64, which _solve_psd overwrites
        rhs = b[A] - beta * sign - GA @ sparse[A]
        delta = _solve_psd(GA, rhs)
        GA = None
        polished = sparse.copy()
        polished[A] += delta
        if np.array_equal(np.sign(polished[A]), sign):
            candidates.append(polished)
        candidates.append(sparse)
    gaps = [_gram_gap(b, yy, beta, c, b - product(c)) for c in candidates]
    return candidates[int(np.argmin(gaps))].copy()


def _solve_psd(G: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """A solution of ``G x = rhs`` for a positive semidefinite ``G``, which it overwrites:
    Cholesky with a relative jitter of 1e-12 (a third of the cost of a pivoted QR; ``G`` is
    singular when the support holds more columns than ``H`` has rank). Zeros if even that
    fails: the polish is then skipped (:func:`_sparsify` keeps the better candidate)."""
    jitter = 1e-12 * max(1.0, float(np.diag(G).max()) if G.size else 1.0)
    G.flat[:: G.shape[0] + 1] += jitter
    try:
        factor = scipy.linalg.cho_factor(G, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        return np.zeros_like(rhs)
    return scipy.linalg.cho_solve(factor, rhs, check_finite=False)


def _step(*pairs: np.ndarray) -> float:
    """The largest step in (0, 1] keeping every ``x + a dx`` of the (x, dx) pairs positive."""
    a = 1.0
    for x, dx in zip(pairs[::2], pairs[1::2], strict=True):
        neg = dx < 0
        if neg.any():
            a = min(a, float((-x[neg] / dx[neg]).min()))
    return a


def _gram_primal(b: np.ndarray, yy: float, beta: float, z: np.ndarray, g: np.ndarray) -> float:
    """``P(z)`` from ``g = b - Gz``: ``||r||^2 = yy - b'z - z'g``."""
    return 0.5 * max(yy - float(b @ z) - float(z @ g), 0.0) + beta * float(np.abs(z).sum())


def _gram_gap(b: np.ndarray, yy: float, beta: float, z: np.ndarray, g: np.ndarray) -> float:
    """The restricted problem's duality gap from ``g = b - Gz`` (the certificate in Gram form:
    ``||r||^2 = yy - b'z - z'g``, ``y'r = yy - b'z``, ``||H_W^T r||_inf = ||g||_inf``)."""
    bz, zg = float(b @ z), float(z @ g)
    rr = max(yy - bz - zg, 0.0)
    gmax = float(np.abs(g).max()) if g.size else 0.0
    s = beta / gmax if gmax > beta else 1.0
    return 0.5 * rr + beta * float(np.abs(z).sum()) - (s * (yy - bz) - 0.5 * s * s * rr)


# -- the reference ---------------------------------------------------------------------------------
def _solve_cvxpy(H: Arrangements, y: np.ndarray, beta: float) -> np.ndarray:
    """The same problem in CVXPY, solved by Clarabel (the interior-point solver CVXPY ships)."""
    import cvxpy as cp

    Hd = H.dense()
    z = cp.Variable(Hd.shape[1])
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Hd @ z - y) + beta * cp.norm1(z)))
    problem.solve(solver=cp.CLARABEL)
    if z.value is None:
        raise RuntimeError(f"CVXPY did not solve the Lasso: status {problem.status}")
    return np.asarray(z.value, dtype=np.float64)
