r"""Closed-form facts about HTAF: the ε-bound on its parameters and the heaviness of its tail.

Everything here is float64 (NumPy or ``math``). Notation, with :math:`\sigma` the logistic
function and :math:`H(x) = 1\{x \ge 0\}`:

.. math::
    \mathrm{HTAF}(x) = \sigma(\alpha_1 \tanh(\alpha_0 x)), \qquad
    L(\varepsilon) = \ln\frac{1-\varepsilon}{\varepsilon}.

**The ε-bound.** For :math:`|x| \ge \delta` the error :math:`|\mathrm{HTAF}(x) - H(x)|` equals
:math:`\sigma(-\alpha_1\tanh(\alpha_0|x|))`, which falls as :math:`|x|` grows, so its supremum
is attained at :math:`|x| = \delta`:

.. math::
    \sup_{|x|\ge\delta} |\mathrm{HTAF}(x) - H(x)| = \sigma(-\alpha_1 \tanh(\alpha_0\delta))
    \le \varepsilon
    \iff \alpha_1 \tanh(\alpha_0\delta) \ge L
    \iff \alpha_1 > L \text{ and } \alpha_0 \ge \frac{\operatorname{artanh}(L/\alpha_1)}{\delta}.

**Slope at 0** is :math:`\alpha_0\alpha_1/4`. Along the bound, with :math:`t = L/\alpha_1`,
:math:`\alpha_1\alpha_{0,\min} = \frac{L}{\delta}\frac{\operatorname{artanh} t}{t}` and
:math:`\operatorname{artanh}(t)/t = 1 + t^2/3 + t^4/5 + \dots` rises with :math:`t`, so the
product *falls* as :math:`\alpha_1` grows, towards :math:`L/\delta` (21.97 at
:math:`\varepsilon = \delta = 0.1`): the slope of the scaled sigmoid :math:`\sigma(\beta x)`
that meets the same bound needs :math:`\beta \ge L/\delta`.

**Tails.** :math:`\mathrm{HTAF}'(x) \approx 4\alpha_0\alpha_1\sigma'(\alpha_1)e^{-2\alpha_0|x|}`
while the scaled sigmoid with the same slope at 0 (:math:`\beta = \alpha_0\alpha_1`) decays
like :math:`e^{-\beta|x|}`; HTAF's tail is heavier exactly when :math:`2\alpha_0 < \alpha_0
\alpha_1`, i.e. :math:`\alpha_1 > 2`. Both derivatives underflow long before their ratio
does, so ratios are computed in log space.

**Scale.** The derivative relative to its peak, :math:`4\sigma(u)\sigma(-u)\,\mathrm{sech}^2
(\alpha_0 x)` with :math:`u = \alpha_1\tanh(\alpha_0 x)`, depends on :math:`z = \alpha_0 x`
and :math:`\alpha_1` only. So HTAF has a *live region* :math:`|x| \le z^\ast(\alpha_1)/
\alpha_0` where it is at least 1% of its peak (:math:`z^\ast = 0.571` at :math:`\alpha_1 =
11`), and beyond it the derivative falls like :math:`e^{-2\alpha_0|x|}`: how much gradient a
layer gets is decided by :math:`\alpha_0` *relative to the spread of its inputs*. Inputs that
rest at :math:`x \approx -1` (membranes below a threshold of 1) get nothing from
:math:`\alpha_0 = 2`, whose live region ends at :math:`|x| = 0.29`.

``htaf(auto)`` sets :math:`\alpha_0 = z^\ast(\alpha_1)/Q_q(|x|)` on a layer's first batch, so
that a fraction :math:`q` of its inputs is live (:func:`auto_alpha0`), and keeps
:math:`\alpha_1`. The trade-off: the output is within 0.05 of {0, 1} only where
:math:`|z| \ge z_{0.05} = \operatorname{artanh}(\ln 19/\alpha_1)`, so the smooth forward is
far from binary exactly on the inputs with :math:`|x| < (z_{0.05}/z^\ast)\,Q_q(|x|)`
(:func:`auto_non_binary_radius`: 0.48 of the live edge at :math:`\alpha_1 = 11`). A larger
:math:`q` gives more inputs a gradient, and a larger smooth - exact gap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from htaf.functional import calibrate_alpha0, htaf_live_radius

__all__ = [
    "DEFAULT_ALPHA1_OVER_L",
    "auto_alpha0",
    "auto_non_binary_radius",
    "bound_exists",
    "gradient_mass",
    "gradient_ratio",
    "heavier_tail_than_sigmoid",
    "live_radius",
    "log_gradient_ratio",
    "log_htaf_derivative",
    "log_sigmoid_derivative",
    "log_tail_ratio",
    "min_alpha0",
    "min_alpha1",
    "select_params",
    "slope_at_zero",
    "sup_error",
    "tail_rate",
    "tail_ratio",
]

#: Default α1 as a multiple of L (see :func:`select_params`); 5·L = 10.99 at ε = 0.1.
DEFAULT_ALPHA1_OVER_L = 5.0

Array = NDArray[np.float64]


# -- validation -----------------------------------------------------------------------------------
def _number(value: Any, name: str) -> float:
    """``value`` as a finite float, or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _positive(value: Any, name: str) -> float:
    value = _number(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _eps(eps: Any) -> float:
    # At ε >= 1/2 the bound is met by the constant 1/2, so L <= 0 and nothing is learned.
    eps = _number(eps, "eps")
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
    return eps


def _grid(x: ArrayLike, name: str = "x") -> Array:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or Inf)")
    return arr


