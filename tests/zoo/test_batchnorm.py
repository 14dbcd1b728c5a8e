"""Two-layer ReLU networks with batch normalization (Ergen et al., ICLR 2022)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import convexnn as cx
from convexnn.zoo import BatchNormReLU, bn_from_network, c_bn_relu


def _data(n=10, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.abs(X[:, 0]) - 0.5 * X[:, -1] + 0.1 * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("bias,loss", [(False, "squared"), (True, "squared"), (True, "hinge")])
def test_convex_optimum_equals_mapped_network(bias, loss):
    X, y = _data(seed=1)
    if loss == "hinge":
        y = np.sign(y - np.median(y) + 1e-9)
    P = cx.enumerate_patterns(X, bias=bias)
    lam = 0.1
    sol = c_bn_relu(X, y, P, lam, loss=loss).solve()
    net = sol.to_network()
    assert sol.constraint_violation < 1e-7
    assert net.objective(X, y, lam, loss) == pytest.approx(sol.value, rel=1e-6)
    assert np.allclose(net.predict(X), sol.fit, atol=1e-7)


def test_one_dimensional_case_is_a_two_group_lasso(bn_two_group_lasso):
    """d = 1, no bias: BN is scale invariant, so every neuron is (x)_+ or (-x)_+ normalized."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(12)
    y = np.sin(2 * x)
    lam = 0.05
    X = x[:, None]
    sol = c_bn_relu(X, y, cx.enumerate_patterns(X), lam).solve()
    assert sol.value == pytest.approx(bn_two_group_lasso(x, y, lam), rel=1e-6)


def test_whitened_per_pattern_formulation_agrees():
    """The program written with the left singular vectors U_i of P D_i X_a, one pattern at a time."""
    X, y = _data(n=8, seed=3)
    P = cx.enumerate_patterns(X, bias=True)
    Xa = np.hstack([X, np.ones((8, 1))])
    n, d = Xa.shape
    Pc = np.eye(n) - np.ones((n, n)) / n
    lam = 0.2
    fit, reg, cons = 0, 0, []
    for mask in P.masks.T:
        A = Pc @ (mask[:, None] * Xa)
        U, sv, Vt = np.linalg.svd(A)
        r = int(np.sum(sv > 1e-10 * max(sv.max(), 1e-300)))
        Nul = Vt[r:].T
        S = np.where(mask, 1.0, -1.0)
        for _ in range(2):  # the two signs
            q, s = cp.Variable(r), cp.Variable()
            g = Vt[:r].T @ cp.multiply(1.0 / sv[:r], q) if r else 0
            if Nul.shape[1]:
                g = g + Nul @ cp.Variable(Nul.shape[1])
            cons.append(cp.multiply(S, Xa @ g) >= 0)
            sign = 1.0 if _ == 0 else -1.0
            fit = fit + sign * (U[:, :r] @ q if r else 0) + s
            reg = reg + cp.norm(cp.hstack([q, s]) if r else s, 2)
    ref = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - y) + lam * reg), cons)
    ref.solve(solver=cp.CLARABEL)
    assert c_bn_relu(X, y, P, lam).solve().value == pytest.approx(ref.value, rel=1e-6)


def test_dense_dictionary_upper_bound_converges():
    """d = 1 with bias: neurons are parametrized by an angle only (BN is scale invariant)."""
    X, y = _data(n=9, d=1, seed=4)
    lam = 0.1
    th = np.linspace(0, 2 * np.pi, 1500, endpoint=False)
    Xa = np.hstack([X, np.ones((9, 1))])
    Hd = np.maximum(Xa @ np.vstack([np.cos(th), np.sin(th)]), 0)
    C = Hd - Hd.mean(axis=0)
    nrm = np.linalg.norm(C, axis=0)
    Ud = C[:, nrm > 1e-9] / nrm[nrm > 1e-9]
    a, b = cp.Variable(Ud.shape[1]), cp.Variable(Ud.shape[1])
    obj = 0.5 * cp.sum_squares(Ud @ a + cp.sum(b) - y) + lam * cp.sum(cp.norm(cp.vstack([a, b]), 2, axis=0))
    dense = cp.Problem(cp.Minimize(obj))
    dense.solve(solver=cp.CLARABEL)
    exact = c_bn_relu(X, y, cx.enumerate_patterns(X, bias=True), lam).solve().value
    assert exact <= dense.value + 1e-7
    assert dense.value <= exact * (1 + 2e-3)


