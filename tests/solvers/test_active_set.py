"""C-ReLU active-set polish with a global certificate (convexnn/solvers/active_set.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convexnn as cx
import convexnn.solvers.active_set as asm
import convexnn.solvers.first_order as first_order
from convexnn.formulations.losses import get_loss
from convexnn.solvers.active_set import certify_relu, screen_blocks, solve_relu_active_set
from convexnn.solvers.gap import lam_max


def _relu(seed: int, *, loss: str = "squared", bias: bool = True, n: int = 30, d: int = 3, P: int = 10,
          lam: float = 0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if loss == "squared":
        y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n)
    else:
        y = np.sign(X[:, 0] + 0.5 * rng.standard_normal(n))
        y[y == 0] = 1.0
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + bias, P)), bias=bias)
    return cx.c_relu(X, y, pat, lam, loss=loss)


def _tight(f) -> float:
    with warnings.catch_warnings():  # tight tolerances can end "optimal_inaccurate" at ~1e-10
        warnings.simplefilter("ignore")
        return f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value


def _arrays(f):
    return (np.asarray(f.Xa, dtype=float), np.asarray(f.patterns.masks, dtype=bool), np.asarray(f.y, dtype=float),
            f.lam_value, get_loss(f.loss))


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("bias", [False, True])
def test_polish_matches_clarabel_with_certificate(loss, bias):
    f = _relu(2, loss=loss, bias=bias)
    ref = _tight(f)
    sol = cx.solve(f, method="first_order", tol=1e-8)
    assert sol.status == "optimal"
    assert sol.info["polish"]["used"] and sol.info["polish"]["reason"] == "certified"
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)
    assert sol.info["gap"] <= 1e-8
    assert sol.info["violation"] <= 1e-8
    # the certificate is a certificate: suboptimality against Clarabel below the certified gap
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)
    assert sol.info["multipliers"].shape == (f.Xa.shape[0], 2 * len(f.patterns))
    assert sol.objective() == pytest.approx(sol.value, rel=1e-12)


def test_certificate_agrees_with_duality_module():
    from convexnn.duality.dual import duality_gap

    f = _relu(3)
    sol = cx.solve(f, method="first_order", tol=1e-8)
    g = duality_gap(f, sol, sol.info["dual_point"])
    # the duality module rescales the same dual point with exact NNLS multipliers
    assert g.gap == pytest.approx(sol.info["gap_abs"], rel=1e-3, abs=1e-9)
    assert g.rel_gap <= 1e-8


def test_certificate_is_a_lower_bound_at_a_suboptimal_point():
    f = _relu(4)
    Xa, masks, y, lam, L = _arrays(f)
    ref = _tight(f)
    sol = cx.solve(f, method="first_order", tol=1e-8)
    # a feasible but suboptimal point: the cones are cones, so scaling keeps feasibility
    V, W = 0.5 * sol.weights["V"], 0.5 * sol.weights["W"]
    c = certify_relu(Xa, masks, y, lam, L, V, W)
    assert c.dual <= ref + 1e-9 * abs(ref)
    assert c.primal - ref <= c.gap + 1e-9 * abs(ref)
    assert c.rel_gap > 1e-3  # and it is not certified


def test_working_set_loop_adds_a_missing_block():
    f = _relu(5, P=12)
    Xa, masks, y, lam, L = _arrays(f)
    full = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-9)
    assert full.converged
    norms = np.stack([np.linalg.norm(full.V, axis=1), np.linalg.norm(full.W, axis=1)])
    row, i = np.unravel_index(int(np.argmax(norms)), norms.shape)
    # the wrong support: the largest block removed; restrict to the remaining support
    wrong = norms > 0
    wrong[row, i] = False
    rs = asm.solve_restricted(Xa, masks, y, lam, L, wrong)
    cert = certify_relu(Xa, masks, y, lam, L, rs.V, rs.W)
    assert cert.s > lam * (1 + 1e-6) and cert.rel_gap > 1e-6  # the certificate sees the violation
    add, vals = screen_blocks(Xa, masks, cert.v, lam * (1 + 1e-9), cert.bounds, exclude=wrong)
    assert add.shape[0] >= 1 and np.all(vals > lam)
    # started from the wrong support, the loop adds the block back and certifies
    r = solve_relu_active_set(Xa, masks, y, lam, L, V0=rs.V, W0=rs.W, tol=1e-9, screen_level=10.0)
    assert r.converged and r.rounds >= 1
    assert r.blocks[row, i]
    assert (r.V if row == 0 else r.W)[i].any()
    assert r.certificate.primal == pytest.approx(full.certificate.primal, rel=1e-8)


def test_block_budget_and_solver_failure_fall_back_to_al(monkeypatch):
    f = _relu(6, n=20, P=6)
    Xa, masks, y, lam, L = _arrays(f)
    r = solve_relu_active_set(Xa, masks, y, lam, L, max_blocks=1)
    assert not r.converged and r.reason == "too_many_blocks" and r.working_set >= 1
    ref = _tight(f)

    def broken(*args, **kwargs):
        raise ArithmeticError("restricted solve failed")

    monkeypatch.setattr(asm, "solve_restricted", broken)
    sol = cx.solve(f, method="first_order", tol=1e-6, max_iter=20000)
    assert sol.info["polish"]["fallback_al"] and sol.info["polish"]["reason"].startswith("solver_error")
    assert "delta" in sol.info  # the augmented Lagrangian ran
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)
    assert sol.info["violation"] <= 1e-8


def test_polish_false_runs_the_augmented_lagrangian():
    f = _relu(7, n=20, P=6)
    sol = cx.solve(f, method="first_order", tol=1e-6, polish=False, max_iter=20000)
    assert "polish" not in sol.info and "delta" in sol.info and sol.solver == "al"
    ref = _tight(f)
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)


def test_warm_start():
    f = _relu(11)
    a = cx.solve(f, method="first_order", tol=1e-8)
    # a certified warm start is returned after one certificate, no restricted solve
    again = cx.solve(f, method="first_order", tol=1e-8, warm_start=a)
    assert again.status == "optimal" and again.iterations == 0 and again.info["polish"]["rounds"] == 0
    assert again.value == pytest.approx(a.value, rel=1e-12)
    # along a path: the warm-started solve agrees with a cold one
    f.set_lam(0.09)
    cold = cx.solve(f, method="first_order", tol=1e-8)
    warm = cx.solve(f, method="first_order", tol=1e-8, warm_start=a)
    assert warm.status == "optimal"
    assert warm.value == pytest.approx(cold.value, rel=1e-7)
    assert warm.info["polish"]["rounds"] >= 1


def test_zero_working_set_start_uses_the_zero_solution_blocks():
    f = _relu(12)
    Xa, masks, y, lam, L = _arrays(f)
    r = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-8)  # no screening signal at all
    assert r.converged and r.certificate.rel_gap <= 1e-8
    assert r.history and {"objective", "rel_gap", "violation", "working_set"} <= set(r.history[-1])


def test_row_generation_gives_the_same_restricted_solution():
    f = _relu(13, n=40)
    Xa, masks, y, lam, L = _arrays(f)
    full = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-9)
    a = asm.solve_restricted(Xa, masks, y, lam, L, full.blocks, solver="clarabel")
    # start every block from 3 rows only: violated rows are generated until feasible
    b = asm.solve_restricted(Xa, masks, y, lam, L, full.blocks, V_ref=full.V, W_ref=full.W, v_ref=full.certificate.v,
                             rows_per_block=3)
    assert b.iterations > a.iterations  # more than one solve happened
    assert asm.violation(Xa, masks, b.V, b.W)[1] <= 1e-9
    ca, cb = certify_relu(Xa, masks, y, lam, L, a.V, a.W), certify_relu(Xa, masks, y, lam, L, b.V, b.W)
    assert cb.primal == pytest.approx(ca.primal, rel=1e-8) and cb.rel_gap <= 1e-8


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gated_support_start_matches_clarabel(loss):
    # the working set started from the C-GReLU support (one sign per gated neuron first) reaches
    # the same certified optimum as Clarabel, and as the start from the dual candidate alone
    f = _relu(11, loss=loss, P=14, lam=0.01 if loss == "squared" else 0.05)
    Xa, masks, y, lam, L = _arrays(f)
    g = cx.solve(cx.c_grelu(f.X, f.y, f.patterns, lam, loss=loss), method="gated_fista", tol=1e-6)
    U = g.weights["U"]
    start = asm.gated_start(Xa, masks, U, L)
    supp = np.flatnonzero(np.linalg.norm(U, axis=1) > 0)
    # one sign per gated neuron at least, never a pattern outside the support
    assert start.any(axis=0)[supp].all() and not start[:, np.setdiff1d(np.arange(masks.shape[1]), supp)].any()
    assert start.sum() <= int(np.ceil(asm._SUPPORT_RATIO * supp.size))
    # the first sign of each neuron is the one whose cone it violates least
    S = 2.0 * masks - 1.0
    for i in supp:
        z = Xa @ U[i]
        viol = [np.linalg.norm(np.minimum(S[:, i] * z, 0)), np.linalg.norm(np.minimum(-S[:, i] * z, 0))]
        assert start[int(np.argmin(viol)), i]
    ref = _tight(f)
    r = solve_relu_active_set(Xa, masks, y, lam, L, U_screen=U, tol=1e-9)
    r0 = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-9)
    assert r.converged and r0.converged
    assert r.certificate.primal == pytest.approx(ref, rel=1e-7)
    assert r.certificate.primal == pytest.approx(r0.certificate.primal, rel=1e-8)
    # a tiny cost budget truncates the start (the cost model of the restricted solve decides)
    small = asm.gated_start(Xa, masks, U, L, budget_seconds=0.0)
    assert small.sum() == 1


def test_deadline_stops_after_the_first_round_with_a_valid_certificate():
    """A deadline in the past: one restricted solve, reason "time_limit", and the certificate's dual
    value is still a lower bound on the optimum computed by Clarabel (weak duality)."""
    import time

    f = _relu(5, P=20, lam=0.02)
    Xa, M, y, lam, L = _arrays(f)
    r = solve_relu_active_set(Xa, M, y, lam, L, deadline=time.perf_counter() - 1.0)
    assert r.rounds == 1 and r.reason == "time_limit"
    opt = _tight(f)
    assert r.certificate.dual <= opt + 1e-9 * abs(opt)
    assert r.certificate.primal >= opt - 1e-9 * abs(opt)
    full = solve_relu_active_set(Xa, M, y, lam, L)
    assert full.converged and full.rounds >= r.rounds


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_loose_restricted_solves_keep_the_certified_optimum(loss, monkeypatch):
    """Restricted solves to eps_rel * tol, to eps only, and a loose first accuracy that cannot
    certify tol (the loop must tighten): all reach Clarabel's value with a certified gap <= tol."""
    f = _relu(12, loss=loss, P=16, lam=0.01 if loss == "squared" else 0.05)
    Xa, M, y, lam, L = _arrays(f)
    ref = _tight(f)
    # the interior point's loose and resumed solves (squared-loss programs this small go to Clarabel)
    monkeypatch.setattr(asm, "CLARABEL_MAX_NNZ", 0.0)
    seen: list[float] = []
    inner = asm.solve_restricted

    status: list[str] = []

    def spy(*a, **k):
        seen.append(k["eps"])
        rs = inner(*a, **k)
        status.append(rs.status)
        return rs

    monkeypatch.setattr(asm, "solve_restricted", spy)
    runs = {
        "default": solve_relu_active_set(Xa, M, y, lam, L, tol=1e-8),
        "tight": solve_relu_active_set(Xa, M, y, lam, L, tol=1e-8, eps_rel=0.0),
    }
    assert seen[0] == pytest.approx(1e-10)  # max(eps, 1e-2 tol)
    seen.clear()
    runs["loose"] = solve_relu_active_set(Xa, M, y, lam, L, tol=1e-9, eps_rel=1e5, eps_max=1e-4)  # at 1e-4
    for name, r in runs.items():
        assert r.converged and r.reason == "certified", name
        assert r.certificate.rel_gap <= (1e-9 if name == "loose" else 1e-8), name
        assert r.violation_rel <= 1e-8, name
        assert r.certificate.primal == pytest.approx(ref, rel=1e-7), name
        # the certificate is a certificate: its dual value is below Clarabel's optimum
        assert r.certificate.dual <= ref + 1e-9 * abs(ref), name
    # the loose rounds (1e-4) could not certify 1e-9: the last working set was solved again, tighter
    assert seen[0] == pytest.approx(1e-4) and seen[-1] <= 1e-10
    assert all(st.startswith("ipm") for st in status)  # the loose solves are the interior point's


