"""Larq's model summary for binary networks: precision, parameters, memory and MACs.

    print(model.summary())          # a BNN; profile(model) gives the numbers

Counting follows ``larq.models.summary``:

* a binary kernel holds 1 bit per weight; everything else 32 bits;
* a BatchNorm layer counts 2 numbers per channel: at inference it folds into one scale and
  one offset (Larq fuses ``beta`` with ``moving_mean`` and ``gamma`` with ``moving_variance``);
  a mean-|W| weight scale folds into the BatchNorm after it and is not counted, a learned
  scale is a parameter and is;
* a layer's MACs are its kernel size times its output pixels (1 for a dense layer); a MAC is
  binary when both the layer's input and its kernel are 1-bit;
* memory is in KiB (8·1024 bits; Larq's "kB") and MiB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from htaf.estimators import soften
from htaf.families.bnn.layers import QuantLayer

__all__ = ["LayerRow", "ModelProfile", "format_summary", "profile", "readable"]

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_WEIGHTED = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class LayerRow:
    """One layer of the summary."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    input_bits: int | None  # None: a layer without a kernel
    kernel_bits: int | None
    binary_params: int
    float_params: int
    binary_macs: int
    float_macs: int

    @property
    def memory_bits(self) -> int:
        return self.binary_params + 32 * self.float_params

    @property
    def memory_kib(self) -> float:
        return self.memory_bits / (8 * 1024)


@dataclass
class ModelProfile:
    """Every :class:`LayerRow` of a model, and the totals."""

    rows: list[LayerRow] = field(default_factory=list)

    @property
    def binary_params(self) -> int:
        return sum(r.binary_params for r in self.rows)

    @property
    def float_params(self) -> int:
        return sum(r.float_params for r in self.rows)

    @property
    def params(self) -> int:
        return self.binary_params + self.float_params

    @property
    def memory_bits(self) -> int:
        return sum(r.memory_bits for r in self.rows)

    @property
    def memory_mib(self) -> float:
        return self.memory_bits / (8 * 1024**2)

    @property
    def float32_mib(self) -> float:
        """The same parameters stored as float32 ("Float-32 Equivalent")."""
        return 32 * self.params / (8 * 1024**2)

    @property
    def binary_macs(self) -> int:
        return sum(r.binary_macs for r in self.rows)

    @property
    def macs(self) -> int:
        return sum(r.binary_macs + r.float_macs for r in self.rows)

    @property
    def binary_mac_ratio(self) -> float:
        return self.binary_macs / self.macs if self.macs else 0.0


def _row(name: str, module: nn.Module, shape: tuple[int, ...]) -> LayerRow:
    if isinstance(module, _NORMS):
        return LayerRow(name, "batchnorm", shape, None, None, 0, 2 * module.num_features, 0, 0)
    if isinstance(module, _POOLS):
        return LayerRow(name, "pool", shape, None, None, 0, 0, 0, 0)
    kind = "conv" if isinstance(module, nn.Conv2d) else "dense"
    bits_in, bits_k = module.precision() if isinstance(module, QuantLayer) else (32, 32)
    kernel = module.weight.numel()
    extra = module.bias.numel() if module.bias is not None else 0
    scale = getattr(module, "scale", None)
    extra += scale.numel() if isinstance(scale, nn.Parameter) else 0
    binary = kernel if bits_k == 1 else 0
    pixels = shape[1] * shape[2] if kind == "conv" else 1
    macs = kernel * pixels
    binary_mac = bits_in == 1 and bits_k == 1
    return LayerRow(
        name, kind, shape, bits_in, bits_k, binary, kernel - binary + extra,
        macs if binary_mac else 0, 0 if binary_mac else macs,
    )  # fmt: skip


@torch.no_grad()
def profile(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> ModelProfile:
    """The layers of ``model`` in forward order, with their output shapes.

    Layers built by :class:`~htaf.families.bnn.models.Stack` carry their ``output_shape``, so
    a BNN (on any device, ``meta`` included) is profiled without running it. Any other model
    runs one eval-mode, smooth forward of a zero batch of ``input_shape`` (default
    ``model.input_shape``) with hooks that note each layer's output.
    """
    names = {m: n for n, m in getattr(model, "layer_names", {}).items()}
    layers = [m for m in model.modules() if isinstance(m, _NORMS + _POOLS + _WEIGHTED)]
    if all(hasattr(m, "output_shape") for m in layers):
        return ModelProfile([
            _row(names.get(m, type(m).__name__), m, tuple(m.output_shape)) for m in layers
        ])  # fmt: skip
    shape = tuple(input_shape or model.input_shape)
    rows: list[LayerRow] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, out: rows.append(
            _row(names.get(mod, type(mod).__name__), mod, tuple(out.shape[1:]))))
        for m in layers
    ]  # fmt: skip
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with soften(model):
            model(torch.zeros((1, *shape), device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return ModelProfile(rows)


def readable(n: float) -> str:
    """Larq's numbers: 3 significant figures with k / M / B (``10359700 -> '10.4 M'``)."""
    n = float(f"{n:.3g}")
    if n < 1000:
        return f"{n:g}"
    for unit in (" k", " M", " B", " T"):
        n /= 1000.0
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
    return f"{n:.3g} T"


def format_summary(p: ModelProfile, title: str = "model") -> str:
    """The per-layer table and the totals, as text."""
    head = ("layer", "output", "in bits", "kernel bits", "# 1-bit", "# 32-bit", "memory bits",
            "memory KiB", "1-bit MACs", "32-bit MACs")  # fmt: skip
    cells = [head]
    for r in p.rows:
        cells.append((
            r.name, "x".join(map(str, r.output_shape)),
            "-" if r.input_bits is None else str(r.input_bits),
            "-" if r.kernel_bits is None else str(r.kernel_bits),
            f"{r.binary_params:,}", f"{r.float_params:,}", f"{r.memory_bits:,}",
            f"{r.memory_kib:.2f}", f"{r.binary_macs:,}", f"{r.float_macs:,}",
        ))  # fmt: skip
    total_kib = p.memory_bits / (8 * 1024)
    cells.append((
        "total", "", "", "", f"{p.binary_params:,}", f"{p.float_params:,}",
        f"{p.memory_bits:,}", f"{total_kib:.2f}", f"{p.binary_macs:,}",
        f"{p.macs - p.binary_macs:,}",
    ))  # fmt: skip
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]

    def line(c: tuple[str, ...]) -> str:
        return "  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                         for i, (x, w) in enumerate(zip(c, widths, strict=True)))  # fmt: skip

    rule = "  ".join("-" * w for w in widths)
    ratio = p.memory_mib / p.float32_mib if p.float32_mib else 0.0
    return "\n".join([
        title, rule, line(head), rule, *(line(c) for c in cells[1:-1]), rule, line(cells[-1]),
        rule,
        f"total params: {readable(p.params)} ({p.binary_params:,} binary, "
        f"{p.float_params:,} float)",
        f"memory: {p.memory_mib:.2f} MiB against {p.float32_mib:.2f} MiB as float32 "
        f"(compression ratio {ratio:.2f})",
        f"MACs: {readable(p.macs)}, of which binary: {p.binary_mac_ratio:.4f}",
    ])  # fmt: skip
