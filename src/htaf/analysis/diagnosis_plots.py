"""The figure of :func:`htaf.diagnose`: where each layer's inputs sit, and the gradient norms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from htaf.analysis.plots import save_figure

#: Layers drawn as histograms (the table lists them all).
MAX_PANELS = 6


def plot_diagnosis(diagnosis: Any, out_dir: str | Path, stem: str = "diagnose") -> list[Path]:
    """Histograms of each estimator's inputs (the live region of the suggested or current
    HTAF shaded, the threshold at 0), then |dL/dx| per layer beside the reference's."""
    layers = diagnosis.layers[:MAX_PANELS]
    fig, axes = plt.subplots(1, len(layers) + 1, figsize=(3.2 * (len(layers) + 1), 3.0))
    for ax, r in zip(axes[:-1], layers, strict=False):
        _histogram(ax, r)
    _gradients(axes[-1], diagnosis)
    fig.suptitle(diagnosis.verdict[:110], fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir, stem)


def _histogram(ax: Any, r: Any) -> None:
    x = r.sample
    if x.size:
        lo, hi = np.quantile(x, [0.005, 0.995])
        ax.hist(np.clip(x, lo, hi), bins=60, color="0.55")
    ax.axvline(0, color="k", lw=0.8)
    if r.live_edge:
        ax.axvspan(
            -r.live_edge, r.live_edge, color="tab:green", alpha=0.15, label="htaf(auto) live"
        )
        ax.legend(fontsize=6, loc="upper right")
    ax.set_title(f"{r.layer}: {r.estimator}\nlive {r.live:.1%}", fontsize=7)
    ax.set_xlabel("input - threshold", fontsize=7)
    ax.tick_params(labelsize=6)


def _gradients(ax: Any, diagnosis: Any) -> None:
    names = [r.layer for r in diagnosis.layers]
    pos = np.arange(len(names))
    own = [max(r.grad_norm, 1e-30) for r in diagnosis.layers]
    ref = [max(r.ref_grad_norm, 1e-30) for r in diagnosis.layers]
    ax.bar(pos - 0.2, own, 0.4, label="model")
    ax.bar(pos + 0.2, ref, 0.4, label=diagnosis.reference)
    ax.set_yscale("log")
    ax.set_xticks(pos, names, rotation=45, ha="right", fontsize=6)
    ax.set_title("|dL/dx| at each estimator", fontsize=7)
    ax.legend(fontsize=6)
    ax.tick_params(labelsize=6)