# -- scale: the live region and htaf(auto) -----------------------------------------------------
def live_radius(alpha1: float = 11.0, level: float = 0.01) -> float:
    r""":math:`z^\ast`: HTAF's derivative is at least ``level`` of its peak exactly where
    :math:`|\alpha_0 x| \le z^\ast(\alpha_1)` (:func:`htaf.functional.htaf_live_radius`)."""
    return htaf_live_radius(_positive(alpha1, "alpha1"), level)


def auto_alpha0(x: ArrayLike, alpha1: float = 11.0, live: float = 0.5) -> float:
    r"""The :math:`\alpha_0` of ``htaf(auto)`` for inputs ``x``:
    :math:`z^\ast(\alpha_1)/Q_{\text{live}}(|x|)` (:func:`htaf.functional.calibrate_alpha0`)."""
    return calibrate_alpha0(torch.as_tensor(_grid(x), dtype=torch.float64), alpha1, live)


def auto_non_binary_radius(alpha1: float = 11.0, tol: float = 0.05) -> float:
    r"""Where the smooth forward of ``htaf(auto)`` is more than ``tol`` from {0, 1}, as a
    fraction of the live edge: :math:`\operatorname{artanh}(\ln\frac{1-\mathrm{tol}}
    {\mathrm{tol}}/\alpha_1)\,/\,z^\ast(\alpha_1)`. Inputs with :math:`|x|` below this
    times the live edge are neither binary nor zero-gradient."""
    a1 = _positive(alpha1, "alpha1")
    L = min_alpha1(tol)
    if a1 <= L:
        raise ValueError(f"alpha1 must exceed ln((1-tol)/tol) = {L:.6g} to come within tol of "
                         f"{{0, 1}}, got {a1:g}")  # fmt: skip
    return math.atanh(L / a1) / htaf_live_radius(a1)


# -- the ε-bound ------------------------------------------------------------------------------
def min_alpha1(eps: float = 0.1) -> float:
    r""":math:`L = \ln\frac{1-\varepsilon}{\varepsilon}`; the bound needs :math:`\alpha_1 > L`.

    Because :math:`\mathrm{HTAF} < \sigma(\alpha_1)`, the error never drops below
    :math:`\sigma(-\alpha_1)`, which is :math:`\le \varepsilon` only when :math:`\alpha_1 \ge L`
    (and :math:`\alpha_1 = L` would need :math:`\alpha_0 = \infty`).
    """
    eps = _eps(eps)
    return math.log((1 - eps) / eps)


def bound_exists(alpha1: float, eps: float = 0.1) -> bool:
    r"""Whether some :math:`\alpha_0` gives :math:`\sup_{|x|\ge\delta}|\mathrm{HTAF}-H| \le
    \varepsilon`: true iff :math:`\alpha_1 > L(\varepsilon)` (for every :math:`\delta > 0`)."""
    return _positive(alpha1, "alpha1") > min_alpha1(eps)


