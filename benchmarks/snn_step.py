"""One SNN training step (forward, BPTT, Adam) in htaf and in the peers, side by side.

    python benchmarks/snn_step.py [--steps 8 32 64] [--repeats 7] [--threads 1]
                                  [--parts mlp conv compile gather]

The model, the same in every row: a 784-512-10 LIF MLP, batch 128, h = 0.9 v + I, spike
``1{h >= 1}`` with the sigmoid surrogate (alpha = 4) backward, soft reset ``v = h - s`` not
detached, loss = cross-entropy of the output spike counts. The input is one Poisson (rate)
encoding of random intensities, (T, 128, 784) float32 0/1, made once and fed to every row
(the encoder is outside the timed step everywhere). Rows:

* ``htaf``: ``htaf.families.snn`` (the fused neuron operator; ``spike_linear``, which keeps
  the input spikes as bits and the hidden spikes not at all, and on exact spikes adds the
  weight columns they select instead of multiplying: ``binary_matmul``);
* ``htaf_dense``: the same with ``binary_matmul`` switched off (dense matmuls);
* ``snntorch``: ``snn.Leaky(beta=0.9, threshold=1.0, spike_grad=surrogate.sigmoid(slope=4),
  reset_mechanism="subtract", reset_delay=False)``, a Python loop over time;
* ``sj_multistep``: SpikingJelly ``LIFNode(tau=10., decay_input=False, v_threshold=1.,
  v_reset=None, detach_reset=False, surrogate_function=surrogate.Sigmoid(alpha=4.),
  step_mode="m")`` with ``layer.Linear`` (its CPU multi-step path);
* ``sj_singlestep``: the same nodes in ``step_mode="s"``, a Python loop over time.

**Conv** (``--parts conv``): the family's ``cnn`` (``Conv3x3-BN-LIF-MaxPool2`` for 16 and 32
channels, ``Linear(2048, 128)-LIF``, ``Linear(128, 10)-LIF``) and ``sew_resnet`` (a
``Conv-BN-LIF`` stem of 16 channels, a SEW block of 16 and one of 32 with stride 2 and a
``Conv1x1-BN-LIF`` shortcut, ADD connections, global average pooling, ``Linear(32, 10)-LIF``),
on 3x32x32 Poisson spikes, T = 8, batch 32, the same neurons and loss as above; against
SpikingJelly multi-step with the same layers (``layer.Conv2d``, ``layer.BatchNorm2d``,
``layer.MaxPool2d``, ``LIFNode``).

**Gather** (``--parts gather``): ``binary_matmul``'s gathered forward and weight gradient
against the dense ones on the same bits, over spike density and layer width (where its
``MIN_WIDTH`` and ``MAX_DENSITY`` come from).

**Compile** (``--parts compile``): the htaf MLP (at the largest T asked) and CNN, eager and
under ``torch.compile(fullgraph=True)`` (inductor) with the same weights, twice each: on the
spikes given, as above, and as a user calls the model, ``net(images)``, its Poisson encoder
drawing in the graph (the same draws in both rows; float32 sums in another order can still
flip a spike, below). The compile time is left out (warm-up); after each table, the paired
ratios' median with a distribution-free 95% interval.

Every row of a table starts from the same weights; the first step's losses, computed in float64,
are printed to show that the rows compute the same model (in float32 the rows sum in different
orders, htaf's convolutions on channels-last memory for one, which can flip a spike whose
membrane lies within rounding of the threshold). The ``matmuls_only`` (MLP) and ``layers_only``
(conv) rows are the same layers with no neurons: the floor of every row's step time, since
every framework runs those matmuls and convolutions; their losses differ. Per row and T: the
minimum and median step times (steps interleaved across rows, in rotating order, after a
warm-up), their ratios to the base row, the median and quartiles of the paired ratios (each
repeat's step over the base row's step of the same repeat, the figure a shared machine's load
moves least), and the bytes saved for backward, counted with
``torch.autograd.graph.saved_tensors_hooks`` and deduplicated by
storage (parameters listed apart: every row saves the same weights once). Peers missing from
the environment are skipped (``pip install snntorch spikingjelly``; see pyproject's
``[interop]``).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from htaf.families.snn import binary_matmul
from htaf.families.snn.fused import pack_bits, unpack_bits
from htaf.families.snn.layers import SpikeTrain
from htaf.families.snn.models import NeuronSpec, build_network

BATCH, N_IN, N_HID, N_OUT = 128, 784, 512, 10
CONV_SHAPE, CONV_BATCH, CONV_STEPS, CHANNELS = (3, 32, 32), 32, 8, (16, 32)
BETA, THRESHOLD, ALPHA = 0.9, 1.0, 4.0
MIB = 2**20


def neuron_spec() -> NeuronSpec:
    return NeuronSpec(
        kind="lif",
        beta=BETA,
        threshold=THRESHOLD,
        reset="soft",
        detach_reset=False,
        spike_fn="sigmoid_surrogate",
        params={"alpha": ALPHA},
    )


def spike_counts(net: nn.Module, steps: int) -> Callable:
    def counts(x: torch.Tensor) -> torch.Tensor:
        return net.head.decode(net.body(SpikeTrain(x, steps, binary=True)))

    return counts


def htaf_row(steps: int) -> tuple[nn.Module, Callable]:
    net = build_network("mlp", (N_IN,), N_OUT, neuron_spec(), widths=(N_HID,), steps=steps,
                        encoder="poisson", decoder="count")  # fmt: skip

    return net, spike_counts(net, steps)


def htaf_dense_row(steps: int) -> tuple[nn.Module, Callable]:
    """The htaf row with its synapses multiplying densely (no event-driven gathers)."""
    net, counts = htaf_row(steps)

    def dense_counts(x: torch.Tensor) -> torch.Tensor:
        kernel, binary_matmul.available = binary_matmul.available, lambda: False
        try:
            return counts(x)
        finally:
            binary_matmul.available = kernel

    return net, dense_counts


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


def sj_lif(mode: str) -> nn.Module:
    from spikingjelly.activation_based import neuron, surrogate

    sigmoid = surrogate.Sigmoid(alpha=ALPHA)
    return neuron.LIFNode(tau=1.0 / (1.0 - BETA), decay_input=False, v_threshold=THRESHOLD,
                          v_reset=None, detach_reset=False, surrogate_function=sigmoid,
                          step_mode=mode)  # fmt: skip


def matmuls_only_row(steps: int) -> tuple[nn.Module, Callable]:
    """The MLP's two Linear layers with no neurons between them: the same matmuls as every
    spiking row (forward, input gradient of the second layer, both weight gradients) and
    nothing else, the floor of every row's step time."""
    net = nn.Sequential(nn.Linear(N_IN, N_HID), nn.Linear(N_HID, N_OUT))
    return net, lambda x: net(x).sum(0)


