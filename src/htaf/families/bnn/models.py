"""The classic binary architectures, built from quantized layers.

Every architecture is a stack of Larq-style layers in which the activation quantizer sits at
the *input* of the next binary layer (``sign(BN(...))`` feeds every binary convolution), as in
BinaryNet and Larq. The first layer sees the real-valued image and the last layer gives real
logits; by default both keep full-precision weights, as in the literature (``binary_first``,
``binary_last`` binarize their kernels).

* ``small_cnn``: three 3×3 convolutions and a linear head, for 8×8 digits (the offline default);
* ``binarynet_mlp``: Hubara et al. 2016's MNIST MLP, three hidden layers of 4096 units + BN;
* ``binarynet_cnn``: the VGG-style CIFAR-10 BinaryNet, laid out as in Larq's "BinaryNet on
  CIFAR10" tutorial (first convolution unpadded, no biases, BN after every layer);
* ``xnornet``: XNOR-Net's AlexNet as in Larq Zoo, binary convolutions scaled by mean |W|;
* ``birealnet18``: Bi-Real Net 18 as in Larq Zoo: a real-valued shortcut around every binary
  3×3 convolution, mean |W| scaling.

For a continuous reference (``relu``) the same stack is built with full-precision layers and
the activation placed where the input quantizers would be.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from htaf.estimators import (
    Estimator,
    activation,
    estimators_in,
    is_binary,
    quantizes_weights,
    set_mode,
)
from htaf.families.bnn.layers import (
    ModeBatchNorm1d,
    ModeBatchNorm2d,
    ModeNorm,
    QuantConv2d,
    QuantizerError,
    QuantLayer,
    QuantLinear,
    quantizer,
)
from htaf.families.summary import format_summary, profile

__all__ = ["ARCHS", "BNN", "ArchShapeError", "Binarization", "build_arch"]


class ArchShapeError(ValueError):
    """Inputs whose shape an architecture cannot take (too small, or not images)."""


@dataclass(frozen=True)
class Binarization:
    """How one model is quantized: the run's estimator and the family's options.

    ``estimator`` quantizes every binary layer's input (a continuous reference such as
    ``"relu"`` instead gives full-precision layers with that activation); ``kernel`` quantizes
    the binary layers' weights: an estimator spec, ``"same"`` (the run's estimator) or
    ``"none"`` (full-precision weights). A reference run has full-precision weights.
    """

    estimator: str
    params: Mapping[str, float]
    kernel: str = "ste_clipped"
    scaling: str = "none"
    binary_first: bool = False
    binary_last: bool = False
    pad_value: float = 1.0

    @property
    def binary(self) -> bool:
        return is_binary(self.estimator)

    def act(self) -> nn.Module | None:
        """The reference activation before a layer (None for binary runs: the layer quantizes)."""
        return None if self.binary else activation(self.estimator, **self.params)

    def input_quantizer(self) -> Estimator | None:
        return quantizer(self.estimator, "input_quantizer", **self.params) if self.binary else None

    def kernel_quantizer(self) -> Estimator | None:
        """A binary run's weight quantizer; a continuous reference run is full precision."""
        if self.kernel == "none" or not self.binary:
            return None
        if self.kernel == "same":
            return quantizer(self.estimator, "kernel_quantizer", **self.params)
        return quantizer(self.kernel, "model.kernel_quantizer")


