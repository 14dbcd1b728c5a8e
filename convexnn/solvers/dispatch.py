r"""``convexnn.solve``: one entry point over the registered solvers (:mod:`convexnn.solvers.protocol`).

The built-in solvers, registered here in the preference order of ``method="auto"``:

* ``"gated_fista"`` (:class:`~convexnn.solvers.first_order.GatedFirstOrder`, family
  ``"first_order"``): C-GReLU by R-FISTA and the Newton polish on the support;
* ``"gated_ipm"`` (:class:`~convexnn.solvers.gated_ipm.GatedBlockIPM`): C-GReLU by the
  block-structured interior point over all groups (``auto`` reaches it when R-FISTA declines in
  its favour);
* ``"relu_active_set"`` (:class:`~convexnn.solvers.first_order.ReluActiveSet`, family
  ``"first_order"``): C-ReLU by the active-set polish with a global certificate, the augmented
  Lagrangian as fallback;
* ``"interior_point"`` (:class:`~convexnn.solvers.interior.InteriorPoint`, family
  ``"interior"``): every program, by :meth:`Formulation.solve` (CVXPY + MOSEK/Clarabel).

The first-order solvers run on numpy or torch (CPU/CUDA) and stop on a certified relative
duality gap (:mod:`convexnn.solvers.gap`). ``method="auto"`` picks among the solvers that support
the program (:func:`convexnn.solvers.protocol.choose`); the choice and its reason are logged and
stored in ``solution.info["method"]`` / ``info["auto_reason"]`` / ``info["auto_solver"]``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from typing import Any

import numpy as np

from convexnn.errors import ConvergenceWarning, InputError
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.solvers.first_order import GatedFirstOrder, ReluActiveSet
from convexnn.solvers.gated_ipm import GatedBlockIPM
from convexnn.solvers.interior import InteriorPoint
from convexnn.solvers.protocol import Choice, Decline, choose, register_solver

__all__ = ["solve", "estimate_interior_seconds", "InteriorPoint", "GatedFirstOrder", "ReluActiveSet"]

log = logging.getLogger("convexnn")

#: ``auto`` picks a supporting solver whose estimated time (:meth:`Solver.estimate_seconds`; the
#: interior point's cost model) is below this many seconds before the preferred one. 0: never on
#: that ground -- on every cell of ``bench/bench_matrix.py`` (n 100..1e5, d' 3..51, P 91..2000,
#: lam 1e-3..0.5 lam_max, squared and logistic) the first-order path was faster than CVXPY +
#: Clarabel, including the smallest cells (n=100, d'=3, P=91: 4 ms vs 30 ms).
AUTO_INTERIOR_SECONDS = 0.0
#: ``auto``: when the first-order solver stops on a C-GReLU program (scalar output) without certifying
#: ``tol`` (with the default iteration budget: a ``max_iter`` of the caller's is kept), the interior
#: point solves it if its estimated time is at most this many seconds, and its
#: point gets the same certificate (:func:`convexnn.duality.dual.duality_gap` with the dual point
#: :math:`-\nabla f`); the better certified point is returned. Held-out logistic programs of 110
#: samples, columns spread over seven decades, ``lam = 5e-4 lam_max``: 8 of 40 ended at ``max_iter``
#: after about 2 s (certified gaps 3.5e-8 to 9e-7), where Clarabel takes 0.2 s.
AUTO_RESCUE_SECONDS = 30.0
#: the interior-point solver instance (its cost model is :func:`estimate_interior_seconds`)
_INTERIOR = InteriorPoint()
# registry order = the preference of method="auto": first order, then the interior point
register_solver(GatedFirstOrder(), replace=True)
register_solver(ReluActiveSet(), replace=True)
register_solver(_INTERIOR, replace=True)
# C-GReLU by the block interior point, right after R-FISTA: auto reaches it when R-FISTA declines
# in its favour (the cost models of convexnn/solvers/gated_ipm.py)
register_solver(GatedBlockIPM(), position=1, replace=True)


def _rescuable(f: Formulation) -> bool:
    """Whether ``auto`` would rescue an uncertified solve of ``f`` (:data:`AUTO_RESCUE_SECONDS`)."""
    return (f.kind == "c_grelu" and np.ndim(f.y) == 1 and _INTERIOR.supports(f) is None
            and _INTERIOR.estimate_seconds(f) <= AUTO_RESCUE_SECONDS)


def _rescue(f: Formulation, sol: ConvexSolution, tol: float, verbose: bool) -> ConvexSolution | None:
    """``auto``'s rescue of an uncertified C-GReLU solve (:data:`AUTO_RESCUE_SECONDS`): the interior
    point's solution with its certificate, when that is smaller than the first solve's certified gap;
    None when the rescue does not apply, fails or certifies less."""
    from convexnn.duality.dual import duality_gap

    gap0 = float(sol.info.get("gap", np.inf))
    _say(f"convexnn.solve: the first-order solve stopped at certified gap {gap0:.2e} "
         f"({sol.info.get('stop_reason', sol.status)}); trying the interior point.", verbose)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its statuses are judged by the certificate below
            # tight tolerances: at Clarabel's defaults the dual point -grad f of its solution certifies
            # about 1e-5 (its group norms exceed lam by that much)
            ip = f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    except Exception as exc:  # noqa: BLE001  (a ConvexNNError, cvxpy.error.SolverError): no rescue
        log.info("convexnn.solve: the interior point failed in the rescue: %s", exc)
        return None
    w = {"U": np.asarray(ip.weights["U"], dtype=np.float64)}
    v = -np.asarray(f.loss.grad(f.predict(w), f.y), dtype=np.float64)
    g = duality_gap(f, w, v)
    if not (np.isfinite(g.rel_gap) and g.rel_gap < gap0):
        return None
    ok = g.rel_gap <= tol
    info = {"method": "interior", "gap": g.rel_gap, "gap_abs": g.gap, "dual_value": g.dual, "dual_point": g.scale * v,
            "violation": 0.0, "violation_abs": 0.0, "tol": tol, "lam_max": sol.info.get("lam_max"),
            "stop_reason": "certified" if ok else f"certified relative gap {g.rel_gap:.3e} above tol {tol:.1e}",
            "auto_rescue": (f"the first-order solve stopped at certified gap {gap0:.3e} "
                            f"({sol.info.get('stop_reason', sol.status)}); the interior point's solution "
                            f"is certified to {g.rel_gap:.3e}"),
            "first_order": {k: sol.info.get(k) for k in ("gap", "stop_reason", "method")}}
    if not ok:
        warnings.warn(f"{f.kind}: neither the first-order solve nor the interior point certified tol {tol:.1e}; "
                      f"the interior point's solution is returned, certified relative gap {g.rel_gap:.3e}.",
                      ConvergenceWarning, stacklevel=3)
    _say(f"convexnn.solve: {info['auto_rescue']}.", verbose)
    return ConvexSolution(formulation=f, weights=w, value=g.primal, status="optimal" if ok else "not_converged",
                          solver=ip.solver, solve_time=sol.solve_time + time.perf_counter() - t0,
                          compile_time=ip.compile_time, iterations=ip.iterations, lam=f.lam_value, info=info)


def estimate_interior_seconds(formulation: Formulation) -> float:
    r"""Rough CVXPY + Clarabel time of ``formulation`` (:meth:`InteriorPoint.estimate_seconds`):
    :math:`c\cdot\mathrm{nnz}` with :meth:`Formulation.nnz_estimate` (``4 n P d'`` for C-ReLU,
    ``n P d'`` for C-GReLU, times the outputs)."""
    return _INTERIOR.estimate_seconds(formulation)


def _say(msg: str, verbose: bool) -> None:
    log.info(msg)
    if verbose:
        print(msg, flush=True)


def solve(
    formulation: Formulation,
    *,
    method: str = "auto",
    device: str | None = None,
    dtype: Any = None,
    tol: float = 1e-8,
    max_iter: int | None = None,
    warm_start: ConvexSolution | dict[str, Any] | None = None,
    verbose: bool = False,
    progress: bool = False,
    viol_tol: float | None = None,
    solver: str | None = None,
    polish: bool = True,
) -> ConvexSolution:
    r"""Solve a convex program with a registered solver (interior point, first order, or your own).

    Parameters
    ----------
    formulation : Formulation
        From :func:`convexnn.c_grelu` / :func:`convexnn.c_relu` (first-order capable), or any
        other builder (interior point only).
    method : str
        ``"auto"`` (default), ``"interior"``, ``"first_order"`` or the name of a registered solver
        (:func:`convexnn.solvers.protocol.registered_solvers`: ``"gated_fista"``,
        ``"relu_active_set"``, ``"interior_point"`` and any added by
        :func:`~convexnn.solvers.protocol.register_solver`). ``"interior"`` / ``"first_order"``
        take the first registered solver of that family that supports the program.
        ``"auto"`` takes, among the solvers that support the program (``Solver.supports``), one
        whose estimated time (``Solver.estimate_seconds``: the interior point's cost model
        :func:`estimate_interior_seconds`) is below :data:`AUTO_INTERIOR_SECONDS` (0 by default:
        first order was faster on every measured cell), else the most preferred one (registry
        order: the first-order solvers, then the interior point). So the interior point runs
        when the first-order solvers do not apply (hinge loss, other programs, nuclear-norm vector
        outputs), with their reasons in ``info["auto_reason"]``.
        For C-ReLU (scalar output) the active-set solver would hand over to the interior point
        after the C-GReLU screening solve when more than :data:`~convexnn.solvers.first_order.AUTO_DENSE_SUPPORT` of the
        patterns are in the screening support (1.0 by default: never; the active-set polish was
        faster on every measured cell). ``info["auto_reason"]`` records the reason and
        ``info["auto_solver"]`` the solver's name. When the first-order solve of a C-GReLU program
        (scalar output, default ``max_iter``) ends without certifying ``tol`` and the interior point's
        estimated time is at most :data:`AUTO_RESCUE_SECONDS`, Clarabel (tolerances 1e-10) solves it
        and its solution gets the same certificate; the better certified point is returned
        (``info["auto_rescue"]`` says so, ``info["first_order"]`` keeps the first solve's gap and
        stopping reason), and the first solve's ``ConvergenceWarning`` only when neither certifies.
        Such a solve does not resume R-FISTA after a polish whose block interior point failed, after
        cycling Newton rounds or over all groups at once (the rescue follows at once); should the
        interior point then fail too, the first-order solve runs again in full.
    device : str, optional
        First-order backend: ``None`` (numpy), ``"cpu"`` / ``"torch"`` (torch on the CPU),
        ``"cuda"`` / ``"cuda:k"`` (torch on a GPU; :class:`InputError` without CUDA).
    dtype : {"float32", "float64"}, optional
        Working precision of the first-order iterations (default float64). The final
        certificate is always evaluated in float64; float32 stops at its own precision
        (tolerances are floored at :math:`50\,\varepsilon_{\text{float32}}`).
    tol : float
        Target *relative* certified duality gap :math:`(P - D)/|P|` (first-order), default 1e-8.
    max_iter : int, optional
        Iteration budget of the whole solve (default 20000 for C-GReLU, 50000 for C-ReLU): all
        iterations count (R-FISTA, Newton, the restricted interior-point solves of the C-ReLU polish,
        augmented-Lagrangian inner iterations), and vector outputs share it (each output gets an
        equal share of what is left). The C-ReLU polish checks it before each restricted solve: a
        solve in progress finishes (at most 150 interior-point iterations) and counts.
    warm_start : ConvexSolution or dict, optional
        Weights to start from (``{"U"}`` or ``{"V", "W"}``), e.g. the solution at a nearby
        ``lam``; a C-ReLU solution from this solver also warm-starts the multipliers.
    verbose : bool
        Print the method choice and per-check objective / gap / violation lines.
    progress : bool
        Show a tqdm progress bar.
    viol_tol : float, optional
        C-ReLU: target relative cone violation (default ``min(tol, 1e-8)``, floored at
        :math:`50\,\varepsilon` of the dtype).
    solver : str, optional
        CVXPY solver name for the interior-point method.
    polish : bool
        C-ReLU only (default True): solve by the active-set polish of
        :mod:`convexnn.solvers.active_set` -- screen blocks with the C-GReLU solution (R-FISTA on
        the requested backend), solve the C-ReLU program restricted to the working set with the
        block-structured interior point of :mod:`convexnn.solvers.block_ipm` (CPU, float64;
        Clarabel when it fails numerically), certify over **all** patterns with the cone-aware dual
        (NNLS, :func:`convexnn.duality.cones.cone_support`) and add violated blocks until the
        certified gap is below ``tol``. ``info["polish"]`` reports the rounds, the working-set
        size and why it stopped. If the polish cannot finish (solver failure, round/block budget)
        the augmented Lagrangian takes over from its point (``max_iter`` is its budget; the
        polish itself is bounded by 30 rounds). ``False``: the augmented Lagrangian only
        (``info`` then has ``delta``, ``outer``).
        C-GReLU (default True): R-FISTA stops at the certified relative gap
        :data:`~convexnn.solvers.first_order.GATED_POLISH_TOL` -- or, on the CPU, earlier, when
        its remaining iterations are predicted to cost more than a polish from a rough point
        (:func:`~convexnn.solvers.gated_active_set.handover_rule`; dense supports, small
        ``lam``) -- then the Newton polish of :mod:`convexnn.solvers.gated_active_set` (CPU,
        numpy, float64; Newton systems by a dense Cholesky factorization or, when ``n`` is small
        next to the support's ``|S| d'``, the Sherman--Morrison--Woodbury solve in ``n x n``)
        solves the program on the support with column generation until the certified gap over
        all patterns is below ``tol``; R-FISTA resumes if it cannot (``info["polish"]``). Its
        Newton iterations count in ``max_iter``. ``False``: R-FISTA only.

    Returns
    -------
    ConvexSolution
        ``solver`` is ``"fista"`` (C-GReLU), ``"active_set"`` (C-ReLU, polish path) or ``"al"``
        (C-ReLU, augmented Lagrangian) for first-order runs;
        ``status`` is ``"optimal"`` (certified), ``"max_iter"`` (the budget ran out) or
        ``"not_converged"`` (stopped for another reason, e.g. the certificate's rounding floor);
        ``info["stop_reason"]`` says why in words; ``info`` also holds ``method``, ``max_iter``,
        ``gap`` (relative certified gap), ``gap_abs``, ``dual_value``, ``dual_point`` (the
        certifying :math:`v = -s\nabla f` of shape ``(n,)``, in the convention of
        :func:`convexnn.duality_gap`), ``violation`` (relative
        cone violation), ``violation_abs``, ``lam_max``, ``history`` (one dict per check),
        ``backend`` and solver extras (``multipliers``, ``delta``, ``working_set``).

    Raises
    ------
    InputError
        Unknown method, a solver (or family) that does not support the program (the message
        gives each solver's reason, and names ``method='interior'`` for first-order requests),
        CUDA requested but unavailable, bad warm start.

    Warns
    -----
    ConvergenceWarning
        The certified gap did not reach ``tol``; the message gives the stopping reason (as
        ``info["stop_reason"]``), the gap and violation reached and the iterations used of
        ``max_iter``.
    """
    if not isinstance(formulation, Formulation):
        raise InputError(f"solve() needs a convexnn Formulation; got {type(formulation).__name__}.")
    if not isinstance(method, str):
        raise InputError(f"method must be 'auto', 'interior', 'first_order' or a registered solver name; "
                         f"got {method!r}.")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise InputError(f"tol must be a positive number; got {tol!r}.")
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer))
                                 or max_iter < 0):
        raise InputError(f"max_iter must be None or a non-negative integer; got {max_iter!r}.")
    choice = choose(formulation, method)
    if method == "auto" and AUTO_INTERIOR_SECONDS > 0 and _INTERIOR in [choice.solver] + choice.fallbacks:
        # the interior point's cost model alone decides this switch (the other solvers' estimates
        # compete through their own Decline)
        est = _INTERIOR.estimate_seconds(formulation)
        if est < AUTO_INTERIOR_SECONDS and choice.solver is not _INTERIOR:
            others = [s for s in [choice.solver] + choice.fallbacks if s is not _INTERIOR]
            choice = Choice(_INTERIOR, f"estimated {_INTERIOR.label} time {est:.2g} s is small", others)
    auto = method == "auto"
    chosen, reason, fallbacks = choice.solver, choice.reason, list(choice.fallbacks)
    if auto:
        _say(f"convexnn.solve: method='auto' picked {chosen.family!r} ({chosen.name}: {reason}).", verbose)
    # a solve that the interior point may rescue keeps its warnings until the answer is known
    rescuable = auto and max_iter is None and _rescuable(formulation)
    options = {"device": device, "dtype": dtype, "tol": tol, "max_iter": max_iter, "warm_start": warm_start,
               "verbose": verbose, "progress": progress, "viol_tol": viol_tol, "solver": solver,
               "polish": polish, "rescue": rescuable}
    rescued = None
    try:
        with warnings.catch_warnings(record=True) if rescuable else contextlib.nullcontext() as caught:
            if rescuable:
                warnings.simplefilter("always")
            while True:
                try:
                    # auto=True lets the solver decline (Decline) when another supporting solver can take over
                    sol = chosen.solve(formulation, auto=auto and bool(fallbacks), **options)
                    break
                except Decline as exc:
                    if not (auto and fallbacks):
                        raise
                    reason, chosen = str(exc), fallbacks.pop(0)
                    _say(f"convexnn.solve: method='auto' switched to {chosen.family!r} ({chosen.name}: {reason}).",
                         verbose)
            sol.info.setdefault("method", chosen.family)
        if rescuable and sol.status != "optimal":
            rescued = _rescue(formulation, sol, tol, verbose)
            if rescued is None and (sol.info.get("polish") or {}).get("left_to_rescue"):
                # the first solve left the program to the rescue, and the interior point failed: the
                # first-order path in full (R-FISTA resumed after the polish); its warnings are the answer's
                _say("convexnn.solve: the interior point did not certify more; the first-order solve again, "
                     "with R-FISTA after the polish.", verbose)
                caught.clear()
                with warnings.catch_warnings(record=True) as again:
                    warnings.simplefilter("always")
                    sol = chosen.solve(formulation, auto=False, **{**options, "rescue": False})
                    sol.info.setdefault("method", chosen.family)
                caught.extend(again)
    finally:
        for w in caught if rescuable else []:
            # the first solve's ConvergenceWarning is not the answer's when the rescue replaced it
            if rescued is None or not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    if rescued is not None:
        sol = rescued
    if auto:
        sol.info["auto_reason"] = reason
        sol.info["auto_solver"] = chosen.name
    formulation.last_solution = sol
    return sol
