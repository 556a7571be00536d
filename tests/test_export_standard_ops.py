"""Hardened models leave PyTorch in standard operators: jit.trace, torch.export and ONNX.

An exported graph is an inference graph: the exact step becomes a compare and a select, never
htaf's custom operators, which no other runtime knows. onnxruntime runs the ONNX file and must
agree with the hardened PyTorch model.
"""

import pytest
import torch

import htaf
from htaf.families.bnn import Binarization, build_arch
from htaf.families.dhn import DHN

onnxruntime = pytest.importorskip("onnxruntime", reason="the [onnx] extra runs the ONNX files")


def _bnn(estimator: str) -> torch.nn.Module:
    model = build_arch("small_cnn", Binarization(estimator, {}), (1, 8, 8), 10)
    model.train()
    for _ in range(3):  # estimate the batch-norm statistics, so that eval mode uses them
        model(torch.randn(16, 1, 8, 8))
    return model.eval()


def _dhn(estimator: str) -> torch.nn.Module:
    return DHN(12, 3, (16, 8), estimator, batch_norm=True).eval()


CASES = [
    ("bnn-ste", lambda: _bnn("ste"), (5, 1, 8, 8)),
    ("bnn-htaf", lambda: _bnn("htaf(2,11)"), (5, 1, 8, 8)),
    ("dhn-htaf", lambda: _dhn("htaf(2,11)"), (5, 12)),
    ("dhn-atan", lambda: _dhn("atan"), (5, 12)),
]


def _hardened(make):
    model = make()
    htaf.harden(model, which="both")
    return model


@pytest.mark.parametrize(("name", "make", "shape"), CASES, ids=[c[0] for c in CASES])
def test_jit_trace_passes_its_sanity_check_with_gradients_enabled(name, make, shape):
    model = _hardened(make)
    x = torch.randn(*shape)
    assert torch.is_grad_enabled()
    traced = torch.jit.trace(model, x)  # raises TracingCheckError when the check fails
    other = torch.randn(*shape) * 3
    torch.testing.assert_close(traced(other), model(other), rtol=0, atol=0)


@pytest.mark.parametrize(("name", "make", "shape"), CASES, ids=[c[0] for c in CASES])
def test_torch_export_has_no_custom_operator(name, make, shape):
    model = _hardened(make)
    x = torch.randn(*shape)
    program = torch.export.export(model, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not [t for t in targets if t.startswith("htaf")], targets
    torch.testing.assert_close(program.module()(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize(("name", "make", "shape"), CASES, ids=[c[0] for c in CASES])
def test_onnx_export_runs_in_onnxruntime_with_the_same_outputs(name, make, shape, tmp_path):
    pytest.importorskip("onnxscript", reason="torch.onnx.export needs onnxscript")
    model = _hardened(make)
    x = torch.randn(*shape)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
    import onnx

    graph = onnx.load(str(path)).graph
    domains = {node.domain for node in graph.node}
    assert domains <= {"", "ai.onnx"}, domains  # standard operators only
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name_in,) = [i.name for i in session.get_inputs()]
    for trial in range(3):
        xs = torch.randn(*shape, generator=torch.Generator().manual_seed(trial)) * (1 + 10 * trial)
        (got,) = session.run(None, {name_in: xs.numpy()})
        want = model(xs).detach()
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-5)
        assert torch.equal(torch.from_numpy(got).argmax(1), want.argmax(1))


def test_the_training_forward_keeps_its_backward_rule():
    # Export must not change the eager path: the hard forward still carries the rule.
    model = _hardened(lambda: _dhn("htaf(2,11)")).train()
    x = torch.randn(8, 12, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
