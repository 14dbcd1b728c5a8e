r"""Deep ReLU networks as tensor programs (Mishkin (PhD thesis, Stanford) "layer elimination" / "tensor programs").

Network: :math:`f(X) = (\cdots((X_a W_1)_+ W_2)_+ \cdots)_+ w_L` (hidden widths
:math:`m_1..m_{L-1}`), objective :math:`\ell(f(X), y) + \lambda\,\mathrm{PN}(\theta)` with the
path norm :math:`\mathrm{PN} = \sum_{\text{paths}} \|W_{1,:i_1}\|_2\prod_{l\ge2}|W_{l,i_{l-1}i_l}|`
(:class:`~convexnn.DeepReLU`; for :math:`L = 2` its minimum over rescalings is weight decay).

**Recursive patterns.** Given pattern sets :math:`\{D^{(l)}_b\}_{b=1}^{P_l}` for every hidden
layer, let :math:`X^{(1)} = X_a` and :math:`X^{(l+1)} = [D^{(l)}_1 X^{(l)}, \dots,
D^{(l)}_{P_l} X^{(l)}]` (Mishkin (PhD thesis, Stanford): :math:`X^{(l+1)} = D^{(l)} X^{(l)}`). A neuron of layer ``l`` has
pre-activation :math:`X^{(l)} s` and, if its pattern is :math:`D^{(l)}_b`, output
:math:`D^{(l)}_b X^{(l)} s = X^{(l+1)}(e_b\otimes s)` provided
:math:`(2D^{(l)}_b - I)X^{(l)}s \ge 0` (activation consistency).

**Tensor program.** Eliminating the layers one by one (each step is the two-layer convex
reformulation applied to the lifted matrix) gives :math:`f(X) = X^{(L)} \odot T`, the
*reduction product* of the lifted data with the tensor
:math:`T \in \mathbb R^{2P_{L-1}\times\cdots\times 2P_1\times d'}`:

.. math::

    X^{(L)} \odot T = \sum_{b_{L-1},\sigma_{L-1},\dots,b_1,\sigma_1}
      \Big(\prod_{l}\sigma_l\Big) D^{(L-1)}_{b_{L-1}}\cdots D^{(1)}_{b_1} X_a\,
      T_{b_{L-1}\sigma_{L-1}\cdots b_1\sigma_1} .

Each multi-index prefix :math:`\pi = (b_{L-1}\sigma_{L-1}\dots b_l\sigma_l)` is a *node* of a
tree: the (sign-aggregated) neuron of layer ``l`` with pattern :math:`b_l` feeding its parent
with sign :math:`\sigma_l`. Its pre-activation is
:math:`R_\pi = \sum_{b,\sigma}\sigma D^{(l-1)}_b R_{\pi b\sigma}` (leaves:
:math:`R = X_a T_{\pi}`), and the activation-consistency cone constraints are

.. math::

    (2D^{(l)}_{b_l} - I)\, R_\pi \ge 0 \quad\text{for every node } \pi \text{ of every layer } l.

The set :math:`\mathcal G^{(L)}` of Mishkin (PhD thesis, Stanford) adds the **tensor decomposition constraint** (``T`` must
factor through hidden layers of the given widths); dropping it gives the convex program
emitted by :func:`deep_relu`:

.. math::

    \min_T\ \ell(X^{(L)}\odot T, y) + \lambda \sum_{\text{leaves}} \|T_{b_{L-1}\sigma_{L-1}\cdots b_1\sigma_1}\|_2
    \quad\text{s.t. the cone constraints above.}

**Why it is a lower bound, and when it is exact** (``docs/deep.md``). Any network whose
patterns lie in the sets embeds: group its paths by (pattern, sign) of every neuron on the
path; each node is then a nonnegative combination of same-pattern neurons (so it satisfies its
cone), the output is unchanged and :math:`\sum\|T_{\text{leaf}}\| \le \mathrm{PN}(\theta)`. So
with complete pattern sets the value is :math:`\le` the objective of every network of any
widths. Conversely every feasible ``T`` *is* a tree network (:meth:`DeepFormulation.network`):
layer-1 neurons :math:`T_{\text{leaf}}`, every internal node a neuron fed by its children
with weights :math:`\sigma = \pm1`; its path norm is :math:`\sum\|T_{\text{leaf}}\|`. The tree
needs width :math:`\prod_{l' \ge l} 2P_{l'}` at layer ``l``, i.e. :math:`d_l \ge 2 P_l d_{l+1}`
(Mishkin (PhD thesis, Stanford): "fully convex when :math:`d_l \ge 2p_ld_{l+1}`"); with those widths the program is
exact, with smaller widths it is a relaxation and the mapping refuses (it names the widths it
needs).

**Deep gated ReLU** (:func:`deep_grelu`): with fixed gates the cones disappear, signs are
absorbed, and :math:`\min_T \ell(\sum_{b} D^{(L-1)}_{b_{L-1}}\cdots D^{(1)}_{b_1}X_aT_b, y) +
\lambda\sum_b\|T_b\|_2` is *exactly* the training problem of the tree-structured gated network
(:class:`~convexnn.DeepGatedReLU`) for any pattern sets. For :math:`L = 2` the two programs are
C-ReLU and C-GReLU.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from convexnn.arrangements.layers import LayerPatterns
from convexnn.arrangements.patterns import Patterns
from convexnn.data import check_bool, check_lam, check_Xy
from convexnn.errors import InputError, SolverError, TooLargeError
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.losses import Loss, get_loss

__all__ = ["DeepFormulation", "DeepGatedFormulation", "deep_relu", "deep_grelu", "deep_size"]

DEFAULT_MAX_SIZE = 3_000_000


def deep_size(n: int, d: int, counts: Sequence[int], *, gated: bool = False) -> dict[str, int]:
    """Size of the deep program for ``counts = (P_1, ..., P_{L-1})`` nonzero patterns per layer."""
    k = 1 if gated else 2
    nodes = []
    N = 1
    for P in reversed(list(counts)):
        N *= k * int(P)
        nodes.append(N)
    n_leaf = nodes[-1] if nodes else 0
    n_var = n_leaf * d
    n_con = 0 if gated else n * int(sum(nodes))
    expr = n * int(sum(nodes))
    return {"leaves": n_leaf, "variables": n_var, "constraints": n_con, "estimate": n_var + n_con + expr}


class _DeepBase(Formulation):
    gated = False

    def __init__(self, *, X: np.ndarray, Xa: np.ndarray, y: np.ndarray, loss: Loss, patterns: Any, bias: bool,
                 lam: float, level_masks: list[np.ndarray], widths: Sequence[int] | None, size: dict[str, int],
                 exact: bool, t0: float) -> None:
        """Assemble the tensor program from the per-layer masks (built by :func:`deep_relu` / :func:`deep_grelu`)."""
        self.Xa = Xa
        self._setup(level_masks, widths)
        lamp = cp.Parameter(nonneg=True, value=lam, name="lam")
        U = cp.Variable((Xa.shape[1], size["leaves"]), name="T")
        pred, cons = self._build(U)
        reg = cp.sum(cp.norm(U, 2, axis=0))
        problem = cp.Problem(cp.Minimize(loss.cvx(pred, y) + lamp * reg), cons)
        super().__init__(problem, lamp, X=X, Xa=Xa, y=y, loss=loss, patterns=patterns, bias=bias,
                         variables={"T": U}, constraints={f"cone_{l + 1}": c for l, c in enumerate(cons)},
                         meta={"size": size, "depth": len(level_masks) + 1,
                               "counts": [M.shape[1] for M in level_masks], "exact": exact,
                               "build_time": time.perf_counter() - t0})
        self.exact = exact

    def _setup(self, level_masks: list[np.ndarray], widths: Sequence[int] | None) -> None:
        self.level_masks = level_masks  # per layer l = 1..L-1: (n, P_l) float
        self.depth = len(level_masks) + 1
        k = 1 if self.gated else 2
        self.counts = [M.shape[1] for M in level_masks]
        # nodes of layer l: multi-index (P_{L-1}, k, ..., P_l, k) in C order
        self.n_nodes, self.node_pattern, self.node_sign, self.agg = [], [], [], []
        for l in range(self.depth - 1):
            N = int(np.prod([k * P for P in self.counts[l:]]))
            idx = np.arange(N)
            self.n_nodes.append(N)
            self.node_pattern.append((idx // k) % self.counts[l])
            self.node_sign.append(np.where(idx % k == 0, 1.0, -1.0) if k == 2 else np.ones(N))
            parent = idx // (k * self.counts[l])
            self.agg.append(sp.csr_matrix((np.ones(N), (idx, parent)), shape=(N, N // (k * self.counts[l]))))
        self.widths = None if widths is None else tuple(int(w) for w in widths)

    @property
    def leaf_shape(self) -> tuple[int, ...]:
        k = 1 if self.gated else 2
        shape: list[int] = []
        for P in reversed(self.counts):
            shape += [P, k] if k == 2 else [P]
        return tuple(shape) + (self.Xa.shape[1],)

    def _build(self, U: cp.Variable) -> tuple[cp.Expression, list[cp.Constraint]]:
        R: Any = self.Xa @ U
        cons = []
        for l, M in enumerate(self.level_masks):
            b = self.node_pattern[l]
            if not self.gated:
                cons.append(cp.multiply(2.0 * M[:, b] - 1.0, R) >= 0)
            R = cp.multiply(M[:, b] * self.node_sign[l], R) @ self.agg[l]
        return R[:, 0], cons

    def _numeric(self, T: np.ndarray) -> tuple[np.ndarray, float]:
        T = np.asarray(T, dtype=float)
        if T.shape != self.leaf_shape:
            raise InputError(f"weights['T'] must have shape {self.leaf_shape}; got {T.shape}.")
        R = self.Xa @ T.reshape(-1, T.shape[-1]).T
        viol = 0.0
        for l, M in enumerate(self.level_masks):
            b = self.node_pattern[l]
            if not self.gated:
                viol = max(viol, float(np.max(-(2.0 * M[:, b] - 1.0) * R, initial=0.0)))
            R = np.asarray((M[:, b] * self.node_sign[l] * R) @ self.agg[l])
        return R[:, 0], viol

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        U = self.variables["T"].value
        if U is None:
            raise SolverError("the deep program has not been solved.")
        return {"T": np.asarray(U).T.reshape(self.leaf_shape).copy()}

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        return self._numeric(weights["T"])[0]

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        T = np.asarray(weights["T"], dtype=float)
        return float(np.sum(np.linalg.norm(T.reshape(-1, T.shape[-1]), axis=1)))

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        return self._numeric(weights["T"])[1]

    def _tree(self, solution: ConvexSolution, tol: float, widths: Sequence[int] | None
              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Tree network weights (pruned) and the kept node indices per layer."""
        T = np.asarray(solution.weights["T"], dtype=float)
        leaves = T.reshape(-1, T.shape[-1])
        norms = np.linalg.norm(leaves, axis=1)
        top = float(norms.max()) if norms.size else 0.0
        alive = norms > tol * top if top > 0 else np.zeros(norms.size, bool)
        kept = []
        for l in range(self.depth - 1):
            kept.append(np.flatnonzero(alive))
            if l < self.depth - 2:
                alive = np.asarray(self.agg[l].T @ alive.astype(float)).ravel() > 0
        need = tuple(int(k.size) for k in kept)
        k = 1 if self.gated else 2
        full = tuple(int(np.prod([k * P for P in self.counts[l:]])) for l in range(self.depth - 1))
        widths = self.widths if widths is None else tuple(int(w) for w in widths)
        if widths is not None:
            if len(widths) != self.depth - 1:
                raise InputError(f"widths must give {self.depth - 1} hidden widths; got {widths}.")
            if any(w < k for w, k in zip(widths, need)):
                raise InputError(
                    f"this solution needs hidden widths {need} (a tree network with one neuron per "
                    f"nonzero node); the requested widths {widths} are too small: the program drops "
                    "the tensor decomposition constraint of Mishkin (PhD thesis, Stanford), so a network of these widths need "
                    f"not attain the convex value. Exactness needs d_l >= {k} P_l d_(l+1), i.e. "
                    f"widths >= {full}.")
        Ws = [leaves[kept[0]].T.copy()]
        for l in range(self.depth - 2):
            child, par = kept[l], kept[l + 1]
            pos = {int(p): j for j, p in enumerate(par)}
            parent = child // (self.agg[l].shape[0] // self.agg[l].shape[1])
            W = np.zeros((child.size, par.size))
            W[np.arange(child.size), [pos[int(p)] for p in parent]] = self.node_sign[l][child]
            Ws.append(W)
        Ws.append(self.node_sign[-1][kept[-1]].copy())
        if widths is not None:
            Ws = _pad(Ws, widths)
        return Ws, kept


