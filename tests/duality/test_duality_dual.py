"""The dual program and duality gaps of C-ReLU / C-GReLU."""

from __future__ import annotations

import numpy as np

import convexnn as cx


def test_dual_problem_strong_duality(small):
    f, sol = small["f"], small["sol"]
    D = cx.dual_problem(f)
    assert isinstance(D, cx.DualProblem)
    assert D.is_dcp() and D.is_dpp()
    assert len(D.constraints) == 2  # one vectorized SOC constraint per sign, no per-pattern loop
    D.solve(solver="CLARABEL")
    assert abs(D.value - sol.value) <= 1e-6 * abs(sol.value)
    # the dual optimum is the residual y - yhat (sign convention)
    assert np.allclose(D.v.value, small["y"] - sol.fit, atol=1e-4)


def test_dual_problem_follows_lam_parameter(small, tight):
    f = cx.c_relu(small["X"], small["y"], small["P"], 0.3)
    D = cx.dual_problem(f)
    D.solve(solver="CLARABEL")
    p1 = tight(f).value
    assert abs(D.value - p1) <= 1e-6 * p1
    f.lam.value = 0.7
    D.solve(solver="CLARABEL")
    p2 = tight(f).value
    assert abs(D.value - p2) <= 1e-6 * p2 and abs(p2 - p1) > 1e-2


def test_dual_gated(small, tight):
    f = cx.c_grelu(small["X"], small["y"], small["P"], small["lam"])
    D = cx.dual_problem(f)
    D.solve(solver="CLARABEL")
    assert len(D.constraints) == 1
    assert abs(D.value - tight(f).value) <= 1e-6 * abs(D.value)


def test_duality_gap_weak_duality_random_points(small):
    f, sol = small["f"], small["sol"]
    g = cx.duality_gap(f, sol, small["y"] - sol.fit)
    assert 0 <= g.gap <= 1e-6 * g.primal
    rng = np.random.default_rng(0)
    zero = {"V": np.zeros_like(sol.V), "W": np.zeros_like(sol.W)}
    for _ in range(5):
        v = rng.standard_normal(len(small["y"])) * 3
        for w in (sol, zero):
            g = cx.duality_gap(f, w, v)
            assert g.gap >= -1e-9 * abs(g.primal)
            # the best feasible multiple of v (0 when every positive one lowers the dual value):
            # its dual value is below the optimum
            assert g.scale >= 0 and g.dual <= sol.value * (1 + 1e-9)


def test_duality_gap_accepts_solved_dual_and_certificate(small):
    f, sol = small["f"], small["sol"]
    D = cx.dual_problem(f)
    D.solve(solver="CLARABEL")
    assert float(cx.duality_gap(f, sol, D)) <= 1e-6 * sol.value
    cert = cx.certify(sol.to_network(), small["X"], small["y"], small["lam"], patterns=small["P"])
    assert 0 <= cx.duality_gap(f, sol, cert).gap <= 1e-5 * sol.value


def test_dual_hinge_loss_strong_duality(small, tight):
    yl = np.sign(small["y"])
    f = cx.c_relu(small["X"], yl, small["P"], 0.5, loss="hinge")
    p = tight(f).value
    D = cx.dual_problem(f)
    D.solve(solver="CLARABEL")
    assert abs(D.value - p) <= 1e-5 * max(abs(p), 1)
