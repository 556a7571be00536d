"""htaf.theory: closed forms checked against dense float64 evaluation of the real functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from htaf import estimators, theory
from htaf import functional as hf

L = math.log(9.0)  # L(0.1)


def htaf_fn(a0: float, a1: float):
    return lambda x: hf.htaf(x, a0, a1)


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


# -- the eps-bound -----------------------------------------------------------------------------
def test_min_alpha1_is_log_odds():
    assert theory.min_alpha1(0.1) == pytest.approx(L, rel=1e-15)
    assert theory.bound_exists(2.2, 0.1)
    assert not theory.bound_exists(2.19, 0.1)
    assert not theory.bound_exists(L, 0.1)


@pytest.mark.parametrize("eps, delta", [(0.1, 0.1), (0.05, 0.2), (0.01, 0.5)])
@pytest.mark.parametrize("ratio", [1.05, 1.5, 3.0, 5.0, 20.0])
def test_min_alpha0_is_tight(eps, delta, ratio):
    a1 = ratio * theory.min_alpha1(eps)
    a0 = theory.min_alpha0(a1, eps, delta)
    assert theory.sup_error(htaf_fn(a0, a1), delta, n=20001) <= eps + 1e-9
    assert theory.sup_error(htaf_fn(0.99 * a0, a1), delta, n=20001) > eps


def test_sup_error_matches_closed_form():
    # sup over |x| >= delta is sigma(-a1·tanh(a0·delta)), attained at |x| = delta.
    err = theory.sup_error("htaf(2,11)", 0.1)
    assert err == pytest.approx(sigmoid(-11 * math.tanh(0.2)), rel=1e-12)
    assert err > 0.1  # the paper's (2, 11) just misses eps = 0.1 at delta = 0.1


def test_product_falls_to_asymptote():
    a1 = np.geomspace(1.01 * L, 1e6, 200)
    product = np.array([v * theory.min_alpha0(v) for v in a1])
    assert np.all(np.diff(product) < 0)
    assert product[-1] == pytest.approx(L / 0.1, rel=1e-9)
    assert round(L / 0.1, 2) == 21.97


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"alpha1": 2.0}, "alpha1"),
        ({"alpha1": L}, "alpha1"),
        ({"alpha1": 11, "eps": 0.5}, "eps"),
        ({"alpha1": 11, "eps": 0.0}, "eps"),
        ({"alpha1": 11, "eps": float("nan")}, "eps"),
        ({"alpha1": 11, "delta": 0.0}, "delta"),
        ({"alpha1": 11, "delta": float("inf")}, "delta"),
        ({"alpha1": float("nan")}, "alpha1"),
    ],
)
def test_min_alpha0_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        theory.min_alpha0(**kwargs)


def test_min_alpha0_states_the_condition():
    with pytest.raises(ValueError, match=r"ln\(\(1-eps\)/eps\)"):
        theory.min_alpha0(1.0)


# -- select_params ------------------------------------------------------------------------------
def test_select_params_default_is_papers_pair():
    a0, a1 = theory.select_params()
    assert a1 == pytest.approx(5 * L)
    assert (a0, a1) == pytest.approx((2.0273, 10.9861), abs=1e-4)
    assert theory.sup_error(htaf_fn(a0, a1), 0.1, n=20001) <= 0.1 + 1e-9


def test_select_params_with_alpha1():
    a0, a1 = theory.select_params(0.05, 0.2, alpha1=8.0)
    assert a1 == 8.0
    assert a0 == theory.min_alpha0(8.0, 0.05, 0.2)


@pytest.mark.parametrize("budget", [5.5, 5.52, 5.6, 8.0, 50.0])
def test_select_params_respects_slope_budget(budget):
    a0, a1 = theory.select_params(0.1, 0.1, slope_budget=budget)
    assert a0 * a1 / 4 <= budget
    assert a0 == theory.min_alpha0(a1)
    assert a1 >= 5 * L
    assert theory.sup_error(htaf_fn(a0, a1), 0.1, n=20001) <= 0.1 + 1e-9


def test_binding_budget_is_spent_and_keeps_the_most_gradient():
    budget = 5.52  # below the default's slope 5.57, so the budget binds
    a0, a1 = theory.select_params(slope_budget=budget)
    assert a0 * a1 / 4 == pytest.approx(budget, rel=1e-12)
    # Every other pair meeting both constraints has a smaller backward gradient at moderate |x|.
    x = np.array([0.3, 1.0, 2.0, 5.0])
    best = theory.log_htaf_derivative(x, a0, a1)
    for other_a1 in np.linspace(a1, 4 * a1, 25)[1:]:
        lo = theory.min_alpha0(other_a1)
        for other_a0 in np.linspace(lo, 4 * budget / other_a1, 5):
            assert np.all(theory.log_htaf_derivative(x, other_a0, other_a1) < best + 1e-12)


def test_select_params_rejects_impossible_budget():
    floor = L / (4 * 0.1)
    with pytest.raises(ValueError, match="slope_budget"):
        theory.select_params(slope_budget=floor)
    with pytest.raises(ValueError, match="slope_budget"):
        theory.select_params(slope_budget=5.0, alpha1=11)
    with pytest.raises(ValueError, match="eps"):
        theory.select_params(eps=0.6)


# -- sup_error inputs ---------------------------------------------------------------------------
def test_sup_error_accepts_modules_and_signed_outputs():
    est = estimators.get("htaf", alpha0=3, alpha1=12)
    assert theory.sup_error(est, 0.1) == theory.sup_error("htaf(3,12)", 0.1)
    # tanh(beta·x) is natural-signed: (y + 1)/2 = sigma(2·beta·x).
    err = theory.sup_error(estimators.get("tanh_continuation", beta=10.0), 0.1)
    assert err == pytest.approx(sigmoid(-2.0), rel=1e-12)
    err = theory.sup_error(lambda x: torch.tanh(10 * x), 0.1, signed=True)
    assert err == pytest.approx(sigmoid(-2.0), rel=1e-12)
    assert theory.sup_error(estimators.get("scaled_sigmoid", beta=30.0), 0.1) == pytest.approx(
        sigmoid(-3.0), rel=1e-12
    )


def test_sup_error_rejects_bad_input():
    with pytest.raises(ValueError, match="delta"):
        theory.sup_error("htaf", 0.0)
    with pytest.raises(ValueError, match="x_max"):
        theory.sup_error("htaf", 0.1, x_max=0.05)
    with pytest.raises(ValueError):
        theory.sup_error(42, 0.1)


# -- gradient_mass ------------------------------------------------------------------------------
def test_htaf_gradient_mass_is_its_range():
    mass = theory.gradient_mass("htaf(2,11)", -50, 50)
    assert mass == pytest.approx(sigmoid(11) - sigmoid(-11), abs=1e-8)
    mass = theory.gradient_mass(estimators.get("htaf", alpha0=1.5, alpha1=6), -0.3, 0.7)
    exact = sigmoid(6 * math.tanh(1.05)) - sigmoid(-6 * math.tanh(0.45))
    assert mass == pytest.approx(exact, abs=1e-10)


@pytest.mark.parametrize(
    "name, bound",
    [
        ("atan", 1e6),  # 1/x² tail: 1 - mass ≈ 4/(π²·alpha·bound)
        ("erf", 50),
        ("piecewise_exp", 50),
        ("piecewise_quadratic", 50),
        ("rectangular", 50),
        ("sigmoid_surrogate", 50),
        ("scaled_sigmoid", 50),
        ("triangle", 50),
    ],
)
def test_unit_area_surrogates(name, bound):
    assert theory.gradient_mass(name, -bound, bound) == pytest.approx(1.0, abs=1e-6)


def test_gradient_mass_matches_primitive():
    est = estimators.get("sigmoid_surrogate", alpha=4.0)
    mass = theory.gradient_mass(est, -0.4, 1.3)
    assert mass == pytest.approx(sigmoid(4 * 1.3) - sigmoid(-4 * 0.4), abs=1e-10)


def test_gradient_mass_rejects_bad_input():
    with pytest.raises(ValueError, match="a must be < b"):
        theory.gradient_mass("htaf", 1.0, -1.0)
    with pytest.raises(ValueError, match="b"):
        theory.gradient_mass("htaf", 0.0, float("inf"))


# -- tails --------------------------------------------------------------------------------------
PAIRS = [(2.0, 11.0), (8.0, 2.75), (11.0, 2.0), (1.5, 1.5)]


@pytest.mark.parametrize("a0, a1", PAIRS)
def test_log_htaf_derivative_matches_functional(a0, a1):
    x = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    direct = hf.htaf_derivative(x, a0, a1).numpy()
    ok = direct > 1e-290
    got = np.exp(theory.log_htaf_derivative(x.numpy(), a0, a1))
    np.testing.assert_allclose(got[ok], direct[ok], rtol=1e-11)


@pytest.mark.parametrize("a0, a1", PAIRS)
def test_tail_ratio_matches_direct_ratio(a0, a1):
    beta = a0 * a1
    x = torch.linspace(0, 5, 501, dtype=torch.float64)
    num = hf.htaf_derivative(x, a0, a1)
    den = beta * torch.sigmoid(beta * x) * torch.sigmoid(-beta * x)
    ok = ((num > 1e-290) & (den > 1e-290)).numpy()
    direct = (num / den).numpy()
    got = theory.tail_ratio(a0, a1, x.numpy())
    np.testing.assert_allclose(got[ok], direct[ok], rtol=1e-10)
    assert theory.tail_ratio(a0, a1, 0.0) == pytest.approx(1.0, rel=1e-14)


def test_tail_ratio_far_in_the_tail():
    # Both derivatives underflow float64 at x = 50 (sigmoid's is ~e^-1100); the log is exact.
    assert hf.htaf_derivative(torch.tensor(50.0, dtype=torch.float64), 8, 2.75) == 0
    log_ratio = theory.log_tail_ratio(2, 11, 50.0)
    rate, beta = theory.tail_rate(2, 11)
    expected = math.log(4 * sigmoid(11) * sigmoid(-11)) + (beta - rate) * 50
    assert log_ratio == pytest.approx(expected, rel=1e-12)
    for a0, a1 in [(8, 2.75), (11, 2)]:
        assert np.isfinite(theory.tail_ratio(a0, a1, 50.0))
    # (11, 2) ties the sigmoid's rate: the ratio settles at 4·sigma'(2) < 1.
    assert theory.tail_ratio(11, 2, 50.0) == pytest.approx(4 * sigmoid(2) * sigmoid(-2))
    assert np.isfinite(theory.tail_ratio(2, 11, 35.0))


def test_heavier_tail_iff_alpha1_above_two():
    assert theory.tail_rate(2, 11) == (4, 22)
    assert theory.heavier_tail_than_sigmoid(2, 11)
    assert theory.heavier_tail_than_sigmoid(8, 2.75)
    assert not theory.heavier_tail_than_sigmoid(11, 2)
    assert not theory.heavier_tail_than_sigmoid(1, 1.5)


def test_gradient_ratio():
    x = np.linspace(-3, 3, 61)
    base = hf.htaf_derivative(torch.from_numpy(x), 1.5, 1.5).numpy()
    for a0, a1 in [(6, 1.5), (1.5, 24)]:
        direct = hf.htaf_derivative(torch.from_numpy(x), a0, a1).numpy() / base
        np.testing.assert_allclose(theory.gradient_ratio(a0, a1, x), direct, rtol=1e-10)
    # alpha0 sets the tail slope, -2·(alpha0 - 1.5).
    far = theory.log_gradient_ratio(6, 1.5, [20.0, 21.0])
    assert far[1] - far[0] == pytest.approx(-9.0, rel=1e-9)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: theory.tail_ratio(-1, 2, 0.0), "alpha0"),
        (lambda: theory.tail_ratio(1, float("nan"), 0.0), "alpha1"),
        (lambda: theory.tail_ratio(1, 2, [0.0, float("nan")]), "x"),
        (lambda: theory.gradient_ratio(1, 2, 0.0, base=(1.5, 0)), "alpha1"),
        (lambda: theory.heavier_tail_than_sigmoid(0, 2), "alpha0"),
        (lambda: theory.log_sigmoid_derivative(0.0, beta=-1), "beta"),
    ],
)
def test_tail_functions_reject_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()