def test_scan_with_multipliers_is_an_upper_bound_and_finds_the_same_blocks():
    """The cone multipliers of a restricted solve bound s_b(v) of its blocks (any rho >= 0 does):
    the scan with them returns s >= the exact scan's s (and close to it at a restricted optimum),
    and the same violated blocks outside the working set."""
    from convexnn.solvers.relu_certificate import _primal, scan_blocks

    f = _relu(13, P=20, lam=0.02)
    Xa, M, y, lam, L = _arrays(f)
    full = solve_relu_active_set(Xa, M, y, lam, L, tol=1e-9)
    norms = np.stack([np.linalg.norm(full.V, axis=1), np.linalg.norm(full.W, axis=1)])
    for drop in range(2):  # the optimal support, then with its largest block missing
        act = norms > 0
        if drop:
            act[np.unravel_index(int(np.argmax(norms)), norms.shape)] = False
        rs = asm.solve_restricted(Xa, M, y, lam, L, act)
        _, fit = _primal(Xa, M, y, lam, L, rs.V, rs.W)
        v = -np.asarray(L.grad(fit, y), dtype=float)
        a0, s0, _, n0 = scan_blocks(Xa, M, v, lam, act, 10 ** 6)
        a1, s1, _, n1 = scan_blocks(Xa, M, v, lam, act, 10 ** 6, multipliers=rs.multipliers)
        assert s1 >= s0 * (1 - 1e-12)
        assert s1 <= s0 + 1e-6 * lam
        assert {tuple(b) for b in a0} == {tuple(b) for b in a1}
        assert n1 <= n0
        if drop:
            assert a0.shape[0] >= 1 and s0 > lam * (1 + 1e-6)
        else:
            assert a0.shape[0] == 0


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_loose_rounds_reach_the_clarabel_optimum(loss):
    # loose_flops=0 makes every round far from the certificate a loose one (restricted eps 3e-2),
    # resumed to the round tolerance when nothing is left to add: same certified optimum as the
    # polish without loose rounds and as Clarabel
    f = _relu(12, loss=loss, n=60, P=16, lam=0.005 if loss == "squared" else 0.02)
    Xa, masks, y, lam, L = _arrays(f)
    ref = _tight(f)
    # (the full program is switched off: it keeps all its blocks, and the thinning is the subject here)
    nofull = {"full_share": 2.0, "full_blocks": 2.0}
    loose = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, loose_flops=0.0, prune_resume=0.0, **nofull)
    thinned = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, loose_flops=0.0, **nofull)
    plain = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, eps_loose=0.0, **nofull)
    assert loose.converged and thinned.converged and plain.converged
    assert any(h["restricted_eps"] == 3e-2 for h in loose.history)
    # the last loose round found nothing to add: the same working set, resumed to the round tolerance
    assert loose.history[-2]["restricted_eps"] == 3e-2 > loose.history[-1]["restricted_eps"]
    assert loose.history[-2]["working_set"] == loose.history[-1]["working_set"]
    # by default its almost-zero blocks leave before the resume
    assert thinned.history[-2]["restricted_eps"] == 3e-2 > thinned.history[-1]["restricted_eps"]
    assert thinned.history[-1]["working_set"] <= thinned.history[-2]["working_set"]
    if loss == "logistic":  # here half the blocks are below 1% of the largest after the loose solve
        assert thinned.history[-1]["working_set"] < thinned.history[-2]["working_set"]
    assert all(h["restricted_eps"] < 3e-2 for h in plain.history)
    for r in (loose, thinned, plain):
        assert r.certificate.rel_gap <= 1e-7 and r.violation_rel <= 1e-8
        assert r.certificate.primal == pytest.approx(ref, rel=1e-6)
        assert r.certificate.primal - ref <= r.certificate.gap + 1e-9 * abs(ref)
    assert loose.certificate.primal == pytest.approx(plain.certificate.primal, rel=1e-7)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_thinned_loose_rounds_reach_the_clarabel_optimum(loss):
    # prune_flops=0 thins every loose round: blocks below 30% of the largest weight leave the working
    # set (the working set shrinks between rounds), those still needed come back through the pricing,
    # and the polish certifies the same optimum as Clarabel (the full program, which keeps its blocks,
    # switched off)
    f = _relu(12, loss=loss, n=60, P=16, lam=0.005 if loss == "squared" else 0.02)
    Xa, masks, y, lam, L = _arrays(f)
    ref = _tight(f)
    r = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, loose_flops=0.0, prune_flops=0.0, prune_loose=0.3,
                              full_share=2.0, full_blocks=2.0)
    sizes = [h["working_set"] for h in r.history]
    assert any(b < a for a, b in zip(sizes, sizes[1:]))
    assert r.converged and r.certificate.rel_gap <= 1e-7 and r.violation_rel <= 1e-8
    assert r.certificate.primal == pytest.approx(ref, rel=1e-6)
    assert r.certificate.primal - ref <= r.certificate.gap + 1e-9 * abs(ref)
    # the default threshold leaves these small programs unthinned (and prune_resume=0 the resumed
    # rounds): the working set only grows
    plain = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, loose_flops=0.0, prune_resume=0.0)
    sizes = [h["working_set"] for h in plain.history]
    assert all(b >= a for a, b in zip(sizes, sizes[1:]))


