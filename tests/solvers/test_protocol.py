"""The solver protocol (convexnn/solvers/protocol.py): capabilities, reasons, registration, auto."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import convexnn as cx
from convexnn.errors import InputError
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.three_layer import three_layer
from convexnn.solvers import Decline, Solver, get_solver, register_solver, registered_solvers, unregister_solver

BUILTIN = ("gated_fista", "relu_active_set", "interior_point")


def _data(seed: int, n: int = 20, d: int = 2, P: int = 6):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n)
    return X, y, cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)


def _clarabel(f: Formulation) -> float:
    return f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value


def _reasons(f: Formulation) -> dict[str, str | None]:
    return {s.name: s.supports(f) for s in registered_solvers() if s.name in BUILTIN}


# --------------------------------------------------------------------------- the built-in solvers' reasons
def test_builtin_solvers_are_registered_in_preference_order():
    names = [s.name for s in registered_solvers()]
    assert [n for n in names if n in BUILTIN] == list(BUILTIN)
    assert get_solver("interior_point").family == "interior"
    assert {get_solver(n).family for n in BUILTIN[:2]} == {"first_order"}


def test_supported_programs_have_no_reason():
    X, y, pat = _data(0)
    assert _reasons(cx.c_grelu(X, y, pat, 0.1)) == {"gated_fista": None,
                                                    "relu_active_set": "needs cone constraints (a C-ReLU program)",
                                                    "interior_point": None}
    r = _reasons(cx.c_relu(X, np.sign(y), pat, 0.1, loss="logistic"))
    assert r["relu_active_set"] is None and r["interior_point"] is None and "cone constraints" in r["gated_fista"]


def test_hinge_loss_reason():
    X, y, pat = _data(1)
    f = cx.c_grelu(X, np.sign(y), pat, 0.1, loss="hinge")
    r = _reasons(f)
    assert "'hinge' loss is non-smooth" in r["gated_fista"] and "Lipschitz gradient" in r["gated_fista"]
    assert r["interior_point"] is None
    g = cx.c_relu(X, np.sign(y), pat, 0.1, loss="hinge")
    assert "'hinge' loss is non-smooth" in _reasons(g)["relu_active_set"]


@pytest.mark.parametrize("builder", ["c_grelu", "c_relu"])
def test_nuclear_vector_outputs_reason(builder):
    X, y, pat = _data(2)
    f = getattr(cx, builder)(X, np.column_stack([y, -y]), pat, 0.1, vector_reg="nuclear")
    name = "gated_fista" if builder == "c_grelu" else "relu_active_set"
    assert _reasons(f)[name] == "vector outputs with vector_reg='nuclear' are not supported by the first-order solvers"
    # group-regularized vector outputs are supported
    g = getattr(cx, builder)(X, np.column_stack([y, -y]), pat, 0.1)
    assert _reasons(g)[name] is None


def test_other_programs_are_not_block_programs():
    X, y, pat = _data(3, n=4, P=4)
    three = three_layer(X, y, cx.enumerate_patterns(X), "complete", 0.1, m1=1)
    mn = cx.min_norm_interpolation(X, y, pat)
    for f in (three, mn):
        r = _reasons(f)
        assert r["interior_point"] is None
        for name in ("gated_fista", "relu_active_set"):
            assert r[name].startswith("not a two-layer block program") and repr(f.kind) in r[name]
    with pytest.raises(InputError, match=r"no first_order solver .*three_layer.*method='interior'"):
        cx.solve(three, method="first_order")
    sol = cx.solve(three)
    assert sol.info["method"] == "interior" and sol.info["auto_solver"] == "interior_point"
    assert "not a two-layer block program" in sol.info["auto_reason"]


def test_sparse_group_relu_program_runs_the_augmented_lagrangian_without_the_polish():
    X, y, pat = _data(4)
    f = cx.c_relu(X, y, pat, 0.1, penalty="sparse_group", l1_ratio=0.3)
    r = _reasons(f)
    assert r["relu_active_set"] is None and r["interior_point"] is None
    sol = cx.solve(f, method="first_order", tol=1e-8)
    assert sol.solver == "al"
    assert sol.info["polish"]["used"] is False and "group lasso only" in sol.info["polish"]["reason"]
    ip = f.solve("CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value
    assert sol.status == "optimal" and sol.value == pytest.approx(ip, rel=1e-6)


def test_sparse_group_gated_program_runs_r_fista_without_the_newton_polish():
    X, y, pat = _data(10)
    f = cx.c_grelu(X, y, pat, 0.05, penalty="sparse_group", l1_ratio=0.4)
    assert _reasons(f)["gated_fista"] is None
    sol = cx.solve(f, method="first_order", tol=1e-9)
    assert sol.status == "optimal" and sol.info["gap"] <= 1e-9
    assert sol.info["polish"]["used"] is False and "Newton polish" in sol.info["polish"]["reason"]
    assert sol.value == pytest.approx(f.objective(sol.weights), rel=1e-12)
    ref = _clarabel(f)
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)


@pytest.mark.parametrize("kind", ["c_grelu", "c_relu"])
def test_auto_sends_a_penalty_without_polish_to_the_interior_point_when_it_is_small(kind, monkeypatch):
    import convexnn.solvers.first_order as first_order
    from convexnn.solvers.gated_ipm import program_lam_ratio

    X, y, pat = _data(10)
    build = getattr(cx, kind)
    ratio = program_lam_ratio(build(X, y, pat, 1.0, penalty="sparse_group", l1_ratio=0.4))
    small = 1.0 * ratio / (10 * first_order.AUTO_UNPOLISHED_GATED_RATIO)  # lam_max / lam = 10x the rule
    f = build(X, y, pat, small, penalty="sparse_group", l1_ratio=0.4)
    sol = cx.solve(f)
    assert sol.info["auto_solver"] == "interior_point" and sol.info["method"] == "interior"
    assert "'sparse_group' penalty has no polish" in sol.info["auto_reason"]
    assert sol.value == pytest.approx(_clarabel(f), rel=1e-6)
    # at a moderate lam R-FISTA alone keeps the gated program; the augmented Lagrangian does not
    moderate = build(X, y, pat, 1.0 * ratio / 10, penalty="sparse_group", l1_ratio=0.4)
    expect = "interior" if kind == "c_relu" else "first_order"
    assert cx.solve(moderate, tol=1e-8).info["method"] == expect
    # above the interior point's time budget the first-order path keeps it
    monkeypatch.setattr(first_order, "AUTO_UNPOLISHED_INTERIOR_SECONDS", 0.0)
    with pytest.warns(cx.ConvergenceWarning, match="max_iter"):
        sol = cx.solve(f, tol=1e-8, max_iter=200)
    assert sol.info["method"] == "first_order" and sol.info["polish"]["used"] is False
    monkeypatch.undo()
    # the group lasso keeps its structured paths (first order or the block interior point)
    g = build(X, y, pat, small)
    assert cx.solve(g, tol=1e-8).info["method"] in {"first_order", "gated_ipm"}


def test_unpickled_formulation_goes_first_order():
    X, y, pat = _data(5)
    f = pickle.loads(pickle.dumps(cx.c_grelu(X, y, pat, 0.1)))
    assert "without its CVXPY problem" in get_solver("interior_point").supports(f)
    with pytest.raises(InputError, match="without its CVXPY problem"):
        cx.solve(f, method="interior")
    sol = cx.solve(f, tol=1e-9)
    assert sol.info["auto_solver"] == "gated_fista" and "gated_fista is preferred" in sol.info["auto_reason"]
    assert abs(sol.value - _clarabel(cx.c_grelu(X, y, pat, 0.1))) <= 1e-6 * abs(sol.value)


def test_a_solver_asked_by_name_gives_its_reason():
    X, y, pat = _data(6)
    g = cx.c_grelu(X, np.sign(y), pat, 0.1, loss="hinge")
    with pytest.raises(InputError, match=r"solver 'gated_fista' cannot solve this c_grelu program: the 'hinge' loss"):
        cx.solve(g, method="gated_fista")
    with pytest.raises(InputError, match=r"registered solver name .*'interior_point'.*got 'newton'"):
        cx.solve(g, method="newton")
    # a built-in asked by name gives the family's answer
    f = cx.c_relu(X, y, pat, 0.1)
    a, b = cx.solve(f, method="relu_active_set"), cx.solve(f, method="first_order")
    assert a.value == b.value and a.iterations == b.iterations and a.solver == "active_set"
    assert a.info["method"] == "first_order" and "auto_reason" not in a.info


# --------------------------------------------------------------------------- a solver added by a user
class ProxGrad(Solver):
    """Accelerated proximal gradient for the squared-loss, scalar-output programs without cones,
    written here independently of convexnn's solvers: x <- prox(x - grad / L) on the stacked
    blocks u = (u_1, ..., u_P) with the design [D_1 Xa, ..., D_P Xa]."""

    name = "test_prox_grad"
    family = "test"
    label = "proximal gradient"

    def supports(self, f: Formulation) -> str | None:
        if not f.block_program or f.cone_constraints:
            return "needs a block program without cone constraints"
        if f.loss.name != "squared":
            return f"needs the squared loss, not {f.loss.name!r}"
        if np.ndim(f.y) != 1:
            return "scalar outputs only"
        return None

    def solve(self, f: Formulation, *, auto: bool = False, **options) -> ConvexSolution:
        Xa, M, y, lam = np.asarray(f.Xa), np.asarray(f.patterns.masks, float), np.asarray(f.y), f.lam_value
        n, d = Xa.shape
        P = M.shape[1]
        A = (M[:, :, None] * Xa[:, None, :]).reshape(n, P * d)
        step = 1.0 / np.linalg.norm(A, 2) ** 2  # 0.5 ||A u - y||^2 has an ||A||^2-Lipschitz gradient

        def prox(v: np.ndarray) -> np.ndarray:
            B = v.reshape(P, d)
            nr = np.linalg.norm(B, axis=1, keepdims=True)
            return (np.maximum(1.0 - step * lam / np.maximum(nr, 1e-300), 0.0) * B).ravel()

        x = z = np.zeros(P * d)
        t = 1.0
        for k in range(30000):
            x_new = prox(z - step * (A.T @ (A @ z - y)))
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            z = x_new + (t - 1.0) / t_new * (x_new - x)
            if np.linalg.norm(x_new - x) <= 1e-13 * max(1.0, np.linalg.norm(x)):
                x = x_new
                break
            x, t = x_new, t_new
        U = x.reshape(P, d)
        return ConvexSolution(f, {"U": U}, f.objective({"U": U}), "optimal", self.name, iterations=k + 1,
                              lam=lam)


class Declining(ProxGrad):
    """Declines under ``method="auto"`` (another solver takes over); solves when asked by name."""

    name = "test_declining"

    def solve(self, f: Formulation, *, auto: bool = False, **options) -> ConvexSolution:
        if auto:
            raise Decline("test_declining leaves it to the next solver")
        return super().solve(f, **options)


@pytest.fixture
def registered():
    added: list[str] = []

    def add(solver: Solver, **kw) -> Solver:
        register_solver(solver, **kw)
        added.append(solver.name)
        return solver

    yield add
    for name in added:
        unregister_solver(name)


def test_custom_solver_by_name_matches_clarabel(registered):
    registered(ProxGrad())
    X, y, pat = _data(7)
    f = cx.c_grelu(X, y, pat, 0.05)
    sol = cx.solve(f, method="test_prox_grad")
    assert sol.solver == "test_prox_grad" and sol.info["method"] == "test"
    ref = _clarabel(f)
    assert abs(sol.value - ref) <= 1e-7 * abs(ref)
    # registered last: auto still prefers the built-in first-order solver
    auto = cx.solve(f)
    assert auto.info["auto_solver"] == "gated_fista" and auto.solver == "fista"
    # and it refuses what it cannot solve, with its own reason
    with pytest.raises(InputError, match="test_prox_grad.*needs a block program without cone constraints"):
        cx.solve(cx.c_relu(X, y, pat, 0.05), method="test_prox_grad")
    with pytest.raises(InputError, match="needs the squared loss, not 'logistic'"):
        cx.solve(cx.c_grelu(X, np.sign(y), pat, 0.05, loss="logistic"), method="test_prox_grad")


def test_auto_picks_a_preferred_supporting_solver_and_says_why(registered):
    registered(ProxGrad(), position=0)
    X, y, pat = _data(8)
    f = cx.c_grelu(X, y, pat, 0.05)
    sol = cx.solve(f)
    assert sol.info["auto_solver"] == "test_prox_grad" and sol.solver == "test_prox_grad"
    r = sol.info["auto_reason"]
    assert r.startswith("test_prox_grad is preferred; estimated R-FISTA time") and "estimated interior-point time" in r
    assert abs(sol.value - _clarabel(f)) <= 1e-7 * abs(sol.value)
    # a program it does not support goes to the next supporting solver
    g = cx.c_relu(X, y, pat, 0.05)
    sol = cx.solve(g)
    assert sol.info["auto_solver"] == "relu_active_set" and sol.solver == "active_set"


def test_a_declining_solver_hands_over_under_auto(registered):
    registered(Declining(), position=0)
    X, y, pat = _data(9)
    f = cx.c_grelu(X, y, pat, 0.05)
    sol = cx.solve(f)
    assert sol.info["auto_solver"] == "gated_fista"
    assert sol.info["auto_reason"] == "test_declining leaves it to the next solver"
    by_name = cx.solve(f, method="test_declining")  # asked by name: no hand-over
    assert by_name.solver == "test_declining"
    assert abs(by_name.value - sol.value) <= 1e-7 * abs(sol.value)


def test_registration_is_validated(registered):
    registered(ProxGrad())
    with pytest.raises(InputError, match="already registered"):
        register_solver(ProxGrad())
    with pytest.raises(InputError, match="method keyword"):
        register_solver(type("Auto", (ProxGrad,), {"name": "first_order"})())
    with pytest.raises(InputError, match="Solver instance"):
        register_solver(object())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no solver named"):
        unregister_solver("nope")
    replacement = type("Other", (ProxGrad,), {"label": "other"})()
    register_solver(replacement, replace=True)
    assert get_solver("test_prox_grad") is replacement


@pytest.mark.parametrize("kind", ["c_grelu", "c_relu"])
@pytest.mark.parametrize("method", ["auto", "first_order", "interior"])
def test_lam_set_on_the_parameter_is_validated(kind, method):
    """lam set on the cvxpy Parameter after the build gets the builder's checks (0 solved silently)."""
    X, y, pat = _data(4)
    f = getattr(cx, kind)(X, y, pat, 0.1)
    f.lam.value = 0.0
    with pytest.raises(cx.InputError, match="lam must be > 0"):
        cx.solve(f, method=method)


