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

**First-layer penalty** (``penalty=`` / ``l1_ratio=``, :mod:`convexnn.formulations.penalties`):
the Euclidean norms above are the default :math:`R = \|\cdot\|_2`; any norm :math:`R` gives the
programs with :math:`\lambda\sum_i R(u_i)` (:math:`R(v_i) + R(w_i)` for C-ReLU), equivalent to
the networks trained with :math:`\tfrac\lambda2\sum_j (R(W_{1,:j})^2 + \|w_{2,j}\|^2)` (Pilanci &
Ergen, ICML 2020: rescale each neuron). ``penalty="sparse_group"`` (sparse group lasso,
:math:`R(u) = (1-a)\|u\|_2 + a\|u\|_1`, ``l1_ratio = a``) zeroes single input features of the
first layer: feature selection. For vector outputs it applies per column (``vector_reg="group"``).

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
``norm(V, 2, axis=0)`` (the penalty's ``cvx`` form), and the cone constraints as ONE matrix constraint each,
``constraints["cone_v"] = multiply(S, Xa @ V) >= 0`` with ``S = 2*masks - 1`` (dual values of
shape ``(n, P)``, or ``(n, c P)``). ``lam`` is a nonnegative ``cp.Parameter`` multiplying the
regularizer, so the problems are DPP: changing ``f.lam.value`` and re-solving reuses the
compiled problem. No Python loop creates per-pattern constraints.

The all-zero pattern (:math:`D_i = 0`), when present, is **kept**: its blocks do not change the
fit and only add to the regularizer, so they are zero at every optimum (keep it harmlessly; use
``patterns.without_empty()`` to drop it). Keeping it makes :func:`convexnn.from_network` able to
represent dead neurons with the same objective.

This module builds the programs; the program classes (:class:`CReLU`, :class:`CGReLU`,
:class:`MinNormInterpolation`: weights, predictions, regularizer, maps to networks) live in
:mod:`convexnn.formulations.two_layer_models` and are importable from here as well.
"""

from __future__ import annotations

import time
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from convexnn.arrangements.patterns import Patterns
from convexnn.data import check_bool, check_lam, check_X, check_y
from convexnn.errors import TooLargeError, InputError
from convexnn.formulations.blocks import ZERO_RTOL
from convexnn.formulations.losses import Loss, get_loss
from convexnn.formulations.penalties import Nuclear, Penalty, get_penalty
from convexnn.formulations.two_layer_models import CGReLU, CReLU, MinNormInterpolation

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
    penalty: str | Penalty | None = None, l1_ratio: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Loss, bool, Penalty]:
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
    pen = get_penalty(penalty, l1_ratio)
    if isinstance(pen, Nuclear):
        raise InputError("the nuclear penalty is chosen with vector_reg='nuclear' (vector outputs), "
                         "not with penalty=.")
    if yc.ndim == 2 and vector_reg == "nuclear":
        if not pen.group_l2:
            raise InputError(f"vector_reg='nuclear' has its own (nuclear-norm) regularizer; the {pen.name!r} "
                             "penalty combines with vector_reg='group' only.")
        pen = Nuclear()
    return Xc, Xa, yc, lo, bool(bias), pen


#: largest dense data (bytes) a builder materializes before CVXPY compiles anything
MAX_BUILD_BYTES = 2 * 2**30


def _check_build_size(kind: str, n: int, P: int, c: int, copies: int) -> None:
    """Refuse, before allocating, a program whose ``n x P`` constants would exceed :data:`MAX_BUILD_BYTES`.

    A builder holds ``copies`` dense float64 ``n x (c P)`` arrays (masks, cone signs and the
    constants of the masked products).
    """
    if _too_large(n, P, c, copies):
        nbytes = 8 * n * P * c * copies
        raise TooLargeError(
            f"{kind} with n={n}, P={P:,} patterns and {c} output(s) would hold about "
            f"{nbytes / 2**30:.1f} GiB of dense constants before compiling (limit "
            f"{MAX_BUILD_BYTES / 2**30:.0f} GiB). Use fewer patterns, or the first-order solvers "
            "(convexnn.solve(..., method='first_order')) that never build the CVXPY program.",
            estimate=nbytes, limit=MAX_BUILD_BYTES)


def _too_large(n: int, P: int, c: int, copies: int) -> bool:
    """Whether the CVXPY program's dense constants exceed :data:`MAX_BUILD_BYTES` (then it is deferred)."""
    return 8 * n * P * c * copies > MAX_BUILD_BYTES


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


def _reg_expr(B: cp.Variable, P: int, penalty: Penalty) -> cp.Expression:
    r""":math:`\sum_i R(b_i)` over the columns of ``B`` (the penalty's CVXPY form, vectorized), or
    for the nuclear norm one atom per block (an SDP cone each; columns ``i, i+P, ...`` form block ``i``)."""
    if isinstance(penalty, Nuclear):
        return penalty.cvx_blocks(B, P)
    return penalty.cvx(B)


# ============================================================================ builders
def _build_relu(
    cls: type[CReLU], X: np.ndarray, Xa: np.ndarray, y: np.ndarray, lo: Loss, patterns: Patterns,
    bias: bool, lam_value: float, vector_reg: str, penalty: Penalty, *, target: str | None = None,
) -> CReLU:
    t0 = time.perf_counter()
    d = Xa.shape[1]
    P = len(patterns)
    c = 1 if y.ndim == 1 else y.shape[1]
    lam = _lam_parameter(lam_value)
    kind = "c_relu" if target is None else "min_norm_interpolation"

    def build() -> tuple[cp.Problem, dict[str, cp.Variable], dict[str, cp.Constraint]]:
        _check_build_size(kind, Xa.shape[0], P, c, 4)
        masks = np.asarray(patterns.masks, dtype=float)
        signs = 2.0 * masks - 1.0
        V = cp.Variable((d, c * P), name="V")
        W = cp.Variable((d, c * P), name="W")
        fit = _maskedblock_fit(Xa, masks, V, c) - _maskedblock_fit(Xa, masks, W, c)
        reg = _reg_expr(V, P, penalty) + _reg_expr(W, P, penalty)
        constraints = {"cone_v": _cone(Xa, signs, V, c), "cone_w": _cone(Xa, signs, W, c)}
        if target is None:
            objective = lo.cvx(fit, y) + lam * reg
        else:
            objective = lam * reg
            constraints[target] = (fit == y) if target == "fit" else (cp.multiply(y, fit) >= 1)
        return cp.Problem(cp.Minimize(objective), list(constraints.values())), {"V": V, "W": W}, constraints

    meta = {"vector_reg": vector_reg, "classification": target == "margin", "penalty": penalty}
    return _assemble(cls, build, lam, 4, meta, t0, X=X, Xa=Xa, y=y, loss=lo, patterns=patterns, bias=bias)


def _assemble(cls: type, build: Any, lam: cp.Parameter, copies: int, meta: dict, t0: float, *, X: np.ndarray,
              Xa: np.ndarray, y: np.ndarray, loss: Loss, patterns: Patterns, bias: bool) -> Any:
    """The formulation of ``build``: built now, or deferred (built on first access of its CVXPY
    problem) when its ``copies`` dense ``n x P`` constants would exceed :data:`MAX_BUILD_BYTES`."""
    data = {"X": X, "Xa": Xa, "y": y, "loss": loss, "patterns": patterns, "bias": bias}
    if _too_large(Xa.shape[0], len(patterns), 1 if y.ndim == 1 else y.shape[1], copies):
        f = cls(None, lam, **data, variables={}, meta={**meta, "build_time": 0.0}, build=build)
    else:
        problem, variables, constraints = build()
        f = cls(problem, lam, **data, variables=variables, constraints=constraints,
                meta={**meta, "masks": np.asarray(patterns.masks, dtype=float),
                      "build_time": time.perf_counter() - t0})
    f.vector_reg = meta["vector_reg"]
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
    penalty: str | Penalty | None = None,
    l1_ratio: float | None = None,
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
    penalty : {"group_l2", "sparse_group"} or Penalty, optional
        First-layer penalty :math:`R` of the regularizer :math:`\lambda\sum_i R(v_i) + R(w_i)`
        (:mod:`convexnn.formulations.penalties`): default the group lasso
        :math:`R = \|\cdot\|_2`; ``"sparse_group"`` :math:`R(u) = (1-a)\|u\|_2 + a\|u\|_1`
        selects input features (the network then has weight decay
        :math:`\tfrac\lambda2\sum_j R(W_{1,:j})^2 + w_{2,j}^2`).
    l1_ratio : float, optional
        :math:`a \in [0, 1)` of the sparse group penalty (given alone it selects it; ``0`` is the
        default program).

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
    Xc, Xa, yc, lo, b, pen = _prepare(X, y, patterns, loss, bias, vector_reg, penalty, l1_ratio)
    lam_value = check_lam(lam)
    return _build_relu(CReLU, Xc, Xa, yc, lo, patterns, b, lam_value, vector_reg, pen)


def c_grelu(
    X: Any,
    y: Any,
    patterns: Patterns,
    lam: float,
    *,
    loss: str | Loss = "squared",
    bias: bool | None = None,
    vector_reg: str = "group",
    penalty: str | Penalty | None = None,
    l1_ratio: float | None = None,
) -> CGReLU:
    r"""Build the C-GReLU program of a gated ReLU network (Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2).

    .. math::

        \min_{u_i}\ \ell\Big(\sum_{i} D_i X_a u_i,\ y\Big) + \lambda \sum_{i}\|u_i\|_2 .

    Exactly equivalent, for any pattern set, to training the gated ReLU network with gates
    ``patterns.gates`` under weight decay; its optimum is a lower bound on the C-ReLU optimum
    with the same patterns (drop the cone constraints, set :math:`u_i = v_i - w_i`). Parameters
    and errors as in :func:`c_relu`; weights ``{"U": (P, d')}``, no constraints.
    """
    Xc, Xa, yc, lo, b, pen = _prepare(X, y, patterns, loss, bias, vector_reg, penalty, l1_ratio)
    lam_value = check_lam(lam)
    t0 = time.perf_counter()
    d = Xa.shape[1]
    P = len(patterns)
    c = 1 if yc.ndim == 1 else yc.shape[1]
    lamp = _lam_parameter(lam_value)

    def build() -> tuple[cp.Problem, dict[str, cp.Variable], dict[str, cp.Constraint]]:
        _check_build_size("c_grelu", Xa.shape[0], P, c, 2)
        U = cp.Variable((d, c * P), name="U")
        fit = _maskedblock_fit(Xa, np.asarray(patterns.masks, dtype=float), U, c)
        return cp.Problem(cp.Minimize(lo.cvx(fit, yc) + lamp * _reg_expr(U, P, pen))), {"U": U}, {}

    return _assemble(CGReLU, build, lamp, 2, {"vector_reg": vector_reg, "penalty": pen}, t0,
                     X=Xc, Xa=Xa, y=yc, loss=lo, patterns=patterns, bias=b)


def min_norm_interpolation(
    X: Any,
    y: Any,
    patterns: Patterns,
    *,
    classification: bool = False,
    bias: bool | None = None,
    vector_reg: str = "group",
    penalty: str | Penalty | None = None,
    l1_ratio: float | None = None,
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
    Xc, Xa, yc, lo, b, pen = _prepare(X, y, patterns, loss, bias, vector_reg, penalty, l1_ratio)
    _check_build_size("min_norm_interpolation", Xa.shape[0], len(patterns),
                      1 if yc.ndim == 1 else yc.shape[1], 4)
    return _build_relu(MinNormInterpolation, Xc, Xa, yc, lo, patterns, b, 1.0, vector_reg, pen,
                       target="margin" if classification else "fit")
