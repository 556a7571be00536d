"""``htaf.llm``: finding, stepping and training the FFN activations of Hugging Face models."""

import math

import pytest

pytest.importorskip("transformers", reason="htaf.llm is built on transformers (htaf[hf])")

import torch
from torch import nn

from htaf import llm
from htaf.estimators import Estimator, harden


def tiny_bert(vocab=100, layers=3):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=vocab, hidden_size=16, intermediate_size=40,
                     num_hidden_layers=layers, num_attention_heads=2,
                     max_position_embeddings=64)  # fmt: skip
    return BertModel(cfg).eval()


# -- text -----------------------------------------------------------------------------------------
def test_sentence_rule_keeps_english_and_drops_code():
    doc = (
        "Return the number of items in the queue right now.\n\n"
        "Call f(x) = y for every key_name.  Too short here.\n"
        ">>> print(1)\n\n"
        "This one is plain English text as well. and this is not capitalised text here."
    )
    assert llm.sentences_of(doc) == [
        "Return the number of items in the queue right now.",
        "This one is plain English text as well. and this is not capitalised text here.",
    ]


def test_stdlib_corpus_and_seeded_split():
    sents = llm.stdlib_sentences(25)
    assert len(sents) > 100 and list(sents) == sorted(set(sents))
    assert len({s.casefold() for s in sents}) == len(sents)
    tr, te = llm.split_sentences(sents, 50, 20, seed=3)
    assert (tr, te) == llm.split_sentences(sents, 50, 20, seed=3)
    assert (tr, te) != llm.split_sentences(sents, 50, 20, seed=4)
    assert len(tr) == 50 and len(te) == 20 and not set(tr) & set(te)
    with pytest.raises(ValueError, match="only"):
        llm.split_sentences(sents, len(sents), 20)


def test_byte_tokenizer_round_trip_and_batch():
    tok = llm.ByteTokenizer()
    ids = tok.encode("héllo")
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.decode(ids) == "héllo" and len(tok) == 259
    x, m = llm.batch(tok, ["ab", "abcd"], max_length=5)
    assert x.shape == (2, 5) and m.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert x[0, 4] == tok.pad_token_id


# -- finding and stepping -------------------------------------------------------------------------
def test_finds_swiglu_gate_and_gelu_by_type():
    sites = llm.find_ffn_activations(llm.tiny_llama(layers=3))
    assert [s.layer for s in sites] == [0, 1, 2] and all(s.gated for s in sites)
    assert all(type(s.original).__name__ == "SiLUActivation" for s in sites)
    bert = llm.find_ffn_activations(tiny_bert())
    assert len(bert) == 3 and not any(s.gated for s in bert)
    assert all(type(s.original).__name__ == "GELUActivation" for s in bert)
    assert bert[1].name == "encoder.layer.1.intermediate.intermediate_act_fn"


def test_unknown_architecture_lists_what_was_found():
    plain = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    with pytest.raises(llm.LLMError, match=r"unknown architecture Sequential.*module lists found"):
        llm.find_ffn_activations(plain)

    class TwoActs(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Sequential(nn.Linear(2, 2), nn.GELU(), nn.Tanh())
                                        for _ in range(2))  # fmt: skip

    with pytest.raises(llm.LLMError, match=r"found 2: 1 \(GELU\), 2 \(Tanh\)"):
        llm.find_ffn_activations(TwoActs())


def test_swapped_swiglu_is_the_exact_step_float64():
    model = llm.tiny_llama(layers=2).double()
    sites = llm.step_layers(model, [1], "htaf(alpha0=2)")
    mlp = sites[0].parent
    assert isinstance(mlp.act_fn, Estimator) and not isinstance(
        llm.find_ffn_activations(model)[0].parent.act_fn, Estimator
    )
    x = torch.randn(3, 5, 64, dtype=torch.float64) * torch.tensor([1e-3, 1.0, 1e4]).view(3, 1, 1)
    x[0, 0, :4] = torch.tensor([1e30, -1e30, 0.0, -0.0])
    with harden(model), torch.no_grad():
        got = mlp(x)
    g = x @ mlp.gate_proj.weight.T
    ref = (((g >= 0).double()) * (x @ mlp.up_proj.weight.T)) @ mlp.down_proj.weight.T
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    llm.restore(model)
    assert type(mlp.act_fn).__name__ == "SiLUActivation"


def test_layer_order_and_k_bounds():
    assert llm.layer_order(6, 2) == [4, 5] and llm.layer_order(6, 2, "first") == [0, 1]
    assert llm.layer_order(6, 0) == [] and llm.layer_order(6, 6) == list(range(6))
    with pytest.raises(llm.LLMError, match="k = 7 layers to step, but the model has 6"):
        llm.layer_order(6, 7)
    with pytest.raises(llm.LLMError, match="order"):
        llm.layer_order(6, 1, "middle")