# --------------------------------------------------------------------------- auto's rescue by the interior point
def _certified_below_clarabel(f, sol, tol):
    ref = _clarabel(f)
    assert sol.status == "optimal" and sol.info["gap"] <= tol
    assert abs(sol.value - ref) <= 10 * tol * abs(ref)
    assert sol.value - sol.info["gap_abs"] <= ref + 1e-9 * abs(ref)  # a lower bound of the optimum


def _failing_gated_interior_point(monkeypatch) -> None:
    """The block interior point of the C-GReLU polish stalls after a few iterations (forced: on the
    programs of the ``seven_decades_logistic`` fixture it certifies)."""
    from dataclasses import replace

    import convexnn.solvers.gated_ipm as gi

    real = gi.solve_block_ipm
    monkeypatch.setattr(gi, "solve_block_ipm",
                        lambda *a, **k: replace(real(*a, **{**k, "max_iter": 4}), status="stalled"))


def test_auto_rescues_an_uncertified_gated_solve_with_the_interior_point(monkeypatch, seven_decades_logistic):
    # on this program the polish is the block interior point over all groups, and it fails (forced);
    # method="first_order" then resumes R-FISTA and runs out of its default budget, while auto leaves it
    # to the rescue at once: Clarabel's solution gets the same certificate
    import warnings

    _failing_gated_interior_point(monkeypatch)
    f = seven_decades_logistic(14)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cx.ConvergenceWarning)  # certified: the first solve's warning is not the answer's
        sol = cx.solve(f, tol=1e-8)
    _certified_below_clarabel(f, sol, 1e-8)
    assert sol.info["method"] == "interior" and "interior point's solution is certified" in sol.info["auto_rescue"]
    assert sol.info["first_order"]["gap"] > 1e-8
    assert "R-FISTA not resumed" in sol.info["first_order"]["stop_reason"]
    with pytest.warns(cx.ConvergenceWarning, match="max_iter"):
        fo = cx.solve(f, method="first_order", tol=1e-8)
    assert fo.status == "max_iter" and "R-FISTA after the Newton polish stopped" in fo.info["stop_reason"]
    assert not fo.info["polish"].get("left_to_rescue")


