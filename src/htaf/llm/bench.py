"""Readers for the language-model benchmarks, in their publishers' formats, and their scores.

* **WikiText-2 raw** (perplexity): ``wikitext-2-raw/wiki.{train,valid,test}.raw`` from the
  official ``wikitext-2-raw-v1.zip``: UTF-8 text, articles headed ``" = Title = "``.
* **OpenBookQA** (accuracy): ``OpenBookQA-V1-Sep2018/Data/Main/{train,dev,test}.jsonl``, one
  JSON object a line: ``{"id", "question": {"stem", "choices": [{"text", "label"}, ...]},
  "answerKey"}``.
* **WinoGrande** (accuracy): ``winogrande_1.1/{train_xl,dev}.jsonl``, one JSON object a line:
  ``{"qID", "sentence" (with one "_"), "option1", "option2", "answer": "1" | "2"}``.

A multiple-choice item is scored by log-likelihood: the model picks the choice whose
continuation has the highest summed log-probability given the context. OpenBookQA: context the
question stem, continuation ``" " + choice``; WinoGrande (partial scoring, as in the
WinoGrande paper's language-model baseline): context the sentence up to the blank with the
option filled in, continuation the rest of the sentence. A file in the wrong format raises
:class:`BenchmarkFormatError` naming the file and the line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from htaf.llm.model import LLMError

#: Where each benchmark's file is looked for under ``--data-dir``.
FILES = {
    "wikitext2": "wikitext-2-raw/wiki.test.raw",
    "wikitext2_train": "wikitext-2-raw/wiki.train.raw",
    "openbookqa": "OpenBookQA-V1-Sep2018/Data/Main/test.jsonl",
    "winogrande": "winogrande_1.1/dev.jsonl",
}


class BenchmarkFormatError(LLMError):
    """A benchmark file that is not in its publisher's format (the message names file and line)."""


@dataclass(frozen=True)
class Choice:
    """One multiple-choice item: the context, the continuations, the index of the right one."""

    contexts: tuple[str, ...]  #: one context per choice (WinoGrande's differ)
    continuations: tuple[str, ...]
    answer: int


def read_wikitext(path: str | Path) -> list[str]:
    """The non-empty lines of a WikiText raw file, stripped. BenchmarkFormatError if it is not
    UTF-8 text (naming the line) or has no ``" = Title = "`` heading."""
    path = Path(path)
    lines, heading = [], False
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise BenchmarkFormatError(f"{path}, line {n}: not UTF-8 text ({err})") from None
            text = line.strip()
            if n <= 3 and text.startswith(("{", "[")):
                raise BenchmarkFormatError(
                    f"{path}, line {n}: JSON, not WikiText raw text (use wiki.*.raw)"
                )
            if text.startswith("= ") and text.endswith(" ="):
                heading = True
            if text:
                lines.append(text)
    if not heading:
        raise BenchmarkFormatError(
            f"{path}: no ' = Title = ' heading line: not a WikiText raw file"
        )
    return lines


def _json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise BenchmarkFormatError(f"{path}, line {n}: not a JSON object ({err})") from None
            if not isinstance(obj, dict):
                raise BenchmarkFormatError(f"{path}, line {n}: not a JSON object")
            rows.append((n, obj))
    if not rows:
        raise BenchmarkFormatError(f"{path}: no items")
    return rows


def _need(path: Path, n: int, obj: dict, key: str, kind: type) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise BenchmarkFormatError(
            f"{path}, line {n}: field {key!r} must be a {kind.__name__}, got {value!r}"
        )
    return value


def read_openbookqa(path: str | Path) -> list[Choice]:
    """OpenBookQA's official JSONL as :class:`Choice` items (module doc)."""
    path = Path(path)
    items = []
    for n, obj in _json_lines(path):
        q = _need(path, n, obj, "question", dict)
        stem = _need(path, n, q, "stem", str)
        choices = _need(path, n, q, "choices", list)
        if len(choices) < 2 or not all(isinstance(c, dict) for c in choices):
            raise BenchmarkFormatError(f"{path}, line {n}: 'choices' needs 2+ objects")
        labels = [_need(path, n, c, "label", str) for c in choices]
        texts = [_need(path, n, c, "text", str) for c in choices]
        key = _need(path, n, obj, "answerKey", str)
        if key not in labels:
            raise BenchmarkFormatError(
                f"{path}, line {n}: answerKey {key!r} is not one of the labels {labels}"
            )
        items.append(Choice((stem,) * len(texts), tuple(" " + t for t in texts), labels.index(key)))
    return items


def read_winogrande(path: str | Path) -> list[Choice]:
    """WinoGrande's official JSONL as :class:`Choice` items (module doc, partial scoring)."""
    path = Path(path)
    items = []
    for n, obj in _json_lines(path):
        sentence = _need(path, n, obj, "sentence", str)
        options = [_need(path, n, obj, k, str) for k in ("option1", "option2")]
        answer = str(obj.get("answer"))
        if answer not in ("1", "2"):
            raise BenchmarkFormatError(
                f"{path}, line {n}: field 'answer' must be '1' or '2', got {obj.get('answer')!r}"
            )
        if sentence.count("_") != 1:
            raise BenchmarkFormatError(f"{path}, line {n}: 'sentence' needs exactly one '_'")
        before, after = sentence.split("_")
        items.append(
            Choice(
                tuple(before + o for o in options),
                (" " + after.strip(),) * 2,
                int(answer) - 1,
            )
        )
    return items


def continuation_logprob(
    model: Any, tokenizer: Any, context: str, continuation: str, device: Any = "cpu"
) -> float:
    """``Σ log p(continuation tokens | context)`` under a causal LM: the context is encoded with
    the tokenizer's special tokens (beginning), the continuation without."""
    import torch

    ctx = tokenizer.encode(context)
    if ctx and ctx[-1] == tokenizer.eos_token_id and tokenizer.eos_token_id is not None:
        ctx = ctx[:-1]  # a byte tokenizer ends texts with eos: the continuation follows instead
    cont = tokenizer.encode(continuation, add_special_tokens=False)
    if not cont:
        return 0.0
    ids = torch.tensor([ctx + cont], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logp = torch.log_softmax(logits, -1)
    start = len(ctx) - 1
    target = ids[0, len(ctx) :]
    return float(logp[start : start + len(cont)].gather(1, target[:, None]).sum())


def choice_accuracy(
    model: Any, tokenizer: Any, items: Sequence[Choice], device: Any = "cpu"
) -> float:
    """The fraction of items whose highest-log-likelihood choice is the answer."""
    right = 0
    for item in items:
        scores = [
            continuation_logprob(model, tokenizer, c, t, device)
            for c, t in zip(item.contexts, item.continuations, strict=True)
        ]
        right += int(max(range(len(scores)), key=scores.__getitem__) == item.answer)
    return right / len(items) if items else float("nan")


def find_benchmarks(data_dir: str | Path | None) -> dict[str, Path]:
    """The benchmark files (:data:`FILES`) present under ``data_dir``."""
    if data_dir is None:
        return {}
    root = Path(data_dir)
    if not root.is_dir():
        raise LLMError(f"--data-dir {root} is not a folder")
    return {name: root / rel for name, rel in FILES.items() if (root / rel).is_file()}
