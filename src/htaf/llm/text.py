"""Text that ships with Python, and a byte-level tokenizer: the offline LLM study needs no
download.

**The corpus** (:func:`stdlib_sentences`): the documentation strings of the Python standard
library, read with :mod:`ast` (no module is imported, so nothing runs). The rule, fixed:

1. files: every ``*.py`` under ``sysconfig.get_paths()["stdlib"]`` in sorted path order,
   skipping any path with a ``test``, ``tests``, ``idle_test``, ``site-packages`` or
   ``dist-packages`` component;
2. docstrings: of each module, class and function (``ast.walk`` order); each is cut into
   paragraphs at blank lines, whitespace collapsed, and into sentences after ``.``, ``!`` or
   ``?`` followed by a capital letter;
3. a sentence is kept when it has 6 to 40 words, starts with a capital letter, ends with ``.``,
   is ASCII, contains none of ``{}[]<>=_`|\\#*@$%~^`` (code, not English) and at least 80% of
   its words are alphabetic once ``.,;:()'"`` are stripped;
4. duplicates are dropped (case-folded), the rest sorted.

:func:`split_sentences` then shuffles them with a seeded generator and cuts test and train
sets. The sentences depend on the Python version's standard library; the study records their
count and a SHA-256 of the list.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SKIP_PARTS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CODE_CHARS = frozenset("{}[]<>=_`|\\#*@$%~^")


def _keep(sentence: str) -> bool:
    words = sentence.split()
    if not (6 <= len(words) <= 40 and sentence.endswith(".") and sentence[0].isupper()):
        return False
    if not sentence.isascii() or _CODE_CHARS & set(sentence):
        return False
    alpha = sum(w.strip(".,;:()'\"").isalpha() for w in words)
    return alpha >= 0.8 * len(words)


def sentences_of(docstring: str) -> list[str]:
    """The sentences of one docstring that pass the module's rule (steps 2 and 3)."""
    out = []
    for para in re.split(r"\n\s*\n", docstring):
        text = " ".join(para.split())
        out += [s for s in _SENTENCE_END.split(text) if s and _keep(s)]
    return out


@functools.cache
def stdlib_sentences(max_files: int | None = None) -> tuple[str, ...]:
    """The deduplicated, sorted English sentences of the standard library's docstrings (module
    doc); ``max_files`` reads only the first files of the sorted list (for quick tests)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in sorted(root.rglob("*.py"))
             if not SKIP_PARTS & set(p.relative_to(root).parts)]  # fmt: skip
    seen: dict[str, str] = {}
    for path in files[:max_files]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue  # a file this Python cannot parse is not English text anyway
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                for s in sentences_of(doc) if doc else ():
                    seen.setdefault(s.casefold(), s)
    return tuple(sorted(seen.values()))


def split_sentences(
    sentences: Sequence[str], n_train: int, n_test: int, seed: int = 0
) -> tuple[list[str], list[str]]:
    """``(train, test)``: the sentences shuffled by ``numpy.random.default_rng(seed)``, the
    first ``n_test`` held out, the next ``n_train`` for training (ValueError if too few)."""
    import numpy as np

    if n_train < 1 or n_test < 2:
        raise ValueError(f"n_train must be >= 1 and n_test >= 2, got {n_train}, {n_test}")
    if n_train + n_test > len(sentences):
        raise ValueError(
            f"n_train + n_test = {n_train + n_test} but the corpus has only "
            f"{len(sentences)} sentences"
        )
    order = np.random.default_rng(seed).permutation(len(sentences))
    picked = [sentences[i] for i in order[: n_test + n_train]]
    return picked[n_test:], picked[:n_test]


def fingerprint(sentences: Sequence[str]) -> str:
    """SHA-256 of the sentences joined by newlines: which text a result was measured on."""
    return hashlib.sha256("\n".join(sentences).encode()).hexdigest()


class ByteTokenizer:
    """Bytes as tokens: ids 0-255 are the UTF-8 bytes, then ``pad`` (256), ``bos`` (257) and
    ``eos`` (258); ``len(tokenizer)`` is 259. It needs no file, so the tiny causal model of the
    study trains from scratch with nothing downloaded."""

    pad_token_id = 256
    bos_token_id = 257
    eos_token_id = 258

    def __len__(self) -> int:
        return 259

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [self.bos_token_id, *ids, self.eos_token_id] if add_special_tokens else ids

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """A Hugging Face tokenizer behind :class:`ByteTokenizer`'s small interface."""

    def __init__(self, tokenizer: Any):
        self.tok = tokenizer
        self.pad_token_id = tokenizer.pad_token_id
        if self.pad_token_id is None:  # Llama-style tokenizers have none: pad with eos
            self.pad_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.bos_token_id = tokenizer.bos_token_id
        self.eos_token_id = tokenizer.eos_token_id

    def __len__(self) -> int:
        return len(self.tok)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tok(text, add_special_tokens=add_special_tokens)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids))


def batch(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[Any, Any]:
    """``(ids, mask)`` int64 tensors, each text encoded with special tokens, cut to
    ``max_length`` and right-padded with the tokenizer's pad id."""
    import torch

    rows = [tokenizer.encode(t)[:max_length] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(tokenizer.pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask
