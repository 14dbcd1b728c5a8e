"""Shared test configuration: deterministic hypothesis runs, exact pattern sets for tiny data."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import convexnn as cx

# Property tests draw the same instances on every run (CI must not be flaky on an unlucky
# draw); `HYPOTHESIS_PROFILE=explore pytest` draws fresh ones when hunting for bugs.
settings.register_profile("ci", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _vertex_patterns(X: np.ndarray, bias: bool) -> cx.Patterns:
    """All chambers of the arrangement {Xa g = 0}, for data in general position.

    Every chamber of a central arrangement whose normals span R^d' touches a vertex (a ray
    where d'-1 hyperplanes meet). For each such ray v and each sign vector s of those
    hyperplanes, g = v + eps * pinv(A_S) s lies in the chamber with signs s next to v.
    Independent of convexnn.enumerate_patterns (used to cross-check it).
    """
    Xa = np.hstack([X, np.ones((X.shape[0], 1))]) if bias else X
    n, d = Xa.shape
    gates = []
    if d == 1:
        gates = [np.array([1.0]), np.array([-1.0])]
    for S in itertools.combinations(range(n), d - 1):
        A = Xa[list(S)]
        _, sv, vt = np.linalg.svd(A)
        v = vt[-1]
        B = np.linalg.pinv(A)
        for sgn_v in (1.0, -1.0):
            for s in itertools.product((1.0, -1.0), repeat=d - 1):
                gates.append(sgn_v * v + 1e-5 * (B @ np.array(s)))
    G = np.array(gates).T
    return cx.Patterns.from_gates(X, G, bias=bias, kind="exact", exact=True)


@pytest.fixture(scope="session")
def exact_patterns():
    """``exact_patterns(X, bias)``: the complete chamber set, from :func:`convexnn.enumerate_patterns`."""

    def build(X: np.ndarray, bias: bool = False) -> cx.Patterns:
        return cx.enumerate_patterns(X, bias=bias)

    return build

@pytest.fixture(scope="session")
def vertex_patterns():
    """The vertex construction itself (to cross-check enumerate_patterns)."""
    return _vertex_patterns


@pytest.fixture(scope="session")
def bn_two_group_lasso():
    """``value(x, y, lam)``: the optimum of the d = 1 batch-norm ReLU problem without bias, solved
    directly as a two-group lasso (Ergen et al., ICLR 2022): batch normalization is scale invariant,
    so every neuron is a normalized (x)_+ or (-x)_+ plus a shift."""
    import cvxpy as cp

    def value(x: np.ndarray, y: np.ndarray, lam: float) -> float:
        groups = []
        for h in (np.maximum(x, 0), np.maximum(-x, 0)):
            c = h - h.mean()
            groups.append(np.column_stack([c / np.linalg.norm(c), np.ones_like(x)]))
        z = [cp.Variable(2), cp.Variable(2)]
        pred = groups[0] @ z[0] + groups[1] @ z[1]
        lasso = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(pred - y) + lam * (cp.norm(z[0]) + cp.norm(z[1]))))
        lasso.solve(solver=cp.CLARABEL)
        return float(lasso.value)

    return value


@pytest.fixture(scope="session")
def huber_stress_program():
    """``program(seed) -> (X, y, patterns, lam, loss, bias)``: a random scalar-output Huber program of the
    held-out stress draws (n = 20-200, d = 1-5, columns of mixed scales, delta from 1e-6 to 1e6, targets
    1e-3 to 1e3 with Student-t noise, lam from 1e-4 to 0.8 lam_max), reproducible by its seed."""

    def program(seed: int):
        rng = np.random.default_rng(9000 + seed)
        n, d, P = int(rng.integers(20, 200)), int(rng.integers(1, 6)), int(rng.integers(5, 60))
        X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-2, 2, d)
        delta = float(10.0 ** rng.uniform(-6, 6))
        y = (np.maximum(X @ rng.standard_normal(d), 0) + rng.standard_t(2, n)) * 10.0 ** rng.uniform(-3, 3)
        if rng.random() < 0.15 or rng.random() < 0.2:
            raise ValueError(f"seed {seed} draws zero or vector targets")
        bias = bool(rng.random() < 0.8)
        rng.choice(["c_relu", "c_grelu"])  # the sweep's program draw, kept for the seeds' sake
        pat = cx.Patterns.from_gates(X, rng.standard_normal((d + int(bias), P)), bias=bias)
        loss = cx.HuberLoss(delta)
        Xa = np.hstack([X, np.ones((n, 1))]) if bias else X
        lam = 10.0 ** rng.uniform(-4, -0.1) * cx.solvers.lam_max(Xa, pat.masks, y, loss)
        return X, y, pat, lam, loss, bias

    return program


@pytest.fixture(scope="session")
def seven_decades_logistic():
    """``program(seed) -> c_grelu formulation``: logistic C-GReLU on 110 samples whose 10 columns spread
    over seven decades of scale, 100 gates, ``lam = 5e-4 lam_max`` (nearly every group active, more
    variables than samples): the ``stress`` family of ``bench/bench_heldout.py``, reproducible by its seed."""

    def program(seed: int):
        rng = np.random.default_rng(seed)
        n, d, P = 110, 10, 100
        X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-3, 4, d)
        z = np.maximum(X @ rng.standard_normal(d) / 1e3, 0.0) + 0.3 * rng.standard_normal(n)
        y = np.where(z > np.median(z), 1.0, -1.0)
        pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
        lam = 5e-4 * cx.solvers.lam_max(np.hstack([X, np.ones((n, 1))]), pat.masks, y, "logistic")
        return cx.c_grelu(X, y, pat, lam, loss="logistic")

    return program
