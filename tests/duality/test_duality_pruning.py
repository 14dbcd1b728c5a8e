"""Optimal pruning (minimal models, Mishkin & Pilanci (ICML 2023)) and least-squares-corrected sub-optimal pruning (Mishkin (PhD thesis, Stanford))."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cx


def _independent(net, X):
    A = np.maximum(net.design(X) @ net.W1, 0.0)
    return np.linalg.matrix_rank(A) == net.n_neurons


def test_prune_solution_to_minimal_model(small):
    X, y, lam, sol = small["X"], small["y"], small["lam"], small["sol"]
    full = sol.to_network()
    net = cx.prune(sol, X)
    assert isinstance(net, cx.TwoLayerReLU)
    assert net.n_neurons <= X.shape[0] and net.n_neurons <= full.n_neurons
    assert _independent(net, X)
    assert np.allclose(net.predict(X), full.predict(X), atol=1e-7)
    assert np.isclose(net.objective(X, y, lam), full.objective(X, y, lam), rtol=1e-8)
    assert cx.certify(net, X, y, lam, patterns=small["P"]).is_optimal


def test_prune_redundant_network_keeps_fit_and_never_increases_objective():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2))
    y = rng.standard_normal(6)
    W1 = rng.standard_normal((3, 9))
    w2 = rng.standard_normal(9)
    # split symmetry and exact duplicates: neurons 9.. are copies / rescalings of earlier ones
    W1 = np.hstack([W1, 2.0 * W1[:, :3], W1[:, 3:4]])
    w2 = np.concatenate([w2, 0.5 * w2[:3], -w2[3:4]])
    before = cx.TwoLayerReLU(W1, w2, bias=True)
    W1p, w2p = cx.prune((W1, w2), X)
    after = cx.TwoLayerReLU(W1p, w2p, bias=True)
    assert after.n_neurons <= 6  # at most n
    assert _independent(after, X)
    assert np.allclose(after.predict(X), before.predict(X), atol=1e-8)
    for lam in (0.01, 1.0):
        assert after.objective(X, y, lam) <= before.objective(X, y, lam) + 1e-10


def _diabetes_network(gd):
    X, y = cx.load_dataset("diabetes", n_features=4)
    X, y = X[:120], y[:120]
    rng = np.random.default_rng(0)
    m = 40
    W1 = rng.standard_normal((5, m)) / np.sqrt(5)
    w2 = rng.standard_normal(m) / np.sqrt(m)
    W1, w2, _ = gd(X, y, W1, w2, 1e-3, lr=2e-3, iters=1500, gtol=0.0)
    return X, y, cx.TwoLayerReLU(W1, w2, bias=True)


def test_suboptimal_pruning_beats_magnitude_pruning_on_diabetes(gd):
    X, y, net = _diabetes_network(gd)

    def mse(n):
        return float(np.mean((n.predict(X) - y) ** 2))

    wins = 0
    for width in (4, 8, 12):
        ls = cx.prune_to(net, X, width, rule="ls")
        mag_corrected = cx.prune_to(net, X, width, rule="magnitude")
        naive = cx.prune_to(net, X, width, rule="magnitude", correct=False)
        assert ls.n_neurons <= width and naive.n_neurons <= width
        assert mse(mag_corrected) <= mse(naive) + 1e-12  # the correction step helps any rule
        wins += mse(ls) < mse(naive)
    assert wins == 3


def test_prune_to_edge_cases(small):
    X = small["X"]
    net = small["sol"].to_network()
    assert cx.prune_to(net, X, 0).n_neurons == 0
    big = cx.prune_to(net, X, 10_000)
    assert np.allclose(big.predict(X), net.predict(X), atol=1e-7)
    with pytest.raises(cx.InputError):
        cx.prune_to(net, X, 3, rule="nope")
    with pytest.raises(cx.InputError):
        cx.prune_to(net, X, -1)
