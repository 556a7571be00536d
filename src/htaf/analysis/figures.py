r"""The paper's Figures 1 and 2, redrawn from :mod:`htaf.theory`; each saved as PNG and SVG.

* :func:`activation_figures`: HTAF output curves, log gradient ratios against the (1.5, 1.5)
  baseline, HTAF's derivative against the same-slope scaled sigmoid's, and the raw derivatives
  on a log axis (the heavy tail).
* :func:`bounds_figure`: the lower bound :math:`\alpha_{0,\min}(\alpha_1)` and
  :math:`\alpha_1\alpha_{0,\min}`, with its asymptote :math:`L/\delta`.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never pyplot, so
the global backend and figure registry are left alone. Files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from htaf import functional as hf
from htaf import theory
from htaf.io import save_figure

__all__ = ["activation_figures", "bounds_figure"]

DPI = 150

#: Paper values: output curves at α0 = 1.5 over α1 ∈ {6, 12, 18, 24}; baseline (1.5, 1.5).
CURVE_ALPHA0 = (1.5,)
SWEEP = (6.0, 12.0, 18.0, 24.0)
BASE = (1.5, 1.5)
#: The gradient study's pairs, all with α0·α1 = 22, against σ(22x).
STUDY_PAIRS = ((2.0, 11.0), (8.0, 2.75), (11.0, 2.0))
STUDY_BETA = 22.0

STYLE = {
    "figure.figsize": (5.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "htaf",  # stable SVG ids, so reruns give identical files
}


def _out_dir(out_dir: str | os.PathLike[str]) -> Path:
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _values(values: Sequence[float] | None, default: Sequence[float], name: str) -> list[float]:
    """Validated positive parameter list (ValueError naming ``name``)."""
    chosen = list(default if values is None else values)
    if not chosen:
        raise ValueError(f"{name} needs at least one value")
    return [theory._positive(v, name) for v in chosen]


def _label(a0: float, a1: float) -> str:
    return rf"$\alpha_0={a0:g},\ \alpha_1={a1:g}$"


# -- Figure 1 panels ----------------------------------------------------------------------------
def _curves(ax: Axes, alpha0: list[float], alpha1: list[float]) -> None:
    x = torch.linspace(-3, 3, 1201, dtype=torch.float64)
    ax.plot(x, hf.heaviside(x), "k--", lw=1.2, label="Heaviside $H(x)$")
    for a0 in alpha0:
        for a1 in alpha1:
            ax.plot(x, hf.htaf(x, a0, a1), label=_label(a0, a1))
    ax.set(xlabel="$x$", ylabel=r"HTAF$(x)$", title="HTAF output")
    ax.legend(loc="upper left")


def _ratio_sweep(ax: Axes, values: list[float], which: str) -> None:
    x = np.linspace(-3, 3, 1201)
    for v in values:
        a0, a1 = (v, BASE[1]) if which == "alpha0" else (BASE[0], v)
        ax.plot(x, theory.log_gradient_ratio(a0, a1, x, BASE), label=_label(a0, a1))
    symbol = r"\alpha_0" if which == "alpha0" else r"\alpha_1"
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set(
        xlabel="$x$",
        ylabel=r"$\log\,\mathrm{HTAF}'(x) / \mathrm{HTAF}'_{(1.5,1.5)}(x)$",
        title=rf"Log gradient ratio, varying ${symbol}$",
    )
    ax.legend(loc="lower center")


def _sigmoid_ratio(ax: Axes) -> None:
    x = np.linspace(0, 5, 1001)
    for a0, a1 in STUDY_PAIRS:
        ax.semilogy(x, theory.tail_ratio(a0, a1, x), label=_label(a0, a1))
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(
        xlabel="$x$",
        ylabel=r"$\mathrm{HTAF}'(x)\,/\,\frac{d}{dx}\sigma(\alpha_0\alpha_1 x)$",
        title="HTAF vs scaled sigmoid with the same slope at 0",
    )
    ax.legend(loc="upper left")


def _derivatives(ax: Axes) -> None:
    x = torch.linspace(0, 10, 1001, dtype=torch.float64)
    for a0, a1 in STUDY_PAIRS:
        ax.semilogy(x, hf.htaf_derivative(x, a0, a1), label=_label(a0, a1))
    # β·σ(βx)·σ(−βx), not β·s·(1 − s): 1 − s rounds to 0 once s rounds to 1 (x ≈ 1.7).
    sigmoid = np.exp(theory.log_sigmoid_derivative(x.numpy(), STUDY_BETA))
    ax.semilogy(x, sigmoid, "k--", label=rf"$\sigma({STUDY_BETA:g}x)$")
    ax.set(xlabel="$x$", ylabel="derivative", title="Derivatives (float64): the heavy tail")
    ax.legend(loc="lower left")


def activation_figures(
    out_dir: str | os.PathLike[str],
    alpha0: Sequence[float] | None = None,
    alpha1: Sequence[float] | None = None,
) -> list[Path]:
    r"""Draw Figure 1's panels as separate files in ``out_dir`` (created); return their paths.

    1. ``htaf_curves``: HTAF for every (α0, α1) in ``alpha0`` × ``alpha1`` (default 1.5 ×
       {6, 12, 18, 24}), with the Heaviside step dashed;
    2. ``gradient_ratio_alpha0``: :math:`\log \mathrm{HTAF}'/\mathrm{HTAF}'_{(1.5,1.5)}` for α0 in
       ``alpha0`` (default {6, 12, 18, 24}), α1 = 1.5: the tail slope is
       :math:`-2(\alpha_0 - 1.5)`;
    3. ``gradient_ratio_alpha1``: the same for α1 in ``alpha1``, α0 = 1.5: a flat offset;
    4. ``htaf_vs_sigmoid_ratio``: :math:`\mathrm{HTAF}'/\frac{d}{dx}\sigma(\alpha_0\alpha_1 x)`
       for (2, 11), (8, 2.75), (11, 2), log axis;
    5. ``derivatives``: those derivatives and :math:`\sigma(22x)`'s on a log axis, x ∈ [0, 10].
    """
    curve_a0 = _values(alpha0, CURVE_ALPHA0, "alpha0")
    sweep_a0 = _values(alpha0, SWEEP, "alpha0")
    sweep_a1 = _values(alpha1, SWEEP, "alpha1")
    out = _out_dir(out_dir)
    panels = {
        "htaf_curves": lambda ax: _curves(ax, curve_a0, sweep_a1),
        "gradient_ratio_alpha0": lambda ax: _ratio_sweep(ax, sweep_a0, "alpha0"),
        "gradient_ratio_alpha1": lambda ax: _ratio_sweep(ax, sweep_a1, "alpha1"),
        "htaf_vs_sigmoid_ratio": _sigmoid_ratio,
        "derivatives": _derivatives,
    }
    paths: list[Path] = []
    with matplotlib.rc_context(STYLE):
        for stem, draw in panels.items():
            fig = Figure()
            draw(fig.add_subplot())
            paths += save_figure(fig, out, stem, dpi=DPI)
    return paths


# -- Figure 2 -----------------------------------------------------------------------------------
def bounds_figure(
    out_dir: str | os.PathLike[str], eps: float = 0.1, delta: float = 0.1
) -> list[Path]:
    r"""Draw ``alpha0_bound`` (Figure 2) in ``out_dir``; return the PNG and SVG paths.

    Left: :math:`\alpha_{0,\min} = \operatorname{artanh}(L/\alpha_1)/\delta`; right:
    :math:`\alpha_1\alpha_{0,\min}`, falling to the asymptote :math:`L/\delta` (21.97 at
    :math:`\varepsilon = \delta = 0.1`), for :math:`\alpha_1 \in (L, \max(60, 10L)]`. The
    default :func:`htaf.theory.select_params` pair is marked. ValueError names ``eps`` or
    ``delta`` when invalid; nothing is written then.
    """
    L = theory.min_alpha1(eps)
    delta = theory._positive(delta, "delta")
    asymptote = L / delta
    a1 = np.geomspace(L * 1.005, max(60.0, 10 * L), 800)
    a0 = np.array([theory.min_alpha0(v, eps, delta) for v in a1])
    d0, d1 = theory.select_params(eps, delta)
    out = _out_dir(out_dir)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9.0, 3.6))
        left, right = fig.subplots(1, 2)
        _bound_panel(left, a1, a0, L, (d0, d1), d0, r"$\alpha_{0,\min}$")
        left.set_ylim(0, 3 * theory.min_alpha0(2 * L, eps, delta))
        left.set_title(rf"Lower bound of $\alpha_0$ ($\varepsilon={eps:g},\ \delta={delta:g}$)")
        _bound_panel(right, a1, a1 * a0, L, (d0, d1), d0 * d1, r"$\alpha_1\,\alpha_{0,\min}$")
        right.axhline(asymptote, color="C3", ls="--", lw=1.2)
        right.annotate(
            rf"asymptote $L/\delta = {asymptote:.2f}$",
            xy=(a1[-1], asymptote),
            xytext=(0, -4),
            textcoords="offset points",
            ha="right",
            va="top",
            color="C3",
        )
        # Zoomed on the asymptote: the approach is the point of the panel.
        right.set_ylim(0.85 * asymptote, 1.6 * asymptote)
        right.set_title(r"$\alpha_1\,\alpha_{0,\min}$ (= 4 × slope at 0)")
        return save_figure(fig, out, "alpha0_bound", dpi=DPI)


def _bound_panel(
    ax: Axes,
    a1: np.ndarray,
    y: np.ndarray,
    L: float,
    pair: tuple[float, float],
    pair_y: float,
    name: str,
) -> None:
    ax.plot(a1, y, label=name)
    ax.axvline(L, color="0.5", ls=":", lw=1.0, label=rf"$\alpha_1 = L = {L:.3f}$")
    a0, a1_default = pair
    text = rf"select_params: $(\alpha_0, \alpha_1) = ({a0:.3g}, {a1_default:.4g})$"
    ax.plot(a1_default, pair_y, "o", color="C1", label=text)
    ax.set(xlabel=r"$\alpha_1$", ylabel=name)
    ax.legend(loc="upper right")
