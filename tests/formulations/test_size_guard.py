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


def test_builders_defer_and_refuse_before_allocating():
    """A program whose dense n x P constants exceed the build limit is deferred: accessing its
    CVXPY problem (or an interior-point solve) is refused with the size, before allocating."""
    import tracemalloc

    from convexnn.solvers.interior import InteriorPoint

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 10))
    y = rng.standard_normal(2000)
    P = cx.sample_patterns(X, 100_000, seed=0)
    assert len(P) > 90_000
    tracemalloc.start()
    for build in (cx.c_relu, cx.c_grelu):
        f = build(X, y, P, 0.1)
        assert f.deferred
        with pytest.raises(cx.TooLargeError, match="GiB") as ei:
            f.problem
        assert ei.value.estimate > 2**31
        assert f.deferred  # a refused build leaves it deferred, not half built
        with pytest.raises(cx.TooLargeError):
            f.solve()
        assert "too large to build" in InteriorPoint().supports(f)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 300 * 2**20  # far below the 3 GB the program would hold


@pytest.mark.parametrize("builder", ["c_grelu", "c_relu"])
def test_deferred_program_solves_from_the_data(builder, monkeypatch):
    """A deferred program is solved by the first-order solvers without building CVXPY, to the
    optimum of the same program built and solved by Clarabel; its network has that objective."""
    import convexnn.formulations.two_layer as tl

    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 3))
    y = np.sin(X[:, 0]) + X[:, 1]
    pats = cx.sample_patterns(X, 30, seed=0, bias=True)
    ref = getattr(cx, builder)(X, y, pats, 0.05).solve(tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
    monkeypatch.setattr(tl, "MAX_BUILD_BYTES", 1000)
    f = getattr(cx, builder)(X, y, pats, 0.05)
    assert f.deferred
    sol = cx.solve(f, method="auto", tol=1e-9)
    assert f.deferred  # never built
    assert sol.value == pytest.approx(ref.value, rel=1e-6)
    net = sol.to_network()
    assert net.objective(X, y, 0.05) == pytest.approx(sol.value, rel=1e-6)
