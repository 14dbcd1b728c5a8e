"""First-order solvers: agreement with Clarabel, certificates, backends, degenerate inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cx
from convexnn.errors import ConvergenceWarning, InputError
from convexnn.solvers import estimate_interior_seconds, get_backend, lam_max, torch_available

requires_torch = pytest.mark.skipif(not torch_available(), reason="torch is not installed")


def _cuda_available() -> bool:
    if not torch_available():
        return False
    import torch

    return bool(torch.cuda.is_available())


def _data(seed: int, n: int = 30, d: int = 3, P: int = 10, bias: bool = False, loss: str = "squared"):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if loss == "squared":
        y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n)
    else:
        y = np.sign(X[:, 0] + 0.5 * rng.standard_normal(n))
        y[y == 0] = 1.0
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + bias, P)), bias=bias)
    return X, y, pat


def _build(kind: str, seed: int, lam: float = 0.1, **kw):
    loss = kw.pop("loss", "squared")
    X, y, pat = _data(seed, loss=loss, **kw)
    return getattr(cx, kind)(X, y, pat, lam, loss=loss)


def _clarabel_value(f) -> float:
    return f.solve(solver="CLARABEL").value


# --------------------------------------------------------------------------- agreement with Clarabel
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_grelu_matches_clarabel(loss, bias):
    f = _build("c_grelu", 1, loss=loss, bias=bias)
    ref = _clarabel_value(f)
    sol = cx.solve(f, method="first_order")
    assert sol.status == "optimal" and sol.solver == "fista"
    assert sol.info["method"] == "first_order"
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)
    assert sol.info["gap"] <= 1e-8
    # the value is the objective of the returned weights, and the gap certifies it
    assert sol.objective() == pytest.approx(sol.value, rel=1e-12)
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-8 * abs(ref)
    assert set(sol.weights) == {"U"} and sol.U.shape == (len(f.patterns), f.Xa.shape[1])


@pytest.mark.parametrize(
    "loss,bias",
    [("squared", False), ("squared", True), pytest.param("logistic", False, marks=pytest.mark.slow),
     ("logistic", True)],
)
def test_relu_matches_clarabel(loss, bias):
    f = _build("c_relu", 2, loss=loss, bias=bias)
    ref = _clarabel_value(f)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sol = cx.solve(f, method="first_order", tol=1e-7, max_iter=20000)
    assert sol.solver == ("al" if sol.info["polish"].get("fallback_al") else "active_set")
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)
    assert sol.info["violation"] <= 1e-8  # default viol_tol = min(tol, 1e-8)
    # the relative violation is consistent with the formulation's absolute one
    assert f.constraint_violation(sol.weights) == pytest.approx(sol.info["violation_abs"], rel=1e-6, abs=1e-14)
    assert sol.info["multipliers"].shape == (f.Xa.shape[0], 2 * len(f.patterns))
    # the AL certificate lags the primal value (multipliers converge slowly); when it stops on
    # the budget it says so with a ConvergenceWarning naming the gap it reached
    if sol.status != "optimal":
        assert any(issubclass(w.category, ConvergenceWarning) and "gap" in str(w.message) for w in rec)
        assert sol.info["gap"] <= 1e-4
    else:
        assert sol.info["gap"] <= 1e-7


def test_certificate_agrees_with_duality_module():
    duality = pytest.importorskip("convexnn.duality.dual")
    f = _build("c_grelu", 3, bias=True)
    sol = cx.solve(f, method="first_order")
    g = duality.duality_gap(f, sol, sol.info["dual_point"])
    assert g.gap == pytest.approx(sol.info["gap_abs"], rel=1e-3, abs=1e-9)
    assert g.rel_gap <= 1e-8


@pytest.mark.slow
def test_relu_certificate_agrees_with_duality_module():
    duality = pytest.importorskip("convexnn.duality.dual")
    f = _build("c_relu", 3, bias=True)
    sol = cx.solve(f, method="first_order", tol=1e-6)
    assert sol.status == "optimal"
    # the duality module rescales the same dual point with exact (NNLS) cone multipliers: its gap
    # can only be smaller than ours, and is small as well
    g = duality.duality_gap(f, sol, sol.info["dual_point"])
    assert g.gap <= sol.info["gap_abs"] + 1e-9
    assert g.rel_gap <= 1e-6
    assert g.primal_infeasibility == pytest.approx(sol.info["violation_abs"], rel=1e-6, abs=1e-14)


# --------------------------------------------------------------------------- backends
@requires_torch
@pytest.mark.parametrize("kind", ["c_grelu", pytest.param("c_relu", marks=pytest.mark.slow)])
def test_numpy_and_torch_cpu_agree(kind):
    f = _build(kind, 4, bias=True, n=20, P=6)
    a = cx.solve(f, method="first_order", tol=1e-7)
    b = cx.solve(f, method="first_order", device="cpu", tol=1e-7)
    assert "torch" in b.info["backend"] and "numpy" in a.info["backend"]
    assert a.status == b.status == "optimal"
    assert b.value == pytest.approx(a.value, rel=1e-6)
    for k in a.weights:
        np.testing.assert_allclose(b.weights[k], a.weights[k], atol=1e-4 * max(1.0, np.abs(a.weights[k]).max()))


@pytest.mark.parametrize("device", [None, "cpu"])
def test_float32_reaches_its_precision(device):
    if device == "cpu":
        pytest.importorskip("torch", reason="the torch backend needs the optional torch extra")
    f = _build("c_grelu", 5, bias=True)
    ref = cx.solve(f, method="first_order").value
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = cx.solve(f, method="first_order", dtype="float32", device=device)
    assert sol.info["dtype"] == "float32"
    assert np.all(np.isfinite(sol.U))
    assert sol.status == "optimal"
    assert sol.info["tol"] >= 50 * np.finfo(np.float32).eps
    assert abs(sol.value - ref) <= 1e-4 * abs(ref)


def test_cuda_request_without_cuda_is_a_clear_error():
    if _cuda_available():
        pytest.skip("a CUDA device is available")
    f = _build("c_grelu", 6)
    with pytest.raises(InputError, match="CUDA"):
        cx.solve(f, method="first_order", device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["c_grelu", "c_relu"])
def test_cuda_matches_cpu(kind):
    if not _cuda_available():
        pytest.skip("CUDA is not available (torch.cuda.is_available() is False)")
    f = _build(kind, 7, bias=True)
    a = cx.solve(f, method="first_order")
    b = cx.solve(f, method="first_order", device="cuda")
    assert b.info["device"].startswith("cuda")
    assert b.value == pytest.approx(a.value, rel=1e-7)


# --------------------------------------------------------------------------- dispatch
def test_hinge_is_refused_by_first_order_and_auto_picks_interior():
    f = _build("c_grelu", 8, loss="logistic")
    g = cx.c_grelu(f.X, f.y, f.patterns, 0.1, loss="hinge")
    with pytest.raises(InputError, match="interior"):
        cx.solve(g, method="first_order")
    sol = cx.solve(g, method="auto")
    assert sol.info["method"] == "interior" and "hinge" in sol.info["auto_reason"]


def test_auto_picks_by_estimated_interior_cost(caplog, monkeypatch):
    small = _build("c_grelu", 9)
    assert estimate_interior_seconds(small) < 1.0
    monkeypatch.setattr("convexnn.solvers.dispatch.AUTO_INTERIOR_SECONDS", 1.0)
    with caplog.at_level("INFO", logger="convexnn"):
        sol = cx.solve(small)
    assert sol.info["method"] == "interior"
    assert "picked 'interior'" in caplog.text
    monkeypatch.undo()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 10))
    big = cx.c_grelu(X, X[:, 0], cx.Patterns.from_gates(X, rng.standard_normal((10, 200))), 50.0)
    assert estimate_interior_seconds(big) > 1.0
    sol = cx.solve(big, tol=1e-6)
    assert sol.info["method"] == "first_order" and sol.status == "optimal"


def test_bad_arguments():
    f = _build("c_grelu", 10)
    with pytest.raises(InputError, match="method"):
        cx.solve(f, method="newton")
    with pytest.raises(InputError, match="tol"):
        cx.solve(f, method="first_order", tol=0.0)
    with pytest.raises(InputError, match="warm_start"):
        cx.solve(f, method="first_order", warm_start={"V": np.zeros(3)})
    with pytest.raises(InputError, match="shape"):
        cx.solve(f, method="first_order", warm_start={"U": np.zeros((2, 2))})
    with pytest.raises(InputError, match="dtype"):
        cx.solve(f, method="first_order", dtype="float16")


@pytest.mark.parametrize("kind, method", [("c_grelu", "first_order"), ("c_grelu", "gated_ipm"),
                                          ("c_grelu", "auto"), ("c_relu", "first_order"), ("c_relu", "auto")])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_warm_start_is_refused(kind, method, bad):
    f = _build(kind, 10, bias=True)
    P, d = len(f.patterns), f.Xa.shape[1]
    warm = {key: np.zeros((P, d)) for key in f.weight_keys}
    warm[f.weight_keys[0]][1, 2] = bad
    with pytest.raises(InputError, match="NaN or inf"):
        cx.solve(f, method=method, warm_start=warm)
    warm[f.weight_keys[0]] = np.zeros((P + 1, d))
    with pytest.raises(InputError, match="shape"):
        cx.solve(f, method=method, warm_start=warm)


@pytest.mark.parametrize("kind", ["c_grelu", pytest.param("c_relu", marks=pytest.mark.slow)])
def test_warm_start(kind):
    f = _build(kind, 11, bias=True)
    a = cx.solve(f, method="first_order", tol=1e-7)
    # restarting from a certified solution stops at the first check
    again = cx.solve(f, method="first_order", tol=1e-7, warm_start=a)
    assert again.status == "optimal" and again.iterations <= 10
    # along a path: same answer as a cold start
    f.set_lam(0.09)
    cold = cx.solve(f, method="first_order", tol=1e-7)
    warm = cx.solve(f, method="first_order", tol=1e-7, warm_start=a)
    assert warm.value == pytest.approx(cold.value, rel=1e-6)


def test_convergence_warning_reports_the_gap():
    f = _build("c_grelu", 12, lam=0.01)
    with pytest.warns(ConvergenceWarning, match=r"relative gap \d"):
        sol = cx.solve(f, method="first_order", max_iter=5)
    assert sol.status == "max_iter" and sol.info["gap"] > 1e-8


# --------------------------------------------------------------------------- degenerate inputs
@pytest.mark.parametrize("kind", ["c_grelu", "c_relu"])
def test_lam_above_lam_max_gives_zero_immediately(kind):
    X, y, pat = _data(13, bias=True)
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    lmax = lam_max(Xa, pat.masks, y)
    # the formula: max_i ||(D_i Xa)^T y|| for the squared loss
    assert lmax == pytest.approx(max(np.linalg.norm(Xa.T @ (pat.masks[:, i] * y)) for i in range(len(pat))))
    f = getattr(cx, kind)(X, y, pat, 1.0001 * lmax)
    sol = cx.solve(f, method="first_order")
    assert sol.iterations == 0 and sol.info["zero_solution"]
    assert all(np.all(w == 0) for w in sol.weights.values())
    assert sol.value == pytest.approx(0.5 * np.sum(y * y))
    assert sol.info["gap"] <= 1e-12
    # just below lam_max the gated solution is nonzero (the C-ReLU threshold can be smaller)
    if kind == "c_relu":
        return
    f.set_lam(0.9 * lmax)
    assert max(np.abs(w).max() for w in cx.solve(f, method="first_order").weights.values()) > 0


@pytest.mark.parametrize("kind", ["c_grelu", "c_relu"])
def test_duplicate_rows_and_zero_columns(kind):
    X, y, pat0 = _data(14, n=20, d=3)
    X = np.vstack([X, X[:5]])
    X[:, 1] = 0.0
    y = np.concatenate([y, y[:5]])
    rng = np.random.default_rng(0)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((3, 8)))
    f = getattr(cx, kind)(X, y, pat, 0.1)
    ref = _clarabel_value(f)
    sol = cx.solve(f, method="first_order", tol=1e-7)
    assert sol.status == "optimal"
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)
    for w in sol.weights.values():
        assert np.all(w[:, 1] == 0.0)  # the zero column never gets weight


def test_tiny_lam_converges_or_warns_clearly():
    f = _build("c_grelu", 15, lam=1e-7)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sol = cx.solve(f, method="first_order", max_iter=3000)
    if sol.status == "optimal":
        assert sol.info["gap"] <= 1e-8
    else:
        msgs = [str(w.message) for w in rec if issubclass(w.category, ConvergenceWarning)]
        assert msgs and "gap" in msgs[0]
    assert np.isfinite(sol.value)


def test_vector_output_group_matches_clarabel():
    X, y, pat = _data(16, bias=True)
    Y = np.column_stack([y, -0.5 * y + 0.1])
    f = cx.c_grelu(X, Y, pat, 0.1)
    ref = _clarabel_value(f)
    sol = cx.solve(f, method="first_order")
    assert sol.U.shape == (len(pat), X.shape[1] + 1, 2)
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)


# --------------------------------------------------------------------------- property: the gap is a certificate
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), lam=st.floats(0.05, 2.0))
def test_gap_bounds_true_suboptimality(seed, lam):
    f = _build("c_grelu", seed, lam=lam, n=15, d=2, P=6, bias=True)
    ref = _clarabel_value(f)
    sol = cx.solve(f, method="first_order", tol=1e-4)
    # P(u) - P* <= P(u) - D(theta) = gap (up to Clarabel's own accuracy)
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-7 * max(1.0, abs(ref))
    assert sol.info["gap"] <= 1e-4
    assert get_backend(None).lib == "numpy"


def test_verbose_and_progress_report_objective_gap_violation(capsys):
    f = _build("c_relu", 17, bias=True)
    sol = cx.solve(f, method="first_order", tol=1e-6, verbose=True, progress=True)
    out = capsys.readouterr().out
    assert "objective" in out and "rel_gap" in out and "violation" in out
    assert sol.info["history"] and {"objective", "rel_gap", "violation"} <= set(sol.info["history"][-1])


def test_float32_gated_solve_keeps_the_float64_polish_point_and_warns_only_about_precision():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = rng.standard_normal(30)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((4, 20)), bias=True)
    f = cx.c_grelu(X, y, pat, 0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = cx.solve(f, method="first_order", dtype="float32")
    # only the tolerance floor of float32 is reported (no divide-by-zero from the prox, no
    # ConvergenceWarning: the float64 Newton point is kept, not rounded to float32)
    assert [c.category for c in caught] == [cx.PrecisionWarning]
    assert sol.status == "optimal" and sol.info["stop_reason"] == "certified"
    assert sol.info["gap"] <= 6e-6
    ref = cx.solve(f, method="first_order")
    assert sol.value == pytest.approx(ref.value, rel=1e-6)


def _zero_optimum_program():
    """A C-ReLU program drawn at random whose optimum is zero below the group-lasso lam_max (0.89
    lam_max), in raw units (features ~ 65, targets ~ 1e5): the polish's interior point ends at
    weights ~ 4e-16."""
    rng = np.random.default_rng(609)
    n, d, P = int(rng.integers(30, 200)), int(rng.integers(1, 6)), int(rng.integers(5, 60))
    rng.random()
    X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-5, 5)
    y = np.maximum(X[:, 0], 0) - 0.3 * X[:, -1] + 0.2 * np.abs(X).mean() * rng.standard_normal(n)
    y = y * 10.0 ** rng.uniform(-7, 7) / np.abs(X).mean()
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    frac = 10.0 ** rng.uniform(-3, -0.5)
    frac *= 10.0 ** rng.uniform(-1, 0.5)
    Xa = np.hstack([X, np.ones((n, 1))])
    return cx.c_relu(X, y, pat, frac * lam_max(Xa, pat.masks, y)), y


def test_a_zero_optimum_reached_as_rounding_noise_is_returned_as_zero():
    """Weights whose every output is rounding noise next to y have a meaningless relative cone
    violation (noise over noise): the zero point is certified on its own and returned."""
    f, y = _zero_optimum_program()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = cx.solve(f, tol=1e-8)
    assert sol.status == "optimal" and sol.info["violation"] == 0.0
    assert not sol.weights["V"].any() and not sol.weights["W"].any()
    assert sol.value == pytest.approx(0.5 * float(y @ y), rel=1e-15)
    # independent: Clarabel's optimum is not below the certified lower bound
    ref = f.solve("CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12).value
    assert sol.info["dual_value"] <= ref * (1 + 1e-9) and sol.value <= ref * (1 + 1e-9)


def test_rounding_noise_test_only_fires_on_noise():
    from convexnn.solvers.backend import get_backend as backend
    from convexnn.solvers.first_order import _rounding_noise
    from convexnn.solvers.operators import MaskedDesign

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    pat = cx.Patterns.from_gates(X, rng.standard_normal((4, 6)), bias=True)
    op = MaskedDesign(np.hstack([X, np.ones((30, 1))]), np.asarray(pat.masks, dtype=bool), backend())
    V, W = rng.standard_normal((6, 4)), np.zeros((6, 4))
    y = rng.standard_normal(30)
    assert not _rounding_noise(op, V, W, y)                 # a real point
    assert not _rounding_noise(op, 0 * V, W, y)             # exactly zero: nothing to do
    assert _rounding_noise(op, 1e-17 * V, W, y)             # outputs ~ 1e-17 next to |y| ~ 1
    assert not _rounding_noise(op, 1e-17 * V, W, 1e-3 * y)  # not noise next to smaller targets
