"""The BNN architectures: Larq's published counts, exact binary forwards, hooks, bad input."""

import copy

import pytest
import torch

import htaf
from htaf.config import ConfigError
from htaf.families import DataSpec, model_options
from htaf.families.bnn import (
    BNNOptions,
    ModelProfile,
    QuantizerError,
    QuantLayer,
    build,
    profile,
)
from htaf.families.bnn.models import ArchShapeError
from htaf.families.summary import format_summary, readable, size


def spec(shape, n_out=10):
    return DataSpec("image", tuple(shape), n_out, "multiclass")


def meta_build(options, shape, n_out=10, estimator="ste_clipped"):
    with torch.device("meta"):  # counts need shapes only
        return build(options, spec(shape, n_out), estimator, {})


def test_binarynet_cnn_summary_reproduces_larqs_binarynet_tutorial():
    """Source: Larq's "BinaryNet on CIFAR10" tutorial (larq/docs,
    docs/larq/tutorials/binarynet_cifar10.ipynb), the output of ``lq.models.summary(model)``:
    per-layer 1-bit counts, Total 10352000 1-bit / 7700 32-bit parameters, memory 1293.75 kB,
    510961664 1-bit and 3110400 32-bit MACs; "Total params 10.4 M", "Model size 1.26 MiB",
    "Float-32 Equivalent 39.52 MiB", "Compression Ratio of Memory 0.03", "Number of MACs 514 M",
    "Ratio of MACs that are binarized 0.9939". That network binarizes the kernels of its first
    and last layers too."""
    model = meta_build(BNNOptions(arch="binarynet_cnn", binary_first=True, binary_last=True),
                       (3, 32, 32))  # fmt: skip
    p = profile(model)
    weighted = [r for r in p.rows if r.kind in ("conv", "dense")]
    assert [r.binary_params for r in weighted] == [
        3456, 147456, 294912, 589824, 1179648, 2359296, 4718592, 1048576, 10240,
    ]  # fmt: skip
    assert [r.float_params for r in p.rows if r.kind == "batchnorm"] == [
        256, 256, 512, 512, 1024, 1024, 2048, 2048, 20,
    ]  # fmt: skip
    assert (p.binary_params, p.float_params) == (10_352_000, 7_700)
    assert p.memory_bits / (8 * 1024) == 1293.75
    assert (p.binary_macs, p.macs - p.binary_macs) == (510_961_664, 3_110_400)
    assert readable(p.params) == "10.4 M"
    assert f"{p.memory_mib:.2f}" == "1.26" and f"{p.float32_mib:.2f}" == "39.52"
    assert f"{p.memory_mib / p.float32_mib:.2f}" == "0.03"
    assert readable(p.macs) == "514 M" and f"{p.binary_mac_ratio:.4f}" == "0.9939"
    text = model.summary()
    assert "10,352,000" in text and "1293.75" in text and "0.9939" in text


