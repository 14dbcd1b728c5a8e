"""C-ReLU / C-GReLU / min-norm programs: equivalences, the Pilanci (2021 talk) example, DPP, solvers, errors."""

from __future__ import annotations

import warnings
from unittest import mock

import cvxpy as cp
import numpy as np
import pytest
from cvxpy.reductions.dcp2cone.dcp2cone import Dcp2Cone
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cx
from convexnn.errors import ConvexNNWarning, InputError, SolverError
from convexnn.formulations.two_layer import ZERO_RTOL

LAM = 0.1


def _data(seed: int, n: int, d: int, loss: str, c: int | None = None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n) if c is None else rng.standard_normal((n, c))
    if loss != "squared":
        y = np.where(y >= 0, 1.0, -1.0)
    return X, y


# ----------------------------------------------------------------------------- C -> NC exactness
@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 6), d=st.integers(1, 2), bias=st.booleans(),
       loss=st.sampled_from(["squared", "logistic", "hinge"]))
def test_p_convex_equals_mapped_network_objective(exact_patterns, seed, n, d, bias, loss):
    X, y = _data(seed, n, d, loss)
    P = exact_patterns(X, bias)
    f = cx.c_relu(X, y, P, LAM, loss=loss)
    sol = f.solve(**_tight())
    net = sol.to_network()
    assert isinstance(net, cx.TwoLayerReLU) and net.bias == bias
    p_net = net.objective(X, y, LAM, loss=loss)
    assert p_net == pytest.approx(sol.value, rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(net.predict(X), sol.fit, atol=1e-7)
    assert sol.constraint_violation <= 1e-7
    # gated: same identity with the GatedReLU network (Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2), and gated <= ReLU
    g = cx.c_grelu(X, y, P, LAM, loss=loss).solve(**_tight())
    gnet = g.to_network()
    assert isinstance(gnet, cx.GatedReLU)
    assert gnet.objective(X, y, LAM, loss=loss) == pytest.approx(g.value, rel=1e-6, abs=1e-9)
    assert g.value <= sol.value * (1 + 1e-7) + 1e-9


def _tight() -> dict:
    return {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 500}


# ----------------------------------------------------------------------------- weak side: GD
def _gd_objective(X: np.ndarray, y: np.ndarray, lam: float, m: int, rng, bias: bool, iters: int = 2000) -> float:
    Xa = np.hstack([X, np.ones((X.shape[0], 1))]) if bias else X
    W = rng.standard_normal((Xa.shape[1], m))
    w = rng.standard_normal(m)
    step = 0.5 / (np.linalg.norm(Xa, 2) ** 2 + 1.0) / m ** 0.5
    for _ in range(iters):
        Z = Xa @ W
        H = np.maximum(Z, 0.0)
        r = H @ w - y
        gw = H.T @ r + lam * w
        gW = Xa.T @ ((r[:, None] * w[None, :]) * (Z > 0)) + lam * W
        W -= step * gW
        w -= step * gw
    net = cx.TwoLayerReLU(W, w, bias=bias)
    return net.objective(X, y, lam)


@pytest.mark.slow
@pytest.mark.parametrize("bias", [False, True])
def test_gradient_descent_never_below_p_convex(exact_patterns, bias):
    rng = np.random.default_rng(3)
    X, y = _data(11, 6, 2, "squared")
    P = exact_patterns(X, bias)
    p_convex = cx.c_relu(X, y, P, LAM).solve(**_tight()).value
    values = [_gd_objective(X, y, LAM, m, rng, bias) for m in (2, 4, 8, 16) for _ in range(3)]
    assert min(values) >= p_convex - 1e-6 * max(1.0, p_convex)
    # the restarts do reach the neighbourhood of the optimum (the test is not vacuous)
    assert min(values) <= 1.5 * p_convex


# ----------------------------------------------------------------------------- gated vs ReLU
@settings(max_examples=8, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), bias=st.booleans())
def test_gated_optimum_leq_relu_optimum_with_sampled_patterns(seed, bias):
    rng = np.random.default_rng(seed)
    X, y = _data(seed, 10, 3, "squared")
    P = cx.Patterns.from_gates(X, rng.standard_normal((3 + bias, 40)), bias=bias)
    relu = cx.c_relu(X, y, P, LAM).solve(**_tight()).value
    gated = cx.c_grelu(X, y, P, LAM).solve(**_tight()).value
    assert gated <= relu + 1e-8


# ----------------------------------------------------------------------------- the Pilanci (2021 talk) example
X3 = np.array([[2.0, 2.0], [3.0, 3.0], [1.0, 0.0]])
Y3 = np.array([1.0, 2.0, -1.0])


