r"""The set of all optimal networks as a polytope (Mishkin & Pilanci (ICML 2023) "C-ReLU: the Optimal Set", "Optimal Pruning").

For a solved C-ReLU program with optimal fit :math:`\hat y` and block correlations :math:`q_i`
(:func:`convexnn.kkt`), every optimal block is :math:`\theta_i = \alpha_i q_i` with
:math:`\alpha_i \ge 0`, nonzero only on blocks with :math:`\|q_i\| = \lambda` (Mishkin & Pilanci (ICML 2023), Proposition;
Mishkin (PhD thesis, Stanford) bonus "Explicit Optimal Set"), and the optimal set in :math:`\alpha`-space is the polytope

.. math::

    \mathcal P = \Big\{\alpha \ge 0 : \sum_{i \in \mathcal E} \sigma_i D_i X_a q_i\,\alpha_i = \hat y\Big\},

with :math:`\sigma_i = +1` for :math:`v`-blocks and :math:`-1` for :math:`w`-blocks. Each
:math:`\alpha \in \mathcal P` is the network with neurons
:math:`W_{1i} = (\alpha_i/\lambda)^{1/2} q_i`, :math:`w_{2i} = \sigma_i(\alpha_i\lambda)^{1/2}`
(Mishkin & Pilanci (ICML 2023) Theorem), objective :math:`\ell(\hat y) + \lambda^2\sum_i\alpha_i`.

Numerically (a solver's :math:`\hat y` is accurate only to its tolerance) the blocks are built
from the **projections** :math:`q_i = \Pi_{\mathcal K_i}(\sigma_i X_a^\top D_i r)` (one NNLS each;
they satisfy the cone and complementary-slackness conditions of the explicit optimal set
exactly), normalized to :math:`\|q_i\| = \lambda`; :math:`\mathcal E` holds the blocks with
:math:`\|q_i\| \ge (1 - \text{tol})\lambda` and the solution's support; the right-hand side is
:math:`\hat y := B\alpha^0` at the solution's own :math:`\alpha^0`, and the identity
:math:`\sum_i\alpha_i = \langle r, \hat y\rangle/\lambda^2` (true on the exact optimal set, by
complementary slackness) is added as an explicit equality so that every point has *exactly* the
same fit and objective. Blocks of different patterns with the same :math:`(q_i, \sigma_i)` (a
neuron on a common face of two cones) are the same network neuron and are merged, so
:meth:`OptimalSet.is_unique` means unique up to permutation/split symmetries (Mishkin & Pilanci (ICML 2023) Theorem).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linprog

from convexnn.backend import NUMPY
from convexnn.data import check_seed, check_solution
from convexnn.errors import InputError, SolverError
from convexnn.formulations.formulation import ConvexSolution
from convexnn.formulations.penalties import require_group_l2
from convexnn.solvers.operators import MaskedDesign
from convexnn.duality.cones import project_cone
from convexnn.duality.pruning import prune_columns

__all__ = ["OptimalSet", "optimal_set"]


@dataclass
class OptimalSet:
    r"""The optimal set :math:`\{\alpha \ge 0 : B\alpha = \hat y,\ \mathbf 1^\top\alpha = t\}` of a C-ReLU program.

    Attributes
    ----------
    lam : float
    Xa : ndarray, shape (n, d')
    y : ndarray, shape (n,)
    blocks : ndarray of int, shape (k,)
        Candidate blocks (``i`` for :math:`v_i`, ``P + i`` for :math:`w_i`), the set :math:`\mathcal E`.
    patterns : ndarray of int, shape (k,)
        Pattern index of each block.
    signs : ndarray, shape (k,)
        :math:`\sigma_i`.
    Q : ndarray, shape (k, d')
        Block correlations :math:`q_i` (rows, :math:`\|q_i\| = \lambda`).
    B : ndarray, shape (n, k)
        Columns :math:`\sigma_i D_i X_a q_i` (computed as :math:`\sigma_i (X_a q_i)_+`).
    alpha0 : ndarray, shape (k,)
        The solution's own point.
    fit : ndarray, shape (n,)
        :math:`\hat y = B\alpha^0`.
    total : float
        :math:`\sum_i \alpha^0_i`.
    bias : bool
    """

    lam: float
    Xa: np.ndarray
    y: np.ndarray
    loss: Any
    blocks: np.ndarray
    patterns: np.ndarray
    signs: np.ndarray
    Q: np.ndarray
    B: np.ndarray
    alpha0: np.ndarray
    fit: np.ndarray
    total: float
    bias: bool
    _vertices: np.ndarray | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ networks
    def network(self, alpha: np.ndarray) -> Any:
        r"""The network of a point :math:`\alpha` (neurons :math:`(\alpha_i/\lambda)^{1/2}q_i`, :math:`\sigma_i(\alpha_i\lambda)^{1/2}`)."""
        from convexnn.networks.two_layer import TwoLayerReLU

        a = np.asarray(alpha, dtype=np.float64)
        if a.shape != self.alpha0.shape:
            raise InputError(f"alpha must have shape {self.alpha0.shape}; got {a.shape}.")
        keep = a > 0
        W1 = (self.Q[keep] * np.sqrt(a[keep] / self.lam)[:, None]).T
        w2 = self.signs[keep] * np.sqrt(a[keep] * self.lam)
        return TwoLayerReLU(W1, w2, bias=self.bias)

    def objective(self, alpha: np.ndarray) -> float:
        r""":math:`\ell(B\alpha) + \lambda^2\sum_i\alpha_i` (the objective of :meth:`network`)."""
        a = np.asarray(alpha, dtype=np.float64)
        return self.loss.value(self.B @ a, self.y) + self.lam ** 2 * float(a.sum())

    def contains(self, alpha: np.ndarray, tol: float = 1e-7) -> bool:
        """Whether ``alpha`` lies in the polytope (relative tolerance ``tol``)."""
        a = np.asarray(alpha, dtype=np.float64)
        scale = max(float(np.linalg.norm(self.fit)), 1.0)
        return bool(a.min() >= -tol * max(self.total, 1.0) and np.linalg.norm(self.B @ a - self.fit) <= tol * scale
                    and abs(a.sum() - self.total) <= tol * max(self.total, 1.0))

    # ------------------------------------------------------------------ LPs
    def _lp(self, c: np.ndarray) -> np.ndarray:
        Aeq = np.vstack([self.B, np.ones((1, self.B.shape[1]))])
        beq = np.append(self.fit, self.total)
        res = linprog(c, A_eq=Aeq, b_eq=beq, bounds=(0, None), method="highs")
        if res.status != 0:
            raise SolverError(f"LP over the optimal set failed: {res.message}", status=str(res.status), solver="HIGHS")
        x = np.maximum(res.x, 0.0)
        # polish onto the active columns so the fit is exact up to least squares
        act = x > 1e-12 * max(self.total, 1.0)
        if act.any():
            sol, *_ = np.linalg.lstsq(Aeq[:, act], beq, rcond=None)
            if np.all(sol >= 0):
                x = np.zeros_like(x)
                x[act] = sol
        return x

    def is_unique(self, tol: float = 1e-8) -> bool:
        r"""Whether the optimal set is a single point (up to permutation/split symmetries).

        True iff the columns :math:`[B;\mathbf 1^\top]` on the support of :math:`\alpha^0` are
        linearly independent (no direction inside the support) and the LP
        :math:`\max\sum_{j\notin\operatorname{supp}\alpha^0}\alpha_j` over :math:`\mathcal P` is 0.
        """
        supp = self.alpha0 > tol * max(self.total, 1e-300)
        Aeq = np.vstack([self.B, np.ones((1, self.B.shape[1]))])
        cols = Aeq[:, supp]
        if cols.shape[1]:
            cn = cols / np.linalg.norm(cols, axis=0)
            s = np.linalg.svd(cn, compute_uv=False)
            if cols.shape[1] > cols.shape[0] or s[-1] < 1e-9:
                return False
        if (~supp).any():
            c = np.where(supp, 0.0, -1.0)
            x = self._lp(c)
            if float(x[~supp].sum()) > 1e-7 * max(self.total, 1e-300):
                return False
        return True

    @property
    def vertices(self) -> np.ndarray:
        r"""Vertices of :math:`\mathcal P` (rows), each the solution of an LP.

        Found by minimizing and maximizing every coordinate (``2k`` LPs, at most 200, plus the
        minimal model of :meth:`minimal_model`); all vertices when the polytope has at most that
        many extreme points reached this way (in general a subset: vertex enumeration is
        exponential).
        """
        if self._vertices is None:
            k = self.B.shape[1]
            found = [self.minimal_alpha()]
            rng = np.random.default_rng(0)
            coords = np.arange(k) if 2 * k <= 200 else rng.choice(k, 100, replace=False)
            for j in coords:
                for s in (1.0, -1.0):
                    c = np.zeros(k)
                    c[j] = s
                    found.append(self._lp(c + 1e-9 * rng.standard_normal(k)))
            V = np.array(found)
            keyed = np.round(V / max(self.total, 1e-300), 8)
            _, first = np.unique(keyed, axis=0, return_index=True)
            self._vertices = V[np.sort(first)]
        return self._vertices

    def sample_alphas(self, k: int, seed: int | None = None) -> np.ndarray:
        """``k`` random points of the polytope (random convex combinations of LP vertices), rows."""
        rng = check_seed(seed)
        kk = self.B.shape[1]
        verts = [self.alpha0]
        for _ in range(min(max(k, 2), 20)):
            verts.append(self._lp(rng.standard_normal(kk)))
        V = np.array(verts)
        W = rng.dirichlet(np.ones(len(V)), size=k)
        return W @ V

    def sample(self, k: int, seed: int | None = None) -> list[Any]:
        """``k`` random optimal networks (same fit and objective, different weights)."""
        return [self.network(a) for a in self.sample_alphas(k, seed)]

    def minimal_alpha(self, rtol: float = 1e-9) -> np.ndarray:
        """A vertex of the polytope reached from :math:`\\alpha^0` by the Mishkin & Pilanci (ICML 2023) pruning algorithm."""
        f = prune_columns(self.B * self.alpha0[None, :], self.alpha0.copy(), rtol=rtol)
        return self.alpha0 * f

    def minimal_model(self, rtol: float = 1e-9) -> Any:
        """The minimal (sparsest) optimal network reached from the solution (Mishkin & Pilanci (ICML 2023)): at most ``n`` neurons."""
        return self.network(self.minimal_alpha(rtol))

    def __str__(self) -> str:
        return (f"OptimalSet(lam={self.lam:.6g}, {self.B.shape[1]} candidate blocks, "
                f"solution support {int(np.count_nonzero(self.alpha0))}, objective {self.objective(self.alpha0):.10g})")


def optimal_set(solution: ConvexSolution, *, tol: float = 1e-6) -> OptimalSet:
    r"""The optimal set of a solved C-ReLU program, as a polytope in :math:`\alpha`-space (Mishkin & Pilanci (ICML 2023)).

    Parameters
    ----------
    solution : ConvexSolution
        Of :func:`convexnn.c_relu` (scalar output).
    tol : float
        Blocks with :math:`\|q_i\| \ge (1 - \text{tol})\lambda` are candidates (solver accuracy).

    Returns
    -------
    OptimalSet
    """
    f = check_solution(solution, "optimal_set").formulation
    if f.kind != "c_relu":
        raise InputError(f"optimal_set() needs a C-ReLU solution; got {f.kind!r}.")
    if np.ndim(f.y) != 1:
        raise InputError("optimal_set() supports scalar outputs only.")
    require_group_l2(f, "optimal_set()")
    lam = float(solution.lam)
    Xa = f.Xa
    masks = np.asarray(f.patterns.masks, dtype=np.float64)
    P = masks.shape[1]
    fit = np.asarray(solution.fit, dtype=np.float64)
    r = -f.loss.grad(fit, f.y)
    G = MaskedDesign(Xa, masks, NUMPY).adjoint(r)  # (P, d'): X_a^T D_i r
    V = np.asarray(solution.weights["V"], dtype=np.float64)
    W = np.asarray(solution.weights["W"], dtype=np.float64)
    theta = np.vstack([V, W])
    tn = np.linalg.norm(theta, axis=1)
    top = float(tn.max()) if tn.size else 0.0
    in_support = tn > 1e-6 * top if top > 0 else np.zeros(2 * P, dtype=bool)
    # cheap screen: ||Pi_K(g)|| <= ||g||
    gn = np.linalg.norm(G, axis=1)
    cand = np.flatnonzero(np.concatenate([gn, gn]) >= (1 - tol) * lam) if P else np.zeros(0, dtype=int)
    cand = np.union1d(cand, np.flatnonzero(in_support))
    blocks, pats, sg, Qs = [], [], [], []
    for b in cand:
        i, sigma = (b, 1.0) if b < P else (b - P, -1.0)
        q, _ = project_cone(Xa, 2.0 * masks[:, i] - 1.0, sigma * G[i])
        nq = float(np.linalg.norm(q))
        if nq >= (1 - tol) * lam or (in_support[b] and nq > 0):
            blocks.append(b)
            pats.append(i)
            sg.append(sigma)
            Qs.append(q * (lam / nq))
    # the solution's alpha: theta_i ~ alpha_i q_i with ||q_i|| = lam
    a0 = [tn[b] / lam if in_support[b] else 0.0 for b in blocks]
    # split symmetry: blocks of different patterns with the same neuron (q_i on a common face of
    # two cones) give the same network neuron; merge them so that uniqueness is up to splits
    keep: list[int] = []
    for j in range(len(blocks)):
        for kk in keep:
            if sg[kk] == sg[j] and np.linalg.norm(Qs[kk] - Qs[j]) <= 1e-6 * lam:
                a0[kk] += a0[j]
                break
        else:
            keep.append(j)
    blocks_a = np.array([blocks[j] for j in keep], dtype=int)
    pats = [pats[j] for j in keep]
    Q = np.array([Qs[j] for j in keep]).reshape(len(keep), Xa.shape[1])
    signs = np.array([sg[j] for j in keep])
    alpha0 = np.array([a0[j] for j in keep], dtype=np.float64)
    B = np.maximum(Xa @ Q.T, 0.0) * signs[None, :]
    fit_set = B @ alpha0
    return OptimalSet(lam=lam, Xa=Xa, y=f.y, loss=f.loss, blocks=blocks_a, patterns=np.array(pats, dtype=int),
                      signs=signs, Q=Q, B=B, alpha0=alpha0, fit=fit_set, total=float(alpha0.sum()), bias=f.bias)
