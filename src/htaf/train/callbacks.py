"""Callbacks: small objects the engine calls at fixed points of training.

The engine calls, in order, ``on_fit_start(trainer)``, then per batch ``on_batch_end(batch,
logs)`` (after the optimizer step, gradients still in place), per epoch ``observe(mode)``
around each validation pass, then ``on_epoch_end(epoch, logs)`` (after validation; callbacks
may add entries to ``logs``, which becomes the epoch's history row), and finally
``on_fit_end(logs)``.

Built-ins, used by default:

* :class:`GradientNorms` -> ``logs["grad_norm"] = {"layer1": ..., ...}``: the L2 norm of each
  trained Linear/Conv weight's gradient, averaged over the epoch's batches (``layerL`` is the
  head; frozen layers, e.g. a frozen pretrained backbone, have no gradient and are left out);
* :class:`ActivationStats` -> ``logs["act"]``: binarisation and saturation of every hidden
  activation on the validation set, for both forwards (see :func:`activation_stats`).

:class:`EarlyStopping` is the engine's early-stopping bookkeeping (its state is checkpointed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from htaf.estimators import Estimator, set_mode
from htaf.estimators.registry import REFERENCE_ACTIVATIONS
from htaf.families.hooks import ModelHooks
from htaf.train.batches import batches, sequential
from htaf.train.checkpoint import copy_state

#: The activation statistics of every layer and mode (:func:`activation_stats`).
ACT_KEYS = ("near_binary_05", "near_binary_01", "entropy", "saturation")

#: What ``on_fit_start`` receives: the engine's ``Trainer`` (``model``, ``data``, ``config``).
#: Typed loosely so that callbacks never import the engine that calls them.
Trainer = Any

#: Where the backward rule counts as saturated: below this fraction of its value at 0.
SATURATION_RATIO = 1e-3
#: Largest number of activation values kept per layer for histograms.
SAMPLE_SIZE = 20_000
_REFERENCE_TYPES = tuple(REFERENCE_ACTIVATIONS.values())


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Training is about to start (or resume); ``trainer`` exposes model, data, config."""

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        """After one optimizer step. ``logs``: ``epoch`` (1-based), ``batch``, ``loss``."""

    def observe(self, mode: str) -> AbstractContextManager[Any]:
        """A context the engine enters around each validation pass (one per forward ``mode``),
        so that a callback can look at the network's outputs without a pass of its own."""
        return nullcontext()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """After validation of ``epoch`` (1-based); add entries to ``logs`` to record them."""

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        """Training finished; ``logs`` is the last epoch's row (empty if no epoch ran)."""


# -- gradient norms ------------------------------------------------------------------------------
def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Linear and Conv layers in module order: their names are ``layer1``, ``layer2``, ..."""
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [m for m in model.modules() if isinstance(m, kinds)]


class GradientNorms(Callback):
    """Mean over an epoch's batches of each weight gradient's L2 norm, per layer."""

    def __init__(self) -> None:
        self.layers: list[nn.Module] = []
        self._sums: list[float] = []
        self._count = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.layers = [m for m in weight_layers(trainer.model) if m.weight.requires_grad]
        self._reset()

    def _reset(self) -> None:
        self._sums = [0.0] * len(self.layers)
        self._count = 0

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        norms = [
            m.weight.grad.detach().norm().item() if m.weight.grad is not None else math.nan
            for m in self.layers
        ]
        self._sums = [s + n for s, n in zip(self._sums, norms, strict=True)]
        self._count += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self._count:
            logs["grad_norm"] = {
                f"layer{i}": s / self._count for i, s in enumerate(self._sums, start=1)
            }
        self._reset()


# -- activation statistics -----------------------------------------------------------------------
def activation_modules(model: nn.Module) -> list[nn.Module]:
    """The hidden activations whose statistics are reported (``ModelHooks``: the model's own
    ``activation_modules()``, else every estimator and reference activation)."""
    return ModelHooks(model).activation_modules()


def _signed(module: nn.Module) -> bool:
    if isinstance(module, Estimator):
        return module.signed
    return isinstance(module, nn.Tanh)


_REFERENCE_FUNCTIONS = {
    nn.ReLU: F.relu,
    nn.Tanh: torch.tanh,
    nn.Sigmoid: torch.sigmoid,
}


def _reference_grad(module: nn.Module, x: Tensor) -> Tensor:
    """Elementwise derivative of a reference activation, by autograd on its function."""
    fn = _REFERENCE_FUNCTIONS.get(type(module))
    if fn is None:  # GELU (and subclasses): keep its approximation setting
        approximate = getattr(module, "approximate", "none")

        def fn(t: Tensor) -> Tensor:
            return F.gelu(t, approximate=approximate)

    with torch.enable_grad():
        t = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(t).sum(), t)
    return g.abs()


def _backward_rule(module: nn.Module, x: Tensor) -> Tensor:
    if isinstance(module, Estimator):
        return module.grad(x).abs()
    return _reference_grad(module, x)


def _rule_at_zero(module: nn.Module, like: Tensor) -> float:
    """The backward rule's magnitude at 0 (for ReLU, whose torch derivative at 0 is 0, at 0+)."""
    zeros = torch.zeros(256, dtype=like.dtype, device=like.device)
    g0 = _backward_rule(module, zeros).mean().item()  # a mean, so stochastic rules work too
    if not isinstance(module, Estimator):
        g0 = max(g0, _backward_rule(module, zeros + 1e-4).mean().item())
    return g0


