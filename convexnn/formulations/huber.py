r"""The Huber loss (robust regression): quadratic near the target, linear in the tails.

With the threshold :math:`\delta > 0`,

.. math::

    h_\delta(r) = \begin{cases} \tfrac12 r^2 & |r| \le \delta \\
                  \delta\,(|r| - \tfrac12\delta) & |r| > \delta \end{cases},
    \qquad f(\hat y) = \sum_j h_\delta(\hat y_j - y_j).

:math:`h_\delta` is differentiable with :math:`h_\delta'(r) = \operatorname{clip}(r, -\delta,
\delta)`, so :math:`\nabla f` is 1-Lipschitz and the first-order solvers apply; its second
derivative is :math:`\mathbb 1[|r| \le \delta]` (a generalized Hessian for the Newton polish).

**Conjugate.** :math:`h_\delta^*(z) = \sup_r zr - h_\delta(r)`: for :math:`|z| \le \delta` the
supremum is attained at :math:`r = z` (where :math:`h_\delta'(r) = z`), giving
:math:`z^2/2`; for :math:`|z| > \delta` the linear tail grows slower than :math:`zr` and the
supremum is :math:`+\infty`. Shifting by the target,

.. math::

    f^*(z) = \sum_j \big(z_j y_j + \tfrac12 z_j^2\big) \quad\text{on}\quad |z_j| \le \delta,

so the dual objective of the convex programs is :math:`-f^*(-v) = v^\top y - \tfrac12\|v\|^2`
subject to :math:`\|v\|_\infty \le \delta`: the squared loss's dual with a box on the residual.
CVXPY's ``huber(x, M)`` is :math:`x^2` / :math:`2M|x| - M^2`, i.e. :math:`2h_M`, hence the factor
one half in :meth:`HuberLoss.cvx`.

**Split form.** :math:`h_\delta` is the Moreau envelope of :math:`\delta|\cdot|`:
:math:`h_\delta(r) = \min_a \tfrac12(r - a)^2 + \delta|a|`, attained at the part of :math:`r` beyond
:math:`\pm\delta`. So the Huber program is the squared-loss program with one :math:`\ell_1`-penalized
outlier per sample (:meth:`HuberLoss.outlier_split`), the form in which the block interior point
(:mod:`convexnn.solvers.block_ipm`) solves it: there the Newton systems stay nonsingular where
:math:`h_\delta'' = 0`.

Reference: Huber, *Robust Estimation of a Location Parameter*, Annals of Mathematical
Statistics, 1964.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cvxpy as cp
import numpy as np

from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, register_loss
from convexnn.rounding import UNIT_ROUNDOFF, gamma

__all__ = ["HuberLoss"]


@dataclass(frozen=True, kw_only=True)
class HuberLoss(Loss):
    r""":math:`f(\hat y) = \sum_j h_\delta(\hat y_j - y_j)` (see the module docstring).

    Parameters
    ----------
    delta : float
        Threshold between the quadratic and the linear part (default 1).
    """

    # the one positional parameter: HuberLoss(0.5) is delta = 0.5 (the other fields are keyword-only)
    delta: float = field(default=1.0, kw_only=False)
    name: str = "huber"
    lipschitz: float | None = 1.0
    torch_scale: float | None = 1.0  # torch.nn.HuberLoss(delta=delta) is the same function

    def __post_init__(self) -> None:
        if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) \
                or not math.isfinite(self.delta) or self.delta <= 0:
            raise InputError(f"HuberLoss needs a finite delta > 0; got {self.delta!r}.")

    def outlier_split(self) -> float:
        r""":math:`h_\delta(r) = \min_a \tfrac12(r - a)^2 + \delta|a|` (the minimizer is the part of
        :math:`r` beyond :math:`\pm\delta`)."""
        return float(self.delta)

    def with_target_scale(self, b: float) -> "HuberLoss":
        r"""The threshold scales with the targets: :math:`h_{\delta/b}(r/b) = h_\delta(r)/b^2` (both
        branches are homogeneous of degree two in :math:`(r, \delta)`), exact in floating point for
        :math:`b` a power of two."""
        return replace(self, delta=self.delta / b)

    def _h(self, bk, r):
        # 0.5 m^2 + delta (|r| - m) with m = min(|r|, delta): the two branches without squaring a
        # residual of the linear part (no overflow for |r| above 1e154)
        a = bk.abs(r)
        m = bk.minimum(a, self.delta)
        return 0.5 * m * m + self.delta * (a - m)

    def value_on(self, bk, z, y):
        return bk.sum(self._h(bk, z - y))

    def grad_on(self, bk, z, y):
        return bk.minimum(bk.maximum(z - y, -self.delta), self.delta)

    def curvature_on(self, bk, z, y):
        return bk.where(bk.abs(z - y) <= self.delta, 1.0, 0.0)

    def bregman_on(self, bk, z1, z0, y):
        r"""Exact per coordinate: :math:`\tfrac12(z_1 - z_0)^2` when both residuals are in the
        quadratic part, 0 when both are in the same linear tail, the difference otherwise."""
        r0, r1 = z0 - y, z1 - y
        dr = z1 - z0
        dl = self.delta
        direct = self._h(bk, r1) - self._h(bk, r0) - bk.minimum(bk.maximum(r0, -dl), dl) * dr
        quad = (bk.abs(r0) <= dl) & (bk.abs(r1) <= dl)
        tail = ((r0 > dl) & (r1 > dl)) | ((r0 < -dl) & (r1 < -dl))
        out = bk.where(quad, 0.5 * dr * dr, bk.where(tail, 0.0, direct))
        return bk.sum(bk.maximum(out, 0.0))

    def conjugate_on(self, bk, theta, y):
        return 0.5 * bk.vdot(theta, theta) + bk.vdot(theta, y)

    def conjugate_domain(self, z, y, tol=0.0):
        return bool(np.all(np.abs(np.asarray(z)) <= self.delta * (1.0 + tol)))

    def project_dual(self, v, y):
        return np.clip(np.asarray(v, dtype=np.float64), -self.delta, self.delta)

    def cvx(self, pred, y):
        return 0.5 * cp.sum(cp.huber(pred - y, self.delta))

    def dual_cvx(self, v, y):
        return v @ y - 0.5 * cp.sum_squares(v), [cp.abs(v) <= self.delta]

    def best_dual_scale(self, v, y, c_max):
        vv = float(v @ v) if v.ndim == 1 else float(np.sum(v * v))
        if vv == 0.0:
            return 0.0
        # stay inside |c v_j| <= delta after rounding the product
        c_dom = self.delta / float(np.max(np.abs(v))) * (1.0 - 4.0 * UNIT_ROUNDOFF)
        return float(np.clip(float(np.sum(v * y)) / vv, 0.0, min(c_max, c_dom)))

    def slope_bound(self, pred, y, e):
        return np.minimum(np.abs(pred - y) + e, self.delta)

    def dual_value_error(self, v, y, value):
        return gamma(v.size + 16) * float(np.sum(np.abs(0.5 * v * v) + np.abs(v * y)))


register_loss(HuberLoss())
