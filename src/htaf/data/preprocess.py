"""Preprocessing shared by every source: checks, target encoding, split, impute, one-hot, scale.

Loaders only parse their files into a ``Table`` of raw columns; ``build`` turns any ``Table``
into a ``Dataset``. Everything that is fitted (imputation values, categories, mean/std) is
fitted on the training split only, so validation/test statistics never leak into training.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from .dataset import DataError, Dataset
from .files import is_number, parse_column

TASKS = ("binary", "multiclass", "regression")
MAX_INFERRED_CLASSES = 20  # integer targets with more distinct values are read as regression
MAX_CATEGORIES = 1000  # more is almost surely an ID or free-text column: refuse, don't explode


@dataclass
class Table:
    """Raw columns as parsed from a source, before anything is fitted.

    Numeric columns are float64 (NaN = missing); categorical ones are object arrays of str
    (None = missing). ``row_no``/``row_file`` remember where each row came from so errors can
    name the file and the 1-based data row (header not counted).
    """

    features: dict[str, np.ndarray]
    y: np.ndarray
    target: str
    files: list[str]
    row_no: np.ndarray
    row_file: np.ndarray
    task: str | None = None  # None: infer from y ("classification" = binary or multiclass)
    classes: list[Any] | None = None  # explicit label order (e.g. HELOC: Bad is class 1)
    special: dict[str, np.ndarray] = field(default_factory=dict)  # cells blanked on purpose
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_columns(
        cls,
        path: str | Path,
        header: list[str],
        cols: list[list[str]],
        target: str,
        *,
        drop: tuple[str, ...] | list[str] = (),
        **kw: Any,
    ) -> Table:
        """Table from ``read_csv`` output; ``drop`` removes ID-like columns."""
        for c in [target, *drop]:
            if c not in header:
                raise DataError(
                    f"{path}: column {c!r} not found; available columns: {', '.join(header)}"
                )
        feats = {h: parse_column(c) for h, c in zip(header, cols, strict=True)}
        y = feats.pop(target)
        for c in drop:
            feats.pop(c, None)
        n = len(y)
        rows, files = np.arange(1, n + 1), np.zeros(n, dtype=np.int64)
        return cls(feats, y, target, [str(path)], rows, files, **kw)

    def at(self, i: int) -> str:
        return f"{self.files[self.row_file[i]]}, row {self.row_no[i]}"

    def take(self, keep: np.ndarray) -> Table:
        return replace(
            self,
            features={c: v[keep] for c, v in self.features.items()},
            y=self.y[keep],
            row_no=self.row_no[keep],
            row_file=self.row_file[keep],
            special={c: m[keep] for c, m in self.special.items()},
        )

    def require_numeric(self, names: list[str] | tuple[str, ...]) -> None:
        """Columns the format defines as numbers must parse as numbers."""
        for c in names:
            v = self.y if c == self.target else self.features[c]
            if v.dtype == object:
                i = next(i for i, s in enumerate(v) if s is not None and not is_number(s))
                raise DataError(f"{self.at(i)}, column {c!r}: non-numeric value {v[i]!r}")

    @staticmethod
    def concat(tables: list[Table]) -> Table:
        """Stack tables with the same columns (e.g. red + white wine), keeping row origins."""
        t0 = tables[0]
        for t in tables[1:]:
            if set(t.features) != set(t0.features):  # order may differ: joined by name
                raise DataError(
                    f"{t.files[0]}: columns differ from {t0.files[0]}'s "
                    f"({', '.join(t.features)} vs {', '.join(t0.features)})"
                )
        offsets = np.cumsum([0, *(len(t.files) for t in tables[:-1])])
        return replace(
            t0,
            features={c: np.concatenate([t.features[c] for t in tables]) for c in t0.features},
            y=np.concatenate([t.y for t in tables]),
            files=[f for t in tables for f in t.files],
            row_no=np.concatenate([t.row_no for t in tables]),
            row_file=np.concatenate([t.row_file + o for t, o in zip(tables, offsets, strict=True)]),
            special={
                c: np.concatenate([t.special.get(c, np.zeros(len(t.y), bool)) for t in tables])
                for c in dict.fromkeys(c for t in tables for c in t.special)
            },
        )


def _missing(v: np.ndarray) -> np.ndarray:
    if v.dtype == object:
        return np.array([x is None for x in v], dtype=bool)
    return np.isnan(v)


def _label_name(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def encode_target(t: Table) -> tuple[str, np.ndarray, list[str] | None]:
    """-> (task, y, class_names): y int64 0..K-1 (labels sorted unless ``t.classes``) or float64."""
    y, task, numeric = t.y, t.task, t.y.dtype != object
    if task not in (None, "classification", *TASKS):
        raise DataError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if task is None:
        few_ints = (
            numeric and np.all(y == np.round(y)) and len(np.unique(y)) <= MAX_INFERRED_CLASSES
        )
        task = "classification" if not numeric or few_ints else "regression"
    if task == "regression":
        if not numeric:
            i = next(i for i, s in enumerate(y) if not is_number(s))
            raise DataError(
                f"{t.at(i)}: regression target column {t.target!r} is not numeric "
                f"(value {y[i]!r}); pass a classification task or fix the column"
            )
        return task, y.astype(np.float64), None
    labels = list(t.classes) if t.classes is not None else sorted(set(y.tolist()))
    index = {lab: k for k, lab in enumerate(labels)}
    unknown = [i for i, v in enumerate(y.tolist()) if v not in index]
    if unknown:
        i = unknown[0]
        raise DataError(f"{t.at(i)}: column {t.target!r} has unexpected label {y[i]!r}")
    codes = np.array([index[v] for v in y.tolist()], dtype=np.int64)
    present = np.unique(codes)
    if len(present) < 2:
        raise DataError(
            f"{t.files[0]}: target column {t.target!r} has a single class "
            f"{_label_name(labels[present[0]])!r}; need at least two"
        )
    if task == "binary" and len(labels) != 2:
        raise DataError(f"task='binary' but column {t.target!r} has {len(labels)} classes")
    if task == "classification":
        task = "binary" if len(labels) == 2 else "multiclass"
    return task, codes, [_label_name(lab) for lab in labels]


def split_indices(
    y: np.ndarray, stratify: bool, seed: int, val_size: float, test_size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic train/val/test row indices; stratified on ``y`` for classification."""
    idx = np.arange(len(y))
    try:
        rest, test = train_test_split(
            idx, test_size=test_size, random_state=seed, stratify=y if stratify else None
        )
        if val_size == 0:
            return rest, rest[:0], test
        train, val = train_test_split(
            rest,
            test_size=val_size / (1 - test_size),
            random_state=seed,
            stratify=y[rest] if stratify else None,
        )
    except ValueError as e:  # e.g. a class with a single member cannot be stratified
        raise DataError(
            f"cannot split {len(y)} rows into train/val/test "
            f"(val_size={val_size}, test_size={test_size}): {e}"
        ) from e
    return train, val, test


