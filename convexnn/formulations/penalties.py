r"""First-layer penalties of two-layer networks: the one place for a penalty's mathematics.

A two-layer network :math:`\sum_j \phi(X_a w_j)\,\alpha_j` trained with the weight decay
:math:`\tfrac\lambda2\sum_j\big(R(w_j)^2 + \|\alpha_j\|_2^2\big)`, :math:`R` any norm, has the
same optimal value as the convex program with the group penalty :math:`\lambda\sum_i R(u_i)`
(Pilanci & Ergen, *Neural Networks are Convex Regularizers in the Exact Sense*, ICML 2020): by
positive homogeneity each neuron can be rescaled, and

.. math::

    \min_{t > 0}\ \tfrac12\big(t^2 R(w)^2 + \|\alpha\|^2 / t^2\big) = R(w)\,\|\alpha\| ,

so the network's weight decay equals :math:`\sum_j R(w_j)\|\alpha_j\| = \sum_i R(u_i)` with
:math:`u_i = w_j\|\alpha_j\|`. A :class:`Penalty` carries every piece of :math:`R` the rest of the
package needs:

=============================  ==================================================================
capability                     used by
=============================  ==================================================================
``norms`` / ``value``          formulations (numpy objective), mapping, networks (weight decay)
``cvx``                        every convex program (interior point)
``prox_on``                    R-FISTA (:mod:`convexnn.solvers.fista`)
``dual_norms`` /               gated duality gaps (:mod:`convexnn.solvers.gap`), the dual program
``dual_norms_upper`` /         (:func:`convexnn.dual_problem`), rigorous dual scaling
``cvx_dual_le``
``neuron_scales``              the convex -> network maps: :math:`u \mapsto (u/\sqrt{R(u)}, \sqrt{R(u)})`
``l2_lower``                   the constant :math:`c` of :math:`R(u) \ge c\|u\|_2` (certificates)
=============================  ==================================================================

Penalties (:func:`get_penalty`):

* :class:`GroupL2` (``"group_l2"``, the default): :math:`R(u) = \|u\|_2` (group lasso).
* :class:`SparseGroup` (``"sparse_group"``, ``l1_ratio = a`` in :math:`[0, 1)`):
  :math:`R(u) = (1-a)\|u\|_2 + a\|u\|_1`, the sparse group lasso (Simon, Friedman, Hastie &
  Tibshirani, *A Sparse-Group Lasso*, JCGS 2013) on the first layer: it zeroes whole neurons and
  single input features of the remaining ones (feature selection). ``a = 0`` is
  :class:`GroupL2`.
* :class:`Nuclear` (``"nuclear"``): the nuclear norm of the ``(d', c)`` blocks of vector-output
  programs (``vector_reg="nuclear"``).

Formulas of :class:`SparseGroup` (:math:`S_\tau(g) = \operatorname{sign}(g)(|g| - \tau)_+` the
soft threshold):

* prox: :math:`\operatorname{prox}_{\tau R}(v) = \big(1 - \tfrac{\tau(1-a)}{\|S_{\tau a}(v)\|_2}\big)_+ S_{\tau a}(v)`;
* dual norm: the unit dual ball is :math:`(1-a)B_2 + aB_\infty`, so
  :math:`R^*(g) = \min\{t \ge 0 : \|S_{ta}(g)\|_2 \le t(1-a)\}`, the root of a piecewise quadratic
  found exactly by sorting :math:`|g|` (:func:`sparse_group_dual_norm`);
* :math:`R(u) \ge \|u\|_2` (since :math:`\|u\|_1 \ge \|u\|_2`), hence :math:`R^* \le \|\cdot\|_2`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import cvxpy as cp
import numpy as np

from convexnn.backend import NUMPY, Backend
from convexnn.errors import InputError
from convexnn.rounding import gamma

__all__ = ["Penalty", "GroupL2", "SparseGroup", "Nuclear", "get_penalty", "register_penalty", "PENALTIES",
           "sparse_group_dual_norm", "require_group_l2"]


@dataclass(frozen=True)
class Penalty:
    r"""Base class: a norm :math:`R` on first-layer weight vectors (blocks).

    Blocks are the rows of ``(P, d')`` arrays (and the vectors ``U[i, :, k]`` of ``(P, d', c)``
    arrays, one per output, for vector outputs). A method a penalty cannot provide raises
    :class:`InputError` naming the missing capability.

    Attributes
    ----------
    name : str
        Registry name (:func:`get_penalty`).
    group_l2 : bool
        True when :math:`R = \|\cdot\|_2` exactly (today's group-lasso programs): solvers written
        for the group lasso only (Newton polish, C-ReLU active set, block interior point) accept
        exactly these.
    l2_lower : float
        A constant :math:`c > 0` with :math:`R(u) \ge c\|u\|_2` for every :math:`u`, so
        :math:`R^*(g) \le \|g\|_2 / c` (used where only the Euclidean dual value is available).
    """

    name: ClassVar[str] = "penalty"
    group_l2: ClassVar[bool] = False
    l2_lower: ClassVar[float] = 1.0

    # ------------------------------------------------------------------ values
    def norms_on(self, bk: Backend, U: Any) -> Any:
        """:math:`R` of each row of the 2-D array ``U`` on a backend."""
        raise InputError(f"the {self.name!r} penalty has no row norms on array backends.")

    def norms(self, U: np.ndarray) -> np.ndarray:
        r""":math:`R(u_i)` of each block: ``(P,)`` for ``(P, d')``, ``(P, c)`` for ``(P, d', c)``."""
        U = np.asarray(U, dtype=np.float64)
        if U.ndim == 2:
            return np.asarray(self.norms_on(NUMPY, U))
        P, d, c = U.shape
        rows = np.ascontiguousarray(U.transpose(0, 2, 1)).reshape(P * c, d)
        return np.asarray(self.norms_on(NUMPY, rows)).reshape(P, c)

    def value(self, U: np.ndarray) -> float:
        r""":math:`\sum_i R(u_i)` (summed over outputs for vector outputs)."""
        return float(np.sum(self.norms(U)))

    def value_on(self, bk: Backend, U: Any) -> float:
        r""":math:`\sum_i R(u_i)` over the rows of ``U`` on a backend."""
        return float(bk.sum(self.norms_on(bk, U)))

    # ------------------------------------------------------------------ prox and dual norm
    def prox_on(self, bk: Backend, V: Any, tau: float) -> Any:
        r""":math:`\operatorname{prox}_{\tau R}` applied to each row of ``V``."""
        raise InputError(f"the {self.name!r} penalty has no proximal operator (first-order solvers need one).")

    def prox(self, V: np.ndarray, tau: float) -> np.ndarray:
        """Numpy :meth:`prox_on` (rows of ``V`` are the blocks)."""
        return np.asarray(self.prox_on(NUMPY, np.asarray(V, dtype=np.float64), float(tau)))

    def dual_norms(self, G: np.ndarray) -> np.ndarray:
        r"""Dual norm :math:`R^*(g) = \max_{R(u)\le1} g^\top u` of each row of ``G``."""
        raise InputError(f"the {self.name!r} penalty has no dual norm.")

    def dual_norms_upper(self, G: np.ndarray) -> np.ndarray:
        r"""Rigorous upper bounds of :meth:`dual_norms` for float64 ``G`` (rounding accounted for)."""
        raise InputError(f"the {self.name!r} penalty has no rigorous dual norm.")

    def dual_norms_on(self, bk: Backend, G: Any) -> Any:
        """:meth:`dual_norms` of the rows of ``G`` on a backend (returned on the backend)."""
        return bk.asarray(self.dual_norms(bk.to_numpy(G)))

    # ------------------------------------------------------------------ CVXPY
    def cvx(self, B: cp.Expression) -> cp.Expression:
        r""":math:`\sum_j R(b_j)` over the columns :math:`b_j` of the ``(d', m)`` expression ``B``."""
        raise InputError(f"the {self.name!r} penalty has no CVXPY form.")

    def cvx_dual_le(self, G: cp.Expression, bound: Any) -> list[cp.Constraint]:
        r"""Constraints :math:`R^*(g_j) \le` ``bound`` for every column :math:`g_j` of ``G`` (vectorized)."""
        raise InputError(f"the {self.name!r} penalty has no CVXPY dual-norm constraint.")

    # ------------------------------------------------------------------ networks
    def neuron_scales(self, U: np.ndarray) -> np.ndarray:
        r"""The neuron map's scale :math:`\sqrt{R(u)}` of each block: a nonzero block :math:`u`
        becomes the neuron :math:`(u/\sqrt{R(u)}, \pm\sqrt{R(u)})`, whose weight decay
        :math:`\tfrac12(R(u/\sqrt{R(u)})^2 + R(u)) = R(u)` is the block's regularizer
        (``(P,)`` or ``(P, c)``, as :meth:`norms`)."""
        return np.sqrt(self.norms(U))

    def network_value(self, W1: np.ndarray, w2: np.ndarray) -> float:
        r"""Weight decay :math:`\tfrac12\sum_j(R(W_{1,:j})^2 + \|w_{2,j}\|_2^2)` of a two-layer network."""
        a = self.norms(np.asarray(W1, dtype=np.float64).T) if W1.shape[1] else np.zeros(0)
        return 0.5 * (float(np.sum(a * a)) + float(np.sum(np.asarray(w2, dtype=np.float64) ** 2)))

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class GroupL2(Penalty):
    r"""The group lasso :math:`R(u) = \|u\|_2` (the default of every two-layer program)."""

    name: ClassVar[str] = "group_l2"
    group_l2: ClassVar[bool] = True

    def norms_on(self, bk: Backend, U: Any) -> Any:
        return bk.row_norms(U)

    def prox_on(self, bk: Backend, V: Any, tau: float) -> Any:
        r""":math:`[\operatorname{prox}_{\tau\|\cdot\|_2}(v)] = (1 - \tau/\|v\|_2)_+ v` per row."""
        nrm = bk.row_norms(V)
        factor = bk.maximum(1.0 - tau / bk.maximum(nrm, 1e-300), 0.0)
        return V * factor[:, None]

    def dual_norms(self, G: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(G, dtype=np.float64), axis=1)

    def dual_norms_on(self, bk: Backend, G: Any) -> Any:
        return bk.row_norms(G)

    def dual_norms_upper(self, G: np.ndarray) -> np.ndarray:
        G = np.asarray(G, dtype=np.float64)
        return np.linalg.norm(G, axis=1) * (1.0 + gamma(G.shape[1] + 4))

    def cvx(self, B: cp.Expression) -> cp.Expression:
        return cp.sum(cp.norm(B, 2, axis=0))

    def cvx_dual_le(self, G: cp.Expression, bound: Any) -> list[cp.Constraint]:
        return [cp.norm(G, 2, axis=0) <= bound]

    def network_value(self, W1: np.ndarray, w2: np.ndarray) -> float:
        return 0.5 * float(np.sum(W1 ** 2) + np.sum(w2 ** 2))


def _soft_on(bk: Backend, V: Any, t: float) -> Any:
    """Soft threshold :math:`S_t(v) = v (1 - t/|v|)_+` elementwise on a backend."""
    return V * bk.maximum(1.0 - t / bk.maximum(bk.abs(V), 1e-300), 0.0)


def sparse_group_dual_norm(G: np.ndarray, l1_ratio: float) -> np.ndarray:
    r"""Dual norm of :math:`R(u) = (1-a)\|u\|_2 + a\|u\|_1` for each row of ``G`` (exact formula).

    :math:`R^*(g)` is the root :math:`t` of :math:`\|S_{ta}(g)\|_2 = t(1-a)` (the left side
    decreases, the right side increases in :math:`t`). With :math:`x_1 \ge \dots \ge x_d` the
    sorted :math:`|g_j|`, the breakpoints are :math:`t_k = x_k/a`; the root lies between
    :math:`t_{K+1}` and :math:`t_K` for the largest :math:`K` with
    :math:`\sum_{j<K}(x_j - x_K)^2 \le (x_K(1-a)/a)^2`, where only :math:`x_1..x_K` exceed the
    threshold and the equation is the quadratic
    :math:`(Ka^2 - (1-a)^2)t^2 - 2a s_1 t + s_2 = 0` (:math:`s_1 = \sum_{j\le K} x_j`,
    :math:`s_2 = \sum_{j\le K} x_j^2`) with smallest positive root
    :math:`t = s_2 / (a s_1 + \sqrt{a^2s_1^2 - (Ka^2 - (1-a)^2)s_2})`.
    """
    G = np.asarray(G, dtype=np.float64)
    a = float(l1_ratio)
    if G.ndim != 2:
        raise InputError(f"G must be a 2-D array of rows; got shape {G.shape}.")
    if a == 0.0 or G.shape[1] == 0:
        return np.linalg.norm(G, axis=1)
    x = -np.sort(-np.abs(G), axis=1)  # descending
    m, d = x.shape
    k = np.arange(1, d + 1)
    c1 = np.cumsum(x, axis=1)
    c2 = np.cumsum(x * x, axis=1)
    # sum_{j<=k} (x_j - x_k)^2 = c2 - 2 x_k c1 + k x_k^2 (the j = k term is zero)
    lhs = np.maximum(c2 - 2.0 * x * c1 + k * x * x, 0.0)
    with np.errstate(over="ignore"):  # tiny a: the breakpoints x_k / a overflow to inf, still ordered
        rhs = (x * (1.0 - a) / a) ** 2
    ok = (lhs <= rhs) & (x > 0)
    K = np.where(ok.any(axis=1), d - np.argmax(ok[:, ::-1], axis=1), 1)  # largest k with ok
    rows = np.arange(m)
    s1 = c1[rows, K - 1]
    s2 = c2[rows, K - 1]
    A = K * a * a - (1.0 - a) ** 2
    disc = np.maximum((a * s1) ** 2 - A * s2, 0.0)
    den = a * s1 + np.sqrt(disc)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(den > 0, s2 / np.where(den > 0, den, 1.0), 0.0)
    return t


@dataclass(frozen=True)
class SparseGroup(Penalty):
    r"""Sparse group lasso :math:`R(u) = (1-a)\|u\|_2 + a\|u\|_1` with ``l1_ratio = a`` in :math:`[0, 1)`.

    The :math:`\ell_1` part zeroes single input features of a neuron's first-layer weights; with
    the bias (``bias=True``) the bias entry is penalized like the weights (``docs/DESIGN.md``).
    ``a = 0`` is :class:`GroupL2` (:func:`get_penalty` returns that instance); ``a = 1`` (the
    plain :math:`\ell_1` norm, dual norm :math:`\|\cdot\|_\infty`) is outside this class.
    """

    l1_ratio: float = 0.5
    name: ClassVar[str] = "sparse_group"

    def __post_init__(self) -> None:
        a = self.l1_ratio
        if isinstance(a, bool) or not isinstance(a, (int, float, np.floating, np.integer)) or not np.isfinite(a):
            raise InputError(f"l1_ratio must be a real number in [0, 1); got {a!r}.")
        if not 0.0 <= float(a) < 1.0:
            raise InputError(f"l1_ratio must be in [0, 1); got {a!r} (0: group lasso; values near 1: "
                             "mostly l1, sparser features).")
        object.__setattr__(self, "l1_ratio", float(a))

    def norms_on(self, bk: Backend, U: Any) -> Any:
        a = self.l1_ratio
        return (1.0 - a) * bk.row_norms(U) + a * bk.sum(bk.abs(U), axis=1)

    def prox_on(self, bk: Backend, V: Any, tau: float) -> Any:
        r"""Soft threshold by :math:`\tau a`, then group shrinkage by :math:`\tau(1-a)` (closed form)."""
        a = self.l1_ratio
        S = _soft_on(bk, V, tau * a) if a > 0 else V
        nrm = bk.row_norms(S)
        factor = bk.maximum(1.0 - tau * (1.0 - a) / bk.maximum(nrm, 1e-300), 0.0)
        return S * factor[:, None]

    def dual_norms(self, G: np.ndarray) -> np.ndarray:
        return sparse_group_dual_norm(G, self.l1_ratio)

    def dual_norms_upper(self, G: np.ndarray) -> np.ndarray:
        r"""Rigorous upper bounds of :math:`R^*`: a :math:`t` with :math:`\|S_{ta}(g)\|_2 \le t(1-a)`
        verified with rounding accounted for (the left side decreases in :math:`t`, so every such
        :math:`t` is at least the root), never above :math:`\|g\|_2` (rigorously bounded) since
        :math:`R \ge \|\cdot\|_2`."""
        G = np.abs(np.asarray(G, dtype=np.float64))
        a = self.l1_ratio
        d = G.shape[1]
        l2 = np.linalg.norm(G, axis=1) * (1.0 + gamma(d + 4))
        if a == 0.0 or d == 0:
            return l2
        t = sparse_group_dual_norm(G, a) * (1.0 + 8 * gamma(1))
        g = gamma(d + 8)
        step = 2.0 ** -50
        for _ in range(60):
            # computed ||S_{ta}(g)||: each entry |g| - ta rounds with relative error <= gamma(3) of
            # (|g| + ta); the norm adds gamma(d + 4). Upper bound of the exact value:
            S = np.maximum(G - t[:, None] * a, 0.0)
            err = gamma(3) * np.where(G > t[:, None] * a * (1 - gamma(2)), G + t[:, None] * a, 0.0)
            upper = np.linalg.norm(S + err, axis=1) * (1.0 + g)
            bad = upper > t * (1.0 - a) * (1.0 - gamma(4))
            if not bad.any():
                break
            t = np.where(bad, t * (1.0 + step) + 1e-300, t)
            step *= 4.0
        else:
            t = np.where(bad, l2, t)
        return np.minimum(t, l2)

    def cvx(self, B: cp.Expression) -> cp.Expression:
        a = self.l1_ratio
        if a == 0.0:
            return cp.sum(cp.norm(B, 2, axis=0))
        return (1.0 - a) * cp.sum(cp.norm(B, 2, axis=0)) + a * cp.sum(cp.abs(B))

    def cvx_dual_le(self, G: cp.Expression, bound: Any) -> list[cp.Constraint]:
        r""":math:`R^*(g_j) \le b \iff g_j = h_j + k_j,\ \|h_j\|_2 \le (1-a)b,\ \|k_j\|_\infty \le ab`."""
        a = self.l1_ratio
        if a == 0.0:
            return [cp.norm(G, 2, axis=0) <= bound]
        K = cp.Variable(G.shape, name="dual_l1_part")
        return [cp.norm(G - K, 2, axis=0) <= (1.0 - a) * bound, cp.abs(K) <= a * bound]


@dataclass(frozen=True)
class Nuclear(Penalty):
    r"""Nuclear norm :math:`\|U_i\|_*` of the ``(d', c)`` blocks of vector-output programs
    (``vector_reg="nuclear"``; Sahiner, Ergen, Pauly & Pilanci, ICLR 2021).

    Its blocks are matrices, not vectors: :meth:`value` takes ``(P, d', c)`` arrays, :meth:`cvx`
    the ``(d', c P)`` output-major variable of the programs; the neuron map is the SVD map of
    :mod:`convexnn.formulations.blocks`. It has no per-row operations.
    """

    name: ClassVar[str] = "nuclear"

    def norms(self, U: np.ndarray) -> np.ndarray:
        U = np.asarray(U, dtype=np.float64)
        if U.ndim != 3:
            raise InputError("the nuclear penalty acts on (P, d', c) blocks of vector-output programs.")
        return np.array([np.linalg.norm(U[i], "nuc") for i in range(U.shape[0])])

    def cvx_blocks(self, B: cp.Expression, P: int) -> cp.Expression:
        r""":math:`\sum_i \|B_i\|_*` with block :math:`i` the columns ``i, i + P, ...`` of ``B`` (one SDP atom each)."""
        return cp.sum(cp.hstack([cp.normNuc(B[:, i::P]) for i in range(P)]))


#: Registered penalties by name (:func:`get_penalty`).
PENALTIES: dict[str, Penalty] = {}


def register_penalty(penalty: Penalty) -> Penalty:
    """Make ``penalty`` available by its name to :func:`get_penalty` (and every ``penalty=`` argument)."""
    if not isinstance(penalty, Penalty):
        raise InputError(f"register_penalty needs a Penalty instance; got {type(penalty).__name__}.")
    PENALTIES[penalty.name] = penalty
    return penalty


register_penalty(GroupL2())
register_penalty(SparseGroup())
register_penalty(Nuclear())

_DEFAULT = PENALTIES["group_l2"]


def get_penalty(penalty: str | Penalty | None = None, l1_ratio: float | None = None) -> Penalty:
    r"""The :class:`Penalty` for ``penalty`` (a name, an instance or ``None``) and ``l1_ratio``.

    * ``None`` with ``l1_ratio=None``: :class:`GroupL2`; with an ``l1_ratio``: :class:`SparseGroup`.
    * ``"sparse_group"``: :class:`SparseGroup` with ``l1_ratio`` (default 0.5).
    * a :class:`SparseGroup` with ``l1_ratio == 0`` is returned as :class:`GroupL2` (the same
      norm), so ``l1_ratio=0`` builds today's program exactly.

    Raises
    ------
    InputError
        Unknown name, ``l1_ratio`` outside ``[0, 1)``, or ``l1_ratio`` together with a penalty
        that has none.
    """
    if penalty is None:
        p: Penalty = _DEFAULT if l1_ratio is None else SparseGroup(l1_ratio)
    elif isinstance(penalty, Penalty):
        p = penalty
        if l1_ratio is not None:
            if not isinstance(p, SparseGroup):
                raise InputError(f"l1_ratio={l1_ratio!r} applies to the sparse_group penalty, not {p.name!r}.")
            p = SparseGroup(l1_ratio)
    elif isinstance(penalty, str) and penalty in PENALTIES:
        p = PENALTIES[penalty]
        if isinstance(p, SparseGroup) and l1_ratio is not None:
            p = SparseGroup(l1_ratio)
        elif l1_ratio is not None:
            raise InputError(f"l1_ratio={l1_ratio!r} applies to the sparse_group penalty, not {penalty!r}.")
    else:
        raise InputError(f"unknown penalty {penalty!r}; choose one of {sorted(PENALTIES)} or pass a Penalty.")
    if isinstance(p, SparseGroup) and p.l1_ratio == 0.0:
        return _DEFAULT
    return p


def require_group_l2(obj: Any, where: str) -> None:
    r"""Refuse (:class:`~convexnn.errors.InputError`) a program or network whose first-layer penalty is not the group lasso.

    For the routines whose mathematics is that of :math:`\|\cdot\|_2` (KKT conditions, optimal
    sets, pruning): with another penalty they would return a wrong answer, not an error.
    ``obj`` is a formulation or a network (its ``penalty`` attribute; the group lasso when absent).
    """
    pen = get_penalty(getattr(obj, "penalty", None))
    if not pen.group_l2:
        raise InputError(f"{where} is written for the group-lasso weight decay (penalty 'group_l2'); this "
                         f"{'program' if hasattr(obj, 'patterns') else 'network'} uses the {pen} penalty, "
                         "for which it is not available.")
