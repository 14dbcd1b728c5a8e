r"""Convex losses: CVXPY atoms, numpy values, gradients and Fenchel conjugates.

Each loss :math:`\ell(\hat y, y)` is summed over samples (and outputs). Conventions (shared by
the network objective and every convex program, see README "Conventions"):

=========  ========================================  =============================================
name       value                                     conjugate :math:`\ell^*(z) = \sup_p z^\top p - \ell(p)`
=========  ========================================  =============================================
squared    :math:`\tfrac12\|\hat y - y\|_2^2`        :math:`\tfrac12\|z\|^2 + z^\top y`
logistic   :math:`\sum \log(1 + e^{-y \hat y})`      :math:`\sum (-y z)\log(-y z) + (1+yz)\log(1+yz)`, :math:`-yz \in [0,1]`
hinge      :math:`\sum \max(0, 1 - y \hat y)`        :math:`\sum y z` on :math:`-yz \in [0, 1]`
=========  ========================================  =============================================

Labels for ``logistic`` and ``hinge`` are in :math:`\{-1, +1\}`. The dual of every convex program
(002, 004 eq. (6)) uses :math:`-\ell^*(-v)` as its objective, so the conjugates are needed by
the duality module and by the first-order solvers' gap-based stopping rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from convexnn.errors import InputError

__all__ = ["Loss", "SquaredLoss", "LogisticLoss", "HingeLoss", "get_loss", "LOSSES"]


@dataclass(frozen=True)
class Loss:
    """Base class: a convex loss summed over samples. Subclasses implement every method."""

    name: str = "loss"
    smooth: bool = True
    classification: bool = False

    def cvx(self, pred: cp.Expression, y: np.ndarray) -> cp.Expression:  # pragma: no cover
        """CVXPY expression of the loss of predictions ``pred`` (same shape as ``y``)."""
        raise TypeError(f"{type(self).__name__} does not implement cvx()")

    def value(self, pred: np.ndarray, y: np.ndarray) -> float:  # pragma: no cover
        """Numpy value of the loss."""
        raise TypeError(f"{type(self).__name__} does not implement value()")

    def grad(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Gradient with respect to ``pred`` (a subgradient for non-smooth losses)."""
        raise TypeError(f"{type(self).__name__} does not implement grad()")

    def conjugate(self, z: np.ndarray, y: np.ndarray) -> float:  # pragma: no cover
        r"""Fenchel conjugate :math:`\ell^*(z) = \sup_p \langle z, p\rangle - \ell(p, y)` (``inf`` outside its domain)."""
        raise TypeError(f"{type(self).__name__} does not implement conjugate()")

    def dual_value(self, v: np.ndarray, y: np.ndarray) -> float:
        r"""Dual objective term :math:`-\ell^*(-v)` used by the duality module."""
        return -self.conjugate(-np.asarray(v), y)


@dataclass(frozen=True)
class SquaredLoss(Loss):
    r""":math:`\ell(\hat y, y) = \tfrac12 \|\hat y - y\|_2^2`; :math:`\ell^*(z) = \tfrac12\|z\|^2 + z^\top y`."""

    name: str = "squared"

    def cvx(self, pred, y):
        return 0.5 * cp.sum_squares(pred - y)

    def value(self, pred, y):
        r = np.asarray(pred) - y
        return 0.5 * float(np.sum(r * r))

    def grad(self, pred, y):
        return np.asarray(pred) - y

    def conjugate(self, z, y):
        z = np.asarray(z)
        return 0.5 * float(np.sum(z * z)) + float(np.sum(z * y))


@dataclass(frozen=True)
class LogisticLoss(Loss):
    r""":math:`\ell(\hat y, y) = \sum_j \log(1 + e^{-y_j \hat y_j})`, labels in :math:`\{-1,+1\}`."""

    name: str = "logistic"
    classification: bool = True

    def cvx(self, pred, y):
        return cp.sum(cp.logistic(-cp.multiply(y, pred)))

    def value(self, pred, y):
        return float(np.sum(np.logaddexp(0.0, -y * np.asarray(pred))))

    def grad(self, pred, y):
        # d/dp log(1 + exp(-y p)) = -y * sigmoid(-y p)
        t = -y * np.asarray(pred)
        return -y * _sigmoid(t)

    def conjugate(self, z, y):
        # with a = -y z in [0, 1]: l*(z) = sum a log a + (1 - a) log(1 - a)
        a = -y * np.asarray(z)
        tol = 1e-12
        if np.any(a < -tol) or np.any(a > 1 + tol):
            return float("inf")
        a = np.clip(a, 0.0, 1.0)
        return float(np.sum(_xlogx(a) + _xlogx(1.0 - a)))


@dataclass(frozen=True)
class HingeLoss(Loss):
    r""":math:`\ell(\hat y, y) = \sum_j \max(0, 1 - y_j \hat y_j)`, labels in :math:`\{-1,+1\}`."""

    name: str = "hinge"
    smooth: bool = False
    classification: bool = True

    def cvx(self, pred, y):
        return cp.sum(cp.pos(1 - cp.multiply(y, pred)))

    def value(self, pred, y):
        return float(np.sum(np.maximum(0.0, 1.0 - y * np.asarray(pred))))

    def grad(self, pred, y):
        return np.where(1.0 - y * np.asarray(pred) > 0, -y, 0.0)

    def conjugate(self, z, y):
        # l*(z) = sum y z   for  -y z in [0, 1]
        a = -y * np.asarray(z)
        tol = 1e-12
        if np.any(a < -tol) or np.any(a > 1 + tol):
            return float("inf")
        return float(np.sum(y * np.asarray(z)))


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -t))


def _xlogx(a: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a, dtype=float)
    pos = a > 0
    out[pos] = a[pos] * np.log(a[pos])
    return out


LOSSES: dict[str, Loss] = {
    "squared": SquaredLoss(),
    "logistic": LogisticLoss(),
    "hinge": HingeLoss(),
}


def get_loss(loss: str | Loss) -> Loss:
    """Return the :class:`Loss` named ``loss`` (``"squared"``, ``"logistic"``, ``"hinge"``)."""
    if isinstance(loss, Loss):
        return loss
    try:
        return LOSSES[loss]
    except (KeyError, TypeError):
        raise InputError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}.") from None
