"""Subpackages and modules as attributes, imported on first access (PEP 562).

A package whose ``__getattr__`` ends in ``submodule(__name__, name)`` lets ``import htaf``
followed by ``htaf.interop.snntorch.spike_grad(...)`` work without importing anything
before the first access, so ``import htaf`` stays cheap and no optional peer is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from types import ModuleType


def submodule(package: str, name: str) -> ModuleType:
    """``package.name`` imported on first access, or the AttributeError of a missing
    attribute. Private names (``_x``) are never imported this way."""
    if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
        return importlib.import_module(f"{package}.{name}")
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def public_submodules(path: Iterable[str]) -> list[str]:
    """The public modules and subpackages found on a package's ``__path__`` (for ``dir``)."""
    import pkgutil  # only dir() needs it: not a cost of ``import htaf``

    return [m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_")]
