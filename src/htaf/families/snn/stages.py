"""The parts every spiking architecture is built from: neurons, and stages that map a
``SpikeTrain`` to a ``SpikeTrain``.

* ``NeuronSpec``: the neuron of every layer (IF, LIF or PLIF with a spike function; or, for the
  non-spiking reference, a plain activation run once: ``ReferenceUnit``);
* ``Dense``: ``Linear -> neuron``; ``ConvBN``: ``Conv -> BatchNorm -> neuron (-> MaxPool2)``;
* ``SEWBlock``: ``SN(BN(Conv(SN(BN(Conv(s))))))`` joined to its input spikes ``s`` by
  ``connect`` (ADD: ``a + s``, AND: ``a·s``, IAND: ``(1 - a)·s``; Fang et al. 2021, "Deep
  Residual Learning in Spiking Neural Networks");
* ``Head``: the output neurons and the decoder (spike count, mean membrane, first spike).

Convolutions and BatchNorm run on the ``T·B`` merged batch (time-distributed); a constant
(direct) input goes through the first synapse once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from htaf.estimators import REFERENCE_ACTIVATIONS, parse_spec
from htaf.estimators import activation as make_activation
from htaf.families.snn import decoders
from htaf.families.snn.functional import DETACH_RESET, beta_from_tau, check_beta
from htaf.families.snn.fused import NeuronSequence
from htaf.families.snn.layers import (
    SpikeTrain,
    spike_conv_bn,
    spike_linear,
    spike_max_pool,
    standard_layout,
)
from htaf.families.snn.neurons import IF, LIF, NEURONS, PLIF

CONNECTS = ("ADD", "AND", "IAND")


# -- neurons, spiking or not ----------------------------------------------------------------------
@dataclass(frozen=True)
class NeuronSpec:
    """How to build every neuron of a model (``spike_fn="relu"``: the non-spiking reference)."""

    kind: str = "lif"
    beta: float = 0.9
    tau: float | None = None  # replaces beta when set: beta = 1 - 1/tau
    threshold: float = 1.0
    reset: str = "soft"
    v_reset: float = 0.0
    detach_reset: bool = DETACH_RESET
    decay_input: bool = False
    spike_fn: str = "htaf"
    params: Mapping[str, float] = field(default_factory=dict)
    backend: str = "auto"
    #: Options of the neurons beyond LIF: alpha (synaptic), rho and adapt (alif).
    extra: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in NEURONS:
            raise ValueError(f"unknown neuron {self.kind!r} (available: {', '.join(NEURONS)})")
        if self.kind == "plif" and self.decay == 1.0:
            raise ValueError(
                "a plif neuron learns its decay from beta < 1 (init_tau = 1/(1 - beta))"
            )

    @property
    def spiking(self) -> bool:
        return parse_spec(self.spike_fn)[0] not in REFERENCE_ACTIVATIONS

    @property
    def decay(self) -> float:
        """β of LIF (and PLIF's initial β); 1 for IF."""
        if self.kind == "if":
            return 1.0
        return beta_from_tau(self.tau) if self.tau is not None else check_beta(self.beta)

    def build(self, size: int | None = None) -> nn.Module:
        """One layer's neurons; ``size``: its number of neurons (features or channels)."""
        if not self.spiking:
            return ReferenceUnit(self.spike_fn)
        common = dict(
            threshold=self.threshold, reset=self.reset, v_reset=self.v_reset,
            detach_reset=self.detach_reset, spike_fn=self.spike_fn, backend=self.backend,
            **self.params,
        )  # fmt: skip
        if self.kind == "if":
            return IF(**common)
        if self.kind == "plif":
            return PLIF(1.0 / (1.0 - self.decay), decay_input=self.decay_input, **common)
        if self.kind in NEURONS and self.kind != "lif":  # synaptic, alif, rlif
            sized = (size,) if getattr(NEURONS[self.kind], "sized", False) else ()
            return NEURONS[self.kind](*sized, beta=self.decay, decay_input=self.decay_input,
                                      **self.extra, **common)  # fmt: skip
        return LIF(self.decay, decay_input=self.decay_input, **common)


class ReferenceUnit(nn.Module):
    """A continuous activation (ReLU...) with a neuron's ``run``: one step, no state."""

    hard = False

    def __init__(self, name: str):
        super().__init__()
        self.act = make_activation(name)
        self.observer: Callable | None = None

    def run(
        self, x: Tensor, v0: Tensor | None = None, *, steps: int | None = None
    ) -> NeuronSequence:
        x = x.unsqueeze(0) if steps is not None else x
        return NeuronSequence(self.act(x), x, torch.zeros_like(x[0]))


# -- stages: SpikeTrain in, SpikeTrain out --------------------------------------------------------
def _neurons(unit: nn.Module, current: Tensor, train: SpikeTrain) -> SpikeTrain:
    seq = unit.run(current, steps=train.steps) if train.constant else unit.run(current)
    return SpikeTrain.from_neurons(seq, binary=bool(unit.hard))


class Dense(nn.Module):
    """``Linear -> neuron`` over a flat train ``(T, B, n_in)``."""

    def __init__(self, n_in: int, n_out: int, spec: NeuronSpec):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.unit = spec.build(n_out)

    def forward(self, train: SpikeTrain) -> SpikeTrain:
        return _neurons(self.unit, spike_linear(train, self.fc), train)


class ConvBN(nn.Module):
    """``Conv -> BatchNorm -> neuron [-> MaxPool2]`` over ``(T, B, C, H, W)``."""

    def __init__(self, c_in: int, c_out: int, spec: NeuronSpec, *, stride: int = 1,
                 kernel: int = 3, pool: bool = False):  # fmt: skip
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.unit = spec.build(c_out)
        self.pool = nn.MaxPool2d(2) if pool else None

    def forward(self, train: SpikeTrain) -> SpikeTrain:
        out = _neurons(self.unit, spike_conv_bn(train, self.conv, self.bn), train)
        return out if self.pool is None else spike_max_pool(out, self.pool)


class SEWBlock(nn.Module):
    """A SEW residual block: ``connect(SN(BN(Conv(SN(BN(Conv(s)))))), shortcut(s))``."""

    def __init__(self, c_in: int, c_out: int, stride: int, spec: NeuronSpec, connect: str):
        super().__init__()
        if connect not in CONNECTS:
            raise ValueError(f"unknown connect {connect!r} (available: {', '.join(CONNECTS)})")
        self.connect = connect
        self.conv1 = ConvBN(c_in, c_out, spec, stride=stride)
        self.conv2 = ConvBN(c_out, c_out, spec)
        self.shortcut = (
            ConvBN(c_in, c_out, spec, stride=stride, kernel=1)
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, train: SpikeTrain) -> SpikeTrain:
        a = self.conv2(self.conv1(train))
        s = self.shortcut(train) if self.shortcut is not None else train
        av, sv = a.values, s.sequence()
        if self.connect == "ADD":
            # Sums of exact spikes are small integers: the next synapse keeps them as uint8.
            a_levels, s_levels = a.integer_levels, s.integer_levels
            levels = a_levels + s_levels if a_levels and s_levels else 0
            return SpikeTrain(av + sv, a.steps, levels=levels)
        out = av * sv if self.connect == "AND" else (1 - av) * sv
        return SpikeTrain(out, a.steps, binary=a.binary and s.binary)


class Head(nn.Module):
    """The output layer: ``Linear`` + the decoder (a spiking layer for count / first spike)."""

    def __init__(self, n_in: int, n_out: int, spec: NeuronSpec, decoder: str):
        super().__init__()
        if decoder not in decoders.DECODERS:
            raise ValueError(
                f"unknown decoder {decoder!r} (available: {', '.join(decoders.DECODERS)})"
            )
        self.decoder = decoder if spec.spiking else "membrane"
        self.fc = nn.Linear(n_in, n_out)
        self.unit = spec.build(n_out) if self.decoder != "membrane" else None
        self.beta = spec.decay

    def forward(self, train: SpikeTrain) -> Tensor:
        """The output sequence ``(T, B, K)``: spikes, or currents for ``membrane``."""
        current = spike_linear(train, self.fc)
        if self.unit is None:
            return current.expand(train.steps, *current.shape) if train.constant else current
        return _neurons(self.unit, current, train).values

    def decode(self, out: Tensor) -> Tensor:
        if self.decoder == "count":
            return decoders.spike_count(out)
        if self.decoder == "first_spike":
            return decoders.first_spike(out)
        return decoders.mean_membrane(out, self.beta)


class Flatten(nn.Module):
    """``(T, B, C, H, W) -> (T, B, C·H·W)`` between the conv and dense parts of the CNN."""

    def forward(self, train: SpikeTrain) -> SpikeTrain:
        # channels-last activations: one copy to the standard layout, read by the bits the
        # next synapse keeps and by its matmul (a flatten is a copy there anyway)
        values = standard_layout(train.values).flatten(2)
        return SpikeTrain(values, train.steps, binary=train.binary, levels=train.levels)
