"""The figures of the concept analysis (``htaf concepts``), each saved as PNG and SVG.

Each function takes arrays computed by ``htaf.families.icbm.analysis`` and returns the paths it
wrote. ``htaf.analysis.concepts`` decides what is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from htaf.analysis.plots import save_figure

#: Classes (rows) or attributes shown with their names; beyond this only the axis is labelled.
MAX_LABELS = 40


def _tick_labels(ax: Any, axis: str, names: Sequence[str]) -> None:
    if len(names) > MAX_LABELS:
        return
    if axis == "y":
        ax.set_yticks(range(len(names)), names, fontsize=7)
    else:
        ax.set_xticks(range(len(names)), names, fontsize=7, rotation=90)


def proportions_heatmap(folder: Path, props: np.ndarray, classes: Sequence[str]) -> list[Path]:
    C, K = props.shape
    fig, ax = plt.subplots(figsize=(min(3 + 0.18 * K, 16), min(2 + 0.25 * C, 14)))
    im = ax.imshow(props, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xlabel("concept (node)")
    ax.set_ylabel("class")
    _tick_labels(ax, "y", classes)
    if K <= 64:
        ax.set_xticks(range(K), [str(k) for k in range(K)], fontsize=6)
    fig.colorbar(im, ax=ax, label="fraction of the class's test images that activate it")
    ax.set_title("Concept activation proportion per class")
    return save_figure(fig, folder, "class_proportions")


def proportion_histogram(folder: Path, props: np.ndarray, spec: Mapping[str, Any]) -> list[Path]:
    values = props[~np.isnan(props)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(values, bins=20, range=(0, 1), color="tab:blue", edgecolor="white")
    ax.set_xlabel("proportion of a class's images that activate a concept")
    ax.set_ylabel("(class, concept) pairs")
    ax.set_title(f"{spec['decided_fraction']:.1%} of proportions within 0.1 of 0 or 1")
    return save_figure(fig, folder, "proportion_histogram")


def _show(ax: Any, img: Any) -> None:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3):  # (C, H, W) -> (H, W, C)
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def node_images(
    folder: Path, node: int, picked: Mapping[str, np.ndarray], images: Any, y: np.ndarray,
    classes: Sequence[str], name: str,
) -> list[Path]:  # fmt: skip
    """Two rows: the images concept ``node`` is most surely on for, and off for."""
    cols = max(len(picked["on"]), len(picked["off"]), 1)
    fig, axes = plt.subplots(2, cols, figsize=(1.4 * cols + 1, 3.6), squeeze=False)
    for r, key in enumerate(("on", "off")):
        for c in range(cols):
            ax = axes[r][c]
            if c < len(picked[key]):
                i = int(picked[key][c])
                _show(ax, images[i])
                ax.set_title(f"#{i}\n{classes[int(y[i])][:14]}", fontsize=6)
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(f"activation {1 if key == 'on' else 0}", fontsize=8)
    fig.suptitle(f"Concept {node}" + (f": {name}" if name else ""), fontsize=10)
    return save_figure(fig, folder, f"node_{node}_images")


def image_concepts(
    folder: Path, index: int, img: Any, out: Any, classes: Sequence[str],
    weights: np.ndarray | None, label: Mapping[int, str],
) -> list[Path]:  # fmt: skip
    """One test image, its label and prediction, and its active concepts. With a linear head,
    each active concept's weight for the predicted and for the true class."""
    fig = image_concepts_figure(index, img, out, classes, weights, label)
    return save_figure(fig, folder, f"image_{index}_concepts")


