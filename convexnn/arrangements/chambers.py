r"""Witnesses of the chambers of a reduced arrangement (batched deletion--restriction).

Adding the hyperplanes :math:`H_1, \dots, H_k` one by one, the chambers that :math:`H_j` cuts
are in bijection with the chambers of the restriction :math:`\mathcal A_{<j}^{H_j}`; a
restriction chamber with interior point :math:`p` gives the two new chambers with witnesses
:math:`p \pm t\,u_j`. :func:`_chambers` solves all restrictions of one level together, down to
the plane (:func:`_sectors2`), and keeps per sign vector the witness of largest margin
(:func:`_evaluate`). Every chamber is born at the last hyperplane that cuts it, so disjoint
ranges of hyperplanes (:func:`_shard_ranges`, :func:`_shard_witnesses`) split the enumeration
into independent shards.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from convexnn.arrangements.basis import TOL, _batch_cuts, _Reduced, _restrict, _Track
from convexnn.arrangements.count import _cover_float
from convexnn.arrangements.limits import _BLOCK, _BUDGET

#: witnesses with a smaller relative margin are considered to lie on a hyperplane
MARGIN_TOL = 1e-13
#: position of the witness ray inside a 2-D sector (fraction of its angle); an irrational
#: fraction avoids landing exactly on a third line of symmetric integer configurations
_ALPHA = math.sqrt(2.0) - 1.0


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
        with np.errstate(divide="ignore", invalid="ignore"):  # unresolved rows: reported by tr.restricted
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

