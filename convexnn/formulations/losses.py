r"""Convex losses: the one place for a loss's mathematics.

A :class:`Loss` :math:`f(\hat y) = \sum_j \ell(\hat y_j, y_j)` (summed over samples and outputs)
carries everything the rest of the package needs from it:

====================================  ==========================================================
capability                            used by
====================================  ==========================================================
``cvx`` (primal CVXPY form)           every convex program (interior point)
``dual_cvx`` (:math:`-f^*(-v)` and    :func:`convexnn.dual_problem`
its domain constraints)
``value_on`` / ``grad_on`` /          first-order solvers (numpy / torch through a
``bregman_on`` / ``conjugate_on``     :class:`~convexnn.backend.Backend`), torch training
``lipschitz``                         R-FISTA and the augmented Lagrangian (step sizes); ``None``
                                      for a non-smooth loss, which those solvers refuse
``curvature_on`` / ``unit_curvature`` the Newton polish of C-GReLU (diagonal Hessian)
``value`` / ``grad`` / ``conjugate``  numpy evaluations (objectives, KKT, certificates)
``conjugate_domain``                  dual feasibility (exact for certificates)
``slope_bound`` / ``value_error`` /   rounding analysis of the certified bounds
``dual_value_error``
``best_dual_scale``                   best scaling of a dual candidate (closed form when known)
====================================  ==========================================================

The numpy methods are the array-namespace methods evaluated on :data:`convexnn.backend.NUMPY`,
so each formula is written once. Conventions (shared by the network objective and every convex
program, ``docs/DESIGN.md``):

=========  ========================================  =============================================
name       value                                     conjugate :math:`\ell^*(z) = \sup_p z^\top p - \ell(p)`
=========  ========================================  =============================================
squared    :math:`\tfrac12\|\hat y - y\|_2^2`        :math:`\tfrac12\|z\|^2 + z^\top y`
logistic   :math:`\sum \log(1 + e^{-y \hat y})`      :math:`\sum (-y z)\log(-y z) + (1+yz)\log(1+yz)`, :math:`-yz \in [0,1]`
hinge      :math:`\sum \max(0, 1 - y \hat y)`        :math:`\sum y z` on :math:`-yz \in [0, 1]`
huber      see :mod:`convexnn.formulations.huber`    :math:`\tfrac12\|z\|^2 + z^\top y` on :math:`|z_j| \le \delta`
=========  ========================================  =============================================

Labels for ``logistic`` and ``hinge`` are in :math:`\{-1, +1\}`. The dual of every convex
program (Pilanci & Ergen, *Neural Networks are Convex Regularizers*, ICML 2020, eq. (6)) has
:math:`-\ell^*(-v)` as its objective. A new loss is one file: a subclass implementing the
methods above and a call to :func:`register_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from convexnn.backend import NUMPY, Backend
from convexnn.errors import InputError
from convexnn.rounding import gamma

__all__ = ["Loss", "SquaredLoss", "LogisticLoss", "HingeLoss", "get_loss", "register_loss", "LOSSES"]

#: Tolerance of :meth:`Loss.conjugate` on the conjugate's domain (rounding of a dual point).
CONJUGATE_DOMAIN_TOL = 1e-12


@dataclass(frozen=True, kw_only=True)
class Loss:
    r"""Base class: a convex loss :math:`f(\hat y) = \sum_j \ell(\hat y_j, y_j)`.

    A subclass implements the array-namespace methods (``*_on``), ``cvx``, ``dual_cvx``,
    ``conjugate_domain`` and the rounding bounds; a method it cannot provide raises
    :class:`InputError` naming the missing capability.

    Attributes
    ----------
    name : str
        Registry name (:func:`get_loss`).
    classification : bool
        Labels must be in :math:`\{-1, +1\}`.
    lipschitz : float or None
        Lipschitz constant of :math:`\nabla f` (``None``: not differentiable with a Lipschitz
        gradient; the first-order solvers refuse such a loss).
    unit_curvature : bool
        :math:`\nabla^2 f = I` everywhere (the Newton system is the Gram matrix, computed once).
    scales_with_targets : bool
        :math:`\ell(s\hat y, s y) = s^2\ell(\hat y, y)` for :math:`s > 0`: the solvers may rescale
        the targets exactly (:mod:`convexnn.solvers.scaling`).
    torch_scale : float or None
        This loss per sample is ``torch_scale`` times the matching torch loss (``nn.MSELoss``:
        0.5; ``nn.SoftMarginLoss``, the hinge :math:`\max(0, 1 - yf)` and ``nn.HuberLoss``: 1);
        ``None`` when there is no counterpart (:mod:`convexnn.torch_interop`).
    """

    name: str = "loss"
    classification: bool = False
    lipschitz: float | None = None
    unit_curvature: bool = False
    scales_with_targets: bool = False
    torch_scale: float | None = None

    @property
    def smooth(self) -> bool:
        """Differentiable with a Lipschitz gradient (:attr:`lipschitz` is not ``None``)."""
        return self.lipschitz is not None

    def _missing(self, capability: str) -> InputError:
        return InputError(f"the {self.name!r} loss ({type(self).__name__}) does not provide {capability}.")

    def outlier_split(self) -> float | None:
        r""":math:`\delta` when the loss is the squared loss with an :math:`\ell_1`-penalized outlier per
        sample, :math:`\ell(\hat y_j, y_j) = \min_{a}\ \tfrac12(\hat y_j - y_j - a)^2 + \delta|a|` (the
        Moreau envelope of :math:`\delta|\cdot|`: the Huber loss); None otherwise. The block interior
        point (:mod:`convexnn.solvers.block_ipm`) then solves that exact split form, whose Newton
        systems stay nonsingular where :math:`\ell'' = 0`."""
        return None

    def with_target_scale(self, b: float) -> "Loss | None":
        r"""The loss of the program whose targets and predictions are divided by ``b > 0``: the
        :math:`\ell_b` with :math:`\ell_b(\hat y/b,\, y/b) = \ell(\hat y, y)/b^2`, or None when the
        loss has none (the solvers then leave the targets as they are, :mod:`convexnn.solvers.scaling`).
        Default: the loss itself when :attr:`scales_with_targets`, else None."""
        return self if self.scales_with_targets else None

    # ------------------------------------------------------------------ array namespace (numpy / torch)
    def value_on(self, bk: Backend, z: Any, y: Any) -> Any:
        """:math:`f(z)` on the backend ``bk`` (a 0-d array)."""
        raise self._missing("a value")

    def grad_on(self, bk: Backend, z: Any, y: Any) -> Any:
        r""":math:`\nabla f(z)` (a subgradient for non-smooth losses) on ``bk``."""
        raise self._missing("a gradient")

    def curvature_on(self, bk: Backend, z: Any, y: Any) -> Any:
        r"""Diagonal of :math:`\nabla^2 f(z)` (a generalized Hessian where :math:`f''` jumps)."""
        raise self._missing("second-order (Hessian) information")

    def bregman_on(self, bk: Backend, z1: Any, z0: Any, y: Any) -> Any:
        r"""Bregman divergence :math:`f(z_1) - f(z_0) - \langle\nabla f(z_0), z_1 - z_0\rangle \ge 0`.

        The generic form is the clipped difference; subclasses override it with a form free of
        cancellation near the optimum (the line search of R-FISTA relies on it).
        """
        d = self.value_on(bk, z1, y) - self.value_on(bk, z0, y) - bk.vdot(self.grad_on(bk, z0, y), z1 - z0)
        return bk.maximum(d, 0.0)

    def conjugate_on(self, bk: Backend, theta: Any, y: Any) -> Any:
        r""":math:`f^*(\theta)` for ``theta`` in the conjugate's domain (the caller guarantees it)."""
        raise self._missing("a conjugate")

    # ------------------------------------------------------------------ CVXPY forms
    def cvx(self, pred: cp.Expression, y: np.ndarray) -> cp.Expression:
        """CVXPY expression of the loss of predictions ``pred`` (same shape as ``y``)."""
        raise self._missing("a CVXPY form")

    def dual_cvx(self, v: cp.Expression, y: np.ndarray) -> tuple[cp.Expression, list]:
        r"""CVXPY expression of :math:`-f^*(-v)` and the constraints of its domain."""
        raise self._missing("a CVXPY dual form")

    # ------------------------------------------------------------------ numpy
    def value(self, pred: Any, y: Any) -> float:
        """Numpy value of the loss."""
        return float(self.value_on(NUMPY, np.asarray(pred), np.asarray(y)))

    def grad(self, pred: Any, y: Any) -> np.ndarray:
        """Gradient with respect to ``pred`` (a subgradient for non-smooth losses)."""
        return np.asarray(self.grad_on(NUMPY, np.asarray(pred), np.asarray(y)))

    def conjugate_domain(self, z: Any, y: Any, tol: float = 0.0) -> bool:
        r"""Whether ``z`` lies in the domain of :math:`f^*` (up to ``tol``; ``tol=0``: exactly)."""
        raise self._missing("the domain of its conjugate")

    def conjugate(self, z: Any, y: Any) -> float:
        r"""Fenchel conjugate :math:`f^*(z) = \sup_p \langle z, p\rangle - f(p)` (``inf`` outside its domain)."""
        z, y = np.asarray(z), np.asarray(y)
        if not self.conjugate_domain(z, y, CONJUGATE_DOMAIN_TOL):
            return float("inf")
        return float(self.conjugate_on(NUMPY, z, y))

    def dual_value(self, v: Any, y: Any) -> float:
        r"""Dual objective term :math:`-f^*(-v)` used by the duality module."""
        return -self.conjugate(-np.asarray(v), y)

    def project_dual(self, v: np.ndarray, y: np.ndarray) -> np.ndarray:
        r"""A point of the dual domain :math:`\{v : -v \in \operatorname{dom} f^*\}` near ``v``
        (the Euclidean projection for the built-in losses; exact in floating point, so
        :meth:`conjugate_domain` holds with ``tol=0``)."""
        raise self._missing("a projection onto the domain of its conjugate")

    def best_dual_scale(self, v: np.ndarray, y: np.ndarray, c_max: float) -> float | None:
        r"""The maximizer of :math:`c \mapsto -f^*(-cv)` on :math:`[0, c_{\max}]` (closed form or a
        one-dimensional solve of the loss's own), or ``None`` when the loss has none (the caller
        searches numerically)."""
        return None

    # ------------------------------------------------------------------ rounding (certificates)
    def slope_bound(self, pred: np.ndarray, y: np.ndarray, e: np.ndarray) -> np.ndarray:
        r"""Bound on :math:`|\partial\ell/\partial\hat y_j|` over :math:`|\hat y_j - \text{pred}_j| \le e_j`."""
        raise self._missing("a bound on its slope (certificates)")

    def value_error(self, pred: np.ndarray, y: np.ndarray) -> float:
        r"""Bound on the rounding error of :meth:`value` in float64.

        Generic: every term is evaluated to within :math:`16u(|t_j| + 1)` (a few operations and
        one ``log``/``exp``), so the error is at most :math:`\gamma_{n+16}(|f| + n)`.
        """
        n = np.asarray(y).size
        return gamma(n + 16) * (abs(self.value(pred, y)) + n)

    def dual_value_error(self, v: np.ndarray, y: np.ndarray, value: float) -> float:
        r"""Bound on the rounding error of :meth:`dual_value` (``value``) at ``v`` in float64.

        Generic: :math:`\gamma_{n+16}(|\text{value}| + \sum_j |v_j| + n)`.
        """
        n = v.size
        return gamma(n + 16) * (abs(value) + float(np.sum(np.abs(v))) + n)


