r"""Rigorous dual values of a dual candidate: the best scaling and the value with rounding bounded.

A dual candidate :math:`v` (e.g. :math:`-\nabla\ell(\hat y)` at a network's predictions) scaled
into the dual feasible set, :math:`c\,v` with :math:`c \le \lambda / s(v)`
(:mod:`convexnn.duality.cones`), gives the lower bound :math:`-\ell^*(-c v)` on the optimum by
weak duality (Pilanci & Ergen, *Neural Networks are Convex Regularizers*, ICML 2020). The loss
supplies the conjugate, its domain and its rounding bounds
(:class:`~convexnn.formulations.losses.Loss`).
"""

from __future__ import annotations

import numpy as np

from convexnn.formulations.losses import Loss
from convexnn.rounding import gamma

__all__ = ["best_mixture", "best_scale", "certified_dual_value", "feasible_dual_value", "row_norm_bounds"]


def certified_dual_value(loss: Loss, v: np.ndarray, y: np.ndarray) -> float:
    r"""A rigorous lower bound of the dual objective :math:`-\ell^*(-v)` for float64 ``v, y``.

    The conjugate is evaluated in floating point and its rounding error bounded by the loss
    (:meth:`~convexnn.formulations.losses.Loss.dual_value_error`: :math:`\gamma_{n+16}` times the
    sum of the absolute values of its products for the squared and Huber losses, plus
    :math:`\sum_j|v_j| + n` for losses whose terms involve logarithms). Outside the conjugate's
    domain (e.g. :math:`y_j v_j \notin [0, 1]` for logistic and hinge, :math:`|v_j| > \delta` for
    Huber, checked exactly by :meth:`~convexnn.formulations.losses.Loss.conjugate_domain`) the
    value is :math:`-\infty`: no bound.
    """
    v = np.asarray(v, dtype=np.float64)
    if not loss.conjugate_domain(-v, y, 0.0):
        return -np.inf
    val = float(loss.dual_value(v, y))
    if not np.isfinite(val):
        return -np.inf
    return val - loss.dual_value_error(v, y, val)


def best_scale(loss: Loss, v: np.ndarray, y: np.ndarray, c_max: float) -> tuple[float, float]:
    r"""Maximize the concave dual objective :math:`c \mapsto -\ell^*(-c v)` over :math:`c \in [0, c_{\max}]`.

    The loss's own maximizer when it has one (:meth:`~convexnn.formulations.losses.Loss.best_dual_scale`;
    squared: :math:`c^\star = \langle v, y\rangle / \|v\|^2` clipped; logistic: a safeguarded Newton
    solve of :math:`\phi'(c) = 0`); otherwise a bounded
    golden-section search restricted to the conjugate's domain (found by
    bisection; ``c = 0`` is always in it because every loss is bounded below).

    Returns
    -------
    (c, value)
    """
    c_max = float(c_max)
    if not np.isfinite(c_max):
        c_max = 1e6
    vv = float(v @ v) if v.ndim == 1 else float(np.sum(v * v))
    if vv == 0.0:
        return 0.0, loss.dual_value(0.0 * v, y)
    c = loss.best_dual_scale(v, y, c_max)
    if c is not None:
        return c, loss.dual_value(c * v, y)

    def f(c: float) -> float:
        return loss.dual_value(c * v, y)

    hi = c_max
    if not np.isfinite(f(hi)):
        lo = 0.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if np.isfinite(f(mid)):
                lo = mid
            else:
                hi = mid
        hi = lo
    from scipy.optimize import minimize_scalar

    if hi <= 0:
        return 0.0, f(0.0)
    res = minimize_scalar(lambda c: -f(c), bounds=(0.0, hi), method="bounded", options={"xatol": 1e-10 * max(hi, 1)})
    cands = [(0.0, f(0.0)), (hi, f(hi)), (float(res.x), f(float(res.x)))]
    return max(cands, key=lambda t: t[1])


def row_norm_bounds(Xa: np.ndarray) -> np.ndarray:
    r"""Rigorous upper bounds of the row norms :math:`\|x_j\|_2` of ``Xa``."""
    return np.linalg.norm(Xa, axis=1) * (1.0 + gamma(Xa.shape[1] + 4))


def feasible_dual_value(loss: Loss, w: np.ndarray, y: np.ndarray, lam: float, S: float,
                        norms: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Rigorous dual value of the best feasible multiple of ``w``, given a rigorous :math:`S \ge s(w)`.

    The point returned is :math:`p = \mathrm{fl}(c\,w)` with
    :math:`c \le \lambda / (S + \gamma_2\sum_j|w_j|\|x_j\|)` (``norms``: upper bounds of the
    :math:`\|x_j\|`, :func:`row_norm_bounds`): by sublinearity and
    :math:`(x_j^\top u)_+ \le \|x_j\|` for unit :math:`u`,
    :math:`s(p) \le c\,s(w) + \sum_j |p_j - c w_j|\,\|x_j\| \le \lambda`, so :math:`p` is dual
    feasible and its dual value, rounding subtracted (:func:`certified_dual_value`), is a lower
    bound on the optimum. ``w`` must lie in the conjugate's domain (``loss.project_dual``);
    scaling by :math:`c \le 1` keeps it there.
    """
    if not np.any(w) or not np.isfinite(S):
        z = np.zeros_like(w)
        return certified_dual_value(loss, z, y), z
    E = gamma(2) * float(np.abs(w) @ norms) * (1.0 + gamma(len(w) + 2))
    cmax = lam / (max(S, 0.0) + E) * (1.0 - 2.0 ** -40)
    c, _ = best_scale(loss, w, y, cmax)
    p = min(c, cmax) * w
    return certified_dual_value(loss, p, y), p


def best_mixture(loss: Loss, a: np.ndarray, Sa: float, b: np.ndarray, Sb: float, y: np.ndarray, lam: float,
                 norms: np.ndarray, grid: int = 21) -> tuple[float, np.ndarray]:
    r"""Best rigorous dual value over the combinations of two dual candidates with proven bounds.

    With :math:`S_a \ge s(a)` and :math:`S_b \ge s(b)`, sublinearity of :math:`s` gives
    :math:`s(t\,a/S_a + (1-t)\,b/S_b) \le 1` for :math:`t \in [0, 1]`, up to the rounding of the
    combination (:math:`\gamma_4\sum_j(|t a_j/S_a| + |(1-t) b_j/S_b|)\|x_j\|`, added to the bound);
    each combination on a grid of ``grid`` values of :math:`t` is scaled by
    :func:`feasible_dual_value`. A candidate whose bound is not positive and finite is left out (the
    other alone is scaled). Returns the best (value, point); ``-inf`` when neither bound is positive
    and finite.
    """
    okA, okB = 0 < Sa < np.inf, 0 < Sb < np.inf
    if not (okA and okB):
        if okA or okB:
            return feasible_dual_value(loss, a if okA else b, y, lam, Sa if okA else Sb, norms)
        return -np.inf, np.zeros_like(np.asarray(y, dtype=np.float64))
    best, point = -np.inf, np.zeros_like(np.asarray(y, dtype=np.float64))
    a1, b1 = a / Sa, b / Sb
    for t in np.linspace(0.0, 1.0, grid):
        w = t * a1 + (1 - t) * b1
        S = 1.0 + gamma(4) * float((np.abs(t * a1) + np.abs((1 - t) * b1)) @ norms)
        val, p = feasible_dual_value(loss, w, y, lam, S, norms)
        if val > best:
            best, point = val, p
    return best, point
