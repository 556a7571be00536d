"""Spiking architectures: an MLP, a CNN and SEW-ResNet, from one set of parts.

Every model maps a float batch ``(B, *input_shape)`` to logits ``(B, K)``::

    intensities = x * std + mean           undo the dataset's normalisation: pixels in [0, 1]
    train = encoder(intensities)           T steps: poisson, latency or direct
    train = stage(train) ...               synapse (Linear / Conv + BatchNorm) -> neurons
    logits = decoder(head(train))          spike count, mean membrane or first spike

* ``mlp``: ``Linear -> neuron`` per hidden width, then the head;
* ``cnn``: ``Conv3x3 -> BatchNorm -> neuron -> MaxPool2`` per channel count (digits, MNIST,
  Fashion-MNIST), then ``Linear -> neuron`` per width, then the head;
* ``sew_resnet``: SEW-ResNet (Fang et al. 2021, "Deep Residual Learning in Spiking Neural
  Networks"), for CIFAR-size images: a ``Conv-BN-neuron`` stem, stages of SEW blocks
  ``SN(BN(Conv(SN(BN(Conv(s))))))`` joined to their input spikes by ``connect`` (ADD: ``a + s``,
  AND: ``a·s``, IAND: ``(1 - a)·s``), the first block of each later stage with stride 2 and a
  ``Conv1x1-BN-neuron`` shortcut; then global average pooling and the head.

Convolutions and BatchNorm run on the ``T·B`` merged batch (time-distributed, as SpikingJelly
does); neurons run the fused operator over time; a constant (direct) input goes through the
first synapse once. Linear synapses use :func:`~htaf.families.snn.layers.spike_linear`.

**The non-spiking reference** (``activation="relu"``): the same network with every neuron
replaced by a ReLU and run once: T = 1, no encoding (the intensities go in directly), logits
= the head's output. It shares every layer and width with the spiking model, so the rows of
``htaf compare`` differ only in the neuron.

The stages live in ``stages.py``; gradient checkpointing over time chunks
(``checkpoint_steps=C``, every architecture: memory grows with T/C instead of T) in
``checkpointing.py``. In a chunked training forward, BatchNorm normalises each chunk by the
statistics of its own ``C·B`` samples (and updates its running statistics once per chunk).

**Statistics.** ``eval_stats(x)`` reports per neuron layer (``layer1``... in module order, the
spiking output layer last) the firing rate (mean spike value per neuron and step), the fraction
of silent (no spike in T steps) and saturated (a spike at every step) neurons per sample, and
the spikes per sample, overall and of the input encoding. In smooth mode a "spike" for silent /
saturated is a value >= 0.5; rates and counts use the values. ``epoch_stats()`` gives the
firing rates of the training batches of the last epoch; ``eval_arrays(x)`` the spike rasters
and membrane traces of a few samples.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from htaf.families.snn.checkpointing import Checkpoint, ChunkRun
from htaf.families.snn.encoders import Encoder, check_steps
from htaf.families.snn.fused import NeuronSequence
from htaf.families.snn.layers import SpikeTrain
from htaf.families.snn.neurons import IF, LIF, PLIF
from htaf.families.snn.stages import CONNECTS, ConvBN, Dense, Flatten, Head, NeuronSpec, SEWBlock

__all__ = ["ARCHS", "CONNECTS", "NeuronSpec", "SpikingNetwork"]

ARCHS = ("mlp", "cnn", "sew_resnet")
#: Neurons and samples ``eval_arrays`` keeps for rasters and membrane traces.
RASTER_NEURONS = 256
TRACE_NEURONS = 4


# -- the network ----------------------------------------------------------------------------------
class SpikingNetwork(nn.Module):
    """Encoder, stages and head; see the module doc. Build it with :func:`build_network`."""

    def __init__(
        self,
        arch: str,
        input_shape: tuple[int, ...],
        stages: Sequence[nn.Module],
        head: Head,
        spec: NeuronSpec,
        *,
        steps: int,
        encoder: str,
        normalize: Mapping[str, Sequence[float]] | None = None,
        clamp: bool = False,
        checkpoint_steps: int = 0,
    ):
        super().__init__()
        self.arch, self.input_shape, self.spec = arch, tuple(input_shape), spec
        self.spiking = spec.spiking
        self.steps = check_steps(steps) if self.spiking else 1
        self.encoder = Encoder(encoder if self.spiking else "direct", self.steps)
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.clamp = clamp
        self.checkpoint_steps = int(checkpoint_steps) if self.spiking else 0
        mean = std = None
        if normalize is not None:
            shape = (-1,) + (1,) * (len(self.input_shape) - 1)
            mean = torch.tensor(normalize["mean"], dtype=torch.float32).view(shape)
            std = torch.tensor(normalize["std"], dtype=torch.float32).view(shape)
        self.register_buffer("norm_mean", mean, persistent=False)
        self.register_buffer("norm_std", std, persistent=False)
        self._rates: dict[str, Tensor] = {}  # training spikes per layer: [sum, count]
        self._observer: Callable | None = None
        self._replaying = False  # a checkpointed chunk is being recomputed
        self._watch(None)

    # -- the forward pass --------------------------------------------------------------------
    def intensities(self, x: Tensor) -> Tensor:
        """The batch before the dataset's normalisation (pixels in [0, 1] for images)."""
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"expected a batch of shape (B, {', '.join(map(str, self.input_shape))}), got "
                f"{tuple(x.shape)}"
            )
        if self.norm_mean is not None:
            x = x * self.norm_std.to(x.dtype) + self.norm_mean.to(x.dtype)
        return x.clamp(0, 1) if self.clamp else x  # float rounding of the normalisation

    def encode(self, x: Tensor) -> SpikeTrain:
        """The input spike train of a float batch (flattened for the MLP)."""
        p = self.intensities(x)
        return self._encoded(p.flatten(1) if self.arch == "mlp" else p)

    def _encoded(self, p: Tensor) -> SpikeTrain:
        if self.encoder.kind == "direct":
            return SpikeTrain(p, self.encoder.steps, constant=True)
        spikes = self.encoder(p)
        self._observe("input", spikes)
        return SpikeTrain(spikes, self.encoder.steps, binary=True)

    def body(self, train: SpikeTrain) -> Tensor:
        """The head's output sequence ``(T, B, K)`` for an input train."""
        for stage in self.stages:
            train = stage(train)
        if self.arch == "sew_resnet":  # global average pooling
            train = SpikeTrain(train.values.mean((3, 4)), train.steps)
        return self.head(train)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, K)``."""
        chunked = self.checkpoint_steps and torch.is_grad_enabled() and self.training
        if chunked and self.checkpoint_steps < self.steps:
            out = self._checkpointed(x)
        else:
            out = self.body(self.encode(x))
        return self.head.decode(out)

    # -- gradient checkpointing over time chunks ---------------------------------------------
    def _checkpointed(self, x: Tensor) -> Tensor:
        p = self.intensities(x)
        p = p.flatten(1) if self.arch == "mlp" else p
        units = [m for m in self.modules() if isinstance(m, IF | LIF | PLIF)]
        params = [q for q in self.parameters() if q.requires_grad]
        states: list[Tensor] = [torch.zeros(0) for _ in units]  # empty: at rest
        outs = []
        for start in range(0, self.steps, self.checkpoint_steps):
            n = min(self.checkpoint_steps, self.steps - start)
            fn = ChunkRun(self, units, n)
            res = Checkpoint.apply(fn, len(units), p, *states, *params)
            outs.append(res[0])
            states = list(res[1:])
        return torch.cat(outs)

    # -- statistics --------------------------------------------------------------------------
    def neuron_layers(self) -> list[tuple[str, nn.Module]]:
        """``(layerK, module)`` for every spiking neuron layer, in module order."""
        units = [m for m in self.modules() if isinstance(m, IF | LIF | PLIF)]
        return [(f"layer{i}", m) for i, m in enumerate(units, start=1)]

    def _observe(self, name: str, spikes: Tensor) -> None:
        if self._observer is not None:
            self._observer(name, spikes, None)
        elif self.training and not self._replaying:
            self._add_rate(name, spikes)

    def _add_rate(self, name: str, spikes: Tensor) -> None:
        # [sum, count] as one tensor: no synchronisation, and under torch.compile no graph
        # break (a float) nor a recompilation at every batch (a Python count is a guard)
        s = spikes.detach()
        # One sample of one step at a time in the spikes' dtype, then the T·B partial sums in
        # float64: a float64 sum of the whole tensor first converts every element (a copy the
        # size of the spikes), and a float32 sum of 0/1 spikes is exact below 2^24 of them.
        # (Per sample rather than per step: T·B rows are one parallel loop; inductor runs a
        # reduction to T rows as T parallel loops, one after the other.)
        dims = tuple(range(2, s.dim())) if s.dim() > 2 else tuple(range(1, s.dim()))
        partial = s.sum(dims) if dims else s
        batch = torch.stack(
            (partial.sum(dtype=torch.float64), s.new_full((), s.numel(), dtype=torch.float64))
        )
        total = self._rates.get(name)
        self._rates[name] = batch if total is None else total + batch

    def _watch(self, observer: Callable | None) -> None:
        """Route every neuron layer's output to ``observer(name, spikes, membrane)``."""
        self._observer = observer
        for name, unit in self.neuron_layers():
            if observer is None:
                unit.observer = self._training_observer(name)
            else:
                unit.observer = lambda seq, name=name: observer(name, seq.spikes, seq.membrane)

    def _training_observer(self, name: str) -> Callable:
        def observe(seq: NeuronSequence) -> None:
            if self.training and not self._replaying:
                self._add_rate(name, seq.spikes)

        return observe

    def epoch_stats(self) -> dict[str, float]:
        """Firing rate per layer over the training batches since the last call."""
        totals = {k: v.tolist() for k, v in self._rates.items()}
        out = {f"rate_{k}": s / n for k, (s, n) in totals.items() if n}
        self._rates = {}
        return out

    def _record(self, x: Tensor, keep: Callable[[str, Tensor, Tensor | None], None]) -> None:
        self._watch(keep)
        try:
            with torch.no_grad():
                self(x)
        finally:
            self._watch(None)

    def eval_stats(self, x: Tensor) -> dict[str, float]:
        """Spiking statistics of the batch ``x`` in the current mode (see the module doc)."""
        if not self.spiking:
            return {}
        rows: dict[str, dict[str, float]] = {}

        def keep(name: str, spikes: Tensor, membrane: Tensor | None) -> None:
            s = spikes.detach().flatten(2).double()  # (T, B, N)
            fired = s >= 0.5
            rows[name] = {
                "sum": float(s.sum()), "n": s.numel(), "units": s[0].numel(),
                "silent": float((~fired.any(0)).sum()), "saturated": float(fired.all(0).sum()),
                "per_sample": float(s.sum()) / s.shape[1],
            }  # fmt: skip

        self._record(x, keep)
        out: dict[str, float] = {}
        layers = {k: v for k, v in rows.items() if k != "input"}
        for name, r in layers.items():
            out[f"rate_{name}"] = r["sum"] / r["n"]
            out[f"silent_{name}"] = r["silent"] / r["units"]
            out[f"saturated_{name}"] = r["saturated"] / r["units"]
        if layers:
            total = sum(r["n"] for r in layers.values())
            units = sum(r["units"] for r in layers.values())
            out["rate"] = sum(r["sum"] for r in layers.values()) / total
            out["silent"] = sum(r["silent"] for r in layers.values()) / units
            out["saturated"] = sum(r["saturated"] for r in layers.values()) / units
            out["spikes_per_sample"] = sum(r["per_sample"] for r in layers.values())
        if "input" in rows:
            out["input_spikes_per_sample"] = rows["input"]["per_sample"]
        return out

    def eval_arrays(self, x: Tensor) -> dict[str, np.ndarray]:
        """Spike rasters ``spikes.LAYER`` ``(samples, T, neurons)`` (at most RASTER_NEURONS)
        and membrane traces ``membrane.LAYER`` ``(samples, T, TRACE_NEURONS)`` of the neurons
        that fire in about half of the steps of the first sample (the ones whose trace shows
        charging, firing and reset), with ``threshold``: what the raster and trace plots
        draw."""
        if not self.spiking:
            return {}
        arrays: dict[str, np.ndarray] = {"threshold": np.array(self.spec.threshold)}

        def keep(name: str, spikes: Tensor, membrane: Tensor | None) -> None:
            s = spikes.detach().flatten(2).transpose(0, 1)  # (B, T, N)
            arrays[f"spikes.{name}"] = s[:, :, :RASTER_NEURONS].float().numpy()
            if membrane is not None:
                h = membrane.detach().flatten(2).transpose(0, 1)
                fired = (s[0] >= 0.5).sum(0).double()  # spikes per neuron, first sample
                score = -(fired - s.shape[1] / 2).abs() + 1e-3 * h[0].amax(0).double()
                pick = score.argsort(descending=True)[:TRACE_NEURONS]
                arrays[f"membrane.{name}"] = h[:, :, pick].float().numpy()

        self._record(x, keep)
        return arrays

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, T={self.steps}, spiking={self.spiking}"


