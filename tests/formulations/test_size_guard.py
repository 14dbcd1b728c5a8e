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


def test_builders_refuse_before_allocating():
    """A program whose dense n x P constants exceed the build limit is refused up front."""
    import tracemalloc

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 10))
    y = rng.standard_normal(2000)
    P = cx.sample_patterns(X, 100_000, seed=0)
    assert len(P) > 90_000
    tracemalloc.start()
    for build in (cx.c_relu, cx.c_grelu):
        with pytest.raises(cx.TooLargeError, match="GiB") as ei:
            build(X, y, P, 0.1)
        assert ei.value.estimate > 2**31
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 300 * 2**20  # far below the 3 GB the program would hold
