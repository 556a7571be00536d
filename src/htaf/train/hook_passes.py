"""The passes the trainer makes through a model's hooks (``htaf.families.hooks.ModelHooks``).

Each runs without gradients and leaves the RNG where it was (``fork_rng``), so a model that
offers these hooks trains on exactly the batches and random draws it would without them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from htaf.families.hooks import ModelHooks
from htaf.io import to_plain
from htaf.train.batches import batches, sequential
from htaf.train.evaluation import device_of, float_batches, fork_rng, loss_input, predict

#: Samples of the validation split a model's ``epoch_stats(x)`` sees each epoch.
MODEL_STATS_SAMPLES = 2048
#: Samples of the training split a model's ``calibrate(x)`` sees after each epoch.
CALIBRATION_SAMPLES = 1024


def calibrate(hooks: ModelHooks, data: Any, seed: int, device: torch.device) -> None:
    """The model's ``calibrate(x)`` on a fixed random sample of the training split (the
    same every epoch, drawn from ``seed``), without gradients, RNG untouched."""
    X = data.X_train
    n = min(len(X), CALIBRATION_SAMPLES)
    pick = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    x = next(batches(X, [pick[:n].sort().values], to_float=float_batches(data), device=device))
    with torch.no_grad(), fork_rng(device):
        hooks.calibrate(x)


def model_stats(
    model: nn.Module, hooks: ModelHooks, data: Any, device: torch.device
) -> dict[str, Any]:
    """The model's ``epoch_stats()``; one that takes an argument gets a fixed batch of the
    validation split (the training split if that is empty), in eval mode, without
    gradients, with the RNG untouched."""
    if not hooks.epoch_stats_takes_a_batch():
        return hooks.epoch_stats()
    y_val = getattr(data, "y_val", None)
    X = data.X_val if y_val is not None and len(y_val) else data.X_train
    n = min(len(X), MODEL_STATS_SAMPLES)
    x = next(batches(X, sequential(n, n), to_float=float_batches(data), device=device))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), fork_rng(device):
            return hooks.epoch_stats(x)
    finally:
        model.train(was_training)


def solve(
    model: nn.Module, hooks: ModelHooks, data: Any, X: Any, Y: Tensor, loss: nn.Module
) -> dict[str, Any]:
    """One closed-form 'epoch': the model solves its own problem on the training split."""
    device = device_of(model)
    x = next(batches(X, sequential(len(X), len(X)), to_float=float_batches(data), device=device))
    info = hooks.fit_closed_form(x, Y, data.task)
    out = predict(model, X, to_float=float_batches(data))
    train_loss = loss(loss_input(out.to(device), data.task), Y)
    return {"train_loss": float(train_loss), "solver": to_plain(info)}
