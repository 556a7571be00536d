"""The packed model file and the reference packed forward.

    export_packed(model, "model.htafb")          # a hardened BNN, e.g. htaf.load_run(d).model()
    packed = PackedModel("model.htafb")
    logits = packed(x)                           # float32 in, float32 logits out
    labels = packed.predict(images)              # raw images as the dataset gives them

The file is :func:`htaf.families.bnn.export.save_binary`'s format (safetensors, bits packed
along the input channels, SHA-256 checksums) with two additions, so :func:`load_binary` reads
it as well:

* ``plan`` (metadata, JSON): the layers in the order they run, each with what the forward
  needs (kernel, stride, padding, ``pad_value``, which tensors), plus the architecture, its
  options, the input shape and the input normalization;
* per binary layer whose output goes through (max pooling and) a BatchNorm into the next
  binary layer's sign: ``LAYER.flip``, ``LAYER.direction`` and ``LAYER.threshold``, the
  BatchNorm folded into an integer threshold per output channel.

**The binary layer.** With input bits x and weight bits w over the K = in·kh·kw positions of
a window, the pre-activation is the integer

    s = Σ (±1)(±1) = 2·popcount(xnor(x, w)) − K = K − 2·popcount(x xor w)

(the padding adds ``pad_value`` = ±1, itself a bit; bits past the last channel are 0 in both,
so their xor is 0 and drops out). The hardened PyTorch layer computes the same integer in
float32, exactly: every partial sum is an integer below 2^24. Its output is then
``alpha·s + b``.

**The fold.** What the next layer sees is ``sign(BN(pool(alpha·s + b)))``, a function of s
alone, monotone in ``u = flip·s`` with ``flip = sign(alpha)`` (max pooling commutes with a
monotone map, so it may pool u instead). The export evaluates that function, with the model's
own float32 modules, at every integer s in [−K, K], so the threshold reproduces the float32
rounding of the hardened model exactly, and stores it as ``direction·(u − threshold) >= 0``.

:class:`PackedModel` runs the binary layers on bits in integer arithmetic (numpy's popcount,
64-bit words) and the full-precision first and last layers with the same PyTorch ops as the
hardened model: its integer pre-activations and predictions equal the hardened model's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from htaf.families.bnn.export import (
    FORMAT,
    BinaryExportError,
    _meta_json,
    export_binary,
    packed_shape,
    seal,
    verify,
)
from htaf.io import atomic_write_bytes, read_safetensors

__all__ = ["PackedModel", "build_plan", "export_packed", "load_input", "packed_tensors"]

#: Input dtypes :meth:`PackedModel.predict` takes (uint8 images are scaled by 1/255 first).
INPUT_DTYPES = ("uint8", "float16", "float32", "float64")


class PackedExportError(BinaryExportError):
    """A model the packed format cannot express (no binary layer, an unsupported layer)."""


# -- export -------------------------------------------------------------------------------------
def _flat_layers(body: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(state_dict prefix, module)`` in forward order, through nested ``Sequential``s."""
    out: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, module: nn.Module) -> None:
        if isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                walk(f"{prefix}.{name}" if prefix else name, child)
        else:
            out.append((prefix, module))

    walk("", body)
    return out


def _layer_names(model: nn.Module) -> dict[int, str]:
    names = getattr(model, "layer_names", {}) or {}
    return {id(m): n for n, m in names.items()}


