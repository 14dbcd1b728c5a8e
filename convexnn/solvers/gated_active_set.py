r"""Newton polish on the active groups with a global certificate for C-GReLU (column generation).

C-GReLU over the patterns :math:`D_1, \dots, D_P` (Mishkin, Sahiner & Pilanci (ICML 2022) eq. (C-GReLU); Mishkin (PhD thesis, Stanford) bonus slides) is the
group lasso

.. math::

    \min_U\ F(U) = f\Big(\sum_i A_i u_i\Big) + \lambda\sum_i \|u_i\|_2,
    \qquad A_i = D_i \tilde X \in \mathbb R^{n\times d'} .

R-FISTA (:func:`convexnn.solvers.fista.solve_gated`) identifies the *support*
:math:`\mathcal S = \{i : u_i \ne 0\}` long before it reaches a tight gap: its linear rate is
governed by the conditioning of the whole masked design, which is poor (the :math:`A_i` are
strongly correlated). On a fixed support the objective is *smooth* (every :math:`\|u_i\|_2` is
differentiable away from 0), so the restricted program is solved by a damped Newton method
(quadratic convergence, a few iterations), with

.. math::

    \nabla_i F = A_i^\top \nabla f(z) + \lambda \frac{u_i}{\|u_i\|},\qquad
    \nabla^2 F = A_{\mathcal S}^\top \operatorname{diag}(f''(z)) A_{\mathcal S}
    + \operatorname{blkdiag}_i\Big(\frac{\lambda}{\|u_i\|}\big(I - \hat u_i\hat u_i^\top\big)\Big),

:math:`z = A_{\mathcal S} u_{\mathcal S}`, :math:`\hat u_i = u_i / \|u_i\|`,
:math:`A_{\mathcal S} = [A_i]_{i\in\mathcal S}` (formed explicitly: ``n x |S| d'``). The
regulariser's Hessian has no curvature along :math:`\hat u_i`, so for a group whose restricted
optimum is zero the Newton step runs *through* the origin (overshoot ratio
:math:`\rho_i = \langle u_i, \Delta_i\rangle / \|u_i\|^2 > 1`); the groups with
:math:`\rho_i \ge \max(1, \tfrac12\max_j\rho_j)` are set to zero and leave
:math:`\mathcal S` (only the worst ones: a tiny group's long step drags correlated groups along),
and the Newton step is recomputed.

**Global certificate.** At the Newton point :math:`U` (zero outside :math:`\mathcal S`) the
C-GReLU certificate of :func:`convexnn.solvers.gap.gated_gap` over **all** :math:`P` patterns
is formed in float64: :math:`\theta = \nabla f(\mathcal A U)`, scaled by
:math:`s = \min\{1, \lambda / \max_i\|A_i^\top\theta\|\}` into the dual feasible set, so
:math:`F(U) - (-f^*(s\theta)) \ge F(U) - F^\star`. The dual constraint
:math:`\|A_i^\top\theta\|_2 \le \lambda` of a zero group is its KKT condition; a group with
:math:`\|A_i^\top\theta\| > \lambda` is *violated* (column generation, as in Blitz / Celer
working sets and the C-ReLU polish :mod:`convexnn.solvers.active_set`): the most violated groups
join :math:`\mathcal S`, started at one proximal-gradient step of their own block from zero,

.. math::

    u_i = -\eta_i\Big(1 - \frac{\lambda}{\|A_i^\top\theta\|}\Big) A_i^\top\theta,
    \qquad \eta_i = 1/\|A_i\|_2^2,

which decreases :math:`F` with the other groups fixed, and the restricted program is solved
again. The loop stops when the certified relative gap is below ``tol``; if it cannot (round
budget, a singular Newton system, no violated group while the gap is still above ``tol``) the
caller resumes R-FISTA from the best point (:func:`convexnn.solve` does).

The polish is CPU / numpy / float64 only (like the C-ReLU polish): the restricted systems are
small dense ``|S| d'`` linear systems, and the whole point is to replace thousands of cheap
first-order iterations by a handful of factorizations. It is used only when
:math:`|\mathcal S| d' \le` ``max_vars`` (1500) and :math:`n|\mathcal S| d' \le` ``max_design``
(2e7 entries, 160 MB); larger supports stay with R-FISTA.

References: Mishkin (PhD thesis, Stanford) bonus slides and Mishkin, Sahiner & Pilanci (ICML 2022) (C-GReLU, R-FISTA); Johnson & Guestrin, "Blitz"
(ICML 2015) and Massias et al., "Celer" (ICML 2018) for working sets; Nocedal & Wright,
*Numerical Optimization*, ch. 3 (damped Newton with backtracking).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from convexnn.arrangements.limits import one_blas_thread
from convexnn.backend import NUMPY
from convexnn.formulations.losses import Loss, get_loss
from convexnn.gap import relative_gap
from convexnn.solvers.gap import require_smooth
from convexnn.solvers.operators import MaskedDesign

__all__ = ["GatedPolishResult", "restricted_newton", "solve_gated_active_set"]

_ADD_RTOL = 1e-9  # a zero group is violated when ||A_i^T theta|| > lam * (1 + _ADD_RTOL)


def _block_design(Xa: np.ndarray, masks: np.ndarray, S: np.ndarray) -> np.ndarray:
    r""":math:`A_{\mathcal S} = [D_i\tilde X]_{i\in\mathcal S}`, shape ``(n, |S| d')``."""
    n, d = Xa.shape
    return np.einsum("nk,nd->nkd", masks[:, S].astype(np.float64), Xa).reshape(n, len(S) * d)


def restricted_newton(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: str | Loss,
                      S: np.ndarray, US: np.ndarray, *, max_iter: int = 50,
                      rtol: float = 1e-12, gtol: float = 1e-11,
                      design: tuple[np.ndarray, np.ndarray | None] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray, int, bool]:
    r"""Damped Newton on C-GReLU restricted to the groups ``S`` (all nonzero), dropping groups
    whose Newton step crosses the origin.

    Parameters
    ----------
    Xa : array, shape (n, d')
    masks : bool array, shape (n, P)
    y : array, shape (n,)
    lam : float
    loss : str or Loss
        A smooth loss with Hessian information (``curvature_on``).
    S : int array, shape (k,)
        Groups in the working set.
    US : array, shape (k, d')
        Starting point; every row must be nonzero.
    max_iter : int
        Newton iterations.
    rtol : float
        Below the relative Newton decrement :math:`\nabla F^\top\Delta \le` ``rtol`` :math:`|F|`
        the decrease of :math:`F` is at its rounding level (the gap can still be limited by the
        gradient: small :math:`F`, large curvature), so full Newton steps are taken without the
        Armijo test, as long as each one at least halves :math:`\|\nabla F\|_\infty`.
    design : (array, array or None), optional
        :math:`A_{\mathcal S}` (``n x |S| d'``, groups in the order of ``S``) and, for the
        squared loss, its Gram matrix, when the caller has them (:func:`solve_gated_active_set`
        reuses those of the final support in the next column-generation round).
    gtol : float
        Stop (before factorizing) when :math:`\|\nabla F\|_\infty \le` ``gtol`` :math:`\lambda`:
        then :math:`\|A_i^\top\theta\| \le \lambda(1 + \sqrt{d'}\,\text{gtol})` on the
        support, so the dual scaling costs at most that much of the gap.

    Returns
    -------
    S : int array
        The groups still in the support.
    US : array, shape (len(S), d')
        The restricted solution on those groups.
    iterations : int
    converged : bool
        The gradient test ``gtol`` was met (False: iteration budget, a failed line search or the
        precision floor of the full steps).
    """
    S, US, it, converged, _ = _newton(Xa, masks, y, lam, require_smooth(loss), S, US, max_iter=max_iter,
                                      rtol=rtol, gtol=gtol, design=design)
    return S, US, it, converged


def _newton(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss,
            S: np.ndarray, US: np.ndarray, *, max_iter: int, rtol: float, gtol: float,
            design: tuple[np.ndarray, np.ndarray | None] | None,
            ) -> tuple[np.ndarray, np.ndarray, int, bool, tuple[np.ndarray, np.ndarray | None]]:
    """:func:`restricted_newton`, also returning the final ``(A_S, Gram)``."""
    n, d = Xa.shape
    S = np.asarray(S, dtype=np.int64)
    u = np.asarray(US, dtype=np.float64).reshape(-1).copy()
    if design is None:
        A = _block_design(Xa, masks, S)
        gram = A.T @ A if loss.unit_curvature else None
    else:
        A, gram = design

    def objective(A_: np.ndarray, u_: np.ndarray, k_: int) -> float:
        return float(loss.value_on(NUMPY, A_ @ u_, y)) + lam * float(np.linalg.norm(u_.reshape(k_, d), axis=1).sum())

    it = 0
    converged = False
    F = objective(A, u, len(S))
    u_prev, gmax_prev = u, float("inf")
    while it < max_iter:
        k = len(S)
        if k == 0:
            converged = True
            break
        it += 1
        Ub = u.reshape(k, d)
        nr = np.linalg.norm(Ub, axis=1)
        uh = Ub / nr[:, None]
        z = A @ u
        g_f, w = loss.grad_on(NUMPY, z, y), loss.curvature_on(NUMPY, z, y)
        grad = A.T @ g_f + lam * uh.reshape(-1)
        gmax = float(np.abs(grad).max())
        if gmax <= gtol * lam:  # stationary: no factorization needed
            converged = True
            break
        if gmax >= 0.5 * gmax_prev:  # unguarded full steps stopped helping: precision floor
            u = u_prev
            break
        H = gram.copy() if gram is not None else (A.T * w) @ A
        # the regulariser's curvature (lam/||u_i||)(I - u^ u^T) on the diagonal blocks
        idx = np.arange(k)
        blocks = (lam / nr)[:, None, None] * (np.eye(d)[None] - uh[:, :, None] * uh[:, None, :])
        Hv = H.reshape(k, d, k, d)
        Hv[idx, :, idx, :] += blocks
        H[np.diag_indices_from(H)] += 1e-13 * max(float(np.trace(H)) / len(H), 1e-300)
        try:
            step = scipy.linalg.cho_solve(scipy.linalg.cho_factor(H, check_finite=False), grad,
                                          check_finite=False)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, grad, rcond=None)[0]
        dec = float(grad @ step)
        if not np.isfinite(dec):
            break
        # overshoot ratio <u_i, Delta_i> / ||u_i||^2 > 1: the step runs group i through the origin
        ratio = np.einsum("ij,ij->i", step.reshape(k, d), Ub) / (nr * nr)
        rmax = float(ratio.max())
        if rmax > 1.0:
            # the groups overshooting most (a tiny group's step can drag the others along, so
            # only those within a factor 2 of the worst) have a (numerically) zero restricted
            # optimum: drop them and recompute the Newton step
            keep = ratio < max(1.0, 0.5 * rmax)
            S, u = S[keep], Ub[keep].reshape(-1).copy()
            A = A.reshape(n, k, d)[:, keep, :].reshape(n, -1)
            if gram is not None:  # the Gram matrix of the kept groups is a sub-block
                cols = (np.flatnonzero(keep)[:, None] * d + np.arange(d)[None, :]).reshape(-1)
                gram = gram[np.ix_(cols, cols)]
            F = objective(A, u, len(S))
            gmax_prev = float("inf")
            continue
        if dec <= rtol * max(abs(F), 1e-300):
            # quadratic-convergence regime: the decrease of F is below its rounding, so the Armijo
            # test is meaningless; take the full step and judge it by the gradient (above)
            u_prev, gmax_prev = u, gmax
            u = u - step
            F = objective(A, u, k)
            continue
        gmax_prev = float("inf")
        t = 1.0
        while True:
            un = u - t * step
            Fn = objective(A, un, k)
            if Fn <= F - 1e-4 * t * dec or t < 1e-12:
                break
            t *= 0.5
        if Fn > F:  # no decrease although the decrement is well above rounding: give up
            break
        u, F = un, Fn
    return S, u.reshape(len(S), d), it, converged, (A, gram)


