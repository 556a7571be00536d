"""Tabular datasets: ``load(name)`` returns a split, preprocessed ``Dataset``.

    from htaf.data import load, available
    ds = load("telco_churn", data_dir="~/data")   # or $HTAF_DATA
    ds = load("csv:my.csv", target="label")

See ``available()`` for the registered names; ``preprocess.py`` for what is done to every source.
"""

from . import bundled, heloc, telco, uci  # noqa: F401  (importing registers the sources)
from .dataset import DataError, Dataset
from .registry import available, load

__all__ = ["DataError", "Dataset", "available", "load"]