def build_plan(model: nn.Module) -> list[dict[str, Any]]:
    """The packed forward's steps for ``model`` (a hardened ``BNN``; see the module doc).

    Raises :class:`PackedExportError` naming the layer for a model with no binary layer or a
    layer the format cannot express (a residual block, average pooling, a binary
    convolution padded with zeros, groups or dilation...).
    """
    from htaf.families.bnn.layers import ModeNorm, QuantConv2d, QuantLinear

    body = getattr(model, "body", model)
    prefix = "body." if body is not model else ""
    names = _layer_names(model)
    plan: list[dict[str, Any]] = []
    for path, module in _flat_layers(body):
        full = prefix + path
        label = names.get(id(module), full)
        step: dict[str, Any] = {"name": label, "path": full}
        if isinstance(module, QuantConv2d | QuantLinear):
            step.update(_quant_step(module, label))
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            stats = getattr(module, "stats", "mixed")
            hard = isinstance(module, ModeNorm) and int(module.hard_batches) > 0
            if stats != "hard" and isinstance(module, ModeNorm):
                raise PackedExportError(
                    f"layer {label}: BatchNorm in the {stats!r} forward; export a hardened "
                    "model (htaf.harden(model), then one forward, or htaf.load_run(d).model())"
                )
            mean, var = ("hard_mean", "hard_var") if hard else ("running_mean", "running_var")
            if not module.affine or not module.track_running_stats:
                raise PackedExportError(f"layer {label}: BatchNorm without affine parameters "
                                        "or running statistics cannot be exported")  # fmt: skip
            step.update(op="bn", mean=f"{full}.{mean}", var=f"{full}.{var}", eps=module.eps)
        elif isinstance(module, nn.MaxPool2d):
            k, st, pd, dl = (_pair(v) for v in (module.kernel_size, module.stride,
                                                module.padding, module.dilation))  # fmt: skip
            step.update(op="maxpool", kernel=k, stride=st, padding=pd, dilation=dl,
                        ceil_mode=bool(module.ceil_mode))  # fmt: skip
        elif isinstance(module, nn.Flatten):
            if (module.start_dim, module.end_dim) != (1, -1):
                raise PackedExportError(f"layer {label}: only Flatten(1, -1) can be exported")
            step.update(op="flatten")
        elif isinstance(module, nn.ReLU):
            step.update(op="relu")
        else:
            raise PackedExportError(
                f"layer {label} ({type(module).__name__}) cannot be expressed in a packed file "
                "(supported: QuantConv2d, QuantLinear, BatchNorm, MaxPool2d, Flatten, ReLU in "
                "sequence)"
            )
        plan.append(step)
    if not any(s.get("binary") for s in plan):
        raise PackedExportError(
            f"{type(model).__name__} has no binary layer (no QuantConv2d or QuantLinear with a "
            "kernel quantizer): there is nothing to pack"
        )
    _mark_folds(plan)
    return plan


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def _quant_step(module: Any, label: str) -> dict[str, Any]:
    from htaf.families.bnn.layers import QuantConv2d

    step: dict[str, Any] = {
        "binary": module.binary,
        "binary_input": module.input_quantizer is not None,
        "in": int(module.weight.shape[1]),
        "out": int(module.weight.shape[0]),
        "bias": module.bias is not None,
        "scaled": module.weight_scale() is not None,
    }
    if module.input_quantizer is not None and module.input_quantizer.mode != "hard":
        raise PackedExportError(f"layer {label}: its input quantizer is not hard; harden the "
                                "model first (htaf.harden(model))")  # fmt: skip
    if module.binary and module.kernel_quantizer.mode != "hard":
        raise PackedExportError(f"layer {label}: its kernel quantizer is not hard; harden the "
                                "model first (htaf.harden(model))")  # fmt: skip
    if not isinstance(module, QuantConv2d):
        return {"op": "linear", **step}
    if module.groups != 1 or _pair(module.dilation) != [1, 1]:
        raise PackedExportError(f"layer {label}: a convolution with groups or dilation cannot "
                                "be expressed in a packed file")  # fmt: skip
    left, right, top, bottom = (int(p) for p in module._reversed_padding_repeated_twice)
    padded = any((left, right, top, bottom))
    if step["binary"] and step["binary_input"] and padded and module.pad_value == 0.0:
        raise PackedExportError(
            f"layer {label}: its padding adds zeros (pad_value=0), which bits cannot express; "
            "train it with pad_value 1 or -1"
        )
    return {
        "op": "conv", **step, "kernel": _pair(module.kernel_size),
        "stride": _pair(module.stride), "pads": [top, bottom, left, right],
        "pad_value": float(module.pad_value) if step["binary_input"] else 0.0,
    }  # fmt: skip


