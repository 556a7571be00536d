"""Globally optimal threshold networks (Ergen et al.), as scikit-learn estimators.

    from htaf.convex import ConvexThresholdClassifier, ConvexThresholdRegressor

The scikit-learn wrappers live in :mod:`htaf.sklearn` beside the others (re-exported here,
which puts this module in layer 4 with them); the family, the solver and the programs are
documented in :mod:`htaf.families.convex`.
"""

from htaf.families.convex.model import ThresholdNet, regularised_objective
from htaf.families.convex.solver import LassoResult, solve_lasso
from htaf.sklearn import ConvexThresholdClassifier, ConvexThresholdRegressor

__all__ = [
    "ConvexThresholdClassifier",
    "ConvexThresholdRegressor",
    "LassoResult",
    "ThresholdNet",
    "regularised_objective",
    "solve_lasso",
]
