"""Larq-style quantized layers: ``QuantLinear`` and ``QuantConv2d``.

A quantized layer computes, as Larq's ``QuantDense`` / ``QuantConv2D`` do,

    y = op(q_in(x), alpha * q_k(W)) + b

* ``q_in``, the **input quantizer**: a signed estimator (``"ste_clipped"``, ``"approx_sign"``,
  ``"htaf"``...) that maps the incoming activations to {-1, +1}, or None (full precision);
* ``q_k``, the **kernel quantizer**: a signed estimator applied to the latent weights W, or
  None. After every optimizer step the latent weights are clipped to [-1, 1] (Larq's
  ``kernel_constraint="weight_clip"``), where clipped STE still passes gradient: htaf's
  engine does it, and in a plain PyTorch loop :func:`weight_clip` (``weight_clip(optimizer,
  model)``) makes the optimizer do it;
* ``alpha``, the **weight scaling** of a binary kernel, per output channel: ``"none"``;
  ``"mean_abs"``, XNOR-Net's alpha_c = mean |W_c| (no gradient through alpha, as Larq's
  ``magnitude_aware_sign``); or ``"learned"``, a trained per-channel scale (XNOR-Net++).

Quantizers are registered estimators built with ``signed=True``, so ``htaf.harden(model)``
makes every binary weight and activation exactly ±1 (``sign(0) = +1``); signed HTAF is
``2·HTAF − 1 = tanh((a1/2)·tanh(a0·x))`` in the smooth forward. A kernel quantizer carries the
marker ``quantizes_weights = True``, so activation statistics skip it and ``htaf.soften(model)``
leaves it hard by default (``which="activations"``; ``which="both"`` softens the weights too).

**Bare ``"htaf"`` as a quantizer** is ``htaf(auto, live=0.9)`` in hard mode: the exact sign
forward with the calibrated HTAF derivative as its backward (:data:`HTAF_QUANTIZER`). A
quantizer fed by plain batch norm (Larq's recipe) that trains through HTAF's smooth forward
collects running statistics of smooth activations, which the exact forward then does not
match; benchmarks/recipes.py measures the gap (see the README, "When HTAF struggles"). Any
explicit spec (``"htaf(0.25,11)"``, ``"htaf(auto)"``) keeps HTAF's smooth forward.

Each binary layer also counts its **flips** (Larq's flip ratio): after every optimizer step,
``constrain_`` compares the signs of the latent weights with those after the previous step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from htaf.estimators import REFERENCE_ACTIVATIONS, Estimator, get, parse_spec

__all__ = [
    "SCALINGS",
    "ModeBatchNorm1d",
    "ModeBatchNorm2d",
    "ModeNorm",
    "QuantConv2d",
    "QuantLayer",
    "QuantLinear",
    "quantizer",
    "weight_clip",
]

#: Weight scalings of a binary kernel.
SCALINGS = ("none", "mean_abs", "learned")
#: Estimator spec, an estimator, or None (full precision).
QuantizerSpec = str | Estimator | None


#: What bare ``"htaf"`` means in a quantizer slot (see the module doc).
HTAF_QUANTIZER: dict[str, Any] = {"live": 0.9, "mode": "hard", "training_mode": "hard"}


class QuantizerError(ValueError):
    """A quantizer that is not a signed estimator, or one on a layer that cannot take it."""


def quantizer(spec: QuantizerSpec, role: str = "quantizer", **params: float) -> Estimator | None:
    """The signed estimator ``spec`` names (a fresh one), ``spec`` itself, or None.

    ``params`` go to a named estimator (``alpha0=2, alpha1=11`` for ``"htaf"``). Raises
    :class:`QuantizerError` naming ``role`` for anything that is not an estimator (a continuous
    activation such as ``"relu"``, an unknown name, another module) or an unsigned estimator.
    """
    if spec is None:
        return None
    if isinstance(spec, Estimator):
        if not spec.signed:
            raise QuantizerError(
                f"{role} {spec.name!r} outputs {{0, 1}}; a binary layer needs ±1: build it "
                "with signed=True"
            )
        return spec
    if not isinstance(spec, str):
        raise QuantizerError(
            f"{role} must be an estimator name, an htaf Estimator or None, not "
            f"{type(spec).__name__}"
        )
    try:
        base = parse_spec(spec)[0]
        if base in REFERENCE_ACTIVATIONS:
            raise QuantizerError(
                f"{role} {spec!r} is a continuous activation, not an estimator: it has no "
                "binary forward (see `htaf estimators`)"
            )
        if spec.strip() == "htaf" and not params:
            params = HTAF_QUANTIZER
        return get(spec, signed=True, **params)
    except QuantizerError:
        raise
    except ValueError as err:  # unknown name, bad parameter
        raise QuantizerError(f"{role} {spec!r}: {err}") from None


def _kernel(est: Estimator | None) -> Estimator | None:
    if est is not None:
        est.quantizes_weights = True  # ActivationStats: a weight quantizer is no activation
    return est


class QuantLayer(nn.Module):
    """What ``QuantLinear`` and ``QuantConv2d`` share (mixed in before the torch layer)."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    out_features_dim: int = 0  # the weight's output-channel axis

    def _setup_quant(
        self,
        input_quantizer: QuantizerSpec,
        kernel_quantizer: QuantizerSpec,
        scaling: str,
        params: dict[str, float],
    ) -> None:
        if scaling not in SCALINGS:
            raise QuantizerError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
        self.input_quantizer = quantizer(input_quantizer, "input_quantizer", **params)
        self.scaling = scaling
        self.set_kernel_quantizer(kernel_quantizer, **params)

    # -- the kernel ---------------------------------------------------------------------------
    @property
    def binary(self) -> bool:
        """Whether the kernel is quantized (its weights are ±1 once hardened)."""
        return self.kernel_quantizer is not None

    def set_kernel_quantizer(self, spec: QuantizerSpec, **params: float) -> None:
        """Quantize the kernel with ``spec`` (None: full precision); resets the flip count."""
        self.kernel_quantizer = _kernel(quantizer(spec, "kernel_quantizer", **params))
        for name in ("flip_reference", "scale", "fixed_scale"):
            if hasattr(self, name):
                delattr(self, name)
        self.flips, self.steps = 0, 0
        if not self.binary:
            return
        # The signs after the last optimizer step (persistent: a resumed run counts on).
        self.register_buffer("flip_reference", self._signs())
        if self.scaling == "learned":  # starts at XNOR-Net's mean |W|
            w = self.weight
            start = torch.empty(w.shape[0], device="meta") if w.is_meta else self._mean_abs()
            self.scale = nn.Parameter(start.detach().clone())
        self.fixed_scale: Tensor | None = None  # see fix_scale

    def fix_scale(self, scale: Tensor) -> None:
        """Use ``scale`` (per output channel) instead of computing alpha: an exported model's
        latent weights are ±1, so mean |W| would no longer be the trained alpha."""
        del self.fixed_scale
        self.register_buffer("fixed_scale", scale.detach().reshape(-1).clone())

    def _signs(self) -> Tensor:
        if self.weight.is_meta:  # shapes only; meta comparisons load torch's slow reference ops
            return torch.empty(self.weight.shape, dtype=torch.int8, device="meta")
        return (self.weight.detach() >= 0).to(torch.int8)  # H(0) = 1, as the estimators

    def _channel_shape(self) -> tuple[int, ...]:
        return (-1,) + (1,) * (self.weight.dim() - 1)

    def _mean_abs(self) -> Tensor:
        dims = tuple(range(1, self.weight.dim()))
        return self.weight.detach().abs().mean(dim=dims)

    def weight_scale(self) -> Tensor | None:
        """alpha per output channel, shape ``(out,)``; None when unscaled or full precision."""
        if not self.binary or self.scaling == "none":
            return None
        if self.fixed_scale is not None:
            return self.fixed_scale
        return self.scale if self.scaling == "learned" else self._mean_abs()

    def quantized_weight(self) -> Tensor:
        """The kernel the layer computes with: ``alpha * q_k(W)`` (W itself at full precision)."""
        if self.kernel_quantizer is None:
            return self.weight
        w = self.kernel_quantizer(self.weight)
        scale = self.weight_scale()
        return w if scale is None else w * scale.view(self._channel_shape())

    def quantized_input(self, x: Tensor) -> Tensor:
        return x if self.input_quantizer is None else self.input_quantizer(x)

    def _scaled_op(self, x: Tensor, op: Any) -> Tensor:
        """``alpha * op(x, q_k(W)) + b``: the scale multiplies the output, not the kernel, so
        that with ±1 inputs and weights ``op`` sums integers exactly (float32 holds every
        integer below 2^24) and the packed forward reproduces the pre-activations bit for bit.
        """
        if self.kernel_quantizer is None:
            return op(x, self.weight, self.bias)
        # the bias too is added apart: a kernel that starts its sums at b would round them
        y = op(x, self.kernel_quantizer(self.weight), None)
        tail = self._out_tail(x)
        scale = self.weight_scale()
        if scale is not None:
            y = y * scale.view(-1, *tail)
        return y if self.bias is None else y + self.bias.view(-1, *tail)

    def _out_tail(self, x: Tensor) -> tuple[int, ...]:
        return (1,) * (x.dim() - 2) if isinstance(self, nn.Conv2d) else ()

    # -- after each optimizer step ------------------------------------------------------------
    @torch.no_grad()
    def constrain_(self) -> None:
        """Clip binary latent weights to [-1, 1]; count the signs this step flipped."""
        if not self.binary:
            return
        self.weight.clamp_(-1.0, 1.0)
        signs = self._signs()
        self.flips += int((signs != self.flip_reference).sum())
        self.steps += 1
        self.flip_reference.copy_(signs)

    def pop_flip_ratio(self) -> float:
        """Mean over the steps since the last call of the fraction of weights flipped per step
        (Larq's ``flip_ratio``); NaN when no step ran. Resets the count."""
        ratio = self.flips / (self.steps * self.weight.numel()) if self.steps else float("nan")
        self.flips, self.steps = 0, 0
        return ratio

    def precision(self) -> tuple[int, int]:
        """(input bits, kernel bits): 1 where quantized, else 32."""
        return (1 if self.input_quantizer is not None else 32, 1 if self.binary else 32)

    def extra_repr(self) -> str:
        base = super().extra_repr()  # type: ignore[misc]
        return f"{base}, scaling={self.scaling!r}" if self.binary else base


