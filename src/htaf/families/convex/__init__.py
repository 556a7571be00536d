"""Globally optimal threshold networks (Ergen, Gulluk, Lacotte, Pilanci; ICLR 2023).

Training a threshold network with weight decay is a convex program; this family solves it
instead of training by gradient, and rebuilds the network from the solution:

* ``variant = "two_layer"``: sample ``directions`` (P) directions, build the arrangement
  matrix ``H = 1{[X, 1] U >= 0}`` without duplicate columns (stored as bits,
  :mod:`.arrangements`), solve ``min_z 1/2 ||Hz - y||^2 + beta ||z||_1`` to a certified
  duality gap (:mod:`.solver`), and keep one hidden step unit per nonzero ``z_j``
  (:mod:`.model`);
* ``variant = "deep"``: the shattered three-layer program with ``width`` random first-layer
  units and the staircase second layer fitted by ``reconstruction = "pinv" | "svm"``
  (:mod:`.deep`).

The model is an ordinary DHN of exact steps (:mod:`.network`): ``htaf compare --family convex``
solves it in the grid (``epochs = 1``, the engine's ``fit_closed_form`` hook), evaluates,
saves and loads it like any other run, and its metrics carry the solve's certificate
(``solver_gap``, ``solver_optimal``, ...). Binary targets are fitted as ±1, regression
targets as they are; multiclass data is refused. The scikit-learn wrappers are
:class:`~htaf.sklearn.ConvexThresholdClassifier` and ``ConvexThresholdRegressor`` (also
``htaf.convex``), in layer 4 with the other wrappers.

Options (``[model]``): ``variant``, ``directions``, ``beta`` (``"auto"``, the default: chosen
by cross-validation over a warm-started path, :mod:`.path`; a number; none: 1e-3 · n),
``width``,
``reconstruction``, ``solver`` (``"working_set"`` or ``"cvxpy"``, the CVXPY + Clarabel
reference: ``pip install 'htaf[convex]'``), ``tol`` (relative duality gap), ``linear``
(two-layer: a linear skip term beside the step units, with weight decay and a free bias,
:mod:`.skip`; the default; false: Ergen et al.'s program alone), ``cv_repeats`` (the
cross-validation of ``beta="auto"`` dealt into folds this many times, its losses averaged),
``cv_rule`` (``"min"``: the beta of the best mean validation loss; ``"1se"``: the largest
within one standard error of it; ``"auto"``, the default: ``"1se"`` for a regression target
with the skip term, else ``"min"``, :mod:`.path`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from htaf.families import DataSpec, Family

__all__ = ["FAMILY", "ConvexOptions"]


@dataclass(frozen=True)
class ConvexOptions:
    """The convex family's ``[model]`` table."""

    variant: Literal["two_layer", "deep"] = "two_layer"
    directions: int = 2000
    beta: float | Literal["auto"] | None = "auto"
    width: int = 1000
    reconstruction: Literal["pinv", "svm"] = "pinv"
    solver: Literal["working_set", "cvxpy"] = "working_set"
    tol: float = 1e-6
    linear: bool = True
    cv_repeats: int = 3
    cv_rule: Literal["min", "1se", "auto"] = "auto"

    def check(self) -> None:
        if self.directions <= 0:
            raise ValueError(
                f"option 'model.directions' (P) must be a positive integer, got {self.directions}"
            )
        number = self.beta is not None and self.beta != "auto"
        if number and (not math.isfinite(self.beta) or self.beta <= 0):
            raise ValueError(
                f"option 'model.beta' must be > 0, 'auto' or unset (1e-3·n), got {self.beta}"
            )
        if self.width <= 0:
            raise ValueError(f"option 'model.width' must be a positive integer, got {self.width}")
        if not 0 < self.tol < 1:
            raise ValueError(f"option 'model.tol' must be in (0, 1), got {self.tol}")
        if isinstance(self.cv_repeats, bool) or not isinstance(self.cv_repeats, int):
            raise ValueError(
                f"option 'model.cv_repeats' must be a positive integer, got {self.cv_repeats!r}"
            )
        if self.cv_rule not in ("min", "1se", "auto"):
            raise ValueError(
                f"option 'model.cv_rule' must be 'min', '1se' or 'auto', got {self.cv_rule!r}"
            )
        if self.cv_repeats <= 0:
            raise ValueError(
                f"option 'model.cv_repeats' must be a positive integer, got {self.cv_repeats}"
            )
        if self.solver == "cvxpy":
            from htaf.families.convex.solver import CVXPY_HINT, cvxpy_missing

            if cvxpy_missing():
                raise ValueError(
                    f"option 'model.solver' = 'cvxpy' needs CVXPY, which is not installed: "
                    f"{CVXPY_HINT}"
                )


def build(
    options: ConvexOptions, spec: DataSpec, estimator: str, params: Mapping[str, float]
) -> torch.nn.Module:
    """An unsolved :class:`~.network.ConvexThresholdNetwork` on the flattened input."""
    from htaf.families.convex.network import ConvexThresholdNetwork

    seed = int(torch.randint(0, 2**31 - 1, ()))  # from the run's seeded torch generator
    return ConvexThresholdNetwork(math.prod(spec.input_shape), options, seed, estimator, **params)


FAMILY = Family(
    name="convex",
    description="Globally optimal threshold networks (Ergen et al.): a convex program, solved",
    options=ConvexOptions,
    build=build,
    kinds=("table", "image"),
    tasks=("binary", "regression"),
    # Solved, not trained: one "epoch". lr and batch_size are unused but must be valid.
    compare={"dataset": "breast_cancer", "epochs": 1, "lr": 1e-3, "batch_size": 64},
    estimators=("htaf",),
)
