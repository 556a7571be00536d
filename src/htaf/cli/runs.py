"""``htaf runs``: list past runs from the results store; ``--csv FILE`` exports them."""

from __future__ import annotations

import argparse
from pathlib import Path

from htaf.cli import add_family_flag


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list past runs from OUT/results.sqlite (or export CSV)")
    p.add_argument("--out", default="htaf-runs", help="results folder (default: ./htaf-runs)")
    p.add_argument("--dataset", default=None, help="only this dataset")
    p.add_argument("--estimator", default=None, help="only this estimator spec")
    add_family_flag(p, default=None, help="only this model family")
    p.add_argument("--experiment", default=None, help="only this experiment id")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the runs as CSV")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf.analysis.plots import primary_metric
    from htaf.store import STORE_NAME, ResultStore

    store = ResultStore.open_existing(Path(args.out) / STORE_NAME)
    rows = store.query(
        dataset=args.dataset, estimator=args.estimator, family=args.family,
        experiment_id=args.experiment,
    )  # fmt: skip
    if args.csv:
        path = store.to_csv(args.csv, rows)
        print(f"wrote {len(rows)} runs to {path}")
        return 0
    if not rows:
        print("no runs match")
        return 0
    header = ["id", "experiment", "dataset", "estimator", "seed", "status", "test (step)", "time s"]
    table = [header]
    for r in rows:
        m = r["metrics"]
        metric = primary_metric(list(m), family=r.get("family"))
        score = m.get(f"test_{metric}_hard") if metric else None
        t = m.get("train_time_s")
        table.append([
            str(r["id"]), str(r["experiment_id"]), str(r["dataset"]), str(r["estimator"]),
            str(r["seed"]), str(r["status"]),
            f"{metric} {score:.4f}" if isinstance(score, float) else "–",
            f"{t:.1f}" if isinstance(t, float) else "–",
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0
