"""KKT residual semantics: `satisfied(tol)` accepts a fresh solution and rejects non-optimal points."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import convexnn as cx


@pytest.fixture(scope="module")
def diabetes_small():
    X, y = cx.load_dataset("diabetes", n_features=2)
    X, y = X[:25], y[:25]
    P = cx.enumerate_patterns(X, bias=True)
    return X, y, P


def _norm_complementarity(K):
    """Independent loop: max_i |lam ||theta_i|| - <theta_i, q_i>| / (lam max_j ||theta_j||)."""
    top = max(np.linalg.norm(t) for t in K.theta)
    return max(abs(K.lam * np.linalg.norm(t) - float(t @ q)) for t, q in zip(K.theta, K.Q)) / (K.lam * top)


@pytest.mark.parametrize("build", [cx.c_relu, cx.c_grelu])
def test_fresh_solution_satisfies_tight_tolerance(diabetes_small, build):
    X, y, P = diabetes_small
    sol = build(X, y, P, lam=0.1).solve()
    for K in (cx.kkt(sol), cx.kkt(sol, recompute=True)):
        assert K.norm_complementarity == pytest.approx(_norm_complementarity(K), rel=1e-9, abs=1e-15)
        assert K.satisfied(1e-6), str(K)


@pytest.mark.parametrize("scale", [0.5, 0.9, 1.2])
def test_rescaled_solution_is_rejected(diabetes_small, scale):
    """A feasible but non-optimal point (every block scaled) violates ||q_i|| = lam on the support."""
    X, y, P = diabetes_small
    sol = cx.c_relu(X, y, P, lam=0.1).solve()
    moved = dataclasses.replace(sol, weights={k: scale * v for k, v in sol.weights.items()})
    assert moved.objective() > sol.value + 1e-6          # independent: the objective got worse
    assert not cx.kkt(moved, recompute=True).satisfied(1e-3)


def test_tiny_block_in_any_direction_barely_counts(diabetes_small):
    """A block of relative size t in a random direction moves the objective by O(t) and
    norm_complementarity by at most 2t, while its direction (alignment_residual) is arbitrary."""
    X, y, P = diabetes_small
    sol = cx.c_grelu(X, y, P, lam=0.1).solve()
    U = sol.weights["U"].copy()
    norms = np.linalg.norm(U, axis=1)
    zero = int(np.argmin(norms))
    t = 1e-5
    rng = np.random.default_rng(0)
    d = rng.standard_normal(U.shape[1])
    U[zero] = t * norms.max() * d / np.linalg.norm(d)
    moved = dataclasses.replace(sol, weights={"U": U})
    K = cx.kkt(moved)
    assert zero in K.support
    assert K.alignment_residual > 0.1                     # direction is noise
    assert K.norm_complementarity <= 2 * t * (1 + 1e-6) + cx.kkt(sol).norm_complementarity
    assert K.satisfied(1e-4) and not K.satisfied(1e-8)
