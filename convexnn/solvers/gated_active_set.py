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
:math:`A_{\mathcal S} = [A_i]_{i\in\mathcal S}`. The regulariser's Hessian has no curvature
along :math:`\hat u_i`, so for a group whose restricted optimum is zero the Newton step runs
*through* the origin (overshoot ratio :math:`\rho_i = \langle u_i, \Delta_i\rangle / \|u_i\|^2 > 1`);
those groups are set to zero and leave :math:`\mathcal S`, and the Newton step is recomputed. In
the final rounds only the worst ones go (:math:`\rho_i \ge \max(1, \tfrac12\max_j\rho_j)`: a tiny
group's long step drags correlated groups along); in the loose rounds below, all of them.

**Linear algebra.** The Newton system is solved either by a dense Cholesky factorization of
:math:`\nabla^2 F` (``|S| d'`` unknowns, :math:`A_{\mathcal S}` formed explicitly: ``n x |S| d'``),
or, when ``n`` is small next to :math:`|\mathcal S| d'` (dense supports), by the
Sherman--Morrison--Woodbury elimination of :func:`woodbury_newton_step`: :math:`\nabla^2 F` is the
rank-:math:`\le n` term :math:`A_{\mathcal S}^\top W A_{\mathcal S}` plus a block diagonal, and the
masked structure :math:`\sum_i r_iA_iA_i^\top = (\tilde X\tilde X^\top)\circ(M_{\mathcal S}
\operatorname{diag}(r)M_{\mathcal S}^\top)` reduces a step to ``n x n`` and ``|S| x |S|``
factorizations (:math:`O(n^2|\mathcal S| + n^3)` flops against :math:`(|\mathcal S| d')^3/3`). The
cheaper one by the flop counts of :func:`newton_step_flops` is used (:func:`choose_linear_algebra`).

**Inexact rounds.** While groups outside :math:`\mathcal S` are still violated, the restricted
program is solved only to a gradient of a fraction of the largest violation (its exact solution
would change anyway once the violated groups join); the last rounds solve it to full accuracy.
So the polish also starts from a rough point: :func:`handover_rule` stops R-FISTA early when its
remaining iterations would cost more than a polish from such a point.

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

The polish is CPU / numpy / float64 only (like the C-ReLU polish): the whole point is to
replace thousands of cheap first-order iterations by a few dozen factorizations. It is used when
the support fits the dense factorization (:math:`|\mathcal S| d' \le` ``max_vars``, 1500, and
:math:`n|\mathcal S| d' \le` ``max_design``, 2e7 entries) or the Woodbury solve (``n`` and
:math:`|\mathcal S|` at most ``max_rows``, :data:`MAX_WOODBURY_ROWS`); larger supports stay with
R-FISTA.

References: Mishkin (PhD thesis, Stanford) bonus slides and Mishkin, Sahiner & Pilanci (ICML 2022) (C-GReLU, R-FISTA); Johnson & Guestrin, "Blitz"
(ICML 2015) and Massias et al., "Celer" (ICML 2018) for working sets; Nocedal & Wright,
*Numerical Optimization*, ch. 3 (damped Newton with backtracking); Li, Sun & Toh, "A highly
efficient semismooth Newton augmented Lagrangian method for solving Lasso problems" (SIAM J.
Optim. 2018) and Zhang, Zhang, Sun & Toh, "An efficient Hessian based algorithm for solving
large-scale sparse group Lasso problems" (Math. Program. 2020) for second-order group-lasso
solvers exploiting the low rank of the generalized Hessian.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.linalg

from convexnn.arrangements.limits import one_blas_thread
from convexnn.backend import NUMPY
from convexnn.errors import InputError
from convexnn.formulations.blocks import block_design
from convexnn.formulations.losses import Loss, get_loss
from convexnn.gap import relative_gap
from convexnn.solvers.block_ipm import iteration_flops as ipm_iteration_flops
from convexnn.solvers.gap import require_smooth
from convexnn.solvers.operators import MaskedDesign

__all__ = ["GatedPolishResult", "restricted_newton", "solve_gated_active_set", "woodbury_newton_step",
           "newton_step_flops", "choose_linear_algebra", "polish_step_flops", "handover_rule",
           "fista_iteration_seconds", "newton_step_seconds",
           "MAX_WOODBURY_ROWS", "POLISH_NEWTON_STEPS"]

_ADD_RTOL = 1e-9  # a zero group is violated when ||A_i^T theta|| > lam * (1 + _ADD_RTOL)
#: Largest ``n`` (and support size) for the Sherman--Morrison--Woodbury Newton solve: its
#: ``n x n`` matrices take ``8 n^2`` bytes each (three of them).
MAX_WOODBURY_ROWS = 3000
#: Loose column-generation rounds (groups outside the support still violated): the restricted
#: Newton solve stops at a gradient of this fraction of the largest violation, and drops every
#: group whose Newton step overshoots the origin (the final rounds drop only the worst ones).
_LOOSE = 0.1
_DROP_FRACTION = 0.0
#: Cycling of the polish (the block interior point takes over, see :func:`solve_gated_active_set`):
#: Newton returns a support it returned before without progress, or at least ``_CHURN_ROUNDS`` rounds re-added groups
#: that Newton had dropped and the last ``_STALL_ROUNDS`` rounds made no progress (neither a larger
#: support kept by Newton nor a certified gap below ``_PROGRESS`` times the best one)
_CHURN_ROUNDS = 2
_STALL_ROUNDS = 3
#: the beginning of the stopping reason of a polish whose rounds cycled and whose block interior point, which
#: then took over, did not certify either (the rest is that solver's reason)
CYCLED_TO_IPM = "cycling, then the block interior point"
#: the beginning of the stopping reason of a polish that went to the block interior point over all groups at once
#: (``ipm_first``) and was not certified by it
ALL_GROUPS_IPM = "the block interior point over all groups"
_PROGRESS = 0.9
#: ... or the last ``_FLAT_ROUNDS`` rounds did not bring the certified gap below ``_PROGRESS`` times
#: the best one, however the support grew (on one-dimensional data the supports grew by a few
#: groups every other round for 20 rounds at a gap of 0.99, while R-FISTA had handed over at 3e-3)
_FLAT_ROUNDS = 6
#: ... when the groups the rounds visited hold at most ``max_vars`` variables or one interior-point
#: iteration on them costs at most this many flops (:func:`convexnn.solvers.block_ipm.iteration_flops`;
#: a Sherman--Morrison--Woodbury iteration of order ``n`` when ``n`` is small); otherwise R-FISTA resumes
_HANDOVER_FLOPS = 1e10


