"""Degenerate programs with small weight decay: the first-order path against CVXPY + Clarabel.

One command::

    .venv/bin/python bench/bench_degenerate.py            # writes bench/RESULTS_degenerate.md (~3 min)

Random two-layer regression programs of four shapes (``n`` = 60-200 samples, ``d`` = 2-5 features,
``P`` = 30-100 sampled patterns with a bias, an unscaled ReLU teacher plus noise) at a fixed small
``lam`` (``lam / lam_max`` of about 1e-5 to 1e-2: dense supports, many nearly parallel groups),
``--seeds`` random draws of each, C-GReLU and C-ReLU. For every program, in one process:

* ``solve(f, method="first_order")`` as shipped (tol 1e-8 for C-GReLU; 1e-6 and cone violation
  1e-8 for C-ReLU), and ``solve(f, method="auto")`` (for C-GReLU it takes the block interior point
  over all groups when ``lam_max / lam >= gated_ipm.AUTO_IPM_RATIO``);
* ``method="first_order"`` with the rules for degenerate programs switched off: the cycling rule
  of the C-GReLU Newton polish (``gated_active_set._PROGRESS = inf``: every round counts as
  progress) and, for C-ReLU, the full-program rules of the active set (``full_share=2``,
  ``full_blocks=2``, no start from the full program);
* CVXPY + Clarabel with tight tolerances (1e-9), the reference.

Reported per shape and program: how many solves were certified without a warning, the time
(median over the draws, and the largest), the largest relative suboptimality against Clarabel and
the ratio of the times. Wall times are best of ``--repeat`` runs.

A second table covers programs of a few dozen samples, on two grids: ``n`` = 10-80, ``d`` = 1 or 3,
``P`` = 8-80 gates, ``lam`` = 0.01 and 0.1 ``lam_max``, a ReLU teacher (the grid the small-program
rules were set on), and a held-out grid (``n`` = 12-70, ``d`` = 1 or 2, 10-40 gates, ``lam`` = 0.003,
0.03 and 0.3 ``lam_max``, heavy-tailed shifted features, a sine teacher); squared and logistic loss.
For each program the best of four interleaved runs of ``method="first_order"`` (with and without
the rules) and of Clarabel, summarized by how often each is faster, the largest ratio and the totals.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import convexnn as cx  # noqa: E402
import convexnn.solvers.first_order as first_order  # noqa: E402
import convexnn.solvers.gated_active_set as gated_active_set  # noqa: E402
from convexnn.errors import SolverError  # noqa: E402
from convexnn.solvers import lam_max  # noqa: E402

#: (n, d, P, lam): lam is absolute (the targets are not standardized)
SHAPES = [(120, 3, 60, 0.01), (60, 4, 30, 0.05), (200, 2, 100, 0.003), (100, 5, 80, 0.001)]


def program(kind: str, seed: int, n: int, d: int, P: int, lam: float):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X @ rng.standard_normal(d), 0.0) + 0.3 * rng.standard_normal(n)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    return getattr(cx, kind)(X, y, pat, lam)


def solve(f, kind: str, rules: bool, method: str = "first_order"):
    """``solve(f, method=method)`` with or without the rules; (solution, seconds, warned)."""
    real_relu = first_order.solve_relu_active_set
    progress, start, tiny = gated_active_set._PROGRESS, first_order.FULL_START_RATIO, first_order.FULL_START_FLOPS
    if not rules:
        gated_active_set._PROGRESS = float("inf")
        first_order.FULL_START_RATIO = float("inf")
        first_order.FULL_START_FLOPS = 0.0
        first_order.solve_relu_active_set = functools.partial(real_relu, full_share=2.0, full_blocks=2.0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            sol = cx.solve(f, method=method, tol=1e-8 if kind == "c_grelu" else 1e-6, viol_tol=1e-8)
            t = time.perf_counter() - t0
    finally:
        gated_active_set._PROGRESS, first_order.FULL_START_RATIO = progress, start
        first_order.FULL_START_FLOPS = tiny
        first_order.solve_relu_active_set = real_relu
    warned = any(issubclass(c.category, cx.ConvergenceWarning) for c in caught)
    return sol, t, warned


def clarabel(f):
    """The reference: CVXPY + Clarabel with tight tolerances; (solution, seconds)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
        return ref, time.perf_counter() - t0


