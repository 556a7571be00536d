"""One SNN training step (forward, BPTT, Adam) in htaf and in the peers, side by side.

    python benchmarks/snn_step.py [--steps 8 32 64] [--repeats 7] [--threads 1]

The model, the same in every row: a 784-512-10 LIF MLP, batch 128, h = 0.9 v + I, spike
``1{h >= 1}`` with the sigmoid surrogate (alpha = 4) backward, soft reset ``v = h - s`` not
detached, loss = cross-entropy of the output spike counts. The input is one Poisson (rate)
encoding of random intensities, (T, 128, 784) float32 0/1, made once and fed to every row
(the encoder is outside the timed step everywhere). Rows:

* ``htaf``: ``htaf.families.snn`` (the fused neuron operator; ``spike_linear``, which keeps
  the input spikes as bits and the hidden spikes not at all);
* ``snntorch``: ``snn.Leaky(beta=0.9, threshold=1.0, spike_grad=surrogate.sigmoid(slope=4),
  reset_mechanism="subtract", reset_delay=False)``, a Python loop over time;
* ``sj_multistep``: SpikingJelly ``LIFNode(tau=10., decay_input=False, v_threshold=1.,
  v_reset=None, detach_reset=False, surrogate_function=surrogate.Sigmoid(alpha=4.),
  step_mode="m")`` with ``layer.Linear`` (its CPU multi-step path);
* ``sj_singlestep``: the same nodes in ``step_mode="s"``, a Python loop over time.

Every row starts from the same weights; the first step's losses are printed to show that the
four compute the same model. Per row and T: the median step time (steps interleaved across
rows, in rotating order, after a warm-up) and the bytes saved for backward, counted with
``torch.autograd.graph.saved_tensors_hooks`` and deduplicated by storage (parameters listed
apart: every row saves the same weights once). Peers missing from the environment are skipped
(``pip install snntorch spikingjelly``; see pyproject's ``[interop]``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from htaf.families.snn.layers import SpikeTrain
from htaf.families.snn.models import NeuronSpec, build_network

BATCH, N_IN, N_HID, N_OUT = 128, 784, 512, 10
BETA, THRESHOLD, ALPHA = 0.9, 1.0, 4.0
MIB = 2**20


def htaf_row(steps: int) -> tuple[nn.Module, Callable]:
    spec = NeuronSpec(
        kind="lif",
        beta=BETA,
        threshold=THRESHOLD,
        reset="soft",
        detach_reset=False,
        spike_fn="sigmoid_surrogate",
        params={"alpha": ALPHA},
    )
    net = build_network("mlp", (N_IN,), N_OUT, spec, widths=(N_HID,), steps=steps,
                        encoder="poisson", decoder="count")  # fmt: skip

    def counts(x: torch.Tensor) -> torch.Tensor:
        return net.head.decode(net.body(SpikeTrain(x, steps, binary=True)))

    return net, counts


def snntorch_row(steps: int) -> tuple[nn.Module, Callable]:
    import snntorch as snn
    from snntorch import surrogate

    def leaky() -> nn.Module:
        return snn.Leaky(beta=BETA, threshold=THRESHOLD, spike_grad=surrogate.sigmoid(slope=ALPHA),
                         reset_mechanism="subtract", reset_delay=False)  # fmt: skip

    net = nn.ModuleDict({"fc1": nn.Linear(N_IN, N_HID), "lif1": leaky(),
                         "fc2": nn.Linear(N_HID, N_OUT), "lif2": leaky()})  # fmt: skip

    def counts(x: torch.Tensor) -> torch.Tensor:
        mem1 = net["lif1"].reset_mem()
        mem2 = net["lif2"].reset_mem()
        total = 0
        for t in range(x.shape[0]):
            spk1, mem1 = net["lif1"](net["fc1"](x[t]), mem1)
            spk2, mem2 = net["lif2"](net["fc2"](spk1), mem2)
            total = total + spk2
        return total

    return net, counts


def spikingjelly_row(steps: int, mode: str) -> tuple[nn.Module, Callable]:
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    def lif() -> nn.Module:
        sigmoid = surrogate.Sigmoid(alpha=ALPHA)
        return neuron.LIFNode(tau=1.0 / (1.0 - BETA), decay_input=False, v_threshold=THRESHOLD,
                              v_reset=None, detach_reset=False, surrogate_function=sigmoid,
                              step_mode=mode)  # fmt: skip

    net = nn.Sequential(layer.Linear(N_IN, N_HID, step_mode=mode), lif(),
                        layer.Linear(N_HID, N_OUT, step_mode=mode), lif())  # fmt: skip

    def counts(x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(net)  # SpikingJelly keeps the state in the nodes
        if mode == "m":
            return net(x).sum(0)
        return sum(net(x[t]) for t in range(x.shape[0]))

    return net, counts


ROWS: dict[str, Callable[[int], tuple[nn.Module, Callable]]] = {
    "htaf": htaf_row,
    "snntorch": snntorch_row,
    "sj_multistep": lambda steps: spikingjelly_row(steps, "m"),
    "sj_singlestep": lambda steps: spikingjelly_row(steps, "s"),
}


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """The two Linear layers of ``src`` into those of ``dst``, in order."""
    a = [m for m in src.modules() if isinstance(m, nn.Linear)]
    b = [m for m in dst.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for x, y in zip(a, b, strict=True):
            y.weight.copy_(x.weight)
            y.bias.copy_(x.bias)


def saved_bytes(step: Callable[[], torch.Tensor], params: set[int]) -> tuple[int, int]:
    """(bytes of activations, bytes of parameters) saved for backward by ``step``'s forward."""
    seen: dict[int, tuple[int, bool]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = (storage.nbytes(), storage.data_ptr() in params)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    acts = sum(n for n, is_param in seen.values() if not is_param)
    return acts, sum(n for n, is_param in seen.values() if is_param)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 32, 64], help="values of T")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per row and T")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = tuple(round(v, 1) for v in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load}")
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, N_OUT, (BATCH,), generator=gen)
    results = {}
    for steps in args.steps:
        x = (torch.rand(steps, BATCH, N_IN, generator=gen) < 0.2).float()
        rows = {}
        for name, make in ROWS.items():
            try:
                rows[name] = make(steps)
            except ImportError as err:
                print(f"  {name}: skipped ({err})")
        reference = rows["htaf"][0]
        for net, _ in rows.values():
            copy_weights(reference, net)
        steps_fn, losses = {}, {}
        for name, (net, counts) in rows.items():
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)

            def one_step(counts=counts, opt=opt, x=x) -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(counts(x), labels)
                loss.backward()
                opt.step()
                return loss

            def forward_only(counts=counts, x=x) -> torch.Tensor:
                return F.cross_entropy(counts(x), labels)

            with torch.no_grad():
                losses[name] = float(forward_only())
            params = {p.untyped_storage().data_ptr() for p in net.parameters()}
            acts, par = saved_bytes(forward_only, params)
            net.zero_grad(set_to_none=True)
            steps_fn[name] = one_step
            results[(name, steps)] = {"saved": acts, "params": par, "times": []}
        for fn in steps_fn.values():  # warm-up (kernel builds, allocator)
            fn()
        names = list(steps_fn)
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                steps_fn[name]()
                results[(name, steps)]["times"].append(time.perf_counter() - t0)
        print(f"\nT = {steps}: first-step losses " +
              ", ".join(f"{k} {v:.6f}" for k, v in losses.items()))  # fmt: skip
    print(
        "\nrow            T  step ms (median)  vs sj_multistep  saved MiB  MiB/step  vs best peer"
    )
    for steps in args.steps:
        peers = [n for (n, s) in results if s == steps and n != "htaf"]
        best = min((results[(n, steps)]["saved"] for n in peers), default=None)
        sj = results.get(("sj_multistep", steps))
        sj_ms = statistics.median(sj["times"]) * 1e3 if sj else None
        for (name, s), r in results.items():
            if s != steps:
                continue
            ms = statistics.median(r["times"]) * 1e3
            ratio = f"{ms / sj_ms:5.2f}x" if sj_ms else "   -"
            mem = f"{r['saved'] / best:5.2f}x" if best else "   -"
            print(f"{name:14} {steps:2d}  {ms:12.1f}     {ratio:>10}  {r['saved'] / MIB:9.2f}"
                  f"  {r['saved'] / MIB / steps:8.3f}  {mem:>10}")  # fmt: skip
    print(
        "(parameters saved once by every row, not counted above: "
        f"{results[('htaf', args.steps[0])]['params'] / MIB:.2f} MiB)"
    )


if __name__ == "__main__":
    main()
