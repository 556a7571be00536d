"""``htaf families``: every model family, the data it takes, its options and compare defaults."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "families",
        help="list the model families (--family) with their model options and defaults",
        description="List every model family: the data kinds it takes, its model options with "
        "their defaults ([model] in a run config, --model KEY=VALUE on compare) and what "
        "`htaf compare --family NAME` runs by default (--task is the former name of --family).",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def describe() -> list[dict]:
    """One plain dict per family (also what ``--json`` prints)."""
    from htaf.families import family_names, get_family, option_defaults

    out = []
    for name in family_names():
        fam = get_family(name)
        out.append({
            "name": name, "description": fam.description, "kinds": list(fam.kinds),
            "options": option_defaults(name), "compare": dict(fam.compare),
            "estimators": list(fam.estimators),
        })  # fmt: skip
    return out


def run(args: argparse.Namespace) -> int:
    infos = describe()
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    for info in infos:
        print(f"{info['name']}: {info['description']}")
        print(f"  data:       {', '.join(info['kinds'])}")
        opts = ", ".join(f"{k}={json.dumps(v)}" for k, v in info["options"].items())
        print(f"  options:    {opts or '(none)'}")
        defaults = ", ".join(f"{k}={v}" for k, v in info["compare"].items())
        print(f"  compare:    {defaults}; estimators {','.join(info['estimators'])}")
    return 0
