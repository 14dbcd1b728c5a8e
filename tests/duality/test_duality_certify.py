"""Certificates of global optimality: validity (weak duality), tightness, improving neurons, inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cx
from convexnn.arrangements.enumerate import enumerate_patterns
from convexnn.duality._common import cone_support, global_support_bound


def test_convex_optimum_is_certified(small):
    net = small["sol"].to_network()
    c = cx.certify(net, small["X"], small["y"], small["lam"], patterns=small["P"])
    assert c.exact and c.is_optimal
    assert 0 <= c.rel_gap <= 1e-6
    assert c.lower_bound <= small["sol"].value * (1 + 1e-9)
    assert "GLOBALLY OPTIMAL" in str(c)


def test_default_patterns_are_enumerated(small):
    net = small["sol"].to_network()
    c = cx.certify(net, small["X"], small["y"], small["lam"])
    assert c.exact and c.n_patterns == len(small["P"]) and c.is_optimal


def test_too_many_patterns_is_refused(small):
    net = small["sol"].to_network()
    with pytest.raises(cx.TooLargeError):
        cx.certify(net, small["X"], small["y"], small["lam"], max_patterns=10, method="enumerate")


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(4, 9), d=st.integers(1, 2),
       m=st.integers(1, 4), lam=st.floats(0.02, 2.0), refine=st.sampled_from([0, 2]))
def test_weak_duality_random_networks(seed, n, d, m, lam, refine, tight):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    P = enumerate_patterns(X, bias=True)
    p_convex = tight(cx.c_relu(X, y, P, lam)).value
    W1 = rng.standard_normal((d + 1, m))
    w2 = rng.standard_normal(m)
    c = cx.certify((W1, w2), X, y, lam, patterns=P, refine=refine)
    assert c.gap >= 0 and c.rel_gap >= 0
    assert c.lower_bound <= p_convex + 1e-8 * max(1.0, abs(p_convex))
    assert c.lower_bound <= c.primal
    # sampled patterns: never exact, still a valid bound
    Ps = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, 3)), bias=True)
    cs = cx.certify((W1, w2), X, y, lam, patterns=Ps)
    assert cs.exact is False
    assert cs.lower_bound <= p_convex + 1e-8 * max(1.0, abs(p_convex))


def test_cone_support_is_exact_and_an_upper_bound():
    import cvxpy as cp

    X = np.random.default_rng(7).standard_normal((7, 2))
    P = enumerate_patterns(X, bias=True)
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    rng = np.random.default_rng(1)
    v = rng.standard_normal(X.shape[0])
    cs = cone_support(Xa, P.masks, v)
    best = 0.0
    u = cp.Variable(Xa.shape[1])
    for i in range(len(P)):
        m = P.masks[:, i]
        for s in (1.0, -1.0):
            g = s * Xa.T @ (m * v)
            pr = cp.Problem(cp.Maximize(g @ u), [cp.multiply(2.0 * m - 1.0, Xa @ u) >= 0, cp.norm(u) <= 1])
            pr.solve(solver="CLARABEL")
            best = max(best, pr.value)
    assert cs.value >= best * (1 - 1e-7)
    assert cs.value <= best * (1 + 1e-6)
    assert global_support_bound(Xa, v) >= cs.value
    # the NNLS-free bound is valid too
    assert cone_support(Xa, P.masks, v, exact=False).value >= cs.value * (1 - 1e-12)


def _enumerated(seed: int, n_lo: int, n_hi: int):
    """A random program with every chamber: ``(rng, n, Xa, patterns, v)``, n in [n_lo, n_hi), d' = 2-4."""
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(n_lo, n_hi)), int(rng.integers(1, 4))
    X = rng.standard_normal((n, d))
    return rng, n, np.hstack([X, np.ones((n, 1))]), enumerate_patterns(X, bias=True), rng.standard_normal(n)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rtol=st.sampled_from([0.0, 1e-9, 1e-3, 0.5]))
