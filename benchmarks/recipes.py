"""HTAF in the peers' own training recipes, beside each recipe's own surrogate.

    python benchmarks/recipes.py                       # every recipe, 3 seeds
    python benchmarks/recipes.py --recipes spikingjelly larq --seeds 0 1 2 3 4

Each recipe is re-implemented from its library's documentation, on scikit-learn's digits (8x8,
inputs / 16; a stratified 80/20 split, seed 0), with the library's own defaults where a user
would keep them. Only the spike function / activation quantizer changes between rows:

* ``htaf``: what a user gets by typing "htaf" (``htaf(auto)``: alpha0 set on the first batch);
* ``htaf(2,11)``: the paper's constants (the default before htaf(auto));
* ``own``: the recipe's own surrogate.

The recipes:

* ``spikingjelly``: ``LIFNode(tau=2.0)`` with its other defaults (v_reset=0, hard reset,
  detach_reset=False), multi-step, 64-128-10, Poisson input T=8, MSE between the output firing
  rate and the one-hot label, Adam 1e-3, batch 64, 5 epochs; own: ``surrogate.ATan()``.
* ``snntorch_rate``: tutorial 6's set-up: ``Leaky(beta=0.5, init_hidden=True)``, 64-128-10,
  the image fed directly at each of T=25 steps, ``SF.ce_rate_loss()`` on output spikes, Adam
  1e-2, batch 128, 5 epochs; own: ``surrogate.atan()`` (Leaky's default).
* ``snntorch_membrane``: tutorial 5's set-up: ``Leaky(beta=0.95)``, T=25, direct input,
  cross-entropy on the output membrane at every step, Adam 5e-4, batch 128, 5 epochs; own: atan.
* ``norse``: Norse's current-based LIF (``LIFParameters`` defaults: tau_syn_inv=200,
  tau_mem_inv=100, v_th=1, v_reset=0, dt=1e-3, reset detached), 64-128 LIF then a leaky
  integrator read out as its maximum over T=32 steps (from the first step that input
  reaches), Poisson input, log-softmax + NLL, Adam 2e-3, batch 64, 5 epochs; own: SuperSpike
  with alpha=100 (htaf's ``fast_sigmoid(k=100)``).
* ``compare_dhn``, ``compare_snn``, ``compare_bnn``, ``compare_icbm`` (only when named, or
  with ``--recipes all``: minutes each): ``htaf.compare(family=...)`` with the family's defaults,
  own = the first non-HTAF row of its default grid, scored by its headline exact-binary metric
  (AUROC on binary data, else accuracy).
* ``larq``: Larq's BinaryNet quickstart on 8x8 images (padding "same" so the three 3x3
  convolutions and two poolings fit): ste_sign weights with weight_clip, no bias,
  BatchNorm(scale=False) after each layer, the first layer's input not quantized, Adam 1e-3,
  batch 64, 6 epochs; own: ``ste_sign`` (htaf's ``ste_clipped``).

Each run reports the exact-step test accuracy (``htaf.harden``), the accuracy of the training
forward, and the mean |dL/dW| of the first layer on the first batch. The target: in every
recipe, ``htaf`` reaches at least ``own`` - 0.02 (mean over seeds). Needs ``htaf[interop]``
for the SpikingJelly and snnTorch recipes (they are skipped, and said so, where missing).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from tqdm import tqdm

import htaf
from htaf.estimators import get as get_estimator
from htaf.families.bnn.layers import QuantConv2d, QuantLinear
from htaf.io import atomic_write_json

ROWS = ("htaf", "htaf(2,11)", "own")
TARGET = 0.02


def digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    X, y = load_digits(return_X_y=True)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    return X[tr], y[tr], X[te], y[te]


def batches(n: int, size: int, gen: torch.Generator) -> list[Tensor]:
    order = torch.randperm(n, generator=gen)
    return [order[i : i + size] for i in range(0, n, size)]


def fit(
    model: nn.Module,
    loss_of: Callable[[Tensor, Tensor], Tensor],
    predict: Callable[[Tensor], Tensor],
    first: nn.Parameter,
    *,
    lr: float,
    epochs: int,
    batch: int,
    seed: int,
    data: tuple[Tensor, Tensor, Tensor, Tensor],
    after_step: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Adam on ``loss_of(x, y)``; test accuracy in the training forward and with exact steps."""
    Xtr, ytr, Xte, yte = data
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    grad0 = None
    for _ in range(epochs):
        model.train()
        for idx in batches(len(ytr), batch, gen):
            loss = loss_of(Xtr[idx], ytr[idx])
            opt.zero_grad()
            loss.backward()
            if grad0 is None:
                grad0 = float(first.grad.abs().mean()) if first.grad is not None else 0.0
            opt.step()
            after_step()
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1234)  # the same test spikes for every row
        smooth = float((predict(Xte) == yte).float().mean())
        torch.manual_seed(1234)
        with htaf.harden(model):
            hard = float((predict(Xte) == yte).float().mean())
    return {"acc_hard": hard, "acc_train_forward": smooth, "grad_w1": grad0 or 0.0}


