"""Backbones by name: the feature extractor in front of the concept layer.

Every backbone maps a float batch to features ``(n, out_features)``:

* ``small_cnn``: a small convolutional network trained from scratch (the offline default);
* ``hf:PATH``: a Hugging Face ``transformers`` vision encoder saved in the folder PATH
  (``config.json`` + ``model.safetensors``): ViT (the CLS token), ResNet (the pooled
  features), the vision tower of a CLIP or SigLIP checkpoint (its pooled output), and other
  ``AutoModel`` vision encoders (their pooled output, else mean over tokens / pixels). The
  images are resized to the model's ``image_size`` and, where the folder has a
  ``preprocessor_config.json``, re-normalized with its ``image_mean`` / ``image_std``;
* ``timm:NAME``, ``torchvision:NAME``, ``open_clip:NAME``: those libraries' image encoders,
  built without weights (give ``model.weights``); they need torchvision installed;
* ``identity``: the input, flattened (tables; and the features of ``features:PATH``);
* ``features:PATH``: precomputed backbone outputs, one row per sample. The file is read by the
  family's data hook (``htaf.families.icbm.prepare``), which puts each split's rows where its
  images were; the model itself is then ``identity`` on those features. See
  :func:`load_features` for the file format.

Nothing is downloaded. Weights come from local files, as safetensors only (no pickle):
``model.weights = "FILE.safetensors"`` loads a state dict into the backbone (keys as the
backbone names them, or under ``backbone.`` as in an htaf run's ``model.safetensors``), and a
file that does not match raises ``ConfigError`` naming the file and the first bad key.

Freezing (``model.freeze``): ``none`` trains everything, ``all`` freezes the backbone (and
keeps its BatchNorm statistics), ``partial`` trains only its last ``model.unfrozen_blocks``
blocks and what follows them; ``auto`` is ``none`` for ``small_cnn`` and ``all`` for
pretrained encoders.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from htaf.config import ConfigError

__all__ = [
    "KINDS",
    "SmallCNN",
    "build_backbone",
    "check_name",
    "freeze",
    "load_features",
    "load_weights",
    "parse_name",
]

#: Backbone names: plain ones, and prefixes that take a path or a model name.
PLAIN = ("small_cnn", "identity")
PREFIXES = ("hf", "timm", "torchvision", "open_clip", "features")
KINDS = PLAIN + tuple(f"{p}:" for p in PREFIXES)
FEATURE_SPLITS = ("train", "val", "test")


def parse_name(name: str) -> tuple[str, str]:
    """``"hf:/models/vit"`` -> ``("hf", "/models/vit")``; ``"small_cnn"`` -> ``("small_cnn", "")``.

    Raises ``ConfigError`` naming ``model.backbone`` for an unknown name.
    """
    kind, sep, arg = name.partition(":")
    if (not sep and kind in PLAIN) or (sep and kind in PREFIXES and arg.strip()):
        return kind, arg.strip()
    raise ConfigError(
        f"unknown backbone (option 'model.backbone') {name!r}; available: small_cnn, identity, "
        "hf:FOLDER, timm:NAME, torchvision:NAME, open_clip:NAME, features:FILE"
    )


def check_name(name: str) -> None:
    parse_name(name)


# -- small CNN ----------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """``[conv3x3 -> BatchNorm -> ReLU] x len(widths)``, then global average and max pooling.

    The last ``log2(size / 4)`` blocks halve the maps (stride 2), so they end at 4x4 and any
    blocks before those see the full image: 32x32 RGB with widths (16, 32, 64) gives maps of
    16, 8, 4 pixels; with (8, 16, 32, 64), 32, 16, 8, 4. The global pools make the features
    independent of where an object lies (max: is it anywhere; average: how much of it);
    ``out_features = 2 * widths[-1]``. ReLU is applied functionally, so the engine's activation
    statistics see only the concepts.
    """

    def __init__(self, in_channels: int, size: int, widths: Sequence[int] = (8, 16, 32, 64)):
        super().__init__()
        halvings = max(0, int(math.log2(max(size, 1) / 4)))
        first_strided = max(0, len(widths) - halvings)
        self.blocks = nn.ModuleList()
        c = in_channels
        for i, w in enumerate(widths):
            self.blocks.append(_ConvBlock(c, int(w), 2 if i >= first_strided else 1))
            c = int(w)
        self.out_features = 2 * c

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class Identity(nn.Module):
    """The input, flattened: ``out_features = prod(input_shape)``."""

    def __init__(self, n_features: int):
        super().__init__()
        self.out_features = n_features

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


# -- Hugging Face transformers --------------------------------------------------------------------
#: Composite checkpoints whose vision tower is the encoder (transformers class names).
VISION_TOWERS = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel"}
#: Encoders whose feature is the CLS token of the last hidden state (after its layer norm).
CLS_MODELS = ("vit", "deit")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[Any]:
    """transformers, imported, with its progress bars and load reports off for the block."""
    try:
        import transformers
    except ImportError as err:
        raise ConfigError(
            f"backbone hf:... needs transformers (pip install 'htaf[hf]'): {err}"
        ) from None
    log = transformers.utils.logging
    level = log.get_verbosity()
    log.set_verbosity_error()
    log.disable_progress_bar()
    try:
        yield transformers
    finally:
        log.set_verbosity(level)
        log.enable_progress_bar()


class HFBackbone(nn.Module):
    """A ``transformers`` vision encoder loaded from a local folder (see the module doc)."""

    def __init__(self, folder: str, spec_normalize: Mapping[str, Sequence[float]] | None):
        super().__init__()
        path = Path(folder).expanduser()
        where = f"backbone hf:{folder}"
        if not (path / "config.json").is_file():
            raise ConfigError(f"{where}: no config.json in {path} (a saved transformers model)")
        if not (path / "model.safetensors").is_file() and not any(path.glob("model*.safetensors*")):
            raise ConfigError(f"{where}: no model.safetensors in {path} (safetensors only)")
        from htaf.io import read_safetensors_metadata

        for weights in sorted(path.glob("model*.safetensors")):
            try:  # the header only: a damaged file is named before transformers reads it
                read_safetensors_metadata(weights, what="weights file")
            except ValueError as err:
                raise ConfigError(f"{where}: {err}") from None
        with _quiet_transformers() as tf:
            try:
                config = tf.AutoConfig.from_pretrained(path, local_files_only=True)
            except (OSError, ValueError, KeyError) as err:
                raise ConfigError(f"{where}: cannot read {path / 'config.json'}: {err}") from None
            self.model_type = str(config.model_type)
            cls = getattr(tf, VISION_TOWERS.get(self.model_type, "AutoModel"))
            kwargs = {"add_pooling_layer": False} if self.model_type in CLS_MODELS else {}
            try:
                model, info = cls.from_pretrained(
                    path, local_files_only=True, use_safetensors=True, output_loading_info=True,
                    **kwargs,
                )  # fmt: skip
            except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
                raise ConfigError(
                    f"{where}: the weights in {path} do not load into its config: {err}"
                ) from None
        bad = sorted(info.get("missing_keys") or []) + sorted(info.get("mismatched_keys") or [])
        if bad:
            raise ConfigError(
                f"{where}: the weights in {path} do not match the model its config.json "
                f"describes: no weights for {bad[0]!r}"
                + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
            )
        self.model = model.float().eval()
        vision = getattr(config, "vision_config", None) or config
        self.image_size = _image_size(getattr(vision, "image_size", None))
        self.channels = int(getattr(vision, "num_channels", 3) or 3)
        self._set_normalization(path, spec_normalize)
        self.out_features = self._probe()

    def _set_normalization(self, path: Path, data: Mapping[str, Sequence[float]] | None) -> None:
        """Buffers that undo the dataset's normalisation and apply the model's own."""
        model = None
        pre = path / "preprocessor_config.json"
        if pre.is_file():
            with contextlib.suppress(ValueError, OSError):
                spec = json.loads(pre.read_text())
                if "image_mean" in spec and "image_std" in spec:
                    model = {"mean": spec["image_mean"], "std": spec["image_std"]}
        self.renormalize = model is not None
        data = data or {"mean": [0.0], "std": [1.0]}
        model = model or {"mean": [0.0], "std": [1.0]}
        for key, stats in (("data", data), ("model", model)):
            for stat in ("mean", "std"):
                t = torch.tensor([float(v) for v in stats[stat]]).view(1, -1, 1, 1)
                self.register_buffer(f"{key}_{stat}", t, persistent=False)

    def _pixels(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"backbone hf: takes images (n, C, H, W), got shape {tuple(x.shape)}")
        if self.renormalize:  # the dataset's normalisation out, the model's in
            x = x * self.data_std + self.data_mean
            x = (x - self.model_mean) / self.model_std
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if self.image_size is not None and tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(pixel_values=self._pixels(x))
        if self.model_type in CLS_MODELS:
            return out.last_hidden_state[:, 0]
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        h = out.last_hidden_state
        return h.mean(dim=(2, 3)) if h.dim() == 4 else h.mean(dim=1)

    def _probe(self) -> int:
        size = self.image_size or (32, 32)
        with torch.no_grad():
            return int(self(torch.zeros(1, self.channels, *size)).shape[1])


def _image_size(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    return None


# -- timm, torchvision, open_clip (need torchvision) ----------------------------------------------
def _import(module: str, name: str) -> Any:
    """``import module`` or a ConfigError saying why the backbone cannot be built here."""
    import importlib

    try:
        return importlib.import_module(module)
    except (ImportError, RuntimeError, OSError) as err:  # torchvision fails with RuntimeError
        raise ConfigError(
            f"backbone {name!r} needs {module}, which cannot be imported here: {err}"
        ) from None


class LibraryBackbone(nn.Module):
    """An encoder module from timm / torchvision / open_clip, with its output size."""

    def __init__(self, encoder: nn.Module, out_features: int):
        super().__init__()
        self.encoder = encoder
        self.out_features = int(out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x).flatten(1)


def _library_backbone(kind: str, arg: str) -> LibraryBackbone:
    name = f"{kind}:{arg}"
    try:
        if kind == "timm":
            timm = _import("timm", name)
            enc = timm.create_model(arg, pretrained=False, num_classes=0)
            return LibraryBackbone(enc, enc.num_features)
        if kind == "open_clip":
            oc = _import("open_clip", name)
            visual = oc.create_model(arg, pretrained=None).visual
            return LibraryBackbone(visual, visual.output_dim)
        tv = _import("torchvision.models", name)
        enc = tv.get_model(arg, weights=None)
    except (RuntimeError, ValueError, KeyError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"backbone {name!r}: {err}") from None
    last = [(n, m) for n, m in enc.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ConfigError(f"backbone {name!r}: no final Linear classifier to remove")
    path, linear = last[-1]
    parent = enc.get_submodule(path.rpartition(".")[0]) if "." in path else enc
    setattr(parent, path.rpartition(".")[2], nn.Identity())
    return LibraryBackbone(enc, linear.in_features)


# -- building, weights, freezing ----------------------------------------------------------------
def build_backbone(
    name: str,
    input_shape: Sequence[int],
    *,
    normalize: Mapping[str, Sequence[float]] | None = None,
    cnn_widths: Sequence[int] = (8, 16, 32, 64),
) -> nn.Module:
    """The backbone ``name`` for inputs of ``input_shape`` (one sample's shape)."""
    kind, arg = parse_name(name)
    if kind in ("identity", "features"):  # features: the data hook already swapped the inputs
        return Identity(math.prod(input_shape))
    if len(input_shape) != 3:
        raise ConfigError(
            f"backbone {name!r} takes images (C, H, W), but the data's samples have shape "
            f"{tuple(input_shape)}; use model.backbone = 'identity' for tables"
        )
    if kind == "small_cnn":
        return SmallCNN(int(input_shape[0]), min(int(s) for s in input_shape[1:]), cnn_widths)
    if kind == "hf":
        return HFBackbone(arg, normalize)
    return _library_backbone(kind, arg)


def load_weights(module: nn.Module, path: str | Path, backbone: str) -> None:
    """Load a safetensors state dict into ``module``; ``ConfigError`` if it does not match."""
    from htaf.io import read_safetensors

    path = Path(path).expanduser()
    where = f"weights file (option 'model.weights') {path}"
    if path.suffix != ".safetensors":
        raise ConfigError(f"{where}: only .safetensors files are read (no pickle)")
    try:
        state, _ = read_safetensors(path, what="weights file")
    except (OSError, ValueError) as err:
        raise ConfigError(f"{where}: cannot be read: {err}") from None
    if not any(k in module.state_dict() for k in state):  # an htaf run's model.safetensors
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problem = (
        f"no tensor for {missing[0]!r}" if missing else
        f"an unexpected tensor {extra[0]!r}" if extra else
        f"{shapes[0]!r} has shape {tuple(state[shapes[0]].shape)}, the backbone needs "
        f"{tuple(own[shapes[0]].shape)}" if shapes else None
    )  # fmt: skip
    if problem:
        n = len(missing) + len(extra) + len(shapes)
        more = f" ({n - 1} more problems)" if n > 1 else ""
        raise ConfigError(f"{where} does not match backbone {backbone!r}: {problem}{more}")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def blocks(module: nn.Module) -> list[nn.Module]:
    """The backbone's blocks in order: its largest ``ModuleList`` (transformer layers, ResNet
    stages, CNN blocks), else its top-level children that hold parameters."""
    lists = [m for m in module.modules() if isinstance(m, nn.ModuleList) and len(m)]
    if lists:
        return list(max(lists, key=lambda m: sum(p.numel() for p in m.parameters())))
    return [m for m in module.children() if any(True for _ in m.parameters())]


def freeze(backbone: nn.Module, how: str, unfrozen_blocks: int = 1) -> None:
    """Freeze ``all`` of the backbone, ``none`` of it, or all but its last blocks (``partial``:
    the last ``unfrozen_blocks`` blocks and every parameter registered after them)."""
    params = list(backbone.parameters())
    backbone.frozen = how == "all"
    if how == "none":
        return
    if how == "all":
        for p in params:
            p.requires_grad_(False)
        return
    found = blocks(backbone)
    if not 1 <= unfrozen_blocks <= len(found):
        raise ConfigError(
            f"option 'model.unfrozen_blocks' must be between 1 and {len(found)} (the backbone's "
            f"blocks), got {unfrozen_blocks}"
        )
    first = next(iter(found[-unfrozen_blocks].parameters()))
    start = next(i for i, p in enumerate(params) if p is first)
    for i, p in enumerate(params):
        p.requires_grad_(i >= start)


# -- precomputed features -------------------------------------------------------------------------
def load_features(path: str | Path, rows: Mapping[str, int]) -> dict[str, np.ndarray]:
    """A features file: float arrays ``train``, ``val``, ``test`` of shape ``(n_split, D)``,
    each row the backbone output of that split's sample in the dataset's order (npz, or
    safetensors). ``rows``: the dataset's split sizes, which the file must match.
    """
    path = Path(path).expanduser()
    where = f"features file {path}"
    try:
        if path.suffix == ".safetensors":
            from htaf.io import read_safetensors

            arrays, _ = read_safetensors(path, framework="numpy", what="features file")
        else:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"{where} cannot be read as .npz or .safetensors: {err}") from None
    out: dict[str, np.ndarray] = {}
    width = None
    for split in FEATURE_SPLITS:
        if split not in arrays:
            raise ConfigError(f"{where} has no array {split!r} (it needs train, val and test)")
        a = np.asarray(arrays[split])
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
            raise ConfigError(f"{where}: {split!r} must be a 2-D numeric array, got {a.shape}")
        if len(a) != rows[split]:
            raise ConfigError(
                f"{where}: {split!r} has {len(a)} rows, but the dataset's {split} split has "
                f"{rows[split]} samples"
            )
        if width is not None and a.shape[1] != width:
            raise ConfigError(f"{where}: {split!r} has {a.shape[1]} columns, train has {width}")
        width = a.shape[1]
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ConfigError(f"{where}: {split!r} holds NaN or infinite values")
        out[split] = a
    return out
