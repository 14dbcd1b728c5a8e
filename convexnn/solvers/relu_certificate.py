r"""Global certificate and block scans of the C-ReLU active-set polish.

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

This module holds the certificate (:func:`certify_relu`, :class:`PolishCertificate`) and the
scans that price blocks by :math:`s_{i\sigma}(v)` (:func:`scan_blocks`, :func:`screen_blocks`);
the working-set loop and the restricted solves are in :mod:`convexnn.solvers.active_set`.

References: Mishkin & Pilanci (ICML 2023) / Ergen & Pilanci (ICML 2021) eq. (6) (the
cone-constrained dual); Mishkin, Sahiner & Pilanci (ICML 2022) Sec. 4 (termination by the
min-norm subgradient); Johnson & Guestrin, "Blitz" (ICML 2015) and Massias et al., "Celer"
(ICML 2018) for working sets.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from convexnn.duality.bounds import best_scale
from convexnn.duality.cones import cone_support, multiplier_images, project_cone
from convexnn.formulations.blocks import block_fit
from convexnn.formulations.losses import Loss
from convexnn.gap import relative_gap
from convexnn.solvers.backend import get_backend
from convexnn.solvers.gap import relu_violation
from convexnn.solvers.operators import MaskedDesign

__all__ = ["PolishCertificate", "certify_relu", "multiplier_bounds", "screen_blocks", "scan_blocks", "scan_flops",
           "violation"]

_ADD_RTOL = 1e-9  # a block is violated when s_i > lam * (1 + _ADD_RTOL)
_ROW_ROUNDS = 30  # row-generation rounds of a block value before the NNLS over all rows
#: bytes of the ``(chunk, n)`` first margins that a scan forms at once (:func:`_block_inputs`)
_SCAN_CHUNK_BYTES = 1 << 26


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
    r"""Absolute and relative cone violation of ``(V, W)`` in numpy float64:
    :func:`convexnn.solvers.gap.relu_violation` on the patterns of the nonzero blocks only (a zero
    block adds nothing to the violation or to its scale), without the ``n x P`` products."""
    V, W = np.asarray(V, dtype=np.float64), np.asarray(W, dtype=np.float64)
    nz = np.flatnonzero(np.any(V != 0.0, axis=1) | np.any(W != 0.0, axis=1))
    if nz.size == 0:
        return 0.0, 0.0
    return relu_violation(MaskedDesign(Xa, np.asarray(masks[:, nz], dtype=bool), get_backend()), V[nz], W[nz])


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
                limit: int, multipliers: np.ndarray | None = None,
                directions: dict | None = None,
                cache: dict | None = None) -> tuple[np.ndarray, float | None, np.ndarray, int]:
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

    ``multipliers`` (shape ``(n, 2P)``, column ``sigma_row * P + i``; e.g. the cone multipliers
    :math:`\rho \ge 0` of a restricted solve, :attr:`RestrictedSolution.multipliers`) give every
    block with a nonzero column the bound :math:`\|g + A^\top\rho\| \ge \|\Pi_{\mathcal K}(g)\|`
    (valid for any :math:`\rho \ge 0`) at the cost of two matrix-vector products: at a restricted
    optimum the working-set blocks satisfy :math:`\|g + A^\top\rho\| \le \lambda` up to the
    solve's dual residual, so most of them need no NNLS. A block whose bound is above the level
    gets the NNLS as before (the smaller of the two values is kept).

    ``directions`` (a dict) receives, for every violated block found, ``(sign_row, i) ->`` the
    projection :math:`\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)` (a direction for the block's first
    cone rows in the restricted solve, :func:`convexnn.solvers.active_set.solve_restricted`).

    ``cache`` (a dict the caller keeps across the scans of one data set and pattern set, e.g. the
    rounds of a working-set loop) maps a flat block ``sign_row * P + i`` to the multipliers of its
    last projection, ``(rows, c)`` with :math:`c = (s \odot \rho)_{\text{rows}}`, :math:`\rho > 0` on
    ``rows``. For the scan's own :math:`v` they give the bound
    :math:`\|g_{i\sigma} + X_{a,\text{rows}}^\top c\| \ge s_{i\sigma}(v)` (valid for any :math:`\rho \ge 0`,
    as the multiplier bound above) at the cost of a ``d' x |rows|`` product: between rounds :math:`v`
    moves little, and most blocks whose half-space bound is above the level stay below it with the
    multipliers of the previous round (measured: half of the NNLS of a polish). A block that still
    needs its projection starts the row generation of :func:`_block_projection` with these rows.
    Every projection of the scan updates the cache.

    Returns
    -------
    (blocks, s, bounds, n_nnls)
        ``blocks`` of shape ``(k, 2)`` (rows ``(sign_row, i)``, most violated first); ``s`` the
        valid upper bound of :math:`s(v)`, or None after an early stop.
    """
    G = _masked_products(Xa, masks, v)
    ub = _sign_bounds(Xa, masks, v, G)  # (2, P)
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
    mb = np.full(flat.size, np.inf)
    if multipliers is not None:
        cols = np.flatnonzero((flat > level) & np.any(multipliers > 0, axis=0))
        mb[cols] = multiplier_bounds(Xa, masks, v, multipliers, cols, G)
    if cache:
        for k, (rows_k, c_k) in cache.items():
            if flat[k] > level and mb[k] > level:
                sgn, i = divmod(k, P)
                r = (1.0 - 2.0 * sgn) * G[:, i] + Xa[rows_k].T @ c_k
                mb[k] = min(mb[k], float(np.sqrt(r @ r)))
    # the blocks that get a projection, in visiting order (inputs formed a chunk at a time)
    head = order[: int(np.count_nonzero(flat > level))]
    inputs = _block_inputs(Xa, rn, masks, G, head[np.minimum(flat[head], mb[head]) > level])
    for pos, k in enumerate(order):
        if flat[k] <= level:
            rest = float(flat[k])
            break
        sgn, i = divmod(int(k), P)
        val = min(float(flat[k]), float(mb[k]))
        q = None
        if val > level:
            _, g, sg, marg = next(inputs)
            seed = cache[int(k)][0] if cache and int(k) in cache else None
            bv, q, mult = _block_projection(Xa, rn, sg, g, level, marg=marg, seed=seed)
            if cache is not None:
                cache[int(k)] = mult
            val = min(bv, val)
            n_nnls += 1
        best = max(best, val)
        if val > level and not active[sgn, i]:
            found.append((val, sgn, i))
            if directions is not None:
                directions[(sgn, i)] = q
            if len(found) >= limit and pos + 1 < len(order):
                stopped = True
                break
    found.sort(key=lambda t: -t[0])
    blocks = np.array([[sg, i] for _, sg, i in found], dtype=np.int64).reshape(-1, 2)
    return blocks, (None if stopped else max(best, rest)), bounds, n_nnls


