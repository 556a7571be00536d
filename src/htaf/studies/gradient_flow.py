"""The paper's gradient-vanishing study: does the layer-1 gradient survive three step layers?

A [256, 256, 128] MLP without batch norm is trained with each activation below; the products
alpha0·alpha1 = 22 = beta0 give every binary one the same slope at 0 (22/4). The record is the
L2 norm of the layer-1 weight gradient, averaged over each epoch's batches (``run_one``'s
``grad_norm["layer1"]``). The paper reports that htaf(2, 11) keeps its gradient while
htaf(8, 2.75), htaf(11, 2) and sigmoid(22x) vanish: HTAF's tail decays like exp(-2·alpha0·|x|),
the scaled sigmoid's like exp(-beta0·|x|).

Single runs are noisy (which hidden units end up near their threshold is down to the seed), so
the study trains every activation on several seeds and reports the geometric mean over seeds,
i.e. the mean of the log norms the paper plots.

    import htaf
    result = htaf.studies.gradient_flow("out/gradient-flow", epochs=20, seeds=3)  # = run(...)
    result["ratios"]["scaled_sigmoid(22)"]      # last-epoch htaf(2,11) / sigmoid(22x)

``htaf study gradient-flow`` calls :func:`run` with the same defaults (``DEFAULTS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from htaf.config import RunConfig
from htaf.io import atomic_write_json
from htaf.studies import callable_study

LABELS = ("htaf(2,11)", "htaf(8,2.75)", "htaf(11,2)", "scaled_sigmoid(22)", "relu")
WIDTHS = (256, 256, 128)
#: Adam at lr 1e-2, no batch norm. Inputs are standardized, so at small learning rates the
#: pre-activations stay near 0, where all four binary activations have slope ~22/4 and keep
#: about the same layer-1 norm; lr 1e-2 drives them into the tails, where α₀ decides which
#: ones keep a gradient. The measured runs are in the README's gradient-flow table.
DEFAULTS: dict[str, Any] = {
    "dataset": "breast_cancer",
    "epochs": 80,
    "seeds": 5,
    "optimizer": "adam",
    "lr": 1e-2,
    "batch_size": 64,
}


def configs(
    *, dataset: str = DEFAULTS["dataset"], epochs: int = DEFAULTS["epochs"], seed: int = 0,
    widths: tuple[int, ...] = WIDTHS, labels: tuple[str, ...] = LABELS, **overrides: Any,
) -> list[RunConfig]:  # fmt: skip
    """One run config per activation label, identical apart from the activation."""
    settings = {k: v for k, v in DEFAULTS.items() if k not in ("dataset", "epochs", "seeds")}
    settings.update(overrides)
    base = RunConfig(
        family="dhn", dataset=dataset, model={"widths": list(widths), "batch_norm": False},
        epochs=epochs,
        seed=seed, **settings,
    )  # fmt: skip
    return [base.replace(estimator=label) for label in labels]


def layer1_norms(record: dict[str, Any]) -> list[float]:
    """Per-epoch mean L2 norm of the layer-1 weight gradient from a run's history."""
    return [
        float((row.get("grad_norm") or {}).get("layer1", float("nan"))) for row in record["history"]
    ]


def run(
    out_dir: str | Path,
    *,
    seeds: int = DEFAULTS["seeds"],
    progress: bool = True,
    jobs: int = 1,
    **kwargs: Any,
) -> dict[str, Any]:
    """Train one network per label and seed; write the JSON files and the plot; return them.

    ``gradient_flow.json`` maps each label to its per-epoch norms (geometric mean over seeds);
    ``gradient_flow_seeds.json`` keeps every seed's curve. ``kwargs`` go to :func:`configs`
    (dataset, epochs, widths, labels, lr, ...); ``seed=`` alone runs that single seed.
    """
    from htaf.experiment import run_grid, validate

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    out_dir = Path(out_dir)
    seed_list = [kwargs.pop("seed")] if "seed" in kwargs else list(range(seeds))
    cfgs = [c for seed in seed_list for c in configs(seed=seed, **kwargs)]
    validate(cfgs)
    records = run_grid(cfgs, out_dir / "runs", jobs=jobs, progress=progress)
    per_seed: dict[str, dict[str, list[float]]] = {}
    for cfg, rec in zip(cfgs, records, strict=True):
        per_seed.setdefault(cfg.estimator, {})[str(cfg.seed)] = layer1_norms(rec)
    norms = {label: geometric_mean(curves.values()) for label, curves in per_seed.items()}
    atomic_write_json(out_dir / "gradient_flow.json", norms, sort_keys=False)
    atomic_write_json(out_dir / "gradient_flow_seeds.json", per_seed, sort_keys=False)
    settings = {k: v for k, v in cfgs[0].to_dict().items() if k not in ("estimator", "seed")}
    atomic_write_json(out_dir / "config.json", {**settings, "seeds": seed_list}, sort_keys=False)
    c = cfgs[0]
    options = ",".join(f"{k}={v}" for k, v in c.data_options.items())
    data = f"{c.dataset}({options})" if options else c.dataset
    title = f"{data}, {c.optimizer} lr={c.lr:g}, seeds {seed_list[0]}..{seed_list[-1]}"
    plots = plot(norms, out_dir, title, per_seed=per_seed)
    return {
        "norms": norms,
        "per_seed": per_seed,
        "ratios": ratios(norms),
        "seed_ratios": {
            s: ratios({k: v[s] for k, v in per_seed.items()}) for s in map(str, seed_list)
        },
        "plots": plots,
        "records": records,
    }


def geometric_mean(curves: Any) -> list[float]:
    """Per-epoch geometric mean of several curves; an exact zero (underflow) gives zero."""
    import numpy as np

    stack = np.asarray(list(curves), dtype=float)
    with np.errstate(divide="ignore"):
        return np.exp(np.log(stack).mean(axis=0)).tolist()


def ratios(norms: dict[str, list[float]], reference: str = "htaf(2,11)") -> dict[str, float]:
    """Last-epoch layer-1 norm of ``reference`` divided by each other label's."""
    if reference not in norms or not norms[reference]:
        return {}
    ref = norms[reference][-1]
    return {
        k: ref / v[-1] if v and v[-1] > 0 else float("inf")
        for k, v in norms.items()
        if k != reference
    }


def plot(
    norms: dict[str, list[float]],
    out_dir: str | Path,
    settings: str = "",
    per_seed: dict[str, dict[str, list[float]]] | None = None,
) -> list[Path]:
    """log10 of the mean layer-1 gradient L2 norm per epoch, one line per activation; with
    ``per_seed``, a band from the lowest to the highest seed."""
    import numpy as np

    from htaf.analysis.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, values in norms.items():
        v = np.asarray(values, dtype=float)
        x = np.arange(1, len(v) + 1)
        with np.errstate(divide="ignore"):
            (line,) = ax.plot(x, np.log10(v), marker="o", markersize=2, label=label)
            if per_seed and len(per_seed.get(label, {})) > 1:
                logs = np.log10(np.asarray(list(per_seed[label].values()), dtype=float))
                logs = np.maximum(logs, -45)  # exact zeros (underflow) drawn at the floor
                ax.fill_between(x, logs.min(0), logs.max(0), color=line.get_color(), alpha=0.12)
    title = "gradient flow, MLP without batch norm" + (f"\n{settings}" if settings else "")
    ax.set(xlabel="epoch", ylabel="log10 mean L2 norm of layer-1 gradient", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir, "gradient_flow")


callable_study(__name__)  # htaf.studies.gradient_flow(...) is run(...)
