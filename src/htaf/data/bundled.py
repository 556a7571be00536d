"""Datasets that need no files: sklearn's bundled tables (and digits as images), the
random-teacher task."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn import datasets as skd

from .arrays import Part, build_dataset
from .dataset import DataError, Dataset
from .preprocess import Table
from .registry import Ctx, register


def _table(name: str, X: np.ndarray, y: np.ndarray, feature_names: list[str], **kw: Any) -> Table:
    n = len(y)
    feats = {str(c): X[:, j].astype(np.float64) for j, c in enumerate(feature_names)}
    return Table(
        feats, y, "target", [f"<{name}>"], np.arange(1, n + 1), np.zeros(n, dtype=np.int64), **kw
    )


def _sklearn(fn: str, task: str) -> Table:
    b = getattr(skd, fn)()
    meta = {"source": f"sklearn.datasets.{fn}", "file": None, "files": []}
    if task == "regression":
        return _table(
            fn, b.data, b.target.astype(np.float64), b.feature_names, task=task, meta=meta
        )
    # Keep sklearn's label order (and names) rather than re-sorting the names.
    names = [str(s) for s in b.target_names]
    y = np.array([names[k] for k in b.target], dtype=object)
    return _table(fn, b.data, y, b.feature_names, task=task, classes=names, meta=meta)


@register(
    "breast_cancer",
    task="binary",
    description="Wisconsin diagnostic breast cancer, 569 x 30",
    source="sklearn.datasets.load_breast_cancer",
)
def breast_cancer(ctx: Ctx) -> Table:
    return _sklearn("load_breast_cancer", "binary")


@register(
    "digits",
    task="multiclass",
    description="8x8 handwritten digits, 1797 x 64, 10 classes",
    source="sklearn.datasets.load_digits",
)
def digits(ctx: Ctx) -> Table:
    return _sklearn("load_digits", "multiclass")


@register(
    "digits_images",
    kind="image",
    task="multiclass",
    description="8x8 handwritten digits as 1x8x8 uint8 images (0..16 scaled to 0..255), 1797",
    source="sklearn.datasets.load_digits",
)
def digits_images(ctx: Ctx) -> Dataset:
    """sklearn's digits hold 0..16; stored as uint8 round(v * 255 / 16) so that x / 255 is
    v / 16. The split is the one the ``digits`` table gets for the same seed and sizes."""
    b = skd.load_digits()
    X = np.rint(b.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    meta = {
        "source": "sklearn.datasets.load_digits",
        "file": None,
        "files": [],
        "pixel_scale": "uint8 = round(value * 255 / 16); sklearn's values are 0..16",
    }
    return build_dataset(
        "digits_images",
        "image",
        Part(X, b.target.astype(np.int64)),
        None,
        class_names=[str(c) for c in b.target_names],
        seed=ctx.seed,
        val_size=ctx.val_size,
        test_size=ctx.test_size,
        meta=meta,
    )


@register(
    "wine",
    task="multiclass",
    description="UCI wine recognition, 178 x 13, 3 cultivars",
    source="sklearn.datasets.load_wine",
)
def wine(ctx: Ctx) -> Table:
    return _sklearn("load_wine", "multiclass")


@register(
    "diabetes",
    task="regression",
    description="Diabetes progression, 442 x 10",
    source="sklearn.datasets.load_diabetes",
)
def diabetes(ctx: Ctx) -> Table:
    return _sklearn("load_diabetes", "regression")


TEACHER_WIDTHS = (20, 20)


@register(
    "teacher",
    task="binary",
    description="Random teacher net (Ergen et al.): X ~ N(0,1), y = tanh-tanh-linear > median",
    source="generated (seed = split_seed unless seed= is given)",
)
def teacher(
    ctx: Ctx, *, n: int = 2000, d: int = 20, seed: int | None = None, flip: float = 0.0
) -> Table:
    """X ~ N(0, I_d); out = tanh(tanh(X W1) W2) W3 with widths 20, 20 and W ~ U[-1, 1].

    Ergen et al. take y = sign(out). A random teacher's output is seldom centred at zero, so
    that can give (almost) one class; we subtract the median of ``out`` before thresholding,
    which makes the classes balanced (y = 1 where out > median).

    ``flip`` in [0, 0.5) flips each label with that probability (drawn after the teacher, from
    the same generator). The Bayes error is then ``flip``, so the task is not separable and the
    training loss cannot go to zero, like the paper's Telco and HELOC tables.
    """
    ints = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (n, d))
    if not ints or n < 10 or d < 1:
        raise DataError(f"teacher: need integers n >= 10 and d >= 1, got n={n!r}, d={d!r}")
    if seed is not None and (not isinstance(seed, numbers.Integral) or seed < 0):
        raise DataError(f"teacher: seed must be None or an integer >= 0, got {seed!r}")
    real = isinstance(flip, numbers.Real) and not isinstance(flip, bool)
    if not real or not 0 <= flip < 0.5:
        raise DataError(f"teacher: flip must be a number in [0, 0.5), got {flip!r}")
    n, d = int(n), int(d)
    rng = np.random.default_rng(ctx.seed if seed is None else seed)
    X = rng.standard_normal((n, d))
    h = X
    for width in TEACHER_WIDTHS:
        h = np.tanh(h @ rng.uniform(-1, 1, (h.shape[1], width)))
    out = (h @ rng.uniform(-1, 1, (h.shape[1], 1)))[:, 0]
    y = (out > np.median(out)).astype(np.float64)
    if flip > 0:
        y = np.where(rng.random(n) < flip, 1.0 - y, y)
    meta = {
        "source": "random teacher network (Ergen et al.)",
        "file": None,
        "files": [],
        "teacher": {
            "n": n,
            "d": d,
            "widths": list(TEACHER_WIDTHS),
            "threshold": "median",
            "flip": float(flip),
        },
    }
    names = [f"x{j}" for j in range(d)]
    return _table("teacher", X, y, names, task="binary", classes=[0.0, 1.0], meta=meta)
