r"""The built-in first-order solvers and their driver: R-FISTA + Newton polish (C-GReLU), active-set polish + augmented Lagrangian (C-ReLU).

* ``"gated_fista"`` (:class:`GatedFirstOrder`): programs without cone constraints (C-GReLU) by
  R-FISTA (:mod:`convexnn.solvers.fista`) followed by the Newton polish on the support
  (:mod:`convexnn.solvers.gated_active_set`); under ``method="auto"`` it hands over to the block
  interior point (:mod:`convexnn.solvers.gated_ipm`) when the cost models say so;
* ``"relu_active_set"`` (:class:`ReluActiveSet`): programs with cone constraints (C-ReLU) by the
  active-set polish with a global certificate (:mod:`convexnn.solvers.active_set`) with the
  augmented Lagrangian method (:mod:`convexnn.solvers.augmented_lagrangian`) as fallback.

Both run on numpy or torch (CPU/CUDA) and stop on a certified relative duality gap
(:mod:`convexnn.solvers.gap`); :func:`_solve_first_order` is their shared driver (budgets shared by
the outputs, the final certificate (rounding accounted for), truthful stopping reasons and warnings).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any

import numpy as np

from convexnn.arrangements.facets import ChamberFacets
from convexnn.arrangements.limits import single_blas_thread
from convexnn.errors import ConvergenceWarning, InputError, PrecisionWarning
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.gap import relative_gap
from convexnn.solvers.active_set import (
    FULL_START_FLOPS,
    FULL_START_RATIO,
    FULL_VARS,
    ActiveSetResult,
    certify_relu,
    solve_relu_active_set,
)
from convexnn.solvers.augmented_lagrangian import solve_relu
from convexnn.solvers.backend import Backend, get_backend
from convexnn.solvers.block_ipm import iteration_flops
from convexnn.solvers.fista import Reporter, solve_gated
from convexnn.solvers.gated_active_set import ALL_GROUPS_IPM, CYCLED_TO_IPM, handover_rule, solve_gated_active_set
from convexnn.solvers.gated_ipm import MAX_VARS as GATED_IPM_MAX_VARS
from convexnn.solvers.gated_ipm import (GatedBlockIPM, cpu64, estimate_fista_seconds, fista_iterations, prefer_ipm,
                                        program_lam_ratio, support_size)
from convexnn.solvers.gap import (
    GapResult,
    above_tol_reason,
    certified_program_bound,
    gated_gap,
    lam_max_op,
    missing_penalty_support,
    missing_smoothness,
    relu_gap,
    relu_output_scale,
    relu_violation,
    require_smooth,
)
from convexnn.solvers.operators import MaskedDesign
from convexnn.solvers.protocol import Decline, Solver, registered_solvers, warm_weights
from convexnn.solvers.scaling import program_scaling

__all__ = ["GatedFirstOrder", "ReluActiveSet", "SCREEN_TOL", "SCREEN_MAX_ITER", "GATED_POLISH_TOL",
           "AUTO_DENSE_SUPPORT"]

#: ``auto``, C-ReLU: switch to the interior-point method when the C-GReLU screening solve has more
#: than this fraction of the patterns in its support. 1.0: never. With the block-structured
#: interior point on the restricted programs (:mod:`convexnn.solvers.block_ipm`) the active-set
#: polish was faster than CVXPY + Clarabel on the full program on every C-ReLU cell of
#: ``bench/bench_matrix.py``, including the dense-support ones where the screening support holds
#: 100% of the patterns (diabetes, lam = 1e-3 lam_max; synthetic n=500, d'=21, lam = 0.01 lam_max).
AUTO_DENSE_SUPPORT = 1.0


def _first_order_refusal(f: Formulation, *, cones: bool) -> str | None:
    """Why the first-order solver for programs with (``cones``) or without cone constraints cannot
    solve ``f``; read from its capabilities only."""
    if not getattr(f, "block_program", False):
        return ("not a two-layer block program (a loss of sum_i D_i Xa u_i plus lam times a group "
                f"penalty, the cones K_i its only constraints, as C-ReLU / C-GReLU), but {f.kind!r}")
    if bool(f.cone_constraints) != cones:
        return ("needs cone constraints (a C-ReLU program)" if cones else
                "cone constraints (C-ReLU): R-FISTA solves programs without constraints (C-GReLU)")
    why = missing_smoothness(f.loss)
    if why is not None:
        return why.split(";")[0]
    if np.ndim(f.y) == 2 and getattr(f, "vector_reg", "group") != "group":
        return (f"vector outputs with vector_reg={getattr(f, 'vector_reg')!r} are not supported by the "
                "first-order solvers")
    why = missing_penalty_support(f, "relu" if cones else "fista")
    return None if why is None else why.split("; use method")[0]


def _penalty_arg(f: Formulation) -> Any:
    """The first-layer penalty handed to R-FISTA and the gated gap: None (their default, the
    group lasso) unless ``f.penalty`` is another penalty."""
    pen = getattr(f, "penalty", None)
    return None if pen is None or getattr(pen, "group_l2", False) else pen


#: ``stacklevel`` of the first-order warnings: the caller of :func:`solve` (frames:
#: ``_solve_first_order`` <- ``_run_first_order`` <- ``Solver.solve`` <- ``solve`` <- caller)
_USER_FRAME = 5


def _run_first_order(formulation: Formulation, options: dict[str, Any]) -> ConvexSolution:
    bk = get_backend(options.get("device"), options.get("dtype"))
    return _solve_first_order(formulation, bk, tol=float(options.get("tol", 1e-8)),
                              max_iter=options.get("max_iter"), warm_start=options.get("warm_start"),
                              verbose=bool(options.get("verbose", False)),
                              progress=bool(options.get("progress", False)), viol_tol=options.get("viol_tol"),
                              polish=bool(options.get("polish", True)), auto=bool(options.get("auto", False)),
                              rescue=bool(options.get("rescue", False)))


class _FirstOrderSolver(Solver):
    """The shared part of the built-in first-order solvers: the capability check of
    :func:`_first_order_refusal` and the driver :func:`_solve_first_order` (no cost model:
    ``estimate_seconds`` is None)."""

    family = "first_order"
    #: solves programs with cone constraints (C-ReLU) rather than without (C-GReLU)
    cones = False

    def supports(self, formulation: Formulation) -> str | None:
        return _first_order_refusal(formulation, cones=self.cones)

    def solve(self, formulation: Formulation, **options: Any) -> ConvexSolution:
        _decline_unpolished(formulation, options, cones=self.cones)
        return _run_first_order(formulation, options)


#: ``method="auto"``: a program whose first-layer penalty the polishes do not solve (any other than
#: the group lasso) goes to the interior point when its estimated time
#: (:meth:`InteriorPoint.estimate_seconds`) is at most this many seconds, always for C-ReLU (the
#: augmented Lagrangian alone) and for C-GReLU (R-FISTA alone) from
#: :data:`AUTO_UNPOLISHED_GATED_RATIO` on. Measured on held-out programs with ``l1_ratio = 0.3``
#: (n = 300, d = 5, P = 100, lam 1e-4 to 1e-1 lam_max): the C-ReLU augmented Lagrangian ran 12 s to
#: ``max_iter`` at certified gaps 1e-5 to 0.4 against Clarabel's 1.3-2.0 s; R-FISTA alone certified
#: 1e-8 in 0.02-0.17 s down to 1e-3 lam_max (Clarabel 0.3 s), 0.57 s at 1e-4 lam_max, and on other
#: programs at 3e-5 to 1e-3 lam_max ended after 1.1 s at gaps up to 0.79 (Clarabel 0.3 s).
AUTO_UNPOLISHED_INTERIOR_SECONDS = 60.0

#: ``lam_max / lam`` from which ``method="auto"`` sends an unpolished C-GReLU program to the interior
#: point (see :data:`AUTO_UNPOLISHED_INTERIOR_SECONDS`).
AUTO_UNPOLISHED_GATED_RATIO = 1e3


#: a C-ReLU point whose every block output :math:`|(\tilde X v_i)_j|` is at most this many machine
#: epsilons times :math:`n \max_j |y_j|` is rounding noise (see :func:`_rounding_noise`)
_NOISE_EPS = 1.0


def _rounding_noise(op: MaskedDesign, V: Any, W: Any, y: np.ndarray) -> bool:
    r"""Whether the C-ReLU point ``(V, W)`` is nonzero but every block's output is below
    :math:`n\,\epsilon \max_j |y_j|` (:data:`_NOISE_EPS`): a zero optimum that an interior point
    returned as rounding noise, whose *relative* cone violation (noise over noise) means nothing."""
    scale = relu_output_scale(op, V, W)
    ymax = float(np.max(np.abs(y))) if y.size else 0.0
    return 0.0 < scale <= _NOISE_EPS * op.n * np.finfo(np.float64).eps * ymax


def _decline_unpolished(formulation: Formulation, options: dict[str, Any], *, cones: bool) -> None:
    """Under ``method="auto"``: :class:`Decline` a program without a polish (see
    :data:`AUTO_UNPOLISHED_INTERIOR_SECONDS`) in favour of the interior point."""
    pen = _penalty_arg(formulation) if options.get("auto") else None
    if pen is None or (not cones and program_lam_ratio(formulation) < AUTO_UNPOLISHED_GATED_RATIO):
        return
    ip = next((s for s in registered_solvers() if s.family == "interior"), None)
    if ip is None or ip.supports(formulation) is not None:
        return
    est = ip.estimate_seconds(formulation)
    if est is not None and est <= AUTO_UNPOLISHED_INTERIOR_SECONDS:
        raise Decline(f"the {pen.name!r} penalty has no polish ("
                      f"{'augmented Lagrangian' if cones else 'R-FISTA'} alone) and the estimated "
                      f"interior-point time {est:.2g} s is at most {AUTO_UNPOLISHED_INTERIOR_SECONDS:g} s")


class GatedFirstOrder(_FirstOrderSolver):
    """Programs without cone constraints (C-GReLU): R-FISTA, then the Newton polish on the support
    (``polish=True``; skipped for a penalty other than the group lasso), certified gap; numpy or
    torch (``device``, ``dtype``)."""

    name = "gated_fista"
    label = "R-FISTA"
    cones = False

    def estimate_seconds(self, formulation: Formulation) -> float | None:
        """R-FISTA + Newton polish time (:func:`convexnn.solvers.gated_ipm.estimate_fista_seconds`)
        for the programs it supports (None otherwise)."""
        if self.supports(formulation) is not None:
            return None
        n, d = np.shape(formulation.Xa)
        P = int(np.shape(formulation.patterns.masks)[1])
        quad = bool(require_smooth(formulation.loss).unit_curvature)
        outputs = 1 if np.ndim(formulation.y) == 1 else int(np.shape(formulation.y)[1])
        return outputs * estimate_fista_seconds(n, d, P, program_lam_ratio(formulation), quad)

    def solve(self, formulation: Formulation, **options: Any) -> ConvexSolution:
        _decline_unpolished(formulation, options, cones=self.cones)
        # under auto, hand over to the block interior point when its cost model is clearly lower
        if options.get("auto") and cpu64(options.get("device"), options.get("dtype")):
            ipm = next((s for s in registered_solvers() if s.name == GatedBlockIPM.name), None)
            if ipm is not None and ipm.supports(formulation) is None:
                yes, why = prefer_ipm(formulation)
                if yes:
                    raise Decline(why)
        return _run_first_order(formulation, options)


class ReluActiveSet(_FirstOrderSolver):
    """Programs with cone constraints (C-ReLU): the active-set polish with a global certificate
    (``polish=True``) and the augmented Lagrangian as fallback (or alone: ``polish=False``, or a
    first-layer penalty other than the group lasso, which the polish does not solve).

    Under ``method="auto"`` (scalar output) it declines (:class:`Decline`) when the C-GReLU
    screening support holds more than :data:`AUTO_DENSE_SUPPORT` of the patterns."""

    name = "relu_active_set"
    label = "active-set"
    cones = True


#: Plain-words stopping reasons (the ConvergenceWarning and ``info["stop_reason"]``).
_REASONS = {
    "max_iter": "iteration budget (max_iter) spent",
    "max_outer": "multiplier updates (max_outer) spent",
    "stalled": ("R-FISTA stalled: no violated group outside the working set and the restricted "
                "problem solved to tol, the certified gap is at its rounding floor"),
    "no_violated_block": ("stopped with no violated block left (the accuracy of the restricted "
                          "solves limits the certified gap)"),
    "max_rounds": "round budget spent",
    "too_many_blocks": "block budget spent",
}

#: C-ReLU polish: relative certified gap at which the C-GReLU screening solve stops, and its
#: iteration cap. The screening only picks the initial working set (its dual candidate's most
#: violated blocks) and the rounds of the polish correct it, so a rough point does as well. The
#: cap matters at small lam, where R-FISTA does not reach 1e-2 quickly: a cruder point can start
#: the polish on a path with larger working sets. Measured on the twelve C-ReLU programs of
#: ``bench/bench_matrix.py`` and seven other synthetic ones (n 800-3000, d' 6-21, P 200-500, lam
#: 2e-3 to 1e-2 lam_max), against the previous 1e-5 / 2,000: in total 70.1 s with a cap of 1,000,
#: 78.5 s with 300, 76.0 s before; the small programs 10-45% faster with either cap.
SCREEN_TOL = 1e-2
SCREEN_MAX_ITER = 1000
#: the screening's cap on small programs (at most :data:`SMALL_SCREEN_WORK` multiply-adds per pass,
#: n d' P): there its R-FISTA iterations cost as much as the restricted interior-point solves they
#: would save, and a rougher start costs at most a round more. Measured (best of 5, cap 1000 -> 100):
#: iris lam = 1e-2 58 -> 37 ms, synthetic n = 100 d' = 3 and iris logistic unchanged; eight other small
#: programs (synthetic, wine, iris, diabetes, breast cancer subsets, n d' P 4e4-1.4e5, squared and
#: logistic, lam 1e-3 to 0.1 lam_max) 1.00-2.88x faster, none slower (``bench/RESULTS_matrix.md``)
SCREEN_MAX_ITER_SMALL = 100
SMALL_SCREEN_WORK = 2e5
#: first-order solves (R-FISTA, the screening of the C-ReLU polish, the augmented Lagrangian) with at
#: most this many multiply-adds per pass over the data (n d' P) run on one BLAS thread: their products
#: are too small to pay for the threads' synchronisation, and on a busy machine the threads' waiting
#: costs far more (2 cores, one of them busy: R-FISTA on n = 1000, d' = 51, P = 100 took 5.6 s with
#: the default threads against 0.11 s with one; the C-ReLU screening on n = 500, d' = 21, P = 100
#: 1.0-7.6 s against 0.17 s)
ONE_THREAD_WORK = 5e7


def _relu_active_set(Xa: np.ndarray, masks: np.ndarray, op: MaskedDesign, loss: Any, yb: Any, y: np.ndarray,
                     lam: float, V0: np.ndarray | None, W0: np.ndarray | None, *, tol: float, viol_tol: float,
                     t0: float, reporter: Reporter, lmax: float, max_iter: int,
                     auto: bool = False, facets: ChamberFacets | None = None) -> ActiveSetResult:
    r"""C-ReLU by the active-set polish (:mod:`convexnn.solvers.active_set`).

    Screening (cold start): the C-GReLU program with the same patterns is solved by R-FISTA on
    the requested backend to a relative gap of :data:`SCREEN_TOL`; its dual candidate
    :math:`-\nabla f(\hat y_{\text{gated}})` picks the initial working set. With a warm start the
    warm point's support and its own dual candidate are used instead. A small program with a dense
    support (``lam_max / lam >=`` :data:`~convexnn.solvers.active_set.FULL_START_RATIO`, ``P d' <=``
    :data:`~convexnn.solvers.active_set.FULL_VARS`) starts from all blocks, without screening, and so
    does a tiny one (an interior-point iteration on all blocks of at most
    :data:`~convexnn.solvers.active_set.FULL_START_FLOPS` flops).
    """
    bk = op.bk
    v_screen = None
    iters0 = 0
    # a small program with a dense support (small lam), or a tiny one: all blocks from the start,
    # no screening
    full = (V0 is None and W0 is None and op.P * op.d <= FULL_VARS and lam > 0
            and (lmax / lam >= FULL_START_RATIO
                 or iteration_flops(op.n, 2 * op.P, op.d, loss.unit_curvature, units=op.P)[0] <= FULL_START_FLOPS))
    if V0 is None and W0 is None and not full:
        # (on one BLAS thread when the data is small: _solve_first_order runs every solve so)
        small = float(op.n) * op.d * op.P <= SMALL_SCREEN_WORK
        g = solve_gated(op, loss, yb, lam, tol=max(tol, SCREEN_TOL),
                        max_iter=min(SCREEN_MAX_ITER_SMALL if small else SCREEN_MAX_ITER, max_iter))
        iters0 = g.iterations
        frac = float(np.mean(bk.to_numpy(bk.row_norms(g.U)) > 0)) if op.P else 0.0
        if auto and frac > AUTO_DENSE_SUPPORT:
            raise Decline(f"the C-GReLU screening support holds {frac:.0%} of the patterns "
                          f"(> {AUTO_DENSE_SUPPORT:.0%}): dense C-ReLU support")
        v_screen = -np.asarray(bk.to_numpy(loss.grad_on(bk, op.fit(g.U), yb)), dtype=np.float64)

    def report(it: int, obj: float, gap: float, viol: float, extra: str) -> None:
        reporter.update(it, obj, gap, viol, extra=extra)

    # an R-FISTA iteration: one forward and one adjoint pass over the data and masks, 2 n d' P flops each
    return solve_relu_active_set(Xa, masks, y, lam, loss, v_screen=v_screen, V0=V0, W0=W0,
                                 tol=tol, viol_tol=viol_tol, iterations0=iters0, t0=t0, report=report,
                                 flops0=4.0 * iters0 * op.n * op.d * op.P, start_full=full,
                                 max_iterations=max_iter, facets=True if facets is None else facets)


#: C-GReLU polish: relative certified gap at which R-FISTA hands over to the Newton polish (on the
#: CPU it hands over earlier when :func:`convexnn.solvers.gated_active_set.handover_rule` says so).
GATED_POLISH_TOL = 2e-3
#: C-GReLU polish: when R-FISTA hands over early (:func:`convexnn.solvers.gated_active_set.handover_rule`)
#: at a certified relative gap above this, its support is a guess; a program of at most
#: :data:`convexnn.solvers.gated_ipm.MAX_VARS` variables ``P d'`` then goes to the block interior point
#: over all groups (``ipm_first`` of :func:`convexnn.solvers.gated_active_set.solve_gated_active_set`),
#: whose cost is bounded (10-30 iterations), instead of Newton rounds from the guess, whose number is not
IPM_FIRST_GAP = 0.5


def _gated_polished(Xa: np.ndarray, masks: np.ndarray, op: MaskedDesign, loss: Any, yb: Any, y: np.ndarray,
                    lam: float, U0: Any, *, tol: float, max_iter: int, t0: float, reporter: Reporter,
                    lmax: float, rescue: bool = False) -> dict[str, Any]:
    r"""C-GReLU by R-FISTA to a loose gap, then the Newton polish on the support
    (:mod:`convexnn.solvers.gated_active_set`, CPU / numpy / float64) with column generation
    and the global certificate; R-FISTA resumes from the polish's best point when the polish
    cannot certify ``tol`` (support too large, round budget, no violated group left), and the
    point with the smaller certified gap of the two is returned.

    Phase 1 stops at the certified relative gap ``max(tol, GATED_POLISH_TOL)`` (R-FISTA
    identifies the support long before it converges), or on the CPU earlier by
    :func:`convexnn.solvers.gated_active_set.handover_rule`; the polish's Newton iterations
    count in ``max_iter``. After an early hand-over above the gap :data:`IPM_FIRST_GAP` on a program
    of at most :data:`convexnn.solvers.gated_ipm.MAX_VARS` variables the polish is the block interior
    point over all groups (ten logistic programs with columns over seven decades: 0.04-0.07 s each
    instead of 0.06-1.3 s, one of them certified where R-FISTA had spent ``max_iter`` after cycling
    Newton rounds). The returned record has the shape of the plain R-FISTA branch's,
    plus ``extra["polish"]``.

    ``rescue`` (``method="auto"`` will hand an uncertified answer to the interior point, see
    :data:`convexnn.solvers.dispatch.AUTO_RESCUE_SECONDS`): when the polish's block interior point
    failed (after cycling Newton rounds, or over all groups at once), R-FISTA is not resumed; the better point of the two is returned
    uncertified with ``extra["polish"]["left_to_rescue"]``. From there R-FISTA rarely certifies
    (logistic programs with columns over seven decades: 8 of 8 such ends spent the default budget,
    2-3 s, where Clarabel takes 0.2 s).
    """
    bk = op.bk
    # on the CPU (where the polish runs too) R-FISTA hands over early when its tail would cost more
    # than a polish from a rough start (a GPU runs R-FISTA to the hand-over gap)
    ratio = lmax / lam if lam > 0 else float("inf")
    handover = None
    if str(bk.device) == "cpu":
        handover = handover_rule(op.n, op.d, op.P, bool(loss.unit_curvature), fista_iterations(ratio),
                                 max(tol, GATED_POLISH_TOL), expected_support=support_size(ratio, op.P, op.n, op.d))
    r = solve_gated(op, loss, yb, lam, U0=U0, tol=max(tol, GATED_POLISH_TOL), max_iter=max_iter,
                    reporter=reporter, handover=handover)
    # not used: phase 1 already reached tol, or it ran out of max_iter before the hand-over gap
    stop = r.reason or ("certified" if r.converged else "max_iter")
    info: dict[str, Any] = {"used": False, "reason": "not_needed" if r.converged else "budget",
                            "rounds": 0, "newton_iterations": 0,
                            "working_set": 0, "certified_gap": r.gap.rel_gap, "fallback_fista": False}
    U, iters, history = r.U, r.iterations, list(r.history)
    converged, extra_ws, rounds, step = r.converged, r.working_set, r.outer, r.step
    own = None  # the polish's dual point when its block interior point certified with its own dual
    if (r.converged or r.reason == "handover") and r.gap.rel_gap > tol:
        # half of tol: the final certificate (the same dual candidate, rounding accounted for) then lands
        # below tol as well
        # an early hand-over far from the optimum on a small program: the interior point over all groups
        ipm_first = r.reason == "handover" and r.gap.rel_gap > IPM_FIRST_GAP and op.P * op.d <= GATED_IPM_MAX_VARS
        pol = solve_gated_active_set(Xa, masks, y, lam, loss, bk.to_numpy(r.U), tol=0.5 * tol, t0=t0,
                                     iterations0=r.iterations, max_iterations=max_iter - r.iterations,
                                     ipm_first=ipm_first)
        history += pol.history
        iters += pol.newton_iterations
        info = {"used": True, "reason": pol.reason, "rounds": pol.rounds,
                "newton_iterations": pol.newton_iterations, "working_set": pol.working_set,
                "certified_gap": pol.rel_gap, "fallback_fista": not pol.converged, "cycling": pol.cycling}
        for h in pol.history:
            reporter.update(int(h["iter"]), h["objective"], h["rel_gap"], extra="newton polish")
        # the polish's point stays in float64 (rounded to a float32 backend it would lose its
        # certificate); the final certificate is computed in float64 anyway
        if pol.converged:
            U, own = pol.U, pol.dual_point
            stop = "certified"
        elif pol.reason == "max_iter" or (rescue and pol.reason.startswith((CYCLED_TO_IPM, ALL_GROUPS_IPM))):
            # no R-FISTA after the polish: the budget is spent, or auto's rescue takes over; the better
            # of the two points
            U = pol.U if pol.rel_gap < r.gap.rel_gap else r.U
            own = pol.dual_point if U is pol.U else None
            converged = False
            info["fallback_fista"] = False
            if pol.reason == "max_iter":
                stop = "max_iter"
            else:
                stop = (f"the Newton polish stopped: {pol.reason}; R-FISTA not resumed (method='auto' hands the "
                        "program to the interior point)")
                info["left_to_rescue"] = True
        else:
            start = bk.asarray(pol.U) if pol.rel_gap < r.gap.rel_gap else r.U
            r2 = solve_gated(op, loss, yb, lam, U0=start, tol=tol, max_iter=max(max_iter - iters, 0),
                             step0=r.step, reporter=reporter)
            U, converged = r2.U, r2.converged
            stop = r2.reason or ("certified" if r2.converged else "max_iter")
            if not converged:
                stop = f"{_REASONS.get(stop, stop)} (R-FISTA after the Newton polish stopped: {pol.reason})"
                if pol.rel_gap < r2.gap.rel_gap:  # the polish's point is certified closer: it is returned
                    U, own = pol.U, pol.dual_point
                    stop += f"; the polish's point returned (certified gap {pol.rel_gap:.2e})"
            iters += r2.iterations
            history += r2.history
            extra_ws, rounds, step = r2.working_set, r.outer + r2.outer, r2.step
    return {"weights": {"U": U}, "converged": converged, "iterations": iters, "history": history,
            "lam_max": lmax, "reason": stop, "budget": max_iter,
            "extra": {"working_set": extra_ws, "rounds": rounds, "step": step, "polish": info, "own_dual": own}}


def _polish_info(r: ActiveSetResult, fallback: bool = False) -> dict[str, Any]:
    """The ``info["polish"]`` entry of a C-ReLU solve."""
    return {"used": True, "reason": r.reason, "rounds": r.rounds, "working_set": r.working_set,
            "certified_gap": r.certificate.rel_gap, "s": r.certificate.s, "fallback_al": fallback,
            "flops": r.flops}


def _polish_record(r: ActiveSetResult, lmax: float) -> dict[str, Any]:
    """A per-output result record (as the AL branch builds) from an active-set solve."""
    return {"weights": {"V": r.V, "W": r.W}, "converged": r.converged, "iterations": r.iterations,
            "history": r.history, "lam_max": lmax, "certificate": r.certificate, "projections": r.projections,
            "reason": "certified" if r.converged else "active-set polish: " + _REASONS.get(r.reason, r.reason),
            "extra": {"multipliers": r.multipliers, "polish": _polish_info(r)}}


def _design_masks(f: Formulation, masks: np.ndarray, bk: Backend) -> Any:
    """The masks handed to :class:`MaskedDesign`: the builder's float copy ``f.meta["masks"]``
    when it is in the backend's numpy dtype and equals ``masks`` (no second ``n x P`` float
    array), else the bool ``masks``."""
    m = f.meta.get("masks") if isinstance(getattr(f, "meta", None), dict) else None
    if (bk.lib == "numpy" and isinstance(m, np.ndarray) and m.dtype == bk.dtype and m.shape == masks.shape
            and np.array_equal(m, masks)):
        return m
    return masks


def _formulation_facets(f: Formulation, Xs: np.ndarray) -> ChamberFacets:
    """The facet rows of the chambers of ``f``'s patterns on the solvers' data ``Xs``
    (:class:`~convexnn.arrangements.facets.ChamberFacets`), kept on the formulation: the solves of one
    formulation (along lam, warm restarts) compute each chamber's hull once. A kept instance is used
    only for the same data, compared entry by entry."""
    kept = f.__dict__.get("_chamber_facets")
    if kept is not None and kept.Xa.shape == Xs.shape and np.array_equal(kept.Xa, Xs):
        return kept
    facets = ChamberFacets(Xs, np.asarray(f.patterns.gates, dtype=np.float64))
    f.__dict__["_chamber_facets"] = facets
    return facets


def _solve_first_order(f: Formulation, bk: Backend, *, tol: float, max_iter: int | None,
                       warm_start: Any, verbose: bool, progress: bool,
                       viol_tol: float | None, polish: bool = True, auto: bool = False,
                       rescue: bool = False) -> ConvexSolution:
    t0 = time.perf_counter()
    lam = f.lam_value
    relu = f.cone_constraints
    keys = f.weight_keys
    loss = require_smooth(f.loss)
    # a first-layer penalty other than the group lasso goes to R-FISTA (C-GReLU) or the augmented
    # Lagrangian (C-ReLU) and to their certified gaps; the polishes solve the group lasso only
    pen = _penalty_arg(f)
    no_polish = None if pen is None else str(
        missing_penalty_support(f, "relu_polish" if relu else "gated_polish")).split("; use method")[0]
    Xa, masks = np.asarray(f.Xa, dtype=np.float64), np.asarray(f.patterns.masks, dtype=bool)
    Y = np.asarray(f.y, dtype=np.float64)
    outputs = 1 if Y.ndim == 1 else Y.shape[1]
    n, d = Xa.shape
    P = masks.shape[1]
    warm = warm_weights(warm_start, keys, (P, d) if outputs == 1 else (P, d, outputs))
    # the solvers run on the exactly rescaled program (data and targets of unit size, scaling.py);
    # the weights come back to the given units before the final certificate
    sc = program_scaling(Xa, Y, loss)
    Xs, Ys, lam_s = sc.Xa(Xa), sc.y(Y), sc.lam(lam)
    loss = sc.loss(loss)  # the loss of the rescaled program (the Huber threshold scales with the targets)
    if warm is not None:
        warm = {key: sc.weights_in(w) for key, w in warm.items()}
    tol_eff = max(tol, 50.0 * bk.eps)
    vtol = max(min(tol, 1e-8) if viol_tol is None else float(viol_tol), 50.0 * bk.eps)
    if tol_eff > tol or (viol_tol is not None and vtol > float(viol_tol)):
        warnings.warn(f"{f.kind} first-order solver in {bk.dtype_name}: requested tol={tol:.1e}"
                      + ("" if viol_tol is None else f", viol_tol={float(viol_tol):.1e}")
                      + f" is below what {bk.dtype_name} can certify; using tol={tol_eff:.1e}"
                      + (f", viol_tol={vtol:.1e}" if relu else "")
                      + f" (50 x the machine epsilon {bk.eps:.1e})."
                      + (" Use dtype='float64' for tighter tolerances." if bk.dtype_name != "float64" else ""),
                      PrecisionWarning, stacklevel=_USER_FRAME)
    if max_iter is None:
        max_iter = 50000 if relu else 20000
    op = MaskedDesign(Xs, _design_masks(f, masks, bk), bk)
    multipliers = None
    if relu and isinstance(warm_start, ConvexSolution):
        multipliers = warm_start.info.get("multipliers")
        if multipliers is not None:
            multipliers = ([None if m is None else sc.in_target_units(m) for m in multipliers]
                           if isinstance(multipliers, list) else sc.in_target_units(multipliers))
    reporter = Reporter(verbose=verbose, progress=progress, total=max_iter,
                        objective_scale=sc.objective_out(1.0))
    results: list[dict[str, Any]] = []
    # max_iter is the budget of the whole solve (all outputs together), not of each output
    threads = contextlib.ExitStack()
    if bk.lib == "numpy" and n * d * P <= ONE_THREAD_WORK:
        threads.enter_context(single_blas_thread())
    try:
        for k in range(outputs):
            # an equal share of what is left (unused shares of earlier outputs carry over)
            used = int(sum(r["iterations"] for r in results))
            budget = max(0, (max_iter - used) // (outputs - k))
            y_k = Ys if outputs == 1 else Ys[:, k]
            yb = bk.asarray(y_k)
            lmax = lam_max_op(op, loss, yb, pen)

            def col(a: np.ndarray) -> np.ndarray:
                return a if outputs == 1 else a[..., k]

            if lam_s >= lmax:
                # zero is optimal: its certified gap is 0 with the dual point grad f(0)
                zero = bk.zeros((P, d))
                res = {"weights": {key: zero for key in keys}, "converged": True, "iterations": 0,
                       "history": [], "lam_max": lmax, "reason": "certified", "budget": budget,
                       "extra": {"zero_solution": True}}
                results.append(res)
                continue
            if not relu:
                U0 = None if warm is None else bk.asarray(col(warm["U"]))
                if polish and no_polish is None:
                    results.append(_gated_polished(Xs, masks, op, loss, yb, np.asarray(y_k, dtype=np.float64),
                                                   lam_s, U0, tol=tol_eff, max_iter=budget, t0=t0,
                                                   reporter=reporter, lmax=lmax, rescue=rescue and outputs == 1))
                    continue
                r = solve_gated(op, loss, yb, lam_s, U0=U0, tol=tol_eff, max_iter=budget, reporter=reporter,
                                penalty=pen)
                extra = {"working_set": r.working_set, "rounds": r.outer, "step": r.step}
                if polish:  # asked for, but not for this penalty
                    extra["polish"] = {"used": False, "reason": no_polish}
                results.append({"weights": {"U": r.U}, "converged": r.converged, "iterations": r.iterations,
                                "history": r.history, "lam_max": lmax, "reason": r.reason, "budget": budget,
                                "extra": extra})
            else:
                V0 = None if warm is None else bk.asarray(col(warm["V"]))
                W0 = None if warm is None else bk.asarray(col(warm["W"]))
                polished = None
                if polish and no_polish is None:
                    polished = _relu_active_set(
                        Xs, masks, op, loss, yb, np.asarray(y_k, dtype=np.float64), lam_s,
                        None if warm is None else col(warm["V"]), None if warm is None else col(warm["W"]),
                        tol=tol_eff, viol_tol=vtol, t0=t0, reporter=reporter, lmax=lmax, max_iter=budget,
                        auto=auto and outputs == 1, facets=_formulation_facets(f, Xs))
                    if polished.converged or polished.reason in ("no_violated_block", "max_iter"):
                        results.append({**_polish_record(polished, lmax), "budget": budget})
                        continue
                    # the polish could not finish (solver failure, round or block budget): the AL
                    # below takes over, warm-started from the polish's last point and multipliers
                    V0, W0 = bk.asarray(polished.V), bk.asarray(polished.W)
                    multipliers = polished.multipliers
                G0 = None
                if multipliers is not None:
                    m = multipliers[k] if isinstance(multipliers, list) else multipliers
                    if tuple(m.shape) == (n, 2 * P):
                        G0 = bk.asarray(m)
                spent = polished.iterations if polished is not None else 0
                r = solve_relu(op, loss, yb, lam_s, V0=V0, W0=W0, Gam0=G0, tol=tol_eff, viol_tol=vtol,
                               max_iter=max(budget - spent, 0), reporter=reporter, penalty=pen)
                extra = {"multipliers": r.Gam, "delta": r.delta, "outer": r.outer, "step": r.step}
                if polish and no_polish is not None:  # asked for, but not for this penalty
                    extra["polish"] = {"used": False, "reason": no_polish}
                if polished is not None:
                    extra["polish"] = _polish_info(polished, fallback=True)
                why = ("certified" if r.converged else "augmented Lagrangian: " + _REASONS.get(r.reason, r.reason))
                if polished is not None and not r.converged:
                    why += f" (after the active-set polish stopped: {polished.reason})"
                results.append({"weights": {"V": r.V, "W": r.W}, "converged": r.converged,
                                "reason": why, "budget": budget,
                                "iterations": r.iterations + (polished.iterations if polished else 0),
                                "history": (polished.history if polished else []) + r.history,
                                "lam_max": lmax, "extra": extra})
    finally:
        threads.close()
        reporter.close()
    # final certificate, always in float64 on the same device, of the rescaled program (the one the
    # solvers saw; its certificate is the given program's in other units, see scaling.py)
    bk64 = bk if bk.dtype_name == "float64" else bk.with_dtype("float64")
    op64 = op if bk64 is bk else MaskedDesign(Xs, masks, bk64)
    weights: dict[str, np.ndarray] = {}
    primal = dual = gap_abs = 0.0
    viol_abs = viol_rel = 0.0
    for k, res in enumerate(results):
        y_np = np.asarray(Ys if outputs == 1 else Ys[:, k], dtype=np.float64)
        y64 = bk64.asarray(y_np)
        w64 = {key: bk64.asarray(res["weights"][key]) for key in keys}
        if relu:
            Gam = res["extra"].get("multipliers")
            Gam64 = bk64.zeros((n, 2 * P)) if Gam is None else bk64.asarray(Gam)

            def relu_certificate(V: Any, W: Any, fit: Any, cert: Any = None) -> GapResult:
                g = relu_gap(op64, loss, y64, lam_s, V, W, fit, Gam64[:, :P], Gam64[:, P:], pen)
                if polish and pen is None and not res["extra"].get("zero_solution"):
                    # the global cone-aware certificate (NNLS multipliers, active_set.certify_relu)
                    # is valid as well; report the better of the two lower bounds
                    cert = cert or certify_relu(Xs, masks, y_np, lam_s, loss, bk64.to_numpy(V), bk64.to_numpy(W))
                    if cert.dual > g.dual:
                        g = GapResult(cert.primal, cert.dual, cert.gap, cert.rel_gap, cert.scale, None,
                                      bk64.asarray(cert.dual_point))
                return g

            g = None
            if _rounding_noise(op64, w64["V"], w64["W"], y_np):
                # every block's output is rounding noise next to the targets (a zero optimum reached
                # by an interior point): its relative cone violation measures that noise; the zero
                # point is returned instead when its own certificate meets tol
                zero = bk64.zeros(tuple(w64["V"].shape))
                fit = bk64.zeros((n,))
                g = relu_certificate(zero, zero, fit)
                if g.rel_gap <= tol_eff:
                    w64 = {"V": zero, "W": bk64.zeros(tuple(w64["W"].shape))}
                else:
                    g = None
            if g is None:
                fit = op64.fit(w64["V"] - w64["W"])
                g = relu_certificate(w64["V"], w64["W"], fit, res.get("certificate"))
            va, vr = relu_violation(op64, w64["V"], w64["W"])
            viol_abs, viol_rel = max(viol_abs, sc.out_target_units(va)), max(viol_rel, vr)
        else:
            # the polish's block interior point may have certified with its own dual (Huber): tried as well
            own = res["extra"].pop("own_dual", None)
            g = gated_gap(op64, loss, y64, lam_s, w64["U"], op64.fit(w64["U"]), pen,
                          dual=None if own is None else bk64.asarray(np.asarray(own, dtype=np.float64)))
        # the reported lower bound: the same dual candidate, every rounding error accounted for (the
        # floating-point gap above is what the solvers stop on; on badly conditioned data it can
        # exceed the optimum)
        cand, rho = bk64.to_numpy(g.dual_point), None
        if relu and res["extra"].get("multipliers") is not None:
            # -grad f at the point with the solver's cone multipliers (relu_gap's pairing) and, for
            # the blocks outside the working set, the polish's projection multipliers; the
            # certificate's candidates are multiples of it
            cand = -np.asarray(bk64.to_numpy(loss.grad_on(bk64, fit, y64)), dtype=np.float64)
            rho = bk64.to_numpy(Gam64)
        lb, p = certified_program_bound(Xs, masks, y_np, lam_s, loss, cand, cones=relu, penalty=pen,
                                        multipliers=rho, projections=res.get("projections"), rtol=0.1 * tol_eff,
                                        op=op64)
        own = getattr(res.get("certificate"), "v", None)
        if relu and rho is not None and own is not None and loss.outlier_split() is not None:
            # the polish certified with the interior point's own dual candidate (the Huber split form,
            # which its cone multipliers pair with): its rigorous bound too, the larger one reported
            lb2, p2 = certified_program_bound(Xs, masks, y_np, lam_s, loss, np.asarray(own, dtype=np.float64),
                                              cones=True, penalty=pen, multipliers=rho,
                                              projections=res.get("projections"), rtol=0.1 * tol_eff, op=op64)
            if lb2 > lb:
                lb, p = lb2, p2
        g = g.with_dual(lb, bk64.asarray(p))
        # back to the given units: F = b^2 F', v = b v', u = (b/a) u' (exact: powers of two)
        g = sc.gap_out(g)
        primal += g.primal
        dual += g.dual
        gap_abs += g.gap
        res["rel_gap"] = g.rel_gap
        res["dual_point"] = bk64.to_numpy(g.dual_point)
        res["lam_max"] = sc.lam_back(res["lam_max"])
        res["history"] = sc.history_out(res["history"])
        if res["extra"].get("multipliers") is not None:
            res["extra"]["multipliers"] = sc.out_target_units(res["extra"]["multipliers"])
        for key in keys:
            arr = sc.weights_out(bk64.to_numpy(w64[key]))
            weights.setdefault(key, []).append(arr)  # type: ignore[arg-type]
    weights = {key: (v[0] if outputs == 1 else np.stack(v, axis=-1)) for key, v in weights.items()}
    rel_gap = relative_gap(primal, dual)
    iterations = int(sum(r["iterations"] for r in results))
    # an output is done when the final certificate (rounding accounted for) is below tol: the solvers
    # stop on their own floating-point certificates, the final one decides; why each output stopped;
    # the solve's status is "max_iter" only when a budget ran out
    done = [bool(r.get("rel_gap", 1.0) <= tol_eff) for r in results]
    converged = all(done) and (not relu or viol_rel <= vtol)
    reasons = ["certified" if ok else _REASONS.get(r.get("reason", "max_iter"), r.get("reason", "max_iter"))
               for ok, r in zip(done, results)]
    # a solver that stopped on its own certificate whose final one is above tol (rounding)
    reasons = [above_tol_reason(r.get("rel_gap", float("nan"))) if (x == "certified" and not ok) else x
               for x, ok, r in zip(reasons, done, results)]
    if relu and not converged and all(done):
        reasons = [f"relative cone violation {viol_rel:.2e} above viol_tol {vtol:.1e}"]
    budget_spent = any(_REASONS["max_iter"] in x for x in reasons)
    status = "optimal" if converged else ("max_iter" if budget_spent else "not_converged")
    bk.synchronize()
    wall = time.perf_counter() - t0
    info: dict[str, Any] = {
        "method": "first_order",
        "gap": rel_gap,
        "gap_abs": gap_abs,
        "dual_value": dual,
        "violation": viol_rel,
        "violation_abs": viol_abs,
        "tol": tol_eff,
        "dual_point": results[0]["dual_point"] if outputs == 1 else np.stack([r["dual_point"] for r in results], -1),
        "lam_max": results[0]["lam_max"] if outputs == 1 else [r["lam_max"] for r in results],
        "history": results[0]["history"] if outputs == 1 else [r["history"] for r in results],
        "backend": repr(bk),
        "device": bk.device,
        "dtype": bk.dtype_name,
        "max_iter": max_iter,
        "stop_reason": "certified" if converged else "; ".join(
            sorted({x for x in reasons if x != "certified"})),
    }
    extras = [r["extra"] for r in results]
    for key in extras[0]:
        info[key] = extras[0][key] if outputs == 1 else [e.get(key) for e in extras]
    if not converged:
        msg = (f"{f.kind} first-order solver stopped without certifying tol {tol_eff:.1e}: "
               f"{info['stop_reason']}; certified relative gap {rel_gap:.3e}")
        if relu:
            msg += f", relative cone violation {viol_rel:.2e}"
        msg += f"; {iterations} iterations used of the budget max_iter={max_iter}"
        if outputs > 1:
            msg += f" (shared by {outputs} outputs)"
        msg += ("; raise max_iter, loosen tol, or use method='interior'." if budget_spent else
                "; loosen tol, or use method='interior'.")
        warnings.warn(msg, ConvergenceWarning, stacklevel=_USER_FRAME)
    name = "fista"
    if relu:  # the active-set path produced the answer unless the AL fallback ran
        pol = [e.get("polish") for e in extras]
        name = "active_set" if all(p and p.get("used") and not p.get("fallback_al") for p in pol) else "al"
    sol = ConvexSolution(formulation=f, weights=weights, value=float(primal), status=status,
                         solver=name, solve_time=wall, compile_time=0.0,
                         iterations=iterations, lam=lam, info=info)
    return sol
