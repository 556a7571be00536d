"""``htaf study decoupled``: Troiano et al.'s rules, small."""

import json

import numpy as np
import pytest
import torch

from htaf.cli import main
from htaf.studies import decoupled

#: Troiano et al.'s backward rules with their paper's constants (a, b = -0.5, 0.5; w = 1).
RULES = {
    "decoupled_rectangular": lambda x: ((x >= -0.5) & (x <= 0.5)).to(x.dtype),
    "decoupled_triangular": lambda x: torch.clamp(1 - x.abs(), min=0),
    "decoupled_constant": torch.ones_like,
}


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("forward", ["logistic", "relu", "step"])
def test_forward_is_kept_and_backward_is_the_rule(forward, rule):
    act = decoupled.make_activation(f"{forward}/{rule}", generator=None)
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    y = act(x)
    expected = {
        "logistic": torch.sigmoid,
        "relu": torch.relu,
        "step": lambda t: (t >= 0).to(t.dtype),
    }[forward](x.detach())
    torch.testing.assert_close(y.detach(), expected)
    y.sum().backward()
    torch.testing.assert_close(x.grad, RULES[rule](x.detach()))


def test_tied_rows_use_autograd_and_bad_rows_are_refused():
    act = decoupled.make_activation("logistic/tied", generator=None)
    x = torch.tensor([0.3, -1.0], dtype=torch.float64, requires_grad=True)
    act(x).sum().backward()
    s = torch.sigmoid(x.detach())
    torch.testing.assert_close(x.grad, s * (1 - s))
    for bad in ("step/tied", "tanh/decoupled_constant", "logistic/magic", "ht af"):
        with pytest.raises(ValueError):
            decoupled.check_row(bad)


def test_ones_data():
    data = decoupled.ones_data(n=500, d=64, seed=1)
    assert data["X"].shape == (400, 64) and set(np.unique(data["X"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(data["y"], data["X"].mean(axis=1) > 0.5)


@pytest.mark.slow
def test_study_small(tmp_path, capsys):
    out = tmp_path / "dec"
    code = main(
        [
            "study",
            "decoupled",
            "--out",
            str(out),
            "--experiments",
            "mlp,ones,lenet",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    mlp = res["experiments"]["mlp"]["rows"]
    assert set(decoupled.EXPERIMENTS["mlp"].rows) == set(mlp)
    for row in mlp.values():
        assert len(row["finals"]) == 2
        assert row["final_mean"] == pytest.approx(np.mean(row["finals"]))
        assert len(row["curves"]["test_accuracy"]) == 2
    assert mlp["logistic/tied"]["cosine_mean"] == pytest.approx(1.0)
    assert -1 <= mlp["step/decoupled_constant"]["cosine_mean"] <= 1
    assert res["experiments"]["lenet"]["data"].startswith(("digits_images", "mnist"))
    claim = res["constant_vs_tied"]
    tied, constant = mlp["logistic/tied"]["final_mean"], mlp["logistic/decoupled_constant"]
    assert (claim["tied"], claim["constant"]) == (tied, constant["final_mean"])
    names = {p.name for p in out.iterdir()}
    assert {"table.md", "config.json", "curves_mlp.png", "cosine_ones.svg"} <= names
    assert "logistic/decoupled_constant" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0"], "seeds"),
        (["--experiments", "resnet"], "experiments"),
        (["--epochs", "0"], "epochs"),
    ],
)
def test_bad_input_exit_2_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "dec"
    assert main(["study", "decoupled", "--out", str(out), *args]) == 2
    assert not out.exists() and message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("tied", "constant", "points", "holds"),
    [(0.90, 0.95, 5.0, True), (0.90, 0.885, -1.5, True), (0.90, 0.875, -2.5, False)],
)
def test_the_claim_allows_two_points_of_loss(tied, constant, points, holds):
    rows = {"logistic/tied": {"final_mean": tied},
            "logistic/decoupled_constant": {"final_mean": constant}}  # fmt: skip
    claim = decoupled.constant_vs_tied({"mlp": {"rows": rows}})
    assert claim["constant_minus_tied_points"] == pytest.approx(points)
    assert claim["holds"] is holds
    assert decoupled.constant_vs_tied({"mlp": {"rows": {}}}) == {}