def test_thinning_stops_once_the_blocks_it_dropped_come_back(monkeypatch):
    # thinning at 90% of the largest weight drops blocks the optimum needs: they are violated again
    # and return, after which no round is thinned (the working set only grows), where without the
    # rule every loose round is thinned again; both certify Clarabel's optimum
    f = _relu(12, loss="logistic", n=60, P=16, lam=0.02)
    Xa, masks, y, lam, L = _arrays(f)
    ref = _tight(f)
    kw = dict(tol=1e-7, loose_flops=0.0, prune_flops=0.0, prune_loose=0.9, full_share=2.0, full_blocks=2.0)

    def thinnings(r):  # the rounds after which blocks were thinned (history: the count before each)
        counts = [h["thinned"] for h in r.history]
        return [i for i, (a, b) in enumerate(zip(counts, counts[1:])) if b > a]

    r = solve_relu_active_set(Xa, masks, y, lam, L, **kw)
    monkeypatch.setattr(asm, "THIN_RETURN_SHARE", np.inf)
    always = solve_relu_active_set(Xa, masks, y, lam, L, **kw)
    assert len(thinnings(always)) > len(thinnings(r)) >= 1
    for out in (r, always):
        assert out.converged and out.certificate.rel_gap <= 1e-7 and out.violation_rel <= 1e-8
        assert out.certificate.primal == pytest.approx(ref, rel=1e-6)


