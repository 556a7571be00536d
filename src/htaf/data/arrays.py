"""Image and sequence datasets: split, normalisation statistics and the ``Dataset`` they make.

Table sources go through ``preprocess.build``; image and sequence sources (and user arrays,
``from_arrays``) come here. Inputs are not transformed: uint8 images stay uint8 and
``Dataset.normalize`` records the per-channel mean/std that ``Dataset.float_batch`` applies.

Splits: where a set has an official test split it is kept, and validation is carved out of the
official training split (``val_size`` is a fraction of it). Otherwise the samples are split into
train/val/test exactly as tables are (``val_size``/``test_size`` fractions of all samples). Both
are stratified and deterministic in ``split_seed``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from .dataset import DataError, Dataset
from .preprocess import split_indices

#: torchvision's ImageNet statistics, used for lazily loaded photo sets (CUB, Tiny ImageNet),
#: whose own statistics would cost a full pass over every image.
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
DEFAULT_TEST_SIZE = 0.2  # as for tables; used only where a set has no official test split
KINDS = ("image", "sequence")


@dataclass
class Part:
    """The samples of one split: inputs ``(n, ...)`` (array or lazy files), labels, concepts."""

    X: Any
    y: np.ndarray
    concepts: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> Part:
        X = self.X.subset(idx) if hasattr(self.X, "subset") else self.X[idx]
        c = None if self.concepts is None else self.concepts[idx]
        return replace(self, X=X, y=self.y[idx], concepts=c)


def channel_stats(X: np.ndarray) -> dict[str, list[float]]:
    """Per-channel mean and std of ``X / 255`` for uint8 ``X`` of shape ``(n, C, ...)``.

    Exact and light on memory: each channel is reduced to a 256-bin histogram first.
    """
    if X.dtype != np.uint8:
        raise DataError(f"channel_stats needs uint8 images, not {X.dtype}")
    values = np.arange(256, dtype=np.float64) / 255.0
    mean, std = [], []
    for c in range(X.shape[1]):
        counts = np.bincount(X[:, c].ravel(), minlength=256).astype(np.float64)
        m = float(values @ counts / counts.sum())
        var = float(((values - m) ** 2) @ counts / counts.sum())
        mean.append(m)
        std.append(var**0.5 if var > 0 else 1.0)  # a constant channel: std 1, like tables
    return {"mean": mean, "std": std}


def _check_sizes(val_size: Any, test_size: Any) -> None:
    real = all(
        isinstance(s, numbers.Real) and not isinstance(s, bool) for s in (val_size, test_size)
    )
    if not (real and 0 < test_size < 1 and 0 <= val_size < 1 and val_size + test_size < 1):
        raise DataError(f"bad split sizes val_size={val_size}, test_size={test_size}")


def carve_val(y: np.ndarray, seed: int, val_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: a stratified ``val_size`` fraction of an official training split."""
    _check_sizes(val_size, 0.5)  # test_size is not used here; 0.5 only passes the check
    idx = np.arange(len(y))
    if val_size == 0:
        return idx, idx[:0]
    try:
        tr, va = train_test_split(idx, test_size=val_size, random_state=seed, stratify=y)
    except ValueError as e:  # e.g. fewer validation samples than classes
        raise DataError(
            f"cannot carve val_size={val_size} out of {len(y)} training samples: {e}"
        ) from e
    return np.sort(tr), np.sort(va)


def split_parts(
    name: str,
    train: Part,
    test: Part | None,
    seed: int,
    val_size: float,
    test_size: float,
) -> tuple[Part, Part, Part]:
    """(train, val, test): official test kept (validation from train), or all split three ways."""
    if test is not None:
        if test_size != DEFAULT_TEST_SIZE:  # the default cannot be told from "not given"
            raise DataError(
                f"dataset {name!r} has an official test split; test_size={test_size!r} does not "
                "apply (val_size is the fraction of the official training split held out)"
            )
        tr, va = carve_val(train.y, seed, val_size)
        return train.take(tr), train.take(va), test
    _check_sizes(val_size, test_size)
    # the very rows, in the same order, that a table of the same labels gets (digits)
    tr, va, te = split_indices(train.y, True, seed, val_size, test_size)
    return train.take(tr), train.take(va), train.take(te)


