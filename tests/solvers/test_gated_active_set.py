"""C-GReLU Newton polish with column generation and a global certificate
(convexnn/solvers/gated_active_set.py and its use in ``convexnn.solve``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convexnn as cx
import convexnn.solvers.first_order as first_order
from convexnn.solvers.gated_active_set import _certificate, restricted_newton, solve_gated_active_set


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
        return orig(*args, **{**kw, "max_vars": 1})

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
    assert primal - dual == pytest.approx(sol.info["gap_abs"], rel=1e-6, abs=1e-12)
