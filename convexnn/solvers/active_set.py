r"""Active-set polish with a global certificate for C-ReLU (column generation over blocks).

C-ReLU over the patterns :math:`D_1, \dots, D_P` (001 eq. (C-ReLU); 002; 000 bonus slides) is

.. math::

    \min_{v_i, w_i \in \mathcal K_i}\ f\Big(\sum_i D_i X_a (v_i - w_i)\Big)
    + \lambda\sum_i \big(\|v_i\|_2 + \|w_i\|_2\big),\qquad
    \mathcal K_i = \{u : A_i u \ge 0\},\ A_i = (2D_i - I)X_a .

Call a *block* a pair :math:`(i, \sigma)`: :math:`\sigma = +1` is :math:`v_i`, :math:`\sigma = -1`
is :math:`w_i`. At the optimum only a few blocks are nonzero (group sparsity), so the program
restricted to a *working set* :math:`\mathcal W` of blocks (all other blocks fixed to zero) is
small. Its Lagrange dual, written with :math:`v = -\nabla f(\hat y)` as in the duality module
(002; 004 eq. (6)), is

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
   :func:`convexnn.duality._common.cone_support` (batched half-space bounds + NNLS; every
   inexact NNLS only *over*-estimates :math:`s`, so the bound stays valid);
   :func:`convexnn.duality._common.best_scale` picks the best such :math:`c`;
2. :math:`P(V, W) - \big(-f^*(-cv)\big) \ge P(V, W) - P^\star` is a certified gap over all
   :math:`P` patterns (up to the cone violation of :math:`(V, W)`, reported separately);
3. a block outside :math:`\mathcal W` with :math:`s_{i\sigma}(v) > \lambda` is a violated dual
   constraint: the restricted optimum is not optimal for the full program (KKT: the zero block's
   subdifferential condition fails). The most violated blocks join :math:`\mathcal W` and the
   restricted program is solved again (a cutting-plane / column-generation step, as in the
   working sets of Blitz and Celer, and in 001 Sec. 4's termination by min-norm subgradient).

The loop terminates: :math:`\mathcal W` grows strictly in every round that does not stop, and
there are :math:`2P` blocks. When :math:`\mathcal W` holds all blocks the restricted program is
the full one.

The restricted programs are solved to high accuracy by CVXPY + Clarabel on a vectorized model
with :math:`|\mathcal W|` blocks (``|W| * n`` linear cone rows instead of ``2 P n``), which is
what makes the polish cheap: the cost of an interior-point method grows superlinearly in the
number of blocks, and the optimum typically has a few dozen active blocks out of hundreds.

The initial working set comes from a *screening* dual point (the C-GReLU solution with the same
patterns, cheap with R-FISTA, or a warm start): the blocks with
:math:`s_{i\sigma}(v_{\text{screen}}) \ge \tau\lambda` (:math:`\tau` = ``screen_level``), plus the
support of the warm start.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from convexnn.duality._common import best_scale, cone_support, project_cone
from convexnn.formulations.losses import Loss

__all__ = ["Certificate", "ActiveSetResult", "certify_relu", "block_values", "screen_blocks",
           "solve_restricted", "solve_relu_active_set"]

_ADD_RTOL = 1e-9  # a block is violated when s_i > lam * (1 + _ADD_RTOL)


@dataclass
class Certificate:
    r"""Global certificate of a C-ReLU point over all patterns (see the module docstring).

    Attributes
    ----------
    primal : float
        :math:`P(V, W)`.
    dual : float
        :math:`-f^*(-c\,v)`, a lower bound on the optimum (for cone-feasible competitors).
    gap, rel_gap : float
        ``primal - dual`` and ``gap / max(|primal|, |dual|)``.
    s : float
        :math:`s(v)`, the largest dual-constraint value over all blocks (valid upper bound).
    scale : float
        The dual scaling :math:`c \in [0, \lambda / s]`.
    dual_point : ndarray, shape (n,)
        :math:`c\,v` with :math:`v = -\nabla f(\hat y)` (the duality module's convention).
    bounds : ndarray, shape (P,)
        Cheap per-pattern upper bounds of :math:`\max_\sigma s_{i\sigma}(v)` (from
        :func:`~convexnn.duality._common.cone_support`).
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


def _fit(Xa: np.ndarray, masks: np.ndarray, V: np.ndarray, W: np.ndarray) -> np.ndarray:
    r""":math:`\sum_i D_i X_a (v_i - w_i)`."""
    return np.sum(masks * (Xa @ (V - W).T), axis=1)


def _primal(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss, V: np.ndarray,
            W: np.ndarray) -> tuple[float, np.ndarray]:
    fit = _fit(Xa, masks, V, W)
    reg = float(np.linalg.norm(V, axis=1).sum() + np.linalg.norm(W, axis=1).sum())
    return loss.value(fit, y) + lam * reg, fit


def violation(Xa: np.ndarray, masks: np.ndarray, V: np.ndarray, W: np.ndarray) -> tuple[float, float]:
    r"""Absolute :math:`\max_{i,j}(-A_i v_i)_j^+` (and for :math:`w`) and relative cone violation
    (divided by :math:`\max_{i,j}|(X_a v_i)_j|, |(X_a w_i)_j|`), as in
    :func:`convexnn.solvers.gap.relu_violation`."""
    S = 2.0 * masks - 1.0
    Cv, Cw = S * (Xa @ V.T), S * (Xa @ W.T)
    if Cv.size == 0:
        return 0.0, 0.0
    viol = max(0.0, float(-Cv.min()), float(-Cw.min()))
    scale = max(float(np.abs(Cv).max()), float(np.abs(Cw).max()))
    return viol, (viol / scale if scale > 0 else 0.0)


def certify_relu(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss, V: np.ndarray,
                 W: np.ndarray) -> Certificate:
    r"""Certified duality gap of the C-ReLU point ``(V, W)`` over **all** patterns of ``masks``.

    Uses the cone-aware dual of the module docstring: :math:`v = -\nabla f(\hat y)`, the exact
    :math:`s(v)` by :func:`~convexnn.duality._common.cone_support` and the best dual scaling by
    :func:`~convexnn.duality._common.best_scale`.

    Parameters
    ----------
    Xa : ndarray, shape (n, d')
    masks : ndarray of bool, shape (n, P)
    y : ndarray, shape (n,)
    lam : float
    loss : Loss
    V, W : ndarray, shape (P, d')

    Returns
    -------
    Certificate
    """
    primal, fit = _primal(Xa, masks, y, lam, loss, V, W)
    v = -np.asarray(loss.grad(fit, y), dtype=np.float64)
    cs = cone_support(Xa, masks, v)
    cmax = lam / cs.value if cs.value > 0 else np.inf
    c, dual = best_scale(loss, v, y, cmax)  # restricted to the conjugate's domain (logistic)
    gap = primal - dual
    rel = max(gap, 0.0) / max(abs(primal), abs(dual), 1e-300)
    return Certificate(primal, float(dual), gap, rel, cs.value, c, c * v, cs.bounds, v, cs.n_nnls)


def block_values(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    r"""Exact :math:`s_{i\sigma}(v) = \|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\|` for patterns ``idx``.

    Returns an array of shape ``(len(idx), 2)``: column 0 is :math:`\sigma = +1` (block
    :math:`v_i`), column 1 is :math:`\sigma = -1` (block :math:`w_i`). One NNLS each
    (:func:`~convexnn.duality._common.project_cone`).
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

    The cheap per-pattern upper bounds (``bounds``, or those of
    :func:`~convexnn.duality._common.cone_support` with ``exact=False``) discard most patterns;
    the rest get one NNLS per sign (:func:`block_values`).

    Parameters
    ----------
    Xa, masks, v
        Data, patterns (``(n, P)``) and dual candidate ``(n,)``.
    level : float
    bounds : ndarray, shape (P,), optional
    exclude : ndarray of bool, shape (2, P), optional
        Blocks to skip (row 0: :math:`v_i`, row 1: :math:`w_i`).
    limit : int, optional
        Stop once this many blocks are found: patterns are examined in decreasing order of
        their bound, so the result holds the blocks of the most promising patterns (NNLS are
        the cost; a certificate never depends on this list).

    Returns
    -------
    (blocks, values)
        ``blocks`` of shape ``(k, 2)`` with rows ``(sign_row, i)`` (``sign_row`` 0 for
        :math:`v_i`, 1 for :math:`w_i`) and their values, sorted by decreasing value.
    """
    if bounds is None:
        bounds = cone_support(Xa, masks, v, exact=False).bounds
    cand = np.flatnonzero(bounds >= level)
    if exclude is not None:
        cand = cand[~(exclude[0, cand] & exclude[1, cand])]
    cand = cand[np.argsort(-bounds[cand], kind="stable")]
    rows: list[int] = []
    cols: list[int] = []
    out: list[float] = []
    for i in cand:
        vals = block_values(Xa, masks, v, np.array([i]))[0]
        for sgn in (0, 1):
            if vals[sgn] >= level and (exclude is None or not exclude[sgn, i]):
                rows.append(sgn)
                cols.append(int(i))
                out.append(float(vals[sgn]))
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


def _row_scores(Xa: np.ndarray, rn: np.ndarray, sgn: np.ndarray, ref: np.ndarray) -> np.ndarray:
    r"""Normalized margins :math:`s_j x_j^\top r / \|x_j\|` of the cone rows of one block at ``ref``."""
    return sgn * (Xa @ ref) / rn


def solve_restricted(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss,
                     active: np.ndarray, *, V_ref: np.ndarray | None = None, W_ref: np.ndarray | None = None,
                     v_ref: np.ndarray | None = None, rows_per_block: int | None = None,
                     eps: float = 1e-10, max_iter: int = 200, row_rounds: int = 30) -> RestrictedSolution:
    r"""Solve C-ReLU restricted to the blocks ``active`` (others fixed at zero) with CVXPY + Clarabel.

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
        Initial (and per-round) rows per block; default ``max(4 d', 24)``; ``n`` or more means all
        rows from the start (no row generation).
    eps : float
        Clarabel's gap and feasibility tolerances.
    max_iter : int
        Clarabel iteration cap per solve.
    row_rounds : int
        Row-generation rounds at most (after which all rows are included).

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
    m = max(4 * d, 24) if rows_per_block is None else int(rows_per_block)
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
    iters = 0
    status = ""
    x = cp.Variable(k * d)
    fit = F @ x
    reg = lam * cp.sum(cp.norm(cp.reshape(x, (k, d), order="C"), 2, axis=1))
    if loss.name == "squared":
        # a QP objective (Gram matrix k d' x k d') instead of an n-dimensional second-order cone:
        # the interior-point KKT system stays small when n is large
        Q = F.T @ F
        obj = 0.5 * cp.quad_form(x, cp.psd_wrap(0.5 * (Q + Q.T))) - (F.T @ y) @ x + 0.5 * float(y @ y) + reg
    else:
        obj = loss.cvx(fit, y) + reg
    for rnd in range(row_rounds + 1):
        if rnd == row_rounds:
            sel[:] = True
        jj, bb = np.nonzero(sel)
        coef = S[jj, [blocks[b][1] for b in bb]][:, None] * Xa[jj]  # (nnz_rows, d)
        C = sp.csr_matrix((coef.ravel(), (np.repeat(np.arange(jj.size), d),
                                           (bb[:, None] * d + np.arange(d)[None, :]).ravel())),
                          shape=(jj.size, k * d))
        con = C @ x >= 0
        prob = cp.Problem(cp.Minimize(obj), [con])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prob.solve(solver=cp.CLARABEL, tol_gap_abs=eps, tol_gap_rel=eps, tol_feas=eps, max_iter=max_iter)
        iters += int(getattr(prob.solver_stats, "num_iters", 0) or 0)
        status = str(prob.status)
        if x.value is None:
            raise cp.error.SolverError(f"Clarabel returned no solution (status {prob.status})")
        U = np.asarray(x.value, dtype=np.float64).reshape(k, d)
        Z = Xa @ U.T  # (n, k)
        marg = np.stack([S[:, i] for _, i in blocks], axis=1) * Z
        scale = float(np.abs(Z).max()) if Z.size else 0.0
        bad = (marg < -1e-12 * scale) & ~sel
        if not bad.any():
            break
        for b in np.flatnonzero(bad.any(axis=0)):
            cand = np.flatnonzero(bad[:, b])
            sel[cand[np.argsort(marg[cand, b], kind="stable")[:m]], b] = True
    dv = con.dual_value
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
    certificate: Certificate
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
    screen_level: float = 0.9,
    screen_limit: int = 16,
    max_rounds: int = 30,
    max_blocks: int | None = None,
    eps: float = 1e-10,
    eps_min: float = 1e-13,
    rows_per_block: int | None = None,
    iterations0: int = 0,
    t0: float | None = None,
    report: Callable[[int, float, float, float, str], None] | None = None,
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
        round adds at most ``max(8, |W|)`` violated blocks.
    max_rounds : int
        Restricted solves at most.
    max_blocks : int, optional
        Stop (``reason="too_many_blocks"``) when the working set would exceed this many blocks
        (default ``2P``, i.e. never).
    eps : float
        Clarabel tolerance of the restricted solves.
    eps_min : float
        When no block is violated but the gap is above ``tol`` (the restricted solve is the
        bottleneck, typically the exponential cones of the logistic loss), the same working set
        is solved again with ``eps`` divided by 100, down to ``eps_min``.
    rows_per_block : int, optional
        Row generation of the restricted solves (see :func:`solve_restricted`).
    iterations0 : int
        Iterations already spent (screening), added to the reported count.
    t0 : float, optional
        ``time.perf_counter()`` at the start of the whole solve (for the history's times).
    report : callable, optional
        ``report(iterations, objective, rel_gap, violation, extra)`` after every certificate.

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

    def record(cert: Certificate, vr: float, rnd: int, extra: str) -> None:
        history.append({"iter": iters, "time": time.perf_counter() - t0, "objective": cert.primal,
                        "rel_gap": cert.rel_gap, "violation": vr, "round": rnd,
                        "working_set": int(active.sum())})
        if report is not None:
            report(iters, cert.primal, cert.rel_gap, vr, extra)

    cert: Certificate | None = None
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
    while rounds < max_rounds:
        rounds += 1
        try:
            rs = solve_restricted(Xa, masks, y, lam, loss, active, V_ref=V, W_ref=W,
                                  v_ref=None if cert is None else cert.v if v_screen is None or rounds > 1 else
                                  np.asarray(v_screen, dtype=np.float64), eps=eps,
                                  rows_per_block=rows_per_block)
        except Exception as exc:  # noqa: BLE001  (cvxpy.error.SolverError, numerical failures)
            reason = f"solver_error: {exc}"
            break
        iters += rs.iterations
        V, W, Gam = rs.V, rs.W, rs.multipliers
        cert = certify_relu(Xa, masks, y, lam, loss, V, W)
        va, vr = violation(Xa, masks, V, W)
        record(cert, vr, rounds, f"round {rounds} blocks {int(active.sum())} s/lam {cert.s / lam:.3g}")
        if cert.rel_gap <= tol and vr <= viol_tol:
            reason = "certified"
            break
        n_add = max(8, int(active.sum()))
        add, _ = screen_blocks(Xa, masks, cert.v, lam * (1.0 + _ADD_RTOL), cert.bounds, exclude=active,
                               limit=n_add)
        if add.shape[0] == 0:
            if eps > eps_min:
                # no block to add: the restricted solve's accuracy limits the certificate;
                # solve the same working set again, tighter
                eps = max(eps * 1e-2, eps_min)
                continue
            reason = "no_violated_block"
            break
        if int(active.sum()) >= max_blocks:
            reason = "too_many_blocks"
            break
        add = add[: max(1, min(n_add, max_blocks - int(active.sum())))]
        active[add[:, 0], add[:, 1]] = True
    if cert is None:  # the first restricted solve failed: certify the starting point
        cert = certify_relu(Xa, masks, y, lam, loss, V, W)
        va, vr = violation(Xa, masks, V, W)
    return ActiveSetResult(V, W, cert, va, vr, Gam, int(active.sum()), active, rounds, iters,
                           reason == "certified", reason, history)
