"""First-layer penalties (convexnn.formulations.penalties) and the programs, maps and R-FISTA using them.

Every check is against an independent computation: scipy's minimizer for the prox, CVXPY for the
dual norm's definition, Clarabel for the programs, the network objective for the maps.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize

import convexnn as cx
from convexnn.backend import NUMPY
from convexnn.errors import InputError
from convexnn.formulations.penalties import GroupL2, Nuclear, SparseGroup, get_penalty, sparse_group_dual_norm
from convexnn.solvers.fista import solve_gated
from convexnn.solvers.gap import lam_max, missing_penalty_support
from convexnn.solvers.operators import MaskedDesign

TIGHT = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}
RATIOS = [0.0, 0.25, 0.6, 0.95]


def _R(u: np.ndarray, a: float) -> float:
    return (1 - a) * float(np.linalg.norm(u)) + a * float(np.sum(np.abs(u)))


# ----------------------------------------------------------------------------- the penalty's math
@pytest.mark.parametrize("a", RATIOS)
def test_prox_matches_numerical_prox(a):
    rng = np.random.default_rng(0)
    pen = SparseGroup(a)
    V = rng.standard_normal((4, 5)) * np.array([[3.0], [1.0], [0.3], [0.05]])
    tau = 0.4
    P = pen.prox(V, tau)
    for v, p in zip(V, P):
        def obj(x, v=v):
            return 0.5 * float(np.sum((x - v) ** 2)) + tau * _R(x, a)
        best = min((minimize(obj, x0, method="Powell", options={"xtol": 1e-12, "ftol": 1e-15, "maxiter": 50000})
                    for x0 in (v, p, np.zeros_like(v))), key=lambda r: r.fun)
        # the closed form is at least as good as the numerical minimizer, and its optimality
        # condition (v - p in tau * dR(p)) holds: R*( (v - p)/tau ) <= 1 and <v - p, p> = tau R(p)
        assert obj(p) <= best.fun + 1e-10
        g = (v - p) / tau
        assert sparse_group_dual_norm(g[None, :], a)[0] <= 1 + 1e-12
        assert float(g @ p) == pytest.approx(_R(p, a), abs=1e-12)


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=8), st.floats(0.0, 0.99),
       st.floats(0.01, 5.0))
def test_prox_optimality_condition(v, a, tau):
    """p = prox_{tau R}(v) iff (v - p)/tau is a subgradient of R at p: R*((v-p)/tau) <= 1 and
    <(v-p)/tau, p> = R(p) (checked with the independent sorted-root dual norm)."""
    v = np.array(v)
    p = SparseGroup(a).prox(v[None, :], tau)[0]
    g = (v - p) / tau
    scale = 1.0 + float(np.abs(v).sum()) / tau
    assert sparse_group_dual_norm(g[None, :], a)[0] <= 1 + 1e-12 * scale
    assert float(g @ p) == pytest.approx(_R(p, a), abs=1e-12 * scale * (1 + _R(p, a)))


def test_prox_of_group_l2_is_group_soft_threshold():
    V = np.array([[3.0, 4.0], [0.1, 0.1]])
    np.testing.assert_allclose(GroupL2().prox(V, 1.0), [[2.4, 3.2], [0.0, 0.0]])
    np.testing.assert_array_equal(SparseGroup(0.0).prox(V, 1.0), GroupL2().prox(V, 1.0))


@pytest.mark.parametrize("a", RATIOS)
def test_dual_norm_matches_definition_and_fenchel_young(a):
    rng = np.random.default_rng(1)
    pen = SparseGroup(a)
    G = rng.standard_normal((5, 4))
    G[0] = 0.0
    G[1, :2] = 0.0
    G[2] = [1.0, 1.0, 1.0, 1.0]  # ties in |g|
    dn = pen.dual_norms(G)
    up = pen.dual_norms_upper(G)
    for g, t, t_up in zip(G, dn, up):
        u = cp.Variable(4)
        prob = cp.Problem(cp.Maximize(g @ u), [(1 - a) * cp.norm(u, 2) + a * cp.norm(u, 1) <= 1])
        prob.solve(solver="CLARABEL", **TIGHT)
        assert t == pytest.approx(prob.value, abs=1e-7)
        assert t <= t_up <= t * (1 + 1e-8) + 1e-300
        # Fenchel-Young: <g, u> <= R(u) R*(g) for random u, with equality at the maximizer
        for w in rng.standard_normal((20, 4)):
            assert float(g @ w) <= _R(w, a) * t * (1 + 1e-12) + 1e-14
        if t > 0:
            assert float(g @ u.value) == pytest.approx(t * _R(u.value, a), rel=1e-6)


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=7), st.floats(0.0, 0.99))
def test_dual_norm_root_property(g, a):
    """R*(g) = t solves ||S_{ta}(g)||_2 = t (1 - a) (or is 0 for g = 0)."""
    g = np.array(g)
    t = float(SparseGroup(a).dual_norms(g[None, :])[0])
    lhs = float(np.linalg.norm(np.maximum(np.abs(g) - t * a, 0.0)))
    assert lhs == pytest.approx(t * (1 - a), abs=1e-9 * max(1.0, float(np.abs(g).sum())))
    assert t <= float(np.linalg.norm(g)) * (1 + 1e-12) + 1e-300  # R >= ||.||_2


def test_get_penalty_and_bad_input():
    assert get_penalty() == GroupL2() and get_penalty("group_l2").group_l2
    assert get_penalty(l1_ratio=0.0) is get_penalty()  # a = 0 is the group lasso
    assert get_penalty(SparseGroup(0.0)) is get_penalty()
    assert get_penalty("sparse_group", 0.3) == SparseGroup(0.3)
    assert get_penalty(l1_ratio=0.3).name == "sparse_group"
    for bad in (1.0, -0.1, float("nan"), "0.5", True):
        with pytest.raises(InputError, match="l1_ratio"):
            SparseGroup(bad)
    with pytest.raises(InputError, match="unknown penalty"):
        get_penalty("lasso")
    with pytest.raises(InputError, match="l1_ratio"):
        get_penalty("group_l2", 0.5)


# ----------------------------------------------------------------------------- programs
def _data(seed=0, n=24, d=3, P=16):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X[:, 0], 0) - 0.5 * X[:, 1] + 0.05 * rng.standard_normal(n)
    return X, y, cx.sample_patterns(X, P, seed=seed)


@pytest.mark.parametrize("build", [cx.c_grelu, cx.c_relu])
def test_l1_ratio_zero_is_todays_program_exactly(build):
    X, y, pats = _data()
    f0 = build(X, y, pats, 0.3)
    f1 = build(X, y, pats, 0.3, l1_ratio=0.0)
    f2 = build(X, y, pats, 0.3, penalty=SparseGroup(0.0))
    d0 = f0.problem.get_problem_data(cp.CLARABEL)[0]
    for f in (f1, f2):
        assert f.penalty == GroupL2()
        d = f.problem.get_problem_data(cp.CLARABEL)[0]
        for key in ("A", "c", "b"):
            a, b = d0[key], d[key]
            if hasattr(a, "toarray"):
                a, b = a.toarray(), b.toarray()
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("build", [cx.c_grelu, cx.c_relu])
@pytest.mark.parametrize("a", [0.3, 0.8])
def test_program_value_is_loss_plus_penalty_and_maps_to_network(build, a):
    X, y, pats = _data(1)
    f = build(X, y, pats, 0.2, l1_ratio=a)
    sol = f.solve("CLARABEL", **TIGHT)
    assert f.penalty == SparseGroup(a)
    w = sol.weights
    blocks = [w["U"]] if "U" in w else [w["V"], w["W"]]
    reg = sum(_R(u, a) for B in blocks for u in B)
    assert sol.value == pytest.approx(f.loss.value(sol.fit, y) + 0.2 * reg, rel=1e-9)
    net = sol.to_network()
    assert net.penalty == SparseGroup(a)
    # the network objective with weight decay (lam/2) sum_j R(W1_j)^2 + w2_j^2 equals the convex one
    # (C-ReLU: up to the interior point's cone violation, ~1e-9)
    assert net.objective(X, y, 0.2) == pytest.approx(sol.objective(), rel=1e-7)
    manual = 0.5 * sum(_R(c, a) ** 2 for c in net.W1.T) + 0.5 * float(np.sum(net.w2 ** 2))
    assert net.regularizer() == pytest.approx(manual, rel=1e-12)
    # and back: network -> convex weights (on the neurons' own patterns), objective preserved
    model = cx.from_network(net, X)
    assert model.penalty == SparseGroup(a)
    assert model.objective(y, 0.2) == pytest.approx(net.objective(X, y, 0.2), rel=1e-9)


def test_sparse_group_program_differs_and_larger_penalty_costs_more():
    X, y, pats = _data(2)
    vals = [cx.c_grelu(X, y, pats, 0.2, l1_ratio=a).solve("CLARABEL", **TIGHT).value for a in (0.0, 0.4, 0.8)]
    assert vals[0] < vals[1] < vals[2]  # R_a increases with a pointwise (||u||_1 >= ||u||_2)


def test_network_balance_uses_the_penalty():
    rng = np.random.default_rng(3)
    W1, w2 = rng.standard_normal((3, 4)), rng.standard_normal(4)
    net = cx.TwoLayerReLU(W1, w2, penalty=SparseGroup(0.5))
    bal = net.balanced()
    X = rng.standard_normal((10, 3))
    np.testing.assert_allclose(bal.predict(X), net.predict(X), atol=1e-12)
    np.testing.assert_allclose([_R(c, 0.5) for c in bal.W1.T], np.abs(bal.w2), rtol=1e-12)
    assert bal.regularizer() == pytest.approx(sum(_R(c, 0.5) * abs(b) for c, b in zip(W1.T, w2)), rel=1e-12)
    assert bal.regularizer() <= net.regularizer()
    with pytest.raises(InputError, match="nuclear"):
        cx.TwoLayerReLU(W1, w2, penalty=Nuclear())


def test_bad_penalty_combinations_are_refused():
    X, y, pats = _data()
    Y = np.column_stack([y, -y])
    with pytest.raises(InputError, match="nuclear"):
        cx.c_grelu(X, Y, pats, 0.1, vector_reg="nuclear", l1_ratio=0.5)
    with pytest.raises(InputError, match="vector_reg"):
        cx.c_grelu(X, y, pats, 0.1, penalty="nuclear")
    with pytest.raises(InputError, match="l1_ratio"):
        cx.c_relu(X, y, pats, 0.1, l1_ratio=1.0)
    assert cx.c_grelu(X, Y, pats, 0.1, vector_reg="nuclear").penalty.name == "nuclear"


def test_vector_output_group_penalty_applies_per_column():
    X, y, pats = _data(4, P=8)
    Y = np.column_stack([y, np.sin(X[:, 2])])
    f = cx.c_grelu(X, Y, pats, 0.1, l1_ratio=0.5)
    sol = f.solve("CLARABEL", **TIGHT)
    U = sol.weights["U"]
    reg = sum(_R(U[i, :, k], 0.5) for i in range(U.shape[0]) for k in range(2))
    assert sol.value == pytest.approx(f.loss.value(sol.fit, Y) + 0.1 * reg, rel=1e-8)
    assert sol.to_network().objective(X, Y, 0.1) == pytest.approx(sol.objective(), rel=1e-8)


# ----------------------------------------------------------------------------- R-FISTA
@pytest.mark.parametrize("a", [0.0, 0.3, 0.9])
def test_fista_matches_interior_point(a):
    X, y, pats = _data(5, n=30, d=4, P=20)
    f = cx.c_grelu(X, y, pats, 0.15, l1_ratio=a)
    ip = f.solve("CLARABEL", **TIGHT)
    op = MaskedDesign(f.Xa, pats.masks, NUMPY)
    r = solve_gated(op, f.loss, y, 0.15, tol=1e-11, max_iter=50000, penalty=f.penalty)
    assert r.converged
    # both are within their certified / interior-point accuracy of the same optimum
    assert r.gap.primal == pytest.approx(ip.value, abs=1e-6 * max(1.0, abs(ip.value)))
    assert f.objective({"U": r.U}) == pytest.approx(r.gap.primal, rel=1e-12)
    assert r.gap.dual <= ip.value + 1e-7  # weak duality (the dual uses R*)


def test_large_l1_ratio_selects_features():
    """Only feature 0 matters; a large l1_ratio zeroes the other features in every neuron."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((40, 5))
    y = np.maximum(X[:, 0], 0) + 0.5 * X[:, 0]
    pats = cx.sample_patterns(X, 30, seed=0)
    op = MaskedDesign(pats.check(X), pats.masks, NUMPY)
    lam = 0.05 * lam_max(op.Xa, pats.masks, y, penalty=SparseGroup(0.9))
    dense = solve_gated(op, cx.get_loss("squared"), y, lam, tol=1e-10, max_iter=50000)
    sparse = solve_gated(op, cx.get_loss("squared"), y, lam, tol=1e-10, max_iter=50000, penalty=SparseGroup(0.9))
    assert sparse.converged and dense.converged
    used_dense = np.flatnonzero(np.any(dense.U[:, :5] != 0, axis=0))
    used_sparse = np.flatnonzero(np.any(sparse.U[:, :5] != 0, axis=0))
    assert len(used_dense) == 5
    assert 0 in used_sparse and len(used_sparse) < 5
    # the zeros are those of the optimum: the interior point agrees on the value
    f = cx.c_grelu(X, y, pats, lam, l1_ratio=0.9)
    assert sparse.gap.primal == pytest.approx(f.solve("CLARABEL", **TIGHT).value, abs=1e-6)


