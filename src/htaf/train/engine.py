"""The training loop: ``fit`` a model on a ``Dataset`` under a ``RunConfig``.

    result = fit(model, dataset, config, out_dir="runs/x")     # checkpoint after every epoch
    result = fit(model, dataset, config, out_dir="runs/x", resume=True)   # after a crash

Training runs every estimator in its default mode (HTAF and the smooth baselines: smooth;
surrogates and STE: the exact step). Each epoch's validation reports both forwards
(``htaf.train.evaluation.evaluate``, re-exported here).

Reproducibility: a fresh run seeds torch from ``config.seed``; the epoch-``e`` shuffle comes
from a generator seeded by ``(seed, e)``; the per-epoch checkpoint carries model, optimizer,
schedulers, early-stopping state, history and every RNG state; and validation runs under
``fork_rng`` so it never moves the training RNG. A run killed at any point and resumed from
its last checkpoint therefore ends bit-for-bit where the uninterrupted run ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from htaf import _native
from htaf.config import ConfigError, RunConfig
from htaf.estimators import estimators_in
from htaf.families.hooks import ModelHooks
from htaf.io import atomic_write_jsonl, to_plain
from htaf.train import distributed
from htaf.train.batches import batches, to_device
from htaf.train.callbacks import ActivationStats, Callback, EarlyStopping, GradientNorms
from htaf.train.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    save_safetensors,
    set_rng_state,
)
from htaf.train.evaluation import (
    DATASET_TASKS,
    evaluate,
    float_batches,
    loss_fn,
    loss_input,
    metrics_from_outputs,
    predict,
    target_tensor,
)
from htaf.train.hook_passes import calibrate, model_stats, solve
from htaf.train.metrics import PRIMARY
from htaf.train.run_folder import CHECKPOINT, HISTORY, WEIGHTS
from htaf.train.setup import (
    check_resume_config,
    check_resume_world,
    epoch_permutation,
    make_estimator_schedule,
    make_lr_scheduler,
    make_optimizer,
)
from htaf.train.setup import seed_everything as seed_everything  # re-export: older importers


def check_model_config(config: RunConfig, *, closed_form: bool) -> None:
    """The config checks that depend on the built model (``ConfigError``): a closed-form model
    (``ModelHooks(model).closed_form``) is solved once, so it takes ``epochs = 1``.
    ``htaf.experiment.validate`` calls it before a grid writes anything, the :class:`Trainer`
    again."""
    if closed_form and config.epochs != 1:
        raise ConfigError(
            f"config key 'epochs' must be 1 for a closed-form model, got {config.epochs}"
        )


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run cannot go on (not a bad-input error)."""


@dataclass
class FitResult:
    """What :func:`fit` returns. ``history`` has one dict per epoch (see :meth:`Trainer.fit`)."""

    model: nn.Module
    history: list[dict[str, Any]]
    epochs: int  # epochs run in total (resumed epochs included)
    best_epoch: int | None  # epoch with the lowest validation loss (1-based)
    stopped_early: bool
    restored_best: bool  # whether the returned weights are the best epoch's
    train_time_s: float
    activation_samples: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def _training_modes(model: nn.Module) -> set[str]:
    return {est.mode for est in estimators_in(model)}