def test_slide_example_n3_d2_builds_the_slide_program(exact_patterns):
    P = exact_patterns(X3, False)
    got = {tuple(m.astype(int)) for m in P}
    assert got == {(1, 1, 1), (1, 1, 0), (0, 0, 0), (0, 0, 1)}  # D1, D2, D3 = 0, D4 of the slide
    f = cx.c_relu(X3, Y3, P.without_empty(), LAM)
    assert f.n_patterns == 3
    assert f.variables["V"].shape == (2, 3) and f.variables["W"].shape == (2, 3)
    assert set(f.constraints) == {"cone_v", "cone_w"}
    assert len(f.problem.constraints) == 2
    assert f.constraints["cone_v"].shape == (3, 3)
    # evaluate the program's expressions at random weights and compare with the slide's formula
    rng = np.random.default_rng(0)
    V, W = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    f.variables["V"].value, f.variables["W"].value = V, W
    cols = {tuple(P.without_empty().masks[:, i].astype(int)): i for i in range(3)}
    i1, i2, i4 = cols[(1, 1, 1)], cols[(1, 1, 0)], cols[(0, 0, 1)]
    A2 = np.array([[2.0, 2.0], [3.0, 3.0], [0.0, 0.0]])
    A4 = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    U = V - W
    fit = X3 @ U[:, i1] + A2 @ U[:, i2] + A4 @ U[:, i4]
    reg = np.linalg.norm(V, axis=0).sum() + np.linalg.norm(W, axis=0).sum()
    slide = 0.5 * np.sum((fit - Y3) ** 2) + LAM * reg
    assert f.problem.objective.value == pytest.approx(slide, rel=1e-12)
    # constraints: (2 D_i - I) X u_i >= 0, which contains the slide's D_i X u_i >= 0 rows
    S = 2.0 * P.without_empty().masks - 1.0
    lhs = f.constraints["cone_v"].args
    values = [np.asarray(a.value) for a in lhs]
    # the constraint is 0 <= S * (X V) (cvxpy stores it as ``0 <= expr``): one side is S * X V
    assert any(v.shape == (3, 3) and np.allclose(v, S * (X3 @ V)) for v in values)
    # same optimum as the slide program written naively with explicit matrices
    blocks = [(np.eye(3), i1), (np.diag([1.0, 1.0, 0.0]), i2), (np.diag([0.0, 0.0, 1.0]), i4)]
    us = [cp.Variable(2) for _ in range(3)]
    vs = [cp.Variable(2) for _ in range(3)]
    expr = sum(D @ X3 @ (u - v) for (D, _), u, v in zip(blocks, us, vs))
    cons = []
    for (D, _), u, v in zip(blocks, us, vs):
        Sd = 2 * D - np.eye(3)
        cons += [Sd @ X3 @ u >= 0, Sd @ X3 @ v >= 0]
    naive = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(expr - Y3)
                                   + LAM * sum(cp.norm(u) + cp.norm(v) for u, v in zip(us, vs))), cons)
    naive.solve(solver="CLARABEL")
    sol = f.solve()
    assert sol.value == pytest.approx(naive.value, rel=1e-6)
    # keeping the zero pattern D3 = 0 is harmless: same optimum, its blocks vanish
    sol4 = cx.c_relu(X3, Y3, P, LAM).solve()
    assert sol4.value == pytest.approx(sol.value, rel=1e-6)
    zero = int(np.flatnonzero(~P.masks.any(axis=0))[0])
    assert np.linalg.norm(sol4.V[zero]) + np.linalg.norm(sol4.W[zero]) < 1e-6


# ----------------------------------------------------------------------------- structure & DPP
def test_weights_and_constraints_follow_design_conventions():
    rng = np.random.default_rng(1)
    X, y = _data(1, 12, 3, "squared")
    P = cx.Patterns.from_gates(X, rng.standard_normal((4, 25)), bias=True)
    f = cx.c_relu(X, y, P, LAM)
    assert f.kind == "c_relu" and f.bias and f.Xa.shape == (12, 4)
    assert f.problem.is_dcp(dpp=True)
    assert isinstance(f.lam, cp.Parameter) and f.lam.is_nonneg()
    assert f.variables["V"].shape == (4, len(P))
    sol = f.solve()
    assert sol.V.shape == (len(P), 4) and sol.W.shape == (len(P), 4)
    for name in ("cone_v", "cone_w"):
        dual = f.constraints[name].dual_value
        assert dual.shape == (12, len(P)) and dual.min() >= -1e-7
    assert sol.objective() == pytest.approx(sol.value, rel=1e-6)
    g = cx.c_grelu(X, y, P, LAM)
    assert g.problem.is_dcp(dpp=True) and g.constraints == {}
    assert g.solve().U.shape == (len(P), 4)