def test_lam_max_with_penalty_gives_zero_solution():
    X, y, pats = _data(7)
    pen = SparseGroup(0.5)
    Xa = pats.check(X)
    lm = lam_max(Xa, pats.masks, y, penalty=pen)
    assert lm <= lam_max(Xa, pats.masks, y) * (1 + 1e-12)  # R* <= ||.||_2
    U = cx.c_grelu(X, y, pats, 1.001 * lm, penalty=pen).solve("CLARABEL", **TIGHT).weights["U"]
    assert np.max(np.abs(U)) < 1e-7
    U = cx.c_grelu(X, y, pats, 0.9 * lm, penalty=pen).solve("CLARABEL", **TIGHT).weights["U"]
    assert np.max(np.abs(U)) > 1e-4


def test_missing_penalty_support_names_the_solvers():
    X, y, pats = _data()
    g, r = cx.c_grelu(X, y, pats, 0.1, l1_ratio=0.5), cx.c_relu(X, y, pats, 0.1, l1_ratio=0.5)
    assert missing_penalty_support(g, "fista") is None
    assert "Newton polish" in missing_penalty_support(g, "gated_polish")
    assert "C-GReLU" in missing_penalty_support(r, "fista")
    assert missing_penalty_support(r, "relu") is None            # the augmented Lagrangian has the prox
    assert "active-set polish" in missing_penalty_support(r, "relu_polish")
    assert missing_penalty_support(cx.c_relu(X, y, pats, 0.1), "relu") is None


