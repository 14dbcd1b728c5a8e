r"""Branch and bound for the ReLU dual norm :math:`s(v)` over **all** activation patterns.

For a dual candidate :math:`v \in \mathbb R^n` and the rows :math:`x_j` of :math:`X_a`
(``(n, d')``), the certificates of :mod:`convexnn.duality.certify` need

.. math::

    s(v) = \max_{\sigma = \pm 1}\ \max_{\|u\|_2 \le 1}\ \sigma \sum_j v_j (x_j^\top u)_+
         = \max_{i, \sigma}\big\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\big\|_2 ,

the left-hand side of the dual constraints of C-ReLU over every chamber of the arrangement
(Pilanci & Ergen, "Neural Networks are Convex Regularizers", ICML 2020; Mishkin & Pilanci,
"Optimal Sets and Solution Paths of ReLU Networks", ICML 2023). Any *upper* bound
:math:`U \ge s(v)` makes :math:`c\,v` dual feasible for :math:`c \le \lambda / U`: this module
computes such bounds without enumerating the chambers.

Reduction to boxes
------------------
:math:`f_\sigma(u) = \sigma\sum_j v_j (x_j^\top u)_+` is positively homogeneous, so
:math:`s(v) = \max(0, \max_\sigma \max_{z} f_\sigma(z)/\|z\|_2)` with :math:`z` ranging over the
boundary of the cube :math:`[-1, 1]^{d'}`, the union of the :math:`2d'` faces
:math:`\{z_i = \pm 1\}`. Each face is a box; the search bisects boxes at the midpoint of the side
:math:`k` maximising :math:`r_k \sum_{j \text{ crossing}} |v_j|\,|x_{jk}|` (half-width times the
weight of the crossing units, the looseness that the split reduces, in the spirit of the smart
branching of Bunel et al., "Branch and Bound for Piecewise Linear Neural Network Verification",
JMLR 2020; the longest side when no unit crosses) and keeps, best first, the boxes whose upper
bound exceeds the pruning level. A child lies in its parent, so it keeps the smaller of its own
bound and its parent's: the global bound never increases as the search goes on.

Bound on a box :math:`B` (all of it rigorous in floating point)
----------------------------------------------------------------
1. Pre-activation intervals :math:`l_j \le x_j^\top z \le h_j` on :math:`B` from the centre
   :math:`m` and half-widths :math:`r`: :math:`x_j^\top m \pm |x_j|^\top r`, widened by
   :math:`\gamma_k (|x_j|^\top(|m| + r))` with :math:`\gamma_k = ku/(1-ku)`, :math:`u = 2^{-53}`
   (Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, Sec. 3.1).
2. Linear relaxation :math:`f_\sigma(z) \le c^\top z + c_0` on :math:`B`: units with
   :math:`l_j \ge 0` are linear, units with :math:`h_j \le 0` vanish; a crossing unit with
   :math:`\sigma v_j > 0` uses the chord (triangle relaxation)
   :math:`(t)_+ \le h_j (t - l_j)/(h_j - l_j)`, one with :math:`\sigma v_j < 0` uses
   :math:`(t)_+ \ge \alpha_j t` with any :math:`\alpha_j \in [0, 1]`. The cone bound of step 3 is
   convex in :math:`\alpha` (a maximum of affine functions), so the slopes are optimised per box by
   a few projected subgradient steps from :math:`\alpha_j = \mathbf 1[h_j > -l_j]`, keeping the
   smallest bound met, for the boxes still above the pruning level (the optimised slopes of
   alpha-CROWN: Xu et al., "Fast and Complete", ICLR 2021);
   :math:`\mathrm{fl}(\sigma v_j \alpha_j)` keeps the sign of :math:`\sigma v_j`
   and a modulus at most :math:`|v_j|`, so the inequality holds exactly. The rounding of the
   computed slopes is absorbed exactly: the residual :math:`\max_{t\in[l_j,h_j]}` of every unit's
   inequality is evaluated at :math:`t \in \{l_j, 0, h_j\}` and added to :math:`c_0`, and the
   rounding of :math:`c = X_a^\top a` is added as :math:`\gamma_{2n+4}(|a|^\top|X_a|)^\top |z|_{\max}`.
3. On the face :math:`z_i = s` the constant is linear (:math:`c_0 = c_0\, s z_i`), so
   :math:`f_\sigma(z)/\|z\| \le \max_{w \in \operatorname{cone}(B), \|w\| \le 1} c'^\top w
   = \|\Pi_{\operatorname{cone}(B)}(c')\|` with :math:`c' = c + c_0 s e_i`. With
   :math:`\operatorname{cone}(B) = \{w : Aw \ge 0\}` (rows :math:`e_k - \mathrm{lo}_k s e_i`,
   :math:`\mathrm{hi}_k s e_i - e_k`, :math:`s e_i`), Moreau's decomposition gives
   :math:`\|\Pi(c')\| = \min_{\rho\ge 0}\|c' + A^\top\rho\|` and *every* :math:`\rho \ge 0` is an
   upper bound; :math:`\rho` is read off the point of :math:`B` on the ray of :math:`c'` (clipped
   to the box). The bound is the smaller of that and :math:`\|c'\|`, and 0 when
   :math:`\max_B c'^\top z \le 0`.
4. Vertex bound (for :math:`d' - 1 \le` ``vertex_dim``). Keep the crossing units with
   :math:`\sigma v_j > 0` exact and the others as above (tangent slope
   :math:`\alpha_j = \mathbf 1[x_j^\top m > 0]` at the centre :math:`m`):
   :math:`Q(z) = \sum_{\text{linear}} a_j x_j^\top z + \sum_{\text{crossing},\,\sigma v_j > 0}
   \sigma v_j (x_j^\top z)_+` satisfies :math:`f_\sigma \le Q` on :math:`B` and is convex. Let
   :math:`g = m/\|m\|`; when :math:`g^\top z > 0` at every vertex of :math:`B` (hence on
   :math:`B`), the ratio :math:`Q(z)/g^\top z` is quasiconvex on :math:`B` (its sublevel sets
   :math:`\{Q(z) - t\,g^\top z \le 0\}` are convex), so its maximum over the polytope :math:`B` is
   attained at one of its :math:`2^{d'-1}` vertices; with :math:`\|z\| \ge g^\top z/\|g\|`
   (Cauchy-Schwarz), :math:`f_\sigma(z)/\|z\| \le \|g\| \max(0, \max_{\text{vertices}}
   Q(z_v)/g^\top z_v)` on :math:`B`. Unlike the chords, this is exact for the convex part: the
   only relaxation left is the tangent of the units with :math:`\sigma v_j < 0` and the
   second-order gap between :math:`\|z\|` and :math:`g^\top z`. Rounding: the vertex
   pre-activations are computed as :math:`x_j^\top m + (r \circ x_j)^\top \delta` plus
   :math:`E_j` (the interval term of step 1) before the (monotone) ReLU, the linear part carries
   :math:`\gamma_{2d'+4}|a|^\top(|m| + r)` and the coefficient term of step 2, :math:`g^\top z_v` is
   lowered by :math:`\gamma_{2d'+4}|g|^\top(|m|+r)`, and the vertices are those of the box
   enlarged by :math:`4u`, which contains :math:`B`. Its cost is :math:`2^{d'-1}` times the number
   of such crossing units, so it is evaluated only for boxes still above the pruning level and
   where that product is at most :math:`32 n`; the box keeps the smaller of the two bounds.
5. Exact leaves: when at most ``exact_leaf`` distinct hyperplanes cross :math:`B`, every linear
   piece :math:`S` of :math:`f_\sigma` on :math:`B` is bounded by the norm of the projection of its
   gradient onto :math:`\operatorname{cone}(B) \cap \{\text{signs of } S\}` (one small NNLS each,
   again valid for any :math:`\rho \ge 0`); the projection is attained by a real unit vector, so
   such a box is closed with its exact value.

The global upper bound is the largest bound of the open boxes and of the boxes discarded so far
(never the incumbent itself, which is computed without error bounds): **stopping at any moment
returns a valid** :math:`U \ge s(v)`. Incumbents (lower bounds, with the unit neuron attaining
them) come from box centres, exact leaves and a local ascent over adjacent chambers
(:func:`convexnn.duality._common.project_cone`).

This is the input-splitting branch and bound of neural-network verification (bound propagation
with triangle relaxations and best-first search, e.g. Wang et al., "Beta-CROWN", NeurIPS 2021)
applied to the one-hidden-layer network whose hidden units are the data points.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from convexnn.arrangements.limits import available_cores, single_blas_thread
from convexnn.duality.cones import global_support_bound, project_cone
from convexnn.errors import InputError

__all__ = ["DualNormBound", "chamber_ascent", "relu_dual_norm_bab", "serial_searches"]

_U = 2.0 ** -53
#: (box, unit) entries per call of the box bounds: a batch of boxes is bounded in chunks whose
#: ``(boxes, n)`` work arrays stay in the processor's cache (the bounds are elementwise-dominated).
CHUNK_ENTRIES = 400_000
#: threads of a search whose ``n_jobs`` is None (None: the cores available); see :func:`serial_searches`
_JOBS: contextvars.ContextVar[int | None] = contextvars.ContextVar("convexnn_bab_jobs", default=None)


@contextlib.contextmanager
def serial_searches() -> Iterator[None]:
    """Context in which the searches without an explicit ``n_jobs`` run on one thread (for callers
    that are themselves one of several parallel workers, e.g. the tasks of
    :mod:`convexnn.distributed`)."""
    token = _JOBS.set(1)
    try:
        yield
    finally:
        _JOBS.reset(token)


def _gam(k: int) -> float:
    r""":math:`\gamma_k = ku/(1-ku)` (Higham, Sec. 3.1), slightly enlarged."""
    k = int(k) + 2
    return k * _U / (1.0 - k * _U)


@dataclass
class DualNormBound:
    r"""Result of :func:`relu_dual_norm_bab`: a certified enclosure of :math:`s(v)`.

    Attributes
    ----------
    upper : float
        A rigorous upper bound :math:`U \ge s(v)` (rounding accounted for), valid whether or not
        the search completed; never above the pattern-free bound
        (:func:`~convexnn.duality.cones.global_support_bound`, the tighter one when the boxes are
        loose, at large ``d'``).
    lower : float
        :math:`\sigma\sum_j v_j (x_j^\top u)_+` for the unit ``neuron`` :math:`u` and ``sign``
        :math:`\sigma` below (a value actually attained, computed in floating point).
    neuron : ndarray, shape (d',)
        Unit first-layer weight attaining ``lower``.
    sign : int
        ``+1`` or ``-1``.
    nodes : int
        Boxes whose bound was computed.
    complete : bool
        True when the search ran to its end (no open box above the pruning level); then
        ``upper <= max(threshold, lower * (1 + rtol))`` up to rounding.
    time : float
        Seconds spent.
    reason : str
        ``"complete"``, ``"violation"`` (a point above ``threshold`` was found and
        ``stop_at_violation`` was set), ``"time_limit"``, ``"max_nodes"``, ``"memory"`` or
        ``"zero"`` (``v = 0``).
    violations : list of (value, sign, neuron)
        Points found with value above ``threshold`` (distinct activation patterns, best first);
        empty without a threshold.
    """

    upper: float
    lower: float
    neuron: np.ndarray
    sign: int
    nodes: int
    complete: bool
    time: float
    reason: str
    violations: list[tuple[float, int, np.ndarray]] = field(default_factory=list)

    @property
    def gap(self) -> float:
        """``upper - lower`` (at least 0)."""
        return max(self.upper - self.lower, 0.0)

    def __str__(self) -> str:
        return (f"s(v) in [{self.lower:.10g}, {self.upper:.10g}] (rel gap {self.gap / max(self.upper, 1e-300):.3g}), "
                f"{self.nodes} boxes, {self.time:.3g} s, {self.reason}")


class _Boxes:
    """Growable store of open boxes: ``lo``, ``hi`` (N, d'), face coordinate, sign, bound."""

    def __init__(self, d: int, cap: int = 1024):
        self.d = d
        self.n = 0
        self.lo = np.empty((cap, d))
        self.hi = np.empty((cap, d))
        self.fi = np.empty(cap, dtype=np.int32)
        self.sg = np.empty(cap, dtype=np.int8)
        self.ub = np.empty(cap)
        self.sp = np.empty(cap, dtype=np.int32)

    def push(self, lo: np.ndarray, hi: np.ndarray, fi: np.ndarray, sg: np.ndarray, ub: np.ndarray,
             split: np.ndarray) -> None:
        k = lo.shape[0]
        if self.n + k > self.lo.shape[0]:
            cap = max(2 * self.lo.shape[0], self.n + k)
            for name in ("lo", "hi", "fi", "sg", "ub", "sp"):
                old = getattr(self, name)
                new = np.empty((cap,) + old.shape[1:], dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        sl = slice(self.n, self.n + k)
        self.lo[sl], self.hi[sl], self.fi[sl], self.sg[sl], self.ub[sl], self.sp[sl] = lo, hi, fi, sg, ub, split
        self.n += k

    def pop(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        out = (self.lo[idx].copy(), self.hi[idx].copy(), self.fi[idx].copy(), self.sg[idx].copy(),
               self.ub[idx].copy(), self.sp[idx].copy())
        keep = np.ones(self.n, dtype=bool)
        keep[idx] = False
        k = int(keep.sum())
        for name in ("lo", "hi", "fi", "sg", "ub", "sp"):
            arr = getattr(self, name)
            arr[:k] = arr[: self.n][keep]
        self.n = k
        return out

    def prune(self, level: float) -> float:
        """Drop boxes with bound ``<= level``; returns the largest dropped bound (or -inf)."""
        if self.n == 0:
            return -np.inf
        drop = self.ub[: self.n] <= level
        if not drop.any():
            return -np.inf
        dropped = float(self.ub[: self.n][drop].max())
        self.pop(np.flatnonzero(drop))
        return dropped

    def max_ub(self) -> float:
        return float(self.ub[: self.n].max()) if self.n else -np.inf

    def nbytes_per_box(self) -> int:
        return 8 * (2 * self.d + 2)


def _pairs(data: np.ndarray, cols: np.ndarray, per_row: np.ndarray, n: int) -> sp.csr_matrix:
    """CSR matrix of ``(box, unit)`` pairs listed box-major, ``per_row[b]`` pairs for box ``b``."""
    indptr = np.zeros(per_row.size + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    return sp.csr_matrix((data, cols, indptr), shape=(per_row.size, n))


def _face_orders(d: int) -> np.ndarray:
    """Row ``f``: the coordinates ``0..d-1`` with ``f`` moved last (the face ``z_f = +-1`` of a box)."""
    return np.array([[k for k in range(d) if k != f] + [f] for f in range(d)])


def _face_boxes(d: int) -> tuple[np.ndarray, ...]:
    lo, hi, fi, sg = [], [], [], []
    for sigma in (1, -1):
        for i in range(d):
            for s in (1.0, -1.0):
                a, b = -np.ones(d), np.ones(d)
                a[i] = b[i] = s
                lo.append(a)
                hi.append(b)
                fi.append(i)
                sg.append(sigma)
    return np.array(lo), np.array(hi), np.array(fi, dtype=np.int32), np.array(sg, dtype=np.int8)


class _Problem:
    """Data of one search: rows, their absolute values, ``v``, constants."""

    def __init__(self, Xa: np.ndarray, v: np.ndarray):
        self.X = Xa
        self.absX = np.abs(Xa)
        self.v = v
        self.n, self.d = Xa.shape
        self.XT = np.ascontiguousarray(Xa.T)
        self.absXT = np.ascontiguousarray(self.absX.T)
        self.VX = v[:, None] * Xa
        self.slope_iters = 2
        self.vertex_dim = 8
        self.vertex_cost = 32.0
        self._Xface: np.ndarray | None = None  # X_a permuted per face (vertex bound)
        self.vertex_chunk = 200_000  # (pair, vertex) entries per block of the vertex bound (cache-sized)
        self.E = _gam(2 * self.d + 10) * (1.0 + 1e-12) * self.absX.sum(axis=1)
        self.dC = _gam(2 * self.n + 4) * (1.0 + _gam(self.n + 4)) * (np.abs(v) @ self.absX)
        # distinct hyperplanes (bitwise equal rows share one) for the exact leaves
        _, self.row_id = np.unique(Xa, axis=0, return_inverse=True)
        self.row_id = self.row_id.ravel()

    def face_rows(self) -> np.ndarray:
        """Rows of :math:`X_a` in the coordinates of each face (the face coordinate last), face-major:
        ``(d' n, d')``, for the vertex bound."""
        if self._Xface is None:
            d = self.d
            self._Xface = np.ascontiguousarray(self.X[:, _face_orders(d)].transpose(1, 0, 2).reshape(d * self.n, d))
        return self._Xface

    def value(self, u: np.ndarray, sigma: int) -> float:
        """:math:`\\sigma\\langle v, (X_a u)_+\\rangle / \\|u\\|` (floating point, no bound)."""
        nu = float(np.linalg.norm(u))
        if nu == 0:
            return 0.0
        return sigma * float(self.v @ np.maximum(self.X @ u, 0.0)) / nu

    # ------------------------------------------------------------------ batched box bounds
    def bounds(self, lo: np.ndarray, hi: np.ndarray, fi: np.ndarray, sg: np.ndarray,
               level: float = -np.inf) -> dict[str, np.ndarray]:
        N, d = lo.shape
        n = self.n
        rows = np.arange(N)
        m = 0.5 * (lo + hi)
        r = np.maximum(hi - m, m - lo) * (1.0 + 4 * _U)
        t = m @ self.XT  # (N, n)
        # rounding of x_j^T m and |x_j|^T r: |m| + r <= 1 + 8u on the cube, so a constant per row
        l_ = r @ self.absXT
        h_ = t + l_
        h_ += self.E
        np.subtract(t, l_, out=l_)
        l_ -= self.E
        sgf = sg.astype(np.float64)
        fc = (np.maximum(t, 0.0) @ self.v) * sgf / np.linalg.norm(m, axis=1)
        act = l_ >= 0.0
        cross = h_ > 0.0
        cross &= ~act
        C = (act.astype(np.float64) @ self.VX) * sgf[:, None]
        C_act = C
        # the crossing (box, unit) pairs, box-major (flat indices: much faster than a 2-d nonzero)
        fl = np.flatnonzero(cross)
        rr, cc = np.divmod(fl, n)
        lj, hj = l_.ravel()[fl], h_.ravel()[fl]
        ncross = np.bincount(rr, minlength=N)
        vsj = sgf[rr] * self.v[cc]
        pos = vsj > 0
        # chords of the positive crossing units (l_j < 0 < h_j)
        ip = np.flatnonzero(pos)
        rp, vp, lp, hp = rr[ip], vsj[ip], lj[ip], hj[ip]
        npos = np.bincount(rp, minlength=N)
        aj = vp * hp / (hp - lp)
        bj = -aj * lp  # >= 0 on the chords
        # residual of the chord inequality at t in {l, 0, h}, plus the rounding of its evaluation
        res = np.maximum(np.maximum(-aj * lp - bj, -bj), vp * hp - aj * hp - bj)
        res = np.maximum(res, 0.0) + _gam(6) * (np.abs(vp * hp) + np.abs(aj) * (np.abs(lp) + np.abs(hp))
                                                   + np.abs(bj))
        const = np.bincount(rp, weights=bj + res, minlength=N) * (1.0 + _gam(n + 2))
        neg = np.flatnonzero(~pos)
        if rr.size:
            Cb = C + _pairs(aj, cc[ip], npos, n) @ self.X  # active units and chords
            score = r * (_pairs(np.abs(self.v[cc]), cc, ncross, n) @ self.absX)
        else:
            Cb = C
            score = np.zeros((N, d))
        split = np.where(ncross > 0, np.argmax(score, axis=1), np.argmax(r, axis=1))
        # |a_j| <= |v_j| for every unit, so the rounding of C = a^T X_a is at most dC^T |z|
        zabs = np.maximum(np.abs(lo), np.abs(hi))
        const += zabs @ self.dC
        K = const * (1.0 + _gam(n + d + 4))
        # negative crossing units: relu(t) >= alpha_j t for any alpha_j in [0, 1], exactly in floating
        # point (fl(sigma v_j alpha_j) has the sign of sigma v_j and modulus <= |v_j|, so no residual).
        # The box bound is a maximum of affine functions of alpha, hence convex, with subgradient
        # sigma v_j x_j^T w in alpha_j at its maximiser w: start from alpha_j = 1[h_j > -l_j] and
        # take projected subgradient steps alpha_j += eta_k x_j^T p / (h_j - l_j) (p: the point of
        # the box on the maximising ray, eta_k = 2^(1-k)); every iterate is an upper bound and the
        # smallest is kept.
        rn, cn, vn, hn, ln = rr[neg], cc[neg], vsj[neg], hj[neg], lj[neg]
        an = (hn > -ln).astype(np.float64)
        wn = hn - ln
        nneg = np.bincount(rn, minlength=N)
        # only the boxes whose bound is still above ``level`` (they would be discarded anyway) and
        # that have such units are refined
        C = Cb
        if rn.size:
            C = Cb + _pairs(vn * an, cn, nneg, n) @ self.X
        ub, p = self._cone_bound(C, K, lo, hi, fi, zabs)
        hasneg = nneg > 0
        pos_of = np.empty(N, dtype=np.int64)
        p_row = np.arange(N)  # row of p (the last iterate's points) of each box
        for it in range(self.slope_iters):
            above = ub > level
            idx = np.flatnonzero(hasneg & above)
            if idx.size == 0:
                break
            pos_of[idx] = np.arange(idx.size)
            e = np.flatnonzero(above[rn])  # the pairs of the boxes idx, box-major
            ce = cn[e]
            xp = (p @ self.XT).ravel()[p_row[rn[e]] * n + ce]  # x_j^T p at the pairs
            an[e] = np.clip(an[e] + 2.0 ** (1 - it) * xp / wn[e], 0.0, 1.0)
            C = Cb[idx] + _pairs(vn[e] * an[e], ce, nneg[idx], n) @ self.X
            ub_it, p = self._cone_bound(C, K[idx], lo[idx], hi[idx], fi[idx], zabs[idx])
            ub[idx] = np.minimum(ub[idx], ub_it)
            p_row = pos_of.copy()
        vb = np.full(N, np.inf)
        if d - 1 <= self.vertex_dim:
            # boxes still above the level whose vertex evaluation costs at most about vertex_cost * n
            idx = np.flatnonzero((ub > level) & (npos * 2.0 ** (d - 1) <= self.vertex_cost * n))
            if idx.size:
                vb[idx] = self._vertex_bound(idx, m, r, t, fi, C_act, rr, cc, vsj, zabs)
                ub[idx] = np.minimum(ub[idx], vb[idx])
        return {"ub": ub, "vb": vb, "fc": fc, "m": m, "ncross": ncross, "l": l_, "h": h_, "split": split}

    def _vertex_bound(self, idx: np.ndarray, m: np.ndarray, r: np.ndarray, t: np.ndarray, fi: np.ndarray,
                      C_act: np.ndarray, rr: np.ndarray, cc: np.ndarray, vsj: np.ndarray,
                      zabs: np.ndarray) -> np.ndarray:
        r"""Vertex bound of :math:`\max_B f_\sigma(z)/\|z\|` for the boxes ``idx`` (module docstring, step 4).

        ``idx`` increasing; ``rr`` (box of each crossing pair) nondecreasing (pairs listed box-major).
        """
        d, n = self.d, self.n
        Nb = idx.size
        live = np.zeros(m.shape[0], dtype=bool)
        live[idx] = True
        loc = np.cumsum(live) - 1
        sel = np.flatnonzero(live[rr])
        vp, bs, cs = vsj[sel], loc[rr[sel]], cc[sel]
        # negative crossing units: the tangent at the centre, alpha_j = 1[x_j^T m > 0] (exact coefficient)
        tsel = t.ravel()[rr[sel] * n + cs]
        tan = np.flatnonzero((vp < 0) & (tsel > 0.0))
        Cv = C_act[idx]
        if tan.size:
            Cv = Cv + _pairs(vp[tan], cs[tan], np.bincount(bs[tan], minlength=Nb), n) @ self.X
        ps = np.flatnonzero(vp > 0)
        vp, tp, bp, jp = vp[ps], tsel[ps], bs[ps], cs[ps]
        # coordinates permuted per box so that the face coordinate comes last: one vertex set for all
        perm = _face_orders(d)[fi[idx]]
        Xface = self.face_rows()
        fb = fi[idx].astype(np.int64) * n
        mb = np.take_along_axis(m[idx], perm, 1)
        rb = np.take_along_axis(r[idx], perm, 1)
        Cv = np.take_along_axis(Cv, perm, 1)
        V = 2 ** (d - 1)
        Dl = np.zeros((V, d))
        Dl[:, : d - 1] = np.array(list(itertools.product((-1.0, 1.0), repeat=d - 1)))
        amr = np.abs(mb) + rb
        # Q at the vertices: linear part (rounding lerr) plus the positive crossing units
        lin = np.einsum("ij,ij->i", Cv, mb)[:, None] + (Cv * rb) @ Dl.T
        lerr = _gam(2 * d + 4) * np.einsum("ij,ij->i", np.abs(Cv), amr) + (zabs[idx] @ self.dC) * (1.0 + 1e-12)
        # ||z|| >= g^T z / ||g|| with g the unit centre; g^T z at the vertices from below
        g = mb / np.linalg.norm(mb, axis=1)[:, None]
        gn = np.linalg.norm(g, axis=1) * (1.0 + _gam(d + 4))
        den = np.einsum("ij,ij->i", g, mb)[:, None] + (g * rb) @ Dl.T
        den -= (_gam(2 * d + 4) * np.einsum("ij,ij->i", np.abs(g), amr))[:, None]
        S = np.zeros((Nb, V))
        starts = np.searchsorted(bp, np.arange(Nb + 1))
        cap = max(self.vertex_chunk // V, 1)
        lo_b = 0
        while lo_b < Nb:  # blocks of boxes with at most about vertex_chunk (pair, vertex) entries
            hi_b = int(np.searchsorted(starts, starts[lo_b] + cap, side="right")) - 1
            hi_b = min(max(hi_b, lo_b + 1), Nb)
            a, b = starts[lo_b], starts[hi_b]
            if b > a:
                Xp = Xface[fb[bp[a:b]] + jp[a:b]]
                # pre-activations at the vertices, rounding E_j as for the intervals
                tv = (rb[bp[a:b]] * Xp) @ Dl.T
                tv += (tp[a:b] + self.E[jp[a:b]])[:, None]
                np.maximum(tv, 0.0, out=tv)
                S[lo_b:hi_b] = sp.csr_matrix((vp[a:b], (bp[a:b] - lo_b, np.arange(b - a))),
                                             shape=(hi_b - lo_b, b - a)) @ tv
            lo_b = hi_b
        S *= 1.0 + _gam(n + 4)
        Q = lin + lerr[:, None] + S
        Q += _gam(4) * (np.abs(lin) + lerr[:, None] + S)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(Q > 0.0, Q / den, 0.0)
        val = np.maximum(ratio.max(axis=1), 0.0) * gn * (1.0 + _gam(4))
        return np.where(den.min(axis=1) > 0.0, val, np.inf)

    def _cone_bound(self, C: np.ndarray, K: np.ndarray, lo: np.ndarray, hi: np.ndarray, fi: np.ndarray,
                    zabs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Upper bound of :math:`\max_{w\in\operatorname{cone}(B),\|w\|\le 1}(C + K s e_i)^\top w` per box.

        Returns the bound and the point of the box on the ray of the maximiser (approximately).
        """
        N, d = lo.shape
        rows = np.arange(N)
        fs = lo[rows, fi]  # the face value s = +-1
        cp = C.copy()
        cp[rows, fi] += K * fs
        ecpi = _gam(2) * np.abs(cp[rows, fi])
        # upper bound by Cauchy-Schwarz
        g1 = 1.0 + _gam(d + 4)
        ub_cs = (np.linalg.norm(cp, axis=1) + ecpi) * g1
        # upper bound by the polar of cone(B)
        free = np.ones((N, d), dtype=bool)
        free[rows, fi] = False
        aa = fs * cp[rows, fi]
        ray = aa > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            pr = np.clip(cp / np.where(ray, aa, 1.0)[:, None], lo, hi)
        pv = np.where(cp > 0, hi, lo)
        ph = np.where(ray[:, None], pr, pv)
        ph[rows, fi] = fs
        tt = np.maximum(np.einsum("ij,ij->i", cp, ph), 0.0) / np.einsum("ij,ij->i", ph, ph)
        # q_k = clip(c'_k, t lo_k, t hi_k) on the free coordinates (exact for a ray-like box)
        rlo = np.where(free, np.maximum(tt[:, None] * lo - cp, 0.0), 0.0)
        rhi = np.where(free, np.maximum(cp - tt[:, None] * hi, 0.0), 0.0)
        q = np.where(free, cp + rlo - rhi, 0.0)
        qi = cp[rows, fi] - fs * np.einsum("ij,ij->i", rlo, lo) + fs * np.einsum("ij,ij->i", rhi, hi)
        rho0 = np.maximum(-fs * qi, 0.0)
        qi = qi + fs * rho0
        q[rows, fi] = qi
        eq = np.where(free, _gam(3) * (np.abs(cp) + rlo + rhi), 0.0)
        eq[rows, fi] = _gam(d + 4) * (np.abs(cp[rows, fi]) + np.einsum("ij,ij->i", rlo, np.abs(lo))
                                      + np.einsum("ij,ij->i", rhi, np.abs(hi)) + rho0) + ecpi
        ub_pol = (np.linalg.norm(q, axis=1) + np.linalg.norm(eq, axis=1)) * g1
        ub = np.minimum(ub_cs, ub_pol)
        # nonpositive on the whole box
        M = np.maximum(cp * lo, cp * hi).sum(axis=1) + _gam(d + 4) * np.einsum("ij,ij->i", np.abs(cp), zabs) \
            + ecpi
        ub = np.where(M <= 0.0, 0.0, ub)
        ub = np.where(np.isfinite(ub), ub, np.inf)
        return ub, ph

    # ------------------------------------------------------------------ exact leaves
    def leaf(self, lo: np.ndarray, hi: np.ndarray, i: int, sigma: int, act: np.ndarray, cross: np.ndarray,
             max_pieces: int) -> tuple[float, float, np.ndarray] | None:
        r"""Exact bound on one box: max over the linear pieces of :math:`f_\sigma` (NNLS each).

        Returns ``(upper, value, point)`` or None when the box has too many pieces.
        """
        d = self.d
        s = float(lo[i])
        cidx = np.flatnonzero(cross)
        groups = np.unique(self.row_id[cidx]) if cidx.size else np.zeros(0, dtype=np.int64)
        k = groups.size
        if k > 0 and 2 ** k > max_pieces:
            return None
        # rows of cone(B) = {w : A w >= 0}
        A = []
        for kk in range(d):
            if kk == i or lo[kk] == hi[kk]:
                continue
            row = np.zeros(d)
            row[kk], row[i] = 1.0, -lo[kk] * s
            A.append(row)
            row = np.zeros(d)
            row[kk], row[i] = -1.0, hi[kk] * s
            A.append(row)
        row = np.zeros(d)
        row[i] = s
        A.append(row)
        Abox = np.array(A)
        vs = sigma * self.v
        best_ub, best_val, best_pt = -np.inf, -np.inf, None
        for bits in itertools.product((True, False), repeat=k):
            on = act.copy()
            sgn_rows = []
            for gbit, gid in zip(bits, groups):
                members = cidx[self.row_id[cidx] == gid]
                on[members] = gbit
                sgn_rows.append((1.0 if gbit else -1.0) * self.X[members[0]])
            Afull = np.vstack([Abox] + [r[None, :] for r in sgn_rows]) if sgn_rows else Abox
            w = np.where(on, vs, 0.0)
            g = w @ self.X
            eg = _gam(2 * self.n + 4) * (np.abs(w) @ self.absX)
            rho, _ = nnls(Afull.T, -g, maxiter=50 * Afull.shape[0] + 50)
            rho = np.maximum(rho, 0.0)
            q = g + Afull.T @ rho
            eq = eg + _gam(Afull.shape[0] + 4) * (np.abs(g) + np.abs(Afull).T @ rho)
            ubS = (float(np.linalg.norm(q)) + float(np.linalg.norm(eq))) * (1.0 + _gam(d + 4))
            if ubS > best_ub:
                best_ub = ubS
            nq = float(np.linalg.norm(q))
            if nq > 0:
                val = self.value(q / nq, sigma)
                if val > best_val:
                    best_val, best_pt = val, q / nq
        return max(best_ub, 0.0), best_val, best_pt

    # ------------------------------------------------------------------ local ascent
    def polish(self, u: np.ndarray, sigma: int, steps: int = 8) -> tuple[float, np.ndarray]:
        """Chamber projection and ascent over adjacent chambers from the unit ``u``."""
        best_u = u / max(float(np.linalg.norm(u)), 1e-300)
        best = self.value(best_u, sigma)
        mask = self.X @ best_u >= 0
        tried: set[bytes] = set()
        for _ in range(steps):
            key = np.packbits(mask).tobytes()
            if key in tried:
                break
            tried.add(key)
            signs = np.where(mask, 1.0, -1.0)
            g = sigma * (self.XT @ np.where(mask, self.v, 0.0))
            q, rho = project_cone(self.X, signs, g)
            nq = float(np.linalg.norm(q))
            if nq <= 0:
                break
            uq = q / nq
            val = self.value(uq, sigma)
            improved = False
            if val > best:
                best, best_u, improved = val, uq, True
            # neighbours across the tight constraints with the largest multipliers
            cand = np.argsort(-rho)[: min(4, int((rho > 0).sum()))]
            nb_best, nb_mask = best, None
            for j in cand:
                m2 = mask.copy()
                m2[j] = ~m2[j]
                g2 = sigma * (self.XT @ np.where(m2, self.v, 0.0))
                q2, _ = project_cone(self.X, np.where(m2, 1.0, -1.0), g2)
                n2 = float(np.linalg.norm(q2))
                if n2 <= 0:
                    continue
                val2 = self.value(q2 / n2, sigma)
                if val2 > nb_best:
                    nb_best, nb_mask = val2, self.X @ (q2 / n2) >= 0
                    best, best_u, improved = val2, q2 / n2, True
            if nb_mask is None or not improved:
                break
            mask = nb_mask
        return best, best_u


def chamber_ascent(Xa: Any, v: Any, starts: Any, signs: Any, *, steps: int = 16,
                   deadline: float | None = None) -> list[tuple[float, int, np.ndarray]]:
    r"""Local maxima of :math:`f_\sigma(u) = \sigma\sum_j v_j (x_j^\top u)_+` on the unit sphere.

    From each start :math:`u` (with its sign :math:`\sigma`), the chamber of :math:`u` is replaced
    by the projection :math:`q = \Pi_{\mathcal K}(\sigma X_a^\top D v)` of the gradient onto its
    cone (the best unit of that chamber), then by the best of the adjacent chambers across the
    tight constraints with the largest multipliers, for at most ``steps`` chambers. The values
    are attained by real unit vectors (computed in floating point, no bound): **lower** bounds of
    :math:`s(v)`, the pricing heuristic of column generation
    (:func:`convexnn.duality.global_opt.solve_global`). No upper bound comes from here.

    Parameters
    ----------
    Xa : array, shape (n, d')
    v : array, shape (n,)
    starts : array, shape (k, d')
        Start points (need not be unit vectors; zero rows are skipped).
    signs : array of {+1, -1}, shape (k,)
    steps : int
        Chambers visited per start at most.
    deadline : float, optional
        ``time.perf_counter()`` value after which no further start is ascended.

    Returns
    -------
    list of (value, sign, unit neuron)
        One entry per distinct activation pattern reached, best first.
    """
    Xa = np.asarray(Xa, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
    signs = np.asarray(signs).ravel()
    if Xa.ndim != 2 or v.shape != (Xa.shape[0],) or starts.shape[1:] != (Xa.shape[1],) \
            or signs.shape != (starts.shape[0],):
        raise InputError(f"expected Xa (n, d'), v (n,), starts (k, d') and signs (k,); got {Xa.shape}, "
                         f"{v.shape}, {starts.shape} and {signs.shape}.")
    if not (np.all(np.isfinite(Xa)) and np.all(np.isfinite(v)) and np.all(np.isfinite(starts))):
        raise InputError("Xa, v and starts must be finite.")
    if not np.all(np.isin(signs, (1, -1))):
        raise InputError("signs must be +1 or -1.")
    pb = _Problem(Xa, v)
    found: dict[bytes, tuple[float, int, np.ndarray]] = {}
    with single_blas_thread():
        for u, sig in zip(starts, signs):
            if deadline is not None and time.perf_counter() > deadline:
                break
            if not np.any(u):
                continue
            val, uu = pb.polish(u, int(sig), steps=int(steps))
            key = bytes([int(sig > 0)]) + np.packbits(Xa @ uu >= 0).tobytes()
            if key not in found or found[key][0] < val:
                found[key] = (float(val), int(sig), uu)
    return sorted(found.values(), key=lambda t: -t[0])


def relu_dual_norm_bab(
    Xa: Any,
    v: Any,
    *,
    threshold: float | None = None,
    rtol: float = 1e-3,
    time_limit: float | None = None,
    max_nodes: int | None = None,
    progress: bool | None = None,
    stop_at_violation: bool | int = False,
    max_violations: int = 16,
    exact_leaf: int = 3,
    batch: int | None = None,
    max_memory: float = 1.5e9,
    slope_steps: int = 2,
    vertex_dim: int = 8,
    roots: Any = None,
    n_jobs: int | None = None,
) -> DualNormBound:
    r"""Certified bounds on :math:`s(v) = \max_{\sigma=\pm1,\|u\|_2\le 1}\sigma\sum_j v_j (x_j^\top u)_+` by branch and bound.

    See the module docstring for the mathematics. The returned ``upper`` is a rigorous bound
    (floating-point rounding accounted for) **whenever the search stops**: time and node limits
    only loosen it.

    Parameters
    ----------
    Xa : array, shape (n, d')
        Design matrix (``[X, 1]`` with a bias). :math:`\|u\|_2 \le 1` is measured in these
        coordinates (the weight decay's).
    v : array, shape (n,)
        Dual candidate.
    threshold : float, optional
        Decide :math:`s(v) \le T`: every box whose bound is at most ``T`` is discarded, so a
        completed search proves ``upper <= T``-ish (``upper`` is then the largest discarded
        bound, at most ``max(T, lower (1 + rtol))``). Points above ``T`` are collected in
        ``violations``.
    rtol : float
        Boxes with bound at most ``lower * (1 + rtol)`` are discarded (relative accuracy of the
        enclosure when no threshold decides earlier).
    time_limit : float, optional
        Seconds; the search stops with the current valid bound. The clock is read between batches,
        in the exact-leaf loop and before every local ascent, and the last batches shrink to the
        boxes that fit into the time left, so the limit is kept to a fraction of a second.
    max_nodes : int, optional
        Boxes to evaluate at most.
    progress : bool, optional
        tqdm progress bar with the current enclosure (default: off).
    stop_at_violation : bool
        With ``threshold``: stop as soon as a point with value above ``threshold`` is found (an
        integer ``k``: as soon as ``k`` points of distinct patterns are found).
    max_violations : int
        Distinct activation patterns kept in ``violations``.
    exact_leaf : int
        Boxes crossed by at most this many distinct hyperplanes are closed exactly (at most
        :math:`2^k` small NNLS each); 0 disables.
    batch : int, optional
        Boxes split per step (default: about :math:`2\cdot 10^6 / n`). Their children are bounded
        in chunks of about ``CHUNK_ENTRIES / n`` boxes, small enough for the work arrays to stay in
        cache.
    max_memory : float
        Bytes for the open boxes; beyond it the deepest boxes are processed first (depth first),
        which keeps the bound valid but less informative.
    slope_steps : int
        Projected subgradient steps on the lower slopes :math:`\alpha_j` of the crossing units with
        :math:`\sigma v_j < 0` per box (0: the fixed choice :math:`\alpha_j = \mathbf 1[h_j > -l_j]`).
        Each step costs one more bound evaluation of the boxes still above the pruning level: fewer
        boxes for the same bound, but more time per box; with the vertex bound they change little
        at :math:`d' = 4` and :math:`7` (``bench/RESULTS_bab.md``).
    vertex_dim : int
        The vertex bound (module docstring, step 4) is used when :math:`d' - 1 \le` ``vertex_dim``
        (:math:`2^{d'-1}` vertices per box); 0 disables it. Exact for the units with
        :math:`\sigma v_j > 0` where the chords are not: one half to one third of the boxes for the
        same enclosure at :math:`d' = 4`-:math:`6` in ``bench/RESULTS_bab.md``.
    roots : array of int, optional
        Search only these of the :math:`4d'` root boxes (the faces :math:`z_i = \pm 1` of the cube,
        for both output signs; ``_face_boxes`` order). ``upper`` is then a bound of the maximum over
        those roots only; :func:`convexnn.distributed.relu_dual_norm_bab_distributed` deals the roots
        to independent searches and takes the maximum.
    n_jobs : int, optional
        Threads that bound the chunks of a batch of boxes in parallel (the array work releases the
        interpreter lock); default: the cores available to the process (one inside
        :func:`serial_searches`); ``1``: no thread. Every chunk of a batch is bounded against the
        pruning level of the batch's start and the results are processed in order, so the search,
        its boxes and its result do not depend on ``n_jobs``.

    Returns
    -------
    DualNormBound

    Raises
    ------
    InputError
        On non-finite or mis-shaped input, ``rtol`` outside ``[0, 1)`` or ``n_jobs`` not a positive
        integer.

    Examples
    --------
    >>> import numpy as np
    >>> from convexnn.duality.bab import relu_dual_norm_bab
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]]); v = np.array([1.0, 1.0])
    >>> r = relu_dual_norm_bab(X, v, rtol=1e-9)
    >>> bool(r.lower <= np.sqrt(2) <= r.upper and r.upper - r.lower < 1e-6)
    True
    """
    with single_blas_thread():  # many small products: BLAS threading costs more than it gains
        return _search(Xa, v, threshold=threshold, rtol=rtol, time_limit=time_limit, max_nodes=max_nodes,
                       progress=progress, stop_at_violation=stop_at_violation, max_violations=max_violations,
                       exact_leaf=exact_leaf, batch=batch, max_memory=max_memory, slope_steps=slope_steps,
                       vertex_dim=vertex_dim, roots=roots, n_jobs=n_jobs)


def _search(Xa: Any, v: Any, *, threshold: float | None, rtol: float, time_limit: float | None,
            max_nodes: int | None, progress: bool | None, stop_at_violation: bool | int, max_violations: int,
            exact_leaf: int, batch: int | None, max_memory: float, slope_steps: int, vertex_dim: int,
            roots: Any, n_jobs: int | None) -> DualNormBound:
    """The search of :func:`relu_dual_norm_bab` (same parameters)."""
    t0 = time.perf_counter()
    Xa = np.asarray(Xa, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if Xa.ndim != 2 or v.ndim != 1 or Xa.shape[0] != v.shape[0] or Xa.shape[1] == 0:
        raise InputError(f"expected Xa of shape (n, d') and v of shape (n,); got {Xa.shape} and {v.shape}.")
    if not (np.all(np.isfinite(Xa)) and np.all(np.isfinite(v))):
        raise InputError("Xa and v must be finite.")
    if not 0 <= rtol < 1:
        raise InputError(f"rtol must be in [0, 1); got {rtol}.")
    if int(slope_steps) != slope_steps or slope_steps < 0:
        raise InputError(f"slope_steps must be a nonnegative integer; got {slope_steps}.")
    if isinstance(vertex_dim, bool) or int(vertex_dim) != vertex_dim or vertex_dim < 0:
        raise InputError(f"vertex_dim must be a nonnegative integer; got {vertex_dim!r}.")
    if threshold is not None and not np.isfinite(threshold):
        raise InputError(f"threshold must be finite; got {threshold}.")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1):
        raise InputError(f"n_jobs must be a positive integer or None; got {n_jobs!r}.")
    jobs = int(n_jobs) if n_jobs is not None else (_JOBS.get() or available_cores())
    d_full = Xa.shape[1]
    keep = (v != 0) & np.any(Xa != 0, axis=1)
    if not keep.any():
        return DualNormBound(0.0, 0.0, np.eye(d_full)[0], 1, 0, True, time.perf_counter() - t0, "zero")
    pb = _Problem(np.ascontiguousarray(Xa[keep]), v[keep].copy())
    pb.slope_iters = int(slope_steps)
    pb.vertex_dim = int(vertex_dim)
    d, n = pb.d, pb.n
    if d - 1 <= pb.vertex_dim:
        pb.face_rows()  # built once, before any thread reads it
    T = -np.inf if threshold is None else float(threshold)
    B = int(batch) if batch else int(min(4096, max(64, 2_000_000 // max(n, 1))))
    max_open = int(max_memory // (8 * (2 * d + 2)))

    # incumbent
    best_val, best_sig, best_u = -np.inf, 1, np.eye(d)[0]
    viol: dict[bytes, tuple[float, int, np.ndarray]] = {}

    def offer(val: float, sig: int, u: np.ndarray) -> None:
        nonlocal best_val, best_sig, best_u
        if val > best_val:
            best_val, best_sig, best_u = val, int(sig), np.asarray(u, dtype=np.float64).copy()
        if threshold is not None and val > T:
            key = bytes([int(sig > 0)]) + np.packbits(Xa @ u >= 0).tobytes()
            if key not in viol or viol[key][0] < val:
                viol[key] = (val, int(sig), np.asarray(u, dtype=np.float64).copy())

    deadline = None if time_limit is None else t0 + float(time_limit)

    def out_of_time() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    g0 = pb.XT @ pb.v
    for sig in (1, -1):
        if np.any(g0) and not out_of_time():
            val, u = pb.polish(sig * g0, sig)
            offer(val, sig, u)
    # multi-start local ascent from the best of a fixed set of random unit directions
    U0 = np.random.default_rng(0).standard_normal((max(1024, 64 * d), d))
    U0 /= np.linalg.norm(U0, axis=1, keepdims=True)
    F0 = np.maximum(U0 @ pb.XT, 0.0) @ pb.v
    for sig in (1, -1):
        for k in np.argsort(-sig * F0)[:4]:
            if out_of_time():
                break
            val, u = pb.polish(U0[k], sig, steps=32)
            offer(val, sig, u)

    open_ = _Boxes(d)
    if roots is not None:
        roots = np.asarray(roots)
        if roots.ndim != 1 or roots.dtype.kind not in "iu" or roots.size == 0 or roots.min() < 0 \
                or roots.max() >= 4 * d:
            raise InputError(f"roots must be a nonempty array of root-box indices in [0, {4 * d}); got {roots!r}.")
    lo, hi, fi, sg = _face_boxes(d)
    if roots is not None:  # a subset of the 4 d' root boxes (faces x output signs): a shard of the search
        lo, hi, fi, sg = lo[roots], hi[roots], fi[roots], sg[roots]
    nodes = 0
    discarded = -np.inf  # largest bound of a discarded box
    last_polish = -np.inf  # node count at the last local ascent

    def level() -> float:
        lv = T
        if best_val > 0:
            lv = max(lv, best_val * (1.0 + rtol))
        return lv

    per_box = 0.0  # seconds per evaluated box (last batch), to size the batches near the deadline

    pool: ThreadPoolExecutor | None = None  # created at the first batch of several chunks

    def evaluate(lo: np.ndarray, hi: np.ndarray, fi: np.ndarray, sg: np.ndarray,
                 parent_ub: np.ndarray | None = None) -> None:
        nonlocal per_box, pool
        te = time.perf_counter()
        step = max(16, CHUNK_ENTRIES // n)  # the (box, unit) arrays of one chunk stay in cache
        chunks = [slice(a, a + step) for a in range(0, lo.shape[0], step)]
        lv = level()  # one level per batch: the bounds do not depend on how the chunks are scheduled

        def bound(sl: slice) -> dict[str, np.ndarray]:
            return pb.bounds(lo[sl], hi[sl], fi[sl], sg[sl], lv)

        if jobs > 1 and len(chunks) > 1:
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="convexnn-bab")
            results = pool.map(bound, chunks)
        else:
            results = map(bound, chunks)
        for sl, res in zip(chunks, results):  # in order, while the next chunks are bounded
            evaluate_chunk(lo[sl], hi[sl], fi[sl], sg[sl], None if parent_ub is None else parent_ub[sl], res)
        per_box = (time.perf_counter() - te) / max(lo.shape[0], 1)

    def evaluate_chunk(lo: np.ndarray, hi: np.ndarray, fi: np.ndarray, sg: np.ndarray,
                       parent_ub: np.ndarray | None, res: dict[str, np.ndarray]) -> None:
        nonlocal nodes, discarded, last_polish
        nodes += lo.shape[0]
        ub, fc = res["ub"], res["fc"]
        if parent_ub is not None:  # a child lies in its parent: the parent's bound holds on it
            np.minimum(ub, parent_ub, out=ub)
        if threshold is not None and len(viol) < 4 * max_violations:
            for kk in np.flatnonzero(fc > T)[:max_violations]:
                u = res["m"][kk] / np.linalg.norm(res["m"][kk])
                offer(pb.value(u, int(sg[kk])), int(sg[kk]), u)
        k = int(np.argmax(fc))
        if fc[k] > best_val:
            u = res["m"][k] / np.linalg.norm(res["m"][k])
            offer(pb.value(u, int(sg[k])), int(sg[k]), u)
            if nodes - last_polish >= B and not out_of_time():  # local ascent from the best centre, once per batch
                last_polish = nodes
                val, u2 = pb.polish(u, int(sg[k]))
                offer(val, int(sg[k]), u2)
        lv = level()
        live = ub > lv
        if (~live).any():
            discarded = max(discarded, float(ub[~live].max()))
        if exact_leaf > 0:
            few = live & (res["ncross"] <= 4 * exact_leaf)
            for cnt, r in enumerate(np.flatnonzero(few)):
                if cnt % 16 == 15 and out_of_time():
                    break  # the remaining boxes stay open with their (valid) relaxation bounds
                act_r = res["l"][r] >= 0.0
                out = pb.leaf(lo[r], hi[r], int(fi[r]), int(sg[r]), act_r, (res["h"][r] > 0.0) & ~act_r,
                              2 ** exact_leaf)
                if out is None:
                    continue
                ubx, val, pt = out
                if pt is not None:
                    offer(val, int(sg[r]), pt)
                ub[r] = min(ub[r], ubx)
                live[r] = False  # closed: its exact bound joins the discarded maximum
                discarded = max(discarded, float(ub[r]))
        if live.any():
            open_.push(lo[live], hi[live], fi[live], sg[live], ub[live], res["split"][live])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="s(v) branch and bound", unit="box", unit_scale=True)
    reason = "complete"
    try:
        evaluate(lo, hi, fi, sg)  # the root boxes
        while True:
            discarded = max(discarded, open_.prune(level()))
            if open_.n == 0:
                break
            if threshold is not None and stop_at_violation and best_val > T and len(viol) >= int(stop_at_violation):
                reason = "violation"
                break
            if out_of_time():
                reason = "time_limit"
                break
            if max_nodes is not None and nodes >= max_nodes:
                reason = "max_nodes"
                break
            kb = min(B, open_.n)
            if deadline is not None and per_box > 0:
                # near the deadline, split only the boxes that fit into the time left (two children each)
                kb = max(1, min(kb, int((deadline - time.perf_counter()) / (2.0 * per_box))))
            if open_.n > max_open:
                widths = (open_.hi[: open_.n] - open_.lo[: open_.n]).max(axis=1)
                idx = np.argpartition(widths, kb - 1)[:kb]  # deepest first
            elif kb < open_.n:
                idx = np.argpartition(-open_.ub[: open_.n], kb - 1)[:kb]
            else:
                idx = np.arange(open_.n)
            blo, bhi, bfi, bsg, bub, j = open_.pop(idx)
            w = bhi - blo
            rows = np.arange(kb)
            j = np.where(w[rows, j] > 0, j, np.argmax(w, axis=1))
            if np.any(w[rows, j] <= 0):  # a point box that the exact leaf could not close
                flat = w[rows, j] <= 0
                reason = "degenerate"
                ubp = pb.bounds(blo[flat], bhi[flat], bfi[flat], bsg[flat])["ub"]
                discarded = max(discarded, float(ubp.max()))
                blo, bhi, bfi, bsg, bub, j = (blo[~flat], bhi[~flat], bfi[~flat], bsg[~flat], bub[~flat],
                                              j[~flat])
                rows = np.arange(blo.shape[0])
                if blo.shape[0] == 0:
                    continue
            mid = 0.5 * (blo[rows, j] + bhi[rows, j])
            lo2, hi2 = blo.copy(), bhi.copy()
            hi2[rows, j] = mid
            lo3, hi3 = blo.copy(), bhi.copy()
            lo3[rows, j] = mid
            evaluate(np.vstack([lo2, lo3]), np.vstack([hi2, hi3]), np.concatenate([bfi, bfi]),
                     np.concatenate([bsg, bsg]), np.concatenate([bub, bub]))
            if bar is not None:
                U = max(discarded, open_.max_ub(), 0.0)
                bar.update(2 * kb)
                bar.set_postfix_str(f"s in [{best_val:.6g}, {U:.6g}] gap {(U - best_val) / max(U, 1e-300):.2e} "
                                    f"open {open_.n}")
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    U = min(max(discarded, open_.max_ub(), 0.0), global_support_bound(Xa, v))
    complete = reason == "complete" or (reason == "degenerate" and open_.n == 0)
    if reason == "degenerate" and complete:
        reason = "complete"
    lower = max(best_val, 0.0)
    if best_val <= 0:
        best_u, best_sig = np.eye(d)[0], 1
    vl = sorted(viol.values(), key=lambda t: -t[0])[:max_violations]
    return DualNormBound(float(U), float(lower), best_u, best_sig, nodes, complete, time.perf_counter() - t0,
                         reason, vl)
