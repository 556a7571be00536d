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
    g.add_argument(
        "--seeds", type=int, default=DEFAULTS["seeds"], help="seeds 0..N-1 (geometric mean)"
    )
    g.add_argument("--seed", type=int, default=None, help="run this single seed instead")
    g.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    g.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=["sgd", "adam"])
    g.add_argument("--data-dir", default=None)
    g.add_argument(
        "--data-option",
        dest="data_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option (TOML literal), e.g. --dataset teacher --data-option n=5000 "
        "--data-option flip=0.15; repeatable",
    )
    g.add_argument("--jobs", type=int, default=1, help="parallel runs (default: 1)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=run_gradient_flow)


def run_gradient_flow(args: argparse.Namespace) -> int:
    from htaf.config import apply_overrides
    from htaf.studies import gradient_flow

    single = {} if args.seed is None else {"seed": args.seed}
    result = gradient_flow.run(
        args.out, epochs=args.epochs, dataset=args.dataset, seeds=args.seeds, lr=args.lr,
        optimizer=args.optimizer, data_dir=args.data_dir, jobs=args.jobs,
        data_options=apply_overrides({}, args.data_options),
        progress=not args.no_progress, **single,
    )  # fmt: skip
    seeds = list(result["seed_ratios"])
    print("last-epoch mean L2 norm of the layer-1 gradient (geometric mean over seeds):")
    for label, values in result["norms"].items():
        print(f"  {label:<20} {values[-1]:.3e}")
    print(f"htaf(2,11) / other: geometric mean, then per seed {', '.join(seeds)}")
    for label, ratio in result["ratios"].items():
        each = "  ".join(f"{result['seed_ratios'][s][label]:.3g}" for s in seeds)
        print(f"  {label:<20} {ratio:.3g}x   [{each}]")
    for path in result["plots"]:
        print(path)
    print(f"{args.out}/gradient_flow.json")
    return 0
