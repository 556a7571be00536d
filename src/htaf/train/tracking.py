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

import importlib.util
import itertools
import json
import math
import os
import re
import socket
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from htaf.config import ConfigError
from htaf.io import atomic_write_json
from htaf.train.callbacks import ActivationStats, Callback

TRACKERS = ("tensorboard", "mlflow")
#: Sub-folder of the experiment (or run) folder that holds TensorBoard's event files.
TENSORBOARD_DIR = "tensorboard"
#: The MLflow store when ``MLFLOW_TRACKING_URI`` is not set: a SQLite file in the output folder.
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
#: Where a run keeps the id of its MLflow run, so that a resumed run continues it.
MLFLOW_RUN_FILE = "mlflow_run.json"
#: Bins of the activation histograms TensorBoard gets at the end of a run.
HISTOGRAM_BINS = 50
#: Seconds the reachability probe of an http(s) tracking server waits.
PROBE_TIMEOUT_S = 5.0


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
        kind, root, uri=uri, experiment_id=_mlflow_experiment(uri, experiment, artifacts)
    )


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


# -- the per-run loggers --------------------------------------------------------------------------
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


# -- TensorBoard ----------------------------------------------------------------------------------
class EventFile:
    """One TensorBoard event file, written in the calling thread and flushed at every event.

    Not ``SummaryWriter``: its background thread computes the records' (pure-Python) CRCs
    while holding the GIL, so the training loop waits for it, on a busy machine for up to the
    interpreter's 5 ms switch interval per event. An epoch's scalars are one event of ~3 kB,
    cheaper written here. ``purge_step``: TensorBoard hides the earlier files' events from
    that step on (a resumed run logs them again).
    """

    _count = itertools.count()

    def __init__(self, logdir: str | Path, purge_step: int | None = None):
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event = Event
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self._records = RecordWriter(open(logdir / f"{name}.{next(self._count)}", "wb"))  # noqa: SIM115
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:
            start = SessionLog(status=SessionLog.START)
            self._write(Event(wall_time=time.time(), step=purge_step, session_log=start))

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())
        self._records.flush()

    def add(self, summary: Any, step: int) -> None:
        self._write(self._event(wall_time=time.time(), step=step, summary=summary))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.add(Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()]),
                 step)  # fmt: skip

    def text(self, tag: str, text: str, step: int) -> None:
        from torch.utils.tensorboard.summary import text as text_summary

        self.add(text_summary(tag, text), step)

    def histogram(self, tag: str, values: Any, step: int) -> None:
        import numpy as np
        from torch.utils.tensorboard.summary import histogram_raw

        v = np.asarray(values, dtype=np.float64).ravel()
        if len(v):
            counts, edges = np.histogram(v, bins=HISTOGRAM_BINS)
            self.add(histogram_raw(
                tag, min=float(v.min()), max=float(v.max()), num=len(v), sum=float(v.sum()),
                sum_squares=float(np.square(v).sum()), bucket_limits=edges[1:].tolist(),
                bucket_counts=counts.tolist(),
            ), step)  # fmt: skip

    def images(self, paths: Iterable[Path], step: int) -> None:
        """PNG files as they are (no decoding): ``plots/<stem>``."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        for path in paths:
            data = Path(path).read_bytes()
            if Path(path).suffix != ".png" or data[12:16] != b"IHDR":
                continue
            width, height = struct.unpack(">II", data[16:24])
            channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(data[25], 4)  # PNG colour type
            image = Summary.Image(height=height, width=width, colorspace=channels,
                                  encoded_image_string=data)  # fmt: skip
            self.add(Summary(value=[Summary.Value(tag=f"plots/{Path(path).stem}", image=image)]),
                     step)  # fmt: skip

    def close(self) -> None:
        self._records.close()


def _markdown_table(rows: Mapping[str, str]) -> str:
    return "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())


class TensorBoardTracker(RunTracker):
    """Event files in ``ROOT/tensorboard/<run name>``."""

    events: EventFile | None = None  # opened by on_fit_start (or by finish)

    def open(self, start_epoch: int) -> None:
        logdir = Path(self.tracking.root) / TENSORBOARD_DIR / self.name
        # Hide steps logged after the checkpoint by the run this one resumes (they are logged
        # again) or by an earlier run that this one replaces.
        self.events = EventFile(logdir, purge_step=start_epoch + 1)
        if start_epoch == 0:
            self.events.text("config", _markdown_table(params(self.config)), 0)

    def log(self, values: Mapping[str, float], step: int) -> None:
        self.events.scalars(values, step)

    def histograms(self, samples: Mapping[str, Any], step: int) -> None:
        for layer, values in samples.items():
            self.events.histogram(f"activations_smooth/{layer}", values, step)

    def finish(self, metrics: Mapping[str, Any], plots: Iterable[Path] = ()) -> None:
        if self.events is None:
            self.open(0)
        step = int(metrics.get("epochs_run") or 0)
        self.events.scalars(final_scalars(metrics), step)
        self.events.images(plots, step)
        self.events.close()

    def fail(self) -> None:
        if self.events is not None:
            self.events.close()


# -- MLflow ---------------------------------------------------------------------------------------
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


def _mlflow_experiment(uri: str, name: str, artifacts: Path | None) -> str:
    """The id of the MLflow experiment ``name`` at ``uri``, created if new: the probe that
    the store works, before any run starts."""
    _probe(uri)
    try:
        client = _mlflow_client(uri)
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


def _mlflow_client(uri: str) -> Any:
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
        client = _mlflow_client(self.tracking.uri or "")
        saved = self.run_dir / MLFLOW_RUN_FILE
        if start_epoch > 0 and saved.is_file():
            self.run_id = json.loads(saved.read_text())["run_id"]
            client.update_run(self.run_id, status="RUNNING")
            return
        tags = {
            f"htaf.{k}": str(self.config.get(k)) for k in ("task", "dataset", "estimator", "seed")
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
        client = _mlflow_client(self.tracking.uri or "")
        for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            # Asynchronous: the store's round trip happens beside training, not in it.
            op = client.log_batch(self.run_id, metrics=metrics[i : i + 1000], synchronous=False)
            if op is not None:
                self._pending.append(op)

    def finish(self, metrics: Mapping[str, Any], plots: Iterable[Path] = ()) -> None:
        if self.run_id is None:
            self.open(0)
        client = _mlflow_client(self.tracking.uri or "")
        self.log(final_scalars(metrics), int(metrics.get("epochs_run") or 0))
        self._wait()
        for path in plots:
            client.log_artifact(self.run_id, str(path), artifact_path="plots")
        client.set_terminated(self.run_id, status="FINISHED")

    def fail(self) -> None:
        if self.run_id is not None:
            self._wait()
            _mlflow_client(self.tracking.uri or "").set_terminated(self.run_id, status="FAILED")

    def _wait(self) -> None:
        for op in self._pending:
            op.wait()
        self._pending = []


def _key(name: str) -> str:
    # MLflow names take letters, digits and _ - . space : / only; estimator specs have ( , ).
    return re.sub(r"[^\w\-. :/]", "_", name)


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
    if tracking.kind == "tensorboard":
        events = EventFile(Path(tracking.root) / TENSORBOARD_DIR / tracking.run_name(run_dir))
        events.images(plots, step)
        events.close()
        return
    run_id = json.loads((Path(run_dir) / MLFLOW_RUN_FILE).read_text())["run_id"]
    client = _mlflow_client(tracking.uri or "")
    for path in plots:
        client.log_artifact(run_id, str(path), artifact_path="plots")


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
    plots, reports = list(plots), list(reports)
    if tracking.kind == "tensorboard":
        events = EventFile(Path(tracking.root) / TENSORBOARD_DIR / "summary")
        events.scalars(values, 0)
        events.images(plots, 0)
        for path in reports:
            if Path(path).suffix == ".md":
                events.text("report", Path(path).read_text(), 0)
        events.close()
        return
    from mlflow.entities import Metric

    client = _mlflow_client(tracking.uri or "")
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
