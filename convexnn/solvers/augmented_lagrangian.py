r"""Augmented Lagrangian method for C-ReLU (Mishkin (PhD thesis, Stanford), bonus slides "AL Method"; Mishkin, Sahiner & Pilanci (ICML 2022)).

In :func:`convexnn.solve` (solver ``"relu_active_set"``) the default C-ReLU path is the
active-set polish (:mod:`convexnn.solvers.active_set`); this method runs with ``polish=False``
and as the fallback when the polish cannot finish (it is then warm-started from the polish's
point and cone multipliers), and alone for a first-layer penalty other than the group lasso
(``penalty=``: its prox in the inner iterations, its dual norm in the certified gap; the polish
solves the group lasso only).

C-ReLU is :math:`\min F(v, w)` subject to :math:`G_i v_i \ge 0,\ G_i w_i \ge 0` with
:math:`G_i = \operatorname{diag}(2m_i - 1)\tilde X` and

.. math::

    F(v, w) = f\Big(\sum_i D_i \tilde X (v_i - w_i)\Big) + \lambda\sum_i \|v_i\|_2 + \|w_i\|_2 .

With multipliers :math:`\gamma_i, \zeta_i \ge 0` and penalty :math:`\delta > 0` the augmented
Lagrangian is

.. math::

    \mathcal L_\delta(v, w; \gamma, \zeta) = F(v, w) + \frac{1}{2\delta}\sum_i
    \Bigl(\|(\gamma_i - \delta G_i v_i)_+\|_2^2 + \|(\zeta_i - \delta G_i w_i)_+\|_2^2\Bigr),

(equal to the slides' :math:`\tfrac\delta2\|(\gamma_i/\delta - G_i v_i)_+\|^2` form). Each outer
iteration

1. minimizes :math:`\mathcal L_\delta` over :math:`(v, w)` with R-FISTA
   (:func:`~convexnn.solvers.fista.accelerated_prox_grad`; the smooth part is the loss plus the
   penalty, the prox is the group soft-threshold), warm-started from the previous outer iterate
   and step size, until the largest group norm of the proximal-gradient residual is below an
   inner tolerance (times :math:`\lambda`) that tightens geometrically, or ``inner_max``
   iterations;
2. updates the multipliers (method of multipliers):
   :math:`\gamma_i \leftarrow (\gamma_i - \delta G_i v_i)_+`, :math:`\zeta_i \leftarrow (\zeta_i - \delta G_i w_i)_+`;
3. adapts the penalty: when the relative cone violation did not drop by a factor 2,
   :math:`\delta \leftarrow 2\delta` (Bertsekas' rule), capped at :math:`10^6\delta_0` to keep
   the inner problem well conditioned.

The initial :math:`\delta` is ``delta_scale`` (default 30) times the value that balances the
penalty's curvature :math:`\delta\|\tilde X\|^2` with the loss curvature :math:`L_f\|\mathcal A\|^2`
(a larger penalty makes the multiplier iteration converge faster and the inner problems
harder; 30 was the best compromise in our tuning runs). The method stops when the cone-aware certified
relative gap (:func:`~convexnn.solvers.gap.relu_gap`, dual point from the multipliers) is below
``tol`` **and** the relative cone violation is below ``viol_tol``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from convexnn.solvers.fista import APGState, Reporter, accelerated_prox_grad
from convexnn.formulations.losses import Loss
from convexnn.solvers.gap import GapResult, relu_gap, relu_violation
from convexnn.solvers.operators import MaskedDesign

__all__ = ["ALProblem", "solve_relu", "ReluResult"]


class ALProblem:
    r"""Smooth part of :math:`\mathcal L_\delta` in the stacked variable :math:`x = [V; W]` (shape ``(2P, d')``).

    The image of :math:`x` is ``(fit, C)`` with fit :math:`\sum_i D_i\tilde X(v_i - w_i)` and
    :math:`C = [S\odot\tilde X V^\top,\ S\odot\tilde X W^\top]` (shape ``(n, 2P)``).
    """

    def __init__(self, op: MaskedDesign, op2: MaskedDesign, loss: Loss, y: Any, Gam: Any,
                 delta: float) -> None:
        self.op, self.op2, self.loss, self.y, self.bk = op, op2, loss, y, op.bk
        self.Gam = Gam
        self.delta = float(delta)
        self.P = op.P
        self._ck: Any = None
        self._cv: Any = None

    def image(self, x: Any) -> tuple[Any, Any]:
        P = self.P
        return self.op.fit(x[:P] - x[P:]), self.op2.cone(x)

    def penalty_residual(self, C: Any) -> Any:
        """:math:`(\\Gamma - \\delta C)_+`: also the updated multipliers at this point (cached for the last ``C``)."""
        if self._ck is C:
            return self._cv
        R = self.bk.maximum(self.Gam - self.delta * C, 0.0)
        self._ck, self._cv = C, R
        return R

    def value(self, img: tuple[Any, Any]) -> float:
        fit, C = img
        R = self.penalty_residual(C)
        return self.loss.value_on(self.bk, fit, self.y) + self.bk.vdot(R, R) / (2.0 * self.delta)

    def grad(self, img: tuple[Any, Any]) -> Any:
        fit, C = img
        B = self.op.adjoint(self.loss.grad_on(self.bk, fit, self.y))
        G = -self.op2.cone_adjoint(self.penalty_residual(C))
        P = self.P
        G[:P] += B
        G[P:] -= B
        return G

    def bregman(self, new: tuple[Any, Any], old: tuple[Any, Any]) -> float:
        r"""Bregman divergence of the smooth part, term by term without cancellation.

        For :math:`\phi(c) = (\gamma - \delta c)_+^2/(2\delta)` with :math:`a = \gamma - \delta c`:
        :math:`D_\phi = [(a_{1+} - a_{0+})^2 + 2a_{0+}(-a_1)_+]/(2\delta) \ge 0`.
        """
        bk = self.bk
        a0p = self.penalty_residual(old[1])  # cached: the gradient at ``old`` computed it
        a1 = self.Gam - self.delta * new[1]
        a1p = bk.maximum(a1, 0.0)
        diff = a1p - a0p
        pen = (bk.vdot(diff, diff) + 2.0 * bk.vdot(a0p, a1p - a1)) / (2.0 * self.delta)
        return self.loss.bregman_on(bk, new[0], old[0], self.y) + pen

    def extrapolate(self, new: tuple[Any, Any], old: tuple[Any, Any], beta: float) -> tuple[Any, Any]:
        return (new[0] + beta * (new[0] - old[0]), new[1] + beta * (new[1] - old[1]))


@dataclass
class ReluResult:
    """Outcome of :func:`solve_relu`."""

    V: Any
    W: Any
    fit: Any
    Gam: Any
    gap: GapResult
    violation: float
    violation_rel: float
    iterations: int
    outer: int
    converged: bool
    delta: float
    step: float
    history: list[dict[str, float]] = field(default_factory=list)
    #: ``"certified"``, ``"max_iter"`` (inner-iteration budget spent) or ``"max_outer"``
    #: (multiplier updates spent)
    reason: str = ""


def solve_relu(
    op: MaskedDesign,
    loss: Loss,
    y: Any,
    lam: float,
    *,
    V0: Any = None,
    W0: Any = None,
    Gam0: Any = None,
    delta0: float | None = None,
    tol: float = 1e-8,
    viol_tol: float = 1e-8,
    max_iter: int = 50000,
    max_outer: int = 200,
    check_every: int = 10,
    inner_max: int = 1000,
    delta_scale: float = 30.0,
    adapt: bool = True,
    penalty: Any = None,
    reporter: Reporter | None = None,
) -> ReluResult:
    r"""Solve C-ReLU by the augmented Lagrangian method with an R-FISTA inner solver.

    Parameters
    ----------
    op : MaskedDesign
    loss : Loss
    y : array, shape (n,)
    lam : float
    V0, W0 : arrays, shape (P, d'), optional
        Warm start of the weights.
    Gam0 : array, shape (n, 2P), optional
        Warm start of the multipliers :math:`[\gamma, \zeta]` (nonnegative).
    delta0 : float, optional
        Initial penalty (default: curvature-balancing heuristic).
    tol : float
        Target certified relative duality gap.
    viol_tol : float
        Target relative cone violation.
    max_iter : int
        Total inner FISTA iterations.
    max_outer : int
        Multiplier updates.
    check_every : int
        Inner iterations between inner stopping checks.
    inner_max : int
        Cap on the inner iterations of one outer iteration (inexact AL).
    delta_scale : float
        Initial penalty as a multiple of the curvature-balancing value (ignored with ``delta0``).
    adapt : bool
        Double the penalty when the violation did not halve.
    penalty : Penalty, optional
        First-layer norm :math:`R` of the program (:mod:`convexnn.formulations.penalties`;
        default the group lasso): the prox of the inner proximal-gradient iterations and the
        dual norm of the certified gap.
    reporter : Reporter, optional

    Returns
    -------
    ReluResult
    """
    bk = op.bk
    t0 = time.perf_counter()
    P, d, n = op.P, op.d, op.n
    # duplicated masks: one cone product for the stacked [V; W]
    op2 = MaskedDesign(op.Xa, bk.hstack([op.M, op.M]), bk)
    x = bk.zeros((2 * P, d))
    if V0 is not None:
        x[:P] = V0
    if W0 is not None:
        x[P:] = W0
    Gam = bk.zeros((n, 2 * P)) if Gam0 is None else bk.maximum(bk.copy(Gam0), 0.0)
    normA2 = op.norm_sq_estimate()
    normX2 = op.xa_norm_sq_estimate()
    if delta0 is None:
        delta = delta_scale * loss.lipschitz * normA2 / max(normX2, 1e-300) if normA2 > 0 else 1.0
    else:
        delta = float(delta0)
    delta_max = delta * 1e6
    step = 1.0 / max(loss.lipschitz * 2.0 * normA2 + delta * normX2, 1e-300)

    history: list[dict[str, float]] = []
    iters, outer = 0, 0
    inner_tol = 1e-2
    prev_viol = float("inf")
    converged = False
    h = ALProblem(op, op2, loss, y, Gam, delta)
    img = h.image(x)
    gap = relu_gap(op, loss, y, lam, x[:P], x[P:], img[0], Gam[:, :P], Gam[:, P:], penalty)
    viol, viol_rel = relu_violation(op, x[:P], x[P:])
    grad_scale = max(lam, 1e-300)
    while outer < max_outer and iters < max_iter:
        outer += 1
        h = ALProblem(op, op2, loss, y, Gam, delta)

        def check(st: APGState) -> bool:
            return st.residual <= inner_tol * grad_scale

        st = accelerated_prox_grad(bk, h, lam, x, step, max_iter=min(inner_max, max_iter - iters), check=check,
                                   check_every=check_every, img0=img, penalty=penalty)
        iters += st.iterations
        x, img, step = st.x, st.img, st.step
        Gam = h.penalty_residual(img[1])  # multiplier update
        V, W = x[:P], x[P:]
        gap = relu_gap(op, loss, y, lam, V, W, img[0], Gam[:, :P], Gam[:, P:], penalty)

        viol, viol_rel = relu_violation(op, V, W)
        history.append({"iter": iters, "outer": outer, "time": time.perf_counter() - t0,
                        "objective": gap.primal, "rel_gap": gap.rel_gap, "violation": viol_rel,
                        "delta": delta, "inner_tol": inner_tol})
        if reporter is not None:
            reporter.update(iters, gap.primal, gap.rel_gap, viol_rel, extra=f"outer {outer} delta {delta:.2e}")
        if gap.rel_gap <= tol and viol_rel <= viol_tol:
            converged = True
            break
        # penalty adaptation: the violation must halve per outer iteration
        if adapt and viol_rel > viol_tol and viol_rel > 0.5 * prev_viol and delta < delta_max:
            step *= 0.5
            delta *= 2.0
        prev_viol = min(prev_viol, viol_rel)
        inner_tol = max(inner_tol * 0.2, 0.1 * tol)
    reason = "certified" if converged else ("max_iter" if iters >= max_iter else "max_outer")
    return ReluResult(x[:P], x[P:], img[0], Gam, gap, viol, viol_rel, iters, outer, converged, delta, step,
                      history, reason)

