"""Two-layer ReLU CNNs with global pooling (Ergen & Pilanci, ICLR 2021)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import convexnn as cx
from convexnn.zoo import Conv2LayerReLU, c_conv_relu, conv_from_network, conv_patterns, patch_matrices


def _signals(n=6, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.maximum(X[:, 1:] - X[:, :-1], 0).mean(axis=1) - 0.3 + 0.05 * rng.standard_normal(n)


def test_patch_matrices_match_a_direct_loop():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 2 * 5 * 7))
    Pt = patch_matrices(X, (3, 3), image_shape=(2, 5, 7), stride=2, bias=True)
    imgs = X.reshape(3, 2, 5, 7)
    ref = [[np.append(imgs[i, :, r:r + 3, c:c + 3].ravel(), 1.0) for r in (0, 2) for c in (0, 2, 4)]
           for i in range(3)]
    assert np.array_equal(Pt, np.array(ref))


@pytest.mark.parametrize("bias", [False, True])
def test_convex_optimum_equals_mapped_cnn(bias):
    X, y = _signals(seed=2)
    P = conv_patterns(X, 2, bias=bias)
    assert P.exact
    sol = c_conv_relu(X, y, P, 0.1, patch_shape=2).solve()
    net = sol.to_network()
    assert sol.constraint_violation < 1e-7
    assert net.objective(X, y, 0.1) == pytest.approx(sol.value, rel=1e-6)
    back = conv_from_network(net, X, y, 0.1, P)
    assert back.value == pytest.approx(sol.value, rel=1e-6)


def test_single_patch_is_the_fully_connected_program():
    """K = 1 (the filter covers the input): the CNN program is C-ReLU on X."""
    X, y = _signals(n=8, d=3, seed=3)
    for bias in (False, True):
        conv = c_conv_relu(X, y, conv_patterns(X, 3, bias=bias), 0.2, patch_shape=3).solve().value
        fc = cx.c_relu(X, y, cx.enumerate_patterns(X, bias=bias), 0.2).solve().value
        assert conv == pytest.approx(fc, rel=1e-6)


@pytest.mark.filterwarnings("ignore:.*subexpressions")
def test_per_pattern_loop_formulation_agrees():
    """The program written pattern by pattern and patch by patch (sum pooling, bias)."""
    X, y = _signals(n=4, d=4, seed=4)
    P = conv_patterns(X, 2, bias=True)
    Pt = patch_matrices(X, 2, bias=True)  # (n, K, 3)
    n, K, h = Pt.shape
    lam = 0.1
    fit, reg, cons = 0, 0, []
    for mask in P.masks.T:
        D = mask.reshape(n, K)
        for sign in (1.0, -1.0):
            v = cp.Variable(h)
            for k in range(K):
                cons.append(cp.multiply(2.0 * D[:, k] - 1.0, Pt[:, k] @ v) >= 0)
                fit = fit + sign * cp.multiply(D[:, k].astype(float), Pt[:, k] @ v)
            reg = reg + cp.norm(v)
    ref = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - y) + lam * reg), cons)
    ref.solve(solver=cp.CLARABEL)
    val = c_conv_relu(X, y, P, lam, patch_shape=2, pooling="sum").solve().value
    assert val == pytest.approx(ref.value, rel=1e-6)


def test_exact_convolutional_arrangement(vertex_patterns):
    """Exact joint patterns = chambers of the stacked patch matrix (independent vertex construction)."""
    X, _ = _signals(n=5, d=5, seed=5)
    for bias in (False, True):
        P = conv_patterns(X, 3, bias=bias)
        Xs = patch_matrices(X, 3).reshape(-1, 3)
        assert P == vertex_patterns(Xs, bias)
        S = conv_patterns(X, 3, bias=bias, method="sample", n_samples=300, seed=0)
        assert np.all(P.contains(S.masks))


def test_sampled_patterns_give_an_upper_bound():
    X, y = _signals(n=6, d=6, seed=6)
    exact = c_conv_relu(X, y, conv_patterns(X, 3), 0.1, patch_shape=3).solve().value
    sampled = c_conv_relu(X, y, conv_patterns(X, 3, method="sample", n_samples=10, seed=1), 0.1,
                          patch_shape=3).solve()
    assert sampled.value >= exact - 1e-8
    assert sampled.to_network().objective(X, y, 0.1) == pytest.approx(sampled.value, rel=1e-6)


def test_torch_round_trip():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    X = rng.standard_normal((4, 2 * 5 * 5))
    net = Conv2LayerReLU(rng.standard_normal((2 * 9 + 1, 3)), rng.standard_normal(3), patch_shape=(3, 3),
                         image_shape=(2, 5, 5), stride=2, bias=True, pooling="sum")
    mod = net.to_torch(X.shape[1])
    out = mod(torch.tensor(X).reshape(4, 2, 5, 5)).detach().numpy()[:, 0]
    assert np.allclose(out, net.predict(X), atol=1e-12)
    back = Conv2LayerReLU.from_torch(mod, image_shape=(2, 5, 5))
    assert np.allclose(back.predict(X), net.predict(X), atol=1e-12)
    with torch.no_grad():
        mod[4] = torch.nn.Linear(3, 1, bias=True, dtype=torch.float64)
    with pytest.raises(cx.InputError, match="bias"):
        Conv2LayerReLU.from_torch(mod, image_shape=(2, 5, 5))


def test_gradient_descent_never_beats_the_convex_program():
    torch = pytest.importorskip("torch")
    X, y = _signals(n=6, d=5, seed=8)
    lam = 0.05
    opt = c_conv_relu(X, y, conv_patterns(X, 2, bias=True), lam, patch_shape=2).solve().value
    Pt, yt = torch.tensor(patch_matrices(X, 2, bias=True)), torch.tensor(y)  # (n, K, 3)
    finals = []
    for seed in range(3):
        torch.manual_seed(seed)
        W = (0.5 * torch.randn(3, 8, dtype=torch.float64)).requires_grad_(True)
        w2 = (0.5 * torch.randn(8, dtype=torch.float64)).requires_grad_(True)
        optim = torch.optim.Adam([W, w2], lr=0.02)
        for _ in range(800):
            optim.zero_grad()
            pred = torch.relu(Pt @ W).mean(dim=1) @ w2
            obj = 0.5 * ((pred - yt) ** 2).sum() + lam / 2 * ((W ** 2).sum() + (w2 ** 2).sum())
            obj.backward()
            optim.step()
        net = Conv2LayerReLU(W.detach().numpy(), w2.detach().numpy(), patch_shape=2, bias=True)
        finals.append(net.objective(X, y, lam))
    assert min(finals) >= opt * (1 - 1e-7), finals
    assert min(finals) <= opt * 1.5, finals


@pytest.mark.slow
def test_digits_demo():
    """scikit-learn's 8x8 digits, 0 vs 1: sampled convolutional patterns, hinge loss."""
    from sklearn.datasets import load_digits

    X, t = load_digits(return_X_y=True)
    keep = np.flatnonzero(t < 2)[:40]
    X, y = X[keep] / 16.0, 2.0 * t[keep] - 1.0
    P = conv_patterns(X, (3, 3), stride=1, method="sample", n_samples=60, seed=0)
    sol = c_conv_relu(X, y, P, 1e-2, patch_shape=(3, 3), loss="hinge").solve()
    net = sol.to_network()
    assert net.objective(X, y, 1e-2, "hinge") == pytest.approx(sol.value, rel=1e-6)
    assert np.mean(np.sign(net.predict(X)) == y) == 1.0


