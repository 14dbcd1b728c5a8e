r"""Wasserstein GANs with a quadratic discriminator and a two-layer ReLU generator, solved by convex programs.

Reference: A. Sahiner, T. Ergen, B. Ozturkler, B. Bartan, J. Pauly, M. Mardani, M. Pilanci,
"Hidden Convexity of Wasserstein GANs: Interpretable Generative Models with Closed-Form
Solutions", ICLR 2022; M. Pilanci, "The Hidden Convex Optimization Landscape of Deep Neural
Networks" (talk, 2021), slide "Convex Generative Adversarial Networks".

**The game.** Data :math:`X \in \mathbb R^{n\times d}`, generated samples
:math:`G \in \mathbb R^{n_g \times d}`, a two-layer quadratic-activation discriminator
:math:`D(x) = \sum_j w_j (x^\top v_j)^2` with unit neurons :math:`\|v_j\| = 1` and an
:math:`\ell_1` penalty :math:`\lambda\|w\|_1` (the parametrization of
:mod:`convexnn.zoo.polynomial`). Writing :math:`\Delta = X^\top X - G^\top G`,

.. math::

    \max_{D}\ \sum_i D(x_i) - \sum_l D(g_l) - \lambda\|w\|_1
    = \max_{w, \|v_j\|=1} \sum_j |w_j|\big(\operatorname{sign}(w_j)\, v_j^\top \Delta v_j - \lambda\big)
    = \begin{cases} 0 & \|\Delta\|_2 \le \lambda \\ +\infty & \text{otherwise,} \end{cases}

so the discriminator forces the second moments to agree up to :math:`\lambda` in spectral norm.
With the generator energy :math:`\|G\|_F^2` as the generator's cost (the talk's statement),

.. math:: G^* = \arg\min_G \|G\|_F^2 \ \text{ s.t. }\ \|X^\top X - G^\top G\|_2 \le \lambda .

**Closed form** (:func:`wgan_generator_output`). Only :math:`M = G^\top G \succeq 0` matters:
:math:`\min \operatorname{tr} M` s.t. :math:`A - \lambda I \preceq M \preceq A + \lambda I`,
:math:`A = X^\top X = V\Sigma^2V^\top`. By Weyl's monotonicity,
:math:`\lambda_k(M) \ge \max(0, \sigma_k^2 - \lambda)`, so
:math:`\operatorname{tr} M \ge \sum_k(\sigma_k^2 - \lambda)_+`, attained (uniquely) by
:math:`M^* = V(\Sigma^2 - \lambda I)_+V^\top`, which also satisfies the upper constraint. The
dual certificate is :math:`Y = ` the projector on the eigenvectors with :math:`\sigma_k^2 > \lambda`
(:math:`0 \preceq Y \preceq I`, :math:`\operatorname{tr}(Y(A - \lambda I)) = \operatorname{tr} M^*`).
Any :math:`G = Q(\Sigma^2 - \lambda I)_+^{1/2}V^\top` with orthonormal :math:`Q` is optimal;
:math:`Q = U` (the data's left singular vectors, :math:`n_g = n`) gives the talk's
:math:`G^* = U(\Sigma^2 - \lambda I)_+^{1/2}V^\top`: singular value thresholding of the data.

**The generator** (:func:`fit_generator`). Given noise :math:`Z \in \mathbb R^{n_g\times d_z}`,
the minimum-weight-decay two-layer ReLU generator with :math:`(Z_a W_1)_+ W_2 = G^*` is found by
the convex min-norm interpolation program with vector outputs
(:func:`convexnn.min_norm_interpolation`). With ``vector_reg="group"`` (default) it is exact
for generators whose hidden neurons each feed one output coordinate, and the mapped network
reproduces :math:`G^*` with weight decay equal to the optimal value; for a dense output layer
the exact program is copositive (Sahiner et al., ICLR 2021) and this one gives a feasible
generator (an upper bound).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from convexnn.arrangements.patterns import Patterns
from convexnn.data import check_lam, check_X
from convexnn.errors import InputError
from convexnn.formulations.formulation import ConvexSolution

__all__ = [
    "WGANOutput",
    "wgan_generator_output",
    "WGANMomentSDP",
    "wgan_moment_sdp",
    "QuadraticDiscriminator",
    "discriminator_value",
    "best_discriminator",
    "fit_generator",
    "ConvexWGAN",
    "convex_wgan",
]


#: relative tolerance on ||X^T X - G^T G||_2 <= lam used by :func:`best_discriminator` (rounding)
FEAS_RTOL = 1e-9


@dataclass
class WGANOutput:
    r"""The optimal generator output of the convex WGAN (:func:`wgan_generator_output`).

    Attributes
    ----------
    G : ndarray, shape (n_g, d)
        :math:`Q(\Sigma^2 - \lambda I)_+^{1/2} V^\top`.
    M : ndarray, shape (d, d)
        :math:`G^\top G = V(\Sigma^2 - \lambda I)_+ V^\top` (unique).
    value : float
        :math:`\|G\|_F^2 = \sum_k (\sigma_k^2 - \lambda)_+`.
    singular_values : ndarray
        :math:`\sigma_k` of ``X``.
    rank : int
        Number of :math:`\sigma_k^2 > \lambda` (the rank of :math:`G^*`).
    dual : ndarray, shape (d, d)
        The certificate :math:`Y` (projector on the kept right singular vectors).
    lam : float
    """

    G: np.ndarray
    M: np.ndarray
    value: float
    singular_values: np.ndarray
    rank: int
    dual: np.ndarray
    lam: float


def wgan_generator_output(X: Any, lam: float, *, n_generated: int | None = None, Q: Any = None,
                          seed: int | None = 0) -> WGANOutput:
    r"""Optimal generator output :math:`G^* = Q(\Sigma^2 - \lambda I)_+^{1/2}V^\top` (singular value thresholding).

    Parameters
    ----------
    X : array, shape (n, d)
        Data.
    lam : float
        Discriminator penalty :math:`\lambda > 0` (the tolerance on the second moments).
    n_generated : int, optional
        Number of generated samples :math:`n_g` (default ``n``).
    Q : array, shape (n_g, r), optional
        Orthonormal left factor (``r`` = number of :math:`\sigma_k^2 > \lambda`). Default: the
        data's left singular vectors :math:`U` when :math:`n_g = n`, else the Q factor of a Gaussian
        matrix drawn with ``seed``.

    Raises
    ------
    InputError
        ``lam <= 0``, ``n_generated`` smaller than the rank of :math:`G^*`, or a ``Q`` that is not
        ``(n_g, r)`` with orthonormal columns.
    """
    Xc = check_X(X)
    lam_v = check_lam(lam)
    n, d = Xc.shape
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    gain = np.maximum(s * s - lam_v, 0.0)
    r = int(np.sum(gain > 0))
    ng = n if n_generated is None else int(n_generated)
    if ng < max(r, 1):
        raise InputError(f"n_generated={ng} is smaller than the rank {r} of the optimal generator output "
                         "(the number of squared singular values of X above lam).")
    if Q is None:
        if ng == n:
            Qm = U[:, :r]
        else:
            Qm = np.linalg.qr(np.random.default_rng(seed).standard_normal((ng, max(r, 1))))[0][:, :r]
    else:
        Qm = np.asarray(Q, dtype=float)
        if Qm.shape != (ng, r) or not np.allclose(Qm.T @ Qm, np.eye(r), atol=1e-8):
            raise InputError(f"Q must be ({ng}, {r}) with orthonormal columns; got shape {Qm.shape}.")
    root = np.sqrt(gain[:r])
    G = (Qm * root) @ Vt[:r]
    M = (Vt[:r].T * gain[:r]) @ Vt[:r]
    Y = Vt[:r].T @ Vt[:r]
    return WGANOutput(G=G, M=M, value=float(np.sum(gain)), singular_values=s, rank=r, dual=Y, lam=lam_v)


# ============================================================================ discriminator
@dataclass
class QuadraticDiscriminator:
    r"""Two-layer quadratic-activation discriminator :math:`D(x) = \sum_j w_j (x^\top v_j)^2`, :math:`\|v_j\| = 1`.

    Attributes
    ----------
    V : ndarray, shape (d, m)
    w : ndarray, shape (m,)
    """

    V: np.ndarray
    w: np.ndarray

    def __call__(self, X: Any) -> np.ndarray:
        return ((check_X(X) @ self.V) ** 2) @ self.w


def discriminator_value(D: QuadraticDiscriminator, X: Any, G: Any, lam: float) -> float:
    r"""Inner objective :math:`\sum_i D(x_i) - \sum_l D(g_l) - \lambda\|w\|_1`."""
    return float(np.sum(D(X)) - np.sum(D(G)) - check_lam(lam, allow_zero=True) * np.sum(np.abs(D.w)))


def best_discriminator(X: Any, G: Any, lam: float, *, scale: float = 1.0) -> tuple[float, QuadraticDiscriminator]:
    r"""The discriminator's best response: sup value (0 or ``inf``) and a maximizing (or improving) discriminator.

    If :math:`\|\Delta\|_2 \le \lambda` the supremum is 0 (attained by :math:`w = 0`); excesses up to
    :data:`FEAS_RTOL` relative (rounding of :math:`\Delta` at a generator on the boundary, such as
    :math:`G^*`) count as feasible. Otherwise
    the eigenvector :math:`v` of :math:`\Delta` with :math:`|\mu| > \lambda` and
    :math:`w = \text{scale}\cdot\operatorname{sign}(\mu)` gives value
    :math:`\text{scale}(|\mu| - \lambda) > 0`, unbounded as ``scale`` grows.
    """
    Xc, Gc = check_X(X), check_X(G, name="G")
    if Gc.shape[1] != Xc.shape[1]:
        raise InputError(f"G has {Gc.shape[1]} columns but X has {Xc.shape[1]}.")
    lam_v = check_lam(lam, allow_zero=True)
    mu, vec = np.linalg.eigh(Xc.T @ Xc - Gc.T @ Gc)
    k = int(np.argmax(np.abs(mu)))
    if abs(mu[k]) <= lam_v + FEAS_RTOL * max(lam_v, float(np.max(np.abs(mu)))):
        return 0.0, QuadraticDiscriminator(vec[:, [k]], np.zeros(1))
    return float("inf"), QuadraticDiscriminator(vec[:, [k]], np.array([scale * np.sign(mu[k])]))


# ============================================================================ SDP (independent form)
class WGANMomentSDP:
    r"""The moment SDP :math:`\min \operatorname{tr} M` s.t. :math:`M \succeq 0`, :math:`\|X^\top X - M\|_2 \le \lambda`.

    Built by :func:`wgan_moment_sdp`; an inspectable ``cvxpy.Problem`` whose optimum is the closed
    form of :func:`wgan_generator_output` (a solver-based, independent route to it).

    Attributes
    ----------
    problem : cvxpy.Problem
    lam : cvxpy.Parameter
    variables : dict
        ``{"M": (d, d) symmetric}``.
    constraints : dict
        ``"psd"`` (:math:`M \succeq 0`), ``"upper"`` (:math:`\lambda I - (X^\top X - M) \succeq 0`),
        ``"lower"`` (:math:`\lambda I - (M - X^\top X) \succeq 0`); the dual value of ``"upper"`` is
        the certificate :math:`Y`.
    X : ndarray
    """

    kind = "wgan_moment_sdp"

    def __init__(self, problem: cp.Problem, lam: cp.Parameter, X: np.ndarray, variables: dict[str, Any],
                 constraints: dict[str, Any]) -> None:
        self.problem, self.lam, self.X = problem, lam, X
        self.variables, self.constraints = variables, constraints

    def solve(self, solver: str | None = None, **kwargs: Any) -> WGANOutput:
        """Solve (Clarabel by default) and return the optimum as a :class:`WGANOutput` (``G = U V^T M^{1/2}``).

        Raises
        ------
        SolverError
            If the solver fails or does not report an optimal status.
        """
        from convexnn.errors import SolverError
        from convexnn.formulations.formulation import default_solver

        name = (solver or default_solver()).upper()
        try:
            self.problem.solve(solver=name, **kwargs)
        except cp.error.SolverError as exc:
            raise SolverError(f"{name} failed on the WGAN moment SDP: {exc}", solver=name) from exc
        if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise SolverError(f"{name} returned status {self.problem.status!r}.", status=self.problem.status,
                              solver=name)
        M = np.asarray(self.variables["M"].value, dtype=float)
        M = 0.5 * (M + M.T)
        ev, vec = np.linalg.eigh(M)
        root = (vec * np.sqrt(np.clip(ev, 0.0, None))) @ vec.T
        U, sv, Vt = np.linalg.svd(self.X, full_matrices=False)
        Y = np.asarray(self.constraints["upper"].dual_value, dtype=float)
        lam_v = float(self.lam.value)
        return WGANOutput(G=U @ Vt @ root, M=M, value=float(self.problem.value), singular_values=sv,
                          rank=int(np.sum(sv * sv > lam_v)), dual=0.5 * (Y + Y.T), lam=lam_v)


def wgan_moment_sdp(X: Any, lam: float) -> WGANMomentSDP:
    r"""Build the generator's moment SDP (an independent, solver-based form of the closed form).

    .. math:: \min_{M \succeq 0}\ \operatorname{tr} M \quad\text{s.t.}\quad
              -\lambda I \preceq X^\top X - M \preceq \lambda I .

    ``lam`` is the ``cp.Parameter`` ``.lam`` (DPP: change it and re-solve).
    """
    Xc = check_X(X)
    lamp = cp.Parameter(nonneg=True, name="lam", value=check_lam(lam))
    d = Xc.shape[1]
    A = Xc.T @ Xc
    M = cp.Variable((d, d), symmetric=True, name="M")
    eye = np.eye(d)
    constraints = {"psd": M >> 0, "upper": lamp * eye - (A - M) >> 0, "lower": lamp * eye - (M - A) >> 0}
    problem = cp.Problem(cp.Minimize(cp.trace(M)), list(constraints.values()))
    return WGANMomentSDP(problem, lamp, Xc, {"M": M}, constraints)


# ============================================================================ generator
def fit_generator(Z: Any, G: Any, patterns: Patterns | None = None, *, bias: bool = True,
                  vector_reg: str = "group", solver: str | None = None) -> tuple[ConvexSolution, Any]:
    r"""Minimum-weight-decay two-layer ReLU generator with :math:`(Z_a W_1)_+ W_2 = G`.

    Solves :func:`convexnn.min_norm_interpolation` with vector outputs ``G`` on the noise ``Z``
    (exact patterns of ``Z`` by default) and maps it to a :class:`convexnn.TwoLayerReLU`.

    Returns
    -------
    (ConvexSolution, TwoLayerReLU)
        The solution (its value is the minimum of :math:`\tfrac12(\|W_1\|_F^2 + \|W_2\|_F^2)` over
        the generator class, see the module docstring) and the generator network.

    Raises
    ------
    InputError
        If ``Z`` and ``G`` have different numbers of rows.
    SolverError
        (status ``infeasible``) if no generator with these patterns reproduces ``G``.
    """
    from convexnn.arrangements import enumerate_patterns
    from convexnn.formulations.two_layer import min_norm_interpolation

    Zc = check_X(Z, name="Z")
    Gc = check_X(G, name="G")
    if Zc.shape[0] != Gc.shape[0]:
        raise InputError(f"Z has {Zc.shape[0]} rows (noise samples) but G has {Gc.shape[0]} generated samples.")
    if patterns is None:
        patterns = enumerate_patterns(Zc, bias=bias)
    f = min_norm_interpolation(Zc, Gc, patterns, vector_reg=vector_reg)
    sol = f.solve(solver)
    return sol, sol.to_network()


@dataclass
class ConvexWGAN:
    """Result of :func:`convex_wgan`: the optimal output, the generator and its convex solution."""

    output: WGANOutput
    generator: Any
    solution: ConvexSolution
    Z: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def sample(self) -> np.ndarray:
        """The generator applied to its training noise (equals ``output.G`` up to solver accuracy)."""
        return self.generator.predict(self.Z)


def convex_wgan(X: Any, Z: Any, lam: float, *, patterns: Patterns | None = None, bias: bool = True,
                vector_reg: str = "group", Q: Any = None) -> ConvexWGAN:
    r"""Train the WGAN (quadratic discriminator, two-layer ReLU generator) by two convex steps.

    1. :math:`G^* = Q(\Sigma^2 - \lambda I)_+^{1/2}V^\top` (:func:`wgan_generator_output`, with
       :math:`n_g` = rows of ``Z``);
    2. the minimum-norm ReLU generator with :math:`(Z_a W_1)_+ W_2 = G^*` (:func:`fit_generator`).

    Examples
    --------
    >>> import numpy as np, convexnn as cx
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((12, 2)) @ np.array([[2.0, 0.0], [1.0, 0.5]])
    >>> Z = rng.standard_normal((12, 2))
    >>> gan = cx.convex_wgan(X, Z, lam=4.0)
    >>> bool(np.allclose(gan.sample(), gan.output.G, atol=1e-5))
    True
    """
    Zc = check_X(Z, name="Z")
    out = wgan_generator_output(X, lam, n_generated=Zc.shape[0], Q=Q)
    sol, net = fit_generator(Zc, out.G, patterns, bias=bias, vector_reg=vector_reg)
    return ConvexWGAN(output=out, generator=net, solution=sol, Z=Zc)