@pytest.mark.parametrize("device", [None, pytest.param("cpu", marks=pytest.mark.slow)])
def test_solve_end_to_end_with_sparse_group(device):
    """``convexnn.solve`` runs R-FISTA with the penalty (numpy and torch) and agrees with the
    interior point; C-ReLU with the penalty runs the augmented Lagrangian with its prox (the
    active-set polish solves the group lasso only) and agrees with the interior point too."""
    if device == "cpu":
        pytest.importorskip("torch")
    X, y, pats = _data(8, n=30, d=4, P=20)
    f = cx.c_grelu(X, y, pats, 0.3, l1_ratio=0.7)
    ip = f.solve("CLARABEL", **TIGHT).value
    sol = cx.solve(f, method="first_order", device=device, tol=1e-10)
    assert sol.status == "optimal" and sol.value == pytest.approx(ip, abs=1e-6 * max(1.0, ip))
    assert sol.info["dual_value"] <= ip + 1e-7
    g = cx.c_relu(X, y, pats, 0.3, l1_ratio=0.7)
    ipr = g.solve("CLARABEL", **TIGHT).value
    solr = cx.solve(g, method="first_order", device=device, tol=1e-8)
    assert solr.status == "optimal" and solr.solver == "al"
    assert solr.value == pytest.approx(ipr, abs=1e-6 * max(1.0, ipr))
    assert solr.info["dual_value"] <= ipr + 1e-7
