"""The BNN family in the engine: per-epoch statistics, Bop, export, the CLI and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import htaf
from _bnn_data import digits_images, random_images
from htaf.cli import main
from htaf.config import RunConfig
from htaf.families import DataSpec, get_family
from htaf.families.bnn import BNNOptions, build, export_binary, load_binary, save_binary
from htaf.families.bnn.export import BinaryExportError, pack_signs, seal, unpack_signs
from htaf.train import run_one

SMALL = {"widths": [8, 16, 16]}


@pytest.fixture(scope="module")
def digits():
    return digits_images()


@pytest.fixture(scope="module")
def digits_run(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("bnn") / "run"
    cfg = RunConfig(family="bnn", dataset="digits_images", estimator="htaf", epochs=3, lr=3e-3,
                    model=SMALL)  # fmt: skip
    return run_one(cfg, out, dataset=digits)


def test_history_holds_flips_near_binary_fraction_and_disagreement(digits_run):
    rows = digits_run["history"]
    assert len(rows) == 3
    for row in rows:
        stats = row["model_stats"]
        assert set(stats["flip_ratio"]) == {"conv2", "conv3"}
        assert all(0 <= v <= 1 for v in stats["flip_ratio"].values())
        assert set(stats["near_pm1_05"]) == {"conv2", "conv3", "dense1"}
        assert 0 <= stats["disagreement"] <= 1
    assert rows[0]["model_stats"]["flip_ratio"]["conv2"] > 0  # training flips weights
    # activation statistics see the input quantizers, never the kernel quantizers
    assert set(rows[-1]["act"]["hard"]["layers"]) == {"layer1", "layer2", "layer3"}


def test_metrics_report_both_forwards_and_the_summary_file(digits_run):
    m = digits_run["metrics"]
    assert m["test_near_pm1_05_hard"] == 1.0 and m["test_near_pm1_05_smooth"] < 1.0
    assert m["test_accuracy_hard"] > 0.5 and m["test_accuracy_smooth"] > 0.5
    text = (Path(digits_run["run_dir"]) / "model_summary.txt").read_text()
    assert "conv2" in text and "MACs" in text and "float32" in text


def test_bop_keeps_binary_weights_exactly_plus_minus_one(digits, tmp_path):
    cfg = RunConfig(family="bnn", dataset="digits_images", estimator="ste_clipped", epochs=2,
                    optimizer="bop", optimizer_params={"gamma": 1e-2, "threshold": 1e-6},
                    model=SMALL)  # fmt: skip
    rec = run_one(cfg, tmp_path / "bop", dataset=digits)
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "bop" / "model.safetensors"))
    latent = [weights[k] for k in weights if k.endswith(".weight") and ".flip" not in k]
    binary = [w for w in latent if set(w.unique().tolist()) <= {-1.0, 1.0}]
    assert len(binary) == 2  # conv2 and conv3: Bop stores only signs
    assert rec["history"][-1]["model_stats"]["flip_ratio"]["conv2"] > 0
    assert rec["metrics"]["test_accuracy_hard"] > 0.3  # well above chance (0.1)


def test_bop_needs_binary_weights(digits, tmp_path):
    cfg = RunConfig(family="bnn", dataset="digits_images", estimator="relu", optimizer="bop",
                    epochs=1, model=SMALL)  # fmt: skip
    with pytest.raises(ValueError, match="optimizer 'bop' flips binary weights"):
        run_one(cfg, tmp_path / "x", dataset=digits)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_compare_defaults_run_on_mnist_and_cifar_shapes(shape, tmp_path):
    """The family's compare settings, unchanged, on MNIST- and CIFAR-shaped images."""
    data = random_images(shape, n=80)
    fam = get_family("bnn")
    cfg = RunConfig(family="bnn", estimator="htaf", **{**fam.compare, "dataset": data.name,
                                                    "epochs": 1})  # fmt: skip
    rec = run_one(cfg, tmp_path / "r", dataset=data)
    assert np.isfinite(rec["metrics"]["test_loss_hard"])


