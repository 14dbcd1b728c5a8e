"""Local descent on the non-convex two-layer objective: gradient and monotonicity."""

import time

import numpy as np
import pytest

from convexnn.formulations.losses import get_loss
from convexnn.networks.two_layer import descend, network_objective, network_value_grad


def _data(loss, seed=0, n=40, d=3, m=5):
    rng = np.random.default_rng(seed)
    Xa = np.hstack([rng.standard_normal((n, d)), np.ones((n, 1))])
    y = np.sign(rng.standard_normal(n)) if loss == "logistic" else rng.standard_normal(n)
    return Xa, y, rng.standard_normal((d + 1, m)), rng.standard_normal(m)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_value_grad_matches_objective_and_finite_differences(loss):
    Xa, y, W1, w2 = _data(loss)
    L = get_loss(loss)
    f, g1, g2 = network_value_grad(Xa, y, W1, w2, 0.3, L)
    assert f == pytest.approx(network_objective(Xa, y, W1, w2, 0.3, L), rel=1e-14)
    rng = np.random.default_rng(1)
    for _ in range(5):  # central differences along random directions (no pre-activation at 0 here)
        D1, D2 = rng.standard_normal(W1.shape), rng.standard_normal(w2.shape)
        h = 1e-6
        fp = network_objective(Xa, y, W1 + h * D1, w2 + h * D2, 0.3, L)
        fm = network_objective(Xa, y, W1 - h * D1, w2 - h * D2, 0.3, L)
        assert (fp - fm) / (2 * h) == pytest.approx(np.sum(g1 * D1) + g2 @ D2, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_descend_beats_plain_gradient_descent(loss):
    Xa, y, W1, w2 = _data(loss, seed=2)
    L = get_loss(loss)
    f0 = network_objective(Xa, y, W1, w2, 0.1, L)
    W, w, f = descend(Xa, y, W1, w2, 0.1, L, max_iter=3000)
    assert f == pytest.approx(network_objective(Xa, y, W, w, 0.1, L), rel=1e-14)
    # an independent local method from the same start: 200 steps of gradient descent (step 1e-3)
    A, a = W1.copy(), w2.copy()
    for _ in range(200):
        _, g1, g2 = network_value_grad(Xa, y, A, a, 0.1, L)
        A, a = A - 1e-3 * g1, a - 1e-3 * g2
    f_gd = network_objective(Xa, y, A, a, 0.1, L)
    assert f_gd < f0
    assert f <= f_gd


def test_descend_deadline_and_empty_network():
    Xa, y, W1, w2 = _data("squared", seed=3)
    L = get_loss("squared")
    W, w, f = descend(Xa, y, W1, w2, 0.1, L, deadline=time.perf_counter() - 1.0)
    assert f <= network_objective(Xa, y, W1, w2, 0.1, L)  # the start, or its first evaluation
    W, w, f = descend(Xa, y, np.zeros((4, 0)), np.zeros(0), 0.1, L)
    assert W.shape == (4, 0) and f == pytest.approx(0.5 * y @ y)
