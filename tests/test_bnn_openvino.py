"""The OpenVINO export: BinaryConvolution ops whose integer pre-activations and predictions
equal the reference packed forward's."""

import numpy as np
import pytest
import torch

from _bnn_packed import random_bnn, tiny_run
from htaf.cli import main
from htaf.families.bnn.packed import PackedModel, export_packed

ov = pytest.importorskip("openvino", reason="the OpenVINO export needs the openvino extra")

from htaf.families.bnn.ov_export import OpenVINOModel, export_openvino, openvino_model  # noqa: E402


def _compiled(packed, batch, upto=None):
    graph = openvino_model(packed, batch=batch, upto=upto)
    return ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _layer_types(compiled):
    return {str(n.get_rt_info()["layerType"].astype(str)) for n in
            compiled.get_runtime_model().get_ordered_ops()}  # fmt: skip


def _check_against_reference(packed, x):
    pre = {}
    want = packed(torch.from_numpy(x), pre)
    compiled = _compiled(packed, len(x))
    assert "BinaryConvolution" in _layer_types(compiled)
    for name, s in pre.items():  # the same integers in every binary layer
        got = _compiled(packed, len(x), upto=name)({0: x})[0]
        assert np.array_equal(got, s.numpy().astype(np.float32)), name
    logits = compiled({0: x})[0]
    assert np.array_equal(logits.argmax(1), want.numpy().argmax(1))
    np.testing.assert_allclose(logits, want.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("arch", "shape", "scaling", "options"),
    [
        ("small_cnn", (1, 8, 8), "none", {}),
        ("small_cnn", (1, 8, 8), "mean_abs", {"pad_value": -1.0}),
        ("small_cnn", (3, 9, 7), "learned", {}),
        ("binarynet_mlp", (1, 8, 8), "learned", {}),
        ("small_cnn", (1, 8, 8), "none", {"binary_first": True, "binary_last": True}),
    ],
)  # fmt: skip
def test_openvino_matches_the_reference_on_random_inputs(arch, shape, scaling, options, tmp_path):
    packed = PackedModel(export_packed(random_bnn(arch, shape, scaling, **options),
                                       tmp_path / "m.htafb"))  # fmt: skip
    x = (np.random.default_rng(0).normal(size=(1000, *shape)) * 3).astype(np.float32)
    x[:5] = 0.0
    _check_against_reference(packed, x)


def test_openvino_matches_the_reference_on_binarynet_cnn(tmp_path):
    packed = PackedModel(export_packed(random_bnn("binarynet_cnn", (3, 32, 32)),
                                       tmp_path / "m.htafb"))  # fmt: skip
    _check_against_reference(packed, np.random.default_rng(1).normal(size=(4, 3, 32, 32))
                             .astype(np.float32))  # fmt: skip


def test_export_and_predict_commands_on_the_digits_test_split(tmp_path, capsys):
    run = tiny_run(tmp_path / "run")
    out = tmp_path / "ov"
    assert main(["export", str(run.path), "--format", "openvino", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["htaf.json", "model.bin", "model.xml"]
    assert main(["export", str(run.path), "--format", "packed", "--out",
                 str(tmp_path / "m.htafb")]) == 0  # fmt: skip
    raw = run.dataset(raw=True).X_test
    np.save(tmp_path / "x.npy", raw)
    capsys.readouterr()
    assert main(["predict", str(out), str(tmp_path / "x.npy"), "--threads", "2"]) == 0
    got = np.array(capsys.readouterr().out.split(), dtype=np.int64)
    want = PackedModel(tmp_path / "m.htafb").predict(raw)
    assert np.array_equal(got, want) and len(got) == len(raw)
    model = run.model()
    with torch.no_grad():
        hard = model(run.dataset().float_batch(torch.from_numpy(raw))).argmax(1).numpy()
    assert np.array_equal(got, hard)
    # a non-empty folder is refused, and left as it was
    assert main(["export", str(run.path), "--format", "openvino", "--out", str(out)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["htaf.json", "model.bin", "model.xml"]


def test_openvino_model_takes_any_batch_and_checks_its_input(tmp_path):
    path = export_packed(random_bnn(), tmp_path / "m.htafb")
    model = OpenVINOModel(export_openvino(path, tmp_path / "ov"), threads=1)
    packed = PackedModel(path)
    for n in (1, 7):
        x = np.random.default_rng(n).normal(size=(n, 1, 8, 8)).astype(np.float32)
        assert np.array_equal(model.predict(x), packed.predict(x))
    with pytest.raises(ValueError, match=r"shape \(2, 1, 8, 9\)"):
        model.predict(np.zeros((2, 1, 8, 9), np.float32))
