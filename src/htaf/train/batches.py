"""Batches of one split, whatever holds it: an array in memory or image files on disk.

    for xb in batches(X, index_batches, to_float=dataset.float_batch, device=device):
        out = model(xb)

An array (tables, sequences, uint8 images) is moved to the device once, in its own dtype, and
sliced; only the batch becomes float32. Lazy image files (``htaf.data.lazy.ImageFiles``, a
``torch.utils.data.Dataset``) are decoded in DataLoader workers, in the same batch order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

ToFloat = Callable[[Tensor], Tensor]


def is_lazy(X: Any) -> bool:
    """Whether ``X`` is read from files sample by sample (a map-style torch Dataset)."""
    return isinstance(X, torch.utils.data.Dataset) and not isinstance(X, Tensor)


def as_float(x: Tensor) -> Tensor:
    """The default batch conversion: float32 as is (tables)."""
    return x.float()


def to_device(X: Any, device: torch.device | str) -> Any:
    """An in-memory split as one tensor on ``device`` (dtype kept); lazy files pass through."""
    if is_lazy(X):
        return X
    if isinstance(X, Tensor):
        return X.to(device)
    arr = np.asarray(X)
    if arr.dtype not in (np.uint8, np.float32):
        arr = arr.astype(np.float32)
    return torch.as_tensor(arr).to(device)


def workers() -> int:
    """DataLoader workers for lazy files: ``$HTAF_DATA_WORKERS``, else one per core but the
    trainer's, at most 4 (0 decodes in the training process)."""
    env = os.environ.get("HTAF_DATA_WORKERS")
    if env is not None:
        if not env.isdigit():
            raise ValueError(f"HTAF_DATA_WORKERS must be an integer >= 0, got {env!r}")
        return int(env)
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def batches(
    X: Any,
    index_batches: Sequence[Tensor],
    *,
    to_float: ToFloat | None = None,
    device: torch.device | str = "cpu",
    epoch: int = 0,
    train: bool = False,
) -> Iterator[Tensor]:
    """Float batches of ``X`` in the order of ``index_batches``, on ``device``.

    For lazy files, ``epoch`` and ``train`` pick the augmentation (random crops and flips only
    while training, drawn from ``(seed, epoch, index)`` so a resumed run sees the same ones).
    """
    to_float = to_float or as_float
    if not is_lazy(X):
        X = to_device(X, device)
        for idx in index_batches:
            yield to_float(X[idx.to(X.device)])
        return
    if hasattr(X, "set_epoch"):
        X.set_epoch(epoch)
    if hasattr(X, "train"):
        X.train(train)
    sampler = [idx.tolist() for idx in index_batches]
    n = workers()
    loader = torch.utils.data.DataLoader(
        X, batch_sampler=sampler, num_workers=n, persistent_workers=False,
        multiprocessing_context="spawn" if n else None,
    )  # fmt: skip
    for xb in loader:
        yield to_float(xb.to(device))


def sequential(n: int, batch_size: int) -> list[Tensor]:
    """Index batches ``0..n-1`` in order."""
    return list(torch.arange(n).split(batch_size)) if n else []
