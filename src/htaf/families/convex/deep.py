"""The deep ("shattered") convex threshold network of Ergen et al. (their ``convex_nn_3layer``).

With enough first-layer units the hidden codes shatter the n training points, and training a
deep threshold network with weight decay reduces to a program over the outputs ``delta ∈ R^n``:

    minimize_delta  1/2 ||delta - y||^2 + beta (max_i (delta_i)_+ + max_i (-delta_i)_+).

It is solved here in closed form. Given the two levels ``t+ = max (delta)_+`` and
``t- = max (-delta)_+`` the best ``delta`` is ``clip(y, -t-, t+)``, and the objective splits
into ``1/2 sum_{y_i > t+} (y_i - t+)^2 + beta t+`` plus the same for ``-y``: each side is a
convex function of one level, minimised where ``sum_i (y_i - t+)_+ = beta`` (or at 0 when
``sum_i (y_i)_+ <= beta``), found by sorting. The certificate: the dual is
``maximize 1/2 ||y||^2 - 1/2 ||y - theta||^2`` over ``sum (theta)_+ <= beta`` and
``sum (theta)_- <= beta`` (the conjugate of the two max-norms); the residual ``y - delta``,
with its positive and negative parts scaled into that set, gives the duality gap.

The network is then rebuilt (Ergen et al.; the official code's ``rec_style``):

* layer 1: ``width`` fixed random units ``1{[x, 1] U >= 0}``, ``U ~ N(0, 1)`` of size
  ``(d + 1) × width`` (1000 in the paper): codes ``X̂`` (n × width);
* layer 2, the staircase: for the distinct positive values ``v_1 < ... < v_m`` of ``delta``,
  unit ``k`` must fire exactly on ``{i : delta_i >= v_k}`` and has output weight
  ``v_k - v_{k-1}``, so the sum telescopes to ``delta_i`` (likewise for the negative values,
  with negative weights). Then ``||a||_1 = max (delta)_+ + max (-delta)_+``: the output layer's
  objective ``J`` (:mod:`.model`) equals the program's. Each unit is fitted on ``X̂`` by
  ``"pinv"``, ``v = pinv(X̂) t`` and ``1{X̂ v - 1/2 >= 0}`` (threshold 1/2, the official code's
  ``unitstep_05`` variant), or by ``"svm"``, a linear SVC (C = 1) on ``X̂``.

For ±1 labels ``delta`` takes two values and the staircase has two units; the official code
builds n units, most with output weight 0.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from htaf.families.convex.arrangements import augment
from htaf.families.convex.model import StepLayer, ThresholdNet, check_beta
from htaf.families.convex.solver import CVXPY_HINT, cvxpy_missing

__all__ = ["RECONSTRUCTIONS", "fit_deep", "shattered_program", "staircase"]

RECONSTRUCTIONS = ("pinv", "svm")
SOLVERS = ("working_set", "cvxpy")  # "working_set": the closed form here (same name as 2-layer)


def _level(values: np.ndarray, beta: float) -> float:
    """The ``t >= 0`` with ``sum_i (values_i - t)_+ = beta``, or 0 if ``sum values <= beta``
    (``values > 0``)."""
    if values.sum() <= beta:
        return 0.0
    s = np.sort(values)[::-1]
    t = (np.cumsum(s) - beta) / np.arange(1, s.size + 1)
    k = int(np.flatnonzero(s > t)[-1])  # the last k with s_k > t_k gives the root
    return float(t[k])


def program_value(delta: np.ndarray, y: np.ndarray, beta: float) -> float:
    """``1/2 ||delta - y||^2 + beta (max (delta)_+ + max (-delta)_+)``."""
    r = delta - y
    return float(
        0.5 * r @ r
        + beta * (max(delta.max(initial=0.0), 0.0) + max((-delta).max(initial=0.0), 0.0))
    )


def dual_value(y: np.ndarray, theta: np.ndarray, beta: float) -> float:
    """The dual value of the residual ``theta = y - delta``, scaled into the dual set."""
    pos, neg = np.maximum(theta, 0.0), np.maximum(-theta, 0.0)
    sp, sn = pos.sum(), neg.sum()
    feasible = pos * (min(1.0, beta / sp) if sp > 0 else 1.0) - neg * (
        min(1.0, beta / sn) if sn > 0 else 1.0
    )
    r = y - feasible
    return float(0.5 * y @ y - 0.5 * r @ r)


def shattered_program(
    y: np.ndarray, beta: float, *, tol: float = 1e-6, solver: str = "working_set"
) -> tuple[np.ndarray, dict[str, Any]]:
    """``delta`` and its certificate ``{objective, dual, gap, relative_gap, tol, optimal,
    solver}`` (``solver="cvxpy"``: CVXPY with Clarabel, the official code's formulation)."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if solver == "cvxpy":
        if cvxpy_missing():
            raise ValueError(f"solver='cvxpy' needs CVXPY, which is not installed: {CVXPY_HINT}")
        delta = _cvxpy_program(y, beta)
    else:
        t_pos = _level(y[y > 0], beta)
        t_neg = _level(-y[y < 0], beta)
        delta = np.clip(y, -t_neg, t_pos)
    primal = program_value(delta, y, beta)
    dual = dual_value(y, y - delta, beta)
    gap = max(primal - dual, 0.0)
    info = {
        "objective": primal,
        "dual": dual,
        "gap": gap,
        "relative_gap": gap / max(primal, np.finfo(float).tiny),
        "tol": float(tol),
        "optimal": bool(gap <= tol * primal),
        "solver": solver,
    }
    return delta, info


def _cvxpy_program(y: np.ndarray, beta: float) -> np.ndarray:
    import cvxpy as cp

    delta = cp.Variable(y.size)
    reg = cp.norm_inf(cp.pos(delta)) + cp.norm_inf(cp.neg(delta))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(delta - y) / 2 + beta * reg))
    problem.solve(solver=cp.CLARABEL)
    if delta.value is None:
        raise RuntimeError(f"CVXPY did not solve the shattered program: status {problem.status}")
    return np.asarray(delta.value, dtype=np.float64)


