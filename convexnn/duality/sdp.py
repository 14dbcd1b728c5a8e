r"""Semidefinite relaxation of the dual norm :math:`s(v)`: pattern-free bounds at any input dimension.

The certificate of a two-layer ReLU network needs an upper bound of

.. math:: s(v) = \max_{\sigma=\pm1}\ \max_{\|u\|_2 \le 1}\ \sigma \sum_j v_j\,(x_j^\top u)_+

(:mod:`convexnn.duality.cones`). Writing :math:`(t)_+ = (t + |t|)/2` with :math:`t_j = x_j^\top u`,
the units with :math:`w_j = \sigma v_j > 0` add :math:`\tfrac12 w_j|t_j|` (convex in :math:`u`)
and those with :math:`w_j < 0` subtract :math:`\tfrac12|w_j||t_j|`. Both are bounded by quadratics
of :math:`u`, for any multipliers :math:`e_j > 0` and :math:`|z_j| \le \zeta_j \le |w_j|`:

.. math::

    w_j|t_j| \le \tfrac12\big(e_j t_j^2 + w_j^2/e_j\big), \qquad
    |w_j||t_j| \ge z_j t_j + (|w_j| - \zeta_j)\,t_j^2/R_j \quad (|t_j| \le R_j,\ R_j \ge \|x_j\|),

so :math:`\sum_j w_j (t_j)_+ \le \kappa + b^\top u + u^\top A u` on the unit ball with
:math:`\kappa = \tfrac14\sum_{w_j>0} w_j^2/e_j`,
:math:`b = \tfrac12 X_a^\top w - \tfrac12\sum_{w_j<0} z_j x_j` and
:math:`A = \tfrac14\sum_{w_j>0} e_j x_jx_j^\top - \sum_{w_j<0}\tfrac{|w_j|-\zeta_j}{2R_j}x_jx_j^\top`.
The maximum of this quadratic over the ball is at most :math:`\kappa + g + \tau` whenever

.. math:: Z = \begin{pmatrix} g & -b^\top/2 \\ -b/2 & \tau I - A \end{pmatrix} \succeq 0, \quad \tau \ge 0

(evaluate :math:`(1, u)\,Z\,(1, u)^\top \ge 0`; the S-lemma makes this exact for the quadratic).
Minimizing :math:`\kappa + g + \tau` over the multipliers is a small semidefinite program (one
matrix of order :math:`d'+1`, :math:`O(n)` second-order cones): the Shor relaxation of
:math:`s(v)`, valid for every chamber at once and cheap at any :math:`d'`
(:func:`sdp_dual_norm_bound`). Every bound returned is verified in exact arithmetic
(:func:`_verified_bound`), so the solver's accuracy can only loosen it.

Because the constraint :math:`\kappa + g + \tau \le \lambda` is jointly convex in :math:`v` and
the multipliers (for :math:`v = v^+ - v^-`, :math:`v^\pm \ge 0`, each part bounded as above),
the dual of the training problem can be maximized over this inner approximation of its feasible
set, :math:`\max_v -\ell^*(-v)` s.t. both relaxations :math:`\le \lambda`: one convex program
whose optimal :math:`v` is dual feasible over **all** chambers, so its dual value is a lower
bound on the training objective of every network of every width (:func:`sdp_lower_bound`; weak
duality, Pilanci & Ergen, "Neural Networks are Convex Regularizers", ICML 2020). The relaxation is
of the copositive kind studied by Sahiner, Ergen, Ozturkler, Pauly, Mardani & Pilanci, "Vector-
output ReLU Neural Network Problems are Copositive Programs", ICLR 2021, restricted to the lifted
input only (a matrix of order :math:`d'+1` instead of :math:`n+d'+1`).

What it is not: the relaxation is not exact. The quadratics are tight only where
:math:`|t_j| = c_j` resp. :math:`|t_j| \in \{0, R_j\}`, so with many units of both signs the
bound can be several times :math:`s(v)`. It complements the branch and bound
(:mod:`convexnn.duality.bab`), which is exact in the limit but whose cost grows like
:math:`(1/\delta)^{d'-1}`: at small :math:`d'` the branch and bound is far tighter, at large
:math:`d'` (about 8 and beyond) this bound is the better one within minutes
(``bench/RESULTS_bab.md``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convexnn.errors import InaccurateSolutionWarning, InputError, TooLargeError
from convexnn.rounding import UNIT_ROUNDOFF, gamma, positive_definite_exact

__all__ = ["SDPBound", "SDPLowerBound", "relaxation_bound", "sdp_dual_norm_bound", "sdp_lower_bound"]

#: coefficient nonzeros of the joint program above which :func:`sdp_lower_bound` refuses
MAX_NONZEROS = 1e7
#: Clarabel's tolerances (gap and feasibility) on the relaxations
SOLVER_TOL = 1e-7
#: bytes per coefficient nonzero, the program compiled and solved (measured: 0.48 GB peak at 2.4e6, n = 5000, d' = 11)
BYTES_PER_NONZERO = 150


@dataclass
class SDPBound:
    r"""A rigorous upper bound of :math:`s(v)` from the semidefinite relaxation.

    Attributes
    ----------
    upper : float
        :math:`U \ge s(v)`, proven for the float64 data (rounding accounted for).
    per_sign : tuple of float
        The proven bounds of :math:`\max_u \sigma\sum_j v_j(x_j^\top u)_+` for
        :math:`\sigma = +1, -1`.
    relaxed : tuple of float
        The solver's optimal values of the two relaxations (not proven).
    status : str
        The solver's status.
    compile_time, solve_time : float
        Seconds to build and compile the CVXPY program, and the solver's own time.
    """

    upper: float
    per_sign: tuple[float, float]
    relaxed: tuple[float, float]
    status: str
    compile_time: float
    solve_time: float


@dataclass
class SDPLowerBound:
    r"""A lower bound on the two-layer ReLU training objective from the semidefinite relaxation.

    Attributes
    ----------
    lower_bound : float
        Proven lower bound on :math:`\min \ell(\hat y) + \tfrac\lambda2(\|W_1\|_F^2 + \|w_2\|^2)`
        over networks of every width (rounding accounted for).
    dual_point : ndarray
        The dual feasible point whose certified dual value is ``lower_bound``.
    s_upper : float
        Proven upper bound of :math:`s` at the relaxation's optimal point (before scaling).
    relaxed_value : float
        Optimal value of the relaxed dual program as the solver returned it (not proven).
    status : str
        The solver's status on the joint program.
    compile_time, solve_time, time : float
        Seconds: compilation and solver time of the joint program, and the whole call (with the
        verification of the bound).
    """

    lower_bound: float
    dual_point: np.ndarray = field(repr=False)
    s_upper: float
    relaxed_value: float
    status: str
    compile_time: float
    solve_time: float
    time: float

    def __str__(self) -> str:
        return (f"SDPLowerBound(lower_bound={self.lower_bound:.6g}, s_upper={self.s_upper:.4g}, "
                f"status={self.status}, time={self.time:.3g}s, compile {self.compile_time:.3g}s, "
                f"solve {self.solve_time:.3g}s)")


def _pow2_at_least(x: float) -> float:
    """The smallest power of two >= x > 0 (scaling by it is exact)."""
    m, e = np.frexp(x)
    return float(np.ldexp(1.0, int(e) - (1 if m == 0.5 else 0)))


def _outer_columns(X: np.ndarray) -> np.ndarray:
    r"""The outer products :math:`x_jx_j^\top` of the rows as the columns of a ``(d^2, n)`` matrix (the map
    from per-row coefficients to :math:`\sum_j c_j x_jx_j^\top`), computed once per program."""
    d = X.shape[1]
    return np.einsum("ji,jk->ikj", X, X).reshape(d * d, -1)


def _relaxation(cp: Any, X: np.ndarray, K: np.ndarray, rP: np.ndarray, rN: np.ndarray, RN: np.ndarray, wP: Any,
                wN: Any) -> tuple[Any, list, dict]:
    r"""CVXPY multipliers, constraints and bound :math:`\kappa + g + \tau` of one relaxation.

    The rows ``rP`` of ``X`` enter with weight ``wP >= 0`` and the rows ``rN`` with ``-wN``
    (``wN >= 0``); ``wP``, ``wN`` are arrays or affine CVXPY expressions, ``RN >= ||x_j||`` on the
    rows ``rN``, ``K = _outer_columns(X)``.
    """
    d = X.shape[1]
    XP, XN, KP, KN = X[rP], X[rN], K[:, rP], K[:, rN]
    cons: list = []
    h: dict = {}
    b = 0
    A = 0
    kappa = 0
    if XP.shape[0]:
        e = cp.Variable(XP.shape[0], nonneg=True)
        k = cp.Variable(XP.shape[0], nonneg=True)  # k_j >= wP_j^2 / e_j (rotated cone)
        cons.append(cp.SOC(e + k, cp.vstack([2 * wP, e - k]), axis=0))
        A = A + 0.25 * cp.reshape(KP @ e, (d, d), order="C")
        b = b + 0.5 * (XP.T @ wP)
        kappa = 0.25 * cp.sum(k)
        h["e"] = e
    if XN.shape[0]:
        z = cp.Variable(XN.shape[0])
        zeta = cp.Variable(XN.shape[0], nonneg=True)
        cons += [cp.abs(z) <= zeta, zeta <= wN]
        A = A - cp.reshape(KN @ cp.multiply(wN - zeta, 0.5 / RN), (d, d), order="C")
        b = b - 0.5 * (XN.T @ wN) - 0.5 * (XN.T @ z)
        h["z"], h["zeta"] = z, zeta
    g = cp.Variable()
    tau = cp.Variable(nonneg=True)
    col = cp.reshape(-0.5 * b, (d, 1), order="C")
    Z = cp.bmat([[cp.reshape(g, (1, 1), order="C"), col.T], [col, tau * np.eye(d) - A]])
    cons.append(0.5 * (Z + Z.T) >> 0)
    h["g"], h["tau"] = g, tau
    return kappa + g + tau, cons, h


def _min_eig_shift(Zf: np.ndarray, eps: float) -> float:
    r"""A :math:`\delta \ge 0` with :math:`Z + \delta I \succeq 0` for every symmetric :math:`Z` with
    :math:`\|Z - Z_f\|_2 \le` ``eps``, verified in exact arithmetic.

    The entries of :math:`Z_f` are rounded to a grid of :math:`2^{-40}` times their largest modulus
    (small integers for the exact test), the rounding added to the shift.
    """
    m = Zf.shape[0]
    big = float(np.max(np.abs(Zf)))
    if big == 0.0:
        return eps
    q = float(np.ldexp(1.0, int(np.frexp(big)[1]) - 40))
    Zq = np.round(Zf / q) * q  # exact: a power-of-two scaling and an integer rounding
    eps_q = eps + 0.5 * q * m  # ||Zf - Zq||_2 <= ||.||_F <= m q / 2
    lam_min = float(np.linalg.eigvalsh(Zq)[0])
    slack = 64.0 * m * UNIT_ROUNDOFF * max(big, 1e-300)
    for _ in range(40):
        h = max(-lam_min, 0.0) + slack
        h = float(np.round(h / q + 1.0) * q) if h < q * 2.0 ** 52 else h
        if positive_definite_exact(Zq + h * np.eye(m)):
            return (h + eps_q) * (1.0 + 4 * UNIT_ROUNDOFF)
        slack *= 8.0
    return np.inf


def _verified_bound(X: np.ndarray, R: np.ndarray, w: np.ndarray, mult: dict) -> float:
    r"""Rigorous upper bound of :math:`\max_{\|u\|\le1}\sum_j w_j(x_j^\top u)_+` from any multipliers.

    ``mult`` holds full-length arrays ``e`` (read on the rows with :math:`w_j > 0`), ``z`` and
    ``zeta`` (read on the rows with :math:`w_j < 0`) and scalars ``g``, ``tau``: a solver's output
    or anything else; missing entries get neutral values. They are first made feasible by clipping
    (:math:`e_j > 0`, :math:`0 \le \zeta_j \le |w_j|`, :math:`|z_j| \le \zeta_j`,
    :math:`\tau \ge 0`, the coefficients of :math:`A` rounded towards the valid side); :math:`Z` is
    formed in floating point with an entrywise bound of its rounding error, and its smallest
    eigenvalue is bounded below in exact arithmetic (:func:`_min_eig_shift`). Returns
    :math:`\kappa + g + \tau + 2\delta` rounded up.
    """
    n, d = X.shape
    live = R > 0  # a zero row adds (0)_+ = 0 whatever its weight
    P, N = (w > 0) & live, (w < 0) & live
    if not (P.any() or N.any()):
        return 0.0

    def full(key: str, default: float) -> np.ndarray:
        a = mult.get(key)
        a = np.full(n, default) if a is None else np.asarray(a, dtype=np.float64).reshape(-1)
        return a if a.shape == (n,) else np.full(n, default)

    XP, XN, wP, a = X[P], X[N], w[P], -w[N]
    e = full("e", np.nan)[P]
    e = np.maximum(np.where(np.isfinite(e) & (e > 0), e, wP), 1e-300)
    kappa = 0.25 * float(np.sum(wP * wP / e)) * (1.0 + gamma(XP.shape[0] + 6))
    zeta = np.clip(np.nan_to_num(full("zeta", 0.0)[N]), 0.0, a)
    z = np.clip(np.nan_to_num(full("z", 0.0)[N]), -zeta, zeta)
    # alpha_j <= (|w_j| - zeta_j) / (2 R_j) exactly (three roundings, each at most u, undone by 1 - 4u)
    alpha = (a - zeta) / (2.0 * R[N]) * (1.0 - 4 * UNIT_ROUNDOFF)
    alpha = np.where(alpha > 1e-290, alpha, 0.0)
    beta = 0.25 * e
    g = float(np.nan_to_num(mult.get("g") or 0.0))
    tau = max(float(np.nan_to_num(mult.get("tau") or 0.0)), 0.0)
    b = 0.5 * (X[P].T @ wP - XN.T @ (a + z))
    A = XP.T @ (beta[:, None] * XP) - XN.T @ (alpha[:, None] * XN)
    A = 0.5 * (A + A.T)
    Zf = np.empty((d + 1, d + 1))
    Zf[0, 0] = g
    Zf[1:, 0] = Zf[0, 1:] = -0.5 * b
    Zf[1:, 1:] = tau * np.eye(d) - A
    # entrywise magnitudes of every term that entered each entry: error <= gamma_{n+8} * mag
    mag = np.zeros_like(Zf)
    mag[1:, 0] = mag[0, 1:] = 0.5 * (np.abs(XP).T @ wP + np.abs(XN).T @ (a + np.abs(z)))
    mag[1:, 1:] = np.abs(XP).T @ (beta[:, None] * np.abs(XP)) + np.abs(XN).T @ (alpha[:, None] * np.abs(XN))
    mag[1:, 1:] += tau * np.eye(d)
    eps = gamma(n + 8) * float(np.linalg.norm(mag)) * (1.0 + gamma((d + 1) ** 2 + 4)) + 2.0 ** -1000
    delta = _min_eig_shift(Zf, eps)
    total = kappa + g + tau + 2.0 * delta
    return float(total + gamma(6) * (abs(kappa) + abs(g) + tau + 2.0 * delta) + 2.0 ** -1000)


def _multipliers(h: dict, rowsP: np.ndarray, rowsN: np.ndarray, n: int) -> dict:
    """The solver's multipliers of one relaxation as full-length arrays."""
    out: dict = {}
    for key, rows in (("e", rowsP), ("z", rowsN), ("zeta", rowsN)):
        if key in h and h[key].value is not None:
            a = np.full(n, np.nan if key == "e" else 0.0)
            a[rows] = np.asarray(h[key].value, dtype=np.float64).reshape(-1)
            out[key] = a
    for key in ("g", "tau"):
        if h[key].value is not None:
            out[key] = float(h[key].value)
    return out


