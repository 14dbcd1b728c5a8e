r"""Active-set polish with a global certificate for C-ReLU (column generation over blocks).

C-ReLU over the patterns :math:`D_1, \dots, D_P` (Mishkin, Sahiner & Pilanci (ICML 2022) eq. (C-ReLU); Mishkin & Pilanci (ICML 2023); Mishkin (PhD thesis, Stanford) bonus slides) is

.. math::

    \min_{v_i, w_i \in \mathcal K_i}\ f\Big(\sum_i D_i X_a (v_i - w_i)\Big)
    + \lambda\sum_i \big(\|v_i\|_2 + \|w_i\|_2\big),\qquad
    \mathcal K_i = \{u : A_i u \ge 0\},\ A_i = (2D_i - I)X_a .

Call a *block* a pair :math:`(i, \sigma)`: :math:`\sigma = +1` is :math:`v_i`, :math:`\sigma = -1`
is :math:`w_i`. At the optimum only a few blocks are nonzero (group sparsity), so the program
restricted to a *working set* :math:`\mathcal W` of blocks (all other blocks fixed to zero) is
small. Its Lagrange dual, written with :math:`v = -\nabla f(\hat y)` as in the duality module
(Mishkin & Pilanci (ICML 2023); Ergen & Pilanci (ICML 2021) eq. (6)), is

.. math::

    \max_v\ -f^*(-v)\quad\text{s.t.}\quad
    s_{i\sigma}(v) := \min_{\rho \ge 0}\big\|\sigma X_a^\top D_i v + A_i^\top\rho\big\|_2
    = \big\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\big\|_2 \le \lambda
    \quad \forall (i, \sigma),

(Moreau: the polar of :math:`\mathcal K_i` is :math:`\{-A_i^\top\rho: \rho\ge 0\}`), and the *full*
dual has the same constraint for **all** blocks. Hence, for the primal point :math:`(V, W)` of a
restricted solve with prediction :math:`\hat y`:

1. :math:`v = -\nabla f(\hat y)` is scaled into the full dual feasible set by
   :math:`c \le \lambda / s(v)`, :math:`s(v) = \max_{i, \sigma} s_{i\sigma}(v)`, computed by
   :func:`convexnn.duality.cones.cone_support` (batched half-space bounds + NNLS; every
   inexact NNLS only *over*-estimates :math:`s`, so the bound stays valid);
   :func:`convexnn.duality.bounds.best_scale` picks the best such :math:`c`;
2. :math:`P(V, W) - \big(-f^*(-cv)\big) \ge P(V, W) - P^\star` is a certified gap over all
   :math:`P` patterns (up to the cone violation of :math:`(V, W)`, reported separately);
3. a block outside :math:`\mathcal W` with :math:`s_{i\sigma}(v) > \lambda` is a violated dual
   constraint: the restricted optimum is not optimal for the full program (KKT: the zero block's
   subdifferential condition fails). The most violated blocks join :math:`\mathcal W` and the
   restricted program is solved again (a cutting-plane / column-generation step, as in the
   working sets of Blitz and Celer, and in Mishkin, Sahiner & Pilanci (ICML 2022) Sec. 4's termination by min-norm subgradient).

The loop terminates: every round that does not stop adds at least one block that is not in
:math:`\mathcal W`, and a block leaves :math:`\mathcal W` (when it is zero in the restricted
solution, ``prune``) at most once, so there are at most :math:`4P` rounds; with all :math:`2P`
blocks the restricted program is the full one.

The restricted programs are small (``|W| d'`` variables, ``|W| n`` cone rows instead of
``2 P n``) and are solved to high accuracy by the block-structured primal-dual interior point of
:mod:`convexnn.solvers.block_ipm` (Nesterov--Todd scaling, Mehrotra predictor-corrector): each of
its iterations factorizes one dense ``|W| d' x |W| d'`` matrix, and the ``|W| n`` cone rows enter
only block-diagonal ``d' x d'`` terms, where a general conic solver factorizes the sparse KKT
system with all the rows. Clarabel remains available (``restricted="clarabel"``) and takes over
when the interior point fails numerically: the squared loss directly as a conic QP
(:func:`_clarabel_squared`), every other loss through CVXPY (its ``Loss.cvx`` form; exponential
cones for the logistic loss). This is what makes the polish cheap: the optimum typically has a
few dozen nonzero blocks out of hundreds.

The initial working set comes from a *screening* dual point (the C-GReLU solution with the same
patterns, cheap with R-FISTA, or a warm start): the (at most ``screen_limit``) most promising
blocks with :math:`s_{i\sigma}(v_{\text{screen}}) \ge \tau\lambda` (:math:`\tau` =
``screen_level``), plus the support of the warm start.

References: Mishkin, Sahiner & Pilanci (ICML 2022) (Mishkin, Sahiner, Pilanci 2022: C-ReLU, termination by the min-norm
subgradient), Mishkin & Pilanci (ICML 2023) / Ergen & Pilanci (ICML 2021) eq. (6) (the cone-constrained dual), Mishkin (PhD thesis, Stanford) bonus slides (AL fallback);
Johnson & Guestrin, "Blitz" (ICML 2015) and Massias et al., "Celer" (ICML 2018) for working sets.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from convexnn.duality.bounds import best_scale
from convexnn.duality.cones import cone_support, project_cone
from convexnn.formulations.blocks import block_fit
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, SquaredLoss
from convexnn.gap import relative_gap
from convexnn.solvers.backend import get_backend
from convexnn.solvers.block_ipm import solve_block_ipm, warm_start
from convexnn.solvers.gap import relu_violation
from convexnn.solvers.operators import MaskedDesign

__all__ = ["PolishCertificate", "ActiveSetResult", "RestrictedSolution", "certify_relu", "block_values",
           "screen_blocks", "scan_blocks", "solve_restricted", "solve_relu_active_set", "violation"]

_ADD_RTOL = 1e-9  # a block is violated when s_i > lam * (1 + _ADD_RTOL)
_FAER_MIN_VARS = 800  # restricted squared-loss solves with more variables use Clarabel's faer LDL
#: The block interior point's answer is used when its relative gap and residuals are below this
#: (its rounding floor is typically 1e-12 .. 1e-9); otherwise the restricted program goes to Clarabel.
_IPM_ACCEPT = 1e-7


@dataclass
class PolishCertificate:
    r"""Global certificate of a C-ReLU point over all patterns (see the module docstring).

    Attributes
    ----------
    primal : float
        :math:`P(V, W)`.
    dual : float
        :math:`-f^*(-c\,v)`, a lower bound on the optimum (for cone-feasible competitors).
    gap, rel_gap : float
        ``primal - dual`` and :func:`convexnn.gap.relative_gap`.
    s : float
        :math:`s(v)`, the largest dual-constraint value over all blocks (valid upper bound).
    scale : float
        The dual scaling :math:`c \in [0, \lambda / s]`.
    dual_point : ndarray, shape (n,)
        :math:`c\,v` with :math:`v = -\nabla f(\hat y)` (the duality module's convention).
    bounds : ndarray, shape (P,)
        Cheap per-pattern upper bounds of :math:`\max_\sigma s_{i\sigma}(v)` (from
        :func:`~convexnn.duality.cones.cone_support`).
    v : ndarray, shape (n,)
        The unscaled candidate :math:`-\nabla f(\hat y)`.
    n_nnls : int
        NNLS problems solved by the certificate.
    """

    primal: float
    dual: float
    gap: float
    rel_gap: float
    s: float
    scale: float
    dual_point: np.ndarray
    bounds: np.ndarray
    v: np.ndarray
    n_nnls: int


def _primal(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss, V: np.ndarray,
            W: np.ndarray) -> tuple[float, np.ndarray]:
    fit = block_fit(Xa, masks, V - W)
    reg = float(np.linalg.norm(V, axis=1).sum() + np.linalg.norm(W, axis=1).sum())
    return loss.value(fit, y) + lam * reg, fit


def violation(Xa: np.ndarray, masks: np.ndarray, V: np.ndarray, W: np.ndarray) -> tuple[float, float]:
    r"""Absolute and relative cone violation of ``(V, W)`` in numpy float64: the numpy instance of
    :func:`convexnn.solvers.gap.relu_violation`."""
    return relu_violation(MaskedDesign(Xa, masks, get_backend()), V, W)


def certify_relu(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss, V: np.ndarray,
                 W: np.ndarray, *, exact: bool = True) -> PolishCertificate:
    r"""Certified duality gap of the C-ReLU point ``(V, W)`` over **all** patterns of ``masks``.

    Uses the cone-aware dual of the module docstring: :math:`v = -\nabla f(\hat y)`, the exact
    :math:`s(v)` by :func:`~convexnn.duality.cones.cone_support` and the best dual scaling by
    :func:`~convexnn.duality.bounds.best_scale`.

    Parameters
    ----------
    Xa : ndarray, shape (n, d')
    masks : ndarray of bool, shape (n, P)
    y : ndarray, shape (n,)
    lam : float
    loss : Loss
    V, W : ndarray, shape (P, d')
    exact : bool
        False: use the cheap half-space upper bounds of :math:`s(v)` only (no NNLS; a valid but
        looser certificate, used between rounds of the working-set loop).

    Returns
    -------
    PolishCertificate
    """
    primal, fit = _primal(Xa, masks, y, lam, loss, V, W)
    v = -np.asarray(loss.grad(fit, y), dtype=np.float64)
    cs = cone_support(Xa, masks, v, exact=exact)
    return _certificate(primal, v, y, lam, loss, cs.value, cs.bounds, cs.n_nnls)


def _certificate(primal: float, v: np.ndarray, y: np.ndarray, lam: float, loss: Loss, s: float,
                 bounds: np.ndarray, n_nnls: int) -> PolishCertificate:
    r"""The certificate of a primal value and a candidate ``v`` with a valid upper bound ``s`` of :math:`s(v)`."""
    cmax = lam / s if s > 0 else np.inf
    c, dual = best_scale(loss, v, y, cmax)  # restricted to the conjugate's domain (logistic)
    gap = primal - dual
    rel = relative_gap(primal, dual)
    return PolishCertificate(primal, float(dual), gap, rel, s, c, c * v, bounds, v, n_nnls)


def scan_blocks(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, lam: float, active: np.ndarray,
                limit: int) -> tuple[np.ndarray, float | None, np.ndarray, int]:
    r"""One pass that finds violated blocks outside the working set *and* the exact :math:`s(v)`.

    Blocks :math:`(i, \sigma)` are visited in decreasing order of their cheap half-space upper
    bound :math:`b_{i\sigma}` (:func:`_sign_bounds`, the bound of
    :func:`~convexnn.duality.cones.cone_support` per sign), down to
    :math:`\lambda(1 + 10^{-9})`; each gets an upper bound of :math:`s_{i\sigma}(v)` that is exact
    when above that level (:func:`_block_value`: a small NNLS on the most violated rows, then the
    full NNLS). The pass stops early once ``limit`` violated blocks outside ``active`` are found
    (the loop will go on; no exact :math:`s` is needed). Otherwise every block that could exceed
    the level was examined, and

    .. math:: s(v) \le \max\big(\max_{\text{examined}} \min(\hat s_{i\sigma}, b_{i\sigma}),\ \max_{\text{not examined}} b_{i\sigma}\big)

    is a valid upper bound (the same quantity as the branch and bound of ``cone_support``, which
    this pass replaces in the working-set loop so that no NNLS is solved twice).

    Returns
    -------
    (blocks, s, bounds, n_nnls)
        ``blocks`` of shape ``(k, 2)`` (rows ``(sign_row, i)``, most violated first); ``s`` the
        valid upper bound of :math:`s(v)`, or None after an early stop.
    """
    ub = _sign_bounds(Xa, masks, v)  # (2, P)
    bounds = ub.max(axis=0)
    level = lam * (1.0 + _ADD_RTOL)
    rn = np.linalg.norm(Xa, axis=1)
    rn = np.where(rn > 0, rn, 1.0)
    flat = ub.ravel()
    order = np.argsort(-flat, kind="stable")
    P = masks.shape[1]
    best = 0.0
    found: list[tuple[float, int, int]] = []
    n_nnls = 0
    stopped = False
    rest = 0.0
    for pos, k in enumerate(order):
        if flat[k] <= level:
            rest = float(flat[k])
            break
        sgn, i = divmod(int(k), P)
        m = np.asarray(masks[:, i], dtype=bool)
        g = (1.0 - 2.0 * sgn) * (Xa.T @ np.where(m, v, 0.0))
        val = min(_block_value(Xa, rn, np.where(m, 1.0, -1.0), g, level), float(flat[k]))
        n_nnls += 1
        best = max(best, val)
        if val > level and not active[sgn, i]:
            found.append((val, sgn, i))
            if len(found) >= limit and pos + 1 < len(order):
                stopped = True
                break
    found.sort(key=lambda t: -t[0])
    blocks = np.array([[sg, i] for _, sg, i in found], dtype=np.int64).reshape(-1, 2)
    return blocks, (None if stopped else max(best, rest)), bounds, n_nnls


def _block_value(Xa: np.ndarray, rn: np.ndarray, sg: np.ndarray, g: np.ndarray, level: float) -> float:
    r"""An upper bound of :math:`\|\Pi_{\mathcal K}(g)\|`, exact whenever it exceeds ``level``.

    :math:`\min_{\rho \ge 0}\|g + A^\top\rho\|` with :math:`\rho` supported on a subset of rows is
    still an upper bound (any :math:`\rho \ge 0` is, see :mod:`convexnn.duality.cones`), so a
    small NNLS over the :math:`3d'` rows most violated by ``g`` decides most blocks; only when it
    stays above ``level`` is the full NNLS (:func:`~convexnn.duality.cones.project_cone`) solved.
    """
    n, d = Xa.shape
    kk = min(n, 3 * d)
    if kk < n:
        marg = sg * (Xa @ g) / rn
        J = np.argpartition(marg, kk - 1)[:kk]
        u1 = float(np.linalg.norm(project_cone(Xa[J], sg[J], g)[0]))
        if u1 <= level:
            return u1
    else:
        u1 = np.inf
    return min(u1, float(np.linalg.norm(project_cone(Xa, sg, g)[0])))


def _sign_bounds(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray) -> np.ndarray:
    r"""Cheap upper bounds of :math:`s_{i\sigma}(v)` per sign, shape ``(2, P)``.

    The single-half-space bound of :func:`~convexnn.duality.cones.cone_support`
    (:math:`\|\Pi_H(g)\|^2 = \|g\|^2 - \max_j (a_j^\top g)_-^2/\|a_j\|^2`, :math:`H \supseteq \mathcal K_i`),
    kept separately for :math:`\sigma = \pm 1` (``cone_support`` returns their maximum).
    """
    rn = np.linalg.norm(Xa, axis=1)
    Xn = Xa / np.where(rn > 0, rn, 1.0)[:, None]
    Mb = np.asarray(masks, dtype=bool)
    G = (Xa * v[:, None]).T @ Mb.astype(np.float64)  # (d', P): X_a^T D_i v
    g2 = np.einsum("ij,ij->j", G, G)
    Z = Xn @ G
    np.negative(Z, out=Z, where=~Mb)
    out = np.empty((2, Mb.shape[1]))
    out[0] = np.sqrt(np.maximum(g2 - np.minimum(Z.min(axis=0), 0.0) ** 2, 0.0))
    out[1] = np.sqrt(np.maximum(g2 - np.maximum(Z.max(axis=0), 0.0) ** 2, 0.0))
    return out


def block_values(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    r"""Exact :math:`s_{i\sigma}(v) = \|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\|` for patterns ``idx``.

    Returns an array of shape ``(len(idx), 2)``: column 0 is :math:`\sigma = +1` (block
    :math:`v_i`), column 1 is :math:`\sigma = -1` (block :math:`w_i`). One NNLS each
    (:func:`~convexnn.duality.cones.project_cone`).
    """
    out = np.zeros((len(idx), 2))
    for k, i in enumerate(np.asarray(idx, dtype=np.int64)):
        m = np.asarray(masks[:, i], dtype=bool)
        g = Xa.T @ np.where(m, v, 0.0)
        sg = np.where(m, 1.0, -1.0)
        out[k, 0] = float(np.linalg.norm(project_cone(Xa, sg, g)[0]))
        out[k, 1] = float(np.linalg.norm(project_cone(Xa, sg, -g)[0]))
    return out


def screen_blocks(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, level: float,
                  bounds: np.ndarray | None = None, exclude: np.ndarray | None = None,
                  limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Blocks with :math:`s_{i\sigma}(v) \ge` ``level``, most violated first.

    The cheap per-sign half-space bounds (:func:`_sign_bounds`, capped by ``bounds`` when given)
    discard most blocks; the rest get :func:`_block_value` (exact when above ``level``).

    Parameters
    ----------
    Xa, masks, v
        Data, patterns (``(n, P)``) and dual candidate ``(n,)``.
    level : float
    bounds : ndarray, shape (P,), optional
        Valid per-pattern upper bounds (e.g. :attr:`PolishCertificate.bounds`).
    exclude : ndarray of bool, shape (2, P), optional
        Blocks to skip (row 0: :math:`v_i`, row 1: :math:`w_i`).
    limit : int, optional
        Stop once this many blocks are found: blocks are examined in decreasing order of
        their bound, so the result holds the most promising ones (NNLS are the cost; a
        certificate never depends on this list).

    Returns
    -------
    (blocks, values)
        ``blocks`` of shape ``(k, 2)`` with rows ``(sign_row, i)`` (``sign_row`` 0 for
        :math:`v_i`, 1 for :math:`w_i`) and their values, sorted by decreasing value.
    """
    ub = _sign_bounds(Xa, masks, v)
    if bounds is not None:
        ub = np.minimum(ub, bounds[None, :])
    rn = np.linalg.norm(Xa, axis=1)
    rn = np.where(rn > 0, rn, 1.0)
    P = masks.shape[1]
    flat = ub.ravel()
    rows: list[int] = []
    cols: list[int] = []
    out: list[float] = []
    for k in np.argsort(-flat, kind="stable"):
        if flat[k] < level:
            break
        sgn, i = divmod(int(k), P)
        if exclude is not None and exclude[sgn, i]:
            continue
        m = np.asarray(masks[:, i], dtype=bool)
        g = (1.0 - 2.0 * sgn) * (Xa.T @ np.where(m, v, 0.0))
        val = _block_value(Xa, rn, np.where(m, 1.0, -1.0), g, level)
        if val >= level:
            rows.append(sgn)
            cols.append(i)
            out.append(val)
            if limit is not None and len(out) >= limit:
                break
    order = np.argsort(-np.asarray(out)) if out else np.zeros(0, dtype=np.int64)
    blocks = np.stack([np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)], axis=1)[order] \
        if out else np.zeros((0, 2), dtype=np.int64)
    return blocks, np.asarray(out)[order] if out else np.zeros(0)


@dataclass
class RestrictedSolution:
    """Output of :func:`solve_restricted` (weights of the working-set blocks, full shape)."""

    V: np.ndarray
    W: np.ndarray
    multipliers: np.ndarray
    iterations: int
    status: str
    time: float
    #: the interior point's warm-start state and its blocks (``(row, i)`` pairs), when it solved
    warm: tuple[dict, list] | None = None


def _row_scores(Xa: np.ndarray, rn: np.ndarray, sgn: np.ndarray, ref: np.ndarray) -> np.ndarray:
    r"""Normalized margins :math:`s_j x_j^\top r / \|x_j\|` of the cone rows of one block at ``ref``."""
    return sgn * (Xa @ ref) / rn


def _clarabel_squared(F: np.ndarray, y: np.ndarray, lam: float, C: Any, k: int, d: int, eps: float,
                      max_iter: int) -> tuple[np.ndarray, np.ndarray, int, str]:
    r"""The restricted squared-loss program as a conic QP, passed to Clarabel directly (no CVXPY).

    Variables :math:`(x, t)` with :math:`x = (x_b)` (``k`` blocks of ``d``) and one epigraph
    variable per block:

    .. math::

        \min\ \tfrac12 x^\top F^\top F x - (F^\top y)^\top x + \lambda\textstyle\sum_b t_b
        \quad\text{s.t.}\quad Cx \ge 0,\ (t_b, x_b) \in \mathcal Q^{d+1}

    (the constant :math:`\tfrac12\|y\|^2` dropped). A QP objective with the small Gram matrix
    instead of an ``n``-dimensional second-order cone keeps the KKT system small.

    Returns
    -------
    (x, z, iterations, status)
        ``z`` are the multipliers of the rows of ``C`` (nonnegative).
    """
    import clarabel
    import scipy.sparse as sp

    nx = k * d
    n = F.shape[0]
    rows = C.shape[0]
    # SOC rows: s_b = (t_b, x_b), i.e. -[e_{t_b}; I_{x_b}] [x; t] + s = 0
    ridx = np.arange(k * (d + 1))
    blk, pos = np.divmod(ridx, d + 1)
    cidx = np.where(pos == 0, nx + blk, blk * d + pos - 1)
    # residual ("lifted") form when the Gram matrix F^T F (nx^2 entries) would be much larger than
    # the residual map (n nx entries)
    lifted = nx > 2 * n
    ne = nx + k + (n if lifted else 0)
    Asoc = sp.csc_matrix((-np.ones(ridx.size), (ridx, cidx)), shape=(k * (d + 1), ne))
    Acone = sp.hstack([-C, sp.csc_matrix((rows, ne - nx))])
    if lifted:
        # residual form: variables (x, t, r) with F x - r = y and objective r^T r / 2
        Pm = sp.block_diag([sp.csc_matrix((nx + k, nx + k)), sp.identity(n, format="csc")], format="csc")
        q = np.concatenate([np.zeros(nx), np.full(k, lam), np.zeros(n)])
        Aeq = sp.hstack([sp.csc_matrix(F), sp.csc_matrix((n, k)), -sp.identity(n, format="csc")])
        A = sp.vstack([Aeq, Acone, Asoc], format="csc")
        b = np.concatenate([y, np.zeros(rows + k * (d + 1))])
        cones = [clarabel.ZeroConeT(n), clarabel.NonnegativeConeT(rows)] + [clarabel.SecondOrderConeT(d + 1)] * k
    else:
        Q = F.T @ F
        Pm = sp.block_diag([sp.csc_matrix(np.triu(0.5 * (Q + Q.T))), sp.csc_matrix((k, k))], format="csc")
        q = np.concatenate([-(F.T @ y), np.full(k, lam)])
        A = sp.vstack([Acone, Asoc], format="csc")
        b = np.zeros(rows + k * (d + 1))
        cones = [clarabel.NonnegativeConeT(rows)] + [clarabel.SecondOrderConeT(d + 1)] * k
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.tol_gap_abs = st.tol_gap_rel = st.tol_feas = eps
    st.max_iter = max_iter
    # QDLDL is a scalar sparse LDL; on the dense Gram block of a large working set the supernodal
    # faer solver is several times faster (measured: 60 blocks of d'=31, 27 s -> 10 s)
    st.direct_solve_method = "faer" if nx > _FAER_MIN_VARS else "qdldl"
    sol = clarabel.DefaultSolver(Pm, q, A, b, cones, st).solve()
    x = np.asarray(sol.x, dtype=np.float64)
    status = str(sol.status)
    if x.size != ne or not np.all(np.isfinite(x)) or "Solved" not in status:
        import cvxpy as cp

        raise cp.error.SolverError(f"Clarabel returned status {status}")
    off = n if lifted else 0
    return (x[:nx], np.maximum(np.asarray(sol.z, dtype=np.float64)[off:off + rows], 0.0), int(sol.iterations),
            status)


def solve_restricted(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss,
                     active: np.ndarray, *, V_ref: np.ndarray | None = None, W_ref: np.ndarray | None = None,
                     v_ref: np.ndarray | None = None, rows_per_block: int | None = None,
                     eps: float = 1e-10, max_iter: int = 200, row_rounds: int = 30,
                     solver: str = "ipm", warm: tuple[dict, list] | None = None) -> RestrictedSolution:
    r"""Solve C-ReLU restricted to the blocks ``active`` (others fixed at zero).

    ``solver="ipm"`` (default): the block-structured primal-dual interior point of
    :mod:`convexnn.solvers.block_ipm` (one dense ``|W| d' x |W| d'`` Cholesky per iteration, the
    ``|W| n`` cone rows enter only block-diagonal terms); when it cannot reach a relative
    accuracy of :data:`_IPM_ACCEPT` (a numerical failure) the program goes to Clarabel.
    ``solver="clarabel"`` (or ``rows_per_block`` given): Clarabel, as described below.

    Blocks are stacked in one vector :math:`x = (x_b)_{b \in \mathcal W}`; the fit is the dense
    product :math:`F x` with :math:`F = [\sigma_b D_{i_b} X_a]_b` (``n x |W| d'``) and the cone rows
    are one sparse matrix. **Row generation**: each block starts with only its
    ``rows_per_block`` cone rows of smallest normalized margin at a reference direction (the
    block's current weight ``V_ref`` / ``W_ref`` when nonzero, else :math:`\sigma X_a^\top D_i v`
    for the dual candidate ``v_ref``); after each solve, the rows violated by more than
    :math:`10^{-12}\max_j|x_j^\top u|` are added (at most ``rows_per_block`` per block and round),
    until none is. The program with fewer rows is a relaxation, so a solution feasible for all
    rows solves the restricted program; the loop ends because rows are only added (and with
    all rows it is the restricted program itself). Interior-point cost grows with the rows,
    which are ``|W| n`` in all but only a few per block are active.

    Parameters
    ----------
    Xa, masks, y, lam, loss
        The C-ReLU data (``masks`` of shape ``(n, P)``).
    active : ndarray of bool, shape (2, P)
        Row 0: blocks :math:`v_i` in the working set; row 1: blocks :math:`w_i`.
    V_ref, W_ref : ndarray, shape (P, d'), optional
        Reference weights for choosing the initial rows.
    v_ref : ndarray, shape (n,), optional
        Reference dual candidate for blocks without a nonzero reference weight.
    rows_per_block : int, optional
        Initial (and per-round) rows per block; default (None) and ``n`` or more mean all rows
        from the start (no row generation). On diabetes row generation did not pay: the
        solver's cost was dominated by the dense Gram block, not by the cone rows.
    eps : float
        Gap and feasibility tolerances (relative) of the interior point / Clarabel.
    max_iter : int
        Iteration cap per solve (Clarabel); the block interior point gets ``max(max_iter, 150)``.
    row_rounds : int
        Row-generation rounds at most (after which all rows are included).
    solver : {"ipm", "clarabel"}
        Restricted solver (see above).

    Returns
    -------
    RestrictedSolution
        ``multipliers`` of shape ``(n, 2P)`` are the cone multipliers :math:`[\gamma, \zeta]` of the
        restricted solve (zero outside the working set and the generated rows), usable as an AL
        warm start; ``iterations`` sums Clarabel's iterations over the row rounds.

    Raises
    ------
    cvxpy.error.SolverError
        When Clarabel fails outright (the caller falls back to the augmented Lagrangian).
    """
    import cvxpy as cp
    import scipy.sparse as sp

    t0 = time.perf_counter()
    n, d = Xa.shape
    P = masks.shape[1]
    M = np.asarray(masks, dtype=np.float64)
    S = 2.0 * M - 1.0
    rn = np.linalg.norm(Xa, axis=1)
    rn = np.where(rn > 0, rn, 1.0)
    blocks = [(0, int(i)) for i in np.flatnonzero(active[0])] + [(1, int(i)) for i in np.flatnonzero(active[1])]
    k = len(blocks)
    V, W = np.zeros((P, d)), np.zeros((P, d))
    Gam = np.zeros((n, 2 * P))
    if k == 0:
        return RestrictedSolution(V, W, Gam, 0, "optimal", time.perf_counter() - t0)
    if solver not in ("ipm", "clarabel"):
        raise InputError(f"solver must be 'ipm' or 'clarabel'; got {solver!r}.")
    if solver == "ipm" and rows_per_block is None:
        mk, sg = masks[:, [i for _, i in blocks]], np.array([1.0 - 2.0 * b for b, _ in blocks])
        r = None
        if warm is not None:
            # warm start from an interior iterate of the previous round (kept blocks keep theirs);
            # a cold start below when it does not reach the accuracy
            r = solve_block_ipm(Xa, mk, sg, y, lam, loss, cones=True, eps=eps, max_iter=max(max_iter, 150),
                                start=warm_start(warm[0], warm[1], blocks, n, d, lam))
            if max(r.gap, r.pres, r.dres) > _IPM_ACCEPT:
                r = None
        if r is None:
            r = solve_block_ipm(Xa, mk, sg, y, lam, loss, cones=True, eps=eps, max_iter=max(max_iter, 150))
        if max(r.gap, r.pres, r.dres) <= _IPM_ACCEPT:
            for b, (row, i) in enumerate(blocks):
                (V if row == 0 else W)[i] = r.X[b]
                Gam[:, row * P + i] = r.multipliers[:, b]
            return RestrictedSolution(V, W, Gam, r.iterations, f"ipm: {r.status}", time.perf_counter() - t0,
                                      (r.state, blocks) if r.state is not None else None)
        ipm_iters = r.iterations  # a numerical failure of the interior point: Clarabel below
    else:
        ipm_iters = 0
    m = n if rows_per_block is None else int(rows_per_block)
    F = np.hstack([(1.0 - 2.0 * r) * M[:, [i]] * Xa for r, i in blocks])  # (n, k d)
    sel = np.zeros((n, k), dtype=bool)
    for b, (r, i) in enumerate(blocks):
        ref = None
        R = V_ref if r == 0 else W_ref
        if R is not None and np.any(R[i]):
            ref = R[i]
        elif v_ref is not None:
            ref = (1.0 - 2.0 * r) * (Xa.T @ (M[:, i] * v_ref))
        if ref is None or m >= n:
            sel[:, b] = True
        else:
            sel[np.argsort(_row_scores(Xa, rn, S[:, i], ref), kind="stable")[:m], b] = True
    iters = ipm_iters
    status = ""
    x = cp.Variable(k * d)
    obj = None
    if not isinstance(loss, SquaredLoss):  # the squared loss goes to Clarabel as a conic QP directly
        obj = loss.cvx(F @ x, y) + lam * cp.sum(cp.norm(cp.reshape(x, (k, d), order="C"), 2, axis=1))
    for rnd in range(row_rounds + 1):
        if rnd == row_rounds:
            sel[:] = True
        jj, bb = np.nonzero(sel)
        coef = S[jj, [blocks[b][1] for b in bb]][:, None] * Xa[jj]  # (nnz_rows, d)
        C = sp.csr_matrix((coef.ravel(), (np.repeat(np.arange(jj.size), d),
                                           (bb[:, None] * d + np.arange(d)[None, :]).ravel())),
                          shape=(jj.size, k * d))
        if obj is None:
            xv, dv, it, status = _clarabel_squared(F, y, lam, C, k, d, eps, max_iter)
        else:
            con = C @ x >= 0
            prob = cp.Problem(cp.Minimize(obj), [con])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prob.solve(solver=cp.CLARABEL, tol_gap_abs=eps, tol_gap_rel=eps, tol_feas=eps,
                           max_iter=max_iter, direct_solve_method="qdldl")
            it, status = int(getattr(prob.solver_stats, "num_iters", 0) or 0), str(prob.status)
            if x.value is None:
                raise cp.error.SolverError(f"Clarabel returned no solution (status {prob.status})")
            xv, dv = x.value, con.dual_value
        iters += it
        U = np.asarray(xv, dtype=np.float64).reshape(k, d)
        Z = Xa @ U.T  # (n, k)
        marg = np.stack([S[:, i] for _, i in blocks], axis=1) * Z
        scale = float(np.abs(Z).max()) if Z.size else 0.0
        bad = (marg < -1e-12 * scale) & ~sel
        if not bad.any():
            break
        for b in np.flatnonzero(bad.any(axis=0)):
            cand = np.flatnonzero(bad[:, b])
            sel[cand[np.argsort(marg[cand, b], kind="stable")[:m]], b] = True
    for b, (r, i) in enumerate(blocks):
        (V if r == 0 else W)[i] = U[b]
    if dv is not None:
        Gam[jj, np.array([blocks[b][0] * P + blocks[b][1] for b in bb], dtype=np.int64)] = \
            np.maximum(np.asarray(dv, dtype=np.float64).ravel(), 0.0)
    return RestrictedSolution(V, W, Gam, iters, status, time.perf_counter() - t0)


@dataclass
class ActiveSetResult:
    """Outcome of :func:`solve_relu_active_set`.

    ``blocks`` (bool, shape ``(2, P)``; row 0 the :math:`v_i`, row 1 the :math:`w_i`) is the final
    working set and ``working_set`` its size; ``multipliers`` (``(n, 2P)``) are the restricted
    solve's cone multipliers (zero outside the working set).
    """

    V: np.ndarray
    W: np.ndarray
    certificate: PolishCertificate
    violation: float
    violation_rel: float
    multipliers: np.ndarray
    working_set: int
    blocks: np.ndarray
    rounds: int
    iterations: int
    converged: bool
    reason: str
    history: list[dict[str, float]] = field(default_factory=list)


def solve_relu_active_set(
    Xa: np.ndarray,
    masks: np.ndarray,
    y: np.ndarray,
    lam: float,
    loss: Loss,
    *,
    v_screen: np.ndarray | None = None,
    V0: np.ndarray | None = None,
    W0: np.ndarray | None = None,
    tol: float = 1e-8,
    viol_tol: float = 1e-8,
    screen_level: float = 0.5,
    screen_limit: int = 16,
    max_rounds: int = 30,
    max_blocks: int | None = None,
    eps: float = 1e-10,
    eps_min: float = 1e-13,
    rows_per_block: int | None = None,
    add_limit: int = 16,
    prune: bool = True,
    iterations0: int = 0,
    t0: float | None = None,
    report: Callable[[int, float, float, float, str], None] | None = None,
    restricted: str = "ipm",
    warm_starts: bool = True,
) -> ActiveSetResult:
    r"""Active-set (column-generation) solve of C-ReLU with a global certificate.

    Parameters
    ----------
    Xa : ndarray, shape (n, d')
    masks : ndarray of bool, shape (n, P)
    y : ndarray, shape (n,)
    lam : float
    loss : Loss
        Squared or logistic (:mod:`convexnn.formulations.losses`).
    v_screen : ndarray, shape (n,), optional
        Screening dual candidate (e.g. :math:`-\nabla f` at the C-GReLU solution): blocks with
        :math:`s_{i\sigma}(v_{\text{screen}}) \ge` ``screen_level`` :math:`\lambda` start in the
        working set.
    V0, W0 : ndarray, shape (P, d'), optional
        Warm start; its nonzero blocks start in the working set, and when it is already certified
        to ``tol`` (and cone feasible to ``viol_tol``) it is returned without solving.
    tol : float
        Target certified relative gap.
    viol_tol : float
        Target relative cone violation.
    screen_level : float
        :math:`\tau` of the screening rule.
    screen_limit : int
        At most this many blocks are screened in (most promising patterns first); each later
        round adds at most ``add_limit`` violated blocks.
    max_rounds : int
        Restricted solves at most.
    max_blocks : int, optional
        Stop (``reason="too_many_blocks"``) when the working set would exceed this many blocks
        (default ``2P``, i.e. never).
    eps : float
        Tolerance of the restricted solves.
    eps_min : float
        When no block is violated but the gap is above ``tol`` (the restricted solve is the
        bottleneck, typically the exponential cones of the logistic loss), the same working set
        is solved again with ``eps`` divided by 100, down to ``eps_min``.
    rows_per_block : int, optional
        Row generation of the restricted solves (see :func:`solve_restricted`).
    add_limit : int
        Violated blocks added per round: at most ``max(add_limit, |W|)`` (the most violated
        first), so the working set can double per round.
    prune : bool
        Drop blocks that are zero in the restricted solution from the working set (each block
        at most once, so the loop still terminates); keeps the restricted programs small.
    iterations0 : int
        Iterations already spent (screening), added to the reported count.
    t0 : float, optional
        ``time.perf_counter()`` at the start of the whole solve (for the history's times).
    report : callable, optional
        ``report(iterations, objective, rel_gap, violation, extra)`` after every certificate.
    restricted : {"ipm", "clarabel"}
        Solver of the restricted programs (:func:`solve_restricted`): the block-structured
        interior point (default) or Clarabel.
    warm_starts : bool
        Start each restricted interior-point solve from an interior iterate of the previous
        round's (kept blocks keep their primal and dual iterates, new blocks start at zero on the
        central path; see :func:`convexnn.solvers.block_ipm.warm_start`), with a cold start when
        the warm one does not reach the accuracy.

    Returns
    -------
    ActiveSetResult
        ``converged`` is True when the certified relative gap is ``<= tol`` and the relative
        violation ``<= viol_tol``; otherwise ``reason`` says why the loop stopped
        (``"no_violated_block"``: the restricted solve's accuracy limits the gap;
        ``"max_rounds"``; ``"too_many_blocks"``; ``"solver_error"``).
    """
    t0 = time.perf_counter() if t0 is None else t0
    Xa = np.asarray(Xa, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    y = np.asarray(y, dtype=np.float64)
    n, d = Xa.shape
    P = masks.shape[1]
    max_blocks = 2 * P if max_blocks is None else int(max_blocks)
    active = np.zeros((2, P), dtype=bool)
    V = np.zeros((P, d)) if V0 is None else np.array(V0, dtype=np.float64)
    W = np.zeros((P, d)) if W0 is None else np.array(W0, dtype=np.float64)
    Gam = np.zeros((n, 2 * P))
    history: list[dict[str, float]] = []
    iters = int(iterations0)

    def record(cert: PolishCertificate, vr: float, rnd: int, extra: str) -> None:
        history.append({"iter": iters, "time": time.perf_counter() - t0, "objective": cert.primal,
                        "rel_gap": cert.rel_gap, "violation": vr, "round": rnd,
                        "working_set": int(active.sum())})
        if report is not None:
            report(iters, cert.primal, cert.rel_gap, vr, extra)

    cert: PolishCertificate | None = None
    va = vr = 0.0
    if V0 is not None or W0 is not None:
        active[0] |= np.linalg.norm(V, axis=1) > 0
        active[1] |= np.linalg.norm(W, axis=1) > 0
        cert = certify_relu(Xa, masks, y, lam, loss, V, W)
        va, vr = violation(Xa, masks, V, W)
        record(cert, vr, 0, "warm start")
        if cert.rel_gap <= tol and vr <= viol_tol:
            return ActiveSetResult(V, W, cert, va, vr, Gam, int(active.sum()), active, 0, iters, True, "certified",
                                  history)
        add, _ = screen_blocks(Xa, masks, cert.v, lam * screen_level, cert.bounds, exclude=active,
                               limit=screen_limit)
        active[add[:, 0], add[:, 1]] = True
    if v_screen is not None:
        add, _ = screen_blocks(Xa, masks, np.asarray(v_screen, dtype=np.float64), lam * screen_level,
                               exclude=active, limit=screen_limit)
        active[add[:, 0], add[:, 1]] = True
    if not active.any():
        # nothing screened in: the blocks most violated at the zero solution
        v0 = -np.asarray(loss.grad(np.zeros(n), y), dtype=np.float64)
        add, _ = screen_blocks(Xa, masks, v0, lam, exclude=active)
        active[add[: max(1, min(8, len(add))), 0], add[: max(1, min(8, len(add))), 1]] = True
    reason = "max_rounds"
    rounds = 0
    dropped = np.zeros_like(active)
    warm = None
    while rounds < max_rounds:
        rounds += 1
        try:
            v_ref = cert.v if cert is not None else (None if v_screen is None else np.asarray(v_screen, float))
            rs = solve_restricted(Xa, masks, y, lam, loss, active, V_ref=V, W_ref=W, v_ref=v_ref, eps=eps,
                                  rows_per_block=rows_per_block, solver=restricted,
                                  warm=warm if warm_starts else None)
        except Exception as exc:  # noqa: BLE001  (cvxpy.error.SolverError, numerical failures)
            reason = f"solver_error: {exc}"
            break
        iters += rs.iterations
        V, W, Gam = rs.V, rs.W, rs.multipliers
        warm = rs.warm
        # one scan gives the violated blocks outside the working set and, when it is complete,
        # the exact s(v); after an early stop the certificate uses the cheap bounds (valid, loose)
        primal, fit = _primal(Xa, masks, y, lam, loss, V, W)
        v = -np.asarray(loss.grad(fit, y), dtype=np.float64)
        # the working set may double per round (at least add_limit new blocks): dense supports are
        # reached in a logarithmic number of restricted solves
        limit = max(add_limit, int(active.sum()))
        add, s_exact, bounds, nn = scan_blocks(Xa, masks, v, lam, active, limit)
        cert = _certificate(primal, v, y, lam, loss, float(bounds.max()) if s_exact is None else s_exact,
                            bounds, nn)
        va, vr = violation(Xa, masks, V, W)
        record(cert, vr, rounds, f"round {rounds} blocks {int(active.sum())} s/lam {cert.s / lam:.3g}")
        if cert.rel_gap <= tol and vr <= viol_tol:
            reason = "certified"
            break
        if add.shape[0] == 0:
            if eps > eps_min:
                # no block to add: the restricted solve's accuracy limits the certificate;
                # solve the same working set again, tighter
                eps = max(eps * 1e-2, eps_min)
                continue
            reason = "no_violated_block"
            break
        if prune:
            # zero blocks leave the working set (the restricted optimum without them is the same
            # point), each at most once: a block that comes back stays, so the loop terminates
            norms = np.stack([np.linalg.norm(V, axis=1), np.linalg.norm(W, axis=1)])
            zero = active & (norms <= 1e-6 * max(float(norms.max()), 1e-300)) & ~dropped
            active &= ~zero
            dropped |= zero
        if int(active.sum()) >= max_blocks:
            reason = "too_many_blocks"
            break
        add = add[: max(1, min(limit, max_blocks - int(active.sum())))]
        active[add[:, 0], add[:, 1]] = True
    if cert is None:  # the first restricted solve failed: certify the starting point
        cert = certify_relu(Xa, masks, y, lam, loss, V, W)
        va, vr = violation(Xa, masks, V, W)
    return ActiveSetResult(V, W, cert, va, vr, Gam, int(active.sum()), active, rounds, iters,
                           reason == "certified", reason, history)
