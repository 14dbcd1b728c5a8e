r"""Optimal neuron pruning (minimal models) and least-squares-corrected sub-optimal pruning.

**Optimal pruning** (Mishkin & Pilanci (ICML 2023) "Optimal Pruning: Algorithm"; Mishkin (PhD thesis, Stanford) bonus "Optimal Pruning Pseudo-code",
"Complexity of Pruning"). Write the balanced network as a sum of neuron contributions
:math:`\hat y = \sum_j a_j`, :math:`a_j = (X_a W_{1j})_+ w_{2j}` (in convex terms
:math:`a_j = D_j X_a\theta_j`). While the active :math:`a_j` are linearly dependent, take
:math:`\beta \ne 0` with :math:`\sum_j\beta_j a_j = 0`, let :math:`t = 1/\max_j\beta_j` and scale
every neuron's contribution by :math:`1 - t\beta_j \ge 0`: the fit is unchanged and the neuron
attaining the maximum vanishes. Scaling a balanced neuron's contribution by :math:`f \ge 0`
(:math:`W_{1j}, w_{2j} \mapsto \sqrt f W_{1j}, \sqrt f w_{2j}`) scales its weight decay
:math:`\lambda\|W_{1j}\||w_{2j}|` by :math:`f`. On an optimal network the weight decay is constant
along the step (Mishkin & Pilanci (ICML 2023): all optimal models have the same model norm); on *any* network we choose
the sign of :math:`\beta` with :math:`\sum_j\beta_j\|W_{1j}\||w_{2j}| \ge 0`, so the objective
never increases. The result has linearly independent active columns, hence at most
:math:`\operatorname{rank}\le n` neurons; it is a minimal model (a vertex of the optimal
polytope) when the input is optimal.

Complexity: neurons are added one at a time to a working set that stays linearly independent
(at most :math:`n` columns), so each dependence check is one SVD of an :math:`n\times(\le n+1)`
matrix: :math:`O(n d m + n^3 m)` for :math:`m` neurons (Mishkin (PhD thesis, Stanford): :math:`O(ndp + n^3p)`).

**Sub-optimal pruning** past the minimal width (Mishkin (PhD thesis, Stanford) bonus "Sub-Optimal Pruning"): remove neuron
:math:`j` and correct the others by least squares,
:math:`\hat\beta = \arg\min_\beta\|\sum_{i\ne j}\beta_i a_i - a_j\|`, :math:`a_i \mapsto
(1+\hat\beta_i)a_i` (a negative factor flips the output weight). The neuron is chosen by a rule:
``"ls"`` (brute force: the neuron best explained by the others, the best rule in Mishkin (PhD thesis, Stanford)),
``"magnitude"`` (smallest :math:`\|W_{1j}\||w_{2j}|`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convexnn.errors import InputError
from convexnn.arrangements.patterns import design_matrix
from convexnn.data import check_X
from convexnn.formulations.penalties import require_group_l2
from convexnn.duality._common import NetworkArrays, as_network_arrays, rebalance, rebuild_network

__all__ = ["prune", "prune_to", "prune_columns"]


def prune_columns(A: np.ndarray, cost: np.ndarray, *, rtol: float = 1e-9) -> np.ndarray:
    r"""Scale factors :math:`f \ge 0` making the columns :math:`\{f_j a_j : f_j > 0\}` linearly independent.

    Runs the Mishkin & Pilanci (ICML 2023) pruning algorithm on the columns of ``A`` (shape ``(n, m)``) with
    :math:`A f = A\mathbf 1` (up to the dependence tolerance) and :math:`\langle c, f\rangle \le
    \langle c, \mathbf 1\rangle` for the nonnegative costs ``cost``.

    Parameters
    ----------
    A : ndarray, shape (n, m)
    cost : ndarray, shape (m,)
    rtol : float
        Columns are dependent when the smallest singular value of the (column-normalized)
        working set is below ``rtol``.

    Returns
    -------
    ndarray, shape (m,)
    """
    n, m = A.shape
    f = np.ones(m)
    norms = np.linalg.norm(A, axis=0)
    top = float(norms.max()) if m else 0.0
    f[norms <= 1e-14 * max(top, 1e-300)] = 0.0  # dead neurons contribute nothing
    active: list[int] = []
    for j in range(m):
        if f[j] == 0.0:
            continue
        active.append(j)
        while len(active) > 1:
            idx = np.array(active)
            cols = A[:, idx] * f[idx]
            scale = np.linalg.norm(cols, axis=0)
            # economy SVD while the working set fits in R^n; a full one only when it exceeds n
            _, s, Vt = np.linalg.svd(cols / scale, full_matrices=len(idx) > n)
            smin = s[-1] if len(idx) <= n else 0.0
            if smin > rtol:
                break
            beta = Vt[-1] / scale  # sum_k beta_k cols_k ~ 0
            if float(beta @ (cost[idx] * f[idx])) < 0 or (abs(float(beta @ (cost[idx] * f[idx]))) <= 1e-15
                                                           and beta.max() <= 0):
                beta = -beta
            k = int(np.argmax(beta))
            if beta[k] <= 0:
                break
            factor = 1.0 - beta / beta[k]
            factor[k] = 0.0
            f[idx] = f[idx] * np.maximum(factor, 0.0)
            active = [a for a in active if f[a] > 0]
    return f


def _contributions(net: NetworkArrays, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    W1, w2 = rebalance(net.W1, net.w2)
    A = np.maximum(Xa @ W1, 0.0) * w2[None, :]
    return W1, w2, A


def _scaled(W1: np.ndarray, w2: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale neuron contributions by ``f`` (any sign) keeping neurons balanced; drop zeros."""
    keep = f != 0
    r = np.sqrt(np.abs(f[keep]))
    return W1[:, keep] * r[None, :], w2[keep] * r * np.sign(f[keep])


