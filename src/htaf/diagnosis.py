r"""Where does each binary activation's gradient live, in *this* model on *this* data?

    report = htaf.diagnose(model, (x, y), nn.functional.cross_entropy)
    print(report.table())        # per layer: inputs vs threshold, live fraction, gradient norm
    print(report.verdict)        # a plain sentence and a suggested setting
    report.plot("diag/")         # diagnose.png/.svg

For every estimator module (the model's own, or one handed to snnTorch or SpikingJelly
through :mod:`htaf.interop`) it records, on one forward and backward of the batch at the
model's current weights (at initialisation, before training, when called first):

* where its inputs :math:`x` (``v - θ`` for a neuron) sit: quantiles of :math:`x` and
  :math:`|x|`, and the fraction at or above the threshold;
* the **live fraction**: the share of inputs where the backward rule is at least 1% of its
  peak, :math:`g'(x) \ge 0.01\,\max g'` (for HTAF, :math:`|x| \le z^\ast(\alpha_1)/\alpha_0`;
  see :func:`htaf.functional.htaf_live_radius`);
* the norm of :math:`\partial L/\partial x` reaching it, and of :math:`\partial L/\partial W`
  for every weight;

then the same with each estimator swapped for a reference surrogate (``atan`` by default: the
one SpikingJelly and snnTorch default to). The verdict compares the two.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from htaf import estimators
from htaf.estimators import Estimator
from htaf.estimators.smooth import AUTO_LIVE, HTAF
from htaf.families.snn.fused import unrolled
from htaf.functional import calibrate_alpha0, htaf_live_radius

__all__ = ["Diagnosis", "LayerReport", "diagnose"]

#: A rule below this share of its peak counts as no gradient ("outside the live region").
LIVE_LEVEL = 0.01
#: A layer whose live fraction is below this is flagged.
DEAD_LIVE = 0.05
#: A first-weight gradient below this share of the reference's is called vanishing: Adam
#: rescales steps, so a constant factor is harmless; orders of magnitude are not.
VANISHING = 1e-2
#: Inputs kept per layer for the quantiles and histograms.
KEEP = 200_000


@dataclass
class LayerReport:
    """One estimator's inputs and gradients (``ref_*``: the same layer with the reference)."""

    layer: str
    estimator: str
    n: int
    quantiles: dict[str, float]
    above_threshold: float
    live: float
    grad_norm: float
    ref_live: float = float("nan")
    ref_grad_norm: float = float("nan")
    suggested_alpha0: float | None = None
    #: |x| where the suggested HTAF's rule falls to LIVE_LEVEL of its peak.
    live_edge: float | None = None
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


@dataclass
class Diagnosis:
    """The per-layer reports, weight-gradient norms, and a verdict with a suggested setting."""

    layers: list[LayerReport]
    weight_grads: dict[str, float]
    ref_weight_grads: dict[str, float]
    reference: str
    verdict: str
    suggestion: str

    def table(self) -> str:
        """A plain-text table, one row per estimator layer."""
        head = ("layer", "estimator", "median |x|", "x >= 0", "live", "|dL/dx|",
                f"live [{self.reference}]", f"|dL/dx| [{self.reference}]")  # fmt: skip
        rows = [head] + [_row(r) for r in self.layers]
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        layers = [{k: v for k, v in asdict(r).items() if k != "sample"} for r in self.layers]
        return {**{k: v for k, v in asdict(self).items() if k != "layers"}, "layers": layers}

    def plot(self, out_dir: str | Path, stem: str = "diagnose") -> list[Path]:
        """Input histograms with each live region shaded, and the gradient norms per layer
        beside the reference's (log scale), as ``stem.png`` and ``stem.svg``."""
        from htaf.analysis.diagnosis_plots import plot_diagnosis

        return plot_diagnosis(self, out_dir, stem)


def _row(r: LayerReport) -> tuple[str, ...]:
    return (r.layer, r.estimator, f"{r.quantiles['abs_q50']:.3g}", f"{r.above_threshold:.3f}",
            f"{r.live:.3f}", f"{r.grad_norm:.3g}", f"{r.ref_live:.3f}",
            f"{r.ref_grad_norm:.3g}")  # fmt: skip


def _row(r: LayerReport) -> tuple[str, ...]:
    numbers = (r.quantiles["abs_q50"], r.above_threshold, r.live, r.grad_norm, r.ref_live,
               r.ref_grad_norm)  # fmt: skip
    return (r.layer, r.estimator, *(f"{v:.3g}" for v in numbers))


def _watched(model: nn.Module) -> list[tuple[str, Estimator]]:
    """Activation estimators (not weight quantizers), by layer name."""
    return [(name or "<model>", m) for name, m in model.named_modules()
            if isinstance(m, Estimator) and not getattr(m, "quantizes_weights", False)]  # fmt: skip


