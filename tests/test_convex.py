"""The convex family's arrangement matrix (bits) and Lasso solver, against float64 references."""

import itertools
import sys

import numpy as np
import pytest

from htaf.families.convex import _kernels
from htaf.families.convex.arrangements import Arrangements, augment, pack_columns
from htaf.families.convex.solver import certificate, solve_lasso


def teacher(n, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(np.tanh(X @ rng.standard_normal(d)) + 0.3 * rng.standard_normal(n) >= 0, 1.0, -1.0)
    return X, y


@pytest.fixture(params=["c", "numpy"])
def backend(request, monkeypatch):
    """Run a test with the C kernels and with the numpy fallback."""
    if request.param == "numpy":
        monkeypatch.setattr(_kernels, "load", lambda: None)
    elif _kernels.load() is None:
        pytest.skip("no C compiler here: the numpy path is tested on its own")
    return request.param


def test_pack_columns_bit_order():
    bits = np.zeros((70, 2), dtype=bool)
    bits[[0, 3, 64, 69], 0] = True
    bits[1, 1] = True
    words = pack_columns(bits)
    assert words.shape == (2, 2) and words.dtype == np.uint64
    assert words[0, 0] == (1 << 0) | (1 << 3) and words[0, 1] == (1 << 0) | (1 << 5)
    assert words[1, 0] == 2 and words[1, 1] == 0


def test_arrangements_equal_the_dense_definition_without_duplicates(backend):
    X, _ = teacher(90)
    rng = np.random.default_rng(1)
    U = rng.standard_normal((X.shape[1] + 1, 300))
    U[:, 10] = 3.0 * U[:, 4]  # same pattern as column 4: dropped
    U[:, 20] = 0.0
    U[-1, 20] = -1.0  # never fires: the all-zero column, dropped
    H = Arrangements.from_directions(augment(X), U)
    dense = (augment(X) @ U >= 0).astype(float)
    kept = [tuple(u) for u in H.directions.T]
    assert tuple(U[:, 4]) in kept and tuple(U[:, 10]) not in kept  # the first drawn is kept
    assert tuple(U[:, 20]) not in kept
    expected = (augment(X) @ H.directions >= 0).astype(float)
    np.testing.assert_array_equal(H.dense(), expected)
    # every distinct non-zero pattern of the dense matrix is kept exactly once
    distinct = {tuple(c) for c in dense.T if c.any()}
    assert {tuple(c) for c in H.dense().T} == distinct and H.n_columns == len(distinct)
    assert H.nbytes == H.n_columns * 2 * 8  # 90 rows: two 64-bit words per column


def test_products_from_bits_match_float64(backend):
    X, _ = teacher(130)
    H = Arrangements.sample(X, 400, rng=3)
    D = H.dense()
    rng = np.random.default_rng(4)
    r = rng.standard_normal(130)
    np.testing.assert_allclose(H.rmatvec(r), D.T @ r, rtol=1e-12, atol=1e-12)
    z = np.zeros(H.n_columns)
    z[[0, 7, 99]] = [1.5, -2.0, 0.25]
    np.testing.assert_allclose(H.matvec(z), D @ z, rtol=0, atol=1e-12)
    cols = np.array([5, 1, 300, 42])
    np.testing.assert_array_equal(H.gram(cols), D[:, cols].T @ D[:, cols])
    np.testing.assert_array_equal(H.column_counts(), D.sum(axis=0))


def test_sample_rejects_nonpositive_directions():
    X, _ = teacher(20)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="n_directions"):
            Arrangements.sample(X, bad)


def kkt_violation(H, y, z, beta):
    """Largest violation of the Lasso optimality conditions, relative to beta (float64)."""
    D = H.dense()
    c = D.T @ (y - D @ z)
    on = z != 0
    off = np.maximum(np.abs(c[~on]) - beta, 0).max(initial=0.0)
    on_err = np.abs(c[on] - beta * np.sign(z[on])).max(initial=0.0)
    return max(off, on_err) / beta


@pytest.mark.parametrize("beta", [0.05, 1.0, 5.0])
def test_solution_meets_the_optimality_conditions(backend, beta):
    X, y = teacher(60)
    H = Arrangements.sample(X, 500, rng=0)
    res = solve_lasso(H, y, beta, tol=1e-9)
    assert res.optimal and res.gap <= 1e-9 * res.objective
    assert kkt_violation(H, y, res.z, beta) < 1e-5
    D = H.dense()
    r = y - D @ res.z
    assert res.objective == pytest.approx(0.5 * r @ r + beta * np.abs(res.z).sum(), rel=1e-12)
    assert np.count_nonzero(res.z) <= 2 * len(y)  # sparse, not an interior point
    info = res.info()
    assert info["optimal"] is True and info["nonzeros"] == np.count_nonzero(res.z)


