"""The ICBM family: model, bottlenecks (post-hoc thresholded CBM baseline), backbones, weights,
freezing, precomputed features, and the array-level concept analysis."""

import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score

import htaf
from htaf import harden
from htaf.config import ConfigError, RunConfig
from htaf.estimators import UnknownEstimatorError, set_mode
from htaf.families import build_model, data_spec, get_family, model_options, prepare_data
from htaf.families.icbm import ICBM, ICBMOptions, build
from htaf.families.icbm import analysis as A
from htaf.families.icbm.backbones import SmallCNN, blocks, freeze, load_weights, parse_name
from htaf.families.icbm.model import PosthocThreshold, concept_stats, make_bottleneck
from htaf.train.callbacks import activation_stats
from icbm_data import shapes_standin

SMALL = {"cnn_widths": [4, 8, 8], "n_concepts": 6}


@pytest.fixture(scope="module")
def shapes():
    return shapes_standin(120)


def icbm(shapes, estimator="htaf", **model):
    cfg = RunConfig(family="icbm", dataset="shapes", estimator=estimator, model={**SMALL, **model})
    return build_model(cfg, shapes)


def batch(shapes, n=16):
    return shapes.float_batch(torch.as_tensor(shapes.X_test[:n]))


# -- the model -----------------------------------------------------------------------------------
def test_forward_and_the_binary_forward(shapes):
    model = icbm(shapes).eval()
    x = batch(shapes)
    assert model(x).shape == (16, 4)
    z = model.pre_concepts(x)
    with harden(model):
        c = model.concepts(x)
        logits = model(x)
    assert set(c.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(c, (z >= 0).float())  # the exact step H(z), H(0) = 1
    assert torch.allclose(logits, model.classify(c))
    assert torch.equal(model.active(z), z >= 0)


def test_eval_stats_match_an_independent_reference(shapes):
    model = icbm(shapes).eval()
    with torch.no_grad():
        stats = model.eval_stats(batch(shapes, 40))
        z = model.pre_concepts(batch(shapes, 40)).double().numpy()
    (est,) = htaf.estimators.estimators_in(model)  # htaf(auto): calibrated by that forward
    assert est.auto and not est.pending
    u = 1 / (1 + np.exp(-11 * np.tanh(est.alpha0 * z)))  # HTAF(alpha0, 11) in float64
    p = np.clip(u, 1e-300, 1 - 1e-16)
    ent = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    on = z >= 0
    assert stats["concept_near_binary_05"] == pytest.approx(np.mean(np.minimum(u, 1 - u) <= 0.05))
    assert stats["concept_entropy"] == pytest.approx(ent.mean(), rel=1e-5)
    assert stats["concepts_active_mean"] == pytest.approx(on.sum(1).mean())
    assert stats["concepts_dead"] == int((on.sum(0) == 0).sum())
    assert stats["concepts_always_on"] == int((on.sum(0) == len(on)).sum())


def test_concept_stats_counts_dead_and_always_on():
    c = torch.tensor([[0.0, 1.0, 0.5], [0.0, 1.0, 0.97]])
    s = concept_stats(c, c > 0.5)
    assert s["concepts_dead"] == 1 and s["concepts_always_on"] == 1  # 0.5 is not > 0.5
    assert s["concept_near_binary_05"] == pytest.approx(5 / 6)
    assert s["concepts_active_mean"] == pytest.approx(1.5)
    assert s["concept_entropy"] == pytest.approx(
        (1 + (-0.97 * math.log2(0.97) - 0.03 * math.log2(0.03))) / 6
    )


def test_only_the_bottleneck_counts_for_the_activation_statistics(shapes):
    model = icbm(shapes, "relu")
    model.backbone.blocks[0].extra = torch.nn.ReLU()  # a backbone activation module
    stats, samples = activation_stats(model, shapes.X_test[:20], to_float=shapes.float_batch)
    assert list(stats["smooth"]["layers"]) == ["layer1"]
    with torch.no_grad():
        c = model.eval().concepts(batch(shapes, 20))
    assert samples["smooth"]["layer1"].size == c.numel()


# -- the CBM baseline: a continuous bottleneck thresholded after training -------------------------
POSTHOC_CASES = [
    ("sigmoid", None, 0.0),
    ("sigmoid", 0.7, math.log(0.7 / 0.3)),
    ("relu", None, 0.0),
    ("relu", 0.25, 0.25),
]


@pytest.mark.parametrize(("name", "t", "cut"), POSTHOC_CASES)
def test_posthoc_threshold(name, t, cut):
    b = PosthocThreshold(name, t)
    z = torch.linspace(-3, 3, 601, dtype=torch.float64, requires_grad=True)
    ref = torch.sigmoid(z) if name == "sigmoid" else torch.relu(z)
    assert torch.allclose(b(z), ref)  # smooth: the activation as trained
    (g,) = torch.autograd.grad(b(z).sum(), z)
    assert torch.allclose(g, b.grad(z.detach()), atol=1e-12) or name == "relu"
    with set_mode(b, "hard"):
        hard = b(z)
    assert torch.equal(hard.detach(), (z > cut).to(z.dtype))
    threshold = 0.5 if (name == "sigmoid" and t is None) else (t or 0.0)
    assert torch.equal(hard.detach(), (ref > threshold).to(z.dtype))
    (g_hard,) = torch.autograd.grad(hard.sum(), z)  # the activation's derivative as backward
    assert torch.allclose(g_hard, b.grad(z.detach()))


def test_posthoc_bottlenecks_in_the_model_and_bad_ones(shapes):
    model = icbm(shapes, "sigmoid", posthoc_threshold=0.6).eval()
    assert isinstance(model.bottleneck, PosthocThreshold)
    z = model.pre_concepts(batch(shapes))
    assert torch.equal(model.active(z), torch.sigmoid(z) > 0.6)
    with pytest.raises(ValueError, match="posthoc_threshold"):
        icbm(shapes, "sigmoid", posthoc_threshold=1.5)
    with pytest.raises(ValueError, match="sigmoid, relu"):
        make_bottleneck("tanh", {}, None)
    with pytest.raises(UnknownEstimatorError, match="nope"):
        make_bottleneck("nope", {}, None)


# -- options, backbones, weights, freezing ---------------------------------------------------------
def test_backbone_names():
    assert parse_name("small_cnn") == ("small_cnn", "")
    assert parse_name("hf:/m/vit") == ("hf", "/m/vit")
    assert parse_name("features:f.npz") == ("features", "f.npz")
    for bad in ("resnet", "hf:", "small_cnn:x", "foo:bar"):
        with pytest.raises(ConfigError, match=r"model\.backbone"):
            parse_name(bad)
    with pytest.raises(ConfigError, match=r"model\.backbone.*'vgg'"):
        model_options("icbm", {"backbone": "vgg"})


def test_family_defaults():
    fam = get_family("icbm")
    assert fam.compare["dataset"] == "shapes"
    assert set(fam.estimators) == {"htaf", "ste", "scaled_sigmoid", "relu", "sigmoid"}
    assert ICBMOptions().freeze_mode() == "none"
    assert ICBMOptions(backbone="hf:x").freeze_mode() == "all"


def test_small_cnn_shapes():
    # global average and max pooling: 2 features per channel of the last block
    assert SmallCNN(3, 32, (4, 8, 8))(torch.zeros(2, 3, 32, 32)).shape == (2, 16)
    assert SmallCNN(1, 8, (4, 8))(torch.zeros(2, 1, 8, 8)).shape == (2, 16)  # digits: 8x8
    cnn = SmallCNN(3, 32, (4, 8, 8)).eval()
    f = cnn(torch.rand(3, 3, 32, 32))
    assert torch.all(f[:, 8:] >= f[:, :8])  # max >= mean, channel by channel
    # the last log2(size / 4) blocks halve the maps; the blocks before them see the full image
    strides = [b.conv.stride[0] for b in SmallCNN(3, 32, (2, 2, 2, 2)).blocks]
    assert strides == [1, 2, 2, 2]
    assert [b.conv.stride[0] for b in SmallCNN(1, 8, (2, 2, 2)).blocks] == [1, 1, 2]


def test_table_data_needs_the_identity_backbone(cancer):
    with pytest.raises(ConfigError, match="identity"):
        build_model(RunConfig(family="icbm", dataset="breast_cancer"), cancer)
    cfg = RunConfig(family="icbm", dataset="breast_cancer", model={"backbone": "identity"})
    assert build_model(cfg, cancer)(torch.zeros(3, 30)).shape == (3, 1)


def test_freezing(shapes):
    spec = data_spec(shapes)
    frozen = build(ICBMOptions(**SMALL, freeze="all"), spec, "htaf", {})
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    frozen.train()
    assert not frozen.backbone.training and frozen.concept.training  # BatchNorm stats frozen
    part = build(ICBMOptions(**SMALL, freeze="partial", unfrozen_blocks=1), spec, "htaf", {})
    trainable = [b for b in blocks(part.backbone) if all(p.requires_grad for p in b.parameters())]
    assert trainable == [part.backbone.blocks[2]]
    assert not any(p.requires_grad for p in part.backbone.blocks[0].parameters())
    assert all(p.requires_grad for p in build(ICBMOptions(**SMALL), spec, "htaf", {}).parameters())
    with pytest.raises(ConfigError, match="unfrozen_blocks"):
        freeze(SmallCNN(3, 32, (4, 8)), "partial", 5)


def test_weights_file(shapes, tmp_path):
    src = SmallCNN(3, 32, (4, 8, 8))
    path = tmp_path / "cnn.safetensors"
    save_file(src.state_dict(), str(path))
    model = icbm(shapes, weights=str(path)).eval()
    x = batch(shapes)
    assert torch.allclose(model.backbone(x), src.eval()(x))
    # An htaf run's model.safetensors: the backbone's tensors under "backbone."
    prefixed = {f"backbone.{k}": v for k, v in src.state_dict().items()}
    save_file(prefixed, str(tmp_path / "r.safetensors"))
    load_weights(SmallCNN(3, 32, (4, 8, 8)), tmp_path / "r.safetensors", "small_cnn")
    with pytest.raises(ConfigError, match=r"cnn\.safetensors does not match backbone 'small_cnn'"):
        icbm(shapes, weights=str(path), cnn_widths=[4, 8, 16])
    with pytest.raises(ConfigError, match=r"only \.safetensors"):
        icbm(shapes, weights=str(tmp_path / "cnn.pt"))
    with pytest.raises(ConfigError, match="cannot be read"):
        icbm(shapes, weights=str(tmp_path / "missing.safetensors"))


def test_features_backbone(shapes, tmp_path):
    rng = np.random.default_rng(0)
    sizes = {s: len(getattr(shapes, f"y_{s}")) for s in ("train", "val", "test")}
    arrays = {s: rng.normal(size=(n, 5)).astype(np.float32) for s, n in sizes.items()}
    np.savez(tmp_path / "f.npz", **arrays)
    backbone = f"features:{tmp_path}/f.npz"
    cfg = RunConfig(family="icbm", dataset="shapes", model={"backbone": backbone})
    data = prepare_data(cfg, shapes)
    assert data.kind == "table" and data.input_shape == (5,)
    assert np.array_equal(data.X_test, arrays["test"])
    assert np.array_equal(data.y_test, shapes.y_test) and data.concepts_test is shapes.concepts_test
    assert build_model(cfg, data)(torch.as_tensor(data.X_test[:3])).shape == (3, 4)
    from safetensors.numpy import save_file as save_np

    save_np(arrays, str(tmp_path / "f.safetensors"))
    cfg2 = cfg.replace(model={"backbone": f"features:{tmp_path}/f.safetensors"})
    assert np.array_equal(prepare_data(cfg2, shapes).X_val, arrays["val"])
    np.savez(tmp_path / "short.npz", **{**arrays, "test": arrays["test"][:-1]})
    short = cfg.replace(model={"backbone": f"features:{tmp_path}/short.npz"})
    with pytest.raises(ConfigError, match=rf"short\.npz: 'test' has {sizes['test'] - 1} rows"):
        prepare_data(short, shapes)
    with pytest.raises(ConfigError, match="does not exist"):
        prepare_data(cfg.replace(model={"backbone": "features:nope.npz"}), shapes)


# -- the analysis on arrays -----------------------------------------------------------------------
def test_class_proportions_and_specificity():
    active = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], dtype=bool)
    y = np.array([0, 0, 1, 1])
    P = A.class_proportions(active, y, 3)
    assert np.allclose(P[:2], [[1.0, 0.5], [0.0, 0.5]]) and np.isnan(P[2]).all()
    s = A.specificity(P)
    assert np.allclose(s["crispness"], [1.0, 0.0])
    assert list(s["classes_on"]) == [1, 2]
    assert np.allclose(s["selectivity"], [1.0, 0.0])
    assert s["decided_fraction"] == 0.5 and s["class_specific_fraction"] == 0.5