def _mark_folds(plan: list[dict[str, Any]]) -> None:
    """Mark each binary layer whose output reaches the next binary layer's sign through max
    pooling, one BatchNorm and flattening only: its BatchNorm folds into a threshold."""
    for i, step in enumerate(plan):
        if not (step.get("binary") and step["binary_input"]):
            continue
        j = i + 1
        while j < len(plan) and plan[j]["op"] == "maxpool":
            j += 1
        if j >= len(plan) or plan[j]["op"] != "bn":
            continue
        k = j + 1
        while k < len(plan) and plan[k]["op"] == "flatten":
            k += 1
        if k < len(plan) and plan[k]["op"] in ("conv", "linear") and plan[k]["binary_input"]:
            step["fold"] = plan[j]["path"]
            plan[j]["folded"] = True


@torch.no_grad()
def _fold(model: nn.Module, plan: list[dict[str, Any]], step: dict[str, Any]) -> dict[str, Tensor]:
    """``flip``, ``direction`` and ``threshold`` of a folded binary layer (see the module doc),
    from the model's own float32 modules evaluated at every integer pre-activation."""
    modules = dict(model.named_modules())
    layer = modules[step["path"]]
    bn = modules[step["fold"]]
    consumer = next(
        modules[s["path"]] for s in plan[plan.index(step) + 1 :] if s["op"] in ("conv", "linear")
    )
    k = step["in"] * (int(np.prod(step["kernel"])) if step["op"] == "conv" else 1)
    s = torch.arange(-k, k + 1, dtype=torch.float32)
    c = step["out"]
    y = s.repeat(c, 1)  # (C, 2K+1): the integer pre-activations, per channel
    scale = layer.weight_scale()
    if scale is not None:
        y = y * scale.detach().float().view(-1, 1)
    if layer.bias is not None:
        y = y + layer.bias.detach().view(-1, 1)
    shaped = y.T.reshape(-1, c, 1, 1) if step["op"] == "conv" else y.T
    if isinstance(bn, nn.BatchNorm2d) and step["op"] != "conv":
        raise PackedExportError(f"layer {step['name']}: a 2-d BatchNorm after a linear layer")
    if isinstance(bn, nn.BatchNorm1d) and step["op"] == "conv":
        shaped = shaped.reshape(-1, c)
    bits = consumer.input_quantizer(bn(shaped)).reshape(len(s), c).T > 0  # (C, 2K+1)
    flip = torch.ones(c, dtype=torch.int8)
    if scale is not None:
        flip[scale.detach() < 0] = -1
    b = torch.where((flip > 0).view(-1, 1), bits, bits.flip(1)).to(torch.int8)  # ascending u
    steps = b[:, 1:] - b[:, :-1]
    ups, downs = (steps >= 0).all(1), (steps <= 0).all(1)
    bad = torch.nonzero(~(ups | downs))
    if len(bad):
        raise PackedExportError(
            f"layer {step['name']}: channel {int(bad[0, 0])}'s BatchNorm and sign are not "
            "monotone in the pre-activation and cannot be folded"
        )
    any_on = b.any(1)
    first_on = b.argmax(1) - k  # the first u whose bit is 1
    last_on = k - b.flip(1).argmax(1)  # the last one
    threshold = torch.where(ups, torch.where(any_on, first_on, k + 1),
                            torch.where(any_on, last_on, -k - 1)).to(torch.int32)  # fmt: skip
    direction = torch.where(ups, 1, -1).to(torch.int8)
    return {"flip": flip, "direction": direction, "threshold": threshold}