def min_alpha0(alpha1: float, eps: float = 0.1, delta: float = 0.1) -> float:
    r"""Smallest :math:`\alpha_0` with :math:`\sup_{|x|\ge\delta}|\mathrm{HTAF}-H| \le
    \varepsilon`.

    .. math:: \alpha_{0,\min} = \frac{\operatorname{artanh}(L/\alpha_1)}{\delta},
        \qquad L = \ln\frac{1-\varepsilon}{\varepsilon}, \quad \alpha_1 > L.

    Raises ValueError naming the parameter for :math:`\alpha_1 \le L`, :math:`\varepsilon
    \notin (0, 0.5)`, :math:`\delta \le 0`, or a NaN/Inf.
    """
    a1 = _positive(alpha1, "alpha1")
    L = min_alpha1(eps)
    d = _positive(delta, "delta")
    if a1 <= L:
        raise ValueError(
            f"alpha1 must exceed L = ln((1-eps)/eps) = {L:.6g} for the eps-bound to exist, "
            f"got alpha1 = {a1:g}"
        )
    return math.atanh(L / a1) / d


def slope_at_zero(alpha0: float, alpha1: float) -> float:
    r""":math:`\mathrm{HTAF}'(0) = \alpha_0\alpha_1/4`."""
    return _positive(alpha0, "alpha0") * _positive(alpha1, "alpha1") / 4


def _bound_slope(a1: float, L: float, d: float) -> float:
    # Slope α0_min(α1)·α1/4, in the same operation order as select_params' final check so the
    # bisection's feasible end passes it exactly. Strictly decreasing in α1, → L/(4δ).
    return (math.atanh(L / a1) / d) * a1 / 4


def _alpha1_for_slope(budget: float, L: float, d: float) -> float:
    """Smallest α1 whose bound-tight pair has slope <= ``budget``, by bisection on log α1."""
    lo, hi = L, 2 * L
    while _bound_slope(hi, L, d) > budget:
        lo, hi = hi, 2 * hi
        if hi > 1e15:
            raise ValueError(
                f"slope_budget = {budget:g} is too close to its infimum L/(4·delta) = "
                f"{L / (4 * d):.12g} to be met in float64"
            )
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if not lo < mid < hi:
            break
        if _bound_slope(mid, L, d) > budget:
            lo = mid
        else:
            hi = mid
    return hi  # the feasible end, so the slope never exceeds the budget


