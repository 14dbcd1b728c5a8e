"""C-GReLU by the block interior point (convexnn/solvers/gated_ipm.py), checked against Clarabel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import convexnn as cx
import convexnn.solvers.gated_ipm as gi
from convexnn.errors import InputError
from convexnn.formulations.losses import get_loss
from convexnn.solvers import get_solver, lam_max, registered_solvers
from convexnn.solvers.gated_ipm import (
    estimate_fista_seconds,
    estimate_ipm_seconds,
    ipm_iteration_flops,
    solve_gated_ipm,
)

TIGHT = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}
pytestmark = pytest.mark.filterwarnings("ignore::convexnn.errors.InaccurateSolutionWarning")


def _data(seed: int, loss: str, n: int = 40, d: int = 3, P: int = 20):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if loss == "squared":
        y = np.maximum(X @ rng.standard_normal(d), 0.0) + 0.3 * rng.standard_normal(n)
    else:
        y = np.sign(X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(n))
        y[y == 0] = 1.0
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    Xa = np.hstack([X, np.ones((n, 1))])
    return X, Xa, np.asarray(pat.masks, dtype=bool), y, pat


def _clarabel(f) -> float:
    return f.solve("CLARABEL", **TIGHT).value


def _objective(Xa, masks, y, lam, loss, U) -> float:
    z = np.sum(masks * (Xa @ U.T), axis=1)
    L = get_loss(loss)
    return float(L.value(z, y)) + lam * float(np.linalg.norm(U, axis=1).sum())


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("screen", [False, True])
@pytest.mark.parametrize("frac", [0.01, 0.2])
def test_matches_clarabel_with_certificate(loss, screen, frac):
    X, Xa, masks, y, pat = _data(1, loss)
    lam = frac * lam_max(Xa, masks, y, loss)
    f = cx.c_grelu(X, y, pat, lam, loss=loss)
    ref = _clarabel(f)
    # screening with a small variable budget: several rounds add violated groups
    r = solve_gated_ipm(Xa, masks, y, lam, loss, tol=1e-9, screen=screen, max_vars=12, screen_iter=20)
    assert r.converged and r.gap.rel_gap <= 1e-9
    val = _objective(Xa, masks, y, lam, loss, r.U)
    assert val == pytest.approx(ref, rel=1e-6)
    assert r.gap.primal == pytest.approx(val, rel=1e-12)
    # the certified lower bound is below Clarabel's optimum (up to Clarabel's own accuracy)
    assert r.gap.dual <= ref + 1e-8 * abs(ref)
    if screen:
        assert r.screen_iterations > 0


def test_screening_adds_violated_groups_until_certified():
    X, Xa, masks, y, pat = _data(2, "squared", n=60, P=30)
    lam = 0.005 * lam_max(Xa, masks, y, "squared")
    # no screening iterations: the working set starts from the most violated groups at zero
    r = solve_gated_ipm(Xa, masks, y, lam, "squared", tol=1e-9, screen=True, max_vars=8, screen_iter=0,
                        add_limit=1)
    assert r.converged and r.rounds >= 2
    ref = _clarabel(cx.c_grelu(X, y, pat, lam))
    assert _objective(Xa, masks, y, lam, "squared", r.U) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_given_first_working_set_converges_to_the_optimum(loss):
    X, Xa, masks, y, pat = _data(4, loss, n=50, P=25)
    lam = 0.01 * lam_max(Xa, masks, y, loss)
    ref = _clarabel(cx.c_grelu(X, y, pat, lam, loss=loss))
    # a first working set of two groups: the column generation adds the rest
    r = solve_gated_ipm(Xa, masks, y, lam, loss, tol=1e-9, work0=np.array([3, 1, 3]))
    assert r.converged and r.screen_iterations == 0 and r.rounds >= 2
    assert _objective(Xa, masks, y, lam, loss, r.U) == pytest.approx(ref, rel=1e-6)
    for bad in (np.array([], dtype=int), np.array([0, masks.shape[1]]), np.array([-1])):
        with pytest.raises(InputError, match="work0"):
            solve_gated_ipm(Xa, masks, y, lam, loss, work0=bad)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_solve_by_name_and_zero_groups(loss):
    X, Xa, masks, y, pat = _data(3, loss)
    lam = 0.1 * lam_max(Xa, masks, y, loss)
    f = cx.c_grelu(X, y, pat, lam, loss=loss)
    sol = cx.solve(f, method="gated_ipm", tol=1e-9)
    ref = f.solve("CLARABEL", **TIGHT)
    assert sol.status == "optimal" and sol.solver == "block_ipm" and sol.info["method"] == "gated_ipm"
    assert sol.info["gap"] <= 1e-9 and sol.value == pytest.approx(ref.value, rel=1e-6)
    assert sol.value == pytest.approx(f.objective(sol.weights), rel=1e-10)
    # groups zero in the reference (norm far below the largest) are exactly zero here
    rn = np.linalg.norm(ref.weights["U"], axis=1)
    zero = rn <= 1e-7 * rn.max()
    assert zero.any() and np.all(sol.weights["U"][zero] == 0.0)
    # lam >= lam_max: zero, certified
    g = cx.c_grelu(X, y, pat, 2.0 * lam_max(Xa, masks, y, loss), loss=loss)
    z = cx.solve(g, method="gated_ipm")
    assert z.status == "optimal" and not np.any(z.weights["U"]) and z.info["gap"] <= 1e-12


def test_refusals_name_the_reason():
    X, Xa, masks, y, pat = _data(4, "squared")
    s = get_solver("gated_ipm")
    assert s.supports(cx.c_grelu(X, y, pat, 0.1)) is None
    assert "cone constraints" in s.supports(cx.c_relu(X, y, pat, 0.1))
    assert "'sparse_group'" in s.supports(cx.c_grelu(X, y, pat, 0.1, penalty="sparse_group", l1_ratio=0.5))
    assert "non-smooth" in s.supports(cx.c_grelu(X, np.sign(y), pat, 0.1, loss="hinge"))
    assert "vector outputs" in s.supports(cx.c_grelu(X, np.stack([y, -y], 1), pat, 0.1))
    with pytest.raises(InputError, match="gated_ipm.*cone constraints"):
        cx.solve(cx.c_relu(X, y, pat, 0.1), method="gated_ipm")


def test_auto_hands_over_by_the_cost_models(monkeypatch):
    X, Xa, masks, y, pat = _data(5, "squared")
    lam = 0.01 * lam_max(Xa, masks, y, "squared")
    f = cx.c_grelu(X, y, pat, lam)
    names = [s.name for s in registered_solvers()]
    assert names.index("gated_ipm") == names.index("gated_fista") + 1
    ref = _clarabel(f)
    # cost models that always favour the interior point: R-FISTA declines and says why
    monkeypatch.setattr(gi, "AUTO_IPM_SPEEDUP", 0.0)
    monkeypatch.setattr(gi, "AUTO_IPM_MIN_SAVING", -np.inf)
    sol = cx.solve(f, tol=1e-9)
    assert sol.info["auto_solver"] == "gated_ipm" and sol.solver == "block_ipm"
    assert "estimated block interior point time" in sol.info["auto_reason"] and "R-FISTA" in sol.info["auto_reason"]
    assert sol.value == pytest.approx(ref, rel=1e-6) and sol.info["gap"] <= 1e-9
    # a float32 request stays with R-FISTA (the interior point is float64 / CPU)
    sol32 = cx.solve(f, dtype="float32", tol=1e-5)
    assert sol32.info["auto_solver"] == "gated_fista"
    # never favoured: R-FISTA keeps it
    monkeypatch.setattr(gi, "AUTO_IPM_SPEEDUP", np.inf)
    sol = cx.solve(f, tol=1e-9)
    assert sol.info["auto_solver"] == "gated_fista" and sol.solver == "fista"
    assert sol.value == pytest.approx(ref, rel=1e-6)


def test_auto_takes_the_interior_point_on_dense_supports():
    X, Xa, masks, y, pat = _data(6, "squared", n=60, P=30)
    lmax = lam_max(Xa, masks, y, "squared")
    ref_lam = lmax / (2.0 * gi.AUTO_IPM_RATIO)  # lam_max / lam above the rule's ratio
    f = cx.c_grelu(X, y, pat, ref_lam)
    ref = _clarabel(f)
    yes, why = gi.prefer_ipm(f)
    assert yes and "solved over all groups at once" in why
    sol = cx.solve(f, tol=1e-9)
    assert sol.info["auto_solver"] == "gated_ipm" and sol.solver == "block_ipm"
    assert sol.value == pytest.approx(ref, rel=1e-6) and sol.info["gap"] <= 1e-9
    # below the ratio the cost models decide (here: R-FISTA)
    g = cx.c_grelu(X, y, pat, 0.05 * lmax)
    assert not gi.prefer_ipm(g)[0]
    assert cx.solve(g, tol=1e-9).info["auto_solver"] == "gated_fista"
    # the rule is for the squared loss only
    Xl, Xal, masksl, yl, patl = _data(6, "logistic", n=60, P=30)
    h = cx.c_grelu(Xl, yl, patl, lam_max(Xal, masksl, yl, "logistic") / (2.0 * gi.AUTO_IPM_RATIO), loss="logistic")
    assert "solved over all groups at once" not in gi.prefer_ipm(h)[1]


def test_cost_models():
    # Woodbury is chosen when n is small next to k d' (and its flop count is then the smaller one)
    fl_w, wood = ipm_iteration_flops(100, 200, 10, True)
    fl_d, dense_wood = ipm_iteration_flops(5000, 20, 10, True)
    assert wood and not dense_wood
    assert ipm_iteration_flops(100, 200, 10, False)[0] >= fl_w
    # monotone in the sizes and in lam_max / lam (more R-FISTA iterations at smaller lam)
    assert estimate_ipm_seconds(442, 11, 100, 1000.0, True) < estimate_ipm_seconds(442, 11, 200, 1000.0, True)
    assert estimate_fista_seconds(442, 11, 100, 20.0, True) < estimate_fista_seconds(442, 11, 100, 1000.0, True)
    X, Xa, masks, y, pat = _data(6, "squared")
    assert get_solver("gated_fista").estimate_seconds(cx.c_relu(X, y, pat, 0.1)) is None
    one = get_solver("gated_fista").estimate_seconds(cx.c_grelu(X, y, pat, 0.1))
    assert one > 0
    # vector outputs: one solve per output
    assert get_solver("gated_fista").estimate_seconds(cx.c_grelu(X, np.stack([y, y], 1), pat, 0.1)) == \
        pytest.approx(2 * one)


def test_a_stalled_cold_solve_is_not_repeated_at_a_tighter_eps(monkeypatch, seven_decades_logistic):
    """With no group to add, a restricted solve short of the certificate is repeated tighter and cold;
    a cold solve that stalled is not (it would follow the same path to the same stall). The certificate
    is a certificate: its dual value is below Clarabel's optimum. The stalls are forced (the interior
    point now certifies this program)."""
    f = seven_decades_logistic(14)
    Xa, M, y, lam = np.asarray(f.Xa, float), np.asarray(f.patterns.masks, bool), np.asarray(f.y, float), f.lam_value
    calls: list[tuple[int, bool, str, float]] = []
    real = gi.solve_block_ipm

    def spy(*a, **k):
        cold = k.get("start") is None
        # cold solves stall after a few iterations (as at a rounding floor)
        r = real(*a, **k) if not cold else replace(real(*a, **{**k, "max_iter": 6}), status="stalled")
        calls.append((a[1].shape[1], cold, r.status, k["eps"]))
        return r

    monkeypatch.setattr(gi, "solve_block_ipm", spy)
    res = solve_gated_ipm(Xa, M, y, lam, "logistic", tol=1e-8, screen=True)
    assert any(st != "optimal" for _, _, st, _ in calls)
    for (k0, cold0, st0, eps0), (k1, _, _, eps1) in zip(calls, calls[1:]):
        if cold0 and st0 != "optimal":  # a stalled cold solve is followed only by a larger working set
            assert k1 > k0, calls
    ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value
    assert res.gap.dual <= ref + 1e-9 * abs(ref) <= res.gap.primal + 2e-9 * abs(ref)


@pytest.mark.parametrize("seed", [70000, 70006, 70009])
def test_badly_scaled_logistic_programs_are_certified(seed, seven_decades_logistic):
    # the reduced cone blocks in closed form and the balanced centring of the block interior point:
    # without them its solves over all groups stalled at certified gaps of 2e-5, 1e-6 and 1e-5 on
    # these programs
    f = seven_decades_logistic(seed)
    ref = f.solve("CLARABEL", **TIGHT).value
    sol = cx.solve(f, method="gated_ipm")
    assert sol.status == "optimal" and sol.info["gap"] <= 1e-8, sol.info.get("stop_reason")
    assert sol.value - sol.info["gap_abs"] <= ref + 1e-7 * abs(ref)  # the certified bound holds
    assert sol.value == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("seed", [70001, 70004])
def test_a_rough_hand_over_goes_to_the_interior_point_over_all_groups(monkeypatch, seed, seven_decades_logistic):
    # R-FISTA hands these programs over early, far from the optimum: the polish is the block interior
    # point over all groups. On 70004 the Newton rounds from R-FISTA's support cycled and R-FISTA then
    # spent max_iter; on 70001 they certify, at the same optimum (and Clarabel's)
    import convexnn.solvers.first_order as fo

    f = seven_decades_logistic(seed)
    ref = f.solve("CLARABEL", **TIGHT).value
    seen: list[bool] = []
    real = fo.solve_gated_active_set

    def spy(*a, **k):
        seen.append(k["ipm_first"])
        return real(*a, **k)

    monkeypatch.setattr(fo, "solve_gated_active_set", spy)
    sol = cx.solve(f, method="first_order")
    assert seen == [True]
    assert sol.status == "optimal" and sol.info["gap"] <= 1e-8 and not sol.info["polish"]["cycling"]
    assert sol.value - sol.info["gap_abs"] <= ref + 1e-7 * abs(ref)
    assert sol.value == pytest.approx(ref, rel=1e-6)
    if seed == 70001:
        monkeypatch.setattr(fo, "IPM_FIRST_GAP", float("inf"))  # Newton rounds from the same start
        newton = cx.solve(f, method="first_order")
        assert seen == [True, False] and newton.status == "optimal" and newton.info["gap"] <= 1e-8
        assert newton.value == pytest.approx(sol.value, rel=1e-8)


@pytest.mark.parametrize("P, budget", [(20, 5), (320, 60)])
def test_the_named_interior_point_keeps_the_iteration_budget(P, budget):
    # over all groups (P d' = 80), and with screening (P d' = 1600 > MAX_VARS: R-FISTA iterations count too)
    X, Xa, masks, y, pat = _data(3, "squared", n=60, d=4, P=P)
    f = cx.c_grelu(X, y, pat, 1e-3 * lam_max(Xa, masks, y, "squared"))
    with pytest.warns(cx.ConvergenceWarning, match=rf"iteration budget \(max_iter={budget}\) spent"):
        sol = cx.solve(f, method="gated_ipm", max_iter=budget)
    assert sol.status == "max_iter" and sol.iterations <= budget
    assert sol.info["stop_reason"] == "max_iter"
    ref = _clarabel(f)
    assert sol.value - sol.info["gap_abs"] <= ref + 1e-9 * abs(ref)  # its certificate still holds
    full = cx.solve(f, method="gated_ipm")
    assert full.status == "optimal" and full.iterations > budget
    with pytest.warns(cx.ConvergenceWarning, match=r"max_iter=0"):
        none = cx.solve(f, method="gated_ipm", max_iter=0)  # no iteration: the certificate of zero
    assert none.status == "max_iter" and none.iterations == 0 and np.all(none.U == 0)
    assert none.value - none.info["gap_abs"] <= ref + 1e-9 * abs(ref)
