"""Run the peer solvers (pyscnn, adelie) on one benchmark instance; executed inside .venv-peers.

Usage (called by ``bench/bench_solvers.py``; not meant to be run by hand)::

    .venv-peers/bin/python bench/peers/run_peers.py INSTANCE.npz TASKS.json OUT.npz

``INSTANCE.npz`` holds ``Xa`` (n x d', the design matrix WITH its ones column when the
instance has a bias), ``y`` (n,), ``masks`` (n x P, bool), ``gates`` (d' x P) and ``lam`` (the
convexnn regularization strength for the objective ``0.5||r||^2 + lam * sum ||u_i||``).

Same data, same patterns, same objective:

* pyscnn 0.0.10 minimizes ``||r||^2 / (2n) + lam_scnn * sum ||u_i||``, so ``lam_scnn = lam / n``.
  It is called with ``unitize_data=False``, ``return_convex=True``, ``bias=False`` on ``Xa``
  (the bias is the last column, regularized with the weights as in convexnn), float64, and its
  pattern computation is replaced by the benchmark's masks (``compute_activation_patterns``
  would otherwise recompute, deduplicate and drop patterns).
* adelie: ``adelie.matrix.convex_relu(Xa, masks, gated=True)`` is ``[D_1 Xa, ..., D_P Xa]``;
  ``grpnet`` with groups of size d', penalty weights all 1, no intercept, gaussian glm with
  its default weights ``1/n``: objective ``||r||^2/(2n) + lmda * sum ||u_i||``, so ``lmda = lam/n``.

Each task prints one JSON line: ``{"name", "ok", "time", "error"}``; weights go to OUT.npz
under the task name (``U`` or ``V``/``W`` stacked as ``(2, P, d')``). Times cover the solver
call only (not the imports).
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import numpy as np


def run_pyscnn(inst: dict, task: dict) -> dict:
    import scnn.private.interface.models as internal
    from scnn.metrics import Metrics
    from scnn.models import ConvexGatedReLU, ConvexReLU
    from scnn.optimize import optimize_model
    from scnn.regularizers import NeuronGL1
    from scnn.solvers import AL, RFISTA

    Xa, y, masks, gates, lam = inst["Xa"], inst["y"], inst["masks"], inst["gates"], float(inst["lam"])
    n = Xa.shape[0]
    D = masks.astype(np.float64)

    def same_patterns(X, G, *args, **kwargs):  # the benchmark's patterns, unfiltered
        return D, np.asarray(gates, dtype=np.float64)

    internal.compute_activation_patterns = same_patterns
    if task["kind"] == "c_grelu":
        model = ConvexGatedReLU(np.asarray(gates), c=1, bias=False)
        solver = RFISTA(model, max_iters=task.get("max_iters", 10000), tol=task.get("tol", 1e-6))
    else:
        model = ConvexReLU(np.asarray(gates), c=1, bias=False)
        solver = AL(model, max_primal_iters=task.get("max_iters", 10000),
                    max_dual_iters=task.get("max_dual_iters", 10000), tol=task.get("tol", 1e-6),
                    constraint_tol=task.get("constraint_tol", 1e-6))
    t0 = time.perf_counter()
    model, _ = optimize_model(model, solver, Metrics(), Xa, y, regularizer=NeuronGL1(lam / n),
                              return_convex=True, unitize_data=False, verbose=False, dtype="float64")
    wall = time.perf_counter() - t0
    params = model.get_parameters()
    if task["kind"] == "c_grelu":
        out = np.asarray(params[0])[0]  # (c, P, d') -> (P, d')
    else:
        out = np.stack([np.asarray(params[0])[0], np.asarray(params[1])[0]])
    return {"time": wall, "weights": out}


def run_adelie(inst: dict, task: dict) -> dict:
    import adelie as ad

    Xa, y, masks, lam = inst["Xa"], inst["y"], inst["masks"], float(inst["lam"])
    n, d = Xa.shape
    P = masks.shape[1]
    Xf = np.asfortranarray(Xa, dtype=np.float64)
    Mf = np.asfortranarray(masks, dtype=bool)
    t0 = time.perf_counter()
    mat = ad.matrix.convex_relu(Xf, Mf, gated=True)
    path = np.asarray(task.get("path", [lam / n]), dtype=np.float64)
    state = ad.grpnet(X=mat, glm=ad.glm.gaussian(np.asarray(y, dtype=np.float64)),
                      groups=np.arange(0, P * d, d), penalty=np.ones(P), lmda_path=path,
                      intercept=False, early_exit=False, tol=task.get("tol", 1e-7),
                      adev_tol=1.0, ddev_tol=0.0, progress_bar=False,
                      max_iters=task.get("max_iters", 100000))
    wall = time.perf_counter() - t0
    beta = state.betas[-1]
    beta = np.asarray(beta.todense()).ravel() if hasattr(beta, "todense") else np.asarray(beta).ravel()
    return {"time": wall, "weights": beta.reshape(P, d)}


RUNNERS = {"pyscnn": run_pyscnn, "adelie": run_adelie}


def main() -> None:
    inst_path, tasks_path, out_path = sys.argv[1:4]
    inst = dict(np.load(inst_path))
    with open(tasks_path) as fh:
        tasks = json.load(fh)
    results = {}
    for task in tasks:
        rec = {"name": task["name"], "ok": False, "time": None, "error": None}
        try:
            r = RUNNERS[task["peer"]](inst, task)
            rec.update(ok=True, time=r["time"])
            results[task["name"]] = r["weights"]
        except Exception as exc:  # report every failure in the table instead of aborting
            rec["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        print(json.dumps(rec), flush=True)
    np.savez(out_path, **results)


if __name__ == "__main__":
    main()