# -- the trainer ---------------------------------------------------------------------------------
class Trainer:
    """One training run. The constructor validates and sets everything up without touching the
    file system, so a bad config fails before any file is written; :meth:`fit` trains."""

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        config: RunConfig,
        *,
        out_dir: str | Path | None = None,
        resume: bool = False,
        callbacks: Iterable[Callback] = (),
        progress: bool = True,
    ):
        config.validate()
        self.config, self.data, self.model = config, data, model
        self.task = data.task
        if self.task not in DATASET_TASKS:
            raise ValueError(f"dataset task {self.task!r} is not one of {', '.join(DATASET_TASKS)}")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.dist = distributed.info()
        self.device = self._check_device(config.device)
        y_val = getattr(data, "y_val", None)
        self.n_val = 0 if y_val is None else len(y_val)
        if config.patience > 0 and self.n_val == 0:
            raise ConfigError("config key 'patience' > 0 needs a validation split, but it is empty")
        if config.patience < 0:
            raise ConfigError(f"config key 'patience' must be >= 0, got {config.patience!r}")

        # Train every estimator in its training forward: its class default (HTAF smooth,
        # STE/surrogates hard) unless the model's builder chose another (Estimator.training_mode).
        for est in estimators_in(model):
            est.mode = est.training_mode
        model.to(self.device)
        self.loss = loss_fn(self.task)
        #: What the model offers beyond its forward (htaf.families.hooks): called only here.
        self.hooks = ModelHooks(model)
        #: A model that is solved, not trained by gradient.
        self.closed_form = self.hooks.closed_form
        check_model_config(config, closed_form=self.closed_form)
        self.optimizer = make_optimizer(model, config)
        self.lr_scheduler = make_lr_scheduler(self.optimizer, config)
        self.est_schedule, self.schedule_unit = make_estimator_schedule(model, config)
        self.early = EarlyStopping(config.patience)
        self.callbacks: list[Callback] = [GradientNorms(), ActivationStats(), *callbacks]
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.done = False
        self._checkpoint: dict[str, Any] | None = None
        if resume and self.out_dir is not None and (self.out_dir / CHECKPOINT).is_file():
            # Read (and check) now, so a bad or foreign checkpoint fails before any write.
            self._checkpoint = load_checkpoint(self.out_dir / CHECKPOINT, map_location="cpu")
            path = self.out_dir / CHECKPOINT
            check_resume_config(config, self._checkpoint.get("config") or {}, path)
            check_resume_world(
                int(self._checkpoint.get("world_size", 1)), self.dist.world_size, path
            )
        #: Whether :meth:`fit` continues a checkpoint (False: a fresh run, even with ``resume``).
        self.resuming = self._checkpoint is not None

    # -- setup ----------------------------------------------------------------------------------
    def _check_device(self, device: str) -> torch.device:
        try:
            dev = distributed.device_for(device, self.dist)
        except (RuntimeError, ValueError) as err:
            raise ConfigError(f"config key 'device': {err}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"config key 'device' is {device!r} but CUDA is not available")
        return dev

    # -- checkpointing ----------------------------------------------------------------------------
    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "config": to_plain(self.config.to_dict()),
            "epoch": epoch,
            "done": self.done,
            "world_size": self.dist.world_size,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "estimator_schedule": self.est_schedule.state_dict() if self.est_schedule else None,
            "early_stopping": self.early.state_dict(),
            "history": self.history,
            "rng": rng_state(),
        }

    def _restore(self, ckpt: Mapping[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.lr_scheduler is not None and ckpt.get("lr_scheduler") is not None:
            self.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
        if self.est_schedule is not None and ckpt.get("estimator_schedule") is not None:
            self.est_schedule.load_state_dict(ckpt["estimator_schedule"])
        self.early.load_state_dict(ckpt["early_stopping"])
        self.history = list(ckpt["history"])
        self.start_epoch = int(ckpt["epoch"])
        self.done = bool(ckpt.get("done", False))
        set_rng_state(ckpt["rng"])

    def _write(self, epoch: int) -> None:
        """Checkpoint and history.jsonl, atomically, from rank 0 only."""
        if self.out_dir is None or not self.dist.is_main:
            return
        save_checkpoint(self.out_dir / CHECKPOINT, self._state(epoch))
        atomic_write_jsonl(self.out_dir / HISTORY, self.history)

    # -- training ---------------------------------------------------------------------------------
    def _batches(self, n: int, epoch: int) -> list[Tensor]:
        idx = distributed.shard(epoch_permutation(n, self.config.seed, epoch), self.dist)
        bs = self.config.batch_size
        batches = list(torch.split(idx, bs))
        # A trailing batch of one sample breaks BatchNorm's batch statistics; drop it.
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches.pop()
        return batches

    def _train_epoch(self, net: nn.Module, X: Any, Y: Tensor, epoch: int) -> float:
        net.train()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        index = self._batches(len(X), epoch)
        stream = batches(
            X, index, to_float=float_batches(self.data), device=self.device, epoch=epoch,
            train=True,
        )  # fmt: skip
        for b, (idx, xb) in enumerate(zip(index, stream, strict=True)):
            yb = Y[idx.to(self.device)]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(loss_input(net(xb), self.task), yb)
            loss.backward()
            self.optimizer.step()
            self.hooks.constrain_()  # e.g. latent binary weights clipped to [-1, 1]
            if self.est_schedule is not None and self.schedule_unit == "step":
                self.est_schedule.step()
            total[0] += loss.detach().double() * len(idx)
            total[1] += len(idx)
            for cb in self.callbacks:
                cb.on_batch_end(b, {"epoch": epoch + 1, "batch": b, "loss": loss.item()})
        total = distributed.all_reduce_sum(total, self.dist)
        return float(total[0] / total[1]) if total[1] > 0 else math.nan

    def _validate(self, logs: dict[str, Any]) -> float:
        """Validation metrics of both forwards into ``logs``; returns the loss to monitor."""
        if self.n_val == 0:
            logs["val_loss"] = math.nan
            return math.nan
        observers = [cb.observe for cb in self.callbacks]
        metrics = evaluate(
            self.model, self.data.X_val, self.data.y_val, self.task, self.data, observers=observers
        )
        modes = _training_modes(self.model)
        if not modes:  # no estimators: both forwards are the same network
            val_loss = metrics["loss_hard"]
        elif len(modes) == 1:
            val_loss = metrics[f"loss_{modes.pop()}"]
        else:  # mixed modes: score the network exactly as it trains
            out = predict(self.model, self.data.X_val, to_float=float_batches(self.data))
            val_loss = metrics_from_outputs(out, self.data.y_val, self.task, self.data)["loss"]
        logs["val_loss"] = val_loss
        logs.update({f"val_{k}": v for k, v in metrics.items()})
        return val_loss

    def fit(self) -> FitResult:
        """Train for ``config.epochs`` epochs (or until early stopping); see the module doc.

        Each epoch's history row holds ``epoch``, ``train_loss``, ``val_loss`` (training-mode
        forward), ``val_{metric}_{hard|smooth}`` (the task's metrics and ``loss``), ``lr``,
        ``estimator_params``, ``grad_norm``, ``act`` and ``epoch_time_s``.
        """
        with distributed.session(self.config.device) as d:
            if d != self.dist:  # the group was opened here: pick this rank's device
                self.dist = d
                self.device = self._check_device(self.config.device)
                self.model.to(self.device)  # in place: the optimizer keeps its parameters
            return self._fit()

    def _fit(self) -> FitResult:
        c = self.config
        if self._checkpoint is not None:
            self._restore(self._checkpoint)
            self._checkpoint = None
        else:
            torch.manual_seed(c.seed)  # dropout and stochastic backward rules
        if self.device.type == "cpu" and next(estimators_in(self.model), None) is not None:
            _native.available()  # a machine's first use compiles the operators: not epoch time
        net = distributed.wrap(self.model, self.device, self.dist)
        X = to_device(self.data.X_train, self.device)
        Y = target_tensor(self.data.y_train, self.task, self.device)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        bar = _progress(self.start_epoch, c.epochs, self.progress and self.dist.is_main)
        stop = self.done or self.early.stopped
        epoch = self.start_epoch
        while not stop and epoch < c.epochs:
            t0 = time.perf_counter()
            if self.est_schedule is not None and self.schedule_unit == "epoch" and epoch > 0:
                self.est_schedule.step()
            logs: dict[str, Any] = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"]}
            if self.closed_form:
                logs.update(solve(self.model, self.hooks, self.data, X, Y, self.loss))
            else:
                logs["train_loss"] = self._train_epoch(net, X, Y, epoch)
                if self.hooks.has("calibrate"):
                    calibrate(self.hooks, self.data, self.config.seed, self.device)
            if not math.isfinite(logs["train_loss"]):
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch + 1}: the training loss is "
                    f"{logs['train_loss']} (estimator {c.estimator!r}, lr={c.lr:g}); "
                    "lower the learning rate"
                )
            val_loss = self._validate(logs)
            first = next(estimators_in(self.model), None)
            logs["estimator_params"] = dict(first.params) if first is not None else {}
            if self.hooks.has("epoch_stats"):
                logs["model_stats"] = model_stats(self.model, self.hooks, self.data, self.device)
            for cb in self.callbacks:
                cb.on_epoch_end(epoch + 1, logs)
            logs["epoch_time_s"] = time.perf_counter() - t0
            self.history.append(to_plain(logs))
            monitor = val_loss if self.n_val else logs["train_loss"]
            self.early.update(monitor, epoch + 1, self.model)
            stop = distributed.broadcast_flag(self.early.stopped, self.dist, self.device)
            self._step_lr(monitor)
            epoch += 1
            self._write(epoch)
            _update_bar(bar, logs, self.task)
        if bar is not None:
            bar.close()
        return self._finish(epoch)

    def _step_lr(self, monitor: float) -> None:
        if self.lr_scheduler is None:
            return
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step(monitor)
        else:
            self.lr_scheduler.step()

    def _finish(self, epoch: int) -> FitResult:
        # A finished run's checkpoint already holds the restored weights.
        restored = self.config.patience > 0 and self.early.best_state is not None
        if restored and not self.done:
            self.model.load_state_dict(self.early.best_state)
        self.done = True
        self._write(epoch)
        if self.out_dir is not None and self.dist.is_main:
            save_safetensors(self.model, self.out_dir / WEIGHTS, {"config": self.config.to_dict()})
        stats = next((cb for cb in self.callbacks if isinstance(cb, ActivationStats)), None)
        for cb in self.callbacks:
            cb.on_fit_end(self.history[-1] if self.history else {})
        return FitResult(
            model=self.model,
            history=self.history,
            epochs=len(self.history),
            best_epoch=self.early.best_epoch,
            stopped_early=self.early.stopped,
            restored_best=restored,
            train_time_s=float(sum(h.get("epoch_time_s", 0.0) for h in self.history)),
            activation_samples=dict(stats.samples) if stats is not None else {},
        )


