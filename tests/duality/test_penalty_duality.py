"""Duality with a first-layer penalty R (sparse group lasso): dual program, dual values, certificates.

Independent references: the primal programs solved by Clarabel (strong duality), per-pattern
CVXPY maximization for s_R(v), and the global optimum of the penalized network problem computed
as the C-ReLU program over the complete pattern set.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import convexnn as cx
from convexnn.duality.dual import relu_dual_value
from convexnn.errors import InputError
from convexnn.formulations.penalties import SparseGroup

TIGHT = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((16, 2))
    y = np.maximum(X[:, 0], 0) - 0.7 * X[:, 1] + 0.1 * rng.standard_normal(16)
    return X, y, cx.enumerate_patterns(X)


@pytest.mark.parametrize("build", [cx.c_grelu, cx.c_relu])
@pytest.mark.parametrize("a", [0.3, 0.85])
def test_strong_duality(data, build, a):
    X, y, pats = data
    f = build(X, y, pats, 0.3, l1_ratio=a)
    sol = f.solve("CLARABEL", **TIGHT)
    D = cx.dual_problem(f)
    D.solve(solver="CLARABEL", **TIGHT)
    assert D.value == pytest.approx(sol.value, abs=1e-7)
    # the gap of the pair is ~0 and nonnegative; the dual point needs (almost) no scaling
    g = cx.duality_gap(f, sol, D)
    assert -1e-9 <= g.gap <= 1e-6 and g.scale > 1 - 1e-6
    # and the dual of the group lasso is a different program (its optimum differs)
    f0 = build(X, y, pats, 0.3)
    assert abs(f0.solve("CLARABEL", **TIGHT).value - sol.value) > 1e-3


@pytest.mark.parametrize("a", [0.2, 0.7])
def test_relu_dual_value_matches_per_pattern_maximum(data, a):
    X, y, pats = data
    Xa, M = pats.check(X), pats.masks
    v = np.random.default_rng(2).standard_normal(len(y))
    r = relu_dual_value(Xa, M, v, SparseGroup(a))
    best = 0.0
    for i in range(M.shape[1]):
        s = np.where(M[:, i], 1.0, -1.0)
        g = Xa.T @ (M[:, i] * v)
        for sig in (1.0, -1.0):
            u = cp.Variable(Xa.shape[1])
            prob = cp.Problem(cp.Maximize(sig * g @ u),
                              [cp.multiply(s, Xa @ u) >= 0, (1 - a) * cp.norm(u, 2) + a * cp.norm(u, 1) <= 1])
            prob.solve(solver="CLARABEL", **TIGHT)
            best = max(best, prob.value)
    assert r.method == "dual norm at cone multipliers"
    assert best - 1e-7 <= r.value <= best * (1 + 1e-6)  # an upper bound, and a tight one
    assert r.value < r.euclidean  # strictly better than the Euclidean bound here


@pytest.mark.parametrize("a", [0.3, 0.85])
def test_certificate_is_valid_and_certifies_the_optimum(data, a):
    X, y, pats = data
    lam = 0.3
    sol = cx.c_relu(X, y, pats, lam, l1_ratio=a).solve("CLARABEL", **TIGHT)
    opt = sol.value  # global optimum of the penalized network problem (complete pattern set)
    net = sol.to_network()
    cert = cx.certify(net, X, y, lam)  # the network carries its penalty
    assert cert.primal == pytest.approx(net.objective(X, y, lam), rel=1e-12)
    assert cert.lower_bound <= opt + 1e-8
    assert cert.is_optimal and "sparse_group" in cert.note
    # a perturbed (suboptimal) network: the bound is still below the optimum, not certified
    rng = np.random.default_rng(0)
    bad = cx.TwoLayerReLU(net.W1 + 0.05 * rng.standard_normal(net.W1.shape), net.w2, penalty=net.penalty)
    c2 = cx.certify(bad, X, y, lam)
    assert c2.lower_bound <= opt + 1e-8 <= c2.primal
    assert not c2.is_optimal
    # sampled patterns: the Euclidean pattern-free bound, still valid
    c3 = cx.certify(net, X, y, lam, patterns=cx.sample_patterns(X, 5, seed=1))
    assert c3.lower_bound <= opt + 1e-8


def test_certificate_of_group_l2_network_differs_and_bab_is_refused(data):
    X, y, pats = data
    sol = cx.c_relu(X, y, pats, 0.3, l1_ratio=0.5).solve("CLARABEL", **TIGHT)
    net = sol.to_network()
    plain = cx.certify(net, X, y, 0.3, penalty="group_l2")
    assert plain.primal < cx.certify(net, X, y, 0.3).primal  # ||w||_2 <= R(w)
    with pytest.raises(InputError, match="branch-and-bound"):
        cx.certify(net, X, y, 0.3, method="bab")


def test_euclidean_routines_refuse_other_penalties(data):
    """kkt, optimal_set and prune are group-lasso mathematics: with a sparse-group penalty they refuse."""
    X, y, pats = data
    f = cx.c_relu(X, y, pats, 0.3, l1_ratio=0.5)
    sol = f.solve("CLARABEL", **TIGHT)
    for fn in (cx.kkt, cx.optimal_set):
        with pytest.raises(InputError, match="group-lasso"):
            fn(sol)
    with pytest.raises(InputError, match="group-lasso"):
        cx.prune(sol, X)
    with pytest.raises(InputError, match="group-lasso"):
        cx.prune(sol.to_network(), X)
    # the same routines still run on the group lasso
    g = cx.c_relu(X, y, pats, 0.3).solve("CLARABEL", **TIGHT)
    assert cx.kkt(g).max_residual < 1e-5
