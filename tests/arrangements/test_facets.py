"""Facet rows of chambers (convexnn.arrangements.facets), checked against linear programs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from convexnn.arrangements.facets import ChamberFacets, chamber_facets

SETTINGS = dict(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _implied(A: np.ndarray, keep: np.ndarray, j: int) -> bool:
    """Whether the row ``j`` of ``A u >= 0`` is implied by the rows ``keep``: the LP
    min a_j^T u s.t. A_keep u >= 0, |u|_inf <= 1 has optimum 0 (not negative)."""
    r = A.shape[1]
    res = linprog(A[j], A_ub=-A[keep], b_ub=np.zeros(len(keep)), bounds=[(-1, 1)] * r, method="highs")
    assert res.status == 0
    return res.fun >= -1e-9 * np.linalg.norm(A[j])


def _chamber(seed: int, n: int, r: int):
    rng = np.random.default_rng(seed)
    X = np.hstack([rng.standard_normal((n, r - 1)), np.ones((n, 1))])
    g = rng.standard_normal(r)
    s = np.where(X @ g >= 0, 1.0, -1.0)
    return X, s[:, None] * X, g


@pytest.mark.parametrize("r", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_facets_are_exactly_the_irredundant_rows(seed, r):
    # brute force: every row left out is implied by the rows returned, and no row returned is
    # implied by the others (one linear program per row)
    _, A, g = _chamber(seed, 40, r)
    F = chamber_facets(A, g)
    assert F is not None and np.all(np.diff(F) > 0)
    for j in range(A.shape[0]):
        if j in F:
            assert not _implied(A, F[F != j], j)
        else:
            assert _implied(A, F, j)


@given(seed=st.integers(0, 10**6), r=st.integers(2, 5), scale=st.floats(1e-3, 1e3))
@settings(**SETTINGS)
def test_facets_are_invariant_under_invertible_maps_and_row_scaling(seed, r, scale):
    # the chamber of X T (gate T^{-1} g) is T^{-1} times the chamber of X, with the same facet
    # rows; scaling a row by a positive number changes no constraint
    X, A, g = _chamber(seed, 30, r)
    rng = np.random.default_rng(seed + 1)
    T = rng.standard_normal((r, r)) + 3.0 * np.eye(r)
    c = np.linalg.solve(T, g)
    rows = np.exp(rng.uniform(-2, 2, size=A.shape[0]))[:, None] * scale
    base = chamber_facets(A, g)
    assert base is not None
    assert np.array_equal(chamber_facets(A @ T, c), base)
    assert np.array_equal(chamber_facets(rows * A, g), base)


def test_parallel_rows_keep_one_representative():
    _, A, g = _chamber(3, 25, 3)
    A2 = np.vstack([A, 2.5 * A[:5]])  # rows 25..29 are positive multiples of rows 0..4
    F = chamber_facets(A2, g)
    assert F is not None
    for j in range(5):
        assert (j in F) + (25 + j in F) <= 1  # at most one of each parallel pair
        if _implied(A, np.setdiff1d(np.arange(25), [j]), j) is False:
            assert j in F or 25 + j in F


def test_direction_outside_the_chamber_or_on_a_hyperplane_is_refused():
    _, A, g = _chamber(4, 20, 3)
    assert chamber_facets(A, -g) is None
    # c on the hyperplane of row 0: not strictly inside
    a0 = A[0] / np.linalg.norm(A[0])
    c = g - (g @ a0) * a0
    assert chamber_facets(A, c) is None


def test_low_ranks_and_zero_rows():
    rng = np.random.default_rng(5)
    # rank 1: every nonzero row is a positive multiple of one row
    A = np.outer(rng.uniform(0.5, 2.0, 8), [1.0])
    assert np.array_equal(chamber_facets(A, np.array([1.0])), [0])
    # rank 2: the two extreme rows of a fan; zero rows are never facets
    ang = rng.uniform(0.1, 1.4, 12)
    A = np.column_stack([np.cos(ang), np.sin(ang)])
    A[3] = 0.0
    F = chamber_facets(A, np.array([1.0, 1.0]))
    live = np.setdiff1d(np.arange(12), [3])
    assert set(F) == {live[np.argmin(ang[live])], live[np.argmax(ang[live])]}


def test_chamber_facets_of_rank_deficient_data_and_missing_gates():
    # a duplicated column: the chambers live in the row space (rank 3 of d' = 4); without gates the
    # least-squares sign fit is the interior direction
    X, _, _ = _chamber(6, 40, 3)
    Xa = np.column_stack([X[:, 0], X[:, 0], X[:, 1:]])
    rng = np.random.default_rng(7)
    G = rng.standard_normal((4, 6))
    masks = Xa @ G >= 0
    for gates in (G, None):
        cf = ChamberFacets(Xa, gates)
        assert cf.available and cf.rank == 3
        found = 0
        for i in range(6):
            out = cf.of(i, masks[:, i])
            if out is None:  # the sign fit need not be inside a thin chamber
                assert gates is None
                continue
            found += 1
            A = np.where(masks[:, i], 1.0, -1.0)[:, None] * Xa
            F = out[0]
            for j in range(40):
                assert _implied(A, F[F != j], j) == (j not in F)
        assert found >= (6 if gates is not None else 1)


def test_rows_layout_pads_with_distinct_implied_rows():
    X, _, _ = _chamber(8, 60, 4)
    rng = np.random.default_rng(9)
    G = rng.standard_normal((4, 5))
    masks = X @ G >= 0
    cf = ChamberFacets(X, G)
    pids = np.array([0, 1, 2, 3, 4, 2])  # two blocks of pattern 2
    R = cf.rows(masks[:, pids], pids)
    counts = [len(cf.of(i, masks[:, i])[0]) for i in range(5)]
    assert R.shape == (max(counts), 6)
    for b, i in enumerate(pids):
        assert len(set(R[:, b])) == R.shape[0]  # distinct rows
        assert set(cf.of(i, masks[:, i])[0]) <= set(R[:, b])
    assert np.array_equal(R[:, 2], R[:, 5])
    # above the rank limit nothing is computed; the caller keeps all rows
    assert not ChamberFacets(X, G, max_rank=3).available
    assert ChamberFacets(X[:20], G, rows_per_rank=10**6).available  # rank 4: whatever n
    # rank 6 needs rows_per_rank * (6 - 5) samples
    X6 = np.random.default_rng(10).standard_normal((150, 6))
    assert ChamberFacets(X6, rows_per_rank=150).available and ChamberFacets(X6, rows_per_rank=150).rank == 6
    assert not ChamberFacets(X6, rows_per_rank=151).available
    assert ChamberFacets(X, G, max_rank=3).of(0, masks[:, 0]) is None


def test_hulls_that_would_blow_up_are_declined():
    # polynomial features of one variable lie on a moment curve: every point is a vertex and the
    # hull has Theta(n^2) simplices in dimension 4 (a cyclic polytope); two small hulls predict it and
    # the chambers of such data keep all their rows, while data in general position keeps its facets
    from scipy.spatial import ConvexHull

    from convexnn.arrangements.facets import FACET_SIMPLICES_PER_ROW, hull_growth

    rng = np.random.default_rng(11)
    n = 1500
    t = np.sort(rng.uniform(0.0, 1.0, n))
    poly = np.column_stack([t, t ** 2, t ** 3, t ** 4, np.ones(n)])
    gauss = np.column_stack([rng.standard_normal((n, 4)), np.ones(n)])
    curve = poly[:, :4] / (1.0 + t[:, None])  # points on a curve of the same kind
    assert hull_growth(curve) > 100 * n
    # the prediction is one: the hull of 400 of these points already has 100 simplices per point
    assert len(ConvexHull(curve[::4][:400]).simplices) > 100 * 400
    assert hull_growth(rng.standard_normal((n, 4))) < FACET_SIMPLICES_PER_ROW * n
    assert hull_growth(curve[:100]) == 0.0  # small enough to compute whole
    G = rng.standard_normal((5, 4))
    cf = ChamberFacets(poly, G)
    assert cf.available and cf.of(0, poly @ G[:, 0] >= 0) is None and not cf.available
    cf = ChamberFacets(gauss, G)
    assert cf.of(0, gauss @ G[:, 0] >= 0) is not None and cf.available


def test_rank_of_wide_data_is_decided_without_losing_low_rank_data():
    rng = np.random.default_rng(12)
    X = rng.standard_normal((300, 9))
    cf = ChamberFacets(X)
    assert not cf.available and cf.rank == 7  # above FACET_MAX_RANK = 6, said without an SVD
    # nine columns of rank 4: the row space is found, and the facets agree with the LP
    Y = np.hstack([X[:, :4], X[:, :4] @ rng.standard_normal((4, 5))])
    g = rng.standard_normal(9)
    cf = ChamberFacets(Y, g[:, None])
    assert cf.available and cf.rank == 4
    mask = Y @ g >= 0
    F = cf.of(0, mask)[0]
    A = np.where(mask, 1.0, -1.0)[:, None] * Y
    for j in range(0, 300, 7):
        assert _implied(A, F[F != j], j) == (j not in F)



def test_padding_beyond_the_cached_rows_is_recomputed_the_same(monkeypatch):
    # each pattern keeps only its first _PAD_ROWS implied rows; a block that needs more gets them from
    # its direction, in the same order
    import convexnn.arrangements.facets as facets_module

    X, _, _ = _chamber(13, 80, 4)
    G = np.random.default_rng(14).standard_normal((4, 6))
    masks = X @ G >= 0
    pids = np.arange(6)
    full = ChamberFacets(X, G).rows(masks, pids)
    monkeypatch.setattr(facets_module, "_PAD_ROWS", 1)
    short = ChamberFacets(X, G)
    assert all(len(short.of(i, masks[:, i])[1]) == 1 for i in pids)
    assert np.array_equal(short.rows(masks, pids), full)


def test_one_instance_serves_any_pattern_set_on_the_same_data(monkeypatch):
    # facets are cached by mask: a shared instance asked for the patterns in another order with
    # patterns added (and the gates in that order) computes hulls for the new chambers only and
    # returns each chamber's own facets, which define it (checked by linear programs)
    import convexnn.arrangements.facets as facets_module

    X, _, _ = _chamber(21, 50, 4)
    G = np.random.default_rng(22).standard_normal((4, 8))
    masks = X @ G >= 0
    shared = ChamberFacets(X, G[:, :5])
    assert shared.rows(masks[:, :5], np.arange(5)) is not None
    hulls = []
    real = facets_module._vertices
    monkeypatch.setattr(facets_module, "_vertices", lambda *a: hulls.append(1) or real(*a))
    perm = np.array([7, 2, 6, 0, 5, 1, 4, 3])
    shared.set_gates(G[:, perm])
    again = shared.rows(masks[:, perm], np.arange(8))
    assert len(hulls) == 3  # patterns 5, 6, 7
    fresh = ChamberFacets(X, G[:, perm]).rows(masks[:, perm], np.arange(8))
    assert again is not None and again.shape == fresh.shape
    for b, i in enumerate(perm):
        A = np.where(masks[:, i], 1.0, -1.0)[:, None] * X
        F = shared.of(b, masks[:, i])[0]
        assert np.array_equal(F, ChamberFacets(X, G[:, i:i + 1]).of(0, masks[:, i])[0])
        assert np.array_equal(again[:len(F), b], F) and np.array_equal(fresh[:len(F), b], F)
        assert all(_implied(A, F, j) for j in range(A.shape[0]) if j not in F)


@pytest.mark.parametrize("r", [3, 4, 5, 6])
def test_all_chambers_at_once_give_each_chamber_its_own_facets(r):
    # rows() computes the uncached chambers together (one product for every direction); each
    # chamber's facets and padding must be those of its own computation by of(), including a
    # chamber given a gate outside it (left to the sign fit) and a pattern without a gate
    rng = np.random.default_rng(30 + r)
    n, P = 160, 12
    X = np.hstack([rng.standard_normal((n, r - 1)), np.ones((n, 1))])
    G = rng.standard_normal((r, P))
    masks = X @ G >= 0
    # pattern 3: every sample on, given a gate outside (only tried; the least-squares sign fit, the
    # bias direction, is inside); pattern P - 1: every sample off, without a gate
    masks[:, 3], masks[:, P - 1] = True, False
    G[:, 3] = -np.eye(r)[-1]
    pids = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 2])
    batch = ChamberFacets(X, G[:, :P - 1])  # pattern P - 1 has no gate
    R = batch.rows(masks[:, pids], pids)
    one = ChamberFacets(X, G[:, :P - 1])
    singles = [one.of(int(i), masks[:, i]) for i in pids]
    assert R is not None and all(s is not None for s in singles)
    assert not np.allclose(batch._inside[np.packbits(masks[:, 3]).tobytes()], batch._basis.T @ G[:, 3])
    for b, i in enumerate(pids):
        F, order = singles[b]
        got = batch.of(int(i), masks[:, i])
        assert np.array_equal(got[0], F) and np.array_equal(got[1], order)
        assert np.array_equal(R[:len(F), b], F)
        A = np.where(masks[:, i], 1.0, -1.0)[:, None] * X
        assert all(_implied(A, F, j) for j in range(0, n, 9) if j not in F)


def test_a_formulation_keeps_its_chamber_facets_across_solves():
    # the hulls of a formulation's chambers are computed once: a second solve (another lam) reuses
    # them and agrees with Clarabel; a pickled formulation leaves them behind
    import pickle

    import convexnn as cx

    rng = np.random.default_rng(40)
    X = rng.standard_normal((60, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0.0) + 0.1 * rng.standard_normal(60)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((4, 12)), bias=True)
    f = cx.c_relu(X, y, pat, 0.05)
    cx.solve(f, method="first_order", tol=1e-8)
    kept = f.__dict__["_chamber_facets"]
    assert kept.available and len(kept._cache) > 0
    f.set_lam(0.01)
    s = cx.solve(f, method="first_order", tol=1e-8)
    assert f.__dict__["_chamber_facets"] is kept
    ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert abs(s.value - ref.value) <= 1e-6 * abs(ref.value)
    assert "_chamber_facets" not in pickle.loads(pickle.dumps(f)).__dict__
