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

This module holds the two enumerators and re-exports :func:`count_patterns` and
:func:`cover_bound`. The steps live in :mod:`~convexnn.arrangements.basis` (reduction,
restriction, exact degeneracy decisions), :mod:`~convexnn.arrangements.chambers` (witnesses,
shards), :mod:`~convexnn.arrangements.count` (exact counts, Cover bound, size estimate),
:mod:`~convexnn.arrangements.verify` (certified masks, completeness proof),
:mod:`~convexnn.arrangements.faces` (``include_faces``) and
:mod:`~convexnn.arrangements.limits` (size, memory and thread limits).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from convexnn.arrangements.basis import TOL, _Reduced, _Track
from convexnn.arrangements.chambers import MARGIN_TOL, _chamber_witnesses
from convexnn.arrangements.count import (
    _count_batch,
    _count_reduced,
    _count_work,
    _cover_float,
    _estimate,
    count_patterns,
    cover_bound,
)
from convexnn.arrangements.faces import _face_gates, _masks_packed
from convexnn.arrangements.limits import _COUNT_LATER, _PEAK_FACTOR, _check_limits, single_blas_thread
from convexnn.arrangements.patterns import Patterns, data_fingerprint, design_matrix
from convexnn.arrangements.verify import _completeness, verified_packed
from convexnn.data import check_X
from convexnn.errors import TooLargeError

__all__ = [
    "enumerate_patterns",
    "enumerate_patterns_lp",
    "count_patterns",
    "cover_bound",
]


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
        with single_blas_thread():
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
        with single_blas_thread():
            W = _chamber_witnesses(red, cb)
            G = red.gates(W) if red.rank else np.zeros((Xa.shape[1], 1))
            packed, strict, _ = verified_packed(Xa, G)
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

