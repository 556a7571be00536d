"""``htaf compare --family icbm`` and ``htaf concepts RUN`` end to end, on in-memory image sets
(stand-ins for the data branch's loaders), with bad input and a local LLM endpoint."""

import html
import http.server
import json
import pickle
import shutil
import threading

import numpy as np
import pytest
import torch

import htaf
import htaf.train.run_folder as run_module
from htaf.analysis.concepts import summary_lines
from htaf.cli import main
from icbm_data import digits_images, shapes_standin

# --jobs 1: the stand-in datasets are monkeypatched in, which worker processes would not see.
FAST = ["--seeds", "1", "--epochs", "1", "--batch-size", "32", "--no-progress", "--jobs", "1",
        "--model", "cnn_widths=[4,8,8]", "--model", "n_concepts=6"]  # fmt: skip
SHAPES = shapes_standin(160)
DIGITS = digits_images()


@pytest.fixture(autouse=True)
def standin_datasets(monkeypatch):
    """``shapes`` and ``digits_images`` load the in-memory stand-ins (the data branch's loaders
    are not in this tree yet)."""
    real = run_module.load_dataset
    sets = {"shapes": SHAPES, "digits_images": DIGITS}
    monkeypatch.setattr(
        run_module, "load_dataset", lambda c: sets[c.dataset] if c.dataset in sets else real(c)
    )


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One default-grid experiment (every bottleneck, 1 epoch), shared by the tests."""
    out = tmp_path_factory.mktemp("exp")
    mp = pytest.MonkeyPatch()
    mp.setattr(run_module, "load_dataset", lambda c: SHAPES)
    try:
        assert main(["compare", "--family", "icbm", "--out", str(out), *FAST]) == 0
    finally:
        mp.undo()
    (exp,) = [p for p in out.iterdir() if p.is_dir()]
    return exp


@pytest.fixture(scope="module")
def attribute_experiment(tmp_path_factory):
    """An HTAF run on precomputed "features" that are the true attributes plus noise: its
    concepts become class-specific within seconds, whatever the seed."""
    out = tmp_path_factory.mktemp("feat")
    rng = np.random.default_rng(0)
    feats = {s: getattr(SHAPES, f"concepts_{s}") + 0.1 * rng.normal(size=(n, 16))
             for s, n in (("train", 96), ("val", 24), ("test", 40))}  # fmt: skip
    np.savez(out / "f.npz", **feats)
    mp = pytest.MonkeyPatch()
    mp.setattr(run_module, "load_dataset", lambda c: SHAPES)
    args = ["compare", "--family", "icbm", "--out", str(out), "--estimators", "htaf", "--seeds",
            "1", "--epochs", "40", "--lr", "0.03", "--batch-size", "32", "--no-progress",
            "--jobs", "1", "--backbone", f"features:{out}/f.npz",
            "--model", "n_concepts=8"]  # fmt: skip
    try:
        assert main(args) == 0
    finally:
        mp.undo()
    (exp,) = [p for p in out.iterdir() if p.is_dir()]
    return exp


def fresh_copy(experiment, tmp_path, estimator="htaf"):
    """A copy of the experiment, so a test sees its run without another test's outputs."""
    exp = tmp_path / experiment.name
    shutil.copytree(experiment, exp, ignore=shutil.ignore_patterns("concepts"))
    return exp, exp / "shapes" / estimator / "seed0"


