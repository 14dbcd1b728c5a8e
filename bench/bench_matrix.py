"""Benchmark matrix: convexnn first order vs CVXPY+Clarabel (and adelie / skglm for C-GReLU) over
real and synthetic instances, sizes, ``lam`` and losses.

One command::

    bash bench/peers/setup_peers.sh                   # creates .venv-peers (once, for the peers)
    .venv/bin/python bench/bench_matrix.py            # writes bench/RESULTS_matrix.md (~10 min)

convexnn and CVXPY + Clarabel run in this process, in the project's environment (``make install``:
numpy 2). adelie pins ``numpy<2``, so when adelie and skglm are not importable here they run in
``.venv-peers`` (one worker process for the whole run, started with this script's ``--peer-server``;
each cell's data, masks and ``lam`` are handed over in an ``.npz`` file and the worker times the
solve itself, as this process times its own). Run in ``.venv-peers`` directly, everything is
imported in one process (numpy 1.x; per-call overheads of numpy differ by 15-20% on the smallest
programs). Without ``.venv-peers`` the peers' columns say that the module is missing.

Every cell uses the same data, sampled patterns (``P`` Gaussian gates, bias on), ``lam`` (a
fraction of :func:`convexnn.solvers.lam_max`) and objective ``loss + lam * sum ||u_i||`` for every
solver. Per cell and program (C-GReLU, C-ReLU):

* convexnn ``solve(f, method="first_order")`` (tol 1e-8 for C-GReLU; 1e-6 and cone violation
  1e-8 for C-ReLU): wall time, certified relative gap, status;
* convexnn ``solve(f, method="auto")``: wall time and the method it picked;
* CVXPY + Clarabel with tight tolerances (1e-9), the reference, with a time limit per solve
  (``--cap``, default 60 s; cells that hit it are marked and use the certified lower bound of
  convexnn as the reference instead);
* C-GReLU, squared loss: adelie ``grpnet`` and skglm ``GroupLasso`` on the explicit design
  ``[D_1 Xa, ..., D_P Xa]`` (``lam / n`` in their scaling), where it fits in memory.

Columns: time, relative suboptimality ``(F(w) - F_ref) / |F_ref|`` of the returned weights,
relative cone violation (C-ReLU), ratios, and the achieved flop rate of the first-order solve next
to the machine's measured dense GEMM rate: C-GReLU counted as ``4 n d' P`` flops per R-FISTA
iteration (one forward and one adjoint pass), C-ReLU as the active-set polish's own count
(``info["polish"]["flops"]``: its screening's R-FISTA iterations as above, the cost model of every
restricted interior-point iteration, ``block_ipm.iteration_flops``, and two passes over the data and
masks per scan).

Options: ``--quick`` (three small cells), ``--cap SECONDS``, ``--out PATH``, ``--cells a,b``,
``--programs G|R|GR`` (only those programs of the selected cells), ``--restricted-clarabel`` (C-ReLU:
also run the active-set polish with its restricted programs solved by Clarabel instead of the
block interior point, in the notes: the solver before/after on the same data in one run),
``--gated-start`` (C-ReLU: also run the polish with its initial working set from the C-GReLU
support, ``convexnn.solvers.active_set.gated_start``, in the notes; the time of the extra
C-GReLU solve that supplies the support is subtracted, as the polish's own screening solve gives
the same point). C-GReLU cells with
``P d' <= convexnn.solvers.gated_ipm.MAX_VARS`` also run ``solve(f, method="gated_ipm")`` (the
block interior point over all groups; in the notes).
"""

from __future__ import annotations

import argparse
import datetime
import os
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
from convexnn.solvers.gated_ipm import MAX_VARS  # noqa: E402

