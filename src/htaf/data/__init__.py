"""Datasets: ``load(name)`` returns a split ``Dataset`` of tables, images or sequences.

    from htaf.data import load, available
    ds = load("telco_churn", data_dir="~/data")   # or $HTAF_DATA
    ds = load("csv:my.csv", target="label")
    ds = load("cifar10", data_dir="~/data")       # uint8 (n, 3, 32, 32) + ds.normalize

See ``available()`` for the registered names; ``preprocess.py`` for what is done to tables,
``arrays.py`` for images and sequences (``from_arrays`` for your own arrays), ``lazy.py`` for
image sets read from disk, ``verify(name)`` to check local files against published checksums.
"""

from typing import Any

#: Public names and the module each lives in; imported on first access (PEP 562), so that a
#: worker process importing one module of the package loads only what that module needs.
_EXPORTS = {
    "DataError": "dataset",
    "Dataset": "dataset",
    "ImageFiles": "lazy",
    "available": "registry",
    "from_arrays": "arrays",
    "load": "registry",
    "verify": "registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    import importlib

    from htaf._lazy import submodule

    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    return submodule(__name__, name)


def __dir__() -> list[str]:
    return [*__all__, "registry"]
