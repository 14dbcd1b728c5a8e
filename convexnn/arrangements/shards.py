r"""The arrangement of ``X`` split into independent shards: the public interface of parallel counting and enumeration.

Deletion--restriction adds the distinct hyperplanes :math:`H_1, \dots, H_k` one by one. The
number of chambers is :math:`r(\mathcal A) = 1 + \sum_j r(\mathcal A_{<j}^{H_j})` (Zaslavsky), and
every chamber is *born* at the last hyperplane that cuts it. Both sums therefore split over
contiguous ranges of ``j`` that can run anywhere: :class:`ShardedArrangement` holds the reduced
arrangement and answers, for one range, its share of the count (:meth:`~ShardedArrangement.count_range`)
or the verified chambers born in it (:meth:`~ShardedArrangement.enumerate_range`). The executor
(:mod:`convexnn.distributed`, or a plain loop) only maps ranges to workers and adds or merges the
results; completeness is then proven by :meth:`~ShardedArrangement.completeness` exactly as for
:func:`convexnn.enumerate_patterns`.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from convexnn.arrangements.basis import _Reduced, _Track
from convexnn.arrangements.chambers import _shard_ranges, _shard_witnesses
from convexnn.arrangements.count import _count_batch, _count_work, _cover_float, _estimate, _warn_issues
from convexnn.arrangements.limits import _PEAK_FACTOR, _check_limits, single_blas_thread
from convexnn.arrangements.patterns import Patterns, design_matrix
from convexnn.arrangements.verify import _completeness, verified_packed

__all__ = ["ShardedArrangement", "PEAK_FACTOR", "check_limits"]

#: Peak memory of enumerating chambers, as a multiple of the bytes of the patterns produced.
PEAK_FACTOR = _PEAK_FACTOR
#: Validation of ``max_patterns`` / ``max_bytes`` as in :func:`convexnn.enumerate_patterns`.
check_limits = _check_limits


class ShardedArrangement:
    r"""The hyperplane arrangement of ``X`` (rows of ``Xa``), prepared for work split by hyperplane ranges.

    Parameters
    ----------
    X : array, shape (n, d)
    bias : bool
        Gates act on ``[X, 1]``.

    Attributes
    ----------
    Xa : ndarray, shape (n, d')
    rank : int
        Rank of the arrangement (proven).
    n_distinct : int
        Number of distinct hyperplanes ``k``.
    issues : list of str
        Reasons why results cannot be proven exact (empty when they can).
    """

    def __init__(self, X: Any, bias: bool) -> None:
        self.Xa = design_matrix(X, bias)
        self._red = _Reduced(self.Xa, bias)

    def warn_issues(self, where: str) -> None:
        """A :class:`~convexnn.errors.NotProvenWarning` from ``where`` when :attr:`issues` is not empty."""
        _warn_issues(self._red.issues, where)

    # ------------------------------------------------------------------ sizes
    @property
    def rank(self) -> int:
        return int(self._red.rank)

    @property
    def n_distinct(self) -> int:
        return int(self._red.n_distinct)

    @property
    def issues(self) -> list[str]:
        return list(self._red.issues)

    def estimate(self) -> tuple[int, str]:
        """``(size, how)``: the exact chamber count when cheap (``"exact count"``), else the Cover bound."""
        return _estimate(self._red)

    def count_work(self) -> float:
        """Restricted hyperplanes the exact count processes (the cost model of :func:`convexnn.count_patterns`)."""
        return _count_work(self.n_distinct, self.rank)

    def fresh(self) -> "ShardedArrangement":
        """A copy whose arrays are freshly allocated (C order, aligned).

        Arrays deserialized on another process may sit at any memory alignment, and numpy's SIMD
        loops round differently on unaligned data; fresh copies make a shard's floating-point
        results bit-identical to the serial computation.
        """
        out = copy.copy(self)
        red = copy.copy(self._red)
        for name in ("Xa", "V", "Y", "T"):
            setattr(red, name, np.array(getattr(red, name), copy=True, order="C"))
        out._red = red
        out.Xa = red.Xa
        return out

    # ------------------------------------------------------------------ counting
    def count_ranges(self, n_shards: int) -> list[tuple[int, int]]:
        """Split the hyperplanes into at most ``n_shards`` contiguous ranges of about equal counting work."""
        k, r = self.n_distinct, self.rank
        j = np.arange(k, dtype=np.float64)
        work = np.cumsum(j * _cover_float(j, r - 2) + 1.0)
        bounds = np.searchsorted(work, work[-1] * np.arange(1, n_shards) / n_shards)
        cuts = np.unique(np.concatenate([[0], bounds, [k]])).astype(int)
        return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]

    def count_direct(self) -> int | None:
        """The chamber count when it needs no split (rank <= 2 or at most one hyperplane), else None."""
        r, k = self.rank, self.n_distinct
        if r == 0:
            return 1
        if r == 1:
            return 2
        if r == 2 or k <= 1:
            with single_blas_thread():
                return int(_count_batch(self._red.Y, np.array([0, k]), r, _Track.top(self._red))[0])
        return None

    def count_range(self, row_range: tuple[int, int]) -> int:
        r"""Chambers added by the hyperplanes of ``row_range``: :math:`\sum_j r(\mathcal A_{<j}^{H_j})` over them.

        The top level of the serial count restricted to these rows (same restrictions, same exact
        degeneracy decisions); the chamber count is 1 plus the sum over a partition of the rows.
        """
        red = self._red
        with single_blas_thread():
            return int(_count_batch(red.Y, np.array([0, self.n_distinct]), red.rank, _Track.top(red),
                                    tuple(row_range))[0])

    # ------------------------------------------------------------------ enumeration
    def enumerate_ranges(self, n_shards: int) -> list[tuple[int, int]]:
        """Split the hyperplanes into about ``n_shards`` ranges of about equal enumeration work."""
        return _shard_ranges(self._red, int(n_shards)) if self.rank else [(0, 0)]

    def enumerate_range(self, row_range: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Distinct chambers born in ``row_range``, each with a witness verified strictly inside it.

        Returns
        -------
        (packed, G)
            Bit-packed masks of shape ``(P_r, ceil(n/8))`` (canonical order, distinct) and the
            witness gates of shape ``(d', P_r)``.
        """
        red = self._red
        with single_blas_thread():
            G = red.gates(_shard_witnesses(red, tuple(row_range))) if red.rank else np.zeros((self.Xa.shape[1], 1))
            packed, strict, _ = verified_packed(self.Xa, G)
        return unique_packed(packed[strict], G[:, strict])

    def completeness(self, estimate: tuple[int, str], n_found: int, exact_count: Callable[[], int]) -> list[str]:
        """Why ``n_found`` verified distinct chambers are not proven to be all of them (empty: proven).

        Proof: the estimate was the exact count, or the Cover bound is attained, or the exact
        count (``exact_count()``, called only when affordable) equals ``n_found``.
        """
        est, how = estimate
        return _completeness(self._red, est, how, n_found, exact_count)


def unique_packed(packed: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct rows of bit-packed masks (first witness kept), in the order :class:`Patterns` uses."""
    return Patterns._canonical(np.ascontiguousarray(packed), G)