def _pad(Ws: list[np.ndarray], widths: Sequence[int]) -> list[np.ndarray]:
    """Pad hidden layers with zero neurons up to ``widths``."""
    out = []
    prev = Ws[0].shape[0]
    for l, W in enumerate(Ws):
        rows = prev
        cols = widths[l] if l < len(widths) else None
        if cols is None:
            P = np.zeros(rows)
            P[:W.shape[0]] = W
        else:
            P = np.zeros((rows, cols))
            P[:W.shape[0], :W.shape[1]] = W
            prev = cols
        out.append(P)
    return out


class DeepFormulation(_DeepBase):
    r"""The deep ReLU tensor program of Mishkin (PhD thesis, Stanford) without the tensor decomposition constraint.

    Weights: ``{"T": (P_{L-1}, 2, ..., P_1, 2, d')}`` (axis pairs (pattern, sign) per layer,
    sign index 0 is ``+1``). Named constraints ``"cone_1"``, ..., ``"cone_{L-1}"``: the
    activation-consistency constraints of every layer (shapes ``(n, N_l)``).
    """

    kind = "deep_relu"

    def network(self, solution: ConvexSolution, *, widths: Sequence[int] | None = None,
                tol: float = 0.0) -> Any:
        r"""The tree :class:`~convexnn.DeepReLU` of a solution (module docstring): layer-1
        neurons are the nonzero leaves :math:`T_{\text{leaf}}`, every nonzero node of layer
        :math:`l \ge 2` is a neuron with incoming weights :math:`\sigma_{l-1} = \pm 1` from its
        children, output weights :math:`\sigma_{L-1}`. Same predictions (up to the solver's cone
        violation) and path norm :math:`\sum\|T_{\text{leaf}}\|`, hence the same objective.

        Raises
        ------
        InputError
            If ``widths`` (or the builder's ``widths``) cannot hold the tree; the message
            names the widths needed.
        """
        from convexnn.networks.deep import DeepReLU

        Ws, _ = self._tree(solution, tol, widths)
        return DeepReLU(Ws, bias=self.bias)

    def to_network(self, solution: ConvexSolution) -> Any:
        return self.network(solution)


