"""``htaf diagnose``: where each binary activation's gradient lives, for a run or a config.

    htaf diagnose runs/bc-htaf                      # the run's model at initialisation
    htaf diagnose --config run.toml --set estimator=htaf(2,11) --reference atan
    htaf diagnose runs/bc-htaf --trained --out diag  # the trained weights

Prints the per-layer table, a verdict and a suggested setting, and writes ``diagnose.json``
and ``diagnose.png``/``.svg`` to OUT (default: RUN_DIR/diagnose, or ./diagnose). The command
parses and prints; ``htaf.diagnosis.diagnose_run`` does the work.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="gradient flow through every estimator of a run's model, beside a reference",
        description="For every estimator of the model a run folder or config builds: where its "
        "inputs sit relative to the threshold, the fraction in its live region, and the "
        "gradient norm reaching it at initialisation, beside a reference surrogate.",
    )
    p.add_argument("run_dir", nargs="?", help="a run folder (with config.json)")
    p.add_argument("--config", help="a TOML config instead of a run folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (as in htaf train); repeatable")  # fmt: skip
    p.add_argument("--reference", default="atan", help="surrogate to compare with (atan)")
    p.add_argument("--batch-size", type=int, default=256, help="training rows diagnosed")
    p.add_argument("--trained", action="store_true", help="load the run's model.safetensors")
    p.add_argument("--out", default=None, help="folder for diagnose.json and the plots")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf.diagnosis import diagnose_run
    from htaf.io import atomic_write_json

    if bool(args.run_dir) == bool(args.config):
        raise ValueError("give a run folder or --config FILE (one of them)")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    source = args.run_dir or args.config
    report = diagnose_run(source, overrides=args.overrides, reference=args.reference,
                          batch_size=args.batch_size, trained=args.trained)  # fmt: skip
    out = Path(args.out or (Path(args.run_dir) / "diagnose" if args.run_dir else "diagnose"))
    atomic_write_json(out / "diagnose.json", report.to_dict())
    plots = report.plot(out)
    print(report.table())
    print(f"\nverdict: {report.verdict}\nsuggested: {report.suggestion}")
    print(f"\nwrote {out / 'diagnose.json'}, {', '.join(str(p) for p in plots)}")
    return 0
