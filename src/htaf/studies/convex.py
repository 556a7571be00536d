"""Ergen et al.'s benchmark: convex threshold networks beside step networks trained by gradient.

Ergen, Gulluk, Lacotte, Pilanci, "Globally Optimal Training of Neural Networks with Threshold
Activation Functions", ICLR 2023 (arXiv 2303.03382); official code pilancilab/Threshold-networks.

The data (the teacher of the official ``main.ipynb``): ``numpy.random.RandomState(seed)`` draws
``X`` (n × d) and ``X_test`` (n_test × d) from N(0, 1), appends a ones column, and labels each
point with ``sign(tanh(tanh(X W1) W2) W3)`` (``+1`` at 0), ``W1, W2, W3 ~ U[-1, 1]`` of sizes
``(d+1) × 20``, ``20 × 20``, ``20``. ``beta = 1e-3 · n``.

The rows:

* ``convex two-layer``: the Lasso of :mod:`htaf.families.convex.model` with ``directions``
  Gaussian directions, solved to a certified relative gap (``tol``);
* ``convex deep (PI)`` and ``convex deep (SVM)``: the shattered program of
  :mod:`htaf.families.convex.deep`, rebuilt by pseudo-inverse or linear SVM;
* ``step + STE``, ``step + ReLU``, ``step + leaky ReLU``, ``step + clipped ReLU``: the official
  baselines, bias-free ``(d+1) → 1000 → 100 → 1`` networks with the exact step ``1{x >= 0}``
  forward and the backward rule ``1``, ``1{x >= 0}``, ``1 if x >= 0 else 0.01``,
  ``1{0 <= x <= 1}``, trained full batch by SGD (lr 0.01, ReduceLROnPlateau factor 0.5) for
  ``epochs`` epochs on the official loss ``MSE/2 + beta (||W1||_F + ||W2||_F) / (2n)``;
* ``HTAF``: the same network and training with HTAF(2, 11) as the activation, evaluated with
  the exact step.

**The objective every row is scored by** (:mod:`htaf.families.convex.model`): for a network
whose last hidden layer is steps ``h_j(x) ∈ {0, 1}`` and whose output is
``f(x) = sum_j a_j h_j(x)`` (amplitudes folded into ``a``), evaluated with exact steps on the
training data,

    objective = J(f) / n,    J(f) = 1/2 sum_i (f(x_i) - y_i)^2 + beta sum_j |a_j|,

the weight-decay objective of Ergen et al. minimised over the rescalings that leave ``f``
unchanged (earlier layers feed steps and are scale free). For the two-layer convex model it
is the Lasso optimum divided by n, for the deep one the shattered program's; for a baseline,
``a = W3``. The baselines are trained on their own (official) loss and scored on ``J``.

Wall-clock time: the convex rows time the arrangement, the solve and the rebuild (as the
official code does); the trained rows accumulate the time of their training steps only,
not of the evaluations. Results: ``results.json``, ``table.md``, ``config.json`` and the
figure ``convex.png`` / ``.svg`` (training accuracy, test accuracy and objective against
time).

    from htaf.studies import convex
    result = convex.run("out/convex")
    result["objective_check"]      # convex objective <= the best baseline's?
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from htaf.io import atomic_write_json, atomic_write_text
from htaf.threads import one_torch_thread

if TYPE_CHECKING:
    import numpy as np

# numpy is imported in the functions that use it: `htaf study --help` imports this module
# for its defaults, and answers without loading numpy or torch.

DEFAULTS: dict[str, Any] = {
    "n": 100,
    "d": 20,
    "n_test": 2000,
    "seed": 42,
    "beta_per_sample": 1e-3,
    "directions": 10_000,
    "width": 1000,
    "widths": (1000, 100),
    "epochs": 2000,
    "lr": 0.01,
    "eval_every": 10,
    "tol": 1e-6,
}

#: Backward rules of the official baselines, as functions of the pre-activation.
RULES: dict[str, Callable[[Any], Any]] = {
    "STE": lambda x: x.new_ones(x.shape),
    "ReLU": lambda x: (x >= 0).to(x.dtype),
    "leaky ReLU": lambda x: 0.01 + 0.99 * (x >= 0).to(x.dtype),
    "clipped ReLU": lambda x: ((x >= 0) & (x <= 1)).to(x.dtype),
}
BASELINES = (*(f"step + {rule}" for rule in RULES), "HTAF")


def teacher(n: int, d: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    """The official notebook's data (module doc); ``X`` without the ones column."""
    import numpy as np

    rng = np.random.RandomState(seed)
    X, X_test = rng.randn(n, d), rng.randn(n_test, d)
    W1, W2 = rng.uniform(-1, 1, (d + 1, 20)), rng.uniform(-1, 1, (20, 20))
    W3 = rng.uniform(-1, 1, 20)

    def label(Z: np.ndarray) -> np.ndarray:
        Za = np.hstack([Z, np.ones((len(Z), 1))])
        return np.where(np.tanh(np.tanh(Za @ W1) @ W2) @ W3 >= 0, 1.0, -1.0)

    return {"X": X, "y": label(X), "X_test": X_test, "y_test": label(X_test)}


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of ``sign(pred)`` (``+1`` at 0) against ±1 labels."""
    import numpy as np

    return float(np.mean(np.where(pred >= 0, 1.0, -1.0) == y))


# -- the convex rows -----------------------------------------------------------------------------
def convex_rows(
    data: dict[str, np.ndarray], beta: float, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    from htaf.families.convex.deep import fit_deep
    from htaf.families.convex.model import fit_two_layer

    X, y, n = data["X"], data["y"], len(data["X"])
    common = {"beta": beta, "rng": settings["seed"], "tol": settings["tol"]}
    deep = partial(fit_deep, X, y, width=settings["width"], **common)
    fits = [
        ("convex two-layer",
         partial(fit_two_layer, X, y, n_directions=settings["directions"], **common)),
        ("convex deep (PI)", partial(deep, reconstruction="pinv")),
        ("convex deep (SVM)", partial(deep, reconstruction="svm")),
    ]  # fmt: skip
    rows = []
    for label, fit in fits:
        t0 = time.perf_counter()
        net = fit()
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "label": label,
                "kind": "convex",
                "time_s": seconds,
                "objective": net.objective(X, y, beta) / n,
                "program_objective": net.info["objective"] / n,
                "train_accuracy": accuracy(net.predict(X), y),
                "test_accuracy": accuracy(net.predict(data["X_test"]), data["y_test"]),
                "units": int(net.output.size),
                "solver": net.info,
            }
        )
    return rows


# -- the trained rows ----------------------------------------------------------------------------
def _network(d_in: int, widths: tuple[int, ...], label: str) -> Any:
    """The bias-free step network of the official baselines with ``label``'s activation."""
    import torch
    from torch import nn

    from htaf.estimators import Estimator
    from htaf.estimators import get as get_estimator

    class StepRule(Estimator):
        """forward: the exact step 1{x >= 0}; backward: one of the official rules."""

        name = "official_rule"
        has_primitive = False

        def __init__(self, rule: Callable[[Any], Any]):
            super().__init__()
            self._rule = rule

        def smooth(self, x: torch.Tensor) -> torch.Tensor:
            return self.hard(x)

        def grad(self, x: torch.Tensor) -> torch.Tensor:
            return self._rule(x)

    def activation() -> nn.Module:
        if label == "HTAF":
            return get_estimator("htaf", alpha0=2, alpha1=11)
        return StepRule(RULES[label.removeprefix("step + ")])

    sizes = [d_in, *widths]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b, bias=False), activation()]
    layers.append(nn.Linear(sizes[-1], 1, bias=False))
    return nn.Sequential(*layers)