def staircase(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The telescoping units: ``targets`` (n × m, 0/1) and output ``weights`` (m,) with
    ``targets @ weights == delta`` (see the module doc)."""
    targets, weights = [], []
    for sign in (1.0, -1.0):
        values = sign * delta
        levels = np.unique(values[values > 0])
        previous = 0.0
        for level in levels:
            targets.append((values >= level).astype(np.float64))
            weights.append(sign * (level - previous))
            previous = level
    if not targets:
        return np.zeros((delta.size, 0)), np.zeros(0)
    return np.stack(targets, axis=1), np.asarray(weights)


def _fit_unit(
    codes: np.ndarray, target: np.ndarray, pinv: np.ndarray | None, reconstruction: str
) -> tuple[np.ndarray, float]:
    """Weights and bias of one layer-2 unit ``1{codes @ w + c >= 0}`` that should fire on
    ``target``."""
    if target.min() == target.max():  # a constant unit: always (c = 0) or never (c = -1) on
        return np.zeros(codes.shape[1]), 0.0 if target[0] > 0 else -1.0
    if reconstruction == "pinv":
        return pinv @ target, -0.5
    from sklearn.svm import SVC

    svc = SVC(kernel="linear").fit(codes, 2 * target - 1)
    return svc.coef_.reshape(-1).astype(np.float64), float(svc.intercept_[0])


def fit_deep(
    X: np.ndarray,
    y: np.ndarray,
    *,
    beta: float | str | None = None,
    width: int = 1000,
    reconstruction: str = "pinv",
    rng: np.random.Generator | int | None = None,
    solver: str = "working_set",
    tol: float = 1e-6,
) -> ThresholdNet:
    """Solve the shattered program and rebuild the three-layer step network (module doc).

    ``info``: the program's certificate plus ``beta``, ``units`` (staircase units),
    ``rebuild_exact`` (fraction of units whose training codes equal their targets),
    ``network_objective`` (``J`` of the rebuilt network on the training data) and ``time_s``
    (solve + rebuild, as the official code times it). ``beta="auto"``: the beta of a grid
    whose network errs least on a held-out split (:func:`_select_beta`), then fitted on all
    rows (``beta_rule``, ``path`` in ``info``).
    """
    if reconstruction not in RECONSTRUCTIONS:
        raise ValueError(
            f"reconstruction must be one of {', '.join(RECONSTRUCTIONS)}, got {reconstruction!r}"
        )
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width <= 0:
        raise ValueError(f"width (first-layer units) must be a positive integer, got {width!r}")
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    beta = check_beta(beta, len(X))
    rng = np.random.default_rng(rng)
    from threadpoolctl import threadpool_limits

    # One BLAS thread: as fast for these sizes on an idle machine, far faster on a loaded one.
    with threadpool_limits(1, user_api="blas"):
        if beta != "auto":
            return _fit_deep(X, y, float(beta), int(width), reconstruction, rng, solver, tol)
        seed = int(rng.integers(2**31 - 1))
        t0 = time.perf_counter()
        beta, rule, path = _select_beta(X, y, int(width), reconstruction, seed, solver, tol)
        path_time = time.perf_counter() - t0
        net = _fit_deep(
            X, y, beta, int(width), reconstruction, np.random.default_rng(seed), solver, tol
        )
        net.info.update(beta_rule=rule, path=path, path_time_s=path_time)
        return net


def _select_beta(
    X: np.ndarray,
    y: np.ndarray,
    width: int,
    reconstruction: str,
    seed: int,
    solver: str,
    tol: float,
) -> tuple[float, str, dict[str, Any]]:
    """``(beta, rule, path)``: the deep program's beta chosen on a validation split (as
    :func:`~.path.select_beta` does for the two-layer one) over a geometric grid from the
    smallest beta whose solution is ``delta = 0``, ``max(sum (y)_+, sum (y)_-)``, down."""
    from htaf.families.convex.path import MIN_ROWS, beta_grid, fold_labels, validation_loss

    if len(X) < MIN_ROWS:
        return 1e-3 * len(X), f"1e-3·n (fewer than {MIN_ROWS} rows: none held out)", {}
    labels = fold_labels(y, 4, np.random.default_rng(seed))
    fit, val = labels != 0, labels == 0  # one held-out quarter: each beta is a full rebuild
    top = max(float(np.clip(y[fit], 0, None).sum()), float(np.clip(-y[fit], 0, None).sum()))
    grid = beta_grid(top, DEEP_BETAS)
    losses = []
    for beta in grid:
        rng = np.random.default_rng(seed)
        net = _fit_deep(X[fit], y[fit], float(beta), width, reconstruction, rng, solver, tol)
        losses.append(validation_loss(net.predict(X[val]), y[val]))
    chosen = int(np.argmin(losses))
    path = {"betas": grid.tolist(), "validation": losses, "chosen": chosen}
    return float(grid[chosen]), "validation", path


#: Betas in the deep variant's grid (each one a solve and a rebuild).
DEEP_BETAS = 12


def _fit_deep(
    X: np.ndarray,
    y: np.ndarray,
    beta: float,
    width: int,
    reconstruction: str,
    rng: np.random.Generator,
    solver: str,
    tol: float,
) -> ThresholdNet:
    t0 = time.perf_counter()
    delta, info = shattered_program(y, beta, tol=tol, solver=solver)
    U = rng.standard_normal((X.shape[1] + 1, int(width)))
    first = StepLayer(weight=U[:-1].T.copy(), bias=U[-1].copy())
    codes = (augment(X) @ U >= 0).astype(np.float64)
    targets, weights = staircase(delta)
    pinv = np.linalg.pinv(codes) if reconstruction == "pinv" and weights.size else None
    fitted = [_fit_unit(codes, targets[:, k], pinv, reconstruction) for k in range(weights.size)]
    second = StepLayer(
        weight=np.stack([w for w, _ in fitted]) if fitted else np.zeros((0, int(width))),
        bias=np.asarray([c for _, c in fitted]),
    )
    net = ThresholdNet([first, second], weights, info)
    info.update(
        beta=beta,
        units=int(weights.size),
        width=int(width),
        reconstruction=reconstruction,
        time_s=time.perf_counter() - t0,
    )
    rebuilt = second(codes)
    info["rebuild_exact"] = float(np.mean(np.all(rebuilt == targets, axis=0))) if fitted else 1.0
    info["network_objective"] = net.objective(X, y, beta)
    return net
