r"""Helpers shared by the duality module: reading a user's network, validation, rounding bounds.

A two-layer ReLU network is read into a :class:`~convexnn.networks.reading.NetworkArrays` (a
scalar-output :class:`~convexnn.TwoLayerReLU` that remembers where it came from); its objective
:func:`~convexnn.networks.two_layer.network_objective`, predictions and neuron rebalancing are the
network module's, re-exported here. The cone mathematics (:math:`s(v)`, projections, rigorous
bounds) lives in :mod:`convexnn.duality.cones` and the dual-candidate bounds in
:mod:`convexnn.duality.bounds`; both are re-exported here for the duality modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convexnn.data import check_lam, check_X, check_y
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, get_loss
from convexnn.duality.bounds import best_scale, certified_dual_value
from convexnn.duality.cones import ConeSupport, cone_support, global_support_bound, project_cone
from convexnn.networks.reading import NetworkArrays, as_network_arrays, rebuild_network
from convexnn.networks.two_layer import network_objective, network_predict, rebalance, weight_decay
from convexnn.rounding import gamma

__all__ = [
    "NetworkArrays",
    "as_network_arrays",
    "network_predict",
    "network_objective",
    "rebalance",
    "rebuild_network",
    "cone_support",
    "ConeSupport",
    "project_cone",
    "global_support_bound",
    "best_scale",
    "certified_dual_value",
    "objective_error_bound",
]



def objective_error_bound(Xa: np.ndarray, y: np.ndarray, W1: np.ndarray, w2: np.ndarray, lam: float,
                          loss: Loss) -> float:
    r"""Bound on the rounding error of :func:`network_objective` for float64 data and weights.

    Predictions: :math:`|\mathrm{fl}(\hat y_j) - \hat y_j| \le e_j = \gamma_{d'+m+2}\,(|X_a||W_1|\,|w_2|)_j`;
    the loss moves by at most :math:`\sum_j L_j e_j` with :math:`L_j` the loss's slope bound on
    :math:`[\hat y_j - e_j, \hat y_j + e_j]` (:meth:`~convexnn.formulations.losses.Loss.slope_bound`:
    :math:`|r_j| + e_j` for the squared loss, 1 for logistic and hinge, :math:`\min(|r_j| + e_j,
    \delta)` for Huber) plus the rounding of its own sum
    (:meth:`~convexnn.formulations.losses.Loss.value_error`) and of the weight decay.
    """
    n, dp = Xa.shape
    m = W1.shape[1]
    P = np.abs(Xa) @ np.abs(W1) @ np.abs(w2)
    e = gamma(dp + m + 2) * P
    pred = network_predict(Xa, W1, w2)
    err_loss = float(np.sum(loss.slope_bound(pred, y, e) * e)) + loss.value_error(pred, y)
    return err_loss + lam * weight_decay(W1, w2) * gamma(W1.size + w2.size + 4) + 1e-300


def validate(X: Any, y: Any, lam: Any, loss: str | Loss) -> tuple[np.ndarray, np.ndarray, float, Loss]:
    """Validate ``X, y, lam, loss`` for the scalar-output duality routines."""
    L = get_loss(loss)
    Xc = check_X(X)
    yc = check_y(y, Xc.shape[0], loss=L.name)
    if yc.ndim != 1:
        raise InputError("the duality module supports scalar outputs only (y of shape (n,)).")
    return Xc, yc, check_lam(lam), L
