"""The convex family's beta path (warm-started solves, beta chosen by cross-validation), the
scaling of the solver, and the warnings of a solve that stops short of its tolerance."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from htaf.families.convex import model as convex_model
from htaf.families.convex.arrangements import Arrangements, augment
from htaf.families.convex.model import fit_two_layer
from htaf.families.convex.path import (
    beta_grid,
    beta_max,
    check_grid,
    fold_labels,
    lasso_path,
    select_beta,
)
from htaf.families.convex.solver import certificate, solve_lasso
from htaf.sklearn import ConvexThresholdClassifier, ConvexThresholdRegressor


def regression(n=120, d=4, seed=0, noise=0.5, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * (X[:, 2] > 0) + noise * rng.standard_normal(n)
    return X, scale * y


def dense_objective(Hd, y, z, beta):
    r = y - Hd @ z
    return 0.5 * r @ r + beta * np.abs(z).sum()


@pytest.mark.parametrize(
    ("betas", "message"),
    [
        ([], "empty"),
        ([1.0, 0.0], r"betas\[1\] = 0.0"),
        ([1.0, -2.0], r"betas\[1\] = -2.0"),
        ([np.nan], r"betas\[0\] = nan"),
        (["a"], "numbers > 0"),
    ],
)
def test_bad_grids_are_refused_by_name(betas, message):
    with pytest.raises(ValueError, match=message):
        check_grid(betas)
    X, y = regression(40)
    H = Arrangements.sample(X, 50, 0)
    with pytest.raises(ValueError, match=message):
        lasso_path(H, y, betas)


def test_grid_is_decreasing_and_starts_at_beta_max():
    X, y = regression()
    H = Arrangements.sample(X, 300, 0)
    top = beta_max(H, y)
    grid = beta_grid(top, 5, 1e-2)
    assert grid[0] == pytest.approx(top) and grid[-1] == pytest.approx(1e-2 * top)
    assert np.all(np.diff(grid) < 0)
    np.testing.assert_array_equal(check_grid(grid[::-1]), grid)
    with pytest.raises(ValueError, match="top of the beta grid"):
        beta_grid(0.0)


def test_path_matches_a_float64_reference_at_every_beta():
    X, y = regression(80)
    H = Arrangements.sample(X, 400, 1)
    Hd = H.dense()
    top = float(np.abs(Hd.T @ y).max())  # the reference beta_max, in float64
    assert beta_max(H, y) == pytest.approx(top, rel=1e-12)
    grid = beta_grid(top, 6, 1e-2)
    path = lasso_path(H, y, np.r_[1.01 * top, grid])
    assert np.count_nonzero(path.results[0].z) == 0  # above beta_max the solution is 0
    assert all(r.optimal for r in path.results)
    for beta, result in zip(path.betas, path.results, strict=True):
        primal = dense_objective(Hd, y, result.z, beta)
        assert certificate(H, y, result.z, beta)[0] == pytest.approx(primal, rel=1e-12)
        # an independent float64 dual point: the scaled residual, feasible by construction
        r = y - Hd @ result.z
        theta = r * min(1.0, beta / np.abs(Hd.T @ r).max())
        assert np.abs(Hd.T @ theta).max() <= beta * (1 + 1e-12)
        dual = 0.5 * y @ y - 0.5 * (y - theta) @ (y - theta)
        assert 0 <= primal - dual <= 1e-6 * primal
    nonzeros = [np.count_nonzero(r.z) for r in path.results]
    assert nonzeros[1] == 0 and nonzeros[-1] > nonzeros[2] > 0  # z = 0 at beta_max itself


def test_warm_start_needs_fewer_rounds_and_reaches_the_same_optimum():
    X, y = regression(150)
    H = Arrangements.sample(X, 2000, 2)
    top = beta_max(H, y)
    near = solve_lasso(H, y, 0.05 * top)
    cold = solve_lasso(H, y, 0.04 * top)
    warm = solve_lasso(H, y, 0.04 * top, z0=near.z)
    assert warm.optimal and cold.optimal
    assert warm.objective == pytest.approx(cold.objective, rel=1e-6)
    assert warm.iterations < cold.iterations
    with pytest.raises(ValueError, match="z0 must hold"):
        solve_lasso(H, y, 0.04 * top, z0=np.zeros(3))


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_the_solve_is_certified_whatever_the_scale_of_y(scale):
    # z(c y, c beta) = c z(y, beta): a regression target in the hundreds, as diabetes's, and
    # a beta just below beta_max (where the first iterates certify worse than z = 0)
    X, y = regression(100, scale=scale)
    H = Arrangements.sample(X, 500, 3)
    top = beta_max(H, y)
    for fraction in (0.9, 0.1, 0.01):
        result = solve_lasso(H, y, fraction * top)
        assert result.optimal, (scale, fraction, result.relative_gap)
        assert np.count_nonzero(result.z) > 0
        assert np.isfinite(result.z).all()
    unit = solve_lasso(H, y / scale, 0.1 * top / scale)
    scaled = solve_lasso(H, y, 0.1 * top)
    assert scaled.objective == pytest.approx(unit.objective * scale**2, rel=1e-6)


def test_folds_are_stratified_and_cover_every_row():
    y = np.r_[np.ones(30), -np.ones(70)]
    labels = fold_labels(y, 5, np.random.default_rng(0))
    assert set(labels) == set(range(5))
    for k in range(5):
        assert np.sum((labels == k) & (y > 0)) == 6 and np.sum((labels == k) & (y < 0)) == 14


def test_cross_validated_beta_beats_a_tiny_beta_on_noisy_data():
    X, y = regression(200, noise=0.8, seed=4)
    X_test, y_test = regression(2000, noise=0.0, seed=5)
    U = np.random.default_rng(0).standard_normal((X.shape[1] + 1, 1000))
    path = select_beta(X, y, U, rng=0)
    assert path.validation is not None and path.validation.shape == path.betas.shape
    assert 0 < path.chosen < path.betas.size - 1  # neither z = 0 nor the least regularised
    chosen = fit_two_layer(X, y, beta=float(path.betas[path.chosen]), n_directions=1000, rng=0)
    tiny = fit_two_layer(X, y, beta=float(path.betas[-1]), n_directions=1000, rng=0)
    mse = [np.mean((net.predict(X_test) - y_test) ** 2) for net in (chosen, tiny)]
    assert mse[0] < 0.8 * mse[1]
    # the default rule is the best mean loss; the one-standard-error rule picks a beta as large
    # or larger (an index as small or smaller) within one standard error of it
    assert path.chosen == path.extra["min_index"] == int(np.argmin(path.validation))
    one_se = select_beta(X, y, U, rng=0, rule="1se")
    assert one_se.chosen == path.extra["one_se_index"] <= path.chosen
    losses = np.asarray(path.extra["fold_validation"])
    se = losses[:, path.chosen].std(ddof=1) / np.sqrt(losses.shape[0])
    assert path.validation[one_se.chosen] <= path.validation[path.chosen] + se
    assert one_se.chosen == 0 or path.validation[one_se.chosen - 1] > (
        path.validation[path.chosen] + se
    )
    with pytest.raises(ValueError, match="rule must be one of min, 1se"):
        select_beta(X, y, U, rule="median")
    with pytest.raises(ValueError, match="folds"):
        select_beta(X, y, U, folds=1)
    with pytest.raises(ValueError, match="at least 20 rows"):
        select_beta(X[:10], y[:10], U)


def test_auto_beta_in_the_model_records_its_path():
    X, y = regression(100)
    net = fit_two_layer(X, y, beta="auto", n_directions=300, rng=0, center=True)
    path = net.info["path"]
    assert net.info["beta_rule"] == "validation"
    assert net.info["beta"] == pytest.approx(path["betas"][path["chosen"]])
    assert len(path["validation"]) == len(path["betas"]) == len(path["nonzeros"])
    assert net.intercept == pytest.approx(y.mean())
    # the intercept is unpenalised and the network predicts with it
    assert net.predict(X[:5]) == pytest.approx(
        (augment(X[:5]) @ np.vstack([net.layers[0].weight.T, net.layers[0].bias]) >= 0) @ net.output
        + y.mean()
    )
    few = fit_two_layer(X[:10], y[:10], beta="auto", n_directions=50, rng=0)
    assert few.info["beta"] == pytest.approx(1e-3 * 10) and "fewer than" in few.info["beta_rule"]


def test_a_solve_short_of_its_tolerance_warns_naming_the_gap(monkeypatch):
    X, y = regression(100)
    real = convex_model.solve_lasso
    monkeypatch.setattr(
        convex_model, "solve_lasso", lambda *a, **k: real(*a, **{**k, "max_iter": 1})
    )
    with pytest.warns(ConvergenceWarning, match=r"relative duality gap [0-9.e+-]+ > tol 1e-06"):
        reg = ConvexThresholdRegressor(n_directions=200, beta=0.1, random_state=0).fit(X, y)
    assert not reg.solver_info_["optimal"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        monkeypatch.setattr(convex_model, "solve_lasso", real)
        ConvexThresholdRegressor(n_directions=200, beta=0.1, random_state=0).fit(X, y)


def test_sklearn_auto_is_the_default_and_a_float_still_works():
    X, y = regression(120)
    labels = np.where(y > np.median(y), "hi", "lo")
    clf = ConvexThresholdClassifier(n_directions=300, random_state=0).fit(X, labels)
    assert clf.get_params()["beta"] == "auto" and clf.beta_path_ is not None
    assert clf.beta_ == pytest.approx(clf.beta_path_["beta"])
    fixed = ConvexThresholdClassifier(n_directions=300, beta=2.5, random_state=0).fit(X, labels)
    assert fixed.beta_ == 2.5 and fixed.beta_path_ is None
    with pytest.raises(ValueError, match="beta"):
        ConvexThresholdRegressor(beta="fast").fit(X, y)


def test_compare_prints_and_reports_a_solve_short_of_its_tolerance(tmp_path, monkeypatch, capsys):
    from htaf.cli import main

    real = convex_model.solve_lasso
    monkeypatch.setattr(
        convex_model, "solve_lasso", lambda *a, **k: real(*a, **{**k, "max_iter": 1})
    )
    argv = ["compare", "--family", "convex", "--seeds", "1", "--jobs", "1", "--no-progress",
            "--model", "directions=300", "--model", "beta=1.0", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    line = [s for s in out.splitlines() if s.startswith("warning: convex / breast_cancer")]
    assert len(line) == 1 and "relative duality gap" in line[0] and "> tol 1e-06" in line[0]
    report = next(tmp_path.glob("compare-*/report.md")).read_text()
    assert line[0] in report
    # an optimal solve prints no such line
    monkeypatch.setattr(convex_model, "solve_lasso", real)
    assert main([*argv[:-1], str(tmp_path / "ok")]) == 0
    assert "warning: convex" not in capsys.readouterr().out


def test_bits_on_disk_give_the_same_products_and_bad_caches_are_refused(tmp_path):
    X, y = regression(200)
    memory = Arrangements.sample(X, 1500, 0)
    disk = Arrangements.sample(X, 1500, 0, cache_dir=tmp_path)
    assert isinstance(disk.words, np.memmap) and list(tmp_path.iterdir()) == []  # unnamed file
    np.testing.assert_array_equal(disk.words, memory.words)
    np.testing.assert_array_equal(disk.column_counts(), memory.dense().sum(axis=0))
    np.testing.assert_allclose(disk.rmatvec(y), memory.dense().T @ y, rtol=1e-12, atol=1e-12)
    a, b = solve_lasso(disk, y, 1.0), solve_lasso(memory, y, 1.0)
    assert a.optimal and a.objective == pytest.approx(b.objective, rel=1e-9)
    with pytest.raises(ValueError, match="not a folder"):
        Arrangements.sample(X, 100, 0, cache_dir=tmp_path / "missing")


def test_a_cache_folder_that_is_not_writable_is_refused_before_any_work(tmp_path, monkeypatch):
    import os

    from htaf.families.convex import arrangements

    X, y = regression(100)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root writes anyway: make os.access say what it would
        monkeypatch.setattr(arrangements.os, "access", lambda path, mode: False)
    try:
        with pytest.raises(ValueError, match=r"cache_dir .*locked: not writable"):
            fit_two_layer(X, y, beta=1.0, n_directions=100, cache_dir=str(locked))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_p_over_the_memory_cap_says_what_fits():
    X, y = regression(200)  # 4 words (32 bytes) per column
    with pytest.raises(ValueError, match=r"at most P = 312 fit"):
        Arrangements.sample(X, 1000, 0, max_bytes=10_000)
    with pytest.raises(ValueError, match=r"P = 1000 directions at n = 200"):
        fit_two_layer(X, y, beta=1.0, n_directions=1000, max_bytes=10_000)
    assert Arrangements.sample(X, 312, 0, max_bytes=10_000).nbytes <= 10_000


def test_the_path_is_plotted_as_png_and_svg(tmp_path):
    from htaf.studies.convex import plot_beta_path

    X, y = regression(100)
    net = fit_two_layer(X, y, beta="auto", n_directions=300, rng=0)
    paths = plot_beta_path(net.info["path"], tmp_path / "plots", "test")
    assert sorted(p.name for p in paths) == ["beta_path.png", "beta_path.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError, match="validation"):
        plot_beta_path({"betas": [1.0]}, tmp_path / "nothing", "test")
    assert not (tmp_path / "nothing").exists()
