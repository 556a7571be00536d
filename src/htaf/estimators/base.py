"""The estimator contract: a smooth forward, an exact step forward, and a backward rule.

Every estimator is written in its *natural* space, the one its literature uses: ``"unsigned"``
(outputs in {0, 1}, the Heaviside step) or ``"signed"`` (outputs in {-1, +1}, the sign).
``signed=True`` / ``False`` picks the output space. The exact step moves between spaces by the
affine map ``s = 2u - 1``. What the backward rule does depends on what the rule means:

* a rule that is the derivative of a function approximating the step (a surrogate, HTAF,
  ``approx_sign``, ``swish_sign``) scales with the map: ``g_out = 2 g`` from {0, 1} to ±1 and
  ``g / 2`` the other way, and the smooth forward maps as ``2y - 1`` (or ``(y + 1) / 2``);
* a rule that passes the upstream gradient straight through, or cancels it (``ste``,
  ``ste_clipped``, and Troiano et al.'s decoupled rules, which pass it inside a window or
  scaled by at most 1: ``space_independent = True``), passes it unchanged in either space,
  ``g_out = g``, as Bengio et al. (2013) define straight-through for any step. Its smooth
  forward is *shifted* by the difference of the steps' midpoints (``y + 1/2`` from ±1 to
  {0, 1}, ``y - 1/2`` the other way), so that its derivative is still the rule.

Two forward modes:

* ``"smooth"``: ``smooth(x)``, a differentiable function whose derivative is ``grad(x)``
  (for rules without a primitive, such as jamming, ``smooth`` is the step itself);
* ``"hard"``: the exact step, with ``grad(x)`` as its backward.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from htaf import _native
from htaf.functional import check_float, check_param, heaviside

Mode = Literal["smooth", "hard"]
MODES = ("smooth", "hard")


def with_rule(hard: Tensor, x: Tensor, g: Tensor) -> Tensor:
    """Return ``hard`` in the forward pass and ``g * upstream`` in the backward pass.

    ``(x - x.detach())`` is exactly zero but carries a unit gradient, so autograd saves only
    ``g`` and the trick traces cleanly under ``torch.compile``. At ``x = ±inf`` it is
    ``inf - inf = NaN``; ``nan_to_num`` keeps the forward at the step's value there (and the
    gradient at 0).
    """
    return hard + (x - x.detach()).nan_to_num(0.0, 0.0, 0.0) * g.detach()


def exporting() -> bool:
    """Whether the forward is being captured for inference: ``torch.jit.trace``,
    ``torch.export`` or ONNX export. An exported graph is an inference graph, so the exact step
    is written in standard operators (a compare and a select, ONNX ``GreaterOrEqual`` and
    ``Where``) that every runtime runs, not as htaf's custom operators; the backward rule is not
    part of it. ONNX export is one of the two: the dynamo exporter runs ``torch.export``, the
    TorchScript one traces (asking ``torch.onnx`` would import it on every first forward)."""
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


def _checked_mode(value: str, name: str) -> Mode:
    if value not in MODES:
        raise ValueError(f"{name} must be 'smooth' or 'hard', got {value!r}")
    return value  # type: ignore[return-value]


class Estimator(nn.Module):
    """Base class. Subclasses set the class attributes and implement ``smooth`` and ``grad``.

    Hyperparameters listed in ``defaults`` become float attributes; they travel through
    ``state_dict`` (as extra state) together with ``mode`` and ``signed``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""
    forward_formula: ClassVar[str] = ""
    backward_formula: ClassVar[str] = ""
    natural: ClassVar[Literal["unsigned", "signed"]] = "unsigned"
    default_mode: ClassVar[Mode] = "hard"
    defaults: ClassVar[dict[str, float | str]] = {}
    has_primitive: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False
    #: True where ``grad`` passes (or cancels) the upstream gradient rather than approximating
    #: the derivative of the natural-space step: the rule then means the same in both output
    #: spaces and is not rescaled by the map between them (see the module docstring).
    space_independent: ClassVar[bool] = False

    def __init__(
        self,
        *,
        mode: Mode | None = None,
        signed: bool = False,
        training_mode: Mode | None = None,
        **params: float,
    ):
        super().__init__()
        unknown = set(params) - set(self.defaults)
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise ValueError(
                f"estimator {self.name!r} has no parameter {sorted(unknown)[0]!r} "
                f"(parameters: {known})"
            )
        for key, default in self.defaults.items():
            setattr(self, key, check_param(params.get(key, default), key))
        self.mode = mode or self.default_mode
        self.training_mode = training_mode or self.default_mode
        self.signed = bool(signed)

    # -- mode ---------------------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = _checked_mode(value, "mode")

    @property
    def training_mode(self) -> Mode:
        """The forward the trainer runs this estimator in: the class's ``default_mode`` unless
        the model's builder chose otherwise (the SNN family trains HTAF on exact spikes, since a
        spike also resets the neuron's state). ``mode`` is the forward *now*; evaluation
        switches it and restores it."""
        return self._training_mode

    @training_mode.setter
    def training_mode(self, value: str) -> None:
        self._training_mode = _checked_mode(value, "training_mode")

    @property
    def params(self) -> dict[str, float]:
        """Current hyperparameter values."""
        return {key: getattr(self, key) for key in self.defaults}

    def set_param(self, key: str, value: float) -> None:
        """Set a hyperparameter with validation (used by schedules)."""
        if key not in self.defaults:
            raise ValueError(f"estimator {self.name!r} has no parameter {key!r}")
        setattr(self, key, check_param(value, key))

    # -- the math, in the natural space -----------------------------------------------------------
    def smooth(self, x: Tensor) -> Tensor:
        """Smooth forward in the natural space; differentiable, with derivative ``grad``."""
        raise NotImplementedError

    def grad(self, x: Tensor) -> Tensor:
        """The backward rule ``g'(x)`` in the natural space."""
        raise NotImplementedError

    #: How close to the two step values the smooth forward's limits must come to be a forward.
    SPAN_TOLERANCE: ClassVar[float] = 0.05

    @property
    def smooth_is_forward(self) -> bool:
        r"""Whether the smooth forward is a model of its own: its limits at :math:`\mp\infty`
        lie within 0.05 of the step's two values. A surrogate's smooth form is the primitive of
        its backward rule, which need not be: ``fast_sigmoid``'s spans 1/2 ± 1/k and ``ste``'s
        is unbounded. Their smooth-forward metrics describe nothing, and reports say so."""
        if not self.has_primitive:
            return False
        ends = self.smooth(torch.tensor([-1e12, 1e12], dtype=torch.float64))
        if self.natural == "signed":
            ends = (ends + 1) / 2
        low, high = (float(v) for v in ends)
        return abs(low) <= self.SPAN_TOLERANCE and abs(high - 1) <= self.SPAN_TOLERANCE

    def step(self, x: Tensor) -> Tensor:
        """Exact step in the natural space: ``H(x)`` or ``2H(x) - 1``, with ``H(0) = 1``."""
        h = heaviside(x)
        return 2 * h - 1 if self.natural == "signed" else h

    def hard(self, x: Tensor) -> Tensor:
        """Exact step forward with ``grad`` as backward, in the natural space."""
        if not (torch.is_grad_enabled() and x.requires_grad):
            return self.step(x)
        return with_rule(self.step(x), x, self.grad(x))

    # -- nn.Module ------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        hard = self._mode == "hard" or not self.has_primitive
        if hard and exporting():
            h = heaviside(x)
            return 2 * h - 1 if self.signed else h
        if hard and _native.accepts(x):
            return self._fused_hard(x, _native)
        if hard and torch.compiler.is_compiling():
            # Dynamo runs this import rather than tracing it (see htaf._ops): lazy registration.
            from htaf import _ops

            if _ops.takes(x):
                return self._fused_hard(x, _ops)
        check_float(x)
        # Half precision lacks the range for the tails and clamps: compute in float32.
        xc = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        y = self.output_hard(xc) if hard else self._to_output(self.smooth(xc))
        return y if y.dtype == x.dtype else y.to(x.dtype)  # skip a no-op call: hot path

    def output_hard(self, x: Tensor) -> Tensor:
        """Exact step forward in the output space, with ``output_grad`` as its backward."""
        h = heaviside(x)
        y = 2 * h - 1 if self.signed else h
        if not (torch.is_grad_enabled() and x.requires_grad):
            return y
        return with_rule(y, x, self.output_grad(x))

    def _fused_hard(self, x: Tensor, ops: Any) -> Tensor:
        """:meth:`output_hard` as one operator of ``ops`` (:mod:`htaf._native` in eager mode,
        :mod:`htaf._ops` under ``torch.compile``): the same values and gradients, without the
        dozen small ops around the step."""
        lo = -1.0 if self.signed else 0.0
        if not (torch.is_grad_enabled() and x.requires_grad):
            return ops.step(x, lo)
        with torch.no_grad():  # with_rule detaches the rule too
            rule = self.output_grad(x)
        return ops.step_with_rule(x, rule, lo)

    def _to_output(self, y: Tensor) -> Tensor:
        """The smooth forward moved from the natural space to the output space: scaled with
        the steps (``2y - 1``, ``(y + 1)/2``), or, for a space-independent rule, shifted by the
        midpoints' difference (``y ± 1/2``) so that its derivative stays the rule."""
        natural_signed = self.natural == "signed"
        if self.signed == natural_signed:
            return y
        if self.space_independent:
            return y - 0.5 if self.signed else y + 0.5
        return 2 * y - 1 if self.signed else (y + 1) / 2

    def output_grad(self, x: Tensor) -> Tensor:
        """Backward rule in the output space: ``grad``, scaled by 2 (±1 outputs of a {0, 1}
        rule) or 1/2 (the reverse) unless the rule is ``space_independent``."""
        g = self.grad(x)
        natural_signed = self.natural == "signed"
        if self.signed == natural_signed or self.space_independent:
            return g
        return 2 * g if self.signed else g / 2

    def extra_repr(self) -> str:
        params = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        sep = ", " if params else ""
        return f"{params}{sep}mode={self.mode!r}, signed={self.signed}"

    def get_extra_state(self) -> dict[str, Any]:
        return {"params": self.params, "mode": self.mode, "signed": self.signed}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        for key, value in state["params"].items():
            self.set_param(key, value)
        self.mode = state["mode"]
        self.signed = bool(state["signed"])


