r"""Two-layer networks with polynomial activations as semidefinite programs.

Reference: B. Bartan, M. Pilanci, "Neural Spectrahedra and Semidefinite Lifts: Global Convex
Optimization of Polynomial Activation Neural Networks in Fully Polynomial-Time", arXiv:2101.02429,
2021; M. Pilanci, "The Hidden Convex Optimization Landscape of Deep Neural Networks" (talk, 2021).

The network (:class:`PolynomialNetwork`) with activation :math:`\sigma(t) = a t^2 + b t + c`,

.. math::

    f(x) = \sum_{j=1}^m \alpha_j\, \sigma(x_a^\top u_j), \qquad \|u_j\|_2 = 1,

is trained with an :math:`\ell_1` penalty on the second layer,

.. math::

    p_{\text{nc}} = \min_{\|u_j\| = 1,\ \alpha}\ \ell\big(\sigma(X_a U)\alpha,\ y\big)
    + \lambda \|\alpha\|_1 .

(The unit-norm constraint fixes the scale: :math:`\sigma` is not homogeneous, so weight decay
does not reduce to a norm as it does for the ReLU.)

**The SDP** (:func:`poly_sdp`). A neuron with :math:`\alpha > 0` is the rank-one matrix
:math:`\alpha\,[u; 1][u; 1]^\top`, which lies in the spectrahedral cone

.. math::

    \mathcal Z = \Big\{Z = \begin{bmatrix} Z_1 & Z_2 \\ Z_2^\top & Z_4\end{bmatrix} \succeq 0 :
    \operatorname{tr}(Z_1) = Z_4 \Big\},

and its contribution to sample :math:`i` is the linear function
:math:`a\,x_i^\top Z_1 x_i + b\,x_i^\top Z_2 + c\,Z_4` of :math:`Z`, with
:math:`Z_4 = \alpha`. Conversely every :math:`Z \in \mathcal Z` is a sum of such rank-one terms:
with :math:`G = \operatorname{diag}(I, -1)`, :math:`\langle G, Z\rangle = 0`, and the rank-one
decomposition of Sturm & Zhang (Math. Oper. Res. 2003, Prop. 3) writes
:math:`Z = \sum_k z_k z_k^\top` with :math:`z_k^\top G z_k = 0`, i.e.
:math:`z_k = t_k [u_k; 1]` with :math:`\|u_k\| = 1` (:func:`lifted_neurons`). Hence, with one
block per output sign,

.. math::

    p_{\text{sdp}} = \min_{Z^+, Z^- \in \mathcal Z}\ \ell(\hat y, y) + \lambda (Z_4^+ + Z_4^-),
    \qquad \hat y_i = a\,x_i^\top (Z_1^+ - Z_1^-) x_i + b\,x_i^\top (Z_2^+ - Z_2^-)
    + c\,(Z_4^+ - Z_4^-),

equals :math:`p_{\text{nc}}` for every width :math:`m \ge m^*` (at most
:math:`2(d'+1)` neurons: the ranks of the two blocks), and the neurons are read off the blocks.

**Quadratic activation** (:func:`quadratic_nuclear`, :math:`\sigma(t) = a t^2`): only
:math:`Z_1^\pm` matter and :math:`\min \operatorname{tr} Z_1^+ + \operatorname{tr} Z_1^-` over
:math:`Z_1^+ - Z_1^- = Z` is the nuclear norm, so

.. math:: \min_{Z = Z^\top}\ \ell\big(a\,\operatorname{diag}(X_a Z X_a^\top), y\big) + \lambda \|Z\|_*,

with neurons :math:`u_k, \alpha_k` from the eigendecomposition :math:`Z = \sum_k \alpha_k u_k u_k^\top`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import cvxpy as cp
import numpy as np

from convexnn.arrangements.patterns import Patterns
from convexnn.data import add_bias, check_lam, check_X, check_y
from convexnn.errors import ConvexNNWarning, InputError
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.losses import Loss, get_loss
from convexnn.gap import relative_gap

__all__ = [
    "PolynomialNetwork",
    "PolySDP",
    "QuadraticNuclear",
    "poly_sdp",
    "quadratic_nuclear",
    "lifted_neurons",
    "polynomial_from_network",
    "UNIT_RTOL",
    "QuantizedNetwork",
    "QuantizedSDP",
    "QuantizedResult",
    "quantized_sdp",
    "round_quantized",
    "quantized_exact",
]

#: tolerance on ``| ||u_j|| - 1 |`` accepted by :class:`PolynomialNetwork` objectives
UNIT_RTOL = 1e-6
#: eigenvalues below this fraction of the largest are dropped by the neuron recovery
_EIG_RTOL = 1e-9


# ============================================================================ validation
def check_coefficients(coefficients: Any) -> tuple[float, float, float]:
    r"""Validate the activation coefficients ``(a, b, c)`` of :math:`\sigma(t) = a t^2 + b t + c`.

    Raises
    ------
    InputError
        Unless ``coefficients`` is three finite real numbers, not all zero.
    """
    try:
        arr = np.asarray(coefficients, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"coefficients must be three real numbers (a, b, c) of sigma(t) = a t^2 + b t + c; "
                         f"got {coefficients!r}.") from None
    if arr.shape != (3,):
        raise InputError(f"coefficients must be three real numbers (a, b, c) of sigma(t) = a t^2 + b t + c; "
                         f"got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"activation coefficients must be finite; got {arr.tolist()}.")
    if not np.any(arr != 0):
        raise InputError("the activation sigma(t) = 0 t^2 + 0 t + 0 is identically zero.")
    return float(arr[0]), float(arr[1]), float(arr[2])


def _scalar_targets(y: Any, n: int, lo: Loss) -> np.ndarray:
    yc = check_y(y, n, loss=lo.name)
    if yc.ndim != 1:
        raise InputError(f"polynomial-activation programs take scalar targets y of shape (n,); got {yc.shape}.")
    return yc


def _no_patterns(n: int, d: int) -> Patterns:
    """An empty pattern set: the lifted programs have no activation patterns."""
    return Patterns(np.zeros((n, 0), dtype=bool), np.zeros((d, 0)), kind="none", n_samples=n)


def _sigma(t: np.ndarray, coef: tuple[float, float, float]) -> np.ndarray:
    a, b, c = coef
    return a * t * t + b * t + c


# ============================================================================ network
class PolynomialNetwork:
    r"""Two-layer network :math:`f(x) = \sum_j \alpha_j \sigma(x_a^\top u_j)`, :math:`\sigma(t) = a t^2 + b t + c`.

    Parameters
    ----------
    W1 : array, shape (d', m)
        Unit-norm first-layer neurons :math:`u_j` as columns (``d' = d + 1`` when ``bias``; the last
        row is then the bias and counts in the norm).
    w2 : array, shape (m,)
        Second-layer weights :math:`\alpha_j`.
    coefficients : (a, b, c)
    bias : bool

    Notes
    -----
    The training objective (:meth:`objective`) is
    :math:`\ell(f(X), y) + \lambda\|\alpha\|_1` subject to :math:`\|u_j\|_2 = 1`; it refuses
    neurons that are not unit-norm (:class:`InputError`), since the activation is not homogeneous
    and no rescaling gives an equivalent network.
    """

    def __init__(self, W1: Any, w2: Any, coefficients: Sequence[float] = (1.0, 0.0, 0.0), *,
                 bias: bool = False) -> None:
        W1 = np.array(W1, dtype=float, copy=True)
        w2 = np.array(w2, dtype=float, copy=True)
        if W1.ndim != 2 or w2.ndim != 1 or W1.shape[1] != w2.shape[0]:
            raise InputError(f"W1 must be (d', m) and w2 (m,); got {W1.shape} and {w2.shape}.")
        if not (np.all(np.isfinite(W1)) and np.all(np.isfinite(w2))):
            raise InputError("network weights contain NaN or infinite values.")
        self.W1, self.w2 = W1, w2
        self.coefficients = check_coefficients(coefficients)
        self.bias = bool(bias)

    @property
    def n_neurons(self) -> int:
        return int(self.W1.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.W1.shape[0] - self.bias)

    def design(self, X: Any) -> np.ndarray:
        Xc = check_X(X)
        if Xc.shape[1] != self.n_features:
            raise InputError(f"X has {Xc.shape[1]} features but the network expects {self.n_features}.")
        return add_bias(Xc) if self.bias else Xc

    def hidden(self, X: Any) -> np.ndarray:
        r"""Hidden activations :math:`\sigma(X_a U)`, shape ``(n, m)``."""
        return _sigma(self.design(X) @ self.W1, self.coefficients)

    def predict(self, X: Any) -> np.ndarray:
        return self.hidden(X) @ self.w2

    def unit_violation(self) -> float:
        r""":math:`\max_j |\|u_j\|_2 - 1|` (0 for a feasible network)."""
        if self.n_neurons == 0:
            return 0.0
        return float(np.max(np.abs(np.linalg.norm(self.W1, axis=0) - 1.0)))

    def regularizer(self) -> float:
        r""":math:`\|\alpha\|_1`."""
        return float(np.sum(np.abs(self.w2)))

    def objective(self, X: Any, y: Any, lam: float, loss: str | Loss = "squared") -> float:
        r"""Training objective :math:`\ell(f(X), y) + \lambda\|\alpha\|_1` (unit-norm neurons required).

        Raises
        ------
        InputError
            If some :math:`\|u_j\|` differs from 1 by more than :data:`UNIT_RTOL`, or on bad data.
        """
        if self.unit_violation() > UNIT_RTOL:
            raise InputError(f"first-layer neurons must have unit norm (max | ||u_j|| - 1 | = "
                             f"{self.unit_violation():.3g}); the objective is only defined on the sphere.")
        lo = get_loss(loss)
        pred = self.predict(X)
        yy = _scalar_targets(y, pred.shape[0], lo)
        return lo.value(pred, yy) + check_lam(lam, allow_zero=True) * self.regularizer()

    def __repr__(self) -> str:
        return (f"PolynomialNetwork(d={self.n_features}, m={self.n_neurons}, "
                f"sigma=({self.coefficients[0]:g}, {self.coefficients[1]:g}, {self.coefficients[2]:g}), "
                f"bias={self.bias})")


# ============================================================================ neuron recovery
def lifted_neurons(Z: Any, *, rtol: float = _EIG_RTOL) -> tuple[np.ndarray, np.ndarray]:
    r"""Neurons :math:`(u_k, \alpha_k)` with :math:`Z = \sum_k \alpha_k [u_k; 1][u_k; 1]^\top`, :math:`\|u_k\| = 1`.

    Rank-one decomposition of Sturm & Zhang ("On cones of nonnegative quadratic functions",
    Math. Oper. Res. 2003, Prop. 3) for :math:`G = \operatorname{diag}(I, -1)`: start from
    :math:`Z = R R^\top` (eigendecomposition, eigenvalues below ``rtol`` times the largest
    dropped); while some columns have :math:`g_i = r_i^\top G r_i > 0` and
    :math:`g_j < 0`, take the root :math:`\tau` of
    :math:`(r_i + \tau r_j)^\top G (r_i + \tau r_j) = 0`, emit
    :math:`z = (r_i + \tau r_j)/\sqrt{1+\tau^2}` and replace the pair by
    :math:`(r_j - \tau r_i)/\sqrt{1+\tau^2}` (the pair's outer products sum is unchanged). Each
    emitted :math:`z = t [u; 1]` has :math:`\|u\| = 1` and gives :math:`\alpha = t^2`. At most
    ``rank(Z)`` neurons.

    Parameters
    ----------
    Z : array, shape (d'+1, d'+1)
        A block of :func:`poly_sdp` (PSD, :math:`\operatorname{tr} Z_1 = Z_4` up to solver accuracy).

    Returns
    -------
    U : ndarray, shape (d', k)
        Unit columns.
    alpha : ndarray, shape (k,)
        Nonnegative weights, :math:`\sum_k \alpha_k = Z_4` (up to the dropped eigenvalues).
    """
    Z = np.asarray(Z, dtype=float)
    if Z.ndim != 2 or Z.shape[0] != Z.shape[1] or Z.shape[0] < 2:
        raise InputError(f"Z must be a square (d'+1, d'+1) matrix; got shape {Z.shape}.")
    D = Z.shape[0] - 1
    Zs = 0.5 * (Z + Z.T)
    off = abs(float(np.trace(Zs[:D, :D]) - Zs[D, D]))
    if off > max(1e-6 * max(abs(float(Zs[D, D])), float(np.trace(Zs[:D, :D]))), 1e-10):
        warnings.warn(f"lifted_neurons: tr(Z_1) - Z_4 = {off:.3g}: Z is not in the spectrahedral cone to "
                      "solver accuracy; the neurons are renormalized to unit norm.", ConvexNNWarning, stacklevel=2)
    ev, evec = np.linalg.eigh(Zs)
    top = float(np.max(ev, initial=0.0))
    if top <= 0:
        return np.zeros((D, 0)), np.zeros(0)
    keep = ev > rtol * top
    R = [evec[:, k] * np.sqrt(ev[k]) for k in np.flatnonzero(keep)]
    g = lambda r: float(r[:D] @ r[:D] - r[D] * r[D])  # noqa: E731
    out: list[np.ndarray] = []
    tol = 1e-12 * top
    while R:
        vals = np.array([g(r) for r in R])
        if len(R) == 1 or vals.max() <= tol or vals.min() >= -tol:
            out.extend(R)  # all (numerically) on the cone boundary
            break
        i, j = int(np.argmax(vals)), int(np.argmin(vals))
        ri, rj = R[i], R[j]
        gi, gj = vals[i], vals[j]
        gij = float(ri[:D] @ rj[:D] - ri[D] * rj[D])
        tau = (-gij + np.sqrt(gij * gij - gi * gj)) / gj
        s = np.sqrt(1.0 + tau * tau)
        out.append((ri + tau * rj) / s)
        R = [r for k, r in enumerate(R) if k not in (i, j)] + [(rj - tau * ri) / s]
    U, alpha = [], []
    for z in out:
        t = z[D]
        if t * t <= 1e-14 * top:
            continue  # z = 0 up to noise (z^T G z = 0 and t = 0 force v = 0)
        v = z[:D] / t
        nv = np.linalg.norm(v)
        U.append(v / nv if nv > 0 else np.eye(D)[:, 0])
        alpha.append(t * t)
    if not U:
        return np.zeros((D, 0)), np.zeros(0)
    return np.array(U).T, np.array(alpha)


# ============================================================================ formulations
class PolySDP(Formulation):
    r"""The lifted SDP of a polynomial-activation network (built by :func:`poly_sdp`).

    Weights ``{"Zp": (d'+1, d'+1), "Zm": (d'+1, d'+1)}``; constraints ``"psd_p"``, ``"psd_m"``
    (:math:`Z^\pm \succeq 0`) and ``"trace_p"``, ``"trace_m"`` (:math:`\operatorname{tr} Z_1^\pm = Z_4^\pm`).
    """

    kind = "poly_sdp"

    @property
    def coefficients(self) -> tuple[float, float, float]:
        return self.meta["coefficients"]

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(self.variables[k].value, dtype=float) for k in ("Zp", "Zm")}

    def _check(self, weights: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        D = self.Xa.shape[1] + 1
        out = []
        for k in ("Zp", "Zm"):
            if k not in weights or np.shape(weights[k]) != (D, D):
                raise InputError(f"weights[{k!r}] must have shape {(D, D)}.")
            out.append(np.asarray(weights[k], dtype=float))
        return out[0], out[1]

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        r""":math:`a\,x_i^\top Z_1 x_i + b\,x_i^\top Z_2 + c\,Z_4` with :math:`Z = Z^+ - Z^-`."""
        Zp, Zm = self._check(weights)
        Z = Zp - Zm
        a, b, c = self.coefficients
        d = self.Xa.shape[1]
        Xa = self.Xa
        return a * np.einsum("ni,ij,nj->n", Xa, Z[:d, :d], Xa) + b * Xa @ Z[:d, d] + c * Z[d, d]

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        r""":math:`Z_4^+ + Z_4^-` (the :math:`\ell_1` norm of the second layer)."""
        Zp, Zm = self._check(weights)
        return float(Zp[-1, -1] + Zm[-1, -1])

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        r"""Largest of :math:`-\lambda_{\min}(Z^\pm)` and :math:`|\operatorname{tr} Z_1^\pm - Z_4^\pm|`."""
        viol = 0.0
        for Z in self._check(weights):
            viol = max(viol, -float(np.linalg.eigvalsh(0.5 * (Z + Z.T))[0]),
                       abs(float(np.trace(Z[:-1, :-1]) - Z[-1, -1])))
        return max(viol, 0.0)

    def to_network(self, solution: ConvexSolution) -> PolynomialNetwork:
        r"""C -> NC: the neurons of each block by :func:`lifted_neurons` (:math:`\alpha > 0` from
        :math:`Z^+`, :math:`\alpha < 0` from :math:`Z^-`). Predictions and :math:`\|\alpha\|_1 = Z_4^+ + Z_4^-`
        are those of the convex model, so the objectives agree."""
        Zp, Zm = self._check(solution.weights)
        Up, ap = lifted_neurons(Zp)
        Um, am = lifted_neurons(Zm)
        return PolynomialNetwork(np.hstack([Up, Um]), np.concatenate([ap, -am]), self.coefficients,
                                 bias=self.bias)


class QuadraticNuclear(Formulation):
    r"""The nuclear-norm program of a quadratic-activation network (built by :func:`quadratic_nuclear`).

    Weights ``{"Z": (d', d')}`` (symmetric).
    """

    kind = "quadratic_nuclear"

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        Z = np.asarray(self.variables["Z"].value, dtype=float)
        return {"Z": 0.5 * (Z + Z.T)}

    def _Z(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        d = self.Xa.shape[1]
        if "Z" not in weights or np.shape(weights["Z"]) != (d, d):
            raise InputError(f"weights['Z'] must have shape {(d, d)}.")
        return np.asarray(weights["Z"], dtype=float)

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        r""":math:`a\, x_i^\top Z x_i`."""
        Z = self._Z(weights)
        return self.meta["a"] * np.einsum("ni,ij,nj->n", self.Xa, Z, self.Xa)

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        r""":math:`\|Z\|_*`."""
        Z = self._Z(weights)
        return float(np.sum(np.abs(np.linalg.eigvalsh(0.5 * (Z + Z.T)))))

    def to_network(self, solution: ConvexSolution) -> PolynomialNetwork:
        r"""C -> NC by eigendecomposition :math:`Z = \sum_k \alpha_k u_k u_k^\top` (eigenvalues below
        ``1e-9`` times the largest dropped): neurons :math:`u_k`, weights :math:`\alpha_k`."""
        Z = self._Z(solution.weights)
        ev, evec = np.linalg.eigh(0.5 * (Z + Z.T))
        keep = np.abs(ev) > _EIG_RTOL * max(float(np.max(np.abs(ev), initial=0.0)), 1e-300)
        return PolynomialNetwork(evec[:, keep], ev[keep], (self.meta["a"], 0.0, 0.0), bias=self.bias)


def _prepare(X: Any, y: Any, lam: float, loss: str | Loss, bias: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Loss, float]:
    lo = get_loss(loss)
    Xc = check_X(X)
    yc = _scalar_targets(y, Xc.shape[0], lo)
    lam_value = check_lam(lam)
    Xa = add_bias(Xc) if bias else Xc
    return Xc, Xa, yc, lo, lam_value


def poly_sdp(
    X: Any,
    y: Any,
    lam: float,
    *,
    coefficients: Sequence[float] = (1.0, 0.0, 0.0),
    loss: str | Loss = "squared",
    bias: bool = False,
) -> PolySDP:
    r"""Build the SDP of a two-layer network with activation :math:`\sigma(t) = a t^2 + b t + c`.

    .. math::

        \min_{Z^\pm \succeq 0,\ \operatorname{tr} Z_1^\pm = Z_4^\pm}\
        \ell\big(a\,\operatorname{diag}(X_a Z_1 X_a^\top) + b\,X_a Z_2 + c\,Z_4,\ y\big)
        + \lambda\,(Z_4^+ + Z_4^-),\qquad Z = Z^+ - Z^-,

    equal to :math:`\min_{\|u_j\|=1, \alpha}\ \ell(\sigma(X_a U)\alpha, y) + \lambda\|\alpha\|_1`
    (Bartan & Pilanci, "Neural Spectrahedra and Semidefinite Lifts", 2021; see the module
    docstring for the proof sketch).

    Parameters
    ----------
    X : array, shape (n, d)
    y : array, shape (n,)
        Labels in ``{-1, +1}`` for ``loss="logistic"`` / ``"hinge"``.
    lam : float
        :math:`\ell_1` penalty on the second layer, ``> 0`` (the ``cp.Parameter`` ``.lam``).
    coefficients : (a, b, c)
        Activation :math:`\sigma(t) = a t^2 + b t + c`; e.g. ``(1, 0, 0)`` (square) or
        ``(0.09, 0.5, 0.47)`` (a quadratic fit of the ReLU on [-4, 4] used in the paper's
        experiments).
    loss : {"squared", "logistic", "hinge"} or Loss
    bias : bool
        The neurons act on :math:`x_a = [x; 1]` (the bias counts in :math:`\|u_j\| = 1`).

    Returns
    -------
    PolySDP
        ``.problem`` (an SDP: two PSD cones of size ``d'+1``), ``.lam``, ``.variables["Zp"]`` /
        ``["Zm"]``, named constraints; ``.solve().to_network()`` is a :class:`PolynomialNetwork`
        with the same objective.

    Raises
    ------
    InputError
        Bad data, vector targets, ``lam <= 0``, or coefficients that are not three finite numbers
        (not all zero).

    Examples
    --------
    >>> import numpy as np, convexnn as cx
    >>> rng = np.random.default_rng(0); X = rng.standard_normal((12, 3)); y = (X[:, 0] ** 2) - 1
    >>> sol = cx.poly_sdp(X, y, 0.1, coefficients=(1, 0, -1)).solve()
    >>> net = sol.to_network()
    >>> bool(abs(net.objective(X, y, 0.1) - sol.value) <= 1e-6 * sol.value)
    True
    """
    coef = check_coefficients(coefficients)
    Xc, Xa, yc, lo, lam_value = _prepare(X, y, lam, loss, bias)
    n, d = Xa.shape
    lamp = cp.Parameter(nonneg=True, name="lam", value=lam_value)
    a, b, c = coef
    Zp = cp.Variable((d + 1, d + 1), symmetric=True, name="Zp")
    Zm = cp.Variable((d + 1, d + 1), symmetric=True, name="Zm")
    Z = Zp - Zm
    pred = a * cp.sum(cp.multiply(Xa @ Z[:d, :d], Xa), axis=1) + b * (Xa @ Z[:d, d]) + c * Z[d, d]
    constraints = {
        "psd_p": Zp >> 0,
        "psd_m": Zm >> 0,
        "trace_p": cp.trace(Zp[:d, :d]) == Zp[d, d],
        "trace_m": cp.trace(Zm[:d, :d]) == Zm[d, d],
    }
    problem = cp.Problem(cp.Minimize(lo.cvx(pred, yc) + lamp * (Zp[d, d] + Zm[d, d])), list(constraints.values()))
    return PolySDP(problem, lamp, X=Xc, Xa=Xa, y=yc, loss=lo, patterns=_no_patterns(n, d), bias=bool(bias),
                   variables={"Zp": Zp, "Zm": Zm}, constraints=constraints, meta={"coefficients": coef})


def quadratic_nuclear(
    X: Any,
    y: Any,
    lam: float,
    *,
    a: float = 1.0,
    loss: str | Loss = "squared",
    bias: bool = False,
) -> QuadraticNuclear:
    r"""Build the nuclear-norm program of a quadratic-activation network :math:`\sigma(t) = a t^2`.

    .. math:: \min_{Z = Z^\top}\ \ell\big(a\,\operatorname{diag}(X_a Z X_a^\top),\ y\big) + \lambda\|Z\|_*,

    the special case :math:`b = c = 0` of :func:`poly_sdp` (Bartan & Pilanci 2021; Pilanci's 2021
    talk, "special case: quadratic activation"). Parameters as in :func:`poly_sdp`; ``a`` must be
    finite and nonzero.
    """
    try:
        a = float(a)
    except (TypeError, ValueError):
        raise InputError(f"a must be a real number; got {a!r}.") from None
    if not np.isfinite(a) or a == 0:
        raise InputError(f"a must be finite and nonzero for sigma(t) = a t^2; got {a}.")
    Xc, Xa, yc, lo, lam_value = _prepare(X, y, lam, loss, bias)
    n, d = Xa.shape
    lamp = cp.Parameter(nonneg=True, name="lam", value=lam_value)
    Z = cp.Variable((d, d), symmetric=True, name="Z")
    pred = a * cp.sum(cp.multiply(Xa @ Z, Xa), axis=1)
    problem = cp.Problem(cp.Minimize(lo.cvx(pred, yc) + lamp * cp.normNuc(Z)))
    return QuadraticNuclear(problem, lamp, X=Xc, Xa=Xa, y=yc, loss=lo, patterns=_no_patterns(n, d),
                            bias=bool(bias), variables={"Z": Z}, meta={"a": a})


# ============================================================================ NC -> C
def polynomial_from_network(net: PolynomialNetwork, X: Any, y: Any, lam: float,
                            loss: str | Loss = "squared") -> ConvexSolution:
    r"""NC -> C: the lifted point :math:`Z^\pm = \sum_{\pm\alpha_j > 0} |\alpha_j|\,[u_j; 1][u_j; 1]^\top`.

    Returns a :class:`ConvexSolution` of :func:`poly_sdp` (built, not solved; ``status
    "from_network"``) whose value equals the network's objective exactly (same predictions,
    :math:`Z_4^+ + Z_4^- = \|\alpha\|_1`).

    Raises
    ------
    InputError
        If the neurons are not unit-norm or the data do not match the network.
    """
    if not isinstance(net, PolynomialNetwork):
        raise InputError(f"net must be a PolynomialNetwork; got {type(net).__name__}.")
    if net.unit_violation() > UNIT_RTOL:
        raise InputError("the network's first-layer neurons must have unit norm.")
    net.design(X)
    f = poly_sdp(X, y, lam, coefficients=net.coefficients, loss=loss, bias=net.bias)
    L = np.vstack([net.W1, np.ones((1, net.n_neurons))])  # columns [u_j; 1]
    pos = net.w2 > 0
    Zp = (L[:, pos] * net.w2[pos]) @ L[:, pos].T
    Zm = (L[:, ~pos] * -net.w2[~pos]) @ L[:, ~pos].T
    weights = {"Zp": Zp, "Zm": Zm}
    return ConvexSolution(formulation=f, weights=weights, value=f.objective(weights), status="from_network",
                          solver="none", lam=f.lam_value)


# ============================================================================ quantized networks
class QuantizedNetwork(PolynomialNetwork):
    r"""Two-layer network with binary first layer, :math:`f(x) = \sum_j \alpha_j\sigma(x_a^\top u_j)`, :math:`u_j \in \{-1, 1\}^{d'}`.

    The objective is :math:`\ell(f(X), y) + \lambda\|\alpha\|_1` (Bartan & Pilanci, "Training
    Quantized Neural Networks to Global Optimality via Semidefinite Programming", ICML 2021).
    """

    def quantization_violation(self) -> float:
        r""":math:`\max_{jk} ||U_{kj}| - 1|` (0 for a binary first layer)."""
        return float(np.max(np.abs(np.abs(self.W1) - 1.0), initial=0.0))

    def objective(self, X: Any, y: Any, lam: float, loss: str | Loss = "squared") -> float:
        r""":math:`\ell(f(X), y) + \lambda\|\alpha\|_1` (entries of ``W1`` must be :math:`\pm 1`).

        Raises
        ------
        InputError
            If ``W1`` is not binary, or on bad data.
        """
        if self.quantization_violation() > 0:
            raise InputError("the first layer of a quantized network must have entries in {-1, +1}.")
        lo = get_loss(loss)
        pred = self.predict(X)
        yy = _scalar_targets(y, pred.shape[0], lo)
        return lo.value(pred, yy) + check_lam(lam, allow_zero=True) * self.regularizer()

    def __repr__(self) -> str:
        return f"QuantizedNetwork(d={self.n_features}, m={self.n_neurons}, bias={self.bias})"


class QuantizedSDP(PolySDP):
    r"""SDP relaxation of a quantized polynomial network (built by :func:`quantized_sdp`).

    As :class:`PolySDP` with the trace constraints replaced by the diagonal constraints
    ``"diag_p"``, ``"diag_m"``: :math:`\operatorname{diag}(Z_1^\pm) = Z_4^\pm\mathbf 1` (from
    :math:`u_k^2 = 1`). Its optimum is a **lower bound** on the quantized training problem; use
    :func:`round_quantized` for a binary network and the gap.
    """

    kind = "quantized_sdp"

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        viol = 0.0
        for Z in self._check(weights):
            viol = max(viol, -float(np.linalg.eigvalsh(0.5 * (Z + Z.T))[0]),
                       float(np.max(np.abs(np.diag(Z)[:-1] - Z[-1, -1]))))
        return max(viol, 0.0)

    def to_network(self, solution: ConvexSolution) -> "QuantizedNetwork":
        """Randomized rounding (:func:`round_quantized` with its defaults); see there."""
        return round_quantized(solution).network


def quantized_sdp(X: Any, y: Any, lam: float, *, coefficients: Sequence[float] = (1.0, 0.0, 0.0),
                  loss: str | Loss = "squared", bias: bool = False) -> QuantizedSDP:
    r"""SDP relaxation of training a two-layer network with binary first-layer weights.

    .. math::

        \min_{Z^\pm \succeq 0,\ \operatorname{diag}(Z_1^\pm) = Z_4^\pm \mathbf 1}\
        \ell\big(a\,\operatorname{diag}(X_a Z_1 X_a^\top) + b\,X_a Z_2 + c\,Z_4,\ y\big)
        + \lambda (Z_4^+ + Z_4^-),\qquad Z = Z^+ - Z^-,

    the lift of :func:`poly_sdp` with :math:`u \in \{-1, 1\}^{d'}` (Bartan & Pilanci, ICML 2021):
    every binary network :math:`\sum_j\alpha_j\sigma(x_a^\top u_j)` lifts to a feasible point
    with the same objective, so the optimum is a lower bound on the quantized problem (not
    always attained: the binary lift is the cut polytope). Parameters as in :func:`poly_sdp`.
    """
    f = poly_sdp(X, y, lam, coefficients=coefficients, loss=loss, bias=bias)
    Zp, Zm = f.variables["Zp"], f.variables["Zm"]
    d = f.Xa.shape[1]
    ones = np.ones(d)
    constraints = {
        "psd_p": Zp >> 0,
        "psd_m": Zm >> 0,
        "diag_p": cp.diag(Zp[:d, :d]) == Zp[d, d] * ones,
        "diag_m": cp.diag(Zm[:d, :d]) == Zm[d, d] * ones,
    }
    problem = cp.Problem(f.problem.objective, list(constraints.values()))
    return QuantizedSDP(problem, f.lam, X=f.X, Xa=f.Xa, y=f.y, loss=f.loss, patterns=f.patterns, bias=f.bias,
                        variables=f.variables, constraints=constraints, meta=f.meta)


def _binary_lasso(Xa: np.ndarray, y: np.ndarray, U: np.ndarray, lam: float, coef: tuple[float, float, float],
                  lo: Loss, solver: str | None) -> tuple[np.ndarray, float]:
    """Optimal second layer for fixed binary neurons ``U`` (columns): an l1-regularized convex fit."""
    from convexnn.formulations.formulation import default_solver

    A = _sigma(Xa @ U, coef)
    alpha = cp.Variable(U.shape[1])
    prob = cp.Problem(cp.Minimize(lo.cvx(A @ alpha, y) + lam * cp.norm1(alpha)))
    prob.solve(solver=(solver or default_solver()).upper())
    a = np.asarray(alpha.value, dtype=float)
    return a, lo.value(A @ a, y) + lam * float(np.sum(np.abs(a)))


@dataclass
class QuantizedResult:
    r"""A binary network from :func:`round_quantized` / :func:`quantized_exact`, with its bounds.

    Attributes
    ----------
    network : QuantizedNetwork
    value : float
        Its objective (an upper bound on the quantized optimum).
    lower_bound : float
        The SDP relaxation value (``-inf`` when not computed).
    gap, rel_gap : float
        ``value - lower_bound`` and ``gap / |value|``.
    n_candidates : int
        Distinct binary neurons the second layer was fitted over.
    exact : bool
        True for :func:`quantized_exact` (all :math:`2^{d'}` neurons: the global optimum).
    """

    network: "QuantizedNetwork"
    value: float
    lower_bound: float
    gap: float
    rel_gap: float
    n_candidates: int
    exact: bool = False


def round_quantized(solution: ConvexSolution, *, n_samples: int = 200, seed: int | None = 0,
                    solver: str | None = None) -> QuantizedResult:
    r"""Randomized rounding of the quantized SDP relaxation, with the gap to the relaxation.

    For each block :math:`Z^\pm = RR^\top` draw :math:`g \sim \mathcal N(0, I)`, :math:`z = Rg`
    and the binary neuron :math:`u = \operatorname{sign}(z_{1:d'}\, z_{d'+1})` (hyperplane
    rounding with the homogenizing coordinate, Goemans-Williamson style; Bartan & Pilanci, ICML
    2021); then fit the second layer over the distinct neurons by the :math:`\ell_1`-regularized
    convex problem. The result is a binary network (an upper bound); the relaxation value is a
    lower bound, and ``rel_gap`` says how far from optimal the network can be.
    """
    f = solution.formulation
    if not isinstance(f, QuantizedSDP):
        raise InputError("round_quantized needs a solution of quantized_sdp.")
    rng = np.random.default_rng(seed)
    d = f.Xa.shape[1]
    cands = []
    for key in ("Zp", "Zm"):
        Z = np.asarray(solution.weights[key], dtype=float)
        ev, vec = np.linalg.eigh(0.5 * (Z + Z.T))
        R = vec * np.sqrt(np.clip(ev, 0.0, None))
        z = R @ rng.standard_normal((d + 1, int(n_samples)))
        u = np.sign(z[:d] * np.where(z[d] >= 0, 1.0, -1.0))
        u[u == 0] = 1.0
        cands.append(u)
    U = np.unique(np.hstack(cands).T, axis=0).T
    alpha, value = _binary_lasso(f.Xa, f.y, U, f.lam_value, f.coefficients, f.loss, solver)
    keep = np.abs(alpha) > 1e-9 * max(float(np.max(np.abs(alpha), initial=0.0)), 1e-300)
    net = QuantizedNetwork(U[:, keep], alpha[keep], f.coefficients, bias=f.bias)
    value = net.objective(f.X, f.y, f.lam_value, f.loss)
    gap = value - solution.value
    return QuantizedResult(network=net, value=value, lower_bound=solution.value, gap=gap,
                           rel_gap=relative_gap(value, solution.value), n_candidates=U.shape[1])


def quantized_exact(X: Any, y: Any, lam: float, *, coefficients: Sequence[float] = (1.0, 0.0, 0.0),
                    loss: str | Loss = "squared", bias: bool = False, max_dim: int = 14,
                    solver: str | None = None) -> QuantizedResult:
    r"""Global optimum of the quantized problem for small :math:`d'` by enumeration.

    With enough neurons, :math:`\min_{u_j \in \{\pm1\}^{d'}, \alpha}\ \ell(\sum_j\alpha_j\sigma(X_a u_j), y)
    + \lambda\|\alpha\|_1` is a lasso over the finite dictionary of all :math:`2^{d'}` binary
    neurons (:math:`2^{d'-1}` when :math:`b = 0`, since then :math:`\sigma(-t) = \sigma(t)`).

    Raises
    ------
    TooLargeError
        If :math:`d' > ` ``max_dim``.
    """
    from convexnn.errors import TooLargeError

    coef = check_coefficients(coefficients)
    Xc, Xa, yc, lo, lam_value = _prepare(X, y, lam, loss, bias)
    d = Xa.shape[1]
    if d > max_dim:
        raise TooLargeError(f"enumerating 2^{d} binary neurons is too large (max_dim={max_dim}); use "
                            "quantized_sdp + round_quantized.", estimate=2.0 ** d, limit=2.0 ** max_dim)
    k = d - 1 if coef[1] == 0 else d
    grid = np.array(np.meshgrid(*([[-1.0, 1.0]] * k), indexing="ij")).reshape(k, -1)
    U = grid if k == d else np.vstack([grid, np.ones((1, grid.shape[1]))])
    alpha, _ = _binary_lasso(Xa, yc, U, lam_value, coef, lo, solver)
    keep = np.abs(alpha) > 1e-9 * max(float(np.max(np.abs(alpha), initial=0.0)), 1e-300)
    net = QuantizedNetwork(U[:, keep], alpha[keep], coef, bias=bool(bias))
    value = net.objective(Xc, yc, lam_value, lo)
    return QuantizedResult(network=net, value=value, lower_bound=-np.inf, gap=np.inf, rel_gap=np.inf,
                           n_candidates=U.shape[1], exact=True)
