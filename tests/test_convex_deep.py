"""The deep (shattered) convex program, its staircase rebuild, and the objective J."""

import numpy as np
import pytest

from htaf.families.convex.deep import fit_deep, program_value, shattered_program, staircase
from htaf.families.convex.model import fit_two_layer, regularised_objective


def brute_force(y, beta):
    """min over a fine grid of the two levels of 1/2 ||clip(y) - y||^2 + beta (t+ + t-)."""
    grid_pos = np.linspace(0, max(y.max(), 0), 2001)
    grid_neg = np.linspace(0, max(-y.min(), 0), 2001)
    pos = [0.5 * np.sum(np.maximum(y - t, 0) ** 2) + beta * t for t in grid_pos]
    neg = [0.5 * np.sum(np.maximum(-y - t, 0) ** 2) + beta * t for t in grid_neg]
    return min(pos) + min(neg)


@pytest.mark.parametrize("beta", [0.01, 0.5, 3.0, 100.0])
def test_closed_form_is_optimal(beta):
    rng = np.random.default_rng(0)
    y = rng.standard_normal(40)
    delta, info = shattered_program(y, beta)
    assert info["optimal"] and info["gap"] <= 1e-12 * max(info["objective"], 1)
    assert info["objective"] == pytest.approx(program_value(delta, y, beta))
    assert info["objective"] <= brute_force(y, beta) + 1e-9
    assert info["objective"] == pytest.approx(brute_force(y, beta), abs=1e-3 * beta + 1e-6)


def test_closed_form_matches_cvxpy():
    pytest.importorskip("cvxpy")
    rng = np.random.default_rng(1)
    y = np.where(rng.random(30) < 0.4, 1.0, -1.0) + 0.1 * rng.standard_normal(30)
    ours, a = shattered_program(y, 0.3)
    ref, b = shattered_program(y, 0.3, solver="cvxpy")
    assert a["objective"] == pytest.approx(b["objective"], rel=1e-6)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_staircase_telescopes_to_delta():
    delta = np.array([0.5, -0.2, 0.5, 0.1, 0.0, -0.7, 0.3])
    targets, weights = staircase(delta)
    np.testing.assert_allclose(targets @ weights, delta, atol=1e-15)
    assert np.abs(weights).sum() == pytest.approx(0.5 + 0.7)
    assert set(np.unique(targets)) <= {0.0, 1.0}


@pytest.mark.parametrize("reconstruction", ["pinv", "svm"])
def test_deep_network_reproduces_the_program(reconstruction):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 6))
    y = np.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0)  # not linearly separable
    net = fit_deep(X, y, beta=0.06, width=300, reconstruction=reconstruction, rng=0)
    assert net.info["rebuild_exact"] == 1.0 and net.info["optimal"]
    assert net.info["network_objective"] == pytest.approx(net.info["objective"], rel=1e-9)
    assert net.widths == (300, 2)  # ±1 labels: two staircase units
    assert np.all(np.sign(net.predict(X)) == y)
    assert net.objective(X, y, 0.06) == pytest.approx(
        regularised_objective(net.predict(X), y, net.output, 0.06)
    )


def test_two_layer_objective_is_the_lasso_value_and_split_is_balanced():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 4))
    y = np.where(X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.3, 1.0, -1.0)
    net = fit_two_layer(X, y, beta=0.05, n_directions=400, rng=0)
    assert net.info["optimal"]
    assert net.info["network_objective"] == pytest.approx(net.info["objective"], rel=1e-9)
    np.testing.assert_allclose(net.amplitudes * net.output_weights, net.output)
    np.testing.assert_allclose(np.abs(net.amplitudes), np.abs(net.output_weights))
    assert net.widths == (net.info["units"],) and net.info["units"] == np.count_nonzero(net.output)


def test_bad_arguments():
    X, y = np.zeros((5, 2)), np.ones(5)
    with pytest.raises(ValueError, match="beta"):
        fit_two_layer(X, y, beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        fit_deep(X, y, beta=-1.0)
    with pytest.raises(ValueError, match="reconstruction"):
        fit_deep(X, y, reconstruction="lstsq")
    with pytest.raises(ValueError, match="width"):
        fit_deep(X, y, width=0)
    with pytest.raises(ValueError, match="n_directions"):
        fit_two_layer(X, y, n_directions=0)