def test_matches_cvxpy_reference():
    pytest.importorskip("cvxpy")
    X, y = teacher(40)
    H = Arrangements.sample(X, 300, rng=2)
    ours = solve_lasso(H, y, 0.2, tol=1e-8)
    ref = solve_lasso(H, y, 0.2, solver="cvxpy", tol=1e-6)
    assert ref.solver == "cvxpy" and ours.solver == "working_set"
    assert ours.objective <= ref.objective * (1 + 1e-7)
    assert ours.objective == pytest.approx(ref.objective, rel=1e-6)
    assert ref.gap >= 0 and ref.optimal


def test_compact_mode_reaches_the_same_certified_optimum(backend, monkeypatch):
    from htaf.families.convex import solver

    X, y = teacher(80)
    H = Arrangements.sample(X, 800, rng=1)
    reference = solve_lasso(H, y, 0.1, tol=1e-10)
    monkeypatch.setattr(solver, "COMPACT_FROM", 0)  # every working set in one k x k buffer
    symmetrized = []
    original = solver._symmetrize
    monkeypatch.setattr(solver, "_symmetrize", lambda M, d: symmetrized.append(1) or original(M, d))
    res = solve_lasso(H, y, 0.1, tol=1e-10)
    assert symmetrized  # the compact path ran
    assert res.optimal and res.gap <= 1e-10 * res.objective
    assert res.objective == pytest.approx(reference.objective, rel=1e-9)
    assert kkt_violation(H, y, res.z, 0.1) < 1e-5


def test_symmetrize_restores_the_matrix_from_its_lower_triangle():
    from htaf.families.convex.solver import _symmetrize

    rng = np.random.default_rng(0)
    A = rng.standard_normal((1100, 1100))
    S = A + A.T
    M = np.tril(S, -1) + np.triu(rng.standard_normal(S.shape))  # upper triangle: garbage
    _symmetrize(M, np.diag(S).copy(), rows=256)
    np.testing.assert_array_equal(M, S)


def test_prune_drops_negligible_weights_only_while_the_certificate_holds():
    from htaf.families.convex.solver import _prune

    X, y = teacher(60)
    H = Arrangements.sample(X, 500, rng=0)
    res = solve_lasso(H, y, 0.5, tol=1e-9)
    zero = np.flatnonzero(res.z == 0)[:50]
    noisy = res.z.copy()
    noisy[zero] = 1e-14 * np.abs(res.z).max()  # interior-point residue on unused columns
    pruned = _prune(H, y, noisy, 0.5, 1e-6)
    np.testing.assert_array_equal(pruned, res.z)
    primal, dual, _, _ = certificate(H, y, pruned, 0.5)
    assert primal - dual <= 1e-6 * primal
    # weights that matter are kept: nothing under 1e-6 x max can be dropped at tol 1e-14
    assert np.array_equal(_prune(H, y, noisy, 0.5, 1e-14), noisy)
    # every certified solve comes back pruned: no weight under 1e-12 of the largest
    small = np.abs(res.z[res.z != 0]) < 1e-12 * np.abs(res.z).max()
    assert not small.any()


def test_working_set_grows_by_a_quarter_of_the_support_after_a_sparse_round():
    from htaf.families.convex import solver

    X, y = teacher(300, d=8)
    H = Arrangements.sample(X, 6000, rng=0)
    res = solve_lasso(H, y, 0.05, tol=1e-8)
    assert res.optimal
    rounds = res.history
    sparse_rounds = 0
    for before, now in itertools.pairwise(rounds):
        if "working_set" not in now:
            continue
        kept = now.get("basis", now["support"])  # a large support is kept as its basis
        if kept < solver.SPARSE * before["working_set"]:
            sparse_rounds += 1
            grown = kept + int(solver.SPARSE_GROWTH * kept)
            assert now["working_set"] == max(solver.WS_START, grown)
    assert sparse_rounds >= 1


def test_basis_of_a_degenerate_optimum_is_independent_and_keeps_the_optimum(backend):
    from htaf.families.convex.solver import _basis, _interior_point

    X, y = teacher(80)
    H = Arrangements.sample(X, 800, rng=0)
    beta, every = 0.02, np.arange(H.n_columns)
    # more columns than rows: the interior point returns the dense centre of the optimal face
    w, _ = _interior_point(H.gram(every), H.rmatvec(y), float(y @ y), beta, 1e-12)
    support, D = np.flatnonzero(w), H.dense()
    rank = np.linalg.matrix_rank(D[:, support])
    assert support.size > rank
    basis = _basis(H, every, w)
    assert np.all(np.diff(basis) > 0) and np.isin(basis, support).all()
    assert np.linalg.matrix_rank(D[:, basis]) == basis.size <= rank
    # the Lasso on the basis alone reaches the optimum over every column (CVXPY's)
    on_basis = Arrangements(H.words[basis], H.n, H.directions[:, basis])
    reduced = solve_lasso(on_basis, y, beta, tol=1e-10)
    reference = solve_lasso(H, y, beta, solver="cvxpy")
    assert reduced.objective == pytest.approx(reference.objective, rel=1e-6)
    everything = solve_lasso(H, y, beta, tol=1e-10)
    assert reduced.objective == pytest.approx(everything.objective, rel=1e-9)


