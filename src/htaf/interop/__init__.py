"""HTAF and every registered estimator inside the peer SNN libraries (optional extra ``[interop]``).

    import snntorch as snn
    from htaf.interop import snntorch as hs
    lif = snn.Leaky(beta=0.9, spike_grad=hs.spike_grad("htaf", alpha0=2, alpha1=11))

    from spikingjelly.activation_based import neuron
    from htaf.interop import spikingjelly as hj
    lif = neuron.LIFNode(tau=10.0, surrogate_function=hj.surrogate("htaf"))

Both hand the peer an htaf estimator module: it becomes a submodule of the peer's neuron, so
``htaf.harden(net)`` gives exact spikes at evaluation and ``htaf.soften(net)`` the smooth
forward, as in any htaf model. Each call builds a new estimator: give every neuron layer its
own (a calibrated estimator keeps per-layer state). Neither module imports its peer: they work
(and are tested) wherever the peer is installed. After a bare ``import htaf`` both load on
first access, ``htaf.interop.snntorch.spike_grad("htaf")``, without importing anything before.
"""

from typing import Any

from htaf import _lazy

__all__ = ["snntorch", "spikingjelly"]


def __getattr__(name: str) -> Any:
    return _lazy.submodule(__name__, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_lazy.public_submodules(__path__)))
