"""MaskedDesign over row blocks: the same maps as the one-shot products, and the same solutions."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cx
from convexnn.solvers import get_backend
from convexnn.solvers import operators
from convexnn.solvers.operators import MaskedDesign


def _problem(seed: int, n: int = 53, d: int = 4, P: int = 9):
    rng = np.random.default_rng(seed)
    Xa = np.hstack([rng.standard_normal((n, d)), np.ones((n, 1))])
    masks = Xa @ rng.standard_normal((d + 1, P)) >= 0
    return rng, Xa, masks


def _dense(Xa: np.ndarray, masks: np.ndarray):
    """The maps written out with the explicit matrices D_i Xa and G_i = diag(2 m_i - 1) Xa."""
    A = [masks[:, i, None] * Xa for i in range(masks.shape[1])]
    G = [(2.0 * masks[:, i, None] - 1.0) * Xa for i in range(masks.shape[1])]
    return A, G


@pytest.mark.parametrize("rows", [1, 7, 16, 52, 53])
def test_blocked_maps_equal_explicit_matrices(rows):
    rng, Xa, masks = _problem(rows)
    n, P = masks.shape
    d = Xa.shape[1]
    bk = get_backend(None, "float64")
    op = MaskedDesign(Xa, masks, bk, chunk_rows=rows)
    assert op.chunk == (rows if rows < n else None)
    one = MaskedDesign(Xa, masks, bk, chunk_rows=n)
    assert one.chunk is None
    U, r, R = rng.standard_normal((P, d)), rng.standard_normal(n), rng.standard_normal((n, P))
    A, G = _dense(Xa, masks)
    fit = sum(A[i] @ U[i] for i in range(P))
    adj = np.stack([A[i].T @ r for i in range(P)])
    cone = np.stack([G[i] @ U[i] for i in range(P)], axis=1)
    cadj = np.stack([G[i].T @ R[:, i] for i in range(P)])
    for o in (op, one):
        np.testing.assert_allclose(o.fit(U), fit, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(o.adjoint(r), adj, rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(o.cone(U), cone, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(o.cone_adjoint(R), cadj, rtol=1e-13, atol=1e-12)
    # a working set keeps the blocks and restricts the columns
    idx = np.array([0, 3, 8])
    sub = op.subset(idx)
    assert sub.chunk == op.chunk and sub.P == 3
    np.testing.assert_allclose(sub.adjoint(r), adj[idx], rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(sub.fit(U[idx]), sum(A[i] @ U[i] for i in idx), rtol=1e-13, atol=1e-13)


def test_blocked_float_masks_are_used_without_copy_and_float32():
    rng, Xa, masks = _problem(3)
    bk = get_backend(None, "float64")
    Mf = masks.astype(np.float64)
    op = MaskedDesign(Xa, Mf, bk, chunk_rows=10)
    assert op.M is Mf
    U = rng.standard_normal((masks.shape[1], Xa.shape[1]))
    bk32 = get_backend(None, "float32")
    op32 = MaskedDesign(Xa, masks, bk32, chunk_rows=10)
    z32 = op32.fit(U.astype(np.float32))
    assert z32.dtype == np.float32 and op32.adjoint(z32).dtype == np.float32
    np.testing.assert_allclose(z32, op.fit(U), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["c_grelu", "c_relu"])
def test_blocked_solve_matches_clarabel(kind, monkeypatch):
    """With blocks of 16 rows the first-order solve (R-FISTA, the C-ReLU active set and its
    certificate over all patterns) reaches Clarabel's optimal value and a certified gap."""
    monkeypatch.setattr(operators, "CHUNK_ROWS", 16)
    monkeypatch.setattr(operators, "CHUNK_MIN_ROWS", 17)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 3))
    y = np.maximum(X @ rng.standard_normal((3, 2)), 0.0) @ np.array([1.0, -1.0]) + 0.1 * rng.standard_normal(60)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((4, 12)), bias=True)
    f = getattr(cx, kind)(X, y, pat, 0.05)
    ref = f.solve(solver="CLARABEL").value
    sol = cx.solve(f, method="first_order", tol=1e-8)
    assert sol.status == "optimal"
    assert abs(sol.value - ref) <= 1e-6 * abs(ref)
    assert sol.info["gap"] <= 1e-8
    # the returned value is the objective of the returned weights
    assert abs(f.objective(sol.weights) - sol.value) <= 1e-9 * abs(ref)