def _normalize(Xa: np.ndarray) -> tuple[np.ndarray, float]:
    """``Xa / r`` with ``r`` a power of two >= the largest row norm (exact), and ``r``."""
    big = float(np.max(np.linalg.norm(Xa, axis=1))) if Xa.size else 0.0
    r = _pow2_at_least(big) if big > 0 else 1.0
    return Xa / r, r


def _solve(prob: Any, context: str, time_limit: float | None) -> tuple[str, float, float]:
    """Solve with Clarabel; (status, compile seconds, solve seconds); the caller checks the status.

    Tolerances 1e-7: the bounds are verified exactly afterwards, so the solver's accuracy only
    decides how tight they are."""
    import cvxpy as cp

    from convexnn._cvxpy_warnings import translated

    opts: dict = {"tol_gap_abs": SOLVER_TOL, "tol_gap_rel": SOLVER_TOL, "tol_feas": SOLVER_TOL}
    if time_limit is not None:
        opts["time_limit"] = max(float(time_limit), 1e-3)
    t0 = time.perf_counter()
    with translated(context):
        try:
            prob.solve(solver=cp.CLARABEL, **opts)
        except cp.error.SolverError:
            return "solver_error", time.perf_counter() - t0, 0.0
    wall = time.perf_counter() - t0
    solve = float(getattr(prob.solver_stats, "solve_time", None) or 0.0)
    comp = float(prob.compilation_time or max(wall - solve, 0.0))
    return str(prob.status), comp, solve


