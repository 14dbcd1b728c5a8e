r"""Accelerated proximal gradient (R-FISTA) for group-lasso programs, and the C-GReLU solver.

The composite problem is :math:`\min_x h(x) + \lambda \sum_i R(x_i)` with :math:`h` smooth and
:math:`R` the program's first-layer penalty (:mod:`convexnn.formulations.penalties`; the group
lasso :math:`R = \|\cdot\|_2` by default, whose prox is written below; the sparse group lasso
soft-thresholds first, then shrinks the group)
(Mishkin (PhD thesis, Stanford), bonus slides "R-FISTA"; Beck & Teboulle 2009). One iteration from the extrapolated point
:math:`y_k` with step :math:`\eta_k`:

.. math::

    x_{k+1} = \operatorname{prox}_{\eta_k\lambda\|\cdot\|_{2,1}}\bigl(y_k - \eta_k\nabla h(y_k)\bigr),
    \qquad [\operatorname{prox}_{\tau\|\cdot\|_{2,1}}(v)]_i = \Bigl(1 - \frac{\tau}{\|v_i\|_2}\Bigr)_+ v_i,

    t_{k+1} = \tfrac12\bigl(1 + \sqrt{1 + 4t_k^2}\bigr), \qquad
    y_{k+1} = x_{k+1} + \frac{t_k - 1}{t_{k+1}}(x_{k+1} - x_k).

* **Line search** (Beck & Teboulle): :math:`\eta_k` is halved until
  :math:`h(x_{k+1}) \le h(y_k) + \langle\nabla h(y_k), x_{k+1}-y_k\rangle + \tfrac1{2\eta_k}\|x_{k+1}-y_k\|^2`,
  and grown by a constant factor after every accepted step (so it tracks the local curvature).
* **Adaptive restart** (O'Donoghue & Candès 2015, gradient scheme): momentum is reset
  (:math:`t_{k+1} = 1`, :math:`y_{k+1} = x_{k+1}`) whenever
  :math:`\langle y_k - x_{k+1}, x_{k+1} - x_k\rangle > 0`, i.e. the momentum points against the
  proximal-gradient step.
* **Linear images.** :math:`h` depends on :math:`x` through a linear map (the fit
  :math:`\mathcal A x`, and for C-ReLU the cone map); images of :math:`y_{k+1}` are
  extrapolated from those of :math:`x_{k+1}, x_k`, so one iteration costs one forward and one
  adjoint application (plus one forward per backtracking step).

**C-GReLU** (:func:`solve_gated`) adds a *working set* over groups (as in Blitz / Celer
strategies for sparse problems): FISTA runs on the patterns in the working set until the
restricted certified gap is below a fraction of the last full gap (Celer-style loose rounds);
then the full dual point is formed, patterns whose dual constraint
:math:`\|A_i^\top\theta\| \le \lambda` is violated are added (at most doubling the set), and
the solver stops when the *full* certified relative gap (:mod:`convexnn.solvers.gap`) is below
``tol``. With no violator left the full and restricted gaps coincide.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from convexnn.solvers.backend import Backend
from convexnn.formulations.losses import Loss
from convexnn.formulations.penalties import Penalty, get_penalty
from convexnn.solvers.gap import GapResult, gated_gap
from convexnn.solvers.operators import MaskedDesign

__all__ = ["group_soft_threshold", "accelerated_prox_grad", "GatedProblem", "solve_gated",
           "GatedResult", "Reporter"]

log = logging.getLogger("convexnn")


class SmoothComposite(Protocol):
    """What :func:`accelerated_prox_grad` needs from the smooth part :math:`h`."""

    def image(self, x: Any) -> Any:
        """Linear image(s) of ``x`` on which ``h`` depends."""

    def value(self, img: Any) -> float:
        """:math:`h` at the point with image ``img``."""

    def grad(self, img: Any) -> Any:
        """:math:`\\nabla h` (with respect to ``x``) at the point with image ``img``."""

    def extrapolate(self, img_new: Any, img_old: Any, beta: float) -> Any:
        """Image of ``x_new + beta * (x_new - x_old)``."""

    def bregman(self, img_new: Any, img_old: Any) -> float:
        """:math:`h(x_1) - h(x_0) - \\langle\\nabla h(x_0), x_1 - x_0\\rangle`, computed stably from images."""


def group_soft_threshold(bk: Backend, V: Any, tau: float) -> Any:
    r"""Proximal operator of :math:`\tau\sum_i\|v_i\|_2` (rows of ``V`` are the groups)."""
    nrm = bk.row_norms(V)
    factor = bk.maximum(1.0 - tau / bk.maximum(nrm, bk.tiny), 0.0)
    return V * factor[:, None]


@dataclass
class Reporter:
    """Verbose log lines and an optional tqdm bar (objective, gap, violation)."""

    verbose: bool = False
    progress: bool = False
    total: int | None = None
    #: multiplies the reported objective (a solver on a rescaled program reports in the given units)
    objective_scale: float = 1.0
    _bar: Any = None

    def __post_init__(self) -> None:
        if self.progress:
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=self.total, desc="convexnn", leave=False)
            except ImportError:  # tqdm is a dependency, but stay usable without it
                self._bar = None

    def update(self, it: int, primal: float, rel_gap: float, viol: float | None = None, extra: str = "") -> None:
        primal = primal * self.objective_scale
        msg = f"iter {it:6d}  objective {primal:.10g}  rel_gap {rel_gap:.3e}"
        if viol is not None:
            msg += f"  violation {viol:.2e}"
        if extra:
            msg += "  " + extra
        if self.verbose:
            print(msg, flush=True)
        log.debug(msg)
        if self._bar is not None:
            self._bar.n = min(it, self.total or it)
            post = {"obj": f"{primal:.6g}", "gap": f"{rel_gap:.1e}"}
            if viol is not None:
                post["viol"] = f"{viol:.1e}"
            self._bar.set_postfix(post, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@dataclass
class APGState:
    """Iterate, its image, the current step and the counters of :func:`accelerated_prox_grad`."""

    x: Any
    img: Any
    step: float
    iterations: int = 0
    evaluations: int = 0
    restarts: int = 0
    stopped: bool = False
    residual: float = float("inf")


def accelerated_prox_grad(
    bk: Backend,
    h: SmoothComposite,
    lam: float,
    x0: Any,
    step0: float,
    *,
    max_iter: int,
    check: Callable[[APGState], bool] | None = None,
    check_every: int = 10,
    grow: float = 1.1,
    shrink: float = 0.5,
    img0: Any = None,
    penalty: Penalty | None = None,
) -> APGState:
    r"""FISTA with backtracking line search and adaptive restart on
    :math:`h(x) + \lambda\sum_i R(x_i)` (:math:`R = \|\cdot\|_2` unless a ``penalty`` is given).

    Parameters
    ----------
    bk : Backend
    h : SmoothComposite
        The smooth part, evaluated through linear images (see the module docstring).
    lam : float
        Group-lasso weight (groups are the rows of ``x``).
    x0 : array, shape (m, d')
        Starting point (warm start).
    step0 : float
        First step size (the line search adapts it).
    max_iter : int
        Iteration budget.
    check : callable, optional
        Called as ``check(state)`` every ``check_every`` iterations and at the end of the budget
        (``state.x``, ``state.img`` hold the current iterate; ``state.residual`` the largest
        group norm of the proximal-gradient residual :math:`\|y_k - x_{k+1}\|/\eta_k`, updated
        at the checks and after the last iteration only);
        returning True stops the iteration.
    check_every : int
    grow, shrink : float
        Step growth after an accepted step and backtracking factor.
    img0 : optional
        Image of ``x0`` if already known.
    penalty : Penalty, optional
        The norm :math:`R` of the groups (its ``prox_on``); default the group lasso.

    Returns
    -------
    APGState
        ``stopped`` is True when ``check`` returned True.
    """
    pen = get_penalty(penalty)
    prox = (lambda v, tau: group_soft_threshold(bk, v, tau)) if pen.group_l2 else (
        lambda v, tau: pen.prox_on(bk, v, tau))
    if not step0 > 0.0:
        raise ValueError(f"accelerated_prox_grad needs a positive first step; got {step0!r}")
    x = x0
    img_x = h.image(x) if img0 is None else img0
    state = APGState(x=x, img=img_x, step=float(step0))
    y, img_y = x, img_x
    t = 1.0
    eta = float(step0)
    min_eta = eta * 1e-30
    for k in range(max_iter):
        g = h.grad(img_y)
        state.evaluations += 1
        while True:
            x_new = prox(y - eta * g, eta * lam)
            img_new = h.image(x_new)
            state.evaluations += 1
            d = x_new - y
            dd = float(bk.vdot(d, d))
            # sufficient decrease h(x+) <= h(y) + <g, x+ - y> + |x+ - y|^2 / (2 eta), written with
            # the Bregman divergence so that no cancellation hides the test near the optimum
            breg = float(h.bregman(img_new, img_y))
            if not math.isfinite(breg) and eta > min_eta:
                eta *= shrink
                continue
            if breg <= dd / (2.0 * eta) * (1.0 + 1e3 * bk.eps) or eta <= min_eta:
                break
            eta *= shrink
        # adaptive restart (gradient scheme): momentum against the prox-gradient step
        if float(bk.vdot(y - x_new, x_new - x)) > 0.0:
            t = 1.0
            state.restarts += 1
            y, img_y = x_new, img_new
        else:
            t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_new
            t = t_new
            if beta > 0.0:
                y = x_new + beta * (x_new - x)
                img_y = h.extrapolate(img_new, img_x, beta)
            else:
                y, img_y = x_new, img_new
        x, img_x = x_new, img_new
        state.x, state.img, state.step = x, img_x, eta
        state.iterations = k + 1
        last = k + 1 == max_iter
        if last or (check is not None and (k + 1) % check_every == 0):
            # only the checks (and the caller, after the last iteration) read the residual
            state.residual = float(bk.max(bk.row_norms(d))) / eta if d.shape[0] else 0.0
        eta *= grow
        if check is not None and ((k + 1) % check_every == 0 or last):
            if check(state):
                state.stopped = True
                break
    state.step = eta
    return state


# ------------------------------------------------------------------------------------ C-GReLU
class GatedProblem:
    r"""Smooth part of C-GReLU, :math:`h(U) = f(\mathcal A U)`, with image :math:`z = \mathcal A U`."""

    def __init__(self, op: MaskedDesign, loss: Loss, y: Any) -> None:
        self.op, self.loss, self.y, self.bk = op, loss, y, op.bk
        self._ones = op.bk.asarray(np.ones(op.d))

    def image(self, U: Any) -> Any:
        # op.fit(U) = rowsum(Xa * (M U)); the row sum as a product with ones is ~30% faster for
        # small n (one BLAS call instead of a strided reduction), the same on numpy and torch;
        # large n: op.fit runs over row blocks (the same product per block)
        if self.op.chunk is not None:
            return self.op.fit(U)
        return ((self.op.M @ U) * self.op.Xa) @ self._ones

    def value(self, z: Any) -> float:
        return self.loss.value_on(self.bk, z, self.y)

    def grad(self, z: Any) -> Any:
        return self.op.adjoint(self.loss.grad_on(self.bk, z, self.y))

    def extrapolate(self, z_new: Any, z_old: Any, beta: float) -> Any:
        return z_new + beta * (z_new - z_old)

    def bregman(self, z_new: Any, z_old: Any) -> float:
        return self.loss.bregman_on(self.bk, z_new, z_old, self.y)


@dataclass
class GatedResult:
    """Outcome of :func:`solve_gated`."""

    U: Any
    z: Any
    gap: GapResult
    iterations: int
    converged: bool
    step: float
    history: list[dict[str, float]] = field(default_factory=list)
    working_set: int = 0
    outer: int = 0
    #: why the solver stopped: ``"certified"`` (full gap <= tol), ``"max_iter"`` (budget spent) or
    #: ``"stalled"`` (no violated group outside the working set and the restricted solve reached
    #: its target, yet the full gap is above ``tol``: the rounding floor of the certificate) or
    #: ``"handover"`` (the ``handover`` callback stopped it)
    reason: str = ""


def solve_gated(
    op: MaskedDesign,
    loss: Loss,
    y: Any,
    lam: float,
    *,
    U0: Any = None,
    tol: float = 1e-8,
    max_iter: int = 20000,
    check_every: int = 10,
    working_set: bool | None = None,
    ws_ratio: float = 0.1,
    step0: float | None = None,
    reporter: Reporter | None = None,
    penalty: Penalty | None = None,
    handover: Callable[[int, int, float, int], bool] | None = None,
) -> GatedResult:
    r"""Solve C-GReLU :math:`\min_U f(\sum_i D_i\tilde X u_i) + \lambda\sum_i R(u_i)` by R-FISTA
    (:math:`R = \|\cdot\|_2` unless a ``penalty`` is given).

    Parameters
    ----------
    op : MaskedDesign
        The operator (data, patterns) on the chosen backend.
    loss : Loss
    y : array, shape (n,)
        Targets on the backend.
    lam : float
    U0 : array, shape (P, d'), optional
        Warm start (e.g. the solution at a neighbouring ``lam`` on a path).
    tol : float
        Target relative certified duality gap :math:`(P(U) - D(\hat\theta)) / |P(U)|`.
    max_iter : int
        Total FISTA iterations (over all working-set rounds).
    check_every : int
        Iterations between gap checks.
    working_set : bool, optional
        Use working sets over the patterns; default when ``P > 64``.
    ws_ratio : float
        A working-set round stops at a restricted relative gap of ``ws_ratio`` times the last
        full gap (or ``tol``), so early rounds are cheap.
    step0 : float, optional
        First step; default (None, or 0.0: the ``step`` of a result that stopped before its
        first iteration) :math:`1/(L_f \|\mathcal A\|_2^2)` by power iteration.
    reporter : Reporter, optional
    penalty : Penalty, optional
        First-layer penalty :math:`R` (its prox in the iterations, its dual norm in the certified
        gap and the working-set test :math:`R^*(A_i^\top\theta) \le \lambda`); default the
        group lasso.
    handover : callable, optional
        Called at every gap check as ``handover(iterations, support, rel_gap, working_set)``
        (iterations so far, nonzero groups of the current iterate, its restricted relative gap,
        patterns in the working set); returning True stops the solve with ``reason="handover"``
        (a second-order method takes over: :func:`convexnn.solvers.gated_active_set.handover_rule`).

    Returns
    -------
    GatedResult
        ``converged`` is True when the full certified relative gap is below ``tol``.
    """
    bk = op.bk
    t0 = time.perf_counter()
    P, d = op.P, op.d
    pen = get_penalty(penalty)
    U = bk.zeros((P, d)) if U0 is None else bk.copy(U0)
    z = op.fit(U)
    history: list[dict[str, float]] = []
    full = gated_gap(op, loss, y, lam, U, z, penalty=pen)
    history.append({"iter": 0, "time": time.perf_counter() - t0, "objective": full.primal,
                    "rel_gap": full.rel_gap})
    if full.rel_gap <= tol or P == 0:
        return GatedResult(U, z, full, 0, True, step0 or 0.0, history, P, 0, "certified")
    if step0 is None or not step0 > 0.0:
        # a rough estimate is enough: the line search corrects the step either way, and on small
        # problems 15 power iterations cost as much as ~15 FISTA iterations
        L = loss.lipschitz * op.norm_sq_estimate(iters=5)
        step0 = 1.0 / L if L > 0 else 1.0
    use_ws = (P > 64) if working_set is None else bool(working_set)
    c_np = bk.to_numpy(full.group_norms)
    active = np.flatnonzero(bk.to_numpy(bk.row_norms(U)) > 0)
    if use_ws:
        k0 = max(10, min(P, len(active)))
        order = np.argsort(-c_np, kind="stable")
        ws = np.union1d(active, order[:k0])
    else:
        ws = np.arange(P)
    iters_total, outer, step = 0, 0, float(step0)
    converged = False
    reason = "max_iter"
    # working-set rounds are solved loosely first (target a fraction of the current full gap)
    target = max(tol, ws_ratio * full.rel_gap) if use_ws else tol
    handed = [False]
    while True:
        outer += 1
        sub = op if len(ws) == P else op.subset(ws)
        h = GatedProblem(sub, loss, y)
        Uw = U if len(ws) == P else bk.take_rows(U, ws)

        def check(st: APGState, _sub: MaskedDesign = sub, _target: float = target) -> bool:
            g = gated_gap(_sub, loss, y, lam, st.x, st.img, penalty=pen)
            it = iters_total + st.iterations
            history.append({"iter": it, "time": time.perf_counter() - t0, "objective": g.primal,
                            "rel_gap": g.rel_gap})
            if reporter is not None:
                reporter.update(it, g.primal, g.rel_gap, extra=f"working set {_sub.P}/{P}")
            if g.rel_gap <= _target:
                return True
            if handover is not None:
                support = int(np.count_nonzero(bk.to_numpy(bk.row_norms(st.x))))
                handed[0] = bool(handover(it, support, g.rel_gap, _sub.P))
            return handed[0]

        budget = max_iter - iters_total
        if budget <= 0:
            break
        st = accelerated_prox_grad(bk, h, lam, Uw, step, max_iter=budget, check=check,
                                   check_every=check_every, penalty=pen)
        iters_total += st.iterations
        step = st.step
        if len(ws) == P:
            U = st.x
        else:
            U = bk.put_rows(bk.zeros((P, d)), ws, st.x)
        z = st.img
        full = gated_gap(op, loss, y, lam, U, z, penalty=pen)
        if full.rel_gap <= tol:
            converged, reason = True, "certified"
            break
        if not st.stopped:
            break  # budget exhausted
        if handed[0]:
            reason = "handover"
            break
        viol = np.zeros(0, dtype=np.int64)
        if len(ws) < P:
            c_np = bk.to_numpy(full.group_norms)
            outside = np.setdiff1d(np.arange(P), ws)
            viol = outside[c_np[outside] > lam * (1.0 + 1e-12)]
        if viol.size:
            viol = viol[np.argsort(-c_np[viol], kind="stable")][: max(10, len(ws))]
            ws = np.union1d(ws, viol)
        elif target <= tol:
            reason = "stalled"
            break
        target = max(tol, ws_ratio * full.rel_gap)
    history.append({"iter": iters_total, "time": time.perf_counter() - t0, "objective": full.primal,
                    "rel_gap": full.rel_gap})
    return GatedResult(U, z, full, iters_total, converged, step, history, len(ws), outer, reason)