def test_violation_over_nonzero_blocks_equals_the_operator_value():
    # the active set's cone violation (nonzero blocks only) against relu_violation over all P blocks
    from convexnn.solvers.backend import get_backend
    from convexnn.solvers.gap import relu_violation
    from convexnn.solvers.operators import MaskedDesign

    f = _relu(21, n=35, P=9)
    Xa, masks, *_ = _arrays(f)
    rng = np.random.default_rng(0)
    V, W = rng.standard_normal((2, 9, Xa.shape[1]))
    V[[1, 4]] = 0.0
    W[2] = 0.0
    ref = relu_violation(MaskedDesign(Xa, masks, get_backend()), V, W)
    assert asm.violation(Xa, masks, V, W) == pytest.approx(ref, rel=1e-14)
    assert asm.violation(Xa, masks, 0 * V, 0 * W) == (0.0, 0.0)


def test_cone_rows_rule():
    assert asm.cone_rows(3000, 11) is None  # fewer than four times 1000 rows: all rows
    assert asm.cone_rows(4000, 11) == 1000
    assert asm.cone_rows(10_000, 51) == 1020
    assert asm.cone_rows(100_000, 51) == 4000  # n / 25
    assert asm.cone_rows(4000, 51) is None


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_active_set_with_cone_row_generation_matches_all_rows(loss):
    # the polish with few cone rows per block (generated as violated) reaches the certified optimum
    # of the polish with all rows, and Clarabel's
    f = _relu(17, loss=loss, n=120, P=12, lam=0.02 if loss == "squared" else 0.05)
    Xa, masks, y, lam, L = _arrays(f)
    n = Xa.shape[0]
    ref = _tight(f)
    full = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-9, rows_per_block=n)
    rg = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-9, rows_per_block=5)
    for r in (full, rg):
        assert r.converged and r.certificate.rel_gap <= 1e-9 and r.violation <= 1e-8
        assert r.certificate.primal == pytest.approx(ref, rel=1e-7)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_flop_count_is_the_sum_of_its_cost_models(loss, monkeypatch):
    # the polish's flop count (for the achieved flop rate of the benchmarks) is flops0, plus every
    # restricted interior-point solve's (iterations + 1) x iteration_flops of its working set, plus
    # 4 n d' P per scan: recomputed here from the solves and scans themselves
    import convexnn.solvers.block_ipm as bim

    f = _relu(21, loss=loss, n=40, P=12, lam=0.02)
    Xa, masks, y, lam, L = _arrays(f)
    n, d = Xa.shape
    P = masks.shape[1]
    monkeypatch.setattr(asm, "CLARABEL_MAX_NNZ", 0.0)  # every restricted program by the interior point
    seen: list[float] = []
    scans = []
    real_ipm, real_scan, real_screen = asm.solve_block_ipm, asm.scan_blocks, asm.screen_blocks

    def ipm(Xa_, mk, sg, *a, **k):
        r = real_ipm(Xa_, mk, sg, *a, **k)
        units = len({tuple(c) for c in np.asarray(mk, dtype=bool).T})
        seen.append((r.iterations + 1) * bim.iteration_flops(n, mk.shape[1], d, L.unit_curvature, units)[0])
        assert r.flops == pytest.approx(seen[-1], rel=1e-12)
        return r

    def count(real):
        def wrapped(*a, **k):
            scans.append(1)
            return real(*a, **k)
        return wrapped

    monkeypatch.setattr(asm, "solve_block_ipm", ipm)
    monkeypatch.setattr(asm, "scan_blocks", count(real_scan))
    monkeypatch.setattr(asm, "screen_blocks", count(real_screen))
    r = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-8, flops0=123.0)
    assert r.converged and seen and scans
    assert r.flops == pytest.approx(123.0 + sum(seen) + len(scans) * 4.0 * n * d * P, rel=1e-12)
    # the solver's info carries it; restricted programs solved by Clarabel are not counted (NaN)
    sol = cx.solve(f, method="first_order", tol=1e-8)
    assert np.isfinite(sol.info["polish"]["flops"]) and sol.info["polish"]["flops"] > 0
    monkeypatch.undo()
    assert np.isnan(solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-8, restricted="clarabel").flops)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_full_program_rule_reaches_the_clarabel_optimum_in_fewer_rounds(loss):
    """Small weight decay, dense support: once the working set's patterns cover half of them, the
    next round takes every block (the full program); same certified optimum as the doubling
    schedule and as Clarabel."""
    f = _relu(3, loss=loss, n=80, d=2, P=40, lam=1e-3 if loss == "squared" else 1e-2)
    Xa, masks, y, lam, L = _arrays(f)
    P = masks.shape[1]
    ref = _tight(f)
    full = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7)
    off = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, full_share=2.0, full_blocks=2.0)
    assert any(h["working_set"] == 2 * P for h in full.history)
    assert all(h["working_set"] < 2 * P for h in off.history)
    assert full.rounds < off.rounds
    for r in (full, off):
        assert r.converged and r.certificate.rel_gap <= 1e-7 and r.violation_rel <= 1e-8
        assert r.certificate.primal == pytest.approx(ref, rel=1e-6)
        assert r.certificate.primal - ref <= r.certificate.gap + 1e-9 * abs(ref)


