"""Benchmark: exact chamber enumeration vs the one-LP-per-cell reference.

Run from the repository root::

    .venv/bin/python bench/bench_arrangements.py            # full table
    .venv/bin/python bench/bench_arrangements.py --quick    # small sizes, for a smoke run

For every case the fast method ``enumerate_patterns`` runs on the whole data; the LP reference
``enumerate_patterns_lp`` (one HiGHS LP per candidate cell) runs in the SAME process on the
first ``n_lp`` rows, chosen so that it finishes in seconds, and its cells/second are
extrapolated to the full instance. The LP's cost per cell grows with ``n`` (more constraints,
more incremental steps), so the extrapolation favours the LP and the reported speedups are
conservative. Both methods also run on the same LP-sized subset (same-instance ratio), and the
subset results are checked to be identical. Peak memory is the process' max RSS.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import convexnn as cnn  # noqa: E402
from convexnn.data import load_dataset  # noqa: E402


def _cases(quick: bool) -> list[tuple[str, np.ndarray, bool]]:
    rng = np.random.default_rng(0)
    sizes = [(60, 3), (40, 4), (20, 6)] if quick else [(200, 3), (120, 4), (50, 6)]
    out = []
    for n, d in sizes:
        out.append((f"gaussian n={n} d={d}", rng.standard_normal((n, d)), False))
        G = rng.integers(-3, 4, size=(n, d)).astype(float)
        G[rng.random(n) < 0.1] = 0.0                        # zero rows
        dup = rng.random(n) < 0.15
        G[dup] = -G[rng.integers(0, n, dup.sum())]           # antipodal / duplicate rows
        out.append((f"integer grid n={n} d={d} (dups, zeros)", G, False))
    X, _ = load_dataset("diabetes")
    if quick:
        out.append(("diabetes bmi,bp n=80 +bias", X[:80][:, [2, 3]], True))
    else:
        out.append(("diabetes bmi,bp n=442 +bias", X[:, [2, 3]], True))
        out.append(("diabetes bmi,bp,s5 n=150 +bias", X[:150][:, [2, 3, 8]], True))
    return out


def _lp_rows(X: np.ndarray, bias: bool, target: int = 400) -> int:
    r = np.linalg.matrix_rank(np.hstack([X, np.ones((len(X), 1))]) if bias else X)
    n = 2
    while n < len(X) and cnn.cover_bound(n + 1, r) <= target:
        n += 1
    return n


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(name: str, X: np.ndarray, bias: bool) -> dict:
    n, d = X.shape
    t, c = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cnn.NotProvenWarning)
        P = cnn.enumerate_patterns(X, bias=bias, progress=False)
    t_fast, c_fast = time.perf_counter() - t, time.process_time() - c
    count = cnn.count_patterns(X, bias=bias)
    Xa = np.hstack([X, np.ones((n, 1))]) if bias else X
    ok_gates = bool(np.array_equal(Xa @ P.gates >= 0, P.masks))
    n_lp = _lp_rows(X, bias)
    Xs = X[:n_lp]
    t, c = time.perf_counter(), time.process_time()
    L = cnn.enumerate_patterns_lp(Xs, bias=bias)
    t_lp, c_lp = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cnn.NotProvenWarning)
        Ps = cnn.enumerate_patterns(Xs, bias=bias, progress=False)
    t_fast_sub = time.perf_counter() - t
    rate_fast = len(P) / t_fast
    rate_lp = len(L) / t_lp
    return dict(
        name=name, n=n, dprime=Xa.shape[1], cells=len(P), count_ok=(count == len(P)), exact=P.exact, count=count,
        cover=cnn.cover_bound(n, np.linalg.matrix_rank(Xa)), t_fast=t_fast, rate_fast=rate_fast,
        c_fast=c_fast, c_lp=c_lp, speedup_cpu=(len(P) / c_fast) / (len(L) / c_lp),
        n_lp=n_lp, cells_lp=len(L), t_lp=t_lp, rate_lp=rate_lp, same=(Ps == L),
        ratio_same=(t_lp / max(t_fast_sub, 1e-9)), speedup=rate_fast / rate_lp,
        gates_ok=ok_gates, peak_mb=_peak_mb(), mb_result=P.nbytes / 2**20,
    )


def table(rows: list[dict]) -> str:
    head = ("| case | n | d' | cells (exact count; Cover) | fast wall s (CPU s) | fast cells/s | LP rows | "
            "LP cells | LP wall s (CPU s) | LP cells/s | speedup wall (CPU) | same-subset ratio | "
            "subset equal | gates ok | result MB | peak RSS MB |")
    sep = "|" + "---|" * 16
    lines = [head, sep]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['n']} | {r['dprime']} | {r['cells']:,} "
            f"({'proven complete' if r['exact'] else 'of ' + format(r['count'], ',') + ': exact=False'}"
            f", Cover {r['cover']:,}) | {r['t_fast']:.2f} ({r['c_fast']:.2f}) | {r['rate_fast']:,.0f} | "
            f"{r['n_lp']} | {r['cells_lp']:,} | {r['t_lp']:.2f} ({r['c_lp']:.2f}) | {r['rate_lp']:,.0f} | "
            f"{r['speedup']:,.0f}x ({r['speedup_cpu']:,.0f}x) | "
            f"{r['ratio_same']:,.0f}x | {r['same']} | {r['gates_ok']} | {r['mb_result']:.0f} | "
            f"{r['peak_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = ap.parse_args(argv)
    rows = []
    for name, X, bias in _cases(args.quick):
        rows.append(run_case(name, X, bias))
        print(f"done: {name}  {rows[-1]['cells']:,} cells in {rows[-1]['t_fast']:.2f} s", file=sys.stderr)
    load = os.getloadavg()
    md = table(rows)
    md += (f"\n\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
           f"load average at end {load[0]:.1f}; numpy {np.__version__}.")
    print(md)
    return md


if __name__ == "__main__":
    main()
