"""Scale benchmark: the first-order solvers on large C-GReLU and C-ReLU programs (time, memory, certificate).

One command::

    .venv/bin/python bench/bench_scale.py            # writes bench/RESULTS_scale.md

runs each cell in its own subprocess (so the peak resident memory of a cell is that cell's), one
after another (never two large cells at once):

* C-GReLU, d = 20, P = 200 sampled gates, n in {1e5, 1e6}, lam = 0.05 lam_max (and 0.01 lam_max);
* C-ReLU, d = 50, P = 1000 sampled gates, n in {1e4, 1e5}, lam = 0.05 lam_max;

on planted two-layer ReLU data (``X`` standard normal, ``y`` = a 5-neuron ReLU network of ``X``,
standardized). Each cell builds the program with the library's builder (``cx.c_grelu`` /
``cx.c_relu``) and solves it with ``cx.solve(f, method="auto", tol=1e-6)``; when ``auto`` picks
another method than the first-order family, the first-order solve is run as well in a further
subprocess. Recorded per cell: phase times (data + patterns, lam_max, building the CVXPY program,
solve), iterations, status, the solver's own certified relative duality gap (over all patterns),
the peak resident set size of the child (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: it
includes data generation and the CVXPY program) and the resident size just before the solve,
the achieved rate ``iterations x 4 n d' P / solve time`` (one forward and one adjoint masked
product per iteration, 2 flops per multiply-add; an upper bound on useful work for C-GReLU since
working sets make most products smaller), next to the dense GEMM rate of the machine measured
on the shape of the masked product. CVXPY + Clarabel is not run: its estimated size
(``Formulation.nnz_estimate``) is printed per cell.

Options: ``--cells name1,name2`` (a subset; names in the table), ``--timeout S`` (per cell,
default 720 s: a cell that runs longer is stopped and reported as not met), ``--out PATH``,
``--tol``, ``--threads`` (BLAS threads of the children, default 1: the machine is shared, and
two BLAS threads on a loaded 2-core machine made the many small products several times slower).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> (program, n, d, P, lam / lam_max)
CELLS: dict[str, tuple[str, int, int, int, float]] = {
    "G-n1e5-d20-P200-l0.05": ("c_grelu", 100_000, 20, 200, 0.05),
    "G-n1e6-d20-P200-l0.05": ("c_grelu", 1_000_000, 20, 200, 0.05),
    "G-n1e6-d20-P200-l0.01": ("c_grelu", 1_000_000, 20, 200, 0.01),
    "R-n1e4-d50-P1000-l0.05": ("c_relu", 10_000, 50, 1000, 0.05),
    "R-n1e5-d50-P1000-l0.05": ("c_relu", 100_000, 50, 1000, 0.05),
}
#: the targets: cell -> (seconds, GB)
TARGETS = {"G-n1e6-d20-P200-l0.05": (600.0, 12.0), "R-n1e5-d50-P1000-l0.05": (600.0, 12.0)}


def rss_gb() -> float:
    """Current resident set size (GB, from /proc/self/statm)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e9


