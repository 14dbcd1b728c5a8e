r"""C-GReLU by the block-structured primal-dual interior point, with a global certificate.

C-GReLU over the patterns :math:`D_1, \dots, D_P` (Mishkin, Sahiner & Pilanci, "Fast Convex
Optimization for Two-Layer ReLU Networks", ICML 2022) is the group lasso

.. math::

    \min_U\ f\Big(\sum_i D_i X_a u_i\Big) + \lambda\sum_i \|u_i\|_2 .

R-FISTA (:func:`convexnn.solvers.fista.solve_gated`) needs many iterations when :math:`\lambda`
is small and the support is dense (its rate depends on the conditioning of the correlated masked
design). The interior point of :mod:`convexnn.solvers.block_ipm` (``cones=False``: one
second-order cone per group, Nesterov--Todd scaling, Mehrotra predictor-corrector) needs a
dozen or so iterations whatever :math:`\lambda`; each factorizes one ``k d' x k d'`` system, or,
when ``n`` is small next to ``k d'``, solves it by the Sherman--Morrison--Woodbury identity in
:math:`O(n^2 k d')`. A smooth loss other than the squared one enters through its gradient and
diagonal curvature (``Loss.grad_on`` / ``Loss.curvature_on``).

**Working set.** With ``P d'`` at most ``max_vars`` the program over all ``P`` groups is solved
directly. Otherwise a few R-FISTA iterations (to the certified relative gap ``screen_tol``) give
a screening point; its support and the groups whose dual constraint
:math:`\|(D_iX_a)^\top\nabla f\| \le \lambda` is violated, most violated first, form the working
set, and the restricted program is solved by the interior point. The certificate of
:func:`convexnn.solvers.gap.gated_gap` is then computed over **all** groups (its dual point
:math:`\hat\theta = s\nabla f` is feasible for the full dual); violated groups outside the
working set join it (at most doubling it) and the interior point restarts from its last
interior iterate (:func:`convexnn.solvers.block_ipm.warm_start`), as in the working sets of
Blitz (Johnson & Guestrin, ICML 2015) and Celer (Massias, Gramfort & Salmon, ICML 2018).

**Sparsity.** Interior-point iterates are never exactly zero: groups whose dual constraint is
strictly inactive (:math:`\|A_i^\top\hat\theta\| < (1-10^{-6})\lambda`, zero at the optimum by
the KKT conditions) are set to zero when the certified relative gap stays below ``tol`` (or does
not increase).

Everything is float64 on the CPU; the answer is certified by the same certified relative duality
gap as the first-order solvers, over all groups.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from convexnn.arrangements.limits import one_blas_thread
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss
from convexnn.solvers.backend import get_backend
from convexnn.solvers.block_ipm import iteration_flops as ipm_iteration_flops
from convexnn.solvers.block_ipm import solve_block_ipm, warm_start
from convexnn.solvers.gap import (GapResult, above_tol_reason, certified_program_bound, gated_gap, lam_max_op,
                                 require_smooth)
from convexnn.solvers.gated_active_set import (
    HANDOVER_MIN_ITERATIONS,
    POLISH_NEWTON_STEPS,
    fista_iteration_seconds,
    newton_step_seconds,
)
from convexnn.solvers.operators import MaskedDesign
from convexnn.solvers.protocol import Solver, warm_weights
from convexnn.solvers.scaling import program_scaling

__all__ = ["GatedIPMResult", "GatedBlockIPM", "solve_gated_ipm", "ipm_iteration_flops", "estimate_ipm_seconds",
           "estimate_fista_seconds", "MAX_VARS"]

#: Programs with ``P d'`` up to this many variables are solved over all groups at once; larger
#: ones start from a screened working set.
MAX_VARS = 1500
#: Relative tolerance of the violated-group test :math:`\|A_i^\top\theta\| > \lambda(1 + \cdot)`.
_ADD_RTOL = 1e-9


@dataclass
class GatedIPMResult:
    """Outcome of :func:`solve_gated_ipm`.

    Attributes
    ----------
    U : ndarray, shape (P, d')
    gap : GapResult
        The certificate over all groups at ``U`` (:func:`convexnn.solvers.gap.gated_gap`).
    converged : bool
        ``gap.rel_gap <= tol``.
    reason : str
        ``"certified"``, ``"no_violated_block"`` (the restricted solves' accuracy limits the gap),
        ``"max_rounds"``, ``"max_iter"`` (the iteration budget ``max_iterations``) or ``"ipm_failed"``
        (the interior point stalled on every attempt).
    rounds : int
        Restricted interior-point solves.
    iterations : int
        Interior-point iterations (all rounds) plus the screening R-FISTA iterations.
    ipm_iterations : int
    screen_iterations : int
    working_set : int
        Groups in the last working set.
    history : list of dict
        ``iter``, ``time``, ``objective``, ``rel_gap``, ``working_set`` per round.
    """

    U: np.ndarray
    gap: GapResult
    converged: bool
    reason: str
    rounds: int
    iterations: int
    ipm_iterations: int
    screen_iterations: int
    working_set: int
    history: list[dict[str, float]] = field(default_factory=list)


def _group_norms(op: MaskedDesign, theta: Any) -> np.ndarray:
    return np.asarray(op.bk.to_numpy(op.bk.row_norms(op.adjoint(theta))), dtype=np.float64)


def _sparsify(op: MaskedDesign, loss: Loss, yb: Any, lam: float, U: np.ndarray, g: GapResult,
              tol: float) -> tuple[np.ndarray, GapResult]:
    """Zero the groups whose dual constraint is strictly inactive at the certificate's dual point,
    when the certified relative gap stays below ``max(gap before, tol)``."""
    c = np.asarray(g.group_norms, dtype=np.float64) * g.scale
    off = (c < (1.0 - 1e-6) * lam) & np.any(U != 0.0, axis=1)
    if not off.any():
        return U, g
    U2 = U.copy()
    U2[off] = 0.0
    g2 = gated_gap(op, loss, yb, lam, U2, op.fit(U2))
    return (U2, g2) if g2.rel_gap <= max(g.rel_gap, tol) else (U, g)


@one_blas_thread
def solve_gated_ipm(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: str | Loss, *,
                    tol: float = 1e-8, eps: float = 1e-10, eps_min: float = 1e-13,
                    max_vars: int = MAX_VARS, screen: bool | None = None, screen_tol: float = 1e-2,
                    screen_iter: int = 500, U0: np.ndarray | None = None, max_rounds: int = 30,
                    add_limit: int = 10, t0: float | None = None,
                    work0: np.ndarray | None = None, max_iterations: int | None = None) -> GatedIPMResult:
    r"""Solve C-GReLU (group lasso, scalar output) by the block interior point, certified over all
    groups (see the module docstring).

    Parameters
    ----------
    Xa : ndarray, shape (n, d')
    masks : ndarray of bool, shape (n, P)
    y : ndarray, shape (n,)
    lam : float
        :math:`\lambda > 0`.
    loss : str or Loss
        A smooth loss with ``curvature_on`` (squared, logistic).
    tol : float
        Target certified relative duality gap.
    eps : float
        Relative accuracy of the restricted interior-point solves (tightened by 100x, down to
        ``eps_min``, when no group is violated but the gap is above ``tol``; not after a cold solve
        that stalled, which a tighter ``eps`` repeats: the search ends there, ``"ipm_failed"``).
    max_vars : int
        Solve over all groups when ``P d' <= max_vars``; otherwise screen first.
    screen : bool, optional
        Force (True) or skip (False) the screening step; default ``P d' > max_vars``.
    screen_tol, screen_iter : float, int
        The screening R-FISTA stops at this certified relative gap or after this many iterations.
    U0 : ndarray, shape (P, d'), optional
        Warm start for the screening (its support joins the working set).
    max_rounds : int
        Restricted solves at most.
    add_limit : int
        Violated groups added per round: at most ``max(add_limit, |W|)``, most violated first.
    t0 : float, optional
        ``time.perf_counter()`` at the start of the whole solve (for the history's times).
    work0 : ndarray of int, optional
        The first working set (group indices) instead of screening or all groups: e.g. the groups
        a Newton polish cycled between (:func:`convexnn.solvers.gated_active_set.solve_gated_active_set`).
    max_iterations : int, optional
        Budget of iterations, the screening's R-FISTA iterations and the interior point's over all
        restricted solves: each gets at most what is left, and no solve starts once it is spent
        (``reason="max_iter"``).

    Returns
    -------
    GatedIPMResult
    """
    from convexnn.solvers.fista import solve_gated

    t0 = time.perf_counter() if t0 is None else t0
    L = require_smooth(loss)
    Xa = np.asarray(Xa, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    y = np.asarray(y, dtype=np.float64)
    n, d = Xa.shape
    P = masks.shape[1]
    bk = get_backend(None, "float64")
    op = MaskedDesign(Xa, masks, bk)
    yb = bk.asarray(y)
    history: list[dict[str, float]] = []
    screen = P * d > max_vars if screen is None else bool(screen)
    screen_its = 0
    if work0 is not None:
        work = np.unique(np.asarray(work0, dtype=np.int64))
        if work.size == 0 or work[0] < 0 or work[-1] >= P:
            raise InputError(f"work0 must hold group indices in [0, {P}); got {work0!r}.")
    elif not screen:
        work = np.arange(P)
        U = np.zeros((P, d))
    else:
        r = solve_gated(op, L, yb, lam, U0=None if U0 is None else bk.asarray(U0), tol=max(tol, screen_tol),
                        max_iter=screen_iter if max_iterations is None else max(min(screen_iter, max_iterations), 0))
        screen_its = r.iterations
        U = np.asarray(bk.to_numpy(r.U), dtype=np.float64)
        c = _group_norms(op, L.grad_on(bk, op.fit(bk.asarray(U)), yb))
        supp = np.flatnonzero(np.linalg.norm(U, axis=1) > 0)
        room = max(add_limit, max_vars // max(d, 1) - len(supp))
        viol = np.setdiff1d(np.flatnonzero(c > lam * (1.0 + _ADD_RTOL)), supp)
        viol = viol[np.argsort(-c[viol], kind="stable")][:room]
        work = np.union1d(supp, viol)
        if work.size == 0:
            work = np.array([int(np.argmax(c))])
    ones = np.ones(P)
    warm = None
    rounds = ipm_its = 0
    reason = "max_rounds"
    best: tuple[np.ndarray, GapResult] | None = None
    def left() -> int:
        """Iterations the next restricted solve may take (100, or what the budget leaves)."""
        return 100 if max_iterations is None else min(100, int(max_iterations) - screen_its - ipm_its)

    while rounds < max_rounds:
        if left() <= 0:
            reason = "max_iter"
            break
        rounds += 1
        wl = [int(i) for i in work]
        start = None if warm is None else warm_start(warm[0], warm[1], wl, n, d, lam, cones=False)
        res = solve_block_ipm(Xa, masks[:, work], ones[work], y, lam, L, cones=False, eps=eps, start=start,
                              max_iter=left())
        ipm_its += res.iterations
        cold = start is None
        if not cold and max(res.gap, res.pres, res.dres) > 1e-7 and left() > 0:
            res = solve_block_ipm(Xa, masks[:, work], ones[work], y, lam, L, cones=False, eps=eps, max_iter=left())
            ipm_its += res.iterations
            cold = True
        U = np.zeros((P, d))
        U[work] = res.X
        # (the Huber split form's own dual candidate is tried as well: the better certificate is kept)
        g = gated_gap(op, L, yb, lam, U, op.fit(U), dual=None if res.dual is None else bk.asarray(res.dual))
        U, g = _sparsify(op, L, yb, lam, U, g, tol)
        if best is None or g.gap < best[1].gap:
            best = (U, g)
        history.append({"iter": screen_its + ipm_its, "time": time.perf_counter() - t0, "objective": g.primal,
                        "rel_gap": g.rel_gap, "working_set": int(work.size), "round": rounds})
        if g.rel_gap <= tol:
            reason = "certified"
            break
        c = np.asarray(g.group_norms, dtype=np.float64)
        inw = np.zeros(P, dtype=bool)
        inw[work] = True
        add = np.flatnonzero(~inw & (c > lam * (1.0 + _ADD_RTOL)))
        if add.size == 0:
            if left() <= 0:
                reason = "max_iter"
                break
            # tighter, from a cold start; but a cold solve that stalled follows the same path to the same
            # stall at any eps (logistic programs with columns over seven decades: three cold solves of
            # 0.2-0.4 s each ended where the first had)
            if eps > eps_min and (res.status == "optimal" or not cold):
                eps = max(eps * 1e-2, eps_min)
                warm = None
                continue
            reason = "no_violated_block" if res.status == "optimal" else "ipm_failed"
            break
        add = add[np.argsort(-c[add], kind="stable")][:max(add_limit, int(work.size))]
        warm = (res.state, wl) if res.state is not None else None
        work = np.union1d(work, add)
    if best is None:  # the budget was spent before the first solve: the certificate of zero
        U = np.zeros((P, d))
        best = (U, gated_gap(op, L, yb, lam, U, op.fit(U)))
    U, g = best
    return GatedIPMResult(U, g, g.rel_gap <= tol, reason, rounds, screen_its + ipm_its, ipm_its, screen_its,
                          int(work.size), history)


def lam_ratio(Xa: np.ndarray, masks: np.ndarray, y: np.ndarray, lam: float, loss: Loss) -> float:
    r""":math:`\lambda_{\max}/\lambda` (one adjoint pass over all groups; ``inf`` for ``lam <= 0``;
    for vector outputs ``y`` of shape ``(n, c)`` the largest over the outputs)."""
    bk = get_backend(None, "float64")
    op = MaskedDesign(np.asarray(Xa, dtype=np.float64), np.asarray(masks, dtype=bool), bk)
    Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)  # vector outputs: the largest ratio
    lmax = max(lam_max_op(op, loss, bk.asarray(np.ascontiguousarray(Y[:, j]))) for j in range(Y.shape[1]))
    return float("inf") if lam <= 0 else lmax / lam


# ---------------------------------------------------------------------------------------- cost models
#: Effective flop rate (flop/s) of the dense kernels (BLAS-3 products and Cholesky) of the interior
#: point on one core of the benchmark machine (``bench/bench_matrix.py``; the Newton polish's time
#: model is :func:`convexnn.solvers.gated_active_set.newton_step_seconds`).
FLOP_RATE = 2.0e10
#: Seconds of Python / numpy overhead per interior-point iteration (~40 small array operations) and
#: per block and iteration (the ``(k, d'+1, d'+1)`` cone scalings); measured 0.45 ms at 6 blocks,
#: 2.6 ms at 91.
_IPM_ITER_SECONDS = 3e-4
_IPM_BLOCK_SECONDS = 2.5e-5
#: Interior-point iterations of one cold restricted solve (10-15 measured at ``eps = 1e-10``).
_IPM_ITERS = 14
#: ``method="auto"`` hands a C-GReLU program from R-FISTA to the block interior point only when the
#: cost models predict it at least this much faster (a margin for their error) ...
AUTO_IPM_SPEEDUP = 1.5
#: ... and saving at least this many seconds (below it fixed overheads dominate both).
AUTO_IPM_MIN_SAVING = 0.1
#: ... or whatever the cost models say, when ``lam_max / lam`` is at least this (squared loss,
#: ``P d' <=`` :data:`MAX_VARS`): the support is dense and degenerate, the Newton polish of R-FISTA
#: needs many column-generation rounds (or cycles), and the interior point solves over all groups at
#: once. Not for the logistic loss (set when the interior point still stalled on nearly separable
#: labels at ``lam = 1e-4 lam_max``; since its closed-form cone blocks and balanced centring it certifies
#: 5 of 6 such programs, and the first-order path reaches it after a rough hand-over,
#: :data:`convexnn.solvers.first_order.IPM_FIRST_GAP`).
#: Measured (``bench/RESULTS_degenerate.md``, ``bench/RESULTS_matrix.md``): 1.8-4.8x faster than the
#: first-order path at ``lam_max / lam`` of 3e3-2.5e5; at 1e3 (diabetes, ``lam = 1e-3 lam_max``)
#: R-FISTA + Newton is faster (0.10 s against 0.15 s).
AUTO_IPM_RATIO = 3e3


def fista_iterations(ratio: float) -> float:
    r"""R-FISTA iterations to the hand-over gap of the Newton polish as a function of
    :math:`\rho = \lambda_{\max}/\lambda`: :math:`12\rho^{0.85}` (fitted on the C-GReLU cells of
    ``bench/bench_matrix.py``, :math:`\rho` from 2 to 1000: 43 .. 15030 iterations)."""
    return float(min(max(12.0 * max(ratio, 1.0) ** 0.85, 20.0), 20000.0))


def support_size(ratio: float, P: int, n: int, d: int) -> int:
    r"""Expected support size of C-GReLU, :math:`\min(P, 5\rho^{0.75}, 2n/d')` (fitted on the same
    cells: 3 groups at :math:`\rho = 2` .. 98 of 100 at :math:`\rho = 1000`; the supports hold at
    most about ``2 n`` variables there)."""
    return int(min(P, max(1.0, 5.0 * max(ratio, 1.0) ** 0.75), max(1.0, 2.0 * n / d)))


def estimate_fista_seconds(n: int, d: int, P: int, ratio: float, quadratic: bool) -> float:
    r"""Predicted seconds of R-FISTA + the Newton polish on C-GReLU (:func:`convexnn.solve`,
    ``method="first_order"``, on the CPU).

    R-FISTA alone to the hand-over gap costs :func:`fista_iterations` times the two masked
    products (:math:`4nd'P` flops) and the per-iteration overhead; the polish then needs a few
    Newton steps on the expected support (:func:`support_size`). When that tail is long, R-FISTA
    hands over early (:func:`convexnn.solvers.gated_active_set.handover_rule`) and the polish
    takes :data:`~convexnn.solvers.gated_active_set.POLISH_NEWTON_STEPS` steps from a rough
    start; the estimate is the smaller of the two. A Newton step costs
    :func:`~convexnn.solvers.gated_active_set.newton_step_seconds` (dense Cholesky or the
    Sherman--Morrison--Woodbury solve, whichever is cheaper, plus the per-step overhead; the same
    time model as the hand-over rule's); a support too large for the polish leaves R-FISTA
    alone."""
    per_it = fista_iteration_seconds(n, d, P)
    t = fista_iterations(ratio) * per_it
    step = newton_step_seconds(n, support_size(ratio, P, n, d), d, quadratic)
    if not np.isfinite(step):
        return t
    early = HANDOVER_MIN_ITERATIONS * per_it + POLISH_NEWTON_STEPS * step
    return min(t + 4.0 * step, early)


def estimate_ipm_seconds(n: int, d: int, P: int, ratio: float, quadratic: bool,
                         max_vars: int = MAX_VARS) -> float:
    r"""Predicted seconds of :func:`solve_gated_ipm`: :data:`_IPM_ITERS` interior-point iterations of
    :func:`ipm_iteration_flops` on all ``P`` groups (``P d' <= max_vars``), or, with screening, a
    third of the R-FISTA iterations (at most 500) and 1.5x the iterations on twice the expected
    support (:func:`support_size`), plus the Gram matrix of the squared loss and the
    certificates."""
    if P * d <= max_vars:
        k, t, its = P, 0.0, _IPM_ITERS
    else:
        k = min(P, 2 * support_size(ratio, P, n, d))
        t = min(fista_iterations(ratio) / 3.0, 500.0) * fista_iteration_seconds(n, d, P)
        its = 1.5 * _IPM_ITERS
    flops, wood = ipm_iteration_flops(n, k, d, quadratic)
    setup = n * float(k * d) ** 2 if quadratic and not wood else 0.0
    return (t + its * (flops / FLOP_RATE + _IPM_ITER_SECONDS + _IPM_BLOCK_SECONDS * k)
            + (setup + 8.0 * n * d * P) / FLOP_RATE)


# ---------------------------------------------------------------------------------------- the solver
def _problem(f: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, Loss]:
    return (np.asarray(f.Xa, dtype=np.float64), np.asarray(f.patterns.masks, dtype=bool),
            np.asarray(f.y, dtype=np.float64), require_smooth(f.loss))


_RATIO_CACHE: dict[tuple, tuple[Any, float]] = {}


def program_lam_ratio(f: Any) -> float:
    """:math:`\\lambda_{\\max}/\\lambda` of ``f`` (a few recent ones cached: ``auto`` asks several cost
    models about the same program)."""
    lam = float(f.lam_value)
    key = (id(f), id(f.y), id(f.patterns), lam)
    hit = _RATIO_CACHE.get(key)
    if hit is not None and hit[0]() is f:
        return hit[1]
    Xa, M, y, L = _problem(f)
    if len(_RATIO_CACHE) > 16:
        _RATIO_CACHE.clear()
    value = lam_ratio(Xa, M, y, lam, L)
    try:
        _RATIO_CACHE[key] = (weakref.ref(f), value)
    except TypeError:  # an object without weak references: not cached
        pass
    return value


def gated_refusal(f: Any) -> str | None:
    """Why :class:`GatedBlockIPM` cannot solve ``f`` (None when it can); read from its capabilities."""
    if not getattr(f, "block_program", False):
        return ("not a two-layer block program (a loss of sum_i D_i Xa u_i plus lam times a group "
                f"penalty), but {getattr(f, 'kind', type(f).__name__)!r}")
    if bool(getattr(f, "cone_constraints", False)):
        return "cone constraints (C-ReLU): the gated block interior point solves programs without constraints"
    pen = getattr(f, "penalty", None)
    name = "group_l2" if pen is None else getattr(pen, "name", "group_l2")
    if name != "group_l2":
        return f"the {name!r} first-layer penalty: the block interior point solves the group lasso only"
    from convexnn.formulations.losses import get_loss

    L = get_loss(f.loss)
    if L.lipschitz is None:
        return f"the {L.name!r} loss is non-smooth (no Lipschitz gradient)"
    if type(L).curvature_on is Loss.curvature_on:
        return f"the {L.name!r} loss has no curvature (curvature_on) for the Newton systems"
    if np.ndim(f.y) != 1:
        return "vector outputs: the block interior point solves scalar outputs"
    return None


def cpu64(device: Any, dtype: Any) -> bool:
    """Whether ``device`` / ``dtype`` (of :func:`convexnn.solve`) allow a CPU float64 solve."""
    return device in (None, "cpu") and (dtype is None or "64" in str(dtype))


def prefer_ipm(formulation: Any) -> tuple[bool, str]:
    r"""Whether ``method="auto"`` should hand the C-GReLU program ``formulation`` from R-FISTA to
    the block interior point, and why: it solves over all groups (``P d' <=`` :data:`MAX_VARS`) and
    the cost models predict it :data:`AUTO_IPM_SPEEDUP` times faster and at least
    :data:`AUTO_IPM_MIN_SAVING` seconds faster, or (squared loss) ``lam_max / lam >=`` :data:`AUTO_IPM_RATIO`."""
    n, d = np.shape(formulation.Xa)
    P = int(np.shape(formulation.patterns.masks)[1])
    if P * d > MAX_VARS:
        # the interior point would start from a screened working set whose final size (and so
        # its cost) the cost model cannot predict well: R-FISTA with its own working sets keeps it
        return False, (f"P d' = {P * d} > {MAX_VARS}: the block interior point would need screening, "
                       "whose cost is not predictable")
    quad = bool(require_smooth(formulation.loss).unit_curvature)
    ratio = program_lam_ratio(formulation)
    if quad and ratio >= AUTO_IPM_RATIO:
        return True, (f"lam_max/lam = {ratio:.3g} >= {AUTO_IPM_RATIO:g} with P d' = {P * d} <= {MAX_VARS}: "
                      "a dense support, solved over all groups at once")
    t_ipm = estimate_ipm_seconds(n, d, P, ratio, quad)
    t_fista = estimate_fista_seconds(n, d, P, ratio, quad)
    yes = t_ipm * AUTO_IPM_SPEEDUP <= t_fista and t_fista - t_ipm >= AUTO_IPM_MIN_SAVING
    return yes, (f"estimated block interior point time {t_ipm:.2g} s, R-FISTA {t_fista:.2g} s "
                 f"(lam_max/lam = {ratio:.3g})")


class GatedBlockIPM(Solver):
    """C-GReLU (group lasso, smooth loss with curvature, scalar output) by the block-structured
    interior point with a global certificate (:func:`solve_gated_ipm`), CPU / float64.

    ``estimate_seconds``: :func:`estimate_ipm_seconds`. ``method="auto"`` reaches it when R-FISTA
    (registered before it) declines in its favour (:func:`prefer_ipm`); it declines itself when a
    device other than the CPU or a dtype other than float64 is asked for."""

    name = "gated_ipm"
    family = "structured"
    label = "block interior point"

    def supports(self, formulation: Any) -> str | None:
        return gated_refusal(formulation)

    def estimate_seconds(self, formulation: Any) -> float:
        n, d = np.shape(formulation.Xa)
        P = int(np.shape(formulation.patterns.masks)[1])
        quad = bool(require_smooth(formulation.loss).unit_curvature)
        return estimate_ipm_seconds(n, d, P, program_lam_ratio(formulation), quad)

    def solve(self, formulation: Any, *, auto: bool = False, tol: float = 1e-8, warm_start: Any = None,
              device: str | None = None, dtype: Any = None, verbose: bool = False,
              max_iter: int | None = None, **options: Any) -> Any:
        from convexnn.formulations.formulation import ConvexSolution
        from convexnn.solvers.protocol import Decline

        t0 = time.perf_counter()
        Xa, M, y, L = _problem(formulation)
        n, d = Xa.shape
        P = M.shape[1]
        lam = float(formulation.lam_value)
        est = self.estimate_seconds(formulation)
        ratio = program_lam_ratio(formulation)
        est_fista = estimate_fista_seconds(n, d, P, ratio, bool(L.unit_curvature))
        if auto and not cpu64(device, dtype):
            raise Decline(f"device={device!r}, dtype={dtype!r} asked for: the block interior point runs "
                          "on the CPU in float64")
        tol_eff = max(float(tol), 1e-14)
        bk = get_backend(None, "float64")
        op = MaskedDesign(Xa, M, bk)
        lmax = lam_max_op(op, L, bk.asarray(y))
        warm = warm_weights(warm_start, ("U",), (P, d))
        U0 = None if warm is None else warm["U"]
        if lam >= lmax:
            U = np.zeros((P, d))
            g = gated_gap(op, L, bk.asarray(y), lam, U, op.fit(U))
            r = GatedIPMResult(U, g, True, "certified", 0, 0, 0, 0, 0, [])
        else:
            # on the exactly rescaled program (data and targets of unit size: convexnn/solvers/scaling.py);
            # its certificate is the given program's in other units
            sc = program_scaling(Xa, y, L)
            r = solve_gated_ipm(sc.Xa(Xa), M, sc.y(y), sc.lam(lam), sc.loss(L), tol=tol_eff,
                                U0=None if U0 is None else sc.weights_in(U0), t0=t0, max_iterations=max_iter)
            r = replace(r, U=sc.weights_out(r.U), gap=sc.gap_out(r.gap), history=sc.history_out(r.history))
        # the reported lower bound: the same dual candidate with every rounding error accounted for
        g = r.gap.with_dual(*certified_program_bound(Xa, M, y, lam, L, np.asarray(r.gap.dual_point, dtype=np.float64),
                                                     cones=False, op=op))
        if r.converged and g.rel_gap > tol_eff:
            r = replace(r, converged=False, reason=above_tol_reason(g.rel_gap))
        status = "optimal" if r.converged else ("max_iter" if r.reason == "max_iter" else "not_converged")
        info = {"method": self.name, "gap": g.rel_gap, "gap_abs": g.gap, "dual_value": g.dual, "violation": 0.0,
                "violation_abs": 0.0, "tol": tol_eff, "dual_point": np.asarray(g.dual_point, dtype=np.float64),
                "lam_max": lmax, "history": r.history, "backend": repr(bk), "device": "cpu", "dtype": "float64",
                "stop_reason": r.reason, "rounds": r.rounds, "working_set": r.working_set,
                "ipm_iterations": r.ipm_iterations, "screen_iterations": r.screen_iterations,
                "estimated_seconds": est, "estimated_fista_seconds": est_fista}
        if not r.converged:
            import warnings

            from convexnn.errors import ConvergenceWarning

            why = f"iteration budget (max_iter={max_iter}) spent" if r.reason == "max_iter" else r.reason
            warnings.warn(f"{formulation.kind} block interior point stopped without certifying tol {tol_eff:.1e}: "
                          f"{why}; certified relative gap {g.rel_gap:.3e}; use method='interior' or "
                          "method='first_order'.", ConvergenceWarning, stacklevel=3)
        return ConvexSolution(formulation=formulation, weights={"U": r.U}, value=float(g.primal), status=status,
                              solver="block_ipm", solve_time=time.perf_counter() - t0, compile_time=0.0,
                              iterations=r.iterations, lam=lam, info=info)