def spikingjelly_row(steps: int, mode: str) -> tuple[nn.Module, Callable]:
    from spikingjelly.activation_based import functional, layer

    def lif() -> nn.Module:
        return sj_lif(mode)

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
    "htaf_dense": htaf_dense_row,
    "snntorch": snntorch_row,
    "sj_multistep": lambda steps: spikingjelly_row(steps, "m"),
    "sj_singlestep": lambda steps: spikingjelly_row(steps, "s"),
    "matmuls_only": matmuls_only_row,
}


# -- conv networks ---------------------------------------------------------------------------------
def htaf_conv_row(arch: str) -> tuple[nn.Module, Callable]:
    kw = {"widths": (128,)} if arch == "cnn" else {"blocks": (1, 1)}
    net = build_network(arch, CONV_SHAPE, N_OUT, neuron_spec(), channels=CHANNELS,
                        steps=CONV_STEPS, encoder="poisson", decoder="count", **kw)  # fmt: skip
    return net, spike_counts(net, CONV_STEPS)


def sj_conv_bn(c_in: int, c_out: int, stride: int = 1, kernel: int = 3,
               neurons: bool = True) -> list[nn.Module]:  # fmt: skip
    from spikingjelly.activation_based import layer

    return [layer.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False, step_mode="m"),
            layer.BatchNorm2d(c_out, step_mode="m"),
            sj_lif("m") if neurons else nn.Identity()]  # fmt: skip


