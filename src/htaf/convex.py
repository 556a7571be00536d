"""Globally optimal threshold networks (Ergen et al.), as scikit-learn estimators.

    from htaf.convex import ConvexThresholdClassifier, ConvexThresholdRegressor

A re-export of :mod:`htaf.families.convex.estimators`; the family, the solver and the
programs are documented in :mod:`htaf.families.convex`.
"""

from htaf.families.convex.estimators import ConvexThresholdClassifier, ConvexThresholdRegressor
from htaf.families.convex.model import ThresholdNet, regularised_objective
from htaf.families.convex.solver import LassoResult, solve_lasso

__all__ = [
    "ConvexThresholdClassifier",
    "ConvexThresholdRegressor",
    "LassoResult",
    "ThresholdNet",
    "regularised_objective",
    "solve_lasso",
]
