r"""Exact chamber counts of data arrangements and the Cover bound.

:func:`cover_bound` is the number of chambers of hyperplanes in general position (an upper
bound otherwise); :func:`count_patterns` counts the chambers of the data exactly by Zaslavsky's
deletion--restriction identity :math:`r(\mathcal A) = r(\mathcal A \setminus H) +
r(\mathcal A^{H})`, batched over all hyperplanes of a level, every degeneracy decision exact
(:class:`~convexnn.arrangements.basis._Track`). The same counts give the size estimate of the
enumeration and its completeness proof.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convexnn.arrangements.basis import TOL, _batch_cuts, _Reduced, _restrict, _Track
from convexnn.arrangements.limits import _BLOCK, _BUDGET, _COUNT_NOW, single_blas_thread
from convexnn.arrangements.patterns import design_matrix
from convexnn.data import check_int
from convexnn.errors import InputError, TooLargeError

__all__ = ["count_patterns", "cover_bound"]

#: unit normals known to within this error are sorted by angle in the plane; the others are
#: compared exactly with every class
_SURE = 1e-6


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


def _count_batch(U: np.ndarray, gstart: np.ndarray, m: int, tr: _Track,
                 row_range: tuple[int, int] | None = None) -> np.ndarray:
    r"""Exact chamber counts (int64) of a batch of central arrangements in R^m (deletion-restriction).

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
        with np.errstate(divide="ignore", invalid="ignore"):  # unresolved rows: reported by tr.restricted
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
    known = len(red.issues)
    count = _count_reduced(red)
    _warn_issues(red.issues[known:], "count_patterns")
    return count


def _count_work(k: int, r: int) -> float:
    """Estimated number of restricted normals the counting recursion processes (all levels)."""
    if r <= 2:
        return float(k)
    j = np.arange(k, dtype=np.float64)
    return float(np.sum(j * _cover_float(j, r - 2))) / 2 + k


def _count_reduced(red: _Reduced) -> int:
    """Exact number of chambers of a reduced arrangement (serial)."""
    if red.rank <= 1:
        return 1 if red.rank == 0 else 2
    with single_blas_thread():
        return int(_count_batch(red.Y, np.array([0, red.n_distinct]), red.rank, _Track.top(red))[0])


def _estimate(red: _Reduced) -> tuple[int, str]:
    """Size estimate before enumerating: exact count when cheap, else the Cover bound."""
    r, k = red.rank, red.n_distinct
    if r <= 1:
        return (1 if r == 0 else 2), "exact count"
    if _count_work(k, r) <= _COUNT_NOW:
        return int(_count_batch(red.Y, np.array([0, k]), r, _Track.top(red))[0]), "exact count"
    return cover_bound(k, r), "Cover bound"


def _warn_issues(issues: list[str], where: str) -> None:
    if issues:
        import warnings

        from convexnn.errors import NotProvenWarning

        warnings.warn(f"{where}: result not proven exact: " + "; ".join(issues), NotProvenWarning,
                      stacklevel=3)

