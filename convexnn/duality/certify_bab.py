r"""Certificates over **all** chambers without enumeration: the branch-and-bound path of :func:`~convexnn.certify`.

Same weak-duality certificate as :mod:`convexnn.duality.certify` (Pilanci & Ergen, "Neural
Networks are Convex Regularizers", ICML 2020; Mishkin & Pilanci, "Optimal Sets and Solution
Paths of ReLU Networks", ICML 2023): for a dual candidate :math:`w` and a rigorous upper bound
:math:`U \ge s(w)` from :func:`convexnn.duality.bab.relu_dual_norm_bab`, every
:math:`c \in [0, \lambda / U]` makes :math:`c\,w` dual feasible over every chamber, and
:math:`-\ell^*(-c w)` is a lower bound on the objective of every network of every width.

Candidates, in order:

1. the network's residual :math:`v_0 = -\nabla\ell(\hat y)`. The search only has to decide
   :math:`s(v_0) \le T` for the largest :math:`T` that still gives the requested relative gap
   (:func:`needed_threshold`); every box with bound below :math:`T` is discarded. A unit
   :math:`u` with :math:`\sigma\langle v_0, (X_a u)_+\rangle > \lambda` is an improving neuron.
2. mixtures with the zero network's candidate :math:`-\nabla\ell(0)` (sublinearity of :math:`s`);
3. when the network is not optimal, :math:`v_0` is a poor dual point whatever its bound. The dual
   is then refined by cutting planes (column generation, :func:`convexnn.solve_global`): the
   C-ReLU program restricted to a working set of chambers (sampled gates, the network's own
   neuron patterns, the chambers of the search's incumbents) is solved by the active-set
   solver, whose residual :math:`-\nabla\ell(\hat y)` is the restricted dual optimum; the
   branch and bound prices it over **all** chambers, the violated chambers it finds join the
   working set, and the last residual is proven feasible after scaling with a final search.
   Every point gets its own rigorous bound, so the certificate is the best of them and stays a
   proof.
4. at large input dimension (:data:`SDP_MIN_DIM`), where the searches do not complete, the dual
   point of the semidefinite relaxation (:mod:`convexnn.duality.sdp`), proven feasible over all
   chambers without a search, and its combinations with the points above.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from convexnn.arrangements.patterns import design_matrix
from convexnn.duality._common import (
    as_network_arrays,
    best_scale,
    objective_error_bound,
    network_objective,
    network_predict,
    rebalance,
    validate,
)
from convexnn.duality.bab import relu_dual_norm_bab
from convexnn.duality.bounds import best_mixture, feasible_dual_value, row_norm_bounds
from convexnn.duality.sdp import relaxation_bound
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss

__all__ = ["certify_bab", "needed_threshold"]

IMPROVE_DROP = 1e-9  # an improving neuron must lower the objective by this relative amount
#: input dimension d' from which the semidefinite relaxation joins by default
SDP_MIN_DIM = 7
#: fraction of the time limit the relaxation may take
SDP_SHARE = 0.4
#: ``Certificate.bound_method`` by the source of the best dual point
BOUND_METHODS = {"bab": "branch and bound over all chambers",
                 "sdp": "semidefinite relaxation over all chambers",
                 "both": "branch and bound and semidefinite relaxation over all chambers (a combination of their points)"}


def needed_threshold(L: Loss, v: np.ndarray, y: np.ndarray, lam: float, target: float) -> float:
    r"""Largest :math:`T` such that :math:`s(v) \le T` gives a dual value :math:`\ge` ``target``.

    The dual value :math:`D(c_{\max}) = \max_{0 \le c \le c_{\max}} -\ell^*(-cv)` is nondecreasing
    in :math:`c_{\max}`; bisection finds the smallest cap reaching ``target`` (when even the
    unconstrained best scale does not reach it, that scale is used: a smaller :math:`s` would not
    help this candidate).
    """
    c_free, d_free = best_scale(L, v, y, np.inf)
    if c_free <= 0:
        return np.inf
    if d_free < target:
        return lam / c_free
    lo, hi = 0.0, c_free
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if best_scale(L, v, y, mid)[1] >= target:
            hi = mid
        else:
            lo = mid
    return lam / hi


def certify_bab(network: Any, X: Any, y: Any, lam: float, *, loss: str | Loss = "squared", rtol: float = 1e-6,
                time_limit: float | None = None, max_nodes: int | None = None,
                progress: bool | None = None, refine: int = 30, n_samples: int = 300, seed: int = 0,
                sdp: bool | None = None) -> Any:
    r"""Certify a two-layer ReLU network over all chambers by branch and bound (no enumeration).

    Parameters
    ----------
    network, X, y, lam, loss, rtol
        As in :func:`convexnn.certify`.
    time_limit : float, optional
        Seconds for all searches together (every bound is valid whenever they stop).
    max_nodes : int, optional
        Boxes evaluated at most, per search.
    progress : bool, optional
        tqdm progress bar of the main search.
    refine : int
        Rounds (restricted solves) of the refinement when the network is not certified by its
        own residual (0 disables); see the module docstring. Squared and logistic losses.
    n_samples : int
        Sampled gates of the refinement's initial working set.
    seed : int
        Seed of the sampled gates.
    sdp : bool, optional
        Also bound by the semidefinite relaxation (:func:`convexnn.duality.sdp.sdp_lower_bound`,
        with the sign pattern of the network's residual; up to :data:`SDP_SHARE` of the time) and
        combine its dual point with the others. Default: when :math:`d' \ge` :data:`SDP_MIN_DIM`,
        where the branch and bound does not complete within minutes and the relaxation is the
        tighter bound.

    Returns
    -------
    Certificate
        ``method="bab"``, ``exact=True`` (the lower bound is a proof whether or not the searches
        completed), ``nodes`` boxes explored; ``s`` is the best value found for :math:`v_0`
        (attained by ``improving_neuron`` when above ``lam``), ``s_valid`` the rigorous upper
        bound of :math:`s(v_0)`, ``n_refine`` the refinement rounds, ``dual_point`` the feasible
        point whose certified dual value is ``lower_bound``, ``bound_method`` which bound gave it,
        ``sdp`` the :class:`~convexnn.duality.sdp.SDPLowerBound` when the relaxation ran (else
        ``None``).
    """
    from convexnn.duality.certify import IMPROVE_RTOL, Certificate

    t0 = time.perf_counter()
    Xc, yc, lam, L = validate(X, y, lam, loss)
    net = as_network_arrays(network, Xc.shape[1], Xc)
    if not 0 < rtol < 1:
        raise InputError(f"rtol must be in (0, 1); got {rtol}.")
    if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
        raise InputError(f"refine must be a nonnegative integer; got {refine!r}.")
    if sdp is not None and not isinstance(sdp, (bool, np.bool_)):
        raise InputError(f"sdp must be True, False or None; got {sdp!r}.")
    deadline = None if time_limit is None else t0 + float(time_limit)

    def left(frac: float = 1.0) -> float | None:
        if deadline is None:
            return None
        return max((deadline - time.perf_counter()) * frac, 0.0)

    Xa = design_matrix(Xc, net.bias)
    norms = row_norm_bounds(Xa)
    primal = network_objective(Xa, yc, net.W1, net.w2, lam, L)
    W1b, w2b = rebalance(net.W1, net.w2)
    primal_bal = network_objective(Xa, yc, W1b, w2b, lam, L)
    pred = network_predict(Xa, net.W1, net.w2)
    v0 = L.project_dual(-L.grad(pred, yc), yc)
    target = primal - rtol * abs(primal)
    T = needed_threshold(L, v0, yc, lam, target)
    T = max(T, lam) if np.isfinite(T) else lam
    nodes = 0
    relaxed = None
    if (Xa.shape[1] >= SDP_MIN_DIM if sdp is None else sdp) and (deadline is None or left() > 0):
        relaxed = relaxation_bound(Xc, yc, lam, L, net.bias, v0, left(SDP_SHARE), forced=sdp is not None)
    # a short probe: is there a clearly improving neuron? (then v0 is a poor dual point and part
    # of the time goes to the refinement)
    probe = relu_dual_norm_bab(Xa, v0, threshold=lam * (1.0 + max(rtol, 1e-6)), rtol=rtol, stop_at_violation=1,
                               time_limit=None if deadline is None else min(2.0, left(0.1)), max_nodes=max_nodes)
    nodes += probe.nodes
    suboptimal = probe.lower > lam * (1.0 + max(rtol, 1e-6)) and refine > 0
    r0 = relu_dual_norm_bab(Xa, v0, threshold=T, rtol=rtol, time_limit=left(0.3 if suboptimal else 1.0),
                            max_nodes=max_nodes, progress=progress)
    nodes += r0.nodes
    U0 = r0.upper
    lower, vbest = feasible_dual_value(L, v0, yc, lam, U0, norms)
    source = "bab"

    def offer(val: float, p: np.ndarray, src: str, w: np.ndarray | None = None, S: float = 0.0) -> None:
        """Keep the best proven point; with ``(w, S)`` (``S >= s(w)`` proven) also its combinations
        with the relaxation's point (feasible: ``s <= lam``, proven)."""
        nonlocal lower, vbest, source
        if val > lower:
            lower, vbest, source = val, p, src
        if relaxed is not None and w is not None:
            val, p = best_mixture(L, w, S, relaxed.dual_point, lam, yc, lam, norms)
            if val > lower:
                lower, vbest, source = val, p, "both"

    if relaxed is not None:
        offer(relaxed.lower_bound, relaxed.dual_point, "sdp", v0, U0)
    n_ref = 0
    if primal - lower > rtol * abs(primal):
        # mixtures with the zero network's candidate (sublinearity of s), a short search for its bound
        vz = -L.grad(np.zeros_like(yc), yc)
        rz = relu_dual_norm_bab(Xa, vz, rtol=1e-2, time_limit=None if deadline is None else left(0.1),
                                max_nodes=max_nodes)
        nodes += rz.nodes
        offer(*best_mixture(L, v0, U0, vz, rz.upper, yc, lam, norms), "bab")
    if (primal - lower > rtol * abs(primal) and refine > 0 and L.name in ("squared", "logistic")
            and (deadline is None or left() > 0)):
        from convexnn.duality.global_opt import solve_global

        cols = [W1b[:, np.abs(w2b) > 0]]
        for res in (probe, r0):
            cols.append(res.neuron[:, None])
            cols += [u[:, None] for _, _, u in res.violations]
        g = solve_global(Xc, yc, lam, bias=net.bias, loss=L, rtol=rtol, time_limit=left(0.6),
                         n_init_patterns=n_samples, seed=seed, max_rounds=refine, init_gates=np.hstack(cols),
                         sdp=False)
        nodes += g.nodes
        n_ref = g.rounds
        offer(g.lower_bound, g.dual_point, "bab", g.dual_point, lam)
        if g.objective - g.lower_bound > rtol * abs(primal) and (deadline is None or left() > 0):
            # prove the refined point: decide s(w1) <= T1, T1 losing at most rtol/2 of its value
            fit = network_predict(Xa, g.network.W1, g.network.w2)
            w1 = L.project_dual(-np.asarray(L.grad(fit, yc), dtype=np.float64), yc)
            est = best_scale(L, w1, yc, 1.0)[1]
            T1 = needed_threshold(L, w1, yc, lam, max(est - 0.5 * rtol * abs(primal), lower))
            T1 = T1 if np.isfinite(T1) else lam
            r1 = relu_dual_norm_bab(Xa, w1, threshold=T1, rtol=rtol, time_limit=left(), max_nodes=max_nodes)
            nodes += r1.nodes
            offer(*feasible_dual_value(L, w1, yc, lam, r1.upper, norms), "bab", w1, r1.upper)
    cert = Certificate(
        primal=primal, primal_error=objective_error_bound(Xa, yc, net.W1, net.w2, lam, L),
        primal_balanced=primal_bal, lower_bound=float(lower), exact=True, lam=lam, rtol=rtol, loss=L, s=max(r0.lower, probe.lower),
        s_valid=U0, estimate=None, dual_point=vbest, n_patterns=0, n_nnls=0, n_refine=n_ref, time=0.0,
        network=net, _Xa=Xa, _y=yc, violated_pattern=None, violated_mask=None, improving_sign=None,
        improving_neuron=None, improving_score=None,
    )
    cert.method = "bab"
    cert.nodes = nodes
    cert.bab_complete = bool(r0.complete)
    cert.bound_method = BOUND_METHODS[source]
    cert.sdp = relaxed
    best = max((probe, r0), key=lambda r: r.lower)
    if best.lower > lam * (1 + IMPROVE_RTOL):
        u = best.neuron / np.linalg.norm(best.neuron)
        sc = best.sign * float(v0 @ np.maximum(Xa @ u, 0.0))
        if sc > lam * (1 + IMPROVE_RTOL):
            cert.violated_mask = Xa @ u >= 0
            cert.improving_sign, cert.improving_neuron, cert.improving_score = int(best.sign), u, sc
            # a real improvement, not rounding: the objective must drop by more than 1e-9 relative
            if cert.improvement_step()[1] >= primal - IMPROVE_DROP * max(abs(primal), 1e-300):
                cert.improving_sign = cert.improving_neuron = cert.improving_score = None
                cert.violated_mask = None
    cert.time = time.perf_counter() - t0
    return cert