def binary_entropy(u: Tensor) -> Tensor:
    """Entropy in bits of Bernoulli(u), u clipped to [0, 1]; exactly 0 at 0 and 1 (0·log 0 = 0)."""
    p = u.double().clamp(0, 1)
    q = 1 - p
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(q, q)) / math.log(2)


@dataclass
class _LayerAccumulator:
    n: int = 0
    near05: int = 0
    near01: int = 0
    entropy: float = 0.0
    saturated: int = 0
    g0: float | None = None
    samples: list[np.ndarray] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        if not self.n:
            return dict.fromkeys(ACT_KEYS, math.nan)
        return {
            "near_binary_05": self.near05 / self.n,
            "near_binary_01": self.near01 / self.n,
            "entropy": self.entropy / self.n,
            "saturation": self.saturated / self.n,
        }


def activation_stats(
    model: nn.Module,
    X: Tensor | np.ndarray,
    *,
    modes: Iterable[str] = ("smooth", "hard"),
    sample_size: int = SAMPLE_SIZE,
    batch_size: int = 4096,
    seed: int = 0,
    to_float: Any = None,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Binarisation and saturation of every hidden activation on ``X``, per forward mode.

    Outputs are mapped to the unsigned space ((y + 1) / 2 for signed outputs) and scored by:

    * ``near_binary_05`` / ``near_binary_01``: fraction within 0.05 / 0.01 of 0 or 1;
    * ``entropy``: mean binary entropy in bits of the values clipped to [0, 1];
    * ``saturation``: fraction of pre-activations where the backward rule is below
      ``SATURATION_RATIO`` times its value at 0 (ReLU & co.: their true derivative; so for
      ReLU it is the fraction of zero-gradient units).

    Returns ``(stats, samples)``: ``stats[mode]`` holds the four numbers averaged over layers
    plus ``"layers": {"layer1": {...}, ...}``; ``samples[mode]["layer1"]`` is a float32 sample
    (at most ``sample_size`` values, fixed ``seed``) of the unsigned outputs, for histograms.
    The model is run in eval mode without gradients; RNG states are left untouched.
    ``to_float`` turns a stored batch into the model's input (``Dataset.float_batch``).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    stats: dict[str, Any] = {}
    samples: dict[str, dict[str, np.ndarray]] = {}
    if not activation_modules(model) or len(X) == 0:
        return stats, samples
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=_cuda_devices(device)), torch.no_grad():
            for mode in modes:
                with set_mode(model, mode), recording(model, len(X), sample_size, seed) as accs:
                    index = sequential(len(X), batch_size)
                    for xb in batches(X, index, to_float=to_float, device=device):
                        model(xb)
                stats[mode], samples[mode] = summarize(accs, sample_size)
    finally:
        model.train(was_training)
    return stats, samples


def _cuda_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


