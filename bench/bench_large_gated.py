"""The issue's memory target: C-GReLU with n=1e5, d=50, P=1000 on the CPU in < 8 GB.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_large_gated.py [--n 100000]

Prints the wall time, the certified relative gap and the peak resident memory of the process
(``resource.getrusage``, Linux: kilobytes).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import convexnn as cx  # noqa: E402
from convexnn.solvers import lam_max  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=50)
    ap.add_argument("--P", type=int, default=1000)
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    X = rng.standard_normal((args.n, args.d))
    y = np.maximum(X @ rng.standard_normal((args.d, 5)), 0.0) @ rng.standard_normal(5)
    y = (y - y.mean()) / y.std()
    pat = cx.Patterns.from_gates(X, rng.standard_normal((args.d + 1, args.P)), bias=True)
    Xa = np.hstack([X, np.ones((args.n, 1))])
    lam = 0.05 * lam_max(Xa, pat.masks, y)
    del Xa
    f = cx.c_grelu(X, y, pat, lam)
    t0 = time.perf_counter()
    sol = cx.solve(f, method="first_order", tol=args.tol)
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"n={args.n} d={args.d} P={len(pat)}: {sol.status}, certified rel. gap {sol.info['gap']:.1e} "
          f"(tol {args.tol:g}), {sol.iterations} iterations, {wall:.1f} s, peak RSS {peak_gb:.2f} GB "
          f"(includes building the CVXPY problem)")


if __name__ == "__main__":
    main()
