"""C-GReLU Newton polish with column generation and a global certificate
(convexnn/solvers/gated_active_set.py and its use in ``convexnn.solve``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convexnn as cx
import convexnn.solvers.first_order as first_order
from convexnn.solvers.gated_active_set import (
    _block_design,
    _certificate,
    restricted_newton,
    solve_gated_active_set,
    woodbury_newton_step,
)


@pytest.fixture(autouse=True)
def _newton_rounds(monkeypatch):
    """This module tests the Newton rounds of the polish: the rule that sends a rough hand-over on a
    small program to the block interior point over all groups instead (``first_order.IPM_FIRST_GAP``,
    tested in test_gated_ipm.py) is off, except where a test turns it on."""
    monkeypatch.setattr(first_order, "IPM_FIRST_GAP", float("inf"))


def _grelu(seed: int, *, loss: str = "squared", bias: bool = True, n: int = 60, d: int = 4, P: int = 30,
           lam: float = 0.05):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if loss == "squared":
        y = np.maximum(X @ rng.standard_normal(d), 0.0) + 0.3 * rng.standard_normal(n)
    else:
        y = np.sign(X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(n))
        y[y == 0] = 1.0
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + bias, P)), bias=bias)
    return cx.c_grelu(X, y, pat, lam, loss=loss)


def _tight(f) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value


def _arrays(f):
    return (np.asarray(f.Xa, dtype=float), np.asarray(f.patterns.masks, dtype=bool), np.asarray(f.y, dtype=float),
            f.lam_value)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("bias", [False, True])
def test_polish_matches_clarabel_with_certificate(loss, bias):
    f = _grelu(1, loss=loss, bias=bias)
    ref = _tight(f)
    sol = cx.solve(f, method="first_order", tol=1e-8)
    assert sol.status == "optimal" and sol.solver == "fista"
    pol = sol.info["polish"]
    # R-FISTA stopped at the loose hand-over gap and the Newton polish certified the rest
    assert pol["used"] and pol["reason"] == "certified" and not pol["fallback_fista"]
    assert pol["newton_iterations"] >= 1
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)
    assert sol.info["gap"] <= 1e-8
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)
    assert sol.objective() == pytest.approx(sol.value, rel=1e-12)


def test_polish_off_is_plain_fista_and_agrees():
    f = _grelu(2)
    a = cx.solve(f, method="first_order", tol=1e-8)
    b = cx.solve(f, method="first_order", tol=1e-8, polish=False)
    assert "polish" not in b.info and b.status == "optimal"
    assert a.value == pytest.approx(b.value, rel=1e-7)
    assert a.iterations < b.iterations  # the polish replaces the slow tail of R-FISTA


def test_column_generation_adds_the_missing_group():
    f = _grelu(3)
    Xa, masks, y, lam = _arrays(f)
    ref = _tight(f)
    full = solve_gated_active_set(Xa, masks, y, lam, "squared", cx.solve(f, method="first_order", tol=1e-8).U)
    support = np.flatnonzero(np.linalg.norm(full.U, axis=1) > 0)
    assert len(support) >= 2
    # a wrong start: the largest active group is missing from the support
    U0 = full.U.copy()
    gone = support[np.argmax(np.linalg.norm(full.U[support], axis=1))]
    U0[gone] = 0.0
    r = solve_gated_active_set(Xa, masks, y, lam, "squared", U0, tol=1e-9)
    assert r.converged and r.reason == "certified" and r.rel_gap <= 1e-9
    assert r.rounds >= 2  # round 1 found the missing group violated, round 2 certified
    assert np.linalg.norm(r.U[gone]) > 0
    assert abs(r.primal - ref) <= 1e-6 * abs(ref)


def test_newton_drops_a_group_whose_optimum_is_zero():
    f = _grelu(4)
    Xa, masks, y, lam = _arrays(f)
    sol = cx.solve(f, method="first_order", tol=1e-9)
    support = np.flatnonzero(np.linalg.norm(sol.U, axis=1) > 0)
    extra = np.setdiff1d(np.arange(masks.shape[1]), support)[0]
    S = np.union1d(support, [extra])
    US = sol.U[S].copy()
    US[np.searchsorted(S, extra)] = 1e-3 * np.ones(Xa.shape[1])
    S_out, U_out, its, ok = restricted_newton(Xa, masks, y, lam, "squared", S, US)
    assert ok and extra not in S_out
    U = np.zeros_like(sol.U)
    U[S_out] = U_out
    primal, dual, rel, _, _ = _certificate(Xa, masks, y, lam, "squared", U)
    assert rel <= 1e-9
    assert primal == pytest.approx(sol.value, rel=1e-8)


def test_polish_too_large_falls_back_to_fista(monkeypatch):
    f = _grelu(5)
    orig = first_order.solve_gated_active_set

    def tiny(*args, **kw):
        return orig(*args, **{**kw, "max_vars": 1, "max_rows": 1})

    monkeypatch.setattr(first_order, "solve_gated_active_set", tiny)
    sol = cx.solve(f, method="first_order", tol=1e-8)
    pol = sol.info["polish"]
    assert pol["reason"] == "too_large" and pol["fallback_fista"]
    assert sol.status == "optimal" and sol.info["gap"] <= 1e-8
    assert abs(sol.value - _tight(f)) <= 1e-6 * abs(sol.value)


def test_logistic_certificate_matches_backend_gap():
    f = _grelu(6, loss="logistic")
    Xa, masks, y, lam = _arrays(f)
    sol = cx.solve(f, method="first_order", tol=1e-8)
    primal, dual, rel, _, _ = _certificate(Xa, masks, y, lam, "logistic", sol.U)
    assert primal == pytest.approx(sol.value, rel=1e-12)
    # the reported gap is the same dual candidate's with every rounding error accounted for: at
    # least the floating-point one, larger by rounding-level terms only
    assert primal - dual - 1e-14 * abs(primal) <= sol.info["gap_abs"] <= primal - dual + 1e-9 * abs(primal)
    assert sol.info["dual_value"] <= dual + 1e-14 * abs(dual)


# ------------------------------------------------------------ Woodbury Newton systems, early hand-over
def _dense_hessian(Xa, M, w, r, uh):
    """H = A^T diag(w) A + blkdiag((I - u^ u^T) / r_i), formed explicitly."""
    k, d = uh.shape
    A = _block_design(Xa, M, np.arange(k))
    H = (A.T * w) @ A
    for i in range(k):
        H[i * d:(i + 1) * d, i * d:(i + 1) * d] += (np.eye(d) - np.outer(uh[i], uh[i])) / r[i]
    return H


@pytest.mark.parametrize("n, d, k", [(40, 4, 25), (30, 6, 12), (120, 3, 8)])
@pytest.mark.parametrize("unit", [True, False])
def test_woodbury_step_solves_the_dense_newton_system(n, d, k, unit):
    rng = np.random.default_rng(n + d + k)
    Xa = np.hstack([rng.standard_normal((n, d - 1)), np.ones((n, 1))])
    M = rng.random((n, k)) < 0.5
    U = rng.standard_normal((k, d))
    nr = np.linalg.norm(U, axis=1)
    uh, r = U / nr[:, None], nr / 0.2
    w = np.ones(n) if unit else rng.uniform(0.01, 0.25, n)  # squared / logistic-like curvature
    g = rng.standard_normal((k, d))
    H = _dense_hessian(Xa, M, w, r, uh)
    v = woodbury_newton_step(Xa, M.astype(float), w, r, uh, g)
    v_ref = np.linalg.solve(H, g.reshape(-1))
    assert np.linalg.norm(v.reshape(-1) - v_ref) <= 1e-8 * np.linalg.cond(H) ** 0.5 * np.linalg.norm(v_ref)
    assert np.linalg.norm(H @ v.reshape(-1) - g.reshape(-1)) <= 1e-10 * np.linalg.norm(H, 2) * np.linalg.norm(v_ref)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("frac", [1e-3, 0.2])  # dense (most groups active) and sparse supports
def test_woodbury_polish_matches_clarabel_and_dense(loss, bias, frac):
    f0 = _grelu(11, loss=loss, bias=bias, n=40, d=4, P=24)
    Xa, masks, y, _ = _arrays(f0)
    lam = frac * cx.solvers.lam_max(Xa, masks, y, loss)
    f = cx.c_grelu(f0.X, f0.y, f0.patterns, lam, loss=loss)
    ref = _tight(f)
    # a rough start: R-FISTA stopped at relative gap 0.5 (support far from identified)
    U0 = cx.solve(f, method="first_order", tol=0.5, polish=False).U
    out = {}
    for la in ("woodbury", "dense"):
        r = solve_gated_active_set(Xa, masks, y, lam, loss, U0, tol=1e-9, linear_algebra=la)
        assert r.converged and r.reason == "certified" and r.rel_gap <= 1e-9
        primal, dual, rel, _, _ = _certificate(Xa, masks, y, lam, loss, r.U)
        assert primal == pytest.approx(r.primal, rel=1e-12)
        assert abs(primal - ref) <= 1e-6 * abs(ref)
        # the certified gap bounds the suboptimality against Clarabel's optimum
        assert primal - ref <= (primal - dual) + 1e-9 * abs(ref)
        assert dual <= ref + 1e-8 * abs(ref)
        out[la] = primal
    assert out["woodbury"] == pytest.approx(out["dense"], rel=1e-9)


def test_restricted_newton_woodbury_equals_dense():
    f = _grelu(12, n=30, d=4, P=20, lam=0.01)
    Xa, masks, y, lam = _arrays(f)
    sol = cx.solve(f, method="first_order", tol=1e-3, polish=False)
    S = np.flatnonzero(np.linalg.norm(sol.U, axis=1) > 0)
    assert len(S) * Xa.shape[1] > Xa.shape[0]  # more unknowns than rows: H = low rank + block diagonal
    a = restricted_newton(Xa, masks, y, lam, "squared", S, sol.U[S], linear_algebra="dense")
    b = restricted_newton(Xa, masks, y, lam, "squared", S, sol.U[S], linear_algebra="woodbury")
    assert a[3] and b[3]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(b[1], a[1], rtol=1e-6, atol=1e-9 * np.abs(a[1]).max())
    with pytest.raises(cx.InputError):
        restricted_newton(Xa, masks, y, lam, "squared", S, sol.U[S], linear_algebra="qr")


def test_handover_rule_stops_fista_early_and_polish_certifies():
    from convexnn.solvers.backend import get_backend
    from convexnn.solvers.fista import solve_gated
    from convexnn.solvers.gated_active_set import handover_rule
    from convexnn.solvers.gated_ipm import fista_iterations
    from convexnn.solvers.operators import MaskedDesign
    from convexnn.formulations.losses import get_loss

    f0 = _grelu(13, n=50, d=5, P=40)
    Xa, masks, y, _ = _arrays(f0)
    lam = 1e-3 * cx.solvers.lam_max(Xa, masks, y, "squared")
    f = cx.c_grelu(f0.X, f0.y, f0.patterns, lam)
    op = MaskedDesign(Xa, masks, get_backend(None, "float64"))
    rule = handover_rule(op.n, op.d, op.P, True, fista_iterations(1e3), first_order.GATED_POLISH_TOL)
    r = solve_gated(op, get_loss("squared"), y, lam, tol=first_order.GATED_POLISH_TOL, handover=rule)
    assert r.reason == "handover" and not r.converged
    assert r.gap.rel_gap > first_order.GATED_POLISH_TOL
    pol = solve_gated_active_set(Xa, masks, y, lam, "squared", r.U, tol=1e-9)
    ref = _tight(f)
    assert pol.converged and abs(pol.primal - ref) <= 1e-6 * abs(ref)
    sol = cx.solve(f, method="first_order", tol=1e-8)
    assert sol.status == "optimal" and sol.info["polish"]["used"] and sol.info["polish"]["reason"] == "certified"
    assert abs(sol.value - ref) <= 1e-6 * abs(ref) and sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)


@pytest.mark.parametrize("ipm_first", [False, True])
def test_polish_respects_the_iteration_budget(monkeypatch, ipm_first):
    # Newton rounds, or the block interior point over all groups (a rough hand-over): the budget holds
    if ipm_first:
        monkeypatch.setattr(first_order, "IPM_FIRST_GAP", 0.0)
    f0 = _grelu(14, n=50, d=5, P=40)
    Xa, masks, y, _ = _arrays(f0)
    f = cx.c_grelu(f0.X, f0.y, f0.patterns, 1e-3 * cx.solvers.lam_max(Xa, masks, y, "squared"))
    with pytest.warns(cx.ConvergenceWarning, match=r"iteration budget \(max_iter\) spent.*max_iter=35"):
        sol = cx.solve(f, method="first_order", tol=1e-12, max_iter=35)
    assert sol.status == "max_iter" and sol.iterations <= 35
    ref = _tight(f)
    # whatever point it returns, its certified gap bounds its suboptimality
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)


@pytest.mark.slow  # the first torch solve of a process (and torch threads on a loaded machine)
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_torch_backend_polish_equals_numpy(loss):
    pytest.importorskip("torch")
    f0 = _grelu(15, loss=loss, n=40, d=4, P=30)
    Xa, masks, y, _ = _arrays(f0)
    f = cx.c_grelu(f0.X, f0.y, f0.patterns, 2e-3 * cx.solvers.lam_max(Xa, masks, y, loss), loss=loss)
    a = cx.solve(f, method="first_order", tol=1e-9)
    b = cx.solve(f, method="first_order", tol=1e-9, device="cpu")
    assert a.status == b.status == "optimal"
    assert b.info["polish"]["used"]
    assert b.value == pytest.approx(a.value, rel=1e-8)
    ref = _tight(f)
    assert abs(b.value - ref) <= 1e-6 * abs(ref)


def _one_dimensional(n: int = 200, P: int = 200, frac: float = 1e-3):
    """A degenerate program: one feature, so the patterns are thresholds and many groups are nearly
    parallel; small lam (dense support)."""
    from convexnn.solvers import lam_max

    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, 1))
    y = np.sin(3.0 * X[:, 0]) + 0.1 * rng.standard_normal(n)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((2, P)), bias=True)
    lam = frac * lam_max(np.hstack([X, np.ones((n, 1))]), pat.masks, y, "squared")
    return cx.c_grelu(X, y, pat, lam)


def test_cycling_polish_hands_over_to_the_block_interior_point():
    f = _one_dimensional()
    ref = _tight(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning: certified
        sol = cx.solve(f, method="first_order", tol=1e-8)
    pol = sol.info["polish"]
    assert sol.status == "optimal" and pol["reason"] == "certified" and pol["cycling"]
    assert not pol["fallback_fista"]
    assert sol.info["gap"] <= 1e-8
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)


def test_without_the_cycling_rule_the_rounds_do_not_converge(monkeypatch):
    """The instance above really cycles: with every round counted as progress the Newton rounds
    run out (max_rounds) above the target gap."""
    import convexnn.solvers.gated_active_set as gas

    f = _one_dimensional()
    Xa, masks, y, lam = _arrays(f)
    U0 = cx.solve(f, method="first_order", tol=1e-2, polish=False).U
    with_rule = solve_gated_active_set(Xa, masks, y, lam, "squared", U0, tol=1e-9)
    assert with_rule.converged and with_rule.cycling and with_rule.rel_gap <= 1e-9
    monkeypatch.setattr(gas, "_PROGRESS", float("inf"))
    without = solve_gated_active_set(Xa, masks, y, lam, "squared", U0, tol=1e-9)
    assert not without.converged and without.reason == "max_rounds" and not without.cycling
    assert without.rel_gap > 1e-6


def test_cycling_hand_over_by_cost_and_the_fallback_beyond_it(monkeypatch):
    """Groups beyond max_vars: the interior point still takes over when its iteration is cheap
    (_HANDOVER_FLOPS); when it is not, the polish stops with reason "cycling" (R-FISTA resumes)."""
    import convexnn.solvers.gated_active_set as gas

    f = _one_dimensional()
    Xa, masks, y, lam = _arrays(f)
    U0 = cx.solve(f, method="first_order", tol=1e-2, polish=False).U
    r = solve_gated_active_set(Xa, masks, y, lam, "squared", U0, tol=1e-9, max_vars=4)
    assert r.cycling and r.converged and r.reason == "certified"
    monkeypatch.setattr(gas, "_HANDOVER_FLOPS", 0.0)
    r = solve_gated_active_set(Xa, masks, y, lam, "squared", U0, tol=1e-9, max_vars=4)
    assert r.cycling and not r.converged and r.reason == "cycling"


def test_a_converging_polish_does_not_trigger_the_cycling_rule():
    f = _grelu(1)
    sol = cx.solve(f, method="first_order", tol=1e-8)
    assert sol.status == "optimal" and sol.info["polish"]["reason"] == "certified"
    assert not sol.info["polish"]["cycling"]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n,d,P,lam", [(200, 2, 100, 0.003), (100, 5, 80, 0.001), (120, 3, 60, 0.01)])
def test_small_lam_programs_are_certified_and_match_clarabel(seed, n, d, P, lam):
    """Small weight decay (a dense, degenerate support: lam / lam_max of 1e-5 to 1e-4): the default
    first-order path certifies the optimum and agrees with a tight Clarabel solve."""
    f = _grelu(seed, n=n, d=d, P=P, lam=lam)
    ref = _tight(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = cx.solve(f, method="first_order", tol=1e-8)
    assert sol.status == "optimal" and sol.info["gap"] <= 1e-8
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)


def test_warm_start_inside_the_handover_gap_with_a_failing_polish_resumes_fista(monkeypatch):
    """A warm start already below the hand-over gap skips R-FISTA's first phase (it returns no
    step); when the Newton polish then stops short, R-FISTA resumes from a step of its own and
    certifies the optimum."""
    from dataclasses import replace

    f = _grelu(3, n=80, d=4, P=40, lam=0.02)
    ref = _tight(f)
    near = cx.solve(f, method="first_order", tol=1e-4, polish=False)
    assert 1e-8 < near.info["gap"] <= first_order.GATED_POLISH_TOL
    real = first_order.solve_gated_active_set

    def stops_short(*args, **kwargs):
        out = real(*args, **kwargs)
        return replace(out, converged=False, reason="no_violated_group", rel_gap=max(out.rel_gap, 1e-3))

    monkeypatch.setattr(first_order, "solve_gated_active_set", stops_short)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = cx.solve(f, method="first_order", tol=1e-8, warm_start=near)
    pol = sol.info["polish"]
    assert pol["used"] and pol["fallback_fista"] and sol.status == "optimal"
    assert sol.info["gap"] <= 1e-8 and abs(sol.value - ref) <= 1e-6 * abs(ref)


def test_fista_without_a_known_step_estimates_one():
    from convexnn.formulations.losses import get_loss
    from convexnn.solvers.backend import get_backend
    from convexnn.solvers.fista import accelerated_prox_grad, solve_gated
    from convexnn.solvers.operators import MaskedDesign

    f = _grelu(4)
    Xa, masks, y, lam = _arrays(f)
    op = MaskedDesign(Xa, masks, get_backend())
    a = solve_gated(op, get_loss("squared"), y, lam, tol=1e-9, step0=0.0)
    b = solve_gated(op, get_loss("squared"), y, lam, tol=1e-9)
    assert a.converged and b.converged and a.gap.primal == pytest.approx(b.gap.primal, rel=1e-8)
    with pytest.raises(ValueError, match="positive first step"):
        accelerated_prox_grad(get_backend(), None, lam, np.zeros((2, 2)), 0.0, max_iter=1)


def _one_dimensional_two_outputs():
    rng = np.random.default_rng(9)
    n = 178
    X = rng.standard_normal((n, 1))
    Y = np.maximum(X @ rng.standard_normal((1, 2)), 0) + 0.1 * rng.standard_normal((n, 2))
    pat = cx.sample_patterns(X, 118, seed=9, bias=True)
    Xa = np.hstack([X, np.ones((n, 1))])
    lam = 1.14e-5 * max(cx.solvers.lam_max(Xa, pat.masks, Y[:, k], "squared") for k in range(2))
    return cx.c_grelu(X, Y, pat, lam)


def test_rounds_without_gap_progress_count_as_cycling():
    # one-dimensional data, lam ~ 1e-5 lam_max: the Newton rounds grow the support by a few groups
    # every other round at a certified gap of 0.99; after _FLAT_ROUNDS rounds without a 10% smaller
    # gap the block interior point takes over and certifies both outputs
    f = _one_dimensional_two_outputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = cx.solve(f, method="first_order", tol=1e-8)
    assert sol.status == "optimal" and sol.info["gap"] <= 1e-8
    assert any(p["cycling"] for p in sol.info["polish"])
    ref = _tight(f)
    assert sol.value == pytest.approx(ref, rel=1e-7)
    # the same value as the outputs solved one by one (the program is separable across outputs)
    cols = [cx.solve(cx.c_grelu(f.X, f.y[:, k], f.patterns, f.lam_value), tol=1e-8).value for k in range(2)]
    assert sol.value == pytest.approx(sum(cols), rel=1e-9)


def test_without_the_flat_rule_the_one_dimensional_rounds_do_not_converge(monkeypatch):
    import convexnn.solvers.gated_active_set as gas

    monkeypatch.setattr(gas, "_FLAT_ROUNDS", 10 ** 6)
    f = _one_dimensional_two_outputs()
    with pytest.warns(cx.ConvergenceWarning, match="max_rounds"):
        sol = cx.solve(f, method="first_order", tol=1e-8)
    assert sol.status == "max_iter"


def test_the_point_with_the_smaller_certified_gap_is_returned(huber_stress_program):
    """Huber with targets 1e7 times its threshold (nearly least absolute deviations): the polish's block
    interior point stops short of tol and R-FISTA, resumed from its point, cannot get closer in its
    budget; the solve returns the point the polish certified (its final certificate is that gap, not
    R-FISTA's, which stayed three orders of magnitude above) and says so. Clarabel's optimum lies in the
    certified interval."""
    X, y, pat, lam, L, bias = huber_stress_program(36)  # a held-out program of the stress draws
    delta = L.delta
    assert np.sqrt(np.mean(y * y)) / delta > 1e6
    f = cx.c_grelu(X, y, pat, lam, loss=L, bias=bias)
    with pytest.warns(cx.ConvergenceWarning, match="the polish's point returned"):
        sol = cx.solve(f, method="first_order", tol=1e-8, max_iter=3000)
    pol = sol.info["polish"]
    assert pol["fallback_fista"] and sol.status == "max_iter"
    assert sol.info["gap"] == pytest.approx(pol["certified_gap"], rel=1e-3)
    assert sol.info["gap"] < 1e-5
    ref = _tight(f)
    assert sol.value - sol.info["gap_abs"] <= ref * (1 + 1e-9) and ref <= sol.value * (1 + 1e-9)
