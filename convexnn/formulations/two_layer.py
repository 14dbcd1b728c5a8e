r"""Exact convex programs of two-layer ReLU and gated ReLU networks, as ``cvxpy.Problem`` objects.

Given data :math:`X \in \mathbb R^{n\times d}` (design matrix :math:`X_a = [X, \mathbf 1]` when
``bias``), targets :math:`y` and activation patterns :math:`D_i = \operatorname{diag}(\mathbf
1[X_a g_i \ge 0])`, :math:`i = 1..P` (a :class:`~convexnn.Patterns`), the builders return

**C-ReLU** (:func:`c_relu`; Mishkin, Sahiner & Pilanci (ICML 2022) "Convex Reformulation [PE20]", Mishkin & Pilanci (ICML 2023), Pilanci (2021 talk) "convex group lasso")

.. math::

    \min_{v_i, w_i \in \mathcal K_i}\ \ell\Big(\sum_{i=1}^P D_i X_a (v_i - w_i),\ y\Big)
    + \lambda \sum_{i=1}^P \big(\|v_i\|_2 + \|w_i\|_2\big),
    \qquad \mathcal K_i = \{u : (2D_i - I) X_a u \ge 0\},

whose optimal value equals that of the weight-decay network objective
:math:`\ell((X_a W_1)_+ w_2, y) + \tfrac\lambda2\sum_j(\|W_{1,:j}\|^2 + w_{2,j}^2)` when the
patterns are the complete arrangement and the width is large enough (``m >= m* <= n``), and is
an upper bound on it with any subset of patterns (the mapped network is feasible).

**C-GReLU** (:func:`c_grelu`; Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2) drops the cone constraints,

.. math::

    \min_{u_i}\ \ell\Big(\sum_{i=1}^P D_i X_a u_i,\ y\Big) + \lambda\sum_{i=1}^P \|u_i\|_2,

and is *exactly* the training problem of a gated ReLU network with gates ``patterns.gates``
(:class:`~convexnn.GatedReLU`), with any pattern set.

**Vector output** (``y`` of shape ``(n, c)``, blocks :math:`V_i \in \mathbb R^{d'\times c}`),
chosen by ``vector_reg``:

* ``"group"`` (default): :math:`\lambda\sum_{i,k}(\|v_{ik}\|_2 + \|w_{ik}\|_2)` over the
  columns :math:`v_{ik}` of :math:`V_i`; every column in :math:`\mathcal K_i`. Exact for networks
  in which each hidden neuron feeds a single output (``c`` scalar networks sharing the input);
  the C -> NC mapping is always exact. Fully vectorized.
* ``"nuclear"``: the program of Pilanci (2021 talk) ("Vector Output Two-layer ReLU Networks: Nuclear Norm
  Regularization", Sahiner et al.) :math:`\lambda\sum_i(\|V_i\|_* + \|W_i\|_*)` with every column
  of :math:`V_i, W_i` in :math:`\mathcal K_i`. For C-GReLU (no cones) it is exactly the gated
  vector-output network problem (SVD mapping, exact). For C-ReLU the SVD mapping is exact when
  every left singular vector of a block lies in :math:`\pm\mathcal K_i`; otherwise the mapping
  falls back to one neuron per column (same predictions, larger weight decay) and warns. It is a
  semidefinite program with one nuclear-norm atom per pattern (CVXPY has no batched nuclear
  norm): use it for small ``P``.

**Min-norm interpolation** (:func:`min_norm_interpolation`; Pilanci (2021 talk) "Unregularized gradient flow" and
"Unregularized neural networks"): the :math:`\lambda\to0` limit,
:math:`\min \sum_i \|v_i\| + \|w_i\|` s.t. exact fit (regression) or
:math:`\operatorname{diag}(y)\sum_i D_i X_a(v_i - w_i) \ge 1` (separable classification).

Construction (``docs/DESIGN.md``): one ``(d', P)`` variable per block family (``V``, ``W`` or
``U``; ``(d', c P)`` for vector outputs, output-major: columns ``k*P .. (k+1)*P - 1`` belong
to output ``k``), masked products ``sum(multiply(masks, Xa @ V), axis=1)``, the group norms
``norm(V, 2, axis=0)``, and the cone constraints as ONE matrix constraint each,
``constraints["cone_v"] = multiply(S, Xa @ V) >= 0`` with ``S = 2*masks - 1`` (dual values of
shape ``(n, P)``, or ``(n, c P)``). ``lam`` is a nonnegative ``cp.Parameter`` multiplying the
regularizer, so the problems are DPP: changing ``f.lam.value`` and re-solving reuses the
compiled problem. No Python loop creates per-pattern constraints.

The all-zero pattern (:math:`D_i = 0`), when present, is **kept**: its blocks do not change the
fit and only add to the regularizer, so they are zero at every optimum (keep it harmlessly; use
``patterns.without_empty()`` to drop it). Keeping it makes :func:`convexnn.from_network` able to
represent dead neurons with the same objective.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from convexnn.arrangements.patterns import Patterns
from convexnn.data import check_bool, check_lam, check_X, check_y
from convexnn.errors import TooLargeError, ConvexNNWarning, InputError
from convexnn.formulations.blocks import (
    ZERO_RTOL,
    block_fit,
    block_regularizer,
    cone_violation,
    gated_neurons,
    group_neurons,
    nuclear_relu_neurons,
    zero_block_threshold,
)
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.losses import Loss, get_loss

__all__ = [
    "CReLU",
    "CGReLU",
    "MinNormInterpolation",
    "c_relu",
    "c_grelu",
    "min_norm_interpolation",
    "ZERO_RTOL",
]

_VECTOR_REGS = ("group", "nuclear")


# ============================================================================ validation
def _prepare(
    X: Any, y: Any, patterns: Any, loss: str | Loss, bias: bool | None, vector_reg: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Loss, bool]:
    if not isinstance(patterns, Patterns):
        raise InputError(f"patterns must be a convexnn.Patterns; got {type(patterns).__name__}. Build them "
                         "with convexnn.enumerate_patterns(X) or Patterns.from_gates(X, gates).")
    lo = get_loss(loss)
    if bias is None:
        bias = patterns.bias
    elif check_bool(bias, "bias") != patterns.bias:
        raise InputError(f"bias={bool(bias)} but the patterns were built with bias={patterns.bias}; "
                         "build the patterns with the same bias setting (or pass bias=None).")
    Xc = check_X(X)
    Xa = patterns.check(Xc)
    yc = check_y(y, Xc.shape[0], loss=lo.name)
    if len(patterns) == 0:
        raise InputError("the pattern set is empty; the convex program would have no variables.")
    if vector_reg not in _VECTOR_REGS:
        raise InputError(f"vector_reg must be one of {_VECTOR_REGS}; got {vector_reg!r}.")
    return Xc, Xa, yc, lo, bool(bias)


#: largest dense data (bytes) a builder materializes before CVXPY compiles anything
MAX_BUILD_BYTES = 2 * 2**30


def _check_build_size(kind: str, n: int, P: int, c: int, copies: int) -> None:
    """Refuse, before allocating, a program whose ``n x P`` constants would exceed :data:`MAX_BUILD_BYTES`.

    A builder holds ``copies`` dense float64 ``n x (c P)`` arrays (masks, cone signs and the
    constants of the masked products).
    """
    nbytes = 8 * n * P * c * copies
    if nbytes > MAX_BUILD_BYTES:
        raise TooLargeError(
            f"{kind} with n={n}, P={P:,} patterns and {c} output(s) would hold about "
            f"{nbytes / 2**30:.1f} GiB of dense constants before compiling (limit "
            f"{MAX_BUILD_BYTES / 2**30:.0f} GiB). Use fewer patterns, or the first-order solvers "
            "(convexnn.solve(..., method='first_order')) that never build the CVXPY program.",
            estimate=nbytes, limit=MAX_BUILD_BYTES)


def _lam_parameter(value: float) -> cp.Parameter:
    return cp.Parameter(nonneg=True, name="lam", value=value)


def _output_sum(P: int, c: int) -> sp.csr_matrix:
    """Sparse ``(c P, c)`` matrix summing each output's ``P`` columns (output-major layout)."""
    rows = np.arange(c * P)
    return sp.csr_matrix((np.ones(c * P), (rows, rows // P)), shape=(c * P, c))


def _maskedblock_fit(Xa: np.ndarray, masks: np.ndarray, B: cp.Variable, c: int) -> cp.Expression:
    r"""CVXPY expression :math:`\sum_i D_i X_a b_i`, shape ``(n,)`` or ``(n, c)``."""
    P = masks.shape[1]
    if c == 1:
        return cp.sum(cp.multiply(masks, Xa @ B), axis=1)
    return cp.multiply(np.tile(masks, (1, c)), Xa @ B) @ _output_sum(P, c)


def _cone(Xa: np.ndarray, signs: np.ndarray, B: cp.Variable, c: int) -> cp.Constraint:
    """The cone constraints of a whole block family as one ``(n, c P)`` matrix constraint."""
    S = signs if c == 1 else np.tile(signs, (1, c))
    return cp.multiply(S, Xa @ B) >= 0


def _reg_expr(B: cp.Variable, P: int, c: int, vector_reg: str) -> cp.Expression:
    if c == 1 or vector_reg == "group":
        return cp.sum(cp.norm(B, 2, axis=0))
    # one nuclear-norm atom per block (an SDP cone each); columns i, i+P, ... form block i
    return cp.sum(cp.hstack([cp.normNuc(B[:, i::P]) for i in range(P)]))


# ============================================================================ numpy helpers
def _blocks(value: np.ndarray, P: int, c: int) -> np.ndarray:
    """``(d', c P)`` variable value -> ``(P, d')`` or ``(P, d', c)`` convex weights."""
    if c == 1:
        return np.ascontiguousarray(value.T)
    d = value.shape[0]
    return np.ascontiguousarray(value.reshape(d, c, P).transpose(2, 0, 1))


def _check_weights(weights: dict[str, np.ndarray], keys: tuple[str, ...], shape: tuple[int, ...]) -> None:
    for k in keys:
        if k not in weights:
            raise InputError(f"weights need the key {k!r}; got {sorted(weights)}.")
        if np.shape(weights[k]) != shape:
            raise InputError(f"weights[{k!r}] must have shape {shape}; got {np.shape(weights[k])}.")


# ============================================================================ formulations
class _TwoLayerFormulation(Formulation):
    """Shared pieces of the two-layer programs (sizes, vector layout)."""

    vector_reg: str = "group"

    @property
    def n_outputs(self) -> int:
        return 1 if self.y.ndim == 1 else int(self.y.shape[1])

    @property
    def masks(self) -> np.ndarray:
        """``patterns.masks`` as floats, shape ``(n, P)``."""
        return self.meta["masks"]

    @property
    def signs(self) -> np.ndarray:
        """``2 * masks - 1``, shape ``(n, P)``: row signs of the cones :math:`\\mathcal K_i`."""
        return 2.0 * self.meta["masks"] - 1.0

    def nnz_estimate(self) -> int:
        """Nonzeros of the canonicalized program: ``k n P d' c`` with ``k = 4`` for C-ReLU (two
        masked products, two cone constraints) and ``k = 1`` for C-GReLU."""
        n, d = self.Xa.shape
        k = 4 if "W" in self.variables else 1
        return int(k * n * self.n_patterns * d * self.n_outputs)

    def _weight_shape(self) -> tuple[int, ...]:
        d = self.Xa.shape[1]
        P = self.n_patterns
        return (P, d) if self.n_outputs == 1 else (P, d, self.n_outputs)

    def _zero_threshold(self, *arrays: np.ndarray) -> float:
        """:func:`~convexnn.formulations.blocks.zero_block_threshold` with this program's data scale."""
        return zero_block_threshold(*arrays, Xa=self.Xa, y=self.y)


class CReLU(_TwoLayerFormulation):
    r"""The C-ReLU program (see the module docstring); built by :func:`c_relu`.

    Weights: ``{"V": (P, d'), "W": (P, d')}`` (``(P, d', c)`` for vector output).
    Constraints: ``"cone_v"``, ``"cone_w"`` (one ``(n, P)`` matrix constraint each).
    """

    kind = "c_relu"
    cone_constraints = True
    weight_keys = ("V", "W")

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        P, c = self.n_patterns, self.n_outputs
        return {k: _blocks(np.asarray(self.variables[k].value, dtype=float), P, c) for k in ("V", "W")}

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        r""":math:`\sum_i D_i X_a (v_i - w_i)` on the training data."""
        _check_weights(weights, ("V", "W"), self._weight_shape())
        return block_fit(self.Xa, self.masks, np.asarray(weights["V"]) - np.asarray(weights["W"]))

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        r""":math:`\sum_i \|v_i\|_2 + \|w_i\|_2` (group) or :math:`\sum_i \|V_i\|_* + \|W_i\|_*` (nuclear)."""
        _check_weights(weights, ("V", "W"), self._weight_shape())
        return (block_regularizer(np.asarray(weights["V"]), self.vector_reg)
                + block_regularizer(np.asarray(weights["W"]), self.vector_reg))

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        r"""Largest violation of :math:`(2D_i - I)X_a v_i \ge 0`, :math:`(2D_i - I)X_a w_i \ge 0`."""
        _check_weights(weights, ("V", "W"), self._weight_shape())
        return max(cone_violation(self.Xa, self.signs, np.asarray(weights["V"])),
                   cone_violation(self.Xa, self.signs, np.asarray(weights["W"])))

    def to_network(self, solution: ConvexSolution) -> Any:
        r"""C -> NC mapping (Mishkin & Pilanci (ICML 2023) "Solution Mapping for C-ReLU", Pilanci (2021 talk) Theorem).

        Each nonzero block becomes one neuron,
        :math:`W_{1,:j} = v_i/\sqrt{\|v_i\|}`, :math:`w_{2,j} = \sqrt{\|v_i\|}` and
        :math:`W_{1,:j} = w_i/\sqrt{\|w_i\|}`, :math:`w_{2,j} = -\sqrt{\|w_i\|}`; zero blocks (norm
        at most ``ZERO_RTOL`` times the largest block norm or the data scale
        :math:`\|y\|/\|X_a\|_F`, whichever is larger) are dropped. Since :math:`v_i \in \mathcal K_i`,
        :math:`(X_a v_i)_+ = D_i X_a v_i`, so the network has the convex model's predictions and
        weight decay :math:`\sum\|v_i\| + \|w_i\|`: the same objective.
        """
        from convexnn.networks.two_layer import TwoLayerReLU

        V = np.asarray(solution.weights["V"], dtype=float)
        W = np.asarray(solution.weights["W"], dtype=float)
        thr = self._zero_threshold(V, W)
        if V.ndim == 3 and self.vector_reg == "nuclear":
            cols, outs, exact = nuclear_relu_neurons(self.Xa, self.signs, V, W, thr)
            if not exact:
                net = TwoLayerReLU(cols, outs, bias=self.bias)
                gap = net.objective(self.X, self.y, solution.lam, self.loss) - solution.objective()
                warnings.warn("nuclear C-ReLU: some singular vectors are not in their cone; those blocks were "
                              f"mapped column by column (same predictions, objective higher by {gap:.3g}).",
                              ConvexNNWarning, stacklevel=3)
                return net
            return TwoLayerReLU(cols, outs, bias=self.bias)
        cols, outs = [], []
        for U, sign in ((V, 1.0), (W, -1.0)):
            c_, o_ = group_neurons(U, sign, thr)
            cols.append(c_)
            outs.append(o_)
        return TwoLayerReLU(np.hstack(cols), np.concatenate(outs, axis=0), bias=self.bias)


class MinNormInterpolation(CReLU):
    r"""The :math:`\lambda \to 0` C-ReLU program of Pilanci (2021 talk) (built by :func:`min_norm_interpolation`).

    Objective :math:`\sum_i \|v_i\| + \|w_i\|` (times the unit parameter ``lam``, kept for a uniform
    API), cones as in C-ReLU, and the constraint ``"fit"`` (:math:`\sum_i D_i X_a(v_i - w_i) = y`)
    or ``"margin"`` (:math:`y \odot \sum_i D_i X_a(v_i - w_i) \ge 1`). ``loss`` is ``squared`` or
    ``hinge`` respectively, both zero on the feasible set, so ``solution.objective()`` is the
    minimum norm and the mapped network's weight decay equals it.
    """

    kind = "min_norm"

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        viol = super().constraint_violation(weights)
        fit = self.predict(weights)
        if self.meta["classification"]:
            return max(viol, float(max(0.0, np.max(1.0 - self.y * fit))))
        return max(viol, float(np.max(np.abs(fit - self.y))))


class CGReLU(_TwoLayerFormulation):
    r"""The C-GReLU program (Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2); built by :func:`c_grelu`.

    Weights: ``{"U": (P, d')}`` (``(P, d', c)`` for vector output). No constraints.
    """

    kind = "c_grelu"
    cone_constraints = False
    weight_keys = ("U",)

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        return {"U": _blocks(np.asarray(self.variables["U"].value, dtype=float), self.n_patterns,
                             self.n_outputs)}

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        r""":math:`\sum_i D_i X_a u_i` on the training data."""
        _check_weights(weights, ("U",), self._weight_shape())
        return block_fit(self.Xa, self.masks, np.asarray(weights["U"]))

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        r""":math:`\sum_i \|u_i\|_2` (group) or :math:`\sum_i \|U_i\|_*` (nuclear)."""
        _check_weights(weights, ("U",), self._weight_shape())
        return block_regularizer(np.asarray(weights["U"]), self.vector_reg)

    def to_network(self, solution: ConvexSolution) -> Any:
        r"""C -> NC mapping of Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2: a :class:`~convexnn.GatedReLU` with the same objective.

        Each nonzero block :math:`u_i` becomes a neuron with gate :math:`g_i` (``patterns.gates``),
        :math:`W_{1,:j} = u_i/\sqrt{\|u_i\|}`, :math:`w_{2,j} = \sqrt{\|u_i\|}` (group norm, one
        neuron per nonzero column for vector outputs), or
        :math:`W_{1,:j} = \sqrt{\sigma_k} p_k`, :math:`w_{2,j} = \sqrt{\sigma_k} q_k` for the SVD
        :math:`U_i = \sum_k \sigma_k p_k q_k^\top` (nuclear norm). Zero blocks are dropped.
        """
        from convexnn.networks.two_layer import GatedReLU

        U = np.asarray(solution.weights["U"], dtype=float)
        idx, W1, w2 = gated_neurons(U, self._zero_threshold(U), self.vector_reg)
        return GatedReLU(np.asarray(self.patterns.gates)[:, idx], W1, w2, bias=self.bias)


# ============================================================================ builders
def _build_relu(
    cls: type[CReLU], X: np.ndarray, Xa: np.ndarray, y: np.ndarray, lo: Loss, patterns: Patterns,
    bias: bool, lam_value: float, vector_reg: str, *, target: str | None = None,
) -> CReLU:
    t0 = time.perf_counter()
    d = Xa.shape[1]
    P = len(patterns)
    c = 1 if y.ndim == 1 else y.shape[1]
    masks = np.asarray(patterns.masks, dtype=float)
    signs = 2.0 * masks - 1.0
    lam = _lam_parameter(lam_value)
    V = cp.Variable((d, c * P), name="V")
    W = cp.Variable((d, c * P), name="W")
    fit = _maskedblock_fit(Xa, masks, V, c) - _maskedblock_fit(Xa, masks, W, c)
    reg = _reg_expr(V, P, c, vector_reg) + _reg_expr(W, P, c, vector_reg)
    constraints = {"cone_v": _cone(Xa, signs, V, c), "cone_w": _cone(Xa, signs, W, c)}
    if target is None:
        objective = lo.cvx(fit, y) + lam * reg
    else:
        objective = lam * reg
        constraints[target] = (fit == y) if target == "fit" else (cp.multiply(y, fit) >= 1)
    problem = cp.Problem(cp.Minimize(objective), list(constraints.values()))
    f = cls(problem, lam, X=X, Xa=Xa, y=y, loss=lo, patterns=patterns, bias=bias,
            variables={"V": V, "W": W}, constraints=constraints,
            meta={"masks": masks, "vector_reg": vector_reg, "build_time": time.perf_counter() - t0,
                  "classification": target == "margin"})
    f.vector_reg = vector_reg
    return f


def c_relu(
    X: Any,
    y: Any,
    patterns: Patterns,
    lam: float,
    *,
    loss: str | Loss = "squared",
    bias: bool | None = None,
    vector_reg: str = "group",
) -> CReLU:
    r"""Build the C-ReLU program of a two-layer ReLU network (Mishkin, Sahiner & Pilanci (ICML 2022), Mishkin & Pilanci (ICML 2023), Pilanci (2021 talk)).

    .. math::

        \min_{v_i, w_i \in \mathcal K_i}\ \ell\Big(\sum_{i} D_i X_a (v_i - w_i),\ y\Big)
        + \lambda \sum_{i} \big(\|v_i\|_2 + \|w_i\|_2\big),\qquad
        \mathcal K_i = \{u : (2D_i - I) X_a u \ge 0\}.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array, shape (n,) or (n, c)
        Labels in ``{-1, +1}`` for ``loss="logistic"`` / ``"hinge"``.
    patterns : Patterns
        Activation patterns of ``X`` (exact from :func:`convexnn.enumerate_patterns`: the
        program is then equivalent to the network; sampled: an upper bound).
    lam : float
        Regularization strength ``> 0`` (stored as the ``cp.Parameter`` ``.lam``). For
        ``lam -> 0`` use :func:`min_norm_interpolation`.
    loss : {"squared", "logistic", "hinge"} or Loss
    bias : bool, optional
        Defaults to ``patterns.bias``; a different value raises :class:`InputError`.
    vector_reg : {"group", "nuclear"}
        Regularizer for vector outputs (ignored for ``y`` of shape ``(n,)``), see the module
        docstring.

    Returns
    -------
    CReLU
        ``.problem``, ``.lam``, ``.variables["V"]``/``["W"]`` (``(d', P)`` each),
        ``.constraints["cone_v"]``/``["cone_w"]``; ``.solve()`` returns a :class:`ConvexSolution`
        whose ``.to_network()`` is a :class:`~convexnn.TwoLayerReLU` with the same objective.

    Raises
    ------
    InputError
        On shape mismatch, NaN/inf, ``lam <= 0``, labels outside ``{-1, +1}`` for classification
        losses, patterns built for another ``X`` or with another bias setting.

    Examples
    --------
    >>> import numpy as np, convexnn as cx
    >>> X = np.array([[2., 2.], [3., 3.], [1., 0.]]); y = np.array([1., 2., -1.])
    >>> P = cx.Patterns.from_gates(X, np.array([[1., 1., -1.], [1., -1., 1.]]))
    >>> sol = cx.c_relu(X, y, P, lam=0.1).solve()
    >>> net = sol.to_network()
    >>> bool(abs(net.objective(X, y, 0.1) - sol.value) < 1e-6)
    True
    """
    Xc, Xa, yc, lo, b = _prepare(X, y, patterns, loss, bias, vector_reg)
    lam_value = check_lam(lam)
    _check_build_size("c_relu", Xa.shape[0], len(patterns), 1 if yc.ndim == 1 else yc.shape[1], 4)
    return _build_relu(CReLU, Xc, Xa, yc, lo, patterns, b, lam_value, vector_reg)


def c_grelu(
    X: Any,
    y: Any,
    patterns: Patterns,
    lam: float,
    *,
    loss: str | Loss = "squared",
    bias: bool | None = None,
    vector_reg: str = "group",
) -> CGReLU:
    r"""Build the C-GReLU program of a gated ReLU network (Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2).

    .. math::

        \min_{u_i}\ \ell\Big(\sum_{i} D_i X_a u_i,\ y\Big) + \lambda \sum_{i}\|u_i\|_2 .

    Exactly equivalent, for any pattern set, to training the gated ReLU network with gates
    ``patterns.gates`` under weight decay; its optimum is a lower bound on the C-ReLU optimum
    with the same patterns (drop the cone constraints, set :math:`u_i = v_i - w_i`). Parameters
    and errors as in :func:`c_relu`; weights ``{"U": (P, d')}``, no constraints.
    """
    Xc, Xa, yc, lo, b = _prepare(X, y, patterns, loss, bias, vector_reg)
    lam_value = check_lam(lam)
    _check_build_size("c_grelu", Xa.shape[0], len(patterns), 1 if yc.ndim == 1 else yc.shape[1], 2)
    t0 = time.perf_counter()
    d = Xa.shape[1]
    P = len(patterns)
    c = 1 if yc.ndim == 1 else yc.shape[1]
    masks = np.asarray(patterns.masks, dtype=float)
    lamp = _lam_parameter(lam_value)
    U = cp.Variable((d, c * P), name="U")
    fit = _maskedblock_fit(Xa, masks, U, c)
    problem = cp.Problem(cp.Minimize(lo.cvx(fit, yc) + lamp * _reg_expr(U, P, c, vector_reg)))
    f = CGReLU(problem, lamp, X=Xc, Xa=Xa, y=yc, loss=lo, patterns=patterns, bias=b,
               variables={"U": U}, constraints={},
               meta={"masks": masks, "vector_reg": vector_reg, "build_time": time.perf_counter() - t0})
    f.vector_reg = vector_reg
    return f


def min_norm_interpolation(
    X: Any,
    y: Any,
    patterns: Patterns,
    *,
    classification: bool = False,
    bias: bool | None = None,
    vector_reg: str = "group",
) -> MinNormInterpolation:
    r"""The :math:`\lambda \to 0` programs of Pilanci (2021 talk) (min-norm interpolation / max-margin).

    Regression (``classification=False``):

    .. math:: \min_{v_i, w_i \in \mathcal K_i} \sum_i \|v_i\|_2 + \|w_i\|_2
              \quad\text{s.t.}\quad \sum_i D_i X_a (v_i - w_i) = y,

    the convex counterpart of the minimum-weight-decay interpolating network
    (:math:`\min \|W_1\|_F^2 + \|w_2\|^2` s.t. zero loss, Pilanci (2021 talk) "Unregularized neural networks").
    Classification (``classification=True``, labels in ``{-1, +1}``): the constraint becomes
    :math:`\operatorname{diag}(y)\sum_i D_i X_a(v_i - w_i) \ge 1`, the program gradient flow on
    the logistic loss converges to for separable data (Pilanci (2021 talk), Wang & Pilanci).

    Returns
    -------
    MinNormInterpolation
        ``.lam`` is a unit parameter (it only scales the objective); the mapped network
        interpolates (or has margin >= 1) with weight decay
        :math:`\tfrac12(\|W_1\|_F^2 + \|w_2\|^2)` equal to the optimal value.

    Raises
    ------
    SolverError
        (from ``.solve()``) with status ``infeasible`` when no network with these patterns fits
        the data exactly / separates it.
    """
    loss = "hinge" if classification else "squared"
    Xc, Xa, yc, lo, b = _prepare(X, y, patterns, loss, bias, vector_reg)
    _check_build_size("min_norm_interpolation", Xa.shape[0], len(patterns),
                      1 if yc.ndim == 1 else yc.shape[1], 4)
    return _build_relu(MinNormInterpolation, Xc, Xa, yc, lo, patterns, b, 1.0, vector_reg,
                       target="margin" if classification else "fit")
