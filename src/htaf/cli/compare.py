"""``htaf compare``: one architecture, optimizer and schedule; several estimators; several seeds.

    htaf compare                                   # HTAF vs STE/surrogates vs ReLU, 5 seeds
    htaf compare --dataset csv:my.csv --target y --estimators "htaf(2,11),ste" --seeds 3
    htaf compare --family dhn --dataset digits_images --model widths=[128,64]
    htaf compare --family icbm --dataset cub200 --backbone hf:models/vit-base

Each family (``--family``; ``--task`` is its former name) brings its own defaults: dataset,
estimators, epochs, learning rate and batch size; flags override them, and ``--model
KEY=VALUE`` sets the family's model options.
The command parses and prints; ``htaf.compare`` (``htaf.api``) does the work, with the same
defaults.

Writes ``OUT/<experiment-id>/`` (config.json, one folder per run, summary.json, plots/,
report.md, report.html) and adds every run to ``OUT/results.sqlite``. Every input is checked
before anything is written.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from htaf.api import DEFAULT_FAMILY, DEFAULT_OUT
from htaf.cli import add_family_flag


def parse_model_options(items: list[str]) -> dict[str, Any]:
    """``--model KEY=VALUE`` items as a table (values are TOML literals, else strings)."""
    from htaf.config import ConfigError, apply_overrides

    try:
        return apply_overrides({}, items)
    except ConfigError as err:
        raise ValueError(f"--model: {err}") from None


def parse_widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise ValueError(f"--widths must be comma-separated integers, got {text!r}") from None
    if not widths or min(widths) <= 0:
        raise ValueError(f"--widths must be positive integers, got {text!r}")
    return widths


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="train every estimator on one dataset over several seeds; table, plots, report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_family_flag(
        p, default=DEFAULT_FAMILY, help="model family (default: dhn; see htaf families)"
    )
    p.add_argument("--dataset", default=None, help="dataset name or csv:PATH (family default)")
    p.add_argument(
        "--estimators", default=None, help="comma-separated estimator specs (family default)"
    )
    p.add_argument("--seeds", type=int, default=5, help="number of seeds, 0..N-1 (default: 5)")
    p.add_argument("--epochs", type=int, default=None, help="(family default)")
    p.add_argument("--lr", type=float, default=None, help="(family default)")
    p.add_argument("--batch-size", type=int, default=None, help="(family default)")
    p.add_argument(
        "--model", dest="model", action="append", default=[], metavar="KEY=VALUE",
        help="a model option of the family (TOML literal, e.g. widths=[64,64]); repeatable",
    )  # fmt: skip
    p.add_argument("--widths", default=None, help="shorthand for --model widths=[...]: 256,256,128")
    p.add_argument(
        "--backbone", default=None, help="shorthand for --model backbone=NAME (icbm: hf:FOLDER...)"
    )
    p.add_argument("--out", default=DEFAULT_OUT, help="results folder (default: ./htaf-runs)")
    p.add_argument("--data-dir", default=None, help="where dataset files are looked for")
    p.add_argument("--target", default=None, help="target column of a csv: dataset")
    p.add_argument("--impute", default=None, choices=["mean", "drop"], help="missing cells")
    p.add_argument(
        "--drop", default=None, metavar="COLS", help="csv: comma-separated ID columns to ignore"
    )
    p.add_argument(
        "--data-option", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
        help="a dataset option (TOML literal), e.g. --data-option difficulty=0 (shapes); "
        "repeatable (see htaf datasets)",
    )  # fmt: skip
    p.add_argument(
        "--jobs", type=int, default=None, help="parallel runs (default: the family's; 1 for most)"
    )
    p.add_argument("--backend", default="local", choices=["local", "ray"])
    p.add_argument("--address", default=None, help="Ray cluster address (default: start local)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--track", default=None, metavar="TRACKER",
        help="log every run to tensorboard (OUT/<experiment>/tensorboard) or mlflow "
        "($MLFLOW_TRACKING_URI, else OUT/mlflow.db); with --resume: as the experiment did",
    )  # fmt: skip
    p.add_argument(
        "--resume",
        metavar="EXP_DIR",
        default=None,
        help="finish an interrupted experiment: every run continues from its last checkpoint "
        "(the grid and settings come from EXP_DIR/config.json)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf import api

    common = {"backend": args.backend, "jobs": args.jobs, "address": args.address,
              "progress": not args.no_progress, "track": args.track}  # fmt: skip
    if args.resume:
        exp = api.load_experiment(args.resume).resume(**{**common, "jobs": args.jobs or 1})
    else:
        model = parse_model_options(args.model)
        if args.widths is not None:
            model["widths"] = parse_widths(args.widths)
        if args.backbone is not None:
            model["backbone"] = args.backbone
        exp = api.compare(
            family=args.family, dataset=args.dataset, estimators=args.estimators, seeds=args.seeds,
            out=args.out, model=model, command=command_line(args), epochs=args.epochs,
            lr=args.lr, batch_size=args.batch_size, data_dir=args.data_dir, target=args.target,
            impute=args.impute, data_options=data_options(args),
            **{**common, "jobs": api.family_jobs(args.family) if args.jobs is None else args.jobs},
        )  # fmt: skip
    print_table(exp.summary_rows, exp.records)
    print(f"report: {exp.report['html']}")
    print(f"        {exp.report['markdown']}")
    return 0


def data_options(args: argparse.Namespace) -> dict | None:
    """``--data-option KEY=VALUE`` and ``--drop COLS`` as one table; ``None`` if neither."""
    from htaf.config import apply_overrides

    options = apply_overrides({}, args.data_options)
    if args.drop:
        options["drop"] = args.drop.split(",")
    return options or None


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out: rerunning it repeats the experiment."""
    parts = ["htaf", "compare"]
    for key, value in vars(args).items():
        skipped = key in ("func", "command", "resume") or key.startswith("_")  # "_": not a flag
        if skipped or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):  # a repeatable flag
            parts += [x for item in value for x in (flag, str(item))]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def print_table(summary: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
    """The report's tables, aligned for a terminal, and its warnings (solves short of their
    tolerance)."""
    from htaf.report import solver_warnings, table_rows

    for (family, dataset), (header, rows) in table_rows(summary, records).items():
        print(f"\n{dataset} ({family}), mean ± std over seeds; step = exact binary inference")
        cells = [header, *rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        for i, r in enumerate(cells):
            print(
                "  ".join(
                    c.ljust(w) if j == 0 else c.rjust(w)
                    for j, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
            if i == 0:
                print("  ".join("-" * w for w in widths))
    for line in solver_warnings(records):
        print(line)
    print()
