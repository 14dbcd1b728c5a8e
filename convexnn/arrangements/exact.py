r"""Exact predicates on float64 data: the rounding-free decisions the arrangement code relies on.

Every float64 number is a dyadic rational :math:`m\,2^e`, so a float matrix is an exact
rational matrix and questions such as "are these rows parallel?", "do these rows have rank
:math:`k`?" or "what is the sign of :math:`x^\top g`?" have exact answers. The arrangement code
decides them in floating point where a rigorous error bound separates the value from zero (a
*floating-point filter*) and falls back to the exact integer computations below for the few
decisions the filter leaves open (Shewchuk, "Adaptive Precision Floating-Point Arithmetic and
Fast Robust Geometric Predicates", Discrete & Computational Geometry 18, 1997).

Integers are Python integers (arbitrary precision); ranks use python-flint's ``fmpz_mat`` when
it is installed (the ``exact`` extra) and fraction-free Gaussian elimination (Bareiss 1968)
otherwise. Nothing here rounds.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from convexnn.rounding import UNIT_ROUNDOFF, dot_error_bound, gamma

__all__ = [
    "UNIT_ROUNDOFF",
    "gamma",
    "integer_rows",
    "parallel_classes",
    "rank_of_rows",
    "exact_dot_signs",
    "certified_signs",
]


def integer_rows(A: np.ndarray) -> list[list[int]]:
    """Each row of ``A`` multiplied by a power of two that makes it an exact integer vector.

    Positive row scaling changes neither hyperplanes, nor the sides of points, nor ranks.
    """
    A = np.asarray(A, dtype=np.float64)
    out: list[list[int]] = []
    for row in A:
        fr = [float(v).as_integer_ratio() for v in row]
        den = max(d for _, d in fr)
        out.append([num * (den // d) for num, d in fr])
    return out


def _canonical(row: Sequence[int]) -> tuple[int, ...]:
    """The primitive integer vector of a row's line through the origin (sign of first nonzero > 0)."""
    g = 0
    for v in row:
        g = math.gcd(g, v)
    if g == 0:
        return tuple(row)
    first = next(v for v in row if v != 0)
    s = g if first > 0 else -g
    return tuple(v // s for v in row)


def parallel_classes(A: np.ndarray) -> np.ndarray:
    """Exact classes of positively or negatively parallel rows (rows must be nonzero).

    Returns ``label`` of shape ``(k,)``: rows ``i, j`` are parallel iff ``label[i] == label[j]``;
    labels number the classes in order of first appearance.
    """
    seen: dict[tuple[int, ...], int] = {}
    labels = np.empty(len(A), dtype=np.int64)
    # exact duplicates (and exact negations) first, in one vectorized pass
    A = np.asarray(A, dtype=np.float64)
    if len(A) == 0:
        return labels
    piv = np.argmax(A != 0, axis=1)
    sgn = np.sign(A[np.arange(len(A)), piv])
    canon = np.ascontiguousarray(A * sgn[:, None]) + 0.0  # + 0.0 turns -0.0 into 0.0
    _, first, inv = np.unique(canon.view(np.dtype((np.void, canon.shape[1] * 8))).ravel(),
                              return_index=True, return_inverse=True)
    reps = first[inv]  # representative (first equal row up to sign) of each row
    uniq = np.unique(reps)
    rep_label: dict[int, int] = {}
    for r, row in zip(uniq.tolist(), integer_rows(A[uniq])):
        key = _canonical(row)
        rep_label[r] = seen.setdefault(key, len(seen))
    labels[:] = [rep_label[r] for r in reps.tolist()]
    # renumber in order of first appearance
    _, firstpos = np.unique(labels, return_index=True)
    order = np.argsort(firstpos)
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return remap[labels]


def _bareiss_rank(M: list[list[int]]) -> int:
    """Rank of an integer matrix by fraction-free elimination (exact)."""
    M = [list(r) for r in M]
    rows = len(M)
    cols = len(M[0]) if rows else 0
    rank = 0
    prev = 1
    for c in range(cols):
        piv = next((i for i in range(rank, rows) if M[i][c] != 0), None)
        if piv is None:
            continue
        M[rank], M[piv] = M[piv], M[rank]
        p = M[rank][c]
        for i in range(rank + 1, rows):
            mi = M[i][c]
            Mi, Mr = M[i], M[rank]
            for j in range(c + 1, cols):
                Mi[j] = (p * Mi[j] - mi * Mr[j]) // prev
            Mi[c] = 0
        prev = p
        rank += 1
        if rank == rows:
            break
    return rank


def rank_of_rows(rows: list[list[int]]) -> int:
    """Exact rank of an integer matrix given as a list of rows."""
    if not rows:
        return 0
    try:
        import flint
    except ImportError:
        return _bareiss_rank(rows)
    return int(flint.fmpz_mat(rows).rank())


def exact_dot_signs(A: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Exact signs (-1, 0, +1) of ``A @ g`` for float rows ``A`` and a float vector ``g``."""
    gi = integer_rows(np.asarray(g, dtype=np.float64)[None, :])[0]
    out = np.empty(len(A), dtype=np.int8)
    for k, row in enumerate(integer_rows(A)):
        s = sum(a * b for a, b in zip(row, gi))
        out[k] = (s > 0) - (s < 0)
    return out


def certified_signs(A: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, int]:
    r"""Exact signs of ``A @ G`` (float64 data), float filter + exact fallback.

    The float product is trusted where :math:`|\mathrm{fl}(a^\top g)| > \gamma_{d+2}|a|^\top|g|
    + 2^{-1000}`; the remaining entries are recomputed exactly.

    Returns
    -------
    signs : ndarray of int8, shape (n, P)
    n_exact : int
        Number of entries that needed exact arithmetic.
    """
    A = np.asarray(A, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    V = A @ G
    B = dot_error_bound(np.abs(A) @ np.abs(G), A.shape[1])
    S = np.sign(V).astype(np.int8)
    unsure = np.abs(V) <= B
    n_exact = int(unsure.sum())
    if n_exact:
        for p in np.flatnonzero(unsure.any(axis=0)):
            rows = np.flatnonzero(unsure[:, p])
            S[rows, p] = exact_dot_signs(A[rows], G[:, p])
    return S, n_exact
