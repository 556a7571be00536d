"""MLflow tracking: one MLflow run per htaf run, in the htaf experiment's MLflow experiment.

The store is probed before any run starts (``mlflow_experiment``); epochs are logged
asynchronously so the store's round trip happens beside training; a resumed run continues
its MLflow run (its id is kept in ``mlflow_run.json``).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from htaf.config import ConfigError
from htaf.io import atomic_write_json
from htaf.train.tracker import MLFLOW_RUN_FILE, RunTracker, Tracking, final_scalars, params, redact

#: Seconds the reachability probe of an http(s) tracking server waits.
PROBE_TIMEOUT_S = 5.0


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:1000]


def _probe(uri: str) -> None:
    """An http(s) server must accept a connection within seconds (MLflow itself would retry
    for minutes before failing, with the runs already started)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return  # local stores: opening them is the probe
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        raise ConfigError(
            f"MLflow tracking URI {redact(uri)} cannot be reached: {err.strerror or err}"
        ) from None


_CLIENTS: dict[str, Any] = {}


def mlflow_experiment(uri: str, name: str, artifacts: Path | None) -> str:
    """The id of the MLflow experiment ``name`` at ``uri``, created if new: the probe that
    the store works, before any run starts."""
    _probe(uri)
    try:
        client = mlflow_client(uri)
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = str(artifacts) if artifacts is not None else None
        return str(client.create_experiment(name, artifact_location=location))
    except Exception as err:  # MLflow raises its own exceptions, SQLAlchemy's, OSError...
        raise ConfigError(
            f"MLflow tracking URI {redact(uri)} cannot be used: {type(err).__name__}: "
            f"{_first_line(err)}"
        ) from None


def mlflow_client(uri: str) -> Any:
    # One client per store and process: opening a SQLite store checks its schema (seconds).
    if uri not in _CLIENTS:
        from mlflow.tracking import MlflowClient

        _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
    return _CLIENTS[uri]


class MLflowTracker(RunTracker):
    """One MLflow run in the experiment's MLflow experiment; a resumed run continues it."""

    run_id: str | None = None  # opened by on_fit_start (or by finish)

    def __init__(self, tracking: Tracking, run_dir: str | Path, config: Mapping[str, Any]):
        super().__init__(tracking, run_dir, config)
        self._pending: list[Any] = []  # asynchronous log_batch operations not yet waited for

    def open(self, start_epoch: int) -> None:
        client = mlflow_client(self.tracking.uri or "")
        saved = self.run_dir / MLFLOW_RUN_FILE
        if start_epoch > 0 and saved.is_file():
            self.run_id = json.loads(saved.read_text())["run_id"]
            client.update_run(self.run_id, status="RUNNING")
            return
        tags = {
            f"htaf.{k}": str(self.config.get(k)) for k in ("family", "dataset", "estimator", "seed")
        }
        tags["htaf.run_dir"] = str(self.run_dir)
        run = client.create_run(self.tracking.experiment_id, run_name=self.name, tags=tags)
        self.run_id = run.info.run_id
        atomic_write_json(saved, {"run_id": self.run_id, "experiment_id": run.info.experiment_id})
        from mlflow.entities import Param

        values = [Param(_key(k), v[:6000]) for k, v in params(self.config).items()]
        for i in range(0, len(values), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(self.run_id, params=values[i : i + 100])

    def log(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_key(k), v, now, step) for k, v in values.items()]
        client = mlflow_client(self.tracking.uri or "")
        for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            # Asynchronous: the store's round trip happens beside training, not in it.
            op = client.log_batch(self.run_id, metrics=metrics[i : i + 1000], synchronous=False)
            if op is not None:
                self._pending.append(op)

    def finish(self, metrics: Mapping[str, Any], plots: Iterable[Path] = ()) -> None:
        if self.run_id is None:
            self.open(0)
        client = mlflow_client(self.tracking.uri or "")
        self.log(final_scalars(metrics), int(metrics.get("epochs_run") or 0))
        self._wait()
        for path in plots:
            client.log_artifact(self.run_id, str(path), artifact_path="plots")
        client.set_terminated(self.run_id, status="FINISHED")

    def fail(self) -> None:
        if self.run_id is not None:
            self._wait()
            mlflow_client(self.tracking.uri or "").set_terminated(self.run_id, status="FAILED")

    def _wait(self) -> None:
        for op in self._pending:
            op.wait()
        self._pending = []


def _key(name: str) -> str:
    # MLflow names take letters, digits and _ - . space : / only; estimator specs have ( , ).
    return re.sub(r"[^\w\-. :/]", "_", name)


def log_plots(tracking: Tracking, run_dir: str | Path, plots: Iterable[Path], step: int) -> None:
    """Plots drawn after a run finished, added to its MLflow run as artifacts."""
    run_id = json.loads((Path(run_dir) / MLFLOW_RUN_FILE).read_text())["run_id"]
    client = mlflow_client(tracking.uri or "")
    for path in plots:
        client.log_artifact(run_id, str(path), artifact_path="plots")


def log_summary_run(
    tracking: Tracking, values: Mapping[str, float], plots: list[Path], reports: list[Path]
) -> None:
    """The experiment's means, plots and reports in the MLflow run ``summary`` (updated when
    a resumed experiment logs again)."""
    from mlflow.entities import Metric

    client = mlflow_client(tracking.uri or "")
    found = client.search_runs(
        [tracking.experiment_id], filter_string="tags.`htaf.kind` = 'summary'", max_results=1
    )
    if found:  # a resumed experiment updates its summary run
        run_id = found[0].info.run_id
    else:
        tags = {"htaf.kind": "summary"}
        run_id = client.create_run(
            tracking.experiment_id, run_name="summary", tags=tags
        ).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(_key(k), v, now, 0) for k, v in values.items()]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    for path in plots:
        client.log_artifact(run_id, str(path), artifact_path="plots")
    for path in reports:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status="FINISHED")
