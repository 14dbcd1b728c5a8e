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


@pytest.mark.parametrize("projection", [True, False])
def test_a_zero_optimum_reached_as_rounding_noise_is_returned_as_zero(projection, monkeypatch):
    """Weights whose every output is rounding noise next to y have a meaningless relative cone
    violation (noise over noise): the zero point is certified on its own and returned. The active
    set projects blocks that violate their cones (``_onto_cones``); without that projection (as
    any solver could return such a point) the final rule returns the zero point."""
    import convexnn.solvers.active_set as asm

    if not projection:
        monkeypatch.setattr(asm, "_onto_cones", lambda Xa, masks, V, W, tol: (V, W, *asm.violation(Xa, masks, V, W)))
    f, y = _zero_optimum_program()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = cx.solve(f, tol=1e-8)
    assert sol.status == "optimal" and sol.info["violation"] <= 1e-12
    if not projection:
        assert sol.info["violation"] == 0.0
        assert not sol.weights["V"].any() and not sol.weights["W"].any()
    assert sol.value == pytest.approx(0.5 * float(y @ y), rel=1e-9 if projection else 1e-15)
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



# two logistic programs in raw units (mixed column scales with a tiny lam; Unix timestamps without a
# bias) on which the floating-point certificate of the solvers exceeded the objective of their own
# point (by 2e-5 and 1e-6 relative); exact float64 data
_MIXED_X = (
    ['0x1.3827f92e4991bp-3', '0x1.54aae4b67df52p+12', '0x1.38f7f2d2c85d2p-10',
     '-0x1.d2015a3adecf2p+1', '-0x1.0483ff8ad3254p+16', '0x1.09a8a050ab950p-11',
     '-0x1.5f79646de6287p+1', '0x1.9e74227a2e93dp+16', '-0x1.77ab2748ee93ep-11',
     '-0x1.02e6cdb558100p+1', '-0x1.1a75368b7e4fap+16', '0x1.d47d974e48131p-15',
     '-0x1.a8317a9b6f5e6p+1', '0x1.5914e855e8ee7p+16', '0x1.424cd6368321dp-9',
     '0x1.48f293e1b2f1ap+2', '0x1.2b514fe3bb8c1p+18', '0x1.4000639fd0fd7p-13'])
_MIXED_Y = ['-0x1p+0', '-0x1p+0', '-0x1p+0', '0x1p+0', '-0x1p+0', '-0x1p+0']
_STAMPS_X = (
    ['0x1.954fc4f621ec3p+30', '0x1.4982942bf7a8bp+8', '0x1.954fc5d77ac79p+30',
     '0x1.55d4597194973p+7', '0x1.954fc4e189e4cp+30', '0x1.e32843b05a7f6p+5',
     '0x1.954fc5a59e723p+30', '-0x1.01bc57203948ep+8', '0x1.954fc75515c75p+30',
     '-0x1.3e61a7aa0afcfp+8', '0x1.954fc5a1c2ac3p+30', '-0x1.740978986efd6p+6',
     '0x1.954fc4e3186b0p+30', '0x1.b2213c15addf9p+6', '0x1.954fc731bc2c9p+30',
     '-0x1.67db7cd54f0dap+5', '0x1.954fc497a993bp+30', '-0x1.406bae02a72ecp+8',
     '0x1.954fc76f0b5b1p+30', '0x1.b04977bbccc90p+2', '0x1.954fc5ccde5f6p+30',
     '-0x1.bf697a1a04faap+6', '0x1.954fc5016ce94p+30', '0x1.1bae3908bacb6p+7',
     '0x1.954fc57a0e7e2p+30', '-0x1.ae99e9dda3580p+7', '0x1.954fc4c52e741p+30',
     '0x1.ed000d66720bdp+4', '0x1.954fc62201383p+30', '0x1.4e4805eba3aaap+8',
     '0x1.954fc4fce1bb3p+30', '-0x1.bccf250abececp+6', '0x1.954fc584a6744p+30',
     '0x1.1905c5e45930cp+8', '0x1.954fc4f89ee2ap+30', '0x1.4ae23356589dbp+8',
     '0x1.954fc78871e97p+30', '-0x1.94657521a84dep+5', '0x1.954fc7b836fb0p+30',
     '-0x1.3f744582cfbccp+8', '0x1.954fc47d7f4c7p+30', '0x1.8d1b45a528e64p+6',
     '0x1.954fc65bbd17bp+30', '0x1.d2f5bab985245p+6', '0x1.954fc7a0b4502p+30',
     '-0x1.4baa105c08b5fp+6', '0x1.954fc54b56d58p+30', '0x1.47c2741423973p+7',
     '0x1.954fc50d92069p+30', '0x1.a7ac476430149p+3'])


