"""Model summaries for every family: one row per layer, one table, Larq's counting.

    print(model.summary())          # a DHN or a BNN; model.profile() / profile(model): the rows

A family describes its layers as :class:`LayerRow` s (by hand, or :func:`profile` finds them),
and prints the :class:`ModelProfile` with :func:`format_summary`, choosing its columns
(:data:`LARQ_COLUMNS`, :data:`ACTIVATION_COLUMNS`) and footer lines (:data:`LARQ_FOOTER`,
:data:`ACTIVATION_FOOTER`).

Counting follows ``larq.models.summary``:

* a binary kernel holds 1 bit per weight; everything else 32 bits;
* a BatchNorm layer counts 2 numbers per channel: at inference it folds into one scale and
  one offset (Larq fuses ``beta`` with ``moving_mean`` and ``gamma`` with ``moving_variance``);
  a mean-|W| weight scale folds into the BatchNorm after it and is not counted, a learned
  scale is a parameter and is;
* a layer's MACs are its kernel size times its output pixels (1 for a dense layer); a MAC is
  binary when both the layer's input and its kernel are 1-bit;
* memory is in KiB (8·1024 bits; Larq's "kB") per layer, and in B, KiB or MiB,
  whichever reads best, in total;
* a hidden activation holds 1 bit per unit once hardened when it is a step, else 32 bits.

A layer's precision is what its ``precision()`` method says, ``(input bits, kernel bits)``
(a BNN's quantized layers have one), and 32 bits for both otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from htaf.estimators import Estimator, soften

__all__ = [
    "ACTIVATION_COLUMNS",
    "ACTIVATION_FOOTER",
    "LARQ_COLUMNS",
    "LARQ_FOOTER",
    "Column",
    "LayerRow",
    "ModelProfile",
    "describe_activation",
    "format_summary",
    "layer_row",
    "profile",
    "readable",
    "size",
]

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_WEIGHTED = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class LayerRow:
    """One layer of the summary.

    ``activation`` names the activation after the layer (``""``: none listed) and
    ``activation_bits`` what one of its units holds once hardened: 1 for a step, 32 for a
    float; ``None`` where the output is not a hidden activation (logits, a BatchNorm).
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    input_bits: int | None = None  # None: a layer without a kernel
    kernel_bits: int | None = None
    binary_params: int = 0
    float_params: int = 0
    binary_macs: int = 0
    float_macs: int = 0
    input_shape: tuple[int, ...] | None = None
    activation: str = ""
    activation_bits: int | None = None

    @property
    def params(self) -> int:
        return self.binary_params + self.float_params

    @property
    def memory_bits(self) -> int:
        return self.binary_params + 32 * self.float_params

    @property
    def memory_kib(self) -> float:
        return self.memory_bits / (8 * 1024)

    @property
    def units(self) -> int:
        """Output units per sample."""
        return math.prod(self.output_shape)


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
    def memory_kib(self) -> float:
        return self.memory_bits / (8 * 1024)

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

    @property
    def hidden_units(self) -> int:
        """Units of the hidden activations, per sample."""
        return sum(r.units for r in self.rows if r.activation_bits is not None)

    @property
    def binary_units(self) -> int:
        """Hidden units that hold 1 bit once hardened."""
        return sum(r.units for r in self.rows if r.activation_bits == 1)

    @property
    def activation_bits(self) -> int:
        """Bits of the hidden activations per sample, once hardened."""
        return sum(r.units * r.activation_bits for r in self.rows if r.activation_bits)