def test_resolve_after_changing_lam_does_not_recompile():
    rng = np.random.default_rng(2)
    X, y = _data(2, 30, 3, "squared")
    P = cx.Patterns.from_gates(X, rng.standard_normal((3, 150)))
    for build in (cx.c_relu, cx.c_grelu):
        f = build(X, y, P, LAM)
        with mock.patch.object(Dcp2Cone, "apply", autospec=True, side_effect=Dcp2Cone.apply) as canon:
            first = f.solve()
            assert canon.call_count == 1
            f.lam.value = 0.03
            second = f.solve()
            assert canon.call_count == 1  # cached parametrized program: no canonicalization
        assert second.lam == 0.03
        fresh = build(X, y, P, 0.03).solve()
        assert second.value == pytest.approx(fresh.value, rel=1e-6)


def test_clarabel_and_scs_agree():
    rng = np.random.default_rng(4)
    X, y = _data(4, 15, 2, "squared")
    P = cx.Patterns.from_gates(X, rng.standard_normal((3, 30)), bias=True)
    for build in (cx.c_relu, cx.c_grelu):
        f = build(X, y, P, LAM)  # the same formulation, solved by both
        a = f.solve(solver="CLARABEL")
        b = f.solve(solver="SCS", eps_abs=1e-9, eps_rel=1e-9, max_iters=200_000)
        assert (a.solver, b.solver) == ("CLARABEL", "SCS")
        assert b.value == pytest.approx(a.value, rel=1e-4)
        np.testing.assert_allclose(b.fit, a.fit, atol=1e-3)


def test_dropping_zero_blocks_is_safe():
    rng = np.random.default_rng(5)
    X, y = _data(5, 10, 2, "squared")
    P = cx.Patterns.from_gates(X, rng.standard_normal((2, 200)))
    sol = cx.c_relu(X, y, P, 0.5).solve(**_tight())
    norms = np.concatenate([np.linalg.norm(sol.V, axis=1), np.linalg.norm(sol.W, axis=1)])
    thr = ZERO_RTOL * max(norms.max(), np.linalg.norm(y) / np.linalg.norm(X))
    net = sol.to_network()
    assert net.n_neurons < 2 * len(P)  # some blocks were zero and dropped
    assert net.n_neurons == int(np.sum(norms > thr))
    assert net.objective(X, y, 0.5) == pytest.approx(sol.value, rel=1e-7)
    # setting the dropped blocks exactly to zero does not change the convex objective either
    V, W = sol.V.copy(), sol.W.copy()
    V[np.linalg.norm(V, axis=1) <= thr] = 0.0
    W[np.linalg.norm(W, axis=1) <= thr] = 0.0
    assert sol.formulation.objective({"V": V, "W": W}) == pytest.approx(sol.value, rel=1e-7)
    # an all-zero optimum (lam above the critical value) maps to the empty network
    for build in (cx.c_relu, cx.c_grelu):
        big = build(X, y, P, 1e3).solve()
        empty = big.to_network()
        assert empty.n_neurons == 0
        assert empty.objective(X, y, 1e3) == pytest.approx(0.5 * np.sum(y ** 2))
        assert big.value == pytest.approx(0.5 * np.sum(y ** 2), rel=1e-6)


# ----------------------------------------------------------------------------- vector outputs
@pytest.mark.parametrize("loss", ["squared", "hinge"])
def test_vector_output_group_programs_map_exactly(loss):
    rng = np.random.default_rng(6)
    X, Y = _data(6, 10, 2, loss, c=3)
    P = cx.Patterns.from_gates(X, rng.standard_normal((3, 15)), bias=True)
    for build, cls in ((cx.c_relu, cx.TwoLayerReLU), (cx.c_grelu, cx.GatedReLU)):
        sol = build(X, Y, P, LAM, loss=loss, vector_reg="group").solve(**_tight())
        key = "V" if build is cx.c_relu else "U"
        assert sol.weights[key].shape == (len(P), 3, 3)
        net = sol.to_network()
        assert isinstance(net, cls) and net.w2.shape[1] == 3
        assert np.all(np.count_nonzero(net.w2, axis=1) == 1)  # one output per neuron
        assert net.objective(X, Y, LAM, loss=loss) == pytest.approx(sol.value, rel=1e-6)
        np.testing.assert_allclose(net.predict(X), sol.fit, atol=1e-7)


