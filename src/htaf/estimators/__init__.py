"""Every way of training through a step, behind one interface.

>>> from htaf import estimators
>>> act = estimators.get("htaf", alpha0=2, alpha1=11)   # smooth forward by default
>>> ste = estimators.get("ste", signed=True)            # sign forward, identity backward
"""

from htaf.estimators import decoupled, smooth, straight_through, surrogates  # noqa: F401
from htaf.estimators.base import (
    MODES,
    Estimator,
    estimators_in,
    harden,
    quantizes_weights,
    set_mode,
    soften,
    with_rule,
)
from htaf.estimators.calibrate import auto_estimators, calibrate
from htaf.estimators.registry import (
    REFERENCE_ACTIVATIONS,
    EstimatorInfo,
    UnknownEstimatorError,
    activation,
    available,
    get,
    has_smooth_forward,
    is_binary,
    names,
    parse_spec,
    register,
)
from htaf.estimators.schedule import Schedule, constant, cosine, exponential, hashnet, linear

__all__ = [
    "MODES",
    "REFERENCE_ACTIVATIONS",
    "Estimator",
    "EstimatorInfo",
    "Schedule",
    "UnknownEstimatorError",
    "activation",
    "auto_estimators",
    "available",
    "calibrate",
    "constant",
    "cosine",
    "estimators_in",
    "exponential",
    "get",
    "harden",
    "has_smooth_forward",
    "hashnet",
    "is_binary",
    "linear",
    "names",
    "parse_spec",
    "quantizes_weights",
    "register",
    "set_mode",
    "soften",
    "with_rule",
]
