"""The convex family's linear skip term (ridge decay, free bias, eliminated in closed form),
repeated K-fold selection of beta and the selection rules."""

import numpy as np
import pytest
import torch

from htaf.estimators import harden
from htaf.families.convex import ConvexOptions
from htaf.families.convex.arrangements import Arrangements
from htaf.families.convex.model import fit_two_layer
from htaf.families.convex.network import ConvexThresholdNetwork
from htaf.families.convex.path import select_beta
from htaf.families.convex.skip import RidgeSkip, Whitened, skip_decay
from htaf.families.convex.solver import solve_lasso
from htaf.sklearn import ConvexThresholdClassifier, ConvexThresholdRegressor


def table(n=90, d=4, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ np.arange(1.0, d + 1) + np.sin(3 * X[:, 0]) + noise * rng.standard_normal(n)
    return X, y


def ridge_value(X, r, lam):
    """min over (w, b) of 1/2 ||r - X w - b||^2 + lam/2 ||w||^2, by the normal equations of
    [X, 1] with the bias unpenalised (an independent float64 reference)."""
    Xa = np.hstack([X, np.ones((len(X), 1))])
    D = np.diag(np.r_[np.full(X.shape[1], lam), 0.0])
    coef = np.linalg.lstsq(Xa.T @ Xa + D, Xa.T @ r, rcond=None)[0]  # least norm at lam = 0
    res = r - Xa @ coef
    return 0.5 * res @ res + 0.5 * lam * coef[:-1] @ coef[:-1], coef


@pytest.mark.parametrize("lam", [0.0, 0.7, 50.0])
def test_whitened_design_matches_a_dense_float64_reference(lam):
    X, y = table(70)
    X[:, 3] = X[:, 2]  # a duplicated column: the skip's basis drops the null direction
    H = Arrangements.sample(X, 120, 0)
    skip = RidgeSkip.of(X)
    design = Whitened(H, skip.Q, Whitened.project(H, skip.Q), skip.shrinkage(lam))
    Hd, LHd = H.dense(), design.dense()
    rng = np.random.default_rng(1)
    z, r = rng.standard_normal(H.n_columns), rng.standard_normal(H.n)
    np.testing.assert_allclose(design.matvec(z), LHd @ z, atol=1e-10)
    np.testing.assert_allclose(design.rmatvec(r), LHd.T @ r, atol=1e-10)
    ws = np.array([0, 3, 7, 11, 50])
    np.testing.assert_allclose(design.gram(ws), LHd[:, ws].T @ LHd[:, ws], atol=1e-9)
    np.testing.assert_allclose(design.column_counts(), (LHd**2).sum(0), atol=1e-9)
    # ||L r||^2 is the ridge regression's value on r: w and b are eliminated exactly
    residual = y - Hd @ z
    value, coef = ridge_value(X, residual, lam)
    assert 0.5 * np.sum(design.whiten(residual) ** 2) == pytest.approx(value, rel=1e-9)
    w, b = skip.fit(residual, lam)
    np.testing.assert_allclose(X @ w + b, np.hstack([X, np.ones((70, 1))]) @ coef, atol=1e-8)


def test_skip_decay_is_beta_over_the_standard_deviation():
    y = np.array([1.0, 3.0, 5.0, 7.0])
    assert skip_decay(2.0, y) == pytest.approx(2.0 / np.std(y))
    assert skip_decay(2.0, 10 * y + 4) == pytest.approx(0.2 / np.std(y))
    assert skip_decay(3.0, np.ones(5)) == 3.0  # constant y: no scale, sigma taken as 1


def test_the_program_with_a_skip_is_certified_and_matches_cvxpy():
    cp = pytest.importorskip("cvxpy", reason="the CVXPY reference of the joint program")
    X, y = table(60)
    beta = 2.0
    net = fit_two_layer(X, y, beta=beta, n_directions=150, rng=0, linear=True)
    assert net.info["optimal"] and net.info["relative_gap"] <= 1e-6
    lam = net.linear_decay
    assert lam == pytest.approx(skip_decay(beta, y))
    # the same program over (z, w, b) at once, on the same columns
    H = Arrangements.from_directions(
        np.hstack([X, np.ones((60, 1))]), np.random.default_rng(0).standard_normal((5, 150))
    ).dense()
    z, w, b = cp.Variable(H.shape[1]), cp.Variable(4), cp.Variable()
    objective = (
        0.5 * cp.sum_squares(H @ z + X @ w + b - y)
        + beta * cp.norm1(z)
        + lam / 2 * cp.sum_squares(w)
    )
    problem = cp.Problem(cp.Minimize(objective))
    problem.solve(solver=cp.CLARABEL)
    assert net.objective(X, y, beta) == pytest.approx(problem.value, rel=1e-6)
    assert net.info["network_objective"] == pytest.approx(problem.value, rel=1e-6)
    np.testing.assert_allclose(net.predict(X), H @ z.value + X @ w.value + b.value, atol=1e-3)


def test_above_beta_max_the_network_is_a_ridge_regression():
    X, y = table(80)
    net = fit_two_layer(X, y, beta=1e6, n_directions=100, rng=0, linear=True)
    assert net.output.size == 0 and net.linear is not None
    _, coef = ridge_value(X, y, net.linear_decay)
    np.testing.assert_allclose(net.linear, coef[:-1], atol=1e-9)
    assert net.intercept == pytest.approx(coef[-1])


def test_without_the_skip_the_old_program_is_unchanged():
    X, y = table(80)
    old = fit_two_layer(X, y, beta=1.0, n_directions=100, rng=0, center=True)
    H = Arrangements.sample(X, 100, 0)
    ref = solve_lasso(H, y - y.mean(), 1.0)
    assert old.linear is None and old.info["linear"] is False
    assert old.info["objective"] == pytest.approx(ref.objective, rel=1e-9)


def test_repeated_folds_average_every_deal_and_the_rules_pick_their_index():
    X, y = table(100)
    U = np.random.default_rng(0).standard_normal((5, 200))
    path = select_beta(X, y, U, rng=0, linear=True, repeats=3, rule="auto")
    losses = np.asarray(path.extra["fold_validation"])
    assert losses.shape[0] == 15 and path.extra["repeats"] == 3
    np.testing.assert_allclose(path.validation, losses.mean(axis=0))
    assert path.extra["rule"] == "1se" and path.chosen == path.extra["one_se_index"]
    signs = np.where(y > np.median(y), 1.0, -1.0)
    path = select_beta(X, signs, U, rng=0, linear=True, repeats=2, rule="auto")
    assert path.extra["rule"] == "min" and path.chosen == path.extra["min_index"]
    path = select_beta(X, y, U, rng=0, linear=False, rule="auto")
    assert path.extra["rule"] == "min"
    with pytest.raises(ValueError, match="repeats"):
        select_beta(X, y, U, repeats=0)


def test_the_skip_beats_the_plain_program_on_a_linear_target():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((260, 6))
    y = X @ rng.standard_normal(6) + 0.5 * rng.standard_normal(260)
    fits = {
        linear: fit_two_layer(
            X[:200], y[:200], beta="auto", n_directions=300, rng=0, center=True, linear=linear
        )
        for linear in (False, True)
    }
    test = X[200:], y[200:]
    r2 = {k: 1 - np.mean((f.predict(test[0]) - test[1]) ** 2) / np.var(test[1])
          for k, f in fits.items()}  # fmt: skip
    assert r2[True] > r2[False] + 0.05 and r2[True] > 0.8
    assert np.isfinite(fits[True].predict(1e6 * X[:5])).all()  # extreme inputs stay finite


def test_the_engine_model_with_a_skip_predicts_as_the_network():
    X, y = table(60)
    options = ConvexOptions(beta=1e6, directions=80)  # every unit priced out: 0 units
    model = ConvexThresholdNetwork(4, options, seed=0)
    info = model.fit_closed_form(torch.as_tensor(X), torch.as_tensor(y), "regression")
    assert info["units"] == 0 and info["linear"] is True
    x = torch.as_tensor(X, dtype=torch.float32)
    _, coef = ridge_value(X, y, info["linear_decay"])
    with torch.no_grad():
        smooth = model(x).numpy().reshape(-1)  # htaf(auto) calibrates on the placeholder unit
        with harden(model):
            hard = model(x).numpy().reshape(-1)
    reference = np.hstack([X, np.ones((60, 1))]) @ coef
    np.testing.assert_allclose(hard, reference, atol=1e-4)
    np.testing.assert_allclose(smooth, reference, atol=1e-4)
    fresh = ConvexThresholdNetwork(4, options, seed=0)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad(), harden(fresh):
        np.testing.assert_allclose(fresh(x).numpy().reshape(-1), hard, atol=1e-6)


def test_sklearn_options_and_their_errors():
    X, y = table(80)
    reg = ConvexThresholdRegressor(n_directions=200, random_state=0).fit(X, y)
    assert reg.network_.linear is not None and reg.solver_info_["path"]["repeats"] == 3
    assert reg.solver_info_["path"]["rule"] == "1se"
    with pytest.raises(ValueError, match="linear skip term"):
        reg.to_dhn()
    plain = ConvexThresholdRegressor(n_directions=200, random_state=0, linear=False, cv_repeats=1)
    assert plain.fit(X, y).network_.linear is None
    labels = y > np.median(y)
    clf = ConvexThresholdClassifier(n_directions=200, random_state=0).fit(X, labels)
    assert clf.solver_info_["path"]["rule"] == "min" and clf.score(X, labels) > 0.9
    for bad, name in [({"linear": "yes"}, "linear"), ({"cv_repeats": 0}, "cv_repeats"),
                      ({"cv_rule": "median"}, "cv_rule")]:  # fmt: skip
        with pytest.raises(ValueError, match=name):
            ConvexThresholdRegressor(**bad).fit(X, y)
    with pytest.raises(ValueError, match="cv_repeats"):
        ConvexOptions(cv_repeats=0).check()
    with pytest.raises(ValueError, match="cv_rule"):
        ConvexOptions(cv_rule="median").check()


def test_the_model_summary_counts_the_skip_weights():
    def params(net):
        return sum(r.binary_params + r.float_params for r in net.profile().rows)

    with_skip = ConvexThresholdNetwork(7, ConvexOptions(), seed=0)
    plain = ConvexThresholdNetwork(7, ConvexOptions(linear=False), seed=0)
    assert params(with_skip) == sum(p.numel() for p in with_skip.parameters())
    assert params(with_skip) - params(plain) == 7
    assert "skip" in with_skip.summary() and "skip" not in plain.summary()