def _live_fraction(est: Estimator, x: Tensor) -> float:
    """Share of ``x`` where ``est``'s rule is at least LIVE_LEVEL of its peak."""
    if est.stochastic or x.numel() == 0:
        return float("nan")
    with torch.no_grad():
        g = est.grad(x.double())
        peak = max(float(est.grad(torch.zeros(1, dtype=torch.float64))), float(g.max()))
    return float((g >= LIVE_LEVEL * peak).double().mean()) if peak > 0 else 0.0


def _sample(xs: list[Tensor]) -> Tensor:
    flat = torch.cat([x.reshape(-1) for x in xs]) if xs else torch.zeros(0)
    return flat[:: max(1, flat.numel() // KEEP)]


def _trace(
    model: nn.Module, run: Callable[[nn.Module], Tensor], seed: int
) -> tuple[dict[str, Tensor], dict[str, float], dict[str, float]]:
    """One forward and backward: each estimator's inputs and |dL/dx|, and |dL/dW| by weight."""
    watched = _watched(model)
    inputs: dict[str, list[Tensor]] = {name: [] for name, _ in watched}
    grad_sq: dict[str, float] = dict.fromkeys(inputs, 0.0)

    def hook(name: str) -> Callable:
        def pre(_module: nn.Module, args: tuple) -> None:
            x = args[0]
            inputs[name].append(x.detach().float().cpu())
            if x.requires_grad:
                x.register_hook(lambda g: grad_sq.__setitem__(name, grad_sq[name] + _sq(g)))

        return pre

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in watched]
    try:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(seed)  # the same random encoding for the model and the reference
        with unrolled():  # htaf's fused neuron layers call their estimator at every step
            run(model).backward()
    finally:
        for h in handles:
            h.remove()
    weights = {n: float(p.grad.norm()) for n, p in model.named_parameters()
               if p.grad is not None and p.dim() > 1}  # fmt: skip
    return ({n: _sample(xs) for n, xs in inputs.items()},
            {n: v**0.5 for n, v in grad_sq.items()}, weights)  # fmt: skip


def _sq(g: Tensor) -> float:
    return float(g.detach().double().pow(2).sum())


def _with_reference(model: nn.Module, reference: str) -> nn.Module:
    """A copy of ``model`` with every watched estimator replaced by ``reference``."""
    twin = copy.deepcopy(model)
    for name, est in _watched(twin):
        parent_name, _, child = name.rpartition(".")
        parent = twin.get_submodule(parent_name) if parent_name else twin
        setattr(parent, child, estimators.get(reference, signed=est.signed))
    return twin


def _quantiles(x: Tensor) -> dict[str, float]:
    if x.numel() == 0:
        return {k: float("nan") for k in ("q05", "q50", "q95", "abs_q50", "abs_q95")}
    q = torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)
    a = torch.quantile(x.double(), q).tolist()
    b = torch.quantile(x.double().abs(), q[1:]).tolist()
    return {"q05": a[0], "q50": a[1], "q95": a[2], "abs_q50": b[0], "abs_q95": b[1]}


def _report(name: str, est: Estimator, x: Tensor, grad: float) -> LayerReport:
    suggested = edge = None
    if isinstance(est, HTAF) and x.numel() and bool(x.max() > x.min()):
        suggested = calibrate_alpha0(x, est.alpha1, est.live if est.auto else AUTO_LIVE)
        edge = htaf_live_radius(est.alpha1, LIVE_LEVEL) / suggested
    label = str(est.name)
    if isinstance(est, HTAF):
        label += "(auto)" if est.auto else f"({est.alpha0:g},{est.alpha1:g})"
    return LayerReport(
        layer=name, estimator=label, n=int(x.numel()), quantiles=_quantiles(x),
        above_threshold=float((x >= 0).double().mean()) if x.numel() else float("nan"),
        live=_live_fraction(est, x), grad_norm=grad, suggested_alpha0=suggested, live_edge=edge,
        sample=x.numpy(),
    )  # fmt: skip


def diagnose(
    model: nn.Module,
    batch: Tensor | Sequence[Tensor],
    loss_fn: Callable[..., Tensor],
    *,
    reference: str = "atan",
    forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
    seed: int = 0,
) -> Diagnosis:
    r"""Diagnose the gradient flow through every estimator of ``model`` on ``batch``.

    Args:
        model: any module holding htaf estimators (directly, or inside snnTorch/SpikingJelly
            neurons through :mod:`htaf.interop`). It is not changed: both passes run on copies.
        batch: ``x`` or ``(x, y)``.
        loss_fn: ``loss_fn(output, y)`` (or ``loss_fn(output)`` for a bare ``x``).
        reference: the estimator each one is compared with (an estimator spec).
        forward: ``forward(model, x) -> output`` for models whose call is not ``model(x)``
            (a time loop, a state reset); default ``model(x)``.
        seed: seeds the torch RNG before each pass, so random encoders draw the same spikes.
    """
    x, y = (batch, None) if isinstance(batch, Tensor) else (batch[0], batch[1])
    if not _watched(model):
        raise ValueError("the model holds no htaf estimator to diagnose (see htaf.interop "
                         "for snnTorch and SpikingJelly neurons)")  # fmt: skip

    def run(m: nn.Module) -> Tensor:
        out = forward(m, x) if forward else m(x)
        return loss_fn(out) if y is None else loss_fn(out, y)

    own = copy.deepcopy(model)  # an htaf(auto) calibrates on its first input: not the user's
    twin = _with_reference(model, reference)
    xs, grads, weights = _trace(own, run, seed)
    ref_xs, ref_grads, ref_weights = _trace(twin, run, seed)
    reports = []
    for (name, est), (_, ref_est) in zip(_watched(own), _watched(twin), strict=True):
        r = _report(name, est, xs[name], grads[name])
        r.ref_live, r.ref_grad_norm = _live_fraction(ref_est, ref_xs[name]), ref_grads[name]
        reports.append(r)
    verdict, suggestion = _verdict(reports, weights, ref_weights, reference)
    return Diagnosis(reports, weights, ref_weights, reference, verdict, suggestion)


