r"""Two-layer ReLU networks with batch normalization as convex programs.

Reference: T. Ergen, A. Sahiner, B. Ozturkler, J. Pauly, M. Mardani, M. Pilanci, "Demystifying
Batch Normalization in ReLU Networks: Equivalent Convex Optimization Models and Implicit
Regularization", ICLR 2022; M. Pilanci, "The Hidden Convex Optimization Landscape of Deep Neural
Networks" (talk, 2021), slide "ReLU networks with batch normalization".

**The network** (:class:`BatchNormReLU`). BN sits after the ReLU, per neuron, over the batch
(the training set): with :math:`h_j = (X_a w_j)_+ \in \mathbb R^n` and the centering matrix
:math:`P = I - \tfrac1n \mathbf 1\mathbf 1^\top`,

.. math::

    \mathrm{BN}_{\gamma_j, \alpha_j}(h_j) = \gamma_j \frac{P h_j}{\|P h_j\|_2} + \alpha_j \mathbf 1,
    \qquad f(X) = \sum_{j=1}^m w_{2,j}\, \mathrm{BN}_{\gamma_j, \alpha_j}(h_j),

(normalization by :math:`\|P h\|_2` as in the talk; the usual standard deviation
:math:`\|Ph\|_2/\sqrt n` only rescales :math:`\gamma` by :math:`\sqrt n`). When :math:`Ph_j = 0`
(a dead or constant neuron) the normalized part is taken as 0. The objective regularizes the
BN parameters and the output layer,

.. math::

    \ell(f(X), y) + \frac\lambda2 \sum_j \big(\gamma_j^2 + \alpha_j^2 + w_{2,j}^2\big);

the first layer is **not** regularized: BN makes the output invariant to positive rescaling of
:math:`w_j`, so weight decay on :math:`W_1` would only drive :math:`W_1 \to 0` without changing
the infimum (it would no longer be attained).

**The convex program** (:func:`c_bn_relu`). Rescaling :math:`(w_{2,j}, \gamma_j, \alpha_j)`
shows that neuron :math:`j` contributes :math:`a\,u + b\,\mathbf 1` with
:math:`u = Ph/\|Ph\|`, :math:`(a, b) = w_{2,j}(\gamma_j, \alpha_j)` at cost
:math:`\lambda\|(a, b)\|_2` (AM-GM). For a pattern :math:`D_i` let
:math:`P D_i X_a = U_i \Sigma_i V_i^\top` (thin SVD): every direction :math:`u` of that pattern
is :math:`U_i q/\|q\|` with :math:`q = \Sigma_i V_i^\top g`, :math:`g \in \mathcal K_i =
\{g : (2D_i - I) X_a g \ge 0\}` -- BN *whitens* the local data :math:`D_i X_a`. Grouping neurons by
pattern and sign of :math:`a` (the cost is a norm on a convex cone, so merging is free) gives

.. math::

    \min_{g_i, h_i \in \mathcal K_i,\ s_i, t_i}\
    \ell\Big(\sum_i U_i (q_i - r_i) + (s_i + t_i)\mathbf 1,\ y\Big)
    + \lambda \sum_i \big(\|(q_i, s_i)\|_2 + \|(r_i, t_i)\|_2\big),
    \quad q_i = \Sigma_i V_i^\top g_i,\ r_i = \Sigma_i V_i^\top h_i,

which is built in the equivalent form :math:`U_i q_i = P D_i X_a g_i`,
:math:`\|q_i\| = \|P D_i X_a g_i\|` (no SVD needed, one ``(d', P)`` variable per sign, vectorized).
With the complete set of patterns (:func:`convexnn.enumerate_patterns`) its optimum equals the
network's for every width :math:`m \ge m^*`; with a subset it is an upper bound (the mapped
network is feasible). The talk writes the program as :math:`\sum_i U_i(w_i - v_i)`; the columns
:math:`\mathbf 1` and the variables :math:`s_i, t_i` carry the BN shifts :math:`\alpha_j`.

**Certificates** (:func:`certify_bn`). The dual constraint of the program is
:math:`s(v)^2 = \max_{i,\sigma}\|\Pi_{\Sigma_iV_i^\top\mathcal K_i}(\sigma U_i^\top v)\|^2
+ (\mathbf 1^\top v)^2 \le \lambda^2`: the support function of the *whitened* cone of each pattern plus
the shift column. :func:`bn_dual_norm` bounds it rigorously (per-pattern dual QPs made exactly
feasible in rational arithmetic), so any trained BN network gets a proven lower bound on the
optimum over all widths, or an improving neuron.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import cvxpy as cp
import numpy as np

from convexnn.arrangements.patterns import Patterns
from convexnn.data import add_bias, check_lam, check_X, check_y
from convexnn.networks.base import ScalarObjective
from convexnn.errors import InputError
from convexnn.formulations.blocks import ZERO_RTOL
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.losses import Loss, get_loss
from convexnn.certificate import Certificate
from convexnn.rounding import UNIT_ROUNDOFF, gamma

__all__ = ["BatchNormReLU", "BNReLUFormulation", "c_bn_relu", "bn_from_network", "BNCertificate", "certify_bn",
           "bn_dual_norm"]

_DEGENERATE_RTOL = 1e-12


def _centered_norms(C: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Column norms of the centered activations ``C``, with 0 where the column is constant."""
    N = np.linalg.norm(C, axis=0)
    scale = np.maximum(1.0, np.linalg.norm(H, axis=0))
    N[N <= _DEGENERATE_RTOL * scale] = 0.0
    return N