def _trained(arch, shape, scaling, estimator="htaf"):
    opts = BNNOptions(arch=arch, scaling=scaling, binary_last=True,
                      widths=(4, 8, 8) if arch == "small_cnn" else ())  # fmt: skip
    model = build(opts, DataSpec("image", shape, 5, "multiclass"), estimator, {})
    model.train()
    with torch.no_grad():  # BatchNorm statistics that are not the defaults
        model(torch.randn(16, *shape) + 0.3)
        model.calibrate(torch.randn(16, *shape))
        for layer in model.binary_layers().values():
            layer.weight.mul_(3).clamp_(-1, 1)
    return opts, model


@pytest.mark.parametrize(
    ("arch", "shape", "scaling"),
    [
        ("small_cnn", (1, 8, 8), "none"),
        ("small_cnn", (1, 8, 8), "mean_abs"),
        ("small_cnn", (1, 8, 8), "learned"),
        ("birealnet18", (3, 20, 20), "default"),
    ],
)
def test_exported_model_holds_bits_and_reproduces_the_hard_outputs(arch, shape, scaling, tmp_path):
    opts, model = _trained(arch, shape, scaling)
    x = torch.randn(6, *shape)
    model.eval()
    with htaf.harden(model):
        want = model(x)
    path = save_binary(model, tmp_path / "m.safetensors")
    from safetensors.torch import load_file

    stored = load_file(str(path))
    for name in model.binary_layers():
        module_path = next(p for p, m in model.named_modules() if m is model.layer_names[name])
        assert f"{module_path}.weight" not in stored  # no latent floats
        assert stored[f"{module_path}.weight_bits"].dtype == torch.uint8
    fresh = build(opts, DataSpec("image", shape, 5, "multiclass"), "htaf", {})
    loaded = load_binary(fresh, path)
    assert not any(m.training for m in loaded.modules())  # eval mode, as loaders return
    assert all(e.mode == "hard" for e in htaf.estimators.estimators_in(loaded))
    assert torch.equal(loaded(x), want)
    for layer in loaded.binary_layers().values():
        assert set(layer.weight.unique().tolist()) <= {-1.0, 1.0}


def test_export_is_much_smaller_than_the_float_weights(tmp_path):
    opts = BNNOptions(arch="binarynet_mlp", widths=(256, 256), binary_first=True, binary_last=True)
    model = build(opts, DataSpec("image", (1, 8, 8), 10, "multiclass"), "htaf", {})
    path = save_binary(model, tmp_path / "b.safetensors")
    floats = sum(p.numel() * 4 for p in model.parameters())
    assert path.stat().st_size < floats / 8


def test_pack_and_unpack_signs():
    w = torch.tensor([[0.0, -0.0, -1e-9, 2.0, -3.0], [1.0, -1.0, 0.5, -0.5, 7.0]])
    packed = pack_signs(w)
    assert packed.dtype == torch.uint8 and packed.numel() == 2
    want = torch.where(w >= 0, 1.0, -1.0)  # sign(0) = sign(-0) = +1
    assert torch.equal(unpack_signs(packed, (2, 5)), want)
    with pytest.raises(BinaryExportError):
        unpack_signs(packed, (4, 5))


def test_loading_an_export_into_another_architecture_fails(tmp_path):
    _, model = _trained("small_cnn", (1, 8, 8), "none")
    tensors, meta = export_binary(model)
    other = build(BNNOptions(arch="binarynet_mlp", widths=(8,)),
                  DataSpec("image", (1, 8, 8), 5, "multiclass"), "htaf", {})  # fmt: skip
    with pytest.raises(BinaryExportError, match="binary kernels"):
        load_binary(other, (tensors, meta))
    with pytest.raises(BinaryExportError, match="not an htaf binary export"):
        load_binary(model, (tensors, {**meta, "format": "x"}))


