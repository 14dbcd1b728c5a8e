"""The Huber loss end to end: interior point, first order, dual, network map, conjugate, certificate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import convexnn as cx
from convexnn.arrangements.enumerate import enumerate_patterns
from convexnn.backend import NUMPY, torch_available
from convexnn.errors import InputError
from convexnn.formulations import HuberLoss, get_loss

TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def huber_reference(r: np.ndarray, delta: float) -> float:
    """Independent numpy Huber value (the textbook definition)."""
    a = np.abs(r)
    return float(np.sum(np.where(a <= delta, 0.5 * r ** 2, delta * a - 0.5 * delta ** 2)))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((16, 2))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] + 0.1 * rng.standard_normal(16)
    y[[2, 9]] += np.array([4.0, -5.0])  # outliers: the linear tails are active at the optimum
    P = enumerate_patterns(X, bias=True)
    return {"X": X, "y": y, "P": P, "lam": 1.0}


@pytest.fixture(scope="module", params=["c_grelu", "c_relu"])
def solved(request, data):
    f = getattr(cx, request.param)(data["X"], data["y"], data["P"], data["lam"], loss=HuberLoss(delta=0.5))
    sol = f.solve("CLARABEL", **TIGHT)
    return f, sol


def test_registered_by_name():
    L = get_loss("huber")
    assert isinstance(L, HuberLoss) and L.delta == 1.0 and L.lipschitz == 1.0
    with pytest.raises(InputError, match="delta"):
        HuberLoss(delta=0.0)
    with pytest.raises(InputError, match="delta"):
        HuberLoss(delta=float("nan"))


def test_delta_is_the_one_positional_parameter():
    """``HuberLoss(0.5)`` is the loss with delta = 0.5 (its value against the textbook formula); the other
    fields of every loss are keyword-only, so a number passed where none belongs is refused instead of
    landing in ``name``."""
    r = np.array([-3.0, -0.4, 0.0, 0.2, 0.7, 5.0])
    for delta in (0.5, 2.0, 1e-3):
        L = HuberLoss(delta)
        assert L.delta == delta and L.name == "huber"
        assert float(L.value_on(NUMPY, r, np.zeros_like(r))) == pytest.approx(huber_reference(r, delta), rel=1e-14)
    with pytest.raises(InputError, match="delta"):
        HuberLoss("huber")
    with pytest.raises(TypeError):
        HuberLoss(0.5, 1.0)
    for L in (get_loss("squared"), get_loss("logistic"), get_loss("hinge")):
        with pytest.raises(TypeError):
            type(L)(2.0)


def test_interior_point_value_is_the_huber_objective(data, solved):
    f, sol = solved
    assert sol.status == "optimal"
    # independent evaluation of the convex objective with the textbook Huber formula
    fit = sol.fit
    reg = sum(float(np.linalg.norm(w, axis=1).sum()) for w in sol.weights.values())
    ref = huber_reference(fit - data["y"], 0.5) + data["lam"] * reg
    assert sol.value == pytest.approx(ref, rel=1e-7)
    # some residuals are in the linear tails (so the test is about Huber, not the squared loss)
    assert np.any(np.abs(fit - data["y"]) > 0.5 + 1e-3)


def test_string_loss_builds_the_default_delta(data):
    f = cx.c_grelu(data["X"], data["y"], data["P"], data["lam"], loss="huber")
    g = cx.c_grelu(data["X"], data["y"], data["P"], data["lam"], loss=HuberLoss(delta=1.0))
    assert f.solve("CLARABEL", **TIGHT).value == pytest.approx(g.solve("CLARABEL", **TIGHT).value, rel=1e-8)


def test_first_order_agrees_with_clarabel(solved):
    f, sol = solved
    fo = cx.solve(f, method="first_order", tol=1e-9)
    assert fo.info["method"] == "first_order"
    assert fo.value == pytest.approx(sol.value, rel=1e-6)
    # the first-order certificate is a lower bound of the interior-point optimum
    assert fo.info["dual_value"] <= sol.value * (1 + 1e-7)


def test_dual_problem_strong_duality(data, solved):
    f, sol = solved
    D = cx.dual_problem(f)
    assert D.is_dcp() and D.is_dpp()
    D.solve(solver="CLARABEL")
    assert D.value == pytest.approx(sol.value, rel=1e-6)
    # the dual point is -grad loss = clip(y - yhat, -delta, delta)
    assert np.allclose(D.v.value, np.clip(data["y"] - sol.fit, -0.5, 0.5), atol=1e-4)
    g = cx.duality_gap(f, sol, D)
    assert -1e-9 <= g.gap <= 1e-6 * abs(g.primal)


def test_mapped_network_objective_equals_convex_value(data, solved):
    f, sol = solved
    net = sol.to_network()
    obj = net.objective(data["X"], data["y"], data["lam"], loss=HuberLoss(delta=0.5))
    assert obj == pytest.approx(sol.value, rel=1e-7)


def test_conjugate_against_numerical_supremum():
    rng = np.random.default_rng(0)
    for delta in (0.3, 1.0, 2.5):
        L = HuberLoss(delta=delta)
        for _ in range(5):
            y = rng.standard_normal(4) * 2
            z = rng.uniform(-delta, delta, 4)
            # sup_p <z, p> - f(p) coordinate by coordinate (the loss is separable)
            sup = 0.0
            for zj, yj in zip(z, y):
                res = minimize_scalar(lambda p: -(zj * p - huber_reference(np.array([p - yj]), delta)),
                                      bounds=(yj - 50 * delta, yj + 50 * delta), method="bounded",
                                      options={"xatol": 1e-12})
                sup += -res.fun
            assert L.conjugate(z, y) == pytest.approx(sup, abs=1e-8)
            assert L.dual_value(-z, y) == pytest.approx(-sup, abs=1e-8)
        # outside the domain the supremum is unbounded: the objective grows linearly along p
        y = np.zeros(1)
        z = np.array([1.5 * delta])
        vals = [z[0] * p - huber_reference(np.array([p]), delta) for p in (10.0, 100.0, 1000.0)]
        assert vals[0] < vals[1] < vals[2] and vals[2] > 100 * delta
        assert L.conjugate(z, y) == np.inf


def test_cvx_form_and_gradient_match_the_definition():
    import cvxpy as cp

    rng = np.random.default_rng(1)
    for delta in (0.4, 1.7):
        L = HuberLoss(delta=delta)
        y = rng.standard_normal(30)
        p = y + 3 * rng.standard_normal(30)
        # cp.huber is twice this convention; HuberLoss.cvx compensates
        assert float(L.cvx(cp.Constant(p), y).value) == pytest.approx(huber_reference(p - y, delta), rel=1e-12)
        assert L.value(p, y) == pytest.approx(huber_reference(p - y, delta), rel=1e-14)
        h = 1e-6
        fd = np.array([(huber_reference(p + h * e - y, delta) - huber_reference(p - h * e - y, delta)) / (2 * h)
                       for e in np.eye(30)])
        assert np.allclose(L.grad(p, y), fd, atol=1e-6)
        # the Bregman divergence is the exact difference and nonnegative, also across the kink
        for scale in (1e-9, 1e-3, 1.0, 5.0):
            q = p + scale * rng.standard_normal(30)
            b = float(L.bregman_on(NUMPY, q, p, y))
            direct = L.value(q, y) - L.value(p, y) - float(L.grad(p, y) @ (q - p))
            assert b >= 0 and b == pytest.approx(max(direct, 0.0), abs=1e-12 * (1 + abs(L.value(q, y))))


@pytest.mark.skipif(not torch_available(), reason="torch not installed")
def test_torch_namespace_matches_numpy():
    from convexnn.backend import Backend

    bk = Backend("torch", "cpu", "float64")
    rng = np.random.default_rng(2)
    L = HuberLoss(delta=0.7)
    y, p = rng.standard_normal(20), 2 * rng.standard_normal(20)
    assert float(L.value_on(bk, bk.asarray(p), bk.asarray(y))) == pytest.approx(L.value(p, y), rel=1e-14)
    assert np.allclose(bk.to_numpy(L.grad_on(bk, bk.asarray(p), bk.asarray(y))), L.grad(p, y), rtol=0, atol=0)


def test_non_smooth_loss_names_the_missing_capability(data):
    f = cx.c_grelu(data["X"], np.sign(data["y"]), data["P"], data["lam"], loss="hinge")
    with pytest.raises(InputError, match="Lipschitz gradient"):
        cx.solve(f, method="first_order")


def test_certificate_of_the_huber_optimum_is_valid(data):
    f = cx.c_relu(data["X"], data["y"], data["P"], data["lam"], loss=HuberLoss(delta=0.5))
    sol = f.solve("CLARABEL", **TIGHT)
    net = sol.to_network()
    cert = cx.certify(net, data["X"], data["y"], data["lam"], loss=HuberLoss(delta=0.5))
    assert cert.lower_bound <= sol.value * (1 + 1e-9)
    assert cert.primal == pytest.approx(sol.value, rel=1e-7)
    assert cert.rel_gap <= 1e-5


@pytest.mark.skipif(not torch_available(), reason="torch not installed")
def test_first_order_on_torch_agrees(solved):
    f, sol = solved
    fo = cx.solve(f, method="first_order", device="cpu", tol=1e-9)
    assert fo.info["backend"].startswith("Backend(torch")
    assert fo.value == pytest.approx(sol.value, rel=1e-6)


def test_first_order_emits_no_floating_point_warnings(solved):
    """The linear tails give the block interior point of the Newton polish a nearly singular system:
    a direction of huge norm is rejected or stops that solve, without numpy overflow warnings."""
    import warnings

    f, sol = solved
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fo = cx.solve(f, method="first_order", tol=1e-9)
    assert fo.value == pytest.approx(sol.value, rel=1e-6)


def test_value_of_a_huge_residual_is_finite():
    import warnings

    loss = HuberLoss(delta=0.5)
    r = np.array([1e200, -3e180, 0.2])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        v = float(loss.value_on(NUMPY, r, np.zeros(3)))
    # the linear tails delta |r| - delta^2 / 2 and the quadratic part r^2 / 2, by hand
    assert v == pytest.approx((0.5 * 1e200 - 0.125) + (0.5 * 3e180 - 0.125) + 0.02, rel=1e-15)