def _verdict(
    reports: list[LayerReport], weights: dict[str, float], ref: dict[str, float], reference: str
) -> tuple[str, str]:
    """``healthy``, ``narrow`` (few live inputs, yet the gradient flows) or ``vanishing``
    (the first weight gets under VANISHING of the reference's gradient)."""
    dead = [r for r in reports if r.live < DEAD_LIVE]
    first = next(iter(weights), None)
    ratio = weights[first] / ref[first] if first and ref.get(first) else float("nan")
    flow = (f"the first weight ({first}) gets {ratio:.2g}x the gradient it gets with "
            f"{reference}") if first else "no weight receives a gradient"  # fmt: skip
    if not dead and not ratio < VANISHING:
        return f"healthy: every estimator has live inputs; {flow}.", "keep the current setting"
    where = ", ".join(f"{r.layer} ({r.live:.1%} live, median |x| {r.quantiles['abs_q50']:.2g})"
                      for r in dead) or "no layer"  # fmt: skip
    kind = "vanishing" if ratio < VANISHING else "narrow: a few inputs carry all the gradient"
    verdict = f"{kind}: inputs outside the live region at {where}; {flow}."
    htafs = [r for r in (dead or reports) if r.suggested_alpha0 is not None]
    if htafs and all(r.estimator == "htaf(auto)" for r in htafs):
        return verdict, "widen the live region: htaf(auto, live=0.8)"
    if htafs:
        values = ", ".join(f"{r.layer}: alpha0={r.suggested_alpha0:.3g}" for r in htafs)
        return verdict, f"use htaf(auto) (it would choose {values})"
    names = ", ".join(r.layer for r in dead) or "the first layer"
    return verdict, f"rescale the inputs of {names}, or use htaf(auto)"


def diagnose_run(
    source: str | Path,
    *,
    overrides: Sequence[str] = (),
    reference: str = "atan",
    batch_size: int = 256,
    trained: bool = False,
) -> Diagnosis:
    """:func:`diagnose` for a run folder (its ``config.json``) or a TOML config.

    The model is built as training builds it (same seed, same data preparation) and diagnosed
    at initialisation on a seeded batch of the training split, with the family's loss;
    ``trained=True`` diagnoses a finished run's trained weights (:func:`htaf.load_run`).
    """
    from htaf.config import RunConfig, apply_overrides
    from htaf.families import build_model, prepare_data
    from htaf.train.engine import seed_everything
    from htaf.train.run_folder import load_dataset, load_run, read_config

    path = Path(source)
    if trained:
        if overrides:
            raise ValueError("--set changes the model: it cannot apply to trained weights")
        run = load_run(path)
        config, data = run.config, run.dataset()
        model = run.model(hard=False)
    else:
        if path.is_dir():
            config = RunConfig.from_dict(apply_overrides(read_config(path).to_dict(), overrides))
        elif path.is_file():
            config = RunConfig.from_toml(path, list(overrides))
        else:
            raise FileNotFoundError(f"{path}: no such run folder or config file")
        data = prepare_data(config, load_dataset(config))
        seed_everything(config.seed)
        model = build_model(config, data)
    x, y, task_loss = _training_batch(data, config.seed, batch_size)
    model.train()
    return diagnose(model, (x, y), task_loss, reference=reference, seed=config.seed)


def _training_batch(data: Any, seed: int, size: int) -> tuple[Tensor, Tensor, Callable]:
    """A seeded batch of the training split, and the family's loss on the model's outputs."""
    from htaf.train.batches import batches
    from htaf.train.engine import float_batches, loss_fn, target_tensor

    pick = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    pick = pick[: min(size, len(pick))].sort().values
    x = next(batches(data.X_train, [pick], to_float=float_batches(data)))
    y = target_tensor(np.asarray(data.y_train)[pick.numpy()], data.task)
    loss = loss_fn(data.task)

    def task_loss(out: Tensor, target: Tensor) -> Tensor:
        return loss(out if data.task == "multiclass" else out.reshape(len(out), -1)[:, 0], target)

    return x, y, task_loss
