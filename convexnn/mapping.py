r"""Solution mappings between networks and convex programs, and cone decompositions.

* :func:`from_network` -- NC -> C (Mishkin (PhD thesis, Stanford) "Bonus: Explicit Solution Mapping"): every neuron
  :math:`(W_{1,:j}, w_{2,j})` of a two-layer network goes to the block of its activation pattern
  :math:`D = \operatorname{diag}(\mathbf 1[X_a W_{1,:j} \ge 0])`,

  .. math:: v_i \mathrel{+}= W_{1,:j}\,|w_{2,j}| \ \text{ if } w_{2,j} \ge 0,
            \qquad w_i \mathrel{+}= W_{1,:j}\,|w_{2,j}| \ \text{ otherwise,}

  (gated networks: :math:`u_i \mathrel{+}= W_{1,:j} w_{2,j}` for the gate's pattern). The convex
  model has the network's predictions and, by Young's inequality and the triangle inequality,
  an objective **at most** the network's, with equality when every neuron is balanced
  (:math:`\|W_{1,:j}\| = |w_{2,j}|`, true at every optimum, Mishkin, Sahiner & Pilanci (ICML 2022) proof of Thm 2.2) and neurons
  sharing a pattern and sign are positively collinear (true at every optimum, Mishkin & Pilanci (ICML 2023) Theorem).
* The C -> NC direction is :meth:`ConvexSolution.to_network` (see
  :mod:`convexnn.formulations.two_layer`) and :meth:`ConvexModel.to_network`.
* :func:`cone_decomposition` -- gated -> ReLU (Mishkin, Sahiner & Pilanci (ICML 2022) Prop 3.1/3.2, Thm 3.7; Mishkin (PhD thesis, Stanford) "Bonus: ReLU by
  Cone Decomposition"): write every gated block as :math:`u_i = v_i - w_i` on the data with
  :math:`v_i, w_i \in \mathcal K_i`, solved for all blocks at once as an SOCP (min
  :math:`\sum\|v_i\|+\|w_i\|`) or an LP feasibility problem, then map to a ReLU network with
  identical predictions.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from convexnn._cvxpy_warnings import translated
from convexnn.arrangements.patterns import Patterns, data_fingerprint
from convexnn.data import check_lam, check_X, check_y
from convexnn.errors import ConvexNNWarning, InputError, SolverError
from convexnn.formulations.formulation import ConvexSolution, default_solver
from convexnn.formulations.losses import Loss, get_loss
from convexnn.formulations.blocks import (
    block_fit,
    block_norms,
    block_regularizer,
    gated_neurons,
    group_neurons,
    nuclear_relu_neurons,
    zero_block_threshold,
)
from convexnn.formulations.penalties import Penalty, get_penalty
from convexnn.formulations.two_layer import c_grelu, c_relu
from convexnn.networks.two_layer import GatedReLU, TwoLayerReLU

__all__ = ["from_network", "ConvexModel", "cone_decomposition", "ConeDecomposition"]


# ============================================================================ NC -> C
@dataclass
class ConvexModel:
    """Convex weights obtained from a network by :func:`from_network`.

    Attributes
    ----------
    kind : {"c_relu", "c_grelu"}
    weights : dict[str, ndarray]
        ``{"V", "W"}`` (C-ReLU) or ``{"U"}`` (C-GReLU), shape ``(P, d')`` or ``(P, d', c)``,
        aligned with :attr:`patterns` exactly as in :func:`convexnn.c_relu`'s solutions.
    patterns : Patterns
        The given pattern set, or (``patterns=None``) the distinct patterns of the neurons.
    X, Xa : ndarray
    bias : bool
    vector_reg : {"group", "nuclear"}
    neuron_block : ndarray of int, shape (m,)
        Block index of each neuron (``-1`` for neurons with a zero layer, which are dropped).
    penalty : Penalty or None
        First-layer penalty R of the regularizer sum_i R(u_i) (the network's; ``None``: the
        group lasso).
    """

    kind: str
    weights: dict[str, np.ndarray]
    patterns: Patterns
    X: np.ndarray
    Xa: np.ndarray
    bias: bool
    vector_reg: str = "group"
    neuron_block: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    penalty: Penalty | None = None

    def __getattr__(self, name: str) -> Any:
        weights = self.__dict__.get("weights")
        if weights is not None and name in weights:
            return weights[name]
        raise AttributeError(f"ConvexModel has no attribute {name!r}")

    def __repr__(self) -> str:
        shapes = {k: tuple(np.shape(v)) for k, v in self.weights.items()}
        return f"ConvexModel({self.kind}, P={len(self.patterns)}, bias={self.bias}, weights={shapes})"

    def _effective(self) -> np.ndarray:
        return self.weights["U"] if self.kind == "c_grelu" else self.weights["V"] - self.weights["W"]

    def predict(self) -> np.ndarray:
        r"""Fit on the training data, :math:`\sum_i D_i X_a u_i`."""
        return block_fit(self.Xa, np.asarray(self.patterns.masks, dtype=float), self._effective())

    def regularizer(self) -> float:
        """The convex regularizer (group -- of the :attr:`penalty` -- or nuclear norms of the blocks)."""
        return float(sum(block_regularizer(np.asarray(w), self.vector_reg, self.penalty)
                         for w in self.weights.values()))

    def objective(self, y: Any, lam: float, loss: str | Loss = "squared") -> float:
        """Convex objective ``loss(predict(), y) + lam * regularizer()``."""
        lo = get_loss(loss)
        yy = check_y(y, self.Xa.shape[0], loss=lo.name)
        return lo.value(self.predict(), yy) + check_lam(lam, allow_zero=True) * self.regularizer()

    def to_solution(self, y: Any, lam: float, loss: str | Loss = "squared") -> ConvexSolution:
        """A :class:`ConvexSolution` of ``c_relu`` / ``c_grelu`` on :attr:`patterns` holding these weights.

        The program is built (not solved); ``status`` is ``"from_network"`` and ``value`` is the
        convex objective at these weights, so KKT checks and certificates can be run on a
        trained network.
        """
        build = c_grelu if self.kind == "c_grelu" else c_relu
        f = build(self.X, y, self.patterns, lam, loss=loss, bias=self.bias, vector_reg=self.vector_reg,
                  penalty=self.penalty)
        weights = {k: np.array(v) for k, v in self.weights.items()}
        value = f.objective(weights)
        return ConvexSolution(formulation=f, weights=weights, value=value, status="from_network",
                              solver="none", lam=f.lam_value)

    def to_network(self) -> TwoLayerReLU | GatedReLU:
        """C -> NC mapping of these weights (zero blocks dropped), as ``ConvexSolution.to_network``."""
        if self.kind == "c_grelu":
            U = np.asarray(self.weights["U"])
            idx, W1, w2 = gated_neurons(U, zero_block_threshold(U), self.vector_reg, self.penalty)
            return GatedReLU(np.asarray(self.patterns.gates)[:, idx], W1, w2, bias=self.bias,
                             penalty=self.penalty)
        V, W = np.asarray(self.weights["V"]), np.asarray(self.weights["W"])
        thr = zero_block_threshold(V, W)
        if V.ndim == 3 and self.vector_reg == "nuclear":
            signs = 2.0 * np.asarray(self.patterns.masks, dtype=float) - 1.0
            cols, outs, exact = nuclear_relu_neurons(self.Xa, signs, V, W, thr)
            if not exact:
                warnings.warn("nuclear C-ReLU weights: some singular vectors are not in their cone; those "
                              "blocks were mapped column by column (same predictions, larger weight decay).",
                              ConvexNNWarning, stacklevel=2)
            return TwoLayerReLU(cols, outs, bias=self.bias)
        c1, o1 = group_neurons(V, 1.0, thr, self.penalty)
        c2, o2 = group_neurons(W, -1.0, thr, self.penalty)
        return TwoLayerReLU(np.hstack([c1, c2]), np.concatenate([o1, o2], axis=0), bias=self.bias,
                            penalty=self.penalty)


def _match_patterns(patterns: Patterns, pre: np.ndarray, *, ties: bool, tol: float) -> np.ndarray:
    """Index in ``patterns`` of each column of ``pre`` (pre-activations ``(n, m)``), ``-1`` if absent.

    The pattern of a column is ``pre >= 0``. With ``ties``, rows with ``|pre| <= tol`` may take
    either value (a neuron on the boundary of a chamber has the same output under both).
    """
    exact = pre >= 0
    width = patterns.packed.shape[1]
    table = {bytes(row): i for i, row in enumerate(np.asarray(patterns.packed))}
    q = np.packbits(exact.T, axis=1) if exact.shape[1] else np.zeros((0, width), np.uint8)
    idx = np.array([table.get(bytes(row), -1) for row in q], dtype=int)
    missing = np.flatnonzero(idx < 0)
    if ties and missing.size and len(patterns):
        M = np.asarray(patterns.masks)
        for j in missing:
            scale = max(1.0, float(np.max(np.abs(pre[:, j]))))
            pos = pre[:, j] > tol * scale
            neg = pre[:, j] < -tol * scale
            bad = (~M[pos]).sum(axis=0) + M[neg].sum(axis=0)
            ok = np.flatnonzero(bad == 0)
            if ok.size:
                idx[j] = ok[0]
    return idx


def from_network(
    net: TwoLayerReLU | GatedReLU,
    X: Any,
    patterns: Patterns | None = None,
    *,
    vector_reg: str = "group",
    tol: float = 1e-9,
) -> ConvexModel:
    r"""NC -> C mapping: the convex weights of a two-layer network (Mishkin (PhD thesis, Stanford) "Explicit Solution Mapping").

    Parameters
    ----------
    net : TwoLayerReLU or GatedReLU
    X : array, shape (n, d)
    patterns : Patterns, optional
        Express the weights on this pattern set (e.g. ``formulation.patterns``, so the result
        lines up with ``c_relu(X, y, patterns, lam)``). Every neuron's pattern
        :math:`\mathbf 1[X_a W_{1,:j} \ge 0]` must be in the set; for a ReLU neuron with
        pre-activations within ``tol`` (relative) of zero, any pattern agreeing on the other rows
        is accepted (its output is the same). Default: the distinct patterns of the neurons,
        with the neurons' weights (ReLU) or gates (gated) as witness gates.
    vector_reg : {"group", "nuclear"}
        Convention for vector outputs. ``"group"``: each neuron must feed a single output
        (one nonzero in its row of ``w2``). ``"nuclear"``: any gated network; for a ReLU network
        each row of ``w2`` must be entrywise nonnegative or nonpositive.
    tol : float
        Relative tolerance for boundary (tie) rows.

    Returns
    -------
    ConvexModel
        Weights ``{"V", "W"}`` (ReLU) or ``{"U"}`` (gated) with the network's predictions and an
        objective at most the network's (equal for balanced networks without split neurons, e.g.
        the output of :meth:`ConvexSolution.to_network` or any optimal network). Neurons with a
        zero layer are dropped (they contribute no output).

    Raises
    ------
    InputError
        If ``X`` does not fit the network, a neuron's pattern is not in ``patterns``, or the
        output weights do not fit the ``vector_reg`` convention.
    """
    if not isinstance(net, (TwoLayerReLU, GatedReLU)):
        raise InputError(f"from_network expects a TwoLayerReLU or GatedReLU; got {type(net).__name__}.")
    if vector_reg not in ("group", "nuclear"):
        raise InputError(f"vector_reg must be 'group' or 'nuclear'; got {vector_reg!r}.")
    pen = get_penalty(getattr(net, "penalty", None))
    if vector_reg == "nuclear" and net.w2.ndim == 2 and not pen.group_l2:
        raise InputError(f"vector_reg='nuclear' has its own regularizer; a network with the {pen.name!r} "
                         "penalty maps with vector_reg='group'.")
    Xc = check_X(X)
    Xa = net.design(Xc)
    gated = isinstance(net, GatedReLU)
    W1, w2 = net.W1, net.w2
    a = np.linalg.norm(W1, axis=0)
    b = np.abs(w2) if w2.ndim == 1 else np.linalg.norm(w2, axis=1)
    live = np.flatnonzero((a > 0) & (b > 0))
    gate_cols = net.gates[:, live] if gated else W1[:, live]
    pre = Xa @ gate_cols
    if patterns is None:
        pats = Patterns(pre >= 0, gate_cols, bias=net.bias, kind="network",
                        fingerprint=data_fingerprint(Xc), n_samples=Xa.shape[0])
    else:
        if not isinstance(patterns, Patterns):
            raise InputError(f"patterns must be a convexnn.Patterns; got {type(patterns).__name__}.")
        if patterns.bias != net.bias:
            raise InputError(f"the network has bias={net.bias} but the patterns bias={patterns.bias}.")
        patterns.check(Xc)
        pats = patterns
    idx = _match_patterns(pats, pre, ties=not gated, tol=tol)
    if np.any(idx < 0):
        bad = live[idx < 0]
        raise InputError(f"the activation pattern of neuron(s) {bad[:10].tolist()} on X is not in the given "
                         "pattern set; pass patterns=None, or a complete set (enumerate_patterns) "
                         "that contains them.")
    P, d = len(pats), Xa.shape[1]
    block = np.full(W1.shape[1], -1, dtype=int)
    block[live] = idx
    cols = W1[:, live].T  # (k, d')
    out = w2[live]
    if w2.ndim == 1:
        if gated:
            U = np.zeros((P, d))
            np.add.at(U, idx, cols * out[:, None])
            weights = {"U": U}
        else:
            V, W = np.zeros((P, d)), np.zeros((P, d))
            pos = out >= 0
            np.add.at(V, idx[pos], cols[pos] * np.abs(out[pos])[:, None])
            np.add.at(W, idx[~pos], cols[~pos] * np.abs(out[~pos])[:, None])
            weights = {"V": V, "W": W}
    else:
        c = w2.shape[1]
        outer = cols[:, :, None] * out[:, None, :]  # (k, d', c)
        if vector_reg == "group" and np.any(np.count_nonzero(out, axis=1) > 1):
            raise InputError("vector_reg='group' needs each neuron to feed a single output (one nonzero per "
                             "row of w2); use vector_reg='nuclear'.")
        if gated:
            U = np.zeros((P, d, c))
            np.add.at(U, idx, outer)
            weights = {"U": U}
        else:
            nonneg = np.all(out >= 0, axis=1)
            nonpos = np.all(out <= 0, axis=1)
            if not np.all(nonneg | nonpos):
                raise InputError("a ReLU neuron with output weights of both signs has no block in the "
                                 "C-ReLU vector programs (columns of V_i and W_i lie in K_i); split it "
                                 "into a positive and a negative neuron first.")
            V, W = np.zeros((P, d, c)), np.zeros((P, d, c))
            # block += W1_j |w2_j|^T: every column is a nonnegative multiple of W1_j, in K_i
            np.add.at(V, idx[nonneg], cols[nonneg][:, :, None] * np.abs(out[nonneg])[:, None, :])
            np.add.at(W, idx[~nonneg], cols[~nonneg][:, :, None] * np.abs(out[~nonneg])[:, None, :])
            weights = {"V": V, "W": W}
    return ConvexModel(kind="c_grelu" if gated else "c_relu", weights=weights, patterns=pats, X=Xc, Xa=Xa,
                       bias=net.bias, vector_reg=vector_reg, neuron_block=block,
                       penalty=None if pen.group_l2 else pen)


# ============================================================================ gated -> ReLU
@dataclass
class ConeDecomposition:
    r"""Result of :func:`cone_decomposition`.

    Attributes
    ----------
    network : TwoLayerReLU
        ReLU network with the gated model's predictions on the training data.
    weights : dict
        C-ReLU weights ``{"V": (P, d'), "W": (P, d')}`` on the gated solution's patterns.
    gated_value, relu_value : float
        Objective of the gated solution and of :attr:`network` (same loss and ``lam``).
    objective_change : float
        ``relu_value - gated_value`` (``lam`` times the increase of the regularizer, since the
        predictions are identical).
    bound : float
        :math:`2\lambda\kappa(X_a)\sum_i\|u_i\|_2`, the Thm 3.7 bound on the change with
        :math:`\tilde X_{\mathcal J} = X_a`.
    bound_applies : bool
        True when :math:`X_a` has full row rank (Mishkin, Sahiner & Pilanci (ICML 2022) Prop 3.1: every :math:`\mathcal K_i -
        \mathcal K_i = \mathbb R^{d'}`); then ``objective_change <= bound`` is guaranteed for
        ``method="socp"``.
    kappa : float
        Condition number of :math:`X_a`.
    max_prediction_error : float
        Largest ``|network.predict(X) - gated fit|``.
    method, status, solver : str
    solve_time : float
    """

    network: TwoLayerReLU
    weights: dict[str, np.ndarray]
    gated_value: float
    relu_value: float
    objective_change: float
    bound: float
    bound_applies: bool
    kappa: float
    max_prediction_error: float
    method: str
    status: str
    solver: str
    solve_time: float

    def __repr__(self) -> str:
        return (f"ConeDecomposition({self.method}, neurons={self.network.n_neurons}, "
                f"objective_change={self.objective_change:.4g}, bound={self.bound:.4g}, "
                f"bound_applies={self.bound_applies}, max_prediction_error={self.max_prediction_error:.2g})")


def cone_decomposition(
    gated_solution: ConvexSolution,
    X: Any,
    *,
    method: str = "socp",
    solver: str | None = None,
    **solver_kwargs: Any,
) -> ConeDecomposition:
    r"""Turn a C-GReLU solution into a ReLU network with identical predictions (Mishkin, Sahiner & Pilanci (ICML 2022) Sec. III).

    For every nonzero gated block :math:`u_i` find :math:`v_i, w_i \in \mathcal K_i =
    \{u : (2D_i - I)X_a u \ge 0\}` with :math:`D_i X_a (v_i - w_i) = D_i X_a u_i` (the same
    contribution to the fit; Prop 3.1 shows :math:`u_i = v_i - w_i` itself is possible when
    :math:`X_a` has full row rank), all blocks in one vectorized program:

    * ``method="socp"``: :math:`\min \sum_i R(v_i) + R(w_i)` (the solution's penalty, :math:`R = \|\cdot\|_2` by default; Mishkin (PhD thesis, Stanford) "Bonus: ReLU by Cone
      Decomposition", :math:`L(v, w) = \|v\| + \|w\|`), the decomposition with the smallest
      objective increase;
    * ``method="feasibility"``: :math:`L = 0`, an LP feasibility problem (any decomposition).

    The C-ReLU weights are then mapped to a :class:`TwoLayerReLU` (Mishkin & Pilanci (ICML 2023) solution mapping). The
    objective increases by :math:`\lambda(\sum_i\|v_i\|+\|w_i\| - \sum_i\|u_i\|)`; Thm 3.7 bounds
    it by :math:`2\lambda\kappa(\tilde X_{\mathcal J})\sum_i\|u_i\|` (reported as ``bound``; it holds
    with :math:`\tilde X_{\mathcal J} = X_a` for ``socp`` when :math:`X_a` has full row rank:
    pick :math:`X_a v = r_+`-type splits of :math:`r = X_a u` and :math:`v = X_a^+ a + \Pi u`).

    Parameters
    ----------
    gated_solution : ConvexSolution
        A (scalar-output) solution of :func:`convexnn.c_grelu`.
    X : array, shape (n, d)
        The training data of that solution (validated against its patterns).
    method : {"socp", "feasibility"}
    solver : str, optional
        CVXPY solver (default Clarabel / MOSEK as in :meth:`Formulation.solve`).

    Raises
    ------
    InputError
        If the solution is not a scalar C-GReLU solution or ``X`` is not its data.
    SolverError
        If some block admits no decomposition in its own cone (a degenerate cone with
        :math:`\mathcal K_i - \mathcal K_i \ne \mathbb R^{d'}`, Prop 3.2 then needs a larger cone,
        which changes the predictions).
    """
    if not isinstance(gated_solution, ConvexSolution) or getattr(gated_solution.formulation, "kind", "") != "c_grelu":
        raise InputError("cone_decomposition expects a ConvexSolution of convexnn.c_grelu.")
    if method not in ("socp", "feasibility"):
        raise InputError(f"method must be 'socp' or 'feasibility'; got {method!r}.")
    f = gated_solution.formulation
    U = np.asarray(gated_solution.weights["U"], dtype=float)
    if U.ndim != 2:
        raise InputError("cone_decomposition supports scalar-output gated solutions only.")
    Xc = check_X(X)
    Xa = f.patterns.check(Xc)
    if Xa.shape != f.Xa.shape or not np.allclose(Xa, f.Xa):
        raise InputError("X is not the data the gated solution was computed on.")
    masks = np.asarray(f.patterns.masks, dtype=float)
    signs = 2.0 * masks - 1.0
    pen = get_penalty(getattr(f, "penalty", None))
    norms = block_norms(U)
    nz = np.flatnonzero(norms > zero_block_threshold(U, Xa=f.Xa, y=f.y))
    P, d = U.shape
    V_full, W_full = np.zeros((P, d)), np.zeros((P, d))
    name = (solver or default_solver()).upper()
    status, t_solve = "optimal", 0.0
    if nz.size:
        M, S = masks[:, nz], signs[:, nz]
        Vd = cp.Variable((d, nz.size), name="V")
        Wd = cp.Variable((d, nz.size), name="W")
        target = M * (Xa @ U[nz].T)
        cons = [cp.multiply(S, Xa @ Vd) >= 0, cp.multiply(S, Xa @ Wd) >= 0,
                cp.multiply(M, Xa @ (Vd - Wd)) == target]
        obj = (pen.cvx(Vd) + pen.cvx(Wd)) if method == "socp" else 0
        prob = cp.Problem(cp.Minimize(obj), cons)
        t0 = time.perf_counter()
        try:
            with translated(f"cone decomposition with {name}", inaccurate_status_checked=False):
                prob.solve(solver=name, **solver_kwargs)
        except cp.error.SolverError as exc:
            raise SolverError(f"{name} failed on the cone decomposition: {exc}", solver=name,
                              status="solver_error") from exc
        t_solve = time.perf_counter() - t0
        status = prob.status
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise SolverError(f"cone decomposition returned status {status!r} ({name}): some gated block has no "
                              "decomposition u = v - w with v, w in its own cone K_i (K_i - K_i != R^d', "
                              "Prop 3.1 needs full row rank / a cone with interior).", status=status, solver=name)
        V_full[nz] = np.asarray(Vd.value).T
        W_full[nz] = np.asarray(Wd.value).T
    lam = gated_solution.lam
    thr = zero_block_threshold(V_full, W_full, Xa=f.Xa, y=f.y)
    c1, o1 = group_neurons(V_full, 1.0, thr, pen)
    c2, o2 = group_neurons(W_full, -1.0, thr, pen)
    net = TwoLayerReLU(np.hstack([c1, c2]), np.concatenate([o1, o2]), bias=f.bias, penalty=pen)
    gated_fit = f.predict({"U": U})
    gated_value = gated_solution.objective()
    relu_value = net.objective(Xc, f.y, lam, f.loss)
    sv = np.linalg.svd(Xa, compute_uv=False)
    kappa = float(sv[0] / sv[-1]) if sv[-1] > 0 else float("inf")
    # Thm 3.7 is stated for the Euclidean group norm
    full_row_rank = Xa.shape[0] <= Xa.shape[1] and bool(sv[-1] > 1e-12 * sv[0]) and pen.group_l2
    return ConeDecomposition(
        network=net,
        weights={"V": V_full, "W": W_full},
        gated_value=float(gated_value),
        relu_value=float(relu_value),
        objective_change=float(relu_value - gated_value),
        bound=float(2.0 * lam * kappa * np.sum(norms)),
        bound_applies=full_row_rank,
        kappa=kappa,
        max_prediction_error=float(np.max(np.abs(net.predict(Xc) - gated_fit), initial=0.0)),
        method=method,
        status=str(status),
        solver=name,
        solve_time=t_solve,
    )
