"""``csv:PATH``: any user CSV, with column types and the task inferred."""

from __future__ import annotations

from pathlib import Path

from .dataset import DataError
from .files import read_csv
from .preprocess import Table


def load_csv(
    path: str | Path,
    *,
    target: str | None,
    task: str | None = None,
    delimiter: str | None = None,
    drop: tuple[str, ...] | list[str] = (),
) -> Table:
    """Read a user CSV; ``drop`` lists ID-like columns to ignore.

    Non-numeric columns are categorical (one-hot). Task: a non-numeric target, or an integer
    one with <= 20 distinct values, is classification (binary for 2 classes), otherwise
    regression; ``task=`` ("binary", "multiclass", "classification", "regression") overrides.
    """
    if not target:
        raise DataError(f"csv:{path} needs target=COLUMN (the column to predict)")
    header, cols = read_csv(path, delimiter=delimiter)
    if isinstance(drop, str):
        drop = [drop]
    return Table.from_columns(
        path, header, cols, target, drop=drop, task=task, meta={"source": f"user CSV {path}"}
    )