def estimators_in(model: nn.Module) -> Iterator[Estimator]:
    """Every estimator in ``model`` (``model`` itself included)."""
    return (m for m in model.modules() if isinstance(m, Estimator))


#: What ``harden`` / ``soften`` / ``set_mode`` may switch (their ``which=``).
WHICH = ("activations", "weights", "both")


def quantizes_weights(est: Estimator) -> bool:
    """Whether ``est`` quantizes weights (a BNN kernel quantizer): the layer that owns it sets
    ``quantizes_weights = True`` on it (:class:`~htaf.families.bnn.layers.QuantLinear`,
    ``QuantConv2d``); every other estimator acts on activations."""
    return bool(getattr(est, "quantizes_weights", False))


def _check_which(which: str) -> str:
    if which not in WHICH:
        raise ValueError(f"which must be 'activations', 'weights' or 'both', got {which!r}")
    return which


class _ModeSwitch:
    """Switches the chosen estimators now; restores their previous modes when used as a
    context. ``which`` picks them: ``"activations"`` (every estimator but weight quantizers),
    ``"weights"`` (only estimators marked ``quantizes_weights``) or ``"both"``."""

    def __init__(self, model: nn.Module, mode: Mode, which: str = "both"):
        if mode not in MODES:
            raise ValueError(f"mode must be 'smooth' or 'hard', got {mode!r}")
        _check_which(which)
        self.model = model
        chosen = [
            est
            for est in estimators_in(model)
            if which == "both" or (which == "weights") == quantizes_weights(est)
        ]
        self._previous = [(est, est.mode) for est in chosen]
        for est, _ in self._previous:
            est.mode = mode

    def __enter__(self) -> nn.Module:
        return self.model

    def __exit__(self, *exc: object) -> None:
        for est, mode in self._previous:
            est.mode = mode


