"""Training plots for an experiment folder, each saved as PNG and SVG (atomically).

* ``learning_curves``: train/val loss, and the val metric with the exact step (hard) against
  the smooth forward, per estimator: mean over seeds with a ±1 std band;
* ``gradient_norms``: per-layer gradient L2 norm per epoch (log y);
* ``activation_histograms``: the smooth hidden outputs of seed 0 on the test set (HTAF piles
  its mass at 0 and 1; ReLU does not);
* ``binary_metric_bars``: the exact-binary test metric per estimator, with std error bars;
* ``model_stats``: every per-epoch series a model reports through its ``epoch_stats`` hook
  (``model_stats`` in the history: a BNN's flip ratio per layer, its near-±1 fraction, the
  smooth-vs-hard disagreement...), one row of panels per statistic, one panel per layer.

``plot_experiment(exp_dir)`` draws them from the files in the folder (``model_stats`` only
where the runs have such series).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt
import numpy as np

from htaf.io import save_figure as io_save_figure

#: Primary metrics in order of preference (records carry the model family, not the task).
PRIMARY = ("auroc", "accuracy", "rmse")


def save_figure(fig: Any, out_dir: str | Path, stem: str) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` in ``out_dir`` and close it."""
    paths = io_save_figure(fig, out_dir, stem)
    plt.close(fig)
    return paths


def primary_metric(metric_names: Sequence[str], split: str = "test") -> str | None:
    """The metric a table or plot leads with: AUROC, else accuracy, else RMSE."""
    names = set(metric_names)
    for metric in PRIMARY:
        if f"{split}_{metric}_hard" in names:
            return metric
    return None


