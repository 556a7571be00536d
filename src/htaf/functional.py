"""Pure math: the Heavy Tailed Activation Function and the step functions it stands in for.

Conventions used everywhere in htaf:

* ``heaviside(x) = 1{x >= 0}``: the step fires at exactly zero (SpikingJelly's and Ergen et
  al.'s convention; snnTorch and Norse fire at ``x > 0``).
* The signed step is ``2 * heaviside(x) - 1``, so ``sign(0) = +1`` (Larq's convention).

HTAF has a hand-written backward that saves only its input. Its derivative is evaluated in a
form that does not collapse to zero in float32 when ``tanh`` rounds to ±1 (see
:func:`htaf_derivative`). In eager mode, contiguous CPU float32/float64 tensors go through a
native operator (:mod:`htaf._native`: fused C kernels behind a C++ autograd node); under
``torch.compile``, CPU float32/float64 tensors go through the same kernels as custom operators
(:mod:`htaf._ops`); everything else (other devices, half precision, machines without a C
compiler) uses the autograd functions below.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from htaf import _kernels, _native

__all__ = [
    "ConstantInputError",
    "calibrate_alpha0",
    "check_float",
    "check_param",
    "heaviside",
    "htaf",
    "htaf_derivative",
    "htaf_live_radius",
    "scaled_sigmoid",
    "scaled_sigmoid_derivative",
    "sign",
    "signed_htaf",
]

Param = float | Tensor


def check_float(x: Tensor, name: str = "x") -> None:
    """Raise TypeError unless ``x`` is a floating-point tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
            f"convert it with {name}.float()"
        )


def check_param(value: Param, name: str, *, positive: bool = True) -> float:
    """Validate a scalar parameter and return it as a Python float.

    Accepts a number or a one-element tensor. Raises ValueError naming ``name`` for NaN, Inf,
    a non-positive value (when ``positive``) or a tensor with more than one element.
    """
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        if not value.is_floating_point() and value.dtype == torch.bool:
            raise ValueError(f"{name} must be a number, got a bool tensor")
        value = value.detach().item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    # A comparison, not math.isfinite: under torch.compile(dynamic=True) value may be a
    # symbolic float, which dynamo can compare (and guard on) but not pass to math.
    if not abs(value) < math.inf:
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def heaviside(x: Tensor) -> Tensor:
    """Exact step ``H(x) = 1{x >= 0}`` in the dtype of ``x``; NaN stays NaN.

    ``H(0) = 1`` everywhere in htaf. Not differentiable: estimators attach a backward rule.
    """
    check_float(x)
    out = (x >= 0).to(x.dtype)
    return torch.where(torch.isnan(x), x.detach(), out)  # detach: no gradient through NaN


def sign(x: Tensor) -> Tensor:
    """Exact signed step ``2 H(x) - 1`` in {-1, +1}, with ``sign(0) = +1``."""
    return 2 * heaviside(x) - 1


def _opmath(x: Tensor) -> Tensor:
    # Half precision has too few exponent bits for the tail; compute in float32 and cast back.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _htaf_forward(x: Tensor, a0: float, a1: float) -> Tensor:
    """Pure-torch HTAF: the reference path (small tensors, other devices, half precision)."""
    return torch.sigmoid(a1 * torch.tanh(a0 * x))


def _htaf_forward_fusable(x: Tensor, a0: float, a1: float) -> Tensor:
    """HTAF as ``σ(2·a1·σ(2·a0·x) − a1)`` (``tanh(z) = 2σ(2z) − 1``), for inductor on CPU
    where the custom operators of :mod:`htaf._ops` are not available (half precision, no C
    compiler).

    Inductor's CPU ``tanh`` costs several ``exp``; this form, with one ``exp`` per sigmoid,
    makes the fused forward kernel cheaper. Its absolute error in ``u = a1·tanh(a0·x)`` is
    ~``a1·3e-8`` in float32 (near x = 0 that is a relative error of the output of
    ~``a1·2e-8``, vs. a few ulp for :func:`_htaf_forward`), i.e. within the float32
    conditioning of HTAF.
    """
    return torch.sigmoid((2 * a1) * torch.sigmoid((2 * a0) * x) - a1)