def _block_design(Xa: np.ndarray, masks: np.ndarray, S: np.ndarray) -> np.ndarray:
    r""":math:`A_{\mathcal S} = [D_i\tilde X]_{i\in\mathcal S}`, shape ``(n, |S| d')``."""
    return block_design(Xa, masks[:, S])


def restricted_newton(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: str | Loss,
                      S: np.ndarray, US: np.ndarray, *, max_iter: int = 50,
                      rtol: float = 1e-12, gtol: float = 1e-11,
                      design: tuple[np.ndarray, np.ndarray | None] | None = None,
                      linear_algebra: str = "dense",
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
    linear_algebra : {"dense", "woodbury"}
        Newton systems by a dense Cholesky factorization of the ``|S| d'`` Hessian, or by the
        Sherman--Morrison--Woodbury elimination of :func:`woodbury_newton_step` (``design`` is
        then ignored).

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
    if linear_algebra not in ("dense", "woodbury"):
        raise InputError(f"linear_algebra must be 'dense' or 'woodbury'; got {linear_algebra!r}.")
    Xa = np.asarray(Xa, dtype=np.float64)
    if linear_algebra == "woodbury":
        design = _MaskedDesign.of(Xa, masks, np.asarray(S, dtype=np.int64))
    S, US, it, converged, _ = _newton(Xa, masks, y, lam, require_smooth(loss), S, US, max_iter=max_iter,
                                      rtol=rtol, gtol=gtol, design=design)
    return S, US, it, converged


# ---------------------------------------------------------------------------- restricted designs
class _DenseDesign:
    r"""Explicit :math:`A_{\mathcal S}` (``n x |S| d'``) and, for the squared loss, its Gram matrix;
    Newton systems by a dense ``|S| d'`` Cholesky factorization."""

    kind = "dense"

    def __init__(self, A: np.ndarray, gram: np.ndarray | None, d: int) -> None:
        self.A, self.gram, self.d = A, gram, d

    def fit(self, u: np.ndarray) -> np.ndarray:
        return self.A @ u

    def adjoint(self, theta: np.ndarray) -> np.ndarray:
        return self.A.T @ theta

    def extend(self, A_add: np.ndarray, masks_add: np.ndarray) -> "_DenseDesign":
        """The design with the groups of ``A_add`` (their explicit columns) appended; the Gram matrix
        grows by a block column (no rebuild)."""
        gram = None
        if self.gram is not None:
            cross = self.A.T @ A_add
            gram = np.block([[self.gram, cross], [cross.T, A_add.T @ A_add]])
        return _DenseDesign(np.hstack([self.A, A_add]), gram, self.d)

    def keep(self, keep: np.ndarray) -> "_DenseDesign":
        n, d = self.A.shape[0], self.d
        k = len(keep)
        A = self.A.reshape(n, k, d)[:, keep, :].reshape(n, -1)
        gram = None
        if self.gram is not None:  # the Gram matrix of the kept groups is a sub-block
            cols = (np.flatnonzero(keep)[:, None] * d + np.arange(d)[None, :]).reshape(-1)
            gram = self.gram[np.ix_(cols, cols)]
        return _DenseDesign(A, gram, d)

    def solve(self, w: np.ndarray, nr: np.ndarray, uh: np.ndarray, lam: float, grad: np.ndarray) -> np.ndarray:
        k, d = uh.shape
        H = self.gram.copy() if self.gram is not None else (self.A.T * w) @ self.A
        # the regulariser's curvature (lam/||u_i||)(I - u^ u^T) on the diagonal blocks
        idx = np.arange(k)
        blocks = (lam / nr)[:, None, None] * (np.eye(d)[None] - uh[:, :, None] * uh[:, None, :])
        Hv = H.reshape(k, d, k, d)
        Hv[idx, :, idx, :] += blocks
        H[np.diag_indices_from(H)] += 1e-13 * max(float(np.trace(H)) / len(H), 1e-300)
        try:
            return scipy.linalg.cho_solve(scipy.linalg.cho_factor(H, check_finite=False), grad,
                                          check_finite=False)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(H, grad, rcond=None)[0]


class _MaskedDesign:
    r"""The restricted design kept implicit, :math:`A_i = D_i\tilde X` from ``Xa`` and the masks of
    the support; Newton systems by the Sherman--Morrison--Woodbury elimination of
    :func:`woodbury_newton_step` (``n x n`` and ``|S| x |S|`` factorizations)."""

    kind = "woodbury"

    def __init__(self, Xa: np.ndarray, Ms: np.ndarray, XXt: np.ndarray) -> None:
        self.Xa, self.Ms, self.XXt, self.d = Xa, Ms, XXt, Xa.shape[1]
        self.op = MaskedDesign(Xa, Ms, NUMPY)  # the masked products of the support's groups

    @classmethod
    def of(cls, Xa: np.ndarray, masks: np.ndarray, S: np.ndarray,
           XXt: np.ndarray | None = None) -> "_MaskedDesign":
        r"""The design of the groups ``S`` (``XXt`` = :math:`\tilde X\tilde X^\top`, computed when not given)."""
        return cls(Xa, np.ascontiguousarray(np.asarray(masks)[:, S], dtype=np.float64),
                   Xa @ Xa.T if XXt is None else XXt)

    def extend(self, A_add: np.ndarray, masks_add: np.ndarray) -> "_MaskedDesign":
        """The design with the groups of masks ``masks_add`` appended (``A_add`` is not needed)."""
        return _MaskedDesign(self.Xa, np.hstack([self.Ms, np.asarray(masks_add, dtype=np.float64)]), self.XXt)

    def fit(self, u: np.ndarray) -> np.ndarray:
        return self.op.fit(u.reshape(self.Ms.shape[1], self.d))

    def adjoint(self, theta: np.ndarray) -> np.ndarray:
        return self.op.adjoint(theta).reshape(-1)

    def keep(self, keep: np.ndarray) -> "_MaskedDesign":
        return _MaskedDesign(self.Xa, np.ascontiguousarray(self.Ms[:, keep]), self.XXt)

    def solve(self, w: np.ndarray, nr: np.ndarray, uh: np.ndarray, lam: float, grad: np.ndarray) -> np.ndarray:
        return woodbury_newton_step(self.Xa, self.Ms, w, nr / lam, uh, grad.reshape(uh.shape),
                                    XXt=self.XXt).reshape(-1)


def woodbury_newton_step(Xa: np.ndarray, Ms: np.ndarray, w: np.ndarray, r: np.ndarray, uh: np.ndarray,
                         g: np.ndarray, *, XXt: np.ndarray | None = None, refine: int = 2) -> np.ndarray:
    r"""Solve the restricted Newton system :math:`Hv = g` of C-GReLU without forming :math:`H`.

    With :math:`A_i = D_i\tilde X` (``n x d'``), :math:`W = \operatorname{diag}(w)` the loss
    curvature, :math:`r_i = \|u_i\|/\lambda` and :math:`P_i = I - \hat u_i\hat u_i^\top`,

    .. math::

        H = A^\top W A + \operatorname{blkdiag}_i\big(r_i^{-1} P_i\big).

    The regulariser's curvature vanishes along :math:`\hat u_i`, so write
    :math:`v_i = r_iP_i(g_i - A_i^\top s) + \alpha_i\hat u_i` with :math:`s = WAv`: eliminating the
    ``|S| (d'-1)`` directions orthogonal to the :math:`\hat u_i` (Sherman--Morrison--Woodbury)
    leaves, with :math:`t = W^{-1/2}s`, :math:`G = W^{1/2}[A_i\hat u_i]_i` (``n x |S|``),
    :math:`R = \operatorname{diag}(r)` and :math:`\beta = \alpha + RG^\top t`, the saddle-point
    system

    .. math::

        K_0 t - G\beta = W^{1/2}\textstyle\sum_i r_i A_iP_ig_i, \qquad
        G^\top t = (\hat u_i^\top g_i)_i, \qquad
        K_0 = I + W^{1/2}\Big(\textstyle\sum_i r_i A_iA_i^\top\Big)W^{1/2},

    solved by a Cholesky factorization :math:`K_0 = LL^\top` (``n x n``) and one of the
    ``|S| x |S|`` Schur complement :math:`(L^{-1}G)^\top(L^{-1}G) + \delta I` (:math:`\delta`,
    :math:`10^{-13}` of its scale, keeps it definite when :math:`|S| > n`). The masked structure
    makes :math:`K_0` cheap: :math:`\sum_i r_iA_iA_i^\top = (\tilde X\tilde X^\top)\circ
    (M_{\mathcal S}\operatorname{diag}(r)M_{\mathcal S}^\top)` (``M_S`` the ``n x |S|`` masks), so
    one step costs about :math:`3n^2|S| + n^3/3 + n|S|^2 + |S|^3/3` flops, against
    :math:`(|S|d')^3/3` for a Cholesky factorization of :math:`H`. Up to ``refine`` steps of
    iterative refinement against the exact product :math:`Hv` recover the accuracy lost to the
    conditioning of the elimination and to :math:`\delta`, as long as they reduce the residual.

    Parameters
    ----------
    Xa : array, shape (n, d')
    Ms : array, shape (n, k)
        Masks of the support groups (float).
    w : array, shape (n,)
        Loss curvature :math:`f''(z) \ge 0`.
    r : array, shape (k,)
        :math:`\|u_i\|_2 / \lambda > 0`.
    uh : array, shape (k, d')
        Unit directions :math:`u_i/\|u_i\|`.
    g : array, shape (k, d')
        Right-hand side.
    XXt : array, shape (n, n), optional
        :math:`\tilde X\tilde X^\top` if already known.
    refine : int
        Iterative-refinement steps.

    Returns
    -------
    array, shape (k, d')
        The solution :math:`v`.

    References
    ----------
    Li, Sun & Toh, "A highly efficient semismooth Newton augmented Lagrangian method for solving
    Lasso problems", SIAM J. Optim. 2018 (the low-rank structure of the generalized Hessian);
    Golub & Van Loan, *Matrix Computations*, sec. 2.1.4 (Sherman--Morrison--Woodbury) and 3.5.3
    (iterative refinement).
    """
    n, d = Xa.shape
    k = Ms.shape[1]
    if XXt is None:
        XXt = Xa @ Xa.T
    op = MaskedDesign(Xa, Ms, NUMPY)  # sum_i A_i v_i and (A_i^T s)_i
    sw = np.sqrt(np.maximum(w, 0.0))
    G = sw[:, None] * (Ms * (Xa @ uh.T))              # columns W^(1/2) A_i u^_i
    # K = K0 - G diag(r) G^T with K0 = I + W^(1/2) (XXt o (M_S diag(r) M_S^T)) W^(1/2); with
    # beta = alpha + diag(r) G^T t the saddle-point system reads K0 t - G beta = b1, G^T t = b2
    K0 = XXt * ((Ms * r[None, :]) @ Ms.T)
    K0 *= sw[:, None]
    K0 *= sw[None, :]
    K0[np.diag_indices(n)] += 1.0
    delta = 1e-13 * max(float(np.einsum("ij,ij->", G, G)) / max(k, 1), 1e-300)
    try:
        L = scipy.linalg.cholesky(K0, lower=True, check_finite=False)
        Y = scipy.linalg.solve_triangular(L, G, lower=True, check_finite=False)   # L^-1 G
        S = Y.T @ Y
        S[np.diag_indices(k)] += delta
        cS = scipy.linalg.cho_factor(S, lower=True, check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        raise np.linalg.LinAlgError("the Woodbury elimination of the Newton system is singular") from None

    def apply_h(v: np.ndarray) -> np.ndarray:
        Hv = op.adjoint(w * op.fit(v))
        a = np.einsum("kd,kd->k", uh, v)
        Hv += (v - uh * a[:, None]) / r[:, None]
        return Hv

    def solve_once(rhs: np.ndarray) -> np.ndarray:
        a_g = np.einsum("kd,kd->k", uh, rhs)
        Pg = (rhs - uh * a_g[:, None]) * r[:, None]
        b1 = sw * op.fit(Pg)
        Lb = scipy.linalg.solve_triangular(L, b1, lower=True, check_finite=False)
        beta = scipy.linalg.cho_solve(cS, a_g - Y.T @ Lb, check_finite=False)
        t = scipy.linalg.solve_triangular(L, Lb + Y @ beta, lower=True, trans="T", check_finite=False)
        alpha = beta - r * (G.T @ t)
        s = sw * t
        q = rhs - op.adjoint(s)
        a_q = np.einsum("kd,kd->k", uh, q)
        return (q - uh * a_q[:, None]) * r[:, None] + uh * alpha[:, None]

    v = solve_once(g)
    res = g - apply_h(v)
    rn = float(np.abs(res).max())
    for _ in range(refine):
        if not rn > 0.0:
            break
        v2 = v + solve_once(res)
        res2 = g - apply_h(v2)
        rn2 = float(np.abs(res2).max())
        if not rn2 < rn:  # refinement stopped helping (or the residual is not finite)
            break
        v, res, rn = v2, res2, rn2
    return v


def _newton(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss,
            S: np.ndarray, US: np.ndarray, *, max_iter: int, rtol: float, gtol: float,
            design: _DenseDesign | _MaskedDesign | tuple[np.ndarray, np.ndarray | None] | None,
            drop: float = 0.5) -> tuple[np.ndarray, np.ndarray, int, bool, _DenseDesign | _MaskedDesign]:
    """:func:`restricted_newton`, also returning the final restricted design."""
    n, d = Xa.shape
    S = np.asarray(S, dtype=np.int64)
    u = np.asarray(US, dtype=np.float64).reshape(-1).copy()
    if design is None:
        A = _block_design(Xa, masks, S)
        design = _DenseDesign(A, A.T @ A if loss.unit_curvature else None, d)
    elif isinstance(design, tuple):
        design = _DenseDesign(design[0], design[1], d)
    D = design

    def objective(D_: _DenseDesign | _MaskedDesign, u_: np.ndarray, k_: int) -> float:
        return float(loss.value_on(NUMPY, D_.fit(u_), y)) + lam * float(np.linalg.norm(u_.reshape(k_, d), axis=1).sum())

    it = 0
    converged = False
    F = objective(D, u, len(S))
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
        z = D.fit(u)
        g_f, w = loss.grad_on(NUMPY, z, y), loss.curvature_on(NUMPY, z, y)
        grad = D.adjoint(g_f) + lam * uh.reshape(-1)
        gmax = float(np.abs(grad).max())
        if gmax <= gtol * lam:  # stationary: no factorization needed
            converged = True
            break
        if gmax >= 0.5 * gmax_prev:  # unguarded full steps stopped helping: precision floor
            u = u_prev
            break
        try:
            step = D.solve(np.asarray(w, dtype=np.float64), nr, uh, lam, grad)
        except np.linalg.LinAlgError:
            break
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
            keep = ratio < max(1.0, drop * rmax)
            S, u = S[keep], Ub[keep].reshape(-1).copy()
            D = D.keep(keep)
            F = objective(D, u, len(S))
            gmax_prev = float("inf")
            continue
        if dec <= rtol * max(abs(F), 1e-300):
            # quadratic-convergence regime: the decrease of F is below its rounding, so the Armijo
            # test is meaningless; take the full step and judge it by the gradient (above)
            u_prev, gmax_prev = u, gmax
            u = u - step
            F = objective(D, u, k)
            continue
        gmax_prev = float("inf")
        t = 1.0
        while True:
            un = u - t * step
            Fn = objective(D, un, k)
            if Fn <= F - 1e-4 * t * dec or t < 1e-12:
                break
            t *= 0.5
        if Fn > F:  # no decrease although the decrement is well above rounding: give up
            break
        u, F = un, Fn
    return S, u.reshape(len(S), d), it, converged, D


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
        ``"certified"``, ``"too_large"``, ``"no_violated_group"``, ``"max_rounds"``,
        ``"max_iter"`` (the Newton iteration budget), ``"cycling"`` (the rounds cycled and the
        groups they visited are too many for the block interior point),
        ``"cycling, then the block interior point: <its reason>"`` or, for a loss with an outlier
        split, ``"the block interior point (outlier split): <its reason>"``.
    rounds, newton_iterations, working_set : int
        Column-generation rounds, Newton iterations over all rounds (with the block interior
        point's rounds and iterations after cycling), final support size.
    history : list of dict
        One entry per round (``iter``, ``time``, ``objective``, ``rel_gap``).
    cycling : bool
        The Newton rounds cycled and the block interior point took over (see
        :func:`solve_gated_active_set`).
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
    cycling: bool = False
    #: the dual point of the best certificate when the block interior point found it (possibly its
    #: own dual candidate, not :math:`-\nabla f` at ``U``); None otherwise
    dual_point: np.ndarray | None = None


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


def newton_step_flops(n: int, k: int, d: int, quadratic: bool) -> tuple[float, float, float]:
    r"""Flops of one restricted Newton step on ``k`` groups: ``(dense, dense_setup, woodbury)``.

    * dense: a Cholesky factorization of the ``k d' x k d'`` Hessian, :math:`(kd')^3/3`, plus the
      weighted Gram matrix :math:`2n(kd')^2` for a loss other than the squared one;
      ``dense_setup`` is the Gram matrix :math:`2n(kd')^2` formed once per support (squared loss);
    * woodbury (:func:`woodbury_newton_step`): :math:`3n^2k + n^3/3 + nk^2 + k^3/3` plus the
      refinement products :math:`12nkd'`.
    """
    m = float(k * d)
    dense = m ** 3 / 3.0 + (0.0 if quadratic else 2.0 * n * m * m)
    setup = 2.0 * n * m * m if quadratic else 0.0
    wood = 3.0 * n * n * k + n ** 3 / 3.0 + float(n) * k * k + k ** 3 / 3.0 + 12.0 * n * k * d
    return dense, setup, wood


def choose_linear_algebra(n: int, k: int, d: int, quadratic: bool, *, max_vars: int = 1500,
                          max_design: int = 20_000_000, max_rows: int = MAX_WOODBURY_ROWS,
                          steps: int = 5, allowed: str = "auto") -> str | None:
    r"""``"dense"``, ``"woodbury"`` or None (too large for both): the cheaper of the restricted Newton
    solves over ``steps`` steps (:func:`newton_step_flops`) among those within their limits --
    dense: ``k d' <= max_vars`` and ``n k d' <= max_design`` (the explicit design); Woodbury:
    ``n <= max_rows`` and ``k <= max_rows`` (the ``n x n`` and ``k x k`` factorizations).
    ``allowed="dense"`` / ``"woodbury"`` considers that one only."""
    dense, setup, wood = newton_step_flops(n, k, d, quadratic)
    ok_dense = k * d <= max_vars and n * k * d <= max_design and allowed in ("auto", "dense")
    ok_wood = n <= max_rows and k <= max_rows and allowed in ("auto", "woodbury")
    if ok_dense and (not ok_wood or setup + steps * dense <= steps * wood):
        return "dense"
    return "woodbury" if ok_wood else None


def polish_step_flops(n: int, k: int, d: int, quadratic: bool, *, max_vars: int = 1500,
                      max_design: int = 20_000_000, max_rows: int = MAX_WOODBURY_ROWS) -> float:
    """Flops of one Newton step of the polish on ``k`` groups by the linear algebra
    :func:`choose_linear_algebra` picks (the dense Gram matrix spread over five steps); ``inf``
    when the support is too large for both."""
    mode = choose_linear_algebra(n, k, d, quadratic, max_vars=max_vars, max_design=max_design, max_rows=max_rows)
    if mode is None:
        return float("inf")
    dense, setup, wood = newton_step_flops(n, k, d, quadratic)
    return dense + setup / 5.0 if mode == "dense" else wood


#: :func:`handover_rule`: Newton steps charged to a polish started from a rough R-FISTA point.
#: Polishes from rough points took 20-70 steps on the dense supports of ``bench/bench_matrix.py``
#: and 4-15 on sparse ones; those dense cells hand over at the same iteration for any value from
#: 5 to 40 (their R-FISTA tail is far longer), while on small problems, where a Newton step costs
#: 0.1-0.3 ms, a smaller charge hands over hundreds of iterations earlier (iris, P = 100,
#: lam = 1e-2 lam_max: 634 -> 72 R-FISTA iterations, 19 -> 6 ms). 15 steps with 0.3 ms of overhead
#: each (below) was the fastest of the pairs tried (40 / 1 ms, 15 / 1 ms, 15 / 0.3 ms, 15 / 0.15 ms,
#: 5 / 1 ms) over the 15 C-GReLU cells of the matrix.
POLISH_NEWTON_STEPS = 15.0
#: :func:`handover_rule`: R-FISTA iterations before the first hand-over test.
HANDOVER_MIN_ITERATIONS = 30
#: Time model of the first-order phase and the polish (one core of the benchmark machine), used by
#: :func:`handover_rule` and the cost models of :mod:`convexnn.solvers.gated_ipm`: flop rate of the
#: Newton steps' dense kernels, seconds of overhead per Newton step (line search, certificate, column
#: generation, spread over the steps); R-FISTA's rate for its masked products counted as
#: ``4 n d' P`` per iteration (its working sets touch fewer groups), and its overheads per iteration
#: and per pattern of its working set (measured 20 us at P = 6, 90 us at P = 100).
_NEWTON_FLOP_RATE = 2.0e10
_NEWTON_STEP_SECONDS = 3e-4
_FISTA_FLOP_RATE = 3.0e10
_FISTA_ITER_SECONDS = 2e-5
_FISTA_PATTERN_SECONDS = 7e-7


def fista_iteration_seconds(n: int, d: int, patterns: int) -> float:
    """Modelled seconds of one R-FISTA iteration over ``patterns`` patterns: its two masked products
    (``4 n d' P`` flops) plus the fixed and per-pattern overheads."""
    return 4.0 * n * d * patterns / _FISTA_FLOP_RATE + _FISTA_ITER_SECONDS + _FISTA_PATTERN_SECONDS * patterns


def newton_step_seconds(n: int, k: int, d: int, quadratic: bool) -> float:
    """Modelled seconds of one Newton step of the polish on ``k`` groups (:func:`polish_step_flops`
    plus the per-step overhead); ``inf`` when the support is too large for the polish."""
    return polish_step_flops(n, k, d, quadratic) / _NEWTON_FLOP_RATE + _NEWTON_STEP_SECONDS


def handover_rule(n: int, d: int, P: int, quadratic: bool, expected_iterations: float, target: float, *,
                  expected_support: int = 1, newton_steps: float | None = None) -> Callable[..., bool]:
    r"""When R-FISTA should stop and hand C-GReLU over to the Newton polish before its gap reaches
    ``target`` (the usual hand-over gap).

    R-FISTA identifies a support cheaply, but its linear rate is slow when the support is dense
    (small :math:`\lambda`); the polish's column generation corrects a rough support in a few
    rounds. The returned ``handover(iterations, k, rel_gap, working_set=P)`` is called at
    R-FISTA's gap checks. The iterations still needed are estimated by the model
    ``expected_iterations`` (:func:`convexnn.solvers.gated_ipm.fista_iterations` of
    :math:`\lambda_{\max}/\lambda`, fitted on squared-loss problems); for other losses also
    by extrapolating the relative gap log-linearly from the first check to ``target``, and the
    smaller estimate counts (logistic fits converge faster: a fast start means no hand-over).
    It is True when those iterations -- :math:`4nd'|W|` flops each (one forward and one adjoint
    masked product over the working set :math:`W`, at least ``expected_support`` patterns) plus
    overheads -- would take longer than
    ``newton_steps`` (:data:`POLISH_NEWTON_STEPS`) Newton steps of the polish on
    :math:`\max(k, \text{expected\_support})` groups (``k`` nonzero now;
    :func:`newton_step_seconds`), or when the iterations already spent
    took that long (rent or buy: the first-order phase never costs much more than a polish from
    a rough start). The time model is deterministic (flop counts, not clocks): the same problem
    hands over at the same iteration. A support too large for the polish never hands over; nor
    does a check before :data:`HANDOVER_MIN_ITERATIONS`.

    Parameters
    ----------
    n, d, P : int
        Rows, columns of :math:`\tilde X` (``d'``) and patterns.
    quadratic : bool
        Squared loss (unit curvature).
    expected_iterations : float
        Modelled R-FISTA iterations to ``target``.
    target : float
        The hand-over relative gap R-FISTA would otherwise stop at.
    expected_support : int
        Modelled support size (:func:`convexnn.solvers.gated_ipm.support_size`).
    newton_steps : float, optional
        Newton steps of a polish from a rough start (default :data:`POLISH_NEWTON_STEPS`).

    Returns
    -------
    callable
        ``handover(iterations, k, rel_gap, working_set=None) -> bool`` for
        :func:`convexnn.solvers.fista.solve_gated`.
    """
    steps = POLISH_NEWTON_STEPS if newton_steps is None else float(newton_steps)
    hist: list[tuple[int, float]] = []

    def handover(iterations: int, k: int, rel_gap: float, working_set: int | None = None) -> bool:
        if not (rel_gap > 0.0 and np.isfinite(rel_gap)):
            return False
        hist.append((iterations, float(np.log(rel_gap))))
        if iterations < HANDOVER_MIN_ITERATIONS or rel_gap <= target:
            return False
        polish = steps * newton_step_seconds(n, max(k, expected_support, 1), d, quadratic)
        if not np.isfinite(polish):
            return False
        ws = P if working_set is None else working_set
        if iterations * fista_iteration_seconds(n, d, ws) >= polish:
            return True
        remaining = expected_iterations - iterations
        if not quadratic:  # the model was fitted on squared-loss cells: the extrapolation as well
            it0, lg0 = hist[0]
            rate = (lg0 - hist[-1][1]) / max(iterations - it0, 1)
            if rate > 0.0:
                remaining = min(remaining, (hist[-1][1] - float(np.log(target))) / rate)
        # the iterations to come run on a working set at least as large as the expected support
        return remaining * fista_iteration_seconds(n, d, max(ws, min(P, expected_support))) >= polish

    return handover


@one_blas_thread
def solve_gated_active_set(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: str | Loss,
                           U0: np.ndarray, *, tol: float = 1e-8, max_rounds: int = 20,
                           max_vars: int = 1500, max_design: int = 20_000_000,
                           max_rows: int = MAX_WOODBURY_ROWS, linear_algebra: str = "auto",
                           max_iterations: int | None = None, t0: float | None = None,
                           iterations0: int = 0, ipm_first: bool = False) -> GatedPolishResult:
    r"""Newton polish on the support of ``U0`` with column generation and a global certificate.

    **The Huber loss** (a loss with :meth:`~convexnn.formulations.losses.Loss.outlier_split`) has no
    curvature on the samples in its linear tails, where Newton steps along its Hessian cycle: a
    support of at most ``max_vars`` variables goes to the block interior point at once (its exact
    split form; on 28 held-out C-GReLU Huber programs 2.1 s against 10.2 s in total, one of them
    certified where R-FISTA had run to ``max_iter`` after the cycling Newton rounds; on 30 others
    1.7 s against 1.8 s).

    **Cycling.** On degenerate programs (nearly parallel groups: one-dimensional data, duplicated
    rows, ``n`` below :math:`|\mathcal S| d'`) the overshoot rule of the Newton step can drop groups
    the optimum needs, and the next round re-adds them: the supports cycle without converging.
    When Newton returns a support it returned before without progress, or rounds keep re-adding
    dropped groups without progress (``_CHURN_ROUNDS``, ``_STALL_ROUNDS``, ``_PROGRESS``), the block
    interior point (:func:`convexnn.solvers.gated_ipm.solve_gated_ipm`, which keeps every group of
    its working set) solves the program from all the groups the rounds visited, with its own
    column generation and the same global certificate, when they hold at most ``max_vars``
    variables or one of its iterations on them costs at most ``_HANDOVER_FLOPS``; otherwise the
    polish stops (``reason="cycling"``) and the caller resumes R-FISTA.

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
        Largest restricted system ``|S| d'`` solved by a dense Cholesky factorization (it costs
        :math:`(|S| d')^3/3` flops).
    max_design : int
        Largest explicit restricted design :math:`A_{\mathcal S}` in entries, ``n |S| d'`` (8 bytes
        each), for the dense factorization.
    max_rows : int
        Largest ``n`` and ``|S|`` for the Sherman--Morrison--Woodbury solve
        (:func:`woodbury_newton_step`: ``n x n`` and ``|S| x |S|`` factorizations). A support
        within neither the dense nor the Woodbury limits stops the polish (``reason="too_large"``).
    linear_algebra : {"auto", "dense", "woodbury"}
        How the Newton systems are solved; ``"auto"``: the cheaper within its limits by the flop
        counts of :func:`newton_step_flops` (:func:`choose_linear_algebra`); ``"dense"`` /
        ``"woodbury"``: that one only (within its limits).
    max_iterations : int, optional
        Budget of Newton iterations over all rounds (``reason="max_iter"`` when spent).
    t0 : float, optional
        ``time.perf_counter()`` origin of the history's times.
    iterations0 : int
        Iteration count of the first-order phase (history numbering).
    ipm_first : bool
        No Newton rounds: the block interior point solves the program over all ``P`` groups at
        once (its cost is bounded, 10-30 iterations; the caller asks for it when ``U0`` is a rough
        guess on a program of at most :data:`convexnn.solvers.gated_ipm.MAX_VARS` variables, see
        :data:`convexnn.solvers.first_order.IPM_FIRST_GAP`). ``reason`` is then ``"certified"`` or
        ``"the block interior point over all groups: <its reason>"``.

    Returns
    -------
    GatedPolishResult
        ``U`` is the best certified point seen (lowest relative gap; ``U0`` with
        ``rel_gap = inf`` when no round ran); ``reason`` is
        ``"certified"``, ``"too_large"``, ``"no_violated_group"``, ``"max_rounds"`` or
        ``"max_iter"``.
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
    handed_over = False
    seen: set[frozenset] = set()  # the supports Newton returned (a repeat: the rounds cycle)
    ever = set(S.tolist())  # every group that was in the working set
    gone: set[int] = set()  # groups Newton dropped
    churn = 0  # rounds that re-added a group Newton had dropped
    stall = 0  # rounds since the last progress (a larger support kept by Newton, or a 10% smaller gap)
    flat = 0  # rounds since the last 10% smaller gap
    kept_max, gap_best = 0, float("inf")
    best_dual = None  # the dual point of an interior point's certificate, when it is the best
    if linear_algebra not in ("auto", "dense", "woodbury"):
        raise InputError(f"linear_algebra must be 'auto', 'dense' or 'woodbury'; got {linear_algebra!r}.")
    n = Xa.shape[0]
    design: _DenseDesign | _MaskedDesign | None = None
    gtol = 1e-9  # Newton stationarity target (relative to lam), tightened when the certificate asks for it
    viol_out = 0.0

    def hand_over(work: np.ndarray, label: str) -> str:
        """The block interior point (its own column generation, the same certificate) from ``work``;
        its best certificate joins the polish's; returns the stopping reason."""
        nonlocal handed_over, newton_its, rounds, best, bestU, best_dual, S
        from convexnn.solvers.gated_ipm import solve_gated_ipm

        ipm = solve_gated_ipm(Xa, masks, y, lam, loss, tol=tol, work0=work, t0=t0,
                              max_iterations=None if max_iterations is None else max_iterations - newton_its)
        handed_over = True
        for h in ipm.history:  # h["iter"]: the interior point's iterations so far
            history.append({"iter": iterations0 + newton_its + int(h["iter"]), "time": h["time"],
                            "objective": h["objective"], "rel_gap": h["rel_gap"]})
        newton_its += ipm.ipm_iterations
        rounds += ipm.rounds
        g = ipm.gap
        if g.rel_gap < best[2]:
            best, bestU = (g.primal, g.dual, g.rel_gap, None, None), ipm.U.copy()
            best_dual = np.asarray(g.dual_point, dtype=np.float64)
            S = np.flatnonzero(np.linalg.norm(ipm.U, axis=1) > 0)
        if ipm.converged:
            return "certified"
        return "max_iter" if ipm.reason == "max_iter" else f"{label}: {ipm.reason}"

    split_first = loss.outlier_split() is not None and 0 < len(S) and len(S) * d <= max_vars
    if split_first:
        # the Huber loss has no curvature on its outliers: Newton steps along its Hessian cycle there
        # (held-out programs: one ran R-FISTA to max_iter after them), while the block interior point
        # solves its exact split form (convexnn.solvers.block_ipm)
        reason = hand_over(S, "the block interior point (outlier split)")
    elif ipm_first:
        reason = hand_over(np.arange(P), ALL_GROUPS_IPM)
    while rounds < max_rounds and not handed_over:
        mode = choose_linear_algebra(n, len(S), d, bool(loss.unit_curvature), max_vars=max_vars,
                                     max_design=max_design, max_rows=max_rows, allowed=linear_algebra)
        if mode is None:
            reason = "too_large"
            break
        budget = 50 if max_iterations is None else min(50, max_iterations - newton_its)
        if budget <= 0:
            reason = "max_iter"
            break
        if design is not None and design.kind != mode:
            design = None
        if mode == "woodbury" and design is None:
            design = _MaskedDesign.of(Xa, masks, S)
        rounds += 1
        # while groups outside the support are violated by viol_out (relative to lam), the
        # restricted program needs no more accuracy than a fraction of that (inexact rounds)
        S_new, US, its, _, design = _newton(Xa, masks, y, lam, loss, S, U[S], max_iter=budget, rtol=1e-12,
                                            gtol=max(gtol, _LOOSE * viol_out), design=design,
                                            drop=_DROP_FRACTION if rounds == 1 or viol_out > 0 else 0.5)
        newton_its += its
        U = np.zeros((P, d))
        U[S_new] = US
        key = frozenset(S_new.tolist())
        seen_before = key in seen
        seen.add(key)
        gone.update(set(S.tolist()) - key)
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
        gap_progress = rel < _PROGRESS * gap_best
        progress = len(S_new) > kept_max or gap_progress
        kept_max, gap_best = max(kept_max, len(S_new)), min(gap_best, rel)
        stall = 0 if progress else stall + 1
        flat = 0 if gap_progress else flat + 1
        if ((seen_before and not progress) or (churn >= _CHURN_ROUNDS and stall >= _STALL_ROUNDS)
                or flat >= _FLAT_ROUNDS):
            # the rounds cycle: the overshoot rule keeps dropping groups the optimum needs
            # (degenerate programs, e.g. n < |S| d' with nearly parallel groups). The block interior
            # point, which keeps every group of its working set, takes over from all the groups the
            # rounds visited when that program is small; otherwise the caller resumes R-FISTA.
            reason = "cycling"
            flops = ipm_iteration_flops(n, len(ever), d, bool(loss.unit_curvature))[0]
            if len(ever) * d <= max_vars or flops <= _HANDOVER_FLOPS:
                reason = hand_over(np.array(sorted(ever)), CYCLED_TO_IPM)
            break
        outside = np.setdiff1d(np.arange(P), S)
        viol = outside[c[outside] > lam * (1.0 + _ADD_RTOL)]
        viol_out = float(c[viol].max()) / lam - 1.0 if viol.size else 0.0
        if viol.size == 0:
            if gtol > 1e-15:  # the support is right: only the restricted accuracy is missing
                gtol = max(gtol * 1e-3, 1e-15)
                continue
            reason = "no_violated_group"
            break
        viol = viol[np.argsort(-c[viol], kind="stable")][: max(10, len(S))]
        # one proximal-gradient step of each new block from zero (step 1 / ||A_i||^2)
        A_add = _block_design(Xa, masks, viol)
        G = A_add.reshape(n, len(viol), d)  # G[:, j, :] = A_{viol[j]}
        Li = np.array([np.linalg.norm(G[:, j, :], 2) ** 2 for j in range(len(viol))])
        B = np.einsum("n,nmd->md", theta, G)
        U[viol] = -(1.0 - lam / c[viol])[:, None] * B / np.maximum(Li, 1e-300)[:, None]
        # the new groups go last: the restricted design grows by their columns (no rebuild)
        design = design.extend(A_add, masks[:, viol])
        S = np.concatenate([S, viol])
        ever.update(viol.tolist())
        churn += bool(gone.intersection(viol.tolist()))
    primal, dual, rel, _, _ = best
    return GatedPolishResult(bestU, primal, dual, rel, rel <= tol, reason, rounds, newton_its, len(S), history,
                             cycling=reason.startswith("cycling") or (handed_over and not (split_first or ipm_first)),
                             dual_point=best_dual)
