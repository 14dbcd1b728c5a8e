"""Exact chamber enumeration, counts and the Cover bound, checked against independent references.

References used here (none shares code with ``enumerate_patterns``):
* ``enumerate_patterns_lp`` -- incremental, one HiGHS LP per candidate cell;
* Whitney's subset formula for the characteristic polynomial (brute force over all subsets);
* a per-pattern strict-feasibility LP written in this file;
* random Gaussian gates.
"""

from __future__ import annotations

import itertools
import warnings
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import convexnn as cnn
from convexnn.errors import InputError, TooLargeError

SETTINGS = dict(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- helpers
def design(X, bias):
    X = np.asarray(X, float)
    return np.hstack([X, np.ones((len(X), 1))]) if bias else X


def whitney_count(Xa: np.ndarray) -> int:
    """|chi(-1)| with chi(t) = sum_{S subset A} (-1)^|S| t^(d - rank S) (zero rows removed)."""
    A = Xa[np.linalg.norm(Xa, axis=1) > 1e-12]
    d = A.shape[1]
    total = 0
    for size in range(len(A) + 1):
        for S in itertools.combinations(range(len(A)), size):
            rk = np.linalg.matrix_rank(A[list(S)]) if S else 0
            total += (-1) ** size * (-1) ** (d - rk)
    return abs(total)


def strictly_realizable(Xa: np.ndarray, mask: np.ndarray) -> bool:
    """LP: exists g with x_i.g >= 1 on active nonzero rows and <= -1 on inactive rows."""
    nz = np.linalg.norm(Xa, axis=1) > 1e-12
    if np.any(~mask & ~nz):
        return False  # a zero row is always active
    s = np.where(mask, 1.0, -1.0)[nz]
    A = Xa[nz]
    if len(A) == 0:
        return True
    res = linprog(np.zeros(Xa.shape[1]), A_ub=-(s[:, None] * A), b_ub=-np.ones(len(A)),
                  bounds=[(None, None)] * Xa.shape[1], method="highs")
    return res.status == 0


def weakly_realizable(Xa: np.ndarray, mask: np.ndarray) -> bool:
    """LP: exists g with x_i.g >= 0 on active rows and x_i.g <= -1 on inactive rows (>= 0 rule)."""
    A = Xa
    b = np.where(mask, 0.0, -1.0)
    s = np.where(mask, 1.0, -1.0)
    res = linprog(np.zeros(Xa.shape[1]), A_ub=-(s[:, None] * A), b_ub=b,
                  bounds=[(None, None)] * Xa.shape[1], method="highs")
    return res.status == 0


def mask_set(P) -> set:
    return {m.tobytes() for m in np.asarray(P.masks).T}


@st.composite
def instances(draw, max_n=8, max_d=4):
    """Small data matrices: general position and degenerate families."""
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    bias = draw(st.booleans())
    family = draw(st.sampled_from(["gauss", "grid", "dup", "rankdef", "zero"]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    if family == "gauss":
        X = rng.standard_normal((n, d))
    elif family == "grid":
        X = rng.integers(-2, 3, size=(n, d)).astype(float)
    elif family == "dup":
        X = rng.integers(-3, 4, size=(n, d)).astype(float)
        for i in range(1, n):  # duplicates, positive and negative multiples
            if rng.random() < 0.5:
                X[i] = X[rng.integers(0, i)] * rng.choice([-2.0, -1.0, 1.0, 3.0])
    elif family == "rankdef":
        k = draw(st.integers(1, max(1, d - 1)))
        X = rng.integers(-2, 3, size=(n, k)).astype(float) @ rng.integers(-2, 3, size=(k, d))
        X = X.astype(float)
    else:
        X = rng.standard_normal((n, d))
        X[rng.random(n) < 0.4] = 0.0
    return X, bias


# ----------------------------------------------------------------------------- worked example
def test_worked_example_003():
    X = np.array([[2.0, 2.0], [3.0, 3.0], [1.0, 0.0]])
    P = cnn.enumerate_patterns(X)
    got = {tuple(int(v) for v in m) for m in P.masks.T}
    # Pilanci (2021 talk): D1 = I, D2 = diag(1,1,0), D3 = 0, D4 = diag(0,0,1)
    assert got == {(1, 1, 1), (1, 1, 0), (0, 0, 0), (0, 0, 1)}
    assert len(P) == 4 and P.exact and P.kind == "exact" and P.fingerprint is not None
    assert np.array_equal(X @ P.gates >= 0, P.masks)
    assert cnn.count_patterns(X) == 4


# ----------------------------------------------------------------------------- vs LP reference
@given(instances())
@settings(**SETTINGS)
def test_exact_equals_lp_reference(inst):
    X, bias = inst
    P = cnn.enumerate_patterns(X, bias=bias)
    L = cnn.enumerate_patterns_lp(X, bias=bias)
    assert mask_set(P) == mask_set(L)
    assert P == L


@given(instances(max_n=8, max_d=4))
@settings(**SETTINGS)
def test_witnesses_reproduce_patterns_with_margin(inst):
    X, bias = inst
    Xa = design(X, bias)
    P = cnn.enumerate_patterns(X, bias=bias)
    G = P.gates
    assert G.shape == (Xa.shape[1], len(P))
    V = Xa @ G
    assert np.array_equal(V >= 0, P.masks)
    nz = np.linalg.norm(Xa, axis=1) > 0
    if nz.any() and len(P) > 1:
        rel = np.abs(V[nz]) / (np.linalg.norm(Xa[nz], axis=1)[:, None] * np.linalg.norm(G, axis=0))
        assert rel.min() > 1e-9  # strictly inside the chambers, robustly
    # zero rows always active
    assert P.masks[~nz].all()


@given(instances(max_n=7, max_d=3))
@settings(**SETTINGS)
def test_every_pattern_strictly_realizable(inst):
    X, bias = inst
    Xa = design(X, bias)
    P = cnn.enumerate_patterns(X, bias=bias)
    for m in P.masks.T:
        assert strictly_realizable(Xa, m)


# ----------------------------------------------------------------------------- counts
@given(instances(max_n=7, max_d=4))
@settings(**SETTINGS)
def test_count_matches_whitney_and_enumeration(inst):
    X, bias = inst
    Xa = design(X, bias)
    c = cnn.count_patterns(X, bias=bias)
    assert c == whitney_count(Xa)
    assert c == len(cnn.enumerate_patterns(X, bias=bias))


@pytest.mark.parametrize("n,d", [(6, 2), (9, 3), (10, 4), (8, 5), (12, 6)])
def test_general_position_attains_cover_bound(n, d):
    X = np.random.default_rng(n * 10 + d).standard_normal((n, d))
    assert cnn.count_patterns(X) == cnn.cover_bound(n, d)
    assert len(cnn.enumerate_patterns(X)) == cnn.cover_bound(n, d)


def test_cover_bound_values():
    assert cnn.cover_bound(3, 2) == 6
    assert cnn.cover_bound(4, 4) == 16  # 2^n when r >= n
    assert cnn.cover_bound(200, 3) == 2 * (1 + 199 + math.comb(199, 2))
    assert isinstance(cnn.cover_bound(10**4, 6), int)
    assert cnn.cover_bound(5, 0) == 1 and cnn.cover_bound(0, 3) == 1
    with pytest.raises(InputError):
        cnn.cover_bound(-1, 2)


def test_rank4_count_degenerate_vs_whitney():
    rng = np.random.default_rng(7)
    X = rng.integers(-1, 2, size=(10, 4)).astype(float)
    assert cnn.count_patterns(X) == whitney_count(X) == len(cnn.enumerate_patterns(X))


# ----------------------------------------------------------------------------- degenerate families
@pytest.mark.slow
def test_integer_grid_with_bias_vs_lp():
    X = np.array([[a, b] for a in range(4) for b in range(3)], float)  # 12 points, collinear triples
    P = cnn.enumerate_patterns(X, bias=True)
    L = cnn.enumerate_patterns_lp(X, bias=True)
    assert P == L
    assert cnn.count_patterns(X, bias=True) == len(P)
    assert len(P) < cnn.cover_bound(12, 3)


def test_duplicate_antipodal_zero_rows():
    X = np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [-1.0, -2.0, 0.0], [0.0, 0.0, 0.0],
                  [0.0, 1.0, 1.0], [1.0, 0.0, -1.0]])
    P = cnn.enumerate_patterns(X)
    M = P.masks
    assert np.array_equal(M[0], M[1])          # positively parallel rows agree
    assert np.array_equal(M[0], ~M[2])         # antipodal rows disagree inside chambers
    assert M[3].all()                          # zero row always active
    assert P == cnn.enumerate_patterns_lp(X)


def test_rank_deficient_high_dimension():
    rng = np.random.default_rng(3)
    # an exactly rank-2 matrix in R^40 (small integers: the product is exact in float64)
    X = (rng.integers(-9, 10, (25, 2)) @ rng.integers(-9, 10, (2, 40))).astype(float)
    P = cnn.enumerate_patterns(X)
    assert P.exact and P.reason is None
    assert len(P) == 2 * len({tuple(np.sign(r[np.flatnonzero(r)[0]]) * r / np.gcd.reduce(r.astype(int)))
                              for r in X[:, :2].astype(int) if r.any()}) == cnn.count_patterns(X)
    assert np.array_equal(X @ P.gates >= 0, P.masks)


def test_rounded_low_rank_product_is_not_called_exact():
    """A float product A @ B of rank 2 has full exact rank: the tiny directions cannot be resolved."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((25, 2)) @ rng.standard_normal((2, 40))
    with pytest.warns(cnn.NotProvenWarning, match="exact rank"):
        P = cnn.enumerate_patterns(X)
    assert not P.exact and "rank" in P.reason
    assert np.array_equal(X @ P.gates >= 0, P.masks)  # what is returned is still right


def test_scale_invariance():
    rng = np.random.default_rng(4)
    X = rng.integers(-3, 4, size=(12, 3)).astype(float)
    base = cnn.enumerate_patterns(X)
    assert base.exact
    for s in (2.0 ** -40, 2.0 ** 40, 1e6):  # exact scalings keep the exactly degenerate arrangement
        P = cnn.enumerate_patterns(X * s)
        assert P.exact and mask_set(P) == mask_set(base)


def test_rounded_scaling_of_degenerate_data_is_honest():
    """X * 1e-6 rounds: collinear integer points become non-collinear by 1e-22 in float64."""
    rng = np.random.default_rng(4)
    X = rng.integers(-3, 4, size=(12, 3)).astype(float) * 1e-6
    true_count = cnn.count_patterns(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cnn.NotProvenWarning)
        P = cnn.enumerate_patterns(X)
    assert P.exact == (len(P) == true_count)
    assert np.array_equal(X @ P.gates >= 0, P.masks)


# ----------------------------------------------------------------------------- random gates
@pytest.mark.parametrize("family", ["gauss", "degenerate"])
def test_random_gate_patterns_all_found(family):
    rng = np.random.default_rng(11)
    if family == "gauss":
        X = rng.standard_normal((40, 3))
    else:
        X = rng.integers(-2, 3, size=(40, 3)).astype(float)
        X[:3] = 0.0
        X[5] = -X[6]
    P = cnn.enumerate_patterns(X, bias=True)
    S = cnn.sample_patterns(X, 10**5, seed=0, bias=True)
    # Gaussian gates avoid every hyperplane a.s., so no face patterns appear
    assert P.contains(S.masks).all()
    assert len(S) <= len(P)


# ----------------------------------------------------------------------------- faces
def test_include_faces_antipodal():
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    P = cnn.enumerate_patterns(X)
    F = cnn.enumerate_patterns(X, include_faces=True)
    chambers = {(1, 0, 1), (1, 0, 0), (0, 1, 1), (0, 1, 0)}
    assert {tuple(int(v) for v in m) for m in P.masks.T} == chambers
    assert {tuple(int(v) for v in m) for m in F.masks.T} == chambers | {(1, 1, 1), (1, 1, 0)}


@pytest.mark.parametrize("bias", [False, True])
def test_include_faces_vs_integer_gate_grid(bias):
    rng = np.random.default_rng(5)
    X = rng.integers(-1, 2, size=(7, 2)).astype(float)
    Xa = design(X, bias)
    F = cnn.enumerate_patterns(X, bias=bias, include_faces=True)
    grid = np.array(list(itertools.product(range(-4, 5), repeat=Xa.shape[1]))).T
    brute = {m.tobytes() for m in (Xa @ grid >= 0).T}
    assert brute <= mask_set(F)  # every >= 0 pattern of integer gates is found
    for m in F.masks.T:
        assert weakly_realizable(Xa, m)
    assert mask_set(cnn.enumerate_patterns(X, bias=bias)) <= mask_set(F)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [
    np.array([[1.0, np.nan]]), np.array([[np.inf, 1.0]]), np.array([1.0, 2.0]),
    np.zeros((0, 3)), np.array([["a", "b"]]), None,
])
def test_bad_input(bad):
    for f in (cnn.enumerate_patterns, cnn.count_patterns, cnn.enumerate_patterns_lp):
        with pytest.raises(InputError):
            f(bad)
    with pytest.raises(InputError):
        cnn.sample_patterns(bad, 10)


def test_bad_max_patterns():
    with pytest.raises(InputError):
        cnn.enumerate_patterns(np.eye(2), max_patterns=0)


def test_too_large_names_estimate():
    X = np.random.default_rng(0).standard_normal((60, 6))
    with pytest.raises(TooLargeError) as ei:
        cnn.enumerate_patterns(X, max_patterns=1000)
    err = ei.value
    assert err.estimate == cnn.cover_bound(60, 6)
    assert f"{err.estimate:,}" in str(err)
    assert "sample_patterns" in str(err)
    assert err.limit == 1000


def test_too_large_uses_exact_count_in_rank3():
    X = np.random.default_rng(1).standard_normal((30, 3))
    with pytest.raises(TooLargeError) as ei:
        cnn.enumerate_patterns(X, max_patterns=100)
    assert ei.value.estimate == cnn.count_patterns(X) == cnn.cover_bound(30, 3)


@pytest.mark.slow
def test_medium_instance_vs_cover_and_count():
    X = np.random.default_rng(2).standard_normal((40, 5))
    P = cnn.enumerate_patterns(X)
    assert len(P) == cnn.cover_bound(40, 5) == cnn.count_patterns(X)
    assert np.array_equal(X @ P.gates >= 0, P.masks)


def test_rank3_large_count_recursion_vs_closed_form_and_enumeration():
    from convexnn.arrangements.basis import _Reduced
    from convexnn.arrangements.count import _count_rank3

    pts = np.array([[a, b] for a in range(19) for b in range(17)], float)  # 323 points, collinear
    Xa = np.hstack([pts, np.ones((len(pts), 1))])
    red = _Reduced(Xa)
    closed = int(_count_rank3(red.Y, np.array([0, red.n_distinct]))[0])
    c = cnn.count_patterns(pts, bias=True)  # > 300 hyperplanes: deletion-restriction path
    assert c == closed
    assert c < cnn.cover_bound(len(pts), 3)
    Xg = np.random.default_rng(9).standard_normal((310, 3))
    assert cnn.count_patterns(Xg) == cnn.cover_bound(310, 3)


def test_progress_bar_does_not_change_result(capsys):
    X = np.random.default_rng(12).standard_normal((15, 4))
    assert cnn.enumerate_patterns(X, progress=True) == cnn.enumerate_patterns(X, progress=False)
    assert "enumerate_patterns" in capsys.readouterr().err


def test_too_large_by_memory():
    # rank 2: only 2k chambers, but k = n = 300000 rows make the masks 2k * n / 8 bytes ~ 22 GiB
    X = np.random.default_rng(0).standard_normal((300_000, 2))
    with pytest.raises(TooLargeError) as ei:
        cnn.enumerate_patterns(X)
    assert "GiB" in str(ei.value) and "max_bytes" in str(ei.value)
    # exact count: 2 per distinct line, all 300000 random lines distinct in float64
    P = cnn.count_patterns(X)
    assert P == 600_000
    assert ei.value.estimate >= P * (300_000 // 8 + 16)  # bytes of the result, before any allocation
