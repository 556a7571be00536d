"""Binary inference on x86: float32 PyTorch against the reference packed forward and OpenVINO.

    .venv/bin/python benchmarks/bnn_inference.py                  # 2 threads, 50 repeats
    .venv/bin/python benchmarks/bnn_inference.py --repeats 100 --json out.json

Cases (batch 1 unless said): Linear 4096→4096, Conv 256→256 3×3 at 14×14, Conv 64→64 3×3 at
56×56, and the whole binarynet_cnn (CIFAR-10 shape) at batch 1 and 64. Each case times, side by
side and interleaved (one call of each engine per round, in a shuffled order):

* ``torch``: float32 PyTorch with ±1 float weights (a layer: ``F.linear``/``F.conv2d`` on ±1
  inputs, the best float can do; the model: the hardened BNN);
* ``packed``: the reference packed forward (numpy popcount over 64-bit words; a layer from bits);
* ``openvino``: the OpenVINO IR (the CPU plugin's BinaryConvolution). For a layer, ``ov 1`` is
  one binary layer fed ±1 floats (it binarizes and packs its input), and ``ov chain/4`` the
  time per layer of a chain of 4 such layers, where all but the first read the previous
  layer's output as the plugin's packed bits (a difference of two noisy times would be
  meaningless on a loaded machine; the quarter of a chain is an upper bound per packed layer).

Reports min and median over ``--repeats`` rounds, the speed-ups (torch / engine, paired per
round, median), weight bytes, prediction agreement, the CPU flags and the load average.
OpenMP waits passively (``OMP_WAIT_POLICY=PASSIVE`` unless set): on a loaded machine spinning
workers slow float32 PyTorch down many times over, which would flatter the binary engines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Before torch loads OpenMP: on a shared, loaded machine, spinning OpenMP workers wait for a
# descheduled sibling at every barrier; passive waiting is what keeps float32 PyTorch fast.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# --isa avx2 caps every library at AVX2 (they read these when they load): an AVX2-only
# machine's kernels on this one. OpenVINO's and PyTorch's oneDNN read ONEDNN_MAX_CPU_ISA,
# PyTorch's own kernels ATEN_CPU_CAPABILITY, MKL's GEMM MKL_ENABLE_INSTRUCTIONS.
if "--isa" in sys.argv and sys.argv[sys.argv.index("--isa") + 1] == "avx2":
    os.environ.update(ONEDNN_MAX_CPU_ISA="AVX2", DNNL_MAX_CPU_ISA="AVX2",
                      ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2")  # fmt: skip

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import htaf
from htaf.families import DataSpec
from htaf.families.bnn import BNNOptions, build
from htaf.families.bnn.packed import PackedModel, _pack_bits, _words, export_packed

KERNELS: set[str] = set()  # the plugin's BinaryConvolution kernels that ran


def record_kernels(compiled) -> None:
    for n in compiled.get_runtime_model().get_ordered_ops():
        if str(n.get_rt_info()["layerType"].astype(str)) == "BinaryConvolution":
            KERNELS.add(str(n.get_rt_info()["primitiveType"].astype(str)))


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = sorted(set(re.findall(r"\b(avx2|avx512f|avx512_vpopcntdq)\b", text)))
    model = re.search(r"model name\s*:\s*(.*)", text)
    return f"{model.group(1) if model else '?'}; flags: {' '.join(flags)}"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def interleaved(
    cases: dict, repeats: int, warmup: int = 3, inner: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each case: per round, ``inner`` calls of each case back to back
    (their mean), the cases in a shuffled order."""
    names = list(cases)
    for _ in range(warmup):
        for n in names:
            cases[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(names)
        for n in names:
            t = time.perf_counter()
            for _ in range(inner):
                cases[n]()
            times[n].append((time.perf_counter() - t) / inner)
    return times


def summarize(label: str, times: dict[str, list[float]], base: str = "torch") -> dict:
    row: dict = {"case": label}
    for name, ts in times.items():
        row[name] = {"min_us": min(ts) * 1e6, "median_us": statistics.median(ts) * 1e6}
    for name, ts in times.items():
        if name != base:
            ratios = [b / t for b, t in zip(times[base], ts, strict=True) if t > 0]
            row[name]["speedup_median"] = statistics.median(ratios)
            row[name]["speedup_of_mins"] = min(times[base]) / min(ts)
    return row


def marginal(base: list[float], one: list[float], more: list[float], extra: int) -> dict:
    """The time of each of ``extra`` more layers, from chains of 1 and 1 + ``extra`` layers
    timed in the same rounds: what a layer costs when its input is the previous layer's
    bits (the first layer's float input and the last one's float output cancel out)."""
    per = [(m - o) / extra for m, o in zip(more, one, strict=True)]
    med = (statistics.median(more) - statistics.median(one)) / extra
    low = (min(more) - min(one)) / extra
    ratios = [b / p for b, p in zip(base, per, strict=True) if p > 0]
    return {"min_us": low * 1e6, "median_us": med * 1e6,
            "speedup_median": statistics.median(ratios) if ratios else float("nan"),
            "speedup_of_mins": min(base) / low if low > 0 else float("nan"),
            "rounds_positive": len(ratios)}  # fmt: skip


def print_row(row: dict) -> None:
    print(f"\n{row['case']}")
    for name, v in row.items():
        if name == "case" or not isinstance(v, dict) or "min_us" not in v:
            continue
        extra = ""
        if "speedup_median" in v:
            extra = (f"  speed-up vs torch: {v['speedup_median']:.2f}× (paired median), "
                     f"{v['speedup_of_mins']:.2f}× (of mins)")  # fmt: skip
        print(f"  {name:12s} min {v['min_us']:10.1f} µs  median {v['median_us']:10.1f} µs{extra}")


# -- single layers ------------------------------------------------------------------------------
def ov_chain(w0: np.ndarray, x0: np.ndarray, depth: int, threads: int):
    """A chain of ``depth`` binary layers, the first with weights ``w0`` (the rest random),
    compiled for ``x0``'s shape; the call, its request and the input."""
    import openvino as ov
    from openvino import opset1, opset13

    from htaf.families.bnn.ov_export import _u1

    rng = np.random.default_rng(0)
    cout, k = w0.shape[0], w0.shape[2]
    shape = list(x0.shape)
    x = opset13.parameter(shape, np.float32)
    y = x.output(0)
    p = k // 2
    for i in range(depth):
        if i:  # sign(s) as bits: a binarization the plugin fuses into the layer before it
            cut = opset13.constant(np.full((1, cout, 1, 1), -0.5, np.float32))
            zero, one = (opset13.constant(np.full((1, cout, 1, 1), v, np.float32)) for v in (0, 1))
            y = opset13.fake_quantize(y, cut, cut, zero, one, 2).output(0)
        w = w0 if i == 0 else rng.random((cout, cout, k, k)) > 0.5
        y = opset1.binary_convolution(y, _u1(w), [1, 1], [p, p], [p, p], [1, 1],
                                      "xnor-popcount", 1.0).output(0)  # fmt: skip
    cfg = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
           "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
    compiled = ov.Core().compile_model(ov.Model([y], [x]), "CPU", cfg)
    req = compiled.create_infer_request()
    info = [n.get_rt_info() for n in compiled.get_runtime_model().get_ordered_ops()]
    kinds = {str(i["layerType"].astype(str)): str(i["outputPrecisions"].astype(str)) for i in info}
    assert "BinaryConvolution" in kinds, kinds
    record_kernels(compiled)
    assert kinds.get("FakeQuantize", "u1") == "u1", kinds  # the chain passes bits
    xin = np.ascontiguousarray(x0, np.float32)
    return lambda: req.infer({0: xin}), req, xin


def layer_case(
    kind: str, cin: int, cout: int, h: int, repeats: int, threads: int, inner: int
) -> dict:
    rng = np.random.default_rng(1)
    if kind == "linear":
        label = f"Linear {cin}→{cout}, batch 1"
        w = torch.from_numpy(np.sign(rng.normal(size=(cout, cin))).astype(np.float32))
        x = torch.from_numpy(np.sign(rng.normal(size=(1, cin))).astype(np.float32))
        step = {"op": "linear", "in": cin}

        def float_call():
            F.linear(x, w)
    else:
        label = f"Conv {cin}→{cout} 3×3 at {h}×{h}, batch 1"
        w = torch.from_numpy(np.sign(rng.normal(size=(cout, cin, 3, 3))).astype(np.float32))
        x = torch.from_numpy(np.sign(rng.normal(size=(1, cin, h, h))).astype(np.float32))
        step = {"op": "conv", "in": cin, "kernel": [3, 3], "stride": [1, 1],
                "pads": [1, 1, 1, 1], "pad_value": 1.0}  # fmt: skip

        def float_call():
            F.conv2d(F.pad(x, (1, 1, 1, 1), value=1.0), w)

    # the reference packed forward's binary op, on bits (it packs them along the channels)
    ref = PackedModel.__new__(PackedModel)
    ref.words = {"w": _words(_pack_bits(np.moveaxis((w >= 0).numpy(), 1, -1))).reshape(cout, -1)}
    step["path"] = "w"
    bits = x >= 0
    with torch.no_grad():
        want = F.conv2d(F.pad(x, (1, 1, 1, 1), value=1.0), w) if kind == "conv" else F.linear(x, w)
    got = ref._popcount_op(step, bits)
    assert torch.equal(got.float(), want), "reference packed op disagrees with float"
    # packed input: the words prepared once, xor + popcount only (linear only: a conv's
    # im2col of packed words is part of its cost)
    cases = {"torch": float_call, "packed": lambda: ref._popcount_op(step, bits)}
    if kind == "linear":
        xw = _words(_pack_bits(bits.numpy()))
        wv = ref.words["w"]
        cases["packed words"] = lambda: np.bitwise_count(xw ^ wv).sum(-1)
    try:
        w4 = (w >= 0).numpy().reshape(cout, cin, *(w.shape[2:] or (1, 1)))
        x4 = x.numpy().reshape(1, cin, *(x.shape[2:] or (1, 1)))
        one, req1, xin = ov_chain(w4, x4, 1, threads)
        five, _, _ = ov_chain(w4, x4, 5, threads)
        out = req1.infer({0: xin})[0]  # the OpenVINO layer computes the same integers
        assert np.array_equal(out.reshape(want.shape), want.numpy()), "OpenVINO disagrees"
        cases["ov 1"] = one
        cases["ov 5"] = five
    except ImportError:
        print("openvino is not installed: its cases are skipped")
    times = interleaved(cases, repeats, inner=inner)
    five = times.pop("ov 5", None)
    if five is not None:
        times["ov chain/5"] = [t / 5 for t in five]
    row = summarize(label, times)
    if five is not None:
        row["ov packed"] = marginal(times["torch"], times["ov 1"], five, 4)
    row["weight_bytes"] = {"float32": w.numel() * 4, "bits": int(ref.words["w"].nbytes)}
    return row


# -- the whole binarynet_cnn --------------------------------------------------------------------
def model_cases(repeats: int, threads: int, batches: tuple[int, ...], n_check: int) -> list:
    torch.manual_seed(0)
    model = build(
        BNNOptions(arch="binarynet_cnn"),
        DataSpec("image", (3, 32, 32), 10, "multiclass"),
        "ste_clipped",
        {},
    )
    with torch.no_grad():  # BatchNorm statistics far from the defaults, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-8, 8)
                m.running_var.uniform_(10, 400)
                m.weight.uniform_(-1, 1)
                m.bias.uniform_(-1, 1)
    htaf.harden(model)
    model.eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = export_packed(model, Path(tmp) / "m.htafb")
        packed = PackedModel(path)
        from safetensors.torch import save

        state = {k: v.contiguous() for k, v in model.state_dict().items()
                 if isinstance(v, torch.Tensor)}  # fmt: skip
        sizes = {"float32 state_dict (safetensors)": len(save(state)),
                 "packed file": path.stat().st_size}  # fmt: skip
        sizes["ratio"] = sizes["float32 state_dict (safetensors)"] / sizes["packed file"]
        ovm = None
        try:
            from htaf.families.bnn.ov_export import OpenVINOModel, export_openvino

            ovm = OpenVINOModel(export_openvino(path, Path(tmp) / "ov"), threads=threads)
        except ImportError:
            print("openvino is not installed: its cases are skipped")
        # identical predictions on random inputs
        rng = np.random.default_rng(2)
        xs = rng.normal(size=(n_check, 3, 32, 32)).astype(np.float32)
        agree: dict[str, float] = {}
        with torch.no_grad():
            want = torch.cat([model(torch.from_numpy(c)) for c in np.array_split(xs, 16)])
        want_labels = want.argmax(1).numpy()
        ref = np.concatenate([packed(torch.from_numpy(c)).argmax(1).numpy()
                              for c in np.array_split(xs, 16)])  # fmt: skip
        agree["packed"] = float((ref == want_labels).mean())
        if ovm is not None:
            got = np.concatenate([ovm(c).argmax(1) for c in np.array_split(xs, 16)])
            agree["openvino"] = float((got == want_labels).mean())
        for batch in batches:
            x = torch.from_numpy(rng.normal(size=(batch, 3, 32, 32)).astype(np.float32))
            xn = x.numpy()

            def torch_call(x=x):
                with torch.no_grad():
                    model(x)

            def packed_call(x=x):
                packed(x)

            cases = {"torch": torch_call, "packed": packed_call}
            if ovm is not None:
                record_kernels(ovm.request(batch).get_compiled_model())
                cases["openvino"] = lambda xn=xn: ovm(xn)
            reps = repeats
            times = interleaved(cases, reps, warmup=2)
            row = summarize(f"binarynet_cnn (3×32×32, 10 classes), batch {batch}, float in/out",
                            times)  # fmt: skip
            row["sizes"] = sizes
            row["agreement_on_random_inputs"] = {"n": n_check, **agree}
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--inner", type=int, default=10,
                        help="calls of each engine per round for a layer (their mean)")  # fmt: skip
    parser.add_argument("--check", type=int, default=1000, help="random inputs compared")
    parser.add_argument("--only", choices=("layers", "model"), default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--isa", choices=("native", "avx2"), default="native",
                        help="avx2: cap the libraries at AVX2 (read at import)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    print(f"CPU: {cpu_flags()}\nload before: {load()}")
    print(
        f"threads: {args.threads}, repeats: {args.repeats}, torch {torch.__version__}, "
        f"numpy {np.__version__}"
    )
    rows = []
    if args.only in (None, "layers"):
        for kind, cin, cout, h in [("linear", 4096, 4096, 1), ("conv", 256, 256, 14),
                                   ("conv", 64, 64, 56)]:  # fmt: skip
            rows.append(layer_case(kind, cin, cout, h, args.repeats, args.threads, args.inner))
            print_row(rows[-1])
            print(f"  weights: {rows[-1]['weight_bytes']}")
    if args.only in (None, "model"):
        for row in model_cases(args.repeats, args.threads, (1, 64), args.check):
            rows.append(row)
            print_row(row)
        print(f"  sizes: {rows[-1]['sizes']}")
        print(f"  prediction agreement with the hardened model: "
              f"{rows[-1]['agreement_on_random_inputs']}")  # fmt: skip
    print(f"\nISA cap: {args.isa}; torch: {torch.backends.cpu.get_cpu_capability()}; "
          f"OpenVINO BinaryConvolution kernels: {sorted(KERNELS) or '?'}")  # fmt: skip
    print(f"\nload after: {load()}")
    if args.json:
        info = {"cpu": cpu_flags(), "isa": args.isa, "kernels": sorted(KERNELS), "rows": rows}
        Path(args.json).write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