def test_a_working_set_of_most_blocks_grows_to_the_full_program_whatever_its_size():
    """Once the working set holds FULL_BLOCKS_SHARE of the 2P blocks, the next round holds all of
    them, also above FULL_VARS (here the size rule is switched off by full_vars=0); the certified
    optimum is Clarabel's either way."""
    f = _relu(3, n=80, d=2, P=40, lam=1e-3)
    Xa, masks, y, lam, L = _arrays(f)
    P = masks.shape[1]
    ref = _tight(f)
    on = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, full_vars=0)
    off = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, full_vars=0, full_blocks=2.0)
    sizes = [h["working_set"] for h in on.history]
    first = sizes.index(2 * P)  # the full program is reached ...
    assert first > 0 and sizes[first - 1] < 2 * P
    assert all(s < 2 * P for s in [h["working_set"] for h in off.history])  # ... and not without the rule
    for r in (on, off):
        assert r.converged and r.certificate.rel_gap <= 1e-7 and r.violation_rel <= 1e-8
        assert r.certificate.primal == pytest.approx(ref, rel=1e-6)
        assert r.certificate.primal - ref <= r.certificate.gap + 1e-9 * abs(ref)


def test_full_program_of_a_nearly_lad_program_is_solved_tight():
    """Huber with targets 300x its threshold (nearly least absolute deviations), loose rounds for every
    size: the partial working sets are solved loosely, the full program directly to the round's
    tolerance with all its blocks; Clarabel's optimum, certified."""
    rng = np.random.default_rng(0)
    n, d, P = 60, 2, 16
    X = rng.standard_normal((n, d))
    y = 300.0 * (np.maximum(X @ rng.standard_normal(d), 0) + 0.3 * rng.standard_normal(n))
    f = cx.c_relu(X, y, cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True), 1.0,
                  loss=cx.HuberLoss(1.0))
    Xa, masks, y, _, _ = _arrays(f)
    L = cx.HuberLoss(1.0)
    f.lam.value = lam = 0.01 * lam_max(Xa, masks, y, L)
    r = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, loose_flops=0.0)
    rounds = [(h["working_set"], h["restricted_eps"]) for h in r.history]
    assert rounds[-1][0] == 2 * P and rounds[-1][1] < 3e-2
    assert all(eps < 3e-2 for ws, eps in rounds if ws == 2 * P)
    assert any(eps == 3e-2 for ws, eps in rounds if ws < 2 * P)
    assert r.converged and r.certificate.rel_gap <= 1e-7 and r.violation_rel <= 1e-8
    ref = _tight(f)
    assert r.certificate.primal == pytest.approx(ref, rel=1e-6)
    assert r.certificate.primal - ref <= r.certificate.gap + 1e-9 * abs(ref)


def test_full_program_rule_needs_coverage_and_a_small_program():
    masks_cover = np.zeros((2, 10), dtype=bool)
    masks_cover[:, :5] = True  # both blocks of 5 of the 10 patterns
    assert asm._go_full(masks_cover, 50, 3, True, 0.5, 2.5)
    assert not asm._go_full(masks_cover, 50, 3, True, 0.6, 2.5)  # coverage below the share
    assert not asm._go_full(np.ones((2, 10), dtype=bool), 50, 3, True, 0.5, 2.5)  # already full
    # the full program's iteration would cost more than ratio times the working set's
    assert not asm._go_full(masks_cover, 50, 3, True, 0.5, 1.0)


def test_dense_small_programs_start_from_the_full_program():
    """lam_max / lam above FULL_START_RATIO on a program of at most FULL_VARS unit variables: the
    first round already holds every block (no screening); the Clarabel optimum, certified."""
    from convexnn.solvers import lam_max

    f0 = _relu(4, n=60, d=2, P=20)
    Xa, masks, y, _, L = _arrays(f0)
    P = masks.shape[1]
    lam = lam_max(Xa, masks, y, "squared") / (2.0 * asm.FULL_START_RATIO)
    f = cx.c_relu(f0.X, y, f0.patterns, lam)
    ref = _tight(f)
    sol = cx.solve(f, method="first_order", tol=1e-7, viol_tol=1e-8)
    hist = sol.info["history"]
    rounds = [h for h in hist if "round" in h]
    assert sol.status == "optimal" and rounds[0]["working_set"] == 2 * P
    assert sol.value == pytest.approx(ref, rel=1e-6)
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)
    direct = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-7, start_full=True)
    assert direct.history[0]["working_set"] == 2 * P and direct.converged


def test_tiny_programs_start_from_the_full_program(monkeypatch):
    """A program whose interior-point iteration on all blocks costs at most FULL_START_FLOPS starts
    from every block whatever lam (one restricted solve, no screening); with the rule off it screens
    and grows its working set. Both reach the Clarabel optimum, certified."""
    from convexnn.solvers.block_ipm import iteration_flops

    f = _relu(5, n=30, d=2, P=12, lam=0.3)
    Xa, masks, y, _, L = _arrays(f)
    n, d = Xa.shape
    P = masks.shape[1]
    assert iteration_flops(n, 2 * P, d, True, units=P)[0] <= asm.FULL_START_FLOPS
    ref = _tight(f)
    full = cx.solve(f, method="first_order", tol=1e-7, viol_tol=1e-8)
    assert full.info["history"][0]["working_set"] == 2 * P and full.iterations < 60
    monkeypatch.setattr(first_order, "FULL_START_FLOPS", 0.0)
    grown = cx.solve(f, method="first_order", tol=1e-7, viol_tol=1e-8)
    assert grown.info["history"][0]["working_set"] < 2 * P
    for sol in (full, grown):
        assert sol.status == "optimal"
        assert sol.value == pytest.approx(ref, rel=1e-6)
        assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)


