"""Export a binary network as what it is at inference: 1-bit weights, not latent floats.

    save_binary(model, "model.binary.safetensors")        # bits + per-channel scales
    model = load_binary(build_the_same_model(), "model.binary.safetensors")   # hardened, eval

A binary layer's latent float weights W become ``LAYER.weight_bits``: the signs
``1{W >= 0}`` (``sign(0) = +1``, as the hard forward) packed 8 to a byte along the input
channels, little-endian (bit ``i`` of byte ``j`` holds input channel ``8j + i``; the bits past
the last channel are 0): uint8 of shape ``(out, kh, kw, ceil(in/8))`` for a convolution and
``(out, ceil(in/8))`` for a linear layer, the layout a popcount kernel reads (version 2;
version 1 packed the flattened kernel and still loads). Its scale, where it has one
(XNOR-Net's mean |W| or a learned one), is ``LAYER.alpha``, float32 per output channel. Every
other tensor (full-precision layers, BatchNorm, biases) is kept as it is. The file is
safetensors: loading runs no code. Its metadata carries the htaf version, the SHA-256 of every
tensor and of the whole payload (``sha256``): loading checks them and names the tensor that
does not match.
:func:`htaf.families.bnn.packed.export_packed` writes the same format with the inference plan
and the folded BatchNorm thresholds added.

:func:`load_binary` fills a freshly built model of the same architecture: latent weights ±1,
scales fixed, every estimator hardened. Its outputs equal the original model's hard outputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from htaf.estimators import harden
from htaf.io import atomic_write_bytes, read_safetensors, to_plain

__all__ = [
    "FORMAT",
    "BinaryExportError",
    "export_binary",
    "load_binary",
    "pack_channels",
    "pack_signs",
    "save_binary",
    "unpack_channels",
    "unpack_signs",
]

FORMAT = "htaf-bnn-binary"
VERSION = 2
#: Versions :func:`load_binary` reads (1: the flattened kernel packed, no checksums).
READABLE = ("1", "2")
#: Tensors an export adds beside a binary layer's bits (the packed forward's folded BatchNorm).
FOLD_TENSORS = ("threshold", "direction", "flip")
_BIT_VALUES = 2 ** torch.arange(8, dtype=torch.int32)


class BinaryExportError(ValueError):
    """A file that is not an htaf binary export, or one for another architecture."""


def pack_signs(w: Tensor) -> Tensor:
    """``1{w >= 0}`` of every element, flattened and packed little-endian into uint8."""
    bits = (w.detach().reshape(-1) >= 0).to(torch.int32).cpu()
    bits = torch.cat([bits, bits.new_zeros(-len(bits) % 8)]).view(-1, 8)
    return (bits * _BIT_VALUES).sum(1).to(torch.uint8)


def unpack_signs(packed: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The ±1 float32 tensor of ``shape`` that :func:`pack_signs` packed."""
    n = 1
    for d in shape:
        n *= d
    if packed.dtype != torch.uint8 or packed.numel() != -(-n // 8):
        raise BinaryExportError(f"{packed.numel()} packed bytes cannot hold a {shape} kernel")
    bits = (packed.to(torch.int32).view(-1, 1) & _BIT_VALUES).ne(0).view(-1)[:n]
    return (bits.to(torch.float32) * 2 - 1).view(shape)


def pack_channels(w: Tensor) -> Tensor:
    """``1{w >= 0}`` packed little-endian along axis 1 (input channels), which moves last:
    ``(out, in, kh, kw) -> (out, kh, kw, ceil(in/8))``, ``(out, in) -> (out, ceil(in/8))``;
    bits past the last channel are 0."""
    bits = (w.detach().cpu() >= 0).to(torch.int32).movedim(1, -1)
    pad = -bits.shape[-1] % 8
    if pad:
        bits = torch.cat([bits, bits.new_zeros(*bits.shape[:-1], pad)], -1)
    bits = bits.reshape(*bits.shape[:-1], -1, 8)
    return (bits * _BIT_VALUES).sum(-1).to(torch.uint8).contiguous()


def packed_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape :func:`pack_channels` gives a kernel of ``shape``."""
    return (shape[0], *shape[2:], -(-shape[1] // 8))


def unpack_channels(packed: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The ±1 float32 tensor of ``shape`` that :func:`pack_channels` packed."""
    if packed.dtype != torch.uint8 or tuple(packed.shape) != packed_shape(shape):
        raise BinaryExportError(
            f"packed bits of shape {tuple(packed.shape)} cannot hold a {shape} kernel"
        )
    bits = (packed.to(torch.int32).unsqueeze(-1) & _BIT_VALUES).ne(0)
    bits = bits.reshape(*packed.shape[:-1], -1)[..., : shape[1]]
    return (bits.to(torch.float32) * 2 - 1).movedim(-1, 1).contiguous()


def _binary_paths(model: nn.Module) -> dict[str, Any]:
    from htaf.families.bnn.layers import QuantLayer

    return {p: m for p, m in model.named_modules() if isinstance(m, QuantLayer) and m.binary}


def export_binary(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors and metadata of the exact-binary model (see the module doc)."""
    binary = _binary_paths(model)
    skip = {f"{p}.{k}" for p in binary for k in ("weight", "flip_reference", "scale",
                                                 "fixed_scale")}  # fmt: skip
    tensors: dict[str, Tensor] = {}
    extra: dict[str, Any] = {}
    for key, value in model.state_dict().items():
        if key in skip:
            continue
        if isinstance(value, Tensor):
            tensors[key] = value.detach().cpu().contiguous().clone()
        else:  # estimator hyperparameters and modes
            extra[key] = to_plain(value)
    shapes = {}
    for path, layer in binary.items():
        tensors[f"{path}.weight_bits"] = pack_channels(layer.weight)
        shapes[path] = list(layer.weight.shape)
        scale = layer.weight_scale()
        if scale is not None:
            tensors[f"{path}.alpha"] = scale.detach().float().cpu().contiguous().clone()
    meta = {
        "format": FORMAT,
        "version": str(VERSION),
        "arch": str(getattr(model, "arch", type(model).__name__)),
        "binary_kernels": json.dumps(shapes),
        "extra_state": json.dumps(extra, sort_keys=True),
        "htaf_version": _htaf_version(),
    }
    return tensors, meta


def _htaf_version() -> str:
    from htaf import __version__

    return __version__


def tensor_digest(value: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes."""
    h = hashlib.sha256(f"{value.dtype}|{tuple(value.shape)}|".encode())
    h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def seal(tensors: dict[str, Tensor], meta: dict[str, str]) -> dict[str, str]:
    """``meta`` with ``tensor_sha256`` (one digest per tensor) and ``sha256``, the digest of
    every tensor digest and every other metadata entry: the payload's checksum."""
    meta = {k: v for k, v in meta.items() if k not in ("sha256", "tensor_sha256")}
    meta["tensor_sha256"] = json.dumps({k: tensor_digest(v) for k, v in sorted(tensors.items())})
    meta["sha256"] = _payload_digest(meta)
    return meta


def _payload_digest(meta: dict[str, str]) -> str:
    body = json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def verify(tensors: dict[str, Any], meta: dict[str, str], where: str) -> None:
    """Raise :class:`BinaryExportError` naming the tensor (or the metadata) whose checksum
    fails; a version-1 export carries none."""
    if meta.get("version") == "1":
        return
    digests = _meta_json(meta, "tensor_sha256", where)
    if not isinstance(digests, dict) or "sha256" not in meta:
        raise BinaryExportError(f"{where}: its metadata has no checksums ('sha256')")
    for name in sorted(set(digests) | set(tensors)):
        if name not in tensors:
            raise BinaryExportError(f"{where} lacks tensor {name!r} (its checksum is listed)")
        if name not in digests:
            raise BinaryExportError(f"{where}: tensor {name!r} has no checksum (not exported)")
        if not isinstance(tensors[name], Tensor) or tensor_digest(tensors[name]) != digests[name]:
            raise BinaryExportError(
                f"{where}: tensor {name!r} fails its SHA-256 checksum (the file is damaged)"
            )
    if _payload_digest(meta) != meta["sha256"]:
        raise BinaryExportError(
            f"{where}: the metadata fails the payload SHA-256 checksum (the file is damaged)"
        )


def save_binary(model: nn.Module, path: str | Path) -> Path:
    """Write :func:`export_binary` as a safetensors file (atomically)."""
    from safetensors.torch import save

    tensors, meta = export_binary(model)
    return atomic_write_bytes(path, save(tensors, metadata=seal(tensors, meta)))


def load_binary(model: nn.Module, source: str | Path | tuple[dict[str, Tensor], dict[str, str]]):
    """Fill ``model`` (a fresh build of the exported architecture) from an export, harden it
    and return it in eval mode (as ``torch.load``-style loaders do; ``.train()`` to fine-tune).

    ``source``: a file written by :func:`save_binary`, or :func:`export_binary`'s pair. Raises
    :class:`BinaryExportError` for another format or a model that does not match.
    """
    if isinstance(source, tuple):
        tensors, meta = source
        where = "the export"
    else:
        where = str(source)
        try:
            tensors, meta = read_safetensors(source, what="binary export")
        except (OSError, ValueError) as err:  # missing file, not safetensors
            raise BinaryExportError(f"cannot read binary export {where}: {err}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or (meta.get("version") not in READABLE)
    ):
        raise BinaryExportError(
            f"{where} is not an htaf binary export (versions {', '.join(READABLE)})"
        )
    if not isinstance(source, tuple):
        verify(tensors, meta, where)
    version = meta["version"]
    shapes = _meta_json(meta, "binary_kernels", where)
    extra = _meta_json(meta, "extra_state", where, default={})
    if not isinstance(shapes, dict) or not isinstance(extra, dict):
        name = "binary_kernels" if not isinstance(shapes, dict) else "extra_state"
        raise BinaryExportError(f"{where}: its metadata {name!r} is not a JSON object")
    binary = _binary_paths(model)
    if sorted(shapes) != sorted(binary):
        raise BinaryExportError(
            f"{where} holds binary kernels {sorted(shapes)}; the model has {sorted(binary)}"
        )
    tensors = dict(tensors)
    # every check comes before the model is touched: a bad export leaves it as it was
    for path, layer in binary.items():
        _check_binary_layer(where, path, layer, shapes[path], tensors, version)
    own = model.state_dict()
    rest = {k: v for k, v in tensors.items() if not _export_owned(k, binary)}
    for key, value in rest.items():
        want = own.get(key)
        if not isinstance(want, Tensor) or _binary_owned(key, binary):
            raise BinaryExportError(f"{where}: tensor {key!r} is not in this model")
        _check_tensor(where, key, value, tuple(want.shape), want.dtype)
    missing = sorted(
        k for k, v in own.items()
        if isinstance(v, Tensor) and k not in rest and not _binary_owned(k, binary)
    )  # fmt: skip
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BinaryExportError(f"{where} lacks tensor {missing[0]!r}{more}")
    unknown = sorted(k for k in extra if k not in own or isinstance(own[k], Tensor))
    if unknown:
        raise BinaryExportError(f"{where}: metadata 'extra_state' names {unknown[0]!r}, which "
                                "is no non-tensor state of this model")  # fmt: skip
    with torch.no_grad():
        for path, layer in binary.items():
            want = tuple(layer.weight.shape)
            bits = tensors[f"{path}.weight_bits"]
            signs = unpack_signs(bits, want) if version == "1" else unpack_channels(bits, want)
            layer.weight.copy_(signs)
            layer.flip_reference.copy_(layer._signs())
            alpha = tensors.get(f"{path}.alpha")
            if alpha is not None:
                layer.fix_scale(alpha.to(layer.weight.device, torch.float32))
    state: dict[str, Any] = {**rest, **extra}
    keep = {k: v for k, v in model.state_dict().items() if k not in state}
    try:
        model.load_state_dict({**keep, **state})
    except (RuntimeError, TypeError, ValueError, KeyError) as err:  # e.g. bad extra state
        raise BinaryExportError(f"{where} does not fit this model: {err}") from None
    harden(model)
    return model.eval()


def _meta_json(meta: dict[str, Any], key: str, where: str, default: Any = None) -> Any:
    if key not in meta:
        if default is not None:
            return default
        raise BinaryExportError(f"{where}: its metadata has no {key!r} entry")
    try:
        return json.loads(meta[key])
    except (json.JSONDecodeError, TypeError) as err:
        raise BinaryExportError(f"{where}: its metadata {key!r} is not JSON ({err})") from None


def _check_tensor(
    where: str, key: str, value: Any, shape: tuple[int, ...], dtype: torch.dtype
) -> None:
    if not isinstance(value, Tensor):
        raise BinaryExportError(f"{where}: {key!r} is not a tensor")
    if value.dtype != dtype:
        raise BinaryExportError(
            f"{where}: tensor {key!r} is {value.dtype}, the model needs {dtype}"
        )
    if tuple(value.shape) != shape:
        raise BinaryExportError(
            f"{where}: tensor {key!r} has shape {tuple(value.shape)}, the model needs {shape}"
        )


def _check_binary_layer(
    where: str, path: str, layer: Any, shape: Any, tensors: dict[str, Any], version: str
) -> None:
    want = tuple(layer.weight.shape)
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        raise BinaryExportError(
            f"{where}: metadata 'binary_kernels' gives {path!r} the shape {shape!r}, "
            "not a list of integers"
        )
    if tuple(shape) != want:
        raise BinaryExportError(f"{where}: {path} is {shape}, the model's {want}")
    bits = f"{path}.weight_bits"
    if bits not in tensors:
        raise BinaryExportError(f"{where} lacks tensor {bits!r} (the packed signs of {path})")
    n = 1
    for d in want:
        n *= d
    packed = (-(-n // 8),) if version == "1" else packed_shape(want)
    _check_tensor(where, bits, tensors[bits], packed, torch.uint8)
    alpha = f"{path}.alpha"
    scaled = layer.scaling != "none"
    if scaled and alpha not in tensors:
        raise BinaryExportError(f"{where} lacks tensor {alpha!r} (the scales of {path})")
    if not scaled and alpha in tensors:
        raise BinaryExportError(f"{where}: tensor {alpha!r} is not in this model ({path} is "
                                "unscaled)")  # fmt: skip
    if scaled:
        _check_tensor(where, alpha, tensors[alpha], (want[0],), torch.float32)


def _export_owned(key: str, binary: dict[str, Any]) -> bool:
    path, _, name = key.rpartition(".")
    return path in binary and name in ("weight_bits", "alpha", *FOLD_TENSORS)


def _binary_owned(key: str, binary: dict[str, Any]) -> bool:
    path, _, name = key.rpartition(".")
    return path in binary and name in ("weight", "flip_reference", "scale", "fixed_scale")