def _by_estimator(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(rec["config"]["estimator"], []).append(rec)
    return groups


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def _curve(runs: Sequence[dict[str, Any]], get: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds of ``get(epoch_row)``, truncated to the shortest history."""
    series = [[get(row) for row in r.get("history", [])] for r in runs]
    n = min((len(s) for s in series), default=0)
    data = np.array([s[:n] for s in series], dtype=float).reshape(len(series), n)
    epochs = np.array([row.get("epoch", i + 1) for i, row in enumerate(runs[0]["history"][:n])])
    with np.errstate(all="ignore"):
        return epochs, np.nanmean(data, axis=0), np.nanstd(data, axis=0)


def _band(ax: Any, x: np.ndarray, mean: np.ndarray, std: np.ndarray, **kw: Any) -> None:
    (line,) = ax.plot(x, mean, **kw)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)


def learning_curves(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Loss (train solid, val dashed) and val metric (hard solid, smooth dotted) per estimator."""
    groups = _by_estimator(records)
    colors = _colors(list(groups))
    val_names = {k for r in records for row in r.get("history", []) for k in row}
    metric = primary_metric([k.replace("val_", "test_", 1) for k in val_names])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for label, runs in groups.items():
        c = colors[label]
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            x, m, s = _curve(runs, lambda row, k=key: row.get(k, np.nan))
            _band(axes[0], x, m, s, color=c, linestyle=style, label=f"{label} {key[:-5]}")
        if metric:
            for mode, style in (("hard", "-"), ("smooth", ":")):
                x, m, s = _curve(runs, lambda row, k=f"val_{metric}_{mode}": row.get(k, np.nan))
                _band(axes[1], x, m, s, color=c, linestyle=style, label=f"{label} {mode}")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss (train —, val --)")
    axes[1].set(
        xlabel="epoch",
        ylabel=f"val {metric or 'metric'}",
        title="val metric: exact step (—) vs smooth (··)",
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("learning curves (mean over seeds, band ±1 std)")
    return save_figure(fig, out_dir, "learning_curves")


def gradient_norms(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Per-layer gradient L2 norm per epoch (log y), one panel per layer."""
    layers = sorted(
        {k for r in records for row in r.get("history", []) for k in row.get("grad_norm") or {}},
        key=_layer_order,
    )
    groups = _by_estimator(records)
    colors = _colors(list(groups))
    n = max(1, len(layers))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.8), layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, layer in zip(axes, layers, strict=False):
        for label, runs in groups.items():
            x, m, s = _curve(runs, lambda row, k=layer: (row.get("grad_norm") or {}).get(k, np.nan))
            # A band on a log axis must stay positive.
            _band(ax, x, m, np.minimum(s, m * 0.999), color=colors[label], label=label)
        ax.set_yscale("log")
        ax.set(xlabel="epoch", title=layer)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("gradient L2 norm")
    axes[0].legend(fontsize=7)
    fig.suptitle("gradient norms per layer (mean over seeds)")
    return save_figure(fig, out_dir, "gradient_norms")


def _layer_order(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 10**6, name)


def smooth_activations(npz_path: str | Path) -> np.ndarray | None:
    """All smooth hidden outputs stored in a run's ``activations.npz``, flattened."""
    path = Path(npz_path)
    if not path.is_file():
        return None
    with np.load(path) as npz:
        keys = [k for k in npz.files if "smooth" in k] or [k for k in npz.files if "hard" not in k]
        if not keys:
            return None
        return np.concatenate([np.asarray(npz[k], dtype=float).ravel() for k in sorted(keys)])


def activation_histograms(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Histogram of the smooth hidden outputs (seed 0 of each estimator) on the test set."""
    per_est = {}
    for label, runs in _by_estimator(records).items():
        first = min(runs, key=lambda r: r["config"].get("seed", 0))
        values = smooth_activations(Path(first["run_dir"]) / "activations.npz")
        if values is not None and values.size:
            per_est[label] = values
    n = max(1, len(per_est))
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.8 * cols, 3.0 * rows), squeeze=False, layout="constrained"
    )
    colors = _colors(list(per_est))
    for ax, (label, values) in zip(axes.ravel(), per_est.items(), strict=False):
        weights = np.full(values.shape, 1.0 / values.size)
        ax.hist(values, bins=50, weights=weights, color=colors[label])
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.0)  # a common scale, so the piles at 0 and 1 compare across panels
        near = _near_binary(values)
        ax.set_title(f"{label}  ({near:.0%} within 0.05 of 0/1)", fontsize=9)
        ax.set(xlabel="hidden output (smooth forward)")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(per_est) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("fraction of activations")
    fig.suptitle("hidden activations on the test set (seed 0)")
    return save_figure(fig, out_dir, "activation_histograms")


def _near_binary(values: np.ndarray, tol: float = 0.05) -> float:
    return float(np.mean((np.abs(values) <= tol) | (np.abs(values - 1) <= tol)))


def binary_metric_bars(summary: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Exact-binary test metric per estimator (mean over seeds, error bar = std)."""
    names = [m for row in summary for m in row["metrics"]]
    metric = primary_metric(names) or "auroc"
    key = f"test_{metric}_hard"
    rows = [r for r in summary if (r["metrics"].get(key) or {}).get("mean") is not None]
    labels = [
        r["estimator"]
        if len({x["dataset"] for x in rows}) == 1
        else f"{r['dataset']}\n{r['estimator']}"
        for r in rows
    ]
    means = [r["metrics"][key]["mean"] for r in rows]
    stds = [r["metrics"][key]["std"] or 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1), 3.6))
    colors = _colors(labels)
    # Continuous reference rows (relu) have no step: hatch them so they read as a reference.
    hatches = ["" if _binary(r["estimator"]) else "//" for r in rows]
    bars = ax.bar(labels, means, yerr=stds, capsize=4, color=[colors[lb] for lb in labels])
    for bar, hatch in zip(bars, hatches, strict=True):
        bar.set_hatch(hatch)
    if means and metric in ("auroc", "accuracy"):
        low = min(m - s for m, s in zip(means, stds, strict=True))
        ax.set_ylim(max(0.0, min(low - 0.02, 0.9)), 1.0)
    ax.set(
        ylabel=f"test {metric} (exact step)",
        title=f"test {metric}, binary inference (hatched: non-binary reference)",
    )
    ax.tick_params(axis="x", labelrotation=30)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, out_dir, "binary_metric")


def _binary(spec: str) -> bool:
    from htaf.estimators import is_binary

    try:
        return is_binary(spec)
    except ValueError:
        return True


#: Panels per row of :func:`model_stats` (a statistic with more layers shows the first ones).
MAX_PANELS = 8


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def model_stat_series(records: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The per-epoch ``model_stats`` series in the records: ``{stat: [sub-key or "", ...]}``
    (a scalar statistic has the one sub-key ""), in order of first appearance."""
    series: dict[str, list[str]] = {}
    for rec in records:
        for row in rec.get("history", []):
            for stat, value in (row.get("model_stats") or {}).items():
                subs = series.setdefault(stat, [])
                keys = (
                    [k for k, v in value.items() if _numeric(v)]
                    if isinstance(value, dict)
                    else ([""] if _numeric(value) else [])
                )
                subs.extend(k for k in keys if k not in subs)
    return {stat: subs for stat, subs in series.items() if subs}


def _stat(row: dict[str, Any], stat: str, sub: str) -> float:
    value = (row.get("model_stats") or {}).get(stat)
    if sub:
        value = value.get(sub) if isinstance(value, dict) else None
    return float(value) if _numeric(value) else np.nan


def model_stats(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Each per-epoch model statistic (mean over seeds, band ±1 std) per estimator; nothing
    when no run reports one."""
    series = model_stat_series(records)
    if not series:
        return []
    groups = _by_estimator(records)
    colors = _colors(list(groups))
    cols = min(MAX_PANELS, max(len(subs) for subs in series.values()))
    fig, axes = plt.subplots(
        len(series), cols, figsize=(3.3 * cols, 2.8 * len(series)), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for r, (stat, subs) in enumerate(series.items()):
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(subs):
                ax.axis("off")
                continue
            for label, runs in groups.items():
                with warnings.catch_warnings():  # a run without this statistic: all NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    x, m, sd = _curve(runs, lambda row, s=stat, k=subs[c]: _stat(row, s, k))
                if np.isfinite(m).any():
                    _band(ax, x, m, sd, color=colors[label], label=label)
            ax.set_title(f"{stat} {subs[c]}".strip(), fontsize=9)
            ax.set(xlabel="epoch")
            ax.grid(alpha=0.3)
        axes[r, 0].set_ylabel(stat)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("model statistics per epoch (mean over seeds, band ±1 std)")
    return save_figure(fig, out_dir, "model_stats")


def plot_experiment(
    exp_dir: str | Path,
    records: Sequence[dict[str, Any]] | None = None,
    summary: Sequence[dict[str, Any]] | None = None,
) -> list[Path]:
    """Draw every plot of an experiment folder into ``EXP_DIR/plots``; returns the files."""
    from htaf.experiment import read_runs, summarize

    exp_dir = Path(exp_dir)
    records = list(records) if records is not None else read_runs(exp_dir)
    summary = list(summary) if summary is not None else summarize(records)
    out = exp_dir / "plots"
    paths = learning_curves(records, out) + gradient_norms(records, out)
    paths += activation_histograms(records, out) + binary_metric_bars(summary, out)
    return paths + model_stats(records, out)