@dataclass
class GatedPolishResult:
    r"""Outcome of :func:`solve_gated_active_set`.

    Attributes
    ----------
    U : array, shape (P, d')
        Best point (lowest certified relative gap).
    primal, dual, rel_gap : float
        :math:`F(U)`, the certified dual value and the relative gap
        :func:`convexnn.gap.relative_gap` (float64).
    converged : bool
        ``rel_gap <= tol``.
    reason : str
        ``"certified"``, ``"too_large"``, ``"no_violated_group"`` or ``"max_rounds"``.
    rounds, newton_iterations, working_set : int
        Column-generation rounds, Newton iterations over all rounds, final support size.
    history : list of dict
        One entry per round (``iter``, ``time``, ``objective``, ``rel_gap``).
    """

    U: np.ndarray
    primal: float
    dual: float
    rel_gap: float
    converged: bool
    reason: str
    rounds: int
    newton_iterations: int
    working_set: int
    history: list[dict[str, float]] = field(default_factory=list)


def _certificate(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: str | Loss,
                 U: np.ndarray) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    r"""Float64 C-GReLU certificate over all patterns: primal, dual, relative gap,
    :math:`\theta = \nabla f(z)` and the group norms :math:`\|A_i^\top\theta\|_2`."""
    loss = get_loss(loss)
    op = MaskedDesign(Xa, masks, NUMPY)
    z = op.fit(U)
    val, theta = float(loss.value_on(NUMPY, z, y)), loss.grad_on(NUMPY, z, y)
    c = np.linalg.norm(op.adjoint(theta), axis=1)
    primal = val + lam * float(np.linalg.norm(U, axis=1).sum())
    cmax = float(c.max()) if c.size else 0.0
    s = 1.0 if cmax <= lam else lam / cmax
    dual = -float(loss.conjugate_on(NUMPY, s * theta, y))
    rel = relative_gap(primal, dual)
    return primal, dual, rel, theta, c


