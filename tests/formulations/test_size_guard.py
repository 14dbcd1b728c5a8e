"""Programs too large for an interior-point solve are refused with the estimate, before compiling."""

import numpy as np
import pytest

import convexnn as cx


def test_interior_solve_refuses_with_estimate():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal(40)
    pats = cx.Patterns.from_gates(X, rng.standard_normal((3, 50)))
    f = cx.c_relu(X, y, pats, lam=0.1)
    est = 4 * 40 * len(pats) * 3
    assert f.nnz_estimate() == est
    with pytest.raises(cx.TooLargeError, match="first_order") as info:
        f.solve(max_nnz=est - 1)
    assert info.value.estimate == est and f"{est:.3g}" in str(info.value)
    assert f.problem.status is None  # refused before CVXPY compiled anything
    g = cx.c_grelu(X, y, pats, lam=0.1)
    assert g.nnz_estimate() == est // 4
    g.solve(max_nnz=est // 4)  # exactly at the limit: solved