def test_alignment_matches_sklearn():
    rng = np.random.default_rng(1)
    attrs = rng.integers(0, 2, size=(200, 3))
    z = rng.normal(size=(200, 4))
    z[:, 2] = attrs[:, 0] * 3 + rng.normal(size=200) * 0.1  # node 2 carries attribute 0
    z[:, 1] = -attrs[:, 1] * 3 + rng.normal(size=200) * 0.1  # node 1 its absence, attribute 1
    z[:, 3] = np.round(z[:, 3])  # ties
    attrs = np.column_stack([attrs, np.ones(200, dtype=int)])  # a constant attribute
    r = A.alignment(z, attrs)
    for k in range(4):
        for a in range(3):
            assert r["auroc"][k, a] == pytest.approx(roc_auc_score(attrs[:, a], z[:, k]))
    assert np.isnan(r["auroc"][:, 3]).all() and not r["varies"][3]
    assert list(r["best_node"][:2]) == [2, 1] and list(r["best_sign"][:2]) == [1, -1]
    assert r["recovered"][:2].all() and not r["recovered"][2]
    assert r["recovered_fraction"] == pytest.approx(2 / 3)
    assert r["recovered_fraction_positive"] == pytest.approx(1 / 3)


def test_ablation_against_a_hand_computed_head():
    W = np.array([[2.0, 0.0], [0.0, 1.0]])  # class 0 <- concept 0, class 1 <- concept 1
    c = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    y = np.array([0, 0, 1, 0])
    r = A.ablate(lambda x: x @ W.T, c, y, 2)
    assert r["base_all"] == 1.0 and np.allclose(r["base"], [1, 1])
    # concept 0 off: images 0, 1 tie at 0 -> argmax picks class 0; image 3 -> class 1 (wrong)
    assert np.allclose(r["off"][0], [2 / 3, 1]) and r["off_all"][0] == 0.75
    assert np.allclose(r["on"][0], [1, 0])  # forcing concept 0 on turns image 2 into class 0
    assert np.allclose(r["off"][1], [1, 0]) and np.allclose(r["on"][1], [1, 1])  # 2 > 1


