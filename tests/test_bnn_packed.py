"""The packed model file and the reference packed forward: bits along the input channels,
folded BatchNorm, checksums, and the integer forward bit-exact against the hardened model."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open

from _bnn_packed import float64_preactivations, random_bnn, tiny_run
from htaf.cli import main
from htaf.families.bnn import load_binary
from htaf.families.bnn.export import BinaryExportError, pack_channels, unpack_channels
from htaf.families.bnn.packed import PackedExportError, PackedModel, export_packed


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("run") / "bnn")


def _check_exact(model, packed, x):
    want, pre_want = float64_preactivations(model, x)
    pre = {}
    got = packed(x, pre)
    assert sorted(pre) == sorted(pre_want) and pre  # every binary layer ran on bits
    for name, s in pre.items():
        assert s.dtype == torch.int32
        assert torch.equal(s.double(), pre_want[name]), name  # the same integers
    assert torch.equal(got, want)  # the same float32 logits, hence the same predictions
    return got


def test_pack_channels_layout_and_round_trip():
    w = torch.randn(3, 11, 2, 2)
    bits = pack_channels(w)
    assert bits.shape == (3, 2, 2, 2) and bits.dtype == torch.uint8
    # bit i of byte j holds input channel 8j + i; bits past channel 10 are 0
    for o, c, i, j in [(0, 0, 0, 0), (1, 9, 1, 0), (2, 10, 1, 1)]:
        assert bool(bits[o, i, j, c // 8] >> (c % 8) & 1) == bool(w[o, c, i, j] >= 0)
    assert int(bits[..., 1].max()) < 8
    assert torch.equal(unpack_channels(bits, (3, 11, 2, 2)), torch.where(w >= 0, 1.0, -1.0))


def test_packed_forward_is_bit_exact_on_the_digits_test_split(digits_run, tmp_path):
    model = digits_run.model()
    data = digits_run.dataset()
    path = export_packed(model, tmp_path / "m.htafb", normalize=data.normalize)
    packed = PackedModel(path)
    x = data.float_batch(torch.from_numpy(data.X_test))
    logits = _check_exact(model, packed, x)
    # predict() takes the raw uint8 images and normalizes them as the dataset does
    assert np.array_equal(packed.predict(data.X_test), logits.argmax(1).numpy())


@pytest.mark.parametrize(
    ("arch", "shape", "scaling", "options"),
    [
        ("small_cnn", (1, 8, 8), "none", {}),
        ("small_cnn", (1, 8, 8), "mean_abs", {"pad_value": -1.0}),
        ("small_cnn", (3, 9, 7), "learned", {}),  # odd sizes, negative scales
        ("binarynet_mlp", (1, 8, 8), "learned", {}),
        ("small_cnn", (1, 8, 8), "none", {"binary_first": True, "binary_last": True}),
    ],
)  # fmt: skip
def test_packed_forward_is_bit_exact_on_random_inputs(arch, shape, scaling, options, tmp_path):
    model = random_bnn(arch, shape, scaling, **options)
    packed = PackedModel(export_packed(model, tmp_path / "m.htafb"))
    x = torch.randn(1000, *shape) * 3
    x[:5] = 0.0  # sign(0) = +1 everywhere
    x[5:10] *= 1e30  # extremes stay finite and exact
    _check_exact(model, packed, x)


def test_binarynet_cnn_file_is_a_25th_of_float32_and_bit_exact(tmp_path):
    from safetensors.torch import save

    model = random_bnn("binarynet_cnn", (3, 32, 32))
    path = export_packed(model, tmp_path / "m.htafb")
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if isinstance(v, torch.Tensor)}  # fmt: skip
    ratio = len(save(state)) / path.stat().st_size
    assert ratio >= 25, ratio
    _check_exact(model, PackedModel(path), torch.randn(3, 3, 32, 32))


def test_the_file_holds_bits_thresholds_and_metadata(tmp_path):
    model = random_bnn()
    path = export_packed(model, tmp_path / "m.htafb", options={"arch": "small_cnn"})
    with safe_open(path, "pt") as f:
        meta, keys = f.metadata(), set(f.keys())
        bits = f.get_tensor("body.2.weight_bits")  # conv2: 8 -> 16 channels, 3×3
        threshold = f.get_tensor("body.2.threshold")
    assert bits.dtype == torch.uint8 and bits.shape == (16, 3, 3, 1)
    assert threshold.dtype == torch.int32 and threshold.shape == (16,)
    assert "body.2.weight" not in keys and "body.0.weight" in keys  # first layer in float
    plan = json.loads(meta["plan"])
    assert plan["arch"] == "small_cnn" and plan["options"] == {"arch": "small_cnn"}
    assert [s["op"] for s in plan["steps"]][:3] == ["conv", "bn", "conv"]
    assert meta["htaf_version"] and len(meta["sha256"]) == 64
    # one format: load_binary reads a packed file into a fresh model, same outputs
    fresh = random_bnn(seed=1)
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(load_binary(fresh, path)(x), model(x))


def _flip_tensor_byte(path, name):
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    start = 8 + header_len + header[name]["data_offsets"][0]
    data = bytearray(path.read_bytes())
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_tensor_is_named_by_its_checksum(tmp_path, capsys):
    path = export_packed(random_bnn(), tmp_path / "m.htafb")
    _flip_tensor_byte(path, "body.2.weight_bits")
    with pytest.raises(BinaryExportError, match=r"tensor 'body\.2\.weight_bits' fails its SHA"):
        PackedModel(path)
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    out = tmp_path / "labels.npy"
    assert main(["predict", str(path), str(tmp_path / "x.npy"), "--out", str(out)]) == 2
    assert "body.2.weight_bits" in capsys.readouterr().err and not out.exists()


def test_damaged_metadata_fails_the_payload_checksum(tmp_path):
    from safetensors.torch import save

    from htaf.io import read_safetensors

    path = export_packed(random_bnn(), tmp_path / "m.htafb")
    tensors, meta = read_safetensors(path)
    meta["plan"] = meta["plan"].replace('"pad_value": 1.0', '"pad_value": -1.0')
    path.write_bytes(save(tensors, metadata=meta))
    with pytest.raises(BinaryExportError, match="metadata fails the payload SHA-256"):
        PackedModel(path)


def test_models_the_format_cannot_express_are_refused_and_nothing_is_written(tmp_path):
    out = tmp_path / "m.htafb"
    from htaf.families import DataSpec
    from htaf.families.bnn import BNNOptions, build

    spec = DataSpec("image", (1, 8, 8), 10, "multiclass")
    reference = build(BNNOptions(widths=(4, 4, 4)), spec, "relu", {}).eval()
    with pytest.raises(PackedExportError, match="has no binary layer"):
        export_packed(reference, out)
    zeros = random_bnn(pad_value=0.0)
    with pytest.raises(PackedExportError, match=r"layer conv2: .*pad_value=0"):
        export_packed(zeros, out)
    bireal = random_bnn("birealnet18", (3, 20, 20), "mean_abs")
    with pytest.raises(PackedExportError, match=r"Residual\) cannot be expressed"):
        export_packed(bireal, out)
    soft = random_bnn()
    soft.train()
    import htaf

    htaf.soften(soft)
    with pytest.raises(PackedExportError, match="harden"):
        export_packed(soft, out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 1, 8, 7), np.float32), r"shape \(2, 1, 8, 7\); .* takes \(N, 1, 8, 8\)"),
        (np.zeros((2, 64), np.float32), r"shape \(2, 64\)"),
        (np.zeros((2, 1, 8, 8), np.int64), "dtype int64"),
        (np.zeros((2, 1, 8, 8), bool), "dtype bool"),
        (np.full((2, 1, 8, 8), np.nan, np.float32), "non-finite value"),
    ],
)  # fmt: skip
def test_predict_refuses_bad_input_and_writes_nothing(tmp_path, capsys, array, message):
    path = export_packed(random_bnn(), tmp_path / "m.htafb")
    np.save(tmp_path / "x.npy", array)
    out = tmp_path / "labels.txt"
    assert main(["predict", str(path), str(tmp_path / "x.npy"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "htaf predict: error:" in err
    assert re.search(message, err), err
    assert not out.exists()


def test_predict_reads_no_pickle(tmp_path, capsys):
    path = export_packed(random_bnn(), tmp_path / "m.htafb")
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 2
    assert "without pickle" in capsys.readouterr().err


def test_predict_command_prints_and_writes_labels(tmp_path, capsys):
    model = random_bnn()
    path = export_packed(model, tmp_path / "m.htafb")
    x = np.random.default_rng(0).normal(size=(20, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).argmax(1).numpy()
    np.savez(tmp_path / "x.npz", X_test=x, y_test=want)
    assert main(["predict", str(path), str(tmp_path / "x.npz")]) == 0
    assert capsys.readouterr().out.split() == [str(v) for v in want]
    assert main(["predict", str(path), str(tmp_path / "x.npz"), "--out",
                 str(tmp_path / "y.npy")]) == 0  # fmt: skip
    assert np.array_equal(np.load(tmp_path / "y.npy"), want)


def test_predict_loads_no_training_code(tmp_path):
    path = export_packed(random_bnn(), tmp_path / "m.htafb")
    np.save(tmp_path / "x.npy", np.zeros((3, 1, 8, 8), np.float32))
    code = (
        "import sys, htaf; labels = htaf.bnn.predict(sys.argv[1], sys.argv[2]);"
        "assert len(labels) == 3, labels;"
        "print(sorted(m for m in sys.modules if m.startswith(('htaf.train', 'htaf.experiment',"
        " 'htaf.store', 'htaf.report', 'htaf.api'))))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_export_command_writes_a_packed_file_from_a_run(digits_run, tmp_path, capsys):
    out = tmp_path / "m.htafb"
    assert main(["export", str(digits_run.path), "--format", "packed", "--out", str(out)]) == 0
    data = digits_run.dataset(raw=True)
    np.save(tmp_path / "x.npy", data.X_test)
    buf = tmp_path / "labels.npy"
    assert main(["predict", str(out), str(tmp_path / "x.npy"), "--out", str(buf)]) == 0
    model = digits_run.model()
    with torch.no_grad():
        want = model(digits_run.dataset().float_batch(torch.from_numpy(data.X_test)))
    assert np.array_equal(np.load(buf), want.argmax(1).numpy())
    capsys.readouterr()
    # bad input: exit 2, nothing written
    bad = tmp_path / "bad.htafb"
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(bad)]) == 2
    assert main(["export", str(digits_run.path), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err and not bad.exists()


def test_pad_value_is_a_model_option():
    model = random_bnn(pad_value=-1.0)
    convs = [m for m in model.binary_layers().values() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.pad_value == -1.0 for m in convs)
    assert all(m.pad_value == 1.0 for m in random_bnn().binary_layers().values()
               if isinstance(m, torch.nn.Conv2d))  # fmt: skip
    from htaf.families.bnn import BNNOptions

    with pytest.raises(ValueError, match="pad_value"):
        BNNOptions(pad_value=0.5).check()


def test_version_1_exports_still_load(tmp_path):
    """Version 1 packed the flattened kernel and carried no checksums; it still loads."""
    from safetensors.torch import save

    from htaf.families.bnn.export import export_binary, pack_signs

    model = random_bnn(scaling="mean_abs")
    tensors, meta = export_binary(model)
    for layer in model.binary_layers().values():
        path = next(p for p, m in model.named_modules() if m is layer)
        tensors[f"{path}.weight_bits"] = pack_signs(layer.weight)
    meta["version"] = "1"
    (tmp_path / "v1.safetensors").write_bytes(save(tensors, metadata=meta))
    x = torch.randn(8, 1, 8, 8)
    loaded = load_binary(random_bnn(scaling="mean_abs", seed=3), tmp_path / "v1.safetensors")
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(BinaryExportError, match="not an htaf packed model"):
        PackedModel(tmp_path / "v1.safetensors")


def test_export_command_refuses_a_run_without_binary_layers(tmp_path, capsys):
    run = tiny_run(tmp_path / "relu", estimator="relu")  # the full-precision reference row
    out = tmp_path / "out" / "m.htafb"
    assert main(["export", str(run.path), "--format", "packed", "--out", str(out)]) == 2
    assert "has no binary layer" in capsys.readouterr().err
    assert not out.parent.exists()