def select_params(
    eps: float = 0.1,
    delta: float = 0.1,
    *,
    alpha1: float | None = None,
    slope_budget: float | None = None,
) -> tuple[float, float]:
    r"""Return :math:`(\alpha_0, \alpha_1)` with :math:`\sup_{|x|\ge\delta}|\mathrm{HTAF}-H|
    \le \varepsilon` (tight: the error at :math:`|x| = \delta` equals :math:`\varepsilon`).

    Every pair returned lies on the bound :math:`\alpha_0 = \operatorname{artanh}(L/\alpha_1)
    /\delta`, the smallest :math:`\alpha_0` (so the smallest slope :math:`\alpha_0\alpha_1/4`
    and the slowest tail decay :math:`e^{-2\alpha_0|x|}`) for its :math:`\alpha_1`.

    * ``alpha1`` given: :math:`(\alpha_{0,\min}(\alpha_1), \alpha_1)`.
    * neither given: :math:`\alpha_1 = 5L`. Along the bound, a larger :math:`\alpha_1` lowers
      the tail rate :math:`2\alpha_0` but also the tail's floor :math:`4\alpha_0\alpha_1
      \sigma'(\alpha_1) \approx e^{-\alpha_1}`, and as :math:`\alpha_1 \to \infty` HTAF turns
      into the scaled sigmoid :math:`\sigma(\tfrac{L}{\delta}x)` over :math:`|x| < 1/\alpha_0`.
      :math:`\alpha_1 = 5L` keeps :math:`\tanh(\alpha_0\delta) = 1/5` on the linear part of
      tanh, so the slope is within 1.4% of the infimum :math:`L/(4\delta)`, with a tail rate
      :math:`2\operatorname{artanh}(1/5)/\delta \approx 0.41\,L/\delta`, 2/5 of the scaled
      sigmoid's. At :math:`\varepsilon = \delta = 0.1` it gives (2.027, 10.99), the paper's
      (2, 11).
    * ``slope_budget`` :math:`B` given (the largest allowed :math:`\alpha_0\alpha_1/4`): the
      bound-tight slope :math:`\alpha_1\alpha_{0,\min}(\alpha_1)/4` falls with
      :math:`\alpha_1` towards :math:`L/(4\delta)`, so the pairs within budget are those with
      :math:`\alpha_1 \ge \alpha_1^*(B)`, where :math:`\alpha_1^*` solves
      :math:`\alpha_1\alpha_{0,\min}(\alpha_1) = 4B` (bisection). Returns
      :math:`\alpha_1 = \max(5L, \alpha_1^*)`: the default when it fits, otherwise the
      boundary pair, which (numerically, over every pair meeting both constraints) has the
      largest backward gradient at every moderate :math:`|x|` (the literal "smallest
      :math:`\alpha_0`" has no minimum: it drives :math:`\alpha_1 \to \infty`). Raises
      ValueError naming ``slope_budget`` when :math:`B \le L/(4\delta)`, the infimum.

    Giving both ``alpha1`` and ``slope_budget`` checks the budget for that ``alpha1``.
    """
    L = min_alpha1(eps)
    d = _positive(delta, "delta")
    a1 = DEFAULT_ALPHA1_OVER_L * L if alpha1 is None else _positive(alpha1, "alpha1")
    if slope_budget is not None:
        budget = _positive(slope_budget, "slope_budget")
        floor = L / (4 * d)
        if budget <= floor:
            raise ValueError(
                f"slope_budget must exceed L/(4·delta) = {floor:.6g}, the infimum slope of any "
                f"HTAF (or scaled sigmoid) meeting eps = {eps:g} at delta = {d:g}; "
                f"got {budget:g}"
            )
        if alpha1 is None:
            a1 = max(a1, _alpha1_for_slope(budget, L, d))
    a0 = min_alpha0(a1, eps, d)
    if slope_budget is not None and a0 * a1 / 4 > budget:
        raise ValueError(
            f"slope_budget = {budget:g} is below the slope {a0 * a1 / 4:.6g} that alpha1 = "
            f"{a1:g} needs; use a larger alpha1 or leave it out"
        )
    return a0, a1


# -- numerical checks ---------------------------------------------------------------------------
def _as_step_fn(estimator: Any) -> tuple[Callable[[Tensor], Tensor], bool]:
    """A callable on float64 tensors and whether its output is signed (±1 rather than 0/1)."""
    if isinstance(estimator, str):
        from htaf import estimators

        estimator = estimators.get(estimator)
    natural = getattr(estimator, "natural", None)
    if natural is not None and hasattr(estimator, "smooth"):
        return estimator.smooth, natural == "signed"
    if callable(estimator):
        return estimator, False
    raise ValueError(
        f"estimator must be a name, an Estimator or a callable, got {type(estimator).__name__}"
    )


def _evaluate(fn: Callable[[Tensor], Tensor], x: Array) -> Array:
    with torch.no_grad():
        y = fn(torch.from_numpy(x))
    return torch.as_tensor(y, dtype=torch.float64).detach().cpu().numpy()