@pytest.mark.parametrize("budget", [0, 1, 5, 60])
def test_the_iteration_budget_bounds_the_polish(budget, monkeypatch):
    # a program with screening (moderate lam; the full start of tiny programs off): the screening's
    # iterations count, and no restricted solve starts once the budget is spent
    monkeypatch.setattr(first_order, "FULL_START_FLOPS", 0.0)
    f = _relu(3, n=60, P=16, lam=0.5)
    with pytest.warns(cx.ConvergenceWarning, match=rf"iteration budget \(max_iter\) spent.*max_iter={budget}\b"):
        sol = cx.solve(f, method="first_order", tol=1e-8, max_iter=budget)
    assert sol.status == "max_iter" and sol.iterations <= budget
    assert "iteration budget" in sol.info["stop_reason"]
    # whatever point it returns, its certified gap bounds its suboptimality
    ref = _tight(f)
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)


def test_a_restricted_solve_in_progress_finishes_and_counts():
    # a small program with a dense support starts from the full program without screening: the
    # first restricted solve runs whatever the budget above zero, and its iterations are reported
    f = _relu(3, n=60, P=16, lam=0.005)
    with pytest.warns(cx.ConvergenceWarning, match="max_iter=0"):
        none = cx.solve(f, method="first_order", tol=1e-8, max_iter=0)
    assert none.status == "max_iter" and none.iterations == 0
    one = cx.solve(f, method="first_order", tol=1e-8, max_iter=1)
    assert one.status == "optimal" and 1 < one.iterations <= 1 + 150
    assert one.value == pytest.approx(_tight(f), rel=1e-6)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_facet_rows_reach_the_optimum_of_all_rows(loss):
    # the polish started from the chambers' facet rows (gates given, or the sign fit) certifies the
    # same optimum as with all rows and as Clarabel, with every row satisfied
    f = _relu(21, loss=loss, n=150, d=3, P=14, lam=0.01 if loss == "squared" else 0.03)
    Xa, masks, y, lam, L = _arrays(f)
    ref = _tight(f)
    gates = np.asarray(f.patterns.gates)
    runs = [solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-9, rows_per_block=Xa.shape[0]),
            solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-9, gates=gates),
            solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-9)]
    for r in runs:
        assert r.converged and r.certificate.rel_gap <= 1e-9
        assert asm.violation(Xa, masks, r.V, r.W)[1] <= 1e-8
        assert r.certificate.primal == pytest.approx(ref, rel=1e-7)


def test_restricted_solve_from_facets_adds_the_rows_a_hull_missed(monkeypatch):
    # facets with every other row of every chamber removed (and kept out of the padding): the
    # relaxation's solution violates some, row generation adds them, and the restricted optimum is
    # the one with all rows
    from convexnn.arrangements.facets import ChamberFacets

    f = _relu(22, n=80, d=3, P=10, lam=0.005)
    Xa, masks, y, lam, L = _arrays(f)
    gates = np.asarray(f.patterns.gates)
    active = np.ones((2, masks.shape[1]), dtype=bool)
    exact = ChamberFacets(Xa, gates)
    a = asm.solve_restricted(Xa, masks, y, lam, L, active, eps=1e-10)  # all rows
    b = asm.solve_restricted(Xa, masks, y, lam, L, active, eps=1e-10, facets=exact)
    of = ChamberFacets.of

    def missing(self, i, mask):
        out = of(self, i, mask)
        if out is None:
            return None
        return out[0][::2], out[1][~np.isin(out[1], out[0][1::2])]

    monkeypatch.setattr(ChamberFacets, "of", missing)
    monkeypatch.setattr(ChamberFacets, "_fill", lambda *a: None)  # every chamber through of()
    c = asm.solve_restricted(Xa, masks, y, lam, L, active, eps=1e-10, facets=ChamberFacets(Xa, gates))
    assert c.iterations > b.iterations  # a second solve with the generated rows
    ca = certify_relu(Xa, masks, y, lam, L, a.V, a.W)
    for r in (b, c):
        assert asm.violation(Xa, masks, r.V, r.W)[1] <= 1e-9
        assert certify_relu(Xa, masks, y, lam, L, r.V, r.W).primal == pytest.approx(ca.primal, rel=1e-8)


def test_blocks_that_violate_their_cones_are_projected():
    # a certified point with one small block turned out of its chamber: the projection puts it back
    # and moves nothing else
    f = _relu(23, n=40, d=3, P=8, lam=0.05)
    Xa, masks, y, lam, L = _arrays(f)
    r = solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-9)
    V, W = r.V.copy(), r.W.copy()
    assert asm.violation(Xa, masks, V, W)[1] <= 1e-8
    i = int(np.argmin(np.linalg.norm(V, axis=1)))
    sg = np.where(masks[:, i], 1.0, -1.0)
    out = -Xa.T @ sg  # a direction out of its chamber, 1e-3 of the largest block
    V[i] = 1e-3 * np.linalg.norm(V, axis=1).max() * out / np.linalg.norm(out)
    assert asm.violation(Xa, masks, V, W)[1] > 1e-6
    V2, W2, va, vr = asm._onto_cones(Xa, masks, V, W, 1e-6)
    assert vr <= 1e-6 and (va, vr) == asm.violation(Xa, masks, V2, W2)
    assert np.min(sg * (Xa @ V2[i])) >= -1e-12 * np.abs(Xa @ V[i]).max()
    keep = np.arange(V.shape[0]) != i
    assert np.array_equal(V2[keep], V[keep]) and np.array_equal(W2, W)
    # a point within the tolerance is returned as it is
    V3, W3, _, _ = asm._onto_cones(Xa, masks, r.V, r.W, 1e-8)
    assert V3 is r.V and W3 is r.W


