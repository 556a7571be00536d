"""``htaf report EXP_DIR``: rebuild an experiment's plots, report.md and report.html."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild the plots and report of an experiment folder")
    p.add_argument("run_dir", metavar="RUN_DIR", help="experiment folder (OUT/<experiment-id>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf.report import write_report

    paths = write_report(args.run_dir)
    print(f"report: {paths['html']}")
    print(f"        {paths['markdown']}")
    return 0
