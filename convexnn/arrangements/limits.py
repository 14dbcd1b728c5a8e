"""Resource limits of the arrangement computations.

The validation of the user's size limits (``max_patterns``, ``max_bytes``), the factors that
turn a number of chambers into memory and counting work into a decision (count now, count later
to prove completeness), the batch sizes that bound the memory of one recursion level, the
one-thread BLAS context the many small products run in, the all-core context of the few large ones,
and the cores available to the process.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any

import numpy as np

from convexnn.errors import InputError

#: births (candidate witnesses) processed per batch; bounds the memory of every level
_BUDGET = 1_000_000
#: peak memory of enumerate_patterns relative to its result (measured: about 12x)
_PEAK_FACTOR = 12
#: floats per gathered block in the ragged products
_BLOCK = 1 << 18
#: counting work (restricted normals) done up front by enumerate_patterns for an exact estimate
_COUNT_NOW = 3e6
#: counting work spent after enumerating to prove completeness of a degenerate arrangement
_COUNT_LATER = 3e8


def _check_limits(max_patterns: Any, max_bytes: Any) -> None:
    """Validate the size limits of the enumeration (InputError)."""
    if max_patterns is not None and (isinstance(max_patterns, bool) or not isinstance(max_patterns, (int, np.integer))
                                     or max_patterns < 1):
        raise InputError(f"max_patterns must be a positive integer or None; got {max_patterns!r}.")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, float, np.integer, np.floating)) \
            or not max_bytes > 0:
        raise InputError(f"max_bytes must be a positive number; got {max_bytes!r}.")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


_CONTROLLER: list[Any] = []  # the threadpoolctl controller, created once (scanning the loaded libraries costs ~2 ms)

#: a BLAS or LAPACK call of at least this many flops (the dense factorizations and products of
#: large restricted programs) runs on every available core, inside :func:`one_blas_thread` too:
#: the Cholesky factorization of order 5100 takes 0.83 s on one core and 0.48 s on two (idle
#: cores, OpenBLAS); below ~1e9 flops the threads' start-up and a busy second core cost more
PARALLEL_BLAS_FLOPS = 2e9


def _controller() -> Any:
    """The process's threadpoolctl controller (None without threadpoolctl)."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a core dependency
            return None
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def single_blas_thread() -> Any:
    """Context limiting BLAS to one thread: the products here are many small ones, for which
    OpenBLAS threading costs far more than it gains (3x slower measured on 2 busy cores)."""
    c = _controller()
    return contextlib.nullcontext() if c is None else c.limit(limits=1, user_api="blas")


def parallel_blas(flops: float) -> Any:
    """Context running BLAS on every available core (:func:`available_cores`) when the work inside
    it is one call of at least :data:`PARALLEL_BLAS_FLOPS` flops; otherwise it changes nothing.

    For the few large factorizations and products inside the one-thread solvers
    (:func:`one_blas_thread`); the setting in force before is restored on exit."""
    cores = available_cores()
    c = _controller() if cores > 1 and flops >= PARALLEL_BLAS_FLOPS else None
    return contextlib.nullcontext() if c is None else c.limit(limits=cores, user_api="blas")


def one_blas_thread(fn: Any) -> Any:
    """Decorator: ``fn`` runs inside :func:`single_blas_thread` (solvers made of many small dense
    factorizations, 2.5-10x slower with the default threads on 2 cores, bench/RESULTS_matrix.md)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with single_blas_thread():
            return fn(*args, **kwargs)

    return wrapper

