"""One certificate type for every family: the gap / verdict math, and each family's lower bound checked
against an independent optimum (own CVXPY programs, closed forms, local searches)."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize

import convexnn as cx
from convexnn.certificate import accepts_derived_values
from convexnn.zoo import BatchNormReLU, Conv2LayerReLU, c_bn_relu, certify_bn, certify_conv


# ------------------------------------------------------------------ independent recomputation
def _check_derived(c: cx.Certificate) -> None:
    """gap, rel_gap, is_optimal and verdict recomputed from the fields with their definitions."""
    assert isinstance(c, cx.Certificate)
    P, D, e = float(c.primal), float(c.lower_bound), float(c.primal_error)
    gap = max(P + e - D, 0.0)
    assert c.gap == pytest.approx(gap, rel=1e-12, abs=1e-15 * max(abs(P), abs(D), 1.0))
    assert c.rel_gap == pytest.approx(gap / max(abs(P), 1e-300), rel=1e-12, abs=1e-15)
    assert c.rel_gap * max(abs(P), 1e-300) == pytest.approx(c.gap, rel=1e-15, abs=0)
    assert c.is_optimal == (c.rigorous and c.rel_gap <= c.rtol)
    v = c.verdict
    if c.is_optimal:
        assert v.startswith("GLOBALLY OPTIMAL (certified)")
    elif c.improving_neuron is not None:
        assert v.startswith("NOT OPTIMAL")
    else:
        assert v.startswith("NOT CERTIFIED: ")
    report = str(c)
    assert report == c.report() and report.splitlines()[-1].endswith(v)
    assert f"{c.lower_bound:.10g}" in report


# ------------------------------------------------------------------ the base type
@given(P=st.floats(-1e6, 1e6), d=st.floats(-1e3, 1e3), e=st.floats(0, 1e-3),
       rtol=st.floats(1e-9, 0.5), rigorous=st.booleans(), exact=st.booleans())
def test_base_math_matches_its_definition(P, d, e, rtol, rigorous, exact):
    c = cx.Certificate(primal=P, lower_bound=P - d, primal_error=e, lam=0.1, rtol=rtol, rigorous=rigorous,
                       exact=exact, bound_method="pattern-free bound")
    _check_derived(c)
    if c.is_optimal:
        assert c.verdict.endswith("" if exact else "by the pattern-free bound")
    if not rigorous:
        assert not c.is_optimal and "not a proof" in c.verdict


def test_verdicts_name_their_reason():
    base = dict(primal=1.0, lam=0.1, rtol=1e-6, exact=True)
    assert cx.Certificate(lower_bound=1.0 - 1e-9, **base).verdict == "GLOBALLY OPTIMAL (certified)"
    # a rounding bound of the objective counts against the gap
    assert not cx.Certificate(lower_bound=1.0 - 1e-9, primal_error=1e-5, **base).is_optimal
    c = cx.Certificate(lower_bound=0.5, primal_error=math.inf, note="ill-conditioned", **base)
    assert c.gap == math.inf and c.rel_gap == math.inf and not c.is_optimal
    assert c.verdict == ("NOT CERTIFIED: the rounding error of the objective cannot be bounded "
                         "(ill-conditioned)")
    c = cx.Certificate(lower_bound=0.5, improving_neuron=np.ones(2), **base)
    assert c.verdict == "NOT OPTIMAL: an improving neuron exists"
    c = cx.Certificate(lower_bound=1.0, rigorous=False, note="sampled patterns only", **base)
    assert c.gap == 0.0 and not c.is_optimal
    assert c.verdict == "NOT CERTIFIED: not a proof (sampled patterns only)"
    assert cx.Certificate(lower_bound=0.5, **base).verdict == "NOT CERTIFIED: gap above tolerance"
    # a lower bound above the objective (rounding) is a zero gap, never a negative one
    assert cx.Certificate(lower_bound=1.0 + 1e-15, **base).gap == 0.0


def test_given_derived_values_are_checked():
    @accepts_derived_values
    class C(cx.Certificate):
        pass

    c = C(primal=2.0, lower_bound=1.0, lam=0.1, gap=1.0, rel_gap=0.5, is_optimal=False)
    assert c.gap == 1.0 and c.rel_gap == 0.5
    with pytest.raises(ValueError, match="gap"):
        C(primal=2.0, lower_bound=1.0, primal_error=0.1, lam=0.1, gap=1.0)
    with pytest.raises(ValueError, match="is_optimal"):
        C(primal=2.0, lower_bound=1.0, lam=0.1, is_optimal=True)


# ------------------------------------------------------------------ an independent two-layer optimum
def _patterns_1d(x: np.ndarray) -> np.ndarray:
    """Every chamber of the arrangement {(a, b): a x_i + b = 0} in R^2 (1-D data with bias), by thresholds."""
    s = np.sort(x)
    cuts = np.concatenate([[s[0] - 1.0], (s[1:] + s[:-1]) / 2, [s[-1] + 1.0]])
    masks = {tuple(x >= t) for t in cuts} | {tuple(x <= t) for t in cuts}
    masks.discard(tuple(np.zeros(len(x), bool)))
    return np.array(sorted(masks), dtype=float).T  # (n, P)


def _crelu_by_hand(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The C-ReLU program (Pilanci & Ergen, ICML 2020) written directly in CVXPY: optimum and a network attaining it."""
    Xa = np.column_stack([x, np.ones_like(x)])
    M = _patterns_1d(x)
    S = 2 * M - 1
    V, W = cp.Variable((2, M.shape[1])), cp.Variable((2, M.shape[1]))
    pred = cp.sum(cp.multiply(M, Xa @ (V - W)), axis=1)
    obj = 0.5 * cp.sum_squares(pred - y) + lam * (cp.sum(cp.norm(V, axis=0)) + cp.sum(cp.norm(W, axis=0)))
    prob = cp.Problem(cp.Minimize(obj), [cp.multiply(S, Xa @ V) >= 0, cp.multiply(S, Xa @ W) >= 0])
    prob.solve(solver=cp.CLARABEL)
    cols, outs = [], []
    for B, sign in ((V.value, 1.0), (W.value, -1.0)):
        for j in range(B.shape[1]):
            r = float(np.linalg.norm(B[:, j]))
            if r > 1e-7 * max(1.0, np.abs(B).max()):
                cols.append(B[:, j] / math.sqrt(r))
                outs.append(sign * math.sqrt(r))
    return float(prob.value), np.array(cols).T, np.array(outs)