def _as_net(network_or_solution: Any, X: Any) -> tuple[NetworkArrays, np.ndarray]:
    obj = network_or_solution
    if hasattr(obj, "formulation") and hasattr(obj, "weights"):  # a ConvexSolution
        if obj.formulation.kind != "c_relu":
            raise InputError(f"prune() needs a C-ReLU solution or a ReLU network; got {obj.formulation.kind!r}.")
        require_group_l2(obj.formulation, "prune()")
        obj = obj.to_network()
    require_group_l2(obj, "prune()")
    Xc = check_X(X)
    net = as_network_arrays(obj, Xc.shape[1], Xc)
    return net, design_matrix(Xc, net.bias)


def prune(network: Any, X: Any, *, rtol: float = 1e-9) -> Any:
    r"""Prune a two-layer ReLU network (or a C-ReLU solution) to a minimal model (Mishkin & Pilanci (ICML 2023)).

    Parameters
    ----------
    network : TwoLayerReLU, (W1, w2), torch module, or ConvexSolution of C-ReLU
    X : array, shape (n, d)
    rtol : float
        Linear-dependence tolerance (smallest singular value of the column-normalized active
        contributions).

    Returns
    -------
    network
        Same kind as the input (a :class:`~convexnn.TwoLayerReLU` for solutions and torch modules,
        a ``(W1, w2)`` tuple for arrays), balanced, with the same predictions (up to ``rtol``),
        an objective no larger (equal when the input is optimal), and linearly independent
        neuron outputs, hence at most ``n`` neurons.
    """
    net, Xa = _as_net(network, X)
    W1, w2, A = _contributions(net, Xa)
    cost = np.linalg.norm(W1, axis=0) * np.abs(w2)
    f = prune_columns(A, cost, rtol=rtol)
    W1p, w2p = _scaled(W1, w2, f)
    return rebuild_network(net, W1p, w2p)


def prune_to(network: Any, X: Any, width: int, *, rule: str = "ls", correct: bool = True,
             rtol: float = 1e-9) -> Any:
    r"""Prune to at most ``width`` neurons: optimal pruning, then least-squares-corrected removals (Mishkin (PhD thesis, Stanford)).

    Parameters
    ----------
    network : TwoLayerReLU, (W1, w2), torch module, or ConvexSolution of C-ReLU
    X : array, shape (n, d)
    width : int
        Target number of neurons (``>= 0``).
    rule : {"ls", "magnitude"}
        Which neuron to remove next: ``"ls"`` the one best reconstructed by the others
        (brute force over all neurons, computed at once from the inverse Gram matrix:
        the residual of regressing :math:`a_j` on the rest is :math:`1/(G^{-1})_{jj}`),
        ``"magnitude"`` the one with the smallest :math:`\|W_{1j}\||w_{2j}|`.
    correct : bool
        Apply the least-squares correction to the remaining neurons (``False``: plain structured
        pruning, the naive baseline).
    rtol : float
        Tolerance of the initial optimal pruning.

    Returns
    -------
    network
        Same kind as the input, at most ``width`` neurons.
    """
    if rule not in ("ls", "magnitude"):
        raise InputError(f"rule must be 'ls' or 'magnitude'; got {rule!r}.")
    if int(width) != width or width < 0:
        raise InputError(f"width must be a nonnegative integer; got {width!r}.")
    net, Xa = _as_net(network, X)
    W1, w2, A = _contributions(net, Xa)
    if correct:
        f = prune_columns(A, np.linalg.norm(W1, axis=0) * np.abs(w2), rtol=rtol)
    else:
        f = (np.linalg.norm(A, axis=0) > 0).astype(float)
    while np.count_nonzero(f) > width:
        idx = np.flatnonzero(f)
        cols = A[:, idx] * f[idx]
        if rule == "magnitude":
            cost = np.linalg.norm(W1[:, idx], axis=0) * np.abs(w2[idx]) * np.abs(f[idx])
            k = int(np.argmin(cost))
        else:
            G = cols.T @ cols
            Ginv = np.linalg.pinv(G, rcond=1e-13, hermitian=True)
            dg = np.diag(Ginv)
            resid = np.where(dg > 0, 1.0 / np.where(dg > 0, dg, 1.0), np.linalg.norm(cols, axis=0) ** 2)
            k = int(np.argmin(resid))
        j = idx[k]
        rest = np.delete(np.arange(len(idx)), k)
        if correct and rest.size:
            beta, *_ = np.linalg.lstsq(cols[:, rest], cols[:, k], rcond=None)
            f[idx[rest]] = f[idx[rest]] * (1.0 + beta)
        f[j] = 0.0
    W1p, w2p = _scaled(W1, w2, f)
    return rebuild_network(net, W1p, w2p)
