"""``run_one``: one config in, one run folder and one record out.

The run folder's files are named and described in ``htaf.train.run_folder``, which also reads
a folder back as a ``Run``. Each is written atomically; under torchrun, by rank 0.

A run fails in one of two ways: bad input raises a ``ValueError`` subclass (or an ``OSError``
for an unusable path) before any file is written; anything that goes wrong later is not the
input's fault, and is raised as a ``RuntimeError``: ``TrainingDiverged``, torch's own errors,
or :class:`RunFailed` around any other exception (a bug shows its traceback through it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from htaf.config import RunConfig
from htaf.estimators import MODES, set_mode
from htaf.families import build_model, model_options, prepare_data
from htaf.families.hooks import ModelHooks
from htaf.io import atomic_save_npz, atomic_write_json, atomic_write_text, json_safe
from htaf.train import distributed, run_folder
from htaf.train.batches import batches, sequential
from htaf.train.callbacks import ACT_KEYS, activation_stats
from htaf.train.engine import FitResult, Trainer
from htaf.train.evaluation import evaluate, float_batches
from htaf.train.run_folder import (
    ACTIVATIONS,
    CONFIG,
    METRICS,
    MODEL_ARRAYS,
    RUN_FILES,
    SUMMARY,
    Run,
)
from htaf.train.setup import seed_everything
from htaf.train.tracking import MLFLOW_RUN_FILE, Tracking, run_tracker

SPLITS = ("train", "val", "test")


class RunFailed(RuntimeError):
    """A run failed after its input was accepted; ``error`` is what was raised (the cause)."""

    def __init__(self, run_dir: str | Path, error: BaseException):
        super().__init__(f"run {run_dir} failed: {type(error).__name__}: {error}")
        self.run_dir = str(run_dir)
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:  # worker processes send it back pickled
        return (type(self), (self.run_dir, self.error))


#: Activation statistics copied into metrics.json.
#: Test samples a model's ``eval_stats`` sees, per forward mode.
EVAL_STATS_SAMPLES = 2048
#: Test samples a model's ``eval_arrays`` sees (the exact forward).
EVAL_ARRAY_SAMPLES = 4


def versions() -> dict[str, str]:
    from htaf import __version__

    return {"htaf": __version__, "torch": torch.__version__, "python": platform.python_version()}


def final_metrics(model: torch.nn.Module, dataset: Any, result: FitResult) -> dict[str, Any]:
    """The flat ``metrics.json`` dict (see ``htaf.train.run_folder``)."""
    metrics: dict[str, Any] = {}
    for split in SPLITS:
        X, y = getattr(dataset, f"X_{split}"), getattr(dataset, f"y_{split}")
        for key, value in evaluate(model, X, y, dataset.task, dataset).items():
            metrics[f"{split}_{key}"] = value
    metrics.update(model_test_stats(model, dataset))
    metrics.update(solver_metrics(result.history))
    metrics["train_time_s"] = result.train_time_s
    metrics["epochs_run"] = result.epochs
    metrics["best_epoch"] = result.best_epoch
    return metrics


def solver_metrics(history: list[dict[str, Any]]) -> dict[str, Any]:
    """``solver_{KEY}`` for the scalar entries of a closed-form model's ``fit_closed_form``
    result (the last history row's ``solver``); empty for a model trained by gradient."""
    info = history[-1].get("solver") if history else None
    if not isinstance(info, dict):
        return {}
    return {f"solver_{k}": v for k, v in info.items() if isinstance(v, (bool, int, float, str))}


@contextlib.contextmanager
def _test_sample(model: torch.nn.Module, dataset: Any, n: int) -> Iterator[torch.Tensor]:
    """The first ``n`` test samples as one float batch on the model's device, with the model
    in eval mode (restored afterwards) and without gradients."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    n = min(len(dataset.X_test), n)
    x = next(batches(dataset.X_test, sequential(n, n), to_float=float_batches(dataset),
                     device=device))  # fmt: skip
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield x
    finally:
        model.train(was_training)


def model_test_stats(model: torch.nn.Module, dataset: Any) -> dict[str, float]:
    """``test_{NAME}_{mode}`` from the model's ``eval_stats`` on a fixed test sample, if any."""
    hooks = ModelHooks(model)
    if not hooks.has("eval_stats") or len(dataset.X_test) == 0:
        return {}
    out: dict[str, float] = {}
    with _test_sample(model, dataset, EVAL_STATS_SAMPLES) as x:
        for mode in MODES:
            with set_mode(model, mode):
                for key, value in hooks.eval_stats(x).items():
                    out[f"test_{key}_{mode}"] = value
    return out


def model_arrays(model: torch.nn.Module, dataset: Any) -> dict[str, Any]:
    """The model's ``eval_arrays`` of the first test samples in hard mode, if it has them."""
    hooks = ModelHooks(model)
    if not hooks.has("eval_arrays") or len(dataset.X_test) == 0:
        return {}
    with _test_sample(model, dataset, EVAL_ARRAY_SAMPLES) as x, set_mode(model, "hard"):
        return hooks.eval_arrays(x)


def _write_test_results(
    model: torch.nn.Module, dataset: Any, result: FitResult, out_dir: Path, is_main: bool
) -> dict[str, Any]:
    """metrics.json (returned) and activations.npz from the test split; rank 0 writes."""
    metrics = final_metrics(model, dataset, result)
    stats, samples = activation_stats(
        model, dataset.X_test, modes=("smooth", "hard"), to_float=float_batches(dataset)
    )
    for mode, suffix in (("smooth", ""), ("hard", "_hard")):
        for key in ACT_KEYS:
            metrics[f"{key}{suffix}"] = stats.get(mode, {}).get(key, math.nan)
    metrics = json_safe(metrics)
    if is_main:
        atomic_write_json(out_dir / METRICS, metrics)
        arrays = {f"{layer}_{mode}": v for mode, by in samples.items() for layer, v in by.items()}
        atomic_save_npz(out_dir / ACTIVATIONS, arrays)
        extra = model_arrays(model, dataset)
        if extra:
            atomic_save_npz(out_dir / MODEL_ARRAYS, extra)
        summary = ModelHooks(model).summary()  # e.g. a BNN's Larq-style profile
        if summary is not None:
            atomic_write_text(out_dir / SUMMARY, summary + "\n")
    return metrics


def run_one(
    config: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    dataset: Any = None,
    tracking: Tracking | Callable[[], Tracking | None] | None = None,
) -> dict[str, Any]:
    """Load the data, build the model (``htaf.families``), train, evaluate and write ``out_dir``.

    Everything that can be wrong with the input (config, dataset, estimator, checkpoint) raises
    a ``ValueError`` subclass before any file is written. ``resume=True`` continues from
    ``out_dir/checkpoint.pt`` if present. ``dataset``: the already loaded
    ``load_dataset(config)``, to share one load between runs. ``tracking``: log the epochs and
    final metrics to TensorBoard or MLflow (``htaf.train.tracking.prepare``), or a function
    that prepares it, called only once the input is checked. Returns the record
    ``{"config", "metrics", "history", "run_dir", "dataset_meta"}``.
    """
    out_dir = Path(out_dir)
    config.validate()
    options = model_options(config.family, config.model)  # bad options fail before the data loads
    if dataset is None:
        dataset = run_folder.load_dataset(config)
    dataset = prepare_data(config, dataset, options=options)  # the family's view (features)
    with distributed.session(config.device) as d:
        seed_everything(config.seed)
        model = build_model(config, dataset, options=options)
        trainer = Trainer(
            model, dataset, config, out_dir=out_dir, resume=resume, progress=progress
        )  # fmt: skip
        # The tracker opens once the Trainer has checked the config (an MLflow store is a file).
        # Under torchrun only rank 0 logs, as only rank 0 writes files.
        tracker = None
        if d.is_main:
            if callable(tracking):
                tracking = tracking()
            tracker = run_tracker(tracking, out_dir, config.to_dict())
        if tracker is not None:
            trainer.callbacks.append(tracker)
        meta = json_safe(dataset.meta)
        if d.is_main:
            if not trainer.resuming:  # a fresh run never mixes with a previous run's files
                for name in (*RUN_FILES, MLFLOW_RUN_FILE):
                    (out_dir / name).unlink(missing_ok=True)
            record_config = {
                **config.to_dict(), "versions": versions(),
                "model_options": dataclasses.asdict(options), "dataset_meta": meta,
            }  # fmt: skip
            atomic_write_json(out_dir / CONFIG, record_config)
        try:
            result = trainer.fit()
            metrics = _write_test_results(model, dataset, result, out_dir, d.is_main)
            if tracker is not None:
                tracker.finish(metrics)
        except BaseException as err:
            if tracker is not None:
                tracker.fail()
            if isinstance(err, Exception) and not isinstance(err, RuntimeError):
                # Files were written: a ValueError or KeyError here is a failure, not bad input.
                raise RunFailed(out_dir, err) from err
            raise
        distributed.barrier(d)
    history = json_safe(result.history)
    return Run(out_dir, config, metrics, history, saved_config={"dataset_meta": meta}).record()