def _damaged(tensors, meta, how):
    """A copy of an export with one thing broken, as a damaged file would have it."""
    tensors, meta = dict(tensors), dict(meta)
    bits = next(k for k in tensors if k.endswith(".weight_bits"))
    alpha = next(k for k in tensors if k.endswith(".alpha"))
    if how == "missing bits":
        del tensors[bits]
    elif how == "missing tensor":
        del tensors[next(k for k in tensors if k.endswith("running_mean"))]
    elif how == "missing metadata":
        del meta["binary_kernels"]
    elif how == "shape not a list":
        meta["binary_kernels"] = json.dumps({k: 64 for k in json.loads(meta["binary_kernels"])})
    elif how == "metadata not JSON":
        meta["binary_kernels"] = "{not json"
    elif how == "extra_state not JSON":
        meta["extra_state"] = "[1, 2"
    elif how == "bits as float32":
        tensors[bits] = tensors[bits].float()
    elif how == "three scales too many":
        tensors[alpha] = torch.cat([tensors[alpha], torch.ones(3)])
    elif how == "float64 running mean":
        key = next(k for k in tensors if k.endswith("running_mean"))
        tensors[key] = tensors[key].double()
    return tensors, meta


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing bits", r"lacks tensor '.*\.weight_bits'"),
        ("missing tensor", r"lacks tensor '.*running_mean'"),
        ("missing metadata", r"metadata has no 'binary_kernels' entry"),
        ("shape not a list", r"gives '.*' the shape 64, not a list of integers"),
        ("metadata not JSON", r"metadata 'binary_kernels' is not JSON"),
        ("extra_state not JSON", r"metadata 'extra_state' is not JSON"),
        ("bits as float32", r"'.*\.weight_bits' is torch\.float32, the model needs torch\.uint8"),
        ("three scales too many", r"tensor '.*\.alpha' has shape \((\d+),\), the model needs"),
        ("float64 running mean", r"mean' is torch\.float64, the model needs torch\.float32"),
    ],
)  # fmt: skip
def test_damaged_exports_name_the_tensor_and_the_file(tmp_path, how, message):
    from safetensors.torch import save

    opts, model = _trained("small_cnn", (1, 8, 8), "mean_abs")
    tensors, meta = _damaged(*export_binary(model), how)
    path = tmp_path / "damaged.safetensors"
    # sealed after the damage, so the structural checks (not the checksums) must catch it
    path.write_bytes(save(tensors, metadata=seal(tensors, meta)))
    fresh = build(opts, DataSpec("image", (1, 8, 8), 5, "multiclass"), "htaf", {})
    before = {k: v.clone() for k, v in fresh.state_dict().items() if isinstance(v, torch.Tensor)}
    with pytest.raises(BinaryExportError, match=rf"damaged\.safetensors.*{message}") as err:
        load_binary(fresh, path)
    assert isinstance(err.value, ValueError)
    after = fresh.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # the model is untouched
    with pytest.raises(BinaryExportError, match=message):
        load_binary(fresh, (tensors, meta))


