"""Spiking Neural Networks: LIF neurons whose spikes are steps, trained through an estimator.

In training a neuron's spike is the estimator applied to ``v - θ``. The family trains on exact
spikes ``1{v >= θ}`` with the estimator's rule as the backward (``model.train_spikes =
"exact"``, :data:`TRAIN_SPIKES` says why); ``"estimator"`` keeps each estimator's own forward,
HTAF's smooth one being the paper's surrogate-free training. Evaluation reports both forwards;
``*_hard`` is the network with exact spikes.

    htaf compare --family snn                                # spiking MLP on digits_images
    htaf train --config run.toml --set family=snn --set model.arch=cnn --set model.T=4

Modules:

* :mod:`.functional`: pure steps ``if_step``, ``lif_step``, ``plif_step``, ``synaptic_step``
  (current-based), ``alif_step`` (adaptive threshold), ``rlif_step`` (recurrent) with typed
  parameters and an estimator module (never a name);
* :mod:`.neurons`: multi-step ``IF``/``LIF``/``PLIF``/``Synaptic``/``ALIF``/``RLIF``
  ``(T, B, ...) -> (T, B, ...)`` and single-step cells (``model.neuron`` picks one);
* :mod:`.fused`: the memory-light multi-step operator (C++ kernel + PyTorch fallback);
* :mod:`.layers`: ``spike_linear``, a Linear that saves its spike input as bits or not at all;
* :mod:`.binary_matmul`: its event-driven products on 0/1 input (adds the weights spikes select);
* :mod:`.encoders`, :mod:`.decoders`; :mod:`.models`: MLP, CNN, SEW-ResNet.

The family's options (``[model]`` table) are :class:`SNNOptions`. The estimator ``relu`` (or
another continuous activation) builds the non-spiking reference: the same network with ReLUs,
run once without encoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from htaf.config import ConfigError
from htaf.estimators import estimators_in
from htaf.families import DataSpec, Family
from htaf.families.snn.functional import DETACH_RESET, beta_from_tau, check_beta, check_decay
from htaf.families.snn.fused import kernel_available
from htaf.families.snn.models import NeuronSpec, SpikingNetwork, build_network

__all__ = ["FAMILY", "SNNOptions", "build"]


@dataclass(frozen=True)
class SNNOptions:
    """The SNN family's ``[model]`` table."""

    arch: Literal["mlp", "cnn", "sew_resnet"] = "mlp"
    widths: tuple[int, ...] = (128,)  # hidden widths (mlp); dense layers after the convs (cnn)
    channels: tuple[int, ...] = (16, 32)  # conv channels (cnn), stage channels (sew_resnet)
    blocks: tuple[int, ...] = (1, 1, 1)  # SEW blocks per stage (sew_resnet)
    connect: Literal["ADD", "AND", "IAND"] = "ADD"  # SEW connect function
    T: int = 8  # time steps
    encoder: Literal["poisson", "latency", "direct"] = "poisson"
    decoder: Literal["count", "membrane", "first_spike"] = "membrane"
    neuron: Literal["lif", "if", "plif", "synaptic", "alif", "rlif"] = "lif"
    alpha: float = 0.5  # synaptic current decay (neuron 'synaptic')
    rho: float = 0.9  # adaptation decay (neuron 'alif')
    adapt: float = 0.2  # threshold rise per unit of adaptation (neuron 'alif')
    beta: float = 0.9  # membrane decay (lif; plif's initial value)
    tau: float | None = None  # time constant, replaces beta when set: beta = 1 - 1/tau
    threshold: float = 1.0
    reset: Literal["soft", "hard"] = "soft"
    v_reset: float = 0.0  # the hard reset's target
    detach_reset: bool = DETACH_RESET  # True: the spike leaves the reset's gradient
    decay_input: bool = False
    checkpoint_steps: int = 0  # gradient checkpointing over time chunks of this many steps
    #: "exact": neurons fire exact spikes in training too, the estimator's rule as backward;
    #: "estimator": each estimator's own training forward (HTAF's smooth one). See TRAIN_SPIKES.
    train_spikes: Literal["exact", "estimator"] = "exact"

    def check(self) -> None:
        if self.T < 1:
            raise ValueError(f"option 'model.T' (time steps) must be >= 1, got {self.T}")
        for key in ("widths", "channels", "blocks"):
            values = getattr(self, key)
            if any(v <= 0 for v in values) or (not values and key != "widths"):
                raise ValueError(f"option 'model.{key}' must be positive integers, got {values}")
        if self.arch == "mlp" and not self.widths:
            raise ValueError("option 'model.widths' needs at least one hidden width for 'mlp'")
        if self.arch == "sew_resnet" and len(self.blocks) != len(self.channels):
            raise ValueError(
                f"options 'model.blocks' {list(self.blocks)} and 'model.channels' "
                f"{list(self.channels)} must have the same length (one entry per stage)"
            )
        try:
            if self.tau is not None:
                beta_from_tau(self.tau, "model.tau")
            check_beta(self.beta, "model.beta")
        except ValueError as err:
            raise ValueError(f"option {err}") from None
        if self.neuron == "plif" and self.tau is None and self.beta == 1:
            raise ValueError("option 'model.beta' must be < 1 for neuron 'plif' (it starts from "
                             "init_tau = 1/(1 - beta)), got 1")  # fmt: skip
        for key, what in (("alpha", "synaptic current"), ("rho", "adaptation")):
            try:
                check_decay(getattr(self, key), f"'model.{key}'", what)
            except ValueError as err:
                raise ValueError(f"option {err}") from None
        if not self.adapt >= 0:
            raise ValueError(f"option 'model.adapt' must be >= 0, got {self.adapt}")
        if not self.threshold > 0:
            raise ValueError(f"option 'model.threshold' must be > 0, got {self.threshold}")
        if self.checkpoint_steps < 0:
            raise ValueError(f"option 'model.checkpoint_steps' must be >= 0, got "
                             f"{self.checkpoint_steps}")  # fmt: skip


