"""``htaf estimators``: the registry as a table of names, formulas, defaults and sources."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimators",
        help="list every registered estimator with its formulas and defaults",
        description="List every registered estimator: forward and backward formulas, defaults, "
        "natural output space and source.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--verbose", "-v", action="store_true", help="add descriptions and sources")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf.estimators import available

    infos = available()
    if args.json:
        print(
            json.dumps(
                [vars(i) if hasattr(i, "__dict__") else i.__dict__ for i in infos],
                indent=2,
                default=str,
            )
        )
        return 0
    rows = [("name", "space", "mode", "defaults", "forward", "backward")]
    for i in infos:
        defaults = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in i.defaults.items()) or "-"  # fmt: skip
        rows.append((i.name, i.natural, i.default_mode, defaults, i.forward, i.backward))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
        elif args.verbose:
            info = infos[n - 1]
            print(f"    {info.description}  [{info.source}]")
    print(
        "\nFormulas are in each estimator's natural space (column 'space'). With the other "
        "output space\n(signed=True/False) the backward doubles (unsigned -> ±1) or halves "
        "(signed -> {0,1}),\nexcept where it says '±1 and {0,1} alike' (straight-through)."
    )
    return 0