def harden(model: nn.Module, which: str = "both") -> _ModeSwitch:
    """Switch the estimators in ``model`` to the exact step forward: by default all of them
    (``which="both"``), so every binary weight and activation is exactly a step's value;
    ``"activations"`` or ``"weights"`` (kernel quantizers, marked ``quantizes_weights``)
    switch only those.

    Permanent when called as ``htaf.harden(model)``; temporary inside ``with htaf.harden(model):``.
    """
    return _ModeSwitch(model, "hard", which)


def soften(model: nn.Module, which: str = "activations") -> _ModeSwitch:
    """Switch estimators in ``model`` to their smooth forward (permanent or as a context).

    By default only the activation estimators (``which="activations"``): a BNN's kernel
    quantizers train in hard mode, so softening them too would evaluate weights the model was
    never trained with (accuracy near chance). ``which="both"`` softens them as well,
    ``which="weights"`` only them.
    """
    return _ModeSwitch(model, "smooth", which)


def set_mode(model: nn.Module, mode: Mode, which: str | None = None) -> _ModeSwitch:
    """Switch estimators in ``model`` to ``mode`` (permanent or as a context), with the
    defaults of :func:`harden` and :func:`soften`: ``"hard"`` switches every estimator, so the
    network is binary; ``"smooth"`` only the activations, so a BNN keeps the weights it was
    trained with (the engine's ``*_smooth`` metrics are this forward). ``which`` overrides
    (``"activations"``, ``"weights"`` or ``"both"``)."""
    if which is None:
        which = "both" if mode == "hard" else "activations"
    return _ModeSwitch(model, mode, which)