def poisson(x: Tensor, steps: int) -> Tensor:
    return (torch.rand(steps, *x.shape) < x).float()


# -- SpikingJelly ----------------------------------------------------------------------------
def spikingjelly_net(row: str, seed: int) -> nn.Module:
    """SpikingJelly's multi-step LIF network, 64-128-10, with ``row``'s surrogate."""
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    from htaf.interop.spikingjelly import surrogate as htaf_surrogate

    def spike() -> nn.Module:
        return surrogate.ATan() if row == "own" else htaf_surrogate(row)

    torch.manual_seed(seed)
    net = nn.Sequential(
        layer.Linear(64, 128), neuron.LIFNode(tau=2.0, surrogate_function=spike()),
        layer.Linear(128, 10), neuron.LIFNode(tau=2.0, surrogate_function=spike()),
    )  # fmt: skip
    functional.set_step_mode(net, "m")
    return net


def spikingjelly_rates(net: nn.Module, x: Tensor) -> Tensor:
    """Output firing rates over T = 8 Poisson steps, the state reset before and after."""
    from spikingjelly.activation_based import functional

    functional.reset_net(net)
    out = net(poisson(x, 8)).mean(0)
    functional.reset_net(net)
    return out


def rate_mse(out: Tensor, y: Tensor) -> Tensor:
    return nn.functional.mse_loss(out, nn.functional.one_hot(y, 10).float())


def spikingjelly(row: str, seed: int, data: tuple, epochs: int = 5) -> dict[str, float]:
    net = spikingjelly_net(row, seed)
    return fit(net, lambda x, y: rate_mse(spikingjelly_rates(net, x), y),
               lambda x: spikingjelly_rates(net, x).argmax(1), net[0].weight, lr=1e-3,
               epochs=epochs, batch=64, seed=seed, data=data)  # fmt: skip


def diagnose_spikingjelly(rows: list[str], data: tuple) -> str:
    """``htaf.diagnose`` at initialisation (seed 0) on the recipe's first 64 training images."""
    x, y = data[0][:64], data[1][:64]
    parts = []
    for row in (r for r in rows if r != "own"):
        report = htaf.diagnose(spikingjelly_net(row, seed=0), (x, y), rate_mse,
                               reference="atan", forward=spikingjelly_rates)  # fmt: skip
        parts.append(f"{row}: {report.verdict}\n{report.table()}\n{report.suggestion}")
    return "\n\n".join(parts)


# -- snnTorch --------------------------------------------------------------------------------
def _snntorch_spike(row: str) -> Any:
    from snntorch import surrogate

    from htaf.interop.snntorch import spike_grad

    return surrogate.atan() if row == "own" else spike_grad(row)


def snntorch_rate(row: str, seed: int, data: tuple, epochs: int = 5) -> dict[str, float]:
    import snntorch as snn
    from snntorch import functional as SF
    from snntorch import utils

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(64, 128), snn.Leaky(beta=0.5, spike_grad=_snntorch_spike(row), init_hidden=True),
        nn.Linear(128, 10),
        snn.Leaky(beta=0.5, spike_grad=_snntorch_spike(row), init_hidden=True, output=True),
    )  # fmt: skip
    ce_rate = SF.ce_rate_loss()

    def spikes(x: Tensor) -> Tensor:
        utils.reset(net)
        return torch.stack([net(x)[0] for _ in range(25)])

    return fit(net, lambda x, y: ce_rate(spikes(x), y), lambda x: spikes(x).sum(0).argmax(1),
               net[0].weight, lr=1e-2, epochs=epochs, batch=128, seed=seed, data=data)  # fmt: skip


class _TwoLeaky(nn.Module):
    """snnTorch tutorial 5's network: explicit membranes, recorded at every step."""

    def __init__(self, row: str):
        import snntorch as snn

        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 128), nn.Linear(128, 10)
        self.lif1 = snn.Leaky(beta=0.95, spike_grad=_snntorch_spike(row))
        self.lif2 = snn.Leaky(beta=0.95, spike_grad=_snntorch_spike(row))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk_rec, mem_rec = [], []
        for _ in range(25):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk_rec.append(spk2)
            mem_rec.append(mem2)
        return torch.stack(spk_rec), torch.stack(mem_rec)