#: (name, data, n, d, P, lam / lam_max, loss, programs, peers)
CELLS = [
    ("diab-P100-l0.05", "diabetes", None, None, 100, 0.05, "squared", "GR", True),
    ("diab-P100-l1e-3", "diabetes", None, None, 100, 1e-3, "squared", "GR", True),
    ("diab-P400-l0.02", "diabetes", None, None, 400, 0.02, "squared", "G", True),
    ("bc-P300-l1e-3", "breast_cancer", None, None, 300, 1e-3, "squared", "G", True),
    ("bc-P100-l0.1-logi", "breast_cancer", None, None, 100, 0.1, "logistic", "GR", False),
    ("wine-P100-l0.01-logi", "wine", None, None, 100, 0.01, "logistic", "GR", False),
    ("wine-P200-l0.5", "wine", None, None, 200, 0.5, "squared", "GR", True),
    ("syn-n100-d2-P100-l0.1", "synthetic", 100, 2, 100, 0.1, "squared", "GR", True),
    ("syn-n1000-d50-P100-l0.1", "synthetic", 1000, 50, 100, 0.1, "squared", "G", True),
    ("syn-n500-d20-P100-l0.01", "synthetic", 500, 20, 100, 0.01, "squared", "R", False),
    ("syn-n300-d5-P2000-l0.05", "synthetic", 300, 5, 2000, 0.05, "squared", "G", True),
    ("syn-n20000-d10-P200-l0.05", "synthetic", 20000, 10, 200, 0.05, "squared", "G", True),
    ("syn-n100000-d20-P100-l0.05", "synthetic", 100000, 20, 100, 0.05, "squared", "G", False),
    # instances added after the cost models and hand-over rule were fitted on the cells above (a check of how
    # they generalize; the later hand-over and screening constants were chosen with these cells in view)
    ("iris-P100-l1e-2", "iris", None, None, 100, 1e-2, "squared", "GR", True),
    ("iris-P50-l0.1-logi", "iris", None, None, 50, 0.1, "logistic", "GR", False),
    ("wine-P300-l1e-3", "wine", None, None, 300, 1e-3, "squared", "GR", True),
    ("bc-P100-l1e-2", "breast_cancer", None, None, 100, 1e-2, "squared", "R", False),
    ("syn-n2000-d5-P300-l0.01", "synthetic", 2000, 5, 300, 0.01, "squared", "G", True),
    ("syn-n200-d30-P200-l1e-3", "synthetic", 200, 30, 200, 1e-3, "squared", "GR", True),
    # small weight decay on small programs (degenerate: nearly parallel groups, dense supports), added
    # with the cycling rule of the C-GReLU polish and the full-program rule of the C-ReLU active set
    ("syn-n100-d4-P80-l1e-4", "synthetic", 100, 4, 80, 1e-4, "squared", "GR", True),
    ("syn-n150-d3-P100-l3e-4", "synthetic", 150, 3, 100, 3e-4, "squared", "GR", True),
    # a real data set no rule was fitted on (scikit-learn digits: n = 1797, 61 non-constant pixels)
    ("digits-P100-l0.05", "digits", None, None, 100, 0.05, "squared", "GR", True),
    ("digits-P100-l0.01-logi", "digits", None, None, 100, 0.01, "logistic", "G", False),
]
#: the cells added after the solvers' cost models and hand-over rule were fitted on the first ones: the
#: summary reports the two groups separately
ADDED = {"iris-P100-l1e-2", "iris-P50-l0.1-logi", "wine-P300-l1e-3", "bc-P100-l1e-2", "syn-n2000-d5-P300-l0.01",
            "syn-n200-d30-P200-l1e-3", "syn-n100-d4-P80-l1e-4", "syn-n150-d3-P100-l3e-4",
            "digits-P100-l0.05", "digits-P100-l0.01-logi"}
#: Clarabel is not run above this many nonzeros (compile time and memory; the time limit covers the solve only)
IP_MAX_NNZ = 1.2e7
QUICK = ["diab-P100-l0.05", "syn-n100-d2-P100-l0.1", "wine-P200-l0.5"]