def packed_tensors(
    model: nn.Module, *, options: dict[str, Any] | None = None,
    normalize: dict[str, list[float]] | None = None,
) -> tuple[dict[str, Tensor], dict[str, str]]:  # fmt: skip
    """The tensors and metadata :func:`export_packed` writes (not yet sealed)."""
    from htaf.families.bnn.layers import ModeNorm

    for norm in model.modules():  # BNN.forward sets this; the export runs no forward
        if isinstance(norm, ModeNorm):
            norm.stats = "hard"
    was_training = model.training
    model.eval()
    try:
        plan = build_plan(model)
        tensors, meta = export_binary(model)
        for step in plan:
            if "fold" in step:
                for key, value in _fold(model, plan, step).items():
                    tensors[f"{step['path']}.{key}"] = value
    finally:
        model.train(was_training)
    info = {
        "arch": str(getattr(model, "arch", type(model).__name__)),
        "input_shape": list(getattr(model, "input_shape", ())),
        "n_out": int(getattr(model, "n_out", plan_out(plan))),
        "options": options or {},
        "normalize": normalize,
        "steps": plan,
    }
    meta["plan"] = json.dumps(info, sort_keys=True)
    return tensors, meta


def plan_out(plan: list[dict[str, Any]]) -> int:
    return next(s["out"] for s in reversed(plan) if s["op"] in ("conv", "linear"))


def export_packed(
    model: nn.Module, path: str | Path, *, options: dict[str, Any] | None = None,
    normalize: dict[str, list[float]] | None = None,
) -> Path:  # fmt: skip
    """Write ``model`` (a hardened BNN) as a packed model file (see the module doc).

    ``options``: the family options to record; ``normalize``: the dataset's per-channel
    ``{"mean", "std"}`` that :meth:`PackedModel.predict` applies to raw inputs. Raises
    :class:`PackedExportError` (a ``ValueError``) naming the layer for a model the format
    cannot express; nothing is written then.
    """
    from safetensors.torch import save

    tensors, meta = packed_tensors(model, options=options, normalize=normalize)
    return atomic_write_bytes(path, save(tensors, metadata=seal(tensors, meta)))


