"""htaf: train networks with binary activations through the Heavy Tailed Activation Function.

``HTAF(x) = sigmoid(a1 · tanh(a0 · x))`` trains smoothly and runs as the exact step
``H(x) = 1{x >= 0}`` at inference (``htaf.harden(model)``).

Every command is a function too (imported on first use, so ``import htaf`` stays cheap):
``htaf.compare(...)`` -> ``Experiment``, ``htaf.train_one(config)`` -> ``Run``,
``htaf.load_experiment(path)``, ``htaf.load_run(path)`` -> ``Run`` (any run folder),
``htaf.runs(out, **filters)``, ``htaf.diagnose(model, batch, loss_fn)`` and the studies
(``htaf.studies.gradient_flow(out, ...)``); see ``htaf.api``. Every public subpackage and
module is an attribute the same way, imported on first access: ``htaf.interop.snntorch``,
``htaf.families.dhn``, ``htaf.theory``...
"""

import importlib
from typing import Any

from htaf import _lazy

__version__ = "0.1.0"

#: Attributes imported on first use: name -> module (the module itself when the name is one).
#: Nothing here is imported by ``import htaf``, which therefore loads no torch: the command
#: line (``htaf --help``, a usage error) answers before torch is loaded.
_LAZY = {
    "available": "htaf.estimators",
    "calibrate": "htaf.estimators",
    "get": "htaf.estimators",
    "harden": "htaf.estimators",
    "set_mode": "htaf.estimators",
    "soften": "htaf.estimators",
    "heaviside": "htaf.functional",
    "htaf": "htaf.functional",
    "htaf_derivative": "htaf.functional",
    "scaled_sigmoid": "htaf.functional",
    "signed_htaf": "htaf.functional",
    "diagnose": "htaf.diagnosis",
    "compare": "htaf.api",
    "train_one": "htaf.api",
    "load_experiment": "htaf.api",
    "runs": "htaf.api",
    "Experiment": "htaf.api",
    "Run": "htaf.train.run_folder",
    "load_run": "htaf.train.run_folder",
    "studies": "htaf.studies",
}

__all__ = [
    "Experiment",
    "Run",
    "__version__",
    "available",
    "calibrate",
    "compare",
    "estimators",
    "functional",
    "get",
    "harden",
    "heaviside",
    "htaf",
    "htaf_derivative",
    "load_experiment",
    "load_run",
    "runs",
    "scaled_sigmoid",
    "set_mode",
    "signed_htaf",
    "soften",
    "studies",
    "train_one",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__ == f"htaf.{name}" else getattr(module, name)
        globals()[name] = value  # later lookups find it without calling __getattr__
        return value
    return _lazy.submodule(__name__, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_lazy.public_submodules(__path__)))