def test_network_to_convex_point():
    X, y = _data(seed=5)
    P = cx.enumerate_patterns(X, bias=True)
    rng = np.random.default_rng(6)
    net = BatchNormReLU(rng.standard_normal((3, 6)), rng.standard_normal(6), rng.standard_normal(6),
                        rng.standard_normal(6), bias=True)
    pt = bn_from_network(net, X, y, 0.3, P)
    assert np.allclose(pt.fit, net.predict(X), atol=1e-10)
    assert pt.constraint_violation < 1e-10
    assert pt.value <= net.objective(X, y, 0.3) + 1e-10
    assert net.balanced().objective(X, y, 0.3) <= net.objective(X, y, 0.3) + 1e-12
    assert pt.value <= net.balanced().objective(X, y, 0.3) + 1e-10
    # a balanced network with one neuron per (pattern, sign) maps without loss
    sol = c_bn_relu(X, y, P, 0.3).solve()
    mapped = sol.to_network()
    back = bn_from_network(mapped, X, y, 0.3, P)
    assert back.value == pytest.approx(mapped.objective(X, y, 0.3), rel=1e-8)



def _adam_bn_networks(torch, X, y, lam, *, width, steps, seeds=range(3)):
    """BN networks trained by Adam on the non-convex objective (independent of convexnn's code)."""
    Xa = torch.tensor(np.hstack([X, np.ones((len(X), 1))]))
    yt = torch.tensor(y)
    nets = []
    for seed in seeds:
        torch.manual_seed(seed)
        ps = [torch.randn(Xa.shape[1], width, dtype=torch.float64), torch.randn(width, dtype=torch.float64),
              torch.randn(width, dtype=torch.float64) * 0.1, torch.randn(width, dtype=torch.float64) * 0.5]
        for p in ps:
            p.requires_grad_(True)
        W, g, a, w2 = ps
        optim = torch.optim.Adam(ps, lr=0.03)
        for _ in range(steps):
            optim.zero_grad()
            H = torch.relu(Xa @ W)
            C = H - H.mean(0, keepdim=True)
            bn = C / torch.sqrt((C ** 2).sum(0) + 1e-12) * g + a
            obj = 0.5 * ((bn @ w2 - yt) ** 2).sum() + lam / 2 * (g.pow(2).sum() + a.pow(2).sum() + w2.pow(2).sum())
            obj.backward()
            optim.step()
        nets.append(BatchNormReLU(*(p.detach().numpy() for p in ps), bias=True))
    return nets

def test_gradient_descent_never_beats_the_convex_program():
    torch = pytest.importorskip("torch")
    X, y = _data(n=10, seed=7)
    lam = 0.1
    opt = c_bn_relu(X, y, cx.enumerate_patterns(X, bias=True), lam).solve().value
    finals = [net.objective(X, y, lam) for net in _adam_bn_networks(torch, X, y, lam, width=8, steps=600)]
    assert min(finals) >= opt * (1 - 1e-7), finals
    assert min(finals) <= opt * 1.5, finals


def test_bad_inputs():
    X, y = _data()
    P = cx.enumerate_patterns(X)
    with pytest.raises(cx.InputError, match="scalar"):
        c_bn_relu(X, np.column_stack([y, y]), P, 0.1)
    with pytest.raises(cx.InputError, match="another data matrix"):
        c_bn_relu(X + 1, y, P, 0.1)
    with pytest.raises(cx.InputError, match="at least 2"):
        c_bn_relu(X[:1], y[:1], cx.enumerate_patterns(X[:1]), 0.1)
    with pytest.raises(cx.InputError, match="shape"):
        BatchNormReLU(np.ones((2, 3)), np.ones(2), np.ones(3), np.ones(3))
    with pytest.raises(cx.InputError, match="bias"):
        bn_from_network(BatchNormReLU(np.ones((2, 1)), [1.0], [0.0], [1.0], bias=True), X, y, 0.1, P)
    net = BatchNormReLU(np.array([[1.0], [-1.0]]), [1.0], [0.0], [1.0])
    sampled = cx.Patterns.from_gates(X, np.array([[1.0], [1.0]]))
    with pytest.raises(cx.InputError, match="not in the given pattern set"):
        bn_from_network(net, X, y, 0.1, sampled)


def test_large_lam_maps_to_the_empty_network():
    X, y = _data(seed=9)
    sol = c_bn_relu(X, y, cx.enumerate_patterns(X, bias=True), 1e3).solve()
    net = sol.to_network()
    assert net.n_neurons == 0
    assert sol.value == pytest.approx(0.5 * np.sum(y ** 2), rel=1e-6)


# ---------------------------------------------------------------------------- certificates
from convexnn.zoo import certify_bn  # noqa: E402
from convexnn.zoo.batchnorm import bn_dual_norm  # noqa: E402