def _data_1d(n: int = 7, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, n))
    return x, np.abs(x) - 0.5 + 0.1 * rng.standard_normal(n)


def test_two_layer_certificate_against_an_independent_optimum():
    x, y = _data_1d()
    lam = 0.1
    opt, W1, w2 = _crelu_by_hand(x, y, lam)
    X = x[:, None]
    cert = cx.certify((W1, w2), X, y, lam, rtol=1e-5)
    assert type(cert) is cx.TwoLayerCertificate and isinstance(cert, cx.Certificate)
    _check_derived(cert)
    assert cert.primal == pytest.approx(opt, rel=1e-6)  # the hand-mapped optimum
    assert cert.exact and cert.is_optimal, str(cert)
    assert cert.lower_bound <= opt * (1 + 1e-7)  # weak duality (Clarabel's accuracy)
    worse = cx.certify((1.1 * W1, w2), X, y, lam)
    _check_derived(worse)
    assert not worse.is_optimal and worse.lower_bound <= opt * (1 + 1e-7) and opt <= worse.primal


def test_two_layer_branch_and_bound_certificate_is_the_same_type():
    x, y = _data_1d()
    _, W1, w2 = _crelu_by_hand(x, y, 0.1)
    cert = cx.certify((W1, w2), x[:, None], y, 0.1, method="bab", rtol=1e-4, time_limit=20.0)
    assert cert.method == "bab" and isinstance(cert, cx.Certificate)
    _check_derived(cert)


def test_conv_certificate_against_the_same_independent_optimum():
    """One patch covering the signal: a CNN is a two-layer network, so the hand-written C-ReLU optimum applies."""
    x, y = _data_1d(seed=5)
    lam = 0.1
    opt, W1, w2 = _crelu_by_hand(x, y, lam)
    X = x[:, None]
    net = Conv2LayerReLU(W1, w2, patch_shape=1, bias=True)
    assert net.objective(X, y, lam) == pytest.approx(opt, rel=1e-6)
    cert = certify_conv(net, X, y, lam, rtol=1e-5)
    assert type(cert) is cx.ConvCertificate and isinstance(cert, cx.Certificate)
    _check_derived(cert)
    assert cert.exact and cert.is_optimal, str(cert)
    assert cert.lower_bound <= opt * (1 + 1e-7) and cert.primal_error > 0
    bad = certify_conv(Conv2LayerReLU(0.8 * W1, w2, patch_shape=1, bias=True), X, y, lam)
    _check_derived(bad)
    assert not bad.is_optimal and bad.lower_bound <= opt * (1 + 1e-7)
    with pytest.raises(cx.InputError, match="rtol"):
        certify_conv(net, X, y, lam, rtol=0.0)


