"""Threshold networks rebuilt from a convex solution, and the objective they are judged by.

A :class:`ThresholdNet` is a stack of exact step layers ``h <- 1{W h + b >= 0}`` followed by
output weights ``a``: ``f(x) = a · h_L(x)``, computed in float64. It is what
:func:`fit_two_layer` (here) and :func:`~.deep.fit_deep` return, what the scikit-learn
estimators predict with, and what :meth:`ThresholdNet.to_dhn` copies into an ordinary
:class:`~htaf.families.dhn.DHN` for the engine.

**The regularised objective.** Ergen et al.'s threshold unit is ``s · 1{w·x >= 0}`` with a
trainable amplitude ``s``, and the network ``f(x) = sum_j alpha_j s_j 1{w_j·x >= 0}`` is trained
with weight decay ``beta/2 · sum_j (s_j^2 + alpha_j^2)``. The layers before the last step layer
feed steps, which do not change when their weights are scaled, so a penalty on them can be
driven to zero and the convex program leaves them unregularised. Rescaling ``s_j -> c s_j``,
``alpha_j -> alpha_j / c`` leaves ``f`` unchanged, and ``(s^2 + alpha^2)/2 >= |s alpha|`` with
equality at ``|s| = |alpha| = sqrt|s alpha|``. So over all parameters that give the same ``f``:

    J(f) = 1/2 ||f(X) - y||^2 + beta ||a||_1,        a_j = alpha_j s_j,

and every model in ``htaf study convex`` is scored by ``J / n`` (``n`` training samples; the
official code also divides by ``n``). For the two-layer convex model ``J`` is the Lasso
objective ``P(z)`` itself (``a = z``); for the deep model it is the program of :mod:`.deep`.
The split ``|s_j| = |alpha_j| = sqrt|z_j|`` is kept in :attr:`ThresholdNet.amplitudes`; the DHN
holds the product ``a_j`` as its head weight (its steps have no amplitude).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from htaf.families.convex.arrangements import Arrangements
from htaf.families.convex.skip import RidgeSkip, Whitened, skip_decay
from htaf.families.convex.solver import solve_lasso

__all__ = ["StepLayer", "ThresholdNet", "fit_two_layer", "regularised_objective"]


def regularised_objective(
    pred: np.ndarray, y: np.ndarray, output_weights: np.ndarray, beta: float
) -> float:
    """``J = 1/2 ||pred - y||^2 + beta ||a||_1`` (see the module doc); not divided by n."""
    r = np.asarray(pred, dtype=np.float64).reshape(-1) - np.asarray(y, dtype=np.float64).reshape(-1)
    return float(0.5 * r @ r + beta * np.abs(np.asarray(output_weights, dtype=np.float64)).sum())


@dataclass
class StepLayer:
    """``h_out = 1{weight @ h_in + bias >= 0}``; ``weight``: (out, in), float64."""

    weight: np.ndarray
    bias: np.ndarray

    def __call__(self, h: np.ndarray) -> np.ndarray:
        return (h @ self.weight.T + self.bias >= 0).astype(np.float64)


@dataclass
class ThresholdNet:
    """Exact step layers and output weights: ``f(x) = output · h_L(x) + x · linear + intercept``.

    ``intercept`` is 0 for Ergen et al.'s program; a regression fit with ``center=True`` fits
    ``y - mean(y)`` and keeps the mean here (unpenalised, as a linear model's intercept).
    ``linear``: the weights of a linear skip term (None: none), fitted with the decay
    ``linear_decay`` (``lam`` of :mod:`.skip`), the intercept then a free bias.
    ``info`` holds the solve's certificate (objective, gap, ``optimal``, ...), ``amplitudes``
    the amplitude of each last-layer unit in the balanced split ``|s_j| = |alpha_j|``.
    """

    layers: list[StepLayer]
    output: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    intercept: float = 0.0
    linear: np.ndarray | None = None
    linear_decay: float = 0.0

    @property
    def amplitudes(self) -> np.ndarray:
        return np.sqrt(np.abs(self.output))

    @property
    def output_weights(self) -> np.ndarray:
        """``alpha_j = sign(a_j) sqrt|a_j|``: with :attr:`amplitudes`, ``alpha_j s_j = a_j``."""
        return np.sign(self.output) * np.sqrt(np.abs(self.output))

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(int(layer.weight.shape[0]) for layer in self.layers)

    def hidden(self, X: np.ndarray) -> np.ndarray:
        """The last hidden layer's 0/1 codes, ``(n, units)``."""
        h = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        for layer in self.layers:
            h = layer(h)
        return h

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``f(X)``, float64 ``(n,)``."""
        out = self.hidden(X) @ self.output + self.intercept
        if self.linear is not None:
            out = out + np.asarray(X, dtype=np.float64).reshape(len(X), -1) @ self.linear
        return out

    def objective(self, X: np.ndarray, y: np.ndarray, beta: float) -> float:
        """``J(f)`` on ``(X, y)``: see :func:`regularised_objective`, plus the skip term's
        ``linear_decay / 2 · ||linear||^2``."""
        value = regularised_objective(self.predict(X), y, self.output, beta)
        if self.linear is not None:
            value += 0.5 * self.linear_decay * float(self.linear @ self.linear)
        return value

    def to_dhn(self, activation: str = "htaf", **params: float) -> Any:
        """An ordinary :class:`~htaf.families.dhn.DHN` with these weights (float32, one logit);
        ValueError for a network with a linear skip term, which a DHN has no place for (its
        engine model, :class:`~.network.ConvexThresholdNetwork`, has)."""
        from htaf.families.dhn import DHN

        if self.linear is not None:
            raise ValueError(
                "this network has a linear skip term (linear=True), which a plain DHN cannot "
                "hold; fit with linear=False for a DHN"
            )

        n_in = int(self.layers[0].weight.shape[1])
        model = DHN(
            n_in, 1, widths=[max(1, w) for w in self.widths], activation=activation, **params
        )
        self.load_into(model)
        return model

    def load_into(self, model: Any) -> None:
        """Copy the weights into a DHN whose widths equal :attr:`widths` (0 units: one unit
        whose output weight is 0)."""
        import torch

        with torch.no_grad():
            for layer, step in zip(model.layers, self.layers, strict=True):
                w, b = _at_least_one_unit(step.weight, step.bias)
                layer.linear.weight.copy_(torch.as_tensor(w))
                layer.linear.bias.copy_(torch.as_tensor(b))
            out = self.output if self.output.size else np.zeros(1)
            model.head.weight.copy_(torch.as_tensor(out).reshape(1, -1))
            model.head.bias.fill_(float(self.intercept))
            skip = getattr(model, "skip", None)
            if (skip is None) != (self.linear is None):
                raise ValueError("the model and the network disagree on the linear skip term")
            if skip is not None:
                skip.weight.copy_(torch.as_tensor(self.linear).reshape(1, -1))


def _at_least_one_unit(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A layer without units becomes one unit (a DHN layer needs width >= 1) whose output
    weight is 0. Its pre-activation is the first input, not a constant: an estimator that
    calibrates on its input (``htaf(auto)``) cannot read a scale from a constant."""
    if weight.shape[0]:
        return weight, bias
    unit = np.zeros((1, weight.shape[1]))
    unit[0, :1] = 1.0
    return unit, np.zeros(1)


def check_beta(beta: Any, n: int) -> float | str:
    """``beta`` (None: 1e-3 · n, the paper's choice) as a float, or ``"auto"`` (chosen on a
    validation split, :mod:`.path`); ValueError unless a number > 0 or ``"auto"``."""
    if beta is None:
        return 1e-3 * n
    if isinstance(beta, str) and beta == "auto":
        return "auto"
    real = isinstance(beta, (int, float, np.integer, np.floating)) and not isinstance(beta, bool)
    if not real or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a number > 0, 'auto' or None (1e-3·n), got {beta!r}")
    return float(beta)


def fit_two_layer(
    X: np.ndarray,
    y: np.ndarray,
    *,
    beta: float | str | None = None,
    n_directions: int = 2000,
    rng: np.random.Generator | int | None = None,
    solver: str = "working_set",
    tol: float = 1e-6,
    center: bool = False,
    cache_dir: str | None = None,
    max_bytes: int | None = None,
    linear: bool = False,
    repeats: int = 1,
    cv_rule: str = "min",
) -> ThresholdNet:
    """Ergen et al.'s two-layer program: sample ``n_directions`` directions, build
    ``H = 1{[X, 1] U >= 0}`` without duplicates, solve ``min 1/2 ||Hz - y||^2 + beta ||z||_1``
    and keep one hidden unit per nonzero ``z_j`` (first-layer weights ``u_j``).

    ``beta``: a number, None (1e-3 · n) or ``"auto"``: the best of a warm-started path on a
    validation split (:func:`~.path.select_beta`), then solved on all of ``(X, y)``; with
    fewer than ``MIN_ROWS`` rows nothing is held out and beta is 1e-3 · n. ``center``: fit
    ``y - mean(y)`` and keep the mean as the network's ``intercept``. ``linear``: add a
    linear skip term ``x · w`` with the decay ``lam/2 ||w||^2``, ``lam = beta / std(y)``, and
    a free bias (:mod:`.skip`: the same program with ``w`` and the bias eliminated; it makes
    ``center`` moot), in ``ThresholdNet.linear``. ``cache_dir``,
    ``max_bytes``: where the bits of ``H`` live and how many may be held in memory
    (:meth:`~.arrangements.Arrangements.from_directions`); checked before any work.

    ``info``: the solver's certificate (:meth:`~.solver.LassoResult.info`) plus ``beta``,
    ``beta_rule``, ``directions`` (drawn), ``columns`` (distinct patterns), ``h_bytes`` (bits
    of ``H``), ``time_s`` (arrangement + solve, path included) and, for ``"auto"``, ``path``
    (:meth:`~.path.BetaPath.info`) and ``path_time_s``.
    """
    import time

    from htaf.families.convex.arrangements import augment
    from htaf.families.convex.path import MIN_ROWS, select_beta

    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    beta = check_beta(beta, len(X))
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)):
        raise ValueError(f"n_directions (P) must be a positive integer, got {n_directions!r}")
    if n_directions <= 0:
        raise ValueError(f"n_directions (P) must be a positive integer, got {n_directions}")
    from htaf.families.convex.arrangements import check_memory

    check_memory(len(X), int(n_directions), max_bytes, cache_dir)
    t0 = time.perf_counter()
    rng = np.random.default_rng(rng)
    intercept = float(y.mean()) if center and y.size else 0.0
    target = y - intercept
    U = rng.standard_normal((X.shape[1] + 1, int(n_directions)))
    path_info: dict[str, Any] = {}
    rule = "given"
    if beta == "auto" and len(X) < MIN_ROWS:
        beta, rule = 1e-3 * len(X), f"1e-3·n (fewer than {MIN_ROWS} rows: none held out)"
    elif beta == "auto":
        path = select_beta(
            X, target, U, rng=rng, tol=tol, linear=linear, repeats=repeats, rule=cv_rule
        )
        beta, rule = float(path.betas[path.chosen]), "validation"
        path_info = {"path": path.info(), "path_time_s": path.time_s}
    H = Arrangements.from_directions(augment(X), U, cache_dir=cache_dir, max_bytes=max_bytes)
    skip = RidgeSkip.of(X) if linear else None
    lam, w = 0.0, None
    if skip is None:
        result = solve_lasso(H, target, float(beta), tol=tol, solver=solver)
    else:
        lam = skip_decay(float(beta), y)
        design = Whitened(H, skip.Q, Whitened.project(H, skip.Q), skip.shrinkage(lam))
        result = solve_lasso(design, design.whiten(y), float(beta), tol=tol, solver=solver)
        w, intercept = skip.fit(y - H.matvec(result.z), lam)
    support = np.flatnonzero(result.z)
    U = H.directions[:, support]
    layer = StepLayer(weight=U[:-1].T.copy(), bias=U[-1].copy())
    info = {
        **result.info(),
        "beta": float(beta),
        "beta_rule": rule,
        "directions": int(n_directions),
        "columns": H.n_columns,
        "h_bytes": H.nbytes,
        "units": int(support.size),
        "solve_time_s": result.time_s,
        "linear": bool(linear),
        **({"linear_decay": lam} if linear else {}),
        **path_info,
        "time_s": time.perf_counter() - t0,
    }
    net = ThresholdNet([layer], result.z[support].copy(), info, intercept, w, lam)
    # J of the rebuilt network on the training data: P(z) up to rounding (x·w + b vs [x, 1]·u).
    net.info["network_objective"] = net.objective(X, y, float(beta))
    return net