def test_auto_resumes_the_first_order_path_when_the_rescue_fails(monkeypatch, seven_decades_logistic):
    # the first solve left the program to the rescue and Clarabel fails: auto runs the first-order path in
    # full (R-FISTA after the polish), the answer of method="first_order", with its warning (once)
    import warnings

    from convexnn.errors import SolverError

    _failing_gated_interior_point(monkeypatch)
    f = seven_decades_logistic(14)
    with pytest.warns(cx.ConvergenceWarning):
        fo = cx.solve(f, method="first_order", tol=1e-8)

    def fail(*a, **k):
        raise SolverError("Clarabel failed")

    monkeypatch.setattr(f, "solve", fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = cx.solve(f, tol=1e-8)
    assert sum(issubclass(w.category, cx.ConvergenceWarning) for w in caught) == 1
    assert "auto_rescue" not in sol.info and sol.info["method"] == "first_order"
    assert sol.status == fo.status and sol.info["stop_reason"] == fo.info["stop_reason"]
    assert sol.value == pytest.approx(fo.value, rel=1e-12) and sol.info["gap"] == pytest.approx(fo.info["gap"])


def test_auto_rescue_respects_the_callers_budget_and_its_time_limit(monkeypatch):
    import convexnn.solvers.dispatch as dispatch
    import convexnn.solvers.first_order as first_order

    X, y, pat = _data(0, n=40, d=3, P=20)
    f = cx.c_grelu(X, y, pat, 0.05)
    # a first-order solve that stops early (a budget of 3 iterations) under the default max_iter
    real = first_order.GatedFirstOrder.solve
    monkeypatch.setattr(first_order.GatedFirstOrder, "solve",
                        lambda self, f_, **k: real(self, f_, **{**k, "max_iter": 3}))
    sol = cx.solve(f, tol=1e-8)
    _certified_below_clarabel(f, sol, 1e-8)
    assert "auto_rescue" in sol.info
    # nearly separable labels at a tiny lam: the rescue returns the better certified point, and its
    # status and warning say whether it reached tol
    import warnings

    g = cx.c_grelu(X, np.where(y > np.median(y), 1.0, -1.0), pat, 1e-3, loss="logistic")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = cx.solve(g, tol=1e-8)
    warned = any(issubclass(w.category, cx.ConvergenceWarning) for w in caught)
    assert "auto_rescue" in sol.info and sol.info["gap"] < sol.info["first_order"]["gap"]
    assert (sol.status == "optimal") == (sol.info["gap"] <= 1e-8) == (not warned)
    # a budget of the caller's is kept: no rescue, the warning stands
    with pytest.warns(cx.ConvergenceWarning, match="max_iter"):
        sol = cx.solve(f, tol=1e-8, max_iter=3)
    assert sol.status == "max_iter" and "auto_rescue" not in sol.info
    # above the time limit of the rescue nothing changes either
    monkeypatch.setattr(dispatch, "AUTO_RESCUE_SECONDS", 0.0)
    with pytest.warns(cx.ConvergenceWarning):
        sol = cx.solve(f, tol=1e-8)
    assert sol.status == "max_iter" and "auto_rescue" not in sol.info
    # method="first_order" is what it says: no rescue
    monkeypatch.setattr(dispatch, "AUTO_RESCUE_SECONDS", 30.0)
    with pytest.warns(cx.ConvergenceWarning):
        sol = cx.solve(f, method="first_order", tol=1e-8)
    assert "auto_rescue" not in sol.info