def _check_time_limit(time_limit: Any) -> float | None:
    if time_limit is None:
        return None
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float, np.integer, np.floating)) \
            or not time_limit > 0:
        raise InputError(f"time_limit must be a positive number or None; got {time_limit!r}.")
    return float(time_limit)


def _check_size(n: int, d: int, nnz: float, max_nonzeros: float) -> None:
    """TooLargeError (before anything is built) when the program would exceed ``max_nonzeros``."""
    if nnz > max_nonzeros:
        raise TooLargeError(
            f"the semidefinite relaxation would have about {nnz:.3g} coefficient nonzeros (n = {n}, d' = {d}; "
            f"about {nnz * BYTES_PER_NONZERO / 1e9:.3g} GB), above max_nonzeros = {max_nonzeros:.3g}; "
            "use certify(method='bab') or raise max_nonzeros.", estimate=nnz, limit=max_nonzeros)


def sdp_dual_norm_bound(Xa: Any, v: Any, *, time_limit: float | None = None,
                        max_nonzeros: float = MAX_NONZEROS) -> SDPBound:
    r"""Rigorous upper bound of :math:`s(v)` over all chambers by the semidefinite relaxation.

    Parameters
    ----------
    Xa : array of shape (n, d')
        The data matrix the gates act on (with its ones column when the network has a bias).
    v : array of shape (n,)
        The dual candidate.
    time_limit : float, optional
        Seconds for the solver; whatever iterate it stops at still gives a proven bound.
    max_nonzeros : float
        Refuse (:class:`~convexnn.errors.TooLargeError`, before building anything) above this
        many coefficient nonzeros (about :math:`n d'^2`).

    Returns
    -------
    SDPBound
        ``upper`` is proven (see the module docstring): the multipliers come from Clarabel, the
        bound from their exact verification, so an inaccurate or interrupted solve only loosens
        it (a :class:`~convexnn.errors.InaccurateSolutionWarning` says when the solver did not
        reach optimality).

    Notes
    -----
    Positively homogeneous: the data are scaled by powers of two (exactly) before the solve.
    Cost: a semidefinite program with one matrix of order :math:`d'+1` and :math:`n` cones per
    sign; 0.03 s at n = 442, d' = 4, 0.2 s at d' = 11, 5 s at n = 569, d' = 31 (one core).
    """
    import cvxpy as cp

    from convexnn.duality.bounds import row_norm_bounds

    X = np.asarray(Xa, dtype=np.float64)
    w = np.asarray(v, dtype=np.float64)
    if X.ndim != 2 or w.shape != (X.shape[0],):
        raise InputError(f"Xa must have shape (n, d') and v shape (n,); got {X.shape} and {w.shape}.")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(w))):
        raise InputError("Xa and v must be finite.")
    time_limit = _check_time_limit(time_limit)
    n, d = X.shape
    _check_size(n, d, 1.0 * n * d * d + 4.0 * n, max_nonzeros)
    Xs, r = _normalize(X)
    big = float(np.max(np.abs(w))) if w.size else 0.0
    R = row_norm_bounds(Xs)
    if big == 0.0 or not np.any(w[R > 0]):
        return SDPBound(0.0, (0.0, 0.0), (0.0, 0.0), "trivial", 0.0, 0.0)
    c = _pow2_at_least(big)
    ws = w / c  # exact: c is a power of two
    K = _outer_columns(Xs)
    hs, bounds, cons, rows = [], [], [], []
    for sigma in (1.0, -1.0):
        wsig = sigma * ws
        P, N = np.flatnonzero((wsig > 0) & (R > 0)), np.flatnonzero((wsig < 0) & (R > 0))
        bnd, cn, h = _relaxation(cp, Xs, K, P, N, R[N], wsig[P], -wsig[N])
        bounds.append(bnd)
        cons += cn
        hs.append(h)
        rows.append((P, N))
    prob = cp.Problem(cp.Minimize(bounds[0] + bounds[1]), cons)
    status, comp, solve = _solve(prob, "the relaxation of s(v) with CLARABEL", time_limit)
    if status != "optimal":
        warnings.warn(f"sdp_dual_norm_bound: the solver returned {status!r}; the bound is still proven "
                      "but may be loose.", InaccurateSolutionWarning, stacklevel=2)
    per, relaxed = [], []
    for sigma, h, bnd, (P, N) in zip((1.0, -1.0), hs, bounds, rows):
        per.append(_verified_bound(Xs, R, sigma * ws, _multipliers(h, P, N, n)) * (c * r))
        relaxed.append(float(bnd.value) * c * r if bnd.value is not None else np.nan)
    # c and r are powers of two: the products above are exact (barring overflow)
    return SDPBound(float(max(per)), (per[0], per[1]), (relaxed[0], relaxed[1]), status, comp, solve)


