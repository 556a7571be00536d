"""Experiment tracking: every run's epochs, gradients, activations and plots in TensorBoard or
MLflow.

    tracking = prepare("tensorboard", root=exp_dir, experiment=exp_id, store_dir=out)
    run_one(config, run_dir, tracking=tracking)      # logs each epoch as it ends
    log_summary(tracking, summary, plots, reports)   # the experiment's means, plots, report

``prepare`` checks everything before anything trains: the tracker's name, its package
(``pip install 'htaf[tensorboard]'`` / ``'htaf[mlflow]'``) and, for MLflow, that the tracking
store answers (it creates the MLflow experiment there). What it returns is plain, picklable data,
so the runs of a process pool or of Ray log too: each run opens its own writer.

What is logged (the same names as ``history.jsonl`` and ``metrics.json``):

* per epoch, at step = epoch: every number in the epoch's history row, nested keys joined by
  ``/``: ``train_loss``, ``val_auroc_hard``, ``val_auroc_smooth``, ``lr``,
  ``grad_norm/layer1``, ``act/smooth/near_binary_05``, ``act/hard/layers/layer2/saturation``,
  ``estimator_params/alpha1``, ``model_stats/...``;
* at the end: ``final/<metric>`` for every number in ``metrics.json``; TensorBoard also gets a
  histogram per hidden layer of the smooth forward's last validation activations;
* the plots: for ``htaf compare`` the experiment's plots and report (TensorBoard run
  ``summary``, MLflow run ``summary``); for ``htaf train`` the run's own plots.

TensorBoard: one event folder per run under ``ROOT/tensorboard/`` (``<dataset>/<estimator>/
seed<k>`` for a grid); ``tensorboard --logdir ROOT/tensorboard``. MLflow: one MLflow experiment
per htaf experiment, one MLflow run per htaf run; the store is ``$MLFLOW_TRACKING_URI`` or else
``sqlite:///OUT/mlflow.db`` (MLflow 3 no longer opens a plain ``file:`` store by default);
``mlflow ui --backend-store-uri sqlite:///OUT/mlflow.db``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from htaf.train import tracking_mlflow, tracking_tensorboard
from htaf.train.tracker import (
    MLFLOW_ARTIFACTS,
    MLFLOW_DB,
    MLFLOW_RUN_FILE,
    TENSORBOARD_DIR,
    TRACKERS,
    RunTracker,
    Tracking,
    check_name,
    epoch_scalars,
    final_scalars,
    params,
    redact,
    scalars,
)
from htaf.train.tracking_mlflow import MLflowTracker, mlflow_experiment
from htaf.train.tracking_tensorboard import TensorBoardTracker

__all__ = [
    "MLFLOW_ARTIFACTS",
    "MLFLOW_DB",
    "MLFLOW_RUN_FILE",
    "TENSORBOARD_DIR",
    "TRACKERS",
    "MLflowTracker",
    "RunTracker",
    "TensorBoardTracker",
    "Tracking",
    "check_name",
    "epoch_scalars",
    "final_scalars",
    "log_run_plots",
    "log_summary",
    "params",
    "prepare",
    "redact",
    "run_tracker",
    "scalars",
]


def prepare(
    track: str | None, *, root: str | Path, experiment: str, store_dir: str | Path
) -> Tracking | None:
    """Check the tracker and open its experiment, before any run starts; None for no tracking.

    ``experiment``: the MLflow experiment's name (created if new). ``store_dir``: where the
    default MLflow store goes when ``MLFLOW_TRACKING_URI`` is not set. An unknown tracker, a
    missing package or an MLflow store that cannot be reached raise ``ConfigError``.
    """
    kind = check_name(track)
    if kind is None:
        return None
    root = str(Path(root).resolve())
    if kind == "tensorboard":
        return Tracking(kind, root)
    store_dir = Path(store_dir).resolve()
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    uri = env_uri or f"sqlite:///{store_dir / MLFLOW_DB}"
    # Artifacts of the default store stay beside it, not in the working directory.
    artifacts = None if env_uri else store_dir / MLFLOW_ARTIFACTS / experiment
    return Tracking(
        kind, root, uri=uri, experiment_id=mlflow_experiment(uri, experiment, artifacts)
    )


# -- choosing the logger, and what is logged after the runs ----------------------------------------
def run_tracker(
    tracking: Tracking | None, run_dir: str | Path, config: Mapping[str, Any]
) -> RunTracker | None:
    """The logger of one run (``None`` without tracking)."""
    if tracking is None:
        return None
    kind = TensorBoardTracker if tracking.kind == "tensorboard" else MLflowTracker
    return kind(tracking, run_dir, config)


def log_run_plots(
    tracking: Tracking | None, run_dir: str | Path, plots: Iterable[Path], step: int = 0
) -> None:
    """Plots drawn after a run finished, added to its TensorBoard run or MLflow run."""
    if tracking is None:
        return
    backend = tracking_tensorboard if tracking.kind == "tensorboard" else tracking_mlflow
    backend.log_plots(tracking, run_dir, plots, step)


def log_summary(
    tracking: Tracking | None,
    summary: list[dict[str, Any]],
    plots: Iterable[Path],
    reports: Iterable[Path] = (),
) -> None:
    """The experiment's results, plots and report as the run ``summary``.

    Metrics are ``<estimator>/<metric>`` (the mean over seeds, ``<dataset>/`` in front when the
    grid has several datasets); TensorBoard shows the plots as images and report.md as text.
    """
    if tracking is None:
        return
    datasets = {row["dataset"] for row in summary}
    values: dict[str, float] = {}
    for row in summary:
        head = f"{row['dataset']}/" if len(datasets) > 1 else ""
        for name, stats in row["metrics"].items():
            mean = stats.get("mean")
            if isinstance(mean, int | float) and math.isfinite(mean):
                values[f"{head}{row['estimator']}/{name}"] = float(mean)
    backend = tracking_tensorboard if tracking.kind == "tensorboard" else tracking_mlflow
    backend.log_summary_run(tracking, values, list(plots), list(reports))
