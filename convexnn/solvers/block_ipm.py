r"""A primal-dual interior-point method for the restricted two-layer programs, specialized to their
block structure.

The active-set polishes (:mod:`convexnn.solvers.active_set`, :mod:`convexnn.solvers.gated_active_set`)
repeatedly solve the program restricted to a working set of ``k`` blocks :math:`x_b \in \mathbb R^{d'}`:

.. math::

    \min_{x}\ f(Fx) + \lambda \sum_{b=1}^k \|x_b\|_2
    \quad\text{s.t.}\quad S_b \odot (X_a x_b) \ge 0\ \ (b = 1..k),
    \qquad F = [\sigma_b D_{i_b} X_a]_{b=1}^k \in \mathbb R^{n\times k d'},

with :math:`D_{i} = \operatorname{diag}(m_i)`, :math:`S_b = 2 m_{i_b} - 1` (the cone
:math:`\mathcal K_{i_b}` of C-ReLU; no cone rows for C-GReLU) and :math:`\sigma_b = \pm 1` (the
:math:`v_i` or :math:`w_i` of C-ReLU). In conic form with one epigraph variable :math:`\tau_b` per
block,

.. math::

    \min_{x,\tau}\ f(Fx) + \lambda\mathbf 1^\top\tau \quad\text{s.t.}\quad
    s_\ell = C x \ge 0,\quad s_b = (\tau_b, x_b) \in \mathcal Q^{d'+1},

:math:`C = \operatorname{blkdiag}(\operatorname{diag}(S_b) X_a)`. This is solved by the
infeasible-start primal-dual path-following method with Nesterov--Todd scaling and Mehrotra's
predictor-corrector (Vandenberghe, "The CVXOPT linear and quadratic cone program solvers", 2010;
Nesterov & Todd, "Primal-dual interior-point methods for self-scaled cones", SIAM J. Optim. 1998;
Mehrotra, SIAM J. Optim. 1992). A smooth non-quadratic loss enters through its gradient and its
diagonal Hessian :math:`\nabla^2 f = \operatorname{diag}(f'')` at the current point (the Newton
system of the nonlinear program; :class:`~convexnn.formulations.losses.Loss` supplies
``value_on`` / ``grad_on`` / ``curvature_on``).

**The Huber loss** has no curvature in its linear tails, where the Newton systems above are
singular along the directions that only move samples there (the iterates stalled or ran off). It is
solved in its exact split form instead (:meth:`~convexnn.formulations.losses.Loss.outlier_split`):
:math:`h_\delta(r) = \min_a \tfrac12(r - a)^2 + \delta|a|`, so with one outlier
:math:`a_j = p_j - q_j`, :math:`p, q \ge 0`, per sample the program becomes the squared loss of
:math:`\rho = Fx - y - p + q` plus :math:`\delta\mathbf 1^\top(p + q)`, and :math:`p, q` with their
multipliers :math:`z_p = \delta - \rho`, :math:`z_q = \delta + \rho` are four more LP variables per
sample. Eliminating :math:`\Delta p, \Delta q` (a ``2 x 2`` system per sample) leaves the system above
with the curvature :math:`w_j = 1/(1 + p_j/z_{p,j} + q_j/z_{q,j}) \in (0, 1)`: near 1 on the samples
inside :math:`\pm\delta`, near 0 on the outliers, never singular (Huber, "Robust estimation of a
location parameter", Ann. Math. Statist. 1964; the same split as CVXPY's conic form of ``huber``).
The centrality correctors below include these pairs and run at every size: without them the steps
of this degenerate, LP-like program stayed short for dozens of iterations.

**Block structure.** Eliminating the slacks and multipliers (scalings :math:`W`) leaves the
system in :math:`(x, \tau)`

.. math::

    \Big(F^\top \operatorname{diag}(f'') F + C^\top W_\ell^{-2} C + W_{\mathcal Q}^{-2}\Big)\Delta = r .

:math:`C^\top W_\ell^{-2} C` is block diagonal because every cone row touches one block:
:math:`\operatorname{blkdiag}_b(X_a^\top \operatorname{diag}(z_b / s_b) X_a)` (:math:`S_b^2 = 1`),
all ``k`` blocks in one ``(k, n) x (n, d'(d'+1)/2)`` matrix product. Each :math:`\tau_b` couples only to
:math:`x_b` through the ``(d'+1) x (d'+1)`` block of :math:`W_{\mathcal Q}^{-2}` and is eliminated
by a per-block Schur complement, so each iteration factorizes one dense matrix by Cholesky (the
Gram matrix is formed once for the squared loss). The ``k n`` cone rows cost
:math:`O(k n d'^2/2)` per iteration (the symmetric products :math:`x_jx_j^\top`, upper triangle
only) and never enter a factorization. With ``rows`` (row generation by the caller) each block
carries ``r`` of its ``n`` rows, gathered once, and they cost :math:`O(k r d'^2)` (:class:`_ConeRows`).

The reduced ``d' x d'`` block of a cone, the Schur complement of :math:`(W^{-2})_{00}` in
:math:`W^{-2}`, is formed in closed form (:func:`_nt_scaling`). Near the end the blocks of the groups
that are nonzero at the optimum have one eigenvalue (their radial direction) many orders of magnitude
below the others, and the explicit Schur complement of the entries of :math:`W^{-2}` loses it to
cancellation: where the loss adds little curvature along that direction (logistic loss with columns
whose scales spread over seven decades) the reduced matrix was then indefinite in rounding, the
Woodbury and dense solves needed regularization, and the solves stalled at relative residuals of
:math:`10^{-7}` to :math:`10^{-5}`.

**Balanced centring.** Mehrotra's centring parameter :math:`\sigma = (1 - \alpha_{\text{aff}})^3` is
raised so that the relative complementarity aimed at, :math:`\sigma` times the present one, is at
least :data:`_BALANCE` times the larger relative residual: infeasibility and complementarity then
decrease together, as in the neighbourhoods of infeasible path-following methods (Wright,
*Primal-Dual Interior-Point Methods*, SIAM 1997, ch. 6). Without it the complementarity can run
ahead of a dual residual that the loss lets decrease only slowly (logistic loss on nearly separable
samples, whose curvature is exponentially small), the iterates reach the cone boundaries with the
residual still at :math:`10^{-7}`, and the steps shrink to nothing. On ten logistic C-GReLU programs
of 110 samples with column scales over seven decades (drawn like the ``stress`` group of
``bench/bench_heldout.py``, other seeds) the two changes together took the interior point over all
groups from 4 to 10 certified (0.04-0.17 s each); on the matrix's programs and 58 random small ones
the iteration counts stayed within a few of before.

**Blocks of one pattern.** The :math:`v_i` and :math:`w_i` of C-ReLU share their columns of
:math:`F` up to sign, so the loss term depends on :math:`v_i - w_i` only: the dense system is
solved over *units* (a block alone, or the two blocks of one pattern), with the second block of a
pair eliminated by a ``d' x d'`` Schur complement (:class:`_UnitSystem`). The dense matrix has one
``d'`` block per unit, ``u d' x u d'``: a working set holding both blocks of every pattern
factorizes a matrix of half the size (one eighth of the flops).

**Memory of large working sets.** With the squared loss :math:`F` itself is never formed (``n x k
d'``: 7.5 GB at :math:`n = 10^5` with 184 blocks of :math:`d' = 51`): :math:`(F^\top F)_{bc} =
\sigma_b\sigma_c X_a^\top\operatorname{diag}(m_{i_b}\circ m_{i_c})X_a` depends on the patterns only,
so :func:`pattern_gram` computes it over the distinct patterns (the :math:`v_i` and :math:`w_i` of C-ReLU
share one) by products over blocks of rows, and :class:`PatternGram` keeps it across the working
sets of a polish (only the patterns new to a working set cost products with the data). The dense
factorization overwrites the reduced matrix in place, in one buffer kept for the whole solve (a
fresh ``u d' x u d'`` array per iteration paid its page faults every time: 1.5 s at
``u d' = 9384`` on the benchmark's virtual machine); the refinement step multiplies with the
triangle the factor leaves intact.
A general conic solver (Clarabel) factorizes the sparse KKT system with all ``k n`` rows instead.

**Few samples, many blocks.** :math:`F^\top\operatorname{diag}(f'')F` has rank at most ``n``;
when that is cheaper by flop count (:func:`iteration_flops`: :math:`n^2ud'` for the symmetric
rank-``ud'`` update against :math:`(ud')^3/3` for the dense Cholesky) the reduced matrix is solved
by the Sherman--Morrison--Woodbury identity on its block-diagonal part (``k`` factorizations of size
``d'`` and one of size ``n``; the two blocks :math:`v_i`, :math:`w_i` of one pattern share
:math:`F_b` up to sign, so their terms of the ``n x n`` capacitance matrix merge into one, see
:func:`_merged_rows`), for any smooth loss (the curvature enters as
:math:`\operatorname{diag}(f'')^{1/2}F`), without forming :math:`F^\top F`. The Woodbury solution is
refined against the reduced matrix itself, by iterative refinement and, when that stalls, by
conjugate gradients preconditioned with the Woodbury solve (near the end the block scalings spread
over many orders of magnitude and the identity loses digits). An iteration whose refined solve is
still not accurate (or whose ``d' x d'`` blocks are not numerically positive definite) falls back
to the dense Cholesky when that costs at most one Woodbury iteration (four without cone rows);
otherwise the block factors are rebuilt from eigendecompositions with the small eigenvalues floored (a better
conditioned preconditioner, the refinement corrects it), and if that fails too the dense Cholesky
takes over, or, once the iterate is accurate to :math:`10^{-8}`, the solve ends at its best
iterate. A dense Cholesky costlier than a Woodbury iteration serves the failed iteration only: the
next one tries the Woodbury solve again. The failures are typically confined to the first
iterations of a solve resumed near the cone boundaries; a held-out C-ReLU Huber program (n = 153,
d' = 28, 172 blocks) spent 7.4 s in a tight solve of 18 iterations, all dense, and 1.6 s with the
Woodbury solve retried (2 dense), 12-13 s in total against 4.0-4.5 s; on the matrix's C-ReLU cells
and 42 random small ones the iteration counts did not change.

**Centrality correctors.** After Mehrotra's predictor-corrector direction, up to
:data:`_CORRECTORS` correctors of Gondzio ("Multiple centrality corrections in a primal-dual
method for linear programming", Comput. Optim. Appl. 1996) aim the complementarity products of a
longer trial step into :math:`[0.1, 10]\sigma\mu` (the cone rows one by one; for the
second-order cones the eigenvalues :math:`u_0 \pm \|u_1\|` of the Jordan product of the badly
centred ones); a corrected direction is kept only when it lengthens the step. Each costs one more
solve with the same factorization; small C-ReLU programs (fewer than
:data:`_CORRECTOR_MIN_FLOPS` per iteration) use none.

**Warm starts.** Successive working sets of the polishes overlap; :func:`warm_start` builds a
strictly interior start for a new working set from an interior iterate of the previous solve
(kept blocks keep their primal and dual iterates, new blocks start at zero on the central path of
the same complementarity). The method being an infeasible-start one, any interior point is a
valid start, and the final answer does not depend on it. A solve stopped at a loose tolerance is
resumed to a tighter one from its final iterate (``state["last"]``): the same path, continued.

The output is a point and the cone multipliers :math:`z_\ell \ge 0`; whatever accuracy it reaches,
the polishes certify their final answer with the global duality gap over **all** patterns, which
does not depend on how the restricted program was solved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.linalg
from scipy.linalg.lapack import dtrtri as _dtrtri

from convexnn.arrangements.limits import parallel_blas
from convexnn.backend import NUMPY
from convexnn.formulations.blocks import block_design
from convexnn.formulations.losses import Loss

__all__ = ["BlockIPMResult", "PatternGram", "iteration_flops", "pattern_gram", "solve_block_ipm", "warm_start"]

#: Gondzio centrality correctors per iteration at most (cone rows)
_CORRECTORS = 2
#: programs with cone rows whose iteration costs fewer flops (:func:`iteration_flops`) use no
#: correctors: there a corrector's Python overhead exceeds the factorization it reuses
_CORRECTOR_MIN_FLOPS = 1e7
_STEP = 0.99  # fraction of the step to the boundary
#: balanced centring: Mehrotra's centring parameter is raised so that the relative complementarity
#: aimed at is at least this times the larger relative residual (see the module docstring)
_BALANCE = 0.1
#: the dense Cholesky solve of an unregularized reduced system is refined (one step) only once the
#: relative gap is below this: earlier the directions need no more than a backward-stable solve (the
#: infeasible method corrects residuals in the next iteration), and on small programs the step cost
#: 6-10% of an iteration (bench/RESULTS_matrix.md)
_REFINE_BELOW = 1e-4
#: relative residual of the refined Woodbury solve above which the dense Cholesky takes over
_LOW_RANK_RTOL = 1e-10
#: refinement steps of the Woodbury solve at most (each one product with the reduced matrix)
_REFINE_MAX = 4
#: a failed Woodbury solve ends the solve at the best iterate, instead of a dense fallback much
#: costlier than the Woodbury iterations, once the relative residuals and gap are below this
_LOW_RANK_STOP = 1e-8
#: preconditioned conjugate-gradient steps at most when the refinement stalls
_CG_MAX = 60
#: a failed Woodbury solve falls back to the dense Cholesky at once, and for the rest of the solve, only
#: when one dense factorization costs at most this many Woodbury iterations (programs with cone rows;
#: without: ``_DENSE_RATIO_GATED``); otherwise the floored block factors are tried first, and a dense
#: fallback serves that iteration only (measured in
#: bench/RESULTS_matrix.md, section "C-ReLU polish: looser early rounds, multiplier bounds")
_DENSE_RATIO = 1.0
_DENSE_RATIO_GATED = 4.0


def iteration_flops(n: int, k: int, d: int, quadratic: bool, units: int | None = None) -> tuple[float, bool]:
    r"""Floating-point operations of one iteration on ``k`` blocks of ``d`` variables, and whether
    the Sherman--Morrison--Woodbury solve is the cheaper one.

    ``units``: the distinct patterns of the blocks, counting a pattern shared by two blocks (the
    :math:`v_i`, :math:`w_i` of C-ReLU) once (:class:`_UnitSystem`; default ``k``). With
    :math:`u` = ``units``: dense: the Cholesky factorization of the ``u d x u d`` reduced matrix,
    :math:`(ud)^3/3`, and for a non-quadratic loss the product
    :math:`F_u^\top\operatorname{diag}(f'')F_u`, :math:`n(ud)^2` (symmetric). Woodbury:
    :math:`H^\top H` with :math:`H` of ``u d`` merged rows and ``n`` columns, :math:`n^2ud`
    (symmetric rank update), the Cholesky of size ``n``, :math:`n^3/3`, the ``k`` block
    products :math:`2knd^2` and the refinement steps with :math:`F`. Both add the residuals,
    :math:`O(nkd)`, and the ``k`` per-block ``d x d`` terms.
    """
    nx = float(k * d)
    nu = float((k if units is None else units) * d)
    base = 12.0 * n * nx + 40.0 * k * d ** 3
    dense = nu ** 3 / 3.0 + 6.0 * nu ** 2 + (0.0 if quadratic else n * nu ** 2)
    wood = n * n * nu + n ** 3 / 3.0 + 2.0 * k * n * d * d + 16.0 * n * nx
    return base + min(dense, wood), wood < dense


def _syrk_t(H: np.ndarray) -> np.ndarray:
    r""":math:`I + H^\top H` (upper triangle valid) by one symmetric rank-k update (BLAS ``dsyrk``)."""
    S = scipy.linalg.blas.dsyrk(1.0, H.T, trans=0)  # H.T is F-contiguous: (H^T)(H^T)^T = H^T H
    S[np.diag_indices_from(S)] += 1.0
    return S


_POTRF, _POTRS = scipy.linalg.lapack.dpotrf, scipy.linalg.lapack.dpotrs
_SYMV, _SYRK, _GEMM = scipy.linalg.blas.dsymv, scipy.linalg.blas.dsyrk, scipy.linalg.blas.dgemm


def _cho_factor(K: np.ndarray, overwrite: bool = False) -> tuple[np.ndarray, bool]:
    """Upper Cholesky factor of ``K`` (its upper triangle is read) by LAPACK ``dpotrf`` directly, in the
    ``(c, lower)`` form of ``scipy.linalg.cho_factor`` (whose argument checks cost more than the
    factorization on the small systems of the polishes); ``LinAlgError`` when not positive definite.

    ``overwrite`` (``K`` symmetric and C-contiguous): factorize ``K`` in place, through its transpose
    (Fortran order, the same matrix), without LAPACK's copy; the factor's upper triangle (Fortran
    order) is then the lower triangle of ``K`` as an array, and the returned storage is ``K`` itself."""
    if overwrite and K.flags.c_contiguous:
        c, info = _POTRF(K.T, lower=0, clean=0, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"dpotrf info {info}")
        return K, True
    c, info = _POTRF(K, lower=0, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"dpotrf info {info}")
    return c, False


def _cho_solve(fact: tuple[np.ndarray, bool], b: np.ndarray) -> np.ndarray:
    """:math:`K^{-1} b` from :func:`_cho_factor` (LAPACK ``dpotrs``)."""
    x, info = _POTRS(fact[0].T if fact[1] else fact[0], b, lower=0)
    if info != 0:
        raise ValueError(f"dpotrs info {info}")
    return x


#: row blocks of the pattern Gram products hold at most this many bytes (the ``n x |W| d'`` matrix
#: :math:`F` of a large working set is never formed: 7.5 GB at n = 1e5, 184 blocks of d' = 51)
_GRAM_CHUNK_BYTES = 2 ** 27


def pattern_gram(Xa: np.ndarray, masks: np.ndarray, against: np.ndarray | None = None) -> np.ndarray:
    r"""Blocks :math:`X_a^\top \operatorname{diag}(m_p \circ m_q) X_a` of the Gram matrix of the patterns.

    With :math:`F_U = [D_p X_a]_{p}` over the columns ``p`` of ``masks`` (``n x u``), returns
    :math:`F_U^\top F_V` (``(u d') x (v d')``, ``V`` the columns of ``against``, default ``masks``)
    by products over blocks of rows (at most :data:`_GRAM_CHUNK_BYTES` per block), so neither
    :math:`F_U` nor :math:`F_V` is ever formed. The Gram matrix of the restricted program is
    :math:`(F^\top F)_{bc} = \sigma_b\sigma_c\,X_a^\top\operatorname{diag}(m_{i_b}\circ m_{i_c})X_a`:
    it depends on the patterns only, so the blocks :math:`v_i`, :math:`w_i` of one pattern share it.
    Each row block is accumulated into the result by one BLAS call, with no temporary of the
    result's size: ``dsyrk`` without ``against`` (one triangle, half the flops of a product, mirrored
    at the end), ``dgemm`` otherwise.
    """
    Xa = np.asarray(Xa, dtype=np.float64)
    n, d = Xa.shape
    A = np.asarray(masks).reshape(n, -1)
    B = A if against is None else np.asarray(against).reshape(n, -1)
    u, v = A.shape[1], B.shape[1]
    G = np.zeros((u * d, v * d))
    if u == 0 or v == 0:
        return G
    rows = max(1, int(_GRAM_CHUNK_BYTES // (8 * d * (u + v))))
    Gt = G.T  # the same memory in Fortran order: BLAS accumulates into it in place
    with parallel_blas(min(rows, n) * (u * d) * (v * d) * (1.0 if against is None else 2.0)):
        for a in range(0, n, rows):
            Xc = Xa[a:a + rows]
            Fa = (A[a:a + rows, :, None] * Xc[:, None, :]).reshape(Xc.shape[0], u * d)
            if against is None:  # Fa.T is Fortran-ordered: (Fa.T)(Fa.T)^T = Fa^T Fa, upper triangle of Gt
                Gt = _SYRK(1.0, Fa.T, beta=1.0, c=Gt, trans=0, lower=0, overwrite_c=1)
            else:
                Fb = (B[a:a + rows, :, None] * Xc[:, None, :]).reshape(Xc.shape[0], v * d)
                Gt = _GEMM(1.0, Fb.T, Fa.T, beta=1.0, c=Gt, trans_b=1, overwrite_c=1)  # G^T += Fb^T Fa
    G = Gt.T
    if against is None:
        _mirror_lower(G)
    return G


def _mirror_lower(G: np.ndarray, block: int = 1024) -> None:
    """Copy the lower triangle of the square ``G`` onto its upper triangle, in place, by row blocks."""
    m = G.shape[0]
    for a in range(0, m, block):
        b = min(a + block, m)
        D = G[a:b, a:b]
        iu = np.triu_indices(b - a, 1)
        D[iu] = D.T[iu]
        G[a:b, b:] = G[b:, a:b].T


class PatternGram:
    r"""The pattern blocks :math:`X_a^\top\operatorname{diag}(m_p\circ m_q)X_a` of a sequence of
    working sets, each computed once (:func:`pattern_gram`).

    Successive working sets of the active-set polish overlap; :meth:`of` returns the Gram matrix of
    the patterns asked for, computing only the rows of the patterns not seen before (against all the
    patterns kept) and keeping only the patterns of the last request.
    """

    def __init__(self, Xa: np.ndarray, masks: np.ndarray):
        self.Xa = np.asarray(Xa, dtype=np.float64)
        self.masks = masks
        self.ids = np.zeros(0, dtype=np.int64)
        self.G = np.zeros((0, 0))

    def of(self, patterns: np.ndarray) -> np.ndarray:
        r"""The Gram matrix :math:`X_a^\top\operatorname{diag}(m_p\circ m_q)X_a` of these pattern
        indices (``(u d', u d')``, in their order, repeats allowed)."""
        d = self.Xa.shape[1]
        patterns = np.asarray(patterns, dtype=np.int64)
        want = np.unique(patterns)
        keep = np.isin(self.ids, want)
        new = want[~np.isin(want, self.ids)]
        kc = (np.flatnonzero(keep)[:, None] * d + np.arange(d)).ravel()
        G_old = self.G[np.ix_(kc, kc)]
        kept = self.ids[keep]
        ids = np.concatenate([kept, new])
        if new.size:
            Mn = self.masks[:, new]
            o = G_old.shape[0]
            G = np.empty((ids.size * d,) * 2)
            G[:o, :o] = G_old
            G[o:, o:] = pattern_gram(self.Xa, Mn)  # the new patterns among themselves (symmetric)
            if o:
                G[o:, :o] = pattern_gram(self.Xa, Mn, self.masks[:, kept])
                G[:o, o:] = G[o:, :o].T
        else:
            G = G_old
        self.ids, self.G = ids, G
        order = np.argsort(self.ids)
        pos = order[np.searchsorted(self.ids, patterns, sorter=order)]
        cols = (pos[:, None] * d + np.arange(d)).ravel()
        return self.G[np.ix_(cols, cols)]


def _distinct_patterns(Mk: np.ndarray) -> list[list[int]]:
    """The blocks of every distinct pattern (equal columns of ``Mk``, compared exactly), in order of
    first appearance."""
    packed = np.ascontiguousarray(np.packbits(np.asarray(Mk) != 0, axis=0).T)  # (k, ceil(n/8)): exact keys
    where: dict[bytes, list[int]] = {}
    for b in range(packed.shape[0]):
        where.setdefault(packed[b].tobytes(), []).append(b)
    return list(where.values())


def _units(Mk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The *units* of the dense solve: every block alone, or two blocks of one pattern together (the
    :math:`v_i` and :math:`w_i` of C-ReLU; blocks of a pattern shared more than twice are paired two
    by two). Returns ``(first, second)`` block indices per unit (``second`` -1 for a unit of one block),
    ordered by their first block; without shared patterns ``first`` is ``0 .. k-1``."""
    first, second = [], []
    for g in _distinct_patterns(Mk):
        for a in range(0, len(g), 2):
            first.append(g[a])
            second.append(g[a + 1] if a + 1 < len(g) else -1)
    order = np.argsort(first, kind="stable")
    return np.asarray(first, dtype=np.int64)[order], np.asarray(second, dtype=np.int64)[order]


