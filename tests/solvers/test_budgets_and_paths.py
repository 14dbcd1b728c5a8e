"""Iteration budgets and stopping reasons tell what happened; every solver path matches Clarabel."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import convexnn as cx
import convexnn.solvers.active_set as active_set
from convexnn.errors import ConvergenceWarning
from convexnn.formulations.losses import get_loss
from convexnn.solvers import first_order, lam_max


def _data(seed: int, n: int = 30, d: int = 3, P: int = 10):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n)
    return X, y, cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)


def _warned(fn):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in rec if issubclass(w.category, ConvergenceWarning)]


# --------------------------------------------------------------------------- budgets and reasons
def test_vector_outputs_share_one_budget_and_the_warning_says_so():
    X, y, pat = _data(1)
    Y = np.column_stack([y, -0.5 * y + 0.1])
    f = cx.c_grelu(X, Y, pat, 1e-3)
    sol, msgs = _warned(lambda: cx.solve(f, method="first_order", max_iter=40, polish=False))
    assert sol.status == "max_iter" and sol.iterations <= 40
    assert len(msgs) == 1
    m = re.search(r"(\d+) iterations used of the budget max_iter=40 \(shared by 2 outputs\)", msgs[0])
    assert m and int(m.group(1)) == sol.iterations
    assert "iteration budget (max_iter) spent" in msgs[0] == sol.info["stop_reason"] or \
        "iteration budget (max_iter) spent" in sol.info["stop_reason"]
    gap = float(re.search(r"certified relative gap ([0-9.e+-]+)", msgs[0]).group(1))
    assert gap == pytest.approx(sol.info["gap"], rel=1e-3) and gap > 1e-8


def test_scalar_budget_counts_every_iteration():
    X, y, pat = _data(2)
    f = cx.c_grelu(X, y, pat, 1e-3)
    sol, msgs = _warned(lambda: cx.solve(f, method="first_order", max_iter=25))
    assert sol.status == "max_iter" and sol.iterations <= 25 and sol.info["max_iter"] == 25
    assert msgs and f"{sol.iterations} iterations used of the budget max_iter=25" in msgs[0]
    assert "shared" not in msgs[0]


def test_polish_stop_without_violated_block_is_reported_as_such(monkeypatch):
    X, y, pat = _data(3)
    f = cx.c_relu(X, y, pat, 0.05)
    real = first_order.solve_relu_active_set

    def loose(*a, **k):  # restricted solves at 1e-4: no block left to add, gap above tol
        k.update(eps=1e-4, eps_min=1e-4)
        return real(*a, **k)

    monkeypatch.setattr(first_order, "solve_relu_active_set", loose)
    sol, msgs = _warned(lambda: cx.solve(f, method="first_order", tol=1e-12))
    assert sol.info["polish"]["reason"] == "no_violated_block" and not sol.info["polish"]["fallback_al"]
    assert sol.status == "not_converged"
    assert msgs and "no violated block" in msgs[0] and "max_iter)" not in msgs[0]
    assert "no violated block" in sol.info["stop_reason"]
    assert f"{sol.iterations} iterations used of the budget max_iter=50000" in msgs[0]


def test_certified_solve_has_no_warning_and_says_certified():
    X, y, pat = _data(4)
    sol, msgs = _warned(lambda: cx.solve(cx.c_grelu(X, y, pat, 0.1), method="first_order"))
    assert sol.status == "optimal" and sol.info["stop_reason"] == "certified" and not msgs


# --------------------------------------------------------------------------- every path vs Clarabel
def _clarabel(f) -> float:
    return f.solve(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9).value


@pytest.mark.parametrize("path", ["gated_polish", "gated_fista", "relu_active_set"])
def test_every_path_matches_clarabel(path):
    X, y, pat = _data(5, n=40, d=3, P=12)
    kind = "c_grelu" if path.startswith("gated") else "c_relu"
    f = getattr(cx, kind)(X, y, pat, 0.05)
    ref = _clarabel(f)
    polish = path in ("gated_polish", "relu_active_set")
    sol = cx.solve(f, method="first_order", polish=polish, tol=1e-8)
    assert sol.status == "optimal"
    assert sol.solver == {"gated_polish": "fista", "gated_fista": "fista", "relu_active_set": "active_set"}[path]
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)


def test_auto_uses_first_order_where_it_applies(monkeypatch):
    X, y, pat = _data(6)
    f = cx.c_relu(X, y, pat, 0.05)
    monkeypatch.setattr(first_order, "AUTO_DENSE_SUPPORT", 1.0)  # never switch on the support
    sol = cx.solve(f)
    assert sol.info["method"] == "first_order" and sol.status == "optimal"
    assert "estimated interior-point time" in sol.info["auto_reason"]
    assert abs(sol.value - _clarabel(f)) <= 1e-6 * abs(sol.value)


def test_auto_switches_to_interior_on_a_dense_screening_support(monkeypatch):
    X, y, pat = _data(7)
    f = cx.c_relu(X, y, pat, 0.01)
    monkeypatch.setattr(first_order, "AUTO_DENSE_SUPPORT", 0.0)
    monkeypatch.setattr(first_order, "FULL_START_FLOPS", 0.0)  # screen even this small program
    sol = cx.solve(f)
    assert sol.info["method"] == "interior" and "screening support" in sol.info["auto_reason"]
    fo = cx.solve(f, method="first_order")
    assert abs(sol.value - fo.value) <= 1e-6 * abs(fo.value)


def test_restricted_solve_lifted_and_gram_forms_agree(monkeypatch):
    """The residual form (|W| d' > 2n) and the Gram form of the restricted QP give the same solution."""
    X, y, pat = _data(8, n=12, d=3, P=10)
    Xa = np.hstack([X, np.ones((12, 1))])
    M = np.asarray(pat.masks, dtype=bool)
    lam = 0.05 * lam_max(Xa, M, y)
    active = np.ones((2, M.shape[1]), dtype=bool)  # 20 blocks x 4 = 80 variables > 2n = 24
    lifted = active_set.solve_restricted(Xa, M, y, lam, get_loss("squared"), active, solver="clarabel")
    ipm = active_set.solve_restricted(Xa, M, y, lam, get_loss("squared"), active, clarabel_nnz=0)  # block IPM
    real = active_set._clarabel_squared

    def gram(F, *a):  # pretend n is large: the Gram form
        return real(np.vstack([F, np.zeros((100, F.shape[1]))]), np.concatenate([a[0], np.zeros(100)]), *a[1:])

    # the extra zero rows change neither the Gram matrix nor F^T y, only the lifted/Gram choice
    monkeypatch.setattr(active_set, "_clarabel_squared", gram)
    g = active_set.solve_restricted(Xa, M, y, lam, get_loss("squared"), active, solver="clarabel")
    # n < |W| d': the weights need not be unique, the optimal value is
    val = active_set._primal(Xa, M, y, lam, get_loss("squared"), lifted.V, lifted.W)[0]
    val_g = active_set._primal(Xa, M, y, lam, get_loss("squared"), g.V, g.W)[0]
    val_i = active_set._primal(Xa, M, y, lam, get_loss("squared"), ipm.V, ipm.W)[0]
    assert abs(val - val_g) <= 1e-7 * abs(val_g)
    assert ipm.status.startswith("ipm") and abs(val_i - val_g) <= 1e-7 * abs(val_g)
    # all blocks active: the restricted program is the full one, equal to Clarabel on C-ReLU
    ref = cx.c_relu(X, y, pat, lam).solve(solver="CLARABEL").value
    assert abs(val - ref) <= 1e-6 * abs(ref)


@pytest.mark.slow
def test_faer_and_qdldl_restricted_solves_agree(monkeypatch):
    X, y, pat = _data(9, n=200, d=30, P=20)
    Xa = np.hstack([X, np.ones((200, 1))])
    M = np.asarray(pat.masks, dtype=bool)
    lam = 0.05 * lam_max(Xa, M, y)
    active = np.zeros((2, 20), dtype=bool)
    active[:, :6] = True  # 12 blocks x 31 = 372 variables (Gram form, n=200 -> 372 < 400)
    monkeypatch.setattr(active_set, "_FAER_MIN_VARS", 100)
    a = active_set.solve_restricted(Xa, M, y, lam, get_loss("squared"), active, solver="clarabel")
    monkeypatch.setattr(active_set, "_FAER_MIN_VARS", 10**9)
    b = active_set.solve_restricted(Xa, M, y, lam, get_loss("squared"), active, solver="clarabel")
    va = active_set._primal(Xa, M, y, lam, get_loss("squared"), a.V, a.W)[0]
    vb = active_set._primal(Xa, M, y, lam, get_loss("squared"), b.V, b.W)[0]
    assert abs(va - vb) <= 1e-8 * abs(vb)