@pytest.mark.parametrize("name", ["gelu", "relu", "no_such_thing"])
def test_estimators_that_cannot_be_hardened(name):
    with pytest.raises(llm.LLMError, match=name):
        llm.check_estimator(name)
    with pytest.raises(llm.LLMError):
        llm.step_layers(llm.tiny_llama(), [0], name)


def test_only_stepped_ffns_train():
    model = llm.tiny_llama(layers=3)
    llm.step_layers(model, [2], "ste")
    model, params = llm.make_trainable(model, [2])
    names = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert names == [
        f"model.layers.2.mlp.{m}.weight" for m in ("down_proj", "gate_proj", "up_proj")
    ]
    assert len(params) == 3


def test_lora_trains_adapters_only():
    pytest.importorskip("peft", reason="LoRA needs peft (htaf[llm])")
    model = tiny_bert()
    llm.step_layers(model, [2], "htaf")
    wrapped, params = llm.make_trainable(model, [2], lora=True, rank=2)
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".layer.2." in n for n in trainable)
    assert len(trainable) == 4  # A and B of intermediate.dense and output.dense
    ids = torch.randint(0, 100, (2, 7))
    before = [p.detach().clone() for p in params]
    llm.fine_tune(wrapped, params, lambda _: llm.encode(wrapped, ids, torch.ones_like(ids)).sum(),
                  steps=2, lr=1e-2)  # fmt: skip
    assert any(not torch.equal(a, b) for a, b in zip(before, params, strict=True))
    assert sum(isinstance(m, Estimator) for m in wrapped.modules()) == 1


def test_near_binary_fraction_counts_masked_positions():
    model = tiny_bert(layers=1)
    sites = llm.step_layers(model, [0], "htaf(alpha0=50)")
    ids = torch.randint(0, 100, (2, 6))
    mask = torch.tensor([[1] * 6, [1, 1, 0, 0, 0, 0]])
    seen = []

    def measure(set_mask):
        set_mask(mask)
        return {"cosine": float(llm.encode(model, ids, mask).sum())}

    act = getattr(sites[0].parent, sites[0].attr)
    act.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    res = llm.evaluate_modes(model, measure, [act])
    y = seen[-1]  # the smooth pass
    keep = mask.bool()
    close = ((y.abs() <= 0.05) | ((y - 1).abs() <= 0.05))[keep]
    assert res["near_binary"] == pytest.approx(float(close.float().mean()))
    assert set(seen[0].unique().tolist()) <= {0.0, 1.0}  # the hard pass is exactly binary
    assert res["hard"]["cosine"] != res["smooth"]["cosine"]


# -- loading --------------------------------------------------------------------------------------
def test_model_folder_checks(tmp_path):
    with pytest.raises(llm.LLMError, match="does not exist"):
        llm.check_model_dir(tmp_path / "nope")
    with pytest.raises(llm.LLMError, match=r"no config\.json"):
        llm.check_model_dir(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 3}')
    with pytest.raises(llm.LLMError, match="no 'model_type'"):
        llm.check_model_dir(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(llm.LLMError, match=r"holds no weights.*safetensors only"):
        llm.check_model_dir(tmp_path)


def test_saved_models_load_with_their_kind(tmp_path):
    llm.tiny_llama(vocab_size=100).save_pretrained(tmp_path / "causal")
    tiny_bert().save_pretrained(tmp_path / "enc")
    model, kind = llm.load_model(tmp_path / "causal")
    assert kind == "causal" and len(llm.find_ffn_activations(model)) == 2
    assert llm.load_model(tmp_path / "enc")[1] == "encoder"
    with pytest.raises(llm.LLMError, match="does not match the model: it has 259 tokens"):
        llm.check_tokenizer(llm.ByteTokenizer(), model, "the byte tokenizer")
    with pytest.raises(llm.LLMError, match="holds no tokenizer"):
        llm.load_tokenizer(tmp_path / "causal", model)


def test_device_is_validated(monkeypatch):
    assert llm.check_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(llm.LLMError, match="CUDA is not available"):
        llm.check_device("cuda")
    with pytest.raises(llm.LLMError, match="not a torch device"):
        llm.check_device("gpu please")


def test_lm_nll_matches_float64_reference():
    model = llm.tiny_llama(vocab_size=50).double()
    ids = torch.randint(0, 50, (2, 6))
    mask = torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0]])
    nll, count = llm.lm_nll(model, ids, mask)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    total, n = 0.0, 0
    for b in range(2):
        for t in range(5):
            if mask[b, t + 1]:
                row = logits[b, t]
                total += float(torch.logsumexp(row, 0) - row[ids[b, t + 1]])
                n += 1
    assert int(count) == n == 7 and float(nll) == pytest.approx(total, rel=1e-9)
    assert math.isfinite(float(nll))