def _positive(values: Sequence[int], name: str) -> tuple[int, ...]:
    if (
        isinstance(values, str | bytes)
        or not values
        or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values)
    ):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}")
    return tuple(values)


def build_network(
    arch: str,
    input_shape: Sequence[int],
    n_out: int,
    spec: NeuronSpec,
    *,
    widths: Sequence[int] = (128,),
    channels: Sequence[int] = (16, 32),
    blocks: Sequence[int] = (1, 1, 1),
    connect: str = "ADD",
    steps: int = 8,
    encoder: str = "poisson",
    decoder: str = "membrane",
    normalize: Mapping[str, Sequence[float]] | None = None,
    clamp: bool = False,
    checkpoint_steps: int = 0,
) -> SpikingNetwork:
    """The network ``arch`` (see the module doc) for inputs of ``input_shape``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r} (available: {', '.join(ARCHS)})")
    input_shape = tuple(int(d) for d in input_shape)
    stages: list[nn.Module] = []
    if arch == "mlp":
        sizes = [math.prod(input_shape), *_positive(widths, "widths")]
        stages += [Dense(a, b, spec) for a, b in itertools.pairwise(sizes)]
        n_head = sizes[-1]
    else:
        if len(input_shape) != 3:
            raise ValueError(f"arch {arch!r} needs (C, H, W) images, got input shape {input_shape}")
        c, h, w = input_shape
        if arch == "cnn":
            for c_out in _positive(channels, "channels"):
                stages.append(ConvBN(c, c_out, spec, pool=min(h, w) >= 2))
                c, h, w = (
                    c_out,
                    (h // 2 if min(h, w) >= 2 else h),
                    (w // 2 if min(h, w) >= 2 else w),
                )
            sizes = [c * h * w, *(_positive(widths, "widths") if widths else ())]
            stages += [Flatten(), *(Dense(a, b, spec) for a, b in itertools.pairwise(sizes))]
            n_head = sizes[-1]
        else:
            channels, blocks = _positive(channels, "channels"), _positive(blocks, "blocks")
            if len(blocks) != len(channels):
                raise ValueError(
                    f"blocks ({len(blocks)} stages) and channels ({len(channels)}) must have "
                    "the same length"
                )
            stages.append(ConvBN(c, channels[0], spec))
            c = channels[0]
            for i, (c_out, n) in enumerate(zip(channels, blocks, strict=True)):
                for j in range(n):
                    stride = 2 if i > 0 and j == 0 else 1
                    stages.append(SEWBlock(c, c_out, stride, spec, connect))
                    c = c_out
            n_head = c
    if (
        isinstance(checkpoint_steps, bool)
        or not isinstance(checkpoint_steps, int)
        or (checkpoint_steps < 0)
    ):
        raise ValueError(f"checkpoint_steps must be an integer >= 0, got {checkpoint_steps!r}")
    head = Head(n_head, n_out, spec, decoder)
    return SpikingNetwork(
        arch, input_shape, stages, head, spec, steps=steps,
        encoder=encoder, normalize=normalize, clamp=clamp, checkpoint_steps=checkpoint_steps,
    )  # fmt: skip