def test_batchnorm_certificate_against_a_group_lasso(bn_two_group_lasso):
    """d = 1 without bias: every BN neuron is a normalized (x)_+ or (-x)_+ plus a shift, so the BN
    problem is a two-group lasso (Ergen et al., ICLR 2022), solved here directly."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(10)
    y = np.sin(2 * x)
    lam = 0.05
    lasso_value = bn_two_group_lasso(x, y, lam)
    X = x[:, None]
    P = cx.enumerate_patterns(X, bias=False)
    net = c_bn_relu(X, y, P, lam).solve().to_network()
    cert = certify_bn(net, X, y, lam, patterns=P, rtol=1e-5)
    assert type(cert) is cx.BNCertificate and isinstance(cert, cx.Certificate)
    _check_derived(cert)
    assert cert.is_optimal, str(cert)
    assert cert.lower_bound <= lasso_value * (1 + 1e-7) <= cert.primal * (1 + 2e-7)
    bad = BatchNormReLU(net.W1, 1.5 * net.gamma, net.alpha, net.w2, bias=False)
    cb = certify_bn(bad, X, y, lam, patterns=P)
    _check_derived(cb)
    assert not cb.is_optimal and cb.lower_bound <= lasso_value * (1 + 1e-7)


# ------------------------------------------------------------------ three layers
def _three_layer_local_search(X: np.ndarray, y: np.ndarray, beta: float, K: int, m1: int, starts: int) -> float:
    """Best objective (4) found by L-BFGS from random starts (first layers kept in the Frobenius unit ball)."""
    d = X.shape[1]
    rng = np.random.default_rng(0)
    sizes = (K * d * m1, K * m1, K)

    def net(p: np.ndarray) -> cx.ThreeLayerReLU:
        A = p[:sizes[0]].reshape(K, d, m1)
        A = A / np.maximum(1.0, np.linalg.norm(A, axis=(1, 2)))[:, None, None]
        return cx.ThreeLayerReLU(A, p[sizes[0]:sizes[0] + sizes[1]].reshape(K, m1), p[-K:])

    best = math.inf
    for _ in range(starts):
        r = minimize(lambda p: net(p).objective(X, y, beta), rng.standard_normal(sum(sizes)), method="L-BFGS-B")
        best = min(best, net(r.x).objective(X, y, beta))
    return best


def test_three_layer_certificate_against_an_independent_dual_value_and_local_searches():
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((4, 2)), rng.standard_normal(4)
    beta = 0.2
    f = cx.three_layer(X, y, cx.enumerate_patterns(X, bias=False), "complete", beta, m1=2)
    sol = f.solve()
    net = sol.to_network()
    cert = cx.three_layer_gap(f, net, rtol=1e-5)
    assert type(cert) is cx.ThreeLayerCertificate and isinstance(cert, cx.Certificate)
    _check_derived(cert)
    assert cert.rigorous and cert.exact and cert.is_optimal, str(cert)
    assert cert.primal == net.objective(X, y, beta) and 0 < cert.primal_error < 1e-10
    # the old names are read-only aliases of the canonical fields
    assert cert.dual == cert.lower_bound and cert.beta == cert.lam == beta
    with pytest.raises(AttributeError):
        cert.dual = 0.0
    # the dual point is a multiple c u of u = y - fit with c <= beta / M, and the bound is its dual
    # value (squared loss: <p, y> - ||p||^2 / 2) less a rounding bound
    u, p = y - net.predict(X), cert.dual_point
    c = float(p @ u / (u @ u))
    np.testing.assert_allclose(p, c * u, rtol=1e-15, atol=0)
    assert 0 < c <= beta / cert.dual_constraint
    value = float(p @ y - 0.5 * p @ p)
    assert cert.lower_bound <= value and cert.lower_bound == pytest.approx(value, rel=1e-12)
    # lower bound <= optimum (the best of local searches and the program) <= primal
    best = _three_layer_local_search(X, y, beta, K=2, m1=2, starts=3)
    assert cert.lower_bound <= min(best, sol.value)
    assert cert.lower_bound <= sol.value <= cert.primal * (1 + 1e-7)
    bad = cx.three_layer_gap(f, cx.ThreeLayerReLU(np.ones((1, 2, 2)) / 2, np.ones((1, 2)), np.ones(1)))
    _check_derived(bad)
    assert bad.rigorous and not bad.is_optimal and bad.lower_bound <= min(best, sol.value)
    # a convex solution is not a network (its cone constraints hold to the solver's accuracy): no proof
    c0 = cx.three_layer_gap(f)
    _check_derived(c0)
    assert not c0.rigorous and not c0.is_optimal and "not a proof" in c0.verdict and "global" in c0.note
    assert c0.lower_bound <= sol.value
    with pytest.raises(cx.InputError, match="rtol"):
        cx.three_layer_gap(f, rtol=1.5)
    with pytest.raises(cx.InputError, match="bias"):
        cx.three_layer_gap(f, cx.ThreeLayerReLU(np.ones((1, 3, 2)) / 3, np.ones((1, 2)), np.ones(1), bias=True))


def test_three_layer_certificate_over_sampled_blocks_is_not_a_proof():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((6, 2)), rng.standard_normal(6)
    combos, second = cx.sample_combos(X, 2, 15, seed=0)
    f = cx.three_layer(X, y, combos, second, 0.1, m1=2)
    cert = cx.three_layer_gap(f, f.solve().to_network())
    _check_derived(cert)
    assert not cert.exact and not cert.rigorous and not cert.is_optimal
    assert "relative to the sampled patterns" in cert.verdict


def test_saved_two_layer_certificate_keeps_its_derived_values(tmp_path):
    x, y = _data_1d()
    cert = cx.certify((np.array([[1.0, -0.5], [0.2, 0.1]]), np.array([1.0, -1.0])), x[:, None], y, 0.1)
    back = cx.load(cx.save(cert, tmp_path / "c"))
    assert isinstance(back, cx.TwoLayerCertificate)
    for name in ("primal", "primal_error", "lower_bound", "gap", "rel_gap", "is_optimal", "verdict"):
        assert getattr(back, name) == getattr(cert, name), name
