"""No false certificate: every lower bound is below what some network achieves.

Random small instances in the families that used to break certificates (badly scaled columns,
offsets with a bias, timestamps, nearly and exactly degenerate data), several networks each
(the zero network, a narrow random one, the mapped convex optimum). The achievable objectives
they are checked against are computed independently of the certificate: the network objective of
the mapped C-ReLU optimum (Clarabel over the enumerated chambers) and L-BFGS restarts of the
non-convex objective (scipy, in a standardized basis where the optimizer behaves, mapped back
exactly to the user's units).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

import convexnn as cnn


def objective(Xa, y, W1, w2, lam):
    r = np.maximum(Xa @ W1, 0) @ w2 - y
    return 0.5 * r @ r + 0.5 * lam * (np.sum(W1 ** 2) + np.sum(w2 ** 2))


def lbfgs_objectives(Xa, T, y, lam, rng, widths=(1, 3), restarts=2):
    """Objectives (in the user's units) reached by L-BFGS restarts, parametrized by W1 = T V.

    ``Xa @ T`` is standardized, so the optimizer sees a well-conditioned fit term; the objective
    and its gradient are those of the user's problem, so every value is achievable.
    """
    n, d = Xa.shape
    Z = Xa @ T
    out = []
    for m in widths:
        for _ in range(restarts):
            def f(x):
                V = x[:d * m].reshape(d, m)
                w2 = x[d * m:]
                W1 = T @ V
                H = Z @ V
                A = np.maximum(H, 0)
                r = A @ w2 - y
                val = 0.5 * r @ r + 0.5 * lam * (np.sum(W1 ** 2) + w2 @ w2)
                gV = Z.T @ ((H > 0) * np.outer(r, w2)) + lam * T.T @ W1
                gw = A.T @ r + lam * w2
                return val, np.concatenate([gV.ravel(), gw])

            x0 = rng.standard_normal(d * m + m) * 0.5
            res = minimize(f, x0, jac=True, method="L-BFGS-B", options={"maxiter": 3000})
            V = res.x[:d * m].reshape(d, m)
            out.append(objective(Xa, y, T @ V, res.x[d * m:], lam))
    return out


def instance(seed: int, family: str):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 11))
    if family == "scaled":
        X = np.c_[1e8 * (1 + rng.random(n)), rng.standard_normal(n)]
        bias = False
    elif family == "timestamps":
        X = (1.7e9 + 86400 * np.sort(rng.choice(400, n, replace=False)).astype(float))[:, None]
        bias = True
    elif family == "offset":
        X = 1e4 + rng.standard_normal((n, 2))
        bias = True
    elif family == "grid":
        X = rng.integers(-2, 3, (n, 2)).astype(float)
        bias = True
    else:  # near-degenerate: points within 1e-9 of a line
        t = rng.standard_normal(n)
        X = np.c_[t, 2 * t + 1e-9 * rng.standard_normal(n)]
        bias = True
    y = rng.standard_normal(n)
    lam = float(10.0 ** rng.uniform(-2, -0.5)) * float(np.linalg.norm(y))
    return X, y, lam, bias, rng


def standardized_design(X, bias):
    """``Xa`` and a column map ``T`` with ``Xa @ T`` standardized (used only to help L-BFGS)."""
    Xa = np.c_[X, np.ones(len(X))] if bias else X
    mu = X.mean(axis=0)
    sd = X.std(axis=0) + (X.std(axis=0) == 0)
    T = np.diag(np.r_[1 / sd, 1.0] if bias else 1 / sd)
    if bias:
        T[-1, :-1] = -mu / sd
    return Xa, T  # Xa @ T is standardized


@pytest.mark.slow
@pytest.mark.parametrize("family", ["scaled", "timestamps", "offset", "grid", "near"])
@given(seed=st.integers(0, 10**6))
@settings(max_examples=8, deadline=None)
def test_no_false_certificate(family, seed):
    X, y, lam, bias, rng = instance(seed, family)
    Xa, T = standardized_design(X, bias)
    d = Xa.shape[1]
    # achievable objectives, computed without convexnn's certificate code
    achievable = lbfgs_objectives(Xa, T, y, lam, rng)
    networks = [(np.zeros((d, 1)), np.zeros(1)),
                (rng.standard_normal((d, 2)) / np.abs(Xa).max(axis=0)[:, None], rng.standard_normal(2))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P = cnn.enumerate_patterns(X, bias=bias)
        try:  # Clarabel may (honestly) fail on data in raw units; L-BFGS values remain
            net = cnn.c_relu(X, y, P, lam=lam).solve().to_network()
        except cnn.SolverError:
            net = None
    if net is not None:
        achievable.append(objective(Xa, y, net.W1, net.w2, lam))
        networks.append(net)
    floor = min(achievable)
    for network in networks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cert = cnn.certify(network, X, y, lam)
        assert cert.lower_bound <= floor * (1 + 1e-12) + 1e-12, (cert.lower_bound, floor)
        if cert.is_optimal:
            assert cert.primal <= floor + cert.gap + 1e-9 * abs(floor)
        if cert.improving_neuron is not None:
            better = cert.improve()
            W1b, w2b = (better.W1, better.w2) if hasattr(better, "W1") else better
            assert objective(Xa, y, W1b, w2b, lam) < cert.primal


def test_zero_network_on_huge_column_is_refuted():
    rng = np.random.default_rng(0)
    X = np.c_[1e8 * (1 + rng.random(10)), rng.standard_normal(10)]
    y = rng.standard_normal(10)
    cert = cnn.certify((np.zeros((2, 1)), np.zeros(1)), X, y, 0.05)
    assert not cert.is_optimal and cert.improving_neuron is not None
    W1, w2 = cert.improve()
    assert objective(X, y, W1, w2, 0.05) < 0.5 * y @ y


def test_timestamps_zero_network_is_refuted():
    t = (1.7e9 + 86400 * np.arange(20.0))[:, None]
    y = np.random.default_rng(1).standard_normal(20)
    cert = cnn.certify((np.zeros((2, 1)), np.zeros(1)), t, y, 0.05)
    assert not cert.is_optimal and cert.improving_neuron is not None


def test_optimum_on_offset_data_is_not_refuted_by_noise():
    rng = np.random.default_rng(2)
    X = 1e4 + rng.standard_normal((10, 3))
    y = rng.standard_normal(10)
    P = cnn.enumerate_patterns(X, bias=True)
    net = cnn.c_relu(X, y, P, lam=0.1).solve().to_network()
    cert = cnn.certify(net, X, y, 0.1)
    # either a proof or an honest "not certified"; never an improving neuron that does not improve
    if cert.improving_neuron is not None:
        better = cert.improve()
        Xa = np.c_[X, np.ones(10)]
        assert objective(Xa, y, better.W1, better.w2, 0.1) < cert.primal - 1e-9 * cert.primal
    assert "NOT OPTIMAL" not in cert.verdict or cert.improving_neuron is not None


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_classification_optima_are_certified(loss):
    for seed in range(3):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((10, 2))
        y = np.sign(rng.standard_normal(10))
        P = cnn.enumerate_patterns(X, bias=True)
        sol = cnn.c_relu(X, y, P, lam=0.1, loss=loss).solve()
        cert = cnn.certify(sol.to_network(), X, y, 0.1, loss=loss, rtol=1e-5)
        assert cert.is_optimal, (seed, cert.rel_gap)
        assert cert.lower_bound <= sol.value * (1 + 1e-9)
