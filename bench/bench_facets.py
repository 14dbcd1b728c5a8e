"""C-ReLU active set with the chambers' facet rows against all cone rows, in one process.

The restricted interior-point solves of the C-ReLU polish start from each chamber's facet rows
(``convexnn/arrangements/facets.py``; data of rank at most 6) instead of all ``n`` rows. This
benchmark runs ``method="first_order"`` with and without them (``facets=False`` is the same code
with ``solve_relu_active_set(..., facets=False)``), interleaved, best of ``--repeat`` runs per program, on

* a grid of synthetic and real low-dimensional programs (n = 150-10,000, d' = 3-6), and
* held-out programs with typed columns (integer, binary, heavy-tailed, Unix timestamps), n = 200-1500,
  d = 1-7, both losses, lam from 1e-4 to 0.3 lam_max, drawn from seeds no rule was set on.

Both runs of a program are certified by the same global certificate, so the table also checks that
the optimum does not move (``|F_facets - F_all| / |F_all|``).

Usage::

    .venv/bin/python bench/bench_facets.py [--repeat 2] [--held-out 40]
"""

from __future__ import annotations

import argparse
import functools
import datetime
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
from convexnn.arrangements.facets import ChamberFacets  # noqa: E402
from convexnn.solvers import lam_max  # noqa: E402

#: (name, data, n, d, P, lam / lam_max, loss)
GRID = [
    ("syn-n500-d3", "synthetic", 500, 3, 100, 1e-2, "squared"),
    ("syn-n500-d5", "synthetic", 500, 5, 200, 1e-3, "squared"),
    ("syn-n2000-d5", "synthetic", 2000, 5, 300, 1e-2, "squared"),
    ("syn-n2000-d2", "synthetic", 2000, 2, 100, 1e-3, "squared"),
    ("syn-n5000-d4", "synthetic", 5000, 4, 200, 1e-2, "squared"),
    ("syn-n1000-d5-logi", "synthetic", 1000, 5, 100, 1e-2, "logistic"),
    ("syn-n10000-d3", "synthetic", 10000, 3, 100, 1e-2, "squared"),
    ("syn-n100-d4-dense", "synthetic", 100, 4, 80, 1e-4, "squared"),
    ("diabetes-4col", "diabetes", None, 4, 100, 1e-2, "squared"),
    ("breast-cancer-5col", "breast_cancer", None, 5, 100, 1e-2, "squared"),
    ("wine-3col-logi", "wine", None, 3, 100, 1e-2, "logistic"),
]


def grid_program(data: str, n: int | None, d: int, P: int, frac: float, loss: str):
    if data == "synthetic":
        rng = np.random.default_rng(1)
        X = rng.standard_normal((n, d))
        y = np.sin(X @ rng.standard_normal(d)) + 0.1 * rng.standard_normal(n)
        y = (y - y.mean()) / y.std()
    else:
        X, y = cx.load_dataset(data)
        X = X[:, :d]
        y = np.asarray(y, dtype=float)
        y = (y - y.mean()) / y.std() if loss == "squared" else np.where(y == y.max(), 1.0, -1.0)
    if loss == "logistic" and data == "synthetic":
        y = np.where(y + 0.3 > 0, 1.0, -1.0)
    rng = np.random.default_rng(0)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((X.shape[1] + 1, P)), bias=True)
    Xa = np.hstack([X, np.ones((len(X), 1))])
    return cx.c_relu(X, y, pat, frac * lam_max(Xa, pat.masks, y, loss), loss=loss), Xa, pat


def held_out_program(seed: int):
    """Typed columns: Gaussian of any scale, Student t(2), integers 0-5, binary, Unix timestamps."""
    rng = np.random.default_rng(424242 + seed)
    n = int(rng.choice([200, 400, 800, 1500]))
    d = int(rng.integers(1, 8))
    cols = []
    for _ in range(d):
        kind = rng.choice(["gauss", "t2", "int", "binary", "ts"])
        if kind == "gauss":
            c = rng.standard_normal(n) * 10 ** rng.uniform(-3, 3)
        elif kind == "t2":
            c = rng.standard_t(2, n)
        elif kind == "int":
            c = rng.integers(0, 6, n).astype(float)
        elif kind == "binary":
            c = rng.integers(0, 2, n).astype(float)
        else:
            c = 1.7e9 + np.sort(rng.uniform(0, 3e7, n))
        cols.append(c)
    X = np.column_stack(cols)
    loss = "logistic" if rng.random() < 0.3 else "squared"
    z = np.tanh((X - X.mean(0)) / (X.std(0) + 1e-12) @ rng.standard_normal(d))
    y = (np.where(z + 0.3 * rng.standard_normal(n) > 0, 1.0, -1.0) if loss == "logistic"
         else z * 10 ** rng.uniform(-3, 3) + 0.1 * rng.standard_normal(n))
    P = int(rng.choice([50, 100, 200]))
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    Xa = np.hstack([X, np.ones((n, 1))])
    frac = 10.0 ** rng.uniform(-4, -0.5)
    return cx.c_relu(X, y, pat, frac * lam_max(Xa, pat.masks, y, loss), loss=loss), (n, d, len(pat), frac, loss)


