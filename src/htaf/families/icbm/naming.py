"""Naming concepts with a language model: the paper's Group A / Group B prompt per concept.

Group A holds the classes whose images turn the concept on (class proportion >= 0.5), Group B
the classes whose images leave it off. The model is asked what visual property the images of
Group A share and those of Group B lack.

    prompts = naming_prompts(props, class_names)               # one per concept
    names = ask_llm(prompts, url="http://127.0.0.1:8000", model="llama3")

:func:`ask_llm` sends each prompt to an OpenAI-compatible chat endpoint (``POST
.../v1/chat/completions``) with the standard library only. The API key comes from the
environment (``HTAF_LLM_API_KEY``, else ``OPENAI_API_KEY``); it is sent in the
``Authorization`` header and nowhere else: never logged, printed or written. An endpoint that
cannot be reached or that answers something other than a chat completion raises
:class:`LLMError` (a ``ValueError``) naming the endpoint.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["API_KEY_VARIABLES", "LLMError", "ask_llm", "endpoint", "naming_prompts"]

#: Environment variables the API key is read from, in order.
API_KEY_VARIABLES = ("HTAF_LLM_API_KEY", "OPENAI_API_KEY")
#: Classes listed per group at most (CUB has 200); the rest are counted.
MAX_LISTED = 60
SYSTEM = "You name visual concepts. Answer with a short noun phrase only."
TEMPLATE = (
    "A neuron in an image classifier is active for images of the classes in Group A and "
    "inactive for images of the classes in Group B.\n"
    "Group A: {group_a}\n"
    "Group B: {group_b}\n"
    "What visual concept do the images of Group A share that the images of Group B lack? "
    "Answer with a short name (at most five words)."
)


class LLMError(ValueError):
    """The language-model endpoint could not be reached or gave no usable answer."""


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f", and {more} more" if more > 0 else "") if names else "(none)"


def naming_prompts(props: np.ndarray, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One record per concept: ``node``, ``group_a``, ``group_b`` (class names) and ``prompt``.

    ``props``: class proportions ``(C, K)``; a class without images (NaN) is in neither group.
    A concept with an empty group (dead, or on for every class) gets ``prompt = None``: there
    is nothing to contrast.
    """
    records = []
    for k in range(props.shape[1]):
        p = props[:, k]
        a = [class_names[c] for c in range(len(p)) if not np.isnan(p[c]) and p[c] >= 0.5]
        b = [class_names[c] for c in range(len(p)) if not np.isnan(p[c]) and p[c] < 0.5]
        prompt = TEMPLATE.format(group_a=_listing(a), group_b=_listing(b)) if a and b else None
        records.append({"node": k, "group_a": a, "group_b": b, "prompt": prompt})
    return records


def endpoint(url: str) -> str:
    """The chat-completions address for ``url``: a base (``http://host:8000``), a ``.../v1``
    base, or the full ``.../chat/completions`` address."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise LLMError(f"LLM endpoint {url!r} must be an http:// or https:// address")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def api_key() -> str | None:
    """The API key from the environment (see ``API_KEY_VARIABLES``), or None."""
    for var in API_KEY_VARIABLES:
        value = os.environ.get(var)
        if value:
            return value
    return None


def _ask(address: str, model: str, prompt: str, key: str | None, timeout: float) -> str:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": 32,
    }
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        address, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        raise LLMError(f"LLM endpoint {address} answered HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise LLMError(f"LLM endpoint {address} cannot be reached: {reason}") from None
    try:
        answer = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(
            f"LLM endpoint {address} did not answer with a chat completion (got {raw[:80]!r})"
        ) from None
    if not isinstance(answer, str) or not answer.strip():
        raise LLMError(f"LLM endpoint {address} answered an empty or non-text name")
    return answer.strip().splitlines()[0].strip(" \"'.`*")[:80]


def ask_llm(
    records: Sequence[dict[str, Any]], url: str, model: str, *, timeout: float = 60.0
) -> dict[int, str]:
    """Each record's name from the endpoint at ``url``: ``{node: name}`` (records without a
    prompt are skipped). Raises :class:`LLMError` naming the endpoint at the first failure."""
    if not model or not model.strip():
        raise LLMError("an LLM model name is needed (--model NAME) to ask an endpoint")
    address = endpoint(url)
    key = api_key()
    return {
        int(r["node"]): _ask(address, model, r["prompt"], key, timeout)
        for r in records
        if r["prompt"] is not None
    }