def test_noise_blocks_of_a_zero_optimum_do_not_block_the_certificate():
    # a held-out tiny program whose optimum is zero (logistic, lam = 0.3 lam_max): the interior point
    # returned blocks of rounding noise violating their rows (relative 3.6e-5); certified now
    rng = np.random.default_rng(5000 + 29)
    n = 25
    X = rng.standard_t(4, size=(n, 1)) * rng.uniform(0.5, 3, size=1) + rng.uniform(-2, 2, size=1)
    y = np.sin(X @ rng.standard_normal(1)) + 0.3 * rng.standard_normal(n)
    y = np.where(y > np.median(y), 1.0, -1.0)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((2, 10)), bias=True)
    Xa = np.hstack([X, np.ones((n, 1))])
    lam = 0.3 * cx.solvers.lam_max(Xa, pat.masks, y, "logistic")
    f = cx.c_relu(X, y, pat, lam, loss="logistic")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = cx.solve(f, method="first_order")
    assert sol.status == "optimal" and sol.info["violation"] <= 1e-8
    ref = _tight(f)
    assert sol.value == pytest.approx(ref, rel=1e-8) and sol.value == pytest.approx(n * np.log(2.0), rel=1e-8)


def test_row_generation_ignores_rows_violated_no_more_than_the_rows_in():
    # a row left out that is a duplicate of a row in R has the same value: when the interior point
    # meets its own rows only to -1e-9, that duplicate is not "violated" (integer-valued data has
    # many duplicates: each would cost a solve); a row violated beyond twice that is
    rng = np.random.default_rng(24)
    X = rng.standard_normal((20, 3))
    Xa = np.vstack([X, X[:2]])  # rows 20, 21 duplicate rows 0, 1
    x = np.linalg.lstsq(Xa[:3], np.array([-1e-9, 1.0, 1.0]), rcond=None)[0]  # row 0 at -1e-9
    z = Xa @ x
    mk = (z >= 0)[:, None]
    mk[[0, 20], 0] = True  # row 0 and its duplicate 20 slightly violated: s = +1, value -1e-9
    R = np.array([[0], [1], [2]])
    out = asm._violated_rows(Xa, mk, x[None, :], R, last=False)
    assert out is False
    # row 3 (not a duplicate) made violated by far more than row 0
    mk2 = mk.copy()
    mk2[3, 0] = not mk2[3, 0]
    out = asm._violated_rows(Xa, mk2, x[None, :], R, last=False)
    assert out is not False and 3 in out[:, 0]


def test_a_shared_chamber_facets_gives_the_same_optimum_and_must_match_the_data():
    # one ChamberFacets over two pattern sets on the same data (as solve_global keeps it): each polish
    # reaches the optimum of a polish with its own facets; facets of other data are refused
    from convexnn.arrangements.facets import ChamberFacets

    f = _relu(31, n=60, d=2, P=12, lam=0.02)
    Xa, masks, y, lam, L = _arrays(f)
    gates = np.asarray(f.patterns.gates, dtype=np.float64)
    shared = ChamberFacets(Xa)
    for cols in (np.arange(6), np.arange(12)):
        own = solve_relu_active_set(Xa, masks[:, cols], y, lam, L, tol=1e-9, gates=gates[:, cols])
        got = solve_relu_active_set(Xa, masks[:, cols], y, lam, L, tol=1e-9, gates=gates[:, cols], facets=shared)
        assert got.converged and own.converged
        assert got.certificate.primal == pytest.approx(own.certificate.primal, rel=1e-8)
    assert len(shared._cache) == len({masks[:, i].tobytes() for i in range(12)})
    with pytest.raises(ValueError, match="60"):
        solve_relu_active_set(Xa, masks, y, lam, L, facets=ChamberFacets(Xa[:30]))


def test_small_restricted_programs_go_to_clarabel_and_fall_back(monkeypatch):
    """A squared-loss program of a few blocks with its facet rows is solved by Clarabel's own interface
    first (asm.CLARABEL_MAX_NNZ): the certified optimum is Clarabel's full program's through CVXPY;
    when Clarabel fails, or does not reach the accuracy, the block interior point solves the same
    programs to the same optimum."""
    f = _relu(31, n=60, d=2, P=12, lam=0.05)
    Xa, M, y, lam, L = _arrays(f)
    ref = _tight(f)
    status: list[str] = []
    inner = asm.solve_restricted

    def spy(*a, **k):
        rs = inner(*a, **k)
        status.append(rs.status)
        return rs

    monkeypatch.setattr(asm, "solve_restricted", spy)
    results = {}
    for case in ("clarabel", "fails", "inaccurate"):
        if case == "fails":
            def fail(*a, **k):
                import cvxpy as cp

                raise cp.error.SolverError("Clarabel returned status NumericalError")

            monkeypatch.setattr(asm, "_clarabel_squared", fail)
        elif case == "inaccurate":
            monkeypatch.undo()
            monkeypatch.setattr(asm, "solve_restricted", spy)
            real = asm._clarabel_blocks

            def loose(*a, **k):  # an answer whose gap is above what the polish accepts
                r = real(*a, **k)
                r.gap = 1e-3
                return r

            monkeypatch.setattr(asm, "_clarabel_blocks", loose)
        status.clear()
        r = solve_relu_active_set(Xa, M, y, lam, L, tol=1e-8)
        assert r.converged and r.reason == "certified", case
        assert r.certificate.rel_gap <= 1e-8 and r.violation_rel <= 1e-8, case
        assert r.certificate.primal == pytest.approx(ref, rel=1e-7), case
        assert r.certificate.dual <= ref + 1e-9 * abs(ref), case  # a certificate: below Clarabel's optimum
        assert status and all(s.startswith("clarabel" if case == "clarabel" else "ipm") for s in status), case
        results[case] = r
    for case in ("fails", "inaccurate"):
        np.testing.assert_allclose(results[case].V, results["clarabel"].V, atol=1e-6 * np.abs(results["clarabel"].V).max())