def snntorch_membrane(row: str, seed: int, data: tuple, epochs: int = 5) -> dict[str, float]:
    torch.manual_seed(seed)
    net = _TwoLeaky(row)

    def loss_of(x: Tensor, y: Tensor) -> Tensor:
        mem = net(x)[1]
        return sum(nn.functional.cross_entropy(m, y) for m in mem)

    return fit(net, loss_of, lambda x: net(x)[0].sum(0).argmax(1), net.fc1.weight, lr=5e-4,
               epochs=epochs, batch=128, seed=seed, data=data)  # fmt: skip


# -- Norse -----------------------------------------------------------------------------------
class _NorseLIF(nn.Module):
    """Norse's current-based LIF step (``lif_feed_forward_step``) with its default parameters."""

    def __init__(self, spike: nn.Module, dt: float = 1e-3):
        super().__init__()
        self.spike, self.a_mem, self.a_syn = spike, dt * 100.0, dt * 200.0

    def forward(self, currents: Tensor) -> Tensor:
        v = i = torch.zeros_like(currents[0])
        out = []
        for x in currents:
            v = v + self.a_mem * (-v + i)
            i = i - self.a_syn * i
            z = self.spike(v - 1.0)
            v = (1 - z.detach()) * v  # reset to v_reset = 0, detached as in Norse
            i = i + x
            out.append(z)
        return torch.stack(out)


class _NorseNet(nn.Module):
    def __init__(self, spike: nn.Module):
        super().__init__()
        self.fc1, self.lif, self.fc2 = nn.Linear(64, 128), _NorseLIF(spike), nn.Linear(128, 10)

    def forward(self, x: Tensor) -> Tensor:
        z = self.lif(self.fc1(poisson(x, 32)))
        v = i = torch.zeros(x.shape[0], 10)
        vs = []
        for c in self.fc2(z):  # the leaky integrator read-out (Norse's LICell)
            v = v + 0.1 * (-v + i)
            i = i - 0.2 * i + c
            vs.append(v)
        # Norse decodes with the maximum over time; its first two voltages are 0 before any
        # input arrives, and a max that picks them has no gradient (whole classes stay dead).
        return torch.stack(vs[2:]).max(0).values


def norse(row: str, seed: int, data: tuple, epochs: int = 5) -> dict[str, float]:
    torch.manual_seed(seed)
    net = _NorseNet(get_estimator("fast_sigmoid(k=100)" if row == "own" else row))

    def loss_of(x: Tensor, y: Tensor) -> Tensor:
        return nn.functional.nll_loss(nn.functional.log_softmax(net(x), 1), y)

    return fit(net, loss_of, lambda x: net(x).argmax(1), net.fc1.weight, lr=2e-3,
               epochs=epochs, batch=64, seed=seed, data=data)  # fmt: skip


# -- Larq ------------------------------------------------------------------------------------
def _bn(cls: type, n: int) -> nn.Module:
    bn = cls(n)
    bn.weight.requires_grad_(False)  # Larq's BatchNormalization(scale=False)
    return bn


def larq_binarynet(quantizer: str) -> nn.Sequential:
    """Larq's quickstart model with ``quantizer`` on every binary layer's input."""
    q = {"input_quantizer": quantizer, "kernel_quantizer": "ste_clipped", "bias": False}
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        QuantConv2d(1, 32, 3, padding=1, bias=False, kernel_quantizer="ste_clipped"),
        nn.MaxPool2d(2), _bn(nn.BatchNorm2d, 32),
        QuantConv2d(32, 64, 3, padding=1, **q), nn.MaxPool2d(2), _bn(nn.BatchNorm2d, 64),
        QuantConv2d(64, 64, 3, padding=1, **q), _bn(nn.BatchNorm2d, 64), nn.Flatten(),
        QuantLinear(256, 64, **q), _bn(nn.BatchNorm1d, 64),
        QuantLinear(64, 10, **q), _bn(nn.BatchNorm1d, 10),
    )  # fmt: skip


def larq(row: str, seed: int, data: tuple, epochs: int = 6) -> dict[str, float]:
    torch.manual_seed(seed)
    net = larq_binarynet("ste_clipped" if row == "own" else row)
    latent = [m.weight for m in net.modules() if isinstance(m, QuantConv2d | QuantLinear)]

    def clip() -> None:  # Larq's weight_clip constraint
        with torch.no_grad():
            for w in latent:
                w.clamp_(-1, 1)

    return fit(net, lambda x, y: nn.functional.cross_entropy(net(x), y),
               lambda x: net(x).argmax(1), net[1].weight, lr=1e-3, epochs=epochs, batch=64,
               seed=seed, data=data, after_step=clip)  # fmt: skip


# -- htaf's own compare defaults -------------------------------------------------------------
#: The row each family's compare default puts first after HTAF (its "own" surrogate).
COMPARE_OWN = {"dhn": "ste", "snn": "atan", "bnn": "ste", "icbm": "ste"}