def written(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_the_default_grid_reports_concept_metrics(experiment):
    config = json.loads((experiment / "config.json").read_text())
    assert config["estimators"] == ["htaf", "ste", "scaled_sigmoid", "relu", "sigmoid"]
    assert config["datasets"] == ["shapes"]
    for est in config["estimators"]:
        metrics = json.loads((experiment / "shapes" / est / "seed0" / "metrics.json").read_text())
        for key in ("concept_near_binary_05", "concept_entropy", "concepts_dead",
                    "concepts_always_on", "concepts_active_mean"):  # fmt: skip
            assert f"test_{key}_hard" in metrics and f"test_{key}_smooth" in metrics
        assert metrics["test_concept_near_binary_05_hard"] == 1.0  # the binary forward
        with np.load(experiment / "shapes" / est / "seed0" / "activations.npz") as z:
            assert sorted(z.files) == ["layer1_hard", "layer1_smooth"]  # the bottleneck only


@pytest.mark.slow
def test_the_sigmoid_baseline_is_thresholded_after_training(experiment):
    run = htaf.load_run(experiment / "shapes" / "sigmoid" / "seed0")
    metrics, data, model = run.metrics, run.dataset(), run.model()
    x = data.float_batch(torch.as_tensor(data.X_test))
    with torch.no_grad():
        z = model.pre_concepts(x)
        hard = model.classify((torch.sigmoid(z) > 0.5).float()).argmax(1).numpy()
        smooth = model.classify(torch.sigmoid(z)).argmax(1).numpy()
    assert metrics["test_accuracy_hard"] == pytest.approx((hard == data.y_test).mean())
    assert metrics["test_accuracy_smooth"] == pytest.approx((smooth == data.y_test).mean())


@pytest.mark.slow
def test_concepts_writes_figures_tables_and_a_page(experiment, tmp_path, capsys):
    exp, run = fresh_copy(experiment, tmp_path)
    assert main(["concepts", str(run), "--node", "2", "--image", "5", "--top", "4"]) == 0
    out = capsys.readouterr().out
    assert "attributes recovered at AUROC >= 0.9" in out and "concepts.html" in out
    folder = run / "concepts"
    names = written(folder)
    stems = [
        "class_proportions",
        "proportion_histogram",
        "node_2_images",
        "image_5_concepts",
        "bottleneck_histogram",
        "ablation_node_2",
        "ablation_overall",
        "alignment",
    ]
    for stem in stems:
        assert f"{stem}.png" in names and f"{stem}.svg" in names
    for table in ("nodes.csv", "class_proportions.csv", "ablation.csv", "alignment.csv",
                  "naming_prompts.jsonl", "summary.json", "concepts.html"):  # fmt: skip
        assert table in names
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["node"] == 2 and summary["image"] == 5 and summary["n_images"] == 40
    recovered = [r.split(",")[-1] == "True" for r in
                 (folder / "alignment.csv").read_text().splitlines()[1:]]  # fmt: skip
    assert len(recovered) == 16
    assert summary["attributes_recovered_fraction"] == pytest.approx(np.mean(recovered))
    prompts = [json.loads(x) for x in (folder / "naming_prompts.jsonl").read_text().splitlines()]
    assert [p["node"] for p in prompts] == list(range(6))
    page = (folder / "concepts.html").read_text()
    assert "data:image/png;base64," in page and "src='http" not in page
    # the command prints and the page shows the same summary lines
    for measure, value in summary_lines(summary):
        assert measure in out and value in out
        assert html.escape(measure) in page and html.escape(value) in page
    assert "dead / always-on concepts" in out
    report = (exp / "report.html").read_text()
    assert "shapes/htaf/seed0/concepts/concepts.html" in report


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [(["--node", "6"], "node 6 is out of range: the model has 6 concepts"),
     (["--image", "40"], "image 40 is out of range: the test split has 40 images"),
     (["--llm", "http://127.0.0.1:9"], "--llm needs --model")],
)  # fmt: skip
def test_concepts_bad_input_writes_nothing(experiment, tmp_path, capsys, args, message):
    _, run = fresh_copy(experiment, tmp_path)
    before = written(run)
    assert main(["concepts", str(run), *args]) == 2
    assert message in capsys.readouterr().err
    assert written(run) == before