def _hex(a, shape=None):
    out = np.array([float.fromhex(s) for s in a])
    return out if shape is None else out.reshape(shape)


@pytest.mark.parametrize("case", ["mixed-c_grelu", "mixed-gated_ipm", "timestamps-c_relu"])
def test_the_reported_lower_bound_accounts_for_rounding(case):
    """info["dual_value"] is a lower bound of the optimum: never above the objective of the solve's
    own point; status "optimal" exactly when that rigorous gap is below tol."""
    if case.startswith("mixed"):
        X, y = _hex(_MIXED_X, (6, 3)), _hex(_MIXED_Y)
        f = cx.c_grelu(X, y, cx.enumerate_patterns(X, bias=True), float.fromhex("0x1.3b52b7d0ca29fp-32"), loss="logistic")
    else:
        X = _hex(_STAMPS_X, (25, 2))
        y = np.ones(25)
        y[[1, 3, 5, 10, 15, 18]] = -1.0
        f = cx.c_relu(X, y, cx.enumerate_patterns(X, bias=False), float.fromhex("0x1.2b9ad4d37444fp+8"),
                      loss="logistic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = cx.solve(f, method="gated_ipm" if case.endswith("gated_ipm") else "auto", tol=1e-8)
    assert sol.info["dual_value"] <= sol.value * (1 + 1e-12)
    assert (sol.status == "optimal") == (sol.info["gap"] <= 1e-8)


@pytest.mark.parametrize("kind", ["c_grelu", "c_relu"])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_certified_program_bound_is_weak_duality(kind, loss):
    """Any dual candidate gives a bound below the optimum of the program (Clarabel, tight), and the
    solve's own candidate a tight one."""
    from convexnn.formulations.losses import get_loss
    from convexnn.solvers.gap import certified_program_bound

    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 3)) * np.array([1e2, 1.0, 1e-1])
    y = X[:, 0] * 1e-2 - X[:, 1] + 0.3 * rng.standard_normal(30)
    if loss == "logistic":
        y = np.where(y > 0, 1.0, -1.0)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((4, 12)), bias=True)
    Xa = np.hstack([X, np.ones((30, 1))])
    lam = 0.05 * lam_max(Xa, pat.masks, y, loss)
    f = getattr(cx, kind)(X, y, pat, lam, loss=loss)
    ref = f.solve("CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value
    L = get_loss(loss)
    from convexnn.backend import get_backend
    from convexnn.solvers.operators import MaskedDesign

    op = MaskedDesign(Xa, np.asarray(pat.masks, dtype=float), get_backend(None, "float64"), chunk_rows=7)
    for _ in range(5):
        v = rng.standard_normal(30) * 10.0 ** rng.uniform(-3, 3)
        lb, _ = certified_program_bound(Xa, pat.masks, y, lam, L, v, cones=kind == "c_relu")
        assert lb <= ref * (1 + 1e-9)
        # the same bound from a caller's operator (float masks, row blocks: another summation order,
        # which Higham's bound covers)
        lb_op, _ = certified_program_bound(Xa, pat.masks, y, lam, L, v, cones=kind == "c_relu", op=op)
        assert lb_op <= ref * (1 + 1e-9) and lb_op == pytest.approx(lb, rel=1e-12, abs=1e-300)
    sol = cx.solve(f, method="first_order", tol=1e-9)
    assert sol.info["dual_value"] <= ref * (1 + 1e-9)
    assert ref - sol.info["dual_value"] <= 2e-9 * abs(ref)
