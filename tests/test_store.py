"""htaf.store: the SQLite results store, including concurrent writers."""

from __future__ import annotations

import csv
import multiprocessing
import sqlite3

from htaf.store import ResultStore


def fake_record(i: int, estimator: str = "htaf", dataset: str = "breast_cancer") -> dict:
    return {
        "config": {"family": "dhn", "dataset": dataset, "estimator": estimator, "seed": i},
        "metrics": {"test_auroc_hard": 0.9 + i / 1000, "train_time_s": 1.5},
        "run_dir": f"/runs/{dataset}/{estimator}/seed{i}",
    }


def _writer(path: str, worker: int, n: int) -> None:
    store = ResultStore(path)
    for i in range(n):
        store.add_run(fake_record(worker * 1000 + i, estimator=f"est{worker}"), experiment_id="e")


def test_add_and_query(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    store.start_experiment("e1", command="htaf compare", config={"seeds": [0, 1]})
    store.add_run(fake_record(0), experiment_id="e1")
    store.add_run(fake_record(1, estimator="ste"), experiment_id="e1")
    store.add_run(fake_record(2, dataset="other"), experiment_id="e1")
    assert len(store.query()) == 3
    rows = store.query(dataset="breast_cancer", estimator="htaf")
    assert [r["seed"] for r in rows] == [0]
    assert rows[0]["metrics"]["test_auroc_hard"] == 0.9
    assert rows[0]["config"]["estimator"] == "htaf"
    assert store.experiments()[0]["config"] == {"seeds": [0, 1]}
    # The same run folder again replaces its row (a rerun), it does not duplicate it.
    store.add_run({**fake_record(0), "metrics": {"test_auroc_hard": 0.5}}, experiment_id="e1")
    assert [
        r["metrics"]["test_auroc_hard"]
        for r in store.query(estimator="htaf", dataset="breast_cancer")
    ] == [0.5]


def test_wal_mode_and_nan(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    store.add_run({**fake_record(0), "metrics": {"x": float("nan")}})
    assert store.query()[0]["metrics"] == {"x": None}
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_to_csv(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    for i in range(3):
        store.add_run(fake_record(i))
    path = store.to_csv(tmp_path / "out" / "runs.csv", store.query())
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 3
    assert rows[2]["seed"] == "2" and float(rows[2]["test_auroc_hard"]) == 0.902
    assert not list(path.parent.glob(".*tmp"))  # no temporary file left behind


def test_two_processes_write_concurrently(tmp_path):
    path = str(tmp_path / "results.sqlite")
    ResultStore(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 50)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = ResultStore(path)
    rows = store.query()
    assert len(rows) == 100
    assert {r["estimator"] for r in rows} == {"est0", "est1"}
    assert store.integrity_check() == "ok"