def test_conic_nnz_counts_the_conic_form():
    """conic_nnz is the number of stored entries of _clarabel_squared's program (Gram and residual forms)."""
    import scipy.sparse as sp

    captured = {}
    real_solver = __import__("clarabel").DefaultSolver

    class Spy:
        def __init__(self, Pm, q, A, b, cones, st):
            captured["nnz"] = sp.triu(Pm).nnz + A.nnz
            self.s = real_solver(Pm, q, A, b, cones, st)

        def solve(self):
            return self.s.solve()

    import clarabel

    rng = np.random.default_rng(3)
    for n, k, d, r in [(40, 3, 4, 5), (10, 6, 3, 4)]:  # k d <= 2 n: Gram form; k d > 2 n: residual form
        Xa = rng.standard_normal((n, d))
        mk = rng.random((n, k)) < 0.5
        R = np.stack([rng.choice(n, r, replace=False) for _ in range(k)], axis=1)
        y = rng.standard_normal(n)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(clarabel, "DefaultSolver", Spy)
            res = asm._clarabel_blocks(Xa, mk, np.where(np.arange(k) % 2 == 0, 1.0, -1.0), y, 0.1, R, 1e-8, 100)
        assert res is not None and res.multipliers.shape == (r, k)
        # the estimate counts dense blocks: at least the stored entries, within the Gram's diagonal and zeros
        assert captured["nnz"] <= asm.conic_nnz(n, k, d, r) <= 1.5 * captured["nnz"]


def test_the_full_program_is_never_solved_loosely(monkeypatch):
    """Loose rounds price the blocks outside the working set; the full program has none, so its solves
    are to the round's tolerance (while a partial working set's are loose under the same settings)."""
    f = _relu(41, n=50, d=3, P=10, lam=0.02)
    Xa, M, y, lam, L = _arrays(f)
    ref = _tight(f)
    seen: list[tuple[float, bool]] = []
    inner = asm.solve_restricted

    def spy(*a, **k):
        seen.append((k["eps"], bool(a[5].all())))
        return inner(*a, **k)

    monkeypatch.setattr(asm, "solve_restricted", spy)
    monkeypatch.setattr(asm, "CLARABEL_MAX_NNZ", 0.0)
    for full in (True, False):
        seen.clear()
        # every round loose while the gap is above 99%: the first one always is
        r = solve_relu_active_set(Xa, M, y, lam, L, tol=1e-8, loose_flops=0.0, loose_above=0.0, start_full=full)
        assert r.converged and r.certificate.primal == pytest.approx(ref, rel=1e-7)
        assert r.certificate.dual <= ref + 1e-9 * abs(ref)
        if full:
            assert seen and all(everything and eps <= 1e-8 for eps, everything in seen)
        else:
            assert any(eps >= 1e-2 and not everything for eps, everything in seen)


def test_clarabel_quality_is_infinite_where_clarabel_reports_nothing():
    """An answer is taken on Clarabel's gap and residuals only where it reports them (finite numbers)."""
    class Full:
        obj_val, obj_val_dual, r_prim, r_dual = 2.0, 1.5, 1e-9, 2e-9

    class Bare:
        obj_val = 2.0

    class Nan(Full):
        obj_val_dual = float("nan")

    assert asm._clarabel_quality(Full()) == (0.5, 1e-9, 2e-9)
    assert asm._clarabel_quality(Bare()) == (np.inf, np.inf, np.inf)
    assert asm._clarabel_quality(Nan())[0] == np.inf



@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(8, 60), d=st.integers(1, 4), k=st.integers(1, 8),
       lam_frac=st.sampled_from([0.01, 0.1, 0.5]))
def test_clarabel_blocks_satisfy_the_kkt_conditions(seed, n, d, k, lam_frac):
    """_clarabel_blocks on random restricted programs (all cone rows): primal feasible, multipliers
    nonnegative and complementary, and stationary -- F_b^T(Fx - y) - C_b^T z_b + lam x_b/||x_b|| = 0 on
    the nonzero blocks, ||F_b^T(Fx - y) - C_b^T z_b|| <= lam on the zero ones -- with the objective of
    the block interior point (an independent solver)."""
    from convexnn.solvers.block_ipm import solve_block_ipm

    rng = np.random.default_rng(seed)
    Xa = np.hstack([rng.standard_normal((n, d)), np.ones((n, 1))])
    gates = rng.standard_normal((d + 1, k))
    mk = (Xa @ gates) >= 0
    sg = np.where(rng.random(k) < 0.5, 1.0, -1.0)
    y = rng.standard_normal(n)
    F = ((mk * sg)[:, :, None] * Xa[:, None, :]).reshape(n, -1)
    lam = lam_frac * max(float(np.abs(F.T @ y).max()), 1e-3)
    r = asm._clarabel_blocks(Xa, mk, sg, y, lam, None, 1e-10, 200)
    assert r is not None and r.status in ("optimal", "almostsolved")
    D = d + 1
    X, Z = r.X, r.multipliers  # (k, d'), (n, k)
    S = 2.0 * mk - 1.0
    scale = 1.0 + float(np.abs(y).max()) * float(np.abs(Xa).max()) * n
    assert np.all(Z >= 0) and (S * (Xa @ X.T)).min() >= -1e-7 * (1.0 + np.abs(Xa @ X.T).max())
    assert np.abs(Z * S * (Xa @ X.T)).max() <= 1e-6 * scale  # complementarity
    g = (F.T @ (F @ X.reshape(-1) - y)).reshape(k, D) - ((S * Z).T @ Xa)  # gradient of the smooth part
    norms = np.linalg.norm(X, axis=1)
    # the scale of a nonzero block: ||y|| / ||F|| (a block below 1e-6 of it is zero up to the solver's accuracy)
    big = norms > 1e-6 * np.linalg.norm(y) / max(np.linalg.norm(F, 2), 1e-300)
    for b in range(k):
        if big[b]:
            assert np.linalg.norm(g[b] + lam * X[b] / norms[b]) <= 1e-5 * scale
        else:
            assert np.linalg.norm(g[b]) <= lam + 1e-5 * scale
    ipm = solve_block_ipm(Xa, mk, sg, y, lam, get_loss("squared"), eps=1e-11)
    assert r.objective == pytest.approx(ipm.objective, rel=1e-7, abs=1e-9)
