"""The semidefinite relaxation of s(v): proven bounds checked against enumeration and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cx
from convexnn.arrangements.patterns import design_matrix
from convexnn.duality._common import cone_support, network_objective
from convexnn.duality.sdp import _verified_bound, sdp_dual_norm_bound, sdp_lower_bound
from convexnn.duality.bounds import row_norm_bounds
from convexnn.errors import InputError, TooLargeError
from convexnn.formulations.losses import get_loss
from convexnn.rounding import positive_definite_exact

TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def exact_s(Xa: np.ndarray, v: np.ndarray) -> float:
    """s(v) over all enumerated chambers of Xa (no extra bias column)."""
    P = cx.enumerate_patterns(Xa, bias=False)
    return cone_support(Xa, P.masks, v).value


@st.composite
def instances(draw):
    seed = draw(st.integers(0, 10**6))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 12))
    d = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    kind = draw(st.sampled_from(["random", "duplicates", "scaled", "grid", "one_sign"]))
    X = rng.standard_normal((n, d))
    v = rng.standard_normal(n)
    if kind == "duplicates":
        X[n // 2:] = X[: n - n // 2]
    elif kind == "scaled":
        X = X * np.logspace(-3, 3, d)[None, :]
        v = v * 10.0 ** rng.integers(-6, 7)
    elif kind == "grid":
        X = rng.integers(-2, 3, size=(n, d)).astype(float)
    elif kind == "one_sign":
        v = np.abs(v)
    return design_matrix(X, bias), v


# --------------------------------------------------------------------------- exact arithmetic
def test_positive_definite_exact_decides_exactly():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 12, 33):
        G = rng.standard_normal((m, m))
        A = G @ G.T
        lmin = float(np.linalg.eigvalsh(A)[0])
        assert positive_definite_exact(A + (1e-6 - lmin) * np.eye(m))
        assert not positive_definite_exact(A - (1e-6 + lmin) * np.eye(m))
    # singular PSD is not PD; the smallest perturbation of either sign decides
    assert not positive_definite_exact(np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert positive_definite_exact(np.array([[1.0, 1.0], [1.0, 1.0 + 2.0 ** -52]]))
    assert not positive_definite_exact(np.array([[1.0, 1.0], [1.0, 1.0 - 2.0 ** -53]]))
    assert positive_definite_exact(np.diag([1.0, 2.0 ** -1074]))  # subnormal pivot, exact
    assert not positive_definite_exact(np.array([[np.nan]])) and not positive_definite_exact(np.ones((2, 3)))


# --------------------------------------------------------------------------- s(v) bound
@settings(max_examples=30, deadline=None)
@given(instances())
def test_bound_is_above_the_enumerated_value(inst):
    Xa, v = inst
    s = exact_s(Xa, v)
    b = sdp_dual_norm_bound(Xa, v)
    scale = float(np.abs(v) @ np.linalg.norm(Xa, axis=1)) + 1e-300
    assert b.upper >= s - 1e-9 * scale  # the enumeration value is an NNLS value (rounding 1e-9)
    assert b.upper >= max(b.per_sign) and b.upper <= scale * (1 + 1e-6)  # below the pattern-free bound
    # the proof loses (almost) nothing against the solver's own value
    for proven, relaxed in zip(b.per_sign, b.relaxed):
        assert proven <= relaxed + 1e-6 * scale


@settings(max_examples=25, deadline=None)
@given(instances(), st.integers(0, 10**6))
def test_any_multipliers_give_a_valid_bound(inst, seed):
    """The verification is a proof by itself: garbage multipliers only loosen the bound."""
    Xa, v = inst
    n = Xa.shape[0]
    rng = np.random.default_rng(seed)
    s = exact_s(Xa, v)
    R = row_norm_bounds(Xa)
    mult = {"e": rng.standard_normal(n) * 3, "z": rng.standard_normal(n), "zeta": rng.standard_normal(n),
            "g": float(rng.standard_normal()), "tau": float(rng.standard_normal())}
    if seed % 3 == 0:
        mult["e"][0] = np.nan
    scale = float(np.abs(v) @ np.linalg.norm(Xa, axis=1)) + 1e-300
    bounds = [_verified_bound(Xa, R, sg * v, mult) for sg in (1.0, -1.0)]
    assert max(bounds) >= s - 1e-9 * scale


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 4), st.integers(1, 5))
def test_one_direction_is_exact(seed, d, k):
    """Rows along one direction x, weights of one sign: s(v) = |sum v_j c_j| ||x|| (closed form)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(d)
    c = rng.uniform(0.5, 2.0, size=k)
    Xa = c[:, None] * x[None, :]
    v = rng.uniform(0.1, 1.0, size=k) * rng.choice([-1.0, 1.0])
    b = sdp_dual_norm_bound(Xa, v)
    exact = abs(float(v @ c)) * float(np.linalg.norm(x))
    assert b.upper >= exact * (1 - 1e-12)
    assert b.upper == pytest.approx(exact, rel=1e-6)


