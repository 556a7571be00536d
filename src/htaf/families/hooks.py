"""What a family's model offers the engine, written down once: :class:`ModelHooks`.

The model a family builds maps a float batch ``(n, *spec.input_shape)`` to logits
``(n, spec.n_out)``; that is all it must do. It may also define any of the methods below, and
the engine, ``run_one`` and the callbacks call them only through :class:`ModelHooks`, whose
no-op defaults stand in for the ones a model does not define:

* ``constrain_()``, on the model or any submodule: called after every optimizer step (e.g.
  clip latent binary weights to [-1, 1]);
* ``binary_parameters() -> list[Parameter]``: the parameters an ``optimizer = "bop"`` run flips
  with Bop (default: none, and Bop refuses the model);
* ``epoch_stats() -> dict`` or ``epoch_stats(x) -> dict``: per-epoch statistics for the
  history, as ``model_stats`` (e.g. weight flip ratios, firing rates), drawn per key over the
  epochs by ``htaf.analysis.plots``; one that takes an argument receives a fixed batch of the
  validation split (float, on the model's device; eval mode, no gradients);
* ``calibrate(x)``: after every epoch's training, before validation, with a fixed random batch
  of the training split (no gradients; the model picks its own train/eval modes), e.g. to
  re-estimate the BatchNorm statistics of the forward it does not train in;
* ``eval_stats(x) -> dict``: statistics of one test batch in the current forward mode,
  reported as ``test_{NAME}_{hard|smooth}`` (e.g. firing rates, active concepts);
* ``eval_arrays(x) -> dict[str, np.ndarray]``: arrays of a few test samples with the exact
  forward (hard mode), saved as ``model_arrays.npz`` and drawn by ``htaf.analysis.plots``:
  ``spikes.LAYER`` ``(samples, T, neurons)`` as spike rasters, ``membrane.LAYER``
  ``(samples, T, k)`` as membrane traces (with ``threshold``);
* ``fit_closed_form(x, y, task) -> dict``: a model that is solved, not trained by gradient
  (the convex threshold networks); the engine calls it instead of the epochs (``epochs`` must
  be 1) with the whole training split. The dict it returns (the solve's certificate) goes into
  the epoch's history row as ``solver``, and its scalar entries into ``metrics.json`` as
  ``solver_{KEY}``;
* ``activation_modules() -> list[nn.Module]``: the hidden activations whose binarisation the
  statistics report (default: every estimator and reference activation in the model, less the
  kernel quantizers that carry ``quantizes_weights = True``; e.g. ICBM names only its concept
  bottleneck, not its backbone's ReLUs);
* ``summary() -> str``: a table of the model (layers, parameters, memory), saved as
  ``model_summary.txt``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from torch import Tensor, nn

from htaf.estimators import REFERENCE_ACTIVATIONS, Estimator

#: Every optional method of the contract, by name.
HOOKS = (
    "constrain_",
    "binary_parameters",
    "epoch_stats",
    "calibrate",
    "eval_stats",
    "eval_arrays",
    "fit_closed_form",
    "activation_modules",
    "summary",
)
_REFERENCE_TYPES = tuple(REFERENCE_ACTIVATIONS.values())


class ModelHooks:
    """The contract's methods of ``model``: its own where it defines them, else the no-op
    defaults. ``has(name)`` says whether the model defines hook ``name``."""

    def __init__(self, model: nn.Module):
        self.model = model
        self._constrained: list[nn.Module] | None = None

    def has(self, name: str) -> bool:
        if name not in HOOKS:
            raise ValueError(f"{name!r} is not a model hook (hooks: {', '.join(HOOKS)})")
        if name == "constrain_":
            return bool(self.constrained())
        return callable(getattr(self.model, name, None))

    @property
    def closed_form(self) -> bool:
        """Whether the model is solved (``fit_closed_form``), not trained by gradient."""
        return self.has("fit_closed_form")

    def constrained(self) -> list[nn.Module]:
        """The model's modules with a ``constrain_()``, in module order (found once: the
        engine calls them after every step)."""
        if self._constrained is None:
            self._constrained = [
                m for m in self.model.modules() if callable(getattr(m, "constrain_", None))
            ]
        return self._constrained

    def constrain_(self) -> None:
        for module in self.constrained():
            module.constrain_()

    def binary_parameters(self) -> list[nn.Parameter]:
        return list(self.model.binary_parameters()) if self.has("binary_parameters") else []

    def epoch_stats_takes_a_batch(self) -> bool:
        return self.has("epoch_stats") and bool(
            inspect.signature(self.model.epoch_stats).parameters
        )

    def epoch_stats(self, x: Tensor | None = None) -> dict[str, Any]:
        if not self.has("epoch_stats"):
            return {}
        return dict(self.model.epoch_stats(x) if self.epoch_stats_takes_a_batch() else
                    self.model.epoch_stats())  # fmt: skip

    def calibrate(self, x: Tensor) -> None:
        if self.has("calibrate"):
            self.model.calibrate(x)

    def eval_stats(self, x: Tensor) -> dict[str, float]:
        if not self.has("eval_stats"):
            return {}
        return {key: float(value) for key, value in self.model.eval_stats(x).items()}

    def eval_arrays(self, x: Tensor) -> dict[str, np.ndarray]:
        return dict(self.model.eval_arrays(x)) if self.has("eval_arrays") else {}

    def fit_closed_form(self, x: Tensor, y: Tensor, task: str) -> dict[str, Any]:
        if not self.closed_form:
            raise TypeError(f"{type(self.model).__name__} is trained by gradient, not solved")
        return dict(self.model.fit_closed_form(x, y, task))

    def activation_modules(self) -> list[nn.Module]:
        if self.has("activation_modules"):
            return list(self.model.activation_modules())
        return [
            m
            for m in self.model.modules()
            if isinstance(m, (Estimator, *_REFERENCE_TYPES))
            and not getattr(m, "quantizes_weights", False)
        ]

    def summary(self) -> str | None:
        return str(self.model.summary()) if self.has("summary") else None
