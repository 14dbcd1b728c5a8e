"""Held-out programs: ``convexnn.solve`` (``method="auto"``) against CVXPY + Clarabel on random
programs that no rule or threshold of the solvers was fitted on, in one process.

The matrix (``bench_matrix.py``) measures fixed cells; this benchmark draws programs from a wide
distribution with seeds chosen once for it, so its numbers say how the solvers generalize:

- ``small`` programs: n = 20-400 samples, d = 1-30 features, P = 5-150 gates;
- ``mid`` programs: n = 200-1500, d = 10-50, P = 50-200;

columns normal, Student t (2 degrees of freedom), uniform, small integers, binary and normal mixed,
of scales spread over seven decades, duplicated rows, a constant column, or of rank 2; squared
(scalar or two outputs), logistic or Huber loss (threshold 0.1-10, targets 1e-2 to 1e3 in size);
bias on for 80%; lam from 1e-4 to 0.9 lam_max (small) or 1e-3 to 0.3 lam_max (mid); C-ReLU
(certified to 1e-6) or C-GReLU (1e-8). Clarabel runs with tolerances 1e-9 and a 60 s limit, and not
above 1.2e7 estimated nonzeros.

A third group, ``stress``, holds one family that the first-order paths find hard: logistic C-GReLU on
110 samples whose 10 columns spread over seven decades, 100 gates, ``lam = 5e-4 lam_max`` (nearly
every group active, more variables than samples); ``method="auto"`` hands the programs its
first-order path cannot certify to Clarabel (``AUTO_RESCUE_SECONDS``), so the ``method`` column shows
``interior`` for them.

Each row checks the certificate against Clarabel: ``bound ok`` means the certified lower bound
``value - gap_abs`` is at most Clarabel's optimal value (1e-7 relative). A solve faster than 0.5 s
is timed as in the matrix (median of 3 or 5 runs, both methods alike).

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_heldout.py [--small 60] [--mid 12] [--stress 20] [--seed 20000]
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import convexnn as cx  # noqa: E402
from convexnn.errors import ConvexNNError  # noqa: E402
from convexnn.solvers import lam_max  # noqa: E402

from bench_matrix import median_if_short  # noqa: E402

OUT = ROOT / "bench" / "RESULTS_heldout.md"
CMD = "OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_heldout.py"
#: Clarabel is not run above this many estimated nonzeros (as in the matrix)
IP_MAX_NNZ = 1.2e7
IP_TIME_LIMIT = 60.0
SIZES = {"small": ((20, 400), (1, 30), (5, 150), (-4.0, -0.05)),
         "mid": ((200, 1500), (10, 50), (50, 200), (-3.0, -0.5))}
COLUMNS = ["normal", "t", "uniform", "int", "mixed", "scaled", "dup", "const", "lowrank"]


def columns(rng: np.random.Generator, kind: str, n: int, d: int) -> np.ndarray:
    """Data of one of the :data:`COLUMNS` kinds."""
    if kind == "normal":
        return rng.standard_normal((n, d))
    if kind == "t":
        return rng.standard_t(2, (n, d))
    if kind == "uniform":
        return rng.uniform(-1, 3, (n, d))
    if kind == "int":
        return rng.integers(0, 6, (n, d)).astype(float)
    if kind == "mixed":
        return np.column_stack([rng.standard_normal(n) if j % 2 else rng.integers(0, 2, n)
                                for j in range(d)]).astype(float)
    if kind == "scaled":
        return rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-3, 4, d)
    if kind == "const":
        return np.column_stack([rng.standard_normal((n, d)), np.full(n, 3.0)])
    if kind == "lowrank":
        return rng.standard_normal((n, 2)) @ rng.standard_normal((2, d + 2))
    return np.repeat(rng.standard_normal((max(2, n // 4), d)), 4, axis=0)[:n]  # "dup"


def program(seed: int, size: str):
    """One random program: ``(formulation, description)``."""
    rng = np.random.default_rng(seed)
    (n0, n1), (d0, d1), (p0, p1), (f0, f1) = SIZES[size]
    n, d, P = int(rng.integers(n0, n1)), int(rng.integers(d0, d1)), int(rng.integers(p0, p1))
    kind = str(rng.choice(COLUMNS))
    X = columns(rng, kind, n, d)
    n, d = X.shape
    loss = str(rng.choice(["squared", "logistic", "huber", "two outputs"], p=[0.4, 0.25, 0.2, 0.15]))
    z = X @ rng.standard_normal(d)
    z = np.maximum(z / (np.linalg.norm(z) / np.sqrt(n) + 1e-12), 0.0) + 0.3 * rng.standard_normal(n)
    if loss == "logistic":
        y = np.where(z > np.median(z), 1.0, -1.0)
    elif loss == "two outputs":
        y = np.column_stack([z, rng.standard_normal(n)]) * 10.0 ** rng.uniform(-2, 2)
    else:
        y = z * 10.0 ** rng.uniform(-2, 3)
    bias = bool(rng.random() < 0.8)
    prog = str(rng.choice(["c_relu", "c_grelu"], p=[0.6, 0.4]))
    frac = float(10.0 ** rng.uniform(f0, f1))
    delta = float(10.0 ** rng.uniform(-1, 1))
    L = cx.HuberLoss(delta) if loss == "huber" else ("logistic" if loss == "logistic" else "squared")
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + int(bias), P)), bias=bias)
    Xa = np.hstack([X, np.ones((n, 1))]) if bias else X
    lam = frac * lam_max(Xa, pat.masks, y if y.ndim == 1 else y[:, 0], L)
    f = getattr(cx, prog)(X, y, pat, lam, loss=L, bias=bias)
    meta = dict(seed=seed, size=size, prog=prog, loss=loss if loss != "huber" else f"huber {delta:.2g}", n=n,
                d=d + int(bias), P=len(pat), kind=kind, frac=frac)
    return f, meta


def stress_program(seed: int):
    """One program of the ``stress`` group: ``(formulation, description)``."""
    rng = np.random.default_rng(seed)
    n, d, P, frac = 110, 10, 100, 5e-4
    X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-3, 4, d)
    z = np.maximum(X @ rng.standard_normal(d) / 1e3, 0.0) + 0.3 * rng.standard_normal(n)
    y = np.where(z > np.median(z), 1.0, -1.0)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    lam = frac * lam_max(np.hstack([X, np.ones((n, 1))]), pat.masks, y, "logistic")
    f = cx.c_grelu(X, y, pat, lam, loss="logistic")
    return f, dict(seed=seed, size="stress", prog="c_grelu", loss="logistic", n=n, d=d + 1, P=len(pat),
                   kind="scaled", frac=frac)


def solve(f, tol: float) -> dict:
    def once():
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = cx.solve(f, tol=tol)
        return sol, time.perf_counter() - t

    try:
        sol, t = median_if_short(once)
    except ConvexNNError as exc:
        return dict(t=float("nan"), status=f"error: {type(exc).__name__}", gap=float("nan"), lower=float("nan"),
                    value=float("nan"), method="—")
    gap_abs = sol.info.get("gap_abs")
    lower = sol.value - max(gap_abs, 0.0) if gap_abs is not None else float("nan")
    gap = sol.info.get("gap")
    gap = max(gap) if isinstance(gap, list) else gap
    return dict(t=t, status=sol.status, gap=float(gap), lower=float(lower), value=float(sol.value),
                method=str(sol.info.get("method", sol.solver)))


def clarabel(f) -> dict:
    if f.nnz_estimate() > IP_MAX_NNZ:
        return dict(t=float("nan"), status=f"skipped: {f.nnz_estimate():.2g} nonzeros", value=float("nan"))

    def once():
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = f.solve(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9,
                          time_limit=IP_TIME_LIMIT, max_nnz=None)
        return sol, time.perf_counter() - t

    try:
        sol, t = median_if_short(once)
    except Exception as exc:  # noqa: BLE001  a failure or the time limit is marked in the table
        return dict(t=float("nan"), status=f"failed ({type(exc).__name__})", value=float("nan"))
    return dict(t=t, status=sol.status, value=float(sol.value))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=60)
    ap.add_argument("--mid", type=int, default=12)
    ap.add_argument("--stress", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20000)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    start = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    seeds = ([(args.seed + i, "small") for i in range(args.small)]
             + [(args.seed + 10_000 + i, "mid") for i in range(args.mid)]
             + [(args.seed + 20_000 + i, "stress") for i in range(args.stress)])
    for seed, size in seeds:
        f, meta = stress_program(seed) if size == "stress" else program(seed, size)
        mine = solve(f, 1e-6 if meta["prog"] == "c_relu" else 1e-8)
        ref = clarabel(f)
        rows.append((meta, mine, ref))
        print(seed, size, meta["prog"], meta["loss"], f"convexnn {mine['t']:.3f} s {mine['status']}",
              f"clarabel {ref['t']:.3f} s {ref['status']}", flush=True)
    write(rows, Path(args.out), start, args)


def _gm(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def _bound_ok(mine: dict, ref: dict) -> str:
    if not (math.isfinite(ref["value"]) and ref["status"] in ("optimal", "optimal_inaccurate")):
        return "—"
    if not math.isfinite(mine["lower"]):
        return "no bound"
    return "yes" if mine["lower"] <= ref["value"] + 1e-7 * max(1.0, abs(ref["value"])) else "NO"


def write(rows: list, out: Path, start: datetime.datetime, args) -> None:
    lines = ["## Held-out programs: `method=\"auto\"` against Clarabel", "",
             "Command:", "", "```", f"{CMD} --small {args.small} --mid {args.mid} --stress {args.stress} --seed {args.seed}",
             "```", "",
             f"Machine: {platform.machine()}, Python {platform.python_version()}; {start:%Y-%m-%d %H:%M} UTC; "
             f"{len(rows)} programs (small: seeds {args.seed}-{args.seed + args.small - 1}, mid: seeds "
             f"{args.seed + 10_000}-{args.seed + 10_000 + args.mid - 1}, stress: seeds {args.seed + 20_000}-"
             f"{args.seed + 20_000 + args.stress - 1}), drawn once for this benchmark and not used "
             "to fit any rule (the distribution is in the script's docstring). `convexnn s`: `convexnn.solve(f)` "
             "with its defaults (C-ReLU tol 1e-6, C-GReLU 1e-8); `gap`: its certified relative gap; Clarabel "
             "through CVXPY, tolerances 1e-9, 60 s limit; `x Clarabel` = Clarabel time / convexnn time; `bound ok`: "
             "the certified lower bound is at most Clarabel's value (1e-7 relative).", "",
             "| seed | size | prog | loss | n | d' | P | columns | lam/lam_max | method | convexnn s | status | gap | "
             "Clarabel s | Clarabel status | x Clarabel | bound ok |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for meta, mine, ref in rows:
        ratio = ref["t"] / mine["t"] if math.isfinite(ref["t"]) and math.isfinite(mine["t"]) else float("nan")
        lines.append(f"| {meta['seed']} | {meta['size']} | {meta['prog']} | {meta['loss']} | {meta['n']} | {meta['d']} | "
                     f"{meta['P']} | {meta['kind']} | {meta['frac']:.1e} | {mine['method']} | {mine['t']:.3f} | "
                     f"{mine['status']} | {mine['gap']:.1e} | {ref['t']:.3f} | {ref['status']} | "
                     + (f"{ratio:.1f}" if math.isfinite(ratio) else "—") + f" | {_bound_ok(mine, ref)} |")
    lines += ["", "Summary (computed from the table):", ""]
    for size in ("small", "mid", "stress"):
        for prog in ("c_relu", "c_grelu"):
            sel = [r for r in rows if r[0]["size"] == size and r[0]["prog"] == prog]
            if not sel:
                continue
            timed = [r for r in sel if math.isfinite(r[2]["t"]) and math.isfinite(r[1]["t"])]
            ratios = [r[2]["t"] / r[1]["t"] for r in timed]
            slower = [r for r in timed if r[1]["t"] > r[2]["t"]]
            lines.append(
                f"- {size} {prog}: {len(sel)} programs, certified {sum(r[1]['status'] == 'optimal' for r in sel)} "
                f"({sum(r[1]['method'] == 'interior' for r in sel)} by Clarabel's point); "
                f"Clarabel solved {len(timed)}"
                + (f", Clarabel/convexnn geometric mean {_gm(ratios):.1f}x, min {min(ratios):.2f}x, "
                   f"max {max(ratios):.0f}x; slower than Clarabel on {len(slower)}"
                   + (f" (at most {max(r[1]['t'] / r[2]['t'] for r in slower):.2f}x)" if slower else "")
                   if ratios else "") + ".")
    bad = [r[0]["seed"] for r in rows if _bound_ok(r[1], r[2]) == "NO"]
    lines.append(f"- certified lower bounds above Clarabel's value: {bad if bad else 'none'}.")
    lines.append(f"- not certified: {[r[0]['seed'] for r in rows if r[1]['status'] != 'optimal'] or 'none'}.")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