class SJSewBlock(nn.Module):
    """SpikingJelly layers in the order of htaf's SEWBlock: conv1, conv2, shortcut; ADD."""

    def __init__(self, c_in: int, c_out: int, stride: int, neurons: bool = True):
        super().__init__()
        self.conv1 = nn.Sequential(*sj_conv_bn(c_in, c_out, stride, neurons=neurons))
        self.conv2 = nn.Sequential(*sj_conv_bn(c_out, c_out, neurons=neurons))
        shortcut = stride != 1 or c_in != c_out
        self.shortcut = (nn.Sequential(*sj_conv_bn(c_in, c_out, stride, 1, neurons))
                         if shortcut else None)  # fmt: skip

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(s)) + (self.shortcut(s) if self.shortcut else s)


def sj_conv_row(arch: str, neurons: bool = True) -> tuple[nn.Module, Callable]:
    """SpikingJelly's layers; ``neurons=False``: the same layers with no neurons (identity in
    their place), the floor of every row's step time (its convolutions, BatchNorm, pooling and
    matmuls run once each way, on the standard layout)."""
    from spikingjelly.activation_based import functional, layer

    def lif() -> nn.Module:
        return sj_lif("m") if neurons else nn.Identity()

    a, b = CHANNELS
    if arch == "cnn":
        side = CONV_SHAPE[1] // 4
        net = nn.Sequential(
            *sj_conv_bn(CONV_SHAPE[0], a, neurons=neurons), layer.MaxPool2d(2, step_mode="m"),
            *sj_conv_bn(a, b, neurons=neurons), layer.MaxPool2d(2, step_mode="m"),
            layer.Flatten(step_mode="m"), layer.Linear(b * side * side, 128, step_mode="m"),
            lif(), layer.Linear(128, N_OUT, step_mode="m"), lif(),
        )  # fmt: skip

        def counts(x: torch.Tensor) -> torch.Tensor:
            functional.reset_net(net)
            return net(x).sum(0)

        return net, counts
    body = nn.Sequential(*sj_conv_bn(CONV_SHAPE[0], a, neurons=neurons),
                         SJSewBlock(a, a, 1, neurons), SJSewBlock(a, b, 2, neurons))  # fmt: skip
    net = nn.ModuleDict({"body": body, "fc": layer.Linear(b, N_OUT, step_mode="m"),
                         "out": lif()})  # fmt: skip

    def sew_counts(x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(net)
        return net["out"](net["fc"](net["body"](x).mean((3, 4)))).sum(0)

    return net, sew_counts


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """The Linear, Conv2d and BatchNorm2d layers of ``src`` into those of ``dst``, in order."""
    for kind in (nn.Linear, nn.Conv2d, nn.BatchNorm2d):
        a = [m for m in src.modules() if isinstance(m, kind)]
        b = [m for m in dst.modules() if isinstance(m, kind)]
        with torch.no_grad():
            for x, y in zip(a, b, strict=True):
                y.load_state_dict(x.state_dict())


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


def run_rows(
    rows: dict[str, tuple[nn.Module, Callable]], x: torch.Tensor, labels: torch.Tensor,
    repeats: int, count_bytes: bool = True, check64: bool = True,
) -> dict[str, dict]:  # fmt: skip
    """Per row: the first loss, the bytes saved for backward and the step times."""
    reference = next(iter(rows.values()))[0]
    for net, _ in list(rows.values())[1:]:
        copy_weights(reference, net)
    results, steps_fn = {}, {}
    for name, (net, counts) in rows.items():
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def one_step(counts=counts, opt=opt) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(counts(x), labels)
            loss.backward()
            opt.step()
            return loss

        def forward_only(counts=counts) -> torch.Tensor:
            return F.cross_entropy(counts(x), labels)

        buffers = {k: v.clone() for k, v in net.state_dict().items() if torch.is_tensor(v)}
        loss = None
        with torch.no_grad():
            if check64:  # float32 sums in another order may flip a spike on the threshold
                default = torch.get_default_dtype()
                torch.set_default_dtype(torch.float64)  # the peers' state tensors too
                net.double()
                try:
                    loss = f"{float(F.cross_entropy(counts(x.double()), labels)):.6f}"
                except RuntimeError:  # a peer that makes float32 spikes whatever its input
                    loss = None
                finally:
                    torch.set_default_dtype(default)
                    net.float()
            if loss is None or not check64:
                torch.manual_seed(0)  # the same draws in every row, for a model that encodes
                loss = f"{float(forward_only()):.6f} (float32)"
        acts = par = 0
        if count_bytes:
            params = {p.untyped_storage().data_ptr() for p in net.parameters()}
            acts, par = saved_bytes(forward_only, params)
        net.load_state_dict(buffers, strict=False)  # BatchNorm's running statistics, as copied
        net.zero_grad(set_to_none=True)
        steps_fn[name] = one_step
        results[name] = {"loss": loss, "saved": acts, "params": par, "times": []}
    for fn in steps_fn.values():  # warm-up (kernel builds, compilation, allocator)
        fn()
        fn()
    names = list(steps_fn)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            steps_fn[name]()
            results[name]["times"].append(time.perf_counter() - t0)
    return results


def print_table(title: str, results: dict[str, dict], base: str, bytes_base: str | None) -> None:
    print(f"\n{title}: first-step losses " +
          ", ".join(f"{k} {r['loss']}" for k, r in results.items()))  # fmt: skip
    print(f"row              step ms min  median  vs {base}: min, median, paired (quartiles)"
          f"  saved MiB  vs {bytes_base or '-'}")  # fmt: skip
    ref = results.get(base)
    best = results[bytes_base]["saved"] if bytes_base in results else None
    for name, r in results.items():
        ms = statistics.median(r["times"])
        ratio = "   -"
        if ref:
            # per repeat, this row over the base row run next to it: robust to the load
            paired = [a / b for a, b in zip(r["times"], ref["times"], strict=True)]
            q1, _, q3 = statistics.quantiles(paired, n=4) if len(paired) > 1 else [1.0] * 3
            ratio = (f"{min(r['times']) / min(ref['times']):4.2f}x, "
                     f"{ms / statistics.median(ref['times']):4.2f}x, "
                     f"{statistics.median(paired):4.2f}x ({q1:.2f}-{q3:.2f})")  # fmt: skip
        mem = f"{r['saved'] / best:5.2f}x" if best and r["saved"] else "   -"
        saved = f"{r['saved'] / MIB:9.2f}" if r["saved"] else "        -"
        print(f"{name:16} {min(r['times']) * 1e3:11.1f}  {ms * 1e3:6.1f}  {ratio:>42}  "
              f"{saved}  {mem:>6}")  # fmt: skip


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median: the order statistics
    ``x_(k)``, ``x_(n+1-k)`` with the largest ``k`` such that ``P(Binomial(n, 1/2) < k)`` is at
    most ``(1 - level) / 2`` (the whole range when ``n`` is too small for that)."""
    xs, n = sorted(values), len(values)
    tail, k = 0.0, 0
    while k < n // 2 and tail + math.comb(n, k) / 2**n <= (1 - level) / 2:
        tail += math.comb(n, k) / 2**n
        k += 1
    return xs[max(k - 1, 0)], xs[n - max(k, 1)]


def available(make: Callable, *args: object) -> tuple[nn.Module, Callable] | None:
    try:
        return make(*args)
    except ImportError as err:
        print(f"  {getattr(make, '__name__', make)}{args}: skipped ({err})")
        return None


def mlp_part(steps_list: list[int], repeats: int, gen: torch.Generator) -> None:
    labels = torch.randint(0, N_OUT, (BATCH,), generator=gen)
    for steps in steps_list:
        x = (torch.rand(steps, BATCH, N_IN, generator=gen) < 0.2).float()
        rows = {name: row for name, make in ROWS.items() if (row := available(make, steps))}
        results = run_rows(rows, x, labels, repeats)
        print_table(f"MLP 784-512-10, T = {steps}, batch {BATCH}", results, "sj_multistep",
                    "sj_multistep")  # fmt: skip
    print("(parameters saved once by every row, not counted above: "
          f"{results['htaf']['params'] / MIB:.2f} MiB)")  # fmt: skip


def conv_part(repeats: int, gen: torch.Generator) -> None:
    labels = torch.randint(0, N_OUT, (CONV_BATCH,), generator=gen)
    x = (torch.rand(CONV_STEPS, CONV_BATCH, *CONV_SHAPE, generator=gen) < 0.2).float()
    for arch in ("cnn", "sew_resnet"):
        rows = {"htaf": htaf_conv_row(arch)}
        if (row := available(sj_conv_row, arch)) is not None:
            rows["sj_multistep"] = row
            rows["layers_only"] = sj_conv_row(arch, neurons=False)
        results = run_rows(rows, x, labels, repeats)
        print_table(f"{arch} 3x32x32, T = {CONV_STEPS}, batch {CONV_BATCH}", results,
                    "sj_multistep", "sj_multistep")  # fmt: skip


def compile_part(steps: int, repeats: int, gen: torch.Generator) -> None:
    for arch in ("mlp", "cnn"):
        if arch == "mlp":
            make: Callable = lambda: htaf_row(steps)  # noqa: E731
            batch, shape, t = BATCH, (N_IN,), steps
        else:
            make = lambda: htaf_conv_row("cnn")  # noqa: E731
            batch, shape, t = CONV_BATCH, CONV_SHAPE, CONV_STEPS
        labels = torch.randint(0, N_OUT, (batch,), generator=gen)
        spikes = (torch.rand(t, batch, *shape, generator=gen) < 0.2).float()
        compile_table(make, spikes, labels, repeats, f"{arch} eager and compiled")
        # The model as a user calls it, its Poisson encoder drawing from 20%-bright images
        images = 0.4 * torch.rand(batch, *shape, generator=gen)
        compile_table(lambda make=make: called_whole(make()[0]), images, labels, repeats,
                      f"{arch} with its encoder, net(images), eager and compiled")  # fmt: skip


def called_whole(net: nn.Module) -> tuple[nn.Module, Callable]:
    """A row that calls the model itself: ``net(images)``, its encoder included."""
    return net, net


def compile_table(make: Callable, x: torch.Tensor, labels: torch.Tensor, repeats: int,
                  title: str) -> None:  # fmt: skip
    """One model eager and under ``torch.compile(fullgraph=True)``: the table and the paired
    ratios' median with its 95% interval."""
    eager, (net, fn) = make(), make()
    with torch.no_grad():  # the eager forward runs first everywhere else: do it here too
        fn(x)
    # Each model compiled as a user compiles one: the MLP's and the CNN's ``counts`` share a
    # code object, and dynamo would take the CNN for new input shapes of the MLP's function
    # and recompile it with dynamic (symbolic) shapes, slower code than either user gets.
    torch._dynamo.reset()
    rows = {"eager": eager, "compiled": (net, torch.compile(fn, fullgraph=True))}
    t0 = time.perf_counter()
    results = run_rows(rows, x, labels, repeats, count_bytes=False, check64=False)
    print_table(f"{title} (inductor; setup and warm-up {time.perf_counter() - t0:.0f} s)",
                results, "eager", None)  # fmt: skip
    compiled, eager_times = results["compiled"]["times"], results["eager"]["times"]
    paired = [a / b for a, b in zip(compiled, eager_times, strict=True)]
    lo, hi = median_interval(paired)
    print(f"compiled / eager, paired: median {statistics.median(paired):.3f}, 95% interval "
          f"{lo:.3f}-{hi:.3f} over {len(paired)} repeats")  # fmt: skip


def products(bits: torch.Tensor, shape: tuple[int, int], w: torch.Tensor, b: torch.Tensor,
             g: torch.Tensor) -> dict[str, Callable]:  # fmt: skip
    """The gathered and the dense forward and weight gradient on the same bits."""
    return {
        "gather_fwd": lambda: binary_matmul.linear(bits, shape, w, b),
        "dense_fwd": lambda: F.linear(unpack_bits(bits, shape, w.dtype), w, b),
        "gather_grad": lambda: binary_matmul.weight_grad(bits, shape, g),
        "dense_grad": lambda: g.t().matmul(unpack_bits(bits, shape, g.dtype)),
    }


def interleaved_medians(fns: dict[str, Callable], repeats: int) -> dict[str, float]:
    """Median milliseconds of each function, timed in turn ``repeats`` times after a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def gather_part(repeats: int, gen: torch.Generator) -> None:
    """The event-driven products against the dense ones on the same bits, over spike density
    and layer width: where binary_matmul's MAX_DENSITY and MIN_WIDTH come from."""
    shape = rows, cols = 32 * BATCH, N_IN
    limits = binary_matmul.MAX_DENSITY, binary_matmul.MIN_WIDTH
    binary_matmul.MAX_DENSITY, binary_matmul.MIN_WIDTH = 1.0, 1  # always gather here
    print(f"\ngathered / dense time, X {rows}x{cols} (T = 32, batch {BATCH}), median of "
          f"{repeats} interleaved; forward X W^T + b, gradient G^T X")  # fmt: skip
    print("width  ones   forward (ms)             gradient (ms)")
    for width in (16, 32, 64, 512):
        w, b = torch.randn(width, cols, generator=gen), torch.randn(width, generator=gen)
        g = torch.randn(rows, width, generator=gen)
        for density in (0.05, 0.2, 0.35, 0.5):
            bits = pack_bits((torch.rand(shape, generator=gen) < density).float())
            med = interleaved_medians(products(bits, shape, w, b, g), repeats)
            fwd, grad = (med[f"gather_{k}"] / med[f"dense_{k}"] for k in ("fwd", "grad"))
            print(f"{width:5d}  {density:4.2f}   {fwd:.2f}x ({med['gather_fwd']:5.1f} / "
                  f"{med['dense_fwd']:5.1f})   {grad:.2f}x ({med['gather_grad']:5.1f} / "
                  f"{med['dense_grad']:5.1f})")  # fmt: skip
    binary_matmul.MAX_DENSITY, binary_matmul.MIN_WIDTH = limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 32, 64], help="values of T")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per row and T")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--parts", nargs="+", choices=("mlp", "conv", "compile", "gather"),
                        default=["mlp", "conv", "compile"], help="which tables")  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = tuple(round(v, 1) for v in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load}")
    gen = torch.Generator().manual_seed(0)
    if "mlp" in args.parts:
        mlp_part(args.steps, args.repeats, gen)
    if "conv" in args.parts:
        conv_part(args.repeats, gen)
    if "compile" in args.parts:
        compile_part(max(args.steps), args.repeats, gen)
    if "gather" in args.parts:
        gather_part(args.repeats, gen)
    load = tuple(round(v, 1) for v in os.getloadavg())
    print(f"\nload average at the end {load}")


if __name__ == "__main__":
    main()
