"""The Implicit Concept Bottleneck Model: backbone features -> concepts -> linear classifier.

    f = B(x)                (backbone features, shape (n, D))
    z = N(W_c f + b_c)      (concept pre-activations, shape (n, K); N an optional BatchNorm1d)
    c = A(z)                (the K implicit concepts)
    logits = W_h c + b_h    (a linear classifier on the concepts)

With ``A`` an estimator (HTAF, STE, ...) the concepts are trained to be binary and the exact
step ``c = 1{z >= 0}`` is the model's binary forward (``*_hard`` metrics). With ``A`` a
continuous activation (``relu``, ``sigmoid``) it is the concept-bottleneck baseline: trained as
it is, and discretized only after training, at inference, by :class:`PosthocThreshold`
(``c = 1{A(z) > t}``; ``t`` = 0.5 for the sigmoid, 0 for ReLU, or ``model.posthoc_threshold``).

A concept is *active* on an image when the bottleneck's binary forward gives 1 there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from htaf.estimators import Estimator, is_binary, set_mode
from htaf.estimators import activation as make_activation
from htaf.functional import heaviside

__all__ = ["ICBM", "POSTHOC", "PosthocThreshold", "concept_stats"]

#: The continuous bottlenecks of the CBM baseline and their default post-hoc thresholds.
POSTHOC: dict[str, float] = {"sigmoid": 0.5, "relu": 0.0}
HEADS = ("linear", "mlp")


class PosthocThreshold(Estimator):
    """A continuous bottleneck (``relu`` or ``sigmoid``) with a threshold applied post hoc.

    smooth forward (training, ``*_smooth``): the activation itself, ``A(z)``;
    hard forward (``*_hard``): ``1{A(z) > t}``, i.e. ``1{z > cut}`` with ``cut = logit(t)``
    (sigmoid) or ``t`` (ReLU, ``t >= 0``); backward: ``A'(z)``.

    It is an :class:`~htaf.estimators.Estimator` only so that ``harden`` / ``set_mode`` switch
    it like every other bottleneck; it is not in the estimator registry.
    """

    name = "posthoc"
    description = "a continuous bottleneck thresholded after training (CBM baseline)"
    default_mode = "smooth"

    def __init__(self, activation: str, threshold: float | None = None):
        super().__init__()
        if activation not in POSTHOC:
            raise ValueError(
                f"post-hoc thresholding takes {' or '.join(POSTHOC)}, not {activation!r}"
            )
        t = POSTHOC[activation] if threshold is None else float(threshold)
        if activation == "sigmoid" and not 0 < t < 1:
            raise ValueError(f"model.posthoc_threshold for a sigmoid must be in (0, 1), got {t}")
        if activation == "relu" and t < 0:
            raise ValueError(f"model.posthoc_threshold for relu must be >= 0, got {t}")
        self.activation, self.threshold = activation, t
        self.cut = math.log(t / (1 - t)) if activation == "sigmoid" else t

    def smooth(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x) if self.activation == "sigmoid" else F.relu(x)

    def grad(self, x: Tensor) -> Tensor:
        if self.activation == "sigmoid":
            return torch.sigmoid(x) * torch.sigmoid(-x)
        return (x >= 0).to(x.dtype)  # 1 at 0+, so the saturation statistic has a scale

    def step(self, x: Tensor) -> Tensor:
        # 1{z > cut}: the complement of H(cut - z), whose H(0) = 1 puts z = cut on the 0 side.
        return 1 - heaviside(self.cut - x)

    def forward(self, x: Tensor) -> Tensor:
        # Not the native step operator: it thresholds at 0 with H(0) = 1, not at ``cut``.
        return self.hard(x) if self.mode == "hard" else self.smooth(x)

    def extra_repr(self) -> str:
        return f"{self.activation}, threshold={self.threshold:g}, mode={self.mode!r}"


def make_bottleneck(
    estimator: str, params: Mapping[str, float], posthoc_threshold: float | None
) -> nn.Module:
    """An estimator for a binary bottleneck; :class:`PosthocThreshold` for relu / sigmoid."""
    if is_binary(estimator):
        act = make_activation(estimator, **params)
        if act.signed:  # pragma: no cover - registry estimators are unsigned unless asked
            raise ValueError("the ICBM bottleneck takes unsigned (0/1) estimators")
        return act
    name = estimator.strip()
    if name not in POSTHOC:
        make_activation(name)  # an unknown name: the registry's error lists the choices
        raise ValueError(
            f"the ICBM bottleneck must be an estimator or one of {', '.join(POSTHOC)} "
            f"(the CBM baseline), not {estimator!r}"
        )
    if params:
        raise ValueError(f"{estimator!r} takes no estimator parameters, got {dict(params)}")
    return PosthocThreshold(name, posthoc_threshold)


class ICBM(nn.Module):
    """An implicit concept bottleneck model (see the module doc).

    Args:
        backbone: a module mapping an input batch to features ``(n, backbone.out_features)``.
        n_concepts: number of concepts ``K``.
        n_out: logits.
        estimator: the bottleneck: an estimator name (``"htaf"``, ``"htaf(2,11)"``, ``"ste"``)
            or ``"relu"`` / ``"sigmoid"`` for the post-hoc thresholded CBM baseline.
        head: ``"linear"`` (the paper's classifier) or ``"mlp"`` (one hidden ReLU layer of
            width ``K``; concepts then no longer add up linearly).
        batch_norm: BatchNorm1d on the concept pre-activations.
        norm_scale: its initial scale: the pre-activations start with about this standard
            deviation, so most lie outside the estimator's transition band.
        posthoc_threshold: threshold of a continuous bottleneck (default 0.5 / 0).
        **estimator_params: passed to the estimator (e.g. ``alpha0=2, alpha1=11``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        n_concepts: int,
        n_out: int,
        estimator: str = "htaf",
        head: str = "linear",
        *,
        batch_norm: bool = True,
        norm_scale: float = 1.0,
        posthoc_threshold: float | None = None,
        **estimator_params: float,
    ):
        super().__init__()
        if isinstance(n_concepts, bool) or not isinstance(n_concepts, int) or n_concepts < 1:
            raise ValueError(f"n_concepts must be a positive integer, got {n_concepts!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        self.backbone = backbone
        self.n_concepts, self.estimator, self.head_kind = n_concepts, estimator, head
        self.concept = nn.Linear(int(backbone.out_features), n_concepts)
        self.norm = nn.BatchNorm1d(n_concepts) if batch_norm else nn.Identity()
        if batch_norm:
            nn.init.constant_(self.norm.weight, norm_scale)
        self.bottleneck = make_bottleneck(estimator, estimator_params, posthoc_threshold)
        if head == "linear":
            self.head: nn.Module = nn.Linear(n_concepts, n_out)
        else:
            self.head = nn.Sequential(
                nn.Linear(n_concepts, n_concepts), nn.ReLU(), nn.Linear(n_concepts, n_out)
            )

    # -- forward ----------------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def pre_concepts(self, x: Tensor) -> Tensor:
        """The concept pre-activations ``z`` (the scores the alignment ranks images by)."""
        return self.norm(self.concept(self.features(x)))

    def concepts(self, x: Tensor) -> Tensor:
        """The concepts ``c`` in the current forward mode."""
        return self.bottleneck(self.pre_concepts(x))

    def classify(self, c: Tensor) -> Tensor:
        """Logits from concepts (for interventions: edit ``c``, then classify)."""
        return self.head(c)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.concepts(x))

    def active(self, z: Tensor) -> Tensor:
        """Which concepts are on: the bottleneck's exact binary forward of ``z``, as bool."""
        with set_mode(self.bottleneck, "hard"), torch.no_grad():
            return self.bottleneck(z) > 0.5

    # -- engine hooks -----------------------------------------------------------------------
    def activation_modules(self) -> list[nn.Module]:
        """The hidden activations the engine's statistics look at: the bottleneck only (not
        the backbone's ReLUs)."""
        return [self.bottleneck]

    def train(self, mode: bool = True) -> ICBM:
        super().train(mode)
        if getattr(self.backbone, "frozen", False):  # frozen BatchNorm statistics stay frozen
            self.backbone.eval()
        return self

    def eval_stats(self, x: Tensor) -> dict[str, float]:
        """Concept statistics of one test batch in the current forward mode (see
        :func:`concept_stats`)."""
        z = self.pre_concepts(x)
        return concept_stats(self.bottleneck(z), self.active(z))


def concept_stats(c: Tensor, active: Tensor) -> dict[str, Any]:
    """Binarisation of the concepts ``c`` ``(n, K)`` and usage of the ``active`` ones:

    * ``concept_near_binary_05``: fraction of values within 0.05 of 0 or 1;
    * ``concept_entropy``: mean binary entropy in bits of ``c`` clipped to [0, 1];
    * ``concepts_dead`` / ``concepts_always_on``: concepts active on no / on every image;
    * ``concepts_active_mean``: mean number of active concepts per image.
    """
    u = c.detach().double()
    p = u.clamp(0, 1)
    entropy = -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)) / math.log(2)
    near = torch.minimum(u.abs(), (u - 1).abs()) <= 0.05
    on = active.to(torch.float64)
    return {
        "concept_near_binary_05": float(near.double().mean()),
        "concept_entropy": float(entropy.mean()),
        "concepts_dead": int((on.sum(0) == 0).sum()),
        "concepts_always_on": int((on.sum(0) == len(on)).sum()),
        "concepts_active_mean": float(on.sum(1).mean()),
    }