# -- the reference forward ----------------------------------------------------------------------
def _read(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any], str]:
    where = str(path)
    try:
        tensors, meta = read_safetensors(path, what="packed model")
    except (OSError, ValueError) as err:
        raise BinaryExportError(f"cannot read packed model {where}: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != "2":
        raise BinaryExportError(f"{where} is not an htaf packed model (format {FORMAT} 2)")
    verify(tensors, meta, where)
    if "plan" not in meta:
        raise BinaryExportError(f"{where} is a binary export without a plan: write it with "
                                "export_packed / htaf export --format packed")  # fmt: skip
    info = _meta_json(meta, "plan", where)
    if not isinstance(info, dict) or not isinstance(info.get("steps"), list):
        raise BinaryExportError(f"{where}: its metadata 'plan' has no list of steps")
    return tensors, info, where


def _need(tensors: dict[str, Tensor], where: str, key: str, shape: tuple[int, ...],
          dtype: torch.dtype) -> Tensor:  # fmt: skip
    value = tensors.get(key)
    if value is None:
        raise BinaryExportError(f"{where} lacks tensor {key!r}")
    if value.dtype != dtype or tuple(value.shape) != tuple(shape):
        raise BinaryExportError(
            f"{where}: tensor {key!r} is {value.dtype} {tuple(value.shape)}, the plan needs "
            f"{dtype} {tuple(shape)}"
        )
    return value


def _words(packed: np.ndarray) -> np.ndarray:
    """uint8 bits along the last axis -> uint64 words (zero-padded: xor of padding is 0)."""
    pad = -packed.shape[-1] % 8
    if pad:
        packed = np.concatenate([packed, np.zeros((*packed.shape[:-1], pad), np.uint8)], axis=-1)
    return np.ascontiguousarray(packed).view(np.uint64)


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """bool ``(..., C)`` -> uint8 ``(..., ceil(C/8))``, little-endian along the last axis."""
    return np.packbits(bits, axis=-1, bitorder="little")


class PackedModel:
    """The reference packed forward of a packed model file (see the module doc).

    ``model(x)``: float32 logits of model inputs ``x`` (already normalized, shape
    ``(N, *input_shape)``); ``model(x, preactivations=d)`` also fills ``d`` with each binary
    layer's integer pre-activations (int32, ``(N, C, H, W)`` or ``(N, C)``).
    ``model.predict(raw)``: class labels of raw inputs as the dataset gives them.

    Raises :class:`BinaryExportError` (a ``ValueError``) naming the tensor for a damaged file.
    """

    def __init__(self, path: str | Path):
        tensors, info, where = _read(path)
        self.path, self.info = Path(path), info
        self.steps: list[dict[str, Any]] = info["steps"]
        self.input_shape = tuple(int(d) for d in info.get("input_shape") or ())
        self.n_out = int(info.get("n_out") or plan_out(self.steps))
        self.normalize = info.get("normalize")
        self.tensors: dict[str, Tensor] = {}
        self.words: dict[str, np.ndarray] = {}
        for step in self.steps:
            self._load_step(step, tensors, where)

    def _load_step(self, step: dict[str, Any], tensors: dict[str, Tensor], where: str) -> None:
        p, op = step.get("path", "?"), step.get("op")
        if op in ("conv", "linear"):
            kernel = tuple(step["kernel"]) if op == "conv" else ()
            shape = (step["out"], step["in"], *kernel)
            if step["binary"]:
                bits = _need(tensors, where, f"{p}.weight_bits", packed_shape(shape), torch.uint8)
                self.words[p] = _words(bits.numpy()).reshape(step["out"], -1)
                self.tensors[f"{p}.weight"] = _unpack(bits, shape)
            else:
                self.tensors[f"{p}.weight"] = _need(tensors, where, f"{p}.weight", shape,
                                                    torch.float32)  # fmt: skip
            if step["bias"]:
                self.tensors[f"{p}.bias"] = _need(tensors, where, f"{p}.bias", (step["out"],),
                                                  torch.float32)  # fmt: skip
            if step["binary"] and step["scaled"]:
                self.tensors[f"{p}.alpha"] = _need(tensors, where, f"{p}.alpha", (step["out"],),
                                                   torch.float32)  # fmt: skip
            if "fold" in step:
                for key, dtype in (("flip", torch.int8), ("direction", torch.int8),
                                   ("threshold", torch.int32)):  # fmt: skip
                    self.tensors[f"{p}.{key}"] = _need(tensors, where, f"{p}.{key}",
                                                       (step["out"],), dtype)  # fmt: skip
        elif op == "bn":
            n = tensors.get(step["mean"])
            size = (n.numel(),) if isinstance(n, Tensor) else (0,)
            for key in (step["mean"], step["var"], f"{p}.weight", f"{p}.bias"):
                self.tensors[key] = _need(tensors, where, key, size, torch.float32)
        elif op not in ("maxpool", "flatten", "relu"):
            raise BinaryExportError(f"{where}: its plan has a step {op!r} this htaf cannot run")

    # -- running -------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, x: Tensor, preactivations: dict[str, Tensor] | None = None) -> Tensor:
        state: Any = x  # a float tensor, ("int", u, step) or ("bits", bool tensor)
        for step in self.steps:
            state = self._run(step, state, preactivations)
        return _as_float(state)

    def _run(self, step: dict[str, Any], state: Any,
             pre: dict[str, Tensor] | None) -> Any:  # fmt: skip
        op, p = step["op"], step["path"]
        if op in ("conv", "linear"):
            return self._quant(step, state, pre)
        if op == "maxpool":
            if isinstance(state, tuple) and state[0] == "int":
                u = state[1].to(torch.float64)  # exact for |u| < 2^53; -inf pads
                pooled = F.max_pool2d(u, step["kernel"], step["stride"], step["padding"],
                                      step["dilation"], step["ceil_mode"])  # fmt: skip
                return ("int", pooled.to(torch.int32), state[2])
            return F.max_pool2d(_as_float(state), step["kernel"], step["stride"],
                                step["padding"], step["dilation"], step["ceil_mode"])  # fmt: skip
        if op == "bn":
            if step.get("folded") and isinstance(state, tuple) and state[0] == "int":
                return ("bits", self._threshold(state[1], state[2]))
            t = self.tensors
            mean, var, weight, bias = (t[step["mean"]], t[step["var"]], t[f"{p}.weight"],
                                       t[f"{p}.bias"])  # fmt: skip
            return F.batch_norm(_as_float(state), mean, var, weight, bias, False, 0.0, step["eps"])
        if op == "flatten":
            if isinstance(state, tuple) and state[0] == "bits":
                return ("bits", state[1].flatten(1))
            return _as_float(state).flatten(1)
        return F.relu(_as_float(state))

    def _threshold(self, u: Tensor, p: str) -> Tensor:
        shape = (1, -1) + (1,) * (u.dim() - 2)
        d = self.tensors[f"{p}.direction"].to(torch.int64).view(shape)
        t = self.tensors[f"{p}.threshold"].to(torch.int64).view(shape)
        return d * (u.to(torch.int64) - t) >= 0

    def _quant(self, step: dict[str, Any], state: Any, pre: dict[str, Tensor] | None) -> Any:
        p = step["path"]
        if step["binary_input"]:
            bits = state[1] if isinstance(state, tuple) and state[0] == "bits" else None
            if bits is None:
                bits = _as_float(state) >= 0  # the hard sign, sign(0) = +1
            if step["binary"]:
                s = self._popcount_op(step, bits)
                if pre is not None:
                    pre[step["name"]] = s
                if "fold" in step:
                    flip = self.tensors[f"{p}.flip"].to(torch.int32)
                    return ("int", s * flip.view((1, -1) + (1,) * (s.dim() - 2)), p)
                return self._affine(step, s.to(torch.float32))
            x = bits.to(torch.float32) * 2 - 1
        else:
            x = _as_float(state)
        w, b = self.tensors[f"{p}.weight"], self.tensors.get(f"{p}.bias")
        if not step["binary"]:  # full precision: the hardened layer's own op
            return _float_op(step, x, w, b)
        return self._affine(step, _float_op(step, x, w, None))

    def _affine(self, step: dict[str, Any], y: Tensor) -> Tensor:
        """``alpha·y + b`` as the hardened layer computes it (scale, then bias)."""
        p = step["path"]
        tail = (1,) * (y.dim() - 2)
        if step["scaled"]:
            y = y * self.tensors[f"{p}.alpha"].view(-1, *tail)
        if step["bias"]:
            y = y + self.tensors[f"{p}.bias"].view(-1, *tail)
        return y

    def _popcount_op(self, step: dict[str, Any], bits: Tensor) -> Tensor:
        """Integer pre-activations ``K − 2·popcount(x xor w)`` of a binary layer."""
        w = self.words[step["path"]]  # (out, L) uint64
        if step["op"] == "linear":
            xw = _words(_pack_bits(bits.numpy()))  # (N, L)
            k = step["in"]
            return torch.from_numpy(k - 2 * _xor_popcount(xw, w))
        x = bits.numpy()  # (N, C, H, W) bool
        top, bottom, left, right = step["pads"]
        if any(step["pads"]):
            fill = step["pad_value"] > 0
            x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
        packed = _pack_bits(np.moveaxis(x, 1, -1))  # (N, H, W, Cb)
        (kh, kw), (sh, sw) = step["kernel"], step["stride"]
        n, h, wd, _ = packed.shape
        ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1
        cols = [packed[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
                for i in range(kh) for j in range(kw)]  # fmt: skip
        patches = _words(np.stack(cols, axis=3)).reshape(n * ho * wo, -1)
        k = step["in"] * kh * kw
        s = k - 2 * _xor_popcount(patches, w)
        return torch.from_numpy(
            np.ascontiguousarray(s.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2))
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class labels (int64) of raw inputs ``x`` (see :func:`load_input`)."""
        logits = self(to_model_input(x, self.input_shape, self.normalize, str(self.path)))
        return _labels(logits.numpy())


def _xor_popcount(x: np.ndarray, w: np.ndarray, rows: int = 4096) -> np.ndarray:
    """``popcount(x_i xor w_j)`` summed over the words: (N, L) and (O, L) -> (N, O) int32."""
    out = np.empty((x.shape[0], w.shape[0]), np.int32)
    step = max(1, min(rows, (1 << 22) // max(1, w.size)))
    for i in range(0, x.shape[0], step):
        chunk = np.bitwise_xor(x[i : i + step, None, :], w[None])
        out[i : i + step] = np.bitwise_count(chunk).sum(-1, dtype=np.int32)
    return out


def _unpack(bits: Tensor, shape: tuple[int, ...]) -> Tensor:
    from htaf.families.bnn.export import unpack_channels

    return unpack_channels(bits, shape)


def _float_op(step: dict[str, Any], x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    if step["op"] == "linear":
        return F.linear(x, w, b)
    top, bottom, left, right = step["pads"]
    if step["binary_input"] and step["pad_value"] != 0.0 and any(step["pads"]):
        x = F.pad(x, (left, right, top, bottom), value=step["pad_value"])
        return F.conv2d(x, w, b, step["stride"])
    if top == bottom and left == right:
        return F.conv2d(x, w, b, step["stride"], (top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, step["stride"])


def _as_float(state: Any) -> Tensor:
    if isinstance(state, tuple):
        raise BinaryExportError("a packed plan ends on integer or bit values, not logits")
    return state


def _labels(logits: np.ndarray) -> np.ndarray:
    if logits.shape[1] > 1:
        return logits.argmax(1).astype(np.int64)
    return (logits[:, 0] >= 0).astype(np.int64)


# -- inputs -------------------------------------------------------------------------------------
def load_input(path: str | Path) -> np.ndarray:
    """The array in a ``.npy`` file, or the single array of a ``.npz`` file (or its ``x`` /
    ``X`` / ``X_test``), read with ``allow_pickle=False``: loading runs no code."""
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except ValueError as err:  # object arrays, not numpy
        raise ValueError(f"{path} is not an array numpy loads without pickle: {err}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        keys = list(loaded.keys())
        pick = next((k for k in ("x", "X", "X_test") if k in keys), None)
        if pick is None and len(keys) == 1:
            pick = keys[0]
        if pick is None:
            raise ValueError(f"{path} holds arrays {keys}: name one x, X or X_test, or keep "
                             "only the input array")  # fmt: skip
        try:
            return loaded[pick]
        except ValueError as err:
            raise ValueError(f"{path}: array {pick!r} needs pickle to load: {err}") from None


def to_model_input(
    x: np.ndarray, input_shape: tuple[int, ...], normalize: dict[str, Any] | None, model: str
) -> Tensor:
    """Raw inputs ``(N, *input_shape)`` as the model sees them, as ``Dataset.float_batch``
    does: uint8 scaled by 1/255, then ``(x − mean)/std`` per channel where the file records a
    normalization. ``ValueError`` naming the shape or dtype that is wrong, or a non-finite
    value."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"the input must be a numpy array, not {type(x).__name__}")
    if x.dtype.name not in INPUT_DTYPES:
        raise ValueError(f"the input has dtype {x.dtype}; {model} takes "
                         f"{', '.join(INPUT_DTYPES)}")  # fmt: skip
    if (input_shape and tuple(x.shape[1:]) != tuple(input_shape)) or x.ndim < 2:
        raise ValueError(
            f"the input has shape {tuple(x.shape)}; {model} takes (N, "
            f"{', '.join(str(d) for d in input_shape)})"
        )
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
    if not bool(torch.isfinite(t).all()):
        bad = tuple(int(i) for i in torch.nonzero(~torch.isfinite(t))[0])
        raise ValueError(f"the input holds a non-finite value (at index {bad})")
    if normalize:
        shape = (1, -1) + (1,) * (t.dim() - 2)
        mean = torch.tensor(normalize["mean"], dtype=torch.float32).view(shape)
        std = torch.tensor(normalize["std"], dtype=torch.float32).view(shape)
        t = (t - mean) / std
    return t
