"""Datasets: ``load(name)`` returns a split ``Dataset`` of tables, images or sequences.

    from htaf.data import load, available
    ds = load("telco_churn", data_dir="~/data")   # or $HTAF_DATA
    ds = load("csv:my.csv", target="label")
    ds = load("cifar10", data_dir="~/data")       # uint8 (n, 3, 32, 32) + ds.normalize

See ``available()`` for the registered names; ``preprocess.py`` for what is done to tables,
``arrays.py`` for images and sequences (``from_arrays`` for your own arrays), ``lazy.py`` for
image sets read from disk, ``verify(name)`` to check local files against published checksums.
"""

from . import (  # noqa: F401
    bundled,
    cifar,
    cub,
    events,
    heloc,
    mnist,
    neuromorphic,
    shapes,
    telco,
    tiny_imagenet,
    uci,
)
from .arrays import from_arrays
from .dataset import DataError, Dataset
from .lazy import ImageFiles
from .registry import available, load, verify

__all__ = ["DataError", "Dataset", "ImageFiles", "available", "from_arrays", "load", "verify"]