def weight_clip(optimizer: torch.optim.Optimizer, model: nn.Module) -> Any:
    """Make every ``optimizer.step()`` clip ``model``'s binary latent weights to [-1, 1] and
    count their flips, as htaf's engine does after each step (Larq's
    ``kernel_constraint="weight_clip"``), so a plain PyTorch loop trains the same way:

        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        weight_clip(opt, model)         # then the usual zero_grad / backward / step

    Calls ``constrain_()`` of every module of ``model`` that has one (each ``QuantLinear`` and
    ``QuantConv2d``) after each step. Returns the hook's handle (``.remove()`` stops it).
    ``ValueError`` when ``model`` has no such module; do not use it on an optimizer htaf's
    engine steps (the engine clips already, and the flips would count twice).
    """
    modules = [m for m in model.modules() if callable(getattr(m, "constrain_", None))]
    if not modules:
        raise ValueError(
            f"weight_clip: {type(model).__name__} has no layer to clip (no QuantLinear, "
            "QuantConv2d or other module with a constrain_())"
        )

    def clip(_optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        for module in modules:
            module.constrain_()

    return optimizer.register_step_post_hook(clip)


class QuantLinear(QuantLayer, nn.Linear):
    """``nn.Linear`` with an input quantizer, a kernel quantizer and weight scaling.

    >>> layer = QuantLinear(256, 128, input_quantizer="ste_clipped",
    ...                     kernel_quantizer="ste_clipped", scaling="mean_abs")
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        input_quantizer: QuantizerSpec = None,
        kernel_quantizer: QuantizerSpec = None,
        scaling: str = "none",
        **params: float,
    ):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._setup_quant(input_quantizer, kernel_quantizer, scaling, params)

    def forward(self, x: Tensor) -> Tensor:
        return self._scaled_op(self.quantized_input(x), F.linear)


class QuantConv2d(QuantLayer, nn.Conv2d):
    """``nn.Conv2d`` with an input quantizer, a kernel quantizer and weight scaling.

    ``pad_value``: what padding adds around a quantized (±1) input. The default 1 keeps the
    padded input binary, as Larq Compute Engine's fast path (``pad_values=1``) and OpenVINO's
    ``BinaryConvolution(pad_value=1)``; ``-1`` is also binary; ``0`` is Larq's default
    (zeros, which a packed binary forward cannot express). A full-precision input is padded
    with zeros whatever ``pad_value`` says.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        bias: bool = True,
        *,
        input_quantizer: QuantizerSpec = None,
        kernel_quantizer: QuantizerSpec = None,
        scaling: str = "none",
        pad_value: float = 1.0,
        **params: Any,
    ):
        if pad_value not in (-1.0, 0.0, 1.0):
            raise QuantizerError(f"pad_value must be -1, 0 or 1, got {pad_value!r}")
        self.pad_value = float(pad_value)
        nn.Conv2d.__init__(
            self, in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            bias=bias,
        )  # fmt: skip
        self._setup_quant(input_quantizer, kernel_quantizer, scaling, params)

    def forward(self, x: Tensor) -> Tensor:
        x = self.quantized_input(x)
        pads = self._reversed_padding_repeated_twice
        if self.input_quantizer is None or self.pad_value == 0.0 or not any(pads):
            return self._scaled_op(x, self._conv_forward)
        x = F.pad(x, pads, value=self.pad_value)
        return self._scaled_op(x, self._unpadded_conv)

    def _unpadded_conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        base = super().extra_repr()
        pads = self.input_quantizer is not None and any(self._reversed_padding_repeated_twice)
        return f"{base}, pad_value={self.pad_value:g}" if pads else base


class ModeNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm with one set of running statistics per forward: hard, smooth, or mixed.

    ±1 activations and their smooth counterparts do not have the same mean and variance, so a
    network trained in one forward and run in another would normalize with the wrong
    statistics. ``stats`` (set by :class:`~htaf.families.bnn.models.BNN` before every forward)
    picks the set: ``"hard"`` (every estimator hard: ``hard_mean`` / ``hard_var``),
    ``"smooth"`` (every estimator smooth: ``smooth_mean`` / ``smooth_var``) or ``"mixed"``
    (anything else, or no estimator: the usual ``running_mean`` / ``running_var``). Training
    updates the set of the forward it runs; ``BNN.calibrate`` estimates the others
    (BatchNorm re-estimation). A set never estimated falls back to the usual statistics. The
    affine weight and bias are shared.
    """

    SETS = ("hard", "smooth")

    def __init__(self, num_features: int, **kwargs: Any):
        super().__init__(num_features, **kwargs)
        for name in self.SETS:
            self.register_buffer(f"{name}_mean", torch.zeros(num_features))
            self.register_buffer(f"{name}_var", torch.ones(num_features))
            self.register_buffer(f"{name}_batches", torch.tensor(0, dtype=torch.long))
        self.stats = "mixed"

    def reset_stats(self, name: str) -> None:
        """Forget the statistics of set ``name`` (``"hard"``, ``"smooth"`` or ``"mixed"``)."""
        if name == "mixed":
            self.reset_running_stats()
            return
        getattr(self, f"{name}_mean").zero_()
        getattr(self, f"{name}_var").fill_(1.0)
        getattr(self, f"{name}_batches").zero_()

    def forward(self, x: Tensor) -> Tensor:
        if self.stats == "mixed":
            return super().forward(x)
        mean, var = getattr(self, f"{self.stats}_mean"), getattr(self, f"{self.stats}_var")
        count = getattr(self, f"{self.stats}_batches")
        self._check_input_dim(x)
        factor = 0.0
        if self.training:
            count.add_(1)
            factor = self.momentum if self.momentum is not None else 1.0 / float(count)
        elif self.running_mean is not None:
            # A set never estimated falls back to the usual statistics. A select, not an `if`
            # on the count, so that jit.trace, torch.export and ONNX record both branches.
            mean = torch.where(count > 0, mean, self.running_mean)
            var = torch.where(count > 0, var, self.running_var)
        return F.batch_norm(x, mean, var, self.weight, self.bias, self.training, factor, self.eps)


class ModeBatchNorm1d(ModeNorm, nn.BatchNorm1d):
    """:class:`ModeNorm` for ``(N, C)`` and ``(N, C, L)`` inputs."""


class ModeBatchNorm2d(ModeNorm, nn.BatchNorm2d):
    """:class:`ModeNorm` for ``(N, C, H, W)`` inputs."""