def test_bad_shapes():
    X, y = _signals(d=6)
    with pytest.raises(cx.InputError, match="not a square"):
        patch_matrices(X, (2, 2))
    with pytest.raises(cx.InputError, match="does not divide"):
        patch_matrices(X, 3, stride=2)
    with pytest.raises(cx.InputError, match="does not divide"):
        patch_matrices(np.ones((2, 25)), (2, 2), stride=2)
    with pytest.raises(cx.InputError, match="does not fit"):
        patch_matrices(X, 7)
    with pytest.raises(cx.InputError, match="entries"):
        patch_matrices(X, (2, 2), image_shape=(2, 2))
    with pytest.raises(cx.InputError, match="channels"):
        patch_matrices(np.ones((2, 18)), (3, 2, 2), image_shape=(2, 3, 3))
    P = conv_patterns(X, 2)
    with pytest.raises(cx.InputError, match="geometry|length"):
        c_conv_relu(X, y, P, 0.1, patch_shape=3)
    with pytest.raises(cx.InputError, match="scalar"):
        c_conv_relu(X, np.column_stack([y, y]), P, 0.1, patch_shape=2)
    with pytest.raises(cx.InputError, match="pooling"):
        c_conv_relu(X, y, P, 0.1, patch_shape=2, pooling="max")


def test_large_lam_maps_to_the_empty_network():
    """Past the critical lam the optimum is zero; solver noise must not become neurons."""
    X, y = _signals(n=6, d=4, seed=9)
    sol = c_conv_relu(X, y, conv_patterns(X, 2), 1e3, patch_shape=2).solve()
    net = sol.to_network()
    assert net.n_neurons == 0
    assert net.objective(X, y, 1e3) == pytest.approx(0.5 * np.sum(y ** 2), rel=1e-6)
    assert sol.value == pytest.approx(0.5 * np.sum(y ** 2), rel=1e-6)


@pytest.mark.parametrize("pooling", ["average", "sum"])
def test_certificate_of_a_cnn(pooling):
    from convexnn.zoo import certify_conv

    X, y = _signals(n=6, d=5, seed=10)
    P = conv_patterns(X, 2, bias=True)
    sol = c_conv_relu(X, y, P, 0.1, patch_shape=2, pooling=pooling).solve()
    net = sol.to_network()
    cert = certify_conv(net, X, y, 0.1, patterns=P, rtol=1e-5)
    assert cert.exact and cert.is_optimal
    assert cert.lower_bound <= sol.value * (1 + 1e-7)  # weak duality (solver accuracy ~1e-8)
    worse = Conv2LayerReLU(1.05 * net.W1, net.w2, patch_shape=2, bias=True, pooling=pooling)
    c2 = certify_conv(worse, X, y, 0.1, patterns=P)
    assert not c2.is_optimal and c2.lower_bound <= sol.value * (1 + 1e-7)
    sampled = conv_patterns(X, 2, bias=True, method="sample", n_samples=20, seed=0)
    c3 = certify_conv(net, X, y, 0.1, patterns=sampled)
    assert not c3.exact and c3.lower_bound <= sol.value * (1 + 1e-7)