def _socp_support(X, v, P, bias):
    """max over patterns and signs of sigma <Pv, D X_a g> / ||P D X_a g|| (CVXPY + Clarabel, per pattern)."""
    Xa = np.hstack([X, np.ones((len(X), 1))]) if bias else X
    n = len(X)
    w = v - v.mean()
    best = 0.0
    for m in np.asarray(P.masks, dtype=float).T:
        if m.sum() == 0:
            continue
        g = cp.Variable(Xa.shape[1])
        z = cp.multiply(m, Xa @ g)
        cons = [cp.norm(z - cp.sum(z) / n) <= 1, cp.multiply(2 * m - 1, Xa @ g) >= 0]
        for sg in (1, -1):
            pr = cp.Problem(cp.Maximize(sg * (w @ z)), cons)
            pr.solve(solver=cp.CLARABEL)
            best = max(best, pr.value)
    return best


def _sampled_support(X, v, bias, rng, k=20000):
    """max |<v, u>| over k random first layers (u = P h / ||P h||), a lower estimate of the sup."""
    Xa = np.hstack([X, np.ones((len(X), 1))]) if bias else X
    H = np.maximum(Xa @ rng.standard_normal((Xa.shape[1], k)), 0)
    C = H - H.mean(0)
    N = np.linalg.norm(C, axis=0)
    ok = N > 1e-9
    return float(np.max(np.abs(v @ (C[:, ok] / N[ok])), initial=0.0))


@pytest.mark.parametrize("n,d,bias", [(9, 2, True), (8, 2, False), (10, 1, True)])
def test_dual_norm_bound_matches_the_per_pattern_socp(n, d, bias):
    """The rigorous bound is >= every sampled neuron and equals the per-pattern SOCP maximum."""
    X, y = _data(n=n, d=d, seed=n + d)
    P = cx.enumerate_patterns(X, bias=bias)
    rng = np.random.default_rng(0)
    for v in (rng.standard_normal(n), y - y.mean() + 0.3):
        s, info = bn_dual_norm(X, v, P)
        exact = _socp_support(X, v, P, bias)
        assert s >= np.hypot(_sampled_support(X, v, bias, rng), v.sum())
        assert s >= np.hypot(exact, v.sum()) * (1 - 1e-7)
        assert s <= np.hypot(exact, v.sum()) * (1 + 1e-6)
        assert info["exact"]


@pytest.mark.parametrize("n,d,bias,lam", [(10, 2, True, 0.1), (10, 2, False, 0.1), (10, 1, True, 0.05),
                                          (8, 3, True, 0.2)])
def test_convex_optimum_is_certified(n, d, bias, lam):
    X, y = _data(n=n, d=d, seed=1)
    P = cx.enumerate_patterns(X, bias=bias)
    sol = c_bn_relu(X, y, P, lam).solve()
    net = sol.to_network()
    cert = certify_bn(net, X, y, lam, patterns=P, rtol=1e-5)
    assert cert.is_optimal and cert.exact, str(cert)
    assert cert.rel_gap <= 1e-5
    assert cert.lower_bound <= sol.value * (1 + 1e-7)  # the Clarabel optimum (solver accuracy)
    assert cert.lower_bound <= cert.primal
    assert "GLOBALLY OPTIMAL" in cert.verdict
    assert cert.improved is None


def test_logistic_optimum_is_certified():
    X, y = _data(n=10, seed=4)
    y = np.where(y > np.median(y), 1.0, -1.0)
    P = cx.enumerate_patterns(X, bias=True)
    sol = c_bn_relu(X, y, P, 0.1, loss="logistic").solve()
    # the exponential-cone solve is less accurate than the squared-loss one
    cert = certify_bn(sol.to_network(), X, y, 0.1, patterns=P, loss="logistic", rtol=1e-4)
    assert cert.is_optimal, str(cert)
    assert cert.lower_bound <= sol.value * (1 + 1e-7)


def test_suboptimal_networks_are_refuted_or_bounded():
    X, y = _data(n=10, seed=1)
    lam = 0.1
    P = cx.enumerate_patterns(X, bias=True)
    sol = c_bn_relu(X, y, P, lam).solve()
    opt = sol.value
    net = sol.to_network()
    rng = np.random.default_rng(5)
    refuted = 0
    for scale in (0.0, 0.5, 3.0):
        bad = BatchNormReLU(net.W1 + scale * 0.3 * rng.standard_normal(net.W1.shape), net.gamma * (1 + scale),
                            net.alpha, net.w2, bias=True)
        cert = certify_bn(bad, X, y, lam, patterns=P)
        assert cert.lower_bound <= opt * (1 + 1e-7)
        assert cert.primal == pytest.approx(bad.objective(X, y, lam), rel=1e-12)
        if scale > 0:
            assert not cert.is_optimal
        if cert.improved is not None:
            refuted += 1
            # the refutation is checked on the network it returns
            assert cert.improved.n_neurons == bad.n_neurons + 1
            assert cert.improved.objective(X, y, lam) == pytest.approx(cert.improved_objective, rel=1e-12)
            assert cert.improved_objective < cert.primal
            assert "improving neuron" in cert.verdict
    # a single neuron of the optimum is far from optimal: its residual violates the dual constraint
    one = BatchNormReLU(net.W1[:, :1], net.gamma[:1], net.alpha[:1], net.w2[:1], bias=True)
    cert = certify_bn(one, X, y, lam, patterns=P)
    assert cert.s_estimate > lam and cert.improved is not None, str(cert)
    assert cert.improved_objective < one.objective(X, y, lam)
    assert cert.lower_bound <= opt * (1 + 1e-7)


