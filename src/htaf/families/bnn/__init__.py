"""Binary Neural Networks: weights and activations in {-1, +1}, Larq-style.

    htaf compare --family bnn                               # small CNN on digits_images
    htaf compare --family bnn --dataset cifar10 --model arch=binarynet_cnn
    htaf train --config run.toml --set family="bnn" --set model.arch="birealnet18"

Every binary layer quantizes its input with the run's estimator (``htaf``, ``ste_clipped``,
``approx_sign``...; signed, so the exact forward is ``sign``) and its latent weights with the
``kernel_quantizer`` option (``ste_clipped`` by default, BinaryNet's and Larq's weight
estimator, so that a comparison varies the activation estimator alone; ``"same"`` uses the
run's estimator for the weights too, e.g. signed HTAF); ``htaf.harden(model)`` makes weights
and activations exactly ±1. A continuous estimator (``relu``) gives the same network in full
precision, weights included: the reference row.

Options (the ``[model]`` table):

* ``arch``: ``small_cnn`` (default, 8×8 digits), ``binarynet_mlp``, ``binarynet_cnn``,
  ``xnornet``, ``birealnet18`` (see :mod:`htaf.families.bnn.models`);
* ``kernel_quantizer``: an estimator spec (default ``"ste_clipped"``), ``"same"`` (the run's
  estimator) or ``"none"`` (full-precision weights: binary activations only);
* ``scaling``: ``"default"`` (the architecture's paper: mean |W| for xnornet and birealnet18,
  none otherwise), ``"none"``, ``"mean_abs"`` (XNOR-Net) or ``"learned"``;
* ``binary_first``, ``binary_last``: binarize the first / last layer's weights (default: full
  precision, as in the literature);
* ``layer_quantizers``: per-layer kernel quantizers, ``["conv1=ste_clipped", "dense1=none"]``,
  by the layer names :meth:`BNN.summary` prints;
* ``pad_value``: what a binary convolution's padding adds around its ±1 input: ``1``
  (default: the padded input stays binary, as Larq Compute Engine's and OpenVINO's fast
  paths), ``-1``, or ``0`` (Larq's default zeros; a packed export cannot express it);
* ``widths``: the small CNN's three channel counts, or binarynet_mlp's hidden widths.

Training: Adam on the latent weights (clipped to [-1, 1] after every step; in a plain PyTorch
loop, :func:`weight_clip` ``(optimizer, model)`` makes the optimizer clip them), or
``optimizer = "bop"`` (Bop for the binary weights, Adam for the rest; ``optimizer_params`` sets
``gamma`` and ``threshold``). Per epoch the history holds ``model_stats``: the flip ratio of
every binary layer, the fraction of quantized activations within 0.05 of ±1 and the
smooth-vs-hard prediction disagreement. :func:`export_binary` writes the binary weights as bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from htaf.estimators import names, parse_spec
from htaf.families import DataSpec, Family
from htaf.families.bnn.export import export_binary, load_binary, save_binary
from htaf.families.bnn.layers import (
    QuantConv2d,
    QuantizerError,
    QuantLayer,
    QuantLinear,
    quantizer,
    weight_clip,
)
from htaf.families.bnn.models import (
    ARCHS,
    BNN,
    DEFAULT_SCALING,
    WIDTHS,
    ArchShapeError,
    Binarization,
    build_arch,
)
from htaf.families.summary import ModelProfile, format_summary, profile

__all__ = [
    "ARCHS",
    "BNN",
    "FAMILY",
    "ArchShapeError",
    "BNNOptions",
    "Binarization",
    "ModelProfile",
    "QuantConv2d",
    "QuantLayer",
    "QuantLinear",
    "QuantizerError",
    "build_arch",
    "export_binary",
    "format_summary",
    "load_binary",
    "profile",
    "quantizer",
    "save_binary",
    "weight_clip",
]

Arch = Literal["small_cnn", "binarynet_mlp", "binarynet_cnn", "xnornet", "birealnet18"]


def _check_spec(key: str, spec: str) -> None:
    """``spec`` names a registered estimator (a quantizer needs a binary forward)."""
    try:
        base = parse_spec(spec)[0]
    except ValueError as err:
        raise ValueError(f"option 'model.{key}': {err}") from None
    if base not in names():
        raise ValueError(
            f"option 'model.{key}' = {spec!r} is not an estimator: a quantizer needs a binary "
            f"forward (estimators: {', '.join(names())})"
        )


@dataclass(frozen=True)
class BNNOptions:
    """The BNN family's ``[model]`` table (see the module doc)."""

    arch: str = "small_cnn"
    kernel_quantizer: str = "ste_clipped"
    scaling: Literal["default", "none", "mean_abs", "learned"] = "default"
    binary_first: bool = False
    binary_last: bool = False
    layer_quantizers: tuple[str, ...] = ()
    widths: tuple[int, ...] = ()
    pad_value: float = 1.0

    def check(self) -> None:
        if self.pad_value not in (-1.0, 0.0, 1.0):
            raise ValueError(f"option 'model.pad_value' must be -1, 0 or 1, got {self.pad_value!r}")
        if self.arch not in ARCHS:
            raise ValueError(
                f"unknown architecture 'model.arch' = {self.arch!r} (available: {', '.join(ARCHS)})"
            )
        if self.kernel_quantizer not in ("same", "none"):
            _check_spec("kernel_quantizer", self.kernel_quantizer)
        for item in self.layer_quantizers:
            layer, sep, spec = item.partition("=")
            if not sep or not layer.strip() or not spec.strip():
                raise ValueError(
                    f"option 'model.layer_quantizers' entries look like LAYER=QUANTIZER "
                    f"(e.g. conv1=ste_clipped, dense1=none), got {item!r}"
                )
            if spec.strip() != "none":
                _check_spec("layer_quantizers", spec.strip())
        if self.widths:
            if self.arch not in WIDTHS:
                raise ValueError(
                    f"option 'model.widths' applies to {' and '.join(WIDTHS)}, "
                    f"not to arch {self.arch!r}"
                )
            if min(self.widths) <= 0:
                raise ValueError(f"option 'model.widths' must be positive, got {self.widths}")
            if self.arch == "small_cnn" and len(self.widths) != 3:
                raise ValueError(
                    "option 'model.widths' of small_cnn is its three convolutions' channels, "
                    f"got {len(self.widths)} numbers"
                )