@settings(max_examples=15, deadline=None)
@given(instances(), st.integers(-30, 30))
def test_positive_homogeneity_and_rotation_invariance(inst, k):
    Xa, v = inst
    b = sdp_dual_norm_bound(Xa, v)
    # scaling v by a power of two scales the proven bound exactly (the solve is the same)
    assert sdp_dual_norm_bound(Xa, v * 2.0 ** k).upper == b.upper * 2.0 ** k
    # the ball is invariant under rotations u -> Q u: so is the relaxation (up to solver accuracy)
    Q, _ = np.linalg.qr(np.random.default_rng(k + 100).standard_normal((Xa.shape[1],) * 2))
    bq = sdp_dual_norm_bound(Xa @ Q, v)
    scale = float(np.abs(v) @ np.linalg.norm(Xa, axis=1)) + 1e-300
    assert bq.upper == pytest.approx(b.upper, abs=1e-6 * scale)


def test_bound_bad_input():
    X = np.ones((3, 2))
    with pytest.raises(InputError):
        sdp_dual_norm_bound(X, np.ones(4))
    with pytest.raises(InputError):
        sdp_dual_norm_bound(X, np.array([1.0, np.nan, 0.0]))
    with pytest.raises(InputError, match="time_limit"):
        sdp_dual_norm_bound(X, np.ones(3), time_limit=0)
    assert sdp_dual_norm_bound(X, np.zeros(3)).upper == 0.0
    with pytest.raises(TooLargeError, match="nonzeros"):
        sdp_dual_norm_bound(X, np.ones(3), max_nonzeros=10)


# --------------------------------------------------------------------------- lower bound on training
def _enumerated_optimum(X, y, lam, loss="squared", bias=True):
    P = cx.enumerate_patterns(X, bias=bias)
    return cx.c_relu(X, y, P, lam, loss=loss, bias=bias).solve("CLARABEL", **TIGHT).value