def train_baseline(
    data: dict[str, np.ndarray], beta: float, label: str, settings: dict[str, Any]
) -> dict[str, Any]:
    """Train one baseline (module doc); every ``eval_every`` epochs its training time so far,
    accuracies and objective (exact steps)."""
    import numpy as np
    import torch

    from htaf.estimators import harden

    torch.manual_seed(settings["seed"])
    n = len(data["X"])
    X = torch.tensor(np.hstack([data["X"], np.ones((n, 1))]), dtype=torch.float32)
    Xt = torch.tensor(
        np.hstack([data["X_test"], np.ones((len(data["X_test"]), 1))]), dtype=torch.float32
    )
    y = torch.tensor(data["y"], dtype=torch.float32).reshape(-1, 1)
    net = _network(X.shape[1], tuple(settings["widths"]), label)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    opt = torch.optim.SGD(net.parameters(), lr=settings["lr"])
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, eps=1e-12)
    curve: dict[str, list[float]] = {
        "epoch": [],
        "time_s": [],
        "train_accuracy": [],
        "objective": [],
        "test_accuracy": [],
    }
    elapsed = 0.0

    def evaluate(epoch: int) -> None:
        with torch.no_grad(), harden(net):
            pred = net(X).double().numpy().reshape(-1)
            w3 = linears[-1].weight.double().numpy()
            test = net(Xt).double().numpy().reshape(-1)
        curve["epoch"].append(epoch)
        curve["time_s"].append(elapsed)
        curve["train_accuracy"].append(accuracy(pred, data["y"]))
        r = pred - data["y"]
        curve["objective"].append((0.5 * float(r @ r) + beta * float(np.abs(w3).sum())) / n)
        curve["test_accuracy"].append(accuracy(test, data["y_test"]))

    evaluate(0)
    for epoch in range(1, settings["epochs"] + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(X), y) / 2
        loss = loss + beta * (linears[0].weight.norm() + linears[1].weight.norm()) / (2 * n)
        loss.backward()
        opt.step()
        plateau.step(float(loss.detach()))
        elapsed += time.perf_counter() - t0
        if epoch % settings["eval_every"] == 0 or epoch == settings["epochs"]:
            evaluate(epoch)
    return {
        "label": label,
        "kind": "trained",
        "time_s": elapsed,
        "objective": curve["objective"][-1],
        "train_accuracy": curve["train_accuracy"][-1],
        "test_accuracy": curve["test_accuracy"][-1],
        "curve": curve,
    }


