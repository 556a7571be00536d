"""htaf estimators as snnTorch's ``spike_grad``.

    import snntorch as snn
    from htaf.interop.snntorch import spike_grad
    lif = snn.Leaky(beta=0.9, spike_grad=spike_grad("htaf", alpha0=2, alpha1=11))

``spike_grad(name, **params)`` works for every registered estimator (``htaf estimators``),
in its default mode unless ``mode`` is given: HTAF trains surrogate-free (the smooth forward,
its own derivative), a surrogate in hard mode (the exact step forward, its rule backward).
snnTorch calls it on ``mem - threshold``. ``htaf.harden(net)`` switches every such estimator in
``net`` to exact spikes for evaluation.

Conventions that differ from snnTorch's own surrogates:

* the step fires at ``mem - threshold >= 0`` (htaf's and SpikingJelly's convention);
  snnTorch's built-in surrogates fire at ``mem > threshold``. They differ only when the
  membrane lands exactly on the threshold;
* each estimator keeps htaf's parameterisation: snnTorch's ``sigmoid(slope=25)`` is htaf's
  ``sigmoid_surrogate(alpha=25)`` and ``fast_sigmoid(slope=25)`` is ``fast_sigmoid(k=25)``;
  HTAF's gradient peak is ``alpha0·alpha1/4`` (5.5 at the defaults), not 1;
* in smooth mode the spikes are HTAF's values in (0, 1), and snnTorch's reset (which calls
  ``spike_grad`` again, detached) subtracts that value times the threshold.
"""

from __future__ import annotations

from typing import Any

from htaf.estimators import Estimator
from htaf.interop._common import spike_estimator

__all__ = ["spike_grad"]


def spike_grad(name: str = "htaf", *, mode: str | None = None, **params: Any) -> Estimator:
    """The estimator ``name`` as an snnTorch ``spike_grad`` callable (an ``nn.Module``)."""
    return spike_estimator(name, mode, params)