def test_basis_weights_prefer_heavy_columns_and_drop_negligible_ones():
    from htaf.families.convex.solver import _basis

    # columns: a = rows {0, 1}, b = row {0}, c = row {1} (a = b + c), d = row {2}
    bits = np.zeros((5, 4), dtype=bool)
    bits[[0, 1], 0], bits[0, 1], bits[1, 2], bits[2, 3] = True, True, True, True
    H = Arrangements(pack_columns(bits), 5, np.empty((0, 4)))
    every = np.arange(4)
    # a heavy: a first, then one of b, c spans the rest; d's residue-sized weight is dropped
    basis = _basis(H, every, np.array([1.0, 0.1, -0.1, 1e-14]))
    assert basis.size == 2 and basis[0] == 0 and basis[1] in (1, 2)
    # b and c heavy: they are kept, a (in their span) is not
    assert list(_basis(H, every, np.array([0.01, 1.0, 1.0, 0.5]))) == [1, 2, 3]
    assert _basis(H, every, np.zeros(4)).size == 0


def test_solver_keeps_a_basis_of_large_supports_and_still_certifies(monkeypatch):
    from htaf.families.convex import solver

    X, y = teacher(80)
    H = Arrangements.sample(X, 800, rng=0)
    reference = solve_lasso(H, y, 0.02, solver="cvxpy")
    monkeypatch.setattr(solver, "BASIS_FROM", 1)  # every round reduces its support
    res = solve_lasso(H, y, 0.02, tol=1e-8)
    assert res.optimal and res.objective == pytest.approx(reference.objective, rel=1e-6)
    rounds = [r for r in res.history if "basis" in r]
    assert rounds and all(r["basis"] <= min(r["support"], H.n) for r in rounds)
    assert kkt_violation(H, y, res.z, 0.02) < 1e-4


def test_the_gap_bounds_the_suboptimality_of_any_point():
    X, y = teacher(50)
    H = Arrangements.sample(X, 200, rng=5)
    best = solve_lasso(H, y, 0.3, tol=1e-10).objective
    rng = np.random.default_rng(0)
    for _ in range(5):
        z = rng.standard_normal(H.n_columns) * (rng.random(H.n_columns) < 0.05)
        primal, dual, _, _ = certificate(H, y, z, 0.3)
        assert dual <= best * (1 + 1e-9) and primal - dual >= primal - best - 1e-9


def test_zero_target_and_time_budget():
    X, y = teacher(30)
    H = Arrangements.sample(X, 100, rng=0)
    zero = solve_lasso(H, np.zeros(30), 0.1)
    assert zero.optimal and not zero.z.any() and zero.objective == 0.0
    stopped = solve_lasso(H, y, 0.1, max_time_s=0.0)
    assert not stopped.optimal and stopped.gap > 0  # it returns, saying it is not optimal


def test_bad_input_names_the_parameter(monkeypatch):
    X, y = teacher(20)
    H = Arrangements.sample(X, 50, rng=0)
    for beta in (0, -1.0, float("nan"), None):
        with pytest.raises(ValueError, match="beta"):
            solve_lasso(H, y, beta)
    with pytest.raises(ValueError, match="tol"):
        solve_lasso(H, y, 0.1, tol=0)
    with pytest.raises(ValueError, match="solver"):
        solve_lasso(H, y, 0.1, solver="mosek")
    with pytest.raises(ValueError, match="rows"):
        solve_lasso(H, y[:-1], 0.1)
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # as if CVXPY were not installed
    with pytest.raises(ValueError, match=r"pip install 'htaf\[convex\]'"):
        solve_lasso(H, y, 0.1, solver="cvxpy")


@pytest.mark.slow
def test_ten_thousand_by_hundred_thousand_fits_in_150_mb():
    """The memory figure: H at n = 10 000, P = 100 000 holds <= 150 MB, and the solve finishes
    (with a time budget; it reports whether it reached its tolerance)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    X = rng.standard_normal((10_000, 20))
    y = np.where(np.tanh(X @ rng.standard_normal(20)) >= 0, 1.0, -1.0)
    tracemalloc.start()
    H = Arrangements.sample(X, 100_000, rng=1)
    build_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert H.nbytes <= 150e6 and H.n_columns > 99_000
    assert build_peak <= H.nbytes + 80e6  # no second copy of H while building
    res = solve_lasso(H, y, 10.0, max_time_s=20.0, max_iter=8)
    assert np.isfinite(res.objective) and res.gap >= 0 and res.objective < 0.5 * len(y)
