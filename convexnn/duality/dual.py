r"""The Lagrange dual of the C-ReLU / C-GReLU programs and duality gaps.

Dualizing the fit :math:`z = \sum_i D_i X_a (v_i - w_i)` with a multiplier and writing the dual
variable as :math:`v` (so that :math:`v = -\nabla\ell(\hat y)` at the optimum, the residual
:math:`y - \hat y` for the squared loss), the dual of C-ReLU is (Mishkin & Pilanci, ICML 2023;
Ergen & Pilanci, ICML 2021, eq. (6))

.. math::

    \max_{v}\ -\ell^*(-v)\quad\text{s.t.}\quad
    \max_{u\in\mathcal K_i,\ \|u\|\le 1} \sigma\langle X_a^\top D_i v, u\rangle \le \lambda
    \quad \forall i,\ \sigma = \pm 1 .

The inner maximum is :math:`\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\| = \min_{\rho\ge0}
\|\sigma X_a^\top D_i v + A_i^\top\rho\|` with :math:`A_i = (2D_i - I)X_a`, so the dual is the
second-order cone program

.. math::

    \max_{v,\ R^+ \ge 0,\ R^- \ge 0}\ -\ell^*(-v)\quad\text{s.t.}\quad
    \big\|X_a^\top\big(D_i v + (2D_i - I)\rho^+_i\big)\big\| \le \lambda,\quad
    \big\|X_a^\top\big(-D_i v + (2D_i - I)\rho^-_i\big)\big\| \le \lambda ,

with :math:`\rho^\pm_i` the columns of the ``(n, P)`` variables :math:`R^\pm` (at the optimum they
are the multipliers of the cone constraints, :func:`convexnn.kkt`). For C-GReLU the constraints
are :math:`\|X_a^\top D_i v\| \le \lambda`. :math:`-\ell^*(-v)` and its domain constraints come
from the loss (:meth:`convexnn.formulations.losses.Loss.dual_cvx`): e.g.
:math:`\langle v, y\rangle - \frac12\|v\|^2` (squared), :math:`\sum_j H(y_jv_j)` with the binary
entropy :math:`H(a) = -a\log a - (1-a)\log(1-a)` (logistic), :math:`\sum_j y_j v_j` with
:math:`0 \le y_jv_j \le 1` (hinge), the squared form with :math:`\|v\|_\infty \le \delta` (Huber).

Construction: the ``P`` norm constraints are **one** vectorized constraint
``norm(Xa.T @ (multiply(M, v 1^T) + multiply(S, R)), 2, axis=0) <= lam`` per sign (no Python loop
over patterns); ``lam`` is the formulation's own parameter, so the dual is DPP too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from convexnn.backend import NUMPY
from convexnn.errors import InputError
from convexnn.formulations.formulation import Formulation
from convexnn.formulations.losses import Loss
from convexnn.gap import relative_gap
from convexnn.solvers.operators import MaskedDesign
from convexnn.duality.cones import cone_support

__all__ = ["DualProblem", "dual_problem", "build_dual", "DualityGap", "duality_gap"]


class DualProblem(cp.Problem):
    r"""A ``cvxpy.Problem`` (the dual program) that remembers its variables.

    Attributes
    ----------
    v : cvxpy.Variable, shape (n,)
        The dual variable (optimal value: :math:`-\nabla\ell(\hat y^\star)`).
    rho_plus, rho_minus : cvxpy.Variable of shape (n, P), or None
        Cone multipliers (C-ReLU only).
    formulation : Formulation or None
        ``None`` when built from arrays (:func:`build_dual`).
    """

    def __init__(self, objective: cp.Maximize, constraints: list, *, v: cp.Variable,
                 rho_plus: cp.Variable | None, rho_minus: cp.Variable | None, formulation: Formulation) -> None:
        super().__init__(objective, constraints)
        self.v = v
        self.rho_plus = rho_plus
        self.rho_minus = rho_minus
        self.formulation = formulation


def _check(formulation: Formulation) -> None:
    if formulation.kind not in ("c_relu", "c_grelu"):
        raise InputError(f"dual_problem / duality_gap support C-ReLU and C-GReLU; got {formulation.kind!r}.")
    if np.ndim(formulation.y) != 1:
        raise InputError("dual_problem / duality_gap support scalar outputs only (y of shape (n,)).")


def dual_problem(formulation: Formulation) -> DualProblem:
    r"""The Lagrange dual of a C-ReLU / C-GReLU formulation, as its own ``cvxpy.Problem``.

    Parameters
    ----------
    formulation : Formulation
        From :func:`convexnn.c_relu` or :func:`convexnn.c_grelu` (scalar output).

    Returns
    -------
    DualProblem
        A maximization problem; ``.solve()`` gives the optimal value of the primal (strong
        duality: linear constraints and a finite convex objective), ``.v.value`` the dual point.

    Examples
    --------
    >>> D = dual_problem(f); D.solve(solver="CLARABEL")  # doctest: +SKIP
    >>> abs(D.value - f.solve().value) < 1e-6  # doctest: +SKIP
    """
    _check(formulation)
    f = formulation
    return build_dual(f.Xa, f.y, np.asarray(f.patterns.masks, dtype=np.float64), f.lam, f.loss,
                      cones=f.cone_constraints, formulation=f)


def build_dual(Xa: np.ndarray, y: np.ndarray, masks: np.ndarray, lam: Any, loss: Loss, *, cones: bool = True,
               formulation: Formulation | None = None) -> DualProblem:
    """Array-level builder of :func:`dual_problem` (``lam`` a number or a ``cp.Parameter``)."""
    n = Xa.shape[0]
    M = np.asarray(masks, dtype=np.float64)
    P = M.shape[1]
    v = cp.Variable(n, name="v")
    obj, cons = loss.dual_cvx(v, y)
    cons = list(cons)
    Vb = cp.multiply(M, cp.reshape(v, (n, 1), order="F") @ np.ones((1, P)))  # D_i v as columns
    if not cones:
        cons.append(cp.norm(Xa.T @ Vb, 2, axis=0) <= lam)
        rp = rm = None
    else:
        S = 2.0 * M - 1.0
        rp = cp.Variable((n, P), nonneg=True, name="rho_plus")
        rm = cp.Variable((n, P), nonneg=True, name="rho_minus")
        cons.append(cp.norm(Xa.T @ (Vb + cp.multiply(S, rp)), 2, axis=0) <= lam)
        cons.append(cp.norm(Xa.T @ (-Vb + cp.multiply(S, rm)), 2, axis=0) <= lam)
    return DualProblem(cp.Maximize(obj), cons, v=v, rho_plus=rp, rho_minus=rm, formulation=formulation)  # type: ignore[arg-type]


@dataclass
class DualityGap:
    r"""Primal and dual objectives of a primal-dual pair of a convex formulation.

    Attributes
    ----------
    primal : float
        Convex objective at the primal weights.
    dual : float
        :math:`-\ell^*(-c\,v)` at the dual point scaled into the feasible set.
    gap, rel_gap : float
        ``primal - dual`` and :func:`convexnn.gap.relative_gap`.
    scale : float
        :math:`c = \min(1, \lambda / s(v))` applied to the dual point.
    primal_infeasibility : float
        Constraint violation of the primal weights (a positive value voids the bound).
    """

    primal: float
    dual: float
    gap: float
    rel_gap: float
    scale: float
    primal_infeasibility: float

    def __float__(self) -> float:
        return float(self.gap)


def _dual_vector(dual_point: Any, n: int) -> np.ndarray:
    if isinstance(dual_point, DualProblem):
        if dual_point.v.value is None:
            raise InputError("the dual problem has not been solved.")
        return np.asarray(dual_point.v.value, dtype=np.float64)
    if hasattr(dual_point, "dual_point"):  # a Certificate
        dual_point = dual_point.dual_point
    v = np.asarray(dual_point, dtype=np.float64)
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise InputError(f"dual_point must be a finite array of shape ({n},); got shape {v.shape}.")
    return v


def duality_gap(formulation: Formulation, primal_weights: dict[str, np.ndarray] | Any, dual_point: Any) -> DualityGap:
    r"""Duality gap of primal weights and a dual point for a C-ReLU / C-GReLU formulation.

    The dual point is first moved into the domain of the conjugate
    (:meth:`~convexnn.formulations.losses.Loss.project_dual`: a solver's dual point can leave it
    by rounding), then scaled into the dual feasible set of **this** formulation's patterns,
    :math:`c = \min(1, \lambda/s(v))` with :math:`s` as in :func:`dual_problem` (computed by NNLS,
    an upper bound, so the scaled point is feasible), then
    ``gap = objective(primal_weights) - (-l*(-c v))`` :math:`\ge 0` by weak duality.

    Parameters
    ----------
    formulation : Formulation
    primal_weights : dict or ConvexSolution
        ``{"V", "W"}`` / ``{"U"}`` weights (or a solution holding them).
    dual_point : array of shape (n,), a solved DualProblem, or a Certificate
    """
    _check(formulation)
    f = formulation
    weights = getattr(primal_weights, "weights", primal_weights)
    v = f.loss.project_dual(_dual_vector(dual_point, f.Xa.shape[0]), f.y)
    lam = f.lam_value
    primal = float(f.objective(weights))
    M = np.asarray(f.patterns.masks, dtype=bool)
    if not f.cone_constraints:
        G = MaskedDesign(f.Xa, M, NUMPY).adjoint(v)
        s = float(np.linalg.norm(G, axis=1).max()) if M.shape[1] else 0.0
    else:
        s = cone_support(f.Xa, M, v).value
    c = 1.0 if s <= lam else lam / s
    dual = float(f.loss.dual_value(c * v, f.y))
    gap = primal - dual
    return DualityGap(primal=primal, dual=dual, gap=gap, rel_gap=relative_gap(primal, dual), scale=c,
                      primal_infeasibility=float(f.constraint_violation(weights)))
