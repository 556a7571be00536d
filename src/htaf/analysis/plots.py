"""Training plots for an experiment folder, each saved as PNG and SVG (atomically).

* ``learning_curves``: train/val loss, and the val metric with the exact step (hard) against
  the smooth forward, per estimator: mean over seeds with a ±1 std band;
* ``gradient_norms``: per-layer gradient L2 norm per epoch (log y);
* ``activation_histograms``: the smooth hidden outputs of seed 0 on the test set (HTAF piles
  its mass at 0 and 1; ReLU does not);
* ``binary_metric_bars``: the exact-binary test metric per estimator, with std error bars;
* ``model_stats``: every number a model reports per epoch (``epoch_stats``: firing rates,
  flip ratios...), one panel per statistic, mean over seeds per estimator;
* ``spike_rasters`` and ``membrane_traces``: from the runs' ``model_arrays.npz`` (the
  ``eval_arrays`` hook: ``spikes.LAYER``, ``membrane.LAYER``), the first test sample of each
  estimator's first seed, one column per layer.

``plot_experiment(exp_dir)`` draws them all from the files in the folder (the last three only
where the runs hold those statistics); ``run_figures(run_dir)`` draws the model figures of one
run into ``run_dir/plots``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt
import numpy as np

from htaf.config import family_of
from htaf.io import save_figure as io_save_figure

#: Headline metrics in order of preference: accuracy for classification (binary or not; AUROC
#: stands beside it in tables), RMSE for regression. A family may name its own (Family.metric).
PRIMARY = ("accuracy", "auroc", "rmse")


def family_metric(family: str | None) -> str | None:
    """The headline metric ``family`` names, if any (an unknown family names none)."""
    if family is None:
        return None
    from htaf.families import get_family

    try:
        return get_family(family).metric
    except ValueError:  # a family registered at run time in another process
        return None


def smooth_shown(spec: str) -> bool:
    """Whether tables and plots show ``spec``'s smooth forward (not where it has none)."""
    from htaf.estimators import has_smooth_forward

    try:
        return has_smooth_forward(spec)
    except ValueError:
        return True