@dataclass(frozen=True, kw_only=True)
class SquaredLoss(Loss):
    r""":math:`f(\hat y) = \tfrac12 \|\hat y - y\|_2^2`; :math:`f^*(z) = \tfrac12\|z\|^2 + z^\top y`."""

    name: str = "squared"
    lipschitz: float | None = 1.0
    unit_curvature: bool = True
    scales_with_targets: bool = True
    torch_scale: float | None = 0.5

    def value_on(self, bk, z, y):
        r = z - y
        return 0.5 * bk.vdot(r, r)

    def grad_on(self, bk, z, y):
        return z - y

    def curvature_on(self, bk, z, y):
        return bk.ones_like(z)

    def bregman_on(self, bk, z1, z0, y):
        r = z1 - z0
        return 0.5 * bk.vdot(r, r)

    def conjugate_on(self, bk, theta, y):
        return 0.5 * bk.vdot(theta, theta) + bk.vdot(theta, y)

    def conjugate_domain(self, z, y, tol=0.0):
        return True

    def project_dual(self, v, y):
        return np.asarray(v, dtype=np.float64)

    def cvx(self, pred, y):
        return 0.5 * cp.sum_squares(pred - y)

    def dual_cvx(self, v, y):
        return v @ y - 0.5 * cp.sum_squares(v), []

    def best_dual_scale(self, v, y, c_max):
        vv = float(v @ v) if v.ndim == 1 else float(np.sum(v * v))
        return float(np.clip(float(np.sum(v * y)) / vv, 0.0, c_max)) if vv > 0 else 0.0

    def slope_bound(self, pred, y, e):
        return np.abs(pred - y) + e

    def value_error(self, pred, y):
        r = np.abs(np.asarray(pred) - y)
        return gamma(np.asarray(y).size + 4) * float(np.sum(r * r))

    def dual_value_error(self, v, y, value):
        return gamma(v.size + 16) * float(np.sum(np.abs(0.5 * v * v) + np.abs(v * y)))