def _htaf_grad(x: Tensor, a0: float, a1: float) -> Tensor:
    """Pure-torch HTAF'(x) (the reference path; :mod:`htaf._kernels` uses the same formula)."""
    # With z = a0·x and e = exp(-2|z|): tanh(|z|) = (1 - e)/(1 + e), sech²(z) = 4e/(1 + e)².
    # With u = a1·tanh(z) and f = exp(-|u|): σ(u)σ(-u) = f/(1 + f)². Neither collapses when
    # tanh rounds to ±1, so the float32 tail stays accurate down to ~1e-38.
    e = torch.exp(-2 * a0 * x.abs())
    one_e = 1 + e
    f = torch.exp(-a1 * (1 - e) / one_e)
    one_f = 1 + f
    return (4 * a0 * a1) * (e / (one_e * one_e)) * (f / (one_f * one_f))


def _forward(x: Tensor, a0: float, a1: float) -> tuple[Tensor, bool]:
    """HTAF and whether the fused kernel computed it (its backward can then use it too)."""
    xc = _opmath(x)
    fast = _kernels.supports(xc)
    if fast:
        y = _kernels.forward(xc, a0, a1)
    elif torch.compiler.is_compiling() and xc.device.type == "cpu":
        y = _htaf_forward_fusable(xc, a0, a1)
    else:
        y = _htaf_forward(xc, a0, a1)
    return (y if y.dtype == x.dtype else y.to(x.dtype)), fast


def _backward(x: Tensor, a0: float, a1: float, grad: Tensor, fast: bool | None = None) -> Tensor:
    """``grad * HTAF'(x)``; ``fast`` is the forward's verdict on ``x`` (None: ask again)."""
    xc = _opmath(x)
    # With create_graph=True grad mode is on here and the result must be differentiable.
    if not torch.is_grad_enabled() and (_kernels.supports(xc) if fast is None else fast):
        g = _kernels.backward(xc, a0, a1, grad)
    else:
        g = grad * _htaf_grad(xc, a0, a1)
    return g if g.dtype == x.dtype else g.to(x.dtype)


class _HTAF(torch.autograd.Function):
    """HTAF with a stable hand-written backward; saves only the input tensor.

    The path for what the native operator does not take (or where it cannot be built).
    Large CPU float32/float64 tensors in eager mode go through the fused kernels of
    :mod:`htaf._kernels` (one memory pass each way, no temporaries). Everything else (small
    tensors, other devices, double backward, no C compiler) uses the pure-torch functions
    above. Under ``torch.compile``, CPU float32/float64 tensors go through the custom
    operators of :mod:`htaf._ops` instead; dynamo traces this function for the rest (other
    devices, half precision, no kernels), and inductor fuses it, with the cheaper
    :func:`_htaf_forward_fusable` on CPU.

    This is the classic ``forward(ctx, ...)`` form: ``Function.apply`` binds arguments with
    ``inspect.signature`` on every call when ``setup_context`` is defined, which on a small
    batch costs as much as the kernel itself. :class:`_HTAFTransformable` serves vmap and friends.
    """

    @staticmethod
    def forward(ctx, x: Tensor, a0: float, a1: float) -> Tensor:
        ctx.save_for_backward(x)
        y, ctx.fast = _forward(x, a0, a1)
        ctx.a0, ctx.a1 = a0, a1
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return _backward(x, ctx.a0, ctx.a1, grad, ctx.fast), None, None


class _HTAFTransformable(torch.autograd.Function):
    """The same function with ``setup_context``, which functorch transforms (vmap) require."""

    generate_vmap_rule = True  # under vmap the inputs are wrapped and take the torch path

    @staticmethod
    def forward(x: Tensor, a0: float, a1: float) -> Tensor:
        return _forward(x, a0, a1)[0]

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, a0, a1 = inputs
        ctx.save_for_backward(x)
        ctx.a0, ctx.a1 = a0, a1

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return _backward(x, ctx.a0, ctx.a1, grad), None, None