def save_figure(fig: Any, out_dir: str | Path, stem: str) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` in ``out_dir`` and close it."""
    paths = io_save_figure(fig, out_dir, stem)
    plt.close(fig)
    return paths


def primary_metric(
    metric_names: Sequence[str], split: str = "test", family: str | None = None
) -> str | None:
    """The metric a table or plot leads with: the family's own (``Family.metric``) if it has
    one and it was measured, else accuracy, else AUROC, else RMSE."""
    names = set(metric_names)
    own = family_metric(family)
    if own and f"{split}_{own}_hard" in names:
        return own
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
    families = {family_of(r["config"]) for r in records}
    metric = primary_metric([k.replace("val_", "test_", 1) for k in val_names],
                            family=families.pop() if len(families) == 1 else None)  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for label, runs in groups.items():
        c = colors[label]
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            x, m, s = _curve(runs, lambda row, k=key: row.get(k, np.nan))
            _band(axes[0], x, m, s, color=c, linestyle=style, label=f"{label} {key[:-5]}")
        if metric:
            modes = (("hard", "-"), ("smooth", ":")) if smooth_shown(label) else (("hard", "-"),)
            for mode, style in modes:
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
    if not layers:  # no gradients at all (e.g. closed-form models): no figure
        return []
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


def smooth_activations(run_dir: str | Path) -> np.ndarray | None:
    """All smooth hidden outputs stored in a run's ``activations.npz``, flattened."""
    from htaf.train.run_folder import ACTIVATIONS, read_arrays

    arrays = read_arrays(Path(run_dir) / ACTIVATIONS)
    keys = [k for k in arrays if "smooth" in k] or [k for k in arrays if "hard" not in k]
    if not keys:
        return None
    return np.concatenate([np.asarray(arrays[k], dtype=float).ravel() for k in sorted(keys)])


def activation_histograms(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Histogram of the smooth hidden outputs (seed 0 of each estimator) on the test set."""
    per_est = {}
    for label, runs in _by_estimator(records).items():
        first = min(runs, key=lambda r: r["config"].get("seed", 0))
        values = smooth_activations(first["run_dir"])
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
    families = {family_of(row) for row in summary}
    family = families.pop() if len(families) == 1 else None
    metric = primary_metric(names, family=family) or "accuracy"
    key = f"test_{metric}_hard"
    rows = [r for r in summary if (r["metrics"].get(key) or {}).get("mean") is not None]
    labels = [
        r["estimator"]
        if len({x["dataset"] for x in rows}) == 1
        else f"{r['dataset']}\n{r['estimator']}"
        for r in rows
    ]
    means = [r["metrics"][key]["mean"] for r in rows]
    # One seed has no spread: no error bar rather than a bar of 0.
    stds = [(r["metrics"][key]["std"] or 0.0) if r["metrics"][key].get("n", 2) > 1 else 0.0
            for r in rows]  # fmt: skip
    single = all(r["metrics"][key].get("n", 2) <= 1 for r in rows)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1), 3.6))
    colors = _colors(labels)
    # Continuous reference rows (relu) have no step: hatch them so they read as a reference.
    hatches = ["" if _binary(r["estimator"]) else "//" for r in rows]
    bars = ax.bar(labels, means, yerr=None if single else stds, capsize=4,
                  color=[colors[lb] for lb in labels])  # fmt: skip
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


# -- model statistics: epoch_stats and eval_arrays -------------------------------------------------
#: At most this many statistics get a panel in ``model_stats``.
MAX_STAT_PANELS = 12


def _stat_names(records: Sequence[dict[str, Any]]) -> list[str]:
    names = {
        k
        for r in records
        for row in r.get("history", [])
        for k, v in (row.get("model_stats") or {}).items()
        if isinstance(v, int | float)
    }
    return sorted(names, key=lambda k: (_layer_order(k), k))[:MAX_STAT_PANELS]


#: Markers and line styles that tell the estimators apart where their curves coincide.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
LINESTYLES = ("-", "--", ":", "-.")


def model_stats(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Each ``model_stats`` number of the history over the epochs (mean over seeds, ±1 std)."""
    fig = model_stats_figure(records)
    return [] if fig is None else save_figure(fig, out_dir, "model_stats")


def model_stats_figure(records: Sequence[dict[str, Any]]) -> Any:
    """The figure :func:`model_stats` saves (None without statistics). The axes show plain
    values (no offset such as ``+3.05e-1``), each estimator has its own marker and line style,
    and a panel whose curves are the same for every estimator (e.g. the input spike rate,
    which the estimator cannot change) says so in its title."""
    names = _stat_names(records)
    if not names:
        return None
    groups = _by_estimator(records)
    colors = _colors(list(groups))
    styles = {
        label: {"marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}
        for i, label in enumerate(groups)
    }
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, layout="constrained"
    )
    for ax, name in zip(axes.ravel(), names, strict=False):
        means = []
        for label, runs in groups.items():
            if not any(
                name in (row.get("model_stats") or {}) for r in runs for row in r["history"]
            ):
                continue  # e.g. the ReLU reference has no firing rates
            x, m, s = _curve(
                runs, lambda row, k=name: (row.get("model_stats") or {}).get(k, np.nan)
            )
            means.append(m)
            _band(ax, x, m, s, color=colors[label], label=label, markersize=4, markevery=None,
                  alpha=0.85, **styles[label])  # fmt: skip
        same = len(means) > 1 and all(
            m.shape == means[0].shape
            and np.allclose(m, means[0], rtol=1e-9, atol=0, equal_nan=True)
            for m in means[1:]
        )
        ax.set(xlabel="epoch", title=f"{name}\n(identical for every estimator)" if same else name)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("model statistics per epoch, training batches (mean over seeds)")
    return fig


def read_model_arrays(run_dir: str | Path) -> dict[str, np.ndarray]:
    """The run's ``model_arrays.npz`` as a dict (empty if it has none)."""
    from htaf.train.run_folder import MODEL_ARRAYS, read_arrays

    return read_arrays(Path(run_dir) / MODEL_ARRAYS)


def _layers(arrays: dict[str, np.ndarray], kind: str) -> list[str]:
    names = [k.split(".", 1)[1] for k in arrays if k.startswith(f"{kind}.")]
    return sorted(names, key=lambda n: (n != "input", _layer_order(n)))


def _raster(ax: Any, spikes: np.ndarray, color: Any) -> None:
    """Spikes ``(T, neurons)`` as a neuron x time image: a spike is a dark cell (a smooth
    spike's value is its shade)."""
    cmap = matplotlib.colors.LinearSegmentedColormap.from_list("spikes", ["white", color])
    ax.imshow(np.clip(spikes.T, 0, 1), aspect="auto", cmap=cmap, vmin=0, vmax=1,
              interpolation="nearest", origin="lower")  # fmt: skip


def _trace(ax: Any, membrane: np.ndarray, threshold: float) -> None:
    """Membrane ``(T, k)``, one line per neuron, with the threshold dashed."""
    steps = np.arange(membrane.shape[0])
    for j in range(membrane.shape[1]):
        ax.plot(steps, membrane[:, j], marker=".", linewidth=1)
    ax.axhline(threshold, color="k", linestyle="--", linewidth=0.8)


def _first_seed_arrays(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for label, runs in _by_estimator(records).items():
        first = min(runs, key=lambda r: r["config"].get("seed", 0))
        arrays = read_model_arrays(first.get("run_dir", ""))
        if arrays:
            out[label] = arrays
    return out


def _grid_figure(
    per_row: dict[str, dict[str, np.ndarray]], kind: str, draw: Any, stem: str, title: str,
    out_dir: str | Path, xlabel: str, ylabel: str,
) -> list[Path]:  # fmt: skip
    layers = sorted({n for a in per_row.values() for n in _layers(a, kind)},
                    key=lambda n: (n != "input", _layer_order(n)))  # fmt: skip
    if not per_row or not layers:
        return []
    fig, axes = plt.subplots(
        len(per_row), len(layers), figsize=(3.2 * len(layers), 2.4 * len(per_row)),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    colors = _colors(list(per_row))
    for i, (label, arrays) in enumerate(per_row.items()):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            key = f"{kind}.{layer}"
            if key in arrays:
                draw(ax, arrays[key], arrays, colors[label])
            else:
                ax.axis("off")
            if i == 0:
                ax.set_title(layer)
            if j == 0:
                ax.set_ylabel(f"{label}\n{ylabel}", fontsize=8)
            if i == len(per_row) - 1:
                ax.set_xlabel(xlabel)
    fig.suptitle(title)
    return save_figure(fig, out_dir, stem)


def _draw_raster(ax: Any, values: np.ndarray, arrays: dict[str, np.ndarray], color: Any) -> None:
    _raster(ax, values[0], color)


def _draw_trace(ax: Any, values: np.ndarray, arrays: dict[str, np.ndarray], color: Any) -> None:
    _trace(ax, values[0], float(arrays.get("threshold", np.array(1.0))))


def spike_rasters(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Spike raster of the first test sample, one row per estimator, one column per layer."""
    return _grid_figure(
        _first_seed_arrays(records), "spikes", _draw_raster, "spike_raster",
        "spike rasters, first test sample, exact spikes (seed 0)", out_dir, "time step", "neuron",
    )  # fmt: skip


def membrane_traces(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Membrane of the most variable neurons for the first test sample (threshold dashed)."""
    return _grid_figure(
        _first_seed_arrays(records), "membrane", _draw_trace, "membrane_traces",
        "membrane traces, first test sample (threshold dashed; seed 0)", out_dir, "time step",
        "membrane",
    )  # fmt: skip


def run_figures(run_dir: str | Path, record: dict[str, Any] | None = None) -> list[Path]:
    """One run's model figures into ``run_dir/plots``: rasters and membrane traces of every
    sample in ``model_arrays.npz`` (one row per sample) and ``model_stats`` over its epochs."""
    from htaf.train.run_folder import PLOTS, load_run

    run_dir = Path(run_dir)
    record = record if record is not None else load_run(run_dir).record()
    out = run_dir / PLOTS
    arrays = read_model_arrays(run_dir)
    paths = model_stats([record], out)
    if arrays:
        n = max((v.shape[0] for k, v in arrays.items() if k.startswith("spikes.")), default=0)
        per_sample = {
            f"sample {i}": {k: (v[i : i + 1] if "." in k else v) for k, v in arrays.items()}
            for i in range(n)
        }
        raster = ("spikes", _draw_raster, "spike_raster", "spike rasters (exact spikes)")
        trace = ("membrane", _draw_trace, "membrane_traces", "membrane traces (threshold dashed)")
        paths += _grid_figure(per_sample, *raster, out, "time step", "neuron")
        paths += _grid_figure(per_sample, *trace, out, "time step", "membrane")
    return paths


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
    # Drawn into a new folder that replaces the old one only when every plot is drawn: a
    # damaged run file met half way leaves the experiment's plots as they were.
    scratch = Path(tempfile.mkdtemp(prefix=".plots-", dir=exp_dir))
    try:
        paths = learning_curves(records, scratch) + gradient_norms(records, scratch)
        paths += activation_histograms(records, scratch) + binary_metric_bars(summary, scratch)
        paths += model_stats(records, scratch) + spike_rasters(records, scratch)
        paths += membrane_traces(records, scratch)
        _replace_folder(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return [out / p.relative_to(scratch) for p in paths]


def _replace_folder(new: Path, old: Path) -> None:
    """Put folder ``new`` where ``old`` is: two renames, then the old one is removed."""
    stale = old.with_name(f"{new.name}-old")
    if old.exists():
        old.rename(stale)
    new.rename(old)
    shutil.rmtree(stale, ignore_errors=True)