def test_sampled_patterns_give_a_valid_pattern_free_bound():
    X, y = _data(n=10, seed=2)
    lam = 0.1
    P = cx.enumerate_patterns(X, bias=True)
    sol = c_bn_relu(X, y, P, lam).solve()
    cert = certify_bn(sol.to_network(), X, y, lam, patterns=P[:4])
    assert not cert.exact and not cert.is_optimal
    assert cert.lower_bound <= sol.value
    v = y - sol.fit
    assert cert.s >= np.hypot(np.linalg.norm(v - v.mean()), v.sum())  # the pattern-free bound


def test_adam_restarts_never_beat_the_lower_bounds():
    torch = pytest.importorskip("torch")
    X, y = _data(n=10, seed=7)
    lam = 0.1
    P = cx.enumerate_patterns(X, bias=True)
    opt = c_bn_relu(X, y, P, lam).solve().value
    nets = _adam_bn_networks(torch, X, y, lam, width=6, steps=300)
    finals = [net.objective(X, y, lam) for net in nets]
    outcomes = []
    for net in nets:
        cert = certify_bn(net, X, y, lam, patterns=P)
        assert cert.lower_bound <= opt * (1 + 1e-7)
        assert cert.lower_bound <= min(finals) + 1e-12
        assert cert.gap >= cert.primal - opt - 1e-9
        if cert.improved is not None:
            assert cert.improved.objective(X, y, lam) < net.objective(X, y, lam)
        if cert.primal > opt * (1 + 1e-3):  # suboptimal by the independent convex optimum
            assert not cert.is_optimal
        outcomes.append(cert.improved is not None)
    assert any(outcomes)  # Adam stops at networks that an added neuron improves


def test_certify_bn_bad_inputs():
    X, y = _data()
    net = BatchNormReLU(np.array([[1.0], [-1.0]]), [1.0], [0.0], [1.0])
    with pytest.raises(cx.InputError, match="BatchNormReLU"):
        certify_bn((net.W1, net.w2), X, y, 0.1)
    with pytest.raises(cx.InputError, match="lam"):
        certify_bn(net, X, y, 0.0)
    with pytest.raises(cx.InputError, match="rtol"):
        certify_bn(net, X, y, 0.1, rtol=2.0)
    with pytest.raises(cx.InputError, match="scalar"):
        certify_bn(net, X, np.column_stack([y, y]), 0.1)
    with pytest.raises(cx.InputError, match="features"):
        certify_bn(net, X[:, :1], y, 0.1)
    with pytest.raises(cx.InputError, match="bias"):
        certify_bn(net, X, y, 0.1, patterns=cx.enumerate_patterns(X, bias=True))
    with pytest.raises(cx.InputError, match="another data matrix"):
        certify_bn(net, X, y, 0.1, patterns=cx.enumerate_patterns(X + 1))
    with pytest.raises(cx.InputError, match="Patterns"):
        certify_bn(net, X, y, 0.1, patterns=np.ones((10, 3), bool))
    with pytest.raises(cx.InputError, match="shape"):
        bn_dual_norm(X, np.ones(3), cx.enumerate_patterns(X))
    with pytest.raises(cx.InputError, match="finite"):
        bn_dual_norm(X, np.full(10, np.nan), cx.enumerate_patterns(X))


def test_dual_norm_bound_dominates_random_neurons():
    """Random data and dual points (with a large mean, which the shift column carries): the rigorous
    bound is at least every sampled BN neuron's value."""
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        X = rng.standard_normal((7, 2)) * rng.uniform(0.1, 10)
        v = rng.standard_normal(7) + rng.uniform(-3, 3)
        for bias in (True, False):
            s, _ = bn_dual_norm(X, v, cx.enumerate_patterns(X, bias=bias))
            assert s >= np.hypot(_sampled_support(X, v, bias, rng, k=5000), v.sum())
            assert s <= np.hypot(np.linalg.norm(v - v.mean()), v.sum()) * (1 + 1e-12)
