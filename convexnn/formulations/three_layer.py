r"""The Ergen-Pilanci convex program (12) of three-layer ReLU sub-networks (Ergen & Pilanci (ICML 2021) Theorem 1).

Architecture (Ergen & Pilanci (ICML 2021) eq. (4)): :math:`K` parallel sub-networks
:math:`f_k(X) = ((X_a W_{1k})_+ w_{2k})_+ w_{3k}` with :math:`\|W_{1k}\|_F \le 1`,

.. math::

    P^* = \min_{\theta}\ \ell\Big(\sum_k f_k(X), y\Big) + \frac\beta2\sum_k\big(\|w_{2k}\|_2^2 + w_{3k}^2\big).

**Reduction used here** (derived in ``docs/deep.md``). By Lemma 1 the regularizer of a
sub-network is :math:`\beta\|w_{2k}\|_2|w_{3k}|`. With :math:`s_j = \operatorname{sign}(w_{2j})`,
:math:`\sigma = \operatorname{sign}(w_3)` and :math:`q_j = |w_3|\,|w_{2j}|\,w_{1j}`, positive
homogeneity gives :math:`f = \sigma(\sum_j s_j (X_a q_j)_+)_+`, and Cauchy-Schwarz with
:math:`\|W_1\|_F \le 1` gives :math:`\|w_2\||w_3| \ge \sum_j \|q_j\|_2`, with equality for the
balanced network of Proposition 1 below. So (4) equals

.. math::

    \min\ \ell\Big(\sum_k \sigma_k \Big(\sum_{j=1}^{m_1} s_{kj} (X_a q_{kj})_+\Big)_+, y\Big)
    + \beta \sum_{k,j} \|q_{kj}\|_2 .

Fixing the first-layer patterns :math:`D_{1j}` with signs :math:`s_j` (a row of
:class:`~convexnn.arrangements.layers.NeuronCombos`: the index :math:`i` of (12)), the
second-layer pattern :math:`D_2` (index :math:`l`) and the output sign :math:`\sigma` (the
:math:`\mathbf w'` / :math:`\mathbf w` split of (12)) linearizes both ReLUs; one block of leaf
vectors :math:`q_{ilj}^\sigma` per triple gives program (12):

.. math::

    \min_{q \in \mathcal C}\ \ell\Big(\sum_{\sigma, i, l}\sigma D_{2l}\sum_j s_{ij} D_{1ij} X_a
    q^\sigma_{ilj},\ y\Big) + \beta\sum_{\sigma,i,l,j}\|q^\sigma_{ilj}\|_2,

    \mathcal C:\ (2D_{1ij} - I)X_a q^\sigma_{ilj} \ge 0,\qquad
    (2D_{2l} - I)\sum_j s_{ij} D_{1ij} X_a q^\sigma_{ilj} \ge 0 .

The lifted matrix :math:`\tilde X` of Theorem 1 is the block row
:math:`[\sigma D_{2l} s_{ij} D_{1ij} X_a]_{\sigma,i,l,j}`; the group norm is the
:math:`d'`-dimensional :math:`\|\cdot\|_{2,1}`. Every feasible point is a network (the
constraints make :math:`D_{1}X_a q = (X_a q)_+` and :math:`D_2 z = (z)_+`), so the value is an
upper bound on :math:`P^*` for any pattern set, and equals it when the sets are complete
(and :math:`K \ge K^* \le n + 1`).

**Second-layer patterns.** ``second_patterns="complete"`` uses, for every tuple :math:`i`, the
canonical masks :math:`(A_i\setminus B_i)\cup T`, :math:`T \subseteq A_i\cap B_i`, where
:math:`A_i` (:math:`B_i`) is the union of the positive (negative) neurons' masks: on rows
outside :math:`A_i` the pre-activation is :math:`\le 0`, on :math:`A_i\setminus B_i` it is
:math:`\ge 0`, so every network's second layer is covered -- exact with exact first-layer
patterns, no second-layer enumeration needed. A :class:`~convexnn.LayerPatterns` (sampled per
Remark 3 or exact by composition) gives the product structure of (12) (every tuple with every
mask).

**Proposition 1 (explicit map).** For a block with leaves :math:`q_j`, signs :math:`s_j`, output
sign :math:`\sigma` and :math:`r = \sum_j\|q_j\|_2 > 0`:

.. math::

    w_{1j} = \frac{q_j}{\sqrt{r\,\|q_j\|_2}}\ (0 \text{ if } q_j = 0),\qquad
    w_{2j} = s_j\sqrt{\|q_j\|_2},\qquad w_3 = \sigma\sqrt r .

Then :math:`\|W_1\|_F^2 = 1`, :math:`|w_{2j}|\,w_{1j}\,|w_3| = q_j` so :math:`f = \sigma(z)_+`,
and :math:`\tfrac\beta2(\|w_2\|^2 + w_3^2) = \beta r`: the network's objective (4) equals the
convex objective.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import cvxpy as cp

import numpy as np
import scipy.sparse as sp

from convexnn.arrangements.combos import (
    NeuronCombos,
    canonical_second_masks,
    canonical_second_count,
    first_layer_combos,
)
from convexnn.arrangements.layer_patterns import LayerPatterns
from convexnn.arrangements.patterns import Patterns
from convexnn.data import check_bool, check_lam, check_Xy
from convexnn.errors import InputError, SolverError, TooLargeError
from convexnn.formulations.formulation import ConvexSolution, Formulation, default_solver
from convexnn.formulations.losses import Loss, get_loss
from convexnn.certificate import Certificate
from convexnn import rounding

__all__ = ["ThreeLayerFormulation", "three_layer", "three_layer_gap", "ThreeLayerCertificate"]

DEFAULT_MAX_SIZE = 3_000_000


class ThreeLayerFormulation(Formulation):
    r"""Program (12) of Ergen & Pilanci (ICML 2021) (see the module docstring).

    Weights: ``{"U": (B, m, d')}`` -- block ``b`` holds the leaf vectors :math:`q_{bj}` of one
    (output sign, tuple, second-layer mask) triple, described by ``node_sigma[b]``,
    ``node_masks[:, b]``, ``leaf_pattern[b*m + j]`` and ``leaf_sign[b*m + j]``.
    Named constraints: ``"cone_first"`` (shape ``(n, B*m)``) and ``"cone_second"`` (``(n, B)``).
    """

    kind = "three_layer"

    def __init__(self, *, X: np.ndarray, Xa: np.ndarray, y: np.ndarray, loss: Loss, patterns: Patterns, bias: bool,
                 lam: float, structure: dict[str, Any], combos: Any, meta: dict[str, Any], t0: float) -> None:
        """Assemble program (12) from its block structure (built by :func:`three_layer`)."""
        self.patterns, self.Xa = patterns, Xa
        self._set_structure(**structure)
        lamp = cp.Parameter(nonneg=True, value=lam, name="lam")
        U = cp.Variable((Xa.shape[1], self.leaf_pattern.size), name="U")
        XU = Xa @ U
        cone1 = cp.multiply(self._S1, XU) >= 0
        cone2 = cp.multiply(self._S2, cp.multiply(self._G1, XU) @ self._agg) >= 0
        pred = cp.sum(cp.multiply(self._G, XU), axis=1)
        reg = cp.sum(cp.norm(U, 2, axis=0))
        problem = cp.Problem(cp.Minimize(loss.cvx(pred, y) + lamp * reg), [cone1, cone2])
        super().__init__(problem, lamp, X=X, Xa=Xa, y=y, loss=loss, patterns=patterns, bias=bias,
                         variables={"U": U}, constraints={"cone_first": cone1, "cone_second": cone2},
                         meta={**meta, "build_time": time.perf_counter() - t0})
        self.combos = combos

    def _set_structure(self, *, m: int, m1: int, node_sigma: np.ndarray, node_masks: np.ndarray,
                       leaf_pattern: np.ndarray, leaf_sign: np.ndarray, exact: bool) -> None:
        M1 = np.asarray(self.patterns.masks, dtype=float)
        self.m, self.m1, self.exact = int(m), int(m1), bool(exact)
        self.node_sigma, self.node_masks = node_sigma, node_masks
        self.leaf_pattern, self.leaf_sign = leaf_pattern, leaf_sign
        n_nodes = node_sigma.size
        self.leaf_node = np.repeat(np.arange(n_nodes), m)
        self._S1 = (2.0 * M1 - 1.0)[:, leaf_pattern]
        self._G1 = M1[:, leaf_pattern] * leaf_sign
        self._S2 = 2.0 * node_masks - 1.0
        self._G = self._G1 * (node_masks * node_sigma)[:, self.leaf_node]
        self._agg = sp.csr_matrix((np.ones(self.leaf_node.size), (np.arange(self.leaf_node.size), self.leaf_node)),
                                  shape=(self.leaf_node.size, n_nodes))

    @property
    def n_blocks(self) -> int:
        return int(self.node_sigma.size)

    def _leaves(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        U = np.asarray(weights["U"], dtype=float)
        if U.shape != (self.n_blocks, self.m, self.Xa.shape[1]):
            raise InputError(f"weights['U'] must have shape {(self.n_blocks, self.m, self.Xa.shape[1])}; "
                             f"got {U.shape}.")
        return U.reshape(-1, U.shape[2]).T  # (d', B*m)

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        U = self.variables["U"].value
        if U is None:
            raise SolverError("the three-layer program has not been solved.")
        return {"U": np.asarray(U).T.reshape(self.n_blocks, self.m, -1).copy()}

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        XU = self.Xa @ self._leaves(weights)
        return np.sum(self._G * XU, axis=1)

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        return float(np.sum(np.linalg.norm(self._leaves(weights), axis=0)))

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        XU = self.Xa @ self._leaves(weights)
        Z = (self._G1 * XU) @ self._agg
        v1 = float(np.max(-self._S1 * XU, initial=0.0))
        v2 = float(np.max(-self._S2 * np.asarray(Z), initial=0.0))
        return max(0.0, v1, v2)

    def network(self, solution: ConvexSolution, *, tol: float = 0.0) -> Any:
        r"""Proposition 1: the :class:`~convexnn.ThreeLayerReLU` of a solution (module docstring).

        Blocks with :math:`r_b \le \mathrm{tol}\cdot\max_b r_b` are dropped (``tol=0``: only
        exact zeros, so the objective is preserved exactly up to the solver's constraint
        violation). Sub-networks narrower than ``m1`` are padded with zero neurons.
        """
        from convexnn.networks.deep import ThreeLayerReLU

        U = np.asarray(solution.weights["U"], dtype=float)  # (B, m, d')
        nq = np.linalg.norm(U, axis=2)  # (B, m)
        r = nq.sum(axis=1)
        rmax = float(r.max()) if r.size else 0.0
        keep = np.flatnonzero(r > tol * rmax) if rmax > 0 else np.zeros(0, int)
        K, dp = keep.size, U.shape[2]
        W1 = np.zeros((K, dp, self.m1))
        w2 = np.zeros((K, self.m1))
        signs = self.leaf_sign.reshape(self.n_blocks, self.m)
        for t, b in enumerate(keep):
            nz = nq[b] > 0
            cols = np.flatnonzero(nz)
            W1[t, :, cols] = (U[b, cols] / np.sqrt(r[b] * nq[b, cols])[:, None])
            w2[t, cols] = signs[b, cols] * np.sqrt(nq[b, cols])
        w3 = self.node_sigma[keep] * np.sqrt(r[keep])
        return ThreeLayerReLU(W1, w2, w3, bias=self.bias)

    def to_network(self, solution: ConvexSolution) -> Any:
        """Proposition 1 mapping with ``tol=0`` (see :meth:`network`)."""
        return self.network(solution)

    # ------------------------------------------------------------------ duality (Remark 3, eq. (6))
    def dual_constraint(self, u: np.ndarray, *, solver: str | None = None) -> float:
        r"""Upper bound on :math:`\max_{\text{blocks}}\ \sup\{u^\top \sigma D_2 z : q \in
        \mathcal C_b,\ \sum_j\|q_j\| \le 1\}`, the left side of the dual constraint (6)
        restricted to this program's blocks.

        Each block's supremum equals, by LP/SOCP duality, :math:`\min_{\alpha_j,\gamma \ge 0}
        \max_j \|X_a^\top(\sigma s_j D_{1j} D_2 u + S_{1j}\alpha_j + s_j D_{1j} S_2\gamma)\|_2`;
        one vectorized SOCP minimizes the largest of them, and the returned value is recomputed
        in numpy from the (clipped) multipliers, so it is a valid upper bound whatever the
        solver's accuracy. Rounding is counted: the entries of :math:`E` are sums of three exact
        signed terms (the pattern matrices hold only :math:`0, \pm 1`), so
        :math:`|\mathrm{fl}(X_a^\top E) - X_a^\top E| \le \gamma_{n+2}\,|X_a|^\top|E|`
        (Higham's :math:`\gamma_k`, :mod:`convexnn.rounding`); the norm of that bound is added and
        both norms are rounded up.
        """
        u = np.asarray(u, dtype=float).reshape(-1)
        n, N_leaf, N_nodes = self.Xa.shape[0], self.leaf_node.size, self.n_blocks
        C = self._G * u[:, None]
        H = self._G1 * self._S2[:, self.leaf_node]
        alpha = cp.Variable((n, N_leaf), nonneg=True)
        gamma = cp.Variable((n, N_nodes), nonneg=True)
        t = cp.Variable()
        E = C + cp.multiply(self._S1, alpha) + cp.multiply(H, gamma @ self._agg.T)
        prob = cp.Problem(cp.Minimize(t), [cp.norm(self.Xa.T @ E, 2, axis=0) <= t])
        name = (solver or default_solver()).upper()
        try:
            with warnings.catch_warnings():
                # An inaccurate multiplier only loosens the bound recomputed below; it never
                # invalidates it, so CVXPY's "may be inaccurate" warning carries no information.
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                prob.solve(solver=name)
        except cp.error.SolverError as exc:
            raise SolverError(f"{name} failed on the three-layer dual constraint: {exc}", solver=name) from exc
        if alpha.value is None or gamma.value is None:
            raise SolverError(f"{name} returned status {prob.status!r} on the dual constraint.",
                              status=prob.status, solver=name)
        a = np.maximum(alpha.value, 0.0)
        g = np.maximum(gamma.value, 0.0)
        Gn = np.asarray(g @ self._agg.T)  # one exact term per entry (agg is one-hot)
        E_num = C + self._S1 * a + H * Gn
        dp = self.Xa.shape[1]
        absE = np.abs(C) + a + np.abs(H) * Gn
        R = rounding.gamma(n + 4) * np.linalg.norm(np.abs(self.Xa).T @ absE, axis=0)
        vals = (np.linalg.norm(self.Xa.T @ E_num, axis=0) * (1.0 + rounding.gamma(dp + 4))
                + R * (1.0 + rounding.gamma(n + dp + 8)))
        return float(np.max(vals, initial=0.0))


@dataclass(kw_only=True)
class ThreeLayerCertificate(Certificate):
    r"""Duality gap of a three-layer candidate relative to the blocks of a program (12): a :class:`convexnn.Certificate`.

    ``gap``, ``rel_gap``, ``is_optimal``, ``verdict`` and the report are those of
    :class:`convexnn.Certificate`: ``gap = max(primal - (lower_bound - primal_error), 0)``,
    ``rel_gap = gap / max(|primal|, 1e-300)`` (:func:`convexnn.gap.relative_gap`),
    ``is_optimal = rigorous and rel_gap <= rtol``.

    Attributes
    ----------
    primal : float
        Objective of the candidate (network objective (4), or convex objective of a solution).
    primal_error : float
        For a network: a bound on the rounding error of ``primal`` plus the regularization its
        first layers add when scaled into :math:`\|W_{1k}\|_F \le 1` (the objective accepts a
        tolerance there). ``0.0`` for a solution.
    lower_bound : float
        The dual value :math:`-\ell^*(-p)` of :math:`p = c\,u`, :math:`u = -\nabla\ell(\hat y)`
        (moved into the conjugate's domain), with the best :math:`c \le \beta/(M + \text{rounding})`,
        its own rounding error subtracted
        (:func:`convexnn.duality.bounds.feasible_dual_value`): :math:`p` is feasible for the dual
        (6) restricted to the blocks. ``dual`` is the same number (read-only).
    dual_point : ndarray of shape (n,)
        The point :math:`p`.
    dual_constraint : float
        :math:`M`, the rigorous upper bound on the dual constraint's left side at :math:`u`
        (compare with ``beta``).
    beta : float
        The regularization :math:`\beta` (read-only, ``= lam``).
    exact : bool
        True when the program's patterns are complete: then ``lower_bound`` is a lower bound on the
        objective of *every* network of architecture (4) (any ``K``), and ``gap`` bounds the
        candidate's suboptimality. False for sampled patterns: ``lower_bound`` only bounds the
        program restricted to those patterns (an upper bound on :math:`P^*`), not the true optimum.
    rigorous : bool
        ``exact`` and the candidate is a network: then ``gap`` is a proof. A convex solution's
        objective is evaluated at a point that meets the cone constraints only to the solver's
        accuracy, so it is not the objective of a network; certify its network
        (``three_layer_gap(f, sol.to_network())``) for a proof. ``note`` says which case holds.
    note : str
    """

    family: ClassVar[str] = "three-layer ReLU network"

    dual_constraint: float
    dual_point: np.ndarray | None = None
    rigorous: bool = False
    method: str = "three_layer_gap"

    @property
    def dual(self) -> float:
        """The lower bound (dual value), ``= lower_bound``."""
        return self.lower_bound

    @property
    def beta(self) -> float:
        r"""The regularization :math:`\beta`, ``= lam``."""
        return self.lam

    def _details(self) -> list[str]:
        return [f"  dual constraint M/beta       {self.dual_constraint / self.lam if self.lam else float('inf'):.6g}"
                f"   ({'complete' if self.exact else 'sampled'} patterns)"]


def three_layer_gap(formulation: ThreeLayerFormulation, candidate: Any = None, *,
                    solver: str | None = None, rtol: float = 1e-6) -> ThreeLayerCertificate:
    r"""Duality gap / certificate for a three-layer network (Ergen & Pilanci (ICML 2021) dual (6), Remark 3).

    Parameters
    ----------
    formulation : ThreeLayerFormulation
    candidate : ConvexSolution or ThreeLayerReLU, optional
        Default: ``formulation.last_solution``. A network (e.g. trained by SGD) is evaluated
        with its own objective (4); it must satisfy :math:`\|W_{1k}\|_F \le 1`.
    solver : str, optional
        Solver for the dual-constraint SOCP (:meth:`ThreeLayerFormulation.dual_constraint`).
    rtol : float
        Relative gap reported as the tolerance of the certificate, in (0, 1).

    Returns
    -------
    ThreeLayerCertificate
        Weak duality gives ``lower_bound <= value of the program``; with complete patterns that
        value is the infimum of (4) over all networks, so ``gap`` bounds the candidate's
        suboptimality, rounding errors counted (a proof, ``rigorous=True``, for a network
        candidate).
    """
    from convexnn.networks.deep import ThreeLayerReLU

    if not isinstance(formulation, ThreeLayerFormulation):
        raise InputError("three_layer_gap needs a ThreeLayerFormulation (from convexnn.three_layer).")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < 1:
        raise InputError(f"rtol must be a number in (0, 1); got {rtol!r}.")
    f = formulation
    beta = f.lam_value
    if candidate is None:
        candidate = f.last_solution
        if candidate is None:
            raise InputError("no candidate given and the formulation has not been solved.")
    from convexnn.duality.bounds import feasible_dual_value, row_norm_bounds

    is_net = isinstance(candidate, ThreeLayerReLU)
    if isinstance(candidate, ConvexSolution):
        pred = candidate.fit
        primal = candidate.objective()
        err = 0.0
    elif is_net:
        if candidate.bias and not f.bias:
            raise InputError("the network has a hidden bias but the program has bias=False: its lower bound "
                             "does not cover such networks.")
        pred = candidate.predict(f.X)
        primal = candidate.objective(f.X, f.y, beta, f.loss)
        err = _network_objective_error(candidate, candidate.design(f.X), pred, f.y, beta, f.loss)
    else:
        raise InputError(f"candidate must be a ConvexSolution or a ThreeLayerReLU; got {type(candidate).__name__}.")
    u = f.loss.project_dual(-np.asarray(f.loss.grad(pred, f.y), dtype=np.float64), f.y)
    M = f.dual_constraint(u, solver=solver)
    # the best feasible multiple of u; M is sublinear and M(e) <= sum_i |e_i| ||x_i|| (|z_i| <= ||x_i||
    # when sum_j ||q_j|| <= 1), so the rounding of the scaled point is covered as for two layers
    dual, point = feasible_dual_value(f.loss, u, f.y, beta, M, row_norm_bounds(f.Xa))
    if not f.exact:
        note = ("relative to the sampled patterns only: `lower_bound` lower-bounds the restricted program (12), "
                "which is itself an upper bound on the true optimum; this is not a global certificate")
    elif not is_net:
        note = ("global: the patterns are complete, so `lower_bound` lower-bounds every three-layer network (4); "
                "the candidate is a convex solution (cone constraints met to the solver's accuracy), not a "
                "network: certify three_layer_gap(f, sol.to_network()) for a proof")
    else:
        note = ("global: the patterns are complete, so `lower_bound` lower-bounds every three-layer network (4), "
                "rounding errors counted")
    return ThreeLayerCertificate(primal=float(primal), primal_error=float(err), lower_bound=float(dual),
                                 lam=float(beta), rtol=float(rtol), exact=bool(f.exact), rigorous=bool(f.exact and is_net),
                                 dual_constraint=float(M), dual_point=point,
                                 bound_method="complete blocks" if f.exact else "sampled blocks", note=note)


def _network_objective_error(net: Any, Xa: np.ndarray, pred: np.ndarray, y: np.ndarray, beta: float,
                             loss: Loss) -> float:
    r"""Bound on :math:`|\text{objective (4) as evaluated} - P(\text{net})|` over architecture (4).

    Predictions: every layer is a sum of products followed by an exact ReLU (1-Lipschitz), so
    :math:`|\mathrm{fl}(\hat y_i) - \hat y_i| \le \gamma_k \sum_k|w_{3k}|\sum_j|w_{2kj}|\,|x_i|^\top|W_{1kj}|`
    with :math:`k` the depth of the sums (Higham, :mod:`convexnn.rounding`); the loss adds its
    slope times that plus its own rounding (:meth:`Loss.slope_bound`, :meth:`Loss.value_error`),
    the regularizer :math:`\gamma` times its value. The objective accepts
    :math:`\|W_{1k}\|_F \le 1 + \text{tol}`; the same function inside the architecture (scale
    :math:`W_{1k}` by :math:`1/c_k`, :math:`w_{2k}` by :math:`c_k`, :math:`c_k = \max(1, \|W_{1k}\|_F)`)
    costs :math:`\tfrac\beta2\sum_k (c_k^2 - 1)\|w_{2k}\|^2` more, which is added.
    """
    K, dp, m1 = net.W1.shape
    absp = np.einsum("nd,kdm,km,k->n", np.abs(Xa), np.abs(net.W1), np.abs(net.w2), np.abs(net.w3))
    e = rounding.gamma(2 * (dp + m1 + K) + 8) * absp
    err = float(np.sum(loss.slope_bound(pred, y, e) * e)) + loss.value_error(pred, y)
    err += beta * net.regularizer() * rounding.gamma(2 * K * (m1 + 1) + 8)
    c2 = np.maximum(np.sum(net.W1 ** 2, axis=(1, 2)) * (1.0 + rounding.gamma(dp * m1 + 4)), 1.0)
    err += 0.5 * beta * float(np.sum((c2 - 1.0) * np.sum(net.w2 ** 2, axis=1))) * (1.0 + rounding.gamma(K * m1 + 8))
    return err + 1e-300


def three_layer_size(n: int, d: int, n_blocks: int, m: int) -> dict[str, int]:
    """Variables and constraint rows of program (12) with ``n_blocks`` blocks of ``m`` leaves."""
    n_var = n_blocks * m * d
    n_con = n * n_blocks * (m + 1)
    return {"variables": n_var, "constraints": n_con, "blocks": n_blocks, "estimate": n_var + n_con}


def three_layer(
    X: Any,
    y: Any,
    first_patterns: Patterns | NeuronCombos,
    second_patterns: LayerPatterns | str,
    lam: float,
    *,
    m1: int,
    loss: str | Loss = "squared",
    bias: bool | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    max_combos: int = 200_000,
) -> ThreeLayerFormulation:
    r"""Build program (12) of Ergen & Pilanci (ICML 2021) for three-layer ReLU sub-networks of width ``m1``.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array, shape (n,)
        Scalar output (labels in ``{-1, +1}`` for ``"logistic"`` / ``"hinge"``).
    first_patterns : Patterns or NeuronCombos
        First-layer patterns. A :class:`~convexnn.Patterns` gives every tuple of ``m1`` distinct
        (pattern, sign) pairs (:func:`~convexnn.arrangements.layers.first_layer_combos`; exact
        when the patterns are); :class:`~convexnn.arrangements.layers.NeuronCombos` (e.g.
        :func:`~convexnn.arrangements.layers.sample_combos`, Ergen & Pilanci (ICML 2021) Remark 3) gives the tuples.
    second_patterns : LayerPatterns, "complete" or "matched"
        Second-layer masks used with every tuple (product structure of (12)); ``"complete"``:
        the canonical masks of each tuple (exact, see module docstring); ``"matched"``: each
        sampled tuple with the mask it was sampled with (``NeuronCombos.second``; Remark 3 with
        one block per random network -- much smaller, never exact).
    lam : float
        :math:`\beta > 0`, stored as the nonnegative ``cp.Parameter`` ``.lam``.
    m1 : int
        Width of the first hidden layer of each sub-network.
    loss : {"squared", "logistic", "hinge"} or Loss
    bias : bool, optional
        Defaults to the first-layer patterns' ``bias``.
    max_size : int
        Refuse (:class:`TooLargeError`) when variables + constraint rows exceed this.
    max_combos : int
        Limit on the number of tuples enumerated from a :class:`Patterns`.

    Returns
    -------
    ThreeLayerFormulation
        ``.solve()`` gives a :class:`ConvexSolution`; ``.to_network()`` the
        :class:`~convexnn.ThreeLayerReLU` of Proposition 1 with the same objective;
        :func:`three_layer_gap` a duality gap.

    Raises
    ------
    InputError
        Bad data, vector ``y``, ``lam <= 0``, ``m1 < 1``, patterns of another ``X`` or bias.
    TooLargeError
        When the estimated size exceeds ``max_size`` (the message names the estimate).
    """
    t0 = time.perf_counter()
    lo = get_loss(loss)
    Xc, yc = check_Xy(X, y, loss=lo.name)
    if yc.ndim != 1:
        raise InputError(f"three_layer supports scalar outputs only; y has shape {yc.shape}.")
    lam_value = check_lam(lam)
    if not isinstance(m1, (int, np.integer)) or int(m1) < 1:
        raise InputError(f"m1 must be a positive integer; got {m1!r}.")
    m1 = int(m1)
    matched = isinstance(second_patterns, str) and second_patterns == "matched"
    complete = isinstance(second_patterns, str) and not matched
    if complete and second_patterns != "complete":
        raise InputError(f"second_patterns must be a LayerPatterns, 'complete' or 'matched'; got "
                         f"{second_patterns!r}.")
    if not (complete or matched) and not isinstance(second_patterns, LayerPatterns):
        raise InputError(f"second_patterns must be a LayerPatterns or 'complete'; got "
                         f"{type(second_patterns).__name__}.")
    if isinstance(first_patterns, NeuronCombos):
        combos = first_patterns
        pat = combos.patterns
        if combos.width > m1:
            raise InputError(f"the tuples have {combos.width} neurons but m1={m1}.")
    elif isinstance(first_patterns, Patterns):
        pat = first_patterns
        combos = None
    else:
        raise InputError(f"first_patterns must be Patterns or NeuronCombos; got {type(first_patterns).__name__}.")
    b = pat.bias if bias is None else check_bool(bias, "bias")
    if b != pat.bias:
        raise InputError(f"bias={b} but the first-layer patterns were built with bias={pat.bias}.")
    Xa = pat.check(Xc)
    n, dp = Xa.shape
    if combos is None:
        n_pairs = 2 * int(np.asarray(pat.masks).any(axis=0).sum())
        m_eff = min(m1, max(n_pairs, 1))
        total = math.comb(n_pairs, m_eff) if n_pairs else 0
        if total * m_eff * (n + dp) > max_size:
            raise TooLargeError(
                f"three_layer: {total} first-layer tuples (C({n_pairs}, {m_eff})) give an estimated "
                f"size of at least {total * m_eff * (n + dp)} > max_size={max_size}; sample tuples with "
                "sample_combos (Ergen & Pilanci (ICML 2021) Remark 3) or raise max_size.", estimate=total * m_eff * (n + dp),
                limit=max_size)
        combos = first_layer_combos(pat, m1, mixed_signs_only=complete, max_combos=max_combos)
    M1 = np.asarray(pat.masks)
    m = combos.width
    if matched:
        if combos is None or combos.second is None:
            raise InputError("second_patterns='matched' needs NeuronCombos that carry their own second-layer "
                             "masks (from sample_combos or network_combos).")
        sec = np.asarray(combos.second, dtype=bool)
        live = sec.any(axis=0)
        n_cl = int(live.sum())
    elif not complete:
        second_patterns.check(Xc)
        if second_patterns.level != 2:
            raise InputError(f"second_patterns must be layer-2 patterns; got level {second_patterns.level}.")
        if second_patterns.bias != b:
            raise InputError("the second-layer patterns were built with another bias setting.")
        n_cl = len(combos) * len(second_patterns)
    else:
        n_cl = canonical_second_count(M1, combos)
    size = three_layer_size(n, dp, 2 * n_cl, m)
    if size["estimate"] > max_size:
        raise TooLargeError(
            f"three_layer: program (12) would have {size['variables']} variables and "
            f"{size['constraints']} constraint rows ({size['blocks']} blocks; estimated size "
            f"{size['estimate']} > max_size={max_size}). Use fewer/sampled patterns "
            "(sample_combos, second_layer_patterns(method='sample')) or raise max_size.",
            estimate=size["estimate"], limit=max_size)
    if n_cl == 0:
        raise InputError("the pattern sets give no block (no tuple with a positive neuron or no nonzero mask).")
    if complete:
        cid, masks2 = canonical_second_masks(M1, combos)
    elif matched:
        cid = np.flatnonzero(live)
        masks2 = sec[:, live]
    else:
        P2 = len(second_patterns)
        cid = np.repeat(np.arange(len(combos)), P2)
        masks2 = np.tile(np.asarray(second_patterns.masks), (1, len(combos)))
    node_combo = np.concatenate([cid, cid])
    node_sigma = np.concatenate([np.ones(cid.size), -np.ones(cid.size)])
    node_masks = np.hstack([masks2, masks2]).astype(float)
    leaf_pattern = combos.index[node_combo].reshape(-1)
    leaf_sign = combos.signs[node_combo].reshape(-1)
    exact = bool(pat.exact and combos.exact and not matched and (complete or second_patterns.exact))

    meta = {"size": size, "n_combos": len(combos), "m1": m1, "exact": exact,
            "second": second_patterns if isinstance(second_patterns, str) else second_patterns.kind}
    return ThreeLayerFormulation(
        X=Xc, Xa=Xa, y=yc, loss=lo, patterns=pat, bias=b, lam=lam_value, combos=combos, meta=meta, t0=t0,
        structure=dict(m=m, m1=m1, node_sigma=node_sigma, node_masks=node_masks, leaf_pattern=leaf_pattern,
                       leaf_sign=leaf_sign, exact=exact))