@dataclass(frozen=True, kw_only=True)
class _MarginLoss(Loss):
    r"""Losses of the margin :math:`y_j\hat y_j` with labels :math:`y_j \in \{-1, +1\}`: the
    conjugate lives on :math:`a = -y z \in [0, 1]` and the slope is at most :math:`|y_j| = 1`."""

    classification: bool = True
    torch_scale: float | None = 1.0

    def conjugate_domain(self, z, y, tol=0.0):
        a = -np.asarray(y) * np.asarray(z)
        return not (np.any(a < -tol) or np.any(a > 1 + tol))

    def project_dual(self, v, y):
        # y in {-1, +1}: y * clip(y v, 0, 1) is exact and has y_j v_j in [0, 1]
        return y * np.clip(y * np.asarray(v, dtype=np.float64), 0.0, 1.0)

    def slope_bound(self, pred, y, e):
        return np.abs(y) * np.ones_like(e)


@dataclass(frozen=True, kw_only=True)
class LogisticLoss(_MarginLoss):
    r""":math:`f(\hat y) = \sum_j \log(1 + e^{-y_j \hat y_j})`, labels in :math:`\{-1,+1\}`."""

    name: str = "logistic"
    lipschitz: float | None = 0.25

    def value_on(self, bk, z, y):
        return bk.sum(bk.softplus(-y * z))

    def grad_on(self, bk, z, y):
        # d/dp log(1 + exp(-y p)) = -y * sigmoid(-y p)
        return -y * bk.sigmoid(-y * z)

    def curvature_on(self, bk, z, y):
        s = bk.sigmoid(-y * z)
        return (y * y) * s * (1.0 - s)

    def bregman_on(self, bk, z1, z0, y):
        r"""Exact for large increments; a fourth-order Taylor expansion for small ones (no cancellation)."""
        t0 = -y * z0
        dt = -y * (z1 - z0)
        s = bk.sigmoid(t0)
        q = s * (1.0 - s)
        taylor = q * dt * dt * (0.5 + dt * ((1.0 - 2.0 * s) / 6.0 + dt * (1.0 - 6.0 * q) / 24.0))
        exact = bk.softplus(t0 + dt) - bk.softplus(t0) - s * dt
        small = (dt * dt) < 1e-6
        return bk.sum(bk.maximum(bk.where(small, taylor, exact), 0.0))

    def conjugate_on(self, bk, theta, y):
        # with a = -y theta in [0, 1]: f*(theta) = sum a log a + (1 - a) log(1 - a)
        a = bk.minimum(bk.maximum(-y * theta, 0.0), 1.0)
        return bk.sum(bk.xlogx(a) + bk.xlogx(1.0 - a))

    def cvx(self, pred, y):
        return cp.sum(cp.logistic(-cp.multiply(y, pred)))

    def dual_cvx(self, v, y):
        a = cp.multiply(y, v)
        return cp.sum(cp.entr(a) + cp.entr(1 - a)), []

    def best_dual_scale(self, v, y, c_max):
        r"""The maximizer of :math:`\phi(c) = \sum_j H(c\,b_j)`, :math:`b = y \odot v`,
        :math:`H(t) = -t\log t - (1-t)\log(1-t)`, on the domain :math:`0 \le c\,b_j \le 1` within
        :math:`[0, c_{\max}]`: :math:`\phi` is concave with :math:`\phi'(c) = \sum_j b_j\log\frac{1 - c b_j}{c b_j}`
        decreasing from :math:`+\infty`, so its root (or the end of the interval) is found by Newton's
        method safeguarded by bisection (about ten steps to rounding, against some fifty values of a
        golden-section search). Any :math:`c` of the domain gives a valid dual bound; this one the best."""
        b = np.asarray(y, dtype=np.float64) * np.asarray(v, dtype=np.float64)
        b = b[b != 0.0]
        if b.size == 0 or np.any(b < 0.0):
            return 0.0  # the domain is c = 0 alone
        hi = min(float(c_max), 1.0 / float(b.max()))
        if not hi > 0.0:
            return 0.0

        def slope(c: float) -> tuple[float, float]:
            t = c * b
            with np.errstate(divide="ignore"):
                return float(b @ (np.log1p(-t) - np.log(t))), float(-(b * b) @ (1.0 / (t * (1.0 - t))))

        d_hi, _ = slope(hi)
        if d_hi >= 0.0:
            return hi
        lo, c = 0.0, 0.5 * hi
        for _ in range(100):
            d, dd = slope(c)
            if d > 0.0:
                lo = c
            else:
                hi = c
            step = c - d / dd if np.isfinite(dd) and dd < 0.0 else 0.5 * (lo + hi)
            c_new = step if lo < step < hi else 0.5 * (lo + hi)
            if abs(c_new - c) <= 1e-15 * c or hi - lo <= 1e-15 * hi:
                return float(c_new)
            c = c_new
        return float(c)


