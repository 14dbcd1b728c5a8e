r"""Active-set polish with a global certificate for C-ReLU (column generation over blocks).

The program, its blocks :math:`(i, \sigma)`, their cone-aware dual constraints
:math:`s_{i\sigma}(v) \le \lambda`, the certificate of a restricted solution over **all** patterns
and the scan for violated blocks are in :mod:`convexnn.solvers.relu_certificate`. At the optimum
only a few blocks are nonzero (group sparsity), so the program restricted to a *working set*
:math:`\mathcal W` of blocks (all other blocks fixed to zero) is small; a block outside :math:`\mathcal W` with
:math:`s_{i\sigma}(v) > \lambda` is a violated dual constraint, and the most violated blocks
join :math:`\mathcal W` before the restricted program is solved again (a cutting-plane /
column-generation step, as in the working sets of Blitz and Celer).

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
cones for the logistic loss). The smallest squared-loss programs (:data:`CLARABEL_MAX_NNZ`) go to
Clarabel's own interface first: there the interior point's time is numpy's fixed cost per call. This
is what makes the polish cheap: the optimum typically has a few dozen nonzero blocks out of hundreds.

Rounds far from the certificate (relative gap above ``loose_above``) with a costly restricted
program solve it only loosely (``eps_loose``): their point only has to price the blocks outside
the working set; when such a round finds nothing to add, the interior point resumes the same
solve to the round's tolerance from its last iterate.

The initial working set comes from the *screening* solve (the C-GReLU program with the same
patterns, cheap with R-FISTA, or a warm start): the support of the C-GReLU solution, one sign
per gated neuron first (the sign whose cone it violates least), as many blocks as the expected
final working set (:func:`gated_start`: the cheapest start under the cost model of the
restricted solves), plus the (at most ``screen_limit``) most promising blocks with
:math:`s_{i\sigma}(v_{\text{screen}}) \ge \tau\lambda` for its dual candidate
(:math:`\tau` = ``screen_level``), plus the support of the warm start.

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

from convexnn.arrangements.facets import ChamberFacets
from convexnn.arrangements.limits import one_blas_thread
from convexnn.errors import InputError
from convexnn.formulations.blocks import block_design
from convexnn.formulations.losses import Loss, SquaredLoss
from convexnn.solvers.block_ipm import BlockIPMResult, PatternGram, iteration_flops, solve_block_ipm, warm_start
from convexnn.solvers.relu_certificate import (
    PolishCertificate,
    _certificate,
    _primal,
    certify_relu,
    multiplier_bounds,
    scan_blocks,
    scan_flops,
    screen_blocks,
    violation,
)

__all__ = ["PolishCertificate", "ActiveSetResult", "RestrictedSolution", "certify_relu", "cone_rows",
           "screen_blocks", "scan_blocks", "solve_restricted", "solve_relu_active_set", "violation"]

_FAER_MIN_VARS = 800  # restricted squared-loss solves with more variables use Clarabel's faer LDL
#: The block interior point's answer is used when its relative gap and residuals are below this
#: (its rounding floor is typically 1e-12 .. 1e-9); otherwise the restricted program goes to Clarabel.
_IPM_ACCEPT = 1e-7


@dataclass
class RestrictedSolution:
    """Output of :func:`solve_restricted` (weights of the working-set blocks, full shape)."""

    V: np.ndarray
    W: np.ndarray
    multipliers: np.ndarray
    iterations: int
    status: str
    time: float
    #: the interior point's warm-start state, its blocks (``(row, i)`` pairs) and its cone rows per
    #: block (``(r, k)``, None: all), when it solved
    warm: tuple[dict, list, np.ndarray | None] | None = None
    #: floating-point operations of the interior-point solves by their cost model
    #: (:attr:`~convexnn.solvers.block_ipm.BlockIPMResult.flops`); NaN when Clarabel solved a program the
    #: interior point had failed on or ``solver="clarabel"``; the small programs Clarabel solves first
    #: (:data:`CLARABEL_MAX_NNZ`) count zero (no cost model: the flop rates understate, never overstate)
    flops: float = 0.0
    #: the interior point's own dual candidate :math:`v` (shape ``(n,)``) where it has one (the Huber
    #: split form, :attr:`~convexnn.solvers.block_ipm.BlockIPMResult.dual`); None: :math:`-\nabla f`
    dual: np.ndarray | None = None


def _row_scores(Xa: np.ndarray, rn: np.ndarray, sgn: np.ndarray, ref: np.ndarray) -> np.ndarray:
    r"""Normalized margins :math:`s_j x_j^\top r / \|x_j\|` of the cone rows of one block at ``ref``
    (``sgn`` of shape ``(n,)``, ``ref`` of ``(d',)``; or of every block, ``(n, k)`` and ``(d', k)``, with
    ``rn`` of shape ``(n, 1)``)."""
    return sgn * (Xa @ ref) / rn


def _nearest_rows(Xa: np.ndarray, mk: np.ndarray, blocks: list, V_ref: np.ndarray | None,
                  W_ref: np.ndarray | None, v_ref: np.ndarray | None, m: int) -> np.ndarray | None:
    r"""The ``m`` cone rows of every block with the smallest normalized margins
    :math:`s_j x_j^\top r_b / \|x_j\|` (:func:`_row_scores`) at the block's reference direction
    :math:`r_b`: its weight in ``V_ref`` / ``W_ref`` when nonzero, else
    :math:`\sigma_b X_a^\top D_{i_b} v_{\text{ref}}`; ``(m, k)`` row indices, or None (all rows)
    when a block has no reference."""
    n, d = Xa.shape
    ref = np.zeros((len(blocks), d))
    for b, (row, i) in enumerate(blocks):
        R_ = V_ref if row == 0 else W_ref
        if R_ is not None and np.any(R_[i]):
            ref[b] = R_[i]
        elif v_ref is not None:
            ref[b] = (1.0 - 2.0 * row) * (Xa.T @ np.where(mk[:, b], v_ref, 0.0))
        else:
            return None
    rn = np.linalg.norm(Xa, axis=1)
    Z = _row_scores(Xa, np.where(rn > 0, rn, 1.0)[:, None], 2.0 * mk - 1.0, ref.T)
    return np.argpartition(Z, m - 1, axis=0)[:m]


def _violated_rows(Xa: np.ndarray, mk: np.ndarray, X: np.ndarray, R: np.ndarray, last: bool,
                   tol: float = 1e-12) -> np.ndarray | None | bool:
    r"""Row generation step: ``False`` when the blocks ``X`` satisfy every cone row
    :math:`s_j x_j^\top x_b \ge -t\max_{j,b}|x_j^\top x_b|` left out of ``R`` (with the
    default ``tol`` the relaxed solution then solves the restricted program); otherwise the rows ``R`` extended by the ``a`` rows of
    smallest margin outside them for every block, ``a`` the largest count of violated rows of one
    block but at most ``len(R)`` (the rows at most double per round), or None (all rows) when
    ``last`` or when that would reach half of the ``n`` rows.

    :math:`t` is ``tol`` or twice the relative violation of the rows in ``R`` if that is larger: an
    interior point meets its own rows only up to its primal residual, and a row left out that is
    violated no more than those (e.g. a duplicate of a row in ``R``, as integer-valued data has
    many) would only be added to be met to the same accuracy."""
    n, k = mk.shape
    ZX = Xa @ X.T
    Z = (2.0 * mk - 1.0) * ZX
    scale = float(np.abs(ZX).max()) if ZX.size else 0.0
    inside = (R, np.arange(k)[None, :])
    own = max(-float(Z[inside].min()), 0.0) if R.size else 0.0
    Z[inside] = np.inf  # rows already in
    bad = (Z < -max(tol * scale, 2.0 * own)).sum(axis=0)
    a = min(int(bad.max()) if bad.size else 0, R.shape[0])
    if a == 0:
        return False
    if last or 2 * (R.shape[0] + a) >= n:
        return None
    return np.vstack([R, np.argpartition(Z, a - 1, axis=0)[:a]])


def _clarabel_squared(F: np.ndarray, y: np.ndarray, lam: float, C: Any, k: int, d: int, eps: float,
                      max_iter: int) -> tuple[np.ndarray, np.ndarray, int, str, tuple[float, float, float]]:
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
    (x, z, iterations, status, (gap, pres, dres))
        ``z`` are the multipliers of the rows of ``C`` (nonnegative); ``gap`` is the absolute
        difference of Clarabel's primal and dual objectives, ``pres`` and ``dres`` its primal and dual
        residuals.

    Raises
    ------
    cvxpy.error.SolverError
        When Clarabel returns a status other than solved or almost solved.
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
            status, _clarabel_quality(sol))


def _clarabel_quality(sol: Any) -> tuple[float, float, float]:
    """Clarabel's absolute primal-dual objective gap and its primal and dual residuals; ``inf`` for what
    an older Clarabel does not report (the answer is then not taken on these numbers)."""
    def num(name: str) -> float:
        v = getattr(sol, name, None)
        return float(v) if isinstance(v, (int, float)) and np.isfinite(v) else np.inf

    p, d = num("obj_val"), num("obj_val_dual")
    return (abs(p - d) if np.isfinite(p) and np.isfinite(d) else np.inf), num("r_prim"), num("r_dual")


#: A restricted squared-loss program whose conic form has at most this many nonzeros
#: (:func:`conic_nnz`) goes to Clarabel directly (:func:`_clarabel_blocks`) before the block interior
#: point: on programs of a few blocks with their facet rows, numpy's fixed cost per call (about 0.5 ms
#: per interior-point iteration) is most of the block interior point's time, and Clarabel's compiled
#: iterations take a fraction of it. Measured on the 73 restricted programs of the squared-loss C-ReLU
#: cells of the matrix (``bench/bench_matrix.py``, n <= 600) and of random small programs (seeds
#: outside the held-out benchmark's): up to 1e4 nonzeros (6 programs, 22-7906) Clarabel took 0.26-0.60
#: of the block interior point's time, at 2e4 1.1 times, from 3.4e4 on 1.4-56 times.
CLARABEL_MAX_NNZ = 1e4


def conic_nnz(n: int, k: int, d: int, rows: int) -> float:
    r"""Nonzeros of the conic form of :func:`_clarabel_squared` for ``k`` blocks of ``d`` variables with
    ``rows`` cone rows each: the cone rows (``k rows d``), the second-order cones (``k (d + 1)``) and
    the quadratic term, the Gram matrix's upper triangle (``(kd)^2 / 2``) or, in the residual form
    chosen when ``kd > 2n``, the ``n x kd`` map and ``n`` unit entries."""
    nx = float(k * d)
    quad = nx * (nx + 1.0) / 2.0 if nx <= 2 * n else n * nx + 2.0 * n
    return k * rows * float(d) + k * (d + 1.0) + quad


def _cone_matrix(Xa: np.ndarray, signs: np.ndarray, jj: np.ndarray, bb: np.ndarray, k: int) -> Any:
    r"""The cone rows :math:`s_j x_j^\top x_b \ge 0` of the pairs (row ``jj[t]``, block ``bb[t]``) as a
    sparse ``(len(jj), k d')`` matrix ``C`` (``Cx >= 0``; ``signs[t]`` = :math:`s_j` of that block's
    pattern), one matrix row per pair, in the columns of its block."""
    import scipy.sparse as sp

    d = Xa.shape[1]
    coef = signs[:, None] * Xa[jj]
    return sp.csr_matrix((coef.ravel(), (np.repeat(np.arange(jj.size), d), (bb[:, None] * d + np.arange(d)).ravel())),
                         shape=(jj.size, k * d))


def _clarabel_blocks(Xa: np.ndarray, mk: np.ndarray, sg: np.ndarray, y: np.ndarray, lam: float,
                     R: np.ndarray | None, eps: float, max_iter: int) -> BlockIPMResult | None:
    r"""The restricted squared-loss program of :func:`solve_block_ipm` (blocks of the patterns ``mk``
    with signs ``sg``, cone rows ``R`` per block or all) solved by Clarabel directly
    (:func:`_clarabel_squared`), as a :class:`~convexnn.solvers.block_ipm.BlockIPMResult` without a
    warm-start state and without a flop count (zero): the gap is Clarabel's primal-dual objective gap
    relative to :math:`\max(1, |F(x)|)`, the residuals its own. None when Clarabel fails."""
    t0 = time.perf_counter()
    n, d = Xa.shape
    k = mk.shape[1]
    r = n if R is None else R.shape[0]
    F = block_design(Xa, mk * sg[None, :])
    # the cone rows of block b, block after block: the rows j of R[:, b] (all rows without R)
    jj = np.tile(np.arange(n), k) if R is None else R.T.ravel()
    bb = np.repeat(np.arange(k), r)
    C = _cone_matrix(Xa, 2.0 * mk[jj, bb] - 1.0, jj, bb, k)
    try:
        x, z, it, status, (gap_abs, pres, dres) = _clarabel_squared(F, y, lam, C, k, d, eps, max_iter)
    except Exception:  # noqa: BLE001  (a failed or inaccurate Clarabel solve: the block interior point)
        return None
    X = x.reshape(k, d)
    res = F @ x - y
    obj = 0.5 * float(res @ res) + lam * float(np.linalg.norm(X, axis=1).sum())
    return BlockIPMResult(X, z.reshape(k, r).T.copy(), it, "optimal" if status == "Solved" else status.lower(),
                          gap_abs / max(1.0, abs(obj)), pres, dres, obj, time.perf_counter() - t0)


def solve_restricted(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss,
                     active: np.ndarray, *, V_ref: np.ndarray | None = None, W_ref: np.ndarray | None = None,
                     v_ref: np.ndarray | None = None, rows_per_block: int | None = None,
                     eps: float = 1e-10, max_iter: int = 200, row_rounds: int = 30,
                     solver: str = "ipm", warm: tuple | None = None,
                     resume: bool = False, gram_cache: PatternGram | None = None,
                     accept: float | None = None, relaxed: float = 0.0,
                     facets: ChamberFacets | None = None, clarabel_nnz: float | None = None) -> RestrictedSolution:
    r"""Solve C-ReLU restricted to the blocks ``active`` (others fixed at zero).

    ``solver="ipm"`` (default): the block-structured primal-dual interior point of
    :mod:`convexnn.solvers.block_ipm` (one dense ``|W| d' x |W| d'`` Cholesky per iteration, the
    ``|W| n`` cone rows enter only block-diagonal terms); when it cannot reach a relative
    accuracy of ``max(eps, _IPM_ACCEPT)`` (a numerical failure) the program goes to Clarabel.
    A squared-loss program whose conic form has at most ``clarabel_nnz`` nonzeros (:func:`conic_nnz`
    of its blocks and rows) goes to Clarabel directly first (:func:`_clarabel_blocks`), the
    interior point only when Clarabel does not reach the accuracy.
    ``solver="clarabel"``: Clarabel, as described below.

    Blocks are stacked in one vector :math:`x = (x_b)_{b \in \mathcal W}`; the fit is the dense
    product :math:`F x` with :math:`F = [\sigma_b D_{i_b} X_a]_b` (``n x |W| d'``) and, for Clarabel,
    the cone rows are one sparse matrix. **Row generation** (both solvers): each block starts with
    only its ``rows_per_block`` cone rows of smallest normalized margin at a reference direction
    (the block's current weight ``V_ref`` / ``W_ref`` when nonzero, else
    :math:`\sigma X_a^\top D_i v` for the dual candidate ``v_ref``); after each solve, the rows
    violated by more than :math:`10^{-12}\max_j|x_j^\top u|` are added until none is (Clarabel: at
    most ``rows_per_block`` per block and round; the interior point, whose blocks hold equally many
    rows: as many per block as the most violated block has, the smallest margins first, from an
    interior iterate of the previous solve). The program with fewer rows is a relaxation, so a
    solution feasible for all rows solves the restricted program; the loop ends because rows are
    only added (and with all rows it is the restricted program itself). Interior-point cost grows
    with the rows, which are ``|W| n`` in all but only a few per block are active: at
    :math:`n = 10^5` the cone terms of all rows cost several times the dense factorization.

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
        Initial rows per block; default (None) and ``n`` or more mean all rows from the start (no
        row generation; :func:`solve_relu_active_set` chooses it by :func:`cone_rows`).
    eps : float
        Gap and feasibility tolerances (relative) of the interior point / Clarabel.
    max_iter : int
        Iteration cap per solve (Clarabel); the block interior point gets ``max(max_iter, 150)``.
    row_rounds : int
        Row-generation rounds at most (after which all rows are included).
    solver : {"ipm", "clarabel"}
        Restricted solver (see above).
    warm : tuple, optional
        :attr:`RestrictedSolution.warm` of the previous round: the interior point starts from its
        state, extended to ``active`` (and to this solve's rows) by
        :func:`convexnn.solvers.block_ipm.warm_start`.
    resume : bool
        With ``warm`` from a solve on the same blocks: continue that solve from its last iterate
        (``state["last"]``), e.g. to a tighter ``eps``.
    accept : float, optional
        The interior point's answer is used when its relative gap and residuals are at most
        ``max(_IPM_ACCEPT, eps, accept)``; otherwise the program goes to Clarabel. A caller that
        certifies the answer globally to a tolerance ``tol`` can accept an interior point stalled
        at its rounding floor above ``eps`` but well below ``tol``.
    relaxed : float
        Interior point with row generation: rows left out are added only while they are violated
        by more than ``relaxed`` relative to :math:`\max_{j,b}|x_j^\top x_b|` (default 0: until
        none is violated beyond rounding, :math:`10^{-12}`); a positive value returns a point that
        may violate its cones by that much (for the rounds of a polish whose point only prices the
        blocks outside the working set).
    gram_cache : PatternGram, optional
        The pattern blocks of the Gram matrix :math:`F^\top F` kept across the rounds of a polish
        (squared loss, dense interior-point solves): only the patterns new to the working set cost
        products with the data.
    facets : ChamberFacets, optional
        The facet rows of the chambers (:mod:`convexnn.arrangements.facets`): with them the
        interior point starts from each block's facets instead of ``rows_per_block`` rows (the
        rest are implied; row generation as above adds any that the hull missed).
    clarabel_nnz : float, optional
        ``solver="ipm"``, squared loss: programs (with their current cone rows) of at most this many
        nonzeros go to Clarabel first; default :data:`CLARABEL_MAX_NNZ`, 0 never.

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

    t0 = time.perf_counter()
    n, d = Xa.shape
    P = masks.shape[1]
    blocks = [(0, int(i)) for i in np.flatnonzero(active[0])] + [(1, int(i)) for i in np.flatnonzero(active[1])]
    k = len(blocks)
    V, W = np.zeros((P, d)), np.zeros((P, d))
    Gam = np.zeros((n, 2 * P))
    if k == 0:
        return RestrictedSolution(V, W, Gam, 0, "optimal", time.perf_counter() - t0)
    if solver not in ("ipm", "clarabel"):
        raise InputError(f"solver must be 'ipm' or 'clarabel'; got {solver!r}.")
    # a solve that reached the requested accuracy is used
    accept = max(_IPM_ACCEPT, float(eps), 0.0 if accept is None else float(accept))
    # the blocks' patterns, masks and signs sigma_b
    pids = np.array([i for _, i in blocks])
    mk, sg = masks[:, pids], np.array([1.0 - 2.0 * b for b, _ in blocks])
    if solver == "ipm":
        gram_of = None if gram_cache is None else (lambda which: gram_cache.of(pids[which]))
        prev = warm  # (state, blocks, rows) of the solve to start from
        same = prev is not None and prev[1] == blocks
        # cone rows per block (row generation; None: all n): a resumed solve keeps its rows
        m = None if rows_per_block is None or int(rows_per_block) >= n else max(1, int(rows_per_block))
        if resume and same:
            R = prev[2]
        else:
            # the chambers' facets when known (the other rows are implied), else the rows of
            # smallest margin (m of them) or all rows
            R = None if facets is None else facets.rows(mk, pids)
            if R is None and m is not None:
                R = _nearest_rows(Xa, mk, blocks, V_ref, W_ref, v_ref, m)
        iters = 0
        flops = 0.0
        small = isinstance(loss, SquaredLoss)  # a program of few nonzeros goes to Clarabel first
        small_nnz = CLARABEL_MAX_NNZ if clarabel_nnz is None else float(clarabel_nnz)
        for rnd in range(row_rounds + 1):
            r, by = None, "clarabel"
            if small and conic_nnz(n, k, d, n if R is None else R.shape[0]) <= small_nnz:
                r = _clarabel_blocks(Xa, mk, sg, y, lam, R, eps, max(max_iter, 150))
                if r is not None:
                    iters += r.iterations
                    flops += r.flops
                    if max(r.gap, r.pres, r.dres) > accept:
                        r = None
            if r is None and prev is not None:
                by = "ipm"
                # warm start from an interior iterate of the previous solve (kept blocks and rows keep
                # theirs); the same blocks and rows solved again (tighter): continue from the previous
                # solve's last iterate; a cold start below when it does not reach the accuracy
                cont = rnd == 0 and resume and same and "last" in prev[0]
                start = prev[0]["last"] if cont else warm_start(prev[0], prev[1], blocks, n, d, lam,
                                                               rows_old=prev[2], rows_new=R)
                r = solve_block_ipm(Xa, mk, sg, y, lam, loss, cones=True, eps=eps, max_iter=_WARM_MAX_ITER,
                                    start=start, gram_of=gram_of, rows=R)
                iters += r.iterations
                flops += r.flops
                if max(r.gap, r.pres, r.dres) > accept:
                    r = None
            if r is None:
                by = "ipm"
                r = solve_block_ipm(Xa, mk, sg, y, lam, loss, cones=True, eps=eps, max_iter=max(max_iter, 150),
                                    gram_of=gram_of, rows=R)
                iters += r.iterations
                flops += r.flops
            if max(r.gap, r.pres, r.dres) > accept or R is None:
                break
            # the rows left out: the violated ones join (as many per block as the most violated
            # block has, the smallest margins first), all rows in the last round
            more = _violated_rows(Xa, mk, r.X, R, last=rnd + 1 >= row_rounds, tol=max(float(relaxed), 1e-12))
            if more is False:
                break
            if r.state is not None:
                prev = (r.state, blocks, R)
            R = more
        if max(r.gap, r.pres, r.dres) <= accept:
            for b, (row, i) in enumerate(blocks):
                (V if row == 0 else W)[i] = r.X[b]
                Gam[(slice(None) if R is None else R[:, b]), row * P + i] = r.multipliers[:, b]
            return RestrictedSolution(V, W, Gam, iters, f"{by}: {r.status}", time.perf_counter() - t0,
                                      (r.state, blocks, R) if r.state is not None else None, flops, r.dual)
        ipm_iters = iters  # a numerical failure of the interior point: Clarabel below
    else:
        ipm_iters = 0
    # the dense n x P masks and signs only on the Clarabel path (the interior point reads columns)
    M = np.asarray(masks, dtype=np.float64)
    S = 2.0 * M - 1.0
    rn = np.linalg.norm(Xa, axis=1)
    rn = np.where(rn > 0, rn, 1.0)
    m = n if rows_per_block is None else int(rows_per_block)
    F = block_design(Xa, mk * sg[None, :])  # (n, k d)
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
        C = _cone_matrix(Xa, S[jj, pids[bb]], jj, bb, k)
        if obj is None:
            xv, dv, it, status, _ = _clarabel_squared(F, y, lam, C, k, d, eps, max_iter)
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
    return RestrictedSolution(V, W, Gam, iters, status, time.perf_counter() - t0, flops=float("nan"))


#: a block of an accurate restricted solution is zero below this fraction of the largest block's norm
_ZERO_REL = 1e-6
#: thinning of loose rounds stops for the rest of a solve once the blocks of one round's additions that
#: it had dropped are more than this share of all it dropped: the loose points do not tell this
#: program's support (see ``prune_loose`` of :func:`solve_relu_active_set`)
THIN_RETURN_SHARE = 0.2
#: The full program (all ``2P`` blocks) is used when it has at most this many unit variables
#: :math:`Pd'` (``full_vars`` of :func:`solve_relu_active_set`).
FULL_VARS = 1500
#: The full program is used whatever its size once the working set holds at least this share of the
#: ``2P`` blocks.
FULL_BLOCKS_SHARE = 0.75
#: ... and from the start, without screening, when ``lam_max / lam`` is at least this: a dense
#: support. Measured (``bench/RESULTS_matrix.md``): 1.5-1.8x faster on the matrix cells at
#: ``lam_max / lam`` of 3.3e3 and 1e4, 1.2x slower on diabetes at 1e3 (where the doubling schedule
#: with the full-program rule is faster).
FULL_START_RATIO = 3e3
#: ... and from the start whatever ``lam`` when one interior-point iteration on the full program
#: costs at most this many flops (:func:`convexnn.solvers.block_ipm.iteration_flops`): a program of a
#: few dozen samples and patterns, where numpy's fixed cost per call (about 0.5 ms per iteration)
#: dominates every restricted solve, so each round of the doubling schedule costs as much as the
#: full program and the screening adds its own. Measured on 96 programs (n 10-80, d' 2-4, 6-80
#: patterns, lam 0.01 and 0.1 lam_max, squared and logistic; ``bench/RESULTS_degenerate.md``): below
#: 4e5 flops 1.4x less time in total, 41 of 72 programs more than 1.2x faster and 4 more than 1.2x
#: slower; on 96 held-out programs (heavy-tailed shifted features, lam 3e-3 to 0.3 lam_max) 1.4x, 60
#: faster and 6 slower (lam = 0.3 lam_max, a few milliseconds); at 2e6-5e6 flops (n = 100) the full
#: program is slower at lam >= 0.03 lam_max.
FULL_START_FLOPS = 4e5


def _zero_blocks(V: np.ndarray, W: np.ndarray, candidates: np.ndarray, rel: float = _ZERO_REL) -> np.ndarray:
    r"""Blocks of ``candidates`` (bool, ``(2, P)``) with :math:`\|x_b\| \le` ``rel`` :math:`\max_c\|x_c\|`:
    the zero blocks of an accurate restricted solution (default ``rel``), or the small blocks of a
    loose one (an interior-point iterate keeps every block away from zero by about the gap)."""
    norms = np.stack([np.linalg.norm(V, axis=1), np.linalg.norm(W, axis=1)])
    return candidates & (norms <= rel * max(float(norms.max()), 1e-300))


def _onto_cones(Xa: np.ndarray, masks: np.ndarray, V: np.ndarray, W: np.ndarray,
                viol_tol: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    r"""``(V, W)`` with every block that violates its cone rows by more than ``viol_tol / 2`` times the
    largest block output (the scale of the relative violation, :func:`violation`) replaced by its
    projection onto its chamber (:func:`~convexnn.duality.cones.project_cone`), and the absolute and
    relative violation of the point returned. Nothing changes when the relative violation is at
    most ``viol_tol``.

    An interior point meets its cone rows only up to its primal residual, which is relative to the
    program (the targets), not to each block: a block that is zero at the optimum can come back as
    rounding noise (outputs of 1e-15 next to targets of 1) that violates its rows by 1e-16, a
    relative violation of 1e-5 when the largest block's outputs are 1e-11. The projection moves a
    block by its violation only; the certificate is computed at the projected point."""
    va, vr = violation(Xa, masks, V, W)
    if vr <= viol_tol:
        return V, W, va, vr
    from convexnn.duality.cones import project_cone

    level = 0.5 * viol_tol * va / vr  # va / vr: the largest block output
    V, W = V.copy(), W.copy()
    moved = 0
    for U in (V, W):
        nz = np.flatnonzero(np.any(U != 0.0, axis=1))
        worst = np.min(np.where(masks[:, nz], 1.0, -1.0) * (Xa @ U[nz].T), axis=0) if nz.size else nz
        for i in nz[worst < -level]:
            U[i] = project_cone(Xa, np.where(masks[:, i], 1.0, -1.0), U[i])[0]
            moved += 1
    return (V, W, *violation(Xa, masks, V, W)) if moved else (V, W, va, vr)


def _go_full(active: np.ndarray, n: int, d: int, quad: bool, share: float, ratio: float) -> bool:
    r"""Whether the next restricted program should hold every block (the full program): its
    patterns cover at least ``share`` of the ``P`` patterns and one interior-point iteration on the
    full program costs at most ``ratio`` times one on the working set
    (:func:`convexnn.solvers.block_ipm.iteration_flops`, by units: a pattern's two blocks form one
    unit). A dense support is then reached in one round instead of a doubling schedule, and no
    block can be missing from it."""
    P = active.shape[1]
    units = int(np.count_nonzero(active.any(axis=0)))
    if units < share * P or active.all():
        return False
    now = iteration_flops(n, int(active.sum()), d, quad, units=units)[0]
    return iteration_flops(n, 2 * P, d, quad, units=P)[0] <= ratio * now


@dataclass
class ActiveSetResult:
    """Outcome of :func:`solve_relu_active_set`.

    ``blocks`` (bool, shape ``(2, P)``; row 0 the :math:`v_i`, row 1 the :math:`w_i`) is the final
    working set and ``working_set`` its size; ``multipliers`` (``(n, 2P)``) are the restricted
    solve's cone multipliers (zero outside the working set); ``projections`` the scans' cache of
    every scanned block's last projection multipliers (:func:`scan_blocks`' ``cache``), which bound
    the blocks outside the working set in a final certificate without their NNLS. ``history`` has
    one record per round (and one for a warm start): ``iter``, ``time``, ``objective``, ``rel_gap``,
    ``violation``, ``round``, ``working_set``, ``restricted_eps`` and ``thinned``, the blocks the
    thinning of loose rounds had dropped before the round.
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
    #: floating-point operations by the cost models: ``flops0`` (the caller's screening), the restricted
    #: interior-point solves (:attr:`RestrictedSolution.flops`; NaN once Clarabel solved one) and
    #: :func:`scan_flops` per scan of the blocks
    flops: float = 0.0
    projections: dict = field(default_factory=dict)


#: the polish uses a restricted interior-point answer accurate to this fraction of its target ``tol``
#: even when it stopped at its rounding floor above the round's ``eps`` (the global certificate decides
#: either way; Clarabel on such a program cost 6-30 s per call in ``solve_global`` on n = 2000, d' = 3,
#: where the interior point stalls at 1e-7 to 4e-7)
IPM_ACCEPT_TOL = 0.5

#: Expected C-ReLU working set over the C-GReLU support size (diabetes 119/98, synthetic 83/72 blocks
#: over neurons on the dense-support cells of ``bench/bench_matrix.py``; 12/25 .. 18/16 on sparse ones).
_SUPPORT_RATIO = 1.2


#: Row generation of the restricted interior-point solves (:func:`cone_rows`): every block starts
#: with ``_ROWS_PER_DIM d'`` of its cone rows, at least ``_ROWS_MIN`` and ``n / _ROWS_SHARE`` (the
#: rows a moving solution meets grow with ``n``; their cone terms stay far cheaper than the dense
#: factorization), when the data has at least ``_ROWS_FACTOR`` times as many rows. A nonzero block
#: of the optimum has at most ``d' - 1`` active rows (its direction is a point of the cone's
#: boundary of dimension ``d'``), near the smallest margins at its current direction.
_ROWS_PER_DIM = 20
_ROWS_MIN = 1000
_ROWS_SHARE = 25
_ROWS_FACTOR = 4
#: iteration cap of a warm-started restricted interior-point solve (a cold start follows when it does
#: not reach the accuracy): warm solves take 5-20 iterations; one that has not converged by then has
#: run off (a logistic program with facet rows took 200 iterations to a gap of 0.15 before its cold
#: start took 17)
_WARM_MAX_ITER = 60

#: loose rounds add the cone rows violated by more than this (relative), whatever their accuracy
_ROWS_LOOSE = 1e-3


def cone_rows(n: int, d: int) -> int | None:
    r"""Initial cone rows per block of the restricted interior-point solves (row generation,
    :func:`solve_restricted`), or None for all ``n`` rows: ``max(20 d', 1000, n / 25)`` when ``n`` is
    at least ``4 max(20 d', 1000)``. The cone terms of an iteration cost :math:`O(k\,r\,d'^2)` for ``r`` rows per
    block (:math:`O(k n d'^2)` with all of them), the fit and the dense factorization do not change."""
    r = max(_ROWS_PER_DIM * int(d), _ROWS_MIN)
    return max(r, int(n) // _ROWS_SHARE) if int(n) >= _ROWS_FACTOR * r else None


def restricted_seconds(n: int, k: int, d: int, quadratic: bool, iterations: float = 35.0) -> float:
    r"""Predicted seconds of one restricted interior-point solve on ``k`` blocks:
    ``iterations`` times :func:`convexnn.solvers.block_ipm.iteration_flops` at
    :data:`convexnn.solvers.gated_ipm.FLOP_RATE`, plus the per-iteration overhead."""
    from convexnn.solvers.block_ipm import iteration_flops
    from convexnn.solvers.gated_ipm import _IPM_ITER_SECONDS, FLOP_RATE

    return iterations * (iteration_flops(n, k, d, quadratic)[0] / FLOP_RATE + _IPM_ITER_SECONDS)


def gated_start(Xa: np.ndarray, masks: np.ndarray, U: np.ndarray, loss: Loss,
                exclude: np.ndarray | None = None, budget_seconds: float = 60.0) -> np.ndarray:
    r"""Initial C-ReLU working set from the C-GReLU solution ``U`` with the same patterns.

    A gated neuron :math:`u_i \ne 0` is split by C-ReLU into :math:`v_i - w_i` with
    :math:`v_i, w_i \in \mathcal K_i`; the candidate blocks are, first, for every gated neuron
    (largest :math:`\|D_iX_au_i\|` first) the sign :math:`\sigma` whose cone :math:`\sigma u_i`
    violates least (relative violation :math:`\|(S_i X_a\sigma u_i)_-\| / \|X_a u_i\|`), then the
    other signs, least violated first.

    **Size.** With the restricted cost :math:`T(k)` (:func:`restricted_seconds`) superlinear in
    ``k``, a working set that doubles from ``k_0`` up to the final size :math:`K` costs
    :math:`\sum_j T(K/2^j) \ge T(K)` plus one certificate scan per round, so the cheapest start
    is the expected final size itself: ``_SUPPORT_RATIO`` times the gated support (the candidates
    in the order above), cut to the largest ``k`` with :math:`T(k) \le` ``budget_seconds``.

    Returns
    -------
    ndarray of bool, shape (2, P)
        Row 0: blocks :math:`v_i`, row 1: blocks :math:`w_i`.
    """
    n, d = Xa.shape
    P = masks.shape[1]
    out = np.zeros((2, P), dtype=bool)
    supp = np.flatnonzero(np.linalg.norm(U, axis=1) > 0)
    if supp.size == 0:
        return out
    S = 2.0 * np.asarray(masks[:, supp], dtype=np.float64) - 1.0  # (n, s)
    Z = Xa @ U[supp].T  # (n, s)
    scale = np.maximum(np.linalg.norm(Z, axis=0), 1e-300)
    viol = np.stack([np.linalg.norm(np.minimum(S * Z, 0.0), axis=0),
                     np.linalg.norm(np.minimum(-S * Z, 0.0), axis=0)]) / scale  # (2, s): sign rows
    fitn = np.linalg.norm(np.asarray(masks[:, supp], dtype=np.float64) * Z, axis=0)
    best = np.argmin(viol, axis=0)
    order = np.argsort(-fitn, kind="stable")
    cand = [(int(best[j]), int(supp[j])) for j in order]
    other = np.argsort(viol[1 - best, np.arange(supp.size)], kind="stable")
    cand += [(int(1 - best[j]), int(supp[j])) for j in other]
    if exclude is not None:
        cand = [c for c in cand if not exclude[c]]
    k = min(len(cand), int(np.ceil(_SUPPORT_RATIO * supp.size)))
    quad = bool(getattr(loss, "unit_curvature", False))
    while k > 1 and restricted_seconds(n, k, d, quad) > budget_seconds:
        k = int(0.8 * k)
    for c in cand[:k]:
        out[c] = True
    return out


@one_blas_thread
def solve_relu_active_set(
    Xa: np.ndarray,
    masks: np.ndarray,
    y: np.ndarray,
    lam: float,
    loss: Loss,
    *,
    v_screen: np.ndarray | None = None,
    U_screen: np.ndarray | None = None,
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
    eps_rel: float = 1e-2,
    eps_max: float = 1e-8,
    rows_per_block: int | None = None,
    add_limit: int = 16,
    prune: bool = True,
    iterations0: int = 0,
    flops0: float = 0.0,
    t0: float | None = None,
    report: Callable[[int, float, float, float, str], None] | None = None,
    restricted: str = "ipm",
    warm_starts: bool = True,
    deadline: float | None = None,
    max_iterations: int | None = None,
    eps_loose: float = 3e-2,
    loose_above: float = 0.05,
    loose_flops: float = 3e7,
    prune_loose: float = 0.05,
    prune_flops: float = 1e10,
    prune_resume: float = 1e-2,
    full_share: float = 0.5,
    full_vars: int | None = None,
    full_ratio: float = 2.5,
    full_blocks: float = FULL_BLOCKS_SHARE,
    start_full: bool = False,
    gates: np.ndarray | None = None,
    facets: bool | ChamberFacets = True,
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
    U_screen : ndarray, shape (P, d'), optional
        The C-GReLU solution with the same patterns (the screening solve): the initial working
        set is chosen from its support by :func:`gated_start` (one sign per gated neuron, the sign
        whose cone it violates least, plus the other signs that are nearly feasible, as many as
        the expected final working set).
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
        Tolerance of the restricted solves (the tightest they are solved to before ``eps_min``).
    eps_rel, eps_max : float
        The restricted solves first run to the looser tolerance
        :math:`\max(\epsilon, \min(\epsilon_{\text{rel}}\,\text{tol}, \epsilon_{\max}))`: an
        exact restricted optimum on the right working set has certified gap zero, so a solve to a
        small fraction of ``tol`` leaves the certificate room, and the interior point stops
        earlier (fewer iterations at its rounding floor). Convergence is decided by the global
        certificate as always: when a round finds no violated block but the certified gap is
        above ``tol``, the same working set is solved again to ``eps`` (then tighter, see
        ``eps_min``).
    eps_min : float
        When no block is violated but the gap is above ``tol`` (the restricted solve is the
        bottleneck, typically the exponential cones of the logistic loss), the same working set
        is solved again with ``eps`` divided by 100, down to ``eps_min``.
    rows_per_block : int, optional
        Row generation of the restricted solves (initial cone rows per block, see
        :func:`solve_restricted`); default: the facet rows (``facets`` below) where available,
        else :func:`cone_rows` (all rows below a few thousand samples); ``n`` or more: all rows.
    add_limit : int
        Violated blocks added per round: at most ``max(add_limit, |W|)`` (the most violated
        first), so the working set can double per round.
    prune : bool
        Drop blocks that are zero in the restricted solution from the working set (each block
        at most once, so the loop still terminates); keeps the restricted programs small.
    iterations0 : int
        Iterations already spent (screening), added to the reported count.
    flops0 : float
        Floating-point operations already spent (screening), added to :attr:`ActiveSetResult.flops`.
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
    deadline : float, optional
        A ``time.perf_counter()`` value: no restricted solve starts after it (the first always
        runs); the loop then stops with ``reason="time_limit"`` and the last restricted solution,
        certified over all patterns as in every round.
    max_iterations : int, optional
        Iteration budget of the whole polish, ``iterations0`` included: no restricted solve starts
        once it is spent (reason ``"max_iter"``; a solve in progress finishes, its interior point
        takes at most 150 iterations).
    eps_loose, loose_above, loose_flops : float
        **Loose rounds.** While the certified relative gap of the last round is above
        ``loose_above`` (or before the first round, or while its point violates the cones by more
        than ``viol_tol``) the working set will almost surely change, so
        a restricted program costing at least ``loose_flops`` per interior-point iteration
        (:func:`convexnn.solvers.block_ipm.iteration_flops`) is solved only to the relative
        accuracy ``eps_loose``: its point prices the blocks outside the working set as well (any
        point gives a valid certificate; an accurate one only matters for the last working set),
        and with cone-row generation its rows are added only while violated by more than
        ``min(eps_loose, _ROWS_LOOSE)`` (relative; a point far outside its cones misleads the schedule).
        The default and its alternatives are measured in ``bench/RESULTS_scale.md``. When a loose round finds no violated block, the same working set is solved to the
        round's tolerance by *resuming* the loose solve from its last iterate (the continuation of
        the same interior-point path, typically 5-8 more iterations) instead of a new solve.
        The full program (every block in the working set) is never solved loosely: no block is left
        to price, so its loose solve was always resumed, with a round's scan and certificate in
        between (diabetes at 1e-3 ``lam_max``: 13 + 12 iterations and five rounds against 25 iterations
        and four, 1.30 s -> 1.18 s; a random logistic program of the held-out generator, n = 1364,
        d' = 39, another seed: 17.9 s -> 14.3 s).
        ``eps_loose <= eps`` switches loose rounds off.
    prune_loose, prune_flops, prune_resume : float
        **Thinning of loose rounds.** When a loose round's restricted program costs at least
        ``prune_flops`` per interior-point iteration, its blocks whose weight is at most
        ``prune_loose`` times the largest leave the working set (with ``prune``; each block at most
        once, as the zero blocks): after a round that adds blocks, and before the resume of a round
        that adds none (which then starts from the loose solve's last iterate on the blocks left).
        A block that the optimum still needs is violated again and returns through the pricing, so
        thinning costs at most a round; it pays where an iteration costs seconds (its cost is cubic
        in the working set, about half of which is zero at the optimum), and not on the smaller
        programs of ``bench/RESULTS_matrix.md``, where the extra rounds cost more than it saves.
        Once the blocks of one round's additions that the thinning had dropped are more than
        :data:`THIN_RETURN_SHARE` of all it dropped, no later round is thinned: the loose points do
        not tell this program's support (a held-out logistic program, n = 1365, d' = 41, P = 177 at
        2.6e-3 lam_max, thinned and regrew its working set for ten rounds: 123 s, 62 s with the rule,
        56 s without thinning).
        Below ``prune_flops`` blocks are pruned after accurate solves and, with the threshold
        ``prune_resume`` (1% of the largest weight), before the resume of a loose round that adds
        none: the resume's iterations cost cubically in the working set, and a block that small in
        a loose solve at 3% accuracy is almost always zero at the optimum (measured on
        ``bench/RESULTS_matrix.md`` and held-out programs: up to 13% less time, never more than
        the noise; ``prune_resume = 0`` keeps them all). The full program (every block in the
        working set) is not thinned: it was taken so that no block can be missing, and its loose
        solve does not tell the support yet (held-out programs: logistic, n = 1375, d' = 28,
        P = 105, five cycles of thinning and regrowing, 220 s; Huber, n = 1271, d' = 36, P = 166,
        three more rounds after thinning 164 of its 332 blocks).
    full_share, full_vars, full_ratio, full_blocks : float, int, float, float
        **Full program.** When the working set's patterns cover at least ``full_share`` of the
        ``P`` patterns, the full program has at most ``full_vars`` unit variables (:math:`Pd'`), and
        one interior-point iteration on it costs at most ``full_ratio`` times one on the working set
        (:func:`convexnn.solvers.block_ipm.iteration_flops`), the next round holds all ``2P`` blocks:
        a dense support is reached in one round instead of a doubling schedule, and no block can
        be missing. ``full_share > 1`` switches it off. ``full_vars`` defaults to :data:`FULL_VARS`.
        Whatever the size, the next round holds all blocks once the working set holds the share
        ``full_blocks`` of them (:data:`FULL_BLOCKS_SHARE`; above 1: never): one iteration on the full
        program then costs little more, and the rounds that remain would each add a few blocks (on programs close to least absolute
        deviations, the Huber loss with targets far beyond its threshold, whose restricted dual
        optima price the blocks outside poorly until the very last ones are in: 18 rounds against
        6 on a held-out program of n = 800, d' = 31, P = 100, 69 s against 21 s).
    start_full : bool
        Start with all ``2P`` blocks (no screening): for small programs whose support is known to
        be dense (the first-order driver asks for it when ``lam_max / lam >=`` :data:`FULL_START_RATIO`
        and ``P d' <=`` :data:`FULL_VARS`).
    gates : ndarray, shape (d', P), optional
        A direction inside each pattern's chamber (the witness gates of
        :class:`~convexnn.arrangements.patterns.Patterns`), for the facets below.
    facets : bool or ChamberFacets
        **Facet rows** (with the default ``rows_per_block``). When the rank of ``Xa`` is at most
        :data:`~convexnn.arrangements.facets.FACET_MAX_RANK`, the restricted interior-point solves
        start from the facets of each block's chamber (:class:`~convexnn.arrangements.facets.ChamberFacets`,
        typically 10-40 of the ``n`` rows) instead of all rows; the rows it leaves out are implied,
        and row generation adds any that the hull missed, so the restricted optimum is the same. An
        interior-point solve then needs fewer and cheaper iterations (measured in ``docs/solvers.md``).
        A :class:`~convexnn.arrangements.facets.ChamberFacets` of the same ``Xa`` is used (and
        extended) as it is: a caller that solves several pattern sets on one data set (e.g.
        :func:`convexnn.duality.global_opt.solve_global`) computes each chamber's hull once; its
        gates are replaced by ``gates`` when given.

    Returns
    -------
    ActiveSetResult
        ``converged`` is True when the certified relative gap is ``<= tol`` and the relative
        violation ``<= viol_tol``; otherwise ``reason`` says why the loop stopped
        (``"no_violated_block"``: the restricted solve's accuracy limits the gap;
        ``"max_rounds"``; ``"too_many_blocks"``; ``"solver_error"``; ``"time_limit"``; ``"max_iter"``).
    """
    t0 = time.perf_counter() if t0 is None else t0
    Xa = np.asarray(Xa, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    y = np.asarray(y, dtype=np.float64)
    n, d = Xa.shape
    P = masks.shape[1]
    max_blocks = 2 * P if max_blocks is None else int(max_blocks)
    # the chambers' facet rows, unless the caller fixed the rows per block
    facet_rows = None
    if isinstance(facets, ChamberFacets):  # the caller's, shared across solves on the same data
        if facets.n != n:
            raise ValueError(f"facets were computed for {facets.n} samples; the data has {n}.")
        facet_rows = facets if rows_per_block is None and restricted == "ipm" else None
        if facet_rows is not None and gates is not None:
            facet_rows.set_gates(gates)
    elif facets and rows_per_block is None and restricted == "ipm":
        facet_rows = ChamberFacets(Xa, gates)
    if facet_rows is not None and not facet_rows.available:
        facet_rows = None
    rows_per_block = cone_rows(n, d) if rows_per_block is None else int(rows_per_block)
    active = np.zeros((2, P), dtype=bool)
    V = np.zeros((P, d)) if V0 is None else np.array(V0, dtype=np.float64)
    W = np.zeros((P, d)) if W0 is None else np.array(W0, dtype=np.float64)
    Gam = np.zeros((n, 2 * P))
    history: list[dict[str, float]] = []
    iters = int(iterations0)
    spent = float(flops0)  # flops by the cost models (ActiveSetResult.flops)
    scan_cost = scan_flops(n, d, P)

    thinned = np.zeros_like(active)  # the blocks dropped by the thinning of loose rounds

    def record(cert: PolishCertificate, vr: float, rnd: int, extra: str, restricted_eps: float = 0.0) -> None:
        history.append({"iter": iters, "time": time.perf_counter() - t0, "objective": cert.primal,
                        "rel_gap": cert.rel_gap, "violation": vr, "round": rnd,
                        "working_set": int(active.sum()), "restricted_eps": restricted_eps,
                        "thinned": int(thinned.sum())})
        if report is not None:
            report(iters, cert.primal, cert.rel_gap, vr, extra)

    cert: PolishCertificate | None = None
    va = vr = 0.0
    # the cone projections of the blocks found violated (screening, scans): the reference directions
    # of their first cone rows in the next restricted solve (row generation)
    dirs: dict = {}
    if V0 is not None or W0 is not None:
        active[0] |= np.linalg.norm(V, axis=1) > 0
        active[1] |= np.linalg.norm(W, axis=1) > 0
        cert = certify_relu(Xa, masks, y, lam, loss, V, W)
        va, vr = violation(Xa, masks, V, W)
        record(cert, vr, 0, "warm start")
        spent += scan_cost  # the certificate's scan
        if cert.rel_gap <= tol and vr <= viol_tol:
            return ActiveSetResult(V, W, cert, va, vr, Gam, int(active.sum()), active, 0, iters, True, "certified",
                                  history, spent)
        spent += scan_cost
        add, _ = screen_blocks(Xa, masks, cert.v, lam * screen_level, cert.bounds, exclude=active,
                               limit=screen_limit, directions=dirs)
        active[add[:, 0], add[:, 1]] = True
    if start_full:
        active[:] = True  # no screening: every block is in
    else:
        if U_screen is not None:
            active |= gated_start(Xa, masks, np.asarray(U_screen, dtype=np.float64), loss, exclude=active)
        if v_screen is not None:
            spent += scan_cost
            add, _ = screen_blocks(Xa, masks, np.asarray(v_screen, dtype=np.float64), lam * screen_level,
                                   exclude=active, limit=screen_limit, directions=dirs)
            active[add[:, 0], add[:, 1]] = True
    if not active.any():
        # nothing screened in: the blocks most violated at the zero solution
        v0 = -np.asarray(loss.grad(np.zeros(n), y), dtype=np.float64)
        spent += scan_cost
        add, _ = screen_blocks(Xa, masks, v0, lam, exclude=active, top=8, directions=dirs)
        active[add[: max(1, min(8, len(add))), 0], add[: max(1, min(8, len(add))), 1]] = True
    reason = "max_rounds"
    rounds = 0
    dropped = np.zeros_like(active)
    thinning = prune
    warm = None
    # tightened to eps when it limits the gap
    eps_round = max(float(eps), min(float(eps_rel) * float(tol), float(eps_max)))
    tight = False
    quad = bool(getattr(loss, "unit_curvature", False))
    gram_cache = PatternGram(Xa, masks) if quad and restricted == "ipm" else None
    # the full program is small enough to be a round of its own (see full_share)
    full_fits = 2 * P <= max_blocks
    full_allowed = full_fits and P * d <= (FULL_VARS if full_vars is None else full_vars)
    # the multipliers of every block's last projection, kept across the rounds' scans (scan_blocks)
    proj_cache: dict = {}
    while rounds < max_rounds:
        if rounds and deadline is not None and time.perf_counter() >= deadline:
            reason = "time_limit"
            break
        if max_iterations is not None and iters >= max_iterations:
            reason = "max_iter"
            break
        rounds += 1
        # far from the certificate (the working set will change again; the gap of a point that
        # violates its cones says nothing) and a costly restricted program: a loose restricted
        # solve, resumed to eps_round when it leaves nothing to add
        flops = iteration_flops(n, int(active.sum()), d, quad)[0]  # of this round's restricted program
        loose = ((cert is None or cert.rel_gap > loose_above or vr > viol_tol) and not tight
                 and flops >= loose_flops and not active.all())
        eps_now = max(eps_round, eps_loose) if loose else eps_round
        resume, tight = tight, False
        try:
            v_ref = cert.v if cert is not None else (None if v_screen is None else np.asarray(v_screen, float))
            V_ref, W_ref = V, W
            if dirs and rows_per_block is not None and rows_per_block < n:
                V_ref, W_ref = V.copy(), W.copy()
                for (row, i), q in dirs.items():
                    U = V_ref if row == 0 else W_ref
                    if active[row, i] and not U[i].any():
                        U[i] = q
            dirs = {}
            rs = solve_restricted(Xa, masks, y, lam, loss, active, V_ref=V_ref, W_ref=W_ref, v_ref=v_ref, eps=eps_now,
                                  rows_per_block=rows_per_block, solver=restricted,
                                  warm=warm if warm_starts else None, resume=resume, gram_cache=gram_cache,
                                  accept=IPM_ACCEPT_TOL * tol, relaxed=min(eps_now, _ROWS_LOOSE) if loose else 0.0,
                                  facets=facet_rows)
        except Exception as exc:  # noqa: BLE001  (cvxpy.error.SolverError, numerical failures)
            reason = f"solver_error: {exc}"
            break
        iters += rs.iterations
        spent += rs.flops + scan_cost  # the restricted solve and the scan below
        V, W, Gam = rs.V, rs.W, rs.multipliers
        if loose:  # its point may violate the cones (``relaxed``); it only prices the blocks
            va, vr = violation(Xa, masks, V, W)
        else:  # blocks of rounding noise that violate their cones are projected onto them
            V, W, va, vr = _onto_cones(Xa, masks, V, W, viol_tol)
        warm = rs.warm
        # one scan gives the violated blocks outside the working set and, when it is complete,
        # the exact s(v); after an early stop the certificate uses the cheap bounds (valid, loose)
        primal, fit = _primal(Xa, masks, y, lam, loss, V, W)
        # the dual candidate: the interior point's own where it has one (its cone multipliers pair with
        # it), else -grad f at the point; the certificate is valid for any
        v = rs.dual if rs.dual is not None else -np.asarray(loss.grad(fit, y), dtype=np.float64)
        # the working set may double per round (at least add_limit new blocks): dense supports are
        # reached in a logarithmic number of restricted solves
        limit = max(add_limit, int(active.sum()))
        # the restricted solve's cone multipliers bound s_b(v) of the working-set blocks without an
        # NNLS; when that leaves the gap above tol with no block to add, the exact scan decides
        add, s_exact, bounds, nn = scan_blocks(Xa, masks, v, lam, active, limit, multipliers=Gam, directions=dirs,
                                               cache=proj_cache)
        cert = _certificate(primal, v, y, lam, loss, float(bounds.max()) if s_exact is None else s_exact,
                            bounds, nn)
        if add.shape[0] == 0 and cert.rel_gap > tol and s_exact is not None:
            spent += scan_cost
            add, s_exact, bounds, nn2 = scan_blocks(Xa, masks, v, lam, active, limit, directions=dirs,
                                                    cache=proj_cache)
            cert = _certificate(primal, v, y, lam, loss, float(bounds.max()) if s_exact is None else s_exact,
                                bounds, nn + nn2)
        record(cert, vr, rounds, f"round {rounds} blocks {int(active.sum())} s/lam {cert.s / lam:.3g}", eps_now)
        if cert.rel_gap <= tol and vr <= viol_tol:
            reason = "certified"
            break
        # a loose round of a costly program: its small blocks leave the working set (see prune_loose)
        thin = loose and thinning and warm is not None and flops >= prune_flops
        if add.shape[0] == 0:
            if eps_now > eps_round:
                tight = True  # a loose solve found nothing to add: the same working set, to eps_round
                rel = prune_loose if thin else prune_resume
                # the full program keeps its blocks: it was taken so that none can be missing, and a loose
                # solve does not tell its support yet (held-out programs, logistic and Huber: the blocks
                # thinned here came back a few at a time, two solves of the full program's size each)
                small = (_zero_blocks(V, W, active & ~dropped, rel) if prune and rel > 0 and warm is not None
                         and "last" in warm[0] and not active.all() else None)
                if small is not None and 0 < small.sum() < active.sum():
                    # the resume continues from the loose solve's last iterate, on the blocks left
                    active &= ~small
                    dropped |= small
                    if thin:
                        thinned |= small
                    warm = (warm[0]["last"], warm[1], warm[2])
                continue
            if eps_round > eps_min:
                # no block to add: the restricted solve's accuracy limits the certificate;
                # solve the working set again, tighter, without its zero blocks (they only add
                # degenerate cones at the interior point's rounding floor)
                eps_round = eps if eps_round > eps else max(eps_round * 1e-2, eps_min)
                if prune:
                    # only blocks whose dual constraint is strictly inactive (a tiny nonzero block
                    # dropped here would cap the gap above tol without being violated)
                    zero = _zero_blocks(V, W, active & ~dropped)
                    flat = zero.reshape(-1)  # a view: zero is contiguous
                    cols = np.flatnonzero(flat)
                    flat[cols[multiplier_bounds(Xa, masks, v, Gam, cols) > (1.0 - 1e-3) * lam]] = False
                    if zero.sum() < active.sum():
                        active &= ~zero
                        dropped |= zero
                        warm = None
                continue
            reason = "no_violated_block"
            break
        if prune:
            # zero blocks leave the working set (the restricted optimum without them is the same
            # point; after a thinned loose round also the small ones), each at most once: a block
            # that comes back stays, so the loop terminates
            zero = _zero_blocks(V, W, active & ~dropped, prune_loose if thin else _ZERO_REL)
            active &= ~zero
            dropped |= zero
            if thin:
                thinned |= zero
        if int(active.sum()) >= max_blocks:
            reason = "too_many_blocks"
            break
        add = add[: max(1, min(limit, max_blocks - int(active.sum())))]
        # blocks the thinning dropped are violated again: past THIN_RETURN_SHARE of them, no more thinning
        if thinning and thinned[add[:, 0], add[:, 1]].sum() > THIN_RETURN_SHARE * thinned.sum():
            thinning = False
        active[add[:, 0], add[:, 1]] = True
        if ((full_fits and active.sum() >= full_blocks * 2 * P)
                or (full_allowed and _go_full(active, n, d, quad, full_share, full_ratio))):
            active[:] = True  # the full program (see full_share, full_blocks)
    if cert is None:  # the first restricted solve failed: certify the starting point
        cert = certify_relu(Xa, masks, y, lam, loss, V, W)
        spent += scan_cost
        va, vr = violation(Xa, masks, V, W)
    return ActiveSetResult(V, W, cert, va, vr, Gam, int(active.sum()), active, rounds, iters,
                           reason == "certified", reason, history, spent, proj_cache)