def sdp_lower_bound(X: Any, y: Any, lam: float, *, loss: Any = "squared", bias: bool = True,
                    signs: Any = None, time_limit: float | None = None,
                    max_nonzeros: float = MAX_NONZEROS) -> SDPLowerBound:
    r"""Lower bound on two-layer ReLU training over every width, from the relaxed dual program.

    Solves :math:`\max_v -\ell^*(-v)` subject to the semidefinite relaxation of
    :math:`s(v) \le \lambda` (module docstring), then proves the point: its multipliers are
    verified exactly (:func:`_verified_bound`; when that bound is above :math:`\lambda`, e.g.
    after an inaccurate solve, a fresh :func:`sdp_dual_norm_bound` at the point is tried too),
    giving :math:`U \ge s(v)`, and :func:`~convexnn.duality.bounds.feasible_dual_value` scales
    :math:`v` by at most :math:`\lambda / U` (rounding included) and evaluates its dual value with
    its rounding subtracted. The result is a proof whatever the solver's accuracy.

    Parameters
    ----------
    X : array of shape (n, d)
        Data.
    y : array of shape (n,)
        Targets (labels in {-1, +1} for margin losses).
    lam : float
        Weight decay, > 0.
    loss : str or Loss
        ``"squared"``, ``"logistic"`` or any loss with a CVXPY dual (``Loss.dual_cvx``).
    bias : bool
        Whether the network has a bias (a ones column joins ``X``).
    signs : array of shape (n,), optional
        Restrict the dual point to this sign pattern (:math:`v_j \ge 0` where ``signs > 0``,
        :math:`v_j \le 0` elsewhere), e.g. the signs of a good network's residual: half the
        multipliers, about 3x faster at d' = 31 and as tight on the benchmark data. Default: no
        restriction (:math:`v = v^+ - v^-`, a relaxation for each part).
    time_limit : float, optional
        Seconds for the whole call: the solvers stop on time (building and compiling the program
        cannot be interrupted) and an interrupted solve still gives a proven, looser bound.
    max_nonzeros : float
        Refuse (:class:`~convexnn.errors.TooLargeError`, before building anything) when the
        program would have more coefficient nonzeros than this (about :math:`4 n d'^2`).

    Returns
    -------
    SDPLowerBound

    Notes
    -----
    Where it pays: the bound does not depend on enumerating or searching chambers, so its cost is
    one convex program at any :math:`d'`; it is loose where many units of both signs cross (see
    the module docstring), e.g. at :math:`d' \le 6` the branch and bound is much tighter.

    Examples
    --------
    >>> import numpy as np, convexnn as cx
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 8)); y = X[:, 0] ** 2 - X[:, 1]
    >>> res = cx.sdp_lower_bound(X, y, lam=0.5)
    >>> 0 < res.lower_bound <= 0.5 * float(y @ y)   # below the zero network's objective
    True
    """
    import cvxpy as cp

    from convexnn.arrangements.patterns import design_matrix
    from convexnn.duality._common import validate
    from convexnn.duality.bounds import feasible_dual_value, row_norm_bounds

    t0 = time.perf_counter()
    Xc, yc, lam, L = validate(X, y, lam, loss)
    time_limit = _check_time_limit(time_limit)
    Xa = design_matrix(Xc, bias)
    n, d = Xa.shape
    _check_size(n, d, 4.0 * n * d * d + 8.0 * n, max_nonzeros)
    Xs, r = _normalize(Xa)
    R = row_norm_bounds(Xs)
    every = np.flatnonzero(R > 0)  # zero rows do not enter s(v)
    if every.size == 0:
        raise InputError("every row of the data matrix is zero: there is nothing to bound.")
    if signs is None:
        vp = cp.Variable(n, nonneg=True)
        vn = cp.Variable(n, nonneg=True)
        v = vp - vn
        parts = [(every, every, vp[every], vn[every]), (every, every, vn[every], vp[every])]
        link: list = []
    else:
        sg = np.asarray(signs, dtype=np.float64).reshape(-1)
        if sg.shape != (n,) or not np.all(np.isfinite(sg)):
            raise InputError(f"signs must be a finite array of shape ({n},); got shape {sg.shape}.")
        Pm, Nm = np.flatnonzero((sg > 0) & (R > 0)), np.flatnonzero(~(sg > 0) & (R > 0))
        vP = cp.Variable(Pm.size, nonneg=True)
        vN = cp.Variable(Nm.size, nonneg=True)
        v = cp.Variable(n)
        parts = [(Pm, Nm, vP, vN), (Nm, Pm, vN, vP)]
        link = ([v[Pm] == vP] if Pm.size else []) + ([v[Nm] == -vN] if Nm.size else [])
    obj, cons = L.dual_cvx(v, yc)
    cons = list(cons) + link
    hs = []
    # s(v; Xa) = r s(v; Xs): each relaxation of s(v; Xs) at most lam / r
    K = _outer_columns(Xs)
    for rp, rn, wp, wn in parts:
        bnd, cn, h = _relaxation(cp, Xs, K, rp, rn, R[rn], wp, wn)
        cons += cn + [bnd <= lam / r]
        hs.append((h, rp, rn))
    prob = cp.Problem(cp.Maximize(obj), cons)
    deadline = None if time_limit is None else t0 + time_limit
    joint_limit = None if deadline is None else 0.75 * (deadline - time.perf_counter())
    status, comp, solve = _solve(prob, "the relaxed dual program with CLARABEL", joint_limit)
    if v.value is None:
        warnings.warn(f"sdp_lower_bound: the solver returned {status!r} and no point; the bound is the "
                      "zero network's dual value.", InaccurateSolutionWarning, stacklevel=2)
        w = np.zeros(n)
    else:
        w = L.project_dual(np.asarray(v.value, dtype=np.float64), yc)
        if status != "optimal":
            warnings.warn(f"sdp_lower_bound: the solver returned {status!r}; the bound is still proven "
                          "but may be loose.", InaccurateSolutionWarning, stacklevel=2)
    S = 0.0
    if np.any(w):
        S = max(_verified_bound(Xs, R, sigma * w, _multipliers(h, rp, rn, n)) * r
                for sigma, (h, rp, rn) in zip((1.0, -1.0), hs))
        left = None if deadline is None else deadline - time.perf_counter()
        if not S <= lam * (1.0 + 1e-4) and (left is None or left > 0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InaccurateSolutionWarning)
                S = min(S, sdp_dual_norm_bound(Xa, w, time_limit=left).upper)
    lower, p = feasible_dual_value(L, w, yc, lam, S, row_norm_bounds(Xa))
    return SDPLowerBound(lower_bound=float(lower), dual_point=p, s_upper=float(S),
                         relaxed_value=float(prob.value) if prob.value is not None else np.nan,
                         status=status, compile_time=comp, solve_time=solve, time=time.perf_counter() - t0)


def relaxation_bound(X: np.ndarray, y: np.ndarray, lam: float, L: Any, bias: bool, v: np.ndarray,
                     time_limit: float | None, forced: bool) -> Any:
    """:func:`sdp_lower_bound` with the sign pattern of ``v`` (used by ``certify(method="bab")`` and
    :func:`~convexnn.duality.global_opt.solve_global`; ``None`` when the
    program is too large and the relaxation was not asked for explicitly). Its solver's accuracy
    only loosens the proven bound, so its inaccuracy warnings are not repeated here."""
    signs = np.sign(v) if np.any(v) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InaccurateSolutionWarning)
            return sdp_lower_bound(X, y, lam, loss=L, bias=bias, signs=signs, time_limit=time_limit)
    except TooLargeError:
        if forced:
            raise
        return None
