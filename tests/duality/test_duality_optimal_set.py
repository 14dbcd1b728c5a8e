"""The optimal set polytope (Mishkin & Pilanci (ICML 2023)): sampling, uniqueness, vertices and minimal models."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cx
from convexnn.arrangements.enumerate import enumerate_patterns


@pytest.fixture(scope="module")
def nonunique(tight):
    """A 1-D instance (bias) whose optimal set is a segment, found by search over integer data."""
    X = np.array([[0.0], [-2.0], [-1.0], [2.0], [1.0]])
    y = np.array([2.0, -2.0, -2.0, -2.0, -1.0])
    lam = 0.1
    P = enumerate_patterns(X, bias=True)
    sol = tight(cx.c_relu(X, y, P, lam))
    return X, y, lam, P, sol


def test_optimal_set_contains_the_solution(small):
    S = cx.optimal_set(small["sol"])
    assert S.contains(S.alpha0)
    assert np.allclose(S.fit, small["sol"].fit, atol=1e-6)
    assert np.isclose(S.objective(S.alpha0), small["sol"].value, rtol=1e-7)
    # block correlations have norm lam and every block's direction is its q_i
    assert np.allclose(np.linalg.norm(S.Q, axis=1), small["lam"])
    assert "OptimalSet" in str(S)


def test_sampled_optimal_networks_same_fit_and_objective(nonunique):
    X, y, lam, P, sol = nonunique
    S = cx.optimal_set(sol)
    assert not S.is_unique()
    assert len(S.vertices) >= 2
    nets = S.sample(6, seed=0)
    W = [net.W1 for net in nets]
    assert any(w.shape != W[0].shape or not np.allclose(w, W[0]) for w in W[1:])  # genuinely different
    for net in nets:
        assert np.allclose(net.predict(X), S.fit, atol=1e-9)
        assert np.isclose(net.objective(X, y, lam), sol.value, rtol=1e-7)
        # every sampled network is certified globally optimal
        assert cx.certify(net, X, y, lam, patterns=P, refine=0).rel_gap <= 1e-6
    for a in S.sample_alphas(4, seed=1):
        assert S.contains(a)


def test_unique_optimal_set(small):
    S = cx.optimal_set(small["sol"])
    if S.is_unique():
        a = S.sample_alphas(3, seed=0)
        assert np.allclose(a, S.alpha0, rtol=1e-5, atol=1e-8 * S.total)


def test_minimal_model_is_a_vertex(nonunique):
    X, y, lam, P, sol = nonunique
    S = cx.optimal_set(sol)
    a = S.minimal_alpha()
    assert S.contains(a)
    act = a > 0
    cols = S.B[:, act]
    assert np.linalg.matrix_rank(cols) == act.sum() <= X.shape[0]
    net = S.minimal_model()
    assert net.n_neurons == act.sum() < int((S.alpha0 > 0).sum())
    assert np.isclose(net.objective(X, y, lam), sol.value, rtol=1e-7)
    for v in S.vertices:
        assert S.contains(v, tol=1e-6)
        assert np.linalg.matrix_rank(S.B[:, v > 1e-9 * S.total]) == int((v > 1e-9 * S.total).sum())


def test_optimal_set_rejects_gated(small, tight):
    sol = tight(cx.c_grelu(small["X"], small["y"], small["P"], small["lam"]))
    with pytest.raises(cx.InputError):
        cx.optimal_set(sol)