def test_a_damaged_export_file(tmp_path):
    opts, model = _trained("small_cnn", (1, 8, 8), "none")
    path = save_binary(model, tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    fresh = build(opts, DataSpec("image", (1, 8, 8), 5, "multiclass"), "htaf", {})
    with pytest.raises(BinaryExportError, match=r"m\.safetensors is not a readable safetensors"):
        load_binary(fresh, path)


# -- the command line --------------------------------------------------------------------------
@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.delenv("HTAF_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "runs"


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--model", "arch=alexnet"], "unknown architecture 'model.arch' = 'alexnet'"),
        (["--model", "kernel_quantizer=tanh"], "'model.kernel_quantizer' = 'tanh' is not an est"),
        (["--estimators", "htaf,softsign", "--model", "arch=binarynet_mlp"],
         "unknown estimator 'softsign'"),
        (["--model", 'layer_quantizers=["bn1=ste"]', "--model", "arch=binarynet_mlp"],
         "layer 'bn1' (ModeBatchNorm1d) has no kernel and cannot take a kernel quantizer"),
        (["--model", "arch=small_cnn"], "model.arch 'small_cnn' needs images (C, H, W)"),
    ],
)  # fmt: skip
def test_cli_bad_input_exits_2_and_writes_nothing(out, capsys, flags, words):
    args = ["compare", "--family", "bnn", "--dataset", "digits", "--seeds", "1", "--epochs", "1",
            "--no-progress", "--out", str(out), *flags]  # fmt: skip
    assert main(args) == 2
    assert words in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_cli_compare_writes_report_with_model_plots_and_summary(out):
    args = ["compare", "--family", "bnn", "--dataset", "digits", "--model", "arch=binarynet_mlp",
            "--model", "widths=[32]", "--estimators", "htaf,relu", "--seeds", "2", "--epochs",
            "2", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    (exp_dir,) = [p for p in out.iterdir() if p.is_dir()]
    assert (exp_dir / "plots" / "model_stats.png").is_file()
    report = (exp_dir / "report.md").read_text()
    assert "model_stats.png" in report and "## Model: digits (bnn), htaf runs" in report
    assert "total params" in report
    summary = json.loads((exp_dir / "summary.json").read_text())
    row = {r["estimator"]: r["metrics"] for r in summary}
    assert row["htaf"]["test_near_pm1_05_hard"]["mean"] == 1.0
    assert "test_near_pm1_05_hard" not in row["relu"]  # no quantizer, no statistic


def test_cli_train_with_bop(out, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        'family = "bnn"\ndataset = "digits"\nestimator = "approx_sign"\nepochs = 1\n'
        'optimizer = "bop"\n[optimizer_params]\ngamma = 0.001\n'
        '[model]\narch = "binarynet_mlp"\nwidths = [16, 16]\n'
    )
    assert main(["train", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["optimizer"] == "bop" and saved["optimizer_params"] == {"gamma": 0.001}


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_compare_runs_unchanged_on_small_official_files(dataset, tmp_path, out):
    """Tiny files in the official formats (MNIST IDX .gz, CIFAR-10 binary batches)."""
    import gzip
    import struct

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    if dataset == "mnist":
        folder = data / "mnist"
        folder.mkdir(parents=True)
        for split, n in (("train", 100), ("t10k", 20)):
            images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            labels = (np.arange(n) % 10).astype(np.uint8)
            (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(
                gzip.compress(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
            )
            (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress(struct.pack(">II", 0x801, n) + labels.tobytes()))  # fmt: skip
    else:
        folder = data / "cifar-10-batches-bin"
        folder.mkdir(parents=True)
        for name, n in [
            *((f"data_batch_{i}.bin", 20) for i in range(1, 6)),
            ("test_batch.bin", 20),
        ]:
            rec = np.concatenate(
                [
                    (np.arange(n) % 10).astype(np.uint8)[:, None],
                    rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                ],
                axis=1,
            )
            (folder / name).write_bytes(rec.tobytes())
        (folder / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    args = ["compare", "--family", "bnn", "--dataset", dataset, "--data-dir", str(data),
            "--seeds", "1", "--epochs", "1", "--estimators", "htaf,relu", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0


def test_a_run_saved_before_pad_value_is_rebuilt_with_zero_padding(tmp_path):
    import json

    from htaf.train.run_folder import read_config

    saved = {"family": "bnn", "dataset": "digits_images", "estimator": "htaf", "model": {},
             "model_options": {"arch": "small_cnn", "kernel_quantizer": "ste_clipped"}}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert read_config(tmp_path).model == {"pad_value": 0.0}
    saved["model_options"]["pad_value"] = 1.0  # written by a version that has the option
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert read_config(tmp_path).model == {}
    saved["model"] = {"pad_value": -1.0}  # what the user set wins
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert read_config(tmp_path).model == {"pad_value": -1.0}


@pytest.mark.parametrize(("spec", "mode"), [("htaf", "hard"), ("htaf(0.25,11)", "smooth")])
def test_the_trainer_trains_bare_htaf_quantizers_hard_and_explicit_specs_smooth(digits, spec, mode):
    from htaf.estimators import estimators_in
    from htaf.families import build_model
    from htaf.train.engine import Trainer

    config = RunConfig(family="bnn", dataset="digits_images", estimator=spec, epochs=1,
                       batch_size=64, model={"arch": "small_cnn"})  # fmt: skip
    model = build_model(config, digits)
    for est in estimators_in(model):
        est.mode = "smooth" if mode == "hard" else "hard"  # as an evaluation may leave it
    Trainer(model, digits, config, progress=False)
    quantizers = [e for e in estimators_in(model) if not getattr(e, "quantizes_weights", False)]
    assert quantizers and {e.mode for e in quantizers} == {mode}