@pytest.mark.parametrize("bias", [True, False])
def test_lower_bound_is_below_the_global_optimum(bias):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((14, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    lam = 0.2
    opt = _enumerated_optimum(X, y, lam, bias=bias)
    res = sdp_lower_bound(X, y, lam, bias=bias)
    assert 0.0 < res.lower_bound <= opt * (1 + 1e-8)
    # the returned point is dual feasible over every chamber and carries the bound
    Xa = design_matrix(X, bias)
    assert exact_s(Xa, res.dual_point) <= lam * (1 + 1e-9)
    assert float(get_loss("squared").dual_value(res.dual_point, y)) >= res.lower_bound
    assert res.s_upper <= lam * (1 + 1e-4) and res.status == "optimal"
    assert res.compile_time >= 0 and res.solve_time >= 0 and res.time >= res.solve_time
    assert "SDPLowerBound" in str(res)


def test_lower_bound_below_trained_networks_and_sign_restriction():
    """Weak duality against networks a user trains (L-BFGS restarts); the sign-restricted program is
    a restriction of the free one (its relaxed value is not larger)."""
    from convexnn.networks.two_layer import descend

    X, y = cx.load_dataset("diabetes", n_features=7)
    X, y = X[:150], y[:150]
    lam = 1.0
    Xa = design_matrix(X, True)
    L = get_loss("squared")
    best = np.inf
    for seed in range(3):
        rng = np.random.default_rng(seed)
        W1, w2, _ = descend(Xa, y, 0.5 * rng.standard_normal((8, 12)), 0.5 * rng.standard_normal(12), lam, L,
                            max_iter=500)
        best = min(best, network_objective(Xa, y, W1, w2, lam, L))
    free = sdp_lower_bound(X, y, lam)
    v = y - np.maximum(Xa @ W1, 0.0) @ w2
    signed = sdp_lower_bound(X, y, lam, signs=np.sign(v))
    assert 0 < free.lower_bound <= best and 0 < signed.lower_bound <= best
    assert signed.relaxed_value <= free.relaxed_value * (1 + 1e-6) + 1e-6


def test_lower_bound_logistic():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((14, 2))
    y = np.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0)
    lam = 0.1
    opt = _enumerated_optimum(X, y, lam, loss="logistic")
    res = sdp_lower_bound(X, y, lam, loss="logistic")
    assert 0.0 < res.lower_bound <= opt * (1 + 1e-8)
    assert np.all(y * res.dual_point >= 0) and np.all(y * res.dual_point <= 1)


def test_lower_bound_bad_input():
    X = np.random.default_rng(0).standard_normal((10, 2))
    y = X[:, 0]
    with pytest.raises(InputError):
        sdp_lower_bound(X, y, 0.0)
    with pytest.raises(InputError):
        sdp_lower_bound(X, y[:5], 1.0)
    with pytest.raises(InputError):
        sdp_lower_bound(np.where(X > 1, np.nan, X), y, 1.0)
    with pytest.raises(InputError, match="signs"):
        sdp_lower_bound(X, y, 1.0, signs=np.ones(3))
    with pytest.raises(InputError, match="time_limit"):
        sdp_lower_bound(X, y, 1.0, time_limit=-1)
    with pytest.raises(TooLargeError, match="nonzeros") as e:
        sdp_lower_bound(X, y, 1.0, max_nonzeros=100)
    assert e.value.estimate > 100 and e.value.limit == 100


# --------------------------------------------------------------------------- use in certificates
def test_best_mixture_is_feasible_and_contains_the_endpoints():
    from convexnn.duality.bounds import best_mixture, feasible_dual_value

    rng = np.random.default_rng(5)
    X = rng.standard_normal((12, 2))
    y = X[:, 0] - X[:, 1] ** 2
    Xa = design_matrix(X, True)
    L = get_loss("squared")
    lam = 0.3
    norms = row_norm_bounds(Xa)
    a, b = y - 0.5 * X[:, 0], rng.standard_normal(12)
    Sa, Sb = exact_s(Xa, a) * (1 + 1e-9), exact_s(Xa, b) * (1 + 1e-9)
    val, p = best_mixture(L, a, Sa, b, Sb, y, lam, norms)
    assert exact_s(Xa, p) <= lam * (1 + 1e-9)  # feasible over every chamber
    assert float(L.dual_value(p, y)) >= val
    ends = [feasible_dual_value(L, w / S, y, lam, 1.0 + 1e-15, norms)[0] for w, S in ((a, Sa), (b, Sb))]
    assert val >= max(ends) - 1e-9 * abs(max(ends))
    # a candidate without a positive finite bound is left out: the other alone
    assert best_mixture(L, a, 0.0, b, Sb, y, lam, norms)[0] == pytest.approx(ends[1], rel=1e-12)
    assert best_mixture(L, a, 0.0, b, np.inf, y, lam, norms)[0] == -np.inf


def test_certify_and_solve_global_with_the_relaxation():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((20, 2))
    y = np.sin(3 * X[:, 0]) + 0.3 * X[:, 1]
    lam = 0.05
    opt = _enumerated_optimum(X, y, lam)
    res = cx.solve_global(X, y, lam, rtol=1e-6, n_init_patterns=10, sdp=True)
    assert res.certified and res.lower_bound <= opt * (1 + 1e-8)
    assert res.objective == pytest.approx(opt, rel=1e-5)
    W1, w2 = 0.5 * rng.standard_normal((3, 4)), 0.5 * rng.standard_normal(4)
    c = cx.certify((W1, w2), X, y, lam, method="bab", rtol=1e-4, sdp=True, time_limit=10)
    assert c.sdp is not None and c.sdp.lower_bound <= c.lower_bound <= opt * (1 + 1e-8)
    assert c.bound_method.endswith("over all chambers")
    c0 = cx.certify((W1, w2), X, y, lam, method="bab", rtol=1e-4, sdp=False, time_limit=10)
    assert c0.sdp is None and c0.bound_method == "branch and bound over all chambers"
    for bad in ("yes", 1):
        with pytest.raises(InputError, match="sdp"):
            cx.certify((W1, w2), X, y, lam, method="bab", sdp=bad)
        with pytest.raises(InputError, match="sdp"):
            cx.solve_global(X, y, lam, sdp=bad)


def test_relaxation_joins_by_default_at_large_input_dimension():
    X, y = cx.load_dataset("diabetes", n_features=7)
    X, y = X[:120], y[:120]
    rng = np.random.default_rng(0)
    W1, w2 = 0.3 * rng.standard_normal((8, 6)), 0.3 * rng.standard_normal(6)
    c = cx.certify((W1, w2), X, y, 1.0, method="bab", time_limit=4.0, rtol=1e-3)
    assert c.sdp is not None and c.lower_bound >= c.sdp.lower_bound
    Xa = design_matrix(X, True)
    assert c.lower_bound <= network_objective(Xa, y, W1, w2, 1.0, get_loss("squared"))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6), st.integers(2, 3), st.integers(2, 6))