class BatchNormReLU(ScalarObjective):
    r"""Two-layer ReLU network with batch normalization after the ReLU (see the module docstring).

    Parameters
    ----------
    W1 : array, shape (d', m)
        First-layer weights (``d' = d + 1`` when ``bias``; last row = bias), not regularized.
    gamma, alpha : array, shape (m,)
        BN scales :math:`\gamma_j` and shifts :math:`\alpha_j`.
    w2 : array, shape (m,)
        Output weights.
    bias : bool
    """

    def __init__(self, W1: Any, gamma: Any, alpha: Any, w2: Any, *, bias: bool = False) -> None:
        W1 = np.array(W1, dtype=float, copy=True)
        arrs = [np.array(a, dtype=float, copy=True) for a in (gamma, alpha, w2)]
        if W1.ndim != 2:
            raise InputError(f"W1 must have shape (d', m); got {W1.shape}.")
        m = W1.shape[1]
        for name, a in zip(("gamma", "alpha", "w2"), arrs):
            if a.shape != (m,):
                raise InputError(f"{name} must have shape ({m},) (one entry per neuron); got {a.shape}.")
        if not all(np.all(np.isfinite(a)) for a in [W1, *arrs]):
            raise InputError("network parameters contain NaN or infinite values.")
        self.W1 = W1
        self.gamma, self.alpha, self.w2 = arrs
        self.bias = bool(bias)
        if self.bias and W1.shape[0] < 2:
            raise InputError("with bias=True, W1 needs d + 1 >= 2 rows (the last row is the bias).")

    @property
    def n_neurons(self) -> int:
        return int(self.W1.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.W1.shape[0] - self.bias)

    def design(self, X: Any) -> np.ndarray:
        Xc = check_X(X)
        if Xc.shape[1] != self.n_features:
            raise InputError(f"X has {Xc.shape[1]} features but the network expects {self.n_features}.")
        if Xc.shape[0] < 2:
            raise InputError("batch normalization needs a batch of at least 2 samples.")
        return add_bias(Xc) if self.bias else Xc

    def hidden(self, X: Any) -> np.ndarray:
        r"""BN outputs :math:`\gamma_j P h_j / \|P h_j\| + \alpha_j \mathbf 1`, shape ``(n, m)``, with the batch ``X``."""
        H = np.maximum(self.design(X) @ self.W1, 0.0)
        C = H - H.mean(axis=0, keepdims=True)
        N = _centered_norms(C, H)
        Un = np.divide(C, N, out=np.zeros_like(C), where=N > 0)
        return Un * self.gamma + self.alpha

    def predict(self, X: Any) -> np.ndarray:
        """Network output on the batch ``X`` (BN statistics from ``X`` itself), shape ``(n,)``."""
        return self.hidden(X) @ self.w2

    def regularizer(self) -> float:
        r""":math:`\tfrac12 \sum_j (\gamma_j^2 + \alpha_j^2 + w_{2,j}^2)`."""
        return 0.5 * float(np.sum(self.gamma ** 2) + np.sum(self.alpha ** 2) + np.sum(self.w2 ** 2))

    def balanced(self) -> "BatchNormReLU":
        r"""Rescale each neuron to :math:`|w_{2,j}| = \|(\gamma_j, \alpha_j)\|` (same function, smallest regularizer)."""
        a = np.hypot(self.gamma, self.alpha)
        b = np.abs(self.w2)
        s = np.ones_like(a)
        ok = (a > 0) & (b > 0)
        s[ok] = np.sqrt(b[ok] / a[ok])
        return BatchNormReLU(self.W1, self.gamma * s, self.alpha * s, self.w2 / s, bias=self.bias)

    def __repr__(self) -> str:
        return f"BatchNormReLU(d={self.n_features}, m={self.n_neurons}, bias={self.bias})"