def scan_flops(n: int, d: int, P: int) -> float:
    r"""Floating-point operations of one scan of the blocks (:func:`scan_blocks`, :func:`screen_blocks`)
    by its two passes over the data and the ``n x P`` masks: the products :math:`X_a^\top D_i v` of all
    patterns and the margins :math:`\hat X_a G` of the half-space bounds, :math:`2nd'P` each (the NNLS
    of the blocks above the level are not counted)."""
    return 4.0 * n * d * P


def multiplier_bounds(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, multipliers: np.ndarray,
                      cols: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
    r"""Upper bounds :math:`\|g_{i\sigma} + A_i^\top\rho\|_2 \ge s_{i\sigma}(v)` of the blocks ``cols``.

    ``cols`` are flat block indices ``sign_row * P + i`` (columns of ``multipliers``, shape
    ``(n, 2P)``, e.g. :attr:`RestrictedSolution.multipliers`), :math:`g_{i\sigma} = \sigma X_a^\top D_i v`,
    :math:`A_i = \operatorname{diag}(2m_i - 1) X_a` and :math:`\rho` the column's positive part: any
    :math:`\rho \ge 0` gives an upper bound of :math:`\|\Pi_{\mathcal K_i}(g)\| = \min_{\rho\ge0}\|g + A_i^\top\rho\|`
    (:func:`~convexnn.duality.cones.multiplier_images`), computed for all ``cols`` by two matrix
    products. ``G``: the products :math:`X_a^\top D_i v` of all patterns (:func:`_masked_products`)
    when the caller has them.
    """
    cols = np.asarray(cols, dtype=np.int64)
    P = masks.shape[1]
    if cols.size == 0:
        return np.zeros(0)
    sgn, idx = np.divmod(cols, P)
    Mc = np.asarray(masks[:, idx], dtype=bool)
    G = (Xa * v[:, None]).T @ Mc.astype(np.float64) if G is None else G[:, idx]
    return np.linalg.norm(multiplier_images(Xa, Mc, 1.0 - 2.0 * sgn, np.maximum(multipliers[:, cols], 0.0), G),
                          axis=0)


def _block_value(Xa: np.ndarray, rn: np.ndarray, sg: np.ndarray, g: np.ndarray, level: float,
                 max_rounds: int = _ROW_ROUNDS) -> float:
    r"""An upper bound of :math:`\|\Pi_{\mathcal K}(g)\|`, exact whenever it exceeds ``level``.

    :math:`\min_{\rho \ge 0}\|g + A^\top\rho\|` with :math:`\rho` supported on a subset
    :math:`J` of rows is still an upper bound (any :math:`\rho \ge 0` is, see
    :mod:`convexnn.duality.cones`): it is the projection :math:`q_J` onto the larger cone
    :math:`\mathcal K_J = \{u : A_J u \ge 0\} \supseteq \mathcal K`. Row generation: :math:`J`
    starts with the :math:`3d'` rows most violated by ``g``; while the bound is above ``level``
    and :math:`q_J` violates rows outside :math:`J` (normalized margin below
    :math:`-10^{-12}\max(\|q_J\|, 10^{-3}\|g\|)`), the :math:`3d'` most violated of them join :math:`J`. When
    :math:`q_J \in \mathcal K` it is the projection onto :math:`\mathcal K` itself
    (:math:`\mathcal K \subseteq \mathcal K_J`), so the value is exact up to that tolerance.
    Each round costs one product :math:`X_a q_J` and a small NNLS (:math:`|J| \le` a few hundred
    rows) instead of the NNLS over all ``n`` rows, which is solved
    (:func:`~convexnn.duality.cones.project_cone`) only after ``max_rounds`` rounds.
    """
    return _block_projection(Xa, rn, sg, g, level, max_rounds)[0]


def _block_projection(Xa: np.ndarray, rn: np.ndarray, sg: np.ndarray, g: np.ndarray, level: float,
                      max_rounds: int = _ROW_ROUNDS, marg: np.ndarray | None = None,
                      seed: np.ndarray | None = None) -> tuple[float, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    r"""The value of :func:`_block_value`, the point :math:`q_J` whose norm it is (the projection
    :math:`\Pi_{\mathcal K}(g)` when the value is exact; the values only decrease as :math:`J` grows,
    :math:`\|\Pi_{\mathcal K_J}(g)\|^2 = \|g\|^2 - \operatorname{dist}(g, \mathcal K_J)^2`) and its
    multipliers ``(rows, c)``: :math:`q_J = g + X_{a,\text{rows}}^\top c`, :math:`c = s \odot \rho` on the
    rows where :math:`\rho > 0`. ``marg``: the normalized margins ``sg * (Xa @ g) / rn`` when the caller
    has them (:func:`_block_inputs`); ``seed``: rows that join the first row set (e.g. the rows of the
    block's projection at a nearby :math:`v`, see ``cache`` in :func:`scan_blocks`)."""
    n, d = Xa.shape
    kk = min(n, 3 * d)
    best, arg, mult = np.inf, None, (np.zeros(0, dtype=np.int64), np.zeros(0))
    full = kk >= n  # the NNLS over all rows is needed
    if not full:
        marg = sg * (Xa @ g) / rn if marg is None else marg
        J = np.argpartition(marg, kk - 1)[:kk]
        if seed is not None and len(seed):
            J = np.union1d(J, seed)
        gn = float(np.linalg.norm(g))
        full = True
        for _ in range(max_rounds):
            q, rho = project_cone(Xa[J], sg[J], g)
            u = float(np.linalg.norm(q))
            if u < best:
                on = rho > 0
                best, arg, mult = u, q, (J[on], sg[J[on]] * rho[on])
            if best <= level:
                full = False
                break
            marg = sg * (Xa @ q) / rn
            marg[J] = 0.0
            bad = np.flatnonzero(marg < -1e-12 * max(u, 1e-3 * gn))
            if bad.size == 0:
                full = False  # q is in the cone: the exact projection
                break
            if bad.size > kk:
                bad = bad[np.argpartition(marg[bad], kk - 1)[:kk]]
            J = np.concatenate([J, bad])
            if J.size >= n // 2:
                break
    if full:
        q, rho = project_cone(Xa, sg, g)
        u = float(np.linalg.norm(q))
        if u < best:
            on = np.flatnonzero(rho > 0)
            best, arg, mult = u, q, (on, sg[on] * rho[on])
    return best, arg, mult


def _masked_products(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray) -> np.ndarray:
    r""":math:`X_a^\top D_i v` of every pattern, shape ``(d', P)`` (one product with the masks)."""
    return (Xa * v[:, None]).T @ np.asarray(masks, dtype=bool).astype(np.float64)


def _block_inputs(Xa: np.ndarray, rn: np.ndarray, masks: np.ndarray, G: np.ndarray, blocks: np.ndarray):
    r"""For the flat blocks ``blocks`` (``sign_row * P + i``), in order: ``(block, g, sg, marg)`` with
    :math:`g = \sigma X_a^\top D_i v` (column ``i`` of ``G`` = :func:`_masked_products`, signed),
    ``sg`` :math:`= 2m_i - 1` and the first normalized margins ``sg * (Xa @ g) / rn`` of
    :func:`_block_projection`. Formed for a chunk of blocks at once (one product with :math:`X_a`
    for the chunk instead of two matrix-vector products per block, each a pass over the ``n x d'``
    data: most of a scan's time at ``n = 1e5``); a generator, so a scan that stops early forms at
    most one chunk more than it uses."""
    n = Xa.shape[0]
    P = masks.shape[1]
    chunk = int(max(1, min(64, _SCAN_CHUNK_BYTES // (8 * max(n, 1)))))
    blocks = np.asarray(blocks, dtype=np.int64)
    for a in range(0, blocks.size, chunk):
        kc = blocks[a:a + chunk]
        sgn, idx = np.divmod(kc, P)
        Gc = G[:, idx] * (1.0 - 2.0 * sgn)[None, :]  # (d', c)
        S = np.where(np.asarray(masks[:, idx], dtype=bool).T, 1.0, -1.0)  # (c, n)
        Mg = Gc.T @ Xa.T
        Mg *= S
        Mg /= rn[None, :]
        for j, k in enumerate(kc):
            yield int(k), Gc[:, j], S[j], Mg[j]


def _sign_bounds(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
    r"""Cheap upper bounds of :math:`s_{i\sigma}(v)` per sign, shape ``(2, P)``.

    The single-half-space bound of :func:`~convexnn.duality.cones.cone_support`
    (:math:`\|\Pi_H(g)\|^2 = \|g\|^2 - \max_j (a_j^\top g)_-^2/\|a_j\|^2`, :math:`H \supseteq \mathcal K_i`),
    kept separately for :math:`\sigma = \pm 1` (``cone_support`` returns their maximum). ``G``: the
    products of :func:`_masked_products` when the caller has them.
    """
    rn = np.linalg.norm(Xa, axis=1)
    Xn = Xa / np.where(rn > 0, rn, 1.0)[:, None]
    Mb = np.asarray(masks, dtype=bool)
    G = _masked_products(Xa, Mb, v) if G is None else G  # (d', P): X_a^T D_i v
    g2 = np.einsum("ij,ij->j", G, G)
    Z = Xn @ G
    np.negative(Z, out=Z, where=~Mb)
    out = np.empty((2, Mb.shape[1]))
    out[0] = np.sqrt(np.maximum(g2 - np.minimum(Z.min(axis=0), 0.0) ** 2, 0.0))
    out[1] = np.sqrt(np.maximum(g2 - np.maximum(Z.max(axis=0), 0.0) ** 2, 0.0))
    return out


def screen_blocks(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, level: float,
                  bounds: np.ndarray | None = None, exclude: np.ndarray | None = None,
                  limit: int | None = None, top: int | None = None,
                  directions: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
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
    top : int, optional
        Only the ``top`` largest values are wanted: the pass stops once ``top`` blocks are found
        and the next bound is below the ``top``-th largest value found (no unexamined block can
        enter the ``top``; the first ``top`` rows of the result are those of the full pass). Once
        ``top`` values are found, a block is kept (and its value made exact) only above the
        smallest of them.
    directions : dict, optional
        Receives ``(sign_row, i) ->`` the projection of every block found (as in :func:`scan_blocks`).

    Returns
    -------
    (blocks, values)
        ``blocks`` of shape ``(k, 2)`` with rows ``(sign_row, i)`` (``sign_row`` 0 for
        :math:`v_i`, 1 for :math:`w_i`) and their values, sorted by decreasing value.
    """
    G = _masked_products(Xa, masks, v)
    ub = _sign_bounds(Xa, masks, v, G)
    if bounds is not None:
        ub = np.minimum(ub, bounds[None, :])
    rn = np.linalg.norm(Xa, axis=1)
    rn = np.where(rn > 0, rn, 1.0)
    P = masks.shape[1]
    flat = ub.ravel()
    rows: list[int] = []
    cols: list[int] = []
    out: list[float] = []
    best: list[float] = []  # min-heap of the `top` largest values found
    order = np.argsort(-flat, kind="stable")
    head = order[: int(np.count_nonzero(flat >= level))]
    if exclude is not None:
        head = head[~np.asarray(exclude, dtype=bool).ravel()[head]]
    inputs = _block_inputs(Xa, rn, masks, G, head)  # the blocks examined below, in order
    for k in order:
        if flat[k] < level:
            break
        if top is not None and len(best) >= top and flat[k] < best[0]:
            break
        sgn, i = divmod(int(k), P)
        if exclude is not None and exclude[sgn, i]:
            continue
        _, g, sg, marg = next(inputs)
        # once `top` values are found, a block matters only above the smallest of them: its value
        # need not be exact below that (the row generation stops earlier)
        lev = level if top is None or len(best) < top else max(level, best[0])
        val, q, _ = _block_projection(Xa, rn, sg, g, lev, marg=marg)
        if val >= lev:
            if directions is not None:
                directions[(sgn, i)] = q
            rows.append(sgn)
            cols.append(i)
            out.append(val)
            if top is not None:
                (heapq.heappush if len(best) < top else heapq.heappushpop)(best, val)
            if limit is not None and len(out) >= limit:
                break
    order = np.argsort(-np.asarray(out)) if out else np.zeros(0, dtype=np.int64)
    blocks = np.stack([np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)], axis=1)[order] \
        if out else np.zeros((0, 2), dtype=np.int64)
    return blocks, np.asarray(out)[order] if out else np.zeros(0)
