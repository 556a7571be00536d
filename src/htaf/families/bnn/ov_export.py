"""A packed model as an OpenVINO IR: binary layers become ``BinaryConvolution`` ops.

    export_openvino("model.htafb", "model_ov")      # model_ov/model.xml, model.bin, htaf.json
    OpenVINOModel("model_ov").predict(images)        # the CPU plugin's popcount kernels

Built from :class:`~htaf.families.bnn.packed.PackedModel`'s plan, step for step:

* a binary layer on ±1 inputs is opset1 ``BinaryConvolution`` (mode ``"xnor-popcount"``, the
  layer's ``pad_value``), a binary linear layer a 1×1 one on ``(N, C, 1, 1)``; its output is
  the integer pre-activation s as float32, exact (|s| < 2^24);
* the sign in front of it is ``Select(x >= 0, 1, −1)`` (``sign(0) = +1`` as the hard forward;
  a FakeQuantize would send 0 to −1);
* a folded BatchNorm is a 2-level ``FakeQuantize`` per channel with one cut at the integer
  threshold (``u >= t`` is ``u > t − 1/2`` for an integer u) and outputs 0/1 (a 0 is −1 to
  ``BinaryConvolution``); the CPU plugin fuses it into a ``BinaryConvolution`` right before
  it, which then writes bits that the next binary layer reads;
* everything else (the full-precision first and last layers, unfolded BatchNorm, pooling) is
  an ordinary op.

The binary part is exact integer arithmetic, as in the reference forward. The full-precision
layers are float32 in both, summed in different orders, so a value within rounding of a sign
threshold may differ: the tests check that predictions agree.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from htaf.families.bnn.packed import PackedModel, _labels, to_model_input

__all__ = ["OpenVINOModel", "export_openvino", "openvino_model"]

XML, META = "model.xml", "htaf.json"


def _ov() -> Any:
    try:
        import openvino
    except ImportError:
        raise ImportError(
            "OpenVINO export needs the openvino package: pip install 'htaf[openvino]'"
        ) from None
    return openvino


def _u1(bits: np.ndarray) -> Any:
    """A u1 constant of the bool array ``bits``: OpenVINO packs u1 little-endian in a byte."""
    ov = _ov()
    t = ov.Tensor(ov.Type.u1, ov.Shape(list(bits.shape)))
    packed = np.packbits(bits.reshape(-1), bitorder="little")
    t.data[:] = packed[: t.data.size].reshape(t.data.shape)
    return ov.op.Constant(t)


def openvino_model(packed: PackedModel, *, batch: int = 1, upto: str | None = None) -> Any:
    """The ``openvino.Model`` of ``packed`` for batches of ``batch`` (the CPU plugin's
    ``BinaryConvolution`` takes static shapes only; ``model.reshape`` changes it).
    ``upto``: the model up to binary layer ``upto``, whose output is that layer's integer
    pre-activation (one model per layer: the plugin corrupts memory when a
    ``BinaryConvolution`` feeding the next one's bits is also a model output)."""
    ov = _ov()
    from openvino import opset1, opset8, opset13

    x = opset13.parameter([batch, *packed.input_shape], np.float32, name="input")
    builder = _Builder(packed, opset1, opset8, opset13)
    state: tuple[str, Any] = ("float", x.output(0))
    for i, step in enumerate(packed.steps):
        state = builder.run(step, state, _binary_reader(packed.steps[i + 1 :]))
        if upto is not None and step.get("name") == upto:
            if upto not in builder.pre:
                raise ValueError(f"layer {upto!r} is not a binary layer on binary inputs")
            pre = _squeezed(builder.pre[upto], opset13, step["op"] == "linear")
            model = ov.Model([pre], [x], "htaf_bnn")
            model.outputs[0].get_tensor().set_names({f"pre:{upto}"})
            return model
    if upto is not None:
        raise ValueError(f"no layer {upto!r} in {packed.path}")
    last = next(s["op"] for s in reversed(packed.steps) if s["op"] in ("conv", "linear"))
    model = ov.Model([_squeezed(state[1], opset13, last == "linear")], [x], "htaf_bnn")
    model.outputs[0].get_tensor().set_names({"logits"})
    return model


def _squeezed(y: Any, ops: Any, linear: bool) -> Any:
    """A linear layer's (N, C, 1, 1) as (N, C); other outputs as they are."""
    if not linear or y.get_partial_shape().rank.get_length() != 4:
        return y
    return ops.squeeze(y, ops.constant(np.array([2, 3], np.int64))).output(0)


def _binary_reader(rest: list[dict[str, Any]]) -> bool:
    """Whether the next layer in ``rest`` is a binary layer on binary inputs."""
    layer = next((s for s in rest if s["op"] in ("conv", "linear")), None)
    return layer is not None and bool(layer["binary"] and layer["binary_input"])


class _Builder:
    def __init__(self, packed: PackedModel, op1: Any, op8: Any, op13: Any):
        self.p, self.op1, self.op8, self.ops = packed, op1, op8, op13
        self.pre: dict[str, Any] = {}

    def const(self, value: Any) -> Any:
        return self.ops.constant(np.ascontiguousarray(value, dtype=np.float32))

    def channel(self, value: Any, rank: int) -> Any:
        return self.const(np.asarray(value, np.float32).reshape((1, -1) + (1,) * (rank - 2)))

    def run(
        self, step: dict[str, Any], state: tuple[str, Any], binary_reader: bool = True
    ) -> tuple[str, Any]:
        op, path = step["op"], step["path"]
        t = self.p.tensors
        rank = state[1].get_partial_shape().rank.get_length()
        if op in ("conv", "linear"):
            return self.quant(step, state)
        if op == "maxpool":
            k, s, pd, dl = step["kernel"], step["stride"], step["padding"], step["dilation"]
            pool = self.op8.max_pool(state[1], s, dl, pd, pd, k,
                                     "ceil" if step["ceil_mode"] else "floor")  # fmt: skip
            return (state[0], pool.output(0), *state[2:])
        if op == "bn":
            if step.get("folded") and state[0] == "int":
                u = self.binarize(state[1], state[2], rank, bits=binary_reader)
                return ("bits" if binary_reader else "float", u)
            var = t[step["var"]].numpy().astype(np.float32)
            a = t[f"{path}.weight"].numpy() / np.sqrt(var + np.float32(step["eps"]))
            b = t[f"{path}.bias"].numpy() - t[step["mean"]].numpy() * a
            y = self.ops.multiply(self.float(state), self.channel(a, rank))
            return ("float", self.ops.add(y, self.channel(b, rank)).output(0))
        if op == "flatten":
            shape = self.ops.constant(np.array([0, -1], np.int64))
            return (state[0], self.ops.reshape(state[1], shape, True).output(0), *state[2:])
        return ("float", self.ops.relu(self.float(state)).output(0))

    def float(self, state: tuple[str, Any]) -> Any:
        if state[0] == "int":
            raise ValueError("the plan applies a float op to unfolded integer values")
        if state[0] == "bits":  # 0/1 -> -1/+1
            return self.ops.subtract(self.ops.multiply(state[1], self.const(2.0)),
                                     self.const(1.0)).output(0)  # fmt: skip
        return state[1]

    def binarize(self, u: Any, path: str, rank: int, bits: bool = True) -> Any:
        """``direction·(u − threshold) >= 0`` as a bit (or, not ``bits``, as ±1): a per-channel
        2-level FakeQuantize."""
        t = self.p.tensors
        d = t[f"{path}.direction"].numpy().astype(np.float32)
        th = t[f"{path}.threshold"].numpy().astype(np.float32)
        # The plugin fuses a FakeQuantize into the BinaryConvolution before it (which then
        # writes bits) only when it is a binarization: one cut, outputs 0 or 1. The bit is
        # u > cut; u is an integer, so cut = threshold ∓ 1/2 decides no bit by rounding.
        # A float reader gets ±1 from a ramp over (lo, lo + 1/2] that holds no integer (the
        # plugin's rewrite of a one-cut FakeQuantize with outputs ±1 gave wrong values).
        lo = np.where(d > 0, th - 0.5, th + 0.5) - (0.0 if bits else 0.25)
        hi = lo + (0.0 if bits else 0.5)
        off = 0.0 if bits else -1.0
        low, high = np.where(d > 0, off, 1.0), np.where(d > 0, 1.0, off)
        return self.ops.fake_quantize(
            u, self.channel(lo, rank), self.channel(hi, rank), self.channel(low, rank),
            self.channel(high, rank), 2,
        ).output(0)  # fmt: skip

    def signs(self, state: tuple[str, Any]) -> Any:
        """±1 of the state; bits pass as 0/1 (only a BinaryConvolution reads them: see
        :func:`_binary_reader`)."""
        if state[0] == "bits":
            return state[1]
        x = self.float(state)
        one, minus = self.const(1.0), self.const(-1.0)
        return self.ops.select(self.ops.greater_equal(x, self.const(0.0)), one, minus).output(0)

    def quant(self, step: dict[str, Any], state: tuple[str, Any]) -> tuple[str, Any]:
        path, t = step["path"], self.p.tensors
        x = self.signs(state) if step["binary_input"] else self.float(state)
        linear = step["op"] == "linear"
        if linear and x.get_partial_shape().rank.get_length() == 2:  # a 1×1 convolution
            x = self.ops.unsqueeze(x, self.ops.constant(np.array([2, 3], np.int64))).output(0)
        w = t[f"{path}.weight"].numpy()
        if linear:
            w = w[:, :, None, None]
        pads = step.get("pads", [0, 0, 0, 0])
        begin, end = [pads[0], pads[2]], [pads[1], pads[3]]
        stride = step.get("stride", [1, 1])
        if step["binary"] and step["binary_input"]:
            y = self.op1.binary_convolution(
                x, _u1(w > 0), stride, begin, end, [1, 1], "xnor-popcount",
                float(step.get("pad_value", 1.0)),
            ).output(0)  # fmt: skip
        else:
            if step["binary_input"] and step.get("pad_value", 0.0) != 0.0 and any(pads):
                value = self.const(step["pad_value"])
                lo = self.ops.constant(np.array([0, 0, *begin], np.int64))
                hi = self.ops.constant(np.array([0, 0, *end], np.int64))
                x = self.ops.pad(x, lo, hi, "constant", value).output(0)
                begin, end = [0, 0], [0, 0]
            y = self.ops.convolution(x, self.const(w), stride, begin, end, [1, 1]).output(0)
        # a linear layer's output stays (N, C, 1, 1): the plugin binarizes rank 4 only
        if step["binary"] and step["binary_input"]:
            self.pre[step["name"]] = y
            if "fold" in step:
                flip = t[f"{path}.flip"].numpy()
                if (flip < 0).any():
                    y = self.ops.multiply(y, self.channel(flip, 4)).output(0)
                return ("int", y, path)
        if step["binary"] and step["scaled"]:
            y = self.ops.multiply(y, self.channel(t[f"{path}.alpha"].numpy(), 4)).output(0)
        if step["bias"]:
            y = self.ops.add(y, self.channel(t[f"{path}.bias"].numpy(), 4)).output(0)
        return ("float", y)


def export_openvino(packed: str | Path | PackedModel, out: str | Path) -> Path:
    """Write ``packed`` (a packed model file, or a loaded one) as an OpenVINO IR in folder
    ``out``: ``model.xml``, ``model.bin`` and ``htaf.json`` (input shape, normalization).
    The folder is written whole or not at all (built aside, then renamed)."""
    ov = _ov()
    model = packed if isinstance(packed, PackedModel) else PackedModel(packed)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder")
    graph = openvino_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        ov.save_model(graph, str(tmp / XML), compress_to_fp16=False)
        info = {
            "format": "htaf-bnn-openvino", "source": str(model.path),
            "input_shape": list(model.input_shape), "n_out": model.n_out,
            "normalize": model.normalize, "arch": model.info.get("arch"),
        }  # fmt: skip
        (tmp / META).write_text(json.dumps(info, indent=2, sort_keys=True))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


class OpenVINOModel:
    """An exported IR folder, compiled for the CPU: ``model(x)`` gives logits of model
    inputs, ``model.predict(raw)`` class labels of raw inputs (as :class:`PackedModel`)."""

    def __init__(self, path: str | Path, *, threads: int | None = None):
        ov = _ov()
        path = Path(path)
        if not (path / XML).is_file() or not (path / META).is_file():
            raise FileNotFoundError(f"{path} is not an htaf OpenVINO export (no {XML}/{META})")
        try:
            self.info = json.loads((path / META).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path / META} is not JSON: {err}") from None
        self.path = path
        self.input_shape = tuple(self.info.get("input_shape") or ())
        self.normalize = self.info.get("normalize")
        self.config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self.core = ov.Core()
        self.requests: dict[int, Any] = {}

    def request(self, batch: int) -> Any:
        """The inference request for batches of ``batch`` (compiled on first use)."""
        if batch not in self.requests:
            model = self.core.read_model(str(self.path / XML))
            model.reshape([batch, *self.input_shape])
            compiled = self.core.compile_model(model, "CPU", self.config)
            self.requests[batch] = compiled.create_infer_request()
        return self.requests[batch]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        return self.request(len(x)).infer({0: x})[0].copy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        t = to_model_input(x, self.input_shape, self.normalize, str(self.path))
        return _labels(self(t.numpy()))
