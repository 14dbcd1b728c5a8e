r"""The reduced arrangement of a data matrix and its restrictions.

:class:`_Reduced` keeps the distinct hyperplanes of the central arrangement of
:math:`X_a` as unit normals in an orthonormal basis of the row space (rank :math:`r`) of a
well-conditioned copy :math:`X_a T` of the data (exact zero rows removed, parallel rows merged
by an exact test, the rank proven). :func:`_restrict` is the restriction step
:math:`\mathcal A_{<j}^{H_j}` of deletion--restriction (Zaslavsky), shared by the chamber
enumeration and the exact count, and :class:`_Track` the exact bookkeeping of its degeneracy
decisions (a restricted normal is zero, two hyperplanes coincide): taken in floating point only
where the computed value exceeds its rounding-error bound, otherwise by an exact rank test of
the original rows (:mod:`convexnn.arrangements.exact`).
"""

from __future__ import annotations

import math

import numpy as np

from convexnn.arrangements.exact import gamma, integer_rows, parallel_classes, rank_of_rows

#: relative tolerance for zero rows, numerical rank and coincident (restricted) hyperplanes
TOL = 1e-8
#: unit roundoff of float64
_U = 2.0 ** -53


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
    :math:`H = I - 2 h h^\top / h^\top h`, :math:`h = u_j + \operatorname{sign}(u_{j,p}) e_p`
    (pivot ``p`` = largest entry of :math:`u_j`), maps :math:`u_j` to :math:`\mp e_p`; dropping
    coordinate ``p`` of :math:`H u_i` gives the normal of :math:`H_i \cap H_j` inside
    :math:`H_j \cong \mathbb R^{m-1}`.

    Returns
    -------
    rows, cnt, loc, pi, Ui, Uj, piv, hv, hvv, sub, s
        ``loc[k]``: local row of pair ``k``; ``pi[k]``: index of its earlier normal; ``Ui``: its earlier normal; ``Uj = U[rows]``;
        ``piv, hv, hvv``: pivot, Householder vector and :math:`h^\top h` per row (to lift
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

    __slots__ = ("Z", "idx", "chain", "err", "stats", "issues")

    def __init__(self, Z: list[list[int]], idx: np.ndarray, chain: np.ndarray, err: np.ndarray,
                 stats: dict[str, int], issues: list[str] | None = None):
        self.Z, self.idx, self.chain, self.err, self.stats = Z, idx, chain, err, stats
        #: where a result that cannot be proven is reported (the reduced arrangement's ``issues``)
        self.issues = [] if issues is None else issues

    @classmethod
    def top(cls, red: "_Reduced") -> "_Track":
        k = red.n_distinct
        return cls(red.Z, np.arange(k), np.zeros((1, 0), np.int64), np.full(k, red.err0),
                   {"exact_tests": 0}, red.issues)

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
        for k in np.flatnonzero(~(s > thr)):  # NaN (an unresolved row) goes to the exact test as well
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
        sk = s[keep]
        lost = ~(sk > 0)
        if lost.any():
            # a restricted hyperplane that is exactly distinct but whose float restriction is zero:
            # its direction is not resolved in floating point, so nothing computed from it is proven
            msg = ("a restricted hyperplane is exactly distinct from its pivot but its floating-point "
                   "restriction vanishes (rows nearly parallel beyond float64 resolution); the count is "
                   "not proven exact")
            if msg not in self.issues:
                self.issues.append(msg)
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.minimum(4.0 * (self.err[pk] + self.err[jk] + 16 * m * _U) / sk, 4.0)
        err[lost] = 4.0
        return _Track(self.Z, self.idx[pk], chain, err, self.stats, self.issues)