def test_xnornet_counts_match_larq_zoo():
    """Source: Larq Zoo's XNOR-Net (larq/zoo, larq_zoo/literature/xnornet.py, "ImageNet
    Metrics": Parameters 62 396 768, Memory 22.81 MB). Larq Zoo counts Keras weights: its
    BatchNormalization(scale=False) layers hold 3 numbers per channel (beta, moving mean,
    moving variance), where this summary folds BatchNorm into 2; the rest is the same."""
    p = profile(meta_build(BNNOptions(arch="xnornet"), (3, 224, 224), n_out=1000))
    bn_channels = sum(r.float_params // 2 for r in p.rows if r.kind == "batchnorm")
    dense_conv_float = sum(r.float_params for r in p.rows if r.kind in ("conv", "dense"))
    assert p.binary_params + dense_conv_float + 3 * bn_channels == 62_396_768
    bytes_ = p.binary_params / 8 + 4 * (dense_conv_float + 3 * bn_channels)
    assert f"{bytes_ / 1024**2:.2f}" == "22.81"


@pytest.mark.parametrize(
    ("arch", "shape"),
    [
        ("small_cnn", (1, 8, 8)),
        ("binarynet_mlp", (1, 8, 8)),
        ("binarynet_cnn", (3, 16, 16)),
        pytest.param("xnornet", (3, 219, 219), marks=pytest.mark.slow),  # its smallest input
        ("birealnet18", (3, 16, 16)),
    ],
)
def test_hard_forward_sees_only_plus_minus_one(arch, shape):
    options = BNNOptions(arch=arch, widths=(8, 8, 8) if arch == "binarynet_mlp" else ())
    model = build(options, spec(shape), "htaf", {})
    inputs = []
    for layer in model.quant_layers().values():
        if layer.input_quantizer is not None:
            layer.register_forward_pre_hook(
                lambda m, args: inputs.append(m.input_quantizer(args[0]))
            )
    model.eval()
    htaf.harden(model)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert inputs and all(set(t.unique().tolist()) <= {-1.0, 1.0} for t in inputs)
    for layer in model.binary_layers().values():
        w = layer.kernel_quantizer(layer.weight)
        assert set(w.unique().tolist()) <= {-1.0, 1.0}
    # Bop flips exactly the latent weights of the binary kernels: not the first or last layer's
    binary = [layer.weight for layer in model.binary_layers().values()]
    assert binary and [id(p) for p in model.binary_parameters()] == [id(w) for w in binary]


def test_reference_run_is_full_precision():
    model = build(BNNOptions(), spec((1, 8, 8)), "relu", {})
    assert not model.binary_layers() and not model.binary_parameters()
    assert any(isinstance(m, torch.nn.ReLU) for m in model.modules())
    p = profile(model)
    assert p.binary_params == 0 and p.binary_macs == 0


def test_first_and_last_layers_stay_full_precision_by_default():
    model = build(BNNOptions(), spec((1, 8, 8)), "htaf", {})
    layers = list(model.quant_layers().values())
    assert not layers[0].binary and layers[0].input_quantizer is None  # the image stays real
    assert not layers[-1].binary and layers[-1].input_quantizer is not None
    assert all(layer.binary for layer in layers[1:-1])
    both = build(BNNOptions(binary_first=True, binary_last=True), spec((1, 8, 8)), "htaf", {})
    assert all(layer.binary for layer in both.quant_layers().values())


def test_kernel_quantizer_options():
    same = build(BNNOptions(kernel_quantizer="same"), spec((1, 8, 8)), "htaf", {})
    assert {m.kernel_quantizer.name for m in same.binary_layers().values()} == {"htaf"}
    none = build(BNNOptions(kernel_quantizer="none"), spec((1, 8, 8)), "htaf", {})
    assert not none.binary_layers()
    per_layer = build(BNNOptions(layer_quantizers=("conv1=approx_sign", "conv2=none")),
                      spec((1, 8, 8)), "htaf", {})  # fmt: skip
    binary = per_layer.binary_layers()
    assert binary["conv1"].kernel_quantizer.name == "approx_sign" and "conv2" not in binary


@pytest.mark.parametrize("kernel", ["same", "ste_clipped"])
def test_calibrate_estimates_the_forwards_the_network_does_not_train_in(kernel):
    model = build(BNNOptions(kernel_quantizer=kernel), spec((1, 8, 8)), "htaf(auto)", {})
    trained = model.forward_kind()
    # smooth activations, kernels as they train (hard ste_clipped, or smooth htaf): the
    # engine's smooth forward, whose statistics training updates
    assert trained == "smooth"
    x = torch.randn(64, 1, 8, 8)
    model.train()
    model(x)  # a training step's statistics
    norms = model._norms()
    name = "running" if trained == "mixed" else trained
    before = [getattr(n, f"{name}_mean").clone() for n in norms]
    model.calibrate(x)
    assert all(
        torch.equal(getattr(n, f"{name}_mean"), b) for n, b in zip(norms, before, strict=True)
    )
    for target in {"hard", "smooth"} - {trained}:
        assert all(int(getattr(n, f"{target}_batches")) == 1 for n in norms)
    # the calibrated statistics are those of the hard forward on x
    with htaf.harden(model):
        acts = {}
        norms[1].register_forward_hook(lambda m, i, o: acts.setdefault("x", i[0]))
        model.eval()
        model(x)
    torch.testing.assert_close(norms[1].hard_mean, acts["x"].mean((0, 2, 3)), rtol=1e-4,
                               atol=1e-5)  # fmt: skip


def test_epoch_and_eval_stats():
    model = build(BNNOptions(), spec((1, 8, 8)), "htaf", {})
    for layer in model.binary_layers().values():
        with torch.no_grad():
            layer.weight.neg_()
        layer.constrain_()  # every weight flipped once in one step
    x = torch.randn(32, 1, 8, 8)
    model.eval()
    twin = copy.deepcopy(model)  # the statistics' forwards may update the model's BN state
    stats = model.epoch_stats(x)
    assert stats["flip_ratio"] == {"conv2": 1.0, "conv3": 1.0}
    assert set(stats["near_pm1_05"]) == {"conv2", "conv3", "dense1"}
    # the same numbers from the smooth and the hard forward, observed from outside
    seen = {}
    hooks = [
        layer.input_quantizer.register_forward_hook(
            lambda m, a, out, name=name: seen.setdefault(name, out)
        )
        for name, layer in twin.quant_layers().items()
        if layer.input_quantizer is not None
    ]
    with htaf.soften(twin), torch.no_grad():  # as epoch_stats: the engine's smooth forward
        smooth = twin(x).argmax(1)
    for hook in hooks:
        hook.remove()
    with htaf.harden(twin), torch.no_grad():
        hard = twin(x).argmax(1)
    near = {n: float(((1 - o.abs()).abs() <= 0.05).float().mean()) for n, o in seen.items()}
    assert stats["near_pm1_05"] == pytest.approx(near)
    assert stats["disagreement"] == pytest.approx(float((smooth != hard).float().mean()))
    with htaf.harden(model):
        assert model.eval_stats(x) == {"near_pm1_05": 1.0}
    with htaf.soften(model):
        assert model.eval_stats(x)["near_pm1_05"] < 1.0


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"arch": "resnet50"}, "unknown architecture 'model.arch' = 'resnet50'"),
        ({"kernel_quantizer": "relu"}, "'model.kernel_quantizer' = 'relu' is not an estimator"),
        ({"layer_quantizers": ["conv1"]}, "LAYER=QUANTIZER"),
        ({"layer_quantizers": ["conv1=gelu"]}, "is not an estimator"),
        ({"widths": [8, 8]}, "three convolutions"),
        ({"arch": "xnornet", "widths": [8]}, "applies to small_cnn and binarynet_mlp"),
        ({"scaling": "max"}, "model.scaling"),
    ],
)
def test_bad_options_name_their_key(table, words):
    with pytest.raises(ConfigError) as err:
        model_options("bnn", table)
    assert words in str(err.value)