def layer_row(
    name: str,
    module: nn.Module,
    output_shape: tuple[int, ...],
    *,
    input_bits: int | None = None,
    **fields: object,
) -> LayerRow:
    """The row of a dense, convolution, BatchNorm or pooling ``module`` with ``output_shape``
    (per sample). ``input_bits`` overrides the module's own; ``fields`` set the rest
    (``activation=...``, ``input_shape=...``)."""
    shape = tuple(output_shape)
    if isinstance(module, _NORMS):
        return LayerRow(name, "batchnorm", shape, float_params=2 * module.num_features, **fields)
    if isinstance(module, _POOLS):
        return LayerRow(name, "pool", shape, **fields)
    kind = "conv" if isinstance(module, nn.Conv2d) else "dense"
    precision = getattr(module, "precision", None)
    bits_in, bits_k = precision() if callable(precision) else (32, 32)
    bits_in = bits_in if input_bits is None else input_bits
    kernel = module.weight.numel()
    extra = module.bias.numel() if module.bias is not None else 0
    scale = getattr(module, "scale", None)
    extra += scale.numel() if isinstance(scale, nn.Parameter) else 0
    binary = kernel if bits_k == 1 else 0
    macs = kernel * (shape[1] * shape[2] if kind == "conv" else 1)
    binary_mac = bits_in == 1 and bits_k == 1
    return LayerRow(
        name, kind, shape, bits_in, bits_k, binary, kernel - binary + extra,
        macs if binary_mac else 0, 0 if binary_mac else macs, **fields,
    )  # fmt: skip


@torch.no_grad()
def profile(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> ModelProfile:
    """The dense, convolution, BatchNorm and pooling layers of ``model`` in forward order, with
    their output shapes.

    Layers that carry their ``output_shape`` (a BNN's, on any device, ``meta`` included) are
    profiled without running the model. Any other model runs one eval-mode, smooth forward of
    a zero batch of ``input_shape``, the shape of one sample (default ``model.input_shape``,
    else ``(in_features,)`` of a first layer that is an ``nn.Linear``), with hooks that note
    each layer's output. Rows are named from ``model.layer_names`` where it has one, else by
    their module path (``0``, ``features.3``).
    """
    paths = {m: path for path, m in model.named_modules()}
    names = {m: n for n, m in getattr(model, "layer_names", {}).items()}

    def name(m: nn.Module) -> str:
        return names.get(m) or paths[m] or type(m).__name__

    layers = [m for m in model.modules() if isinstance(m, _NORMS + _POOLS + _WEIGHTED)]
    if all(hasattr(m, "output_shape") for m in layers):
        return ModelProfile([layer_row(name(m), m, m.output_shape) for m in layers])
    shape = tuple(input_shape or getattr(model, "input_shape", None) or _first_input(model))
    rows: list[LayerRow] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, out: rows.append(
            layer_row(name(mod), mod, out.shape[1:])))
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


def _first_input(model: nn.Module) -> tuple[int, ...]:
    """``(in_features,)`` where the first weighted layer is dense; else a ValueError."""
    first = next((m for m in model.modules() if isinstance(m, _WEIGHTED)), None)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    what = f"its first layer is {type(first).__name__}" if first else "it has no dense layer"
    raise ValueError(
        f"profile() needs the input shape of this {type(model).__name__} ({what}): pass "
        "profile(model, input_shape=...), the shape of one sample without the batch, e.g. "
        "(3, 32, 32), or set model.input_shape"
    )


def describe_activation(act: nn.Module) -> str:
    """``htaf(alpha0=2, alpha1=11)`` for an estimator, ``relu`` for a reference activation.

    An ``htaf(auto)`` shows ``alpha0=auto (not calibrated)`` until its first batch, then
    ``alpha0=auto:VALUE``.
    """
    if not isinstance(act, Estimator):
        return type(act).__name__.lower()

    def value(key: str, v: float) -> str:
        if key != "alpha0" or not getattr(act, "auto", False):
            return f"{v:g}"
        return "auto (not calibrated)" if act.pending else f"auto:{v:g}"

    params = ", ".join(f"{k}={value(k, v)}" for k, v in act.params.items())
    return f"{act.name}({params})" if params else act.name


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


# -- the table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column of the table: its heading, a row's cell and, for a total row, the total."""

    head: str
    cell: Callable[[LayerRow], str]
    total: Callable[[ModelProfile], str] | None = None
    left: bool = False  # left-aligned (names), else right-aligned (numbers)


def _shape(shape: tuple[int, ...] | None) -> str:
    return "" if shape is None else "x".join(map(str, shape))


def _bits(bits: int | None) -> str:
    return "-" if bits is None else str(bits)


_NAME = Column("layer", lambda r: r.name, lambda p: "total", left=True)

#: Larq's columns: precision, parameters, memory and MACs, with a total row.
LARQ_COLUMNS = (
    _NAME,
    Column("output", lambda r: _shape(r.output_shape)),
    Column("in bits", lambda r: _bits(r.input_bits)),
    Column("kernel bits", lambda r: _bits(r.kernel_bits)),
    Column("# 1-bit", lambda r: f"{r.binary_params:,}", lambda p: f"{p.binary_params:,}"),
    Column("# 32-bit", lambda r: f"{r.float_params:,}", lambda p: f"{p.float_params:,}"),
    Column("memory bits", lambda r: f"{r.memory_bits:,}", lambda p: f"{p.memory_bits:,}"),
    Column("memory KiB", lambda r: f"{r.memory_kib:.2f}", lambda p: f"{p.memory_kib:.2f}"),
    Column("1-bit MACs", lambda r: f"{r.binary_macs:,}", lambda p: f"{p.binary_macs:,}"),
    Column("32-bit MACs", lambda r: f"{r.float_macs:,}", lambda p: f"{p.macs - p.binary_macs:,}"),
)

#: A network of step activations: sizes, parameters and what each activation is.
ACTIVATION_COLUMNS = (
    _NAME,
    Column("kind", lambda r: r.kind, left=True),
    Column("in", lambda r: _shape(r.input_shape)),
    Column("out", lambda r: _shape(r.output_shape)),
    Column("params", lambda r: f"{r.params:,}"),
    Column("activation", lambda r: r.activation, left=True),
    Column("binary", lambda r: "yes" if r.activation_bits == 1 else "no", left=True),
)


def _larq_params(p: ModelProfile) -> str:
    return (f"total params: {readable(p.params)} ({p.binary_params:,} binary, "
            f"{p.float_params:,} float)")  # fmt: skip


def size(bits: float) -> str:
    """A size in the unit that reads best: ``420 B``, ``12.50 KiB``, ``1.26 MiB``."""
    n = bits / 8
    if n < 1024:
        return f"{n:.4g} B"
    return f"{n / 1024:.2f} KiB" if n < 1024**2 else f"{n / 1024**2:.2f} MiB"


def _memory(p: ModelProfile) -> str:
    ratio = p.memory_bits / (32 * p.params) if p.params else 0.0
    return (f"memory: {size(p.memory_bits)} against {size(32 * p.params)} as float32 "
            f"(compression ratio {ratio:.2f})")  # fmt: skip


def _macs(p: ModelProfile) -> str:
    return f"MACs: {readable(p.macs)}, of which binary: {p.binary_mac_ratio:.4f}"


def _float32_params(p: ModelProfile) -> str:
    return f"total params: {p.params:,} ({p.params * 4 / 1024:.1f} KiB as float32)"


def _binary_units(p: ModelProfile) -> str:
    return f"binary activations: {p.binary_units} of {p.hidden_units} hidden units"


def _activation_bits(p: ModelProfile) -> str:
    bits, floats = p.activation_bits, 32 * p.hidden_units
    ratio = f" ({floats / bits:.1f}x smaller)" if bits else ""
    return (f"hidden activations per sample: {bits:,} bits in binary mode "
            f"vs {floats:,} bits as float32{ratio}")  # fmt: skip


#: Larq's totals: parameters, memory against float32, the share of binary MACs.
LARQ_FOOTER = (_larq_params, _memory, _macs)
#: Parameters as float32, and the hidden activations' bits per sample.
ACTIVATION_FOOTER = (_float32_params, _binary_units, _activation_bits)


def format_summary(
    p: ModelProfile,
    title: str = "model",
    columns: Sequence[Column] = LARQ_COLUMNS,
    footer: Sequence[Callable[[ModelProfile], str]] = LARQ_FOOTER,
) -> str:
    """The per-layer table (with a total row where a column has a total), then ``footer``."""
    cells = [tuple(c.head for c in columns), *(tuple(c.cell(r) for c in columns) for r in p.rows)]
    total = [c.total(p) if c.total else "" for c in columns]
    has_total = any(c.total for c in columns[1:])
    if has_total:
        cells.append(tuple(total))
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: tuple[str, ...]) -> str:
        cells = zip(row, widths, columns, strict=True)
        return "  ".join(x.ljust(w) if c.left else x.rjust(w) for x, w, c in cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(row) for row in cells[1:]]
    table = [*body[:-1], rule, body[-1]] if has_total else body
    return "\n".join([title, rule, line(cells[0]), rule, *table, rule, *(f(p) for f in footer)])