def _progress(start: int, total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from htaf.progress import progress_bar

    return progress_bar(total=total, initial=start, unit="epoch", dynamic_ncols=True)


def _update_bar(bar: Any, logs: Mapping[str, Any], task: str) -> None:
    if bar is None:
        return
    metric = PRIMARY[task]
    post = {"loss": f"{logs['train_loss']:.4f}", "val": f"{logs.get('val_loss', math.nan):.4f}"}
    if f"val_{metric}_hard" in logs:
        post[f"{metric}(step)"] = f"{logs[f'val_{metric}_hard']:.4f}"
    bar.set_postfix(post, refresh=False)
    bar.update(1)


def fit(
    model: nn.Module,
    data: Any,
    config: RunConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Iterable[Callback] = (),
    progress: bool = True,
) -> FitResult:
    """Train ``model`` on ``data`` (a ``htaf.data.Dataset``) as ``config`` says.

    With ``out_dir``, every epoch atomically rewrites ``checkpoint.pt`` and ``history.jsonl``,
    and the end writes ``model.safetensors``. ``resume=True`` continues from
    ``out_dir/checkpoint.pt`` when it exists (and starts fresh otherwise); a finished run
    resumes to its final state without training. With ``patience > 0`` the best epoch's
    weights (lowest validation loss) are restored at the end.
    """
    with distributed.session(config.device):  # under torchrun: one group for setup and training
        trainer = Trainer(
            model, data, config, out_dir=out_dir, resume=resume, callbacks=callbacks,
            progress=progress,
        )  # fmt: skip
        return trainer.fit()