RATE_CODES = ("poisson", "latency")

TRAIN_SPIKES = ("exact", "estimator")
"""``model.train_spikes``. A spike is also the neuron's reset, so a smooth spike changes the
membrane that every later step starts from: trained through HTAF's smooth forward the network
learns a trajectory that its exact spikes do not follow, and the gap grows step by step (the
README's event data section measures it). ``"exact"`` (default) trains on the spikes the network
is judged on, with HTAF's calibrated derivative as the backward, as a BNN quantizer slot does
for its BatchNorm statistics; ``"estimator"`` keeps the paper's surrogate-free smooth forward.
Surrogates (atan, fast_sigmoid...) train on exact spikes either way."""


def _neuron_extra(options: SNNOptions) -> dict[str, float]:
    """The options of ``options.neuron`` beyond LIF's."""
    if options.neuron == "synaptic":
        return {"alpha": options.alpha}
    if options.neuron == "alif":
        return {"rho": options.rho, "adapt": options.adapt}
    return {}


def build(
    options: SNNOptions, spec: DataSpec, estimator: str, params: Mapping[str, float]
) -> SpikingNetwork:
    """The network ``options.arch`` for ``spec``'s images; ``estimator`` fires its neurons."""
    kernel_available()  # a machine's first use compiles the neuron kernel: not epoch time
    rng = spec.input_range if spec.kind != "sequence" else None  # events: no encoder to check
    if options.encoder in RATE_CODES and rng is not None and not (rng[0] >= 0 and rng[1] <= 1):
        raise ConfigError(
            f"option 'model.encoder' {options.encoder!r} takes intensities in [0, 1], but the "
            f"dataset's inputs span [{rng[0]:g}, {rng[1]:g}] (use encoder 'direct')"
        )
    neuron = NeuronSpec(
        kind=options.neuron, beta=options.beta, tau=options.tau, threshold=options.threshold,
        reset=options.reset, v_reset=options.v_reset, detach_reset=options.detach_reset,
        decay_input=options.decay_input, spike_fn=estimator, params=dict(params),
        extra=_neuron_extra(options),
    )  # fmt: skip
    if spec.kind == "sequence":  # event data: already spike trains (B, T, ...); no encoder
        return exact_spikes(build_events(options, spec, neuron), options.train_spikes)
    net = build_network(
        options.arch, spec.input_shape, spec.n_out, neuron, widths=options.widths,
        channels=options.channels, blocks=options.blocks, connect=options.connect,
        steps=options.T, encoder=options.encoder, decoder=options.decoder,
        normalize=spec.normalize, clamp=rng is not None and rng[0] >= 0 and rng[1] <= 1,
        checkpoint_steps=options.checkpoint_steps,
    )  # fmt: skip
    return exact_spikes(net, options.train_spikes)


def exact_spikes(net: SpikingNetwork, train_spikes: str) -> SpikingNetwork:
    """``net`` with every spike estimator training on exact spikes when ``train_spikes`` is
    ``"exact"`` (:data:`TRAIN_SPIKES`); unchanged for ``"estimator"``."""
    if train_spikes == "exact":
        for est in estimators_in(net):
            est.mode = est.training_mode = "hard"
    return net


def build_events(options: SNNOptions, spec: DataSpec, neuron: NeuronSpec) -> SpikingNetwork:
    """The network for event data ``(T, ...)``: its T is the data's time bins (module
    :mod:`.events`); ``model.T`` and ``model.encoder`` do not apply."""
    from htaf.families.snn.events import build_event_network

    try:
        return build_event_network(
            options.arch, spec.input_shape, spec.n_out, neuron, widths=options.widths,
            channels=options.channels, blocks=options.blocks, connect=options.connect,
            decoder=options.decoder, checkpoint_steps=options.checkpoint_steps,
        )  # fmt: skip
    except ValueError as err:
        raise ConfigError(str(err)) from None


FAMILY = Family(
    name="snn",
    description="Spiking neural network (MLP, CNN, SEW-ResNet) of LIF neurons whose spikes "
    "are the estimator's steps",
    options=SNNOptions,
    build=build,
    kinds=("image", "sequence"),  # sequence: event data, time first (.events)
    compare={"dataset": "digits_images", "epochs": 15, "lr": 5e-3, "batch_size": 64},
    estimators=("htaf", "atan", "fast_sigmoid", "sigmoid_surrogate", "triangle", "relu"),
    legacy_options={"train_spikes": "estimator"},  # runs saved before it trained HTAF smooth
)