@dataclass(frozen=True, kw_only=True)
class HingeLoss(_MarginLoss):
    r""":math:`f(\hat y) = \sum_j \max(0, 1 - y_j \hat y_j)`, labels in :math:`\{-1,+1\}` (non-smooth)."""

    name: str = "hinge"

    def value_on(self, bk, z, y):
        return bk.sum(bk.maximum(1.0 - y * z, 0.0))

    def grad_on(self, bk, z, y):
        return bk.where(1.0 - y * z > 0, -y, 0.0)

    def conjugate_on(self, bk, theta, y):
        # f*(theta) = sum y theta   for  -y theta in [0, 1]
        return bk.sum(y * theta)

    def cvx(self, pred, y):
        return cp.sum(cp.pos(1 - cp.multiply(y, pred)))

    def dual_cvx(self, v, y):
        a = cp.multiply(y, v)
        return cp.sum(a), [a >= 0, a <= 1]


LOSSES: dict[str, Loss] = {
    "squared": SquaredLoss(),
    "logistic": LogisticLoss(),
    "hinge": HingeLoss(),
}


def register_loss(loss: Loss) -> Loss:
    """Make ``loss`` available by its name to :func:`get_loss` (and every ``loss=`` argument)."""
    if not isinstance(loss, Loss):
        raise InputError(f"register_loss needs a Loss instance; got {type(loss).__name__}.")
    LOSSES[loss.name] = loss
    return loss


def get_loss(loss: str | Loss) -> Loss:
    """Return the :class:`Loss` named ``loss`` (``"squared"``, ``"logistic"``, ``"hinge"``, ``"huber"``)."""
    if isinstance(loss, Loss):
        return loss
    try:
        return LOSSES[loss]
    except (KeyError, TypeError):
        raise InputError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}.") from None
