"""Solution mappings NC <-> C and cone decompositions (gated -> ReLU)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cx
from convexnn.errors import InputError, SolverError

LAM = 0.1
TIGHT = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 500}


# ----------------------------------------------------------------------------- NC -> C -> NC
@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 10), d=st.integers(1, 3), m=st.integers(1, 6),
       bias=st.booleans(), loss=st.sampled_from(["squared", "logistic", "hinge"]))
def test_round_trip_preserves_predictions_and_objective(seed, n, d, m, bias, loss):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n) if loss == "squared" else np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
    net = cx.TwoLayerReLU(rng.standard_normal((d + bias, m)), rng.standard_normal(m), bias=bias)
    model = cx.from_network(net, X)
    assert model.kind == "c_relu" and set(model.weights) == {"V", "W"}
    np.testing.assert_allclose(model.predict(), net.predict(X), atol=1e-10)
    # convex objective <= network objective (Young + triangle inequality) ...
    assert model.objective(y, LAM, loss) <= net.objective(X, y, LAM, loss) + 1e-10
    back = model.to_network()
    np.testing.assert_allclose(back.predict(X), net.predict(X), atol=1e-10)
    assert back.objective(X, y, LAM, loss) == pytest.approx(model.objective(y, LAM, loss), rel=1e-10)
    # ... with equality for a balanced network whose neurons have distinct patterns or signs
    bal = net.balanced()
    keys = [(tuple(p), s) for p, s in zip(bal.patterns(X).T, np.sign(bal.w2))]
    if len(set(keys)) == m:
        assert cx.from_network(bal, X).objective(y, LAM, loss) == pytest.approx(
            bal.objective(X, y, LAM, loss), rel=1e-10)
        again = cx.from_network(bal, X).to_network()
        assert again.objective(X, y, LAM, loss) == pytest.approx(bal.objective(X, y, LAM, loss), rel=1e-10)


def test_from_network_lines_up_with_c_relu_solution():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 2)), rng.standard_normal(12)
    P = cx.Patterns.from_gates(X, rng.standard_normal((3, 60)), bias=True)
    sol = cx.c_relu(X, y, P, LAM).solve(**TIGHT)
    net = sol.to_network()
    model = cx.from_network(net, X, sol.formulation.patterns)
    assert model.patterns is sol.formulation.patterns
    assert model.V.shape == sol.V.shape and model.W.shape == sol.W.shape
    np.testing.assert_allclose(model.predict(), sol.fit, atol=1e-7)
    # blocks agree, except that a neuron on the boundary of two chambers (its pre-activation is
    # ~0 on some row) may land in either neighbour: the fit and the norms are the same
    same = np.isclose(model.V, sol.V, atol=1e-6).all(axis=1) & np.isclose(model.W, sol.W, atol=1e-6).all(axis=1)
    assert same.mean() >= 0.8
    as_sol = model.to_solution(y, LAM)
    assert as_sol.status == "from_network" and as_sol.formulation.kind == "c_relu"
    assert as_sol.value == pytest.approx(sol.value, rel=1e-6)
    assert as_sol.constraint_violation <= 1e-7


def test_from_network_gated_and_vector_outputs():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 2))
    Y = rng.standard_normal((10, 2))
    gates = rng.standard_normal((2, 4))
    gnet = cx.GatedReLU(gates, rng.standard_normal((2, 4)), rng.standard_normal((4, 2))).balanced()
    gm = cx.from_network(gnet, X, vector_reg="nuclear")
    assert gm.kind == "c_grelu" and gm.U.shape == (len(gm.patterns), 2, 2)
    np.testing.assert_allclose(gm.predict(), gnet.predict(X), atol=1e-10)
    if len(gm.patterns) == 4:  # one neuron per block: nuclear norm of a rank-one block is exact
        assert gm.objective(Y, LAM) == pytest.approx(gnet.objective(X, Y, LAM), rel=1e-10)
    np.testing.assert_allclose(gm.to_network().predict(X), gnet.predict(X), atol=1e-10)
    with pytest.raises(InputError, match="single output"):
        cx.from_network(gnet, X, vector_reg="group")
    # a ReLU vector network with one output per neuron, group convention
    w2 = np.zeros((3, 2))
    w2[[0, 1, 2], [0, 1, 1]] = [1.0, -2.0, 0.5]
    rnet = cx.TwoLayerReLU(rng.standard_normal((2, 3)), w2).balanced()
    rm = cx.from_network(rnet, X)
    np.testing.assert_allclose(rm.predict(), rnet.predict(X), atol=1e-10)
    assert rm.to_network().objective(X, Y, LAM) == pytest.approx(rnet.objective(X, Y, LAM), rel=1e-10)
    mixed = cx.TwoLayerReLU(rng.standard_normal((2, 2)), np.array([[1.0, -1.0], [1.0, 1.0]]))
    with pytest.raises(InputError, match="both signs"):
        cx.from_network(mixed, X, vector_reg="nuclear")


def test_from_network_errors():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((8, 2))
    net = cx.TwoLayerReLU(rng.standard_normal((2, 3)), rng.standard_normal(3))
    one = cx.Patterns.from_gates(X, np.array([[1.0], [0.0]]))
    with pytest.raises(InputError, match="not in the given"):
        cx.from_network(net, X, one)
    with pytest.raises(InputError, match="features"):
        cx.from_network(net, np.ones((4, 3)))
    with pytest.raises(InputError, match="bias"):
        cx.from_network(net, X, cx.Patterns.from_gates(X, rng.standard_normal((3, 5)), bias=True))
    with pytest.raises(InputError, match="TwoLayerReLU"):
        cx.from_network("net", X)


# ----------------------------------------------------------------------------- cone decomposition
@pytest.mark.parametrize("method", ["socp", "feasibility"])
@pytest.mark.parametrize("bias", [False, True])
def test_cone_decomposition_gives_identical_predictions(exact_patterns, method, bias):
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((7, 2)), rng.standard_normal(7)
    P = exact_patterns(X, bias)
    g = cx.c_grelu(X, y, P, LAM).solve(**TIGHT)
    dec = cx.cone_decomposition(g, X, method=method, **TIGHT)
    assert isinstance(dec.network, cx.TwoLayerReLU)
    np.testing.assert_allclose(dec.network.predict(X), g.fit, atol=1e-6)
    assert dec.max_prediction_error <= 1e-6
    # the ReLU network is feasible for the ReLU problem, whose optimum is between the two
    relu = cx.c_relu(X, y, P, LAM).solve(**TIGHT)
    assert g.value <= relu.value + 1e-8
    assert relu.value <= dec.relu_value + 1e-6
    assert dec.objective_change >= -1e-6
    assert dec.relu_value == pytest.approx(dec.network.objective(X, y, LAM), rel=1e-12)
    # C-ReLU weights on the gated patterns satisfy the cone constraints
    f = relu.formulation
    assert f.constraint_violation(dec.weights) <= 1e-6


def test_cone_decomposition_respects_thm_3_7_bound_for_full_row_rank():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((4, 6)), rng.standard_normal(4)  # n <= d: Prop 3.1 applies
    P = cx.Patterns.from_gates(X, rng.standard_normal((6, 40)))
    g = cx.c_grelu(X, y, P, 0.05).solve(**TIGHT)
    dec = cx.cone_decomposition(g, X, **TIGHT)
    assert dec.bound_applies and np.isfinite(dec.kappa)
    assert 0.0 - 1e-7 <= dec.objective_change <= dec.bound
    np.testing.assert_allclose(dec.network.predict(X), g.fit, atol=1e-6)


def test_cone_decomposition_errors_and_degenerate_cone():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((6, 2)), rng.standard_normal(6)
    P = cx.Patterns.from_gates(X, rng.standard_normal((2, 10)))
    relu = cx.c_relu(X, y, P, LAM).solve()
    with pytest.raises(InputError, match="c_grelu"):
        cx.cone_decomposition(relu, X)
    g = cx.c_grelu(X, y, P, LAM).solve()
    zero = cx.cone_decomposition(cx.c_grelu(X, y, P, 1e3).solve(), X)  # all-zero gated optimum
    assert zero.network.n_neurons == 0 and abs(zero.objective_change) < 1e-6
    with pytest.raises(InputError, match="method"):
        cx.cone_decomposition(g, X, method="lp")
    with pytest.raises(InputError, match="another data matrix"):
        cx.cone_decomposition(g, rng.standard_normal((6, 2)))
    # x and -x both on the gate's boundary: K = {u : x.u = 0} cannot carry a block with x.u != 0
    Xd = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    Pd = cx.Patterns.from_gates(Xd, np.array([[0.0], [1.0]]))  # pattern (1, 1, 1), degenerate cone
    gd = cx.c_grelu(Xd, np.array([1.0, -1.0, 0.0]), Pd, LAM).solve()
    assert abs(gd.U[0, 0]) > 0.1
    with pytest.raises(SolverError, match="no decomposition"):
        cx.cone_decomposition(gd, Xd)
