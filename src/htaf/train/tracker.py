"""What every tracker shares: where runs log (``Tracking``), the names and scalars logged, and
the per-run logger's interface (``RunTracker``). The backends are ``tracking_tensorboard``
and ``tracking_mlflow``; ``htaf.train.tracking`` chooses between them.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from htaf.config import ConfigError
from htaf.train.callbacks import ActivationStats, Callback

TRACKERS = ("tensorboard", "mlflow")
#: Sub-folder of the experiment (or run) folder that holds TensorBoard's event files.
TENSORBOARD_DIR = "tensorboard"
#: The MLflow store when ``MLFLOW_TRACKING_URI`` is not set: a SQLite file in the output folder.
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
#: Where a run keeps the id of its MLflow run, so that a resumed run continues it.
MLFLOW_RUN_FILE = "mlflow_run.json"


@dataclass(frozen=True)
class Tracking:
    """Where the runs of one htaf experiment (or one ``htaf train`` run) log.

    ``root``: the folder runs are named relative to (a grid cell ``EXP/breast_cancer/htaf/seed0``
    is the run ``breast_cancer/htaf/seed0``). MLflow: ``uri`` (resolved; never written to a
    file as given, see :func:`redact`) and ``experiment_id``.
    """

    kind: str
    root: str
    uri: str | None = None
    experiment_id: str | None = None

    def run_name(self, run_dir: str | Path) -> str:
        try:
            name = Path(run_dir).resolve().relative_to(Path(self.root).resolve()).as_posix()
        except ValueError:  # a run outside the root: its own folder name
            name = Path(run_dir).name
        return name if name != "." else Path(self.root).name

    def describe(self) -> dict[str, Any]:
        """What ``config.json`` records: the kind and, for MLflow, the store without secrets."""
        info: dict[str, Any] = {"kind": self.kind}
        if self.kind == "tensorboard":
            info["logdir"] = str(Path(self.root) / TENSORBOARD_DIR)
        else:
            info["uri"] = redact(self.uri or "")
        return info


def check_name(track: str | None) -> str | None:
    """``None`` (or ``"none"``) for no tracking, else a known tracker whose package imports."""
    if track is None or track == "none":
        return None
    if not isinstance(track, str) or track not in TRACKERS:
        raise ConfigError(f"unknown tracker {track!r} (available: {', '.join(TRACKERS)}, none)")
    if importlib.util.find_spec(track) is None:
        raise ConfigError(f"tracker {track!r} needs its package: pip install 'htaf[{track}]'")
    return track


def redact(uri: str) -> str:
    """The URI without a password or token in its user part (``https://user:***@host``)."""
    parts = urlsplit(uri)
    if parts.password is None and not (parts.username and "@" in parts.netloc):
        return uri
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}:***@" if parts.password is not None else "***@"
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, parts.query, ""))


# -- what is logged -------------------------------------------------------------------------------
def scalars(row: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every finite number in a (nested) row, keys joined by ``/``; booleans and text left out."""
    out: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(scalars(value, f"{name}/"))
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            out[name] = float(value)
    return out


def epoch_scalars(logs: Mapping[str, Any]) -> dict[str, float]:
    """One epoch's history row as scalars (its ``epoch`` is the step, not a value)."""
    return scalars({k: v for k, v in logs.items() if k != "epoch"})


def final_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``metrics.json`` as ``final/<name>``: apart from the last epoch's validation numbers."""
    return scalars(metrics, "final/")


def params(config: Mapping[str, Any]) -> dict[str, str]:
    """A run config as flat text parameters: ``model.widths`` -> ``"[256, 256, 128]"``."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            for sub, v in value.items():
                out[f"{key}.{sub}"] = json.dumps(v) if not isinstance(v, str) else v
        else:
            out[key] = json.dumps(value) if not isinstance(value, str) else value
    return out


# -- the per-run loggers (tracking_tensorboard.py, tracking_mlflow.py) ----------------------------
class RunTracker(Callback):
    """An engine callback that logs each epoch as it ends; :meth:`finish` logs the rest.

    Added after ``GradientNorms`` and ``ActivationStats``, so each epoch's row already holds
    the gradient norms and activation statistics when it is logged.
    """

    def __init__(self, tracking: Tracking, run_dir: str | Path, config: Mapping[str, Any]):
        self.tracking = tracking
        self.run_dir = Path(run_dir)
        self.name = tracking.run_name(run_dir)
        self.config = dict(config)
        self.activations: ActivationStats | None = None

    def on_fit_start(self, trainer: Any) -> None:
        self.activations = next(
            (cb for cb in trainer.callbacks if isinstance(cb, ActivationStats)), None
        )
        self.open(trainer.start_epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.log(epoch_scalars(logs), epoch)

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        if self.activations is not None and self.activations.samples:
            self.histograms(self.activations.samples, int(logs.get("epoch", 0)))

    # What each backend implements.
    def open(self, start_epoch: int) -> None: ...
    def log(self, values: Mapping[str, float], step: int) -> None: ...
    def histograms(self, samples: Mapping[str, Any], step: int) -> None: ...
    def finish(self, metrics: Mapping[str, Any], plots: Iterable[Path] = ()) -> None: ...
    def fail(self) -> None: ...
