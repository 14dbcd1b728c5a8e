"""Polynomial-activation networks as SDPs (Bartan & Pilanci, Neural Spectrahedra, 2021)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import convexnn as cx
from convexnn.zoo import PolynomialNetwork, lifted_neurons, poly_sdp, polynomial_from_network, quadratic_nuclear

RELU_FIT = (0.09, 0.5, 0.47)


def _data(n=14, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.sin(X @ rng.standard_normal(d)) + 0.1 * rng.standard_normal(n)
    return X, y


def _sigma(t, coef):
    a, b, c = coef
    return a * t * t + b * t + c


@pytest.mark.parametrize("coef,bias,loss", [((1, 0, 0), False, "squared"), (RELU_FIT, False, "squared"),
                                            ((1, -1, 0.5), True, "squared"), ((0, 1, 0.3), False, "squared"),
                                            (RELU_FIT, True, "hinge")])
def test_sdp_optimum_equals_mapped_network(coef, bias, loss):
    X, y = _data(seed=1)
    if loss == "hinge":
        y = np.sign(y + 1e-3)
    lam = 0.1
    sol = poly_sdp(X, y, lam, coefficients=coef, loss=loss, bias=bias).solve()
    net = sol.to_network()
    assert net.unit_violation() < 1e-9
    assert net.n_neurons <= 2 * (X.shape[1] + bias + 1)
    assert net.objective(X, y, lam, loss) == pytest.approx(sol.value, rel=1e-6)
    assert sol.constraint_violation < 1e-6


def test_network_to_sdp_point_has_the_same_objective():
    X, y = _data(seed=2)
    rng = np.random.default_rng(3)
    U = rng.standard_normal((3, 5))
    net = PolynomialNetwork(U / np.linalg.norm(U, axis=0), rng.standard_normal(5), RELU_FIT)
    pt = polynomial_from_network(net, X, y, 0.3)
    assert pt.value == pytest.approx(net.objective(X, y, 0.3), rel=1e-12)
    assert pt.constraint_violation < 1e-10
    # the solved SDP is a lower bound on every network
    assert poly_sdp(X, y, 0.3, coefficients=RELU_FIT).solve().value <= pt.value + 1e-7


def test_quadratic_special_case_is_the_nuclear_norm_program():
    X, y = _data(seed=4)
    a = poly_sdp(X, y, 0.2, coefficients=(1, 0, 0)).solve()
    b = quadratic_nuclear(X, y, 0.2).solve()
    assert a.value == pytest.approx(b.value, rel=1e-6)
    net = b.to_network()
    assert net.objective(X, y, 0.2) == pytest.approx(b.value, rel=1e-6)
    # the eigendecomposition neurons are orthonormal
    assert np.allclose(net.W1.T @ net.W1, np.eye(net.n_neurons), atol=1e-9)


def test_one_dimensional_case_is_a_two_feature_lasso():
    """d = 1 without bias: the unit neurons are u = +1 and u = -1, so the network problem is a lasso."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((20, 1))
    y = np.cos(2 * X[:, 0])
    lam = 0.05
    for coef in [RELU_FIT, (1, 0.3, -0.2)]:
        A = np.column_stack([_sigma(X[:, 0], coef), _sigma(-X[:, 0], coef)])
        beta = cp.Variable(2)
        lasso = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ beta - y) + lam * cp.norm1(beta)))
        lasso.solve(solver=cp.CLARABEL)
        assert poly_sdp(X, y, lam, coefficients=coef).solve().value == pytest.approx(lasso.value, rel=1e-6)


