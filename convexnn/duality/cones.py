r"""Cones of the C-ReLU program: projections and the dual norm :math:`s(v)` with rigorous bounds.

For a dual candidate :math:`v` it computes

.. math::

    s(v) = \max_{i,\ \sigma = \pm 1}\ \max_{u \in \mathcal K_i,\ \|u\|_2 \le 1}
           \sigma \langle X_a^\top D_i v, u\rangle
         = \max_{i, \sigma} \big\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\big\|_2 ,

the left-hand side of the dual constraints of C-ReLU (Mishkin & Pilanci, *Optimal Sets and Solution
Paths of ReLU Networks*, ICML 2023; Ergen & Pilanci, ICML 2021, eq. (6)). By Moreau's
decomposition, with :math:`A_i = (2D_i - I) X_a` (so :math:`\mathcal K_i = \{u : A_i u \ge 0\}`
and its polar is :math:`\{-A_i^\top \rho : \rho \ge 0\}`),

.. math::

    \|\Pi_{\mathcal K_i}(g)\|_2 = \min_{\rho \ge 0} \|g + A_i^\top \rho\|_2 ,

a non-negative least-squares problem (NNLS). *Any* :math:`\rho \ge 0` gives an upper bound, so
an inexact NNLS can only make the reported :math:`s(v)` larger, never smaller: the certificates
built on it stay valid lower bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from convexnn.rounding import gamma

__all__ = ["project_cone", "multiplier_images", "ConeSupport", "cone_support", "global_support_bound"]

_CHUNK = 4096  # patterns processed at once by cone_support (memory: n * _CHUNK floats)
_MULT_CHUNK = 256  # patterns per pass of the multiplier bounds (a few n * _MULT_CHUNK temporaries)


def project_cone(Xa: np.ndarray, signs: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Projection of ``g`` onto :math:`\mathcal K = \{u : \operatorname{diag}(s) X_a u \ge 0\}` by NNLS.

    Returns ``(q, rho)`` with :math:`\rho \ge 0` and :math:`q = g + X_a^\top(s \odot \rho)`, the
    minimizer of :math:`\|g + A^\top\rho\|` (Moreau: ``q`` is the projection of ``g`` onto the cone
    and :math:`-A^\top\rho` the projection onto its polar).
    """
    A = (Xa * signs[:, None]).T  # (d', n) = A^T
    rho, _ = nnls(A, -g, maxiter=50 * A.shape[1])
    rho = np.maximum(rho, 0.0)
    return g + A @ rho, rho


def multiplier_images(Xa: np.ndarray, masks: np.ndarray, sigma: np.ndarray, rho: np.ndarray,
                      G: np.ndarray) -> np.ndarray:
    r"""The points :math:`h = \sigma g + A^\top\rho` whose norms bound the pairs' cone projections.

    For pairs of a pattern :math:`m` and a sign :math:`\sigma`, with :math:`g = X_a^\top D v`
    (column of ``G``) and :math:`A = \operatorname{diag}(2m - 1) X_a`, Moreau's decomposition gives
    :math:`\|\Pi_{\mathcal K}(\sigma g)\| = \min_{\rho \ge 0}\|\sigma g + A^\top\rho\|`: every
    :math:`\rho \ge 0` (a solver's cone multipliers, the multipliers of a projection at a nearby
    :math:`v`) makes :math:`\|h\|` an upper bound of the pair's value, and
    :math:`R^*(h)` one of its value under a penalty :math:`R` (:func:`convexnn.duality.dual.relu_dual_value`).

    Parameters
    ----------
    Xa : ndarray, shape (n, d')
    masks : ndarray of bool, shape (n, c)
        The pattern of each pair.
    sigma : ndarray, shape (c,)
        :math:`\pm 1` per pair.
    rho : ndarray, shape (n, c)
        The multipliers, non-negative (the caller clips them).
    G : ndarray, shape (d', c)
        :math:`X_a^\top D v` of each pair's pattern (no sign).

    Returns
    -------
    ndarray, shape (d', c)
    """
    return np.asarray(sigma, dtype=np.float64)[None, :] * G + Xa.T @ (np.where(masks, 1.0, -1.0) * rho)