def htaf(x: Tensor, alpha0: Param = 2.0, alpha1: Param = 11.0) -> Tensor:
    r"""Heavy Tailed Activation Function.

    .. math:: \mathrm{HTAF}(x) = \sigma(\alpha_1 \tanh(\alpha_0 x))

    Output lies in :math:`(\sigma(-\alpha_1), \sigma(\alpha_1))`; slope at 0 is
    :math:`\alpha_0\alpha_1/4`; the derivative's tail decays like :math:`e^{-2\alpha_0|x|}`.
    Works for float16/bfloat16 (computed in float32), float32 and float64, on any device and
    under ``torch.compile``.
    """
    check_float(x)
    a0 = check_param(alpha0, "alpha0")
    a1 = check_param(alpha1, "alpha1")
    if torch._C._are_functorch_transforms_active():
        return _HTAFTransformable.apply(x, a0, a1)
    if _native.accepts(x):
        return _native.htaf(x, a0, a1)
    if torch.compiler.is_compiling():
        # Dynamo runs this import rather than tracing it: the first compiled call registers
        # the custom operators, so that `import htaf` never pays for them.
        from htaf import _ops

        if _ops.takes(x):
            return _ops.htaf(x, a0, a1)  # the fused kernels as one node of the graph
    return _HTAF.apply(x, a0, a1)


def htaf_derivative(x: Tensor, alpha0: Param = 2.0, alpha1: Param = 11.0) -> Tensor:
    r"""Closed-form :math:`\frac{d}{dx}\mathrm{HTAF}(x)`, numerically stable in the tails.

    .. math::
        \mathrm{HTAF}'(x) = \alpha_0\alpha_1\,\sigma(u)\sigma(-u)\,\mathrm{sech}^2(\alpha_0 x),
        \quad u = \alpha_1 \tanh(\alpha_0 x)

    computed as :math:`4\alpha_0\alpha_1 \frac{e}{(1+e)^2}\frac{f}{(1+f)^2}` with
    :math:`e = e^{-2\alpha_0|x|}` and :math:`f = e^{-|u|}`.
    """
    check_float(x)
    a0 = check_param(alpha0, "alpha0")
    a1 = check_param(alpha1, "alpha1")
    return _htaf_grad(_opmath(x), a0, a1).to(x.dtype)


def signed_htaf(x: Tensor, alpha0: Param = 2.0, alpha1: Param = 11.0) -> Tensor:
    r"""Signed HTAF for ±1 networks: :math:`2\,\mathrm{HTAF}(x) - 1 = \tanh(\tfrac{\alpha_1}{2}
    \tanh(\alpha_0 x))`. Reaching ±1 needs a large :math:`\alpha_1`, not only :math:`\alpha_0`."""
    return 2 * htaf(x, alpha0, alpha1) - 1


def scaled_sigmoid_derivative(x: Tensor, beta: Param = 22.0) -> Tensor:
    r"""Closed-form :math:`\frac{d}{dx}\sigma(\beta x) = \beta\sigma(\beta x)\sigma(-\beta x)`,
    accurate in both tails.

    Computed as :math:`\beta\,e/(1+e)^2` with :math:`e = e^{-\beta|x|}`, which never
    overflows: the form :math:`\beta y(1-y)` that autograd uses for ``torch.sigmoid`` loses
    everything once :math:`y` rounds to 1 (:math:`\beta x \gtrsim 17` in float32), where the
    true derivative is still :math:`\approx \beta e^{-\beta x}`.
    """
    check_float(x)
    b = check_param(beta, "beta")
    e = torch.exp(-b * x.abs())
    return b * e / ((1 + e) * (1 + e))


