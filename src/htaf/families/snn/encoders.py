"""Encoders: a batch of intensities ``(B, ...)`` in, a spike train of T steps out.

* ``poisson`` (Bernoulli rate coding; "Poisson" in the SNN literature): at every step a pixel
  of intensity ``p`` in [0, 1] spikes with probability ``p``; ``(T, B, ...)`` of 0/1;
* ``latency`` (time to first spike): one spike at step ``round((1 - p)(T - 1))``, none for
  ``p = 0``: the brighter, the earlier; ``(T, B, ...)`` of 0/1;
* ``direct`` (constant current): the intensities themselves at every step; the first layer
  then runs once and its current is held for T steps (the usual input of SEW-ResNet).

Rate and latency codes need intensities in [0, 1]; anything else is a ``ValueError`` naming
the encoder and the offending value. Draws come from ``generator`` (default: torch's global
RNG). :class:`Encoder` uses the global RNG in training (so a run's checkpoint carries it) and
a generator seeded with :data:`EVAL_SEED` at every call in eval mode, so evaluation is
deterministic. Under ``torch.compile`` on the CPU the rate code draws the same values, from
the same generators, as in eager mode.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

__all__ = ["ENCODERS", "EVAL_SEED", "Encoder", "direct", "latency", "poisson"]

ENCODERS = ("poisson", "latency", "direct")
#: The eval-mode draws of the rate code: the same spikes for the same batch, every time.
EVAL_SEED = 20_260_101


def check_steps(steps: object, name: str = "T") -> int:
    """T as a positive int; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"{name} (time steps) must be a positive integer, got {steps!r}")
    return int(steps)


def _intensities(x: Tensor, encoder: str) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"encoder {encoder!r} takes a float tensor of intensities")
    if torch.compiler.is_compiling():
        # No data-dependent branch in a graph: a tensor assertion, checked when it runs.
        inside = ((x >= 0) & (x <= 1)).all()  # NaN fails too
        torch._assert_async(inside, f"encoder {encoder!r} takes intensities in [0, 1]")
        return x
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if not (lo >= 0 and hi <= 1):  # NaN fails too
            raise ValueError(
                f"encoder {encoder!r} takes intensities in [0, 1]; got values in [{lo:g}, "
                f"{hi:g}] (negative intensities have no spike rate; use encoder 'direct')"
            )
    return x


def poisson(x: Tensor, steps: int, generator: torch.Generator | None = None) -> Tensor:
    """Rate code: ``(T, *x.shape)`` with ``P(spike) = x`` independently at every step."""
    steps = check_steps(steps)
    x = _intensities(x, "poisson")
    shape = (steps, *x.shape)
    if generator is None and torch.compiler.is_compiling() and x.device.type == "cpu":
        # Dynamo runs this import rather than tracing it: the operators register lazily.
        from htaf.families.snn import _compiled

        u = _compiled.global_uniform(x, steps)
    elif generator is None:  # the overload with a generator wants concrete sizes under dynamo
        u = torch.rand(shape, dtype=x.dtype, device=x.device)
    else:
        u = torch.rand(shape, generator=generator, dtype=x.dtype, device=x.device)
    return (u < x).to(x.dtype)


def latency(x: Tensor, steps: int) -> Tensor:
    """Latency code: one spike at step ``round((1 - x)(T - 1))`` per input, none where x = 0."""
    steps = check_steps(steps)
    x = _intensities(x, "latency")
    when = torch.round((1 - x) * (steps - 1)).long()
    t = torch.arange(steps, device=x.device).view(steps, *([1] * x.dim()))
    return ((t == when) & (x > 0)).to(x.dtype)


def direct(x: Tensor, steps: int) -> Tensor:
    """Constant current: ``x`` at every step, as a ``(T, *x.shape)`` view (no copy)."""
    steps = check_steps(steps)
    return x.expand(steps, *x.shape)


class Encoder(nn.Module):
    """One of :data:`ENCODERS` with its T; the draws follow the module doc's RNG rule."""

    def __init__(self, kind: str = "poisson", steps: int = 8):
        super().__init__()
        if kind not in ENCODERS:
            raise ValueError(f"unknown encoder {kind!r} (available: {', '.join(ENCODERS)})")
        self.kind, self.steps = kind, check_steps(steps)

    @property
    def binary(self) -> bool:
        return self.kind != "direct"

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "latency":
            return latency(x, self.steps)
        if self.kind == "direct":
            return direct(x, self.steps)
        generator = None
        if not self.training and torch.compiler.is_compiling():
            # Dynamo runs this import rather than tracing it; a graph cannot make a generator.
            from htaf.families.snn import _compiled

            u = _compiled.seeded_uniform(_intensities(x, "poisson"), self.steps, EVAL_SEED)
            return (u < x).to(x.dtype)
        if not self.training:
            generator = torch.Generator(device=x.device).manual_seed(EVAL_SEED)
        return poisson(x, self.steps, generator)

    def extra_repr(self) -> str:
        return f"{self.kind!r}, T={self.steps}"
