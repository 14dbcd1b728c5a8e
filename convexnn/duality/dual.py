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

**First-layer penalties.** With the regularizer :math:`\lambda\sum_i R(u_i)` of another norm
(``formulation.penalty``, :mod:`convexnn.formulations.penalties`) the Euclidean norms of the
constraints become the dual norm :math:`R^*` (:meth:`~convexnn.formulations.penalties.Penalty.cvx_dual_le`;
for the sparse group lasso :math:`R^*(g) \le \lambda \iff g = h + k`,
:math:`\|h\|_2 \le (1-a)\lambda`, :math:`\|k\|_\infty \le a\lambda`, one extra ``(d', P)``
variable per constraint family). For C-ReLU the dual value of a point,
:math:`s_R(v) = \max_{i,\sigma}\min_{\rho\ge0} R^*(\sigma X_a^\top D_i v + A_i^\top\rho)`, is
bounded above by :math:`R^*` at any :math:`\rho \ge 0` (:func:`relu_dual_value`).

Construction: the ``P`` norm constraints are **one** vectorized constraint
``norm(Xa.T @ (multiply(M, v 1^T) + multiply(S, R)), 2, axis=0) <= lam`` per sign (no Python loop
over patterns); ``lam`` is the formulation's own parameter, so the dual is DPP too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from convexnn.errors import InputError
from convexnn.formulations.formulation import Formulation
from convexnn.formulations.losses import Loss
from convexnn.formulations.penalties import Penalty, get_penalty
from convexnn.gap import relative_gap
from convexnn.duality.cones import cone_support, multiplier_images, project_cone
from convexnn.rounding import gamma

__all__ = ["DualProblem", "dual_problem", "build_dual", "DualityGap", "duality_gap", "relu_dual_value",
           "PenaltyDualValue"]


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
                      cones=f.cone_constraints, formulation=f, penalty=getattr(f, "penalty", None))


def build_dual(Xa: np.ndarray, y: np.ndarray, masks: np.ndarray, lam: Any, loss: Loss, *, cones: bool = True,
               formulation: Formulation | None = None, penalty: Penalty | None = None) -> DualProblem:
    """Array-level builder of :func:`dual_problem` (``lam`` a number or a ``cp.Parameter``;
    ``penalty`` the first-layer penalty, default the group lasso)."""
    pen = get_penalty(penalty)
    n = Xa.shape[0]
    M = np.asarray(masks, dtype=np.float64)
    P = M.shape[1]
    v = cp.Variable(n, name="v")
    obj, cons = loss.dual_cvx(v, y)
    cons = list(cons)
    Vb = cp.multiply(M, cp.reshape(v, (n, 1), order="F") @ np.ones((1, P)))  # D_i v as columns
    if not cones:
        cons += pen.cvx_dual_le(Xa.T @ Vb, lam)
        rp = rm = None
    else:
        S = 2.0 * M - 1.0
        rp = cp.Variable((n, P), nonneg=True, name="rho_plus")
        rm = cp.Variable((n, P), nonneg=True, name="rho_minus")
        cons += pen.cvx_dual_le(Xa.T @ (Vb + cp.multiply(S, rp)), lam)
        cons += pen.cvx_dual_le(Xa.T @ (-Vb + cp.multiply(S, rm)), lam)
    return DualProblem(cp.Maximize(obj), cons, v=v, rho_plus=rp, rho_minus=rm, formulation=formulation)  # type: ignore[arg-type]