class _ScaledSigmoid(torch.autograd.Function):
    """σ(βx) whose backward is :func:`scaled_sigmoid_derivative`, not autograd's β·y·(1 − y)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, beta: float) -> Tensor:
        return torch.sigmoid(beta * x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, ctx.beta = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return grad * scaled_sigmoid_derivative(x, ctx.beta), None


def scaled_sigmoid(x: Tensor, beta: Param = 22.0) -> Tensor:
    r"""Scaled sigmoid :math:`\sigma(\beta x)`, the paper's smooth baseline (:math:`\beta = 22`).

    Its derivative :math:`\beta\sigma(\beta x)\sigma(-\beta x)` decays like
    :math:`e^{-\beta|x|}`; the backward computes it in the stable form of
    :func:`scaled_sigmoid_derivative`, so that it is exact in both tails in every dtype.
    """
    check_float(x)
    b = check_param(beta, "beta")
    return _ScaledSigmoid.apply(x, b)


def htaf_live_radius(alpha1: float, level: float = 0.01) -> float:
    r"""The live region of HTAF in units of :math:`z = \alpha_0 x`: the :math:`z^\ast` with

    .. math:: \frac{\mathrm{HTAF}'(x)}{\mathrm{HTAF}'(0)} = 4\sigma(u)\sigma(-u)\,
        \mathrm{sech}^2(z) = \text{level}, \qquad u = \alpha_1\tanh z .

    The ratio falls monotonically in :math:`|z|` and depends on :math:`\alpha_1` only, so the
    derivative is at least ``level`` of its peak exactly where :math:`|x| \le z^\ast/\alpha_0`
    (:math:`z^\ast \approx 0.57` for :math:`\alpha_1 = 11` at 1%). Float64 bisection.
    """
    a1 = check_param(alpha1, "alpha1")
    lv = check_param(level, "level")
    if lv >= 1:
        raise ValueError(f"level must be in (0, 1), got {lv}")

    def ratio(z: float) -> float:
        u = a1 * math.tanh(z)
        return 4 * _sigmoid_prime(u) / math.cosh(min(z, 350.0)) ** 2

    lo, hi = 0.0, 1.0
    while ratio(hi) > lv:
        lo, hi = hi, 2 * hi
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid) > lv else (lo, mid)
    return (lo + hi) / 2


def _sigmoid_prime(u: float) -> float:
    e = math.exp(-abs(u))
    return e / (1 + e) ** 2


class ConstantInputError(ValueError):
    """Calibration was asked of an input with one value everywhere: it has no scale."""


#: Elements read by :func:`calibrate_alpha0`: a fixed-stride sample keeps it fast and exact
#: enough for a quantile, and deterministic.
CALIBRATION_SAMPLE = 1 << 20


def calibrate_alpha0(
    x: Tensor, alpha1: float = 11.0, live: float = 0.5, level: float = 0.01, where: str = "x"
) -> float:
    r"""The :math:`\alpha_0` that puts a fraction ``live`` of the inputs ``x`` in HTAF's live
    region (derivative :math:`\ge` ``level`` of its peak; see :func:`htaf_live_radius`):

    .. math:: \alpha_0 = z^\ast(\alpha_1, \text{level}) \,/\, Q_{\text{live}}(|x|),

    with :math:`Q_q` the :math:`q`-quantile. The threshold sits at :math:`x = 0`: pass
    ``membrane - threshold``. Raises ValueError naming ``where`` for an empty input, a
    non-finite value, a constant input, or one whose quantile is 0.
    """
    check_float(x, where)
    q = check_param(live, "live")
    if q >= 1:
        raise ValueError(f"live (the fraction of inputs to keep live) must be in (0, 1), got {q}")
    flat = x.detach().reshape(-1)
    if flat.numel() == 0:
        raise ValueError(f"cannot calibrate alpha0 of {where}: its input is empty")
    if flat.numel() > CALIBRATION_SAMPLE:
        flat = flat[:: flat.numel() // CALIBRATION_SAMPLE + 1]
    flat = flat.double()
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(f"cannot calibrate alpha0 of {where}: its input has NaN or Inf")
    if bool(flat.max() == flat.min()):
        raise ConstantInputError(
            f"cannot calibrate alpha0 of {where}: its input is constant "
            f"({float(flat[0]):g} everywhere); calibrate on a real batch"
        )
    k = max(1, min(flat.numel(), math.ceil(q * flat.numel())))
    scale = float(flat.abs().kthvalue(k).values)
    if scale == 0:
        raise ValueError(
            f"cannot calibrate alpha0 of {where}: more than {q:.0%} of its inputs sit "
            f"exactly on the threshold"
        )
    return htaf_live_radius(alpha1, level) / scale