def test_top_images():
    z = np.array([[3.0], [1.0], [-1.0], [-5.0], [2.0]])
    r = A.top_images(z, z >= 0, 0, k=2)
    assert list(r["on"]) == [0, 4] and list(r["off"]) == [3, 2]


def test_an_icbm_needs_image_or_table_data():
    fam = get_family("icbm")
    assert fam.kinds == ("image", "table")
    assert isinstance(build(ICBMOptions(backbone="identity"), data_spec_like(), "htaf", {}), ICBM)


def data_spec_like():
    from htaf.families import DataSpec

    return DataSpec(kind="table", input_shape=(7,), n_out=3, task="multiclass")


# -- naming prompts ------------------------------------------------------------------------------
def test_naming_prompts_and_endpoints(monkeypatch):
    from htaf.families.icbm import naming

    P = np.array([[1.0, 0.0, 0.9], [0.0, 0.0, 0.6], [np.nan, 0.0, np.nan]])
    records = naming.naming_prompts(P, ["cat", "dog", "eel"])
    assert records[0]["group_a"] == ["cat"] and records[0]["group_b"] == ["dog"]
    assert "Group A: cat\nGroup B: dog\n" in records[0]["prompt"]
    assert records[1]["prompt"] is None and records[2]["prompt"] is None  # nothing to contrast
    assert naming.endpoint("http://h:1/") == "http://h:1/v1/chat/completions"
    assert naming.endpoint("http://h:1/v1") == "http://h:1/v1/chat/completions"
    assert naming.endpoint("https://h/x/chat/completions") == "https://h/x/chat/completions"
    with pytest.raises(naming.LLMError, match="ftp://h"):
        naming.endpoint("ftp://h")
    monkeypatch.delenv("HTAF_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "b")
    assert naming.api_key() == "b"
    monkeypatch.setenv("HTAF_LLM_API_KEY", "a")
    assert naming.api_key() == "a"
    many = naming.naming_prompts(np.eye(70)[:, :1], [f"c{i}" for i in range(70)])
    assert "and 9 more" in many[0]["prompt"]  # 69 classes in Group B, 60 listed
