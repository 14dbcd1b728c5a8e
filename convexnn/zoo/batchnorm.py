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
"""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np

from convexnn.arrangements.patterns import Patterns
from convexnn.data import add_bias, check_lam, check_X, check_y
from convexnn.errors import InputError
from convexnn.formulations.blocks import ZERO_RTOL
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.losses import Loss, get_loss

__all__ = ["BatchNormReLU", "BNReLUFormulation", "c_bn_relu", "bn_from_network"]

_DEGENERATE_RTOL = 1e-12


def _centered_norms(C: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Column norms of the centered activations ``C``, with 0 where the column is constant."""
    N = np.linalg.norm(C, axis=0)
    scale = np.maximum(1.0, np.linalg.norm(H, axis=0))
    N[N <= _DEGENERATE_RTOL * scale] = 0.0
    return N


class BatchNormReLU:
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

    def objective(self, X: Any, y: Any, lam: float, loss: str | Loss = "squared") -> float:
        r"""Training objective :math:`\ell(f(X), y) + \frac\lambda2\sum_j(\gamma_j^2 + \alpha_j^2 + w_{2,j}^2)`."""
        lo = get_loss(loss)
        pred = self.predict(X)
        yy = check_y(y, pred.shape[0], loss=lo.name)
        if yy.ndim != 1:
            raise InputError(f"BatchNormReLU has a scalar output; y must have shape (n,), got {yy.shape}.")
        return lo.value(pred, yy) + check_lam(lam, allow_zero=True) * self.regularizer()

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