def peak_gb() -> float:
    """Peak resident set size of this process so far (GB; Linux ru_maxrss is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def planted(n: int, d: int, P: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planted two-layer ReLU data and Gaussian gates (as ``bench_large_gated`` before it)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X @ rng.standard_normal((d, 5)), 0.0) @ rng.standard_normal(5)
    y = (y - y.mean()) / y.std()
    G = rng.standard_normal((d + 1, P))
    return X, y, G


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One cell, in this process; returns the measurements."""
    import convexnn as cx
    from convexnn.solvers import lam_max

    kind, n, d, P, ratio = spec["kind"], spec["n"], spec["d"], spec["P"], spec["ratio"]
    out: dict[str, Any] = {"cell": spec["cell"], "method_requested": spec["method"], "kind": kind}
    t = time.perf_counter()
    X, y, G = planted(n, d, P)
    pat = cx.Patterns.from_gates(X, G, bias=True)
    out["P"] = len(pat)
    out["t_data"] = time.perf_counter() - t
    t = time.perf_counter()
    lmax = lam_max(np.hstack([X, np.ones((n, 1))]), pat.masks, y)  # masked products over row blocks
    out["t_lam_max"] = time.perf_counter() - t
    lam = ratio * lmax
    build = cx.c_grelu if kind == "c_grelu" else cx.c_relu
    t = time.perf_counter()
    f = build(X, y, pat, lam)  # a program too large for CVXPY is deferred: the solvers work from the data
    out["deferred"] = bool(f.deferred)
    out["t_build"] = time.perf_counter() - t
    out["nnz_estimate"] = int(f.nnz_estimate())
    ip = next(s for s in cx.solvers.registered_solvers() if s.family == "interior")
    out["ip_estimate_s"] = float(ip.estimate_seconds(f))
    out["rss_before_solve_gb"] = rss_gb()
    out["peak_before_solve_gb"] = peak_gb()
    t = time.perf_counter()
    t_start = time.perf_counter()

    def monitor() -> None:  # progress lines (kept by the parent when a cell is stopped)
        while True:
            time.sleep(15.0)
            print(f"MONITOR {time.perf_counter() - t_start:.0f} s into the solve, RSS {rss_gb():.2f} GB, "
                  f"peak {peak_gb():.2f} GB", flush=True)

    threading.Thread(target=monitor, daemon=True).start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = cx.solve(f, method=spec["method"], tol=spec["tol"], verbose=True)
    out["t_solve"] = time.perf_counter() - t
    out["peak_gb"] = peak_gb()
    out["warnings"] = [f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught]
    info = sol.info
    out.update({
        "status": sol.status, "solver": sol.solver, "iterations": int(sol.iterations),
        "gap": float(info.get("gap", float("nan"))), "violation": float(info.get("violation", 0.0)),
        "auto_solver": info.get("auto_solver"), "auto_reason": info.get("auto_reason"),
        "method": info.get("method"), "stop_reason": info.get("stop_reason"),
        "working_set": info.get("working_set"), "polish": _plain(info.get("polish")),
        "n_active": int(sum(np.linalg.norm(w, axis=1).astype(bool).sum() for w in sol.weights.values())),
        "d_prime": d + 1,
    })
    return out


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if not isinstance(v, np.ndarray)}
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def gemm_rate(n: int, P: int, d: int, reps: int = 3) -> float:
    """Dense GEMM rate (GFlop/s) of numpy on the masked product's shape ``(n, P) x (P, d)``."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, P)), rng.standard_normal((P, d))
    A @ B
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        A @ B
        best = min(best, time.perf_counter() - t)
    return 2.0 * n * P * d / best / 1e9


def gemm_child(n: int, P: int, d: int, env: dict[str, str]) -> float:
    """:func:`gemm_rate` in a child process with the cells' BLAS threads."""
    out = subprocess.run([sys.executable, __file__, "--gemm", f"{n},{P},{d}"], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def run_cell(name: str, method: str, tol: float, timeout: float, env: dict[str, str]) -> dict[str, Any]:
    kind, n, d, P, ratio = CELLS[name]
    spec = {"cell": name, "kind": kind, "n": n, "d": d, "P": P, "ratio": ratio, "method": method, "tol": tol}
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        try:
            rc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], stdout=log,
                                stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env, cwd=ROOT).returncode
        except subprocess.TimeoutExpired:
            rc = None
        log.seek(0)
        text = log.read()
    wall = time.perf_counter() - t
    if rc is None:
        return {"cell": name, "method_requested": method, "status": f"stopped after {timeout:.0f} s",
                "wall": wall, "log": _tail(text)}
    lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    if rc != 0 or not lines:
        return {"cell": name, "method_requested": method, "status": f"crashed (rc {rc})",
                "wall": wall, "log": _tail(text)}
    out = json.loads(lines[-1][len("RESULT "):])
    out["wall"] = wall
    return out