def test_cone_support_with_any_multipliers_stays_a_valid_bound(seed, rtol):
    """Any rho >= 0 bounds a pair (Moreau); pairs left within 1 + rtol keep their rigorous bounds:
    the valid bound never drops below the exact s(v) and is at most 1 + rtol looser (plus rounding)."""
    rng, n, Xa, P, v = _enumerated(seed, 5, 12)
    exact = cone_support(Xa, P.masks, v)
    rho = np.abs(rng.standard_normal((n, 2 * len(P)))) * (rng.random((n, 2 * len(P))) < 0.3)
    cs = cone_support(Xa, P.masks, v, multipliers=rho, rtol=rtol)
    assert cs.valid >= exact.value
    assert cs.valid <= exact.valid * (1.0 + rtol) * (1.0 + 1e-12)
    # with the exact projection multipliers every pair is bounded without an NNLS at rtol > 0
    if rtol > 0:
        from convexnn.duality.cones import project_cone

        R = np.zeros((n, 2 * len(P)))
        for k in range(2 * len(P)):
            sgn, i = divmod(k, len(P))
            m = np.asarray(P.masks[:, i], dtype=bool)
            R[:, k] = project_cone(Xa, np.where(m, 1.0, -1.0), (1 - 2 * sgn) * (Xa.T @ np.where(m, v, 0.0)))[1]
        warm = cone_support(Xa, P.masks, v, multipliers=R, rtol=1e-6)
        assert warm.n_nnls <= 1 and warm.valid >= exact.value
        # the same multipliers as a projection cache, (rows, c) with c = (s * rho)_rows
        proj = {}
        for k in range(2 * len(P)):
            rows = np.flatnonzero(R[:, k] > 0)
            proj[k] = (rows, np.where(P.masks[rows, k % len(P)], 1.0, -1.0) * R[rows, k])
        cached = cone_support(Xa, P.masks, v, projections=proj, rtol=1e-6)
        assert cached.n_nnls <= 1 and cached.valid >= exact.value
        assert cached.valid == pytest.approx(warm.valid, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_multiplier_images_bound_every_pair_and_meet_it_at_the_projection(seed):
    """Moreau: ||sigma g + A^T rho|| >= ||Pi_K(sigma g)|| for every rho >= 0, with equality at the NNLS
    multipliers; the images of all pairs in one call equal their column-by-column definition."""
    from convexnn.duality.cones import multiplier_images, project_cone

    rng, n, Xa, P, v = _enumerated(seed, 4, 14)
    M = np.asarray(P.masks, dtype=bool)
    MM = np.concatenate([M, M], axis=1)
    sigma = np.repeat([1.0, -1.0], len(P))
    G = (Xa * v[:, None]).T @ MM.astype(float)
    rho = np.abs(rng.standard_normal(MM.shape)) * (rng.random(MM.shape) < 0.4)
    H = multiplier_images(Xa, MM, sigma, rho, G)
    exact = np.empty(2 * len(P))
    R = np.zeros_like(rho)
    for k in range(2 * len(P)):
        s = np.where(MM[:, k], 1.0, -1.0)
        g = sigma[k] * (Xa.T @ np.where(MM[:, k], v, 0.0))
        np.testing.assert_allclose(H[:, k], g + Xa.T @ (s * rho[:, k]), rtol=1e-12, atol=1e-12)
        q, R[:, k] = project_cone(Xa, s, g)
        exact[k] = np.linalg.norm(q)
    assert np.all(np.linalg.norm(H, axis=0) >= exact * (1 - 1e-12) - 1e-12)
    at = np.linalg.norm(multiplier_images(Xa, MM, sigma, R, G), axis=0)
    np.testing.assert_allclose(at, exact, rtol=1e-9, atol=1e-12)


def _v_shape(n: int = 16):
    x = np.linspace(-2, 2, n)
    return x[:, None], np.abs(x) - 1.0


def test_stuck_network_has_gap_and_improving_neuron(gd):
    """A width-1 network trained by GD to a stationary point of a V-shaped target is not optimal."""
    X, y = _v_shape()
    lam = 0.05
    W1, w2, gn = gd(X, y, np.array([[1.0], [0.1]]), np.array([1.0]), lam, lr=5e-3, iters=40000, gtol=1e-10)
    assert gn < 1e-7  # a stationary point
    c = cx.certify((W1, w2), X, y, lam)
    assert c.exact and not c.is_optimal
    assert c.gap > 1e-2 * c.primal
    assert c.improving_neuron is not None and c.s > lam
    assert c.improving_score > lam
    W1b, w2b = c.improve()
    assert W1b.shape[1] == 2
    new = cx.TwoLayerReLU(W1b, w2b, bias=True).objective(X, y, lam)
    t, pred_new = c.improvement_step()
    assert t > 0 and new < c.primal - 1e-6 and np.isclose(new, pred_new)
    # a small step along the improving neuron already helps (first-order argument)
    u, s = c.improving_neuron, c.improving_sign
    eps = 1e-4
    tiny = cx.TwoLayerReLU(np.hstack([W1, np.sqrt(eps) * u[:, None]]), np.append(w2, s * np.sqrt(eps)), bias=True)
    assert tiny.objective(X, y, lam) < c.primal
    assert "NOT OPTIMAL" in str(c)


@pytest.mark.slow
def test_improving_steps_reach_the_optimum(gd):
    """Repeatedly adding improving neurons (with GD in between) closes the gap."""
    X, y = _v_shape()
    lam = 0.05
    W1, w2, _ = gd(X, y, np.array([[1.0], [0.1]]), np.array([1.0]), lam, lr=5e-3, iters=20000)
    gaps = []
    for _ in range(2):
        c = cx.certify((W1, w2), X, y, lam)
        gaps.append(c.rel_gap)
        if c.improving_neuron is None:
            break
        W1, w2 = c.improve()
        W1, w2, _ = gd(X, y, W1, w2, lam, lr=5e-3, iters=20000)
    assert gaps[-1] < gaps[0]


@pytest.mark.slow
def test_torch_module_input(small):
    torch = pytest.importorskip("torch")
    net = small["sol"].to_network()
    mod = net.to_torch()
    c1 = cx.certify(mod, small["X"], small["y"], small["lam"], patterns=small["P"])
    c2 = cx.certify(net, small["X"], small["y"], small["lam"], patterns=small["P"])
    assert c1.is_optimal and np.isclose(c1.primal, c2.primal) and np.isclose(c1.lower_bound, c2.lower_bound)
    bad = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)).double()
    with torch.no_grad():
        bad[2].bias.fill_(0.5)
    with pytest.raises(cx.InputError, match="bias"):
        cx.certify(bad, small["X"], small["y"], small["lam"], patterns=small["P"])
    # a not-optimal torch network: the improved network is a TwoLayerReLU
    with torch.no_grad():
        bad[2].bias.zero_()
    c = cx.certify(bad, small["X"], small["y"], small["lam"], patterns=small["P"])
    if c.improving_neuron is not None:
        assert isinstance(c.improve(), cx.TwoLayerReLU)