class DeepGatedFormulation(_DeepBase):
    r"""The deep gated ReLU program (fixed gates per layer; exactly convex).

    Weights: ``{"T": (P_{L-1}, ..., P_1, d')}``; no constraints.
    """

    kind = "deep_grelu"
    gated = True

    def network(self, solution: ConvexSolution, *, widths: Sequence[int] | None = None,
                tol: float = 0.0) -> Any:
        """The tree :class:`~convexnn.DeepGatedReLU` (gates = the node patterns on the training data)."""
        from convexnn.networks.deep import DeepGatedReLU

        Ws, kept = self._tree(solution, tol, widths)
        gates = []
        for l, k in enumerate(kept):
            g = self.level_masks[l][:, self.node_pattern[l][k]] > 0.5
            width = Ws[l].shape[1] if Ws[l].ndim == 2 else g.shape[1]
            G = np.zeros((g.shape[0], width), dtype=bool)
            G[:, :g.shape[1]] = g
            gates.append(G)
        return DeepGatedReLU(Ws, gates, self.X, bias=self.bias)

    def to_network(self, solution: ConvexSolution) -> Any:
        return self.network(solution)


def _prepare(X: Any, y: Any, layer_patterns: Sequence[Any], lam: float, loss: str | Loss,
             bias: bool | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, Loss, Patterns, bool,
                                         list[np.ndarray], float]:
    lo = get_loss(loss)
    Xc, yc = check_Xy(X, y, loss=lo.name)
    if yc.ndim != 1:
        raise InputError(f"the deep programs support scalar outputs only; y has shape {yc.shape}.")
    lam_value = check_lam(lam)
    if not isinstance(layer_patterns, (list, tuple)) or len(layer_patterns) < 1:
        raise InputError("layer_patterns must be a non-empty list [Patterns, LayerPatterns (layer 2), ...].")
    first = layer_patterns[0]
    if not isinstance(first, Patterns):
        raise InputError(f"layer_patterns[0] must be the first-layer Patterns; got {type(first).__name__}.")
    b = first.bias if bias is None else check_bool(bias, "bias")
    if b != first.bias:
        raise InputError(f"bias={b} but the first-layer patterns were built with bias={first.bias}.")
    Xa = first.check(Xc)
    M1 = np.asarray(first.masks)
    masks = [M1[:, M1.any(axis=0)].astype(float)]
    for l, lp in enumerate(layer_patterns[1:], start=2):
        if not isinstance(lp, LayerPatterns):
            raise InputError(f"layer_patterns[{l - 1}] must be a LayerPatterns; got {type(lp).__name__}.")
        lp.check(Xc)
        if lp.level != l:
            raise InputError(f"layer_patterns[{l - 1}] holds layer-{lp.level} patterns; expected layer {l}.")
        if lp.bias != b:
            raise InputError(f"layer-{l} patterns were built with another bias setting.")
        M = np.asarray(lp.masks)
        masks.append(M[:, M.any(axis=0)].astype(float))
    for l, M in enumerate(masks, start=1):
        if M.shape[1] == 0:
            raise InputError(f"layer {l} has no nonzero pattern.")
    return Xc, Xa, yc, lo, first, b, masks, lam_value