def build(options: BNNOptions, spec: DataSpec, estimator: str, params: Mapping[str, float]) -> BNN:
    """The network ``options.arch`` for ``spec``'s inputs, quantized with ``estimator``."""
    scaling = options.scaling
    if scaling == "default":
        scaling = DEFAULT_SCALING.get(options.arch, "none")
    q = Binarization(
        estimator, dict(params), kernel=options.kernel_quantizer, scaling=scaling,
        binary_first=options.binary_first, binary_last=options.binary_last,
        pad_value=float(options.pad_value),
    )  # fmt: skip
    model = build_arch(options.arch, q, spec.input_shape, spec.n_out, options.widths)
    for item in options.layer_quantizers:
        layer, _, qspec = (s.strip() for s in item.partition("="))
        model.set_kernel_quantizer(layer, None if qspec == "none" else qspec)
    return model


FAMILY = Family(
    name="bnn",
    description="Binary Neural Networks: ±1 weights and activations (BinaryNet, XNOR-Net, "
    "Bi-Real Net), Larq-style quantized layers",
    options=BNNOptions,
    build=build,
    kinds=("image", "table"),
    # Bare "htaf" in a quantizer slot is the hard, calibrated HTAF_QUANTIZER (layers.py):
    # BatchNorm feeds every quantizer unit-variance inputs, which the paper's (2, 11) leaves
    # mostly outside its live region. The measured grid is in docs/families/bnn.md.
    compare={"dataset": "digits_images", "epochs": 15, "lr": 3e-3, "batch_size": 64},
    estimators=("htaf", "ste", "ste_clipped", "approx_sign", "swish_sign", "relu"),
    jobs=2,
    legacy_options={"pad_value": 0.0},  # runs saved before pad_value padded with zeros
)
