"""``htaf study NAME``: the paper's analyses. ``gradient-flow``: layer-1 gradient norms."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from htaf.studies.gradient_flow import DEFAULTS

    p = sub.add_parser("study", help="run one of the paper's studies (gradient-flow)")
    studies = p.add_subparsers(dest="study", metavar="STUDY", required=True)
    g = studies.add_parser(
        "gradient-flow",
        help="layer-1 gradient norms: htaf(2,11), htaf(8,2.75), htaf(11,2), sigmoid(22x), relu",
    )
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    g.add_argument("--dataset", default=DEFAULTS["dataset"])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    g.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=["sgd", "adam"])
    g.add_argument("--data-dir", default=None)
    g.add_argument("--jobs", type=int, default=1, help="parallel runs (default: 1)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=run_gradient_flow)


def run_gradient_flow(args: argparse.Namespace) -> int:
    from htaf.studies import gradient_flow

    result = gradient_flow.run(
        args.out, epochs=args.epochs, dataset=args.dataset, seed=args.seed, lr=args.lr,
        optimizer=args.optimizer, data_dir=args.data_dir, jobs=args.jobs,
        progress=not args.no_progress,
    )  # fmt: skip
    print("last-epoch mean L2 norm of the layer-1 gradient:")
    for label, values in result["norms"].items():
        print(f"  {label:<20} {values[-1]:.3e}")
    print("htaf(2,11) / other:")
    for label, ratio in result["ratios"].items():
        print(f"  {label:<20} {ratio:.3g}x")
    for path in result["plots"]:
        print(path)
    print(f"{args.out}/gradient_flow.json")
    return 0
