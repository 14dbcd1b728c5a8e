r"""KKT conditions of the C-ReLU / C-GReLU programs: multipliers, block correlations, support.

C-ReLU (Mishkin & Pilanci (ICML 2023), "C-ReLU: Optimality Conditions"; Mishkin (PhD thesis, Stanford) bonus slides), with
:math:`A_i = (2D_i - I)X_a` and :math:`r = -\nabla\ell(\hat y)` (:math:`= y - \hat y` for the squared
loss). The Lagrangian, in CVXPY's sign convention for the constraints
``multiply(S, Xa @ V) >= 0`` (``constraints["cone_v"]``, ``["cone_w"]``; dual values
:math:`\rho^v, \rho^w \ge 0` of shape ``(n, P)``, column ``i`` for pattern ``i``), is

.. math::

    \mathcal L = \ell\Big(\sum_i D_i X_a(v_i - w_i)\Big) + \lambda\sum_i(\|v_i\| + \|w_i\|)
    - \sum_i \langle \rho^v_i, A_i v_i\rangle - \sum_i \langle \rho^w_i, A_i w_i\rangle .

Stationarity in each block reads :math:`q \in \lambda\,\partial\|\cdot\|_2` at the block, with the
**block correlations**

.. math::

    q^v_i = X_a^\top D_i r + A_i^\top \rho^v_i, \qquad
    q^w_i = -X_a^\top D_i r + A_i^\top \rho^w_i .

Hence :math:`\|q_i\| \le \lambda` for every block, :math:`\|q_i\| = \lambda` and
:math:`v_i = \alpha_i q_i` (:math:`\alpha_i \ge 0`) on the support, plus complementary slackness
:math:`\rho_i \odot A_i v_i = 0`. For C-GReLU there is no cone: :math:`q_i = X_a^\top D_i r`.

Without CVXPY dual values (first-order solvers), or with ``recompute=True``, the multipliers are
recomputed as the minimum-norm choice :math:`\rho_i = \arg\min_{\rho\ge0}\|g_i + A_i^\top\rho\|`
(one NNLS per block; :math:`q_i = \Pi_{\mathcal K_i}(g_i)`), which satisfies every condition
above whenever the weights are optimal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convexnn.backend import NUMPY
from convexnn.data import check_solution
from convexnn.errors import InputError
from convexnn.formulations.formulation import ConvexSolution
from convexnn.formulations.penalties import require_group_l2
from convexnn.solvers.operators import MaskedDesign
from convexnn.duality.cones import project_cone

__all__ = ["KKT", "kkt"]


@dataclass
class KKT:
    r"""KKT quantities of a C-ReLU (or C-GReLU) solution.

    Blocks are indexed ``0..P-1`` for :math:`v_i` (positive output weight) and ``P..2P-1`` for
    :math:`w_i` (negative output weight); for C-GReLU only ``0..P-1`` (:math:`u_i`).

    Attributes
    ----------
    kind : str
        ``"c_relu"`` or ``"c_grelu"``.
    lam : float
    fit : ndarray, shape (n,)
        :math:`\hat y`.
    r : ndarray, shape (n,)
        :math:`-\nabla\ell(\hat y)` (the residual :math:`y - \hat y` for the squared loss).
    rho : ndarray, shape (n, 2P) or None
        Multipliers :math:`[\rho^v, \rho^w]` (CVXPY sign convention, nonnegative); ``None`` for C-GReLU.
    Q : ndarray, shape (2P, d') (C-ReLU) or (P, d') (C-GReLU)
        Block correlations :math:`q_i` as rows.
    theta : ndarray, same shape as ``Q``
        The weight blocks :math:`[V; W]` (or :math:`U`).
    support : ndarray of int
        Blocks with :math:`\|\theta_i\| > ` ``support_tol`` times the largest block norm.
    multipliers_from : str
        ``"cvxpy"`` or ``"nnls"``.
    dual_infeasibility : float
        :math:`\max_i (\|q_i\| - \lambda)_+`.
    support_residual : float
        :math:`\max_{i \in S} |\|q_i\| - \lambda|` (diagnostic; not used by :meth:`satisfied`).
    alignment_residual : float
        :math:`\max_{i\in S}\|\theta_i/\|\theta_i\| - q_i/\lambda\|` (0 iff every optimal block is a
        nonnegative multiple of :math:`q_i`; diagnostic, not used by :meth:`satisfied`: it is of
        the order of the *square root* of the solver's accuracy, see ``norm_complementarity``).
    complementary_slackness : float
        :math:`\max_i \|\rho_i \odot A_i\theta_i\|_\infty` (0 for C-GReLU).
    primal_infeasibility : float
        :math:`\max_i \|(A_i\theta_i)_-\|_\infty`.
    dual_negativity : float
        :math:`\max(-\min \rho, 0)`.
    norm_complementarity : float
        :math:`\max_i |\lambda\|\theta_i\| - \langle\theta_i, q_i\rangle| / (\lambda\max_j\|\theta_j\|)`,
        the complementarity of the second-order cone pair :math:`(\lambda, q_i)`,
        :math:`(\|\theta_i\|, \theta_i)`. Together with :math:`\|q_i\| \le \lambda` it is zero
        iff :math:`\|q_i\| = \lambda` and :math:`\theta_i = \alpha_i q_i` on every nonzero block.
        Unlike the two diagnostics above it is linear in the solver's error and continuous as
        a block shrinks to zero: a block of relative size :math:`t` whose direction is off by an
        angle :math:`\varphi` contributes about :math:`t\varphi^2/2`, so the tiny, ill-determined
        blocks interior-point solvers leave behind do not dominate it.
    """

    kind: str
    lam: float
    fit: np.ndarray
    r: np.ndarray
    rho: np.ndarray | None
    Q: np.ndarray
    theta: np.ndarray
    support: np.ndarray
    multipliers_from: str
    dual_infeasibility: float
    support_residual: float
    alignment_residual: float
    complementary_slackness: float
    primal_infeasibility: float
    dual_negativity: float
    norm_complementarity: float = 0.0

    @property
    def q_norms(self) -> np.ndarray:
        r""":math:`\|q_i\|_2` for every block."""
        return np.linalg.norm(self.Q, axis=1)

    @property
    def alpha(self) -> np.ndarray:
        r"""Multiples :math:`\alpha_i = \langle\theta_i, q_i\rangle/\lambda^2` (so :math:`\theta_i \approx \alpha_i q_i`)."""
        return np.einsum("ij,ij->i", self.theta, self.Q) / self.lam ** 2

    @property
    def max_residual(self) -> float:
        r"""Largest KKT residual: :math:`\max_i(\|q_i\| - \lambda)_+/\lambda`, ``norm_complementarity``,
        ``complementary_slackness``, ``primal_infeasibility``, ``dual_negativity``.

        These conditions characterize optimality exactly (stationarity is built into
        :math:`q_i`), and each residual is linear in the solver's error, so a fresh
        interior-point solution has ``max_residual`` of the order of the solver tolerance.
        """
        return max(self.dual_infeasibility / self.lam, self.norm_complementarity,
                   self.complementary_slackness, self.primal_infeasibility, self.dual_negativity)

    def satisfied(self, tol: float = 1e-5) -> bool:
        """True when every KKT residual is at most ``tol`` (see :attr:`max_residual`)."""
        return self.max_residual <= tol

    def __str__(self) -> str:
        return "\n".join([
            f"KKT conditions of a {self.kind} solution (lam = {self.lam:.6g}, multipliers from {self.multipliers_from})",
            f"  support size                     {len(self.support)} of {self.Q.shape[0]} blocks",
            f"  max_i (||q_i|| - lam)_+          {self.dual_infeasibility:.3g}",
            f"  max_(i in S) | ||q_i|| - lam |   {self.support_residual:.3g}",
            f"  alignment theta_i ~ alpha_i q_i  {self.alignment_residual:.3g}",
            f"  norm-cone complementarity        {self.norm_complementarity:.3g}",
            f"  complementary slackness          {self.complementary_slackness:.3g}",
            f"  primal / dual feasibility        {self.primal_infeasibility:.3g} / {self.dual_negativity:.3g}",
        ])


def kkt(solution: ConvexSolution, *, support_tol: float = 1e-6, recompute: bool = False) -> KKT:
    r"""KKT multipliers, block correlations and residuals of a solved C-ReLU / C-GReLU program (Mishkin & Pilanci (ICML 2023)).

    Parameters
    ----------
    solution : ConvexSolution
        From ``c_relu(...).solve()`` / ``c_grelu(...).solve()`` or a first-order solver.
    support_tol : float
        Blocks with norm at most ``support_tol`` times the largest are treated as zero.
    recompute : bool
        Ignore CVXPY's dual values and recompute the minimum-norm multipliers by NNLS.

    Returns
    -------
    KKT

    Raises
    ------
    InputError
        For other program kinds or vector outputs.
    """
    f = check_solution(solution, "kkt").formulation
    if f.kind not in ("c_relu", "c_grelu"):
        raise InputError(f"kkt() supports C-ReLU and C-GReLU solutions; got {f.kind!r}.")
    if np.ndim(f.y) != 1:
        raise InputError("kkt() supports scalar outputs only (y of shape (n,)).")
    require_group_l2(f, "kkt()")
    lam = float(solution.lam)
    Xa = f.Xa
    masks = np.asarray(f.patterns.masks, dtype=np.float64)
    signs = 2.0 * masks - 1.0
    fit = np.asarray(solution.fit, dtype=np.float64)
    r = -f.loss.grad(fit, f.y)
    G = MaskedDesign(Xa, masks, NUMPY).adjoint(r)  # (P, d'): X_a^T D_i r
    P = masks.shape[1]
    if not f.cone_constraints:
        theta = np.asarray(solution.weights["U"], dtype=np.float64)
        Q = G
        rho = None
        src = "none"
        cs = prim = neg = 0.0
    else:
        V = np.asarray(solution.weights["V"], dtype=np.float64)
        W = np.asarray(solution.weights["W"], dtype=np.float64)
        theta = np.vstack([V, W])
        g = np.vstack([G, -G])
        S2 = np.hstack([signs, signs])
        duals = getattr(solution, "duals", None) or {}  # the snapshot taken at this solve
        dv = [duals.get(k) for k in ("cone_v", "cone_w")]
        if recompute or any(d is None for d in dv):
            rho = np.zeros((Xa.shape[0], 2 * P))
            Q = np.empty_like(g)
            for i in range(2 * P):
                Q[i], rho[:, i] = project_cone(Xa, S2[:, i], g[i])
            src = "nnls"
        else:
            rho = np.hstack([np.asarray(dv[0], dtype=np.float64), np.asarray(dv[1], dtype=np.float64)])
            Q = g + (Xa.T @ (S2 * rho)).T
            src = "cvxpy"
        AT = S2 * (Xa @ theta.T)  # (n, 2P): A_i theta_i
        cs = float(np.max(np.abs(rho * AT))) if AT.size else 0.0
        prim = float(max(-AT.min(), 0.0)) if AT.size else 0.0
        neg = float(max(-rho.min(), 0.0)) if rho.size else 0.0
    tn = np.linalg.norm(theta, axis=1)
    qn = np.linalg.norm(Q, axis=1)
    top = float(tn.max()) if tn.size else 0.0
    support = np.flatnonzero(tn > support_tol * top) if top > 0 else np.zeros(0, dtype=int)
    dinf = float(max((qn - lam).max(), 0.0)) if qn.size else 0.0
    sres = float(np.abs(qn[support] - lam).max()) if support.size else 0.0
    if support.size:
        dirs = theta[support] / tn[support, None]
        ares = float(np.linalg.norm(dirs - Q[support] / lam, axis=1).max())
    else:
        ares = 0.0
    ncomp = float(np.abs(lam * tn - np.einsum("ij,ij->i", theta, Q)).max() / (lam * top)) if top > 0 else 0.0
    return KKT(kind=f.kind, lam=lam, fit=fit, r=r, rho=rho, Q=Q, theta=theta, support=support,
               multipliers_from=src, dual_infeasibility=dinf, support_residual=sres, alignment_residual=ares,
               complementary_slackness=cs, primal_infeasibility=prim, dual_negativity=neg,
               norm_complementarity=ncomp)
