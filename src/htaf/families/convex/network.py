"""The convex family's model: an ordinary DHN of exact steps whose weights are solved for.

:class:`ConvexThresholdNetwork` is a :class:`~htaf.families.dhn.DHN` (one hidden layer for
``variant = "two_layer"``, two for ``"deep"``) with the engine's ``fit_closed_form`` hook: the
engine hands it the training split once (``epochs = 1``), it solves the convex program of
:mod:`.model` or :mod:`.deep` in float64, and copies the rebuilt network into its layers. How
many hidden units that takes is only known after the solve, so the layers are resized then,
and :meth:`load_state_dict` resizes them to the saved shapes: a run's ``model.safetensors``
loads into a freshly built model like any other family's.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from htaf.families.convex.deep import fit_deep
from htaf.families.convex.model import ThresholdNet, fit_two_layer
from htaf.families.dhn import DHN, HeavisideLayer
from htaf.families.summary import ModelProfile, layer_row

__all__ = ["ConvexThresholdNetwork", "fit_network", "targets_for"]


def targets_for(y: np.ndarray, task: str) -> np.ndarray:
    """The regression target of the convex program: ±1 for a binary task, ``y`` itself for
    regression; ValueError for anything else."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if task == "binary":
        values = np.unique(y)
        if not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(f"a binary task needs 0/1 targets, got values {values[:5]}")
        return 2.0 * y - 1.0
    if task == "regression":
        return y
    raise ValueError(
        f"the convex threshold networks fit binary or regression targets, not {task!r} "
        "(one-vs-rest multiclass is not implemented)"
    )


def fit_network(
    X: np.ndarray, target: np.ndarray, options: Any, seed: int, center: bool = False
) -> ThresholdNet:
    """The two-layer or deep network of ``options`` (a :class:`ConvexOptions`) for ``target``
    (``center``: the two-layer fit of ``target - mean``, the mean as the output bias)."""
    rng = np.random.default_rng(seed)
    if options.variant == "deep":
        return fit_deep(
            X,
            target,
            beta=options.beta,
            width=options.width,
            reconstruction=options.reconstruction,
            rng=rng,
            solver=options.solver,
            tol=options.tol,
        )
    return fit_two_layer(
        X,
        target,
        beta=options.beta,
        n_directions=options.directions,
        rng=rng,
        solver=options.solver,
        tol=options.tol,
        center=center,
        linear=options.linear,
        repeats=options.cv_repeats,
        cv_rule=options.cv_rule,
    )


def _has_skip(options: Any) -> bool:
    return options.variant != "deep" and bool(getattr(options, "linear", False))


class ConvexThresholdNetwork(DHN):
    """A DHN solved by a convex program (see the module doc); one logit.

    Args:
        n_in: input features (images and sequences are flattened).
        options: the family's :class:`~htaf.families.convex.ConvexOptions`.
        seed: seeds the directions (two-layer) or the first layer (deep).
        activation, activation_params: the hidden layers' estimator; its hard (exact step)
            forward is the convex model, its smooth forward is reported beside it.
    """

    def __init__(
        self,
        n_in: int,
        options: Any,
        seed: int,
        activation: str = "htaf",
        **activation_params: float,
    ):
        depth = 2 if options.variant == "deep" else 1
        super().__init__(n_in, 1, widths=(1,) * depth, activation=activation, **activation_params)
        self.options = options
        self._activation_params = dict(activation_params)
        # The linear skip term of the two-layer program (.skip): x · w added to the head.
        self.skip = nn.Linear(self.n_in, 1, bias=False) if _has_skip(options) else None
        if self.skip is not None:
            nn.init.zeros_(self.skip.weight)
        self.register_buffer("seed", torch.tensor(int(seed), dtype=torch.int64))

    def forward(self, x: Tensor) -> Tensor:
        """The DHN's logit plus the skip term's ``x · w`` (when the options have one)."""
        out = super().forward(x)
        return out if self.skip is None else out + self.skip(x.flatten(1))

    def profile(self) -> ModelProfile:
        """The DHN's rows, plus the skip term's (float input, one output added to the logit)."""
        out = super().profile()
        if self.skip is not None:
            row = layer_row("skip", self.skip, (1,), input_bits=32, input_shape=(self.n_in,),
                            activation="added to the logit")  # fmt: skip
            out.rows.append(row)
        return out

    # -- the closed-form fit ------------------------------------------------------------------
    def fit_closed_form(self, x: Tensor, y: Tensor, task: str) -> dict[str, Any]:
        """Solve on ``(x, y)`` (the whole training split), set the weights, return the solve's
        certificate: ``objective`` (the program's value), ``gap``, ``relative_gap``,
        ``optimal`` (gap <= tol · objective), ``units``, ``time_s``, ..."""
        X = x.detach().flatten(1).cpu().double().numpy()
        target = targets_for(y.detach().cpu().double().numpy(), task)
        net = fit_network(X, target, self.options, int(self.seed), center=task == "regression")
        self._resize(net.widths)
        net.load_into(self)
        return {k: v for k, v in net.info.items() if isinstance(v, (bool, int, float, str))}

    def _resize(self, widths: tuple[int, ...]) -> None:
        """New hidden layers of the given widths (at least one unit each)."""
        widths = tuple(max(1, int(w)) for w in widths)
        if widths == self.widths:
            return
        device = self.head.weight.device
        sizes = [self.n_in, *widths]
        self.layers = nn.ModuleList(
            HeavisideLayer(a, b, self.activation, False, 0.0, **self._activation_params)
            for a, b in itertools.pairwise(sizes)
        ).to(device)
        self.head = nn.Linear(widths[-1], 1).to(device)
        self.widths = widths

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Resize the hidden layers to the saved weights' shapes, then load them."""
        widths = []
        for i in range(len(self.layers)):
            weight = state_dict.get(f"layers.{i}.linear.weight")
            if weight is None:
                break
            widths.append(int(weight.shape[0]))
        if len(widths) == len(self.layers):
            self._resize(tuple(widths))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