def _features(
    t: Table, tr: np.ndarray, impute: str | None, steps: list[str]
) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    """Impute, one-hot and standardize every column, fitting on rows ``tr`` only."""
    cols, names, categories = [], [], {}
    n_scaled = 0
    for c, v in t.features.items():
        miss = _missing(v)
        if v.dtype == object:
            if miss.any():  # only reachable with impute="mean": most frequent train category
                counts = Counter(x for x in v[tr] if x is not None)
                if not counts:
                    raise DataError(
                        f"{t.files[0]}: column {c!r} has no values in the training split"
                    )
                v = np.where(miss, min(counts, key=lambda k: (-counts[k], k)), v)
            cats = sorted(set(v[tr].tolist()))
            if len(cats) > MAX_CATEGORIES:
                raise DataError(
                    f"{t.files[0]}: categorical column {c!r} has {len(cats)} distinct values "
                    "(an ID or free-text column?); drop it"
                )
            categories[c] = cats
            for k in cats:  # categories unseen in training -> all zeros
                cols.append(v == k)
                names.append(f"{c}={k}")
            continue
        if miss.any():
            train = v[tr][~miss[tr]]
            if train.size == 0:
                raise DataError(f"{t.files[0]}: column {c!r} has no values in the training split")
            special = t.special.get(c, np.zeros(len(v), dtype=bool))
            v = v.copy()
            v[special] = np.median(train)
            v[miss & ~special] = train.mean()
        mu, sd = v[tr].mean(), v[tr].std()
        cols.append((v - mu) / (sd if sd > 0 else 1.0))  # constant column: std 1
        names.append(c)
        n_scaled += 1
    if not cols:
        raise DataError(f"{t.files[0]}: no feature columns besides the target {t.target!r}")
    if t.special:
        steps.append(f"special values -> train median: {', '.join(t.special)}")
    if impute == "mean":
        steps.append("impute: numeric train mean, categorical most frequent train value")
    if categories:
        steps.append(f"one-hot (train categories; unseen -> zeros): {', '.join(categories)}")
    steps.append(f"standardize {n_scaled} numeric columns with train mean/std (constant: std 1)")
    X = np.stack([np.asarray(col, dtype=np.float64) for col in cols], axis=1).astype(np.float32)
    bad = ~np.isfinite(X)  # e.g. |value| > 3.4e38, or far outside a near-constant train column
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"{t.at(i)}, column {names[j]!r}: values too large to standardize")
    return X, names, categories