def _tail(text: str) -> str:
    """The last progress lines of a child: solver lines (rounds, working sets) and memory."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    mon = [ln for ln in lines if ln.startswith("MONITOR")]
    other = [ln for ln in lines if not ln.startswith("MONITOR")]
    return "\n".join(other[-6:] + mon[-1:])


def fmt_row(r: dict[str, Any], rate: dict[tuple[int, int, int], float]) -> str:
    name = r["cell"]
    kind, n, d, P, ratio = CELLS[name]
    if "t_solve" not in r:
        return (f"| {name} | {r['method_requested']} | — | — | {r['wall']:.0f} | — | — | — | — | {r['status']} | — "
                f"| — | — | — | — |")
    dp = r["d_prime"]
    flops = r["iterations"] * 4.0 * n * dp * r["P"]
    gf = flops / r["t_solve"] / 1e9 if r["t_solve"] > 0 else float("nan")
    g = rate.get((n, r["P"], dp), float("nan"))
    ws = r.get("working_set") or (r.get("polish") or {}).get("working_set")
    gws = f"{gf * ws / r['P']:.1f}" if ws and kind == "c_grelu" else "—"
    method = r["solver"] + (f" (auto: {r['auto_solver']})" if r.get("auto_solver") else "")
    load = r.get("load", "—")
    return (f"| {name} | {r['method_requested']} | {method} | {r['t_data'] + r['t_lam_max']:.1f} | {r['wall']:.1f} "
            f"| {r['t_build']:.1f} | {r['t_solve']:.1f} | {r['iterations']} | {r['gap']:.1e} | {r['status']} "
            f"| {r['violation']:.0e} | {r['rss_before_solve_gb']:.2f} / {r['peak_gb']:.2f} "
            f"| {gf:.1f} / {gws} / {g:.1f} | {r['nnz_estimate']:.2e} ({r['ip_estimate_s']:.0f} s) | {load} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--timeout", type=float, default=720.0)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_scale.md"))
    ap.add_argument("--gemm", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--render", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    if args.gemm is not None:
        print(gemm_rate(*(int(x) for x in args.gemm.split(","))))
        return 0
    names = [c for c in args.cells.split(",") if c]
    unknown = [c for c in names if c not in CELLS]
    if unknown:
        print(f"unknown cells {unknown}; choose from {list(CELLS)}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    os.environ.update({k: env[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    start = datetime.datetime.now(datetime.timezone.utc)
    load0 = os.getloadavg()
    rate: dict[tuple[int, int, int], float] = {}
    rows: list[dict[str, Any]] = []
    print(f"START {start.isoformat()} {load0[0]:.2f}", flush=True)
    if args.render is not None:
        # rewrite the table from the log of an earlier run (its START line and cell lines)
        lines = Path(args.render).read_text().splitlines()
        st = next(ln for ln in lines if ln.startswith("START ")).split()
        start, load0 = datetime.datetime.fromisoformat(st[1]), (float(st[2]),) * 3
        rows = [json.loads(ln) for ln in lines if ln.startswith('{"cell"')]
        for r in rows:
            kind, n, d, P, ratio = CELLS[r["cell"]]
            if "P" in r and (n, r["P"], d + 1) not in rate:
                rate[(n, r["P"], d + 1)] = gemm_child(min(n, 100_000), r["P"], d + 1, env)
        total = sum(r["wall"] for r in rows)
        write(args, rows, rate, start, load0, total)
        return 0
    for name in names:
        kind, n, d, P, ratio = CELLS[name]
        load = os.getloadavg()[0]
        print(f"--- {name} (load {load:.2f})", flush=True)
        r = run_cell(name, "auto", args.tol, args.timeout, env)
        r["load"] = f"{load:.2f}"
        rows.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "log"}), flush=True)
        if "log" in r:
            print(r["log"], flush=True)
        if "t_solve" in r and r.get("method") not in (None, "first_order"):
            r2 = run_cell(name, "first_order", args.tol, args.timeout, env)
            r2["load"] = f"{os.getloadavg()[0]:.2f}"
            rows.append(r2)
            print(json.dumps({k: v for k, v in r2.items() if k != "log"}), flush=True)
        if "P" in r and (n, r["P"], d + 1) not in rate:
            rate[(n, r["P"], d + 1)] = gemm_child(min(n, 100_000), r["P"], d + 1, env)
    total = (datetime.datetime.now(datetime.timezone.utc) - start).total_seconds()
    write(args, rows, rate, start, load0, total)
    return 0


def write(args: argparse.Namespace, rows: list[dict[str, Any]], rate: dict[tuple[int, int, int], float],
          start: datetime.datetime, load0: tuple[float, float, float], total: float) -> None:
    cmd = f".venv/bin/python bench/bench_scale.py --threads {args.threads} --tol {args.tol:g}"
    if args.cells != ",".join(CELLS):
        cmd += f" --cells {args.cells}"
    lines = [
        "## Scale: C-GReLU n = 1e6 and C-ReLU n = 1e5 on the CPU",
        "",
        "Command:",
        "",
        "```",
        cmd,
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB RAM; "
        f"{start:%Y-%m-%d %H:%M} UTC; total {total:.0f} s; BLAS threads {args.threads}. The 2 cores were "
        f"**shared with other sessions** (load average at start {load0[0]:.2f}, per cell in the last column): "
        "times are noisy. No GPU.",
        "",
        "Columns: `data s` = data, patterns and lam_max; `wall s` = the whole child process (imports, data, "
        "build, solve); `build s` = the library's builder (CVXPY program); `solve s` = `cx.solve`; `gap` = the "
        "solver's certified relative duality gap over all patterns; `viol` = relative cone violation (C-ReLU); "
        "`RSS GB` = resident size before the solve / peak of the child (the peak includes data, patterns and "
        "the CVXPY program); `GFlop/s` = iterations x 4 n d' P / solve time (all P: an upper bound, working "
        "sets make most products smaller; for C-ReLU the iterations are mostly interior-point iterations of "
        "the restricted solves, so this column is not a product rate there) / the same with the final working "
        "set in place of P (C-GReLU: R-FISTA's products run on the working set) / dense GEMM rate of numpy on "
        "`(min(n, 1e5), P) x (P, d')` with the cells' BLAS threads; "
        "`IP nnz` = `Formulation.nnz_estimate()` of the CVXPY program and the interior-point cost model's "
        "time (CVXPY + Clarabel is not run at these sizes).",
        "",
        "| cell | method asked | solver (auto choice) | data s | wall s | build s | solve s | iterations | gap | status "
        "| viol | RSS GB (before solve / peak) | GFlop/s (all P / final WS / GEMM) | IP nnz (est. time) | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [fmt_row(r, rate) for r in rows]
    lines.append("")
    for r in rows:
        notes = []
        if r.get("deferred"):
            notes.append("CVXPY program deferred by the builder (too large to build; never built by the first-order solve)")
        if r.get("auto_reason"):
            notes.append(f"auto: {r['auto_reason']}")
        if r.get("polish"):
            notes.append(f"polish: {r['polish']}")
        if r.get("stop_reason") and r.get("stop_reason") != "certified":
            notes.append(f"stop: {r['stop_reason']}")
        if r.get("warnings"):
            notes.append("warnings: " + "; ".join(r["warnings"]))
        if "log" in r:
            notes.append("last lines: " + r["log"][-900:].replace("\n", " / "))
        if notes:
            lines.append(f"- {r['cell']} ({r['method_requested']}): " + "; ".join(notes))
    lines.append("")
    for name, (secs, gb) in TARGETS.items():
        got = [r for r in rows if r["cell"] == name and r["method_requested"] == "auto"]
        if not got:
            continue
        r = got[0]
        ok = ("t_solve" in r and r["wall"] <= secs and r["peak_gb"] <= gb and r["status"] == "optimal"
              and r["gap"] <= args.tol)
        lines.append(f"- target {name}: < {secs:.0f} s, < {gb:.0f} GB, certified: **{'met' if ok else 'not met'}**"
                     + (f" (wall {r['wall']:.0f} s, peak {r['peak_gb']:.2f} GB, gap {r['gap']:.1e}, {r['status']})"
                        if "t_solve" in r else f" ({r['status']})"))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
