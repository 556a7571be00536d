"""The training engine: ``fit``, ``evaluate``, ``run_one`` and their callbacks and checkpoints.

    from htaf.train import load_run, run_one
    record = run_one(RunConfig(dataset="breast_cancer", estimator="htaf"), "runs/bc-htaf")
    run = load_run("runs/bc-htaf")        # the folder read back: config, metrics, model()

``FAMILIES`` lists the model families ``RunConfig.family`` may name (see ``htaf.families``);
``TASKS`` is its former name.
"""

from typing import Any

from htaf.train.callbacks import (
    ActivationStats,
    Callback,
    EarlyStopping,
    GradientNorms,
    activation_stats,
)
from htaf.train.checkpoint import CheckpointError, load_checkpoint, load_safetensors
from htaf.train.engine import FitResult, Trainer, TrainingDiverged, fit
from htaf.train.evaluation import evaluate, predict
from htaf.train.metrics import HIGHER_IS_BETTER, METRICS, PRIMARY
from htaf.train.run import RunFailed, run_one
from htaf.train.run_folder import Run, load_run, read_config
from htaf.train.setup import seed_everything

__all__ = [
    "FAMILIES",
    "HIGHER_IS_BETTER",
    "METRICS",
    "PRIMARY",
    "TASKS",
    "ActivationStats",
    "Callback",
    "CheckpointError",
    "EarlyStopping",
    "FitResult",
    "GradientNorms",
    "Run",
    "RunFailed",
    "Trainer",
    "TrainingDiverged",
    "activation_stats",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_run",
    "load_safetensors",
    "predict",
    "read_config",
    "run_one",
    "seed_everything",
]


def __getattr__(name: str) -> Any:
    # FAMILIES is live: families registered after import show up too.
    if name in ("FAMILIES", "TASKS"):
        from htaf.families import family_names

        return tuple(family_names())
    raise AttributeError(f"module 'htaf.train' has no attribute {name!r}")