def solve(f, facets: bool):
    # the driver's own call, with solve_relu_active_set(..., facets=False) for the run without
    real = first_order.solve_relu_active_set
    if not facets:
        first_order.solve_relu_active_set = functools.partial(real, facets=False)
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            t = time.perf_counter()
            sol = cx.solve(f, method="first_order", tol=1e-6)
            t = time.perf_counter() - t
    finally:
        first_order.solve_relu_active_set = real
    ok = sol.status == "optimal" and not any(issubclass(c.category, cx.ConvergenceWarning) for c in w)
    return t, ok, sol


def compare(f, repeat: int):
    best = {True: None, False: None}
    for _ in range(repeat):
        for facets in (False, True):
            out = solve(f, facets)
            if best[facets] is None or out[0] < best[facets][0]:
                best[facets] = out
    return best


def facet_counts(Xa: np.ndarray, pat) -> str:
    cf = ChamberFacets(Xa, np.asarray(pat.gates))
    if not cf.available:
        return f"none (rank {cf.rank})"
    masks = np.asarray(pat.masks)
    counts = [len(o[0]) for i in range(min(20, masks.shape[1])) if (o := cf.of(i, masks[:, i])) is not None]
    if not counts:
        return "declined"
    return f"{np.mean(counts):.0f} (max {max(counts)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--held-out", type=int, default=40)
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_facets.md"))
    args = ap.parse_args()
    t_start = time.perf_counter()
    warm, _, _ = grid_program("synthetic", 60, 2, 10, 0.1, "squared")
    solve(warm, True)
    solve(warm, False)
    rows = []
    for name, data, n, d, P, frac, loss in GRID:
        f, Xa, pat = grid_program(data, n, d, P, frac, loss)
        best = compare(f, args.repeat)
        (t1, ok1, s1), (t0, ok0, s0) = best[True], best[False]
        rows.append((name, Xa.shape[0], Xa.shape[1], len(pat), frac, loss, facet_counts(Xa, pat), t1, ok1, s1, t0, ok0, s0))
        print(f"{name}: facets {t1:.3f} s ({ok1}), all rows {t0:.3f} s ({ok0})", flush=True)
    held = []
    for seed in range(100, 100 + args.held_out):
        f, meta = held_out_program(seed)
        best = compare(f, args.repeat)
        held.append((seed, meta, best))
    write(args, rows, held, time.perf_counter() - t_start)


def write(args, rows, held, total: float) -> None:
    lines = ["# C-ReLU polish: the chambers' facet rows against all cone rows", "", "Command:", "", "```",
             f".venv/bin/python bench/bench_facets.py --repeat {args.repeat} --held-out {args.held_out}", "```", "",
             f"Machine: {platform.machine()}, 2 cores, Python {platform.python_version()}; "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; total {total:.0f} s. "
             "`method=\"first_order\"`, `tol=1e-6`, with the facet rows (as shipped) and with all rows (the same code, "
             "`facets=False`), interleaved, best of the repeats. `cert.`: status `optimal` without a "
             "`ConvergenceWarning`. `facets / chamber`: mean (max) facet rows of the first 20 chambers, against the `n` "
             "rows each block has without them.", "",
             "| program | n | d' | P | lam / lam_max | loss | facets / chamber | facets s (cert.) | all rows s (cert.) "
             "| speed-up | iterations: screening + interior point (facets, all) | |F_f - F_a| / |F_a| |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, n, d, P, frac, loss, fc, t1, ok1, s1, t0, ok0, s0 in rows:
        dv = abs(s1.value - s0.value) / max(abs(s0.value), 1e-300)
        lines.append(f"| {name} | {n} | {d} | {P} | {frac:g} | {loss} | {fc} | {t1:.3f} ({'yes' if ok1 else 'NO'}) | "
                     f"{t0:.3f} ({'yes' if ok0 else 'NO'}) | {t0 / t1:.2f}x | {s1.iterations}, {s0.iterations} | {dv:.1e} |")
    t1 = np.array([b[True][0] for _, _, b in held])
    t0 = np.array([b[False][0] for _, _, b in held])
    ok1 = sum(b[True][1] for _, _, b in held)
    ok0 = sum(b[False][1] for _, _, b in held)
    dv = max(abs(b[True][2].value - b[False][2].value) / max(abs(b[False][2].value), 1e-300) for _, _, b in held)
    slow = [(s, m, b) for s, m, b in held if b[True][0] > 1.5 * b[False][0] + 0.005]
    lines += ["", "## Held-out programs with typed columns", "",
              f"{len(held)} programs (seeds {held[0][0]}-{held[-1][0]} of `held_out_program`: integer, binary, heavy-tailed "
              "and timestamp columns, n = 200-1500, d = 1-7, both losses, lam = 1e-4 to 0.3 lam_max).", "",
              "| certified (facets, all rows) | total facets s | total all rows s | facets > 1.5x faster | "
              "facets > 1.5x slower (+5 ms) | largest |F_f - F_a| / |F_a| |",
              "|---|---|---|---|---|---|",
              f"| {ok1}, {ok0} of {len(held)} | {t1.sum():.2f} | {t0.sum():.2f} | {int(np.sum(t1 < t0 / 1.5))} | "
              f"{len(slow)} | {dv:.1e} |"]
    for s, (n, d, P, frac, loss), b in slow:
        lines.append(f"\nSlower with facets: seed {s} (n = {n}, d = {d}, P = {P}, lam = {frac:.1e} lam_max, {loss}): "
                     f"{b[True][0]:.3f} s against {b[False][0]:.3f} s.")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
