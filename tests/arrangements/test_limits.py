"""The BLAS thread limit used around the many small dense products."""

import numpy as np
import pytest

from convexnn.arrangements.limits import single_blas_thread


def test_single_blas_thread_limits_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    for _ in range(2):  # the controller is created once and reused
        with single_blas_thread():
            inside = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
            A = np.arange(9.0).reshape(3, 3)
            assert np.array_equal(A @ np.eye(3), A)
        assert all(t == 1 for t in inside)
        after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert after == before


def test_parallel_blas_uses_every_core_for_large_calls_only(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from convexnn.arrangements import limits

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    monkeypatch.setattr(limits, "available_cores", lambda: 2)
    with single_blas_thread():
        with limits.parallel_blas(limits.PARALLEL_BLAS_FLOPS / 2):  # small work: the caller's setting
            assert all(t == 1 for t in blas_threads())
        with limits.parallel_blas(limits.PARALLEL_BLAS_FLOPS):
            assert max(blas_threads()) == 2  # (a library built for one thread stays at one)
            A = np.arange(9.0).reshape(3, 3)
            assert np.array_equal(A @ np.eye(3), A)
        assert all(t == 1 for t in blas_threads())  # restored on exit
    monkeypatch.setattr(limits, "available_cores", lambda: 1)
    with single_blas_thread(), limits.parallel_blas(1e15):  # one core: nothing to parallelize
        assert all(t == 1 for t in blas_threads())
