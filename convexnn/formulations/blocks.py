r"""Numpy algebra of the convex weights of the two-layer programs: the one place for it.

The convex weights are blocks :math:`u_i` (rows of ``U``, shape ``(P, d')``, or ``(P, d', c)``
for vector outputs, ``docs/DESIGN.md``). This module holds what every consumer of such weights
computes -- the formulations (:mod:`convexnn.formulations.two_layer`), the network-to-convex map
(:mod:`convexnn.mapping`) and the solvers' results:

* the fit :math:`\sum_i D_i X_a u_i` (:func:`block_fit`) and its matrix over a set of blocks
  (:func:`block_design`), block norms and the regularizer;
* the cone violation :math:`\max_{i,j} (-(2D_i - I)X_a u_i)_j^+` (:func:`cone_violation`);
* the **zero-block threshold** of the convex-to-network maps (:func:`zero_block_threshold`):
  interior-point solvers return :math:`\sim 10^{-10}` instead of exact zeros, so a block whose
  norm is at most :data:`ZERO_RTOL` times the scale is dropped;
* the neurons of the maps: gated blocks (:func:`gated_neurons`; Mishkin, Sahiner & Pilanci,
  *Fast Convex Optimization for Two-Layer ReLU Networks*, ICML 2022, Thm 2.2), ReLU blocks under
  the group norm (:func:`group_neurons`) and under the nuclear norm (:func:`nuclear_relu_neurons`;
  Sahiner, Ergen, Pauly & Pilanci, *Vector-output ReLU Neural Network Problems are
  Copositive Programs*, ICLR 2021).

Each nonzero block :math:`u` becomes a neuron :math:`(u/\sqrt{R(u)}, \pm\sqrt{R(u)})` for the
program's first-layer penalty :math:`R` (:mod:`convexnn.formulations.penalties`, default
:math:`\|\cdot\|_2`), whose weight decay :math:`\tfrac12(R(u/\sqrt{R(u)})^2 + \sqrt{R(u)}^2) = R(u)`
is the block's regularizer.
"""

from __future__ import annotations

import numpy as np

from convexnn.formulations.penalties import Penalty, get_penalty

__all__ = ["ZERO_RTOL", "zero_block_threshold", "block_fit", "block_design", "block_norms", "block_regularizer",
           "cone_violation", "gated_neurons", "group_neurons", "nuclear_relu_neurons"]

#: Blocks whose norm is at most ``ZERO_RTOL`` times the largest block norm (or the data scale
#: ``||y|| / ||Xa||_F`` when the targets are known and it is larger) are treated as zero by the
#: C -> NC mappings (interior-point solvers return ~1e-10 instead of exact zeros).
ZERO_RTOL = 1e-8


def zero_block_threshold(*blocks: np.ndarray, Xa: np.ndarray | None = None, y: np.ndarray | None = None) -> float:
    r"""``ZERO_RTOL`` times the larger of the largest block norm of ``blocks`` and, when the data
    are given, the data scale :math:`\|y\|_2 / \|X_a\|_F`.

    The data scale keeps an all-zero optimum (large ``lam``) from being mapped to neurons made
    of solver noise; without targets (a network's weights, :func:`convexnn.from_network`) it is 0.
    """
    scale = max((float(np.max(block_norms(a))) for a in blocks if a.size), default=0.0)
    data = 0.0
    if Xa is not None and y is not None:
        xn = float(np.linalg.norm(Xa))
        data = float(np.linalg.norm(y)) / xn if xn > 0 else 0.0
    return ZERO_RTOL * max(scale, data)


def block_fit(Xa: np.ndarray, masks: np.ndarray, U: np.ndarray) -> np.ndarray:
    r"""Numpy :math:`\sum_i D_i X_a u_i` for ``U`` of shape ``(P, d')`` or ``(P, d', c)``."""
    if U.ndim == 2:
        return np.sum(masks * (Xa @ U.T), axis=1)
    Z = np.einsum("nd,pdc->npc", Xa, U)
    return np.einsum("np,npc->nc", masks, Z)


def block_design(Xa: np.ndarray, cols: np.ndarray) -> np.ndarray:
    r"""The fit's matrix over ``k`` blocks, :math:`[\operatorname{diag}(c_1)X_a, \dots,
    \operatorname{diag}(c_k)X_a]` of shape ``(n, k d')``, for the columns :math:`c_b` of ``cols``
    (``(n, k)``): the masks :math:`m_i` of the blocks (:math:`D_iX_a`), or :math:`\sigma_b m_{i_b}`
    for signed blocks (the :math:`v_i`, :math:`w_i` of C-ReLU)."""
    c = np.asarray(cols, dtype=np.float64)
    n, d = Xa.shape
    return (c[:, :, None] * Xa[:, None, :]).reshape(n, c.shape[1] * d)


def block_norms(U: np.ndarray) -> np.ndarray:
    """Euclidean norm of each block column: ``(P,)`` or ``(P, c)``."""
    return np.linalg.norm(U, axis=1)


def block_regularizer(U: np.ndarray, vector_reg: str, penalty: Penalty | None = None) -> float:
    r""":math:`\sum_i R(u_i)` (group; per column for vector outputs; :math:`R = \|\cdot\|_2` unless a
    ``penalty`` is given) or :math:`\sum_i \|U_i\|_*` (nuclear)."""
    if U.ndim == 2 or vector_reg == "group":
        pen = get_penalty(penalty)
        if pen.group_l2:
            return float(np.sum(block_norms(U)))
        return pen.value(U)
    return float(sum(np.linalg.norm(U[i], "nuc") for i in range(U.shape[0])))


