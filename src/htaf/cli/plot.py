"""``htaf plot activation|bounds``: the paper's Figures 1 and 2, as PNG and SVG."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw the paper's figures (PNG and SVG)")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    act = kinds.add_parser("activation", help="HTAF curves, gradient ratios (Figure 1)")
    act.add_argument("--out", required=True, help="output folder")
    act.add_argument("--alpha0", type=float, nargs="+", default=None, help="alpha0 values")
    act.add_argument("--alpha1", type=float, nargs="+", default=None, help="alpha1 values")
    act.set_defaults(func=run_activation)
    bounds = kinds.add_parser("bounds", help="lower bound of alpha0 against alpha1 (Figure 2)")
    bounds.add_argument("--out", required=True, help="output folder")
    bounds.add_argument("--eps", type=float, default=0.1, help="error bound epsilon")
    bounds.add_argument("--delta", type=float, default=0.1, help="distance from 0, delta")
    bounds.set_defaults(func=run_bounds)


def run_activation(args: argparse.Namespace) -> int:
    from htaf.analysis import figures

    for path in figures.activation_figures(args.out, alpha0=args.alpha0, alpha1=args.alpha1):
        print(path)
    return 0


def run_bounds(args: argparse.Namespace) -> int:
    from htaf.analysis import figures

    for path in figures.bounds_figure(args.out, eps=args.eps, delta=args.delta):
        print(path)
    return 0