@dataclass
class DualityGap:
    r"""Primal and dual objectives of a primal-dual pair of a convex formulation.

    Attributes
    ----------
    primal : float
        Convex objective at the primal weights.
    dual : float
        :math:`-\ell^*(-c\,v)` at the dual point scaled into the feasible set, rounding subtracted
        (a lower bound of the optimum).
    gap, rel_gap : float
        ``primal - dual`` and :func:`convexnn.gap.relative_gap`.
    scale : float
        The scale :math:`c \le \lambda / s(v)` applied to the dual point.
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


@dataclass
class PenaltyDualValue:
    r"""Result of :func:`relu_dual_value`: an upper bound of :math:`s_R(v)` and how it was obtained.

    Attributes
    ----------
    value : float
        Upper bound of :math:`s_R(v)` over the given patterns (rigorous for the float64 data when
        computed with ``rigorous=True``).
    euclidean : float
        The Euclidean :math:`s(v)` bound of :func:`convexnn.duality.cones.cone_support` (also an
        upper bound, since :math:`R \ge \|\cdot\|_2`).
    method : str
        ``"dual norm at cone multipliers"``, ``"Euclidean bound (R >= c ||.||_2)"`` (too many
        patterns) or ``"Euclidean"`` (the group lasso itself).
    index, sign : int
        The pattern and sign of the largest per-pattern bound (``-1`` / ``1`` when none).
    n_evaluated, n_polished : int
        Pattern/sign pairs bounded through a projection and pairs whose multipliers were optimized.
    """

    value: float
    euclidean: float
    method: str
    index: int = -1
    sign: int = 1
    n_evaluated: int = 0
    n_polished: int = 0


def _rstar_bound(pen: Penalty, Xa: np.ndarray, absX: np.ndarray, h: np.ndarray, eg: np.ndarray,
                 rho: np.ndarray | None, rigorous: bool) -> np.ndarray:
    """Upper bounds of :math:`R^*` of the exact ``g + A^T rho`` (rows of ``h`` computed in float)."""
    if not rigorous:
        return pen.dual_norms(h)
    n = Xa.shape[0]
    b = np.abs(h) * (1.0 + gamma(2)) + eg
    if rho is not None:
        b = b + gamma(n + 2) * (rho @ absX)
    return pen.dual_norms_upper(b * (1.0 + gamma(4)))


def relu_dual_value(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, penalty: Penalty | str | None = None, *,
                    rigorous: bool = True, max_pairs: int = 20000, polish: int = 20,
                    multipliers: np.ndarray | None = None) -> PenaltyDualValue:
    r"""Upper bound of the C-ReLU dual value :math:`s_R(v)` of a first-layer penalty :math:`R`.

    .. math::

        s_R(v) = \max_{i,\ \sigma=\pm1}\ \max_{u \in \mathcal K_i,\ R(u)\le1}\sigma\langle X_a^\top D_i v, u\rangle
               = \max_{i,\sigma}\ \min_{\rho\ge0} R^*(\sigma X_a^\top D_i v + A_i^\top\rho),
        \qquad A_i = (2D_i - I)X_a

    (conic duality; the unit ball of :math:`R` is compact and :math:`\mathcal K_i` polyhedral).
    *Any* :math:`\rho \ge 0` gives an upper bound of a pair's value. Each pair is first bounded at
    :math:`\rho = 0`; in decreasing order of that bound, pairs get the multipliers of their
    Euclidean projection (NNLS, :func:`convexnn.duality.cones.project_cone`) until no remaining
    pair can exceed the largest value found; the ``polish`` largest are then re-bounded with
    multipliers minimizing :math:`R^*` (a small conic program each, CVXPY + Clarabel). The result
    is also capped by the Euclidean :math:`s(v)/c` (valid since :math:`R \ge c\|\cdot\|_2`,
    :attr:`~convexnn.formulations.penalties.Penalty.l2_lower`; :math:`c = 1` for the sparse group lasso).

    With ``rigorous=True`` every rounding error is bounded: the products
    :math:`X_a^\top D_i v` and :math:`X_a^\top(s\odot\rho)` with :math:`\gamma_{n+2}`, and
    :math:`R^*` of the entrywise bound by
    :meth:`~convexnn.formulations.penalties.Penalty.dual_norms_upper` (monotone in :math:`|g|`).
    More than ``max_pairs`` pattern/sign pairs: the Euclidean bound alone is returned.
    ``multipliers`` (shape ``(n, 2P)``, column ``k`` the :math:`\rho` of pair ``k``: patterns with
    :math:`\sigma = +1` first), e.g. a solver's cone multipliers, are one more candidate per pair.
    """
    pen = get_penalty(penalty)
    Xa = np.asarray(Xa, dtype=np.float64)
    M = np.asarray(masks, dtype=bool)
    v = np.asarray(v, dtype=np.float64)
    n, dp = Xa.shape
    P = M.shape[1]
    cs = cone_support(Xa, M, v)
    s2 = float(cs.valid if rigorous else cs.value)
    if not pen.group_l2 and pen.l2_lower != 1.0:  # R >= c ||.||_2 gives s_R <= s / c
        s2 = s2 / pen.l2_lower * (1.0 + gamma(2))
    if pen.group_l2 or P == 0:
        return PenaltyDualValue(s2, s2, "Euclidean")
    if 2 * P > max_pairs:
        return PenaltyDualValue(s2, s2, "Euclidean bound (R >= c ||.||_2)")
    absX = np.abs(Xa)
    Mf = M.astype(np.float64)
    G = (Xa * v[:, None]).T @ Mf  # (d', P): X_a^T D_i v
    EG = gamma(n + 2) * ((absX * np.abs(v)[:, None]).T @ Mf)  # entrywise rounding bounds
    cheap = _rstar_bound(pen, Xa, absX, G.T, EG.T, None, rigorous)  # sigma = +-1 alike at rho = 0
    cheap2 = np.concatenate([cheap, cheap])  # pair k = (sign index k // P, pattern k % P)
    if multipliers is not None:  # any rho >= 0 bounds its pair: the given ones, all pairs at once
        R = np.maximum(np.asarray(multipliers, dtype=np.float64), 0.0)
        if R.shape != (n, 2 * P):
            raise InputError(f"multipliers must have shape {(n, 2 * P)}; got {R.shape}.")
        H = multiplier_images(Xa, np.concatenate([M, M], axis=1), np.repeat([1.0, -1.0], P), R,
                              np.concatenate([G, G], axis=1))
        at = _rstar_bound(pen, Xa, absX, H.T, np.concatenate([EG, EG], axis=1).T, R.T, rigorous)
        cheap2 = np.minimum(cheap2, at)
    val = np.full(2 * P, np.inf)
    rhos: dict[int, np.ndarray] = {}

    def pair(k: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        sgn, i = divmod(k, P)
        sigma = 1 - 2 * sgn
        return i, sigma, sigma * G[:, i], np.where(M[:, i], 1.0, -1.0)

    def evaluate(k: int, rho: np.ndarray) -> float:
        i, sigma, g, signs = pair(k)
        rho = np.maximum(rho, 0.0)
        h = g + Xa.T @ (signs * rho)
        b = float(_rstar_bound(pen, Xa, absX, h[None, :], EG[:, i][None, :], rho, rigorous)[0])
        return min(b, float(cheap2[k]))

    n_eval = 0
    n_pol = 0
    polished: set[int] = set()

    def project_open(best: float) -> float:
        nonlocal n_eval
        # pairs never bounded through a projection, in decreasing order of their rho = 0 bound
        for k in np.argsort(-np.where(np.isfinite(val), -np.inf, cheap2)):
            if np.isfinite(val[k]) or cheap2[k] <= best:
                break
            _, _, g, signs = pair(int(k))
            _, rho = project_cone(Xa, signs, g)
            val[k] = evaluate(int(k), rho)
            n_eval += 1
            best = max(best, float(val[k]))
        return best

    best = project_open(-np.inf)
    while True:
        top = int(np.argmax(np.where(np.isfinite(val), val, -np.inf)))
        if top in polished or n_pol >= polish:
            break
        _, _, g, signs = pair(top)
        rho = cp.Variable(n, nonneg=True)
        t = cp.Variable()
        h = cp.reshape(g + Xa.T @ cp.multiply(signs, rho), (dp, 1), order="F")
        prob = cp.Problem(cp.Minimize(t), pen.cvx_dual_le(h, t))
        polished.add(top)
        n_pol += 1
        try:
            prob.solve(solver=cp.CLARABEL)
        except (cp.error.SolverError, ValueError, ArithmeticError):
            continue
        if rho.value is not None and np.all(np.isfinite(rho.value)):
            val[top] = min(val[top], evaluate(top, np.asarray(rho.value, dtype=np.float64)))
        best = project_open(float(np.max(np.where(np.isfinite(val), val, -np.inf))))
    fin = np.where(np.isfinite(val), val, -np.inf)
    kbest = int(np.argmax(fin))
    rest = cheap2[~np.isfinite(val)]  # never projected: bounded by their rho = 0 bound
    value = max(float(fin[kbest]), float(rest.max()) if rest.size else -np.inf)
    value = min(max(value, 0.0), s2)
    return PenaltyDualValue(value, s2, "dual norm at cone multipliers", kbest % P, 1 - 2 * (kbest // P),
                            n_eval, n_pol)


def duality_gap(formulation: Formulation, primal_weights: dict[str, np.ndarray] | Any, dual_point: Any) -> DualityGap:
    r"""Duality gap of primal weights and a dual point for a C-ReLU / C-GReLU formulation.

    The dual point is first moved into the domain of the conjugate
    (:meth:`~convexnn.formulations.losses.Loss.project_dual`: a solver's dual point can leave it
    by rounding), then scaled into the dual feasible set of **this** formulation's patterns by
    the best :math:`c \le \lambda / S` for a rigorous upper bound :math:`S` of its dual norm (as in
    :func:`dual_problem`; with a first-layer penalty :math:`R` the dual norm :math:`R^*` for
    C-GReLU and :func:`relu_dual_value` for C-ReLU), and its dual objective evaluated with the
    rounding subtracted (:func:`convexnn.solvers.gap.certified_program_bound`): ``dual`` is a lower
    bound of the optimum for the float64 data and ``gap = objective(primal_weights) - dual``
    :math:`\ge 0` by weak duality (the objective in floating point).

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
    pen = get_penalty(getattr(f, "penalty", None))
    from convexnn.solvers.gap import certified_program_bound

    dual, p = certified_program_bound(f.Xa, M, f.y, lam, f.loss, v, cones=bool(f.cone_constraints),
                                      penalty=None if pen.group_l2 else pen)
    dual = float(dual)
    vv = float(v @ v)
    c = float(p @ v) / vv if vv > 0 else 0.0
    gap = primal - dual
    return DualityGap(primal=primal, dual=dual, gap=gap, rel_gap=relative_gap(primal, dual), scale=c,
                      primal_infeasibility=float(f.constraint_violation(weights)))
