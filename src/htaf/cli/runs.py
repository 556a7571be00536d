"""``htaf runs``: list past runs from the results store; ``--csv FILE`` exports them.

Every filter goes to :func:`htaf.runs`: the four named flags, and ``--where KEY=VALUE`` on any
column of the runs table (``seed=0``, ``status=done``, a metric...). An unknown column or a
value that no run holds exits 2 and names what the store has.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from htaf.cli import add_family_flag


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list past runs from OUT/results.sqlite (or export CSV)")
    p.add_argument("--out", default="htaf-runs", help="results folder (default: ./htaf-runs)")
    p.add_argument("--dataset", default=None, help="only this dataset")
    p.add_argument("--estimator", default=None, help="only this estimator spec")
    add_family_flag(p, default=None, help="only this model family")
    p.add_argument("--experiment", default=None, help="only this experiment id")
    p.add_argument(
        "--where", action="append", default=[], metavar="KEY=VALUE",
        help="only runs whose column KEY holds VALUE (a TOML literal, else a string), e.g. "
        "--where seed=0 --where status=done; repeatable",
    )  # fmt: skip
    p.add_argument("--csv", default=None, metavar="FILE", help="write the runs as CSV")
    p.set_defaults(func=run)


def filters(args: argparse.Namespace) -> dict[str, Any]:
    """The filters of :func:`htaf.runs` that the flags ask for."""
    from htaf.config import ConfigError, apply_overrides

    named = {"dataset": args.dataset, "estimator": args.estimator, "family": args.family,
             "experiment_id": args.experiment}  # fmt: skip
    try:
        where = apply_overrides({}, args.where)
    except ConfigError as err:
        raise ValueError(f"--where: {err}") from None
    nested = [k for k, v in where.items() if isinstance(v, dict)]
    if nested:
        raise ValueError(f"--where: {nested[0]!r} is not a column (no dotted keys)")
    return {**{k: v for k, v in named.items() if v is not None}, **where}


def run(args: argparse.Namespace) -> int:
    from htaf.api import runs, write_runs_csv

    frame = runs(Path(args.out), **filters(args))
    if args.csv:
        path = write_runs_csv(frame, args.csv)
        print(f"wrote {len(frame)} runs to {path}")
        return 0
    if frame.empty:
        print("no runs match")
        return 0
    print_table(frame)
    return 0


def print_table(frame: Any) -> None:
    from htaf.analysis.plots import primary_metric
    from htaf.store import RUN_COLUMNS

    header = ["id", "experiment", "dataset", "estimator", "seed", "status", "test (step)", "time s"]
    table = [header]
    for r in frame.to_dict("records"):
        metrics = [k for k, v in r.items() if k not in RUN_COLUMNS and v == v and v is not None]
        metric = primary_metric(metrics, family=r.get("family"))
        score = r.get(f"test_{metric}_hard") if metric else None
        t = r.get("train_time_s")
        table.append([
            str(r["id"]), str(r["experiment_id"]), str(r["dataset"]), str(r["estimator"]),
            str(r["seed"]), str(r["status"]),
            f"{metric} {score:.4f}" if isinstance(score, float) and score == score else "–",
            f"{t:.1f}" if isinstance(t, float) and t == t else "–",
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
