"""Evaluation: losses, predictions and the metrics of both forwards.

    evaluate(model, X, y, "binary")   # {"accuracy_hard": ..., "accuracy_smooth": ..., ...}
    predict(model, X)                 # outputs, eval mode, no gradients, RNG untouched

Every estimator is switched to each mode (``hard``: the exact binary forward; ``smooth``) for
its pass; the loss is the training loss (BCE-with-logits, cross-entropy or MSE), so the
``loss_hard`` beside ``loss_smooth`` shows what hardening costs in the objective itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from htaf.estimators import MODES, set_mode
from htaf.train import distributed
from htaf.train.batches import batches, sequential
from htaf.train.metrics import METRICS, classification_metrics, regression_metrics

DATASET_TASKS = tuple(METRICS)  # binary, multiclass, regression


def loss_fn(task: str) -> nn.Module:
    """BCE-with-logits (binary, one logit), cross-entropy (multiclass), MSE (regression)."""
    if task == "binary":
        return nn.BCEWithLogitsLoss()
    if task == "multiclass":
        return nn.CrossEntropyLoss()
    if task == "regression":
        return nn.MSELoss()
    raise ValueError(f"unknown task {task!r} (choose from {', '.join(DATASET_TASKS)})")


def target_tensor(y: Any, task: str, device: torch.device | str = "cpu") -> Tensor:
    """Targets in the dtype the task's loss wants (float for binary/regression, long classes)."""
    dtype = torch.long if task == "multiclass" else torch.float32
    return torch.as_tensor(np.asarray(y)).to(device=device, dtype=dtype)


def loss_input(out: Tensor, task: str) -> Tensor:
    """One-logit outputs (binary, regression) lose their trailing dim to match the targets."""
    return out if task == "multiclass" else out.reshape(len(out), -1)[:, 0]


def device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def fork_rng(device: torch.device) -> Any:
    return torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])


def float_batches(data: Any) -> Any:
    """The dataset's batch conversion (uint8 images -> normalized float), if it has one."""
    return getattr(data, "float_batch", None)


def predict(model: nn.Module, X: Any, *, batch_size: int = 4096, to_float: Any = None) -> Tensor:
    """Model outputs for ``X`` (eval mode, no gradients), on the CPU.

    ``to_float`` turns a stored batch into the model's input (``Dataset.float_batch``).
    """
    model = distributed.unwrap(model)
    device = device_of(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), fork_rng(device):
            index = sequential(len(X), batch_size)
            parts = [model(xb).cpu() for xb in batches(X, index, to_float=to_float, device=device)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0)


def metrics_from_outputs(out: Tensor, y: Any, task: str, dataset: Any) -> dict[str, float]:
    yt = target_tensor(y, task)
    if len(yt) == 0:  # an empty split: every metric is undefined
        return dict.fromkeys(("loss", *METRICS[task]), math.nan)
    loss = float(loss_fn(task)(loss_input(out, task), yt))
    z = out.double().reshape(len(out), -1)
    if task == "binary":
        probs = torch.sigmoid(z[:, 0]).numpy()
        metrics = classification_metrics(np.asarray(y), probs)
    elif task == "multiclass":
        metrics = classification_metrics(np.asarray(y), torch.softmax(z, dim=1).numpy())
    else:
        pred = z[:, 0].numpy()
        metrics = regression_metrics(np.asarray(y, dtype=np.float64), pred, dataset)
    return {"loss": loss, **metrics}


def evaluate(
    model: nn.Module,
    X: Any,
    y: Any,
    task: str,
    dataset: Any = None,
    *,
    modes: Sequence[str] = MODES,
    batch_size: int = 4096,
    observers: Sequence[Callable[[str], AbstractContextManager[Any]]] = (),
) -> dict[str, float]:
    """Metrics of both forwards: ``{METRIC}_{MODE}`` for METRIC in the task's metrics + ``loss``.

    Binary/multiclass: ``accuracy``, ``auroc``, ``logloss``; regression: ``rmse``, ``mae``,
    ``r2`` in original target units when ``dataset`` is given (``loss`` is always the training
    loss, in standardised units). Every estimator is switched to each mode for the pass and
    restored afterwards; the model runs in eval mode; RNG states are untouched. For a model
    without estimators (ReLU reference rows) both modes give the same numbers. Each of
    ``observers`` is called with the mode, and the pass runs inside the context it returns
    (callbacks record activation statistics that way, without a pass of their own).
    """
    if task not in DATASET_TASKS:
        raise ValueError(f"unknown task {task!r} (choose from {', '.join(DATASET_TASKS)})")
    inner = distributed.unwrap(model)
    results: dict[str, float] = {}
    for mode in modes:
        with set_mode(inner, mode), ExitStack() as watching:
            for observe in observers:
                watching.enter_context(observe(mode))
            out = predict(inner, X, batch_size=batch_size, to_float=float_batches(dataset))
        for name, value in metrics_from_outputs(out, y, task, dataset).items():
            results[f"{name}_{mode}"] = value
    return results
