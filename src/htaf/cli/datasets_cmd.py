"""``htaf datasets``: list the dataset registry; ``--fetch NAME`` downloads an official file."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datasets",
        help="list the datasets; --fetch NAME downloads its official file(s)",
        description="List every registered dataset (task, source, expected files). With "
        "--fetch NAME, download that dataset's official file(s) into --data-dir (only then "
        "does htaf touch the network).",
    )
    p.add_argument("--fetch", metavar="NAME", default=None, help="download this dataset's files")
    p.add_argument("--data-dir", default=None, help="folder for dataset files ($HTAF_DATA)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf.data import available, load

    if args.fetch:
        ds = load(args.fetch, data_dir=args.data_dir, download=True)
        files = ds.meta.get("files") or [ds.meta.get("file")]
        print(f"{ds.name}: {ds.n_features} features, task {ds.task}; files: {files}")
        return 0
    infos = available()
    rows = [("name", "task", "files", "source")]
    for info in infos:
        rows.append((info["name"], info["task"], ", ".join(info["files"]) or "(bundled)",
                     info["source"]))  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    for i, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
        if i == 0:
            print("  ".join("-" * w for w in widths) + "  ------")
    print("\nAlso: csv:PATH --target COL for any CSV file.")
    with_options = [info for info in infos if info["options"]]
    if with_options:
        print("\nOptions and their defaults (`data_options` in a run config,")
        print("`--data-option KEY=VALUE` for `htaf study`):")
        for info in with_options:
            opts = ", ".join(f"{k}={v!r}" for k, v in info["options"].items())
            print(f"  {info['name']}: {opts}")
    return 0