def cone_violation(Xa: np.ndarray, signs: np.ndarray, U: np.ndarray) -> float:
    r"""Largest violation :math:`\max(0, -\min_{i,j} ((2D_i - I)X_a u_i)_j)` (``signs = 2 masks - 1``)."""
    if U.ndim == 2:
        T = signs * (Xa @ U.T)
    else:
        T = signs[:, :, None] * np.einsum("nd,pdc->npc", Xa, U)
    return float(max(0.0, -T.min())) if T.size else 0.0


def gated_neurons(U: np.ndarray, thr: float, vector_reg: str = "group",
                  penalty: Penalty | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Neurons of gated blocks: ``(pattern index, W1, w2)`` of the C-GReLU -> gated network map.

    Each block with norm above ``thr`` gives :math:`W_{1,:j} = u_i/\sqrt{\|u_i\|}`,
    :math:`w_{2,j} = \sqrt{\|u_i\|}` (group norm; one neuron per nonzero column for vector
    outputs), or :math:`W_{1,:j} = \sqrt{\sigma_k} p_k`, :math:`w_{2,j} = \sqrt{\sigma_k} q_k` for
    the SVD :math:`U_i = \sum_k \sigma_k p_k q_k^\top` (nuclear norm, vector outputs). The gate
    of neuron ``j`` is the gate of pattern ``index[j]``. With a ``penalty`` :math:`R` the scale is
    :math:`\sqrt{R(u_i)}` instead of :math:`\sqrt{\|u_i\|}` (zero blocks are still those of
    Euclidean norm at most ``thr``).
    """
    d = U.shape[1]
    if U.ndim == 3 and vector_reg == "nuclear":
        idx, cols, outs = [], [], []
        for i in range(U.shape[0]):
            A, s, Bt = np.linalg.svd(U[i], full_matrices=False)
            for k in np.flatnonzero(s > max(thr, 0.0)):
                idx.append(i)
                cols.append(np.sqrt(s[k]) * A[:, k])
                outs.append(np.sqrt(s[k]) * Bt[k])
        c = U.shape[2]
        if not cols:
            return np.zeros(0, dtype=np.int64), np.zeros((d, 0)), np.zeros((0, c))
        return np.array(idx, dtype=np.int64), np.array(cols).T, np.array(outs)
    norms = block_norms(U)
    scale = _scales(U, norms, penalty)
    if U.ndim == 2:
        keep = np.flatnonzero(norms > thr)
        r = scale[keep]
        return keep, U[keep].T / r, r
    ii, kk = np.nonzero(norms > thr)
    r = scale[ii, kk]
    w2 = np.zeros((ii.size, U.shape[2]))
    w2[np.arange(ii.size), kk] = r
    return ii, U[ii, :, kk].T / r, w2


def _scales(U: np.ndarray, norms: np.ndarray, penalty: Penalty | None) -> np.ndarray:
    """The neuron scale sqrt(R(u)) of each block (``Penalty.neuron_scales``; from the Euclidean
    ``norms`` already at hand for the group lasso)."""
    pen = get_penalty(penalty)
    return np.sqrt(norms) if pen.group_l2 else pen.neuron_scales(U)


def group_neurons(U: np.ndarray, sign: float, thr: float,
                  penalty: Penalty | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Neurons of one C-ReLU block family under the group norm (scalar or per-output columns):
    :math:`(u/\sqrt{R(u)}, \pm\sqrt{R(u)})` for the blocks of Euclidean norm above ``thr``."""
    norms = block_norms(U)
    scale = _scales(U, norms, penalty)
    if U.ndim == 2:
        keep = np.flatnonzero(norms > thr)
        r = scale[keep]
        return U[keep].T / r, sign * r
    ii, kk = np.nonzero(norms > thr)
    r = scale[ii, kk]
    w2 = np.zeros((ii.size, U.shape[2]))
    w2[np.arange(ii.size), kk] = sign * r
    return U[ii, :, kk].T / r, w2


def nuclear_relu_neurons(Xa: np.ndarray, signs: np.ndarray, V: np.ndarray, W: np.ndarray,
                          thr: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """SVD neurons of nuclear-norm C-ReLU blocks; column-wise fallback where a factor leaves its cone."""
    d, c = V.shape[1], V.shape[2]
    cols: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    exact = True
    for U, sign in ((V, 1.0), (W, -1.0)):
        for i in range(U.shape[0]):
            if np.linalg.norm(U[i]) <= thr:
                continue
            A, s, Bt = np.linalg.svd(U[i], full_matrices=False)
            ks = np.flatnonzero(s > thr)
            new_c, new_o, ok = [], [], True
            for k in ks:
                z = signs[:, i] * (Xa @ A[:, k])
                tol = 1e-7 * max(1.0, float(np.max(np.abs(z))))
                flip = 1.0 if z.min() >= -tol else (-1.0 if z.max() <= tol else 0.0)
                if flip == 0.0:
                    ok = False
                    break
                new_c.append(flip * np.sqrt(s[k]) * A[:, k])
                new_o.append(sign * flip * np.sqrt(s[k]) * Bt[k])
            if not ok:  # one neuron per nonzero column: each column is in K_i
                exact = False
                nrm = np.linalg.norm(U[i], axis=0)
                new_c, new_o = [], []
                for k in np.flatnonzero(nrm > thr):
                    new_c.append(U[i][:, k] / np.sqrt(nrm[k]))
                    e = np.zeros(c)
                    e[k] = sign * np.sqrt(nrm[k])
                    new_o.append(e)
            cols.extend(new_c)
            outs.extend(new_o)
    if not cols:
        return np.zeros((d, 0)), np.zeros((0, c)), exact
    return np.array(cols).T, np.array(outs), exact
