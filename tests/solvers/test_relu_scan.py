"""Block values of the C-ReLU scans: row generation against the NNLS over all rows."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cx
from convexnn.duality.cones import project_cone
from convexnn.solvers import relu_certificate as rc


def _data(seed: int, n: int = 400, d: int = 5, P: int = 12):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Xa = np.hstack([X, np.ones((n, 1))])
    masks = Xa @ rng.standard_normal((d + 1, P)) >= 0
    v = rng.standard_normal(n)
    return Xa, masks, v


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_row_generated_block_value_equals_full_projection(seed):
    """n = 400 rows > 3 d' = 18: the value comes from row generation; it is an upper bound of
    ||Pi_K(g)|| (NNLS over all rows) and equal to it up to rounding."""
    Xa, masks, v = _data(seed)
    rn = np.linalg.norm(Xa, axis=1)
    for i in range(masks.shape[1]):
        for sign in (1.0, -1.0):
            m = masks[:, i]
            g = sign * (Xa.T @ np.where(m, v, 0.0))
            sg = np.where(m, 1.0, -1.0)
            exact = float(np.linalg.norm(project_cone(Xa, sg, g)[0]))
            val = rc._block_value(Xa, rn, sg, g, 0.0)
            scale = float(np.linalg.norm(g))
            assert val >= exact - 1e-10 * scale
            assert val == pytest.approx(exact, rel=1e-8, abs=1e-10 * scale)
            # above a level the value is exact too; below it, an upper bound that is <= level
            lev = 0.5 * exact
            assert rc._block_value(Xa, rn, sg, g, lev) == pytest.approx(exact, rel=1e-8, abs=1e-10 * scale)
            low = rc._block_value(Xa, rn, sg, g, 2.0 * exact + 1.0)
            assert exact - 1e-10 * scale <= low <= 2.0 * exact + 1.0


def test_screen_top_keeps_the_largest_values():
    """``top`` stops the pass early but returns the same largest blocks as the full pass."""
    Xa, masks, v = _data(4, P=30)
    full_b, full_v = rc.screen_blocks(Xa, masks, v, 0.0)
    assert len(full_b) == 2 * masks.shape[1]
    for top in (1, 3, 8):
        b, val = rc.screen_blocks(Xa, masks, v, 0.0, top=top)
        np.testing.assert_array_equal(b[:top], full_b[:top])
        np.testing.assert_allclose(val[:top], full_v[:top], rtol=1e-12)


def test_active_set_from_zero_matches_clarabel():
    """No screening signal: the working set starts from the 8 most violated blocks at zero."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((80, 3))
    y = np.maximum(X @ rng.standard_normal((3, 3)), 0.0) @ np.array([1.0, -0.5, 0.8])
    pat = cx.Patterns.from_gates(X, rng.standard_normal((4, 20)), bias=True)
    f = cx.c_relu(X, y, pat, 0.02)
    ref = f.solve(solver="CLARABEL").value
    Xa = np.asarray(f.Xa)
    from convexnn.formulations.losses import get_loss
    from convexnn.solvers.active_set import solve_relu_active_set

    r = solve_relu_active_set(Xa, np.asarray(pat.masks), y, f.lam_value, get_loss("squared"), tol=1e-9)
    assert r.converged and r.certificate.rel_gap <= 1e-9
    assert r.certificate.primal == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_multiplier_bounds_are_upper_bounds_of_the_block_values(seed):
    # ||sigma Xa^T D_i v + A_i^T rho|| for any rho >= 0 (one vectorized pass) equals the per-block
    # formula, bounds the exact projection norm s_b(v) from above, and is exact at the NNLS rho
    Xa, masks, v = _data(seed, n=120, d=4, P=6)
    n, P = masks.shape
    rng = np.random.default_rng(seed)
    rho = np.maximum(rng.standard_normal((n, 2 * P)), 0.0)
    cols = np.arange(2 * P)
    got = rc.multiplier_bounds(Xa, masks, v, rho, cols)
    for c in cols:
        sgn, i = divmod(int(c), P)
        sg = np.where(masks[:, i], 1.0, -1.0)
        g = (1.0 - 2.0 * sgn) * (Xa.T @ np.where(masks[:, i], v, 0.0))
        want = np.linalg.norm(g + (Xa * sg[:, None]).T @ rho[:, c])
        assert got[c] == pytest.approx(want, rel=1e-12)
        q, r_opt = project_cone(Xa, sg, g)
        assert got[c] >= np.linalg.norm(q) * (1 - 1e-12)
        rho2 = rho.copy()
        rho2[:, c] = r_opt
        assert rc.multiplier_bounds(Xa, masks, v, rho2, np.array([c]))[0] == pytest.approx(np.linalg.norm(q),
                                                                                           rel=1e-9, abs=1e-12)
    assert rc.multiplier_bounds(Xa, masks, v, rho, np.zeros(0, dtype=np.int64)).shape == (0,)