def summarize(
    accs: list[_LayerAccumulator], sample_size: int = SAMPLE_SIZE
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One mode's ``(stats, samples)`` of :func:`activation_stats` from :func:`recording`."""
    layers = {f"layer{i}": a.summary() for i, a in enumerate(accs, start=1)}
    stats: dict[str, Any] = {k: float(np.mean([s[k] for s in layers.values()])) for k in ACT_KEYS}
    stats["layers"] = layers
    samples = {
        f"layer{i}": np.concatenate(a.samples)[:sample_size].astype(np.float32)
        for i, a in enumerate(accs, start=1)
    }
    return stats, samples


@contextmanager
def recording(
    model: nn.Module, n_rows: int, sample_size: int = SAMPLE_SIZE, seed: int = 0
) -> Iterator[list[_LayerAccumulator]]:
    """Forward hooks on every activation module of ``model``: while the context is open, each
    output that passes through is scored into the layer's accumulator (see
    :func:`activation_stats`), and about ``sample_size`` values are kept, the same fraction of
    each batch of the ``n_rows`` rows the passes will see. Stochastic backward rules draw from
    their own generators here; those are restored on exit, so training sees the same draws."""
    modules = activation_modules(model)
    accs = [_LayerAccumulator() for _ in modules]
    rng = np.random.default_rng(seed)
    generators = [m.generator for m in modules if getattr(m, "generator", None) is not None]
    saved = [g.get_state() for g in generators]

    def hook_for(acc: _LayerAccumulator) -> Any:
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            pre, out = inputs[0].detach(), output.detach()
            u = (out + 1) / 2 if _signed(module) else out
            dist = torch.minimum(u.abs(), (u - 1).abs())
            if acc.g0 is None:
                acc.g0 = _rule_at_zero(module, pre)
            acc.n += u.numel()
            acc.near05 += int((dist <= 0.05).sum())
            acc.near01 += int((dist <= 0.01).sum())
            acc.entropy += float(binary_entropy(u).sum())
            acc.saturated += int((_backward_rule(module, pre) < SATURATION_RATIO * acc.g0).sum())
            flat = u.reshape(-1).float().cpu().numpy()
            per_row = flat.size / max(len(out), 1)
            rate = sample_size / max(per_row * n_rows, 1)
            if rate < 1:
                k = math.ceil(rate * flat.size)
                flat = flat[np.sort(rng.choice(flat.size, size=k, replace=False))]
            acc.samples.append(flat)

        return hook

    handles = [m.register_forward_hook(hook_for(a)) for m, a in zip(modules, accs, strict=True)]
    try:
        yield accs
    finally:
        for h in handles:
            h.remove()
        for g, state in zip(generators, saved, strict=True):
            g.set_state(state)


class ActivationStats(Callback):
    """:func:`activation_stats` on the validation set at every epoch end -> ``logs["act"]``.

    The statistics are recorded during the engine's own validation passes (:meth:`observe`),
    which already run both forwards over the validation set; a separate pass (two more
    forwards of the whole set per epoch) runs only for a mode the engine did not validate.
    ``samples`` keeps the last epoch's smooth-mode sample per layer (for histograms).
    """

    def __init__(self, modes: Iterable[str] = ("smooth", "hard"), sample_size: int = SAMPLE_SIZE):
        self.modes = tuple(modes)
        self.sample_size = sample_size
        self.samples: dict[str, np.ndarray] = {}
        self.model: nn.Module | None = None
        self.X: Any = None
        self.to_float: Any = None
        self._seen: dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        self.model = trainer.model
        self.X = getattr(trainer.data, "X_val", None)
        self.to_float = getattr(trainer.data, "float_batch", None)

    def observe(self, mode: str) -> AbstractContextManager[Any]:
        if self.model is None or self.X is None or len(self.X) == 0 or mode not in self.modes:
            return nullcontext()
        return self._record(mode)

    @contextmanager
    def _record(self, mode: str) -> Iterator[None]:
        assert self.model is not None
        with recording(self.model, len(self.X), self.sample_size) as accs:
            yield
        if accs and all(a.n for a in accs):
            self._seen[mode] = summarize(accs, self.sample_size)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.model is None or self.X is None or len(self.X) == 0:
            return
        seen, self._seen = self._seen, {}
        missing = [m for m in self.modes if m not in seen]
        if missing:
            stats, samples = activation_stats(
                self.model, self.X, modes=missing, sample_size=self.sample_size,
                to_float=self.to_float,
            )  # fmt: skip
            seen.update({m: (stats[m], samples[m]) for m in stats})
        if seen:
            logs["act"] = {m: seen[m][0] for m in self.modes if m in seen}
            self.samples = seen["smooth"][1] if "smooth" in seen else {}


# -- early stopping ------------------------------------------------------------------------------
class EarlyStopping:
    """Track the best validation loss; stop after ``patience`` epochs without improvement.

    With ``patience > 0`` the best weights are kept (in memory and in checkpoints) so the engine
    can restore them at the end; ``patience == 0`` only records the best epoch.
    """

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best_loss = math.inf
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_state: dict[str, Any] | None = None
        self.stopped = False

    def update(self, loss: float, epoch: int, model: nn.Module) -> bool:
        """Record ``epoch``'s loss; return True if it is the best so far."""
        if not math.isnan(loss) and loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = float(loss), int(epoch), 0
            if self.patience > 0:
                self.best_state = copy_state(model)
            return True
        self.bad_epochs += 1
        if self.patience > 0 and self.bad_epochs >= self.patience:
            self.stopped = True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {
            "patience": self.patience,
            "min_delta": self.min_delta,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
            "stopped": self.stopped,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_loss = float(state["best_loss"])
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        self.best_state = state["best_state"]
        self.stopped = bool(state["stopped"])
