"""The β path of the two-layer program, and β chosen on a validation split.

The Lasso ``min_z 1/2 ||Hz - y||^2 + beta ||z||_1`` has ``z = 0`` as its solution for every
``beta >= beta_max = ||H^T y||_inf`` (the zero residual ``y`` is then dual feasible). Below
``beta_max`` the support grows as ``beta`` shrinks. As glmnet does, the path solves a
geometric grid from ``beta_max`` down, each solve warm-started from the previous one: the
previous support seeds the working set (:func:`~.solver.solve_lasso`'s ``z0``), so a solve
starts close to its optimum and its working set is nearly right from the first round.

``beta = "auto"`` (:func:`select_beta`): deal the training rows into ``FOLDS`` validation
folds (stratified for ±1 targets), ``repeats`` times over (repeated K-fold: the losses of
all the deals are averaged, which steadies the choice on small tables); for each fold,
solve the path on the other rows and score every ``beta`` on the fold (squared error for a
regression target; for ±1 targets the error rate of the sign, ties broken by squared
error); keep the ``beta`` of the smallest mean loss (``rule="min"``, glmnet's
``lambda.min``) or the largest ``beta`` whose mean loss is within one standard error (over
the folds) of the smallest (``rule="1se"``, ``lambda.1se``: the sparsest network the
validation cannot tell from the best), and solve once more on all the training rows at
that ``beta``. ``rule="auto"``: ``"1se"`` for a regression target with the skip term
(``linear``), else ``"min"``.

Why these rules. Without a skip term the sparsest networks are near-constant and the 1-SE
rule underfits (over htaf's split seeds 0-4 ``"min"`` was better on diabetes and
breast_cancer, benchmarks/README.md). With the linear skip term of :mod:`.skip` the large-beta
end of the path is a ridge regression instead, a sound model to fall back on, and ``"1se"``
prefers it until the step units earn their place (glmnet's advice). For ±1 targets the loss
is an error rate over a few dozen rows per fold, whose standard error is large (one row of
a 70-row fold is 0.014): there the 1-SE band is wide and reaches far too sparse networks,
so ``"auto"`` keeps ``"min"`` there, as it does without the skip term.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from htaf.families.convex.arrangements import Arrangements, augment
from htaf.families.convex.skip import RidgeSkip, Whitened, skip_decay
from htaf.families.convex.solver import LassoResult, solve_lasso

__all__ = ["BetaPath", "beta_grid", "beta_max", "check_grid", "lasso_path", "select_beta"]

#: Betas in the default grid, from beta_max down to BETA_RATIO · beta_max.
N_BETAS = 16
BETA_RATIO = 1e-3
#: Folds of the cross-validation that chooses beta.
FOLDS = 5
#: The path stops this many betas past the best mean validation loss.
PATIENCE = 4
#: The rules that pick beta from the cross-validated losses (see the module doc).
RULES = ("min", "1se", "auto")
#: Fewer training rows than this: too few to hold any out; beta falls back to 1e-3 · n.
MIN_ROWS = 20


def beta_max(H: Arrangements, y: np.ndarray) -> float:
    """``||H^T y||_inf``: the smallest beta whose solution is ``z = 0``."""
    c = H.rmatvec(np.asarray(y, dtype=np.float64))
    return float(np.abs(c).max()) if c.size else 0.0


def check_grid(betas: Any) -> np.ndarray:
    """The grid as a decreasing float64 array; ValueError if it is empty or any beta is not a
    finite number > 0 (naming the first bad one)."""
    try:
        grid = np.asarray(betas, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"betas must be numbers > 0, got {betas!r}") from None
    if grid.size == 0:
        raise ValueError("betas: the grid is empty; give at least one beta > 0")
    bad = np.flatnonzero(~np.isfinite(grid) | (grid <= 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"betas[{i}] = {float(grid[i])!r}: every beta of a path must be finite and > 0"
        )
    return np.sort(grid)[::-1].copy()


def beta_grid(top: float, n_betas: int = N_BETAS, ratio: float = BETA_RATIO) -> np.ndarray:
    """``n_betas`` betas spaced geometrically from ``top`` down to ``ratio · top``."""
    if not np.isfinite(top) or top <= 0:
        raise ValueError(f"the top of the beta grid must be > 0, got {top!r} (is y all zero?)")
    return top * np.geomspace(1.0, ratio, int(n_betas))


@dataclass
class BetaPath:
    """Solutions along a decreasing grid: ``results[i]`` solves at ``betas[i]``."""

    betas: np.ndarray
    results: list[LassoResult]
    time_s: float = 0.0
    validation: np.ndarray | None = None
    chosen: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        """Plain lists for JSON: betas, objectives, relative gaps, nonzeros, validation."""
        out: dict[str, Any] = {
            "betas": [float(b) for b in self.betas],
            "objective": [float(r.objective) for r in self.results],
            "relative_gap": [float(r.relative_gap) for r in self.results],
            "optimal": [bool(r.optimal) for r in self.results],
            "nonzeros": [int(np.count_nonzero(r.z)) for r in self.results],
            "time_s": float(self.time_s),
        }
        if self.validation is not None:
            out["validation"] = [float(v) for v in self.validation]
        if self.chosen is not None:
            out["chosen"] = int(self.chosen)
            out["beta"] = float(self.betas[self.chosen])
        return {**out, **self.extra}


def lasso_path(
    H: Arrangements,
    y: np.ndarray,
    betas: Any,
    *,
    tol: float = 1e-6,
    max_time_s: float | None = None,
) -> BetaPath:
    """Solve at every beta of ``betas`` (sorted decreasing), each solve warm-started from the
    previous solution. ``max_time_s`` bounds each solve (see :func:`~.solver.solve_lasso`)."""
    grid = check_grid(betas)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    t0 = time.perf_counter()
    results: list[LassoResult] = []
    z = None
    for beta in grid:
        result = solve_lasso(H, y, float(beta), tol=tol, z0=z, max_time_s=max_time_s)
        results.append(result)
        z = result.z
    return BetaPath(grid, results, time.perf_counter() - t0)


def fold_labels(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """The fold (0 .. folds - 1) of every row, stratified by sign when ``y`` is ±1."""
    labels = np.empty(y.size, dtype=np.int64)
    groups = [np.flatnonzero(y > 0), np.flatnonzero(y <= 0)] if _signs(y) else [np.arange(y.size)]
    offset = 0
    for rows in groups:
        rows = rng.permutation(rows)
        labels[rows] = (np.arange(rows.size) + offset) % folds
        offset += rows.size
    return labels


def _signs(y: np.ndarray) -> bool:
    return bool(np.isin(y, (-1.0, 1.0)).all())


def validation_loss(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error; for ±1 targets the error rate of the sign plus 1e-6 × the squared
    error (which breaks ties between equal error rates)."""
    mse = float(np.mean((pred - y) ** 2))
    if _signs(y):
        return float(np.mean(np.where(pred >= 0, 1.0, -1.0) != y)) + 1e-6 * mse
    return mse


