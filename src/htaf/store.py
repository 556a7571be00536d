"""The results store: one embedded SQLite file, ``OUT/results.sqlite``, shared by every command.

    store = ResultStore("htaf-runs/results.sqlite")
    store.start_experiment("compare-20260101-120000", command="htaf compare", config={...})
    store.add_run(record, experiment_id="compare-20260101-120000")
    rows = store.query(dataset="breast_cancer", estimator="htaf")
    store.to_csv("runs.csv", rows)

Each run row keeps its model family in the SQLite column ``task`` (its name before it became
``family``, kept so that older stores and older versions of htaf read the same file); rows
come back with it as ``family``, and configs stored with ``task`` come back with ``family``.

Several processes may write at once (a grid on one machine, two grids sharing an ``--out``):
the file runs in WAL mode with a busy timeout, every write is one transaction, and a write
that still meets "database is locked" is retried with backoff.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from htaf.config import canonical_keys, family_of
from htaf.io import atomic_write_text, json_safe

T = TypeVar("T")

STORE_NAME = "results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    command TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id TEXT REFERENCES experiments(id),
    task TEXT,  -- the model family (RunConfig.family; the column keeps its first name)
    dataset TEXT,
    estimator TEXT,
    seed INTEGER,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    status TEXT NOT NULL,
    run_dir TEXT UNIQUE,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (dataset, estimator, task);
"""

#: The columns of a run row, in the order ``query`` and ``to_csv`` give them.
RUN_COLUMNS = (
    "id",
    "experiment_id",
    "family",
    "dataset",
    "estimator",
    "seed",
    "status",
    "run_dir",
    "created",
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json(value: Any) -> str:
    # NaN/inf are not JSON; json_safe stores them as null so every reader can parse the row.
    return json.dumps(json_safe(value), sort_keys=True, default=str)


class ResultStore:
    """An SQLite results store at ``path`` (created with its tables on first use)."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0, retries: int = 20):
        self.path = Path(path)
        self.timeout = timeout
        self.retries = retries
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as conn:
                # journal_mode is a property of the file: set once, later connections see it.
                self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
                self._retry(lambda: conn.executescript(_SCHEMA))
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError):  # locked, read-only, ...: not the file
                raise
            raise ValueError(f"{self.path} is not a results store: {err}") from None

    @classmethod
    def open_existing(cls, path: str | Path) -> ResultStore:
        """Open a store that must already exist (readers must not create empty stores)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no results store at {path}; run `htaf compare` first")
        return cls(path)

    # -- connections ----------------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A short-lived connection per operation: safe across fork/spawn and threads.
        conn = sqlite3.connect(self.path, timeout=self.timeout)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    def _retry(self, op: Callable[[], T]) -> T:
        """Run ``op``; on "database is locked/busy" back off and try again."""
        for attempt in range(self.retries):
            try:
                return op()
            except sqlite3.OperationalError as err:
                text = str(err).lower()
                if ("locked" not in text and "busy" not in text) or attempt == self.retries - 1:
                    raise
                time.sleep(min(1.0, 0.01 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        def op() -> int:
            with self._connect() as conn, conn:  # `with conn`: one transaction, commit or roll back
                return int(conn.execute(sql, params).lastrowid or 0)

        return self._retry(op)

    # -- writes ---------------------------------------------------------------------------------
    def start_experiment(
        self, experiment_id: str, *, command: str, config: dict[str, Any] | None = None
    ) -> str:
        """Record an experiment (id, command line, its configuration); returns the id."""
        self._write(
            "INSERT OR REPLACE INTO experiments (id, created, command, config) VALUES (?, ?, ?, ?)",
            (experiment_id, _now(), command, _json(config or {})),
        )
        return experiment_id

    def drop_experiment(self, experiment_id: str) -> None:
        """Forget an experiment and its runs (a grid that failed before any run finished)."""
        self._write("DELETE FROM runs WHERE experiment_id = ?", (experiment_id,))
        self._write("DELETE FROM experiments WHERE id = ?", (experiment_id,))

    def add_run(
        self, record: dict[str, Any], *, experiment_id: str | None = None, status: str = "done"
    ) -> int:
        """Add one run record (``run_one``'s result); a run folder seen before is replaced."""
        config = record.get("config", {})
        values = (
            experiment_id,
            family_of(config),
            config.get("dataset"),
            config.get("estimator"),
            config.get("seed"),
            _json(config),
            _json(record.get("metrics", {})),
            status,
            str(record["run_dir"]) if record.get("run_dir") else None,
            _now(),
        )
        return self._write(
            "INSERT INTO runs (experiment_id, task, dataset, estimator, seed, config, metrics,"
            " status, run_dir, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(run_dir) DO UPDATE SET experiment_id=excluded.experiment_id,"
            " task=excluded.task, dataset=excluded.dataset, estimator=excluded.estimator,"
            " seed=excluded.seed, config=excluded.config, metrics=excluded.metrics,"
            " status=excluded.status, created=excluded.created",
            values,
        )

    # -- reads ----------------------------------------------------------------------------------
    def query(
        self,
        dataset: str | None = None,
        estimator: str | None = None,
        family: str | None = None,
        experiment_id: str | None = None,
        *,
        task: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs matching every given filter, oldest first; config and metrics parsed.
        ``task`` is the former name of ``family``."""
        if task is not None:
            if family is not None and family != task:
                raise ValueError(f"family={family!r} and task={task!r} (its former name) differ")
            family = task
        filters = {  # SQL column: value
            "dataset": dataset,
            "estimator": estimator,
            "task": family,  # the family's column keeps its first name
            "experiment_id": experiment_id,
        }
        where = [f"{k} = ?" for k, v in filters.items() if v is not None]
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        params = tuple(v for v in filters.values() if v is not None)

        def op() -> list[sqlite3.Row]:
            with self._connect() as conn:
                return conn.execute(sql + " ORDER BY id", params).fetchall()

        rows = []
        for row in self._retry(op):
            item = {k: row["task" if k == "family" else k] for k in RUN_COLUMNS}
            item["config"] = canonical_keys(json.loads(row["config"]))
            item["metrics"] = json.loads(row["metrics"])
            rows.append(item)
        return rows

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment, oldest first."""

        def op() -> list[sqlite3.Row]:
            with self._connect() as conn:
                return conn.execute("SELECT * FROM experiments ORDER BY created, id").fetchall()

        return [{**dict(r), "config": json.loads(r["config"])} for r in self._retry(op)]

    def integrity_check(self) -> str:
        """SQLite's own ``PRAGMA integrity_check`` answer ("ok" when the file is sound)."""
        with self._connect() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

    @staticmethod
    def to_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
        """Write ``query`` rows as CSV (one column per metric), atomically."""
        metric_names = sorted({k for r in rows for k in r.get("metrics", {})})
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*RUN_COLUMNS, *metric_names])
        for r in rows:
            metrics = r.get("metrics", {})
            writer.writerow(
                [r.get(k) for k in RUN_COLUMNS] + [metrics.get(m) for m in metric_names]
            )
        return atomic_write_text(path, buf.getvalue())
