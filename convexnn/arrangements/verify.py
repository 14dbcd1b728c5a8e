"""Verification of enumerated chambers and the proof that none is missing.

:func:`verified_packed` certifies the masks of witness gates (float filter, exact fallback)
and which witnesses lie strictly inside a chamber; :func:`_completeness` proves that the
verified chambers are all of them (the exact count, or the Cover bound when attained) or says
why it cannot.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from convexnn.arrangements.basis import _Reduced
from convexnn.arrangements.count import _count_work
from convexnn.arrangements.exact import certified_signs
from convexnn.arrangements.limits import _COUNT_LATER


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


def verified_packed(Xa: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
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