def test_two_dimensional_case_matches_a_dense_neuron_dictionary():
    """d = 2: a lasso over 1440 unit neurons on the circle is an upper bound that converges to the SDP value."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((12, 2))
    y = rng.standard_normal(12)
    lam = 0.1
    th = np.linspace(0, 2 * np.pi, 1440, endpoint=False)
    U = np.vstack([np.cos(th), np.sin(th)])
    A = _sigma(X @ U, RELU_FIT)
    beta = cp.Variable(U.shape[1])
    lasso = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ beta - y) + lam * cp.norm1(beta)))
    lasso.solve(solver=cp.CLARABEL)
    sdp = poly_sdp(X, y, lam, coefficients=RELU_FIT).solve().value
    assert sdp <= lasso.value + 1e-7
    assert lasso.value <= sdp * (1 + 1e-3)


def test_second_solver_agrees():
    X, y = _data(n=10, d=2, seed=7)
    f = poly_sdp(X, y, 0.1, coefficients=RELU_FIT, bias=True)
    v1 = f.solve().value
    v2 = f.solve(solver="SCS", eps=1e-9, max_iters=200000).value
    assert v2 == pytest.approx(v1, rel=1e-4)
    f.lam.value = 0.5  # DPP: re-solve with another lam without rebuilding
    assert f.solve().value > v1


def test_gradient_descent_never_beats_the_sdp():
    torch = pytest.importorskip("torch")
    X, y = _data(n=16, d=3, seed=8)
    lam = 0.1
    opt = poly_sdp(X, y, lam, coefficients=RELU_FIT).solve().value
    Xt, yt = torch.tensor(X), torch.tensor(y)
    a, b, c = RELU_FIT
    finals = []
    for seed in range(4):
        torch.manual_seed(seed)
        V = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
        al = (0.1 * torch.randn(8, dtype=torch.float64)).requires_grad_(True)
        optim = torch.optim.Adam([V, al], lr=0.02)
        for _ in range(1500):
            optim.zero_grad()
            t = Xt @ (V / V.norm(dim=0))
            obj = 0.5 * ((a * t ** 2 + b * t + c) @ al - yt).pow(2).sum() + lam * al.abs().sum()
            obj.backward()
            optim.step()
        U = (V / V.norm(dim=0)).detach().numpy()
        finals.append(PolynomialNetwork(U, al.detach().numpy(), RELU_FIT).objective(X, y, lam))
    assert min(finals) >= opt * (1 - 1e-7)
    assert min(finals) <= opt * 1.2  # the bound is approached, not vacuous


def test_lifted_neurons_reproduce_a_random_lifted_point():
    rng = np.random.default_rng(9)
    U = rng.standard_normal((4, 3))
    U /= np.linalg.norm(U, axis=0)
    L = np.vstack([U, np.ones((1, 3))])
    Z = (L * np.array([0.5, 1.0, 2.0])) @ L.T
    V, al = lifted_neurons(Z)
    assert np.allclose(np.linalg.norm(V, axis=0), 1.0)
    L2 = np.vstack([V, np.ones((1, V.shape[1]))])
    assert np.allclose((L2 * al) @ L2.T, Z, atol=1e-10)
    assert al.sum() == pytest.approx(3.5)


@pytest.mark.parametrize("coef", [(1, 0), (np.nan, 0, 0), (0, 0, 0), "abc", [[1, 0, 0]]])
def test_bad_activation_coefficients(coef):
    X, y = _data()
    with pytest.raises(cx.InputError):
        poly_sdp(X, y, 0.1, coefficients=coef)


def test_bad_inputs():
    X, y = _data()
    with pytest.raises(cx.InputError, match="scalar targets"):
        poly_sdp(X, np.column_stack([y, y]), 0.1)
    with pytest.raises(cx.InputError):
        poly_sdp(X, y, 0.0)
    with pytest.raises(cx.InputError, match="nonzero"):
        quadratic_nuclear(X, y, 0.1, a=0.0)
    with pytest.raises(cx.InputError, match="unit norm"):
        PolynomialNetwork(2 * np.eye(3), np.ones(3)).objective(X, y, 0.1)
    with pytest.raises(cx.InputError, match="features"):
        PolynomialNetwork(np.eye(2), np.ones(2)).predict(X)


# ---------------------------------------------------------------- quantized networks (Bartan & Pilanci, ICML 2021)
from convexnn.zoo import QuantizedNetwork, quantized_exact, quantized_sdp, round_quantized  # noqa: E402


@pytest.mark.parametrize("coef,seed", [((1, 0, 0), 0), (RELU_FIT, 1), ((1, -0.5, 0.2), 2)])
def test_quantized_relaxation_sandwich(coef, seed):
    """SDP relaxation <= exact quantized optimum (enumeration) <= rounded binary network."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((16, 4))
    y = (X @ np.sign(rng.standard_normal(4))) ** 2 / 4 - 1 + 0.1 * rng.standard_normal(16)
    sol = quantized_sdp(X, y, 0.1, coefficients=coef).solve()
    exact = quantized_exact(X, y, 0.1, coefficients=coef)
    rounded = round_quantized(sol, n_samples=100, seed=0)
    assert sol.value <= exact.value * (1 + 1e-7)
    assert exact.value <= rounded.value * (1 + 1e-7)
    assert rounded.network.quantization_violation() == 0
    assert rounded.rel_gap == pytest.approx((rounded.value - sol.value) / rounded.value)
    assert rounded.lower_bound == sol.value and rounded.gap >= -1e-7


def test_binary_network_lifts_to_a_feasible_point_with_equal_objective():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 3))
    y = rng.standard_normal(10)
    U = np.sign(rng.standard_normal((3, 4)))
    al = rng.standard_normal(4)
    net = QuantizedNetwork(U, al, RELU_FIT)
    f = quantized_sdp(X, y, 0.2, coefficients=RELU_FIT)
    L = np.vstack([U, np.ones((1, 4))])
    w = {"Zp": (L[:, al > 0] * al[al > 0]) @ L[:, al > 0].T, "Zm": (L[:, al < 0] * -al[al < 0]) @ L[:, al < 0].T}
    assert f.constraint_violation(w) < 1e-12
    assert f.objective(w) == pytest.approx(net.objective(X, y, 0.2), rel=1e-12)


def test_quantized_exact_symmetry_reduction():
    """b = 0: sigma is even, so half of the sign vectors suffice; compare with all 2^d of them."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((12, 3))
    y = rng.standard_normal(12)
    grid = np.array(np.meshgrid(*([[-1.0, 1.0]] * 3), indexing="ij")).reshape(3, -1)
    A = (X @ grid) ** 2 - 0.3
    beta = cp.Variable(8)
    full = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ beta - y) + 0.1 * cp.norm1(beta)))
    full.solve(solver=cp.CLARABEL)
    ex = quantized_exact(X, y, 0.1, coefficients=(1, 0, -0.3))
    assert ex.n_candidates == 4
    assert ex.value == pytest.approx(full.value, rel=1e-6)


def test_quantized_errors():
    X, y = _data()
    with pytest.raises(cx.TooLargeError):
        quantized_exact(np.ones((4, 20)), np.ones(4), 0.1)
    with pytest.raises(cx.InputError, match="-1, \\+1"):
        QuantizedNetwork(np.full((3, 1), 0.5), [1.0]).objective(X, y, 0.1)
    with pytest.raises(cx.InputError, match="quantized_sdp"):
        round_quantized(poly_sdp(X, y, 0.1).solve())