def _predict(Xa: np.ndarray, directions: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``1{Xa u_j >= 0} z`` over the support of ``z`` only."""
    support = np.flatnonzero(z)
    return (Xa @ directions[:, support] >= 0).astype(np.float64) @ z[support]


def select_beta(
    X: np.ndarray,
    y: np.ndarray,
    directions: np.ndarray,
    *,
    betas: Any = None,
    folds: int = FOLDS,
    rng: np.random.Generator | int | None = None,
    tol: float = 1e-6,
    rule: str = "min",
    linear: bool = False,
    repeats: int = 1,
) -> BetaPath:
    """Cross-validated beta for the given ``directions`` ((d + 1) × P).

    The rows are dealt into ``folds`` folds; the folds' paths are solved in step, beta by beta
    down the grid, each on the other rows and warm-started from its previous beta, and scored
    on the fold (:func:`validation_loss`). The path stops ``PATIENCE`` betas past the best mean
    loss. ``validation`` is the mean over folds, ``chosen`` the index of the best mean
    (``rule="min"``) or of the largest beta within one standard error of it (``rule="1se"``,
    the one-standard-error rule; ``"auto"``: see the module doc; ``extra`` holds both
    indices and the rule applied), ``results`` the first
    fold's solutions. ``betas``: the grid (default: :func:`beta_grid` from ``beta_max`` of all
    the rows, of ``y - mean(y)`` with ``linear``). ``linear``: the program with a linear skip
    term and a free bias (:mod:`.skip`), its decay ``beta / sigma`` with ``sigma`` the
    standard deviation of all of ``y``; each fold fits its own. ValueError with fewer than
    ``MIN_ROWS`` rows.
    """
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if betas is not None:
        betas = check_grid(betas)
    if y.size < MIN_ROWS:
        raise ValueError(
            f"beta='auto' needs at least {MIN_ROWS} rows to hold some out, got {y.size}"
        )
    t0 = time.perf_counter()
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    gen = np.random.default_rng(rng)
    labels = [fold_labels(y, int(folds), gen) for _ in range(int(repeats))]
    Xa = augment(X)
    if betas is None:
        top_target = y - y.mean() if linear else y
        betas = beta_grid(beta_max(Arrangements.from_directions(Xa, directions), top_target))
    parts = [
        _Fold(X, Xa, y, deal == k, directions, linear) for deal in labels for k in range(int(folds))
    ]
    warm: list[np.ndarray | None] = [None] * len(parts)
    columns: list[list[float]] = []
    first: list[LassoResult] = []
    for i, beta in enumerate(betas):
        column = []
        lam = skip_decay(beta, y)
        for k, part in enumerate(parts):
            result, pred = part.solve(float(beta), lam, tol, warm[k])
            warm[k] = result.z
            column.append(validation_loss(pred, y[part.val]))
            if k == 0:
                first.append(result)
        columns.append(column)
        mean = np.mean(columns, axis=1)
        if i - int(np.argmin(mean)) >= PATIENCE:
            break  # past the best by PATIENCE betas: the rest of the path is denser and slower
    losses = np.asarray(columns).T  # (folds, betas reached)
    best = int(np.argmin(mean))
    se = float(losses[:, best].std(ddof=1)) / np.sqrt(losses.shape[0])
    one_se = int(np.flatnonzero(mean <= mean[best] + se)[0])  # the one-standard-error rule
    if rule == "auto":
        rule = "1se" if linear and not _signs(y) else "min"
    chosen = best if rule == "min" else one_se
    path = BetaPath(betas[: len(columns)], first, time.perf_counter() - t0, mean, chosen)
    path.extra = {
        "folds": int(folds),
        "repeats": int(repeats),
        "fold_validation": losses.tolist(),
        "grid": betas.tolist(),
        "rule": rule,
        "min_index": best,
        "one_se_index": one_se,
        "linear": bool(linear),
    }
    return path


class _Fold:
    """One fold of :func:`select_beta`: the arrangement of the other rows, and with ``linear``
    their skip term's algebra (:mod:`.skip`), solved at one beta after another."""

    def __init__(
        self,
        X: np.ndarray,
        Xa: np.ndarray,
        y: np.ndarray,
        val: np.ndarray,
        directions: np.ndarray,
        linear: bool,
    ):
        fit = ~val
        self.val, self.X_val, self.Xa_val, self.target = val, X[val], Xa[val], y[fit]
        self.H = Arrangements.from_directions(Xa[fit], directions)
        self.skip = RidgeSkip.of(X[fit]) if linear else None
        if self.skip is not None:
            self.Q = self.skip.Q
            self.QtH = Whitened.project(self.H, self.Q)

    def solve(
        self, beta: float, lam: float, tol: float, z0: np.ndarray | None
    ) -> tuple[LassoResult, np.ndarray]:
        """The solution at ``beta`` (skip decay ``lam``) and its prediction on the fold."""
        if self.skip is None:
            result = solve_lasso(self.H, self.target, beta, tol=tol, z0=z0)
            return result, _predict(self.Xa_val, self.H.directions, result.z)
        design = Whitened(self.H, self.Q, self.QtH, self.skip.shrinkage(lam))
        result = solve_lasso(design, design.whiten(self.target), beta, tol=tol, z0=z0)
        w, b = self.skip.fit(self.target - self.H.matvec(result.z), lam)
        pred = _predict(self.Xa_val, self.H.directions, result.z) + self.X_val @ w + b
        return result, pred