@pytest.mark.parametrize("seed", [0, 1])
def test_scans_return_the_projections_of_the_violated_blocks(seed):
    # the directions of the blocks found (the first cone rows of their restricted solve) are the
    # cone projections Pi_K(g) of the NNLS over all rows, and their norms are the values
    Xa, masks, v = _data(seed, P=10)
    P = masks.shape[1]
    rn = np.linalg.norm(Xa, axis=1)
    vals = np.array([[np.linalg.norm(project_cone(Xa, np.where(masks[:, i], 1.0, -1.0),
                                                  s * (Xa.T @ np.where(masks[:, i], v, 0.0)))[0])
                      for i in range(P)] for s in (1.0, -1.0)])
    lam = float(np.quantile(vals, 0.6))
    dirs: dict = {}
    blocks, _ = rc.screen_blocks(Xa, masks, v, lam, directions=dirs)
    dirs2: dict = {}
    found, *_ = rc.scan_blocks(Xa, masks, v, lam, np.zeros((2, P), dtype=bool), 2 * P, directions=dirs2)
    assert len(blocks) > 0 and {tuple(b) for b in blocks} == set(dirs) == set(dirs2) == {tuple(b) for b in found}
    for (row, i), q in dirs.items():
        sg = np.where(masks[:, i], 1.0, -1.0)
        g = (1.0 - 2.0 * row) * (Xa.T @ np.where(masks[:, i], v, 0.0))
        exact = project_cone(Xa, sg, g)[0]
        scale = float(np.linalg.norm(g))
        np.testing.assert_allclose(q, exact, atol=1e-8 * scale)
        np.testing.assert_allclose(dirs2[(row, i)], exact, atol=1e-8 * scale)
        assert float(np.min(sg * (Xa @ q))) >= -1e-9 * scale * float(rn.max())  # in the cone
    g0 = Xa.T @ np.where(masks[:, 0], v, 0.0)
    val, q, (rows, c) = rc._block_projection(Xa, rn, np.where(masks[:, 0], 1.0, -1.0), g0, 0.0)
    assert val == np.linalg.norm(q) == rc._block_value(Xa, rn, np.where(masks[:, 0], 1.0, -1.0), g0, 0.0)
    # the multipliers reproduce the point: q = g + X_rows^T (s * rho), rho > 0
    assert rows.size > 0 and np.all(np.where(masks[rows, 0], 1.0, -1.0) * c > 0)
    np.testing.assert_allclose(q, g0 + Xa[rows].T @ c, atol=1e-12 * float(np.linalg.norm(g0)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_cache_keeps_the_scan_values(seed):
    # a scan at v2 with the multipliers of the projections at a nearby v1 (the cache of a working-set
    # loop) finds the same violated blocks, in the same order, and the same s(v2) up to the
    # projections' accuracy, with fewer NNLS; the cached bound ||g + X_rows^T c|| is above s_b(v2)
    Xa, masks, v1 = _data(seed, P=16)
    P = masks.shape[1]
    v2 = v1 + 0.02 * np.random.default_rng(10 + seed).standard_normal(v1.size)
    rn = np.linalg.norm(Xa, axis=1)
    exact = np.array([[np.linalg.norm(project_cone(Xa, np.where(masks[:, i], 1.0, -1.0),
                                                   s * (Xa.T @ np.where(masks[:, i], v2, 0.0)))[0])
                       for i in range(P)] for s in (1.0, -1.0)])
    lam = float(np.quantile(exact, 0.8))
    none = np.zeros((2, P), dtype=bool)
    cache: dict = {}
    rc.scan_blocks(Xa, masks, v1, lam, none, 2 * P, cache=cache)
    assert cache  # every projection of the first scan left its multipliers
    G = rc._masked_products(Xa, masks, v2)
    for k, (rows, c) in cache.items():
        row, i = divmod(k, P)
        bound = float(np.linalg.norm((1.0 - 2.0 * row) * G[:, i] + Xa[rows].T @ c))
        assert bound >= exact[row, i] * (1 - 1e-12)
    a0, s0, _, n0 = rc.scan_blocks(Xa, masks, v2, lam, none, 2 * P)
    a1, s1, _, n1 = rc.scan_blocks(Xa, masks, v2, lam, none, 2 * P, cache=cache)
    assert a0.shape[0] > 0 and np.array_equal(a0, a1)
    assert s0 == pytest.approx(float(exact.max()), rel=1e-8) and s1 == pytest.approx(s0, rel=1e-8)
    assert n1 < n0


@pytest.mark.parametrize("chunk_bytes", [8 * 400 * 3, 1 << 26])
def test_block_inputs_equal_the_per_block_products(chunk_bytes, monkeypatch):
    # the chunked inputs of the scans (3 blocks per chunk, or all at once) are the per-block
    # quantities: g = sigma X_a^T D_i v, the signs 2 m_i - 1 and the normalized margins of g
    monkeypatch.setattr(rc, "_SCAN_CHUNK_BYTES", chunk_bytes)
    Xa, masks, v = _data(3, P=10)
    P = masks.shape[1]
    rn = np.linalg.norm(Xa, axis=1)
    G = rc._masked_products(Xa, masks, v)
    ks = np.array([13, 0, 7, 19, 2, 11, 5])  # flat blocks sign_row * P + i, in any order
    got = list(rc._block_inputs(Xa, rn, masks, G, ks))
    assert [k for k, *_ in got] == ks.tolist()
    for k, g, sg, marg in got:
        row, i = divmod(k, P)
        g_ref = (1.0 - 2.0 * row) * (Xa.T @ np.where(masks[:, i], v, 0.0))
        sg_ref = np.where(masks[:, i], 1.0, -1.0)
        np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-12 * np.linalg.norm(g_ref))
        assert np.array_equal(sg, sg_ref)
        np.testing.assert_allclose(marg, sg_ref * (Xa @ g_ref) / rn, rtol=1e-10,
                                   atol=1e-12 * np.linalg.norm(g_ref))