def build(
    name: str,
    t: Table,
    *,
    impute: str | None = None,
    split_seed: int = 0,
    val_size: float = 0.15,
    test_size: float = 0.2,
) -> Dataset:
    """Check, encode, split and transform a ``Table`` into a ``Dataset``."""
    if impute not in (None, "mean", "drop"):
        raise DataError(f"impute must be None, 'mean' or 'drop', not {impute!r}")
    real = all(isinstance(s, Real) and not isinstance(s, bool) for s in (val_size, test_size))
    if not (real and 0 < test_size < 1 and 0 <= val_size < 1 and val_size + test_size < 1):
        raise DataError(f"bad split sizes val_size={val_size}, test_size={test_size}")
    dropped = dict(t.meta.get("rows_dropped", {}))  # by the loader (e.g. HELOC all -9 rows)
    n_read = len(t.y) + sum(dropped.values())
    for c, v in [*t.features.items(), (t.target, t.y)]:  # Inf is never a usable value
        if v.dtype != object and np.isinf(v).any():
            i = int(np.argmax(np.isinf(v)))
            raise DataError(f"{t.at(i)}, column {c!r}: infinite value {v[i]}")
    miss_y = _missing(t.y)
    if miss_y.any():
        if impute is None:
            i = int(np.argmax(miss_y))
            raise DataError(
                f"{t.at(i)}, column {t.target!r}: missing target value "
                "(impute='mean' or 'drop' drops such rows)"
            )
        t, dropped["missing target"] = t.take(~miss_y), int(miss_y.sum())  # never imputed
    # Cells a loader blanked on purpose (``special``) are always imputed; real gaps are errors
    # unless the caller chose a strategy.
    gaps = {
        c: _missing(v) & ~t.special.get(c, np.zeros(len(v), bool)) for c, v in t.features.items()
    }
    miss = np.logical_or.reduce([np.zeros(len(t.y), dtype=bool), *gaps.values()])
    if miss.any() and impute is None:
        i = int(np.argmax(miss))  # first row with a gap, then its first such column
        col = next(c for c, m in gaps.items() if m[i])
        raise DataError(
            f"{t.at(i)}, column {col!r}: missing value (impute='mean' or 'drop' fills or "
            "drops such cells; on the command line: --impute mean|drop)"
        )
    if impute == "drop" and miss.any():
        t, dropped["missing values"] = t.take(~miss), int(miss.sum())
    if len(t.y) == 0:
        raise DataError(f"{t.files[0]}: no rows left (dropped: {dropped})")

    task, y, class_names = encode_target(t)
    tr, va, te = split_indices(y, task != "regression", split_seed, val_size, test_size)
    steps: list[str] = []
    X, feature_names, categories = _features(t, tr, impute, steps)
    meta: dict[str, Any] = {
        "source": t.meta.get("source", ""),
        "file": t.files[0] if len(t.files) == 1 else None,
        "files": list(t.files),
        **{k: v for k, v in t.meta.items() if k not in ("source", "rows_dropped")},
        "target": t.target,
        "n_rows_read": n_read,
        "rows_dropped": dropped,
        "impute": impute,
        "preprocessing": steps,
        "categories": categories,
        "split_seed": split_seed,
        "split_sizes": {"train": len(tr), "val": len(va), "test": len(te)},
    }
    if task == "regression":
        mu, sd = float(y[tr].mean()), float(y[tr].std())
        meta["y_mean"], meta["y_std"] = mu, (sd if sd > 0 else 1.0)
        y = ((y - mu) / meta["y_std"]).astype(np.float32)
        steps.append("target standardized with train mean/std (see Dataset.inverse_target)")
    return Dataset(
        name=name,
        task=task,
        X_train=X[tr],
        y_train=y[tr],
        X_val=X[va],
        y_val=y[va],
        X_test=X[te],
        y_test=y[te],
        feature_names=feature_names,
        class_names=class_names,
        n_classes=None if class_names is None else len(class_names),
        meta=meta,
    )
