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