@one_blas_thread
def solve_gated_active_set(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: str | Loss,
                           U0: np.ndarray, *, tol: float = 1e-8, max_rounds: int = 20,
                           max_vars: int = 1500, max_design: int = 20_000_000, t0: float | None = None,
                           iterations0: int = 0) -> GatedPolishResult:
    r"""Newton polish on the support of ``U0`` with column generation and a global certificate.

    Parameters
    ----------
    Xa : array, shape (n, d')
    masks : bool array, shape (n, P)
    y : array, shape (n,)
    lam : float
    loss : str or Loss
        A smooth loss with Hessian information (``curvature_on``).
    U0 : array, shape (P, d')
        Starting point (an R-FISTA iterate at a loose gap); its nonzero rows are the first
        working set.
    tol : float
        Target certified relative gap (over all ``P`` patterns).
    max_rounds : int
        Column-generation rounds (one restricted Newton solve each).
    max_vars : int
        Largest restricted system ``|S| d'`` (a Cholesky factorization costs
        :math:`(|S| d')^3/3` flops); beyond it the polish stops (``reason="too_large"``).
    max_design : int
        Largest restricted design :math:`A_{\mathcal S}` in entries, ``n |S| d'`` (8 bytes each);
        beyond it the polish stops as well.
    t0 : float, optional
        ``time.perf_counter()`` origin of the history's times.
    iterations0 : int
        Iteration count of the first-order phase (history numbering).

    Returns
    -------
    GatedPolishResult
        ``U`` is the best certified point seen (lowest relative gap; ``U0`` with
        ``rel_gap = inf`` when no round ran); ``reason`` is
        ``"certified"``, ``"too_large"``, ``"no_violated_group"`` or ``"max_rounds"``.
    """
    t0 = time.perf_counter() if t0 is None else t0
    loss = require_smooth(loss)
    Xa = np.asarray(Xa, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    y = np.asarray(y, dtype=np.float64)
    P, d = masks.shape[1], Xa.shape[1]
    U = np.asarray(U0, dtype=np.float64).copy()
    S = np.flatnonzero(np.linalg.norm(U, axis=1) > 0)
    best: tuple[float, float, float, Any, Any] = (float("nan"), float("nan"), float("inf"), None, None)
    bestU = U.copy()
    history: list[dict[str, float]] = []
    newton_its, rounds, reason = 0, 0, "max_rounds"
    design: tuple[np.ndarray, np.ndarray | None] | None = None
    gtol = 1e-9  # Newton stationarity target (relative to lam), tightened when the certificate asks for it
    while rounds < max_rounds:
        if len(S) * d > max_vars or len(S) * d * Xa.shape[0] > max_design:
            reason = "too_large"
            break
        rounds += 1
        S_new, US, its, _, design = _newton(Xa, masks, y, lam, loss, S, U[S], max_iter=50, rtol=1e-12,
                                            gtol=gtol, design=design)
        newton_its += its
        U = np.zeros((P, d))
        U[S_new] = US
        S = S_new
        cert = _certificate(Xa, masks, y, lam, loss, U)
        primal, dual, rel, theta, c = cert
        history.append({"iter": iterations0 + newton_its, "time": time.perf_counter() - t0,
                        "objective": primal, "rel_gap": rel})
        if rel < best[2]:
            best, bestU = cert, U.copy()
        if rel <= tol:
            reason = "certified"
            break
        outside = np.setdiff1d(np.arange(P), S)
        viol = outside[c[outside] > lam * (1.0 + _ADD_RTOL)]
        if viol.size == 0:
            if gtol > 1e-15:  # the support is right: only the restricted accuracy is missing
                gtol = max(gtol * 1e-3, 1e-15)
                continue
            reason = "no_violated_group"
            break
        viol = viol[np.argsort(-c[viol], kind="stable")][: max(10, len(S))]
        # one proximal-gradient step of each new block from zero (step 1 / ||A_i||^2)
        A_add = _block_design(Xa, masks, viol)
        G = A_add.reshape(Xa.shape[0], len(viol), d)  # G[:, j, :] = A_{viol[j]}
        Li = np.array([np.linalg.norm(G[:, j, :], 2) ** 2 for j in range(len(viol))])
        B = np.einsum("n,nmd->md", theta, G)
        U[viol] = -(1.0 - lam / c[viol])[:, None] * B / np.maximum(Li, 1e-300)[:, None]
        # the new groups go last: A_S and its Gram matrix grow by a block column (no rebuild)
        A_old, gram_old = design
        A_new = np.hstack([A_old, A_add])
        gram_new = None
        if gram_old is not None:
            cross = A_old.T @ A_add
            gram_new = np.block([[gram_old, cross], [cross.T, A_add.T @ A_add]])
        design = (A_new, gram_new)
        S = np.concatenate([S, viol])
    primal, dual, rel, _, _ = best
    return GatedPolishResult(bestU, primal, dual, rel, rel <= tol, reason, rounds, newton_its, len(S), history)
