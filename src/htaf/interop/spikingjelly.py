"""htaf estimators as SpikingJelly's ``surrogate_function``.

    from spikingjelly.activation_based import neuron
    from htaf.interop.spikingjelly import surrogate
    lif = neuron.LIFNode(tau=10.0, surrogate_function=surrogate("htaf"), step_mode="m")

``surrogate(name, **params)`` works for every registered estimator (``htaf estimators``), in
its default mode unless ``mode`` is given (HTAF: smooth, surrogate-free; surrogates: hard).
SpikingJelly calls it on ``v - v_threshold``; with a function it does not know it takes its
PyTorch reference path, which calls the estimator at every step. ``htaf.harden(net)`` gives
exact spikes for evaluation (SpikingJelly's own ``spiking=False`` switch does not apply).

Conventions: both fire at ``v >= v_threshold``. SpikingJelly scales its surrogates so that
their gradient peaks at 1 (``Sigmoid(alpha=4)``: ``alpha/4``; ``ATan(alpha=2)``: ``alpha/2``);
htaf keeps each estimator's published form, so ``sigmoid_surrogate(alpha=4)`` and
``atan(alpha=2)`` equal SpikingJelly's defaults, while HTAF peaks at ``alpha0·alpha1/4`` (5.5
at (2, 11)). Remember ``functional.reset_net(net)`` between batches there: SpikingJelly keeps
the state in the neuron (htaf's own multi-step modules do not).
"""

from __future__ import annotations

from typing import Any

from htaf.estimators import Estimator
from htaf.interop._common import spike_estimator

__all__ = ["surrogate"]


def surrogate(name: str = "htaf", *, mode: str | None = None, **params: Any) -> Estimator:
    """The estimator ``name`` as a SpikingJelly ``surrogate_function`` (an ``nn.Module``)."""
    return spike_estimator(name, mode, params)
