"""``htaf train``: one model from a TOML config, with its metrics table.

    htaf train --config run.toml --set epochs=5 --set widths=[64,64] --out runs/bc-htaf
    htaf train --config run.toml --out runs/bc-htaf --resume      # after an interruption
    torchrun --nproc_per_node 2 --no-python htaf train --config run.toml --out runs/ddp

Bad input (unknown config key, dataset or estimator; a foreign checkpoint) exits with status 2
before anything is written. The command parses and prints; ``htaf.train_one`` does the work.
"""

from __future__ import annotations

import argparse
import math
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model from a TOML config and print its metrics",
        description="Train one model (RunConfig from a TOML file, overridable with --set) and "
        "print its train/val/test metrics with the exact step (hard) and the smooth forward.",
    )
    p.add_argument("--config", required=True, help="TOML file with RunConfig keys")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (TOML literal, e.g. lr=0.01, widths=[64,64]); repeatable",
    )
    p.add_argument(
        "--out", default=None, help="run folder (default: runs/<dataset>-<estimator>-seed<k>)"
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument(
        "--overwrite", action="store_true", help="replace a finished or partial run in OUT"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--track", default=None, metavar="TRACKER",
        help="log the run to tensorboard (OUT/tensorboard) or mlflow ($MLFLOW_TRACKING_URI, "
        "else OUT/../mlflow.db)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf.api import train_one
    from htaf.config import RunConfig
    from htaf.train.distributed import launch_rank

    config = RunConfig.from_toml(args.config, args.overrides)
    result = train_one(
        config, args.out, resume=args.resume, overwrite=args.overwrite,
        progress=not args.no_progress, track=args.track,
    )  # fmt: skip
    if launch_rank() == 0:  # under torchrun, one table, not one per rank
        print(format_metrics(result.metrics))
        for path in result.figures:  # the model's own figures, if it has any
            print(f"figure: {path}")
        print(f"run folder: {result.path}")
    return 0


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4f}"


#: Row order of the table: each task's metrics as htaf.train.metrics lists them, then the loss.
_ORDER = ("accuracy", "auroc", "logloss", "rmse", "mae", "r2", "loss")


def format_metrics(metrics: dict[str, Any]) -> str:
    """A table with one row per (split, metric) and hard / smooth columns."""
    rows = [("split", "metric", "hard (step)", "smooth")]
    for split in ("train", "val", "test"):
        present = {
            k[len(split) + 1 : -len("_hard")]
            for k in metrics
            if k.startswith(f"{split}_") and k.endswith("_hard")
        }
        names = [n for n in _ORDER if n in present] + sorted(present - set(_ORDER))
        for name in names:
            hard, smooth = (
                metrics.get(f"{split}_{name}_hard"),
                metrics.get(f"{split}_{name}_smooth"),
            )
            rows.append((split, name, _cell(hard), _cell(smooth)))
    act = [("near-binary ±0.05", "near_binary_05"), ("near-binary ±0.01", "near_binary_01")]
    act += [("entropy (bits)", "entropy"), ("saturation", "saturation")]
    for label, key in act:
        rows.append(("test", label, _cell(metrics.get(f"{key}_hard")), _cell(metrics.get(key))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    t = metrics.get("train_time_s")
    if t is not None:
        lines.append(f"train time: {t:.1f} s, epochs: {metrics.get('epochs_run')}")
    return "\n".join(lines)
