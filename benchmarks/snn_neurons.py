"""The neurons beyond LIF: one training step, fused node against the plain autograd loop and
snnTorch, side by side.

    python benchmarks/snn_neurons.py [--steps 32] [--repeats 7] [--threads 1]

The model, the same in every row of a neuron: Linear(784, 512) -> neuron -> Linear(512, 10),
batch 128, loss = cross-entropy of the mean output current over T steps; the spike is
``1{h >= 1}`` with the atan surrogate backward (hard mode). Neurons: ``synaptic`` (α = 0.5,
β = 0.9), ``alif`` (β = 0.9, ρ = 0.9, adapt = 0.2), ``rlif`` (β = 0.9, W_rec 512×512). Rows:

* ``fused``: htaf's module (``Synaptic``, ``ALIF``, ``RLIF``): one node per layer that saves
  the membrane sequence only;
* ``unrolled``: the same module inside ``htaf.families.snn.fused.unrolled()``: a plain
  autograd loop that calls the estimator once per step;
* ``snntorch``: ``snn.Synaptic`` / ``snn.RLeaky(all_to_all=True, reset_delay=False)`` in a
  Python loop over time, with the same weights (recurrent bias 0). snnTorch has no ALIF.

Per row: the bytes saved for backward by the neuron layer alone (``layer MiB``: random
currents ``(T, 128, 512)`` in, spikes out) and by the whole step (``step MiB``, where the two
Linears' saved inputs dominate), counted with ``saved_tensors_hooks``, deduplicated by
storage, parameters apart; and the step time (median and min over rounds, rows interleaved).
The first step's losses are printed: the rows of a neuron compute the same model.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from htaf import estimators
from htaf.families.snn import fused
from htaf.families.snn.neurons import ALIF, RLIF, Synaptic
from snn_step import saved_bytes  # benchmarks/snn_step.py: bytes saved for backward

BATCH, N_IN, N_HID, N_OUT = 128, 784, 512, 10
MIB = 2**20


def htaf_model(kind: str) -> nn.Module:
    spike = estimators.get("atan", mode="hard")
    neuron = {
        "synaptic": lambda: Synaptic(0.5, 0.9, spike_fn=spike),
        "alif": lambda: ALIF(0.9, rho=0.9, adapt=0.2, spike_fn=spike),
        "rlif": lambda: RLIF(N_HID, 0.9, spike_fn=spike),
    }[kind]()
    return nn.ModuleDict({"fc1": nn.Linear(N_IN, N_HID), "unit": neuron,
                          "fc2": nn.Linear(N_HID, N_OUT)})  # fmt: skip


def htaf_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    spikes = model["unit"](model["fc1"](x))
    return F.cross_entropy(model["fc2"](spikes).mean(0), y)


def snntorch_row(kind: str, src: nn.Module) -> tuple[nn.Module, Callable] | None:
    try:
        import snntorch as snn
        from snntorch import surrogate
    except ImportError:
        return None
    if kind == "alif":
        return None
    if kind == "synaptic":
        unit = snn.Synaptic(alpha=0.5, beta=0.9, spike_grad=surrogate.atan(), reset_delay=False)
    else:
        unit = snn.RLeaky(beta=0.9, linear_features=N_HID, spike_grad=surrogate.atan(),
                          reset_delay=False)  # fmt: skip
        with torch.no_grad():
            unit.recurrent.weight.copy_(src["unit"].w_rec)
            unit.recurrent.bias.zero_()
    model = nn.ModuleDict({"fc1": nn.Linear(N_IN, N_HID), "unit": unit,
                           "fc2": nn.Linear(N_HID, N_OUT)})  # fmt: skip
    model["fc1"].load_state_dict(src["fc1"].state_dict())
    model["fc2"].load_state_dict(src["fc2"].state_dict())

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        unit = model["unit"]
        unit.reset_mem()
        outs = []
        for t in range(x.shape[0]):
            spk = unit(model["fc1"](x[t]))[0]
            outs.append(model["fc2"](spk))
        return F.cross_entropy(torch.stack(outs).mean(0), y)

    return model, loss


def neuron_only(row: str, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The neuron layer alone, ``(T, B, N)`` currents to spikes, as ``row`` runs it."""
    unit = model["unit"]
    if row == "snntorch":

        def run(current: torch.Tensor) -> torch.Tensor:
            unit.reset_mem()
            return torch.stack([unit(current[t])[0] for t in range(current.shape[0])])

        return run
    if row == "unrolled":

        def run_unrolled(current: torch.Tensor) -> torch.Tensor:
            with fused.unrolled():
                return unit(current)

        return run_unrolled
    return unit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--neurons", nargs="+", default=["synaptic", "alif", "rlif"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(args.steps, BATCH, N_IN, generator=gen) < 0.2).float()
    y = torch.randint(0, N_OUT, (BATCH,), generator=gen)
    print(f"T={args.steps}, batch {BATCH}, {N_IN}-{N_HID}-{N_OUT}, threads {args.threads}")
    print(f"{'neuron':9} {'row':9} {'loss':>9} {'layer MiB':>10} {'vs fused':>9} "
          f"{'step MiB':>9} {'median ms':>10} {'min ms':>8} {'vs fused':>9}")  # fmt: skip
    for kind in args.neurons:
        torch.manual_seed(0)
        model = htaf_model(kind)

        def unrolled_loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with fused.unrolled():
                return htaf_loss(m, x, y)

        rows = {"fused": (model, htaf_loss), "unrolled": (model, unrolled_loss)}
        peer = snntorch_row(kind, model)
        if peer is not None:
            rows["snntorch"] = peer
        results = {}
        current = torch.randn(args.steps, BATCH, N_HID, generator=gen, requires_grad=True)
        for name, (m, loss_fn) in rows.items():
            params = {p.untyped_storage().data_ptr() for p in m.parameters()}
            m.zero_grad()
            with torch.no_grad():
                first = float(loss_fn(m, x, y))
            acts, _ = saved_bytes(lambda m=m, f=loss_fn: f(m, x, y), params)
            layer = neuron_only(name, m)
            unit_bytes, _ = saved_bytes(lambda f=layer, c=current: f(c).sum(), params)
            results[name] = {"loss": first, "bytes": acts, "unit": unit_bytes, "times": []}
        for _ in range(args.repeats):  # rows interleaved: load affects them alike
            for name, (m, loss_fn) in rows.items():
                m.zero_grad()
                start = time.perf_counter()
                loss_fn(m, x, y).backward()
                results[name]["times"].append(time.perf_counter() - start)
        base = results["fused"]
        for name, r in results.items():
            med, low = statistics.median(r["times"]) * 1e3, min(r["times"]) * 1e3
            print(f"{kind:9} {name:9} {r['loss']:9.5f} {r['unit'] / MIB:10.2f} "
                  f"{r['unit'] / base['unit']:9.2f} {r['bytes'] / MIB:9.2f} {med:10.1f} {low:8.1f} "
                  f"{med / (statistics.median(base['times']) * 1e3):9.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