@pytest.mark.parametrize("how", ["truncated", "pickle"])
def test_concepts_on_damaged_weights(experiment, tmp_path, capsys, how):
    _, run = fresh_copy(experiment, tmp_path)
    weights = run / "model.safetensors"
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        weights.write_bytes(pickle.dumps({"backbone.w": torch.ones(3)}))
    before = written(run)
    assert main(["concepts", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(weights) in err and "not a readable safetensors file" in err
    assert "Traceback" not in err
    assert written(run) == before


def test_concepts_on_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["concepts", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


# -- LLM naming against a local endpoint -----------------------------------------------------------
class ChatHandler(http.server.BaseHTTPRequestHandler):
    """Answers POST /v1/chat/completions like an OpenAI-compatible server."""

    garbage = False
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        if self.garbage:
            payload = b"<html>not an API</html>"
        else:
            prompt = body["messages"][-1]["content"]
            name = "red things" if "Group A" in prompt else "?"
            payload = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": f"{name}\n"}}]}
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    servers = []

    def start(garbage=False):
        handler = type("Handler", (ChatHandler,), {"garbage": garbage, "seen": []})
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", handler

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.slow
def test_llm_names_come_back_and_the_key_stays_secret(
    attribute_experiment, tmp_path, capsys, chat_server, monkeypatch
):
    url, handler = chat_server()
    key = "sk-test-5ecret-key"
    monkeypatch.setenv("HTAF_LLM_API_KEY", key)
    exp, run = fresh_copy(attribute_experiment, tmp_path)
    assert main(["concepts", str(run), "--llm", url, "--model", "tiny-llm"]) == 0
    out = capsys.readouterr()
    lines = (run / "concepts/naming_prompts.jsonl").read_text().splitlines()
    prompts = [json.loads(x) for x in lines]
    asked = [p for p in prompts if p["prompt"]]
    assert len(handler.seen) == len(asked) > 0
    path, auth, body = handler.seen[0]
    assert path == "/v1/chat/completions" and auth == f"Bearer {key}"
    assert body["model"] == "tiny-llm" and body["messages"][-1]["content"] == asked[0]["prompt"]
    summary = json.loads((run / "concepts/summary.json").read_text())
    assert set(summary["names"].values()) == {"red things"}
    assert "red things" in (run / "concepts/concepts.html").read_text()
    for f in exp.rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f
    assert key not in out.out + out.err
    # size decides between the two "pointed" classes: some concept carries it
    alignment = (run / "concepts/alignment.csv").read_text()
    recovered = {r.split(",")[0] for r in alignment.splitlines()[1:] if r.endswith("True")}
    assert {"size=small", "size=large"} <= recovered


@pytest.mark.slow
def test_llm_failures_name_the_endpoint_and_keep_the_prompts(
    attribute_experiment, tmp_path, capsys, chat_server
):
    url, _ = chat_server(garbage=True)
    _, run = fresh_copy(attribute_experiment, tmp_path)
    assert main(["concepts", str(run), "--llm", url, "--model", "m"]) == 2
    err = capsys.readouterr().err
    assert f"{url}/v1/chat/completions did not answer with a chat completion" in err
    assert written(run / "concepts") == ["naming_prompts.jsonl"]
    # unreachable: a port nothing listens on (a server started and closed)
    closed, _ = chat_server()
    port = closed.rsplit(":", 1)[1]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    shutil.rmtree(run / "concepts")
    assert main(["concepts", str(run), "--llm", dead, "--model", "m"]) == 2
    err = capsys.readouterr().err
    assert f"LLM endpoint {dead}/chat/completions cannot be reached" in err
    assert written(run / "concepts") == ["naming_prompts.jsonl"]
    assert port  # the live server was not the one asked


# -- bad input to compare: exit 2, nothing written -----------------------------------------------
@pytest.mark.parametrize(
    ("model", "message"),
    [("backbone=resnet50", "unknown backbone (option 'model.backbone') 'resnet50'"),
     ("weights=WEIGHTS", "does not match backbone 'small_cnn'"),
     ("backbone=features:FEATURES", "'test' has 39 rows, but the dataset's test split has 40")],
)  # fmt: skip
def test_compare_bad_input_writes_nothing(tmp_path, capsys, model, message):
    from safetensors.torch import save_file

    from htaf.families.icbm.backbones import SmallCNN

    weights = tmp_path / "w.safetensors"
    save_file(SmallCNN(3, 32, (4, 8, 16)).state_dict(), str(weights))
    sizes = {"train": 96, "val": 24, "test": 39}
    np.savez(tmp_path / "f.npz", **{s: np.zeros((n, 3), np.float32) for s, n in sizes.items()})
    model = model.replace("WEIGHTS", str(weights)).replace("FEATURES", str(tmp_path / "f.npz"))
    out = tmp_path / "out"
    args = ["compare", "--family", "icbm", "--out", str(out), "--estimators", "htaf", *FAST]
    assert main([*args, "--model", model]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_features_and_hf_backbones_run_through_compare_and_concepts(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=16, patch_size=8, hidden_size=8,
                                    num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=16)  # fmt: skip
    transformers.ViTModel(config).save_pretrained(tmp_path / "vit")
    rng = np.random.default_rng(0)
    sizes = {"train": 96, "val": 24, "test": 40}
    np.savez(tmp_path / "f.npz", **{s: rng.normal(size=(n, 7)) for s, n in sizes.items()})
    for backbone in (f"features:{tmp_path}/f.npz", f"hf:{tmp_path}/vit"):
        out = tmp_path / backbone.split(":")[0]
        args = ["compare", "--family", "icbm", "--out", str(out), "--estimators", "htaf,relu",
                "--backbone", backbone, *FAST]  # fmt: skip
        assert main(args) == 0
        (exp,) = [p for p in out.iterdir() if p.is_dir()]
        run = exp / "shapes" / "htaf" / "seed0"
        config = json.loads((run / "config.json").read_text())
        assert config["model"]["backbone"] == backbone
        history = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
        # the frozen ViT has no gradients: only the concept layer and the classifier report
        assert sorted(history[-1]["grad_norm"]) == ["layer1", "layer2"]
        assert main(["concepts", str(run)]) == 0
        assert (run / "concepts" / "concepts.html").is_file()
        names = written(run / "concepts")
        assert any(n.startswith("node_") for n in names)  # the images come from the dataset
    capsys.readouterr()


@pytest.mark.slow
def test_grey_digits_run(tmp_path):
    out = tmp_path / "out"
    args = ["compare", "--family", "icbm", "--dataset", "digits_images", "--out", str(out),
            "--estimators", "htaf", *FAST]  # fmt: skip
    assert main(args) == 0
    (exp,) = [p for p in out.iterdir() if p.is_dir()]
    assert main(["concepts", str(exp / "digits_images" / "htaf" / "seed0")]) == 0
    summary = json.loads((exp / "digits_images/htaf/seed0/concepts/summary.json").read_text())
    assert "attributes_recovered_fraction" not in summary  # digits have no true attributes
