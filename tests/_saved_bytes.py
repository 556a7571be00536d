"""Bytes of the tensors autograd saves for backward: the memory figure of the SNN tests."""

from __future__ import annotations

import torch


def saved_activation_bytes(models, loss_fn):
    """Bytes saved for backward by ``loss_fn``, deduplicated by storage, without the
    parameters of ``models`` (one module or several)."""
    models = [models] if isinstance(models, torch.nn.Module) else models
    params = {p.untyped_storage().data_ptr() for m in models for p in m.parameters()}
    seen = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    loss.backward()
    return sum(seen.values())