def _check_labels(name: str, part: Part, n_classes: int, split: str) -> None:
    y = np.asarray(part.y)
    if y.ndim != 1 or len(y) != len(part.X):
        raise DataError(f"{name}: {split} split has {len(y)} labels for {len(part.X)} samples")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: {split} labels must be integer class indices, not {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise DataError(
            f"{name}: {split} label at index {bad[0]} is {y[bad[0]]}, not a class index in "
            f"0..{n_classes - 1}"
        )
    if part.concepts is not None and len(part.concepts) != len(y):
        raise DataError(f"{name}: {split} split has {len(part.concepts)} concept rows for {len(y)}")


def build_dataset(
    name: str,
    kind: str,
    train: Part,
    test: Part | None,
    *,
    class_names: list[str],
    seed: int,
    val_size: float,
    test_size: float,
    normalize: str | dict[str, list[float]] | None = "train",
    concept_names: list[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Dataset:
    """Split ``train``/``test`` (see the module doc) and make the ``Dataset``.

    ``normalize``: "train" (per-channel statistics of the training split; uint8 images only),
    a ``{"mean", "std"}`` dict of published values, or None (inputs used as they are).
    """
    if kind not in KINDS:
        raise DataError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    k = len(class_names)
    for split, part in (("train", train), ("test", test)):
        if part is not None:
            _check_labels(name, part, k, split)
    tr, va, te = split_parts(name, train, test, seed, val_size, test_size)
    info = dict(meta or {})
    if normalize == "train":
        norm: dict[str, list[float]] | None = channel_stats(np.asarray(tr.X))
        info["normalize_source"] = "per-channel mean/std of x/255 on the training split"
    elif isinstance(normalize, dict):
        norm = {"mean": list(normalize["mean"]), "std": list(normalize["std"])}
        info.setdefault("normalize_source", "published values")
    else:
        norm = None
    info.update(
        split_seed=seed,
        split_sizes={"train": len(tr.y), "val": len(va.y), "test": len(te.y)},
        official_test_split=test is not None,
    )
    return Dataset(
        name=name,
        task="binary" if k == 2 else "multiclass",
        X_train=tr.X,
        y_train=np.asarray(tr.y, dtype=np.int64),
        X_val=va.X,
        y_val=np.asarray(va.y, dtype=np.int64),
        X_test=te.X,
        y_test=np.asarray(te.y, dtype=np.int64),
        feature_names=[],
        class_names=list(class_names),
        n_classes=k,
        meta=info,
        kind=kind,
        normalize=norm,
        concepts_train=tr.concepts,
        concepts_val=va.concepts,
        concepts_test=te.concepts,
        concept_names=concept_names,
    )


def from_arrays(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    *,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    kind: str = "image",
    class_names: list[str] | None = None,
    split_seed: int = 0,
    val_size: float = 0.15,
    test_size: float = DEFAULT_TEST_SIZE,
    normalize: str | dict[str, list[float]] | None = "train",
) -> Dataset:
    """A ``Dataset`` from your own arrays: images ``(n, C, H, W)`` (uint8, or float32 already
    scaled) or sequences ``(n, T, F)`` float32, with integer class labels ``y``.

    Give ``X_test``/``y_test`` to keep your own test split; otherwise ``test_size`` is split
    off. ``normalize="train"`` (uint8 images) records the training split's
    per-channel statistics; sequences default to none.
    """
    X, y = np.asarray(X), np.asarray(y)
    want = {"image": 4, "sequence": 3}.get(kind)
    for arg, arr in (("X", X), ("X_test", X_test)):
        if arr is not None and want is not None and np.ndim(arr) != want:
            raise DataError(
                f"{name}: {arg} must be {want}-D for kind={kind!r}, not {np.shape(arr)}"
            )
    if (X_test is None) != (y_test is None):
        raise DataError(f"{name}: give both X_test and y_test, or neither")
    if kind == "sequence" and normalize == "train":
        normalize = None
    if normalize == "train" and X.dtype != np.uint8:
        raise DataError(f"{name}: normalize='train' needs uint8 images, X is {X.dtype}")
    k = int(max(y.max(), -1 if y_test is None else np.max(y_test))) + 1
    names = class_names if class_names is not None else [str(c) for c in range(k)]
    test = None if X_test is None else Part(np.asarray(X_test), np.asarray(y_test))
    return build_dataset(
        name,
        kind,
        Part(X, y),
        test,
        class_names=names,
        seed=split_seed,
        val_size=val_size,
        test_size=test_size,
        normalize=normalize,
        meta={"source": "arrays", "file": None, "files": []},
    )