def compare_runs(family: str, seeds: list[int], out: Path) -> list[dict[str, Any]]:
    """``htaf compare --family FAMILY`` with its default settings, on the three rows; one record
    per run with the family's headline exact-binary metric (AUROC for binary data)."""
    specs = {"htaf": "htaf", "htaf(2,11)": "htaf(2,11)", "own": COMPARE_OWN[family]}
    exp = htaf.compare(family=family, estimators=list(specs.values()), seeds=seeds,
                       out=out / family, progress=False, jobs=1)  # fmt: skip
    frame = exp.runs
    metric = "test_auroc" if "test_auroc_hard" in frame else "test_accuracy"
    label = {v: k for k, v in specs.items()}
    return [{"recipe": f"compare_{family}", "row": label[r["estimator"]], "seed": r["seed"],
             "acc_hard": r[f"{metric}_hard"], "acc_train_forward": r[f"{metric}_smooth"],
             "grad_w1": float("nan"), "seconds": r["train_time_s"], "metric": metric}
            for _, r in frame.iterrows()]  # fmt: skip


RECIPES: dict[str, tuple[Callable[..., dict[str, float]], str, str | None]] = {
    "spikingjelly": (spikingjelly, "surrogate.ATan()", "spikingjelly"),
    "snntorch_rate": (snntorch_rate, "surrogate.atan()", "snntorch"),
    "snntorch_membrane": (snntorch_membrane, "surrogate.atan()", "snntorch"),
    "norse": (norse, "SuperSpike(100)", None),
    "larq": (larq, "ste_sign", None),
}
#: Run only when named (``--recipes compare_snn``, or ``--recipes all``): minutes each.
COMPARES = {f"compare_{f}": f for f in COMPARE_OWN}


def available(module: str | None) -> bool:
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{recipe: {row: {metric: mean, metric_std: std, n}}}``."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for recipe in dict.fromkeys(r["recipe"] for r in runs):
        table[recipe] = {}
        for row in ROWS:
            got = [r for r in runs if r["recipe"] == recipe and r["row"] == row]
            stats: dict[str, float] = {"n": len(got)}
            for key in ("acc_hard", "acc_train_forward", "grad_w1"):
                values = np.array([r[key] for r in got])
                stats[key], stats[f"{key}_std"] = float(values.mean()), float(values.std())
            table[recipe][row] = stats
    return table


def verdicts(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, bool]:
    return {r: rows["htaf"]["acc_hard"] >= rows["own"]["acc_hard"] - TARGET
            for r, rows in table.items()}  # fmt: skip


def markdown(table: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| recipe | own surrogate | htaf (auto) | htaf(2,11) | own | htaf ≥ own − 0.02 |",
        "|---|---|---|---|---|---|",
    ]
    ok = verdicts(table)
    for recipe, rows in table.items():
        cells = [f"{rows[r]['acc_hard']:.3f} ± {rows[r]['acc_hard_std']:.3f}" for r in ROWS]
        verdict = "PASS" if ok[recipe] else "FAIL"
        own = RECIPES[recipe][1] if recipe in RECIPES else COMPARE_OWN[COMPARES[recipe]]
        lines.append(f"| {recipe} | {own} | {' | '.join(cells)} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES),
                        choices=[*sorted(RECIPES), *sorted(COMPARES), "all"])  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help="subset of the rows")
    parser.add_argument("--out", type=Path, default=Path("recipes.json"))
    parser.add_argument("--diagnose", action="store_true",
                        help="htaf.diagnose, SpikingJelly recipe, at init")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = digits()
    if args.diagnose:
        print(diagnose_spikingjelly(args.rows, data))
        return 0
    names = [*RECIPES, *COMPARES] if "all" in args.recipes else args.recipes
    runs: list[dict[str, Any]] = []
    for name in [n for n in names if n in COMPARES]:
        runs += compare_runs(COMPARES[name], args.seeds, args.out.with_suffix(".runs"))
    todo = []
    for name in [n for n in names if n in RECIPES]:
        if available(RECIPES[name][2]):
            todo += [(name, row, seed) for row in args.rows for seed in args.seeds]
        else:
            print(f"skipped {name}: `pip install {RECIPES[name][2]}` to run it", file=sys.stderr)
    for name, row, seed in tqdm(todo, desc="recipes", unit="run"):
        start = time.perf_counter()
        result = RECIPES[name][0](row, seed, data)
        runs.append({"recipe": name, "row": row, "seed": seed, **result,
                     "seconds": time.perf_counter() - start})  # fmt: skip
    table = summarize(runs)
    atomic_write_json(args.out, {"command": sys.argv, "runs": runs, "summary": table})
    print(markdown(table))
    print(f"\nwrote {args.out}")
    return 0 if all(verdicts(table).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
