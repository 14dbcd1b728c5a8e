"""A ConvexSolution owns the multipliers of its own solve: re-solving the formulation at another
lam (CVXPY overwrites the constraints' dual values) must not change the KKT report of an
earlier solution."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import convexnn as cx
from convexnn.arrangements.enumerate import enumerate_patterns



def solve_tight(f):
    return f.solve("CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)


@pytest.fixture(scope="module")
def two_solves():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((12, 2))
    y = np.sin(2 * X[:, 0]) - 0.5 * X[:, 1] + 0.1 * rng.standard_normal(12)
    P = enumerate_patterns(X, bias=True)
    lam1, lam2 = 0.05, 0.4
    f = cx.c_relu(X, y, P, lam1)
    sol1 = solve_tight(f)
    K_before = cx.kkt(sol1)
    live_before = np.array(f.constraints["cone_v"].dual_value)
    f.lam.value = lam2
    sol2 = solve_tight(f)
    return {"X": X, "y": y, "f": f, "sol1": sol1, "sol2": sol2, "K_before": K_before,
            "live_before": live_before, "lam1": lam1, "lam2": lam2}


def _same_kkt(A: cx.KKT, B: cx.KKT) -> None:
    assert A.multipliers_from == B.multipliers_from == "cvxpy"
    assert A.lam == B.lam
    np.testing.assert_array_equal(A.rho, B.rho)
    np.testing.assert_array_equal(A.Q, B.Q)
    np.testing.assert_array_equal(A.support, B.support)
    for name in ("dual_infeasibility", "support_residual", "alignment_residual", "complementary_slackness",
                 "primal_infeasibility", "dual_negativity", "norm_complementarity"):
        assert getattr(A, name) == getattr(B, name), name


def test_kkt_of_an_earlier_solution_survives_a_resolve(two_solves):
    s = two_solves
    f = s["f"]
    # the re-solve really changed CVXPY's live multipliers (otherwise this test could not fail)
    live_after = np.asarray(f.constraints["cone_v"].dual_value)
    assert np.max(np.abs(live_after - s["live_before"])) > 1e-3
    K1 = cx.kkt(s["sol1"])
    _same_kkt(K1, s["K_before"])
    # and it is the KKT system of lam1 (Mishkin & Pilanci (ICML 2023)): ||q_i|| <= lam1, = lam1 on the support
    lam1 = s["lam1"]
    assert np.all(K1.q_norms <= lam1 * (1 + 1e-6))
    assert np.allclose(K1.q_norms[K1.support], lam1, rtol=1e-4)
    assert K1.satisfied(1e-5)


def test_live_duals_of_the_other_lam_would_break_the_kkt_report(two_solves):
    """Independent check that the snapshot matters: sol1's block correlations built from the
    multipliers of the lam2 solve violate the dual constraint ||q_i|| <= lam1."""
    s = two_solves
    f, sol1, lam1 = s["f"], s["sol1"], s["lam1"]
    Xa = f.Xa
    M = np.asarray(f.patterns.masks, float)
    S2 = np.hstack([2 * M - 1, 2 * M - 1])
    r = f.y - sol1.fit
    G = (Xa.T @ (M * r[:, None])).T
    g = np.vstack([G, -G])
    rho_live = np.hstack([f.constraints["cone_v"].dual_value, f.constraints["cone_w"].dual_value])
    Q_live = g + (Xa.T @ (S2 * rho_live)).T
    assert np.linalg.norm(Q_live, axis=1).max() > lam1 * (1 + 1e-2)
    rho_snap = np.hstack([sol1.duals["cone_v"], sol1.duals["cone_w"]])
    Q_snap = g + (Xa.T @ (S2 * rho_snap)).T
    assert np.linalg.norm(Q_snap, axis=1).max() <= lam1 * (1 + 1e-6)


def test_second_solution_has_its_own_multipliers(two_solves):
    s = two_solves
    K2 = cx.kkt(s["sol2"])
    assert K2.lam == s["lam2"]
    assert K2.multipliers_from == "cvxpy"
    assert K2.satisfied(1e-5)
    assert np.allclose(K2.q_norms[K2.support], s["lam2"], rtol=1e-4)


def test_snapshot_is_a_copy(two_solves):
    s = two_solves
    sol2, f = s["sol2"], s["f"]
    assert set(sol2.duals) == {"cone_v", "cone_w"}
    assert sol2.duals["cone_v"].shape == (f.Xa.shape[0], len(f.patterns))
    assert sol2.duals["cone_v"] is not f.constraints["cone_v"].dual_value
    np.testing.assert_array_equal(sol2.duals["cone_v"], f.constraints["cone_v"].dual_value)


def test_solutions_without_solver_multipliers_recompute_them(two_solves):
    """A solution mapped from a network (or from a first-order solver) must not borrow the
    dual values CVXPY left on the constraints: its multipliers are recomputed by NNLS."""
    s = two_solves
    net = s["sol1"].to_network()
    sol_net = cx.from_network(net, s["X"], s["f"].patterns).to_solution(s["y"], s["lam1"])
    K = cx.kkt(sol_net)
    assert K.multipliers_from == "nnls"
    # the network is optimal at lam1, so the recomputed multipliers certify it (Mishkin & Pilanci (ICML 2023))
    assert K.dual_infeasibility / s["lam1"] < 1e-4
    fo = cx.solve(cx.c_relu(s["X"], s["y"], s["f"].patterns, s["lam1"]), method="first_order", tol=1e-8)
    assert fo.duals == {}
    assert cx.kkt(fo).multipliers_from == "nnls"


def test_pickled_solution_keeps_its_multipliers(two_solves):
    sol1 = two_solves["sol1"]
    back = pickle.loads(pickle.dumps(sol1))
    _same_kkt(cx.kkt(back), two_solves["K_before"])