class _ConeRows:
    r"""The cone rows :math:`C = \operatorname{blkdiag}(\operatorname{diag}(S_b) X_a)` of the restricted
    program, or a subset of ``r`` rows per block (row generation: a relaxation of the program).

    Every row touches one block, so the three maps an iteration needs are per block: :meth:`apply`
    (:math:`C_b x_b` for every block, ``(r, k)``), :meth:`adjoint` (:math:`C_b^\top z_b`, ``(k, d')``)
    and :meth:`add_gram` (:math:`C_b^\top\operatorname{diag}(w_b)C_b` added to the ``d' x d'`` blocks).
    All rows: products with :math:`X_a` and the symmetric row products :math:`x_jx_j^\top` (upper
    triangle, ``n x d'(d'+1)/2``); a subset: the rows gathered once per block, ``(k, r, d')``, and
    batched products (their cost follows ``r``, not ``n``).
    """

    def __init__(self, Xa: np.ndarray, Mk: np.ndarray, rows: np.ndarray | None):
        n, d = Xa.shape
        k = Mk.shape[1]
        if rows is None:
            self.iu = np.triu_indices(d)
            self.off = (self.iu[0] != self.iu[1]).astype(np.float64)  # strict upper triangle, mirrored
            self.Xa, self.Sk = Xa, 2.0 * Mk - 1.0
            self.XX = Xa[:, self.iu[0]] * Xa[:, self.iu[1]]
            self.Cg = None
            self.r = n
        else:
            R = np.asarray(rows, dtype=np.int64).reshape(-1, k)
            sg = 2.0 * Mk[R, np.arange(k)[None, :]] - 1.0  # (r, k)
            self.Cg = np.ascontiguousarray((sg[:, :, None] * Xa[R]).transpose(1, 0, 2))  # (k, r, d)
            self.r = R.shape[0]

    def apply(self, X: np.ndarray) -> np.ndarray:
        """:math:`C_b x_b` of every block, shape ``(r, k)``."""
        if self.Cg is None:
            return self.Sk * (self.Xa @ X.T)
        return np.matmul(self.Cg, X[:, :, None])[:, :, 0].T

    def adjoint(self, Z: np.ndarray) -> np.ndarray:
        r""":math:`C_b^\top z_b` of every block (``Z`` of shape ``(r, k)``), shape ``(k, d')``."""
        if self.Cg is None:
            return (self.Sk * Z).T @ self.Xa
        return np.matmul(Z.T[:, None, :], self.Cg)[:, 0, :]

    def add_gram(self, Bd: np.ndarray, W: np.ndarray) -> None:
        r"""``Bd[b] +=`` :math:`C_b^\top\operatorname{diag}(w_b)C_b` (``W`` of shape ``(r, k)``, ``Bd`` of
        ``(k, d', d')``)."""
        if self.Cg is None:
            iu = self.iu
            with parallel_blas(2.0 * W.size * self.XX.shape[1]):
                upper = W.T @ self.XX  # (k, d'(d'+1)/2): the upper triangles
            Bd[:, iu[0], iu[1]] += upper
            Bd[:, iu[1], iu[0]] += upper * self.off
            return
        Bd += np.matmul(self.Cg.transpose(0, 2, 1), W.T[:, :, None] * self.Cg)