@dataclass
class ConeSupport:
    r"""Result of :func:`cone_support`.

    Attributes
    ----------
    value : float
        :math:`s(v)` over the given patterns as computed in floating point (the largest cone
        projection norm found).
    index : int
        Pattern attaining the maximum (``-1`` when there are no patterns).
    sign : int
        ``+1`` (a neuron with positive output weight, C-ReLU block ``v_i``) or ``-1`` (``w_i``).
    direction : ndarray, shape (d',)
        The projection :math:`q = \Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)`; ``q/||q||`` is the
        maximizing unit first-layer weight.
    n_nnls : int
        Number of NNLS problems actually solved (the rest were discarded by cheap bounds).
    bounds : ndarray, shape (P,)
        Cheap per-pattern upper bounds (max over both signs, floating point).
    valid : float
        A rigorous upper bound of :math:`\max_{i,\sigma}\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\|`
        over the given patterns for the float64 ``Xa`` and ``v``: every rounding error of the
        products, projections and norms is bounded (Higham's :math:`\gamma_k`) and added.
    """

    value: float
    index: int
    sign: int
    direction: np.ndarray
    n_nnls: int
    bounds: np.ndarray
    valid: float = float("nan")




def cone_support(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, *, exact: bool = True,
                 multipliers: np.ndarray | None = None, projections: dict | None = None,
                 rtol: float = 0.0) -> ConeSupport:
    r"""Compute :math:`s(v) = \max_{i,\sigma}\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\|_2` over the patterns.

    Batched branch and bound: for every pattern and sign a cheap *upper* bound
    (projection onto the single half-space :math:`H = \{u: a_j^\top u \ge 0\} \supseteq \mathcal K_i`
    that cuts the most, :math:`\|\Pi_{H}(g)\|^2 = \|g\|^2 - \max_j (a_j^\top g)_-^2/\|a_j\|^2`)
    is computed for all patterns at once with matrix products (in chunks); an NNLS is then solved
    only for the pattern/sign pairs, in decreasing order of the upper bound, until the next upper
    bound is no larger than the best value found. Every skipped pair provably cannot exceed it.

    Rounding is accounted for in :attr:`ConeSupport.valid`: with
    :math:`e_g = \gamma_{n+2}\,\| |X_a|^\top |v| \|_2` bounding the error of every computed
    :math:`X_a^\top D_i v`, an NNLS value :math:`\|q\|` becomes
    :math:`(\|q\| + \gamma_{n+2}\||A_i|^\top\rho\|)(1+\gamma_{d'+2}) + e_g` and a cheap bound
    :math:`b` becomes :math:`\sqrt{b^2 + 8\gamma_{d'+4}(\|g\|^2 + c^2)} + e_g`; pairs whose
    rigorous cheap bound exceeds the rigorous best value are evaluated exactly as well.

    Parameters
    ----------
    Xa : ndarray, shape (n, d')
    masks : ndarray of bool, shape (n, P)
    v : ndarray, shape (n,)
    exact : bool
        When False, skip the NNLS and return the cheap upper bound (a valid but looser value).
    multipliers : ndarray, shape (n, 2P), optional
        Cone multipliers :math:`\rho \ge 0` per pair (patterns with :math:`\sigma = +1` first), e.g.
        a solver's: by Moreau's decomposition :math:`\|\Pi_{\mathcal K_i}(g)\| = \min_{\rho\ge0}\|g +
        A_i^\top\rho\|`, so each gives one more upper bound of its pair (rounding bounded alike).
    projections : dict, optional
        ``pair -> (rows, c)`` with :math:`c = (s \odot \rho)_{\text{rows}}` (the projection cache of
        :func:`convexnn.solvers.relu_certificate.scan_blocks`): the multipliers of the pairs whose
        column of ``multipliers`` is zero (or all pairs, without ``multipliers``).
    rtol : float
        Pairs whose upper bound is within ``1 + rtol`` of the best value found are not solved
        exactly; their rigorous bounds enter :attr:`ConeSupport.valid` (a valid bound at most
        ``1 + rtol`` times looser, up to rounding; :attr:`ConeSupport.value` is then the best value
        found, within that factor of :math:`s(v)`).

    Returns
    -------
    ConeSupport
    """
    n, dp = Xa.shape
    P = masks.shape[1]
    if P == 0:
        return ConeSupport(0.0, -1, 1, np.zeros(dp), 0, np.zeros(0), 0.0)
    rn = np.linalg.norm(Xa, axis=1)
    Xn = Xa / np.where(rn > 0, rn, 1.0)[:, None]  # rows a_j / ||a_j|| (up to the sign s_j)
    Xv = (Xa * v[:, None]).T  # (d', n): G = Xv @ M
    e_g = gamma(n + 2) * float(np.linalg.norm(np.abs(Xa).T @ np.abs(v)))
    gk = gamma(dp + 4)
    ubs = np.empty((2, P))
    slack = np.empty((2, P))
    for start in range(0, P, _CHUNK):
        sl = slice(start, min(P, start + _CHUNK))
        Mb = np.asarray(masks[:, sl], dtype=bool)
        G = Xv @ Mb.astype(np.float64)  # (d', c): X_a^T D_i v
        g2 = np.einsum("ij,ij->j", G, G)
        Z = Xn @ G
        np.negative(Z, out=Z, where=~Mb)  # s_j a_j^T g / ||a_j||
        cut_plus = np.minimum(Z.min(axis=0), 0.0) ** 2  # sigma = +1: most violated half-space
        cut_minus = np.maximum(Z.max(axis=0), 0.0) ** 2  # sigma = -1
        ubs[0, sl] = np.sqrt(np.maximum(g2 - cut_plus, 0.0))
        ubs[1, sl] = np.sqrt(np.maximum(g2 - cut_minus, 0.0))
        slack[0, sl] = np.sqrt(ubs[0, sl] ** 2 + 8 * gk * (g2 + cut_plus)) - ubs[0, sl]
        slack[1, sl] = np.sqrt(ubs[1, sl] ** 2 + 8 * gk * (g2 + cut_minus)) - ubs[1, sl]
    rig = ubs + slack + e_g
    rig *= 1 + gk
    if multipliers is not None or projections:  # h = sigma g + A_i^T rho bounds its pair, any rho >= 0
        R = None if multipliers is None else np.asarray(multipliers)
        if R is not None and R.shape != (n, 2 * P):
            raise ValueError(f"multipliers must have shape {(n, 2 * P)}; got {R.shape}.")
        absX = np.abs(Xa)
        for sgn in (0, 1):
            for start in range(0, P, _MULT_CHUNK):
                sl = slice(start, min(P, start + _MULT_CHUNK))
                Mb = np.asarray(masks[:, sl], dtype=bool)
                lo = sgn * P + start
                # this chunk's multipliers only (no (n, 2P) copy)
                Rb = (np.zeros((n, sl.stop - start)) if R is None else
                      np.maximum(np.asarray(R[:, lo: sgn * P + sl.stop], dtype=np.float64), 0.0))
                for j in range(Rb.shape[1]) if projections else ():  # the cache fills the empty columns
                    if lo + j in projections and not Rb[:, j].any():
                        rows_k, c_k = projections[lo + j]
                        Rb[rows_k, j] = np.maximum(np.where(Mb[rows_k, j], 1.0, -1.0) * c_k, 0.0)
                H = multiplier_images(Xa, Mb, np.full(Mb.shape[1], 1.0 - 2 * sgn), Rb, Xv @ Mb.astype(np.float64))
                nh = np.sqrt(np.einsum("ij,ij->j", H, H))
                e_h = gamma(n + 2) * np.sqrt(np.einsum("ij,ij->j", absX.T @ Rb, absX.T @ Rb))
                ubs[sgn, sl] = np.minimum(ubs[sgn, sl], nh)
                rig[sgn, sl] = np.minimum(rig[sgn, sl], ((nh + e_h) * (1 + gk) + e_g) * (1 + gk))
    if not exact:
        k = int(np.argmax(ubs))
        sgn, idx = divmod(k, P)
        m = np.asarray(masks[:, idx], dtype=np.float64)
        g = (1 - 2 * sgn) * (Xa.T @ (m * v))
        return ConeSupport(float(ubs.flat[k]), idx, 1 - 2 * sgn, g, 0, ubs.max(axis=0), float(rig.max()))
    best_val, best_idx, best_sign, best_dir = -1.0, -1, 1, np.zeros(dp)
    best_rig = 0.0
    n_nnls = 0
    done = np.zeros(2 * P, bool)
    flat = ubs.ravel()
    rflat = rig.ravel()

    def exact_pair(k: int) -> None:
        nonlocal best_val, best_idx, best_sign, best_dir, n_nnls, best_rig
        sgn, idx = divmod(int(k), P)
        sigma = 1 - 2 * sgn
        m = np.asarray(masks[:, idx], dtype=bool)
        g = sigma * (Xa.T @ np.where(m, v, 0.0))
        signs = np.where(m, 1.0, -1.0)
        q, rho = project_cone(Xa, signs, g)
        n_nnls += 1
        done[k] = True
        nq = float(np.linalg.norm(q))
        val = min(nq, float(flat[k]))  # both are upper bounds (in exact arithmetic)
        e_q = gamma(n + 2) * float(np.linalg.norm(np.abs(Xa).T @ rho)) if rho.size else 0.0
        r_val = min((nq + e_q) * (1 + gk) + e_g, float(rflat[k]))
        best_rig = max(best_rig, r_val)
        if val > best_val:
            best_val, best_idx, best_sign, best_dir = val, idx, sigma, q

    for k in np.argsort(-flat):  # decreasing upper bound; stop when no pair can beat the best
        if flat[k] <= max(best_val, 0.0) * (1.0 + rtol):
            break
        exact_pair(int(k))
    # rounding: pairs skipped in floating point whose rigorous bound exceeds the rigorous best
    while True:
        open_ = np.flatnonzero(~done & (rflat > best_rig * (1.0 + rtol)))
        if open_.size == 0:
            break
        if open_.size > 64 + P // 100:  # too many to evaluate: keep their rigorous bounds
            best_rig = max(best_rig, float(rflat[open_].max()))
            break
        for k in open_[np.argsort(-rflat[open_])]:
            if rflat[k] > best_rig * (1.0 + rtol):
                exact_pair(int(k))
    if rtol > 0.0:  # the pairs left unsolved within 1 + rtol of the best keep their rigorous bounds
        best_rig = max(best_rig, float(rflat[~done].max(initial=0.0)))
    return ConeSupport(max(best_val, 0.0), best_idx, best_sign, best_dir, n_nnls, ubs.max(axis=0),
                       max(best_rig, 0.0))


def global_support_bound(Xa: np.ndarray, v: np.ndarray) -> float:
    r"""A rigorous upper bound of :math:`s(v)` valid over **all** activation patterns (no enumeration).

    For any unit :math:`u` and sign :math:`\sigma`,
    :math:`\sigma\langle v, (X_a u)_+\rangle \le \langle (\sigma v)_+, (X_a u)_+\rangle
    \le \min\big(\|(\sigma v)_+\|_2\,\|X_a\|_F,\ \sum_j (\sigma v_j)_+ \|x_j\|_2\big)`
    (the Frobenius norm bounds the spectral norm and is computed with a small rounding error;
    both terms are inflated by :math:`\gamma_{n d' + 4}`).
    """
    n, dp = Xa.shape
    fro = float(np.linalg.norm(Xa))
    rn = np.linalg.norm(Xa, axis=1)
    out = 0.0
    for s in (1.0, -1.0):
        vp = np.maximum(s * v, 0.0)
        out = max(out, min(float(np.linalg.norm(vp)) * fro, float(vp @ rn)))
    return out * (1 + gamma(n * dp + 4)) ** 2
