"""Block-structured interior point for the restricted programs (convexnn/solvers/block_ipm.py).

Checked against Clarabel (the restricted C-ReLU program through ``solve_restricted(solver="clarabel")``,
the C-GReLU program through CVXPY) and against the KKT conditions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convexnn as cx
import convexnn.solvers.active_set as asm
from convexnn.formulations.losses import get_loss
from convexnn.solvers import lam_max
from convexnn.solvers.block_ipm import _jdiv, _jprod, _nt_scaling, _soc_step, solve_block_ipm


def _data(seed: int, loss: str, n: int = 50, d: int = 3, P: int = 12, gates: bool = True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if loss == "squared":
        y = np.maximum(X @ rng.standard_normal(d), 0.0) + 0.3 * rng.standard_normal(n)
    else:
        y = np.sign(X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(n))
        y[y == 0] = 1.0
    Xa = np.hstack([X, np.ones((n, 1))])
    if gates:
        masks = np.asarray(cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True).masks, dtype=bool)
    else:  # arbitrary masks: cones with empty interior (only u = 0) are possible
        masks = rng.random((n, P)) < 0.5
    return X, Xa, masks, y


def _program(seed: int, loss: str, ratio: float, **kw):
    """Data of :func:`_data`, its loss and ``lam = ratio * lam_max``."""
    X, Xa, masks, y = _data(seed, loss, **kw)
    return Xa, masks, y, get_loss(loss), ratio * lam_max(Xa, masks, y, loss)


def _restricted_objective(Xa, masks, y, lam, L, V, W) -> float:
    return asm._primal(Xa, masks, y, lam, L, V, W)[0]


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("gates", [True, False])
def test_restricted_relu_matches_clarabel(loss, seed, gates):
    X, Xa, masks, y = _data(seed, loss, gates=gates)
    L = get_loss(loss)
    P = masks.shape[1]
    lam = 0.05 * lam_max(Xa, masks, y, loss)
    rng = np.random.default_rng(seed + 10)
    active = rng.random((2, P)) < 0.6  # a working set with some blocks zero at its optimum
    a = asm.solve_restricted(Xa, masks, y, lam, L, active, solver="ipm", clarabel_nnz=0)
    b = asm.solve_restricted(Xa, masks, y, lam, L, active, solver="clarabel")
    # the default: a squared-loss program of this size goes to Clarabel's own interface first
    c = asm.solve_restricted(Xa, masks, y, lam, L, active, solver="ipm", clarabel_nnz=1e9)
    assert a.status.startswith("ipm")
    assert c.status.startswith("clarabel" if loss == "squared" else "ipm")
    fa, fb, fc = (_restricted_objective(Xa, masks, y, lam, L, r.V, r.W) for r in (a, b, c))
    assert fa == pytest.approx(fb, rel=1e-8) and fc == pytest.approx(fb, rel=1e-8)
    for r in (a, c):
        va, vr = asm.violation(Xa, masks, r.V, r.W)
        assert va <= 1e-9 and (vr <= 1e-9 or not gates)  # random masks: cones {0}, blocks ~1e-13, ratios meaningless
        # blocks outside the working set stay zero; the multipliers are nonnegative and live there too
        assert not r.V[~active[0]].any() and not r.W[~active[1]].any()
        assert np.all(r.multipliers >= 0)
        assert not r.multipliers[:, np.flatnonzero(~np.concatenate([active[0], active[1]]))].any()


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_restricted_relu_kkt(loss):
    X, Xa, masks, y = _data(3, loss)
    L = get_loss(loss)
    P = masks.shape[1]
    lam = 0.03 * lam_max(Xa, masks, y, loss)
    k = 2 * P
    mk = np.hstack([masks, masks])
    sg = np.r_[np.ones(P), -np.ones(P)]
    r = solve_block_ipm(Xa, mk, sg, y, lam, L, eps=1e-11)
    Fc = mk * sg[None, :]
    z = np.einsum("nk,nk->n", Fc, Xa @ r.X.T)
    g = L.grad(z, y)
    S = 2.0 * mk - 1.0
    # stationarity: F_b^T g - C_b^T gamma_b + lam * u_b = 0 with ||u_b|| <= 1 (= x_b/||x_b|| when x_b != 0)
    grad_b = (Fc * g[:, None]).T @ Xa - (S * r.multipliers).T @ Xa
    nrm = np.linalg.norm(r.X, axis=1)
    big = nrm > 1e-4 * nrm.max()  # zero blocks of the optimum end at ~1e-9 relative in the interior point
    assert big.any() and (~big).any()
    # (the direction of a nonzero block converges like sqrt(gap): second-order cone complementarity)
    np.testing.assert_allclose(grad_b[big], -lam * r.X[big] / nrm[big, None], atol=1e-4 * lam)
    assert np.all(np.linalg.norm(grad_b[~big], axis=1) <= lam * (1 + 1e-6))
    # complementary slackness on the cone rows
    cone = S * (Xa @ r.X.T)
    assert np.sum(r.multipliers * np.maximum(cone, 0.0)) <= 1e-7 * max(1.0, abs(r.objective))


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_group_lasso_without_cones_matches_c_grelu(loss):
    X, Xa, masks, y = _data(4, loss, P=10)
    P = masks.shape[1]
    lam = 0.05 * lam_max(Xa, masks, y, loss)
    pat = cx.Patterns.from_gates(X, np.random.default_rng(4).standard_normal((X.shape[1] + 1, P)), bias=True)
    masks = np.asarray(pat.masks, dtype=bool)
    P = masks.shape[1]
    lam = 0.05 * lam_max(Xa, masks, y, loss)
    f = cx.c_grelu(X, y, pat, lam, loss=loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value
    r = solve_block_ipm(Xa, masks, np.ones(P), y, lam, get_loss(loss), cones=False)
    assert r.multipliers.shape == (Xa.shape[0], 0)
    assert r.objective == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_full_solve_matches_clarabel_on_small_matrix_cells(loss):
    # the matrix's smallest cell (n=100, d=2, P=100 sampled patterns, lam = 0.1 lam_max) and a
    # dense-support one (lam = 1e-3 lam_max)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 2))
    t = np.maximum(X @ rng.standard_normal((2, 5)), 0.0) @ rng.standard_normal(5)
    y = (t - t.mean()) / t.std() if loss == "squared" else np.where(t > np.median(t), 1.0, -1.0)
    pat = cx.Patterns.from_gates(X, np.random.default_rng(0).standard_normal((3, 60)), bias=True)
    Xa = np.hstack([X, np.ones((100, 1))])
    for frac in (0.1, 1e-3):
        lam = frac * lam_max(Xa, pat.masks, y, loss)
        f = cx.c_relu(X, y, pat, lam, loss=loss)
        sol = cx.solve(f, method="first_order", tol=1e-8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value
        assert sol.status == "optimal" and sol.solver == "active_set"
        assert sol.value == pytest.approx(ref, rel=1e-6)
        assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)
        assert sol.info["violation"] <= 1e-8


def test_failed_interior_point_falls_back_to_clarabel(monkeypatch):
    X, Xa, masks, y = _data(5, "squared")
    L = get_loss("squared")
    lam = 0.05 * lam_max(Xa, masks, y, "squared")
    active = np.ones((2, masks.shape[1]), dtype=bool)
    good = asm.solve_restricted(Xa, masks, y, lam, L, active)
    real = asm.solve_block_ipm

    def broken(*args, **kwargs):
        r = real(*args, **kwargs)
        r.gap = r.pres = r.dres = 1.0  # as after a numerical failure
        return r

    monkeypatch.setattr(asm, "solve_block_ipm", broken)
    fb = asm.solve_restricted(Xa, masks, y, lam, L, active)
    assert not fb.status.startswith("ipm")
    assert _restricted_objective(Xa, masks, y, lam, L, fb.V, fb.W) == pytest.approx(
        _restricted_objective(Xa, masks, y, lam, L, good.V, good.W), rel=1e-8)
    with pytest.raises(cx.InputError):
        asm.solve_restricted(Xa, masks, y, lam, L, active, solver="mosek")


def test_cone_algebra():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((5, 4))
    s[:, 0] = np.linalg.norm(s[:, 1:], axis=1) + rng.random(5)
    z = rng.standard_normal((5, 4))
    z[:, 0] = np.linalg.norm(z[:, 1:], axis=1) + rng.random(5)
    W, Winv, lmb, den, red = _nt_scaling(s, z)
    # Nesterov-Todd: W z = W^{-1} s = lambda, W W^{-1} = I, W^2 z = s
    np.testing.assert_allclose(np.einsum("kij,kj->ki", W, z), lmb, atol=1e-12)
    np.testing.assert_allclose(np.einsum("kij,kj->ki", Winv, s), lmb, atol=1e-12)
    np.testing.assert_allclose(np.einsum("kij,kjl->kil", W, Winv), np.broadcast_to(np.eye(4), (5, 4, 4)), atol=1e-12)
    np.testing.assert_allclose(den, lmb[:, 0] ** 2 - np.sum(lmb[:, 1:] ** 2, axis=1), rtol=1e-10)
    dvec = rng.standard_normal((5, 4))
    np.testing.assert_allclose(_jprod(lmb, _jdiv(lmb, dvec)), dvec, atol=1e-12)
    # the step to the boundary lands on the boundary
    du = rng.standard_normal((5, 4))
    a = _soc_step(s, du)
    if np.isfinite(a):
        u = s + a * du
        gaps = u[:, 0] - np.linalg.norm(u[:, 1:], axis=1)
        assert gaps.min() == pytest.approx(0.0, abs=1e-9) and np.all(gaps >= -1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_low_rank_reduced_solve_matches_dense_and_clarabel(seed):
    # n < 0.6 k d': the Woodbury form of the reduced system is used; same optimum as the dense
    # Cholesky and as Clarabel on the same restricted program
    X, Xa, masks, y = _data(seed, "squared", n=30, d=5, P=10)
    L = get_loss("squared")
    P = masks.shape[1]
    lam = 0.02 * lam_max(Xa, masks, y, "squared")
    mk = np.hstack([masks, masks])
    sg = np.r_[np.ones(P), -np.ones(P)]
    lo = solve_block_ipm(Xa, mk, sg, y, lam, L, eps=1e-11, low_rank=True)
    de = solve_block_ipm(Xa, mk, sg, y, lam, L, eps=1e-11, low_rank=False)
    cl = asm.solve_restricted(Xa, masks, y, lam, L, np.ones((2, P), dtype=bool), solver="clarabel")
    fc = _restricted_objective(Xa, masks, y, lam, L, cl.V, cl.W)
    for r in (lo, de):
        assert max(r.gap, r.pres, r.dres) <= 1e-9
        V, W = r.X[:P], r.X[P:]
        assert _restricted_objective(Xa, masks, y, lam, L, V, W) == pytest.approx(fc, rel=1e-8)
        assert asm.violation(Xa, masks, V, W)[0] <= 1e-9


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_warm_start_from_other_working_set(loss):
    # a start built from the state of a solve on another working set (blocks kept, dropped and
    # added) reaches the same optimum as the cold start and as Clarabel
    from convexnn.solvers.block_ipm import warm_start

    X, Xa, masks, y = _data(5, loss, P=12)
    L = get_loss(loss)
    n, d = Xa.shape
    P = masks.shape[1]
    lam = 0.03 * lam_max(Xa, masks, y, loss)
    assert P >= 8
    old = [(0, i) for i in range(0, P - 4)] + [(1, i) for i in range(0, P // 2)]
    new = [(0, i) for i in range(2, P)] + [(1, i) for i in range(3, P - 1)]

    def run(blocks, **kw):
        return solve_block_ipm(Xa, masks[:, [i for _, i in blocks]], np.array([1.0 - 2.0 * b for b, _ in blocks]),
                               y, lam, L, eps=1e-10, **kw)

    a = run(old)
    assert a.state is not None and a.state["mu"] > 0
    start = warm_start(a.state, old, new, n, d, lam)
    assert start["sl"].min() > 0 and start["zl"].min() > 0
    w = run(new, start=start)
    c = run(new)
    active = np.zeros((2, P), dtype=bool)
    for r_, i in new:
        active[r_, i] = True
    ref = asm.solve_restricted(Xa, masks, y, lam, L, active, solver="clarabel")
    fref = _restricted_objective(Xa, masks, y, lam, L, ref.V, ref.W)
    for r in (w, c):
        assert r.status == "optimal" or max(r.gap, r.pres, r.dres) <= 1e-8
        V, W = np.zeros((P, d)), np.zeros((P, d))
        for b, (r_, i) in enumerate(new):
            (V if r_ == 0 else W)[i] = r.X[b]
        assert _restricted_objective(Xa, masks, y, lam, L, V, W) == pytest.approx(fref, rel=1e-7)
    with pytest.raises(ValueError):
        bad = dict(start)
        bad["sl"] = -start["sl"]
        run(new, start=bad)


def test_active_set_with_and_without_warm_starts_agree():
    # the polish certifies the same optimum whether the restricted solves start warm or cold
    X, Xa, masks, y = _data(6, "squared", n=60, d=3, P=20)
    L = get_loss("squared")
    lam = 0.01 * lam_max(Xa, masks, y, "squared")
    res = [asm.solve_relu_active_set(Xa, masks, y, lam, L, tol=1e-8, warm_starts=ws, add_limit=2,
                                     screen_limit=2) for ws in (True, False)]
    for r in res:
        assert r.converged and r.certificate.rel_gap <= 1e-8
    assert res[0].certificate.primal == pytest.approx(res[1].certificate.primal, rel=1e-7)


@pytest.mark.parametrize("cones", [True, False])
def test_low_rank_logistic_matches_dense_and_clarabel(cones):
    # the Woodbury solve with the loss curvature (F^T diag(f'') F) gives the dense solve's optimum
    X, Xa, masks, y = _data(3, "logistic", n=30, d=5, P=10)
    L = get_loss("logistic")
    P = masks.shape[1]
    lam = 0.02 * lam_max(Xa, masks, y, "logistic")
    mk = np.hstack([masks, masks]) if cones else masks
    sg = np.r_[np.ones(P), -np.ones(P)] if cones else np.ones(P)
    lo = solve_block_ipm(Xa, mk, sg, y, lam, L, cones=cones, eps=1e-10, low_rank=True)
    de = solve_block_ipm(Xa, mk, sg, y, lam, L, cones=cones, eps=1e-10, low_rank=False)
    for r in (lo, de):
        assert max(r.gap, r.pres, r.dres) <= 1e-8
    assert lo.objective == pytest.approx(de.objective, rel=1e-8)
    if cones:
        cl = asm.solve_restricted(Xa, masks, y, lam, L, np.ones((2, P), dtype=bool), solver="clarabel")
        ref = _restricted_objective(Xa, masks, y, lam, L, cl.V, cl.W)
        assert asm.violation(Xa, masks, lo.X[:P], lo.X[P:])[0] <= 1e-9
    else:  # the group lasso by CVXPY + Clarabel
        import cvxpy as cp

        U = cp.Variable((P, Xa.shape[1]))
        z = cp.sum(cp.multiply(masks.astype(float), Xa @ U.T), axis=1)
        prob = cp.Problem(cp.Minimize(cp.sum(cp.logistic(-cp.multiply(y, z))) + lam * cp.sum(cp.norm(U, 2, axis=1))))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert lo.objective == pytest.approx(ref, rel=1e-7)


@pytest.mark.parametrize("correctors", [True, False])
@pytest.mark.parametrize("dense_ratio", [1.0, 4.0])
def test_corrector_and_dense_fallback_rules_keep_the_optimum(monkeypatch, correctors, dense_ratio):
    """With or without Gondzio correctors (small C-ReLU programs use none) and with either dense
    fallback threshold, the restricted program (Woodbury form, n < k d') reaches Clarabel's optimum."""
    import convexnn.solvers.block_ipm as bim

    monkeypatch.setattr(bim, "_CORRECTOR_MIN_FLOPS", 0.0 if correctors else np.inf)
    monkeypatch.setattr(bim, "_DENSE_RATIO", dense_ratio)
    X, Xa, masks, y = _data(3, "squared", n=30, d=5, P=10)
    L = get_loss("squared")
    P = masks.shape[1]
    lam = 0.02 * lam_max(Xa, masks, y, "squared")
    mk = np.hstack([masks, masks])
    sg = np.r_[np.ones(P), -np.ones(P)]
    r = solve_block_ipm(Xa, mk, sg, y, lam, L, eps=1e-11, low_rank=True)
    cl = asm.solve_restricted(Xa, masks, y, lam, L, np.ones((2, P), dtype=bool), solver="clarabel")
    fc = _restricted_objective(Xa, masks, y, lam, L, cl.V, cl.W)
    assert max(r.gap, r.pres, r.dres) <= 1e-9
    V, W = r.X[:P], r.X[P:]
    assert _restricted_objective(Xa, masks, y, lam, L, V, W) == pytest.approx(fc, rel=1e-8)
    assert asm.violation(Xa, masks, V, W)[0] <= 1e-9


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_resumed_loose_solve_equals_a_tight_solve(loss):
    # a solve stopped at eps = 1e-3 and resumed from its last iterate to 1e-10 reaches the optimum of
    # a fresh tight solve (and Clarabel's), with fewer iterations than the fresh solve
    Xa, masks, y, L, lam = _program(7, loss, 0.02, n=60, P=10)
    n, d = Xa.shape
    P = masks.shape[1]
    blocks = [(0, i) for i in range(P)] + [(1, i) for i in range(0, P, 2)]
    mk, sg = masks[:, [i for _, i in blocks]], np.array([1.0 - 2.0 * b for b, _ in blocks])
    loose = solve_block_ipm(Xa, mk, sg, y, lam, L, eps=1e-3)
    assert loose.status == "optimal" and max(loose.gap, loose.pres, loose.dres) <= 1e-3
    last = loose.state["last"]
    assert last["sl"].min() > 0 and last["zl"].min() > 0 and last["mu"] > 0
    resumed = solve_block_ipm(Xa, mk, sg, y, lam, L, eps=1e-10, start=last)
    fresh = solve_block_ipm(Xa, mk, sg, y, lam, L, eps=1e-10)
    assert resumed.status == "optimal" and fresh.status == "optimal"
    assert resumed.iterations < fresh.iterations
    active = np.zeros((2, P), dtype=bool)
    for r_, i in blocks:
        active[r_, i] = True
    ref = asm.solve_restricted(Xa, masks, y, lam, L, active, solver="clarabel")
    fref = _restricted_objective(Xa, masks, y, lam, L, ref.V, ref.W)
    assert resumed.objective == pytest.approx(fresh.objective, rel=1e-9)
    assert resumed.objective == pytest.approx(fref, rel=1e-7)
    np.testing.assert_allclose(resumed.X, fresh.X, atol=1e-5 * np.abs(fresh.X).max())


def test_lapack_cholesky_and_norm_helpers():
    from convexnn.solvers.block_ipm import _cho_factor, _cho_solve, _fnorm, _rnorm

    rng = np.random.default_rng(3)
    A = rng.standard_normal((9, 9))
    K = A @ A.T + 0.1 * np.eye(9)
    b = rng.standard_normal(9)
    np.testing.assert_allclose(_cho_solve(_cho_factor(K), b), np.linalg.solve(K, b), rtol=1e-10)
    Ku = np.triu(K) + np.tril(rng.standard_normal((9, 9)), -1)  # only the upper triangle is read
    np.testing.assert_allclose(_cho_solve(_cho_factor(Ku), b), np.linalg.solve(K, b), rtol=1e-10)
    with pytest.raises(np.linalg.LinAlgError):
        _cho_factor(-K)
    U = rng.standard_normal((5, 4))
    np.testing.assert_allclose(_rnorm(U), np.linalg.norm(U, axis=1), rtol=1e-14)
    assert _fnorm(U) == pytest.approx(np.linalg.norm(U), rel=1e-14)


def test_merged_woodbury_rows_equal_the_unmerged_gram():
    # blocks v_i, w_i of one pattern have F_b = -F_c: their rows of H merge into one d-row block,
    # and G^T G equals H^T H = sum_b F_b^T B_b^{-1} F_b (the Woodbury capacitance matrix)
    from convexnn.solvers.block_ipm import _merged_rows, _units, _UnitSystem

    rng = np.random.default_rng(4)
    n, d = 40, 3
    Xa = np.hstack([rng.standard_normal((n, d - 1)), np.ones((n, 1))])
    masks = rng.random((n, 5)) < 0.5
    cols = [0, 1, 2, 1, 3, 0, 4]  # patterns 0 and 1 twice (both signs)
    sig = np.array([1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0])
    Mk = masks[:, cols].astype(float)
    k = len(cols)
    Fw = np.stack([sig[b] * (Xa * Mk[:, [b]]).T for b in range(k)])  # (k, d, n): sigma_b Xa^T D_b
    B = rng.standard_normal((k, d, d))
    B = B @ np.swapaxes(B, 1, 2) + 0.1 * np.eye(d)
    Li = np.linalg.inv(np.linalg.cholesky(B))
    H = np.matmul(Li, Fw).reshape(k * d, n)
    us = _UnitSystem(*_units(Mk), sig)
    single, first, second = us.first[us.one], us.a, us.b
    assert sorted(single.tolist()) == [2, 4, 6] and sorted(zip(first.tolist(), second.tolist())) == [(0, 5), (1, 3)]
    G = _merged_rows(H, Li, Fw, us)
    assert G.shape == (5 * d, n)
    want = sum(Fw[b].T @ np.linalg.inv(B[b]) @ Fw[b] for b in range(k))
    np.testing.assert_allclose(G.T @ G, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    np.testing.assert_allclose(H.T @ H, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    alone = _UnitSystem(*_units(masks.astype(float)), np.ones(5))  # no shared pattern: H itself
    H5 = H[:5 * d]
    assert not alone.paired and _merged_rows(H5, Li[:5], Fw[:5], alone) is H5


def test_lp_step_is_the_largest_feasible_step():
    # 1 / max(-ds/s) equals the smallest ratio -s_j/ds_j over the decreasing coordinates, over all
    # given directions; inf when no coordinate decreases; s + alpha ds stays nonnegative
    from convexnn.solvers.block_ipm import _lp_step

    rng = np.random.default_rng(8)
    s = rng.random((30, 4)) + 0.01
    d1, d2 = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    want = min(float(np.min(-s[d < 0] / d[d < 0])) for d in (d1, d2))
    a = _lp_step(1.0 / s, d1, d2)
    assert a == pytest.approx(want, rel=1e-14)
    assert (s + a * d1).min() >= -1e-14 and (s + a * d2).min() >= -1e-14
    assert min((s + a * d1).min(), (s + a * d2).min()) <= 1e-14
    assert _lp_step(1.0 / s, np.abs(d1)) == np.inf
    assert _lp_step(np.zeros((0, 2)), np.zeros((0, 2))) == np.inf


# ---------------------------------------------------------------- Gram by patterns, in-place factors
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convexnn.solvers.block_ipm as bipm  # noqa: E402


def _explicit_gram(Xa, M, sig):
    """F^T F with F = [sigma_b D_b Xa] formed explicitly (the definition)."""
    F = ((M * sig)[:, :, None] * Xa[:, None, :]).reshape(Xa.shape[0], -1)
    return F.T @ F


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40), d=st.integers(1, 5), P=st.integers(1, 8),
       chunk=st.sampled_from([8, 64, 2 ** 27]))
def test_pattern_gram_cache_equals_the_explicit_gram(seed, n, d, P, chunk):
    """Row-blocked pattern products, the cache across overlapping working sets (patterns repeated,
    dropped, new) and the block expansion give F^T F exactly as defined, whatever the row block size."""
    rng = np.random.default_rng(seed)
    Xa = rng.standard_normal((n, d))
    masks = rng.random((n, P)) < 0.5
    old = bipm._GRAM_CHUNK_BYTES
    bipm._GRAM_CHUNK_BYTES = chunk
    try:
        cache = bipm.PatternGram(Xa, masks)
        for _ in range(3):
            k = int(rng.integers(1, 2 * P + 1))
            pats = rng.integers(0, P, size=k)
            G = cache.of(pats)
            ref = _explicit_gram(Xa, masks[:, pats].astype(float), np.ones(k))
            np.testing.assert_allclose(G, ref, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(ref).max()))
            assert set(cache.ids.tolist()) == set(pats.tolist())  # only the last request's patterns kept
    finally:
        bipm._GRAM_CHUNK_BYTES = old


def test_in_place_factor_solves_and_multiplies_like_the_matrix():
    """The Cholesky factor written over the matrix solves K x = b, and the product with the kept
    triangle and diagonal equals K x; an indefinite matrix is retried from a rebuilt copy with a
    regularized diagonal (the factor then belongs to the rebuilt, intact matrix)."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((30, 30))
    K0 = A @ A.T + 0.1 * np.eye(30)
    K = K0.copy()
    dg = K[np.diag_indices(30)].copy()
    fact, reg, Kf = bipm._dense_factor(K, 0.0, np.diag_indices(30), 1.0, lambda: K0.copy())
    assert reg == 0.0 and Kf is K and fact[0] is K
    b = rng.standard_normal(30)
    np.testing.assert_allclose(K0 @ bipm._cho_solve(fact, b), b, atol=1e-9)
    np.testing.assert_allclose(bipm._symv_kept(K, b, dg), K0 @ b, rtol=1e-12, atol=1e-12)
    # indefinite: the first in-place attempt fails, the retries use a rebuilt matrix plus reg * base
    J0 = K0 - (np.linalg.eigvalsh(K0)[0] + 1e-9) * np.eye(30)  # smallest eigenvalue -1e-9
    J = J0.copy()
    fact, reg, Jf = bipm._dense_factor(J, 0.0, np.diag_indices(30), 1.0, lambda: J0.copy())
    assert fact is not None and reg >= 1e-9 and Jf is not J
    np.testing.assert_array_equal(Jf, J0)  # the matrix the factor belongs to is intact
    Jr = J0 + reg * np.eye(30)
    np.testing.assert_allclose(Jr @ bipm._cho_solve(fact, b), b, rtol=1e-6, atol=1e-6 * np.abs(b).max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unit_system_solves_the_reduced_system(seed):
    """The dense solve over units (blocks of one pattern merged, see ``_UnitSystem``) gives the
    solution of the full reduced system ``(B + F^T diag(w) F) x = r`` solved directly, for singles,
    pairs of either signs and a pattern shared by three blocks, with blocks ``B_b`` spread over many
    orders of magnitude (as near the end of a solve)."""
    from convexnn.solvers.block_ipm import _units, _UnitSystem

    rng = np.random.default_rng(seed)
    n, d = 40, 4
    Xa = rng.standard_normal((n, d))
    base = rng.random((n, 5)) < 0.5
    cols = [0, 1, 1, 2, 3, 3, 3, 4]  # patterns 1 and 3 shared (3: by three blocks)
    Mk = base[:, cols].astype(float)
    k = len(cols)
    sig = rng.choice([-1.0, 1.0], size=k)
    w = rng.random(n) + 0.1
    Q = rng.standard_normal((k, d, d))
    scale = 10.0 ** rng.uniform(-6, 6, size=(k, 1, 1))
    Bd = scale * (np.matmul(Q, np.swapaxes(Q, 1, 2)) + 1e-3 * np.eye(d))
    F = ((Mk * sig)[:, :, None] * Xa[:, None, :]).reshape(n, k * d)
    K = F.T @ (w[:, None] * F)
    for b in range(k):
        K[b * d:(b + 1) * d, b * d:(b + 1) * d] += Bd[b]
    r = rng.standard_normal(k * d)
    x_ref = np.linalg.solve(K, r)

    first, second = _units(Mk)
    assert first.size == 6 and np.count_nonzero(second >= 0) == 2  # 8 blocks, 5 patterns, 6 units
    us = _UnitSystem(first, second, sig)
    Sinv = us.schur(Bd)
    Fu = (Mk[:, first, None] * Xa[:, None, :]).reshape(n, -1)
    Ku = Fu.T @ (w[:, None] * Fu)
    for u in range(us.m):
        Ku[u * d:(u + 1) * d, u * d:(u + 1) * d] += Sinv[u]
    R = r.reshape(k, d)
    p = np.linalg.solve(Ku, us.rhs(R).reshape(-1))
    x = us.back(p.reshape(us.m, d), R, k).reshape(-1)
    np.testing.assert_allclose(K @ x, r, rtol=0, atol=1e-6 * np.abs(r).max())
    np.testing.assert_allclose(x, x_ref, rtol=1e-5, atol=1e-9 * np.abs(x_ref).max())
    # E and E^T are adjoint, and p = E x
    np.testing.assert_allclose(us.reduce(x.reshape(k, d)).reshape(-1), p, rtol=1e-6, atol=1e-9 * np.abs(p).max())
    q = rng.standard_normal((us.m, d))
    assert float(np.sum(us.expand(q, k) * x.reshape(k, d))) == pytest.approx(
        float(np.sum(q * us.reduce(x.reshape(k, d)))), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_cone_rows_of_a_subset_are_the_rows_of_the_full_matrix(seed):
    # apply / adjoint / add_gram of a row subset against the explicit signed rows S_b X_a
    from convexnn.solvers.block_ipm import _ConeRows

    X, Xa, masks, y = _data(seed, "squared", n=40, P=6)
    n, d = Xa.shape
    k = masks.shape[1]
    rng = np.random.default_rng(seed)
    R = np.stack([rng.permutation(n)[:9] for _ in range(k)], axis=1)  # (9, k), distinct per block
    full, sub = _ConeRows(Xa, masks.astype(float), None), _ConeRows(Xa, masks.astype(float), R)
    C = [np.where(masks[:, b], 1.0, -1.0)[:, None] * Xa for b in range(k)]  # the rows of block b
    Xb = rng.standard_normal((k, d))
    Zf, Zs = rng.random((n, k)), rng.random((9, k))
    assert np.allclose(full.apply(Xb), np.stack([C[b] @ Xb[b] for b in range(k)], axis=1), atol=1e-13)
    assert np.allclose(sub.apply(Xb), np.stack([C[b][R[:, b]] @ Xb[b] for b in range(k)], axis=1), atol=1e-13)
    assert np.allclose(full.adjoint(Zf), np.stack([C[b].T @ Zf[:, b] for b in range(k)]), atol=1e-12)
    assert np.allclose(sub.adjoint(Zs), np.stack([C[b][R[:, b]].T @ Zs[:, b] for b in range(k)]), atol=1e-12)
    for rows, Z in ((full, Zf), (sub, Zs)):
        B = np.zeros((k, d, d))
        rows.add_gram(B, Z)
        idx = [np.arange(n) if rows is full else R[:, b] for b in range(k)]
        ref = np.stack([C[b][idx[b]].T @ (Z[:, b, None] * C[b][idx[b]]) for b in range(k)])
        assert np.allclose(B, ref, atol=1e-12)


def test_warm_start_maps_the_rows_of_kept_blocks():
    from convexnn.solvers.block_ipm import warm_start

    n, d, lam = 12, 2, 0.5
    old, new = [(0, 0), (0, 1)], [(0, 1), (1, 2)]
    ro = np.array([[0, 5], [3, 7], [4, 2]])  # 3 rows per block
    rn = np.array([[7, 0], [9, 1], [2, 2], [5, 3]])  # 4 rows per block
    state = {"X": np.ones((2, d)), "tau": np.array([1.0, 3.0]), "sq": np.ones((2, d + 1)), "zq": np.ones((2, d + 1)),
             "sl": np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]),
             "zl": np.array([[4.0, 40.0], [5.0, 50.0], [6.0, 60.0]]), "mu": 0.25}
    st = warm_start(state, old, new, n, d, lam, rows_old=ro, rows_new=rn)
    assert st["sl"].shape == (4, 2)
    # kept block (0, 1): rows 7 and 2 of the previous solve keep their slacks; 9 and 5 start at sqrt(mu)
    assert np.array_equal(st["sl"][:, 0], [20.0, 0.5, 30.0, 10.0]) and np.array_equal(st["zl"][:, 0], [50.0, 0.5, 60.0, 40.0])
    assert np.array_equal(st["sl"][:, 1], [0.5] * 4)  # a new block
    # the new block: x = 0, dual (lam, 0), primal cone radius the kept blocks' median tau (3), not mu / lam
    assert np.array_equal(st["X"][1], [0.0, 0.0]) and np.array_equal(st["zq"][1], [lam, 0.0, 0.0])
    assert st["tau"][1] == 3.0 and np.array_equal(st["sq"][1], [3.0, 0.0, 0.0])
    assert st["tau"][0] == 3.0 and np.array_equal(st["sq"][0], [1.0, 1.0, 1.0])  # the kept block's own
    # nothing kept: the central-path point mu / lam
    st0 = warm_start(state, old, [(1, 4)], n, d, lam, rows_old=ro, rows_new=rn[:, :1])
    assert st0["tau"][0] == 0.25 / lam and st0["sq"][0, 0] == 0.25 / lam
    # from the rows of a subset to all rows, and back
    st_all = warm_start(state, old, new, n, d, lam, rows_old=ro)
    assert st_all["sl"].shape == (n, 2) and st_all["sl"][7, 0] == 20.0 and st_all["sl"][1, 0] == 0.5


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_row_generation_solves_the_restricted_program(loss):
    # few cone rows per block, the violated ones added: the same optimum as all rows and as Clarabel,
    # feasible for every row, multipliers on the generated rows only
    Xa, masks, y, L, lam = _program(3, loss, 0.02, n=160, P=10)
    n, d = Xa.shape
    P = masks.shape[1]
    active = np.ones((2, P), dtype=bool)
    full = asm.solve_restricted(Xa, masks, y, lam, L, active, solver="ipm")
    ref = asm.solve_restricted(Xa, masks, y, lam, L, active, solver="clarabel")
    fref = _restricted_objective(Xa, masks, y, lam, L, ref.V, ref.W)
    v = -np.asarray(L.grad(np.zeros(n), y))
    rg = asm.solve_restricted(Xa, masks, y, lam, L, active, rows_per_block=6, v_ref=v, solver="ipm", clarabel_nnz=0)
    assert rg.status.startswith("ipm") and rg.warm[2] is not None and 6 < rg.warm[2].shape[0] < n
    assert asm.violation(Xa, masks, rg.V, rg.W)[1] <= 1e-9
    for r in (rg, full):
        assert _restricted_objective(Xa, masks, y, lam, L, r.V, r.W) == pytest.approx(fref, rel=1e-7)
    R = rg.warm[2]
    outside = np.ones((n, 2 * P), dtype=bool)
    for b, (row, i) in enumerate(rg.warm[1]):
        outside[R[:, b], row * P + i] = False
    assert np.all(rg.multipliers >= 0) and not rg.multipliers[outside].any()
    # relaxed: rows join only while violated by more than 1e-2 (relative); fewer rows, a bounded violation
    lo = asm.solve_restricted(Xa, masks, y, lam, L, active, rows_per_block=6, v_ref=v, relaxed=1e-2, clarabel_nnz=0)
    assert lo.warm[2] is not None and lo.warm[2].shape[0] <= R.shape[0]
    assert asm.violation(Xa, masks, lo.V, lo.W)[1] <= 1e-2 + 1e-9
    # resumed (same blocks, same rows) to a tighter tolerance
    rs = asm.solve_restricted(Xa, masks, y, lam, L, active, rows_per_block=6, v_ref=v, warm=rg.warm, resume=True,
                              eps=1e-11, clarabel_nnz=0)
    assert rs.warm[2] is R or np.array_equal(rs.warm[2], R)
    assert _restricted_objective(Xa, masks, y, lam, L, rs.V, rs.W) == pytest.approx(fref, rel=1e-7)


def _separable_logistic():
    """A logistic program on nearly separable heavy-tailed data at a small lam (n = 25, d' = 2, 8
    patterns from 10 gates, lam = 3e-3 lam_max): the optimum has weights of norm 30-40, where the loss has almost
    no curvature on most samples."""
    rng = np.random.default_rng(5025)
    X = rng.standard_t(4, size=(25, 1)) * rng.uniform(0.5, 3, size=1) + rng.uniform(-2, 2, size=1)
    y = np.sin(X @ rng.standard_normal(1)) + 0.3 * rng.standard_normal(25)
    y = np.where(y > np.median(y), 1.0, -1.0)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((2, 10)), bias=True)
    Xa = np.hstack([X, np.ones((25, 1))])
    return X, y, pat, Xa, 3e-3 * lam_max(Xa, pat.masks, y, "logistic")


