r"""Certificates over **all** chambers without enumeration: the branch-and-bound path of :func:`~convexnn.certify`.

Same weak-duality certificate as :mod:`convexnn.duality.certify` (Pilanci & Ergen, "Neural
Networks are Convex Regularizers", ICML 2020; Mishkin & Pilanci, "Optimal Sets and Solution
Paths of ReLU Networks", ICML 2023): for the dual candidate :math:`v_0 = -\nabla\ell(\hat y)` and
a rigorous upper bound :math:`U \ge s(v_0)` from :func:`convexnn.duality.bab.relu_dual_norm_bab`,
every :math:`c \in [0, \lambda / U]` makes :math:`c\,v_0` dual feasible over every chamber, and
:math:`-\ell^*(-c v_0)` is a lower bound on the objective of every network of every width.

The search only has to decide :math:`s(v_0) \le T` for the largest :math:`T` that still gives
the requested relative gap: :math:`T = \lambda / c_T` with :math:`c_T` the smallest scale whose
dual value reaches ``primal * (1 - rtol)`` (or the unconstrained best scale when none does).
Every box with bound below :math:`T` is discarded. If the search finds a unit :math:`u` with
:math:`\sigma\langle v_0, (X_a u)_+\rangle > \lambda`, that is an improving neuron (the network is
not optimal); the bound is still valid and still reported.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from convexnn.arrangements.patterns import design_matrix
from convexnn.duality._common import (
    as_network_arrays,
    best_scale,
    network_objective,
    network_predict,
    rebalance,
    validate,
)
from convexnn.duality.bab import relu_dual_norm_bab
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss

__all__ = ["certify_bab", "needed_threshold"]

IMPROVE_DROP = 1e-9  # an improving neuron must lower the objective by this relative amount


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
                progress: bool | None = None) -> Any:
    r"""Certify a two-layer ReLU network over all chambers by branch and bound (no enumeration).

    Parameters
    ----------
    network, X, y, lam, loss, rtol
        As in :func:`convexnn.certify`.
    time_limit : float, optional
        Seconds for the search (the bound is valid whenever it stops).
    max_nodes : int, optional
        Boxes evaluated at most.
    progress : bool, optional
        tqdm progress bar of the search.

    Returns
    -------
    Certificate
        ``method="bab"``, ``exact=True`` (the lower bound is a proof whether or not the search
        completed), ``nodes`` boxes explored; ``s`` is the best value found (attained by
        ``improving_neuron`` when above ``lam``) and ``s_valid`` the rigorous upper bound used.
    """
    from convexnn.duality.certify import IMPROVE_RTOL, Certificate, _dual_candidates

    t0 = time.perf_counter()
    Xc, yc, lam, L = validate(X, y, lam, loss)
    net = as_network_arrays(network, Xc.shape[1], Xc)
    if not 0 < rtol < 1:
        raise InputError(f"rtol must be in (0, 1); got {rtol}.")
    Xa = design_matrix(Xc, net.bias)
    primal = network_objective(Xa, yc, net.W1, net.w2, lam, L)
    W1b, w2b = rebalance(net.W1, net.w2)
    primal_bal = network_objective(Xa, yc, W1b, w2b, lam, L)
    pred = network_predict(Xa, net.W1, net.w2)
    v0 = -L.grad(pred, yc)
    target = primal - rtol * abs(primal)
    T = needed_threshold(L, v0, yc, lam, target)
    T = max(T, lam) if np.isfinite(T) else lam
    r0 = relu_dual_norm_bab(Xa, v0, threshold=T, rtol=rtol, time_limit=time_limit,
                            max_nodes=max_nodes, progress=progress)
    nodes = r0.nodes
    U0 = r0.upper
    lower, vbest = -np.inf, 0.0 * v0
    if U0 > 0:
        c, lower = best_scale(L, v0, yc, lam / U0)
        vbest = c * v0
    else:
        c, lower = best_scale(L, v0, yc, np.inf)
        vbest = c * v0
    if primal - lower > rtol * abs(primal):
        # mix with the zero network's candidate (sublinearity of s), a short search for its bound
        vz = -L.grad(np.zeros_like(yc), yc)
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.0) * 0.25
        rz = relu_dual_norm_bab(Xa, vz, rtol=1e-2, time_limit=left if left is None or left > 0 else 1e-3,
                                max_nodes=max_nodes)
        nodes += rz.nodes
        val, _, vmix = _dual_candidates(L, v0, vz, yc, lam, U0, rz.upper)
        if val > lower:
            lower, vbest = val, vmix
    gap = max(primal - lower, 0.0)
    rel = gap / max(abs(primal), 1e-300)
    cert = Certificate(
        primal=primal, primal_balanced=primal_bal, lower_bound=float(lower), gap=gap, rel_gap=rel,
        is_optimal=bool(rel <= rtol), exact=True, lam=lam, rtol=rtol, loss=L, s=r0.lower, s_valid=U0,
        estimate=None, dual_point=vbest, n_patterns=0, n_nnls=0, n_refine=0, time=0.0, network=net,
        _Xa=Xa, _y=yc, violated_pattern=None, violated_mask=None, improving_sign=None, improving_neuron=None,
        improving_score=None,
    )
    cert.method = "bab"
    cert.nodes = nodes
    cert.bab_complete = bool(r0.complete)
    if r0.lower > lam * (1 + IMPROVE_RTOL):
        u = r0.neuron / np.linalg.norm(r0.neuron)
        sc = r0.sign * float(v0 @ np.maximum(Xa @ u, 0.0))
        if sc > lam * (1 + IMPROVE_RTOL):
            cert.violated_mask = Xa @ u >= 0
            cert.improving_sign, cert.improving_neuron, cert.improving_score = int(r0.sign), u, sc
            # a real improvement, not rounding: the objective must drop by more than 1e-9 relative
            if cert.improvement_step()[1] >= primal - IMPROVE_DROP * max(abs(primal), 1e-300):
                cert.improving_sign = cert.improving_neuron = cert.improving_score = None
                cert.violated_mask = None
    cert.time = time.perf_counter() - t0
    return cert
