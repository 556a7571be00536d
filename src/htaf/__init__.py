"""htaf: train networks with binary activations through the Heavy Tailed Activation Function.

``HTAF(x) = sigmoid(a1 · tanh(a0 · x))`` trains smoothly and runs as the exact step
``H(x) = 1{x >= 0}`` at inference (``htaf.harden(model)``).
"""

from htaf import estimators, functional
from htaf.estimators import available, get, harden, set_mode, soften
from htaf.functional import heaviside, htaf, htaf_derivative, scaled_sigmoid, signed_htaf

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "available",
    "estimators",
    "functional",
    "get",
    "harden",
    "heaviside",
    "htaf",
    "htaf_derivative",
    "scaled_sigmoid",
    "set_mode",
    "signed_htaf",
    "soften",
]