def test_vector_output_nuclear_programs():
    rng = np.random.default_rng(7)
    X, Y = _data(7, 8, 2, "squared", c=2)
    P = cx.Patterns.from_gates(X, rng.standard_normal((2, 8)))
    g = cx.c_grelu(X, Y, P, LAM, vector_reg="nuclear").solve(**_tight())
    gnet = g.to_network()
    assert gnet.objective(X, Y, LAM) == pytest.approx(g.value, rel=1e-6)  # exact (SVD mapping)
    g_group = cx.c_grelu(X, Y, P, LAM, vector_reg="group").solve(**_tight())
    assert g.value <= g_group.value + 1e-7  # ||U||_* <= sum of column norms
    r = cx.c_relu(X, Y, P, LAM, vector_reg="nuclear").solve(**_tight())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvexNNWarning)
        net = r.to_network()
    np.testing.assert_allclose(net.predict(X), r.fit, atol=1e-6)
    assert net.objective(X, Y, LAM) >= r.value - 1e-6
    assert r.formulation.regularizer(r.weights) == pytest.approx(
        sum(np.linalg.norm(r.V[i], "nuc") + np.linalg.norm(r.W[i], "nuc") for i in range(len(P))))


# ----------------------------------------------------------------------------- min-norm programs
def test_min_norm_interpolation_regression_and_margin(exact_patterns):
    X, y = _data(8, 6, 2, "squared")
    P = exact_patterns(X, True)
    sol = cx.min_norm_interpolation(X, y, P).solve(**_tight())
    assert sol.formulation.kind == "min_norm" and "fit" in sol.formulation.constraints
    net = sol.to_network()
    np.testing.assert_allclose(net.predict(X), y, atol=1e-6)
    assert net.regularizer() == pytest.approx(sol.value, rel=1e-6)
    assert sol.constraint_violation <= 1e-6
    # the lam -> 0 limit: lam * (min norm) ~ p_convex(lam) for small lam
    small = cx.c_relu(X, y, P, 1e-4).solve(**_tight())
    assert small.value <= 1e-4 * sol.value + 1e-9
    assert small.value >= 0.9 * 1e-4 * sol.value
    yc = np.where(y >= 0, 1.0, -1.0)
    m = cx.min_norm_interpolation(X, yc, P, classification=True).solve(**_tight())
    mnet = m.to_network()
    assert np.min(yc * mnet.predict(X)) >= 1 - 1e-6
    assert mnet.regularizer() == pytest.approx(m.value, rel=1e-6)
    assert m.value <= sol.value + 1e-8  # exact fit of +-1 labels has margin 1


def test_min_norm_interpolation_infeasible_raises():
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    y = np.array([1.0, 2.0, 0.0])  # same point, two targets
    P = cx.Patterns.from_gates(X, np.random.default_rng(0).standard_normal((2, 50)))
    with pytest.raises(SolverError) as err:
        cx.min_norm_interpolation(X, y, P).solve()
    assert "infeasible" in str(err.value.status)


# ----------------------------------------------------------------------------- input errors
def test_input_errors():
    rng = np.random.default_rng(9)
    X, y = _data(9, 8, 2, "squared")
    P = cx.Patterns.from_gates(X, rng.standard_normal((2, 10)))
    with pytest.raises(InputError, match="rows"):
        cx.c_relu(X, y[:-1], P, LAM)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        cx.c_relu(Xn, y, P, LAM)
    yn = y.copy()
    yn[1] = np.inf
    with pytest.raises(InputError, match="NaN or infinite"):
        cx.c_grelu(X, yn, P, LAM)
    with pytest.raises(InputError, match=">"):
        cx.c_relu(X, y, P, -1.0)
    with pytest.raises(InputError, match="min_norm_interpolation"):
        cx.c_relu(X, y, P, 0.0)
    for loss in ("logistic", "hinge"):
        with pytest.raises(InputError, match="-1, \\+1"):
            cx.c_relu(X, y, P, LAM, loss=loss)
    other = rng.standard_normal((8, 2))
    with pytest.raises(InputError, match="another data matrix"):
        cx.c_relu(other, y, P, LAM)
    with pytest.raises(InputError, match="bias"):
        cx.c_relu(X, y, P, LAM, bias=True)
    with pytest.raises(InputError, match="vector_reg"):
        cx.c_relu(X, y, P, LAM, vector_reg="frobenius")
    with pytest.raises(InputError, match="Patterns"):
        cx.c_relu(X, y, np.ones((8, 3), dtype=bool), LAM)
    with pytest.raises(InputError, match="unknown loss"):
        cx.c_grelu(X, y, P, LAM, loss="l1")
    f = cx.c_relu(X, y, P, LAM)
    with pytest.raises(InputError, match="shape"):
        f.predict({"V": np.zeros((2, 2)), "W": np.zeros((2, 2))})


def test_exact_pattern_fixture_matches_independent_vertex_construction(exact_patterns, vertex_patterns):
    """The EXACT tests use enumerate_patterns; it must agree with the vertex construction of conftest."""
    rng = np.random.default_rng(12)
    for n, d, bias in [(5, 2, False), (6, 2, True), (5, 1, True), (4, 3, False)]:
        X = rng.standard_normal((n, d))
        P = exact_patterns(X, bias)
        assert P.exact and P == vertex_patterns(X, bias)
