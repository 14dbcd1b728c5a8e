"""The Huber loss: the default solver with the interior point's split form against the loss's own
Hessian and CVXPY + Clarabel, on random held-out programs, in one process.

The block interior point (``convexnn/solvers/block_ipm.py``) solves the Huber loss in its exact split
form, the squared loss plus an l1-penalized outlier per sample (``Loss.outlier_split``), instead of
stepping along the loss's Hessian, which is zero in its linear tails. This benchmark runs
``convexnn.solve(f)`` (``method="auto"``) both ways (``hessian``: ``HuberLoss.outlier_split`` switched
off, the same code otherwise) and CVXPY + Clarabel (tolerances 1e-9), interleaved, on programs
drawn at random: n = 40-400, d = 1-11, P = 10-120 sampled patterns, columns normal, Student t, uniform,
integer, binary, of mixed scales or duplicated rows, targets 1e-2 to 1e3 times the threshold
(``HuberLoss(delta)``, delta in {0.5, 1, 2}), lam from 3e-4 to 0.5 lam_max, both programs (C-ReLU to
a certified 1e-6, C-GReLU to 1e-8).

Each solve reports its certified gap; the table checks that no certified lower bound exceeds
Clarabel's optimal value (``bound <= ref`` up to 1e-7 relative).

Usage::

    .venv/bin/python bench/bench_huber.py [--programs 60] [--seed 5000]
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
from convexnn.formulations.huber import HuberLoss  # noqa: E402
from convexnn.solvers import lam_max  # noqa: E402

from bench_heldout import columns  # noqa: E402

OUT = ROOT / "bench" / "RESULTS_huber.md"
CMD = "OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_huber.py"


def program(seed: int):
    """One random Huber program: ``(formulation, description)``."""
    rng = np.random.default_rng(seed)
    n, d, P = int(rng.integers(40, 400)), int(rng.integers(1, 12)), int(rng.integers(10, 120))
    kind = str(rng.choice(["normal", "t", "uniform", "int", "mixed", "scaled", "dup"]))
    X = columns(rng, kind, n, d)
    n = X.shape[0]
    w = rng.standard_normal(d)
    z = X @ w
    z = np.maximum(z / (np.linalg.norm(z) / np.sqrt(n) + 1e-12), 0.0) + 0.3 * rng.standard_t(2, n)
    delta = float(rng.choice([0.5, 1.0, 2.0]))
    y = z * 10.0 ** rng.uniform(-2, 3)
    bias = bool(rng.random() < 0.8)
    prog = str(rng.choice(["c_relu", "c_grelu"]))
    frac = 10.0 ** rng.uniform(-3.5, -0.3)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + int(bias), P)), bias=bias)
    L = HuberLoss(delta)
    Xa = np.hstack([X, np.ones((n, 1))]) if bias else X
    lam = frac * lam_max(Xa, pat.masks, y, L)
    f = getattr(cx, prog)(X, y, pat, lam, loss=L, bias=bias)
    return f, dict(seed=seed, n=n, d=d, P=len(pat), kind=kind, delta=delta, prog=prog, frac=frac)


def solve(f, tol: float, split: bool) -> dict:
    real = HuberLoss.outlier_split
    if not split:
        HuberLoss.outlier_split = lambda self: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            sol = cx.solve(f, tol=tol)
            t = time.perf_counter() - t
    finally:
        HuberLoss.outlier_split = real
    return dict(t=t, status=sol.status, gap=float(sol.info["gap"]), value=float(sol.value),
                lower=float(sol.value - max(sol.info["gap_abs"], 0.0)))


def clarabel(f) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        try:
            r = f.solve(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9, time_limit=120,
                        max_nnz=None)
        except Exception as exc:  # noqa: BLE001  (solver failure: recorded)
            return dict(t=time.perf_counter() - t, status=f"failed ({type(exc).__name__})", value=float("nan"))
        return dict(t=time.perf_counter() - t, status=r.status, value=float(r.value))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    start = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for s in range(args.seed, args.seed + args.programs):
        f, meta = program(s)
        tol = 1e-6 if meta["prog"] == "c_relu" else 1e-8
        new, old, ref = solve(f, tol, True), solve(f, tol, False), clarabel(f)
        rows.append((meta, new, old, ref))
        print(meta["seed"], meta["prog"], f"split {new['t']:.3f} s {new['status']}",
              f"hessian {old['t']:.3f} s {old['status']}", f"clarabel {ref['t']:.3f} s {ref['status']}", flush=True)
    write(rows, Path(args.out), start, args)


def _gm(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def write(rows: list, out: Path, start: datetime.datetime, args) -> None:
    lines = ["## The Huber loss: the interior point's split form", "",
             "Command:", "", "```", f"{CMD} --programs {args.programs} --seed {args.seed}", "```", "",
             f"Machine: {platform.machine()}, Python {platform.python_version()}; "
             f"{start:%Y-%m-%d %H:%M} UTC, {len(rows)} programs (seeds {args.seed}-{args.seed + args.programs - 1}, "
             "drawn after the method was written; see the script's docstring for the distribution). `split`: "
             "`convexnn.solve(f)` as shipped; `hessian`: the same with `HuberLoss.outlier_split` switched off "
             "(the interior points step along the loss's own Hessian); Clarabel through CVXPY, tolerances 1e-9. "
             "Times in seconds; `gap`: certified relative gap; `bound ok`: the certified lower bound is at most "
             "Clarabel's value (1e-7 relative).", "",
             "| seed | prog | n | d | P | columns | delta | lam/lam_max | split s | status | gap | hessian s | "
             "status | gap | Clarabel s | Clarabel/split | bound ok |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    bad = []
    for meta, new, old, ref in rows:
        ok = "—"
        if math.isfinite(ref["value"]):
            ok = "yes" if new["lower"] <= ref["value"] + 1e-7 * max(1.0, abs(ref["value"])) else "NO"
            if ok == "NO":
                bad.append(meta["seed"])
        lines.append(f"| {meta['seed']} | {meta['prog']} | {meta['n']} | {meta['d']} | {meta['P']} | {meta['kind']} | "
                     f"{meta['delta']:g} | {meta['frac']:.1e} | {new['t']:.3f} | {new['status']} | {new['gap']:.1e} | "
                     f"{old['t']:.3f} | {old['status']} | {old['gap']:.1e} | {ref['t']:.3f} | "
                     f"{ref['t'] / new['t']:.2f} | {ok} |")
    lines += ["", "Summary (computed from the table):", ""]
    for prog, tol in (("c_relu", 1e-6), ("c_grelu", 1e-8)):
        sel = [r for r in rows if r[0]["prog"] == prog]
        if not sel:
            continue
        tn, to, ti = (sum(r[k]["t"] for r in sel) for k in (1, 2, 3))
        lines.append(
            f"- {prog} ({len(sel)} programs, tol {tol:g}): total {tn:.1f} s split, {to:.1f} s hessian, {ti:.1f} s "
            f"Clarabel; Clarabel/split geometric mean {_gm([r[3]['t'] / r[1]['t'] for r in sel]):.2f}x "
            f"(hessian {_gm([r[3]['t'] / r[2]['t'] for r in sel]):.2f}x); certified {sum(r[1]['status'] == 'optimal' for r in sel)} "
            f"split, {sum(r[2]['status'] == 'optimal' for r in sel)} hessian; slower than Clarabel "
            f"{sum(r[1]['t'] > r[3]['t'] for r in sel)} split (at most {max(r[1]['t'] / r[3]['t'] for r in sel):.2f}x), "
            f"{sum(r[2]['t'] > r[3]['t'] for r in sel)} hessian (at most {max(r[2]['t'] / r[3]['t'] for r in sel):.2f}x).")
    lines.append(f"- certified lower bounds above Clarabel's value: {bad if bad else 'none'}.")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
