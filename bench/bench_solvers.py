"""Side-by-side benchmark of the first-order solvers.

One command::

    .venv/bin/python bench/bench_solvers.py            # writes bench/RESULTS_solvers.md

compares, on the same data, patterns, ``lam`` and objective scaling
(``0.5*||r||^2 + lam * sum ||u_i||``, peers rescaled to it, see ``bench/peers/run_peers.py``):

* convexnn first-order (``convexnn.solve(f, method="first_order")``: R-FISTA / augmented Lagrangian),
* CVXPY + Clarabel (``f.solve()``), also the *reference*: a tight Clarabel solve,
* pyscnn 0.0.10 (R-FISTA for gated, AL for ReLU) and adelie (group lasso) -- run in the separate
  virtual environment ``.venv-peers`` (created by ``bench/peers/setup_peers.sh`` when missing).

Columns: wall time (s), relative suboptimality ``(F(w) - F_ref)/|F_ref|`` where ``F`` is the
convexnn objective of the returned weights (negative: better than the reference), relative cone
violation (C-ReLU), and the speedup of convexnn over each row. Where Clarabel is too slow
(the synthetic n=20000 instance) the reference is the best gap-certified value.

Options: ``--quick`` (small instances only, a smoke run), ``--no-peers``, ``--out PATH``,
``--relu-diabetes`` (only the C-ReLU diabetes rows; write them with ``--out`` elsewhere and
splice them into ``RESULTS_solvers.md``), ``--gated-diabetes`` (the same for the C-GReLU diabetes
rows, peers included), ``--gated-synthetic`` (only the C-GReLU synthetic n=20000 row, peers
included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import convexnn as cx  # noqa: E402
from convexnn.solvers import lam_max  # noqa: E402

PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
PEER_TIMEOUT = 150  # seconds per peer task
RELU_MAX_ITER = {100: 30000, 400: 8000}  # AL iteration budgets (the certificate lags, see RESULTS)


# ----------------------------------------------------------------------------- helpers
def objective(kind: str, Xa, y, M, lam, w) -> tuple[float, float]:
    """convexnn objective of weights ``w`` and relative cone violation (0 for gated)."""
    if kind == "c_grelu":
        r = np.sum(M * (Xa @ w.T), axis=1) - y
        return 0.5 * float(r @ r) + lam * float(np.linalg.norm(w, axis=1).sum()), 0.0
    V, W = w
    r = np.sum(M * (Xa @ (V - W).T), axis=1) - y
    val = 0.5 * float(r @ r) + lam * float(np.linalg.norm(V, axis=1).sum() + np.linalg.norm(W, axis=1).sum())
    S = 2.0 * M - 1.0
    Cv, Cw = S * (Xa @ V.T), S * (Xa @ W.T)
    viol = max(0.0, -Cv.min(), -Cw.min())
    scale = max(np.abs(Cv).max(), np.abs(Cw).max())
    return val, (viol / scale if scale > 0 else 0.0)


def ensure_peers(log: list[str]) -> bool:
    if PEERS_PY.exists():
        return True
    print("creating .venv-peers (pyscnn==0.0.10, adelie) ...", flush=True)
    res = subprocess.run(["bash", str(ROOT / "bench" / "peers" / "setup_peers.sh")], capture_output=True, text=True)
    log.append(res.stdout[-2000:])
    if res.returncode != 0 or not PEERS_PY.exists():
        log.append("peer setup failed: " + res.stderr[-2000:])
        return False
    return True


def run_peer(task: dict, inst_path: str, timeout: float) -> tuple[dict, np.ndarray | None]:
    """Run one peer task in .venv-peers; returns (record, weights or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks.json"
        out = Path(tmp) / "out.npz"
        tasks.write_text(json.dumps([task]))
        env = dict(os.environ)
        try:
            res = subprocess.run([str(PEERS_PY), str(ROOT / "bench" / "peers" / "run_peers.py"), inst_path,
                                  str(tasks), str(out)], capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timeout > {timeout:.0f} s", "time": None}, None
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            return {"ok": False, "error": (res.stderr.strip().splitlines() or ["no output"])[-1][:200],
                    "time": None}, None
        rec = json.loads(lines[-1])
        w = np.load(out)[task["name"]] if rec.get("ok") and out.exists() else None
        return rec, w


def make_instance(name: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    if name.startswith("diabetes"):
        X, y = cx.load_dataset("diabetes")
    else:
        n = int(name.split("n=")[1].split(",")[0])
        d = int(name.split("d=")[1].split(",")[0])
        X = rng.standard_normal((n, d))
        w1 = rng.standard_normal((d, 5))
        y = np.maximum(X @ w1, 0.0) @ rng.standard_normal(5) + 0.1 * rng.standard_normal(n)
        y = (y - y.mean()) / y.std()
    return X, y


# ----------------------------------------------------------------------------- one instance
def bench_instance(label: str, X, y, P: int, frac: float, kinds: list[str], *, clarabel: bool, peers_ok: bool,
                   peer_tasks: dict[str, list[dict]], rows: list[dict], seed: int = 0) -> None:
    n, d = X.shape
    rng = np.random.default_rng(seed)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    Xa = np.hstack([X, np.ones((n, 1))])
    M = np.asarray(pat.masks, dtype=float)
    lmax = lam_max(Xa, pat.masks, y)
    lam = frac * lmax
    inst_path = tempfile.mktemp(suffix=".npz")
    np.savez(inst_path, Xa=Xa, y=y, masks=pat.masks, gates=pat.gates, lam=lam)
    for kind in kinds:
        f = getattr(cx, kind)(X, y, pat, lam)
        tag = f"{label} P={len(pat)} lam={frac}*lam_max {kind}"
        print(f"== {tag}", flush=True)
        entries: list[dict] = []
        ref = None
        if clarabel:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = f.solve(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
            wall = time.perf_counter() - t0
            w = s.weights["U"] if kind == "c_grelu" else np.stack([s.weights["V"], s.weights["W"]])
            ref = objective(kind, Xa, y, M, lam, w)[0]
            entries.append({"solver": "CVXPY+Clarabel (tight, reference)", "time": wall, "w": w,
                            "note": f"{s.status}; solver {s.solve_time:.2f} s + compile {s.compile_time:.2f} s"})
        tol = 1e-8 if kind == "c_grelu" else 1e-6
        max_iter = 20000 if kind == "c_grelu" else RELU_MAX_ITER.get(len(pat), 10000)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = cx.solve(f, method="first_order", tol=tol, viol_tol=1e-8, max_iter=max_iter)
        wall = time.perf_counter() - t0
        w = sol.weights["U"] if kind == "c_grelu" else np.stack([sol.weights["V"], sol.weights["W"]])
        name = sol.solver
        note = f"{sol.status}, certified gap {sol.info['gap']:.1e}, {sol.iterations} it"
        if "polish" in sol.info and kind == "c_relu":  # active-set polish + global certificate (default)
            pi = sol.info["polish"]
            name = "active-set polish" + (" -> AL fallback" if pi["fallback_al"] else "")
            note += f", {pi['rounds']} rounds, final working set {pi['working_set']} of {2 * len(pat)} blocks"
        elif "polish" in sol.info:  # C-GReLU: R-FISTA to a loose gap, Newton polish on the support
            pi = sol.info["polish"]
            if pi["used"] and not pi["fallback_fista"]:
                name = "fista + Newton polish"
                note += (f" ({sol.iterations - pi['newton_iterations']} R-FISTA + {pi['newton_iterations']} Newton), "
                         f"{pi['rounds']} rounds, support {pi['working_set']} of {len(pat)} groups")
            elif pi["used"]:
                note += f", polish: {pi['reason']} (R-FISTA finished)"
        entries.insert(0, {"solver": f"convexnn {name} (numpy, tol {tol:g})", "time": wall, "w": w,
                           "note": note, "cx": True, "gap_abs": sol.info["gap_abs"]})
        if ref is None:
            ref = sol.value - max(sol.info["gap_abs"], 0.0)  # certified lower bound
        # uncertified time to the issue's target, read off the solver's history against the reference
        target = 1e-8 if kind == "c_grelu" else 1e-6
        hit = [h for h in sol.info["history"]
               if abs(h["objective"] - ref) <= target * abs(ref) and h.get("violation", 0.0) <= 1e-8]
        if hit and clarabel:
            entries.insert(1, {"solver": f"convexnn {name}: first check at rel-subopt <= {target:g}"
                               + (" and violation <= 1e-8" if kind == "c_relu" else ""),
                               "time": hit[0]["time"], "w": None, "subopt": (hit[0]["objective"] - ref) / abs(ref),
                               "viol": hit[0].get("violation", 0.0),
                               "note": f"iteration {int(hit[0]['iter'])}, read from info['history'] (not certified)"})
        if peers_ok:
            for task in peer_tasks.get(kind, []):
                rec, wp = run_peer(task, inst_path, PEER_TIMEOUT)
                label_p = task["label"]
                if wp is None:
                    entries.append({"solver": label_p, "time": None, "w": None, "note": rec.get("error", "failed")})
                else:
                    entries.append({"solver": label_p, "time": rec["time"], "w": wp, "note": ""})
        else:
            for task in peer_tasks.get(kind, []):
                entries.append({"solver": task["label"], "time": None, "w": None, "note": "peer venv unavailable"})
        cx_time = entries[0]["time"]
        for e in entries:
            if e["w"] is not None:
                val, viol = objective(kind, Xa, y, M, lam, e["w"])
                e["subopt"] = (val - ref) / abs(ref)
                e["viol"] = viol
            speed = (e["time"] / cx_time) if e.get("time") and not e.get("cx") and "first check" not in e["solver"] else None
            rows.append({"instance": tag, **{k: v for k, v in e.items() if k != "w"}, "speedup": speed})
            print("   ", rows[-1], flush=True)
    os.unlink(inst_path)


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def write_results(rows: list[dict], out: Path, meta: dict, scaling: list[dict]) -> None:
    lines = ["# First-order solvers: benchmark results", "",
             "Command (one run, peers included):", "", "```", meta["command"], "```", "",
             f"Machine: {meta['machine']}. Date: {meta['date']}. Total wall time {meta['total']:.0f} s.",
             "No GPU was available in this session: GPU numbers are not recorded.", "",
             "Objective of every row: `0.5*||r||^2 + lam*sum||u_i||` (convexnn scaling) evaluated in float64 on the "
             "returned weights; relative suboptimality against the tight Clarabel solve (negative = better than "
             "Clarabel's point), or against the certified lower bound `P - gap` where no Clarabel run exists. "
             "Violation: relative cone violation (C-ReLU). Speedup: row time / convexnn time.", "",
             "| instance | solver | wall time (s) | rel. subopt | violation | speedup of convexnn | notes |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['instance']} | {r['solver']} | {fmt(r.get('time'), '.3f')} | "
                     f"{fmt(r.get('subopt'), '.1e')} | {fmt(r.get('viol') if 'c_relu' in r['instance'] else None, '.1e')} | "
                     f"{fmt(r.get('speedup'), '.1f')} | {r.get('note', '')} |")
    if scaling:
        lines += ["", "## Scaling in n (C-GReLU, d=10, P=100, lam=0.05*lam_max)", "",
                  "| n | convexnn fista (s) | rel. gap | adelie (s) | adelie rel. subopt vs convexnn |",
                  "|---:|---:|---:|---:|---:|"]
        for s in scaling:
            lines.append(f"| {s['n']} | {s['cx']:.3f} | {s['gap']:.1e} | {fmt(s.get('adelie'), '.3f')} | "
                         f"{fmt(s.get('adelie_subopt'), '.1e')} |")
    lines += ["", meta.get("notes", "")]
    out.write_text("\n".join(lines) + "\n")


def scaling_curve(ns: list[int], peers_ok: bool) -> list[dict]:
    out = []
    for n in ns:
        X, y = make_instance(f"synthetic n={n}, d=10,", seed=1)
        rng = np.random.default_rng(1)
        pat = cx.Patterns.from_gates(X, rng.standard_normal((11, 100)), bias=True)
        Xa = np.hstack([X, np.ones((n, 1))])
        lam = 0.05 * lam_max(Xa, pat.masks, y)
        f = cx.c_grelu(X, y, pat, lam)
        t0 = time.perf_counter()
        sol = cx.solve(f, method="first_order", tol=1e-8)
        rec = {"n": n, "cx": time.perf_counter() - t0, "gap": sol.info["gap"]}
        if peers_ok:
            inst_path = tempfile.mktemp(suffix=".npz")
            np.savez(inst_path, Xa=Xa, y=y, masks=pat.masks, gates=pat.gates, lam=lam)
            r, w = run_peer({"name": "a", "peer": "adelie", "kind": "c_grelu", "tol": 1e-10}, inst_path, PEER_TIMEOUT)
            os.unlink(inst_path)
            if w is not None:
                val, _ = objective("c_grelu", Xa, y, np.asarray(pat.masks, float), lam, w)
                rec["adelie"] = r["time"]
                rec["adelie_subopt"] = (val - sol.value) / abs(sol.value)
        print("   scaling", rec, flush=True)
        out.append(rec)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small instances only (smoke run)")
    ap.add_argument("--no-peers", action="store_true", help="skip pyscnn / adelie")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_solvers.md"))
    ap.add_argument("--relu-diabetes", action="store_true",
                    help="only the C-ReLU diabetes rows (P=100 at 0.05*lam_max, P=400 at 0.02*lam_max), with "
                         "the tight Clarabel reference and pyscnn AL on P=100 as in the full run")
    ap.add_argument("--gated-diabetes", action="store_true",
                    help="only the C-GReLU diabetes rows (P=100 at 0.05*lam_max, P=400 at 0.02*lam_max), with "
                         "the tight Clarabel reference and the peers as in the full run")
    ap.add_argument("--gated-synthetic", action="store_true",
                    help="only the C-GReLU synthetic n=20000, d=50, P=1000 row (peers as in the full run)")
    args = ap.parse_args()
    t_start = time.perf_counter()
    log: list[str] = []
    peers_ok = (not args.no_peers) and ensure_peers(log)
    g_tasks = [{"name": "scnn", "peer": "pyscnn", "kind": "c_grelu", "tol": 1e-10, "max_iters": 10000,
                "label": "pyscnn R-FISTA (tol 1e-10)"},
               {"name": "adelie", "peer": "adelie", "kind": "c_grelu", "tol": 1e-10,
                "label": "adelie grpnet (tol 1e-10)"}]
    r_tasks = [{"name": "scnn", "peer": "pyscnn", "kind": "c_relu", "label": "pyscnn AL (defaults)"}]
    tasks = {"c_grelu": g_tasks, "c_relu": r_tasks}
    rows: list[dict] = []
    X, y = make_instance("diabetes")
    if args.relu_diabetes:
        bench_instance("diabetes", X, y, 100, 0.05, ["c_relu"], clarabel=True, peers_ok=peers_ok,
                       peer_tasks=tasks, rows=rows)
        bench_instance("diabetes", X, y, 400, 0.02, ["c_relu"], clarabel=True, peers_ok=peers_ok,
                       peer_tasks={"c_relu": []}, rows=rows)
        scaling = []
    elif args.gated_diabetes or args.gated_synthetic:
        if args.gated_diabetes:
            bench_instance("diabetes", X, y, 100, 0.05, ["c_grelu"], clarabel=True, peers_ok=peers_ok,
                           peer_tasks={"c_grelu": g_tasks}, rows=rows)
            bench_instance("diabetes", X, y, 400, 0.02, ["c_grelu"], clarabel=True, peers_ok=peers_ok,
                           peer_tasks={"c_grelu": g_tasks}, rows=rows)
        if args.gated_synthetic:
            Xs, ys = make_instance("synthetic n=20000, d=50,", seed=2)
            bench_instance("synthetic n=20000 d=50", Xs, ys, 1000, 0.05, ["c_grelu"], clarabel=False,
                           peers_ok=peers_ok, peer_tasks={"c_grelu": g_tasks}, rows=rows)
        scaling = []
    elif args.quick:
        bench_instance("diabetes", X, y, 50, 0.05, ["c_grelu", "c_relu"], clarabel=True, peers_ok=peers_ok,
                       peer_tasks=tasks, rows=rows)
        scaling = scaling_curve([1000, 4000], peers_ok)
    else:
        bench_instance("diabetes", X, y, 100, 0.05, ["c_grelu", "c_relu"], clarabel=True, peers_ok=peers_ok,
                       peer_tasks=tasks, rows=rows)
        bench_instance("diabetes", X, y, 400, 0.02, ["c_grelu", "c_relu"], clarabel=True, peers_ok=peers_ok,
                       peer_tasks={"c_grelu": g_tasks, "c_relu": []}, rows=rows)
        Xs, ys = make_instance("synthetic n=20000, d=50,", seed=2)
        bench_instance("synthetic n=20000 d=50", Xs, ys, 1000, 0.05, ["c_grelu"], clarabel=False,
                       peers_ok=peers_ok, peer_tasks={"c_grelu": g_tasks}, rows=rows)
        scaling = scaling_curve([1000, 4000, 16000, 32000], peers_ok)
    total = time.perf_counter() - t_start
    cmd = "OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_solvers.py" + (" --quick" if args.quick else "") \
        + (" --relu-diabetes" if args.relu_diabetes else "") + (" --gated-diabetes" if args.gated_diabetes else "") \
        + (" --gated-synthetic" if args.gated_synthetic else "") + (" --no-peers" if args.no_peers else "") \
        + (f" --out {args.out}" if args.out != str(ROOT / "bench" / "RESULTS_solvers.md") else "")
    meta = {"command": cmd, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, numpy {np.__version__}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "total": total,
            "notes": "\n".join(log)}
    write_results(rows, Path(args.out), meta, scaling)
    print(f"wrote {args.out} ({total:.0f} s)")


if __name__ == "__main__":
    main()
