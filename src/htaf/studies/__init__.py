"""Studies that reproduce or extend the paper's analyses: ``htaf study NAME`` runs them, and so
does ``htaf.studies.NAME(out, ...)`` from Python, with the same defaults.

* ``gradient_flow``: layer-1 gradient norms of a [256, 256, 128] MLP without batch norm for
  HTAF at alpha0·alpha1 = 22 and the scaled sigmoid sigmoid(22x) (the paper's appendix).

A study is a module ``htaf/studies/NAME.py`` that defines ``DEFAULTS`` and
``run(out_dir, **settings)``: ``run`` checks its input (``ValueError`` naming the setting),
writes ``out_dir`` and returns its results; the ``htaf study`` sub-command only parses flags
(with ``DEFAULTS`` as their defaults), calls ``run`` and prints. The module ends with
``callable_study(__name__)`` so that calling the module calls ``run``:
``htaf.studies.gradient_flow("gf", epochs=20)`` is ``gradient_flow.run("gf", epochs=20)``,
while ``gradient_flow.LABELS`` and the other helpers stay where they are. Modules load on
first use, so a new study needs no line here.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


class Study(types.ModuleType):
    """A study module that can be called: ``module(...)`` is ``module.run(...)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs)


def callable_study(module_name: str) -> None:
    """Make the (already running) module ``module_name`` callable as its ``run``."""
    sys.modules[module_name].__class__ = Study


def __getattr__(name: str) -> Any:
    # htaf.studies.NAME imports htaf/studies/NAME.py on first use.
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