def test_symmetric_data_within_sqrt_pi_over_two(seed, d, m):
    r"""Rows x_j and -x_j with one positive weight each: s(v) = max_u sum_j v_j |x_j^T u| (an NP-hard
    2->1 matrix norm in general), and the relaxation is within sqrt(pi/2) of it: for u ~ N(0, U),
    E|x^T u| = sqrt(2/pi) sqrt(x^T U x) and E||u|| <= sqrt(tr U) <= 1 (Nesterov's pi/2 argument)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d))
    Xa = np.vstack([X, -X])
    w = rng.uniform(0.2, 2.0, size=m)
    v = np.concatenate([w, w])
    s = exact_s(Xa, v)
    b = sdp_dual_norm_bound(Xa, v)
    assert s * (1 - 1e-9) <= b.upper <= np.sqrt(np.pi / 2) * s * (1 + 1e-6)
    assert b.per_sign[1] <= 1e-6 * s  # -sum_j v_j |t_j| <= 0, and the relaxation sees it


@pytest.mark.parametrize("scale", [1e9, 1e-6])
def test_badly_scaled_data_never_give_a_bound_above_a_network(scale):
    """Timestamps next to small features: the proven bound stays below the objective of a network
    (trained on the well-scaled feature, the timestamp's weights zero), evaluated directly."""
    from convexnn.networks.two_layer import descend

    rng = np.random.default_rng(4)
    X = np.column_stack([1.7e9 + scale * rng.standard_normal(12), rng.standard_normal(12)])
    y = np.sin(2 * X[:, 1]) + 0.1 * rng.standard_normal(12)
    lam = 0.1
    L = get_loss("squared")
    Xa1 = design_matrix(X[:, 1:], True)
    W1, w2, _ = descend(Xa1, y, 0.5 * rng.standard_normal((2, 6)), 0.5 * rng.standard_normal(6), lam, L, max_iter=2000)
    W1full = np.vstack([np.zeros((1, 6)), W1])  # the timestamp column unused
    obj = network_objective(design_matrix(X, True), y, W1full, w2, lam, L)
    assert obj < 0.5 * float(y @ y)  # a real network, better than zero
    res = sdp_lower_bound(X, y, lam)
    assert res.lower_bound <= obj
    # with the data centred the problem is better conditioned, and the bound is a proof there too
    Xc = X - X.mean(axis=0)
    assert sdp_lower_bound(Xc, y, lam).lower_bound <= 0.5 * float(y @ y)


def test_certificate_with_the_relaxation_is_reported_and_saved(tmp_path):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((20, 2))
    y = np.sin(3 * X[:, 0])
    W1, w2 = 0.5 * rng.standard_normal((3, 4)), 0.5 * rng.standard_normal(4)
    c = cx.certify((W1, w2), X, y, 0.05, method="bab", rtol=1e-4, sdp=True, time_limit=5)
    assert "semidefinite relaxation" in c.report()
    path = cx.save(c, tmp_path / "cert.npz")
    back = cx.load(path)
    assert back.sdp.lower_bound == c.sdp.lower_bound and np.array_equal(back.sdp.dual_point, c.sdp.dual_point)
    assert back.lower_bound == c.lower_bound and back.bound_method == c.bound_method
