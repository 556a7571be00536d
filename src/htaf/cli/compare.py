"""``htaf compare``: one architecture, optimizer and schedule; several estimators; several seeds.

    htaf compare                                   # HTAF vs STE/surrogates vs ReLU, 5 seeds
    htaf compare --dataset csv:my.csv --target y --estimators "htaf(2,11),ste" --seeds 3
    htaf compare --task dhn --dataset digits_images --model widths=[128,64]
    htaf compare --task icbm --dataset cub200 --backbone hf:models/vit-base

Each family (``--task``) brings its own defaults: dataset, estimators, epochs, learning rate and
batch size; flags override them, and ``--model KEY=VALUE`` sets the family's model options.

Writes ``OUT/<experiment-id>/`` (config.json, one folder per run, summary.json, plots/,
report.md, report.html) and adds every run to ``OUT/results.sqlite``. Every input is checked
before anything is written.
"""

from __future__ import annotations

import argparse
import shlex
from contextlib import nullcontext
from pathlib import Path
from typing import Any

DEFAULT_OUT = "htaf-runs"
#: Settings a family's ``compare`` defaults may fill when the flag is not given.
FAMILY_DEFAULTS = ("dataset", "epochs", "lr", "batch_size", "optimizer")


def split_specs(text: str) -> list[str]:
    """Split on commas outside parentheses: ``"htaf(2,11),ste"`` -> ``["htaf(2,11)", "ste"]``."""
    items, depth, current = [], 0, []
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError(f"unbalanced parentheses in {text!r}")
        if ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if depth:
        raise ValueError(f"unbalanced parentheses in {text!r}")
    items.append("".join(current).strip())
    items = [x for x in items if x]
    if not items:
        raise ValueError(f"no estimator names in {text!r}")
    if len(set(items)) != len(items):
        raise ValueError(f"estimator listed twice in {text!r}")
    return items


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
    p.add_argument("--task", default="dhn", help="model family (default: dhn; see htaf families)")
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
    p.add_argument("--jobs", type=int, default=1, help="parallel runs (default: 1)")
    p.add_argument("--backend", default="local", choices=["local", "ray"])
    p.add_argument("--address", default=None, help="Ray cluster address (default: start local)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--resume",
        metavar="EXP_DIR",
        default=None,
        help="finish an interrupted experiment: every run continues from its last checkpoint "
        "(the grid and settings come from EXP_DIR/config.json)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf.experiment import Grid, check_backend, ray_session, validate

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    check_backend(args.backend, args.jobs)
    if args.resume:
        grid, command, exp_dir = resumed_grid(Path(args.resume).resolve())
        out = exp_dir.parent
    else:
        base, estimators = base_config(args)
        grid = Grid(base, [base.dataset], estimators, list(range(args.seeds)))
        command, exp_dir, out = command_line(args), None, Path(args.out).resolve()
    configs = grid.configs()
    validate(configs)  # everything below writes; nothing may be written for bad input
    # Ray is reached before anything is written: a bad --address is bad input, not a half run.
    session = ray_session(args.address, args.jobs) if args.backend == "ray" else nullcontext()
    with session:
        # A run that fails from here on raises GridRunError (a RuntimeError): exit status 1.
        exp_dir, records, summary = run_experiment(
            configs, grid, out, command=command, prefix="compare",
            backend=args.backend, jobs=args.jobs, address=args.address,
            progress=not args.no_progress, exp_dir=exp_dir,
        )  # fmt: skip
    print_table(summary, records)
    print(f"report: {exp_dir / 'report.html'}")
    print(f"        {exp_dir / 'report.md'}")
    return 0


def base_config(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The grid's base config and estimators: the family's defaults, then the flags."""
    from htaf.config import RunConfig
    from htaf.families import get_family

    family = get_family(args.task)
    settings = {k: v for k, v in family.compare.items() if k in FAMILY_DEFAULTS}
    settings.update(
        {k: getattr(args, k) for k in FAMILY_DEFAULTS if getattr(args, k, None) is not None}
    )
    model = parse_model_options(args.model)
    if args.widths is not None:
        model["widths"] = parse_widths(args.widths)
    if args.backbone is not None:
        model["backbone"] = args.backbone
    estimators = split_specs(args.estimators or ",".join(family.estimators))
    base = RunConfig(
        task=args.task, estimator=estimators[0], model=model, data_dir=args.data_dir,
        target=args.target, impute=args.impute,
        data_options={"drop": args.drop.split(",")} if args.drop else {}, **settings,
    )  # fmt: skip
    return base, estimators


def resumed_grid(exp_dir: Path) -> tuple[Any, str, Path]:
    """The grid, command and folder of an earlier experiment, from its ``config.json``."""
    import json

    from htaf.config import ConfigError, RunConfig
    from htaf.experiment import Grid

    spec_path = exp_dir / "config.json"
    if not spec_path.is_file():
        raise FileNotFoundError(f"--resume {exp_dir}: no experiment config.json there")
    spec = json.loads(spec_path.read_text())
    keys = ("base", "datasets", "estimators", "seeds", "command")
    missing = [k for k in keys if k not in spec] if isinstance(spec, dict) else list(keys)
    if missing:
        raise ConfigError(f"--resume {spec_path} is not an experiment config: no {missing[0]!r}")
    base = RunConfig.from_dict(spec["base"])
    grid = Grid(base, spec["datasets"], spec["estimators"], spec["seeds"])
    return grid, spec["command"], exp_dir


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out: rerunning it repeats the experiment."""
    parts = ["htaf", "compare"]
    for key, value in vars(args).items():
        if key in ("func", "command", "resume") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):  # a repeatable flag
            parts += [x for item in value for x in (flag, str(item))]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def run_experiment(
    configs: list, grid: Any, out: Path, *, command: str, prefix: str, backend: str, jobs: int,
    address: str | None, progress: bool, exp_dir: Path | None = None,
) -> tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Create the experiment folder and store rows, run the grid, write summary and report.

    With ``exp_dir`` (``--resume``) the folder exists: every run resumes from its checkpoint.
    """
    from htaf.experiment import new_experiment_id, run_grid, summarize
    from htaf.io import atomic_write_json
    from htaf.report import environment, write_report
    from htaf.store import STORE_NAME, ResultStore

    resume = exp_dir is not None
    exp_id = exp_dir.name if resume else new_experiment_id(prefix)
    exp_dir = out / exp_id
    spec = {
        "experiment_id": exp_id,
        "command": command,
        "base": grid.base.to_dict(),
        "datasets": list(grid.datasets),
        "estimators": list(grid.estimators),
        "seeds": list(grid.seeds),
        "backend": backend,
        "jobs": jobs,
        "environment": environment(),
    }
    if not resume:
        atomic_write_json(exp_dir / "config.json", spec)
    store = ResultStore(out / STORE_NAME)
    store.start_experiment(exp_id, command=command, config=spec)
    records = run_grid(
        configs, exp_dir, backend=backend, jobs=jobs, address=address, progress=progress,
        resume=resume, on_result=lambda rec: store.add_run(rec, experiment_id=exp_id),
    )  # fmt: skip
    summary = summarize(records)
    atomic_write_json(exp_dir / "summary.json", summary)
    write_report(exp_dir)
    return exp_dir, records, summary


def print_table(summary: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
    """The report's tables, aligned for a terminal."""
    from htaf.report import table_rows

    for (task, dataset), (header, rows) in table_rows(summary, records).items():
        print(f"\n{dataset} ({task}), mean ± std over seeds; step = exact binary inference")
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
    print()
