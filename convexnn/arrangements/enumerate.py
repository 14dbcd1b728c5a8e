r"""Exact enumeration and counting of the chambers of a data arrangement.

For a design matrix :math:`X_a \in \mathbb R^{n \times d'}` (``X`` or ``[X, 1]`` with
``bias=True``) the *central hyperplane arrangement* is
:math:`\mathcal A = \{H_i\}`, :math:`H_i = \{g : x_i^\top g = 0\}` (Pilanci (2021 talk), "hyperplane
arrangements"; Ergen & Pilanci (ICML 2021), eq. (13)). Its *chambers* (the connected components of
:math:`\mathbb R^{d'} \setminus \bigcup_i H_i`) are exactly the sets of gates on which the
activation pattern :math:`\mathbf 1[X_a g \ge 0]` is constant and strict; the chamber patterns
are the diagonal matrices :math:`D_i` that make the convex programs of Pilanci & Ergen exact.

Algorithm (``enumerate_patterns``)
----------------------------------
1. *Reduction.* Rows with :math:`\|x_i\| \le \tau \max_j \|x_j\|` are zero rows (always active
   under the ``>= 0`` convention). The remaining rows are normalized and projected onto the row
   space of :math:`X_a` (rank :math:`r`, singular values :math:`\le \tau\,\sigma_{\max}`
   dropped), so the arrangement is *essential* in :math:`\mathbb R^r`. Positively and negatively
   parallel rows define the same hyperplane and are merged.
2. *Batched deletion--restriction.* Adding the hyperplanes :math:`H_1, \dots, H_k` one by one,
   the chambers of :math:`\mathcal A_{\le j}` that :math:`H_j` cuts are in bijection with the
   chambers of the restriction :math:`\mathcal A_{<j}^{H_j}` (an arrangement of :math:`j - 1`
   hyperplanes in :math:`H_j \cong \mathbb R^{r-1}`), and
   :math:`r(\mathcal A_{\le j}) = r(\mathcal A_{<j}) + r(\mathcal A_{<j}^{H_j})`
   (Zaslavsky). A restriction chamber with interior point :math:`p \in H_j` yields the two
   new chambers with witnesses :math:`p \pm t\,u_j`, where
   :math:`t = \min\bigl(1, \tfrac12 \min_{i<j} |u_i^\top p| / |u_i^\top u_j|\bigr)` keeps every
   sign :math:`\operatorname{sign}(u_i^\top p)` intact. All restrictions of one level are
   independent, so they are solved *together* as one batch of ragged groups (one vectorized
   numpy pass per level instead of one Python call per cell); the recursion ends in dimension 2,
   where the chambers are the sectors between the sorted boundary rays. Every chamber of
   :math:`\mathcal A` is born (as one of the two halves) at the last step that cuts it, with a
   witness whose relative margin is at least half of its margin inside the restriction, so
   keeping, per sign vector, the witness of largest margin and discarding witnesses whose margin
   is at float-noise level (they lie on a hyperplane) gives every chamber exactly once.
3. *Degeneracy.* A restricted normal of length :math:`\le \tau` means
   :math:`H_i \cap H_j \subset` the same flat (or :math:`H_i = H_j`): it is dropped from the
   restriction (and a hyperplane equal to an earlier one adds no chamber). This handles
   duplicate / antipodal rows, many points on common hyperplanes and integer grids exactly.

Tolerances (relative to the data scale; rows and witnesses are unit vectors): zero rows,
numerical rank and coincident hyperplanes use :math:`\tau = 10^{-8}` (:data:`TOL`); witnesses
whose relative margin :math:`\min_i |x_i^\top g| / (\|x_i\| \|g\|)` is below
:math:`10^{-13}` (:data:`MARGIN_TOL`) are treated as lying on a hyperplane. Exact coincidences
(duplicates, integer grids, rank deficiency, rounded features) are resolved exactly, and so are
data whose near-coincidences are either below :math:`10^{-8}` (merged) or above about
:math:`10^{-6}` (kept apart). In the band between, rounding amplified by nearly parallel
restrictions can make the result approximate (measured: a 6x6 point grid perturbed by
:math:`10^{-7}` gives counts that differ from the enumeration by up to 4 of ~1150). Every
returned pattern is always realized by its witness with a margin above :data:`MARGIN_TOL`.

The reference :func:`enumerate_patterns_lp` (incremental, one HiGHS feasibility LP per candidate
cell, Rada & Cerny 2018) is slow but independent; tests and the benchmark compare against it.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Any, Callable

import numpy as np

from convexnn.arrangements.exact import certified_signs, gamma, integer_rows, parallel_classes, rank_of_rows
from convexnn.arrangements.patterns import Patterns, data_fingerprint, design_matrix
from convexnn.data import check_int, check_X
from convexnn.errors import InputError, TooLargeError

__all__ = [
    "enumerate_patterns",
    "enumerate_patterns_lp",
    "count_patterns",
    "cover_bound",
]

#: relative tolerance for zero rows, numerical rank and coincident (restricted) hyperplanes
TOL = 1e-8
#: witnesses with a smaller relative margin are considered to lie on a hyperplane
MARGIN_TOL = 1e-13
#: position of the witness ray inside a 2-D sector (fraction of its angle); an irrational
#: fraction avoids landing exactly on a third line of symmetric integer configurations
_ALPHA = math.sqrt(2.0) - 1.0
#: births (candidate witnesses) processed per batch; bounds the memory of every level
_BUDGET = 1_000_000
#: peak memory of enumerate_patterns relative to its result (measured: about 12x)
_PEAK_FACTOR = 12
#: floats per gathered block in the ragged products
_BLOCK = 1 << 18
#: unit roundoff of float64
_U = 2.0 ** -53
#: unit normals known to within this error are sorted by angle in the plane; the others are
#: compared exactly with every class
_SURE = 1e-6
#: counting work (restricted normals) done up front by enumerate_patterns for an exact estimate
_COUNT_NOW = 3e6
#: counting work spent after enumerating to prove completeness of a degenerate arrangement
_COUNT_LATER = 3e8


# ----------------------------------------------------------------------------- bounds
def cover_bound(n: int, r: int) -> int:
    r"""Cover's bound on the number of chambers of ``n`` hyperplanes of rank ``r``.

    .. math:: P \le 2 \sum_{k=0}^{r-1} \binom{n-1}{k}

    (Ergen & Pilanci (ICML 2021), eq. (13); Pilanci (2021 talk) "hyperplane arrangements"), attained iff the rows are in general position.
    Exact Python integers. By convention ``cover_bound(n, 0) == 1`` and
    ``cover_bound(0, r) == 1`` (the empty arrangement has one chamber, the whole space).

    Parameters
    ----------
    n : int
        Number of (distinct, nonzero) hyperplanes.
    r : int
        Rank of the data matrix.
    """
    n, r = check_int(n, "n", min_value=0), check_int(r, "r", min_value=0)
    if n < 0 or r < 0:
        raise InputError(f"cover_bound needs n >= 0 and r >= 0; got n={n}, r={r}.")
    if n == 0 or r == 0:
        return 1
    return 2 * sum(math.comb(n - 1, k) for k in range(r))


def _cover_float(j: np.ndarray, q: int) -> np.ndarray:
    """Vectorized float Cover bound for ``j`` hyperplanes of rank at most ``q`` (1 for j == 0)."""
    j = np.asarray(j, dtype=np.float64)
    out = np.zeros_like(j)
    c = np.ones_like(j)  # C(j-1, k)
    for k in range(max(q, 0)):
        out += c
        c = c * np.maximum(j - 1 - k, 0) / (k + 1)
    return np.where(j > 0, 2 * out, 1.0)


# ----------------------------------------------------------------------------- reduction
class _Reduced:
    r"""Data arrangement reduced to its distinct hyperplanes, in a well-conditioned basis.

    * Zero rows are the rows that are *exactly* zero (always active, no hyperplane); a tiny
      nonzero row is a genuine hyperplane.
    * Positively / negatively parallel rows define the same hyperplane; they are merged by an
      exact test (:func:`convexnn.arrangements.exact.parallel_classes`). ``orig[t]`` is the row
      of ``Xa`` representing reduced hyperplane ``t`` and ``Z`` its exact integer rows.
    * The arrangement is invariant under :math:`X_a \to X_a T` for invertible ``T``, so the
      chambers are computed for :math:`M = X_a T` with ``T`` centering the feature columns
      (with a bias column) and scaling every column by a power of two to unit size, then in the
      orthonormal basis of the row space of ``M`` (SVD). The gates map back by
      :math:`g = T V_r h`.
    * The rank is proven: a singular value above the rounding level of ``M`` proves a lower
      bound; when the float rank is below ``d'`` the exact rank of the integer rows decides.

    Attributes
    ----------
    Y : ndarray (k, r)
        Unit normals of the distinct hyperplanes in row-space coordinates.
    err0 : float
        Bound on the rounding error of the rows of ``Y`` (unit vectors).
    issues : list of str
        What could not be proven (empty when the reduction is exact).
    """

    __slots__ = ("Xa", "V", "Y", "rank", "n_nonzero", "n_distinct", "orig", "Z", "err0", "issues",
                 "T")

    def __init__(self, Xa: np.ndarray, bias: bool = False):
        self.Xa = Xa
        d = Xa.shape[1]
        self.issues: list[str] = []
        nz = np.flatnonzero(np.any(Xa != 0, axis=1))
        self.n_nonzero = int(len(nz))
        self.T = np.eye(d)
        if self.n_nonzero == 0:
            self.V = np.zeros((d, 0))
            self.Y = np.zeros((0, 0))
            self.rank = 0
            self.n_distinct = 0
            self.orig = np.zeros(0, np.int64)
            self.Z: list[list[int]] = []
            self.err0 = 0.0
            return
        labels = parallel_classes(Xa[nz])
        _, first = np.unique(labels, return_index=True)
        self.orig = nz[np.sort(first)]
        A = Xa[self.orig]
        self.Z = integer_rows(A)
        # preconditioning: centering (exact arrangement, rounding only in the preconditioner)
        T = np.eye(d)
        if bias and d > 1:
            c = A[:, :-1].mean(axis=0)
            T[-1, :-1] = -c
        with np.errstate(over="ignore", invalid="ignore"):
            M = A @ T
            if not np.all(np.isfinite(M)):  # centering overflowed: precondition without it
                T = np.eye(d)
                M = A.copy()
        # powers of two (exact, no overflow): columns, then rows, to unit size
        e = np.exp2(-np.frexp(np.max(np.abs(M), axis=0))[1].astype(np.float64))
        e[~np.isfinite(e) | (e == 0)] = 1.0
        T = T * e[None, :]
        M = M * e[None, :]
        self.T = T
        f = np.exp2(-np.frexp(np.max(np.abs(M), axis=1))[1].astype(np.float64))
        f[~np.isfinite(f) | (f == 0)] = 1.0
        M = M * f[:, None]
        rn = np.linalg.norm(M, axis=1)
        rn[rn == 0] = 1.0
        Mn = M / rn[:, None]
        _, sv, vt = np.linalg.svd(Mn, full_matrices=False)
        k = len(Mn)
        noise = 64 * gamma(d + 2) * math.sqrt(k * d) * sv[0]
        r = int(np.sum(sv > noise))
        if r < min(k, d):
            r_exact = rank_of_rows(self.Z)
            if r_exact != r:
                self.issues.append(
                    f"X has exact rank {r_exact} but only {r} singular values above the rounding "
                    f"level ({noise:.2g}): the smallest directions cannot be resolved in float64")
                r = min(r, r_exact)
        self.V = vt[:r].T.copy()  # (d', r), orthonormal basis of the row space of Mn
        Y = Mn @ self.V
        Y /= np.linalg.norm(Y, axis=1, keepdims=True)
        self.Y = Y
        self.rank = r
        self.n_distinct = len(Y)
        self.err0 = float(noise / sv[r - 1]) + 32 * gamma(d + 2) if r else 0.0

    def gates(self, W: np.ndarray) -> np.ndarray:
        """Gates ``(d', P)`` in the user's coordinates for row-space witnesses ``W`` of shape ``(P, r)``."""
        return self.T @ (self.V @ W.T)


# ----------------------------------------------------------------------------- core helpers
def _bits_to_words(B: np.ndarray) -> np.ndarray:
    """Pack a boolean (R, k) matrix into big-endian uint64 words (R, ceil(k/64))."""
    R, k = B.shape
    nw = max(1, (k + 63) // 64)
    packed = np.packbits(B, axis=1)
    pad = nw * 8 - packed.shape[1]
    if pad:
        packed = np.concatenate([packed, np.zeros((R, pad), np.uint8)], axis=1)
    return np.ascontiguousarray(packed).view(">u8").astype(np.uint64)


def _unique_best(keys: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Indices of one representative per distinct key row: the one of largest margin."""
    if len(margin) == 0:
        return np.zeros(0, np.int64)
    if keys.shape[1] == 1:
        srt = np.argsort(keys[:, 0])
        Ks = keys[srt, 0]
        start = np.ones(len(srt), bool)
        start[1:] = Ks[1:] != Ks[:-1]
    else:
        srt = np.lexsort(keys.T[::-1])
        Ks = keys[srt]
        start = np.ones(len(srt), bool)
        start[1:] = np.any(Ks[1:] != Ks[:-1], axis=1)
    pos = np.flatnonzero(start)
    ms = margin[srt]
    best = np.maximum.reduceat(ms, pos)
    seg = np.cumsum(start) - 1
    hit = ms == best[seg]
    # first index of each segment that attains the segment's best margin
    hit_pos = np.flatnonzero(hit)
    first_hit = hit_pos[np.searchsorted(seg[hit_pos], np.arange(len(pos)))]
    return np.sort(srt[first_hit])


def _evaluate(W: np.ndarray, wg: np.ndarray, U: np.ndarray, gstart: np.ndarray,
              wt: np.ndarray | None, dedup: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signs, margins and step bounds of witnesses against the normals of their group.

    For witness ``W[r]`` of group ``g = wg[r]`` (normals ``U[gstart[g]:gstart[g+1]]``):
    ``margin = min_i |u_i . w|`` and ``tmin = min_i |u_i . w| * wt_i``. Witnesses with margin
    below :data:`MARGIN_TOL` are dropped; with ``dedup`` only the best-margin witness per
    (group, sign vector) is kept. Returns ``(kept indices, margin, tmin)``.
    """
    sizes = np.diff(gstart)
    ksz = sizes[wg]
    R = len(W)
    margin = np.full(R, np.inf)
    tmin = np.full(R, np.inf)
    kept: list[np.ndarray] = []
    Gbits = int(max(1, int(wg.max()) + 1 if R else 1)).bit_length()
    for k in np.flatnonzero(np.bincount(ksz)) if R else []:
        sel = np.flatnonzero(ksz == k)
        if k == 0:
            kept.append(sel[_unique_best(wg[sel, None].astype(np.uint64), margin[sel])] if dedup else sel)
            continue
        m = W.shape[1]
        words = np.zeros((len(sel), (int(k) + 63) // 64), np.uint64)
        gsel = wg[sel]
        # groups with many witnesses: dense products; otherwise gathered ragged products
        ng = 1 + int(np.count_nonzero(gsel[1:] != gsel[:-1]))  # witnesses are sorted by group
        if len(sel) >= 64 * ng:
            bounds = np.flatnonzero(np.diff(gsel)) + 1
            segs = np.split(np.arange(len(sel)), bounds)
            for seg in segs:
                g = gsel[seg[0]]
                Ug = U[gstart[g]:gstart[g] + k]
                wtg = None if wt is None else wt[gstart[g]:gstart[g] + k]
                step = max(1, _BLOCK // int(k))
                for a in range(0, len(seg), step):
                    ss = seg[a:a + step]
                    V = W[sel[ss]] @ Ug.T
                    if dedup:
                        words[ss] = _bits_to_words(V >= 0)
                    A = np.abs(V, out=V)
                    margin[sel[ss]] = A.min(axis=1)
                    if wtg is not None:
                        tmin[sel[ss]] = np.multiply(A, wtg, out=A).min(axis=1)
        else:
            step = max(1, _BLOCK // (int(k) * m))
            ar = np.arange(int(k))
            for a in range(0, len(sel), step):
                ss = np.arange(a, min(a + step, len(sel)))
                idx = gstart[gsel[ss]][:, None] + ar
                V = np.einsum("cm,ckm->ck", W[sel[ss]], U[idx])
                if dedup:
                    words[ss] = _bits_to_words(V >= 0)
                A = np.abs(V, out=V)
                margin[sel[ss]] = A.min(axis=1)
                if wt is not None:
                    tmin[sel[ss]] = np.multiply(A, wt[idx], out=A).min(axis=1)
        ok = margin[sel] > MARGIN_TOL
        sel_ok = sel[ok]
        if not dedup:
            kept.append(sel_ok)
            continue
        words = words[ok]
        if words.shape[1] == 1 and int(k) + Gbits <= 64:
            keys = ((wg[sel_ok].astype(np.uint64) << np.uint64(k))
                    | (words[:, 0] >> np.uint64(64 - int(k))))[:, None]
        else:
            keys = np.concatenate([wg[sel_ok, None].astype(np.uint64), words], axis=1)
        kept.append(sel_ok[_unique_best(keys, margin[sel_ok])])
    idx = np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)
    return idx, margin[idx], tmin[idx]


def _sectors2(U: np.ndarray, gstart: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chambers of batched central line arrangements in the plane (sorted boundary rays)."""
    G = len(gstart) - 1
    sizes = np.diff(gstart)
    gid = np.repeat(np.arange(G), sizes)
    phi = np.arctan2(U[:, 1], U[:, 0])
    two_pi = 2 * np.pi
    ang = np.concatenate([np.mod(phi + np.pi / 2, two_pi), np.mod(phi - np.pi / 2, two_pi)])
    rg = np.concatenate([gid, gid])
    order = np.lexsort((ang, rg))
    ang = ang[order]
    rg = rg[order]

    def cyclic_gap(a: np.ndarray, g: np.ndarray) -> np.ndarray:
        nxt = np.empty_like(a)
        nxt[:-1] = a[1:]
        last = np.ones(len(a), bool)
        last[:-1] = g[1:] != g[:-1]
        # first element of each group
        firstpos = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
        grp_first = np.repeat(firstpos, np.diff(np.append(firstpos, len(a))))
        nxt[last] = a[grp_first[last]] + two_pi
        return nxt - a

    if len(ang):
        gap = cyclic_gap(ang, rg)
        keep = gap > TOL
        ang, rg = ang[keep], rg[keep]
        gap = cyclic_gap(ang, rg)
        theta = ang + _ALPHA * gap
        W = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    else:
        W = np.zeros((0, 2))
    empty = np.flatnonzero(sizes == 0)
    if len(empty):
        W = np.concatenate([W, np.zeros((len(empty), 2))])
        rg = np.concatenate([rg, empty])
        o = np.argsort(rg, kind="stable")
        W, rg = W[o], rg[o]
    return W, rg


def _batch_cuts(est: np.ndarray, budget: float) -> list[int]:
    """Split the rows ``0..N-1`` into consecutive batches whose cumulative cost ``est`` grows by
    about ``budget`` per batch (at least one row each), bounding the memory of one batch."""
    cuts = [0]
    while cuts[-1] < len(est):
        base = est[cuts[-1] - 1] if cuts[-1] > 0 else 0.0
        nxt = int(np.searchsorted(est, base + budget, side="right"))
        cuts.append(max(nxt, cuts[-1] + 1))
    return cuts


def _restrict(U: np.ndarray, gstart: np.ndarray, ug: np.ndarray, uj: np.ndarray, colsel: np.ndarray,
              a: int, b: int) -> tuple[np.ndarray, ...]:
    r"""Restriction step of deletion-restriction for the hyperplanes ``H_j``, rows ``a..b-1``.

    For every row ``j`` (unit normal :math:`u_j` of arrangement ``ug[j]``) and every earlier normal
    :math:`u_i`, ``i < j`` of the same arrangement, the Householder reflection
    :math:`H = I - 2 h h^	op / h^	op h`, :math:`h = u_j + \operatorname{sign}(u_{j,p}) e_p`
    (pivot ``p`` = largest entry of :math:`u_j`), maps :math:`u_j` to :math:`\mp e_p`; dropping
    coordinate ``p`` of :math:`H u_i` gives the normal of :math:`H_i \cap H_j` inside
    :math:`H_j \cong \mathbb R^{m-1}`.

    Returns
    -------
    rows, cnt, loc, pi, Ui, Uj, piv, hv, hvv, sub, s
        ``loc[k]``: local row of pair ``k``; ``pi[k]``: index of its earlier normal; ``Ui``: its earlier normal; ``Uj = U[rows]``;
        ``piv, hv, hvv``: pivot, Householder vector and :math:`h^	op h` per row (to lift
        points back); ``sub``: restricted normals (unnormalized), ``s`` their norms
        (``s <= TOL``: :math:`H_i = H_j`).
    """
    rows = np.arange(a, b)
    cnt = uj[rows]
    P = int(cnt.sum())
    pu = np.repeat(rows, cnt)  # unit (hyperplane H_j) of each pair
    off = np.repeat(np.cumsum(cnt) - cnt, cnt)
    pi = gstart[ug[pu]] + (np.arange(P) - off)  # earlier normal i < j
    Uj = U[rows]
    ar = np.arange(len(rows))
    piv = np.argmax(np.abs(Uj), axis=1)
    hv = Uj.copy()
    hv[ar, piv] += np.where(Uj[ar, piv] >= 0, 1.0, -1.0)
    hvv = 2.0 * (1.0 + np.abs(Uj[ar, piv]))
    loc = pu - a
    Ui = U[pi]
    Rf = Ui - (2.0 * np.einsum("pm,pm->p", Ui, hv[loc]) / hvv[loc])[:, None] * hv[loc]
    sub = np.take_along_axis(Rf, colsel[piv[loc]], axis=1)
    return rows, cnt, loc, pi, Ui, Uj, piv, hv, hvv, sub, np.linalg.norm(sub, axis=1)


class _Track:
    """Exact bookkeeping of a batch of (restricted) arrangements.

    ``idx[t]``: the reduced hyperplane that normal ``t`` restricts; ``chain[g]``: the reduced
    hyperplanes whose intersection group ``g`` lives in; ``err[t]``: a first-order bound (with a
    safety factor 2) on the rounding error of unit normal ``t``; ``Z``: exact integer rows of
    the reduced hyperplanes. A degeneracy decision ("normal ``i`` restricted to ``H_j`` is zero",
    "two lines coincide") is taken in floating point only when the computed value exceeds its
    error bound; otherwise it is the exact rank test of the original rows involved.
    """

    __slots__ = ("Z", "idx", "chain", "err", "stats")

    def __init__(self, Z: list[list[int]], idx: np.ndarray, chain: np.ndarray, err: np.ndarray,
                 stats: dict[str, int]):
        self.Z, self.idx, self.chain, self.err, self.stats = Z, idx, chain, err, stats

    @classmethod
    def top(cls, red: "_Reduced") -> "_Track":
        k = red.n_distinct
        return cls(red.Z, np.arange(k), np.zeros((1, 0), np.int64), np.full(k, red.err0),
                   {"exact_tests": 0})

    def dependent(self, g: int, members: list[int]) -> bool:
        """Exact: do the chain of group ``g`` and the reduced hyperplanes ``members`` lose rank?"""
        rows = [self.Z[t] for t in (*self.chain[g].tolist(), *members)]
        self.stats["exact_tests"] += 1
        return rank_of_rows(rows) < len(rows)

    def dup_rows(self, rows: np.ndarray, loc: np.ndarray, pi: np.ndarray, s: np.ndarray,
                 ug: np.ndarray, m: int) -> np.ndarray:
        """Rows ``j`` whose hyperplane equals an earlier one of the same group (exactly)."""
        thr = 3.0 * (self.err[pi] + self.err[rows[loc]]) + 16 * m * _U
        dup = np.zeros(len(rows), bool)
        for k in np.flatnonzero(s <= thr):
            lj = int(loc[k])
            if dup[lj]:
                continue
            j = int(rows[lj])
            dup[lj] = self.dependent(int(ug[j]), [int(self.idx[j]), int(self.idx[pi[k]])])
        return dup

    def restricted(self, rows: np.ndarray, live: np.ndarray, ug: np.ndarray, pi: np.ndarray,
                   s: np.ndarray, keep: np.ndarray, loc: np.ndarray, m: int) -> "_Track":
        """Bookkeeping of the restrictions ``A_{<j}^{H_j}`` of the live rows."""
        lj = rows[live]
        chain = np.concatenate([self.chain[ug[lj]], self.idx[lj][:, None]], axis=1)
        pk = pi[keep]
        jk = rows[loc[keep]]
        err = np.minimum(4.0 * (self.err[pk] + self.err[jk] + 16 * m * _U) / s[keep], 4.0)
        return _Track(self.Z, self.idx[pk], chain, err, self.stats)


def _count2(U: np.ndarray, gstart: np.ndarray, tr: _Track) -> np.ndarray:
    """Exact chamber counts of batched central line arrangements in the plane: 2 x distinct lines.

    Normals whose direction is known to within :data:`_SURE` are sorted by angle (mod pi) and
    neighbours closer than twice the group's largest such error are compared exactly (two
    parallel normals are at most that far apart, so every element sorted between them is
    linked to both); normals with a larger error bound are compared exactly with every class.
    """
    G = len(gstart) - 1
    sizes = np.diff(gstart)
    out = np.where(sizes == 0, 1, 2 * sizes).astype(np.int64)
    if len(U) == 0:
        return out
    gid = np.repeat(np.arange(G), sizes)
    sure = tr.err <= _SURE
    gmax = np.zeros(G)
    np.maximum.at(gmax, gid[sure], tr.err[sure])
    phi = np.mod(np.arctan2(U[:, 1], U[:, 0]), np.pi)
    phi[~sure] = -1.0 - np.arange(int((~sure).sum()))  # unsure normals first, never linked
    order = np.lexsort((phi, gid))
    ph, gs = phi[order], gid[order]
    thr = 2.0 * gmax + 1e-15
    close = np.zeros(len(order), bool)  # close[t]: element t is close to its successor (cyclic)
    same = gs[1:] == gs[:-1]
    both = sure[order][1:] & sure[order][:-1]
    close[:-1] = same & both & (ph[1:] - ph[:-1] <= thr[gs[:-1]])
    n_unsure = np.bincount(gid[~sure], minlength=G)
    firsts = gstart[:-1] + n_unsure  # first sure element of each group (in sorted order)
    lasts = gstart[1:] - 1
    ok = sizes - n_unsure > 1
    fi, la = firsts[ok], lasts[ok]
    wrap = ph[fi] + np.pi - ph[la] <= thr[np.flatnonzero(ok)]
    close[la[wrap]] = True
    todo = np.union1d(np.unique(gs[close]), np.flatnonzero(n_unsure))
    for g in todo:
        a, b = int(gstart[g]), int(gstart[g + 1])
        members = order[a:b]
        nu = int(n_unsure[g])
        lost = 0
        reps: list[int] = []  # class representatives (reduced hyperplane indices)
        sure_m = members[nu:]
        cl = close[a + nu:b]
        n = len(sure_m)
        if n:
            start = int(np.argmin(cl)) + 1 if not cl.all() else 0  # begin after a non-close link
            cluster: list[int] = []
            for t in range(n):
                pos = (start + t) % n
                cluster.append(int(tr.idx[sure_m[pos]]))
                if not cl[pos] or t == n - 1:
                    creps: list[int] = []
                    for c in cluster:
                        if not any(tr.dependent(int(g), [r, c]) for r in creps):
                            creps.append(c)
                    lost += len(cluster) - len(creps)
                    reps.extend(creps)
                    cluster = []
        for t in members[:nu]:
            c = int(tr.idx[t])
            if any(tr.dependent(int(g), [r, c]) for r in reps):
                lost += 1
            else:
                reps.append(c)
        out[g] -= 2 * lost
    return out


def _chambers(U: np.ndarray, gstart: np.ndarray, wt: np.ndarray | None, m: int,
              progress: Callable[[float], None] | None = None, tr: _Track | None = None,
              row_range: tuple[int, int] | None = None,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Chambers of a batch of central arrangements in :math:`\\mathbb R^m`, ``m >= 2``.

    Group ``g`` has the unit normals ``U[gstart[g]:gstart[g+1]]`` (possibly repeated or
    rank deficient, never zero). Returns ``(W, wg, margin, tmin)``: one witness per chamber
    (unit rows, the zero vector for an empty group), its group id (sorted), its margin and
    ``min_i |u_i . w| * wt_i`` (used by the caller to size the lifting step). With ``tr``
    the "equal hyperplane" decisions are exact (see :class:`_Track`); otherwise they use
    :data:`TOL`. With ``row_range=(a, b)`` only the chambers *born* at the hyperplanes
    ``a..b-1`` are returned (deletion--restriction: every chamber is born at the last
    hyperplane that cuts it, so disjoint row ranges split the work into independent shards whose
    union, deduplicated by sign vector, is the whole arrangement).
    """
    if m == 2:
        W, wg = _sectors2(U, gstart)
        if wt is None:  # top level: sector witnesses have margin sin(alpha * gap) by construction
            inf = np.full(len(W), np.inf)
            return W, wg, inf, inf
        idx, marg, tmin = _evaluate(W, wg, U, gstart, wt, dedup=False)
        return W[idx], wg[idx], marg, tmin
    G = len(gstart) - 1
    sizes = np.diff(gstart)
    N = len(U)
    ug = np.repeat(np.arange(G), sizes)
    uj = np.arange(N) - gstart[ug]  # number of earlier normals in the group
    est = np.cumsum(2 * _cover_float(uj, m - 1))
    if row_range is None:
        cuts = _batch_cuts(est, _BUDGET)
    else:
        lo, hi = row_range
        base = est[lo - 1] if lo > 0 else 0.0
        cuts = [c + lo for c in _batch_cuts(est[lo:hi] - base, _BUDGET)]
        sizes = np.zeros_like(sizes)  # empty groups are not born in any shard
    colsel = np.array([[c for c in range(m) if c != p] for p in range(m)])
    outW, outg, outm, outt = [], [], [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        rows, cnt, loc, pi, Ui, Uj, piv, hv, hvv, sub, s = _restrict(U, gstart, ug, uj, colsel, a, b)
        if tr is None:
            dup = np.zeros(len(rows), bool)
            dup[loc[s <= TOL]] = True  # H_j equals an earlier hyperplane: no new chamber
        else:
            dup = tr.dup_rows(rows, loc, pi, s, ug, m)
        keep = ~dup[loc]
        c = np.einsum("pm,pm->p", Ui[keep], Uj[loc[keep]])
        sub = sub[keep] / s[keep, None]
        wsub = np.minimum(s[keep] / np.maximum(np.abs(c), 1e-300), 1e300)
        live = np.flatnonzero(~dup)
        sgs = np.concatenate([[0], np.cumsum(cnt[live])])
        sub_tr = None if tr is None else tr.restricted(rows, live, ug, pi, s, keep, loc, m)
        Y, yg, _, ytmin = _chambers(sub, sgs, wsub, m - 1, tr=sub_tr)
        unit = live[yg]  # local unit index of each restriction chamber
        # lift y -> p = H_j [y with 0 at the pivot]
        E = np.zeros((len(Y), m))
        np.put_along_axis(E, colsel[piv[unit]], Y, axis=1)
        hvu = hv[unit]
        p = E - (2.0 * np.einsum("pm,pm->p", E, hvu) / hvv[unit])[:, None] * hvu
        t = np.minimum(1.0, 0.5 * ytmin)[:, None]
        uju = Uj[unit]
        births = np.concatenate([p + t * uju, p - t * uju])
        births /= np.linalg.norm(births, axis=1, keepdims=True)
        bg = np.concatenate([ug[rows][unit], ug[rows][unit]])
        o = np.argsort(bg, kind="stable")
        births, bg = births[o], bg[o]
        idx, bm, bt = _evaluate(births, bg, U, gstart, wt, dedup=True)
        outW.append(births[idx])
        outg.append(bg[idx])
        outm.append(bm)
        outt.append(bt)
        if progress is not None:
            progress(float(est[b - 1] - (est[a - 1] if a > 0 else 0.0)))
    empty = np.flatnonzero(sizes == 0)
    outW.append(np.zeros((len(empty), m)))
    outg.append(empty)
    outm.append(np.full(len(empty), np.inf))
    outt.append(np.full(len(empty), np.inf))
    W = np.concatenate(outW)
    wg = np.concatenate(outg)
    o = np.argsort(wg, kind="stable")
    W, wg = W[o], wg[o]
    if len(cuts) > 2:
        # a group may span several batches: deduplicate across them
        idx, marg, tmin = _evaluate(W, wg, U, gstart, wt, dedup=True)
        return W[idx], wg[idx], marg, tmin
    return W, wg, np.concatenate(outm)[o], np.concatenate(outt)[o]


def _single_blas_thread() -> Any:
    """Context limiting BLAS to one thread: the products here are many small ones, for which
    OpenBLAS threading costs far more than it gains (3x slower measured on 2 busy cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _chamber_witnesses(red: _Reduced, progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Unit witnesses (P, r) of all chambers of the reduced arrangement, in row-space coordinates."""
    r = red.rank
    if r == 0:
        return np.zeros((1, 0))
    if r == 1:
        return np.array([[1.0], [-1.0]])
    W, _, _, _ = _chambers(red.Y, np.array([0, len(red.Y)]), None, r, progress, _Track.top(red))
    return W


def _shard_ranges(red: _Reduced, n_shards: int) -> list[tuple[int, int]]:
    """Split the hyperplanes ``0..k-1`` into ``n_shards`` ranges of about equal enumeration work."""
    k, r = red.n_distinct, red.rank
    if r <= 2 or k == 0:
        return [(0, k)]
    est = np.cumsum(2 * _cover_float(np.arange(k), r - 1))
    bounds = np.searchsorted(est, est[-1] * np.arange(1, n_shards) / n_shards)
    cuts = np.unique(np.concatenate([[0], bounds, [k]]))
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _shard_witnesses(red: _Reduced, row_range: tuple[int, int]) -> np.ndarray:
    """Unit witnesses (row-space coordinates) of the chambers born at the hyperplanes of ``row_range``.

    The union over the ranges of :func:`_shard_ranges` contains every chamber; deduplicate by
    sign vector. Rank <= 2 arrangements are not split (``(0, k)`` gives all chambers).
    """
    r = red.rank
    if r <= 2 or row_range == (0, red.n_distinct):
        return _chamber_witnesses(red)
    W, _, _, _ = _chambers(red.Y, np.array([0, len(red.Y)]), None, r, None, _Track.top(red), row_range)
    return W


# ----------------------------------------------------------------------------- counting
def _count_batch(U: np.ndarray, gstart: np.ndarray, m: int, tr: _Track,
                 row_range: tuple[int, int] | None = None) -> np.ndarray:
    """Exact chamber counts (int64) of a batch of central arrangements in R^m (deletion-restriction).

    Every degeneracy decision is exact (see :class:`_Track`), so the counts are those of the
    float64 data, not of a rounded copy. With ``row_range=(a, b)`` only the chambers *added* by
    the hyperplanes ``a..b-1`` are counted (:math:`\sum_j r(\mathcal A_{<j}^{H_j})`, without the
    initial chamber): disjoint ranges split the count into independent shards whose sum plus 1
    is the count.
    """
    G = len(gstart) - 1
    sizes = np.diff(gstart)
    if m == 2:
        return _count2(U, gstart, tr)
    N = len(U)
    ug = np.repeat(np.arange(G), sizes)
    uj = np.arange(N) - gstart[ug]
    if row_range is None:
        total = np.ones(G, dtype=np.int64)  # the chamber before any hyperplane
        cuts = _batch_cuts(np.cumsum(np.maximum(uj, 1).astype(np.float64) ** 2), 4 * _BUDGET)
    else:
        lo, hi = row_range
        total = np.zeros(G, dtype=np.int64)
        cuts = [c + lo for c in _batch_cuts(np.cumsum(np.maximum(uj[lo:hi], 1).astype(np.float64) ** 2),
                                            4 * _BUDGET)]
    colsel = np.array([[c for c in range(m) if c != p] for p in range(m)])
    for a, b in zip(cuts[:-1], cuts[1:]):
        rows, cnt, loc, pi, _, _, _, _, _, sub, s = _restrict(U, gstart, ug, uj, colsel, a, b)
        dup = tr.dup_rows(rows, loc, pi, s, ug, m)
        keep = ~dup[loc]
        live = np.flatnonzero(~dup)
        sub_tr = tr.restricted(rows, live, ug, pi, s, keep, loc, m)
        sub = sub[keep] / s[keep, None]
        sgs = np.concatenate([[0], np.cumsum(cnt[live])])
        sub_counts = _count_batch(sub, sgs, m - 1, sub_tr)
        np.add.at(total, ug[rows][live], sub_counts)
    return total


def _count_rank3(U: np.ndarray, gstart: np.ndarray) -> np.ndarray:
    r"""Chamber counts of central arrangements in :math:`\mathbb R^3` (closed form).

    With distinct planes and :math:`m_p` the number of planes through the intersection line
    :math:`p`, :math:`r = 2 + 2\sum_p (m_p - 1)` (Zaslavsky, :math:`|\chi(-1)|` with
    :math:`\chi(1) = 0`); the sum is accumulated pair by pair as :math:`\sum_{a<b} 2/m_{ab}`.
    """
    G = len(gstart) - 1
    out = np.ones(G, dtype=object)
    for g in range(G):
        Ug = U[gstart[g]:gstart[g + 1]]
        if len(Ug) == 0:
            continue
        # distinct planes
        cr = np.linalg.norm(np.cross(Ug[:, None, :], Ug[None, :, :]), axis=2)
        same = cr <= TOL
        first = np.argmax(same, axis=1) == np.arange(len(Ug))
        Ug = Ug[first]
        k = len(Ug)
        if k == 1:
            out[g] = 2
            continue
        a, b = np.triu_indices(k, 1)
        v = np.cross(Ug[a], Ug[b])
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        mult = np.zeros(len(a), np.int64)
        step = max(1, _BLOCK // k)
        for s0 in range(0, len(a), step):
            mult[s0:s0 + step] = np.sum(np.abs(v[s0:s0 + step] @ Ug.T) <= TOL, axis=1)
        mult = np.maximum(mult, 2)
        vals, cnts = np.unique(mult, return_counts=True)
        S = 0
        for mv, cv in zip(vals.tolist(), cnts.tolist()):
            S += (cv * 2) // mv  # number of lines of multiplicity mv, times (mv - 1)
        out[g] = 2 + 2 * S
    return out


def count_patterns(X: Any, *, bias: bool = False, max_work: float = 1e10) -> int:
    r"""Exact number of chambers of the arrangement of ``X`` (without enumerating them).

    This is the number of patterns :func:`enumerate_patterns` returns (with
    ``include_faces=False``).

    Method: reduce as in :func:`enumerate_patterns` (zero rows dropped, row space of rank
    :math:`r`, parallel rows merged into :math:`k` distinct hyperplanes), then

    * :math:`r = 0`: 1; :math:`r = 1`: 2; :math:`r = 2`: :math:`2k'` for :math:`k'`
      distinct lines;
    * :math:`r \ge 3`: Zaslavsky's deletion--restriction identity
      :math:`r(\mathcal A) = r(\mathcal A \setminus H) + r(\mathcal A^{H})`, applied to all
      hyperplanes at once (batched like the enumeration) down to rank 2. It makes the same
      degeneracy decisions as :func:`enumerate_patterns`; the two can differ only for inexact
      near-coincidences of relative size :math:`10^{-8}` to :math:`10^{-6}` (see the module
      docstring). (The rank-3 closed form :math:`2 + 2\sum_{\ell}(m_\ell - 1)` over the
      intersection lines :math:`\ell` of multiplicity :math:`m_\ell` -- Zaslavsky's
      :math:`|\chi(-1)|` with the Möbius coefficients of the rank-3 lattice -- is used for the
      size estimate of :func:`enumerate_patterns`; it agrees on exactly degenerate data.)
      The work is :math:`O(k^{r-1})` numbers instead of :math:`O(k^{r-1})` witness vectors
      times :math:`k` signs, so it is always cheaper than enumerating; there is therefore no
      enumeration fallback.

    In general position the result equals :func:`cover_bound` ``(k, r)``.

    Exactness: the count is that of the float64 data as given. Zero rows are exactly zero rows,
    parallel rows are merged by an exact test, the rank is proven, and every degeneracy
    decision of the recursion is taken in floating point only where the computed value exceeds
    its rounding-error bound, and otherwise by an exact rank test on the original rows (see
    :mod:`convexnn.arrangements.exact`). The computation runs in a well-conditioned basis of
    the column space, so the result is the same for ``X`` and ``X A`` (``A`` invertible), for
    feature offsets with a bias, and for columns in any units. When the rank cannot be
    resolved in float64 (singular values at the rounding level but an exact rank above them) a
    :class:`~convexnn.errors.NotProvenWarning` says so.

    Parameters
    ----------
    X : array, shape (n, d)
    bias : bool
        Count the chambers of ``[X, 1]`` (affine arrangement; Ergen & Pilanci, ICML 2021,
        eq. (13) with a bias).
    max_work : float
        Refuse (:class:`~convexnn.errors.TooLargeError`, before any allocation) when the
        estimated number of restricted hyperplanes processed, about
        :math:`\sum_{j<k} \mathrm{Cover}(j, r - 1) / 2`, exceeds it (default :math:`10^{10}`,
        roughly 20 minutes on one core).

    Returns
    -------
    int
    """
    Xa = design_matrix(X, bias)
    if isinstance(max_work, bool) or not isinstance(max_work, (int, float, np.integer, np.floating)) \
            or not max_work > 0:
        raise InputError(f"max_work must be a positive number; got {max_work!r}.")
    red = _Reduced(Xa, bias)
    _warn_issues(red.issues, "count_patterns")
    r, k = red.rank, red.n_distinct
    if r == 0:
        return 1
    if r == 1:
        return 2
    work = _count_work(k, r)
    if work > max_work:
        raise TooLargeError(
            f"counting the chambers of X (n={Xa.shape[0]}, rank {r}, {k} distinct hyperplanes) "
            f"would process about {work:.3g} restricted hyperplanes (~{work * 24 / 2**30:.3g} GiB "
            f"streamed, roughly {work / 1e7:.3g} s), more than max_work={max_work:.3g}. "
            f"The Cover bound cover_bound({k}, {r}) = {cover_bound(k, r):.4g} is an upper bound.",
            estimate=work, limit=max_work)
    return _count_reduced(red)


def _count_work(k: int, r: int) -> float:
    """Estimated number of restricted normals the counting recursion processes (all levels)."""
    if r <= 2:
        return float(k)
    j = np.arange(k, dtype=np.float64)
    return float(np.sum(j * _cover_float(j, r - 2))) / 2 + k


def _warn_issues(issues: list[str], where: str) -> None:
    if issues:
        import warnings

        from convexnn.errors import NotProvenWarning

        warnings.warn(f"{where}: result not proven exact: " + "; ".join(issues), NotProvenWarning,
                      stacklevel=3)


# ----------------------------------------------------------------------------- faces
def _flats(Y: np.ndarray, limit: int) -> list[np.ndarray]:
    """Membership matrices (F_s, k) of the flats of rank s = 1..r of the unit rows ``Y``."""
    k, r = Y.shape
    levels: list[np.ndarray] = []
    # rank 1: closure of each hyperplane (parallel copies)
    G = Y @ Y.T
    cur = np.unique(1.0 - G ** 2 <= TOL ** 2 * 4, axis=0)
    levels.append(cur)
    total = len(cur)
    for s in range(1, r):
        new = []
        for mem in cur:
            Q = np.linalg.svd(Y[mem].T, full_matrices=False)[0][:, :s]
            Rr = Y - (Y @ Q) @ Q.T
            n2 = np.einsum("ij,ij->i", Rr, Rr)
            cand = np.flatnonzero(n2 > TOL ** 2)
            if len(cand) == 0:
                continue
            Gm = Rr[cand] @ Rr.T  # (c, k)
            res = n2[None, :] - Gm ** 2 / n2[cand, None]
            new.append(res <= TOL ** 2)
        if not new:
            break
        cur = np.unique(np.concatenate(new), axis=0)
        total += len(cur)
        if total > limit:
            raise TooLargeError(
                f"the arrangement has more than {limit} flats; face patterns are too many to "
                "enumerate (use include_faces=False).", estimate=total, limit=limit)
        levels.append(cur)
    return levels


def _face_gates(red: _Reduced, limit: int) -> np.ndarray:
    """Gates (P, d') in the relative interiors of all lower-dimensional faces (incl. g = 0)."""
    Y, r = red.Y, red.rank
    gates = [np.zeros((1, red.Xa.shape[1]))]  # the origin: all-ones pattern
    if r <= 1:
        return np.concatenate(gates)
    for s, mems in enumerate(_flats(Y, limit), start=1):
        dim = r - s
        if dim <= 0:
            continue
        subsU, gst, bases = [], [0], []
        for mem in mems:
            # orthonormal basis of the flat (complement of the span of its normals)
            _, sv, vt = np.linalg.svd(Y[mem], full_matrices=True)
            B = vt[s:].T  # (r, dim)
            Z = Y[~mem] @ B
            nz = np.linalg.norm(Z, axis=1)
            Z = Z[nz > TOL] / nz[nz > TOL, None]
            subsU.append(Z)
            gst.append(gst[-1] + len(Z))
            bases.append(B)
        U = np.concatenate(subsU) if subsU else np.zeros((0, dim))
        gst = np.array(gst)
        if dim == 1:
            W = np.array([[1.0], [-1.0]] * len(mems))
            wg = np.repeat(np.arange(len(mems)), 2)
        else:
            W, wg, _, _ = _chambers(U, gst, None, dim)
        Bst = np.stack(bases)  # (F, r, dim)
        g = np.einsum("frd,fd->fr", Bst[wg], W)
        gates.append(red.gates(g).T)
    return np.concatenate(gates)


# ----------------------------------------------------------------------------- public API
def _estimate(red: _Reduced) -> tuple[int, str]:
    """Size estimate before enumerating: exact count when cheap, else the Cover bound."""
    r, k = red.rank, red.n_distinct
    if r <= 1:
        return (1 if r == 0 else 2), "exact count"
    if _count_work(k, r) <= _COUNT_NOW:
        return int(_count_batch(red.Y, np.array([0, k]), r, _Track.top(red))[0]), "exact count"
    return cover_bound(k, r), "Cover bound"


def _masks_packed(Xa: np.ndarray, G: np.ndarray, relax: float = 0.0) -> np.ndarray:
    """Bit-packed ``1[Xa g >= 0]`` for the columns of ``G`` (chunked), shape (P, ceil(n/8))."""
    n = Xa.shape[0]
    P = G.shape[1]
    out = np.zeros((P, (n + 7) // 8), np.uint8)
    step = max(1, (1 << 22) // max(n, 1))
    rn = np.linalg.norm(Xa, axis=1)[:, None]
    for a in range(0, P, step):
        Gc = G[:, a:a + step]
        V = Xa @ Gc
        if relax:
            V = V + relax * rn * np.linalg.norm(Gc, axis=0)[None, :]
        out[a:a + step] = np.packbits((V >= 0).T, axis=1)
    return out


def _check_limits(max_patterns: Any, max_bytes: Any) -> None:
    """Validate the size limits of the enumeration (InputError)."""
    if max_patterns is not None and (isinstance(max_patterns, bool) or not isinstance(max_patterns, (int, np.integer))
                                     or max_patterns < 1):
        raise InputError(f"max_patterns must be a positive integer or None; got {max_patterns!r}.")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, float, np.integer, np.floating)) \
            or not max_bytes > 0:
        raise InputError(f"max_bytes must be a positive number; got {max_bytes!r}.")


def _count_reduced(red: _Reduced) -> int:
    """Exact number of chambers of a reduced arrangement (serial)."""
    if red.rank <= 1:
        return 1 if red.rank == 0 else 2
    with _single_blas_thread():
        return int(_count_batch(red.Y, np.array([0, red.n_distinct]), red.rank, _Track.top(red))[0])


def _completeness(red: _Reduced, est: int, how: str, n_found: int,
                  exact_count: Callable[[], int]) -> list[str]:
    """Why ``n_found`` verified chambers are not proven to be all of them (empty list: proven).

    Proof: the estimate was the exact count, or the Cover bound is attained, or the exact count
    (``exact_count()``, run only when affordable) equals ``n_found``.
    """
    reasons = list(red.issues)
    truth: int | None
    if how == "exact count" or n_found == est:  # exact, or the Cover bound attained
        truth = est
    elif _count_work(red.n_distinct, red.rank) <= _COUNT_LATER:
        truth = exact_count()
    else:
        truth = None
        reasons.append(f"found {n_found:,} chambers, below the Cover bound {est:,}, and the exact "
                       "count is too expensive to confirm that none is missing")
    if truth is not None and n_found != truth:
        reasons.append(f"found {n_found:,} of the {truth:,} chambers (the data are nearly "
                       "degenerate at the rounding level: chambers thinner than float64 resolves)")
    return reasons


def _verified_packed(Xa: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Bit-packed exact masks ``1[Xa g >= 0]`` of the witnesses ``G`` and whether each is strict.

    Signs are certified (float filter, exact fallback: :func:`certified_signs`). A witness is
    *strict* when no nonzero row of ``Xa`` is orthogonal to it, i.e. it lies inside a chamber.
    Returns ``(packed, strict, n_exact)``.
    """
    n = Xa.shape[0]
    P = G.shape[1]
    out = np.zeros((P, (n + 7) // 8), np.uint8)
    strict = np.ones(P, bool)
    nzrow = np.any(Xa != 0, axis=1)
    n_exact = 0
    step = max(1, (1 << 22) // max(n, 1))
    for a in range(0, P, step):
        S, ne = certified_signs(Xa, G[:, a:a + step])
        n_exact += ne
        out[a:a + step] = np.packbits((S >= 0).T, axis=1)
        strict[a:a + step] = ~np.any((S == 0) & nzrow[:, None], axis=0)
    return out, strict, n_exact


def enumerate_patterns(
    X: Any,
    *,
    bias: bool = False,
    max_patterns: int | None = None,
    max_bytes: float = 8 * 2**30,
    include_faces: bool = False,
    progress: bool | None = None,
) -> Patterns:
    r"""All activation patterns of the chambers of the arrangement of ``X`` (EXACT).

    The patterns are :math:`D = \operatorname{diag}(\mathbf 1[X_a g \ge 0])` for ``g`` in the
    chambers (open full-dimensional cells) of the central arrangement
    :math:`\{g : x_i^\top g = 0\}_{i=1}^n` of :math:`X_a = X` (or :math:`X_a = [X, \mathbf 1]`
    when ``bias=True``, an affine arrangement of the data points); see Pilanci (2021 talk) ("hyperplane
    arrangements", the :math:`n = 3, d = 2` example) and Ergen & Pilanci (ICML 2021) eq. (13). This set makes the
    two-layer convex programs (C-ReLU, C-GReLU) exact.

    The ``>= 0`` convention: a row with :math:`x_i^\top g = 0` counts as active. Inside a
    chamber no row is zero except the zero rows of ``X`` (always active), so the chamber
    patterns do not depend on the convention. On lower-dimensional faces the set
    :math:`\{\mathbf 1[X_a g \ge 0] : g\}` can contain *extra* patterns (e.g. antipodal rows
    :math:`x, -x` both active on :math:`x^\top g = 0`, and the all-ones pattern of
    :math:`g = 0`); the chambers alone keep the convex programs exact, so these are only
    added with ``include_faces=True``.

    Parameters
    ----------
    X : array, shape (n, d)
        Data matrix (finite). Degenerate data is handled exactly: zero rows, duplicate and
        positively / negatively parallel rows, rank-deficient ``X`` (the gates live in its row
        space), many points on common hyperplanes, integer grids.
    bias : bool
        Gates act on ``[X, 1]`` (dimension ``d + 1``).
    max_patterns : int, optional
        Before enumerating, the number of chambers is estimated (the exact count when it is
        cheap, the Cover bound :func:`cover_bound` otherwise); a
        :class:`~convexnn.errors.TooLargeError` with ``.estimate`` is raised when it exceeds
        this limit.
    max_bytes : float
        Refuse, before any allocation, when the estimated peak memory exceeds this many bytes
        (default 8 GiB). The result takes ``P * (ceil(n/8) + 8 d')`` bytes (packed masks and
        gates); the peak is about :data:`_PEAK_FACTOR` times that.
    include_faces : bool
        Also return the patterns of the lower-dimensional faces (and of ``g = 0``). Their
        witness gates lie on the face up to rounding: the masks are defined with the rows
        through the face active, and :math:`\mathbf 1[X_a g \ge 0]` reproduces them only up to
        the rows with :math:`|x_i^\top g| \le 10^{-9}\|x_i\|\|g\|`.
    progress : bool, optional
        Show a tqdm progress bar; ``None`` shows it when at least :math:`10^6` chambers are
        expected and stderr is a terminal.

    Returns
    -------
    Patterns
        ``exact=True``, ``kind="exact"``, ``fingerprint`` of ``X``; witness gates strictly
        inside their chambers (relative margin :math:`> 10^{-13}`, typically far larger).

    Raises
    ------
    InputError
        Invalid ``X`` (NaN/inf, not 2-D, empty, non-numeric), ``max_patterns`` or ``max_bytes``.
    TooLargeError
        The estimated number of patterns exceeds ``max_patterns``, or the estimated peak memory
        exceeds ``max_bytes`` (the message says both numbers); use
        :func:`convexnn.sample_patterns` instead.

    Warns
    -----
    NotProvenWarning
        When the set cannot be proven complete (then ``exact=False`` and ``reason`` says why).

    Exactness
    ---------
    ``exact=True`` is a proof that every chamber of the arrangement of the float64 data as given
    is present: every returned witness is verified to lie strictly inside its chamber (signs
    certified by a floating-point error bound, exact rational arithmetic where the bound is not
    conclusive), and the number of distinct chambers equals the exact count (the Cover bound
    when attained, otherwise the exact deletion--restriction count of :func:`count_patterns`).
    The computation runs in a well-conditioned basis of the column space (centered features with
    a bias, columns scaled by powers of two, SVD), so badly scaled data (raw prices,
    timestamps, mixed units) give the same chambers as standardized data. Data that are
    degenerate only up to rounding (e.g. decimals that are collinear in decimal but not in
    binary) have chambers thinner than float64 can resolve: those are reported honestly
    (``exact=False`` with the count that was found and the true count).

    Notes
    -----
    Algorithm, complexity and tolerances: see the module docstring. The cost is
    :math:`O(r\,P\,k)` flops for :math:`P` chambers of :math:`k` distinct hyperplanes in rank
    :math:`r`, in vectorized batches (no LP; BLAS is limited to one thread meanwhile, since
    its threading only slows down the many small products); memory is
    :math:`O(P\,(d' + n/8))` bytes for the result plus working batches of about :math:`10^6`
    candidate witnesses per recursion level.

    Examples
    --------
    >>> import numpy as np, convexnn as cnn
    >>> P = cnn.enumerate_patterns(np.array([[2., 2.], [3., 3.], [1., 0.]]))
    >>> len(P)
    4
    """
    Xc = check_X(X)
    _check_limits(max_patterns, max_bytes)
    Xa = design_matrix(Xc, bias)
    red = _Reduced(Xa, bias)
    est, how = _estimate(red)
    nbytes = est * ((Xa.shape[0] + 7) // 8 + 8 * Xa.shape[1])
    too_many = (max_patterns is not None and est > max_patterns) or nbytes * _PEAK_FACTOR > max_bytes
    if too_many and how == "Cover bound" and _count_work(red.n_distinct, red.rank) <= _COUNT_LATER:
        # the Cover bound overestimates degenerate arrangements: count exactly before refusing
        with _single_blas_thread():
            est = int(_count_batch(red.Y, np.array([0, red.n_distinct]), red.rank, _Track.top(red))[0])
        how = "exact count"
    if max_patterns is not None and est > max_patterns:
        raise TooLargeError(
            f"the arrangement of X (n={Xa.shape[0]}, rank {red.rank}, {red.n_distinct} distinct "
            f"hyperplanes) has {'exactly' if how == 'exact count' else 'up to'} {est:,} chambers "
            f"({how}), more than max_patterns={max_patterns:,}. Use "
            "convexnn.sample_patterns(X, n_samples) for a random subset, or raise max_patterns.",
            estimate=est, limit=max_patterns)
    nbytes = est * ((Xa.shape[0] + 7) // 8 + 8 * Xa.shape[1])
    if nbytes * _PEAK_FACTOR > max_bytes:
        raise TooLargeError(
            f"the {'' if how == 'exact count' else 'up to '}{est:,} patterns of X ({how}) take "
            f"{nbytes / 2**30:.2f} GiB (packed masks and gates) and about "
            f"{nbytes * _PEAK_FACTOR / 2**30:.1f} GiB at peak while enumerating, more than "
            f"max_bytes={max_bytes / 2**30:.2f} GiB. Use convexnn.sample_patterns(X, n_samples) "
            "for a random subset, or raise max_bytes.",
            estimate=nbytes * _PEAK_FACTOR, limit=max_bytes)
    show = progress if progress is not None else (est >= 10**6 and sys.stderr.isatty())
    bar = None
    cb = None
    if show and red.rank >= 3:
        from tqdm.auto import tqdm

        total = float(np.sum(2 * _cover_float(np.arange(red.n_distinct), red.rank - 1)))
        bar = tqdm(total=total, desc="enumerate_patterns", unit="cell", unit_scale=True)
        cb = bar.update
    try:
        with _single_blas_thread():
            W = _chamber_witnesses(red, cb)
            G = red.gates(W) if red.rank else np.zeros((Xa.shape[1], 1))
            packed, strict, _ = _verified_packed(Xa, G)
    finally:
        if bar is not None:
            bar.close()
    packed, G = packed[strict], G[:, strict]
    n_found = len(np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel())) if len(packed) else 0
    reasons = _completeness(red, est, how, n_found, lambda: _count_reduced(red))
    fp = data_fingerprint(Xc)
    exact = not reasons
    if include_faces:
        Gf = _face_gates(red, limit=max_patterns or 10**7).T
        packed = np.concatenate([packed, _masks_packed(Xa, Gf, relax=1e-9)])
        G = np.concatenate([G, Gf], axis=1)
        if max_patterns is not None and len(np.unique(packed, axis=0)) > max_patterns:
            raise TooLargeError(
                f"with include_faces=True there are more than max_patterns={max_patterns:,} "
                "patterns.", estimate=len(packed), limit=max_patterns)
    if not exact:
        import warnings

        from convexnn.errors import NotProvenWarning

        warnings.warn("enumerate_patterns: the pattern set is not proven complete (exact=False): "
                      + "; ".join(reasons), NotProvenWarning, stacklevel=2)
    return Patterns.from_packed(packed, Xa.shape[0], G, bias=bias, exact=exact, kind="exact",
                                fingerprint=fp, reason=None if exact else "; ".join(reasons))


def enumerate_patterns_lp(
    X: Any,
    *,
    bias: bool = False,
    max_patterns: int = 10**5,
    time_limit: float | None = None,
) -> Patterns:
    r"""Reference enumerator: incremental, one feasibility LP per candidate cell (slow, independent).

    Rows are added one at a time (Rada & Cerny 2018). Every cell of the current arrangement
    (a sign vector :math:`s` on the rows seen so far, with a strict witness :math:`w`) spawns
    the child on the side of :math:`w` for free, and the other child :math:`\sigma` is kept
    iff the LP

    .. math:: \max_{g, \tau}\ \tau \quad\text{s.t.}\quad
              s_i \hat x_i^\top g \ge \tau\ (i < j),\ \sigma \hat x_j^\top g \ge \tau,\
              -1 \le g \le 1,\ \tau \le 1

    (unit rows :math:`\hat x_i`) has :math:`\tau^\star > 10^{-7}` and its solution is a strict
    witness. Zero rows (norm :math:`\le 10^{-8}` times the largest) are skipped (always
    active). It does not use the row-space reduction, the merging of parallel rows, nor any code
    of :func:`enumerate_patterns`; tests and ``bench/bench_arrangements.py`` use it as the
    independent reference. Solved with ``scipy.optimize.linprog(method="highs")``.

    Parameters
    ----------
    X : array, shape (n, d)
    bias : bool
    max_patterns : int
        Stop with :class:`TooLargeError` when more cells appear.
    time_limit : float, optional
        Stop with :class:`TooLargeError` after this many seconds (used by the benchmark).

    Returns
    -------
    Patterns
        ``exact=True``, ``kind="exact_lp"``.
    """
    import time

    from scipy.optimize import linprog

    Xc = check_X(X)
    Xa = design_matrix(Xc, bias)
    n, dp = Xa.shape
    norms = np.linalg.norm(Xa, axis=1)
    scale = norms.max()
    rows = [i for i in range(n) if scale > 0 and norms[i] > TOL * scale]
    A = Xa / np.where(norms > 0, norms, 1.0)[:, None]
    t0 = time.perf_counter()
    cells: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(dp))]
    bounds = [(-1.0, 1.0)] * dp + [(None, 1.0)]
    c_obj = np.zeros(dp + 1)
    c_obj[-1] = -1.0
    seen: list[int] = []
    for j in rows:
        seen.append(j)
        Aseen = A[seen]
        new: list[tuple[np.ndarray, np.ndarray]] = []
        for s, w in cells:
            v = float(A[j] @ w)
            for sig in (1.0, -1.0):
                S = np.append(s, sig)
                if sig * v > 1e-9 * max(np.abs(w).max(), 1e-300):
                    new.append((S, w))
                    continue
                Aub = np.hstack([-(S[:, None] * Aseen), np.ones((len(seen), 1))])
                res = linprog(c_obj, A_ub=Aub, b_ub=np.zeros(len(seen)), bounds=bounds,
                              method="highs")
                if res.status == 0 and -res.fun > 1e-7:
                    g = res.x[:dp]
                    if np.min(S * (Aseen @ g)) > 1e-8:
                        new.append((S, g))
            if len(new) > max_patterns:
                raise TooLargeError(f"more than max_patterns={max_patterns} cells.",
                                    estimate=len(new), limit=max_patterns)
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                raise TooLargeError(f"LP enumeration exceeded time_limit={time_limit} s.",
                                    estimate=len(new), limit=time_limit)
        cells = new
    G = np.stack([w for _, w in cells], axis=1)
    masks = Xa @ G >= 0
    return Patterns(masks, G, bias=bias, exact=True, kind="exact_lp",
                    fingerprint=data_fingerprint(Xc), n_samples=n)