def test_sampled_patterns_are_never_exact(small):
    rng = np.random.default_rng(0)
    Ps = cx.Patterns.from_gates(small["X"], rng.standard_normal((3, 500)), bias=True)
    net = small["sol"].to_network()
    c = cx.certify(net, small["X"], small["y"], small["lam"], patterns=Ps)
    assert c.exact is False
    assert c.lower_bound <= small["sol"].value
    assert c.estimate is not None
    assert "not a complete set" in str(c) and "not a bound" in str(c) and "valid over all chambers" in str(c)


def test_sampled_estimate_is_not_a_bound_but_lower_bound_is(tight):
    """Few sampled patterns underestimate s(v): trusting them overshoots p*, the reported bound does not."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((12, 2))
    y = rng.standard_normal(12)
    lam = 0.05
    p_convex = tight(cx.c_relu(X, y, enumerate_patterns(X, bias=True), lam)).value
    g = np.array([[1.0], [0.0], [-np.sort(X[:, 0])[-2]]])  # a gate activating only the two largest x_1
    Ps = cx.Patterns.from_gates(X, g, bias=True)
    c = cx.certify((np.zeros((3, 0)), np.zeros(0)), X, y, lam, patterns=Ps)
    assert not c.exact
    assert c.estimate > p_convex  # the sampled "bound" is wrong: not a proof
    assert c.lower_bound <= p_convex


def test_bad_inputs(small):
    X, y, lam, P = small["X"], small["y"], small["lam"], small["P"]
    with pytest.raises(cx.InputError):
        cx.certify((np.ones((5, 2)), np.ones(2)), X, y, lam)
    with pytest.raises(cx.InputError):
        cx.certify((np.ones((3, 2)), np.ones(3)), X, y, lam)
    with pytest.raises(cx.InputError):
        cx.certify((np.ones((3, 2)), np.ones(2)), X, y, -1.0)
    with pytest.raises(cx.InputError, match="bias"):
        cx.certify((np.ones((2, 2)), np.ones(2)), X, y, lam, patterns=P)  # network without bias
    g = cx.GatedReLU(P.gates[:, :2], np.ones((3, 2)), np.ones(2), bias=True)
    with pytest.raises(cx.InputError, match="GatedReLU"):
        cx.certify(g, X, y, lam, patterns=P)


def test_logistic_loss_certificate_is_valid_and_tight():
    """Logistic loss: the bound is below the C-ReLU optimum (its dual, strong duality) and tight."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((12, 2))
    y = np.sign(X[:, 0] * X[:, 1] + 0.1)
    lam = 0.2
    P = enumerate_patterns(X, bias=True)
    W1 = rng.standard_normal((3, 3))
    w2 = rng.standard_normal(3)
    c = cx.certify((W1, w2), X, y, lam, loss="logistic", patterns=P)
    assert 0 <= c.gap and c.lower_bound <= c.primal
    if c.improving_neuron is not None:
        W1b, w2b = c.improve()
        assert cx.TwoLayerReLU(W1b, w2b, bias=True).objective(X, y, lam, "logistic") < c.primal
    D = cx.dual_problem(cx.c_relu(X, y, P, lam, loss="logistic"))
    D.solve(solver="CLARABEL")
    assert c.lower_bound <= D.value + 1e-7 * abs(D.value)
    assert c.lower_bound >= D.value * (1 - 1e-4)  # refinement reaches the optimum
