"""Spike trains as input: a network fed event data ``(B, T, ...)`` step by step, no encoder.

Event datasets (``kind="sequence"``: N-MNIST, SHD, DVS Gesture, ``event_motion``) hold samples
that are already spike trains, time first: ``(T, C, H, W)`` frames or ``(T, F)`` channels.
:class:`EventNetwork` is the family's network with its encoder replaced by a transpose: the
batch ``(B, T, *frame)`` becomes the input train ``(T, B, *frame)`` (``(T, B, C·H·W)`` for the
MLP), so T is the data's number of time bins and ``model.T``/``model.encoder`` do not apply.

The non-spiking reference (a continuous estimator such as ``relu``) runs once on the time
average ``mean_t x_t``: it sees which pixels fired how often, never in which order, so on data
whose classes differ only in order (``event_motion``) it shows what time is worth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from htaf.families.snn.encoders import check_steps
from htaf.families.snn.layers import SpikeTrain
from htaf.families.snn.models import NeuronSpec, SpikingNetwork, build_network

__all__ = ["EventNetwork", "build_event_network"]


class EventNetwork(SpikingNetwork):
    """A :class:`SpikingNetwork` whose input is a spike train ``(B, T, *frame)``; ``time_bins``
    is T (the other arguments are :class:`SpikingNetwork`'s, with the frame's shape)."""

    def __init__(self, *args: Any, time_bins: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.time_bins = check_steps(time_bins, "time_bins")

    def intensities(self, x: Tensor) -> Tensor:
        """The batch itself, once its shape is checked: spikes or counts, not normalised."""
        want = (self.time_bins, *self.input_shape)
        if x.dim() != len(want) + 1 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"expected an event batch of shape (B, {', '.join(map(str, want))}) (time "
                f"bins first), got {tuple(x.shape)}"
            )
        return x

    def encode(self, x: Tensor) -> SpikeTrain:
        """``(T, B, *frame)``, or the time average held for one step when not spiking."""
        x = self.intensities(x)
        if not self.spiking:
            mean = x.mean(1)
            return SpikeTrain(mean.flatten(1) if self.arch == "mlp" else mean, 1, constant=True)
        train = x.transpose(0, 1)
        train = train.flatten(2) if self.arch == "mlp" else train
        self._observe("input", train)
        return SpikeTrain(train.contiguous(), self.time_bins)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, T={self.time_bins} (the data's bins), spiking={self.spiking}"


def build_event_network(
    arch: str,
    input_shape: Sequence[int],
    n_out: int,
    spec: NeuronSpec,
    **options: object,
) -> EventNetwork:
    """The network ``arch`` for event samples of ``input_shape = (T, *frame)``.

    ``options`` are :func:`~htaf.families.snn.models.build_network`'s but ``steps``,
    ``encoder``, ``normalize``, ``clamp`` (the data's bins replace the encoder) and
    ``checkpoint_steps`` (it replays an encoder: refused, ``ValueError``).
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) < 2:
        raise ValueError(f"event data needs samples of shape (T, ...) with time first, got {shape}")
    if options.pop("checkpoint_steps", 0):
        raise ValueError(
            "option 'model.checkpoint_steps' does not apply to event data (it replays the "
            "encoder, and event data has none); leave it at 0"
        )
    for key in ("steps", "encoder", "normalize", "clamp"):
        options.pop(key, None)
    T, frame = shape[0], shape[1:]
    net = build_network(arch, frame, n_out, spec, steps=T, encoder="direct", **options)
    return EventNetwork(
        net.arch, frame, list(net.stages), net.head, net.spec, steps=T, encoder="direct",
        time_bins=T,
    )  # fmt: skip