class BNReLUFormulation(Formulation):
    r"""The convex program of a BN ReLU network (built by :func:`c_bn_relu`).

    Weights ``{"G": (P, d'), "H": (P, d'), "s": (P,), "t": (P,)}``; constraints ``"cone_g"``,
    ``"cone_h"`` (one ``(n, P)`` matrix constraint each, as for C-ReLU).
    """

    kind = "c_bn_relu"

    @property
    def masks(self) -> np.ndarray:
        return self.meta["masks"]

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        v = self.variables
        return {"G": np.asarray(v["G"].value, dtype=float).T.copy(), "H": np.asarray(v["H"].value, dtype=float).T.copy(),
                "s": np.asarray(v["s"].value, dtype=float).copy(), "t": np.asarray(v["t"].value, dtype=float).copy()}

    def _check(self, w: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        P, d = self.n_patterns, self.Xa.shape[1]
        for k, shp in (("G", (P, d)), ("H", (P, d)), ("s", (P,)), ("t", (P,))):
            if k not in w or np.shape(w[k]) != shp:
                raise InputError(f"weights[{k!r}] must have shape {shp}.")
        return tuple(np.asarray(w[k], dtype=float) for k in ("G", "H", "s", "t"))

    def centered(self, B: np.ndarray) -> np.ndarray:
        r"""Columns :math:`P D_i X_a b_i` (``(n, P)``) for blocks ``B`` of shape ``(P, d')``."""
        M = self.masks * (self.Xa @ B.T)
        return M - M.mean(axis=0, keepdims=True)

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        r""":math:`\sum_i P D_i X_a (g_i - h_i) + (s_i + t_i)\mathbf 1`."""
        G, H, s, t = self._check(weights)
        return np.sum(self.centered(G) - self.centered(H), axis=1) + float(np.sum(s + t))

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        r""":math:`\sum_i \|(P D_i X_a g_i, s_i)\|_2 + \|(P D_i X_a h_i, t_i)\|_2`."""
        G, H, s, t = self._check(weights)
        return float(np.sum(np.hypot(np.linalg.norm(self.centered(G), axis=0), s))
                     + np.sum(np.hypot(np.linalg.norm(self.centered(H), axis=0), t)))

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        G, H, _, _ = self._check(weights)
        S = 2.0 * self.masks - 1.0
        return float(max(0.0, -np.min(S * (self.Xa @ G.T), initial=0.0), -np.min(S * (self.Xa @ H.T), initial=0.0)))

    def to_network(self, solution: ConvexSolution) -> BatchNormReLU:
        r"""C -> NC: one neuron per nonzero block.

        Block :math:`(g_i, s_i)` with :math:`c_i = P D_i X_a g_i` and :math:`\rho = \|(c_i, s_i)\|`
        becomes :math:`w = g_i`, :math:`w_2 = \sqrt\rho`, :math:`\gamma = \|c_i\|/\sqrt\rho`,
        :math:`\alpha = s_i/\sqrt\rho` (for :math:`(h_i, t_i)`: :math:`w_2 = -\sqrt\rho`,
        :math:`\alpha = -t_i/\sqrt\rho`). Since :math:`g_i \in \mathcal K_i`,
        :math:`(X_a g_i)_+ = D_i X_a g_i`, so the neuron outputs :math:`\pm c_i + s_i\mathbf 1` at
        cost :math:`\frac\lambda2(w_2^2 + \gamma^2 + \alpha^2) = \lambda\rho`: the same objective.
        A block with :math:`c_i = 0` becomes a pure shift (:math:`\gamma = 0`, first layer = the
        pattern's gate).
        """
        G, H, s, t = self._check(solution.weights)
        gates = np.asarray(self.patterns.gates)
        cols, gam, alp, out = [], [], [], []
        rho_all = [np.hypot(np.linalg.norm(self.centered(B), axis=0), sh) for B, sh in ((G, s), (H, t))]
        top = max(float(np.max(r, initial=0.0)) for r in rho_all)
        for (B, sh, sign), rho in zip(((G, s, 1.0), (H, t, -1.0)), rho_all):
            cn = np.linalg.norm(self.centered(B), axis=0)
            for i in np.flatnonzero(rho > ZERO_RTOL * max(top, float(np.linalg.norm(self.y)), 1e-300)):
                r = np.sqrt(rho[i])
                if cn[i] > ZERO_RTOL * rho[i]:
                    cols.append(B[i])
                    gam.append(cn[i] / r)
                else:
                    cols.append(gates[:, i])
                    gam.append(0.0)
                alp.append(sign * sh[i] / r)
                out.append(sign * r)
        d = self.Xa.shape[1]
        if not cols:
            return BatchNormReLU(np.zeros((d, 0)), [], [], [], bias=self.bias)
        return BatchNormReLU(np.array(cols).T, gam, alp, out, bias=self.bias)


def _check_patterns(X: Any, patterns: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(patterns, Patterns):
        raise InputError(f"patterns must be a convexnn.Patterns; got {type(patterns).__name__}. Build them "
                         "with convexnn.enumerate_patterns(X, bias=...).")
    Xc = check_X(X)
    if Xc.shape[0] < 2:
        raise InputError("batch normalization needs a batch of at least 2 samples.")
    Xa = patterns.check(Xc)
    if len(patterns) == 0:
        raise InputError("the pattern set is empty; the convex program would have no variables.")
    return Xc, Xa


def c_bn_relu(X: Any, y: Any, patterns: Patterns, lam: float, *, loss: str | Loss = "squared") -> BNReLUFormulation:
    r"""Build the convex program of a two-layer ReLU network with batch normalization.

    .. math::

        \min_{g_i, h_i \in \mathcal K_i,\ s, t}\
        \ell\Big(\sum_i P D_i X_a (g_i - h_i) + (s_i + t_i)\mathbf 1,\ y\Big)
        + \lambda\sum_i \big(\|(P D_i X_a g_i, s_i)\|_2 + \|(P D_i X_a h_i, t_i)\|_2\big),

    i.e. the whitened program :math:`\sum_i U_i(q_i - r_i)` of Ergen et al. (ICLR 2022) in the
    coordinates :math:`U_i q_i = P D_i X_a g_i` (see the module docstring).

    Parameters
    ----------
    X : array, shape (n, d), n >= 2
    y : array, shape (n,)
    patterns : Patterns
        Activation patterns of ``X`` (their ``bias`` decides whether the first layer has a bias);
        exact from :func:`convexnn.enumerate_patterns`, else the program is an upper bound.
    lam : float
        ``> 0``; the ``cp.Parameter`` ``.lam``.
    loss : {"squared", "logistic", "hinge"} or Loss

    Returns
    -------
    BNReLUFormulation
        ``.solve().to_network()`` is a :class:`BatchNormReLU` with the same objective.

    Raises
    ------
    InputError
        Bad data, vector targets, ``n < 2``, ``lam <= 0``, patterns of another ``X``.
    """
    Xc, Xa = _check_patterns(X, patterns)
    lo = get_loss(loss)
    yc = check_y(y, Xc.shape[0], loss=lo.name)
    if yc.ndim != 1:
        raise InputError(f"c_bn_relu takes scalar targets y of shape (n,); got {yc.shape}.")
    lamp = cp.Parameter(nonneg=True, name="lam", value=check_lam(lam))
    n, d = Xa.shape
    P = len(patterns)
    masks = np.asarray(patterns.masks, dtype=float)
    S = 2.0 * masks - 1.0
    G = cp.Variable((d, P), name="G")
    H = cp.Variable((d, P), name="H")
    s = cp.Variable(P, name="s")
    t = cp.Variable(P, name="t")
    ones = np.ones((n, 1))

    def centered(B: cp.Variable) -> cp.Expression:
        M = cp.multiply(masks, Xa @ B)
        return M - ones @ cp.sum(M, axis=0, keepdims=True) / n

    CG, CH = centered(G), centered(H)
    fit = cp.sum(CG - CH, axis=1) + cp.sum(s + t)
    reg = cp.sum(cp.norm(cp.vstack([CG, cp.reshape(s, (1, P), order="C")]), 2, axis=0)) + \
        cp.sum(cp.norm(cp.vstack([CH, cp.reshape(t, (1, P), order="C")]), 2, axis=0))
    constraints = {"cone_g": cp.multiply(S, Xa @ G) >= 0, "cone_h": cp.multiply(S, Xa @ H) >= 0}
    problem = cp.Problem(cp.Minimize(lo.cvx(fit, yc) + lamp * reg), list(constraints.values()))
    return BNReLUFormulation(problem, lamp, X=Xc, Xa=Xa, y=yc, loss=lo, patterns=patterns, bias=patterns.bias,
                             variables={"G": G, "H": H, "s": s, "t": t}, constraints=constraints,
                             meta={"masks": masks})


def bn_from_network(net: BatchNormReLU, X: Any, y: Any, lam: float, patterns: Patterns,
                    loss: str | Loss = "squared") -> ConvexSolution:
    r"""NC -> C: the convex point of a BN network (a :class:`ConvexSolution` of :func:`c_bn_relu`, not solved).

    Neuron :math:`j` with pattern :math:`D_i = \operatorname{diag}(\mathbf 1[X_a w_j \ge 0])` adds
    :math:`w_j\,|w_{2,j}\gamma_j| / \|P D_i X_a w_j\|` to :math:`g_i` (if :math:`w_{2,j}\gamma_j \ge 0`)
    or :math:`h_i` (otherwise) and :math:`w_{2,j}\alpha_j` to :math:`s_i` (resp. :math:`t_i`).
    Same predictions; the convex objective is at most the network's (AM-GM and the triangle
    inequality), with equality for balanced networks with one neuron per pattern and sign.

    Raises
    ------
    InputError
        If a neuron's pattern is not in ``patterns`` (use the exact set), or on bad input.
    """
    if not isinstance(net, BatchNormReLU):
        raise InputError(f"net must be a BatchNormReLU; got {type(net).__name__}.")
    if net.bias != patterns.bias:
        raise InputError(f"the network has bias={net.bias} but the patterns bias={patterns.bias}.")
    f = c_bn_relu(X, y, patterns, lam, loss=loss)
    Xa = f.Xa
    P, d = len(patterns), Xa.shape[1]
    width = patterns.packed.shape[1]
    keys = np.ascontiguousarray(patterns.packed).view(np.dtype((np.void, width))).ravel()
    index = {k.tobytes(): i for i, k in enumerate(keys)}
    Hn = np.maximum(Xa @ net.W1, 0.0)
    C = Hn - Hn.mean(axis=0, keepdims=True)
    N = _centered_norms(C, Hn)
    G, Hh, s, t = np.zeros((P, d)), np.zeros((P, d)), np.zeros(P), np.zeros(P)
    for j in range(net.n_neurons):
        key = np.packbits(Xa @ net.W1[:, j] >= 0).tobytes()
        if key not in index:
            raise InputError(f"neuron {j}'s activation pattern is not in the given pattern set; use "
                             "convexnn.enumerate_patterns(X, bias=...) (all patterns).")
        i = index[key]
        a = net.w2[j] * net.gamma[j]
        scale = abs(a) / N[j] if N[j] > 0 else 0.0
        if a >= 0:
            G[i] += net.W1[:, j] * scale
            s[i] += net.w2[j] * net.alpha[j]
        else:
            Hh[i] += net.W1[:, j] * scale
            t[i] += net.w2[j] * net.alpha[j]
    weights = {"G": G, "H": Hh, "s": s, "t": t}
    return ConvexSolution(formulation=f, weights=weights, value=f.objective(weights), status="from_network",
                          solver="none", lam=f.lam_value)


# ============================================================================ certificate
def _sqrt_up(x: Fraction) -> float:
    """A float ``r >= sqrt(x)`` for an exact rational ``x >= 0`` (checked exactly)."""
    if x <= 0:
        return 0.0
    r = math.sqrt(float(x)) * (1.0 + 4.0 * UNIT_ROUNDOFF)
    while Fraction(r) ** 2 < x:
        r = float(np.nextafter(r, np.inf))
    return r


def _solve_exact(B: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction] | None:
    """Solve the square rational system ``B x = rhs`` exactly (Gaussian elimination); None if singular."""
    m = len(rhs)
    A = [row[:] + [r] for row, r in zip(B, rhs)]
    for c in range(m):
        piv = next((r for r in range(c, m) if A[r][c] != 0), None)
        if piv is None:
            return None
        A[c], A[piv] = A[piv], A[c]
        for r in range(m):
            if r != c and A[r][c] != 0:
                f = A[r][c] / A[c][c]
                A[r] = [a - f * b for a, b in zip(A[r], A[c])]
    return [A[r][m] / A[r][r] for r in range(m)]


def _theta(c: np.ndarray, gap: int) -> float:
    r"""Root of :math:`\theta \mapsto \sum_j \max(c_j, -\theta) - \text{gap}\,\theta` (bisection; any value is valid)."""
    M = float(np.max(np.abs(c), initial=0.0)) + 1.0
    lo, hi = -M, (c.size + gap) * M
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if float(np.sum(np.maximum(c, -mid))) - gap * mid > 0:
            lo = mid
        else:
            hi = mid
    return hi


def _relaxed_bounds(masks: np.ndarray, c_plus: np.ndarray, w_norm: float) -> np.ndarray:
    r"""Rigorous per-pattern bounds of the relaxation :math:`z_S \ge 0` (no range or inactive constraints).

    For pattern :math:`S` (:math:`k = |S| < n`) and :math:`c \le` ``c_plus`` (elementwise), any
    :math:`\theta` gives :math:`t = \max(c^+_S, -\theta) \ge c_S` and the bound
    :math:`\sqrt{\|t\|^2 + (\mathbf 1^\top t)^2/(n-k)}`; :math:`\theta` solves the optimality equation by
    vectorized bisection. Rounding of the sums is bounded by :math:`\gamma_{n+8}`. ``S`` = all gives
    ``w_norm`` (Cauchy-Schwarz), ``S`` empty gives 0.
    """
    n, P = masks.shape
    k = masks.sum(axis=0)
    gapn = (n - k).astype(float)
    C = np.where(masks, c_plus[:, None], 0.0)
    M = float(np.max(np.abs(c_plus), initial=0.0)) + 1.0
    lo = np.full(P, -M)
    hi = np.full(P, 2.0 * n * M)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        g = np.sum(np.where(masks, np.maximum(C, -mid), 0.0), axis=0) - gapn * mid
        pos = g > 0
        lo = np.where(pos, mid, lo)
        hi = np.where(pos, hi, mid)
    T = np.where(masks, np.maximum(C, -hi), 0.0)
    g_n = gamma(n + 8)
    st = np.abs(T.sum(axis=0)) + g_n * np.abs(T).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b2 = (np.sum(T * T, axis=0) + np.where(gapn > 0, st * st / np.maximum(gapn, 1.0), 0.0)) * (1 + g_n)
    R = np.sqrt(b2) * (1 + g_n)
    R[k == n] = w_norm
    R[k == 0] = 0.0
    return R


def _pattern_qp(Xa: np.ndarray, m: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    r"""Float solve (Clarabel) of the dual of one pattern's whitened support function.

    .. math::

        \min_{t, \mu, \rho \ge 0}\ \|t\|^2 + \frac{(\mathbf 1^\top t)^2}{n-k}
        \quad\text{s.t.}\quad t \ge c - \mu,\quad X_S^\top\mu = X_{S^c}^\top\rho

    (for :math:`S` = all samples: :math:`\mathbf 1^\top t = 0` and objective :math:`\|t\|^2`). Returns
    ``(t, mu, rho, y_eq)`` with ``y_eq`` the multiplier of the equality (a first-layer direction
    attaining the maximum, up to sign), or None when the solver fails.
    """
    import clarabel
    import scipy.sparse as sps

    S, Sc = np.flatnonzero(m), np.flatnonzero(~m)
    n, dp = Xa.shape
    k, r = S.size, Sc.size
    N = 2 * k + r
    if r > 0:
        Q = 2.0 * (np.eye(k) + np.ones((k, k)) / r)
    else:
        Q = 2.0 * np.eye(k)
    Pm = sps.block_diag([sps.csc_matrix(np.triu(Q)), sps.csc_matrix((k + r, k + r))], format="csc")
    q = np.zeros(N)
    eq = np.hstack([np.zeros((dp, k)), Xa[S].T, -Xa[Sc].T])
    rows = [eq]
    if r == 0:
        rows.append(np.hstack([np.ones((1, k)), np.zeros((1, k))]))
    n_zero = sum(a.shape[0] for a in rows)
    ineq1 = np.hstack([-np.eye(k), -np.eye(k), np.zeros((k, r))])
    ineq2 = np.hstack([np.zeros((r, 2 * k)), -np.eye(r)])
    A = sps.csc_matrix(np.vstack(rows + [ineq1, ineq2]))
    b = np.concatenate([np.zeros(n_zero), -c, np.zeros(r)])
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-11
    cones = [clarabel.ZeroConeT(n_zero), clarabel.NonnegativeConeT(k + r)]
    try:
        sol = clarabel.DefaultSolver(Pm, q, A, b, cones, settings).solve()
    except Exception:  # pragma: no cover - the caller falls back to the relaxed bound
        return None
    x = np.asarray(sol.x, dtype=float)
    if x.size != N or not np.all(np.isfinite(x)):
        return None
    z = np.asarray(sol.z, dtype=float)
    return x[:k], x[k:2 * k], np.maximum(x[2 * k:], 0.0), z[:dp]


def _exact_pattern_bound(Xa: np.ndarray, Xf: list[list[Fraction]], m: np.ndarray, sigma: int, w_hat: np.ndarray,
                         w_frac: list[Fraction], w2_frac: Fraction) -> tuple[Fraction, np.ndarray | None, float]:
    r"""Rigorous bound :math:`\beta^2` (exact rational) of one pattern's squared support function.

    The float dual point of :func:`_pattern_qp` is made exactly feasible: :math:`d'` basic unknowns
    among :math:`(\mu, \rho)` are re-solved in rational arithmetic so that
    :math:`X_S^\top\mu = X_{S^c}^\top\rho` holds exactly with :math:`\rho \ge 0` (else
    :math:`\mu = \rho = 0`, the relaxation, which is always feasible); then
    :math:`t = \max(\hat t, \sigma w_S - \mu)` and :math:`\beta^2 = \|t\|^2 + (\mathbf 1^\top t)^2/(n-k)`
    are exact rationals. Returns ``(beta2, direction, float_value)``.
    """
    n, dp = Xa.shape
    S, Sc = np.flatnonzero(m), np.flatnonzero(~m)
    k, r = S.size, Sc.size
    c_hat = sigma * w_hat[S]
    res = _pattern_qp(Xa, m, c_hat)
    mu = [Fraction(0)] * k
    rho = [Fraction(0)] * r
    direction = None
    fval = float("nan")
    if res is not None:
        t_hat, mu_hat, rho_hat, direction = res
        fval = float(np.sqrt(max(t_hat @ t_hat + (t_hat.sum() ** 2 / r if r else 0.0), 0.0)))
        scale = max(float(np.max(np.abs(mu_hat), initial=0.0)), float(np.max(rho_hat, initial=0.0)), 1e-300)
        rho_hat = np.where(rho_hat > 1e-9 * scale, rho_hat, 0.0)
        Mcols = np.hstack([Xa[S].T, -Xa[Sc].T])
        xhat = np.concatenate([mu_hat, rho_hat])
        order = list(np.argsort(-np.abs(mu_hat))) + [k + int(j) for j in np.argsort(-rho_hat) if rho_hat[j] > 0]
        basis: list[int] = []
        for j in order:
            trial = basis + [j]
            if np.linalg.matrix_rank(Mcols[:, trial], tol=1e-10 * max(1.0, float(np.abs(Mcols).max()))) == len(trial):
                basis = trial
            if len(basis) == dp:
                break
        if len(basis) == dp:
            xf = [Fraction(float(a)) for a in xhat]
            bset = set(basis)
            for j in bset:
                xf[j] = Fraction(0)
            col_sign = [1] * k + [-1] * r
            rows_idx = list(S) + list(Sc)
            rhs = []
            for i in range(dp):
                acc = Fraction(0)
                for j in range(n):
                    if j not in bset and xf[j] != 0:
                        acc -= col_sign[j] * Xf[rows_idx[j]][i] * xf[j]
                rhs.append(acc)
            Bm = [[col_sign[j] * Xf[rows_idx[j]][i] for j in basis] for i in range(dp)]
            sol = _solve_exact(Bm, rhs)
            if sol is not None:
                for j, val in zip(basis, sol):
                    xf[j] = val
                if all(a >= 0 for a in xf[k:]):
                    mu, rho = xf[:k], xf[k:]
        t0 = t_hat
    else:
        t0 = np.maximum(c_hat, -_theta(c_hat, r)) if r else c_hat
    cex = [sigma * w_frac[j] - mu_j for j, mu_j in zip(S, mu)]
    t = [max(Fraction(float(a)), b) for a, b in zip(t0, cex)]
    if r > 0:
        st = sum(t, Fraction(0))
        beta2 = sum((a * a for a in t), Fraction(0)) + st * st / r
    else:  # S = all samples: t must sum to zero exactly
        delta = sum(t, Fraction(0))
        if delta < 0:
            t[0] -= delta
        elif delta > 0:
            for j in range(k):
                take = min(t[j] - cex[j], delta)
                t[j] -= take
                delta -= take
                if delta == 0:
                    break
        beta2 = sum((a * a for a in t), Fraction(0)) if delta == 0 else w2_frac
    return min(beta2, w2_frac), direction, fval


def bn_dual_norm(X: Any, v: Any, patterns: Patterns) -> tuple[float, dict[str, Any]]:
    r"""A rigorous upper bound of the BN dual constraint :math:`s(v)` (see :func:`certify_bn`).

    .. math::

        s(v)^2 = \max_{u \in \mathcal U}\langle v, u\rangle^2 + (\mathbf 1^\top v)^2,\qquad
        \max_{u\in\mathcal U}|\langle v, u\rangle| = \max_{i,\sigma}\ \sup_{g\in\mathcal K_i}
        \frac{\sigma\langle P v, D_i X_a g\rangle}{\|P D_i X_a g\|_2},

    with :math:`\mathcal U` the normalized centered activations
    :math:`P(X_a g)_+/\|P(X_a g)_+\|` (and 0). With a complete pattern set every pattern is bounded
    by an exact rational certificate (:func:`_exact_pattern_bound`) or by the rigorous relaxation
    bound (skipped patterns); otherwise the pattern-free bound :math:`\|Pv\|` is used.

    Returns ``(bound, info)``; ``info`` holds ``"value"`` (the float estimate of
    :math:`\max_u|\langle v, u\rangle|`), ``"pair"`` (best pattern index and sign), ``"direction"``,
    ``"n_exact"`` (patterns certified exactly) and ``"exact"``.
    """
    if not isinstance(patterns, Patterns):
        raise InputError(f"patterns must be a convexnn.Patterns; got {type(patterns).__name__}.")
    Xa = patterns.check(check_X(X))
    v = np.asarray(v, dtype=np.float64)
    n = Xa.shape[0]
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise InputError(f"v must be a finite vector of shape ({n},); got shape {v.shape}.")
    v_frac = [Fraction(float(a)) for a in v]
    mean = sum(v_frac, Fraction(0)) / n
    w_frac = [a - mean for a in v_frac]
    w2_frac = sum((a * a for a in w_frac), Fraction(0))
    one_v2 = sum(v_frac, Fraction(0)) ** 2
    info: dict[str, Any] = {"value": float(np.linalg.norm(v - v.mean())), "pair": None, "direction": None,
                            "n_exact": 0, "exact": bool(patterns.exact)}
    if not patterns.exact:
        return _sqrt_up(w2_frac + one_v2), info
    w_hat = v - v.mean()
    e_w = gamma(n + 4) * (np.abs(v) + float(np.sum(np.abs(v))) / n)  # |w - w_hat| and the rounding of c_plus
    masks = np.asarray(patterns.masks, dtype=bool)
    w_norm = _sqrt_up(w2_frac)
    R = np.vstack([_relaxed_bounds(masks, s * w_hat + e_w, w_norm) for s in (1, -1)])
    Xf = [[Fraction(float(a)) for a in row] for row in Xa]
    P = masks.shape[1]
    best2 = Fraction(0)
    best_rig = 0.0
    best_val, n_exact = -1.0, 0
    done = np.zeros(2 * P, dtype=bool)
    flat = R.ravel()
    for kk in np.argsort(-flat):
        if flat[kk] <= best_rig:
            break
        sgn_i, idx = divmod(int(kk), P)
        sigma = 1 - 2 * sgn_i
        b2, direction, fval = _exact_pattern_bound(Xa, Xf, masks[:, idx], sigma, w_hat, w_frac, w2_frac)
        n_exact += 1
        done[kk] = True
        bb = min(b2, Fraction(float(flat[kk])) ** 2)  # both bound this pattern's square
        best2 = max(best2, bb)
        best_rig = max(best_rig, _sqrt_up(bb))
        if np.isfinite(fval) and fval > best_val:
            best_val = fval
            info["pair"], info["direction"] = (idx, sigma), direction
    # skipped pairs: their rigorous relaxation bound (at most best_rig by the stopping rule)
    best2 = max(best2, Fraction(float(np.max(flat[~done], initial=0.0))) ** 2)
    info["value"] = max(best_val, 0.0)
    info["n_exact"] = n_exact
    return _sqrt_up(best2 + one_v2), info


def _primal_error(net: BatchNormReLU, Xa: np.ndarray, y: np.ndarray, lam: float, lo: Loss) -> float:
    r"""Bound on the rounding error of :meth:`BatchNormReLU.objective` (``inf`` when it cannot be bounded).

    :math:`|\hat Z - Z| \le E = \gamma_{d'}|X_a||W_1|` (0 where :math:`\hat Z < -E`: the ReLU is then
    exactly off); centering adds :math:`\gamma_{n+2}`; the normalization
    :math:`x \mapsto x/\|x\|` moves by at most :math:`2\delta/\|x\|` under a perturbation
    :math:`\delta`. A neuron that carries output (:math:`w_{2,j}\gamma_j \ne 0`) whose centered
    activation is within 4 error bounds of zero cannot be bounded (``inf``), unless that activation is
    exactly zero (every ReLU provably off: the neuron is dead in exact arithmetic too).
    """
    n, dp = Xa.shape
    Z = Xa @ net.W1
    E = gamma(dp + 2) * (np.abs(Xa) @ np.abs(net.W1))
    E = np.where(Z < -E, 0.0, E)
    Hh = np.maximum(Z, 0.0)
    C = Hh - Hh.mean(axis=0, keepdims=True)
    EC = E + E.mean(axis=0, keepdims=True) + gamma(n + 2) * (np.abs(Hh) + np.abs(Hh).mean(axis=0, keepdims=True))
    ecn = np.linalg.norm(EC, axis=0) * (1 + gamma(n + 2))
    N = _centered_norms(C, Hh)
    carries = net.w2 * net.gamma != 0
    dN = ecn + gamma(n + 4) * np.linalg.norm(C, axis=0)
    exactly_zero = (dN == 0) & ~np.any(C, axis=0)  # every ReLU decided off, or a constant column
    if np.any(carries & (N <= 4.0 * dN) & ~exactly_zero):
        return float("inf")
    with np.errstate(divide="ignore", invalid="ignore"):
        eU = np.where(N > 0, 2.0 * ecn / np.maximum(N - dN, 1e-300), 0.0) + gamma(n + 8)
    Un = np.divide(C, N, out=np.zeros_like(C), where=N > 0)
    terms = np.abs(net.w2) * (np.abs(net.gamma) * np.abs(Un) + np.abs(net.alpha))  # (n, m)
    e = (np.abs(net.w2 * net.gamma) * eU).sum() + gamma(net.n_neurons + 4) * terms.sum(axis=1)
    e = np.full(n, float(e)) if np.ndim(e) == 0 else e
    pred = net.predict(Xa[:, :net.n_features])
    err = float(np.sum(lo.slope_bound(pred, y, e) * e)) + lo.value_error(pred, y)
    return err + lam * net.regularizer() * gamma(3 * net.n_neurons + 4) + 1e-300


@dataclass(kw_only=True)
class BNCertificate(Certificate):
    r"""The certificate of a two-layer ReLU network with batch normalization (:func:`certify_bn`): a :class:`convexnn.Certificate`.

    ``gap``, ``rel_gap``, ``is_optimal``, ``verdict`` and the report are those of
    :class:`convexnn.Certificate` (defined there, once).

    Attributes
    ----------
    primal : float
        The network's objective (float evaluation).
    primal_error : float
        A bound on the rounding error of ``primal`` (``inf`` when a neuron's normalization is too
        ill-conditioned to bound; then nothing is claimed about optimality).
    lower_bound : float
        A lower bound on the optimum over BN networks of **any** width (weak duality, rounding
        accounted for). Valid with every pattern set: without a complete one the pattern-free bound
        :math:`s(v) \le \sqrt{\|Pv\|^2 + (\mathbf 1^\top v)^2}` is used (``bound_method``).
    exact : bool
        The bound used a complete pattern set (``patterns.exact``).
    s : float
        The rigorous upper bound of :math:`s(v_0)`, :math:`v_0 = -\nabla\ell(\hat y)` (compare with ``lam``).
    s_estimate : float
        The float value of :math:`s(v_0)` at the best pattern found (``s_estimate > lam``: the dual
        constraint is violated).
    lam, rtol : float
    improved : BatchNormReLU or None
        When the network is refuted: the network with one improving neuron appended, whose
        objective ``improved_objective`` is below ``primal`` by more than both rounding errors.
    improved_objective : float or None
    improving_neuron : ndarray of shape (d',) or None
        First-layer weight of that neuron (its pattern violates the dual constraint).
    n_exact : int
        Patterns bounded by an exact rational certificate (the rest by the relaxation bound).
    note : str or None
    """

    family: ClassVar[str] = "two-layer ReLU network with batch normalization"

    s: float
    s_estimate: float
    improved: BatchNormReLU | None = None
    improved_objective: float | None = None
    n_exact: int = 0
    method: str = "certify_bn"

    def _details(self) -> list[str]:
        lines = [f"  dual constraint s(v)/lam     {self.s / self.lam:.6g}"
                 + ("" if self.exact else "   (pattern-free bound: patterns not complete)")]
        if self.improved is not None:
            lines.append(f"  improving neuron             lowers the objective to {self.improved_objective:.10g}")
        return lines


def _improve(net: BatchNormReLU, X: np.ndarray, y: np.ndarray, lam: float, lo: Loss, v0: np.ndarray,
             candidates: list[np.ndarray]) -> tuple[BatchNormReLU, float, np.ndarray] | None:
    r"""Append the best candidate neuron :math:`t(a u + b\mathbf 1)`, :math:`(a, b) \propto (\langle v_0, u\rangle, \mathbf 1^\top v_0)`,
    with the step ``t`` found by a bounded line search; None if no candidate violates the dual constraint."""
    from scipy.optimize import minimize_scalar

    best = None
    for g in candidates:
        if g is None or not np.all(np.isfinite(g)) or not np.any(g):
            continue
        u = BatchNormReLU(g[:, None], [1.0], [0.0], [1.0], bias=net.bias).hidden(X)[:, 0]
        score = float(np.hypot(v0 @ u, v0.sum()))
        if best is None or score > best[0]:
            best = (score, g, u)
    if best is None or best[0] <= lam * (1 + 1e-9):
        return None
    score, g, u = best
    a, b = float(v0 @ u) / score, float(v0.sum()) / score

    def grow(t: float) -> BatchNormReLU:
        r = math.sqrt(t)
        return BatchNormReLU(np.hstack([net.W1, g[:, None]]), np.append(net.gamma, r * a),
                             np.append(net.alpha, r * b), np.append(net.w2, r), bias=net.bias)

    def phi(t: float) -> float:
        return grow(t).objective(X, y, lam, lo)

    hi = 1.0
    while phi(2 * hi) < phi(hi) and hi < 1e12:
        hi *= 2
    t = float(minimize_scalar(phi, bounds=(0.0, 2 * hi), method="bounded", options={"xatol": 1e-12 * hi}).x)
    return grow(t), phi(t), g


def certify_bn(network: BatchNormReLU, X: Any, y: Any, lam: float, *, patterns: Patterns | None = None,
               loss: str | Loss = "squared", rtol: float = 1e-6) -> BNCertificate:
    r"""Certify (or refute) the global optimality of a trained BN ReLU network by weak duality.

    **The dual constraint.** For a neuron, :math:`u = Ph/\|Ph\|` (or 0) and
    :math:`w_2(\gamma u + \alpha\mathbf 1)`; by Cauchy-Schwarz and AM-GM,
    :math:`\langle v, w_2(\gamma u + \alpha \mathbf 1)\rangle \le
    \tfrac12(w_2^2 + \gamma^2 + \alpha^2)\, s(v)` with

    .. math::

        s(v) = \sqrt{\max_{u\in\mathcal U}\langle v, u\rangle^2 + (\mathbf 1^\top v)^2},\qquad
        \max_{u\in\mathcal U}|\langle v, u\rangle| = \max_{i,\sigma=\pm1}\ \sup_{g\in\mathcal K_i}
        \frac{\sigma\langle Pv, D_iX_ag\rangle}{\|PD_iX_ag\|_2}.

    If :math:`s(v) \le \lambda`, Fenchel-Young gives :math:`F(\text{any BN network}) \ge -\ell^*(-v)`.
    This is the dual of :func:`c_bn_relu`: the per-pattern "s" is the support function of the
    *whitened* cone :math:`\Sigma_iV_i^\top\mathcal K_i` (not of :math:`\mathcal K_i \cap` unit ball as
    without BN), together with the shift column :math:`\mathbf 1`.

    **Per-pattern dual.** With :math:`S` the active samples (:math:`k = |S|`), :math:`z_S = X_S g`,
    :math:`\|PD_iX_ag\|^2 = \|z_S\|^2 - (\mathbf 1^\top z_S)^2/n`. For :math:`\rho \ge 0` and
    :math:`\mu` with :math:`X_S^\top\mu = X_{S^c}^\top\rho` and any :math:`t \ge \sigma (Pv)_S - \mu`,
    every :math:`g \in\mathcal K_i` satisfies
    :math:`\sigma\langle (Pv)_S, z_S\rangle \le \langle t, z_S\rangle \le
    \sqrt{\|t\|^2 + (\mathbf 1^\top t)^2/(n-k)}\ \|PD_iX_ag\|`
    (pair :math:`t` with :math:`(t, -\tfrac{\mathbf 1^\top t}{n-k}\mathbf 1) \perp \mathbf 1`; for
    :math:`k = n`, :math:`\mathbf 1^\top t = 0` is required). The minimum over
    :math:`(t, \mu, \rho)` is the pattern's value (strong duality of this small QP, solved by
    Clarabel). The inactive samples enter through :math:`\rho`: dropping them (:math:`\mu = \rho = 0`)
    is valid but loose for patterns with fewer than :math:`d'` active samples.

    **Rigor.** The equality :math:`X_S^\top\mu = X_{S^c}^\top\rho` cannot be checked in floating point
    and the first layer is unbounded in :math:`\ker X_S`, so the float dual point is made *exactly*
    feasible in rational arithmetic (:math:`d'` basic unknowns re-solved; if a basic :math:`\rho_j`
    turns negative the relaxation :math:`\mu = \rho = 0` is used), and :math:`\beta^2` is an exact
    rational; only its square root is rounded (upwards, checked). Patterns not evaluated are bounded
    by the relaxation with its rounding bounded by :math:`\gamma_k` (:mod:`convexnn.rounding`).
    The candidate :math:`v_0 = -\nabla\ell(\hat y)` is scaled by :math:`c \le \lambda/s(v_0)` and the
    rounding of :math:`c v_0` is covered by :math:`s(v + e) \le s(v) + \sqrt{\|Pe\|^2 + (\mathbf 1^\top e)^2}`
    (exact). The dual value is :func:`convexnn.duality.bounds.certified_dual_value`.

    Reference: Ergen, Sahiner, Ozturkler, Pauly, Mardani & Pilanci, "Demystifying Batch
    Normalization in ReLU Networks: Equivalent Convex Optimization Models and Implicit
    Regularization", ICLR 2022.

    Parameters
    ----------
    network : BatchNormReLU
    X, y, lam, loss
        The training problem (``lam > 0``).
    patterns : Patterns, optional
        Activation patterns of ``X`` with the network's bias setting (default: all, from
        :func:`convexnn.enumerate_patterns`). A set that is not complete gives a valid but loose
        bound (pattern-free) and ``exact=False``.
    rtol : float
        Relative gap accepted as a proof of optimality, in (0, 1).

    Returns
    -------
    BNCertificate

    Raises
    ------
    InputError
        Bad input, patterns of another ``X`` or bias setting.
    TooLargeError
        If the complete pattern set is too large to enumerate.
    """
    from convexnn.duality.bounds import best_scale, certified_dual_value

    if not isinstance(network, BatchNormReLU):
        raise InputError(f"network must be a BatchNormReLU; got {type(network).__name__}.")
    if not (isinstance(rtol, (float, int)) and 0 < rtol < 1):
        raise InputError(f"rtol must be in (0, 1); got {rtol!r}.")
    lo = get_loss(loss)
    Xa = network.design(X)
    Xc = Xa[:, :network.n_features]
    lam_v = check_lam(lam)
    yc = check_y(y, Xc.shape[0], loss=lo.name)
    if yc.ndim != 1:
        raise InputError(f"certify_bn takes scalar targets y of shape (n,); got {yc.shape}.")
    if patterns is None:
        from convexnn.arrangements.enumerate import enumerate_patterns

        patterns = enumerate_patterns(Xc, bias=network.bias)
    if not isinstance(patterns, Patterns):
        raise InputError(f"patterns must be a convexnn.Patterns or None; got {type(patterns).__name__}.")
    if patterns.bias != network.bias:
        raise InputError(f"the network has bias={network.bias} but the patterns bias={patterns.bias}.")
    patterns.check(Xc)
    primal = network.objective(Xc, yc, lam_v, lo)
    err = _primal_error(network, Xa, yc, lam_v, lo)
    pred = network.predict(Xc)
    v0 = lo.project_dual(-lo.grad(pred, yc), yc)
    s0, info = bn_dual_norm(Xc, v0, patterns)
    s_est = float(np.hypot(info["value"], v0.sum()))
    lower = certified_dual_value(lo, 0.0 * v0, yc)  # the zero point is always dual feasible
    if s0 > 0:
        c, _ = best_scale(lo, v0, yc, lam_v / s0 * (1 - 2.0 ** -40))
        for _ in range(8):
            v = c * v0
            e = [Fraction(float(a)) - Fraction(c) * Fraction(float(b)) for a, b in zip(v, v0)]
            me = sum(e, Fraction(0)) / len(e)
            se = _sqrt_up(sum(((a - me) ** 2 for a in e), Fraction(0)) + (me * len(e)) ** 2)
            sv = Fraction(c) * Fraction(s0) + Fraction(se)
            if sv <= Fraction(lam_v):
                lower = max(lower, certified_dual_value(lo, v, yc))
                break
            c *= 1 - 2.0 ** -30
    cert = BNCertificate(primal=primal, primal_error=err, lower_bound=float(lower), exact=bool(patterns.exact),
                         bound_method="complete pattern set" if patterns.exact else "pattern-free bound",
                         s=float(s0), s_estimate=s_est, lam=lam_v, rtol=float(rtol), n_exact=int(info["n_exact"]))
    if not np.isfinite(err):
        cert.note = "a neuron's normalization is too ill-conditioned to bound the primal's rounding"
    if not cert.is_optimal and patterns.exact and s_est > lam_v * (1 + 1e-9) and info["pair"] is not None:
        idx, _ = info["pair"]
        d = info["direction"]
        cands = [d, -d if d is not None else None, np.asarray(patterns.gates)[:, idx]]
        res = _improve(network, Xc, yc, lam_v, lo, v0, cands)
        if res is not None:
            new_net, new_obj, g = res
            noise = (err if np.isfinite(err) else 0.0) + _primal_error(new_net, Xa, yc, lam_v, lo)
            if new_obj < primal - noise:
                cert.improved, cert.improved_objective, cert.improving_neuron = new_net, new_obj, g
            else:
                cert.note = (f"the most violated dual constraint changes the objective by {primal - new_obj:.3g}, "
                             f"within its rounding error {noise:.3g}")
    return cert
