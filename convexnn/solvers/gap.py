r"""Certified duality gaps for the first-order solvers (the stopping rule) and :math:`\lambda_{\max}`.

Write :math:`f(z) = \ell(z, y)` (summed loss), :math:`A_i = D_i \tilde X` and
:math:`G_i = \operatorname{diag}(2m_i - 1)\tilde X` (so :math:`u \in \mathcal K_i \iff G_i u \ge 0`).

**C-GReLU.** The program :math:`\min_u f(\sum_i A_i u_i) + \lambda\sum_i\|u_i\|_2` has the
Fenchel dual

.. math::

    \max_\theta\; -f^*(\theta) \quad \text{s.t.}\quad \|A_i^\top \theta\|_2 \le \lambda\ \ \forall i,

with :math:`\theta^\star = \nabla f(\mathcal A u^\star)`. At any iterate :math:`u` the gradient
:math:`\theta = \nabla f(\mathcal A u)` is rescaled into the dual feasible set,
:math:`\hat\theta = s\theta` with :math:`s = \min\{1, \lambda / \max_i\|A_i^\top\theta\|\}`,
and :math:`P(u) - D(\hat\theta) \ge P(u) - P^\star \ge 0` certifies the suboptimality of
:math:`u` (the same construction as the duality module, :func:`convexnn.dual_problem`, written there with
:math:`v = -\theta` and :math:`-\ell^*(-v)`). As :math:`u \to u^\star`, :math:`s \to 1` and the
gap :math:`\to 0`.

**First-layer penalties.** With the regularizer :math:`\lambda\sum_i R(u_i)` of another norm
(:mod:`convexnn.formulations.penalties`) the dual constraints read
:math:`R^*(A_i^\top\theta) \le \lambda` and the same scaling applies with :math:`R^*` in place of
:math:`\|\cdot\|_2` (``penalty=`` of :func:`gated_gap` / :func:`relu_gap`).

**C-ReLU.** With multipliers :math:`\gamma_i, \zeta_i \ge 0` of the cone constraints
:math:`G_i v_i \ge 0`, :math:`G_i w_i \ge 0`, the Lagrange dual is

.. math::

    \max_{\theta,\ \gamma \ge 0,\ \zeta \ge 0} -f^*(\theta) \quad\text{s.t.}\quad
    \|A_i^\top\theta - G_i^\top\gamma_i\|_2 \le \lambda,\
    \|A_i^\top\theta + G_i^\top\zeta_i\|_2 \le \lambda .

The augmented-Lagrangian multipliers give :math:`(\gamma, \zeta)`; scaling
:math:`(\theta, \gamma, \zeta)` jointly by :math:`s = \min\{1, \lambda / \max(\cdot)\}` keeps
the multipliers nonnegative and makes the point dual feasible ("cone-aware" dual). The gap
certifies optimality up to the cone violation of the primal iterate, reported separately.

The smooth losses keep :math:`s\theta` in the domain of :math:`f^*` for :math:`s \in [0, 1]`
(the domain is convex and contains 0 and :math:`\theta = \nabla f(z)`): the squared loss has
:math:`f^*` finite everywhere, the logistic loss :math:`-y\theta \in (0, 1)`, the Huber loss
:math:`|\theta_j| \le \delta`. The loss mathematics comes from
:class:`~convexnn.formulations.losses.Loss` (``value_on``, ``grad_on``, ``conjugate_on``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, get_loss
from convexnn.formulations.penalties import Penalty, get_penalty
from convexnn.gap import relative_gap
from convexnn.solvers.backend import get_backend
from convexnn.solvers.operators import MaskedDesign

__all__ = ["require_smooth", "missing_smoothness", "missing_penalty_support", "GapResult", "gated_gap", "relu_gap", "lam_max",
           "lam_max_op", "relu_output_scale", "relu_violation", "certified_program_bound",
           "above_tol_reason"]


def missing_smoothness(loss: Any) -> str | None:
    """Why the first-order solvers cannot use ``loss`` (None when they can).

    They need a loss with a Lipschitz gradient (:attr:`Loss.lipschitz`), its value, gradient,
    Bregman divergence and conjugate on an array backend.
    """
    L = get_loss(loss)
    if L.lipschitz is None:
        return (f"the {L.name!r} loss is non-smooth (no Lipschitz gradient) and is not supported by the "
                "first-order solvers, which need a smooth loss with a Lipschitz gradient; "
                "use method='interior'")
    return None


def missing_penalty_support(formulation: Any, solver: str = "first_order") -> str | None:
    r"""Why ``solver`` cannot handle the first-layer penalty of ``formulation`` (None when it can).

    The penalty is ``formulation.penalty`` (:mod:`convexnn.formulations.penalties`; the group
    lasso when absent). What each first-order piece supports:

    * ``"fista"`` (R-FISTA for C-GReLU, :func:`convexnn.solvers.fista.solve_gated` with
      ``penalty=``, and :func:`gated_gap`): every penalty with a prox and a dual norm
      (group lasso, sparse group lasso);
    * ``"gated_polish"`` (the Newton polish of :mod:`convexnn.solvers.gated_active_set`): the
      group lasso only (its Newton system is that of :math:`\|\cdot\|_2`); skip it otherwise;
    * ``"relu"`` / ``"first_order"`` for C-ReLU: the augmented Lagrangian
      (:func:`convexnn.solvers.augmented_lagrangian.solve_relu` with ``penalty=``, and
      :func:`relu_gap`): every penalty with a prox and a dual norm;
    * ``"relu_polish"`` (the active-set polish and its block interior point): the group lasso
      only; skip it otherwise.
    """
    pen = get_penalty(getattr(formulation, "penalty", None))
    if pen.group_l2:
        return None
    relu = bool(getattr(formulation, "cone_constraints", False))
    if pen.name != "nuclear" and ((solver == "fista" and not relu) or (solver in ("relu", "first_order") and relu)):
        return None
    what = {"gated_polish": "the Newton polish of C-GReLU (gated_active_set) solves the group lasso only",
            "relu_polish": "the active-set polish of C-ReLU (block interior point) solves the group lasso only",
            "fista": "R-FISTA handles C-GReLU with a proximable penalty only"}.get(
        solver, "the first-order solvers need a penalty with a prox and a dual norm")
    return (f"the {pen.name!r} first-layer penalty is not supported here: {what}; "
            "use method='interior'" + ("" if relu or solver != "gated_polish" else " or polish=False"))


def require_smooth(loss: Any) -> Loss:
    """The :class:`~convexnn.formulations.losses.Loss` ``loss`` (or its name), checked to have a
    Lipschitz gradient.

    Raises
    ------
    InputError
        For a loss without a Lipschitz gradient (hinge: non-smooth), naming the missing
        capability; solve it with ``method="interior"``.
    """
    why = missing_smoothness(loss)
    if why is not None:
        raise InputError(why + ".")
    return get_loss(loss)


@dataclass
class GapResult:
    """Primal value, certified dual value, gap (relative: :func:`convexnn.gap.relative_gap`) and
    the dual-feasibility scaling of one check."""

    primal: float
    dual: float
    gap: float
    rel_gap: float
    scale: float
    group_norms: Any = None
    dual_point: Any = None

    def with_dual(self, dual: float, dual_point: Any) -> "GapResult":
        """The same primal value with another lower bound (e.g. :func:`certified_program_bound`'s)."""
        return replace(self, dual=float(dual), gap=self.primal - float(dual),
                       rel_gap=relative_gap(self.primal, float(dual)), dual_point=dual_point)


def above_tol_reason(rel_gap: float) -> str:
    """The stopping reason of a solver that certified itself in floating point when the reported
    certificate (:func:`certified_program_bound`) is above ``tol``."""
    return (f"the final certificate {rel_gap:.2e} (rounding accounted for) is above tol (the solver's own "
            "floating-point one was below it)")


def gated_gap(op: MaskedDesign, loss: Loss, y: Any, lam: float, U: Any, z: Any,
              penalty: Penalty | None = None, dual: Any = None) -> GapResult:
    r"""Certified duality gap of C-GReLU at ``U`` (with ``z = op.fit(U)``).

    The dual candidate is :math:`-s\theta` with :math:`\theta = \nabla f(z)`, scaled by the largest
    :math:`s \le 1` that makes it dual feasible. With ``dual`` (a dual point :math:`v` in the
    conjugate's domain, e.g. an interior point's own, :attr:`~convexnn.solvers.block_ipm.BlockIPMResult.dual`)
    :math:`\theta = -v` is tried as well and the smaller gap is returned (any candidate gives a valid
    bound).

    With a first-layer ``penalty`` :math:`R` (default :math:`\|\cdot\|_2`) the primal is
    :math:`f(\mathcal A U) + \lambda\sum_i R(u_i)` and the dual constraints are
    :math:`R^*(A_i^\top\theta) \le \lambda` (:meth:`~convexnn.formulations.penalties.Penalty.dual_norms`).
    Returns a :class:`GapResult` whose ``group_norms`` are :math:`R^*(A_i^\top\theta)` (used by
    working sets to find violated groups).
    """
    bk = op.bk
    pen = get_penalty(penalty)
    primal = float(loss.value_on(bk, z, y)) + lam * pen.value_on(bk, U)
    best = None
    for theta in (loss.grad_on(bk, z, y),) + (() if dual is None else (-dual,)):
        c = pen.dual_norms_on(bk, op.adjoint(theta))
        cmax = float(bk.max(c)) if op.P else 0.0
        s = 1.0 if cmax <= lam else lam / cmax
        dual_value = -float(loss.conjugate_on(bk, s * theta, y))
        g = GapResult(primal, dual_value, primal - dual_value, relative_gap(primal, dual_value), s, c, -s * theta)
        if best is None or g.gap < best.gap:
            best = g
    return best


def relu_gap(op: MaskedDesign, loss: Loss, y: Any, lam: float, V: Any, W: Any, fit: Any,
             gam_v: Any, gam_w: Any, penalty: Penalty | None = None) -> GapResult:
    r"""Cone-aware certified duality gap of C-ReLU at ``(V, W)`` with multipliers ``(gam_v, gam_w)``.

    ``gam_v``, ``gam_w`` have shape ``(n, P)`` and are nonnegative; ``fit`` is
    :math:`\sum_i D_i\tilde X(v_i - w_i)`. With a first-layer ``penalty`` :math:`R` the norms
    of the dual constraints are :math:`R^*` and the regularizer :math:`\sum_i R(v_i) + R(w_i)`.
    """
    bk = op.bk
    pen = get_penalty(penalty)
    theta = loss.grad_on(bk, fit, y)
    B = op.adjoint(theta)
    cv = pen.dual_norms_on(bk, B - op.cone_adjoint(gam_v))
    cw = pen.dual_norms_on(bk, B + op.cone_adjoint(gam_w))
    cmax = max(float(bk.max(cv)), float(bk.max(cw))) if op.P else 0.0
    reg = pen.value_on(bk, V) + pen.value_on(bk, W)
    primal = float(loss.value_on(bk, fit, y)) + lam * reg
    s = 1.0 if cmax <= lam else lam / cmax
    dual = -float(loss.conjugate_on(bk, s * theta, y))
    gap = primal - dual
    return GapResult(primal, dual, gap, relative_gap(primal, dual), s, None, -s * theta)


def _output_scale(bk: Any, Cv: Any, Cw: Any) -> float:
    """:func:`relu_output_scale` of the cone products ``Cv``, ``Cw`` (:meth:`MaskedDesign.cone`)."""
    return max(float(bk.max(bk.maximum(Cv, 0.0) + bk.maximum(-Cv, 0.0))),
               float(bk.max(bk.maximum(Cw, 0.0) + bk.maximum(-Cw, 0.0))))


def relu_output_scale(op: MaskedDesign, V: Any, W: Any) -> float:
    r"""Largest block output of ``(V, W)``: :math:`\max_{i,j}|(\tilde X v_i)_j|, |(\tilde X w_i)_j|`
    (the denominator of the relative cone violation, :func:`relu_violation`)."""
    if op.P == 0:
        return 0.0
    return _output_scale(op.bk, op.cone(V), op.cone(W))


def relu_violation(op: MaskedDesign, V: Any, W: Any) -> tuple[float, float]:
    r"""Cone violation of ``(V, W)``: absolute :math:`\max_{i,j}(-G_i v_i)_j^+` (and for ``w``) and
    relative (divided by :func:`relu_output_scale`)."""
    bk = op.bk
    if op.P == 0:
        return 0.0, 0.0
    Cv, Cw = op.cone(V), op.cone(W)
    viol = max(float(bk.max(bk.maximum(-Cv, 0.0))), float(bk.max(bk.maximum(-Cw, 0.0))))
    scale = _output_scale(bk, Cv, Cw)
    return viol, (viol / scale if scale > 0 else 0.0)


def certified_program_bound(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss,
                            v: np.ndarray, *, cones: bool, penalty: Penalty | None = None,
                            multipliers: np.ndarray | None = None, projections: dict | None = None,
                            rtol: float = 0.0, op: MaskedDesign | None = None) -> tuple[float, np.ndarray]:
    r"""A rigorous lower bound on the optimum of the program over the patterns ``masks`` from the dual
    candidate ``v`` (the duality module's convention, :math:`v = -s\theta`), every rounding error of
    the float64 data accounted for; returns ``(bound, dual point)``.

    The candidate is moved into the conjugate's domain, a rigorous :math:`S` bounds its dual norm over
    the program's patterns and the dual objective of the best feasible multiple is evaluated with its
    rounding subtracted (:func:`convexnn.duality.bounds.feasible_dual_value`). C-ReLU (``cones``):
    :math:`S \ge s_R(v)`, the cone-aware dual norm (:func:`convexnn.duality.certify.certified_lower_bound`
    over ``masks``, also at the solver's cone ``multipliers`` for ``v``, shape ``(n, 2P)``, and its
    scans' ``projections`` for the pairs without; pairs
    within ``1 + rtol`` of the best value found keep their bounds without an NNLS). C-GReLU:
    :math:`S \ge \max_i R^*(\tilde X^\top D_i v)`, from the computed products and Higham's bound
    :math:`\gamma_{2n+4}\,|\tilde X|^\top D_i|v|` of their error (any summation order, chunks
    included; ``op``, a float64 numpy :class:`MaskedDesign` over ``Xa`` and ``masks``, is reused for
    them instead of a new float copy of the ``n x P`` masks). The solvers' own stopping tests use the
    floating-point gaps of :func:`gated_gap` / :func:`relu_gap`; this bound is the one a solve reports.

    Reference: N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., SIAM 2002.
    """
    from convexnn.duality.bounds import feasible_dual_value, row_norm_bounds
    from convexnn.rounding import gamma

    Xa = np.asarray(Xa, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    v = loss.project_dual(np.asarray(v, dtype=np.float64), y)
    if cones:
        from convexnn.duality.certify import certified_lower_bound

        return certified_lower_bound(Xa, np.asarray(masks, dtype=bool), loss, v, y, lam, penalty=penalty,
                                     multipliers=multipliers, projections=projections, rtol=rtol)
    n = Xa.shape[0]
    bk = get_backend(None, "float64")
    if op is not None and not (op.bk.lib == "numpy" and op.bk.dtype == np.float64):
        op = None
    M = op.M if op is not None else np.asarray(masks, dtype=bool)
    S = 0.0
    if M.shape[1]:
        G = np.abs((op or MaskedDesign(Xa, M, bk)).adjoint(v))  # (P, d'): |X_a^T D_i v| as computed
        E = MaskedDesign(np.abs(Xa), M, bk).adjoint(np.abs(v)) * (gamma(2 * n + 4) * (1.0 + gamma(2 * n + 4)))
        S = float(np.max(get_penalty(penalty).dual_norms_upper((G * (1.0 + gamma(2)) + E) * (1.0 + gamma(4)))))
    return feasible_dual_value(loss, v, y, lam, S, row_norm_bounds(Xa))


def lam_max_op(op: MaskedDesign, loss: Loss, y: Any, penalty: Penalty | None = None) -> float:
    r""":math:`\lambda_{\max}` (see :func:`lam_max`) for an operator and targets already on a backend."""
    if op.P == 0:
        return 0.0
    g0 = loss.grad_on(op.bk, op.bk.zeros((op.n,)), y)
    return float(op.bk.max(get_penalty(penalty).dual_norms_on(op.bk, op.adjoint(g0))))


def lam_max(Xa: Any, masks: Any, y: Any, loss: Any = "squared", penalty: Penalty | str | None = None) -> float:
    r"""Smallest :math:`\lambda` for which :math:`u = 0` solves C-GReLU:
    :math:`\lambda_{\max} = \max_i R^*((D_i\tilde X)^\top \nabla f(0))` (:math:`R^* = \|\cdot\|_2` for the
    default group lasso; ``penalty`` another first-layer penalty).

    :math:`\nabla f(0) = -y` for the squared loss and :math:`-y/2` for the logistic loss. For
    C-ReLU, :math:`\lambda \ge \lambda_{\max}` also gives the zero solution (the dual point
    :math:`\theta = \nabla f(0)`, :math:`\gamma = \zeta = 0` is feasible); the exact C-ReLU
    threshold can be smaller.

    Parameters
    ----------
    Xa : array, shape (n, d')
    masks : bool array, shape (n, P)
    y : array, shape (n,)
    loss : str or Loss
    """
    sl = require_smooth(loss)
    bk = get_backend(None, "float64")
    op = MaskedDesign(np.asarray(Xa, dtype=np.float64), np.asarray(masks, dtype=bool), bk)
    yb = bk.asarray(y)
    if yb.ndim != 1:
        raise InputError("lam_max supports scalar outputs y of shape (n,).")
    return lam_max_op(op, sl, yb, get_penalty(penalty))
