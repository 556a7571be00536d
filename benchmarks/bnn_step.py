"""One training step of the same binary MLP and CNN in htaf and in Brevitas, side by side.

    python benchmarks/bnn_step.py [--repeats 15] [--steps 5] [--threads 1] [--json FILE]

A step is forward, cross-entropy, backward, an Adam update and (htaf) the latent-weight clip
with the flip count that the htaf engine runs after every step. The networks, with 1-bit
weights and 1-bit activations everywhere but the real-valued input image:

* MLP (BinaryNet / Brevitas LFC style): 784 -> 512 -> 512 -> 512 -> 10, BatchNorm after each
  layer, batch 128 (htaf: ``binarynet_mlp`` with widths 512);
* CNN: 3x32x32 -> conv 16, conv 32 + maxpool, conv 32 + maxpool -> 10, BatchNorm after each
  convolution, batch 32 (htaf: ``small_cnn`` with widths 16, 32, 32).

Rows: htaf with ``ste_clipped``; htaf with ``htaf`` (signed HTAF, smooth forward in training),
each quantizing weights and activations;
Brevitas 1W1A (``SignedBinaryWeightPerTensorConst`` weights, ``SignedBinaryActPerTensorConst``
activations: sign forward, clipped straight-through backward). Each repeat times every row back
to back; a ratio is the median over repeats of the paired per-repeat ratios. Targets tracked by
the project: htaf's step <= 1.1x ste_clipped's, and <= 1.0x Brevitas's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from htaf.families.bnn import BNN, Binarization, build_arch
from htaf.io import atomic_write_json

TARGET_VS_STE = 1.1
TARGET_VS_BREVITAS = 1.0
NETS = {"mlp": ((1, 28, 28), 128), "cnn": ((3, 32, 32), 32)}


def htaf_net(kind: str, estimator: str) -> BNN:
    # The row's estimator quantizes weights and activations, as Brevitas's binary quantizers do.
    q = Binarization(estimator, {}, kernel="same", binary_first=True, binary_last=True)
    if kind == "mlp":
        return build_arch("binarynet_mlp", q, NETS[kind][0], 10, (512, 512, 512))
    return build_arch("small_cnn", q, NETS[kind][0], 10, (16, 32, 32))


def brevitas_net(kind: str) -> nn.Module:
    import brevitas.nn as qnn
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    def act() -> nn.Module:
        return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)

    def dense(n_in: int, n_out: int, bias: bool = False) -> nn.Module:
        return qnn.QuantLinear(
            n_in, n_out, bias=bias, weight_quant=SignedBinaryWeightPerTensorConst
        )

    def conv(c_in: int, c_out: int) -> nn.Module:
        return qnn.QuantConv2d(c_in, c_out, 3, padding=1, bias=False,
                               weight_quant=SignedBinaryWeightPerTensorConst)  # fmt: skip

    if kind == "mlp":
        return nn.Sequential(
            nn.Flatten(), dense(784, 512), nn.BatchNorm1d(512),
            act(), dense(512, 512), nn.BatchNorm1d(512),
            act(), dense(512, 512), nn.BatchNorm1d(512),
            act(), dense(512, 10), nn.BatchNorm1d(10),
        )  # fmt: skip
    return nn.Sequential(
        conv(3, 16), nn.BatchNorm2d(16),
        act(), conv(16, 32), nn.MaxPool2d(2), nn.BatchNorm2d(32),
        act(), conv(32, 32), nn.MaxPool2d(2), nn.BatchNorm2d(32),
        nn.Flatten(), act(), dense(32 * 8 * 8, 10, bias=True),
    )  # fmt: skip


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    constrained = [m for m in model.modules() if hasattr(m, "constrain_")]
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        for m in constrained:  # what the htaf engine does after every optimizer step
            m.constrain_()

    return step


def brevitas_status() -> str | None:
    """None when Brevitas imports, else why not."""
    try:
        import brevitas  # noqa: F401
    except Exception as err:  # not installed, or broken beside this torch
        return f"{type(err).__name__}: {err}"
    return None


def measure(kind: str, repeats: int, steps: int, with_brevitas: bool) -> dict[str, list[float]]:
    shape, batch = NETS[kind]
    torch.manual_seed(0)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    models = {"ste_clipped": htaf_net(kind, "ste_clipped"), "htaf": htaf_net(kind, "htaf")}
    if with_brevitas:
        models["brevitas"] = brevitas_net(kind)
    runners = {name: make_step(m, x, y) for name, m in models.items()}
    for run in runners.values():  # warm-up: allocator, Adam state, native operators
        for _ in range(3):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits every row alike
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            samples[name].append((time.perf_counter() - start) / steps)
    return samples


def paired(samples: dict[str, list[float]], a: str, b: str) -> list[float]:
    return [ta / tb for ta, tb in zip(samples[a], samples[b], strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problem = brevitas_status()
    if problem:
        print(f"Brevitas is not available ({problem}): timing htaf only")
    result: dict[str, object] = {"threads": args.threads, "brevitas": problem or "ok"}
    for kind in NETS:
        samples = measure(kind, args.repeats, args.steps, problem is None)
        shape, batch = NETS[kind]
        print(f"\n{kind} {shape}, batch {batch}: {args.repeats} repeats x {args.steps} steps, "
              f"{args.threads} thread(s)")  # fmt: skip
        print(f"{'row':12s} {'ms/step':>9s}")
        for name, ts in samples.items():
            print(f"{name:12s} {statistics.median(ts) * 1e3:9.2f}")
        ratios = {"htaf / ste_clipped": (paired(samples, "htaf", "ste_clipped"), TARGET_VS_STE)}
        if "brevitas" in samples:
            ratios["htaf / brevitas"] = (paired(samples, "htaf", "brevitas"), TARGET_VS_BREVITAS)
            ratios["ste_clipped / brevitas"] = (paired(samples, "ste_clipped", "brevitas"), None)
        summary = {}
        for label, (r, target) in ratios.items():
            q1, med, q3 = statistics.quantiles(r, n=4)
            med = statistics.median(r)
            verdict = (
                ""
                if target is None
                else f"  target <= {target}: " + ("PASS" if med <= target else "FAIL")
            )
            print(f"{label:24s} {med:.3f}  (q1-q3 {q1:.3f}-{q3:.3f}){verdict}")
            summary[label] = med
        result[kind] = {
            "ms_per_step": {k: statistics.median(v) * 1e3 for k, v in samples.items()},
            "ratios": summary,
            "samples_s": samples,
        }
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
