r"""The two-layer convex programs as :class:`~convexnn.formulations.formulation.Formulation` subclasses.

:class:`CReLU`, :class:`CGReLU` and :class:`MinNormInterpolation` hold the math of a built
program (:mod:`convexnn.formulations.two_layer` builds them): reading the weights out of the
CVXPY variables, the predictions :math:`\sum_i D_i X_a u_i`, the regularizer
:math:`\sum_i R(u_i)` of the program's first-layer penalty (:attr:`penalty`,
:mod:`convexnn.formulations.penalties`; the group lasso :math:`R = \|\cdot\|_2` by default, the
nuclear norm for ``vector_reg="nuclear"``), the cone violation and the map back to a network
with the same objective.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from convexnn.errors import ConvexNNWarning, InputError
from convexnn.formulations.blocks import (
    block_fit,
    block_regularizer,
    cone_violation,
    gated_neurons,
    group_neurons,
    nuclear_relu_neurons,
    zero_block_threshold,
)
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.penalties import Penalty, get_penalty

__all__ = ["CReLU", "CGReLU", "MinNormInterpolation"]


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
    def penalty(self) -> Penalty:
        r"""The first-layer penalty :math:`R` of the regularizer :math:`\lambda\sum_i R(u_i)`:
        :class:`~convexnn.formulations.penalties.GroupL2` by default, ``Nuclear`` for
        ``vector_reg="nuclear"`` with vector outputs."""
        pen = self.meta.get("penalty")
        return get_penalty(pen)

    @property
    def _block_penalty(self) -> Penalty:
        """The per-vector penalty of the blocks (the group lasso when the program is nuclear)."""
        pen = self.penalty
        return get_penalty(None) if pen.name == "nuclear" else pen

    @property
    def n_outputs(self) -> int:
        return 1 if self.y.ndim == 1 else int(self.y.shape[1])

    @property
    def masks(self) -> np.ndarray:
        """``patterns.masks`` as floats, shape ``(n, P)``."""
        m = self.meta.get("masks")
        return np.asarray(self.patterns.masks, dtype=float) if m is None else m

    @property
    def signs(self) -> np.ndarray:
        """``2 * masks - 1``, shape ``(n, P)``: row signs of the cones :math:`\\mathcal K_i`."""
        return 2.0 * self.masks - 1.0

    def nnz_estimate(self) -> int:
        """Nonzeros of the canonicalized program: ``k n P d' c`` with ``k = 4`` for C-ReLU (two
        masked products, two cone constraints) and ``k = 1`` for C-GReLU."""
        n, d = self.Xa.shape
        k = 4 if "W" in self.weight_keys else 1
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
    block_program = True

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        P, c = self.n_patterns, self.n_outputs
        return {k: _blocks(np.asarray(self.variables[k].value, dtype=float), P, c) for k in ("V", "W")}

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        r""":math:`\sum_i D_i X_a (v_i - w_i)` on the training data."""
        _check_weights(weights, ("V", "W"), self._weight_shape())
        return block_fit(self.Xa, self.masks, np.asarray(weights["V"]) - np.asarray(weights["W"]))

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        r""":math:`\sum_i R(v_i) + R(w_i)` (:attr:`penalty`, :math:`R = \|\cdot\|_2` by default) or
        :math:`\sum_i \|V_i\|_* + \|W_i\|_*` (nuclear)."""
        _check_weights(weights, ("V", "W"), self._weight_shape())
        pen = self._block_penalty
        return (block_regularizer(np.asarray(weights["V"]), self.vector_reg, pen)
                + block_regularizer(np.asarray(weights["W"]), self.vector_reg, pen))

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        r"""Largest violation of :math:`(2D_i - I)X_a v_i \ge 0`, :math:`(2D_i - I)X_a w_i \ge 0`."""
        _check_weights(weights, ("V", "W"), self._weight_shape())
        return max(cone_violation(self.Xa, self.signs, np.asarray(weights["V"])),
                   cone_violation(self.Xa, self.signs, np.asarray(weights["W"])))

    def to_network(self, solution: ConvexSolution) -> Any:
        r"""C -> NC mapping (Mishkin & Pilanci (ICML 2023) "Solution Mapping for C-ReLU", Pilanci (2021 talk) Theorem).

        Each nonzero block becomes one neuron,
        :math:`W_{1,:j} = v_i/\sqrt{R(v_i)}`, :math:`w_{2,j} = \sqrt{R(v_i)}` and
        :math:`W_{1,:j} = w_i/\sqrt{R(w_i)}`, :math:`w_{2,j} = -\sqrt{R(w_i)}` (:math:`R` the
        :attr:`penalty`, :math:`\|\cdot\|_2` by default; the network carries it); zero blocks (norm
        at most ``ZERO_RTOL`` times the largest block norm or the data scale
        :math:`\|y\|/\|X_a\|_F`, whichever is larger) are dropped. Since :math:`v_i \in \mathcal K_i`,
        :math:`(X_a v_i)_+ = D_i X_a v_i`, so the network has the convex model's predictions and
        weight decay :math:`\sum R(v_i) + R(w_i)`: the same objective.
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
        pen = self._block_penalty
        for U, sign in ((V, 1.0), (W, -1.0)):
            c_, o_ = group_neurons(U, sign, thr, pen)
            cols.append(c_)
            outs.append(o_)
        return TwoLayerReLU(np.hstack(cols), np.concatenate(outs, axis=0), bias=self.bias, penalty=pen)


class MinNormInterpolation(CReLU):
    r"""The :math:`\lambda \to 0` C-ReLU program of Pilanci (2021 talk) (built by :func:`min_norm_interpolation`).

    Objective :math:`\sum_i \|v_i\| + \|w_i\|` (times the unit parameter ``lam``, kept for a uniform
    API), cones as in C-ReLU, and the constraint ``"fit"`` (:math:`\sum_i D_i X_a(v_i - w_i) = y`)
    or ``"margin"`` (:math:`y \odot \sum_i D_i X_a(v_i - w_i) \ge 1`). ``loss`` is ``squared`` or
    ``hinge`` respectively, both zero on the feasible set, so ``solution.objective()`` is the
    minimum norm and the mapped network's weight decay equals it.
    """

    kind = "min_norm"
    #: the fit / margin constraints make it no block program of the first-order solvers
    block_program = False

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
    block_program = True

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        return {"U": _blocks(np.asarray(self.variables["U"].value, dtype=float), self.n_patterns,
                             self.n_outputs)}

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        r""":math:`\sum_i D_i X_a u_i` on the training data."""
        _check_weights(weights, ("U",), self._weight_shape())
        return block_fit(self.Xa, self.masks, np.asarray(weights["U"]))

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        r""":math:`\sum_i R(u_i)` (:attr:`penalty`, :math:`R = \|\cdot\|_2` by default) or :math:`\sum_i \|U_i\|_*` (nuclear)."""
        _check_weights(weights, ("U",), self._weight_shape())
        return block_regularizer(np.asarray(weights["U"]), self.vector_reg, self._block_penalty)

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
        pen = self._block_penalty
        idx, W1, w2 = gated_neurons(U, self._zero_threshold(U), self.vector_reg, pen)
        return GatedReLU(np.asarray(self.patterns.gates)[:, idx], W1, w2, bias=self.bias, penalty=pen)