def test_kernel_quantizer_on_a_layer_that_cannot_take_one():
    with pytest.raises(QuantizerError, match=r"layer 'bn1' \(ModeBatchNorm2d\) has no kernel"):
        build(BNNOptions(layer_quantizers=("bn1=ste",)), spec((1, 8, 8)), "htaf", {})
    with pytest.raises(QuantizerError, match="no layer 'conv9'"):
        build(BNNOptions(layer_quantizers=("conv9=ste",)), spec((1, 8, 8)), "htaf", {})


def test_images_too_small_for_the_architecture():
    with pytest.raises(ArchShapeError) as err:
        build(BNNOptions(arch="binarynet_cnn"), spec((1, 8, 8)), "htaf", {})
    msg = str(err.value)
    assert "'binarynet_cnn'" in msg and "(1, 8, 8)" in msg and "10×10" in msg
    with pytest.raises(ArchShapeError, match="needs images"):
        build(BNNOptions(), DataSpec("table", (64,), 10, "multiclass"), "htaf", {})
    # the MLP takes any input
    mlp = build(BNNOptions(arch="binarynet_mlp", widths=(8,)),
                DataSpec("table", (64,), 3, "multiclass"), "htaf", {})  # fmt: skip
    assert mlp(torch.randn(2, 64)).shape == (2, 3)


def test_profile_rows_and_layer_names_agree():
    model = build(BNNOptions(), spec((1, 8, 8)), "htaf", {})
    p = profile(model)
    assert isinstance(p, ModelProfile)
    assert [r.name for r in p.rows] == [
        "conv1", "bn1", "conv2", "pool1", "bn2", "conv3", "pool2", "bn3", "dense1",
    ]  # fmt: skip
    assert all(isinstance(model.layer_names[r.name], QuantLayer) for r in p.rows
               if r.kind in ("conv", "dense"))  # fmt: skip


def test_profile_of_a_plain_model_runs_a_forward():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))  # fmt: skip
    net.input_shape = (1, 8, 8)
    p = profile(net)
    assert [r.output_shape for r in p.rows] == [(4, 6, 6), (4, 6, 6), (3,)]
    assert p.binary_params == 0 and p.float_params == 40 + 8 + 144 * 3 + 3
    assert p.macs == 36 * 36 + 144 * 3
    assert [r.name for r in p.rows] == ["0", "1", "3"]  # module paths, not class names


def test_profile_infers_a_dense_input_or_asks_for_the_shape():
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    p = profile(net)  # no input_shape: the first Linear's in_features
    assert [(r.name, r.output_shape) for r in p.rows] == [("0", (4,)), ("2", (2,))]
    nested = torch.nn.Sequential()
    nested.add_module("features", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 3)))
    assert [r.name for r in profile(nested).rows] == ["features.1"]
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    with pytest.raises(ValueError, match=r"its first layer is Conv2d\): pass profile\(model, "
                       "input_shape="):  # fmt: skip
        profile(conv)
    assert [r.output_shape for r in profile(conv, (1, 5, 5)).rows] == [(2, 3, 3)]


def test_small_models_print_their_memory_in_bytes_or_kib():
    assert (size(8 * 420), size(3), size(8 * 12800), size(8 * 1024**2 * 1.26)) == (
        "420 B", "0.375 B", "12.50 KiB", "1.26 MiB",
    )  # fmt: skip
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    text = format_summary(profile(net))  # 34 float32 parameters: 136 bytes
    assert "memory: 136 B against 136 B as float32 (compression ratio 1.00)" in text
    assert "0.00 MiB" not in text and "0.01 MiB" not in text
