"""Gradient checkpointing over time chunks, for every spiking architecture (``checkpoint_steps=C``).

The forward runs in chunks of C steps and keeps only each chunk's input state (the neurons'
membranes at its start; the encoder's draws are replayed from the RNG state); the backward
recomputes one chunk at a time. Memory then grows with T/C instead of T, for one more forward
pass. The replay leaves the model's buffers (BatchNorm's running statistics) as the forward
left them: they are updated once per chunk, not twice.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class ChunkRun:
    """One chunk of ``n`` steps of a network from the neurons' states: ``(out, *states)``."""

    def __init__(self, net: nn.Module, units: list[nn.Module], n: int):
        self.net, self.units, self.n = net, units, n

    def __call__(self, p: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        encoder, saved = self.net.encoder, self.net.encoder.steps
        for unit, v0 in zip(self.units, states, strict=True):
            unit.carry = [v0 if v0.numel() else None]
        try:
            encoder.steps = self.n
            out = self.net.body(self.net._encoded(p))
            ends = [unit.carry[0] for unit in self.units]
        finally:
            encoder.steps = saved
            for unit in self.units:
                unit.carry = None
        return (out, *ends)


class Checkpoint(torch.autograd.Function):
    """Runs ``fn(p, *states)`` without a graph; the backward replays it (same RNG) with one."""

    @staticmethod
    def forward(ctx: Any, fn: ChunkRun, n_states: int, p: Tensor, *rest: Tensor) -> tuple:
        states, params = rest[:n_states], rest[n_states:]
        ctx.fn, ctx.n_states, ctx.n_params = fn, n_states, len(params)
        ctx.rng = torch.get_rng_state()
        ctx.save_for_backward(p, *states)
        with torch.no_grad():
            return fn(p, *states)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple:
        p, *states = ctx.saved_tensors
        states = [s.detach().requires_grad_(s.numel() > 0) for s in states]
        params = [q for q in ctx.fn.net.parameters() if q.requires_grad]
        net = ctx.fn.net
        buffers = [(b, b.clone()) for b in net.buffers()]
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.set_rng_state(ctx.rng)
            net._replaying = True
            try:
                outs = ctx.fn(p, *states)
            finally:
                net._replaying = False
                with torch.no_grad():
                    for b, before in buffers:
                        b.copy_(before)
        pairs = [
            (o, g) for o, g in zip(outs, grads, strict=True) if g is not None and o.requires_grad
        ]
        wrt = [s for s in states if s.requires_grad] + params
        got = torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs],
                                  allow_unused=True)  # fmt: skip
        got_states = iter(got[: len(wrt) - len(params)])
        state_grads = [next(got_states) if s.requires_grad else None for s in states]
        return (None, None, None, *state_grads, *got[len(wrt) - len(params) :])