def _deep(cls: type, X: Any, y: Any, layer_patterns: Sequence[Any], lam: float, loss: str | Loss,
          bias: bool | None, widths: Sequence[int] | None, max_size: int) -> _DeepBase:
    t0 = time.perf_counter()
    Xc, Xa, yc, lo, first, b, masks, lam_value = _prepare(X, y, layer_patterns, lam, loss, bias)
    n, dp = Xa.shape
    size = deep_size(n, dp, [M.shape[1] for M in masks], gated=cls.gated)
    if size["estimate"] > max_size:
        name = "deep_grelu" if cls.gated else "deep_relu"
        raise TooLargeError(
            f"{name}: {size['leaves']} leaves (patterns per layer {[M.shape[1] for M in masks]}) give "
            f"{size['variables']} variables and {size['constraints']} constraint rows (estimated size "
            f"{size['estimate']} > max_size={max_size}); use fewer patterns per layer or raise max_size.",
            estimate=size["estimate"], limit=max_size)
    exact = all(bool(getattr(p, "exact", False)) for p in layer_patterns)
    return cls(X=Xc, Xa=Xa, y=yc, loss=lo, patterns=first, bias=b, lam=lam_value, level_masks=masks,
               widths=widths, size=size, exact=exact, t0=t0)


def deep_relu(
    X: Any,
    y: Any,
    layer_patterns: Sequence[Patterns | LayerPatterns],
    lam: float,
    *,
    loss: str | Loss = "squared",
    bias: bool | None = None,
    widths: Sequence[int] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> DeepFormulation:
    r"""Build the deep ReLU tensor program (Mishkin (PhD thesis, Stanford)) without the tensor decomposition constraint.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array, shape (n,)
    layer_patterns : list
        ``[Patterns (layer 1), LayerPatterns (layer 2), ..., LayerPatterns (layer L-1)]``, e.g.
        from :func:`~convexnn.arrangements.layers.deep_layer_patterns`; the network has
        ``L = len(layer_patterns) + 1`` layers. All-zero masks are dropped.
    lam : float
        Path-norm regularization strength ``> 0`` (the ``cp.Parameter`` ``.lam``).
    loss : {"squared", "logistic", "hinge"} or Loss
    bias : bool, optional
        Defaults to the first-layer patterns' ``bias``.
    widths : sequence of int, optional
        Hidden widths of the target architecture; :meth:`DeepFormulation.network` (and
        ``to_network``) then refuse solutions that need a wider tree.
    max_size : int
        Refuse (:class:`TooLargeError`, naming the estimate) above this many variables +
        constraint rows + expression entries.

    Returns
    -------
    DeepFormulation
        Value :math:`\le` the path-norm objective of every network whose patterns lie in the sets
        (any widths); exact with complete sets and widths :math:`d_l \ge 2P_ld_{l+1}`. For
        ``L = 2`` this is C-ReLU.
    """
    return _deep(DeepFormulation, X, y, layer_patterns, lam, loss, bias, widths, max_size)  # type: ignore[return-value]


def deep_grelu(
    X: Any,
    y: Any,
    layer_patterns: Sequence[Patterns | LayerPatterns],
    lam: float,
    *,
    loss: str | Loss = "squared",
    bias: bool | None = None,
    widths: Sequence[int] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> DeepGatedFormulation:
    r"""Build the deep gated ReLU program: fixed gates per layer, exactly convex (module docstring).

    Parameters as in :func:`deep_relu`. Its value is :math:`\le` the :func:`deep_relu` value
    with the same patterns (drop the cones); for ``L = 2`` this is C-GReLU.
    """
    return _deep(DeepGatedFormulation, X, y, layer_patterns, lam, loss, bias, widths,  # type: ignore[return-value]
                 max_size)