def make_data(data: str, n: int | None, d: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    if data == "digits":  # scikit-learn's 8x8 digits: standardized pixels, label "0" against the rest
        from sklearn.datasets import load_digits

        X, lab = load_digits(return_X_y=True)
        X = np.asarray(X, dtype=np.float64)
        X = X[:, X.std(axis=0) > 0]
        return (X - X.mean(axis=0)) / X.std(axis=0), np.where(lab == 0, 1.0, -1.0)
    if data != "synthetic":
        return cx.load_dataset(data)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W1 = rng.standard_normal((d, 5))
    y = np.maximum(X @ W1, 0.0) @ rng.standard_normal(5) + 0.1 * rng.standard_normal(n)
    return X, (y - y.mean()) / y.std()


def objective(kind: str, loss: str, Xa, y, M, lam, w) -> tuple[float, float]:
    """Objective of weights ``w`` (``U`` or ``(V, W)``) in the convexnn scaling, and the relative cone violation."""
    if kind == "c_grelu":
        z = np.sum(M * (Xa @ w.T), axis=1)
        reg = float(np.linalg.norm(w, axis=1).sum())
        viol = 0.0
    else:
        V, W = w
        z = np.sum(M * (Xa @ (V - W).T), axis=1)
        reg = float(np.linalg.norm(V, axis=1).sum() + np.linalg.norm(W, axis=1).sum())
        S = 2.0 * M - 1.0
        Cv, Cw = S * (Xa @ V.T), S * (Xa @ W.T)
        scale = max(np.abs(Cv).max(), np.abs(Cw).max())
        viol = max(0.0, -Cv.min(), -Cw.min()) / scale if scale > 0 else 0.0
    fit = 0.5 * float((z - y) @ (z - y)) if loss == "squared" else float(np.sum(np.logaddexp(0.0, -y * z)))
    return fit + lam * reg, viol


def weights_of(kind: str, sol) -> np.ndarray:
    return sol.weights["U"] if kind == "c_grelu" else np.stack([sol.weights["V"], sol.weights["W"]])


#: a call faster than this is repeated (``REPEATS`` runs in all) and its median time reported: a single
#: millisecond-scale timing is at the mercy of one scheduler hiccup on a shared machine
SHORT = 0.05
REPEATS = 5
#: a call faster than this (and not faster than ``SHORT``) runs ``MEDIUM_REPEATS`` times, median reported
#: (one run of a 0.09 s solve once took 0.145 s in a full run of the matrix)
MEDIUM = 0.5
MEDIUM_REPEATS = 3


def median_if_short(call):
    """``call() -> (out, seconds)``; the first output and the median time of ``REPEATS`` runs when the first
    run took less than ``SHORT`` seconds (``MEDIUM_REPEATS`` runs below ``MEDIUM`` seconds)."""
    out, t = call()
    if t < SHORT:
        t = float(np.median([t] + [call()[1] for _ in range(REPEATS - 1)]))
    elif t < MEDIUM:
        t = float(np.median([t] + [call()[1] for _ in range(MEDIUM_REPEATS - 1)]))
    return out, t


def timed(fn):
    def once():
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn()
        return (out, [str(c.message)[:160] for c in caught]), time.perf_counter() - t0

    (out, caught), t = median_if_short(once)
    return out, t, caught


def run_adelie(Xa, y, M, lam, tol=1e-10):
    import adelie as ad

    n, d = Xa.shape
    P = M.shape[1]
    t0 = time.perf_counter()
    mat = ad.matrix.convex_relu(np.asfortranarray(Xa), np.asfortranarray(M.astype(bool)), gated=True)
    state = ad.grpnet(X=mat, glm=ad.glm.gaussian(np.asarray(y, dtype=np.float64)), groups=np.arange(0, P * d, d),
                      penalty=np.ones(P), lmda_path=np.array([lam / n]), intercept=False, early_exit=False,
                      tol=tol, adev_tol=1.0, ddev_tol=0.0, progress_bar=False, max_iters=100000)
    wall = time.perf_counter() - t0
    beta = state.betas[-1]
    beta = np.asarray(beta.todense()).ravel() if hasattr(beta, "todense") else np.asarray(beta).ravel()
    return beta.reshape(P, d), wall


def run_skglm(Xa, y, M, lam, tol=1e-10):
    from skglm import GroupLasso

    n, d = Xa.shape
    P = M.shape[1]
    t0 = time.perf_counter()
    A = (M[:, :, None] * Xa[:, None, :]).reshape(n, P * d)  # [D_1 Xa, ..., D_P Xa]
    est = GroupLasso(groups=d, alpha=lam / n, tol=tol, fit_intercept=False, max_iter=200, max_epochs=100000)
    est.fit(A, y)
    wall = time.perf_counter() - t0
    return np.asarray(est.coef_).reshape(P, d), wall


PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"


class PeerServer:
    """The peers (adelie, skglm) in ``.venv-peers``: one worker process (``--peer-server``) for the run."""

    def __init__(self) -> None:
        import subprocess
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="convexnn-peers-"))
        self.proc = subprocess.Popen([str(PEERS_PY), str(Path(__file__).resolve()), "--peer-server"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        self.calls = 0

    def run(self, peer: str, Xa, y, M, lam) -> tuple[np.ndarray, float]:
        import json

        self.calls += 1
        path = self.dir / f"in{self.calls}.npz"
        np.savez(path, Xa=Xa, y=y, M=M, lam=lam)
        self.proc.stdin.write(f"{peer} {path}\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        path.unlink()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        w = np.load(reply["out"])
        Path(reply["out"]).unlink()
        return w, float(reply["t"])


def serve_peers() -> None:
    """``--peer-server``: run the peers on the ``.npz`` files named on stdin (``<peer> <path>`` per
    line), answering one JSON line each: the output file of the weights and the time (median rule of
    :func:`median_if_short`, as for every method), or the error."""
    import json

    fns = {"adelie": run_adelie, "skglm": run_skglm}
    for line in sys.stdin:
        peer, path = line.split()
        try:
            z = np.load(path)
            w, t = median_if_short(lambda: fns[peer](z["Xa"], z["y"], z["M"], float(z["lam"])))
            out = path.replace(".npz", "_w.npy")
            np.save(out, w)
            print(json.dumps({"out": out, "t": t}), flush=True)
        except Exception as exc:  # noqa: BLE001  reported to the main process, marked in the table
            print(json.dumps({"error": f"{type(exc).__name__}: {str(exc)[:80]}"}), flush=True)


def peer_runner():
    """``(peer, Xa, y, M, lam) -> (weights, seconds)``: in this process when adelie and skglm import
    here, else through :class:`PeerServer` when ``.venv-peers`` exists, else None."""
    import importlib.util

    if importlib.util.find_spec("adelie") and importlib.util.find_spec("skglm"):
        fns = {"adelie": run_adelie, "skglm": run_skglm}
        return lambda peer, Xa, y, M, lam: median_if_short(lambda: fns[peer](Xa, y, M, lam))
    if PEERS_PY.exists():
        return PeerServer().run
    return None


def warm_up(peers=None) -> None:
    """One solve by every method of the table on a tiny instance before the first cell, so that no
    cell pays the one-time costs (lazy imports, first calls, the BLAS thread-pool scan)."""
    X, y = make_data("synthetic", 40, 2)
    pat = cx.Patterns.from_gates(X, np.random.default_rng(0).standard_normal((3, 8)), bias=True)
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    M = np.asarray(pat.masks, dtype=float)
    lam = 0.1 * lam_max(Xa, pat.masks, y, "squared")
    for kind in ("c_grelu", "c_relu"):
        f = getattr(cx, kind)(X, y, pat, lam)
        for method in ("first_order", "auto"):
            cx.solve(f, method=method, tol=1e-6)
        f.solve(solver="CLARABEL")
    for peer in ("adelie", "skglm"):
        try:
            if peers is not None:
                peers(peer, Xa, y, M, lam)
        except Exception:  # noqa: BLE001  a peer that is not installed is marked in the table
            pass


def gemm_rate() -> float:
    """Measured dense GEMM flop/s of this machine (numpy, the shape of one masked pass)."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((4000, 200)), rng.standard_normal((200, 50))
    A @ B
    t0 = time.perf_counter()
    for _ in range(20):
        A @ B
    return 20 * 2 * 4000 * 200 * 50 / (time.perf_counter() - t0)


def _solve_restricted_clarabel(f, tol):
    """``solve(f, method="first_order")`` with the C-ReLU polish's restricted programs solved by Clarabel."""
    import functools

    import convexnn.solvers.first_order as dispatch

    real = dispatch.solve_relu_active_set
    dispatch.solve_relu_active_set = functools.partial(real, restricted="clarabel")
    try:
        return cx.solve(f, method="first_order", tol=tol, viol_tol=1e-8)
    finally:
        dispatch.solve_relu_active_set = real


def _solve_gated_start(f, tol):
    """``solve(f, method="first_order")`` with the C-ReLU polish started from the support of the
    C-GReLU solution (``U_screen`` of :func:`convexnn.solvers.active_set.solve_relu_active_set`,
    :func:`~convexnn.solvers.active_set.gated_start`) besides the dual-candidate screening."""
    import convexnn.solvers.first_order as dispatch

    real = dispatch.solve_relu_active_set
    t0 = time.perf_counter()
    screen = cx.solve(cx.c_grelu(f.X, f.y, f.patterns, f.lam_value, loss=f.loss), method="gated_fista",
                      tol=dispatch.SCREEN_TOL)
    # the polish runs its own (identical) screening solve: this one's time is not counted
    _solve_gated_start.screen_time = time.perf_counter() - t0

    def with_start(*a, **k):
        k["U_screen"] = screen.weights["U"]
        return real(*a, **k)

    dispatch.solve_relu_active_set = with_start
    try:
        return cx.solve(f, method="first_order", tol=tol, viol_tol=1e-8)
    finally:
        dispatch.solve_relu_active_set = real


def run_cell(cell, cap: float, rows: list[dict], programs: str = "GR", restricted_clarabel: bool = False,
             gated_start: bool = False, peer_run=None) -> None:
    name, data, n, d, P, frac, loss, progs, peers = cell
    progs = "".join(p for p in progs if p in programs)
    X, y = make_data(data, n, d)
    n, d = X.shape
    rng = np.random.default_rng(0)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    Xa = np.hstack([X, np.ones((n, 1))])
    M = np.asarray(pat.masks, dtype=float)
    P = len(pat)
    lam = frac * lam_max(Xa, pat.masks, y, loss)
    for prog in progs:
        kind = "c_grelu" if prog == "G" else "c_relu"
        f = getattr(cx, kind)(X, y, pat, lam, loss=loss)
        tol = 1e-8 if kind == "c_grelu" else 1e-6
        row: dict = {"cell": name, "kind": kind, "n": n, "d": d + 1, "P": P, "frac": frac, "loss": loss}
        print(f"== {name} {kind} (n={n}, d'={d + 1}, P={P})", flush=True)
        sol, t_fo, warn = timed(lambda: cx.solve(f, method="first_order", tol=tol, viol_tol=1e-8))
        w_fo = weights_of(kind, sol)
        row.update(fo_time=t_fo, fo_status=sol.status, fo_gap=sol.info["gap"], fo_iters=sol.iterations,
                   fo_solver=sol.solver, fo_reason=sol.info.get("stop_reason", ""))
        pol = sol.info.get("polish") or {}
        row["fo_note"] = (f"{pol.get('reason', '')}, ws {pol.get('working_set', '')}, rounds {pol.get('rounds', '')}"
                          if pol else "")
        if kind == "c_grelu":
            newton = pol.get("newton_iterations", 0) if pol else 0
            row["flops"] = (sol.iterations - newton) * 4.0 * n * (d + 1) * P / t_fo
        elif np.isfinite(pol.get("flops", np.nan)):
            row["flops"] = pol["flops"] / t_fo
        if kind == "c_grelu" and P * (d + 1) <= MAX_VARS:
            # the block interior point over all groups (convexnn/solvers/gated_ipm.py), by name
            s_gi, t_gi, _ = timed(lambda: cx.solve(f, method="gated_ipm", tol=tol))
            row.update(gi_time=t_gi, gi_status=s_gi.status, gi_gap=s_gi.info["gap"], gi_iters=s_gi.iterations,
                       gi_weights=weights_of(kind, s_gi))
        if kind == "c_relu" and gated_start:
            s_os, t_os, _ = timed(lambda: _solve_gated_start(f, tol))
            t_os -= _solve_gated_start.screen_time
            pol_os = s_os.info.get("polish") or {}
            row.update(os_time=t_os, os_status=s_os.status, os_gap=s_os.info["gap"], os_rounds=pol_os.get("rounds"),
                       os_ws=pol_os.get("working_set"))
        if kind == "c_relu" and restricted_clarabel:
            s_rc, t_rc, _ = timed(lambda: _solve_restricted_clarabel(f, tol))
            row.update(rc_time=t_rc, rc_status=s_rc.status, rc_gap=s_rc.info["gap"],
                       rc_weights=weights_of(kind, s_rc))
        lower = sol.value - max(sol.info["gap_abs"], 0.0)
        # Clarabel, tight, capped
        ref = None
        nnz = f.nnz_estimate()
        try:
            if nnz > IP_MAX_NNZ:
                raise RuntimeError(f"skipped: {nnz:.2g} nonzeros")
            s_ip, t_ip, _ = timed(lambda: f.solve(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9,
                                                  tol_feas=1e-9, time_limit=cap, max_nnz=None))
            ref, viol_ip = objective(kind, loss, Xa, y, M, lam, weights_of(kind, s_ip))
            row.update(ip_time=t_ip, ip_status=s_ip.status, ip_viol=viol_ip)
        except (ConvexNNError, Exception) as exc:  # noqa: BLE001  time limit or failure: marked in the table
            row.update(ip_time=None, ip_status=(str(exc) if isinstance(exc, RuntimeError) else
                                                f"cap/failed ({type(exc).__name__})"))
        if ref is None or lower > ref:
            ref_src = "convexnn certified lower bound" if ref is None else "certified bound (above Clarabel)"
            ref = lower if ref is None else ref
        else:
            ref_src = "Clarabel"
        row["ref_src"] = ref_src
        val, viol = objective(kind, loss, Xa, y, M, lam, w_fo)
        row.update(fo_subopt=(val - ref) / abs(ref), fo_viol=viol)
        if "gi_weights" in row:
            v_gi, _ = objective(kind, loss, Xa, y, M, lam, row.pop("gi_weights"))
            row["gi_subopt"] = (v_gi - ref) / abs(ref)
        if "rc_weights" in row:
            v_rc, _ = objective(kind, loss, Xa, y, M, lam, row.pop("rc_weights"))
            row["rc_subopt"] = (v_rc - ref) / abs(ref)
        if row.get("ip_time"):
            val_ip, _ = objective(kind, loss, Xa, y, M, lam, weights_of(kind, s_ip))
            row["ip_subopt"] = (val_ip - ref) / abs(ref)
        s_auto, t_auto, _ = timed(lambda: cx.solve(f, method="auto", tol=tol, viol_tol=1e-8))
        row.update(auto_time=t_auto, auto_method=s_auto.info.get("method"), auto_reason=s_auto.info.get("auto_reason", ""))
        if kind == "c_grelu" and peers and loss == "squared" and n * P * (d + 1) <= 3e7:
            for peer in ("adelie", "skglm"):
                try:
                    if peer_run is None:
                        raise ModuleNotFoundError(f"No module named {peer!r} (and no .venv-peers)")
                    wp, tp = peer_run(peer, Xa, y, M, lam)
                    vp, _ = objective(kind, loss, Xa, y, M, lam, wp)
                    row[f"{peer}_time"], row[f"{peer}_subopt"] = tp, (vp - ref) / abs(ref)
                except Exception as exc:  # noqa: BLE001
                    row[f"{peer}_time"], row[f"{peer}_err"] = None, f"{type(exc).__name__}: {str(exc)[:80]}"
        print("   ", {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        rows.append(row)


def f3(v, spec=".3g"):
    return "—" if v is None else format(v, spec)


def write(rows: list[dict], out: Path, meta: dict) -> None:
    L = ["# Benchmark matrix: first-order solvers vs CVXPY+Clarabel, adelie, skglm", "",
         "Command:", "", "```", meta["command"], "```", "",
         f"Machine: {meta['machine']}; {meta['date']}; total {meta['total']:.0f} s; numpy {np.__version__}, "
         f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset (all cores)')}; load average at start "
         f"{meta['load']} (other processes on the machine make times noisy). Peers: {meta.get('peers', '?')}. "
         f"Measured dense GEMM rate (numpy, 4000x200x50): {meta['gemm'] / 1e9:.1f} GFlop/s. No GPU in this session.", "",
         "Reference: tight Clarabel (tolerances 1e-9, time limit "
         f"{meta['cap']:.0f} s per solve); where it hit the limit or failed, convexnn's certified lower bound. "
         "`subopt` = (F(w) - F_ref)/|F_ref| (negative: below the reference point). `x IP` = Clarabel time / convexnn "
         "time; `auto/best` = auto time / min(first-order, Clarabel) time. Flop rate: C-GReLU, R-FISTA iterations x "
         "4 n d' P / wall time (includes certificates, polish, screening); C-ReLU, the polish's flop count by its cost "
         "models (screening iterations x 4 n d' P, restricted interior-point iterations x `iteration_flops`, 4 n d' P per "
         "scan) / wall time. Every method ran once on a tiny instance before the "
         "first cell (`warm_up`: imports and first calls are not charged to a cell). A solve faster than "
         f"{SHORT:g} s is run {REPEATS} times, one faster than {MEDIUM:g} s {MEDIUM_REPEATS} times, and its median "
         "time is reported (every method alike).", "",
         "| cell | prog | n | d' | P | loss | convexnn FO s | cert. gap | subopt | viol | status | Clarabel s | IP subopt "
         "| x IP | auto s (method) | auto/best | adelie s (subopt) | skglm s (subopt) | GFlop/s | notes |",
         "|" + "---|" * 20]
    for r in rows:
        ip = r.get("ip_time")
        best = min(x for x in (r["fo_time"], ip) if x is not None)
        L.append(
            f"| {r['cell']} | {'G' if r['kind'] == 'c_grelu' else 'R'} | {r['n']} | {r['d']} | {r['P']} | {r['loss']} | "
            f"{r['fo_time']:.3f} | {r['fo_gap']:.1e} | {r['fo_subopt']:.1e} | "
            f"{f3(r['fo_viol'], '.0e') if r['kind'] == 'c_relu' else '—'} | {r['fo_status']} | "
            f"{f3(ip, '.2f') if ip else r.get('ip_status')} | {f3(r.get('ip_subopt'), '.1e')} | "
            f"{f3(ip / r['fo_time'] if ip else None, '.1f')} | {r['auto_time']:.2f} ({r['auto_method']}) | "
            f"{r['auto_time'] / best:.2f} | "
            f"{f3(r.get('adelie_time'), '.2f')} ({f3(r.get('adelie_subopt'), '.0e')}) | "
            f"{f3(r.get('skglm_time'), '.2f')} ({f3(r.get('skglm_subopt'), '.0e')}) | "
            f"{f3(r.get('flops', None) and r['flops'] / 1e9, '.2f')} | "
            f"{r['fo_solver']}; {r['fo_note']}; {r['fo_iters']} it; ref: {r['ref_src']}"
            + (f"; restricted by Clarabel: {r['rc_time']:.2f} s, {r['rc_status']}, gap {r['rc_gap']:.1e}, "
               f"subopt {r['rc_subopt']:.1e}" if 'rc_time' in r else "")
            + (f"; gated_ipm: {r['gi_time']:.3f} s, {r['gi_status']}, gap {r['gi_gap']:.1e}, subopt {r['gi_subopt']:.1e}, "
               f"{r['gi_iters']} it" if 'gi_time' in r else "")
            + (f"; gated-support start: {r['os_time']:.2f} s, {r['os_status']}, gap {r['os_gap']:.1e}, rounds {r['os_rounds']}, "
               f"ws {r['os_ws']}" if 'os_time' in r else "")
            + (f"; stop: {r['fo_reason']}" if r['fo_status'] != 'optimal' else "")
            + (f"; auto: {r['auto_reason']}" if r.get('auto_reason') else "") + " |")
    L += ["", meta.get("summary", "")]
    out.write_text("\n".join(L) + "\n")


def _below_20x(rows: list[dict], key: str) -> str:
    """The cells whose Clarabel time is less than 20 times ``row[key]``, with their ratios."""
    return ", ".join(f"{r['cell']} ({r['ip_time'] / r[key]:.1f}x)" for r in rows
                     if r["ip_time"] / r[key] < 20) or "none"


def summary(rows: list[dict]) -> str:
    out = ["## Summary against the targets (computed from the table above)", ""]
    for kind, tgt in (("c_grelu", 1e-8), ("c_relu", 1e-6)):
        rs = [r for r in rows if r["kind"] == kind and r.get("ip_time")]
        if not rs:
            continue
        ratios = np.array([r["ip_time"] / r["fo_time"] for r in rs])
        ok = [r["cell"] for r in rs if r["fo_subopt"] <= tgt and r["fo_status"] == "optimal"]
        out.append(f"- {kind}: Clarabel/first-order ratio over {len(rs)} cells with a Clarabel time: geometric mean "
                   f"{np.exp(np.mean(np.log(ratios))):.1f}x, min {ratios.min():.2f}x, max {ratios.max():.1f}x; "
                   f"certified and subopt <= {tgt:g} on {len(ok)}/{len(rs)}. Cells below 20x: "
                   + _below_20x(rs, "fo_time") + ".")
        for label, part in (("first", [r for r in rs if r["cell"] not in ADDED]),
                            ("added", [r for r in rs if r["cell"] in ADDED])):
            if part:
                rat = np.array([r["ip_time"] / r["fo_time"] for r in part])
                out.append(f"  - {label} cells ({len(part)}): geometric mean {np.exp(np.mean(np.log(rat))):.1f}x, "
                           f"min {rat.min():.2f}x")
        # the default path (method="auto": for C-GReLU it may take the block interior point)
        ra = np.array([r["ip_time"] / r["auto_time"] for r in rs])
        out.append(f"  - with `method=\"auto\"` (the default): geometric mean {np.exp(np.mean(np.log(ra))):.1f}x, "
                   f"min {ra.min():.2f}x; below 20x: " + _below_20x(rs, "auto_time") + ".")
    auto = [(r["cell"], r["kind"], r["auto_time"] / min(x for x in (r["fo_time"], r.get("ip_time")) if x))
            for r in rows]
    bad = [f"{c} {k} ({a:.2f})" for c, k, a in auto if a > 1.5]
    out.append(f"- auto within 1.5x of the faster method on {len(auto) - len(bad)}/{len(auto)} cells"
               + (f"; not on: {', '.join(bad)}" if bad else "") + ".")
    for peer in ("adelie", "skglm"):
        rs = [r for r in rows if r.get(f"{peer}_time")]
        if rs:
            out.append(f"- {peer}: {len(rs)} cells; {peer} time / convexnn time: "
                       + ", ".join(f"{r['cell']} {r[f'{peer}_time'] / r['fo_time']:.1f}x (subopt {r[f'{peer}_subopt']:.0e})"
                                   for r in rs) + ".")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cap", type=float, default=60.0, help="Clarabel time limit per solve (s)")
    ap.add_argument("--cells", default="", help="comma-separated cell names")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_matrix.md"))
    ap.add_argument("--programs", default="GR", help="programs of each cell to run: G, R or GR")
    ap.add_argument("--restricted-clarabel", action="store_true",
                    help="C-ReLU: also time the polish with Clarabel on the restricted programs")
    ap.add_argument("--gated-start", action="store_true",
                    help="C-ReLU: also time the polish started from the C-GReLU support (gated_start)")
    ap.add_argument("--peer-server", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_server:
        serve_peers()
        return
    names = QUICK if args.quick else ([c for c in args.cells.split(",") if c] or [c[0] for c in CELLS])
    t0 = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gemm = gemm_rate()
    peers = peer_runner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm_up(peers)
    rows: list[dict] = []
    for cell in CELLS:
        if cell[0] in names:
            run_cell(cell, args.cap, rows, args.programs, args.restricted_clarabel, args.gated_start, peers)
    meta = {"command": "python bench/bench_matrix.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "peers": ("not installed" if peers is None else
                      "adelie and skglm in .venv-peers (numpy<2), one worker process, same data"
                      if isinstance(getattr(peers, "__self__", None), PeerServer) else "adelie and skglm in this process"),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "total": time.perf_counter() - t0, "load": f"{load:.2f}", "gemm": gemm, "cap": args.cap,
            "summary": summary(rows)}
    write(rows, Path(args.out), meta)
    print(meta["summary"])


if __name__ == "__main__":
    main()
