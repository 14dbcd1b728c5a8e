"""Fixtures of the duality tests: tiny exact instances, tight convex solves, GD-trained networks."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cx
from convexnn.arrangements.enumerate import enumerate_patterns

TIGHT = {"solver": "CLARABEL", "tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def solve_tight(f):
    """Solve a formulation with tight Clarabel tolerances."""
    opts = dict(TIGHT)
    return f.solve(opts.pop("solver"), **opts)


def gd_train(X: np.ndarray, y: np.ndarray, W1: np.ndarray, w2: np.ndarray, lam: float, *,
             lr: float = 1e-2, iters: int = 20000, gtol: float = 1e-9) -> tuple[np.ndarray, np.ndarray, float]:
    """Full-batch gradient descent on the squared-loss network objective (bias=True); returns the grad norm."""
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    W1, w2 = W1.copy(), w2.copy()
    gn = np.inf
    for _ in range(iters):
        H = Xa @ W1
        A = np.maximum(H, 0.0)
        r = A @ w2 - y
        g2 = A.T @ r + lam * w2
        g1 = Xa.T @ ((H > 0) * np.outer(r, w2)) + lam * W1
        gn = float(np.sqrt(np.sum(g1 ** 2) + np.sum(g2 ** 2)))
        if gn < gtol:
            break
        W1 -= lr * g1
        w2 -= lr * g2
    return W1, w2, gn


@pytest.fixture(scope="module")
def small():
    """n = 14 points in 2-D with bias, exact patterns, a tightly solved C-ReLU program."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((14, 2))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] + 0.1 * rng.standard_normal(14)
    lam = 0.05
    P = enumerate_patterns(X, bias=True)
    f = cx.c_relu(X, y, P, lam)
    sol = solve_tight(f)
    return {"X": X, "y": y, "lam": lam, "P": P, "f": f, "sol": sol}


@pytest.fixture(scope="session")
def tight():
    """``tight(formulation)`` solves with Clarabel at 1e-10 tolerances."""
    return solve_tight


@pytest.fixture(scope="session")
def gd():
    """``gd(X, y, W1, w2, lam, ...)``: full-batch gradient descent to stationarity."""
    return gd_train