def best_of(k: int, call):
    out = [call() for _ in range(k)]
    return min(out, key=lambda o: o[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_degenerate.md"))
    args = ap.parse_args()
    t_start = time.perf_counter()
    warm = program("c_relu", 0, 40, 2, 10, 0.1)
    cx.solve(warm, method="first_order")
    warm.solve(solver="CLARABEL")
    rows = []
    for (n, d, P, lam) in SHAPES:
        for kind in ("c_grelu", "c_relu"):
            res = {"with": [], "auto": [], "without": [], "ip": [], "sub": [], "ratio_lam": []}
            for seed in range(args.seeds):
                f = program(kind, seed, n, d, P, lam)
                Xa = np.asarray(f.Xa, dtype=float)
                res["ratio_lam"].append(lam / lam_max(Xa, f.patterns.masks, f.y, "squared"))
                ref, t_ip = best_of(args.repeat, lambda: clarabel(f))
                res["ip"].append(t_ip)
                for key, rules, method in (("with", True, "first_order"), ("auto", True, "auto"),
                                           ("without", False, "first_order")):
                    sol, t, warned = best_of(args.repeat, lambda: solve(f, kind, rules, method))
                    ok = sol.status == "optimal" and not warned
                    res[key].append((t, ok, sol.info["gap"]))
                    if key != "without":
                        res["sub"].append((sol.value - ref.value) / abs(ref.value))
            rows.append((n, d + 1, P, lam, kind, res))
            w = res["with"]
            print(f"n={n} d'={d + 1} P={P} lam={lam} {kind}: certified {sum(o for _, o, _ in w)}/{len(w)}, "
                  f"median {np.median([t for t, _, _ in w]):.3f} s; auto median "
                  f"{np.median([t for t, _, _ in res['auto']]):.3f} s; without the rules "
                  f"{sum(o for _, o, _ in res['without'])}/{len(w)}, "
                  f"median {np.median([t for t, _, _ in res['without']]):.3f} s; Clarabel median "
                  f"{np.median(res['ip']):.3f} s", flush=True)
    tiny = tiny_grid()
    write(args, rows, tiny, time.perf_counter() - t_start)


def _tiny_teacher(n: int, d: int, P: int, loss: str, seed: int):
    """A ReLU teacher on standard normal features, standardized targets (the grid the rules were set on)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X @ rng.standard_normal((d, 3)), 0).sum(1) + 0.2 * rng.standard_normal(n)
    y = (y - y.mean()) / y.std()
    if loss == "logistic":
        y = np.where(y > 0, 1.0, -1.0)
    return X, y, cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)


def _tiny_held_out(n: int, d: int, P: int, loss: str, seed: int):
    """Held out from the rules: heavy-tailed, shifted and scaled features (Student t with 4 degrees of
    freedom), a sine teacher, unstandardized targets (logistic: the sign about the median)."""
    rng = np.random.default_rng(5000 + seed)
    X = rng.standard_t(4, size=(n, d)) * rng.uniform(0.5, 3, size=d) + rng.uniform(-2, 2, size=d)
    y = np.sin(X @ rng.standard_normal(d)) + 0.3 * rng.standard_normal(n)
    if loss == "logistic":
        y = np.where(y > np.median(y), 1.0, -1.0)
    return X, y, cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)


#: the two grids of programs of a few dozen samples: (generator, n, d, gates, lam / lam_max)
TINY = {"ReLU teacher": (_tiny_teacher, [10, 20, 40, 80], [1, 3], [8, 30, 80], [0.01, 0.1]),
        "held out": (_tiny_held_out, [12, 25, 50, 70], [1, 2], [10, 40], [0.003, 0.03, 0.3])}


def tiny_grid() -> dict:
    """Programs of a few dozen samples: first order (with and without the rules) against Clarabel,
    best of four interleaved runs; ``{(grid, kind): [(first order, Clarabel, without), ...]}``."""
    out: dict = {}
    for grid, (make, ns, ds, Ps, fracs) in TINY.items():
        for i, (n, d, P, frac, loss) in enumerate(itertools.product(ns, ds, Ps, fracs, ["squared", "logistic"])):
            X, y, pat = make(n, d, P, loss, n * 7 + d + P if grid == "ReLU teacher" else i)
            lam = frac * lam_max(np.hstack([X, np.ones((n, 1))]), pat.masks, y, loss)
            for kind in ("c_grelu", "c_relu"):
                f = getattr(cx, kind)(X, y, pat, lam, loss=loss)
                t_fo, t_ip, t_wo, failed = [], [], [], False
                for _ in range(4):
                    t_fo.append(solve(f, kind, True)[1])
                    t0 = time.perf_counter()
                    try:
                        clarabel(f)
                    except SolverError:
                        failed = True  # its time until the failure still counts
                    t_ip.append(time.perf_counter() - t0)
                    t_wo.append(solve(f, kind, False)[1])
                out.setdefault((grid, kind), []).append((min(t_fo), min(t_ip), min(t_wo), failed))
    return out


def write(args, rows, tiny, total: float) -> None:
    lines = ["# Degenerate programs with small weight decay: first order vs CVXPY + Clarabel", "",
             "Command:", "", "```", f"python bench/bench_degenerate.py --seeds {args.seeds} --repeat {args.repeat}",
             "```", "",
             f"Machine: {platform.machine()}, Python {platform.python_version()}; "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; total {total:.0f} s. "
             "Times are best of the repeats, per program; columns give the median and the largest over the "
             f"{args.seeds} random draws of each shape.", "",
             "`first order` is `method=\"first_order\"` as shipped, `auto` is `method=\"auto\"`; `without` is "
             "`method=\"first_order\"` without the cycling rule of the C-GReLU Newton polish and the "
             "full-program rules of the C-ReLU active set. `cert.` counts solves that ended `optimal` without a "
             "`ConvergenceWarning`. `subopt` is the largest `(F - F_Clarabel) / |F_Clarabel|` of the shipped "
             "solves (negative: below Clarabel's point). `x IP` is Clarabel's median time over the median "
             "time of the first-order and the auto solves.", "",
             "| n | d' | P | lam (lam/lam_max) | program | first order: cert., median / max s | auto: cert., "
             "median s | without: cert., median / max s | Clarabel median s | x IP (first order, auto) | subopt |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, d, P, lam, kind, res in rows:
        w, a, wo = res["with"], res["auto"], res["without"]
        tw, ta, two = ([t for t, _, _ in x] for x in (w, a, wo))
        r = res["ratio_lam"]
        ip = np.median(res["ip"])
        lines.append(f"| {n} | {d} | {P} | {lam:g} ({min(r):.0e}-{max(r):.0e}) | {kind} | "
                     f"{sum(o for _, o, _ in w)}/{len(w)}, {np.median(tw):.3f} / {max(tw):.3f} | "
                     f"{sum(o for _, o, _ in a)}/{len(a)}, {np.median(ta):.3f} | "
                     f"{sum(o for _, o, _ in wo)}/{len(wo)}, {np.median(two):.3f} / {max(two):.3f} | "
                     f"{ip:.3f} | {ip / np.median(tw):.1f}, {ip / np.median(ta):.1f} | {max(res['sub']):.1e} |")
    lines += ["", "## Programs of a few dozen samples", "",
              "`ReLU teacher`: n = 10-80, d' = 2-4, P = 6-80 patterns (8-80 gates), lam = 0.01 and 0.1 lam_max, squared "
              "and logistic loss (the grid the small-program rules were set on). `held out`: n = 12-70, d' = 2-3, "
              "10-40 gates, lam = 0.003, 0.03 and 0.3 lam_max, heavy-tailed shifted features and a sine teacher "
              "(`_tiny_held_out`). `method=\"first_order\"` against Clarabel, best of four interleaved runs per program; "
              "a Clarabel failure counts with its time until the failure; `without`: the total of `method=\"first_order\"` without the rules above (for C-ReLU also without "
              "the full start of tiny programs, `FULL_START_FLOPS`), interleaved in the same runs.", "",
              "| grid | program | programs | first order faster | Clarabel faster | Clarabel > 2x faster | largest Clarabel speed-up "
              "| slowest solve (first order, Clarabel) s | total first order s | total Clarabel s | total without s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (grid, kind), res in tiny.items():
        fo, ip, wo = (np.array([r[j] for r in res]) for j in range(3))
        fails = sum(r[3] for r in res)
        lines.append(f"| {grid} | {kind} | {len(res)} | {int(np.sum(fo <= ip))} | {int(np.sum(fo > ip))} | "
                     f"{int(np.sum(fo > 2 * ip))} | {np.max(fo / ip):.1f}x | {fo.max():.3f}, {ip.max():.3f} | "
                     f"{fo.sum():.2f} | {ip.sum():.2f}{f' ({fails} failed)' if fails else ''} | {wo.sum():.2f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