# -- the study -----------------------------------------------------------------------------------
def check_settings(settings: dict[str, Any]) -> None:
    """ValueError naming the first bad setting."""
    for key in ("n", "d", "n_test", "directions", "width", "epochs", "eval_every"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    if settings["n"] < 2:
        raise ValueError(f"n must be at least 2, got {settings['n']}")
    for key in ("beta_per_sample", "lr"):
        if not isinstance(settings[key], (int, float)) or not settings[key] > 0:
            raise ValueError(f"{key} must be a number > 0, got {settings[key]!r}")
    if not 0 < settings["tol"] < 1:
        raise ValueError(f"tol must be in (0, 1), got {settings['tol']!r}")
    if not settings["widths"] or min(settings["widths"]) <= 0:
        raise ValueError(f"widths must be positive integers, got {settings['widths']!r}")
    unknown = set(settings.get("baselines", BASELINES)) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baseline {sorted(unknown)[0]!r} (known: {', '.join(BASELINES)})")


def run(out_dir: str | Path, *, progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Run every row, write the results, the table and the figure; return them.

    ``overrides``: any key of :data:`DEFAULTS`, and ``baselines`` (a subset of
    :data:`BASELINES`). ``result["objective_check"]`` compares the best convex objective with
    the best trained one (``holds``: convex <= trained).
    """
    unknown = set(overrides) - set(DEFAULTS) - {"baselines"}
    if unknown:
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r} (known: {', '.join(DEFAULTS)})")
    settings = {**DEFAULTS, **overrides}
    settings["widths"] = tuple(settings["widths"])
    settings["baselines"] = tuple(settings.get("baselines", BASELINES))
    check_settings(settings)
    out_dir = Path(out_dir)
    data = teacher(settings["n"], settings["d"], settings["n_test"], settings["seed"])
    beta = settings["beta_per_sample"] * settings["n"]
    rows = convex_rows(data, beta, settings)
    for row in rows:
        _say(progress, f"{row['label']}: objective {row['objective']:.5f} in {row['time_s']:.2f} s")
    for label in settings["baselines"]:
        with one_torch_thread():
            row = train_baseline(data, beta, label, settings)
        _say(progress, f"{label}: objective {row['objective']:.5f} in {row['time_s']:.1f} s")
        rows.append(row)
    check = objective_check(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {
        **settings,
        "beta": beta,
        "widths": list(settings["widths"]),
        "baselines": list(settings["baselines"]),
    }
    atomic_write_json(out_dir / "config.json", config, sort_keys=False)
    atomic_write_json(
        out_dir / "results.json", {"rows": rows, "objective_check": check}, sort_keys=False
    )
    table = markdown_table(rows)
    atomic_write_text(out_dir / "table.md", table + "\n")
    plots = plot(rows, out_dir, f"teacher n={settings['n']}, d={settings['d']}, beta={beta:g}")
    return {
        "rows": rows,
        "objective_check": check,
        "table": table,
        "plots": plots,
        "config": config,
    }


def objective_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The best convex and the best trained objective, and whether convex <= trained."""
    convex = min((r for r in rows if r["kind"] == "convex"), key=lambda r: r["objective"])
    trained = [r for r in rows if r["kind"] == "trained"]
    if not trained:
        return {"best_convex": convex["label"], "convex_objective": convex["objective"]}
    best = min(trained, key=lambda r: r["objective"])
    two = next(r for r in rows if r["label"] == "convex two-layer")
    return {
        "best_convex": convex["label"],
        "convex_objective": convex["objective"],
        "best_trained": best["label"],
        "trained_objective": best["objective"],
        "holds": bool(convex["objective"] <= best["objective"]),
        "two_layer_objective": two["objective"],
        "two_layer_holds": bool(two["objective"] <= best["objective"]),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | objective J/n | train accuracy | test accuracy | time (s) | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] == "convex":
            s = r["solver"]
            note = f"{r['units']} units; gap {s['gap']:.1e} (optimal: {s['optimal']})"
        else:
            note = "exact step forward" if r["label"] == "HTAF" else ""
        lines.append(
            f"| {r['label']} | {r['objective']:.5f} | {r['train_accuracy']:.3f} | "
            f"{r['test_accuracy']:.3f} | {r['time_s']:.2f} | {note} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out_dir: str | Path, title: str) -> list[Path]:
    """Training accuracy, test accuracy and objective against wall-clock time (as the paper)."""
    import numpy as np

    from htaf.analysis.plots import plt, save_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    cmap = plt.get_cmap("tab10")
    panels = (
        ("train_accuracy", "training accuracy"),
        ("test_accuracy", "test accuracy"),
        ("objective", "objective J / n"),
    )
    for i, row in enumerate(rows):
        color = cmap(i % 10)
        for ax, (key, _) in zip(axes, panels, strict=True):
            if row["kind"] == "convex":
                t = max(row["time_s"], 1e-3)
                ax.axhline(row[key], color=color, linestyle="--", linewidth=1)
                ax.plot([t], [row[key]], marker="*", markersize=12, color=color, label=row["label"])
            else:
                c = row["curve"]
                ax.plot(np.maximum(c["time_s"], 1e-3), c[key], color=color, label=row["label"])
    for ax, (key, name) in zip(axes, panels, strict=True):
        ax.set_xscale("log")
        ax.set(xlabel="wall-clock time (s)", ylabel=name, title=name)
        if key == "objective":
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"convex threshold networks vs trained step networks ({title})")
    return save_figure(fig, out_dir, "convex")


def plot_beta_path(path: dict[str, Any], out_dir: str | Path, title: str) -> list[Path]:
    """``beta_path.png`` / ``.svg``: the mean validation loss of ``beta="auto"``'s
    cross-validation against beta (log scale), each fold's loss faintly, the hidden units
    (nonzeros) of the first fold on a second axis, and the chosen beta marked.

    ``path``: :meth:`htaf.families.convex.path.BetaPath.info` (a fitted model's
    ``info["path"]``, an estimator's ``beta_path_``). ValueError if it holds no validation.
    """
    import numpy as np

    from htaf.analysis.plots import plt, save_figure

    if not isinstance(path, dict) or "validation" not in path or "betas" not in path:
        raise ValueError("path: expected a beta path with 'betas' and 'validation' (beta='auto')")
    betas = np.asarray(path["betas"], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for fold in path.get("fold_validation", []):
        ax.plot(betas, fold, color="tab:blue", alpha=0.2, linewidth=1)
    ax.plot(betas, path["validation"], color="tab:blue", marker="o", label="mean validation loss")
    chosen = path.get("chosen")
    if chosen is not None:
        ax.axvline(
            betas[chosen], color="tab:red", linestyle="--", label=f"chosen beta {betas[chosen]:.3g}"
        )
    ax.set(xscale="log", xlabel="beta", ylabel="validation loss", title=title)
    ax.grid(alpha=0.3, which="both")
    twin = ax.twinx()
    twin.plot(betas, path["nonzeros"], color="tab:gray", linestyle=":", label="hidden units")
    twin.set_ylabel("hidden units (first fold)")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8)
    return save_figure(fig, out_dir, "beta_path")


def _say(progress: bool, text: str) -> None:
    if progress:
        import sys

        print(text, file=sys.stderr, flush=True)