class Stack:
    """Builds an ``nn.Sequential`` and tracks its output shape ``(C, H, W)`` or ``(F,)``.

    ``role``: ``"first"`` (real input; binary kernel only with ``binary_first``), ``"last"``
    (binary kernel only with ``binary_last``), ``"shortcut"`` (real: Bi-Real's downsampling)
    or ``"hidden"``.
    """

    def __init__(self, arch: str, q: Binarization, shape: tuple[int, ...]):
        self.arch, self.q, self.shape = arch, q, tuple(shape)
        self.layers: list[nn.Module] = []

    def _quant(self, role: str, quant_input: bool) -> dict[str, Any]:
        binary_kernel = {"first": self.q.binary_first, "last": self.q.binary_last,
                         "shortcut": False}.get(role, True)  # fmt: skip
        quant_input = quant_input and role not in ("first", "shortcut")
        if quant_input and (act := self.q.act()) is not None:
            self.layers.append(act)
        return {
            "input_quantizer": self.q.input_quantizer() if quant_input else None,
            "kernel_quantizer": self.q.kernel_quantizer() if binary_kernel else None,
            "scaling": self.q.scaling,
        }

    def _spatial(self, what: str, k: int, stride: int, padding: int, ceil: bool = False) -> None:
        """The output size of a k×k window with ``stride`` and ``padding`` (rounded up with
        ``ceil``: TF's "same" average pooling, partial windows allowed)."""
        if len(self.shape) != 3:
            raise ArchShapeError(f"model.arch {self.arch!r} needs images (C, H, W) before {what}")
        c, h, w = self.shape
        sizes = []
        for n in (h, w):
            room = n + 2 * padding - (1 if ceil else k)
            if room < 0:
                need = (1 if ceil else k) - 2 * padding
                raise ArchShapeError(
                    f"model.arch {self.arch!r}: the images shrink to {h}×{w} before {what}, "
                    f"which needs at least {need}×{need}"
                )
            sizes.append((n + 2 * padding - k + (stride - 1 if ceil else 0)) // stride + 1)
        self.shape = (c, *sizes)

    def conv(self, cout: int, k: int, stride: int = 1, padding: int = 0, *, role: str = "hidden",
             quant_input: bool = True, bias: bool = False) -> Stack:  # fmt: skip
        cin = self.shape[0]
        self._spatial(f"a {k}×{k} convolution", k, stride, padding)
        quant = self._quant(role, quant_input)
        self.layers.append(QuantConv2d(cin, cout, k, stride, padding, bias,
                                       pad_value=self.q.pad_value, **quant))  # fmt: skip
        self.shape = (cout, *self.shape[1:])
        return self._record()

    def dense(self, n: int, *, role: str = "hidden", quant_input: bool = True,
              bias: bool = False) -> Stack:  # fmt: skip
        if len(self.shape) != 1:
            self.flatten()
        quant = self._quant(role, quant_input)
        self.layers.append(QuantLinear(self.shape[0], n, bias, **quant))
        self.shape = (n,)
        return self._record()

    def bn(self) -> Stack:
        norm = ModeBatchNorm2d if len(self.shape) == 3 else ModeBatchNorm1d
        self.layers.append(norm(self.shape[0]))
        return self._record()

    def pool(self, k: int, stride: int, padding: int = 0, *, kind: str = "max") -> Stack:
        self._spatial(f"a {k}×{k} {kind} pooling", k, stride, padding, ceil=kind == "avg")
        if kind == "max":
            self.layers.append(nn.MaxPool2d(k, stride, padding))
        else:  # TF's "same" average pooling: partial windows, padding not counted
            self.layers.append(nn.AvgPool2d(k, stride, padding, ceil_mode=True,
                                            count_include_pad=False))  # fmt: skip
        return self._record()

    def global_pool(self) -> Stack:
        self.layers.append(nn.AdaptiveAvgPool2d(1))
        self.shape = (self.shape[0], 1, 1)
        self._record()
        return self.flatten()

    def _record(self) -> Stack:
        """Note the last layer's output shape, for the summary (no forward pass needed)."""
        self.layers[-1].output_shape = self.shape
        return self

    def flatten(self) -> Stack:
        self.layers.append(nn.Flatten())
        self.shape = (math.prod(self.shape),)
        return self

    def relu(self) -> Stack:
        self.layers.append(nn.ReLU())
        return self

    def module(self) -> nn.Sequential:
        return nn.Sequential(*self.layers)


class Residual(nn.Module):
    """``body(x) + shortcut(x)``: Bi-Real Net's real-valued shortcut around a binary conv."""

    def __init__(self, body: nn.Module, shortcut: nn.Module):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


# -- the architectures ---------------------------------------------------------------------------
def small_cnn(s: Stack, n_out: int, widths: tuple[int, ...]) -> None:
    c1, c2, c3 = widths or (32, 64, 64)
    s.conv(c1, 3, padding=1, role="first").bn()
    s.conv(c2, 3, padding=1).pool(2, 2).bn()
    s.conv(c3, 3, padding=1).pool(2, 2).bn()
    s.dense(n_out, role="last", bias=True)


def binarynet_mlp(s: Stack, n_out: int, widths: tuple[int, ...]) -> None:
    for i, width in enumerate(widths or (4096, 4096, 4096)):
        s.dense(width, role="first" if i == 0 else "hidden").bn()
    s.dense(n_out, role="last").bn()


def binarynet_cnn(s: Stack, n_out: int, widths: tuple[int, ...]) -> None:
    s.conv(128, 3, role="first").bn()  # Larq's tutorial: the first convolution is unpadded
    s.conv(128, 3, padding=1).pool(2, 2).bn()
    s.conv(256, 3, padding=1).bn()
    s.conv(256, 3, padding=1).pool(2, 2).bn()
    s.conv(512, 3, padding=1).bn()
    s.conv(512, 3, padding=1).pool(2, 2).bn()
    s.dense(1024).bn()
    s.dense(1024).bn()
    s.dense(n_out, role="last").bn()


def xnornet(s: Stack, n_out: int, widths: tuple[int, ...]) -> None:
    # Larq Zoo's XNORNet; its 11×11/4 convolution is "same"-padded: padding 4 gives 224 -> 56.
    s.conv(96, 11, stride=4, padding=4, role="first").bn().relu().pool(3, 2).bn()
    s.conv(256, 5, padding=2).pool(3, 2).bn()
    s.conv(384, 3, padding=1).bn()
    s.conv(384, 3, padding=1).bn()
    s.conv(256, 3, padding=1).pool(3, 2).bn()
    s.conv(4096, 6).bn()
    s.conv(4096, 1).bn().relu()  # a 1×1 convolution: the first fully connected layer
    s.dense(n_out, role="last", quant_input=False)


def birealnet18(s: Stack, n_out: int, widths: tuple[int, ...]) -> None:
    s.conv(64, 7, stride=2, padding=3, role="first").bn().pool(3, 2, padding=1)
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(4):
            _bireal_block(s, filters, stride=2 if stage > 0 and block == 0 else 1)
    s.global_pool().dense(n_out, role="last", quant_input=False, bias=True)


def _bireal_block(s: Stack, filters: int, stride: int) -> None:
    body = Stack(s.arch, s.q, s.shape).conv(filters, 3, stride, padding=1).bn()
    short = Stack(s.arch, s.q, s.shape)
    if stride != 1 or filters != s.shape[0]:  # real-valued downsampling: AvgPool, 1×1 conv, BN
        short.pool(2, 2, kind="avg").conv(filters, 1, role="shortcut", quant_input=False).bn()
    if body.shape != short.shape:
        raise ArchShapeError(f"model.arch {s.arch!r}: the shortcut gives {short.shape}, the "
                             f"binary convolution {body.shape}")  # fmt: skip
    s.layers.append(Residual(body.module(), short.module()))
    s.shape = body.shape


ARCHS: dict[str, Callable[[Stack, int, tuple[int, ...]], None]] = {
    "small_cnn": small_cnn,
    "binarynet_mlp": binarynet_mlp,
    "binarynet_cnn": binarynet_cnn,
    "xnornet": xnornet,
    "birealnet18": birealnet18,
}
#: Architectures whose ``widths`` option means something, and what it sets.
WIDTHS = {"small_cnn": "the three convolutions' channels", "binarynet_mlp": "the hidden layers"}
#: The weight scaling each architecture's paper uses.
DEFAULT_SCALING = {"xnornet": "mean_abs", "birealnet18": "mean_abs"}


# -- the model ----------------------------------------------------------------------------------
class BNN(nn.Module):
    """A binary network: ``arch``'s layers, with the hooks the htaf engine honours.

    * ``binary_parameters()``: the latent weights of the binary kernels (what Bop flips);
    * ``calibrate(x)``: BatchNorm statistics of the forwards the network does not train in;
    * ``epoch_stats(x)``: per binary layer the flip ratio since the last call (Larq's metric)
      and the fraction of quantized activations within 0.05 of ±1 (smooth forward, on ``x``),
      and the fraction of ``x`` whose prediction the hard forward changes (``disagreement``);
    * ``eval_stats(x)``: that fraction of near-±1 activations in the current forward mode;
    * ``summary()``: Larq's table of precision, parameters, memory and MACs.
    """

    def __init__(self, arch: str, body: nn.Module, input_shape: tuple[int, ...], n_out: int):
        super().__init__()
        self.arch, self.input_shape, self.n_out = arch, tuple(input_shape), n_out
        self.body = body
        self.layer_names = _name_layers(body)

    def forward(self, x: Tensor) -> Tensor:
        stats = self.forward_kind()
        for norm in self._norms():
            norm.stats = stats
        return self.body(x)

    def forward_kind(self) -> str:
        """``"hard"`` when every estimator runs its exact step (the binary network itself),
        ``"smooth"`` when every activation estimator runs its smooth forward (the kernel
        quantizers as they are: ``set_mode(model, "smooth")``, the engine's smooth forward),
        else ``"mixed"``."""
        ests = list(estimators_in(self))
        if not ests:
            return "mixed"  # no estimators: one network, the usual statistics
        if all(est.mode == "hard" for est in ests):
            return "hard"
        acts = {est.mode for est in ests if not quantizes_weights(est)}
        return "smooth" if acts == {"smooth"} else "mixed"

    def _norms(self) -> list[ModeNorm]:
        return [m for m in self.modules() if isinstance(m, ModeNorm)]

    @torch.no_grad()
    def calibrate(self, x: Tensor, batch_size: int = 256) -> None:
        """Re-estimate the BatchNorm statistics of the hard and the smooth forward on ``x``,
        except the one the network trains in (HTAF: smooth; STE: hard), as BatchNorm
        re-estimation does: a cumulative average over batches of ``batch_size``. The engine
        calls it after every epoch with a fixed sample of the training split."""
        trained = self.forward_kind()
        if next(estimators_in(self), None) is None:
            return  # no estimators: both forwards are one network
        norms = self._norms()
        momenta = [m.momentum for m in norms]
        was_training = self.training
        self.train()
        try:
            for target in ModeNorm.SETS:
                if target == trained:
                    continue
                for m in norms:
                    m.momentum = None
                    m.reset_stats(target)
                with set_mode(self, target):
                    for chunk in x.split(batch_size):
                        if len(chunk) > 1:  # a batch of one has no variance
                            self(chunk)
        finally:
            self.train(was_training)
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum

    def quant_layers(self) -> dict[str, QuantLayer]:
        return {n: m for n, m in self.layer_names.items() if isinstance(m, QuantLayer)}

    def binary_layers(self) -> dict[str, QuantLayer]:
        return {n: m for n, m in self.quant_layers().items() if m.binary}

    def binary_parameters(self) -> list[nn.Parameter]:
        """The latent weights of every binary kernel (for ``optimizer = "bop"``)."""
        return [m.weight for m in self.binary_layers().values()]

    def set_kernel_quantizer(self, layer: str, spec: str | None) -> None:
        """Quantize the kernel of ``layer`` (a name from :meth:`summary`) with ``spec``."""
        module = self.layer_names.get(layer)
        if module is None:
            raise QuantizerError(
                f"model.layer_quantizers: no layer {layer!r} in {self.arch} "
                f"(layers: {', '.join(self.layer_names)})"
            )
        if not isinstance(module, QuantLayer):
            raise QuantizerError(
                f"model.layer_quantizers: layer {layer!r} ({type(module).__name__}) has no "
                "kernel and cannot take a kernel quantizer"
            )
        module.set_kernel_quantizer(spec)

    # -- statistics ---------------------------------------------------------------------------
    def _quantized_outputs(self, x: Tensor) -> tuple[Tensor, dict[str, list[Tensor]]]:
        """Logits of ``x`` and the outputs of every input quantizer, by layer."""
        seen: dict[str, list[Tensor]] = {}
        hooks = []
        for name, layer in self.quant_layers().items():
            if layer.input_quantizer is not None:
                seen[name] = []
                hooks.append(layer.input_quantizer.register_forward_hook(
                    lambda _m, _i, out, acc=seen[name]: acc.append(out.detach())))  # fmt: skip
        try:
            logits = self(x)
        finally:
            for h in hooks:
                h.remove()
        return logits, seen

    @staticmethod
    def _near_pm1(outputs: dict[str, list[Tensor]]) -> dict[str, float]:
        return {
            name: float(torch.cat([(1 - o.abs()).abs().reshape(-1) <= 0.05 for o in outs])
                        .float().mean())
            for name, outs in outputs.items() if outs
        }  # fmt: skip

    @torch.no_grad()
    def epoch_stats(self, x: Tensor | None = None) -> dict[str, Any]:
        """``flip_ratio`` per binary layer; with ``x`` (a validation batch) also ``near_pm1_05``
        per quantized input (smooth forward) and ``disagreement`` (smooth vs hard predictions)."""
        stats: dict[str, Any] = {
            "flip_ratio": {n: m.pop_flip_ratio() for n, m in self.binary_layers().items()}
        }
        if x is None or not self.quant_layers():
            return stats
        with set_mode(self, "smooth"):
            smooth, outputs = self._quantized_outputs(x)
        with set_mode(self, "hard"):
            hard = self(x)
        if outputs:
            stats["near_pm1_05"] = self._near_pm1(outputs)
        stats["disagreement"] = float((_predictions(smooth) != _predictions(hard)).float().mean())
        return stats

    @torch.no_grad()
    def eval_stats(self, x: Tensor) -> dict[str, float]:
        """``near_pm1_05``: fraction of quantized activations within 0.05 of ±1 (all layers)."""
        _, outputs = self._quantized_outputs(x)
        values = [o for outs in outputs.values() for o in outs]
        if not values:
            return {}
        near = torch.cat([((1 - o.abs()).abs() <= 0.05).reshape(-1) for o in values])
        return {"near_pm1_05": float(near.float().mean())}

    def summary(self) -> str:
        """Larq's table: precision, parameters, memory and MACs per layer, with totals."""
        return format_summary(profile(self), title=f"{self.arch} {self.input_shape}")


def _predictions(logits: Tensor) -> Tensor:
    return logits.argmax(1) if logits.shape[1] > 1 else (logits[:, 0] >= 0).long()


def _name_layers(body: nn.Module) -> dict[str, nn.Module]:
    """``conv1, conv2, ..., dense1, ..., bn1, ..., pool1, ...`` in the order layers are built."""
    kinds = (
        ("conv", (nn.Conv2d,)),
        ("dense", (nn.Linear,)),
        ("bn", (nn.BatchNorm1d, nn.BatchNorm2d)),
        ("pool", (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)),
    )
    counts: dict[str, int] = {}
    names: dict[str, nn.Module] = {}
    for module in body.modules():
        for prefix, types in kinds:
            if isinstance(module, types):
                counts[prefix] = counts.get(prefix, 0) + 1
                names[f"{prefix}{counts[prefix]}"] = module
                break
    return names


def build_arch(
    arch: str, q: Binarization, input_shape: tuple[int, ...], n_out: int,
    widths: tuple[int, ...] = (),
) -> BNN:  # fmt: skip
    """The :class:`BNN` ``arch`` for inputs of ``input_shape`` and ``n_out`` logits.

    Raises :class:`ArchShapeError` naming the architecture and the smallest square image it
    takes when the inputs are too small, ``ValueError`` for an unknown architecture.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown model.arch {arch!r} (available: {', '.join(ARCHS)})")
    try:
        stack = Stack(arch, q, input_shape)
        ARCHS[arch](stack, n_out, tuple(widths))
    except ArchShapeError as err:
        smallest = _smallest_input(arch, q, input_shape, n_out, widths)
        hint = f"; it takes {smallest}×{smallest} images and larger" if smallest else ""
        raise ArchShapeError(f"{err} (input shape {tuple(input_shape)}){hint}") from None
    return BNN(arch, stack.module(), input_shape, n_out)


def _smallest_input(arch: str, q: Binarization, shape: tuple[int, ...], n_out: int,
                    widths: tuple[int, ...]) -> int | None:  # fmt: skip
    if len(shape) != 3:
        return None
    with torch.device("meta"):  # shapes only: nothing is allocated
        for size in range(1, 513):
            try:
                ARCHS[arch](Stack(arch, q, (shape[0], size, size)), n_out, widths)
                return size
            except ArchShapeError:
                continue
    return None
