"""Estimators for the contract tests: every registered name, plus HTAF's fixed constants.

``htaf`` is ``htaf(auto)``: it chooses alpha0 on its first input. The contract tests check the
math of a calibrated one (calibrated on a fixed grid, so alpha0 is the same in every run) and
of the paper's ``htaf(2,11)``.
"""

import torch

from htaf import estimators as E

#: Q_0.5(|x|) = 1 on this grid, so htaf(auto) gets alpha0 = z*(11) = 0.5708.
CALIBRATION = torch.linspace(-2, 2, 4001, dtype=torch.float64)
SPECS = [*E.names(), "htaf(2,11)"]


def make(spec, **params):
    """``E.get(spec, **params)``, calibrated on :data:`CALIBRATION` where it is htaf(auto)."""
    est = E.get(spec, **params)
    if getattr(est, "pending", False):
        est.calibrate(CALIBRATION)
    return est