def test_nonlinear_step_keeps_a_logistic_solve_from_running_off():
    # without the line search on the dual residual a full Newton step at iteration 5 multiplied the
    # residual by 8 and the iterates ran off (objective 1e15, "stalled" at a relative gap of 0.57)
    X, y, pat, Xa, lam = _separable_logistic()
    M = np.asarray(pat.masks, dtype=bool)
    L = get_loss("logistic")
    f = cx.c_grelu(X, y, pat, lam, loss="logistic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9).value
    r = solve_block_ipm(Xa, M, np.ones(M.shape[1]), y, lam, L, cones=False, eps=1e-10)
    assert r.status == "optimal" and r.iterations < 60
    assert r.objective == pytest.approx(ref, rel=1e-7)
    sol = cx.solve(f, method="gated_ipm", tol=1e-8)
    assert sol.status == "optimal" and sol.value == pytest.approx(ref, rel=1e-7)
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-9 * abs(ref)


def test_residual_step_against_the_dual_residual_from_scratch():
    """_dual_residual_along against the dual residual computed from scratch after each trial step
    (logistic gradient and curvature by hand), and _residual_step returns the longest halving within
    the bound: the step before it (twice as long) is not."""
    from scipy.special import expit

    X, y, pat, Xa, lam = _separable_logistic()
    M = np.asarray(pat.masks, dtype=float)
    L = get_loss("logistic")
    rng = np.random.default_rng(1)
    k, d = M.shape[1], Xa.shape[1]
    Xb, dX = 30.0 * rng.standard_normal((k, d)), 60.0 * rng.standard_normal((k, d))

    def fit(B):
        return np.einsum("nk,nk->n", M, Xa @ B.T)

    def resid(B, Z):  # the dual residual F^T grad f(F x) - z (no cone rows)
        g = -y * expit(-y * fit(B))
        return (M * g[:, None]).T @ Xa - Z

    z, dz = fit(Xb), fit(dX)
    w = expit(y * z) * expit(-y * z)  # the logistic loss's second derivative
    # multipliers near dual feasibility: a small residual, which a long step's nonlinearity exceeds
    zq1 = resid(Xb, 0.0) + 1e-3 * rng.standard_normal((k, d))
    rx = resid(Xb, zq1)
    # the multiplier direction of an exact Newton step: rx + J dX - dzq1 = 0, J = F^T diag(f'') F
    dzq1 = rx + (M * (w * dz)[:, None]).T @ Xa
    g = -y * expit(-y * z)
    for a in (1.0, 0.3, 1e-3):
        along = bipm._dual_residual_along(a, z, dz, g, w * dz, rx, M, Xa, y, L)
        np.testing.assert_allclose(along, resid(Xb + a * dX, zq1 + a * dzq1), rtol=1e-9, atol=1e-9 * np.abs(rx).max())
    r0 = np.linalg.norm(rx)

    def true_norm(t):
        return np.linalg.norm(resid(Xb + t * dX, zq1 + t * dzq1))

    a = bipm._residual_step(1.0, true_norm, r0, 0.0)
    assert 0 < a <= 1.0 and true_norm(a) <= bipm._GROWTH * r0
    assert a < 1.0 and true_norm(2.0 * a) > bipm._GROWTH * r0  # this direction needs a shorter step


def _huber_data(seed: int, scale: float, n: int = 60, d: int = 3, P: int = 10):
    """Heavy-tailed targets ``scale`` times larger than the Huber threshold 1: most samples in its
    linear tails, where the loss has no curvature."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = scale * (np.maximum(X @ rng.standard_normal(d), 0.0) + rng.standard_t(2, n))
    Xa = np.hstack([X, np.ones((n, 1))])
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    return X, Xa, pat, y


@pytest.mark.parametrize("cones", [True, False])
@pytest.mark.parametrize("scale,frac", [(1.0, 0.05), (300.0, 0.05), (300.0, 2e-3)])
def test_huber_split_form_solves_restricted_programs_like_clarabel(cones, scale, frac):
    # the Huber loss enters the interior point as the squared loss plus an l1-penalized outlier per
    # sample (exact): it converges where the loss's own Hessian is zero on most samples, to
    # Clarabel's optimum of the same restricted program (CVXPY's conic form of the Huber function)
    from convexnn.formulations.huber import HuberLoss

    L = HuberLoss(1.0)
    assert L.outlier_split() == 1.0 and get_loss("squared").outlier_split() is None
    X, Xa, pat, y = _huber_data(7, scale)
    masks = np.asarray(pat.masks, dtype=bool)
    P = masks.shape[1]
    lam = frac * lam_max(Xa, masks, y, L)
    if cones:
        active = np.ones((2, P), dtype=bool)
        active[1, ::3] = False
        a = asm.solve_restricted(Xa, masks, y, lam, L, active, solver="ipm", eps=1e-10)
        b = asm.solve_restricted(Xa, masks, y, lam, L, active, solver="clarabel")
        assert a.status.startswith("ipm")
        fa, fb = (_restricted_objective(Xa, masks, y, lam, L, r.V, r.W) for r in (a, b))
        assert asm.violation(Xa, masks, a.V, a.W)[1] <= 1e-9
    else:
        r = solve_block_ipm(Xa, masks, np.ones(P), y, lam, L, cones=False, eps=1e-10)
        assert r.status == "optimal" and r.iterations <= 80
        fa = r.objective
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fb = cx.c_grelu(X, y, pat, lam, loss=L).solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10,
                                                          tol_feas=1e-10).value
    assert fa == pytest.approx(fb, rel=1e-7)


def test_huber_split_form_warm_starts_keep_the_outliers():
    # the outliers (p, q and their multipliers) are per sample: a warm start on another working set
    # keeps them, and reaches the cold start's optimum
    from convexnn.formulations.huber import HuberLoss
    from convexnn.solvers.block_ipm import warm_start

    L = HuberLoss(0.5)
    _, Xa, pat, y = _huber_data(8, 50.0)
    masks = np.asarray(pat.masks, dtype=bool)
    n, d = Xa.shape
    P = masks.shape[1]
    lam = 0.01 * lam_max(Xa, masks, y, L)
    old, new = list(range(0, P - 3)), list(range(2, P))
    a = solve_block_ipm(Xa, masks[:, old], np.ones(len(old)), y, lam, L, eps=1e-10)
    start = warm_start(a.state, old, new, n, d, lam)
    assert start["hub"] is not None and all(np.all(v > 0) for v in start["hub"])
    w = solve_block_ipm(Xa, masks[:, new], np.ones(len(new)), y, lam, L, eps=1e-10, start=start)
    c = solve_block_ipm(Xa, masks[:, new], np.ones(len(new)), y, lam, L, eps=1e-10)
    assert w.status == c.status == "optimal"
    assert w.objective == pytest.approx(c.objective, rel=1e-8)


@pytest.mark.parametrize("program", ["c_relu", "c_grelu"])
def test_huber_programs_with_most_samples_in_the_tails_are_certified(program):
    # targets 300 times the threshold: the default path certifies them (before the split form, the
    # interior points stalled on the loss's zero curvature and R-FISTA or the augmented Lagrangian
    # ran to max_iter) and agrees with Clarabel
    from convexnn.formulations.huber import HuberLoss

    L = HuberLoss(1.0)
    X, Xa, pat, y = _huber_data(9, 300.0, n=80, P=12)
    lam = 3e-3 * lam_max(Xa, pat.masks, y, L)
    f = getattr(cx, program)(X, y, pat, lam, loss=L)
    tol = 1e-6 if program == "c_relu" else 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("error", cx.ConvergenceWarning)
        sol = cx.solve(f, tol=tol)
    assert sol.status == "optimal" and sol.info["gap"] <= tol
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value
    assert sol.value == pytest.approx(ref, rel=2 * tol)
    assert sol.value - sol.info["gap_abs"] <= ref * (1 + 1e-9)


def test_the_gated_polish_hands_a_huber_support_to_the_split_interior_point():
    # Newton steps along the Huber Hessian cycle on the outliers; the polish gives a support of a
    # Huber program to the block interior point at once (its certificate's dual point comes from it)
    # and reaches Clarabel's optimum; the squared loss keeps its Newton rounds
    from convexnn.formulations.huber import HuberLoss
    from convexnn.solvers.gated_active_set import solve_gated_active_set

    X, Xa, pat, y = _huber_data(11, 300.0, n=80, P=12)
    masks = np.asarray(pat.masks, dtype=bool)
    for L in (HuberLoss(1.0), get_loss("squared")):
        lam = 3e-3 * lam_max(Xa, masks, y, L)
        U0 = np.zeros((masks.shape[1], Xa.shape[1]))
        U0[::2] = 1e-3  # a rough support, as R-FISTA hands over
        r = solve_gated_active_set(Xa, masks, y, lam, L, U0, tol=1e-8)
        assert r.converged and not r.cycling
        assert (r.dual_point is not None) == (L.outlier_split() is not None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = cx.c_grelu(X, y, pat, lam, loss=L).solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10,
                                                           tol_feas=1e-10).value
        assert r.primal == pytest.approx(ref, rel=1e-7)


def test_huber_split_form_stops_on_the_gap_relative_to_its_objective(huber_stress_program):
    """Targets 6.7e5 times the Huber threshold (nearly least absolute deviations): in the solvers' units
    (targets of unit size) the objective is about 1e-3, so a gap floored at an absolute 1 would stop the
    interior point three orders of magnitude short. The C-GReLU solve is certified to 1e-8 and agrees
    with Clarabel."""
    X, y, pat, lam, L, bias = huber_stress_program(76)  # a held-out program of the stress draws
    delta = L.delta
    assert np.sqrt(np.mean(y * y)) / delta > 1e5
    f = cx.c_grelu(X, y, pat, lam, loss=L, bias=bias)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cx.ConvergenceWarning)
        sol = cx.solve(f, tol=1e-8)
    assert sol.status == "optimal" and sol.info["gap"] <= 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-10, tol_feas=1e-10).value
    assert sol.value == pytest.approx(ref, rel=1e-7)
    assert sol.value - sol.info["gap_abs"] <= ref * (1 + 1e-9)


@pytest.mark.parametrize("d", [1, 3, 5, 7, 8, 12])
def test_inverse_factors_are_the_inverses(d):
    """_inv_factors: forward substitution (d < 8), LAPACK's triangular inverse (d >= 8) and the general
    inverse of non-triangular factors all give L^{-1}; a zero on the diagonal raises."""
    from convexnn.solvers.block_ipm import _inv_factors

    rng = np.random.default_rng(d)
    A = rng.standard_normal((9, d, d))
    L = np.linalg.cholesky(A @ np.swapaxes(A, 1, 2) + 1e-2 * np.eye(d))
    for F in (L, np.linalg.qr(A)[0] * rng.uniform(1, 2, size=(9, 1, d))):  # triangular, then not
        X = _inv_factors(F)
        np.testing.assert_allclose(np.matmul(F, X), np.broadcast_to(np.eye(d), F.shape), atol=1e-12)
    L[4, d - 1, d - 1] = 0.0
    with pytest.raises(np.linalg.LinAlgError):
        _inv_factors(L)


def _mp_reduced_block(s: np.ndarray, z: np.ndarray, mp):
    """In 60-digit arithmetic: the Nesterov-Todd scaling W of one cone (checked by W z = W^{-1} s), and
    the explicit Schur complement of (W^{-2})_{00} in W^{-2}."""
    m = s.size
    S, Z = mp.matrix([mp.mpf(float(v)) for v in s]), mp.matrix([mp.mpf(float(v)) for v in z])
    J = mp.diag([1] + [-1] * (m - 1))

    def jn(u):
        return mp.sqrt((u.T * J * u)[0])

    sn, zn = jn(S), jn(Z)
    sb, zb = S / sn, Z / zn
    gam = mp.sqrt((1 + (sb.T * zb)[0]) / 2)
    wb = (sb + J * zb) / (2 * gam)
    e = mp.matrix([1] + [0] * (m - 1))
    v = (wb + e) / mp.sqrt(2 * (wb[0] + 1))
    beta = mp.sqrt(sn / zn)
    W = beta * (2 * v * v.T - J)
    Wi = mp.inverse(W)
    assert mp.norm(W * Z - Wi * S) <= mp.mpf(10) ** -40 * (mp.norm(S) + mp.norm(Z))
    A = Wi * Wi
    red = mp.matrix(m - 1, m - 1)
    for i in range(1, m):
        for j in range(1, m):
            red[i - 1, j - 1] = A[i, j] - A[i, 0] * A[0, j] / A[0, 0]
    return red


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(2, 7), near=st.floats(0.0, 9.0))
def test_reduced_cone_block_is_the_schur_complement_without_cancellation(seed, m, near):
    # s and z near the boundary and nearly orthogonal, as at the end of a solve (complementarity
    # 10^-near): the closed form of _nt_scaling equals the Schur complement of W^{-2} computed in
    # 60 digits, in every eigendirection, the radial one of tiny eigenvalue included
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(m - 1)
    u /= np.linalg.norm(u)
    t = 10.0 ** -near
    a, b = rng.uniform(0.5, 2.0, 2)
    s = np.r_[a * (1.0 + t), a * u + t * rng.standard_normal(m - 1) * 0.1]
    z = np.r_[b * (1.0 + t), -b * u + t * rng.standard_normal(m - 1) * 0.1]
    for x in (s, z):  # strictly inside
        x[0] = max(x[0], np.linalg.norm(x[1:]) * (1.0 + t))
    _, _, _, _, red = _nt_scaling(s[None], z[None])
    ref = _mp_reduced_block(s, z, mp)
    R = np.array(ref.tolist(), dtype=float)
    ev, Q = np.linalg.eigh(R)
    assert ev.min() > 0
    # each eigenvalue of the reference, as a Rayleigh quotient of the closed form: relative accuracy
    # eps times the condition number of the block at most (1e-16 x 1e9 ... 1e18 spread)
    got = np.einsum("ij,ik,kj->j", Q, red[0], Q)
    np.testing.assert_allclose(got, ev, rtol=1e-6 + 1e-14 * ev.max() / ev.min())
    np.testing.assert_allclose(red[0], red[0].T, atol=0)
    assert np.all(np.linalg.eigvalsh(red[0]) > -1e-15 * ev.max())


def test_explicit_schur_complement_loses_the_radial_eigenvalue():
    # what the closed form avoids: near the boundary the explicit Schur complement of W^{-2} in
    # double precision gets the smallest eigenvalue wrong by orders of magnitude (or its sign)
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60
    t = 1e-10
    s = np.array([1.0 + t, 1.0, 0.0])
    z = np.array([1.0 + t, -1.0, 0.0])
    ref = _mp_reduced_block(s, z, mp)
    lo = float(min(mp.eigsy(ref)[0]))
    W, Winv, _, _, red = _nt_scaling(s[None], z[None])
    A = Winv[0] @ Winv[0]
    explicit = A[1:, 1:] - np.outer(A[1:, 0], A[0, 1:]) / A[0, 0]
    assert np.linalg.eigvalsh(red[0]).min() == pytest.approx(lo, rel=1e-5)
    assert abs(np.linalg.eigvalsh(explicit).min() - lo) > 100.0 * lo


def test_a_costly_dense_fallback_serves_one_iteration_and_the_woodbury_solve_is_retried(monkeypatch):
    # few samples, many blocks (a dense factorization costs many Woodbury iterations): with every
    # Woodbury solve made to fail its accuracy test, each iteration still tries it first (the dense
    # Cholesky serves the failed iteration only), and the solve reaches the same optimum
    import convexnn.solvers.block_ipm as bi

    Xa, masks, y, L, lam = _program(4, "squared", 0.01, n=40, d=6, P=60)
    mk, sg = np.hstack([masks, masks]), np.repeat([1.0, -1.0], masks.shape[1])  # every v_i and w_i
    good = solve_block_ipm(Xa, mk, sg, y, lam, L, eps=1e-10)
    calls = {"woodbury": 0}
    real = bi._merged_rows  # the capacitance rows, formed by every Woodbury attempt and nothing else

    def counted(*a):
        calls["woodbury"] += 1
        return real(*a)

    monkeypatch.setattr(bi, "_merged_rows", counted)
    monkeypatch.setattr(bi, "_LOW_RANK_RTOL", 0.0)  # no Woodbury solve is accurate enough
    monkeypatch.setattr(bi, "_LOW_RANK_STOP", 0.0)  # and the solve does not stop at its best iterate
    bad = solve_block_ipm(Xa, mk, sg, y, lam, L, eps=1e-10)
    assert calls["woodbury"] >= bad.iterations  # a Woodbury attempt in every iteration
    assert bad.objective == pytest.approx(good.objective, rel=1e-9)
