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


def test_one_dimensional_case_is_a_two_group_lasso():
    """d = 1, no bias: BN is scale invariant, so every neuron is (x)_+ or (-x)_+ normalized."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(12)
    y = np.sin(2 * x)
    lam = 0.05
    groups = []
    for h in (np.maximum(x, 0), np.maximum(-x, 0)):
        c = h - h.mean()
        groups.append(np.column_stack([c / np.linalg.norm(c), np.ones_like(x)]))
    z = [cp.Variable(2), cp.Variable(2)]
    pred = groups[0] @ z[0] + groups[1] @ z[1]
    lasso = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(pred - y) + lam * (cp.norm(z[0]) + cp.norm(z[1]))))
    lasso.solve(solver=cp.CLARABEL)
    X = x[:, None]
    sol = c_bn_relu(X, y, cx.enumerate_patterns(X), lam).solve()
    assert sol.value == pytest.approx(lasso.value, rel=1e-6)


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


def test_gradient_descent_never_beats_the_convex_program():
    torch = pytest.importorskip("torch")
    X, y = _data(n=10, seed=7)
    lam = 0.1
    opt = c_bn_relu(X, y, cx.enumerate_patterns(X, bias=True), lam).solve().value
    Xa = torch.tensor(np.hstack([X, np.ones((10, 1))]))
    yt = torch.tensor(y)
    finals = []
    for seed in range(3):
        torch.manual_seed(seed)
        ps = [torch.randn(3, 8, dtype=torch.float64), torch.randn(8, dtype=torch.float64),
              torch.randn(8, dtype=torch.float64) * 0.1, torch.randn(8, dtype=torch.float64) * 0.5]
        for p in ps:
            p.requires_grad_(True)
        W, g, a, w2 = ps
        optim = torch.optim.Adam(ps, lr=0.03)
        for _ in range(600):
            optim.zero_grad()
            H = torch.relu(Xa @ W)
            C = H - H.mean(0, keepdim=True)
            bn = C / torch.sqrt((C ** 2).sum(0) + 1e-12) * g + a
            obj = 0.5 * ((bn @ w2 - yt) ** 2).sum() + lam / 2 * (g.pow(2).sum() + a.pow(2).sum() + w2.pow(2).sum())
            obj.backward()
            optim.step()
        net = BatchNormReLU(*(p.detach().numpy() for p in ps), bias=True)
        finals.append(net.objective(X, y, lam))
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