class _UnitSystem:
    r"""The dense reduced system :math:`(B + F^\top\operatorname{diag}(f'')F)\,x = r` solved over units.

    :math:`B = \operatorname{blkdiag}(B_b)` (the cone and second-order-cone terms) and
    :math:`F = F_u E`: :math:`F_u = [D_{i_u} X_a]_u` has one column block per unit and
    :math:`(Ex)_u = \sum_{b \in u}\sigma_b x_b =: p_u`, because the blocks of one unit share their
    pattern. With :math:`G = F_u^\top\operatorname{diag}(f'')F_u` and the block-diagonal
    :math:`S = EB^{-1}E^\top`, eliminating :math:`x = B^{-1}(r - E^\top Gp)` leaves

    .. math::

        (G + S^{-1})\,p = S^{-1}EB^{-1}r ,

    a dense system of one ``d'`` block per unit instead of per block. For a unit of one block
    :math:`S_u^{-1} = B_b` and :math:`x_b = \sigma_b p_u` (the plain reduced system up to signs); for
    a pair :math:`(a, b)` with :math:`C = B_a + B_b = LL^\top`,
    :math:`S_u^{-1} = (B_a^{-1} + B_b^{-1})^{-1} = B_aC^{-1}B_b`, its right-hand side
    :math:`\sigma_aB_bC^{-1}r_a + \sigma_bB_aC^{-1}r_b`, and the blocks are recovered through
    :math:`C` (never through :math:`B_a^{-1}` or :math:`B_b^{-1}`, which are nearly singular near the
    end): :math:`x_b = \sigma_bC^{-1}(B_ap_u - \sigma_ar_a + \sigma_br_b)`,
    :math:`x_a = \sigma_a(p_u - \sigma_bx_b)`. The dense factorization shrinks by a factor of up to 8
    when every pattern of the working set carries both its blocks.
    """

    def __init__(self, first: np.ndarray, second: np.ndarray, sig: np.ndarray):
        self.first, self.m = first, first.size
        self.one = np.flatnonzero(second < 0)
        self.two = np.flatnonzero(second >= 0)
        self.a, self.b = first[self.two], second[self.two]
        self.s1, self.sa, self.sb = sig[first], sig[self.a], sig[self.b]
        self.paired = self.two.size > 0
        self.Sinv = None

    def schur(self, Bd: np.ndarray) -> np.ndarray:
        """:math:`S^{-1}` per unit, ``(m, d', d')``, for the blocks ``Bd`` of :math:`B`."""
        if not self.paired:  # the units are the blocks, in order: S^{-1} = B (read only)
            self.Sinv = Bd
            return Bd
        Ba, Bb = Bd[self.a], Bd[self.b]
        Li = _inv_factors(_block_cholesky(Ba + Bb))  # L^{-1} with L L^T = C
        M1, M2 = np.matmul(Li, Ba), np.matmul(Li, Bb)
        S = np.empty((self.m,) + Bd.shape[1:])
        S[self.one] = Bd[self.first[self.one]]
        P = np.matmul(np.swapaxes(M1, 1, 2), M2)
        S[self.two] = 0.5 * (P + np.swapaxes(P, 1, 2))
        self.Sinv, self._Li, self._M1, self._M2, self._Ba = S, Li, M1, M2, Ba
        return S

    def reduce(self, x: np.ndarray) -> np.ndarray:
        """:math:`p = Ex`, ``(m, d')`` from ``(k, d')``."""
        p = x[self.first] * self.s1[:, None]
        if self.paired:
            p[self.two] += x[self.b] * self.sb[:, None]
        return p

    def expand(self, q: np.ndarray, k: int) -> np.ndarray:
        r""":math:`E^\top q`, ``(k, d')`` from ``(m, d')``."""
        out = np.empty((k, q.shape[1]))
        out[self.first] = q * self.s1[:, None]
        if self.paired:
            out[self.b] = q[self.two] * self.sb[:, None]
        return out

    def rhs(self, r: np.ndarray) -> np.ndarray:
        r""":math:`S^{-1}EB^{-1}r`, ``(m, d')`` from ``(k, d')``."""
        out = r[self.first] * self.s1[:, None]
        if self.paired:
            ya, yb = _bmv(self._Li, r[self.a]), _bmv(self._Li, r[self.b])
            out[self.two] = (_bmtv(self._M2, ya) * self.sa[:, None] + _bmtv(self._M1, yb) * self.sb[:, None])
        return out

    def back(self, p: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
        """The blocks ``x`` ``(k, d')`` from the unit solution ``p`` and the right-hand side ``r``."""
        x = np.empty((k, p.shape[1]))
        x[self.first] = p * self.s1[:, None]
        if self.paired:
            pu = p[self.two]
            t = _bmv(self._Ba, pu) - r[self.a] * self.sa[:, None] + r[self.b] * self.sb[:, None]
            xb = _bmtv(self._Li, _bmv(self._Li, t)) * self.sb[:, None]  # C^{-1} = L^{-T} L^{-1}
            x[self.b] = xb
            x[self.a] = (pu - xb * self.sb[:, None]) * self.sa[:, None]
        return x


def _merged_rows(H: np.ndarray, Li: np.ndarray, Fw: np.ndarray, units: _UnitSystem) -> np.ndarray:
    r"""Rows :math:`G` with :math:`G^\top G = H^\top H = \sum_b F_b^\top B_b^{-1} F_b` (:math:`F_b` = ``Fw[b]``,
    :math:`B_b^{-1} = L_b^{-\top}L_b^{-1}`, ``Li[b]`` = :math:`L_b^{-1}`) with fewer rows than ``H``: two blocks
    of one pattern have :math:`F_b = \pm F_c`, so their terms merge into :math:`F_b^\top R R^\top F_b` with
    :math:`RR^\top = B_b^{-1} + B_c^{-1}` (Cholesky), one ``d``-row block instead of two; blocks alone on
    their pattern keep their rows of ``H`` (the pairs are the ``units`` of two blocks). The symmetric rank
    update :math:`G^\top G` then costs :math:`n^2` times the rows of ``G``. ``H`` itself when nothing merges
    or a sum is not numerically positive definite."""
    if not units.paired:
        return H
    single, first, second = units.first[units.one], units.a, units.b
    k, d, n = Fw.shape
    L1, L2 = Li[first], Li[second]
    Q = np.matmul(np.swapaxes(L1, 1, 2), L1) + np.matmul(np.swapaxes(L2, 1, 2), L2)
    try:
        R = np.linalg.cholesky(0.5 * (Q + np.swapaxes(Q, 1, 2)))
    except np.linalg.LinAlgError:
        return H
    G = np.empty((single.size + first.size, d, n))
    # mode='clip' (the indices are valid): with the default 'raise' numpy buffers ``out`` (3x the time)
    np.take(H.reshape(k, d, n), single, axis=0, out=G[:single.size], mode="clip")
    np.matmul(np.swapaxes(R, 1, 2), Fw[first], out=G[single.size:])  # (pairs, d, n)
    return G.reshape(-1, n)


def _block_cholesky(Bd: np.ndarray, floor: float = 1e-13) -> np.ndarray:
    """Square-root factors ``L`` (``L L^T`` = block) of the ``(k, d, d)`` blocks: Cholesky, or, when a
    block is not numerically positive definite (the Schur complement of a nearly singular cone
    scaling), ``Q diag(sqrt(max(eig, floor)))`` from its eigendecomposition for every block, with the
    eigenvalues floored at ``floor`` times the block's largest; the refinement against the
    unperturbed matrix absorbs the floor."""
    if floor <= 1e-13:
        try:
            return np.linalg.cholesky(Bd)
        except np.linalg.LinAlgError:
            pass
    Bs = 0.5 * (Bd + np.swapaxes(Bd, 1, 2))
    if not np.all(np.isfinite(Bs)):
        raise np.linalg.LinAlgError("non-finite block")
    ev, Q = np.linalg.eigh(Bs)
    top = np.maximum(ev[:, -1:], 1e-300)
    ev = np.maximum(ev, floor * top)
    return Q * np.sqrt(ev)[:, None, :]


def _inv_factors(L: np.ndarray) -> np.ndarray:
    """Inverses of the ``(k, d, d)`` square-root factors from :func:`_block_cholesky`. Lower triangular
    factors: LAPACK's triangular inversion per block when ``d >= 8`` (a third of the time of the general
    batched inverse at d = 31: 0.48 against 1.65 ms for 94 blocks), forward substitution over all
    blocks at once, one row at a time, below (0.09 against 0.22 ms for 160 blocks of d = 5). The
    general inverse for the eigenvector factors of floored blocks."""
    k, d, _ = L.shape
    if np.any(np.triu(L, 1)):
        return np.linalg.inv(L)
    if d < 8:
        diag = np.diagonal(L, axis1=1, axis2=2)
        if not np.all(diag != 0.0):
            raise np.linalg.LinAlgError("singular block factor")
        out = np.zeros_like(L)
        for i in range(d):  # row i of L^{-1}: (e_i - sum_{j<i} L_ij row_j) / L_ii
            row = -np.einsum("kj,kjm->km", L[:, i, :i], out[:, :i, :]) if i else out[:, 0, :]
            row[:, i] += 1.0
            out[:, i, :] = row / diag[:, i:i + 1]
        return out
    out = np.empty_like(L)
    for i in range(k):
        out[i], info = _dtrtri(L[i], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("singular block factor")
    return out


class _LowRankFailed(Exception):
    """The Woodbury solve of one iteration was not accurate enough (the dense Cholesky takes over)."""


@dataclass
class BlockIPMResult:
    r"""Outcome of :func:`solve_block_ipm`.

    Attributes
    ----------
    X : ndarray, shape (k, d')
        The blocks :math:`x_b`.
    multipliers : ndarray, shape (n, k)
        Cone multipliers :math:`z_\ell \ge 0` (column ``b``: the ``n`` rows of block ``b``;
        zeros when the program has no cone rows).
    iterations : int
    status : str
        ``"optimal"`` (relative gap and residuals below ``eps``), ``"max_iter"`` or ``"stalled"``
        (the step length collapsed or the Newton system could not be factorized: the best iterate
        is returned).
    gap, pres, dres : float
        Relative complementarity :math:`s^\top z / \max(1, |F(x)|)`, relative primal and dual
        residuals at the returned point.
    objective : float
        :math:`f(Fx) + \lambda\sum_b\|x_b\|`.
    time : float
    state : dict, optional
        An interior iterate for a warm start (see ``start`` of :func:`solve_block_ipm`): the last
        iterate whose relative complementarity was still above ``warm_level``, with keys ``X``
        ``(k, d')``, ``tau`` ``(k,)``, ``sq``, ``zq`` ``(k, d'+1)``, ``sl``, ``zl`` ``(n, k)`` and
        ``mu`` (its complementarity per cone degree); after an ``"optimal"`` solve also ``"last"``,
        the final iterate in the same form (strictly interior): as ``start`` with the same blocks and
        a smaller ``eps`` it resumes this solve where it stopped.
    flops : float
        Floating-point operations of the solve by the cost model of :func:`iteration_flops`: one
        iteration's count times the iterations plus one (the starting point); for the achieved
        flop rate of a solver, not a measurement.
    dual : ndarray, shape (n,), optional
        The Huber split form only: the interior point's own dual candidate
        :math:`v = -\operatorname{clip}(\rho, \pm\delta)` at the returned point, :math:`\rho = Fx - y - p + q`
        the residual of its squared loss (:meth:`~convexnn.formulations.losses.Loss.project_dual` of
        :math:`-\rho`), the candidate its cone multipliers pair with; near the optimum it certifies
        better than :math:`-h_\delta'(Fx - y)`, whose error follows the primal point's (both are
        valid candidates, the certificate holds for any).
    """

    X: np.ndarray
    multipliers: np.ndarray
    iterations: int
    status: str
    gap: float
    pres: float
    dres: float
    objective: float
    time: float
    state: dict | None = None
    flops: float = 0.0
    dual: np.ndarray | None = None


# ---------------------------------------------------------------- second-order cone algebra (rows = cones)
def _strictly_interior(sq: np.ndarray, zq: np.ndarray, sl: np.ndarray, zl: np.ndarray) -> bool:
    """Whether the second-order-cone rows ``sq``, ``zq`` and the cone rows ``sl``, ``zl`` (possibly
    empty) are all strictly inside their cones."""
    return bool(float(_jnorm(sq).min()) > 0 and float(_jnorm(zq).min()) > 0 and np.all(sq[:, 0] > 0)
                and np.all(zq[:, 0] > 0) and (sl.size == 0 or (float(sl.min()) > 0 and float(zl.min()) > 0)))


def _rnorm(u: np.ndarray) -> np.ndarray:
    """Euclidean norm of every row (one ``einsum``; ``np.linalg.norm(u, axis=1)`` with less overhead)."""
    return np.sqrt(np.einsum("ij,ij->i", u, u))


def _fnorm(a: np.ndarray) -> float:
    """Euclidean (Frobenius) norm of ``a`` as a float."""
    a = np.ravel(a)
    return float(np.sqrt(a @ a))


def _bmv(A: np.ndarray, x: np.ndarray) -> np.ndarray:
    r"""Batched matrix-vector products :math:`A_b x_b` (``A`` of shape ``(k, p, q)``, ``x`` of ``(k, q)``);
    ``np.matmul`` (BLAS) rather than ``einsum``, several times faster for these sizes."""
    return np.matmul(A, x[:, :, None])[:, :, 0]


def _bmtv(A: np.ndarray, x: np.ndarray) -> np.ndarray:
    r"""Batched transposed products :math:`A_b^\top x_b` (``A`` of shape ``(k, p, q)``, ``x`` of ``(k, p)``)."""
    return np.matmul(x[:, None, :], A)[:, 0, :]


def _jnorm(u: np.ndarray) -> np.ndarray:
    r""":math:`\sqrt{u_0^2 - \|u_1\|^2}` per row, in the cancellation-free form."""
    a = _rnorm(u[:, 1:])
    return np.sqrt(np.maximum((u[:, 0] - a) * (u[:, 0] + a), 0.0))


def _jprod(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r"""Jordan product :math:`u \circ v = (u^\top v,\ u_0 v_1 + v_0 u_1)` per row."""
    out = np.empty_like(u)
    out[:, 0] = np.einsum("ij,ij->i", u, v)
    out[:, 1:] = u[:, :1] * v[:, 1:] + v[:, :1] * u[:, 1:]
    return out


def _jdiv(lam: np.ndarray, d: np.ndarray, den: np.ndarray | None = None) -> np.ndarray:
    r"""The solution :math:`x` of :math:`\lambda \circ x = d` per row (:math:`\lambda` interior;
    ``den`` = :math:`\lambda_0^2 - \|\lambda_1\|^2` when known more accurately than by cancellation)."""
    l0, l1 = lam[:, 0], lam[:, 1:]
    if den is None:
        a = _rnorm(l1)
        den = (l0 - a) * (l0 + a)
    x = np.empty_like(d)
    x[:, 0] = (l0 * d[:, 0] - np.einsum("ij,ij->i", l1, d[:, 1:])) / den
    x[:, 1:] = (d[:, 1:] - x[:, :1] * l1) / l0[:, None]
    return x


def _soc_step(u: np.ndarray, du: np.ndarray) -> float:
    r"""Largest :math:`\alpha \ge 0` with :math:`u + \alpha\,du \in \mathcal Q` for every row (``inf`` if none)."""
    if u.size == 0:
        return np.inf
    u0, u1, d0, d1 = u[:, 0], u[:, 1:], du[:, 0], du[:, 1:]
    # a direction of huge norm (a trial corrector on a nearly singular system) overflows here: its
    # roots come out non-finite and the step is 0 (the caller rejects it)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        nu1 = _rnorm(u1)
        nd1 = _rnorm(d1)
        c = (u0 - nu1) * (u0 + nu1)
        b = u0 * d0 - np.einsum("ij,ij->i", u1, d1)
        a = (d0 - nd1) * (d0 + nd1)
        inside = (d0 >= nd1)  # du in Q: never leaves
        disc = np.sqrt(np.maximum(b * b - a * c, 0.0))
        r1 = c / (disc - b)  # stable smallest positive root when b < 0
        r2 = (-b - disc) / a  # the positive root when a < 0 and b >= 0
    alpha = np.where(b < 0, r1, np.where(a < 0, r2, np.inf))
    alpha = np.where(inside, np.inf, alpha)
    alpha = np.where(np.isfinite(alpha) & (alpha >= 0), alpha, np.where(inside, np.inf, 0.0))
    return float(alpha.min())


def _lp_step(s_inv: np.ndarray, *dss: np.ndarray) -> float:
    r"""Largest :math:`\alpha \ge 0` with :math:`s + \alpha\,ds \ge 0` for every ``ds`` of ``dss``
    (``inf`` if none), given ``s_inv`` = :math:`1/s` (:math:`s > 0`): :math:`1/\max(0, \max(-ds/s))`,
    without masks or copies."""
    m = 0.0
    for ds in dss:
        if ds.size:
            m = max(m, -float(np.min(ds * s_inv)))
    return 1.0 / m if m > 0 else np.inf


def _nt_scaling(s: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Nesterov--Todd scaling of second-order cones (rows): ``W``, ``W^{-1}`` (``(k, m, m)``),
    :math:`\lambda = W z = W^{-1} s`, :math:`\lambda^\top J\lambda` (Vandenberghe 2010, Sec. 4.3) and
    the reduced block ``(k, m - 1, m - 1)``: the Schur complement of :math:`(W^{-2})_{00}` in
    :math:`W^{-2}`, which is :math:`((W^2)_{11})^{-1}`. With :math:`W = \beta(2vv^\top - J)` and
    :math:`v_0^2 = 1 + \|v_1\|^2`, :math:`(W^2)_{11} = \beta^2(I + 8(1 + \|v_1\|^2)v_1v_1^\top)`, so by
    Sherman--Morrison

    .. math::

        \big((W^2)_{11}\big)^{-1} = \beta^{-2}\Big(I - \frac{8(1 + \|v_1\|^2)}{1 + 8(1 + \|v_1\|^2)\|v_1\|^2}
        v_1v_1^\top\Big),

    formed without the cancellation of the explicit Schur complement (whose entries are of the size
    :math:`\beta^{-2}\|v\|^4` while its smallest eigenvalue is :math:`\beta^{-2}/(1 + 8(1 + \|v_1\|^2)\|v_1\|^2)`)."""
    k, m = s.shape
    sn, zn = _jnorm(s), _jnorm(z)
    sb, zb = s / sn[:, None], z / zn[:, None]
    gam = np.sqrt(np.maximum(0.5 * (1.0 + np.einsum("ij,ij->i", sb, zb)), 0.0))
    wb = np.empty_like(s)
    wb[:, 0] = sb[:, 0] + zb[:, 0]
    wb[:, 1:] = sb[:, 1:] - zb[:, 1:]
    wb /= (2.0 * gam)[:, None]
    # W = beta (2 v v^T - J) with v the Jordan square root of the NT point wb: (wb + e) / sqrt(2 (wb_0 + 1))
    v = wb.copy()
    v[:, 0] += 1.0
    v /= np.sqrt(2.0 * (wb[:, 0] + 1.0))[:, None]
    wb = v
    beta = np.sqrt(sn / zn)
    J = np.eye(m)
    J[1:, 1:] *= -1.0
    Jw = wb.copy()
    Jw[:, 1:] *= -1.0
    W = beta[:, None, None] * (2.0 * wb[:, :, None] * wb[:, None, :] - J[None])
    Winv = (1.0 / beta)[:, None, None] * (2.0 * Jw[:, :, None] * Jw[:, None, :] - J[None])
    # lambda = W z in the cancellation-free form of CVXOPT (Vandenberghe 2010, eq. (26)):
    # lambda = sqrt(sn zn) (gamma, ((gamma + zb_0) sb_1 + (gamma + sb_0) zb_1) / (sb_0 + zb_0 + 2 gamma))
    lmb = np.empty_like(s)
    lmb[:, 0] = gam
    dd = sb[:, 0] + zb[:, 0] + 2.0 * gam
    lmb[:, 1:] = ((gam + zb[:, 0])[:, None] * sb[:, 1:] + (gam + sb[:, 0])[:, None] * zb[:, 1:]) / dd[:, None]
    lmb *= np.sqrt(sn * zn)[:, None]
    v1 = wb[:, 1:]
    n2 = np.einsum("ij,ij->i", v1, v1)
    c = 8.0 * (1.0 + n2) / (1.0 + 8.0 * (1.0 + n2) * n2)
    red = np.eye(m - 1)[None] - c[:, None, None] * v1[:, :, None] * v1[:, None, :]
    red *= (1.0 / (beta * beta))[:, None, None]
    return W, Winv, lmb, sn * zn, red


def _dense_factor(K: np.ndarray, reg: float, diag: tuple, base: float,
                  rebuild: Any = None) -> tuple[tuple | None, float, np.ndarray]:
    """Cholesky factor of ``K`` (plus ``reg * base`` on the diagonal, increased on failure).

    With ``reg == 0`` the factorization overwrites the upper triangle of ``K`` in place (``K`` is
    then the factor's storage, its strict upper triangle still ``K``'s, see :func:`_symv_kept`);
    a failed attempt has destroyed it, so the retries start from ``rebuild()``. Returns the factor,
    the regularization used and the matrix ``K`` the factor belongs to (a rebuilt one after a
    failure)."""
    src = K
    with parallel_blas(K.shape[0] ** 3 / 3.0):
        for _ in range(6):
            try:
                if reg == 0.0 and rebuild is not None:
                    return _cho_factor(src, overwrite=True), reg, src
                Kr = src + 0.0
                Kr[diag] += reg * base
                return _cho_factor(Kr), reg, src
            except (np.linalg.LinAlgError, ValueError):
                reg = max(reg * 100.0, 1e-14)
                if src is K and rebuild is not None:
                    src = rebuild()
    return None, reg, src


def _symv_kept(A: np.ndarray, x: np.ndarray, diag: np.ndarray) -> np.ndarray:
    r""":math:`Kx` for a symmetric :math:`K` whose strict upper triangle is stored in ``A`` (C order) and
    whose diagonal is ``diag`` (the lower triangle of ``A`` holds its Cholesky factor, see
    :func:`_cho_factor` with ``overwrite``)."""
    y = _SYMV(1.0, A.T, x, lower=1)  # A.T (F order) lower = A's upper (C order), diagonal included
    y += (diag - np.diagonal(A)) * x
    return y


def solve_block_ipm(Xa: np.ndarray, masks: np.ndarray, sigma: np.ndarray, y: np.ndarray, lam: float,
                    loss: Loss, *, cones: bool = True, eps: float = 1e-10, max_iter: int = 100,
                    gram_of: Callable[[np.ndarray], np.ndarray] | None = None, start: dict | None = None,
                    warm_level: float = 1.0, low_rank: bool | None = None,
                    rows: np.ndarray | None = None) -> BlockIPMResult:
    r"""Solve the restricted program of the module docstring by the block-structured interior point.

    Parameters
    ----------
    Xa : ndarray, shape (n, d')
    masks : ndarray of bool, shape (n, k)
        The pattern :math:`m_{i_b}` of every block.
    sigma : ndarray, shape (k,)
        :math:`\sigma_b = \pm 1`.
    y : ndarray, shape (n,)
    lam : float
    loss : Loss
        A smooth loss (``grad_on``, ``curvature_on``).
    cones : bool
        Include the cone rows :math:`S_b \odot (X_a x_b) \ge 0` (C-ReLU); False: the group lasso
        of C-GReLU.
    eps : float
        Target relative gap and residuals.
    max_iter : int
    gram_of : callable, optional
        Squared loss, dense solve: ``gram_of(blocks)`` returns the Gram matrix
        :math:`X_a^\top\operatorname{diag}(m_{i_b}\circ m_{i_c})X_a` of the patterns of the given
        blocks (``(len(blocks) d', len(blocks) d')``, no signs), e.g. from a :class:`PatternGram`
        kept by the caller; default: computed from the data (:func:`pattern_gram`). It is asked for
        once per solve, for one block of each unit (:class:`_UnitSystem`).
    start : dict, optional
        A strictly interior starting iterate (keys as :attr:`BlockIPMResult.state`: ``X``,
        ``tau``, ``sq``, ``zq`` in the cone interiors, ``sl``, ``zl`` > 0) instead of the cold
        starting point; typically the ``state`` of a previous solve on an overlapping working set,
        extended by :func:`warm_start`. The method is an infeasible-start one, so any interior
        iterate is a valid start; a good one (well centred, moderate complementarity) saves
        iterations.
    warm_level : float
        The returned ``state`` is the last iterate with relative complementarity above this level.
    low_rank : bool, optional
        Solve the reduced system by the Sherman--Morrison--Woodbury identity instead of one dense
        Cholesky: with :math:`B = LL^\top` the block-diagonal part and :math:`G = \operatorname{diag}(f'')`,
        :math:`K = B + F^\top GF = L(I + HH^\top)L^\top`, :math:`H = L^{-1}F^\top G^{1/2}`, and
        :math:`(I + HH^\top)^{-1} = I - H(I_n + H^\top H)^{-1}H^\top`: ``k`` factors of size ``d'``
        and one Cholesky of size ``n`` (:math:`O(n^2 k d')` work instead of :math:`O(k^3 d'^3)`),
        followed by refinement with :math:`K` itself (iterative refinement, then preconditioned
        conjugate gradients). Default: when :func:`iteration_flops` says it is cheaper. The dense
        Cholesky takes over in an iteration whose refined solution does not satisfy the system to
        :math:`10^{-10}` relative accuracy (or the solve ends at its best iterate, see the module
        docstring).
    rows : ndarray of int, shape (r, k), optional
        Cone rows: only the rows ``rows[:, b]`` (distinct) of block ``b`` (a relaxation of the
        restricted program; the caller checks the other rows and adds the violated ones, see
        :func:`convexnn.solvers.active_set.solve_restricted`). Default: all ``n`` rows. The
        ``sl``, ``zl`` of ``start`` and the returned multipliers and states are then ``(r, k)``.

    Returns
    -------
    BlockIPMResult
    """
    t0 = time.perf_counter()
    Xa = np.asarray(Xa, dtype=np.float64)
    n, d = Xa.shape
    Mk = np.asarray(masks, dtype=np.float64).reshape(n, -1)
    k = Mk.shape[1]
    sig = np.asarray(sigma, dtype=np.float64).reshape(k)
    y = np.asarray(y, dtype=np.float64)
    nx, m = k * d, d + 1
    Fc = Mk * sig[None, :]  # (n, k): column b is sigma_b m_b
    if k == 0:
        return BlockIPMResult(np.zeros((0, d)), np.zeros((n, 0)), 0, "optimal", 0.0, 0.0, 0.0,
                              float(loss.value_on(NUMPY, np.zeros(n), y)), time.perf_counter() - t0)
    quad = bool(loss.unit_curvature)
    # the Huber loss in its split form (module docstring): the squared loss of r = Fx - y - p + q plus
    # delta 1^T (p + q) over p, q >= 0 (multipliers zp, zq), four LP variables per sample
    hub = loss.outlier_split()
    if hub is not None:
        quad = False  # the split form's curvature changes with the LP scalings
    # the dense solve runs over units (one block, or the two blocks of one pattern), see _UnitSystem
    us = _UnitSystem(*_units(Mk), sig)
    nux = us.m * d
    flops, cheaper_low_rank = iteration_flops(n, k, d, quad, us.m)
    low_rank = cheaper_low_rank if low_rank is None else bool(low_rank)
    # F = [sigma_b D_b X_a] (n x k d') only for the Woodbury solve; the dense solve needs the unit
    # Gram matrix G (squared loss, by patterns, never forming F) or F_u (the curvature products of a
    # non-quadratic loss), each formed when first needed
    F = block_design(Xa, Fc) if low_rank else None
    gram = None
    Fu = None

    def unit_design() -> np.ndarray:
        nonlocal Fu
        if Fu is None:
            Fu = block_design(Xa, Mk[:, us.first])
        return Fu

    def unit_gram() -> np.ndarray:
        nonlocal gram
        if gram is None:
            gram = (gram_of(us.first) if gram_of is not None else pattern_gram(Xa, Mk[:, us.first]))
        return gram
    cone = _ConeRows(Xa, Mk, rows) if cones else None
    nr = cone.r if cones else n  # cone rows per block
    nl = nr * k if cones else 0
    nu = nl + k + (2 * n if hub is not None else 0)  # degree of the cone
    # a dense factorization costs more than _DENSE_RATIO(_GATED) Woodbury iterations
    dense_costly = low_rank and nux ** 3 / 3.0 > (_DENSE_RATIO if cones else _DENSE_RATIO_GATED) * flops
    dense_stop = False
    # (the Huber split form's outliers are centred by them whatever the size: without, its steps
    # stay short for dozens of iterations)
    n_correctors = _CORRECTORS if not cones or flops >= _CORRECTOR_MIN_FLOPS or hub is not None else 0
    Ft = F.reshape(n, k, d).transpose(1, 2, 0) if low_rank else None  # (k, d, n): the blocks of F^T
    Fsq = np.einsum("ij,ij->i", F, F) if low_rank else None  # row norms^2 of F (traces)

    def fit(X: np.ndarray) -> np.ndarray:
        return np.einsum("nk,nk->n", Fc, Xa @ X.T)

    def objective(X: np.ndarray) -> float:
        return float(loss.value_on(NUMPY, fit(X), y)) + lam * float(_rnorm(X).sum())

    # ---------------------------------------------------------------- starting point
    # CVXOPT's coneqp initialization: the least-squares point of the KKT system with W = I,
    # (H + G^T G) u = -q, s = -G u, z = G u, both shifted into the cone interior by one scalar
    z0 = np.zeros(n)
    w0 = (np.ones(n) if quad or hub is not None else
          np.asarray(loss.curvature_on(NUMPY, z0, y), dtype=np.float64))
    B0 = np.broadcast_to(np.eye(d), (k, d, d)).copy()
    if cones:  # C_b^T C_b: X_a^T X_a for all rows (S_b^2 = 1)
        if rows is None:
            B0 += (Xa.T @ Xa)[None]
        else:
            cone.add_gram(B0, np.ones((nr, k)))
    g0 = np.asarray(loss.grad_on(NUMPY, z0, y), dtype=np.float64)
    r0 = -((Fc * g0[:, None]).T @ Xa).reshape(-1)
    try:
        if low_rank:
            # (B0 + F^T diag(w0) F)^{-1} by Woodbury, B0 = I (+ C_b^T C_b) per block
            L0i = _inv_factors(np.linalg.cholesky(B0))
            H0 = np.matmul(L0i, Ft * np.sqrt(w0)[None, None, :]).reshape(nx, n)
            with parallel_blas(float(n) * n * nx + n ** 3 / 3.0):
                c0 = _cho_factor(_syrk_t(H0))
            u = _bmv(L0i, r0.reshape(k, d)).reshape(nx)
            u -= H0 @ _cho_solve(c0, H0.T @ u)
            X = _bmtv(L0i, u.reshape(k, d))
        else:
            K0 = unit_gram().copy() if quad else (unit_design() * w0[:, None]).T @ unit_design()
            K0.reshape(us.m, d, us.m, d)[np.arange(us.m), :, np.arange(us.m), :] += us.schur(B0)
            R0 = r0.reshape(k, d)
            with parallel_blas(nux ** 3 / 3.0):
                f0 = _cho_factor(K0, overwrite=True)
            p0 = _cho_solve(f0, us.rhs(R0).reshape(nux))
            X = us.back(p0.reshape(us.m, d), R0, k)
    except (np.linalg.LinAlgError, ValueError):
        X = np.zeros((k, d))
    tau = np.full(k, -lam)
    sq = np.concatenate([tau[:, None], X], axis=1)
    zq = -sq
    sl = cone.apply(X) if cones else np.zeros((n, 0))
    zl = -sl

    def shift(l_: np.ndarray, q_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nq = _rnorm(q_[:, 1:])
        t = max(float((nq - q_[:, 0]).max()), float((-l_).max()) if l_.size else -np.inf)
        if t >= -1e-8 * max(float(np.sqrt(np.sum(l_ * l_) + np.sum(q_ * q_))), 1.0):
            l_ = l_ + (1.0 + t)
            q_ = q_.copy()
            q_[:, 0] += 1.0 + t
        return l_, q_

    sl, sq = shift(sl, sq)
    zl, zq = shift(zl, zq)
    tau = sq[:, 0].copy()
    hp = hq = hzp = hzq = hc = None
    if hub is not None:
        # the outlier a = p - q of the starting fit (its residual beyond +-delta) plus a shift s, and
        # multipliers on the central path of the other variables' complementarity mu0: p zp = q zq =
        # mu0, so zp = zq = delta on the samples inside +-delta (s = mu0 / delta), small on the side
        # of an outlier
        mu0 = max(float(np.sum(sl * zl) + np.sum(sq * zq)) / max(nl + k, 1), 1e-300)
        r_0 = fit(X) - y
        a_0 = r_0 - np.clip(r_0, -hub, hub)
        hp, hq = np.maximum(a_0, 0.0) + mu0 / hub, np.maximum(-a_0, 0.0) + mu0 / hub
        hzp, hzq = mu0 / hp, mu0 / hq
    if start is not None:
        X = np.array(start["X"], dtype=np.float64).reshape(k, d)
        tau = np.array(start["tau"], dtype=np.float64).reshape(k)
        sq = np.array(start["sq"], dtype=np.float64).reshape(k, m)
        zq = np.array(start["zq"], dtype=np.float64).reshape(k, m)
        if cones:
            sl = np.array(start["sl"], dtype=np.float64).reshape(nr, k)
            zl = np.array(start["zl"], dtype=np.float64).reshape(nr, k)
        if not _strictly_interior(sq, zq, sl, zl):
            raise ValueError("start must be strictly interior")
        if hub is not None and start.get("hub") is not None:
            hp, hq, hzp, hzq = (np.array(v, dtype=np.float64).reshape(n) for v in start["hub"])
            if not all(np.all(v > 0) for v in (hp, hq, hzp, hzq)):
                raise ValueError("start must be strictly interior")
    state = None

    def residuals(X, tau, sl, zl, sq, zq):
        z = fit(X)
        # the split form's residual r is the gradient of its squared loss
        g = (np.asarray(loss.grad_on(NUMPY, z, y), dtype=np.float64) if hub is None else z - y - hp + hq)
        Fg = (Fc * g[:, None]).T @ Xa
        rx = Fg - zq[:, 1:]
        if cones:
            Cz = cone.adjoint(zl)
            rx -= Cz
            ZX = cone.apply(X)  # C x
            rl = sl - ZX
        else:
            ZX = Xa @ X.T
            Cz = Fg * 0.0
            rl = sl
        rt = lam - zq[:, 0]
        rq = sq - np.concatenate([tau[:, None], X], axis=1)
        # scale of the dual residual: the norms of the terms it sums
        dscale = 1.0 + lam * np.sqrt(k) + _fnorm(Fg) + _fnorm(Cz) + _fnorm(zq)
        if hub is not None:
            dscale += hub * np.sqrt(2.0 * n)
        return z, g, rx, rt, rl, rq, ZX, dscale

    def snapshot() -> dict:
        """The current iterate (the keys of a ``start``), copied."""
        return {"X": X.copy(), "tau": tau.copy(), "sq": sq.copy(), "zq": zq.copy(), "sl": sl.copy(),
                "zl": zl.copy(), "mu": gapv / nu,
                "hub": None if hub is None else (hp.copy(), hq.copy(), hzp.copy(), hzq.copy())}

    best = None
    since, mark = 0, np.inf
    status = "max_iter"
    # the dense reduced matrix of every iteration lives in one buffer: a fresh (u d')^2 array per
    # iteration costs its page faults each time (0.1-1.5 s at u d' ~ 10^4 on a virtual machine)
    Kbuf = None
    it = 0
    reg = 0.0
    while True:
        # an iterate that ran off along a direction of huge norm (a loss without curvature in its
        # tails, e.g. Huber, makes the Newton system nearly singular) overflows here: stop at the best
        # iterate so far
        with np.errstate(over="ignore", invalid="ignore"):
            z, g_z, rx, rt, rl, rq, ZX, dscale = residuals(X, tau, sl, zl, sq, zq)
            gapv = float(np.sum(sl * zl) + np.sum(sq * zq))
            if hub is None:
                obj = float(loss.value_on(NUMPY, z, y)) + lam * float(_rnorm(X).sum())  # z = fit(X)
                hres = 0.0
            else:  # the split form: its objective, complementarity and the dual residuals of p, q
                rhp, rhq = hub - g_z - hzp, hub + g_z - hzq
                gapv += float(hp @ hzp + hq @ hzq)
                obj = 0.5 * float(g_z @ g_z) + hub * float(hp.sum() + hq.sum()) + lam * float(_rnorm(X).sum())
                hres = float(rhp @ rhp + rhq @ rhq)
            pscale = 1.0 + _fnorm(ZX) + _fnorm(tau)
            pres = float(np.sqrt(np.sum(rl * rl) + np.sum(rq * rq))) / pscale
            dres = float(np.sqrt(np.sum(rx * rx) + np.sum(rt * rt) + hres)) / dscale
            # the split form's objective is about delta ||Fx - y||_1, tiny in the solvers' units when the
            # targets are far beyond delta (least absolute deviations): for C-GReLU its gap is relative to
            # it, an absolute floor of 1 stops orders of magnitude short (two of seven such held-out
            # programs certified in 0.05 s instead of running R-FISTA to max_iter). The C-ReLU restricted
            # solves keep the floor: their caller accepts an answer by this gap, and the stricter one sent
            # a held-out program's restricted solves to Clarabel and cost its certificate
            grel = gapv / (max(1.0, abs(obj)) if hub is None or cones else max(abs(obj), 1e-300))
            score = max(grel, pres, dres)
        if not (np.isfinite(score) and np.isfinite(obj)) and best is not None:
            status = "stalled"
            break
        if grel > warm_level or state is None:
            state = snapshot()
        if best is None or score < best[0]:
            best = (score, X.copy(), zl.copy(), grel, pres, dres, obj, None if hub is None else g_z.copy())
        if score < 0.5 * mark:  # progress: the best score halved
            mark, since = score, 0
        else:
            since += 1
        if grel <= eps and pres <= eps and dres <= eps:
            status = "optimal"
            break
        if it >= max_iter:
            break
        if since >= 3 and best[0] <= 1e-6:
            status = "stalled"  # rounding floor: three iterations without halving the residuals
            break
        it += 1
        mu = gapv / nu
        if min(float(_jnorm(sq).min()), float(_jnorm(zq).min())) <= 0.0 or not np.isfinite(gapv):
            status = "stalled"  # an iterate reached a cone boundary in rounding: the scaling is undefined
            break
        # scalings
        W, Winv, lq, lden, Bd = _nt_scaling(sq, zq)
        A = np.matmul(Winv, Winv)  # W^{-2}, (k, m, m)
        if cones:
            Dl = zl / sl
            wl_inv = np.sqrt(Dl)  # 1 / w_l, w_l = sqrt(s_l / z_l)
            ll = np.sqrt(sl * zl)
            Dl_rl = Dl * rl  # the same in every Newton solve of this iteration
        # the reduced matrix (depends on the scalings only): Bd from _nt_scaling, plus the cone rows
        if cones:
            cone.add_gram(Bd, Dl)

        if hub is None:
            wz = None if quad else np.asarray(loss.curvature_on(NUMPY, z, y), dtype=np.float64)
        else:
            # eliminating dp, dq (and dzp, dzq) leaves the curvature 1 / (1 + p/zp + q/zq) in (0, 1):
            # near 1 on the samples inside +-delta, near 0 on the outliers, never singular
            h_ip, h_iq = hp / hzp, hq / hzq
            h_s = 1.0 + h_ip + h_iq
            wz = 1.0 / h_s
            hc = (-hp * hzp, -hq * hzq)  # the complementarity targets of the next solve (predictor)

        def full_K() -> np.ndarray:
            """The dense reduced matrix over units, :math:`G + S^{-1}` (:class:`_UnitSystem`), in the
            solve's one buffer (the factorization overwrites it in every iteration)."""
            nonlocal Kbuf
            us.schur(Bd)
            if Kbuf is None:
                Kbuf = np.empty((nux, nux))
            if quad:
                np.copyto(Kbuf, unit_gram())
            else:
                with parallel_blas(2.0 * n * nux * nux):
                    np.matmul((unit_design() * wz[:, None]).T, unit_design(), out=Kbuf)
            Kbuf.reshape(us.m, d, us.m, d)[np.arange(us.m), :, np.arange(us.m), :] += us.Sinv
            return Kbuf

        def kmul(x: np.ndarray) -> np.ndarray:
            if K is not None:
                xb = x.reshape(k, d)
                p = us.reduce(xb).reshape(nux)
                if quad:
                    q = gram @ p
                else:  # the kept triangle of G + S^{-1}, less S^{-1}
                    q = (_symv_kept(K, p, Kdiag) if fact is not None and fact[0] is K else K @ p)
                    q -= _bmv(us.Sinv, p.reshape(us.m, d)).reshape(nux)
                return (_bmv(Bd, xb) + us.expand(q.reshape(us.m, d), k)).reshape(nx)
            Fx = F @ x
            if wz is not None:
                Fx *= wz
            return F.T @ Fx + _bmv(Bd, x.reshape(k, d)).reshape(nx)

        if dense_costly and not low_rank:
            # the dense Cholesky served an iteration whose Woodbury solve failed; it costs more than a
            # Woodbury iteration, so this one tries the Woodbury solve again (see the module docstring)
            low_rank = True
        K = None if low_rank else full_K()
        floored = False
        diag = (np.arange(nux), np.arange(nux))
        # the diagonal's mean: the scale of a regularization of the dense factorization
        base = (max(float(np.trace(K)) / nux, 1e-300) if K is not None else
                max((float(Fsq.sum() if wz is None else Fsq @ wz) + float(np.einsum("kii->", Bd))) / nx, 1e-300))
        fact = None
        lr = None
        def woodbury(floor: float) -> tuple | None:
            try:
                if not dense_costly:  # a block that is not positive definite: the dense Cholesky
                    Lb = np.linalg.cholesky(Bd)
                else:
                    Lb = _block_cholesky(Bd, floor)
                Li = _inv_factors(Lb)  # (k, d, d): L^{-1} per block
                Fw = Ft if wz is None else Ft * np.sqrt(wz)[None, None, :]
                H = np.matmul(Li, Fw).reshape(nx, n)  # L^{-1} F^T diag(f'')^{1/2}
                with parallel_blas(float(n) * n * nux + n ** 3 / 3.0):
                    return Li, H, _cho_factor(_syrk_t(_merged_rows(H, Li, Fw, us)))
            except (np.linalg.LinAlgError, ValueError):
                return None

        if low_rank:
            lr = woodbury(1e-13)

        def _refine(r0: np.ndarray, sol: np.ndarray) -> np.ndarray:
            """Iterative refinement of a Woodbury solution; when it stalls (rounding in the Woodbury
            identity near the end, where the block scalings spread over many orders of magnitude),
            conjugate gradients on the reduced matrix preconditioned by the Woodbury solve."""
            rn0 = _fnorm(r0)
            res = r0 - kmul(sol)
            rn, prev = _fnorm(res), np.inf
            for _ in range(_REFINE_MAX):
                if rn <= _LOW_RANK_RTOL * rn0:
                    return sol
                if rn > 0.5 * prev:
                    break
                sol = sol + ksolve(res)
                prev = rn
                res = r0 - kmul(sol)
                rn = _fnorm(res)
            if rn <= _LOW_RANK_RTOL * rn0:
                return sol
            zp = ksolve(res)
            p_ = zp.copy()
            rz = float(res @ zp)
            for _ in range(_CG_MAX):
                q = kmul(p_)
                pq = float(p_ @ q)
                if not (pq > 0 and np.isfinite(pq)):
                    break
                a_ = rz / pq
                sol = sol + a_ * p_
                res = res - a_ * q
                if _fnorm(res) <= 0.5 * _LOW_RANK_RTOL * rn0:
                    res = r0 - kmul(sol)  # the true residual
                    if _fnorm(res) <= _LOW_RANK_RTOL * rn0:
                        return sol
                zp = ksolve(res)
                rz, rz_old = float(res @ zp), rz
                p_ = zp + (rz / rz_old) * p_
            raise _LowRankFailed

        def ksolve(r: np.ndarray) -> np.ndarray:
            if lr is None:
                R = r.reshape(k, d)
                p = _cho_solve(fact, us.rhs(R).reshape(nux))
                return us.back(p.reshape(us.m, d), R, k).reshape(nx)
            Li, H, cS = lr
            u = _bmv(Li, r.reshape(k, d)).reshape(nx)
            u -= H @ _cho_solve(cS, H.T @ u)
            return _bmtv(Li, u.reshape(k, d)).reshape(nx)

        Kdiag = None

        def dense() -> None:
            """The dense Cholesky factor of the reduced matrix (in place; its diagonal kept for kmul)."""
            nonlocal K, Kdiag, fact, reg, base
            if K is None:  # the Woodbury solve failed in this iteration
                K = full_K()
                base = max(float(np.trace(K)) / nux, 1e-300)
            Kdiag = K[diag].copy()
            fact, reg, K = _dense_factor(K, reg, diag, base, full_K)

        if lr is None:
            dense()
            if fact is None:
                status = "stalled"
                break

        def newton(ds_l, ds_q):
            # q = lambda \ d_s ; t = W^{-2} r_z + W^{-1} q
            qq = _jdiv(lq, ds_q, lden)
            tq = _bmv(A, rq) + _bmv(Winv, qq)
            rhs = -rx + tq[:, 1:]
            if cones:
                ql = ds_l * ll_inv
                tl = Dl_rl + ql * wl_inv
                rhs = rhs + cone.adjoint(tl)
            a00 = A[:, 0, 0]
            rtau = -rt + tq[:, 0]
            rhs = rhs - A[:, 1:, 0] * (rtau / a00)[:, None]
            if hub is not None:
                # dr = w F dX + beta after eliminating the outliers: F^T beta moves to the right-hand side
                h_ap, h_aq = hc[0] / hp - rhp, hc[1] / hq - rhq
                rhs = rhs - (Fc * ((h_iq * h_aq - h_ip * h_ap) / h_s)[:, None]).T @ Xa
            r0 = rhs.reshape(-1)
            sol = ksolve(r0)
            # iterative refinement on the reduced system (ill-conditioned near the end, or solved
            # with a regularized factor); the Woodbury solve is refined until its residual is small
            # or stops decreasing
            if lr is None:
                if reg > 0.0 or grel <= _REFINE_BELOW:
                    sol += ksolve(r0 - kmul(sol))
            else:
                sol = _refine(r0, sol)
            dX = sol.reshape(k, d)
            dtau = (rtau - np.einsum("ki,ki->k", A[:, 0, 1:], dX)) / a00
            du = np.concatenate([dtau[:, None], dX], axis=1)
            # scaled directions W dz and W^{-1} ds (well conditioned: lambda is centred)
            dzq_t = _bmv(Winv, rq - du) + qq
            dzq = _bmv(Winv, dzq_t)
            dsq = -rq + du
            self_q = (qq - dzq_t, dzq_t)
            if cones:
                CdX = cone.apply(dX)
                dzl_t = (rl - CdX) * wl_inv + ql
                self_l = (ql - dzl_t, dzl_t)
            else:
                CdX = dzl_t = np.zeros((n, 0))
                self_l = (dzl_t, dzl_t)
            # the cone-row directions ds_l = C dX - r_l, dz_l = W_l^{-1} (W_l dz_l) are formed only for
            # the direction taken (see the step below)
            hdir = None
            if hub is not None:  # the outliers' directions from e = F dX (the 2 x 2 elimination)
                e = fit(dX)
                dp = h_ip * (e + (1.0 + h_iq) * h_ap + h_iq * h_aq) / h_s
                dq = h_iq * (-e + h_ip * h_ap + (1.0 + h_ip) * h_aq) / h_s
                hdir = (dp, (hc[0] - hzp * dp) / hp, dq, (hc[1] - hzq * dq) / hq)
            return dX, dtau, CdX, dzl_t, dsq, dzq, hdir, self_l, self_q

        lq2 = np.concatenate([lq, lq])  # both halves of a direction in one call below
        ll_inv = 1.0 / ll if cones else None

        def max_step(*dirs):
            # step to the boundary in the scaled space: s + a ds in K  <=>  lambda + a W^{-1} ds in K
            (sl_t, zl_t), (sq_t, zq_t) = dirs[-2], dirs[-1]
            a = _soc_step(lq2, np.concatenate([sq_t, zq_t]))
            if cones:
                a = min(a, _lp_step(ll_inv, sl_t, zl_t))
            if hub is not None:
                dp, dzp, dq, dzq_ = dirs[6]
                a = min(a, _lp_step(1.0 / hp, dp), _lp_step(1.0 / hzp, dzp), _lp_step(1.0 / hq, dq),
                        _lp_step(1.0 / hzq, dzq_))
            return a

        def solve_newton(ds_l, ds_q):
            """A Newton direction; a failed low-rank solve switches to the dense Cholesky (for this
            iteration when that is the costlier solve, from here on otherwise)
            (None when that factorization fails too). A direction of huge norm (a nearly singular
            system: Huber's linear tails) may overflow; the step rules reject it (non-finite step)."""
            with np.errstate(over="ignore", invalid="ignore"):
                return _solve_newton(ds_l, ds_q)

        def _solve_newton(ds_l, ds_q):
            nonlocal lr, low_rank, dense_stop, floored
            try:
                return newton(ds_l, ds_q)
            except _LowRankFailed:
                pass
            if not floored and dense_costly:
                # once per iteration: block factors with their small eigenvalues floored at 1e-9 of
                # the largest (a better conditioned Woodbury preconditioner; refinement corrects it)
                floored = True
                lr = woodbury(1e-9)
                if lr is not None:
                    try:
                        return newton(ds_l, ds_q)
                    except _LowRankFailed:
                        pass
            if best[0] <= _LOW_RANK_STOP and dense_costly:
                # near the end (the scalings spread over many orders of magnitude): a dense
                # factorization would cost more than the whole solve so far; stop at the best
                # iterate (the callers certify their answer globally)
                dense_stop = True
                return None
            lr, low_rank = None, False
            dense()
            return None if fact is None else newton(ds_l, ds_q)

        # predictor (affine scaling)
        ds_l = -(ll * ll) if cones else None
        ds_q = -_jprod(lq, lq)
        aff = solve_newton(ds_l, ds_q)
        if aff is None:
            status = "stalled"
            break
        a_aff = min(1.0, max_step(*aff))
        sigma_c = (1.0 - a_aff) ** 3
        # balanced centring: the complementarity aimed at stays at least _BALANCE times the larger
        # relative residual (see the module docstring)
        lag = _BALANCE * max(dres, pres)
        if grel < lag:
            sigma_c = max(sigma_c, min(1.0, lag / max(grel, 1e-300)))
        # corrector (Mehrotra's second-order term, in the scaled space)
        (sl_t, zl_t), (sq_t, zq_t) = aff[-2], aff[-1]
        ds_q = -_jprod(lq, lq) - _jprod(sq_t, zq_t)
        ds_q[:, 0] += sigma_c * mu
        if cones:
            ds_l = -(ll * ll) - sl_t * zl_t + sigma_c * mu
        if hub is not None:  # the outliers' complementarity, with Mehrotra's second-order term
            hd = aff[6]
            hc = (sigma_c * mu - hp * hzp - hd[0] * hd[1], sigma_c * mu - hq * hzq - hd[2] * hd[3])
        full = solve_newton(ds_l, ds_q)
        if full is None:
            status = "stalled"
            break
        alpha = min(1.0, _STEP * max_step(*full))
        # Gondzio's multiple centrality correctors: aim the complementarity products of a longer
        # trial step into [0.1, 10] sigma mu (cone rows: each product; second-order cones: the
        # Jordan product's eigenvalues u0 -+ |u1| of the badly centred ones, towards (t, 0)); keep a
        # corrected direction only when it lengthens the step (one more solve each, same factors)
        tmu = sigma_c * mu
        for _ in range(n_correctors):
            if alpha >= 0.99 * _STEP:
                break
            at = min(1.0, 1.5 * alpha + 0.1)
            (sl_t, zl_t), (sq_t, zq_t) = full[-2], full[-1]
            vq = _jprod(lq + at * sq_t, lq + at * zq_t)
            n1 = _rnorm(vq[:, 1:])
            bad = (vq[:, 0] - n1 < 0.1 * tmu) | (vq[:, 0] + n1 > 10.0 * tmu)
            dq = np.zeros_like(vq)
            dq[bad, 0] = np.clip(vq[bad, 0], 0.1 * tmu, 10.0 * tmu) - vq[bad, 0]
            dq[bad, 1:] = -vq[bad, 1:]
            ds_l2 = None
            if cones:
                v = (ll + at * sl_t) * (ll + at * zl_t)
                ds_l2 = ds_l + np.maximum(np.clip(v, 0.1 * tmu, 10.0 * tmu) - v, -10.0 * tmu)
            hc_kept = hc
            if hub is not None:  # the outliers' products alike
                hd = full[6]
                vp, vq_ = (hp + at * hd[0]) * (hzp + at * hd[1]), (hq + at * hd[2]) * (hzq + at * hd[3])
                hc = (hc[0] + np.maximum(np.clip(vp, 0.1 * tmu, 10.0 * tmu) - vp, -10.0 * tmu),
                      hc[1] + np.maximum(np.clip(vq_, 0.1 * tmu, 10.0 * tmu) - vq_, -10.0 * tmu))
            trial = solve_newton(ds_l2, ds_q + dq)
            if trial is None:
                hc = hc_kept
                break
            a_new = min(1.0, _STEP * max_step(*trial))
            if not a_new >= 1.01 * alpha:
                hc = hc_kept
                break
            full, alpha, ds_l, ds_q = trial, a_new, ds_l2, ds_q + dq
        dX, dtau, CdX, dzl_t, dsq, dzq = full[:6]
        dsl, dzl = (CdX - rl, dzl_t * wl_inv) if cones else (None, None)
        if wz is not None and hub is None and np.isfinite(alpha):
            # a non-quadratic loss: the Newton system linearizes its gradient, and where its
            # curvature nearly vanishes (logistic loss, large weights on nearly separable data) a
            # full step can multiply the dual residual and send the iterates off (_residual_step)
            dz = fit(dX)
            wdz = wz * dz
            alpha = _residual_step(alpha, lambda a: _fnorm(_dual_residual_along(a, z, dz, g_z, wdz, rx, Fc, Xa, y,
                                                                                 loss)),
                                   _fnorm(rx), 0.1 * eps * dscale)
        if not np.isfinite(alpha) or alpha < 1e-10:
            status = "stalled"
            break
        X = X + alpha * dX
        tau = tau + alpha * dtau
        if hub is not None:
            hd = full[6]
            hp, hzp, hq, hzq = hp + alpha * hd[0], hzp + alpha * hd[1], hq + alpha * hd[2], hzq + alpha * hd[3]
        sq = sq + alpha * dsq
        zq = zq + alpha * dzq
        if cones:
            sl = sl + alpha * dsl
            zl = zl + alpha * dzl
    _, Xb, zlb, grel, pres, dres, obj, rho_b = best
    dual = None if hub is None else loss.project_dual(-(g_z if status == "optimal" else rho_b), y)
    if status == "optimal" and state is not None and _strictly_interior(sq, zq, sl, zl):
        # the final iterate (strictly interior): continuing from it with a tighter ``eps`` on the same
        # blocks resumes this solve where it stopped
        state["last"] = snapshot()
    if status != "optimal":
        X, zl = Xb, zlb
    else:
        obj = objective(X)
    return BlockIPMResult(X, np.maximum(zl, 0.0), it, status, grel, pres, dres, obj, time.perf_counter() - t0,
                          state, flops * (it + 1), dual)


#: the step of a non-quadratic loss (:func:`_residual_step`): the dual residual may grow by at most
#: this factor in one step, and at most this many halvings are tried
_GROWTH = 2.0
_HALVINGS = 40


def _residual_step(alpha: float, residual: Callable[[float], float], r0: float, floor: float) -> float:
    r"""The longest step :math:`\alpha 2^{-j}` after which the dual residual norm ``residual(a)`` is
    at most :data:`_GROWTH` times the current one ``r0``, or below ``floor`` (the target accuracy).

    A safeguard for non-quadratic losses, not a monotone line search: on the logistic programs of
    the benchmark matrix and 108 small held-out logistic and Huber programs, requiring
    :math:`\|r_x(\alpha)\| \le (1 - 10^{-2}\alpha)\|r_x\|` (the Armijo rule on the residual norm)
    cut the steps of the first restricted solves to 0.03-0.1 and doubled some solve times
    (breast cancer, logistic C-ReLU: 0.16 s -> 0.39 s), and the merit "relative gap + scaled dual
    residual" of CVXOPT's ``cp`` stalls where the corrector direction raises the complementarity.
    Letting the residual at most double cuts few steps elsewhere (breast cancer: 7 of 29, 10-15%
    more time) and stops the runaway steps (a factor of 8 in one step, then objectives of 1e15).
    After :data:`_HALVINGS` halvings the last trial is returned (the caller stops on a step below
    1e-10)."""
    a = float(alpha)
    for _ in range(_HALVINGS):
        r = residual(a)
        if np.isfinite(r) and r <= max(_GROWTH * r0, floor):
            return a
        a *= 0.5
    return a


def _dual_residual_along(a: float, z: np.ndarray, dz: np.ndarray, g: np.ndarray, wdz: np.ndarray,
                         rx: np.ndarray, Fc: np.ndarray, Xa: np.ndarray, y: np.ndarray, loss: Loss) -> np.ndarray:
    r"""The dual residual :math:`r_x` after a step ``a`` along a Newton direction of a smooth loss.

    The Newton system linearizes the loss gradient, so
    :math:`r_x(a) = (1-a)\,r_x + F^\top e(a)` with the linearization error
    :math:`e(a) = \nabla f(z + a\,\Delta z) - \nabla f(z) - a\operatorname{diag}(f'')\Delta z`
    (``g`` = :math:`\nabla f(z)`, ``wdz`` = :math:`\operatorname{diag}(f'')\Delta z`; zero for the
    squared loss; the cone terms are linear in the step)."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.asarray(loss.grad_on(NUMPY, z + a * dz, y), dtype=np.float64) - g - a * wdz
        return (1.0 - a) * rx + (Fc * e[:, None]).T @ Xa


def warm_start(state: dict, old: list, new: list, n: int, d: int, lam: float, cones: bool = True,
               rows_old: np.ndarray | None = None, rows_new: np.ndarray | None = None) -> dict:
    r"""Extend the ``state`` of a solve on the blocks ``old`` to a strictly interior start on ``new``.

    Blocks in both lists keep their primal and dual iterates; blocks of ``old`` not in ``new`` are
    dropped; a block only in ``new`` starts at :math:`x_b = 0` with :math:`z_b = (\lambda, 0)` (the
    dual residual of :math:`\tau_b` is zero) and :math:`s_b = (t, 0)`,
    :math:`t = \max(\mu/\lambda, \operatorname{median}_{c\ \text{kept}}\tau_c)`, and every cone row of a
    new block at :math:`s_\ell = z_\ell = \sqrt{\mu}`. With :math:`t = \mu/\lambda` the block would sit
    on the central path (:math:`s_b \circ z_b = \mu e`) but at the apex of its cone, where every
    direction that lets :math:`x_b` grow leaves the cone after a tiny step: the first iterations of
    a warm solve then took steps of 0.01-0.07. A radius at the scale of the kept blocks' (an
    infeasible start is allowed; the complementarity of the new block is above the central path,
    the harmless side) removes those iterations (``bench/RESULTS_matrix.md``).

    Parameters
    ----------
    state : dict
        :attr:`BlockIPMResult.state` of the previous solve.
    old, new : list of hashable
        Block identifiers in the order of the previous and of the next solve.
    n, d : int
        Rows and :math:`d'`.
    lam : float
    cones : bool
        Whether the programs have cone rows.
    rows_old, rows_new : ndarray of int, shape (r, k), optional
        The cone rows of each block in the previous and the next solve (``rows`` of
        :func:`solve_block_ipm`; default: all ``n``). A row of a kept block keeps its slack and
        multiplier when the previous solve had it, and starts at :math:`\sqrt{\mu}` otherwise.

    Returns
    -------
    dict
        A ``start`` for :func:`solve_block_ipm`.
    """
    mu = max(float(state["mu"]), 1e-300)
    k, m = len(new), d + 1
    pos = {b: j for j, b in enumerate(old)}
    X = np.zeros((k, d))
    tau = np.full(k, mu / lam)
    sq = np.zeros((k, m))
    sq[:, 0] = mu / lam
    zq = np.zeros((k, m))
    zq[:, 0] = lam
    kept = [pos[b] for b in new if b in pos]
    if kept:
        t_new = max(mu / lam, float(np.median(np.asarray(state["tau"], dtype=np.float64)[kept])))
        tau[:] = t_new
        sq[:, 0] = t_new
    r = np.sqrt(mu)
    nr = n if rows_new is None else np.asarray(rows_new).shape[0]
    sl = np.full((nr, k), r) if cones else np.zeros((n, 0))
    zl = np.full((nr, k), r) if cones else np.zeros((n, 0))
    for j, b in enumerate(new):
        i = pos.get(b)
        if i is None:
            continue
        X[j], tau[j], sq[j], zq[j] = state["X"][i], state["tau"][i], state["sq"][i], state["zq"][i]
        if not cones:
            continue
        if rows_old is None and rows_new is None:
            sl[:, j], zl[:, j] = state["sl"][:, i], state["zl"][:, i]
            continue
        # the rows of block j that the previous solve had (row indices matched through a sort)
        ro = np.arange(n) if rows_old is None else np.asarray(rows_old)[:, i]
        rn = np.arange(n) if rows_new is None else np.asarray(rows_new)[:, j]
        o = np.argsort(ro, kind="stable")
        at = np.minimum(np.searchsorted(ro, rn, sorter=o), ro.size - 1)
        hit = ro[o[at]] == rn
        sl[hit, j], zl[hit, j] = state["sl"][o[at[hit]], i], state["zl"][o[at[hit]], i]
    # the outliers of the Huber split form are per sample: kept as they are
    return {"X": X, "tau": tau, "sq": sq, "zq": zq, "sl": sl, "zl": zl, "mu": mu, "hub": state.get("hub")}
