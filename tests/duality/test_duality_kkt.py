"""KKT conditions of C-ReLU / C-GReLU solutions (Mishkin & Pilanci (ICML 2023)): multipliers, block correlations, support."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cx


def test_kkt_block_correlations_and_support(small):
    sol, lam = small["sol"], small["lam"]
    K = cx.kkt(sol)
    assert K.multipliers_from == "cvxpy"
    qn = K.q_norms
    # ||q_i|| <= lam everywhere, == lam on the support
    assert np.all(qn <= lam * (1 + 1e-6))
    assert len(K.support) > 0
    assert np.allclose(qn[K.support], lam, rtol=1e-4)
    # every optimal block is a nonnegative multiple of q_i
    big = K.support[np.linalg.norm(K.theta[K.support], axis=1) > 1e-4 * np.linalg.norm(K.theta, axis=1).max()]
    alpha = K.alpha[big]
    assert np.all(alpha > 0)
    resid = K.theta[big] - alpha[:, None] * K.Q[big]
    assert np.max(np.linalg.norm(resid, axis=1) / np.linalg.norm(K.theta[big], axis=1)) < 1e-3
    # complementary slackness, feasibility, nonnegative multipliers
    assert K.complementary_slackness < 1e-7
    assert K.primal_infeasibility < 1e-7
    assert K.rho.min() >= -1e-9
    assert K.satisfied(1e-3)
    assert "support size" in str(K)


def test_kkt_sign_convention_stationarity(small):
    """q^v_i = Xa^T D_i r + A_i^T rho_i with rho from CVXPY: the Lagrangian is stationary."""
    sol, f = small["sol"], small["f"]
    K = cx.kkt(sol)
    P = len(f.patterns)
    M = np.asarray(f.patterns.masks, float)
    S = 2 * M - 1
    r = f.y - sol.fit
    i = int(K.support[0]) % P
    sign = 1.0 if K.support[0] < P else -1.0
    q = sign * f.Xa.T @ (M[:, i] * r) + f.Xa.T @ (S[:, i] * K.rho[:, K.support[0]])
    assert np.allclose(q, K.Q[K.support[0]])
    # flipping the sign of rho breaks ||q|| <= lam: the convention matters
    bad = sign * f.Xa.T @ (M * r[:, None]) - f.Xa.T @ (S * K.rho[:, :P] if sign > 0 else S * K.rho[:, P:])
    assert np.linalg.norm(bad, axis=0).max() > small["lam"] * (1 + 1e-3)


def test_kkt_recomputed_multipliers_agree(small):
    sol = small["sol"]
    K1 = cx.kkt(sol)
    K2 = cx.kkt(sol, recompute=True)
    assert K2.multipliers_from == "nnls"
    assert np.array_equal(K1.support, K2.support)
    big = K1.support[np.linalg.norm(K1.theta[K1.support], axis=1) > 1e-3 * np.linalg.norm(K1.theta, axis=1).max()]
    assert np.allclose(K1.Q[big], K2.Q[big], atol=1e-4 * small["lam"])
    assert K2.dual_infeasibility <= 1e-9


def test_kkt_gated(small, tight):
    f = cx.c_grelu(small["X"], small["y"], small["P"], small["lam"])
    sol = tight(f)
    K = cx.kkt(sol)
    assert K.kind == "c_grelu" and K.rho is None
    assert K.dual_infeasibility <= 1e-6 * small["lam"]
    assert np.allclose(K.q_norms[K.support], small["lam"], rtol=1e-4)


def test_kkt_rejects_vector_output(small, tight):
    y2 = np.column_stack([small["y"], -small["y"]])
    sol = tight(cx.c_relu(small["X"], y2, small["P"], small["lam"]))
    with pytest.raises(cx.InputError, match="scalar"):
        cx.kkt(sol)