def sup_error(
    estimator: Any,
    delta: float = 0.1,
    *,
    x_max: float | None = None,
    n: int = 200001,
    signed: bool = False,
) -> float:
    r"""Numerical :math:`\sup_{\delta \le |x| \le x_{\max}} |f(x) - H(x)|` in float64.

    ``estimator`` is a registered name (``"htaf(2,11)"``), an Estimator (its ``smooth``
    forward; natural-signed outputs map to {0, 1} by :math:`(y+1)/2`) or a callable on float64
    tensors (``signed=True`` if it returns values in [-1, 1]). The grid holds ``n`` linearly and
    ``n`` geometrically spaced points on each side (the geometric half resolves steep fronts
    near δ) plus the exact endpoints :math:`\pm\delta, \pm x_{\max}`; default
    :math:`x_{\max} = \max(50, 100\delta)`.
    """
    d = _positive(delta, "delta")
    hi = _positive(x_max, "x_max") if x_max is not None else max(50.0, 100 * d)
    if hi <= d:
        raise ValueError(f"x_max must exceed delta = {d:g}, got {hi:g}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    fn, natural_signed = _as_step_fn(estimator)
    side = np.unique(np.concatenate([np.linspace(d, hi, n), np.geomspace(d, hi, n)]))
    x = np.concatenate([-side[::-1], side])
    y = _evaluate(fn, x)
    if natural_signed or signed:
        y = (y + 1) / 2
    if not np.all(np.isfinite(y)):
        raise ValueError("the function returned NaN or Inf on the grid")
    return float(np.max(np.abs(y - (x >= 0))))


def gradient_mass(estimator: Any, a: float, b: float) -> float:
    r""":math:`\int_a^b g(x)\,dx` of the estimator's backward rule :math:`g` (``.grad``).

    For HTAF the primitive is the forward itself, so over :math:`[-c, c]` the mass is
    :math:`\sigma(\alpha_1\tanh(\alpha_0 c)) - \sigma(-\alpha_1\tanh(\alpha_0 c))`, which tends to
    :math:`\sigma(\alpha_1) - \sigma(-\alpha_1) < 1`; unit-area surrogates give 1. Adaptive
    Gauss–Kronrod (``scipy.integrate.quad``) on pieces split at 0 and :math:`\pm 2^k`
    (:math:`k = -10..10`), so narrow peaks and kinks at the usual widths are not missed.
    """
    from scipy import integrate

    lo, hi = _number(a, "a"), _number(b, "b")
    if not lo < hi:
        raise ValueError(f"a must be < b, got a = {lo:g}, b = {hi:g}")
    if isinstance(estimator, str):
        from htaf import estimators

        estimator = estimators.get(estimator)
    if not hasattr(estimator, "grad"):
        raise ValueError(f"estimator must have a .grad rule, got {type(estimator).__name__}")
    if getattr(estimator, "stochastic", False):
        raise ValueError(f"estimator {estimator.name!r} is stochastic: its backward has no mass")

    def g(t: float) -> float:
        with torch.no_grad():
            return float(estimator.grad(torch.tensor([t], dtype=torch.float64))[0])

    cuts = [0.0] + [s * 2.0**k for k in range(-10, 11) for s in (1.0, -1.0)]
    edges = sorted({lo, hi, *(c for c in cuts if lo < c < hi)})
    total = 0.0
    for left, right in itertools.pairwise(edges):
        value, _ = integrate.quad(g, left, right, epsabs=1e-14, epsrel=1e-12, limit=200)
        total += value
    return total


# -- tails, in log space -------------------------------------------------------------------------
def _log_sigmoid_prime(u: Array) -> Array:
    # log σ'(u) = log σ(u) + log σ(−u) = −|u| − 2·log1p(e^{−|u|}); exact in the far tail.
    a = np.abs(u)
    return -a - 2 * np.log1p(np.exp(-a))


def log_htaf_derivative(x: ArrayLike, alpha0: float = 2.0, alpha1: float = 11.0) -> Array:
    r""":math:`\log \mathrm{HTAF}'(x)`, finite for every finite :math:`x`.

    .. math::
        \log\mathrm{HTAF}'(x) = \log(4\alpha_0\alpha_1) - 2\alpha_0|x|
        - 2\log(1 + e^{-2\alpha_0|x|}) + \log\sigma'(u), \quad u = \alpha_1\tanh(\alpha_0|x|),

    using :math:`\mathrm{sech}^2 z = 4e^{-2|z|}/(1+e^{-2|z|})^2` and
    :math:`\log\sigma'(u) = -|u| - 2\log(1+e^{-|u|})`.
    """
    a0, a1 = _positive(alpha0, "alpha0"), _positive(alpha1, "alpha1")
    z = 2 * a0 * np.abs(_grid(x))
    u = a1 * np.tanh(z / 2)
    return np.log(4 * a0 * a1) - z - 2 * np.log1p(np.exp(-z)) + _log_sigmoid_prime(u)


def log_sigmoid_derivative(x: ArrayLike, beta: float = 22.0) -> Array:
    r""":math:`\log \frac{d}{dx}\sigma(\beta x) = \log\beta + \log\sigma'(\beta x)`."""
    b = _positive(beta, "beta")
    return math.log(b) + _log_sigmoid_prime(b * _grid(x))


def log_tail_ratio(alpha0: float, alpha1: float, x: ArrayLike) -> Array:
    r""":math:`\log\frac{\mathrm{HTAF}'(x)}{s'(x)}` with :math:`s(x) = \sigma(\beta x)`,
    :math:`\beta = \alpha_0\alpha_1` (the same slope at 0, so the ratio is 1 at :math:`x=0`).

    For large :math:`|x|` it grows like :math:`(\beta - 2\alpha_0)|x|`; always finite."""
    beta = _positive(alpha0, "alpha0") * _positive(alpha1, "alpha1")
    return log_htaf_derivative(x, alpha0, alpha1) - log_sigmoid_derivative(x, beta)


def tail_ratio(alpha0: float, alpha1: float, x: ArrayLike) -> Array:
    r""":math:`\mathrm{HTAF}'(x)/s'(x)` against the scaled sigmoid :math:`\sigma(\alpha_0\alpha_1
    x)` (same slope at 0), evaluated as ``exp(log_tail_ratio)``.

    Finite wherever the ratio itself fits in float64 (below ~1.8e308), even where both
    derivatives underflow; beyond that it is ``inf``: use :func:`log_tail_ratio` there
    (for (2, 11) that happens from :math:`|x| \approx 39`).
    """
    with np.errstate(over="ignore"):
        return np.exp(log_tail_ratio(alpha0, alpha1, x))


def tail_rate(alpha0: float, alpha1: float) -> tuple[float, float]:
    r"""Exponential decay rates :math:`(2\alpha_0, \beta = \alpha_0\alpha_1)` of HTAF's
    derivative and of the same-slope scaled sigmoid's: :math:`\mathrm{HTAF}'(x) \sim
    4\alpha_0\alpha_1\sigma'(\alpha_1)e^{-2\alpha_0|x|}`, :math:`s'(x) \sim \beta e^{-\beta|x|}`.
    """
    a0, a1 = _positive(alpha0, "alpha0"), _positive(alpha1, "alpha1")
    return 2 * a0, a0 * a1


def heavier_tail_than_sigmoid(alpha0: float, alpha1: float) -> bool:
    r"""True iff :math:`2\alpha_0 < \alpha_0\alpha_1`, i.e. :math:`\alpha_1 > 2`: then
    :math:`\mathrm{HTAF}'/s' \to \infty`. At :math:`\alpha_1 = 2` the rates tie and the ratio
    tends to :math:`4\sigma'(2) \approx 0.42 < 1`."""
    rate, beta = tail_rate(alpha0, alpha1)
    return rate < beta


def log_gradient_ratio(
    alpha0: float, alpha1: float, x: ArrayLike, base: tuple[float, float] = (1.5, 1.5)
) -> Array:
    r""":math:`\log\frac{\mathrm{HTAF}'(x;\alpha_0,\alpha_1)}{\mathrm{HTAF}'(x; \text{base})}`
    (the paper's Figure 1 plots this against the (1.5, 1.5) baseline). Its slope in
    :math:`|x|` tends to :math:`-2(\alpha_0 - \alpha_0^{\text{base}})`: :math:`\alpha_0` sets the
    tail rate, :math:`\alpha_1` only shifts the tail down by about :math:`\alpha_1 -
    \alpha_1^{\text{base}}`."""
    if len(base) != 2:
        raise ValueError(f"base must be a pair (alpha0, alpha1), got {base!r}")
    return log_htaf_derivative(x, alpha0, alpha1) - log_htaf_derivative(x, *base)


def gradient_ratio(
    alpha0: float, alpha1: float, x: ArrayLike, base: tuple[float, float] = (1.5, 1.5)
) -> Array:
    r""":math:`\mathrm{HTAF}'(x;\alpha_0,\alpha_1)/\mathrm{HTAF}'(x;\text{base})`, as
    ``exp(log_gradient_ratio)``; 0 or inf only where the ratio leaves float64's range."""
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(log_gradient_ratio(alpha0, alpha1, x, base))
