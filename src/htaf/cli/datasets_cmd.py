"""``htaf datasets``: list the dataset registry; ``--fetch NAME`` downloads a dataset's official
files; ``--verify NAME`` checks local copies against their published checksums."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datasets",
        help="list the datasets; --fetch NAME downloads, --verify NAME checks its files",
        description="List every registered dataset (kind, task, expected files, source). With "
        "--fetch NAME, download that dataset's official file(s) into --data-dir (only then "
        "does htaf touch the network; downloads are checked against the published checksums "
        "before they appear). With --verify NAME, check the local official files against "
        "their published checksums.",
    )
    p.add_argument("--fetch", metavar="NAME", default=None, help="download this dataset's files")
    p.add_argument(
        "--verify", metavar="NAME", default=None, help="check this dataset's files' checksums"
    )
    p.add_argument("--data-dir", default=None, help="folder for dataset files ($HTAF_DATA)")
    p.set_defaults(func=run)


def _describe(ds: Any) -> str:
    """One line about a loaded dataset."""
    if ds.kind == "table":
        shape = f"{ds.n_features} features"
    else:
        shape = f"{ds.kind}s {'x'.join(map(str, ds.input_shape))}"
    sizes = "/".join(str(v) for v in ds.meta.get("split_sizes", {}).values())
    files = ds.meta.get("files") or [f for f in [ds.meta.get("file")] if f]
    where = ", ".join(map(str, files)) or "none (bundled or generated)"
    return f"{ds.name}: {shape}, task {ds.task}, train/val/test {sizes}; files: {where}"


def _listing(infos: list[dict[str, Any]]) -> None:
    rows = [("name", "kind", "task", "files", "source")]
    for info in infos:
        rows.append((info["name"], info["kind"], info["task"],
                     ", ".join(info["files"]) or "(bundled)", info["source"]))  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    for i, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        print("  ".join([*cells, row[4]]))
        if i == 0:
            print("  ".join("-" * w for w in widths) + "  ------")


def run(args: argparse.Namespace) -> int:
    from htaf.data import available, load, verify

    if args.fetch or args.verify:
        if args.fetch:
            print(_describe(load(args.fetch, data_dir=args.data_dir, download=True)))
        if args.verify:
            for line in verify(args.verify, data_dir=args.data_dir):
                print(line)
        return 0
    infos = available()
    _listing(infos)
    print("\nAlso: csv:PATH --target COL for any CSV file.")
    with_options = [info for info in infos if info["options"]]
    if with_options:
        print("\nOptions and their defaults (`data_options` in a run config,")
        print("`--data-option KEY=VALUE` for `htaf compare` and `htaf study`):")
        for info in with_options:
            opts = ", ".join(f"{k}={v!r}" for k, v in info["options"].items())
            print(f"  {info['name']}: {opts}")
    return 0