def image_concepts_figure(
    index: int, img: Any, out: Any, classes: Sequence[str], weights: np.ndarray | None,
    label: Mapping[int, str],
) -> Any:  # fmt: skip
    """The figure :func:`image_concepts` saves: the image in a column of its own, left of the
    chart, and a constrained layout that keeps the chart's concept names (its y tick labels)
    clear of the image however long they are."""
    true, pred = int(out.y[index]), int(out.pred[index])
    active = np.flatnonzero(out.active[index])
    fig, (ax_img, ax) = plt.subplots(
        1, 2, figsize=(9, max(3, 0.22 * len(active) + 1.5)), width_ratios=[1, 2],
        layout="constrained",
    )  # fmt: skip
    _show(ax_img, img)
    verdict = "correct" if true == pred else "misclassified"
    ax_img.set_title(f"test image {index} ({verdict})\ntrue: {classes[true]}\n"
                     f"predicted: {classes[pred]}", fontsize=8)  # fmt: skip
    names = [f"#{k}" + (f" {label[k][:30]}" if label.get(k) else "") for k in active]
    pos = np.arange(len(active))
    if weights is not None and len(active):
        ax.barh(pos - 0.2, weights[pred, active], 0.4, label=f"weight for {classes[pred][:20]}")
        if true != pred:
            ax.barh(pos + 0.2, weights[true, active], 0.4, label=f"weight for {classes[true][:20]}")
        ax.axvline(0, color="k", linewidth=0.5)
        ax.legend(fontsize=7)
        ax.set_xlabel("classifier weight of the active concept")
    elif len(active):
        ax.barh(pos, out.smooth[index, active])
        ax.set_xlabel("concept output (smooth)")
    ax.set_yticks(pos, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_title(f"{len(active)} active concepts", fontsize=9)
    return fig


def bottleneck_histogram(
    folder: Path, smooth: np.ndarray, others: Mapping[str, np.ndarray]
) -> list[Path]:
    """This run's smooth concept outputs, then each sibling bottleneck's (same seed)."""
    panels = [("this run", smooth.ravel())] + [(k, np.ravel(v)) for k, v in others.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        values = values[np.isfinite(values)]
        near = np.mean(np.minimum(np.abs(values), np.abs(values - 1)) <= 0.05) if len(values) else 0
        hi = max(1.0, float(np.percentile(values, 99.5))) if len(values) else 1.0
        ax.hist(values, bins=50, range=(min(0.0, float(values.min(initial=0))), hi),
                color="tab:green", edgecolor="none")  # fmt: skip
        ax.set_title(f"{title}\n{near:.1%} within 0.05 of 0/1", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("concept output (smooth forward)")
    fig.tight_layout()
    return save_figure(fig, folder, "bottleneck_histogram")


def ablation_node(
    folder: Path, node: int, ablation: Mapping[str, Any], classes: Sequence[str]
) -> list[Path]:
    i = int(np.flatnonzero(ablation["nodes"] == node)[0])
    off = ablation["off"][i] - ablation["base"]
    on = ablation["on"][i] - ablation["base"]
    C = len(classes)
    fig, ax = plt.subplots(figsize=(min(2 + 0.3 * C, 16), 3.5))
    x = np.arange(C)
    ax.bar(x - 0.2, 100 * off, 0.4, label="switched off (0)")
    ax.bar(x + 0.2, 100 * on, 0.4, label="forced on (1)")
    ax.axhline(0, color="k", linewidth=0.5)
    _tick_labels(ax, "x", classes)
    ax.set_ylabel("change in class accuracy (points)")
    ax.set_title(f"Intervening on concept {node}")
    ax.legend(fontsize=8)
    return save_figure(fig, folder, f"ablation_node_{node}")


def ablation_overall(folder: Path, ablation: Mapping[str, Any]) -> list[Path]:
    nodes = ablation["nodes"]
    fig, ax = plt.subplots(figsize=(min(3 + 0.15 * len(nodes), 16), 3.5))
    base = ablation["base_all"]
    ax.bar(nodes - 0.2, 100 * (ablation["off_all"] - base), 0.4, label="switched off (0)")
    ax.bar(nodes + 0.2, 100 * (ablation["on_all"] - base), 0.4, label="forced on (1)")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xlabel("concept (node)")
    ax.set_ylabel("change in test accuracy (points)")
    ax.set_title(f"One concept at a time (binary model, accuracy {base:.3f})")
    ax.legend(fontsize=8)
    return save_figure(fig, folder, "ablation_overall")


def alignment(folder: Path, align: Mapping[str, Any], names: Sequence[str]) -> list[Path]:
    """Left: every (concept, attribute) score; right: each attribute's best concept."""
    score = np.maximum(align["auroc"], 1 - align["auroc"])
    K, n_attr = score.shape
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(min(6 + 0.2 * n_attr, 20), min(3 + 0.12 * max(K, n_attr), 14)),
        width_ratios=[2, 1],
    )  # fmt: skip
    im = ax1.imshow(score, aspect="auto", cmap="magma", vmin=0.5, vmax=1, interpolation="nearest")
    ax1.set_ylabel("concept (node)")
    ax1.set_xlabel("true attribute")
    _tick_labels(ax1, "x", names)
    fig.colorbar(im, ax=ax1, label="max(AUROC, 1 - AUROC)")
    y = np.arange(n_attr)
    colors = np.where(align["recovered"], "tab:green", "tab:gray")
    ax2.barh(y, np.nan_to_num(align["best_score"]), color=colors)
    ax2.axvline(0.9, color="k", linestyle="--", linewidth=0.8)
    ax2.set_xlim(0.5, 1)
    _tick_labels(ax2, "y", names)
    ax2.invert_yaxis()
    ax2.set_xlabel("best concept's score")
    ax2.set_title(f"{align['recovered_fraction']:.0%} recovered at AUROC >= 0.9", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, folder, "alignment")
